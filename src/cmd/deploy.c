/*
 * `pvelab deploy [GUEST...] [--profile P]`: the guests' docker compose stacks
 * (plan/stacks.h) compared with the last deploy, then written into the guests
 * through the QEMU guest agent (Proxmox API) or SSH (core/ssh.h): a snapshot
 * of a running guest before a stack changes (pvelab-pre-RUN: the deploy is a
 * run, rolled back by rollback RUN), files written atomically, `docker compose
 * up -d --remove-orphans` with its output shown as it comes, then a wait until
 * every service runs and its healthcheck passes; the deploy recorded; on
 * failure the guest is rolled back to the snapshot when --rollback-on-failure
 * says so. apply deploys through the same code (cmd/deploy.h).
 */
#include "core/common.h"
#include "cmd/deploy.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/guard.h"
#include "cmd/guestx.h"
#include "cmd/planning.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/json.h"
#include "plan/runs.h"
#include "plan/snappol.h"
#include "plan/stacks.h"
#include "pve/client.h"
#include "state/state.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

enum { O_PROFILE, O_DRY_RUN, O_ROLLBACK, O_FORCE, O_TIMEOUT, O_WAIT, O_HEALTH };

static const struct pl_opt opts[] = {
	{ "profile", 0, "P",
	  "enable this compose profile instead of the stacks' profiles: (the seed's "
	  "deploy-stack.sh --profile; guest selection is plan/apply's --profile)" },
	{ "dry-run", 'n', NULL,
	  "show what would change (files, with a diff of those without secrets) and change "
	  "nothing" },
	{ "rollback-on-failure", 0, NULL,
	  "when compose up fails or a service does not run or become healthy, roll the guest "
	  "back to the snapshot taken before" },
	{ "force", 0, NULL, "deploy unchanged stacks too" },
	{ "timeout", 0, "SECS", "how long compose up may take (default stack_defaults.timeout)" },
	{ "wait", 0, "SECS",
	  "wait this long for a booting guest's agent or SSH to answer (default 0; apply waits "
	  "300)" },
	{ "health-timeout", 0, "SECS",
	  "how long services with a healthcheck may take to report healthy (default 120)" },
	{ NULL, 0, NULL, NULL },
};

#define OUT_LINES_MAX 200 /* compose output lines shown per command */

/* compose's output shown as it comes, a line at a time, at most
 * OUT_LINES_MAX lines: on stderr (o->show) and to o->line. */
struct stream {
	const struct pl_deploy_opts *o;
	const json_t *st;
	struct pl_buf line;
	int shown;
	bool cut;
};

static void
stream_say(struct stream *st, const char *line)
{
	if (st->o->show)
		fprintf(stderr, "    | %s\n", line);
	if (st->o->line)
		st->o->line(st->st, line, st->o->arg);
}

static void
stream_line(struct stream *st)
{
	if (st->shown < OUT_LINES_MAX) {
		stream_say(st, st->line.data ? st->line.data : "");
	} else if (!st->cut) {
		stream_say(st, "... (more output not shown)");
		st->cut = true;
	}
	st->shown++;
	pl_buf_reset(&st->line);
}

static void
on_output(void *ctx, int stream, const char *p, size_t n)
{
	struct stream *st = ctx;

	(void)stream;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			stream_line(st);
		else if (p[i] != '\r' && st->line.len < 1024)
			pl_buf_addch(&st->line, p[i]);
	}
}

/* After compose up: compose ps until every service runs and each
 * healthcheck passed, one goes down or unhealthy, or health_ms pass. */
static int
wait_healthy(struct pl_gx *x, const json_t *st, int health_ms, bool show, char **errmsg)
{
	long long deadline = pl_gx_mono_ms() + health_ms;
	int pause = 250, state, r;
	bool said = false;

	for (;;) {
		struct pl_gx_res res = { 0 };
		char *why = NULL;

		if ((r = pl_gx_run(x, json_object_get(st, "ps"), 60000, &res, errmsg)) != 0)
			return r;
		state = res.code != 0 ? PL_GX_DOWN :
					pl_gx_services_health(res.out ? res.out : "", &why);
		if (res.code != 0)
			why = pl_asprintf("docker compose ps exited %d: %.200s", res.code,
					  res.err ? res.err : "");
		pl_gx_res_release(&res);
		if (state == PL_GX_UP) {
			free(why);
			return 0;
		}
		if (state == PL_GX_DOWN || pl_gx_mono_ms() + pause > deadline) {
			r = pl_seterr(errmsg, PL_EIO, "after compose up: %s%s", why,
				      state == PL_GX_DOWN ? "" : " (--health-timeout)");
			free(why);
			return r;
		}
		if (show && !said) {
			fprintf(stderr, "  waiting for healthchecks: %s\n", why);
			said = true;
		}
		free(why);
		usleep((useconds_t)pause * 1000);
		pause = pause < 2000 ? pause * 2 : 2000;
	}
}

