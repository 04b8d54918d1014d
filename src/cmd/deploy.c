/*
 * `pvelab deploy [GUEST...] [--profile P]`: the guests' docker compose stacks
 * (plan/stacks.h) compared with the last deploy, then written into the guests
 * through the QEMU guest agent (Proxmox API) or SSH (core/ssh.h): a snapshot
 * of a running guest before a stack changes, files written atomically,
 * `docker compose up -d --remove-orphans`, its services checked with
 * `compose ps`, the deploy recorded; on failure the guest is rolled back to
 * the snapshot when --rollback-on-failure says so.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "core/ssh.h"
#include "plan/stacks.h"
#include "pve/client.h"
#include "state/state.h"

#include <time.h>
#include <unistd.h>

enum { O_PROFILE, O_DRY_RUN, O_ROLLBACK, O_FORCE, O_TIMEOUT };

static const struct pl_opt opts[] = {
	{ "profile", 0, "P",
	  "enable this compose profile instead of the stacks' profiles: (the seed's "
	  "deploy-stack.sh --profile; guest selection is plan/apply's --profile)" },
	{ "dry-run", 'n', NULL,
	  "show what would change (files, with a diff of those without secrets) and change "
	  "nothing" },
	{ "rollback-on-failure", 0, NULL,
	  "when compose up fails or a service does not run, roll the guest back to the snapshot "
	  "taken before" },
	{ "force", 0, NULL, "deploy unchanged stacks too" },
	{ "timeout", 0, "SECS", "how long compose up may take (default stack_defaults.timeout)" },
	{ NULL, 0, NULL, NULL },
};

/* How one guest is reached: the agent through the API, or an SSH session. */
struct xport {
	struct pl_session *s;
	const char *node;
	long long vmid;
	bool lxc;
	struct pl_ssh *ssh; /* NULL: the agent */
};

struct xres {
	int code;
	char *out, *err;
};

static void
xres_release(struct xres *x)
{
	free(x->out);
	free(x->err);
	memset(x, 0, sizeof *x);
}

static char *
argv_shell(const json_t *argv)
{
	struct pl_buf b;
	size_t i;
	json_t *v;

	pl_buf_init(&b, 0);
	json_array_foreach(argv, i, v) {
		char *q = pl_ssh_quote(json_string_value(v));

		pl_buf_addf(&b, "%s%s", i ? " " : "", q);
		free(q);
	}
	return pl_buf_detach(&b, NULL);
}

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run argv in the guest: agent exec, then exec-status until it exited. */
static int
x_run(struct xport *x, const json_t *argv, int timeout_ms, struct xres *res, char **errmsg)
{
	int r;

	memset(res, 0, sizeof *res);
	if (x->ssh) {
		char *cmd = argv_shell(argv);
		struct pl_ssh_result sr;
		struct pl_ssh_cmd c = { .cmd = cmd, .timeout_ms = timeout_ms };

		r = pl_ssh_run(x->ssh, &c, &sr, errmsg);
		res->code = sr.status;
		res->out = pl_strdup(sr.out.data);
		res->err = pl_strdup(sr.err.data);
		pl_ssh_result_release(&sr);
		free(cmd);
		return r;
	} else {
		char *path = pl_asprintf("/nodes/%s/qemu/%lld/agent/exec", x->node, x->vmid);
		json_t *params = json_pack("{s:O}", "command", argv), *data = NULL;
		long long deadline = mono_ms() + timeout_ms;
		json_int_t pid;
		int wait = 20;

		r = pl_pve_call(x->s->pve, "POST", path, params, &data, errmsg);
		json_decref(params);
		free(path);
		if (r)
			return r;
		pid = json_integer_value(json_object_get(data, "pid"));
		json_decref(data);
		path = pl_asprintf("/nodes/%s/qemu/%lld/agent/exec-status", x->node, x->vmid);
		params = json_pack("{s:I}", "pid", pid);
		for (;;) {
			data = NULL;
			if ((r = pl_pve_call(x->s->pve, "GET", path, params, &data, errmsg)) != 0)
				break;
			if (json_is_true(json_object_get(data, "exited")) ||
			    json_integer_value(json_object_get(data, "exited")) == 1) {
				res->code =
					(int)json_integer_value(json_object_get(data, "exitcode"));
				res->out = pl_strdup(pl_json_str_or(data, "out-data", ""));
				res->err = pl_strdup(pl_json_str_or(data, "err-data", ""));
				json_decref(data);
				break;
			}
			json_decref(data);
			if (mono_ms() >= deadline) {
				r = pl_seterr(errmsg, PL_ETIMEOUT,
					      "guest %lld: the command did not end within %d ms",
					      x->vmid, timeout_ms);
				break;
			}
			usleep((useconds_t)wait * 1000);
			wait = wait < 1000 ? wait * 2 : 1000;
		}
		json_decref(params);
		free(path);
		return r;
	}
}

