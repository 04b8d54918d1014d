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
#include "cmd/guestx.h"
#include "config/config.h"
#include "core/json.h"
#include "plan/stacks.h"
#include "state/state.h"

#include <time.h>

enum { O_PROFILE, O_DRY_RUN, O_ROLLBACK, O_FORCE, O_TIMEOUT, O_WAIT };

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
	{ "wait", 0, "SECS",
	  "wait this long for a booting guest's agent or SSH to answer (default 0; apply waits "
	  "300)" },
	{ NULL, 0, NULL, NULL },
};

/* Deploy one stack; *what says how it ended for the summary. */
static int
deploy_one(struct pl_ctx *ctx, struct pl_session *s, struct pl_gx *x, json_t *st,
	   const json_t *entry, bool rollback, int timeout_ms, json_t *report, char **errmsg)
{
	char snapname[64] = "";
	struct pl_gx_res res = { 0 };
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
		r = pl_gx_task(x, "POST", "snapshot", p, errmsg);
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

		if ((r = pl_gx_write(x, pl_json_str(f, "path"), data, strlen(data),
				     (unsigned)json_integer_value(json_object_get(f, "mode")),
				     errmsg)) != 0)
			goto failed;
	}
	if ((r = pl_gx_run(x, json_object_get(st, "up"), timeout_ms, &res, errmsg)) != 0)
		goto failed;
	json_object_set_new(report, "up_exit", json_integer(res.code));
	json_object_set_new(report, "up_output", json_string(res.err ? res.err : ""));
	if (res.code != 0) {
		r = pl_seterr(errmsg, PL_EIO, "docker compose up exited %d: %.300s", res.code,
			      res.err ? res.err : "");
		goto failed;
	}
	pl_gx_res_release(&res);
	if ((r = pl_gx_run(x, json_object_get(st, "ps"), 60000, &res, errmsg)) != 0)
		goto failed;
	if (res.code != 0 || pl_gx_services_down(res.out ? res.out : "", &why)) {
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
	pl_gx_res_release(&res);
	free(why);
	return r;
failed:
	pl_gx_res_release(&res);
	free(why);
	if (snapname[0] && rollback) {
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
	json_t *names, *stacks = NULL, *live = NULL, *rec = NULL, *plan = NULL, *results, *st;
	char *err = NULL;
	long long timeout = 0, wait = 0;
	size_t i;
	int r, failed = 0, changed = 0;

	if ((r = pl_args_parse(&a, &pl_cmd_deploy, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if (pl_args_num(&a, O_TIMEOUT, 1, 86400, &timeout) != 0 ||
	    pl_args_num(&a, O_WAIT, 0, 3600, &wait) != 0)
		return PL_EXIT_USAGE;
	names = json_array(); /* after the usage errors, which return */
	results = json_array();
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
		struct pl_gx x = { .s = &s };
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
		r = pl_gx_open(&s, gcfg, st, transport, (int)wait * 1000, &x, &transport, &err);
		json_object_set_new(report, "transport", json_string(transport));
		if (r == 0) {
			if (pl_chatty(ctx) && ctx->output == PL_OUT_TEXT)
				fprintf(stderr, "deploying stack %s to %s (%s)...\n",
					pl_json_str(st, "name"), pl_json_str(st, "guest"),
					transport);
			r = deploy_one(ctx, &s, &x, st, entry, pl_args_has(&a, O_ROLLBACK),
				       (int)timeout * 1000, report, &err);
		}
		pl_gx_close(&x);
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
		 "[--wait SECS] [GUEST...]",
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