static json_t *
find_record(const json_t *rec, long long vmid, const char *name)
{
	const json_t *e;
	size_t i;

	json_array_foreach(rec, i, e)
		if (pl_json_int(e, "vmid", 0) == vmid &&
		    !strcmp(pl_json_str_or(e, "stack", ""), name))
			return json_pack("{s:O,s:O}", "sha256", json_object_get(e, "sha256"),
					 "files", json_object_get(e, "files"));
	return json_null();
}

/* Deploy one stack into the guest x reaches; report is its entry, taken
 * {"VMID": snapshot name} the guests with a snapshot of this run. */
static int
deploy_one(struct pl_session *s, struct pl_gx *x, json_t *st, const json_t *entry,
	   const struct pl_deploy_opts *o, json_t *taken, json_t *report, char **errmsg)
{
	char snapname[64] = "", key[32];
	struct pl_gx_res res = { 0 };
	size_t i;
	json_t *f, *pub;
	bool show = o->show;
	int r = 0, health_ms = (o->health_s > 0 ? o->health_s : 120) * 1000;
	int timeout_s = o->timeout_s;

	if (!timeout_s)
		timeout_s =
			(int)json_integer_value(pl_config_get(s->cfg, "/stack_defaults/timeout"));
	if (!timeout_s)
		timeout_s = 600;
	/* A running stack is about to change: the run's snapshot of the guest
	 * first (one per guest and run: apply's own, or the first stack's). */
	snprintf(key, sizeof key, "%lld", x->vmid);
	if (!strcmp(pl_json_str(entry, "action"), "update")) {
		if (json_object_get(taken, key)) {
			snprintf(snapname, sizeof snapname, "%s",
				 json_string_value(json_object_get(taken, key)));
		} else {
			json_t *p;

			snprintf(snapname, sizeof snapname, "pvelab-pre-%lld", o->run_id);
			p = json_pack("{s:s,s:s}", "snapname", snapname, "description",
				      "pvelab: before changing a stack");
			r = pl_gx_task(x, "POST", "snapshot", p, errmsg);
			json_decref(p);
			if (r) {
				pl_preferr(errmsg, r,
					   "snapshot before deploy refused, nothing changed");
				return r;
			}
			json_object_set_new(taken, key, json_string(snapname));
			json_object_set_new(report, "snapshot_taken", json_true());
			if (show)
				fprintf(stderr, "  snapshot %s of %s taken\n", snapname,
					pl_json_str(st, "guest"));
		}
		json_object_set_new(report, "snapshot", json_string(snapname));
	}
	json_array_foreach(json_object_get(st, "files"), i, f) {
		const char *data = pl_json_str(f, "_data");

		if ((r = pl_gx_write(x, pl_json_str(f, "path"), data, strlen(data),
				     (unsigned)json_integer_value(json_object_get(f, "mode")),
				     errmsg)) != 0)
			goto failed;
	}
	{
		struct stream out = { .o = o, .st = st };

		pl_buf_init(&out.line, 4096);
		if (show || o->line) {
			x->on_output = on_output;
			x->out_ctx = &out;
		}
		r = pl_gx_run(x, json_object_get(st, "up"), timeout_s * 1000, &res, errmsg);
		if (out.line.len)
			stream_line(&out);
		x->on_output = NULL;
		x->out_ctx = NULL;
		pl_buf_release(&out.line);
	}
	if (r)
		goto failed;
	json_object_set_new(report, "up_exit", json_integer(res.code));
	json_object_set_new(report, "up_output", json_string(res.err ? res.err : ""));
	if (res.code != 0) {
		r = pl_seterr(errmsg, PL_EIO, "docker compose up exited %d: %.300s", res.code,
			      res.err ? res.err : "");
		goto failed;
	}
	pl_gx_res_release(&res);
	if ((r = wait_healthy(x, st, health_ms, show, errmsg)) != 0)
		goto failed;
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
	return r;
failed:
	pl_gx_res_release(&res);
	if (snapname[0] && o->rollback) {
		char *suffix = pl_asprintf("snapshot/%s/rollback", snapname), *e2 = NULL;
		json_t *p = json_pack("{s:b}", "start", 1);
		int r2 = pl_gx_task(x, "POST", suffix, p, &e2);

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
			"left as it is (snapshot %s holds the state before: pvelab rollback %lld, "
			"or --rollback-on-failure next time)",
			snapname, o->run_id);
	}
	return r;
}