/* Run argv and call a non-zero exit an error naming the command. */
static int
x_must(struct xport *x, const json_t *argv, char **errmsg)
{
	struct xres res;
	int r = x_run(x, argv, 60000, &res, errmsg);

	if (r == 0 && res.code != 0)
		r = pl_seterr(errmsg, PL_EIO, "guest %lld: %s exited %d: %.200s", x->vmid,
			      json_string_value(json_array_get(argv, 0)), res.code, res.err);
	xres_release(&res);
	return r;
}

/* Write path atomically: a temporary file beside it, its mode, then mv. */
static int
x_write(struct xport *x, const char *path, const char *data, size_t len, unsigned mode,
	char **errmsg)
{
	char *tmp, *dir, *m, *call;
	json_t *argv, *params, *out = NULL;
	int r;

	if (x->ssh)
		return pl_ssh_write_file(x->ssh, path, data, len, mode, 60000, errmsg);
	if (len > 61440)
		return pl_seterr(errmsg, PL_ETOOBIG,
				 "%s: %zu bytes: the guest agent's file-write takes at most 61440 "
				 "(use transport: ssh for larger files)",
				 path, len);
	dir = pl_strndup(path, (size_t)(strrchr(path, '/') - path));
	argv = json_pack("[s,s,s]", "mkdir", "-p", dir[0] ? dir : "/");
	r = x_must(x, argv, errmsg);
	json_decref(argv);
	free(dir);
	if (r)
		return r;
	tmp = pl_asprintf("%s.pvelab-tmp", path);
	call = pl_asprintf("/nodes/%s/qemu/%lld/agent/file-write", x->node, x->vmid);
	params = json_pack("{s:s,s:s%}", "file", tmp, "content", data, len);
	r = pl_pve_call(x->s->pve, "POST", call, params, &out, errmsg);
	json_decref(params);
	json_decref(out);
	free(call);
	m = pl_asprintf("%04o", mode);
	if (r == 0) {
		argv = json_pack("[s,s,s]", "chmod", m, tmp);
		r = x_must(x, argv, errmsg);
		json_decref(argv);
	}
	if (r == 0) {
		argv = json_pack("[s,s,s,s]", "mv", "-f", tmp, path);
		r = x_must(x, argv, errmsg);
		json_decref(argv);
	}
	free(m);
	free(tmp);
	return r;
}

/* The API call of a task (snapshot, rollback), waited for. */
struct task_wait {
	bool done;
	int err;
	char *msg;
};

static void
task_done(int err, const char *exitstatus, const char *errmsg, void *arg)
{
	struct task_wait *w = arg;

	w->done = true;
	w->err = err;
	if (errmsg)
		w->msg = pl_strdup(errmsg);
}

static int
x_task(struct xport *x, const char *method, const char *suffix, const json_t *params, char **errmsg)
{
	char *path = pl_asprintf("/nodes/%s/%s/%lld/%s", x->node, x->lxc ? "lxc" : "qemu", x->vmid,
				 suffix);
	json_t *data = NULL;
	struct task_wait w = { 0 };
	int r = pl_pve_call(x->s->pve, method, path, params, &data, errmsg);

	free(path);
	if (r)
		return r;
	if (json_is_string(data)) {
		pl_pve_task_wait(x->s->pve, json_string_value(data), 600000, task_done, &w);
		pl_pve_run(x->s->pve);
		if (w.err)
			r = pl_seterr(errmsg, w.err, "%s", w.msg ? w.msg : "the task failed");
	}
	free(w.msg);
	json_decref(data);
	return r;
}

/* Every service of the project running, from compose ps's JSON lines (one
 * object a line, or one array: docker compose prints either by version). */
static int
services_running(const char *ps, char **why)
{
	json_t *all = json_array(), *v;
	const char *p = ps;
	size_t i;
	int bad = 0;

	while (*p) {
		size_t n = strcspn(p, "\n");
		json_t *o = json_loadb(p, n, JSON_DECODE_ANY, NULL);

		if (json_is_array(o))
			json_array_extend(all, o);
		else if (json_is_object(o))
			json_array_append(all, o);
		json_decref(o);
		p += n + (p[n] == '\n');
	}
	json_array_foreach(all, i, v) {
		const char *state = pl_json_str_or(v, "State", "");
		const char *health = pl_json_str_or(v, "Health", "");

		if (strcmp(state, "running") != 0 || !strcmp(health, "unhealthy")) {
			if (!bad++)
				*why = pl_asprintf("service %s is %s%s%s",
						   pl_json_str_or(v, "Service", "?"), state,
						   *health ? ", " : "", health);
		}
	}
	if (json_array_size(all) == 0 && !bad) {
		*why = pl_strdup("compose ps lists no service");
		bad = 1;
	}
	json_decref(all);
	return bad;
}

/* The guest's SSH session, with the config's ssh: and stack_defaults.ssh. */
static int
ssh_open(struct pl_session *s, const json_t *gcfg, struct pl_ssh **out, char **errmsg)
{
	const json_t *ssh = json_object_get(gcfg, "ssh"),
		     *d = pl_config_get(s->cfg, "/stack_defaults/ssh");
	const char *host = pl_json_str(ssh, "host");
	char *h = NULL, *idpath = NULL;
	const char *id = pl_json_str(ssh, "identity") ? pl_json_str(ssh, "identity") :
							pl_json_str(d, "identity");
	struct pl_ssh_opts o = { 0 };
	size_t i;
	json_t *n;
	int r;

	if (!host)
		json_array_foreach(json_object_get(gcfg, "networks"), i, n) {
			const char *ip = pl_json_str(n, "ip");

			if (ip && strcmp(ip, "dhcp") != 0) {
				host = h = pl_strndup(ip, strcspn(ip, "/"));
				break;
			}
		}
	if (!host)
		return pl_seterr(
			errmsg, PL_EINVAL,
			"guest %s: no address to reach it over SSH (set ssh.host, or give it "
			"a static networks[].ip)",
			pl_json_str_or(gcfg, "name", "?"));
	if (id && id[0] != '/') {
		char *dir = pl_path_dirname(pl_config_path(s->cfg));

		id = idpath = pl_path_join(dir, id);
		free(dir);
	}
	o.host = host;
	o.port = (int)(json_integer_value(json_object_get(ssh, "port")) ?
			       json_integer_value(json_object_get(ssh, "port")) :
			       json_integer_value(json_object_get(d, "port")));
	o.user = pl_json_str(ssh, "user") ? pl_json_str(ssh, "user") : pl_json_str(d, "user");
	o.identity = id;
	o.timeout_ms = (int)json_integer_value(json_object_get(d, "timeout")) * 1000;
	o.check_hostkey = pl_state_ssh_trust;
	o.check_ctx = s->state;
	r = pl_ssh_connect(&o, out, errmsg);
	free(h);
	free(idpath);
	return r;
}