int
pl_deploy_plan(struct pl_session *s, const struct pl_deploy_opts *o, json_t **stacks, json_t **plan,
	       char **errmsg)
{
	json_t *live = NULL, *rec = NULL, *st;
	size_t i;
	int r;

	*stacks = *plan = NULL;
	if ((r = pl_stacks_render(s->cfg, o->names, o->profile, stacks, errmsg)) != 0 ||
	    (r = pl_session_live_guests(s, &live, errmsg)) != 0 ||
	    (r = pl_state_stacks(s->state, &rec, errmsg)) != 0)
		goto out;
	json_array_foreach(o->names, i, st) {
		bool found = false;
		size_t k;
		json_t *one;

		json_array_foreach(*stacks, k, one)
			found |= !strcmp(pl_json_str(one, "guest"), json_string_value(st));
		if (!found) {
			r = pl_seterr(errmsg, PL_EINVAL, "deploy: guest '%s' has no stacks: in %s",
				      json_string_value(st), pl_config_path(s->cfg));
			goto out;
		}
	}
	/* each stack's guest as the cluster has it now */
	json_array_foreach(*stacks, i, st) {
		char *e = NULL;
		const json_t *g = pl_guest_lookup(live, pl_json_str(st, "guest"), &e);

		if (!g) {
			r = pl_seterr(
				errmsg, PL_ENOENT,
				"deploy: stack %s: guest %s does not exist (apply creates it): %s",
				pl_json_str(st, "name"), pl_json_str(st, "guest"), e ? e : "");
			free(e);
			goto out;
		}
		json_object_set(st, "vmid", json_object_get(g, "vmid"));
		json_object_set(st, "node", json_object_get(g, "node"));
		json_object_set_new(st, "lxc",
				    json_boolean(!strcmp(pl_json_str_or(g, "type", ""), "lxc")));
		json_object_set(st, "status", json_object_get(g, "status"));
		/* the record a rollback of this deploy puts back */
		json_object_set_new(
			st, "before",
			find_record(rec, pl_json_int(st, "vmid", 0), pl_json_str(st, "name")));
	}
	*plan = pl_stacks_compare(*stacks, rec);
out:
	json_decref(live);
	json_decref(rec);
	if (r) {
		json_decref(*stacks);
		*stacks = NULL;
	}
	return r;
}

/* Whether a plan's stacks (expect) show this stack's deploy, the same
 * action on the same content. */
static bool
expected(const json_t *expect, const json_t *entry)
{
	const json_t *e;
	size_t i;

	json_array_foreach(expect, i, e)
		if (!strcmp(pl_json_str_or(e, "guest", ""), pl_json_str_or(entry, "guest", "")) &&
		    !strcmp(pl_json_str_or(e, "name", ""), pl_json_str_or(entry, "name", "")) &&
		    !strcmp(pl_json_str_or(e, "action", ""), pl_json_str_or(entry, "action", "")) &&
		    !strcmp(pl_json_str_or(e, "sha256", ""), pl_json_str_or(entry, "sha256", "")))
			return true;
	return false;
}