/* Deploy one stack; *what says how it ended for the summary. */
static int
deploy_one(struct pl_ctx *ctx, struct pl_session *s, struct xport *x, json_t *st,
	   const json_t *entry, bool rollback, int timeout_ms, json_t *report, char **errmsg)
{
	char snapname[64] = "";
	struct xres res = { 0 };
	size_t i;
	json_t *f, *pub;
	char *why = NULL;
	int r = 0;

	/* A running stack is about to change: snapshot the guest first. */
	if (!strcmp(pl_json_str(entry, "action"), "update")) {
		json_t *p;

		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		snprintf(snapname, sizeof snapname, "pvelab-pre-deploy-%lld%03ld",
			 (long long)now.tv_sec, now.tv_nsec / 1000000);
		p = json_pack("{s:s,s:s}", "snapname", snapname, "description",
			      "pvelab deploy: before changing a stack");
		r = x_task(x, "POST", "snapshot", p, errmsg);
		json_decref(p);
		if (r) {
			pl_preferr(errmsg, r, "snapshot before deploy refused, nothing changed");
			return r;
		}
		json_object_set_new(report, "snapshot", json_string(snapname));
		if (pl_chatty(ctx))
			fprintf(stderr, "  snapshot %s of %s taken\n", snapname,
				pl_json_str(st, "guest"));
	}
	json_array_foreach(json_object_get(st, "files"), i, f) {
		const char *data = pl_json_str(f, "_data");

		if ((r = x_write(x, pl_json_str(f, "path"), data, strlen(data),
				 (unsigned)json_integer_value(json_object_get(f, "mode")),
				 errmsg)) != 0)
			goto failed;
	}
	if ((r = x_run(x, json_object_get(st, "up"), timeout_ms, &res, errmsg)) != 0)
		goto failed;
	json_object_set_new(report, "up_exit", json_integer(res.code));
	json_object_set_new(report, "up_output", json_string(res.err ? res.err : ""));
	if (res.code != 0) {
		r = pl_seterr(errmsg, PL_EIO, "docker compose up exited %d: %.300s", res.code,
			      res.err ? res.err : "");
		goto failed;
	}
	xres_release(&res);
	if ((r = x_run(x, json_object_get(st, "ps"), 60000, &res, errmsg)) != 0)
		goto failed;
	if (res.code != 0 || services_running(res.out ? res.out : "", &why)) {
		r = pl_seterr(errmsg, PL_EIO, "after compose up: %s",
			      why ? why : "docker compose ps failed");
		goto failed;
	}
	pub = pl_stacks_public(st, true);
	{
		json_t *files = json_object(), *pf;

		json_array_foreach(json_object_get(pub, "files"), i, pf) {
			json_t *c = json_deep_copy(pf);

			json_object_del(c, "path");
			json_object_set_new(files, pl_json_str(pf, "path"), c);
		}
		r = pl_state_stack_record(s->state, x->vmid, pl_json_str(st, "name"),
					  pl_json_str(st, "sha256"), files, errmsg);
		json_decref(files);
	}
	json_decref(pub);
	xres_release(&res);
	free(why);
	return r;
failed:
	xres_release(&res);
	free(why);
	if (snapname[0] && rollback) {
		char *suffix = pl_asprintf("snapshot/%s/rollback", snapname), *e2 = NULL;
		json_t *p = json_pack("{s:b}", "start", 1);
		int r2 = x_task(x, "POST", suffix, p, &e2);

		json_decref(p);
		free(suffix);
		json_object_set_new(report, "rolled_back", json_boolean(r2 == 0));
		if (r2 == 0)
			pl_preferr(errmsg, r, "rolled back to %s after", snapname);
		else
			pl_preferr(errmsg, r, "rollback to %s FAILED (%s) after", snapname,
				   e2 ? e2 : "?");
		free(e2);
	} else if (snapname[0]) {
		pl_preferr(
			errmsg, r,
			"left as it is (snapshot %s holds the state before; --rollback-on-failure "
			"rolls back)",
			snapname);
	}
	return r;
}