int
pl_deploy_run(struct pl_session *s, const struct pl_deploy_opts *o, json_t *stacks,
	      const json_t *plan, json_t *report)
{
	json_t *taken = o->snapped ? json_deep_copy(o->snapped) : json_object(), *st;
	char *err = NULL;
	size_t i;
	int failed = 0, r;

	json_array_foreach(stacks, i, st) {
		json_t *entry = json_array_get(plan, i), *gcfg = NULL, *rep, *g;
		struct pl_gx x = { .s = s };
		const char *transport = pl_json_str_or(st, "transport", "auto");
		const char *action = pl_json_str(entry, "action");
		size_t k;

		if (!strcmp(action, "unchanged") && !o->force)
			continue;
		if (pl_gx_stopped(s)) /* Ctrl-C in the console: no stack more */
			break;
		rep = json_pack("{s:s,s:O,s:O,s:s,s:s,s:s,s:O}", "guest", pl_json_str(st, "guest"),
				"vmid", json_object_get(st, "vmid"), "node",
				json_object_get(st, "node"), "type",
				json_is_true(json_object_get(st, "lxc")) ? "lxc" : "qemu", "name",
				pl_json_str(st, "name"), "action", action, "before",
				json_object_get(st, "before"));
		json_array_append_new(report, rep);
		if (o->expect && !expected(o->expect, entry)) {
			r = pl_seterr(&err, PL_ECONFLICT,
				      "its files changed after the plan was made: run pvelab plan "
				      "again");
			goto done;
		}
		json_array_foreach(pl_config_guests(s->cfg), k, g)
			if (!strcmp(pl_json_str_or(g, "name", ""), pl_json_str(st, "guest")))
				gcfg = g;
		r = pl_gx_open(s, gcfg, st, transport, o->wait_s * 1000, &x, &transport, &err);
		json_object_set_new(rep, "transport", json_string(transport));
		if (r == 0) {
			if (o->show)
				fprintf(stderr, "deploying stack %s to %s (%s)...\n",
					pl_json_str(st, "name"), pl_json_str(st, "guest"),
					transport);
			r = deploy_one(s, &x, st, entry, o, taken, rep, &err);
		}
		pl_gx_close(&x);
	done:
		json_object_set_new(rep, "ok", json_boolean(r == 0));
		if (r) {
			failed++;
			json_object_set_new(rep, "error", json_string(err));
		}
		if (o->record)
			o->record(rep, o->arg);
		free(err);
		err = NULL;
	}
	json_decref(taken);
	return failed;
}

int
pl_deploy_apply(struct pl_session *s, struct pl_deploy_opts *o, const json_t *plan, json_t *result)
{
	json_t *snapped = json_object(), *stacks = NULL, *sp = NULL, *report = json_array();
	const json_t *c;
	char *err = NULL;
	size_t i;
	int failed;

	json_array_foreach(json_object_get(result, "changes"), i, c)
		if (pl_json_str(c, "snapshot")) {
			char key[32];

			snprintf(key, sizeof key, "%lld", pl_json_int(c, "vmid", 0));
			json_object_set_new(snapped, key, json_string(pl_json_str(c, "snapshot")));
		}
	o->snapped = snapped;
	o->expect = json_object_get(plan, "stacks");
	if (!o->wait_s)
		o->wait_s = 300;
	if (pl_deploy_plan(s, o, &stacks, &sp, &err) != 0) {
		json_array_append_new(report, json_pack("{s:s,s:s,s:b,s:s}", "guest", "?", "name",
							"?", "ok", 0, "error", err));
		failed = 1;
	} else {
		failed = pl_deploy_run(s, o, stacks, sp, report);
	}
	json_object_set_new(result, "stacks", report);
	o->snapped = o->expect = NULL;
	free(err);
	json_decref(snapped);
	json_decref(stacks);
	json_decref(sp);
	return failed;
}

int
pl_deploy_records_back(struct pl_state *state, const json_t *res, const json_t *result,
		       char **errmsg)
{
	const json_t *e, *c;
	size_t i, j;
	int first = 0;

	json_array_foreach(json_object_get(res, "stacks"), i, e) {
		const json_t *before = json_object_get(e, "before");
		bool back = false;
		char *err = NULL;
		int r;

		json_array_foreach(json_object_get(result, "changes"), j, c)
			back |= pl_json_int(c, "vmid", 0) == pl_json_int(e, "vmid", 0) &&
				!strcmp(pl_json_str_or(c, "status", ""), "ok");
		if (!back)
			continue;
		if (json_is_object(before))
			r = pl_state_stack_record(state, pl_json_int(e, "vmid", 0),
						  pl_json_str_or(e, "name", ""),
						  pl_json_str_or(before, "sha256", ""),
						  json_object_get(before, "files"), &err);
		else
			r = pl_state_stack_forget(state, pl_json_int(e, "vmid", 0),
						  pl_json_str_or(e, "name", ""), &err);
		if (r && !first)
			first = pl_seterr(errmsg, r, "stack %s in %s: %s",
					  pl_json_str_or(e, "name", "?"),
					  pl_json_str_or(e, "guest", "?"), err);
		free(err);
	}
	return first;
}