static void
print_plan(const json_t *plan)
{
	size_t i, j;
	json_t *e, *f;

	json_array_foreach(plan, i, e) {
		const char *a = pl_json_str(e, "action");

		printf("%s stack %s in %s: %s\n",
		       !strcmp(a, "create") ? "+" :
		       !strcmp(a, "update") ? "~" :
					      " ",
		       pl_json_str(e, "name"), pl_json_str(e, "guest"), a);
		json_array_foreach(json_object_get(e, "files"), j, f) {
			printf("    %s %s%s\n", pl_json_str(f, "change"), pl_json_str(f, "path"),
			       json_is_true(json_object_get(f, "secret")) ? " (secret: not shown)" :
									    "");
			if (pl_json_str(f, "diff")) {
				const char *p = pl_json_str(f, "diff");

				while (*p) {
					size_t n = strcspn(p, "\n");

					printf("      %.*s\n", (int)n, p);
					p += n + (p[n] == '\n');
				}
			}
		}
	}
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	struct pl_session s = { 0 };
	json_t *names = json_array(), *stacks = NULL, *live = NULL, *rec = NULL, *plan = NULL,
	       *results = json_array(), *st;
	char *err = NULL;
	long long timeout = 0;
	size_t i;
	int r, failed = 0, changed = 0;

	if ((r = pl_args_parse(&a, &pl_cmd_deploy, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if (pl_args_num(&a, O_TIMEOUT, 1, 86400, &timeout) != 0)
		return PL_EXIT_USAGE;
	for (int k = 0; k < a.npos; k++)
		json_array_append_new(names, json_string(a.pos[k]));
	if ((r = pl_session_open(&s, ctx, PL_NEED_API | PL_NEED_STATE, &err)) != 0 || !s.cfg) {
		r = pl_error("%s", err ? err : "deploy needs a config file");
		goto out;
	}
	if (!timeout)
		timeout = json_integer_value(pl_config_get(s.cfg, "/stack_defaults/timeout"));
	if (!timeout)
		timeout = 600;
	if (pl_stacks_render(s.cfg, names, pl_args_str(&a, O_PROFILE, NULL), &stacks, &err) != 0 ||
	    pl_session_live_guests(&s, &live, &err) != 0 ||
	    pl_state_stacks(s.state, &rec, &err) != 0) {
		r = pl_error("%s", err);
		goto out;
	}
	for (int k = 0; k < a.npos; k++) {
		bool found = false;

		json_array_foreach(stacks, i, st)
			found |= !strcmp(pl_json_str(st, "guest"), a.pos[k]);
		if (!found) {
			r = pl_error("deploy: guest '%s' has no stacks: in %s", a.pos[k],
				     pl_config_path(s.cfg));
			goto out;
		}
	}
	/* each stack's guest as the cluster has it now */
	json_array_foreach(stacks, i, st) {
		const json_t *g = pl_guest_lookup(live, pl_json_str(st, "guest"), &err);

		if (!g) {
			r = pl_error(
				"deploy: stack %s: guest %s does not exist (apply creates it): %s",
				pl_json_str(st, "name"), pl_json_str(st, "guest"), err);
			goto out;
		}
		json_object_set(st, "vmid", json_object_get(g, "vmid"));
		json_object_set(st, "node", json_object_get(g, "node"));
		json_object_set_new(st, "lxc",
				    json_boolean(!strcmp(pl_json_str_or(g, "type", ""), "lxc")));
		json_object_set(st, "status", json_object_get(g, "status"));
	}
	plan = pl_stacks_compare(stacks, rec);
	if (ctx->output == PL_OUT_TEXT && pl_chatty(ctx))
		print_plan(plan);
	if (pl_args_has(&a, O_DRY_RUN)) {
		json_array_foreach(plan, i, st)
			changed += strcmp(pl_json_str(st, "action"), "unchanged") != 0;
		if (ctx->output == PL_OUT_JSON)
			pl_print_json(json_pack("{s:O}", "stacks", plan));
		r = changed ? PL_EXIT_CHANGES : PL_EXIT_OK;
		goto out;
	}
	json_array_foreach(stacks, i, st) {
		json_t *entry = json_array_get(plan, i), *gcfg = NULL, *report, *g;
		struct xport x = { .s = &s };
		const char *transport = pl_json_str_or(st, "transport", "auto");
		size_t k;

		if (!strcmp(pl_json_str(entry, "action"), "unchanged") && !pl_args_has(&a, O_FORCE))
			continue;
		report = json_pack("{s:s,s:O,s:s,s:s}", "guest", pl_json_str(st, "guest"), "vmid",
				   json_object_get(st, "vmid"), "name", pl_json_str(st, "name"),
				   "action", pl_json_str(entry, "action"));
		json_array_append_new(results, report);
		json_array_foreach(pl_config_guests(s.cfg), k, g)
			if (!strcmp(pl_json_str_or(g, "name", ""), pl_json_str(st, "guest")))
				gcfg = g;
		x.node = pl_json_str(st, "node");
		x.vmid = json_integer_value(json_object_get(st, "vmid"));
		x.lxc = json_is_true(json_object_get(st, "lxc"));
		if (!strcmp(transport, "auto"))
			transport = !x.lxc && json_is_true(json_object_get(gcfg, "agent")) ?
					    "agent" :
					    "ssh";
		json_object_set_new(report, "transport", json_string(transport));
		if (!strcmp(transport, "agent") && x.lxc)
			r = pl_seterr(&err, PL_EINVAL,
				      "a container has no QEMU guest agent: use transport: ssh");
		else if (strcmp(pl_json_str_or(st, "status", ""), "running") != 0)
			r = pl_seterr(&err, PL_ECONFLICT, "the guest is %s, not running",
				      pl_json_str_or(st, "status", "?"));
		else if (!strcmp(transport, "ssh"))
			r = ssh_open(&s, gcfg, &x.ssh, &err);
		else
			r = 0;
		if (r == 0) {
			if (pl_chatty(ctx) && ctx->output == PL_OUT_TEXT)
				fprintf(stderr, "deploying stack %s to %s (%s)...\n",
					pl_json_str(st, "name"), pl_json_str(st, "guest"),
					transport);
			r = deploy_one(ctx, &s, &x, st, entry, pl_args_has(&a, O_ROLLBACK),
				       (int)timeout * 1000, report, &err);
		}
		pl_ssh_free(x.ssh);
		json_object_set_new(report, "ok", json_boolean(r == 0));
		if (r) {
			failed++;
			json_object_set_new(report, "error", json_string(err));
			fprintf(stderr, "pvelab: deploy: stack %s in %s: %s\n",
				pl_json_str(st, "name"), pl_json_str(st, "guest"), err);
		} else if (pl_chatty(ctx) && ctx->output == PL_OUT_TEXT) {
			printf("stack %s in %s: deployed\n", pl_json_str(st, "name"),
			       pl_json_str(st, "guest"));
		}
		free(err);
		err = NULL;
	}
	if (ctx->output == PL_OUT_JSON)
		pl_print_json(json_pack("{s:O,s:O}", "stacks", plan, "deployed", results));
	r = failed ? PL_EXIT_ERROR : PL_EXIT_OK;
out:
	free(err);
	json_decref(names);
	json_decref(stacks);
	json_decref(live);
	json_decref(rec);
	json_decref(plan);
	json_decref(results);
	pl_session_close(&s);
	return r;
}

const struct pl_cmd pl_cmd_deploy = {
	.name = "deploy",
	.summary = "deploy the guests' docker compose stacks (guest agent or SSH)",
	.usage = "[--profile P] [--dry-run] [--rollback-on-failure] [--force] [--timeout SECS] "
		 "[GUEST...]",
	.help = "Compares each stack of the config (stacks: of a guest) with what pvelab deployed "
		"last, then for each created or changed one: snapshots a guest whose stack "
		"changes, writes its files atomically (temp file, mode, rename), runs docker "
		"compose up -d --remove-orphans and checks with compose ps that every service "
		"runs. VMs with agent: true are reached through the QEMU guest agent, others over "
		"SSH (key or ssh-agent; host keys trusted on first use). Exit 2 with --dry-run "
		"when something would change. docs/stacks.md.",
	.opts = opts,
	.min_args = 0,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = 0,
};