void
pl_deploy_print(const json_t *report)
{
	const json_t *e;
	size_t i;

	json_array_foreach(report, i, e) {
		if (json_is_true(json_object_get(e, "ok")))
			printf("stack %s in %s: deployed%s%s%s\n", pl_json_str_or(e, "name", "?"),
			       pl_json_str_or(e, "guest", "?"),
			       pl_json_str(e, "snapshot") ? " (way back: snapshot " : "",
			       pl_json_str_or(e, "snapshot", ""),
			       pl_json_str(e, "snapshot") ? ")" : "");
		else
			printf("stack %s in %s: FAILED: %s\n", pl_json_str_or(e, "name", "?"),
			       pl_json_str_or(e, "guest", "?"), pl_json_str_or(e, "error", "?"));
	}
}

struct deploy_run {
	struct pl_state *state;
	long long id;
	json_t *result;
	const struct pl_ctx *ctx;
};

/* The run's record as each stack ends (rollback RUN reads it). */
static void
on_record(const json_t *entry, void *arg)
{
	struct deploy_run *d = arg;
	char *err = NULL;

	(void)entry;
	if (pl_runs_update(d->state, d->id, d->result, &err) != 0) {
		pl_warn(d->ctx, "%s", err);
		free(err);
	}
}

/* apply_snapshots.keep over the guests this deploy snapshotted. */
static void
prune(const struct pl_ctx *ctx, struct pl_session *s, json_t *result)
{
	const json_t *keep = pl_config_get(s->cfg, "/apply_snapshots/keep");
	json_t *guests = pl_planning_prune_guests(result), *pr = NULL, *warnings = json_array(), *w;
	struct pl_snappol_opts so = { 0 };
	size_t i;

	if (json_is_integer(keep) && guests) {
		pl_snappol_prune_apply(s->base, s->pve, guests, json_integer_value(keep), &so, &pr);
		pl_planning_pruned(result, pr, warnings);
	}
	json_array_foreach(warnings, i, w)
		pl_warn(ctx, "%s", json_string_value(w));
	json_decref(warnings);
	json_decref(guests);
	json_decref(pr);
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	struct pl_session s = { 0 };
	struct pl_guard guard = { 0 };
	struct pl_deploy_opts o = { 0 };
	struct deploy_run d = { .ctx = ctx };
	json_t *names, *stacks = NULL, *plan = NULL, *report = NULL;
	char *err = NULL;
	long long timeout = 0, wait = 0, health = 0;
	size_t i;
	json_t *st;
	int r, failed = 0, changed = 0;
	bool stopped;

	if ((r = pl_args_parse(&a, &pl_cmd_deploy, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if (pl_args_num(&a, O_TIMEOUT, 1, 86400, &timeout) != 0 ||
	    pl_args_num(&a, O_WAIT, 0, 3600, &wait) != 0 ||
	    pl_args_num(&a, O_HEALTH, 1, 86400, &health) != 0)
		return PL_EXIT_USAGE;
	names = json_array(); /* after the usage errors, which return */
	for (int k = 0; k < a.npos; k++)
		json_array_append_new(names, json_string(a.pos[k]));
	o.names = names;
	o.profile = pl_args_str(&a, O_PROFILE, NULL);
	o.rollback = pl_args_has(&a, O_ROLLBACK);
	o.force = pl_args_has(&a, O_FORCE);
	o.timeout_s = (int)timeout;
	o.wait_s = (int)wait;
	o.health_s = (int)health;
	o.show = ctx->output == PL_OUT_TEXT && pl_chatty(ctx);
	if ((r = pl_session_open(&s, ctx, PL_NEED_API | PL_NEED_STATE, &err)) != 0 || !s.cfg) {
		r = pl_error("%s", err ? err : "deploy needs a config file");
		goto out;
	}
	if (pl_deploy_plan(&s, &o, &stacks, &plan, &err) != 0) {
		r = pl_error("%s", err);
		goto out;
	}
	json_array_foreach(plan, i, st)
		changed += strcmp(pl_json_str(st, "action"), "unchanged") != 0;
	if (ctx->output == PL_OUT_TEXT && pl_chatty(ctx))
		pl_planning_print_stacks(ctx, plan);
	if (pl_args_has(&a, O_DRY_RUN)) {
		if (ctx->output == PL_OUT_JSON)
			pl_print_json(json_pack("{s:O}", "stacks", plan));
		else if (!changed && pl_chatty(ctx))
			printf("No stack changes.\n");
		r = changed ? PL_EXIT_CHANGES : PL_EXIT_OK;
		goto out;
	}
	report = json_array();
	if (!changed && !o.force) {
		if (ctx->output == PL_OUT_JSON)
			pl_print_json(json_pack("{s:O,s:O}", "stacks", plan, "deployed", report));
		else if (pl_chatty(ctx))
			printf("No stack changes.\n");
		r = PL_EXIT_OK;
		goto out;
	}
	/* a run of its own: one at a time per cluster, its snapshots
	 * pvelab-pre-RUN under apply_snapshots.keep, undone by rollback RUN */
	if (pl_guard_take(&guard, &s, &err) != 0 ||
	    pl_runs_begin(s.state, "deploy", &d.id, &err) != 0) {
		r = pl_error("%s", err);
		goto out;
	}
	if (pl_runs_set_project(s.state, d.id, pl_config_project(s.cfg), &err) != 0) {
		pl_warn(ctx, "%s", err);
		free(err);
		err = NULL;
	}
	d.state = s.state;
	d.result = json_pack("{s:I,s:O}", "run", (json_int_t)d.id, "stacks", report);
	o.run_id = d.id;
	o.record = on_record;
	o.arg = &d;
	failed = pl_deploy_run(&s, &o, stacks, plan, report);
	stopped = pl_pve_interrupted(s.pve);
	json_object_set_new(d.result, "ok",
			    json_integer((json_int_t)(json_array_size(report) - (size_t)failed)));
	json_object_set_new(d.result, "failed", json_integer(failed));
	if (!failed && !stopped)
		prune(ctx, &s, d.result);
	/* Ctrl-C inside the console ends the command, not the process: the run
	 * is recorded as interrupted here (on the command line the process dies
	 * and the next run's guard records it so) */
	if (pl_runs_finish(s.state, d.id,
			   stopped ? "interrupted" :
			   failed  ? "failed" :
				     "ok",
			   d.result, &err) != 0) {
		pl_warn(ctx, "%s", err);
		free(err);
		err = NULL;
	}
	json_array_foreach(report, i, st)
		if (!json_is_true(json_object_get(st, "ok")))
			fprintf(stderr, "pvelab: deploy: stack %s in %s: %s\n",
				pl_json_str(st, "name"), pl_json_str(st, "guest"),
				pl_json_str_or(st, "error", "?"));
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_pack("{s:I,s:O,s:O}", "run", (json_int_t)d.id, "stacks", plan,
					"deployed", report));
	} else if (pl_chatty(ctx)) {
		pl_deploy_print(report);
		printf("Deploy run %lld%s: %zu deployed, %d failed.%s\n", d.id,
		       stopped ? " interrupted" : "", json_array_size(report) - (size_t)failed,
		       failed, failed ? "" : " pvelab rollback RUN takes the changed guests back.");
	}
	r = stopped ? 128 + SIGINT : failed ? PL_EXIT_ERROR : PL_EXIT_OK;
out:
	pl_guard_release(&guard);
	free(err);
	json_decref(d.result);
	json_decref(names);
	json_decref(stacks);
	json_decref(plan);
	json_decref(report);
	pl_session_close(&s);
	return r;
}

const struct pl_cmd pl_cmd_deploy = {
	.name = "deploy",
	.summary = "deploy the guests' docker compose stacks (guest agent or SSH)",
	.usage = "[--profile P] [--dry-run] [--rollback-on-failure] [--force] [--timeout SECS] "
		 "[--wait SECS] [--health-timeout SECS] [GUEST...]",
	.help = "Compares each stack of the config (stacks: of a guest) with what pvelab deployed "
		"last (pvelab plan shows the same), then for each created or changed one: "
		"snapshots a guest whose stack changes (pvelab-pre-RUN: a deploy is a run of its "
		"own, kept under apply_snapshots.keep and undone by pvelab rollback RUN), writes "
		"its files atomically (temp file, mode, rename), runs docker compose up -d "
		"--remove-orphans (its output shown as it comes), then waits until every service "
		"runs and each healthcheck passes (--health-timeout; unhealthy fails the deploy). "
		"VMs with agent: true are reached through the QEMU guest agent (files over 60 KiB "
		"in parts), others over SSH (key or ssh-agent; host keys trusted on first use, "
		"pvelab ssh-forget after a rebuild). Exit 2 with --dry-run when something would "
		"change. docs/stacks.md.",
	.opts = opts,
	.min_args = 0,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = 0,
};
