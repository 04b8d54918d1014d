/*
 * `pvelab rollback RUN`: restore every guest an apply run changed to the
 * snapshot taken just before (pvelab-pre-RUN), and every guest it deleted or
 * replaced from the vzdump backup taken before the destroy (a replacement is
 * backed up and destroyed first), and every firewall scope it changed to the
 * state it found; without RUN, list the runs.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/deploy.h"
#include "cmd/guard.h"
#include "cmd/planning.h"
#include "core/json.h"
#include "core/str.h"
#include "plan/apply.h"
#include "plan/firewall.h"
#include "plan/runs.h"
#include "plan/rollback_check.h"
#include "state/state.h"

#include <event2/event.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "yes", 'y', NULL, "do not ask for confirmation" },
	{ "overwrite", 0, NULL,
	  "restore changed guests whose way back was a backup (overwrites them)" },
	{ NULL, 0, NULL, NULL },
};

static int
list_runs(struct pl_ctx *ctx, struct pl_session *s)
{
	json_t *runs = NULL, *r;
	char *err = NULL;
	size_t i;

	if (pl_runs_list(s->state, NULL, 40, &runs, &err) != 0) {
		pl_error("%s", err);
		free(err);
		return PL_EXIT_ERROR;
	}
	if (json_array_size(runs) == 0)
		printf("No apply runs recorded yet.\n");
	/* the runs rollback takes back: applies and deploys */
	for (i = json_array_size(runs); i-- > 0;) {
		const char *kind = pl_json_str_or(json_array_get(runs, i), "kind", "");

		if (strcmp(kind, "apply") && strcmp(kind, "deploy"))
			json_array_remove(runs, i);
	}
	if (ctx->output == PL_OUT_JSON)
		return pl_print_json(runs);
	json_array_foreach(runs, i, r) {
		time_t t = (time_t)pl_json_num(r, "started", 0);
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
		const json_t *res = json_object_get(r, "result");

		printf("run %-5lld %s  %-11s %lld ok, %lld failed", pl_json_int(r, "id", 0), when,
		       pl_json_str_or(r, "status", "?"), pl_json_int(res, "ok", 0),
		       pl_json_int(res, "failed", 0));
		if (!strcmp(pl_json_str_or(r, "status", ""), "interrupted"))
			printf(", %lld interrupted, %lld abandoned, %lld not started",
			       pl_json_int(res, "interrupted", 0), pl_json_int(res, "abandoned", 0),
			       pl_json_int(res, "skipped", 0));
		if (!strcmp(pl_json_str_or(r, "kind", ""), "deploy"))
			printf("  (deploy of stacks)");
		printf("\n");
	}
	json_decref(runs);
	return PL_EXIT_OK;
}

/* The firewall scopes the run changed, put back as it found them: read
 * as they are now, each one that is not as the run left it is refused
 * (printed, and added to refused: {"guest","key","reason"}), the others
 * become undo changes. */
static int
firewall_back(struct pl_session *s, long long id, const json_t *res, json_t *changes,
	      json_t *refused, char **errmsg)
{
	json_t *scopes = json_array(), *snap = json_object(), *uses = json_object();
	const json_t *c, *h;
	size_t i;
	int r;

	json_array_foreach(json_object_get(res, "changes"), i, c)
		if ((h = json_object_get(c, "history")) &&
		    !json_equal(json_object_get(h, "before"), json_object_get(h, "after")))
			json_array_append(scopes, (json_t *)h);
	if (json_array_size(scopes) && (r = pl_fw_fetch_scopes(s->pve, scopes, snap, errmsg)) != 0)
		goto out;
	/* the cluster's last: what the scopes left alone use of it stays */
	for (int cluster = 0; cluster < 2; cluster++)
		json_array_foreach(scopes, i, h) {
			char *why = NULL;
			json_t *u, *paths;

			if (cluster != !strcmp(pl_json_str_or(h, "scope", ""), "cluster"))
				continue;
			u = pl_fw_undo(h, json_object_get(snap, "firewall"), uses, &why);
			if (u)
				json_array_append_new(changes, u);
			if (why == NULL)
				continue;
			pl_error("the firewall of %s is not rolled back: %s (pvelab history %s "
				 "shows what run %lld changed)",
				 pl_json_str_or(h, "guest", "?"), why,
				 pl_json_str_or(h, "key", "?"), id);
			paths = pl_fw_scope_paths(h); /* [options, rules, ...] */
			pl_fw_uses(json_object_get(json_object_get(snap, "firewall"),
						   json_string_value(json_array_get(paths, 1))),
				   pl_json_str_or(h, "guest", "?"), uses);
			json_decref(paths);
			json_array_append_new(
				refused,
				json_pack("{s:s,s:s,s:s}", "guest", pl_json_str_or(h, "guest", "?"),
					  "key", pl_json_str_or(h, "key", "?"), "reason", why));
			free(why);
		}
	r = 0;
out:
	json_decref(scopes);
	json_decref(snap);
	json_decref(uses);
	return r;
}

struct checked {
	bool done;
	int err;
	char *errmsg;
	json_t *blocked;
};

static void
on_checked(int err, const json_t *blocked, const char *errmsg, void *arg)
{
	struct checked *k = arg;

	k->done = true;
	k->err = err;
	k->errmsg = errmsg ? pl_strdup(errmsg) : NULL;
	json_array_extend(k->blocked, (json_t *)blocked);
}

/* Ask the cluster, before any guest is touched, whether each snapshot
 * rollback of plan can happen (plan/rollback_check.h): what cannot is added
 * to blocked as {guest, reason}. */
static int
snapshots_back(struct pl_session *s, const json_t *plan, json_t *blocked, char **errmsg)
{
	struct checked k = { .blocked = blocked };
	json_t *storages = NULL;
	int r;

	if ((r = pl_state_storages(s->state, &storages, errmsg)) != 0)
		return r;
	pl_rollback_check_start(s->pve, plan, storages, on_checked, &k);
	while (!k.done)
		if (event_base_loop(s->base, EVLOOP_ONCE) != 0)
			pl_die("rollback: the event loop failed");
	json_decref(storages);
	if (k.err)
		r = pl_seterr(errmsg, k.err, "%s", k.errmsg);
	free(k.errmsg);
	return r;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_apply_opts ao = { .jobs = 4 };
	struct pl_guard guard = { 0 };
	struct pl_session s;
	struct pl_args a;
	long long id, rb_id = 0;
	bool yes = false, overwrite;
	size_t noverwrite = 0;
	json_t *refused, *runrec = NULL, *plan = NULL, *result = NULL, *changes, *owned = NULL,
			 *notes = NULL, *blocked = NULL;
	const json_t *c;
	char *err = NULL;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_rollback, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	yes = pl_args_has(&a, 0);
	overwrite = pl_args_has(&a, 1);
	if (a.npos && pl_str_to_ll(a.pos[0], 1, LLONG_MAX, &id) != 0)
		return pl_usage_error(&pl_cmd_rollback, "'%s' is not a run id (pvelab rollback lists them)", a.pos[0]);
	refused = json_array(); /* after the usage errors, which return */
	blocked = json_array();
	r = pl_session_open(&s, ctx, a.npos ? PL_NEED_API | PL_NEED_STATE : PL_NEED_STATE_RO, &err);
	if (r != 0) {
		if (a.npos == 0 && r == PL_ENOENT && s.state == NULL && ctx->output != PL_OUT_JSON) {
			/* nothing was ever applied from here */
			printf("No apply runs recorded yet.\n");
			rc = PL_EXIT_OK;
			goto out;
		}
		pl_error("%s", err);
		goto out;
	}
	if (a.npos == 0) {
		rc = list_runs(ctx, &s);
		goto out;
	}
	if (pl_guard_take(&guard, &s, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (pl_runs_get(s.state, id, &runrec, &err) != 0) {
		pl_error("%s (pvelab rollback lists the runs)", err);
		goto out;
	}
	if (strcmp(pl_json_str_or(runrec, "kind", ""), "apply") != 0 &&
	    strcmp(pl_json_str_or(runrec, "kind", ""), "destroy") != 0 &&
	    strcmp(pl_json_str_or(runrec, "kind", ""), "deploy") != 0) {
		pl_error("run %lld is a %s, not an apply, a deploy or a destroy", id,
			 pl_json_str_or(runrec, "kind", "?"));
		goto out;
	}
	notes = json_array();
	plan = pl_runs_rollback_plan(runrec, notes);
	changes = json_object_get(plan, "changes");
	json_array_foreach(notes, i, c)
		printf("note: %s\n", json_string_value(c));
	if (firewall_back(&s, id, json_object_get(runrec, "result"), changes, refused, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (snapshots_back(&s, plan, blocked, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (json_array_size(blocked)) { /* all or nothing: no guest is half-way back */
		json_array_foreach(blocked, i, c)
			pl_error("rollback of %s: %s", pl_json_str(c, "guest"),
				 pl_json_str(c, "reason"));
		pl_error("rollback of run %lld refused; nothing was done", id);
		goto out;
	}
	if (json_array_size(changes) == 0) {
		if (json_array_size(refused) == 0)
			printf("Run %lld changed no existing guest: nothing to roll back.\n", id);
		rc = json_array_size(refused) ? PL_EXIT_ERROR : PL_EXIT_OK;
		goto out;
	}
	if (!strcmp(pl_json_str_or(runrec, "status", ""), "interrupted"))
		printf("Run %lld was interrupted; rolling back what it recorded.\n", id);
	json_array_foreach(changes, i, c) {
		const json_t *d;
		size_t k;

		if (!strcmp(pl_json_str_or(c, "action", ""), "firewall")) {
			printf("  <   firewall of %s (%s) back to before run %lld\n",
			       pl_json_str(c, "guest"), pl_json_str_or(c, "what", "?"), id);
			json_array_foreach(json_object_get(c, "diffs"), k, d)
				printf("        %s: %s -> %s\n", pl_json_str_or(d, "key", "?"),
				       pl_json_str_or(d, "from", "(none)"),
				       pl_json_str_or(d, "to", "(none)"));
			continue;
		}
		if (pl_json_str(c, "snapshot")) {
			printf("  <   rollback %s (%s %lld) to %s\n", pl_json_str(c, "guest"), pl_json_str(c, "type"),
			       pl_json_int(c, "vmid", 0), pl_json_str(c, "snapshot"));
			continue;
		}
		if (json_is_true(json_object_get(c, "overwrite"))) {
			printf("  !   overwrite %s (%s %lld) on %s from %s (backed up first; "
			       "bind and device mounts are in no backup and stay as they are; "
			       "container volumes without backup=1 come back empty)\n",
			       pl_json_str(c, "guest"), pl_json_str(c, "type"),
			       pl_json_int(c, "vmid", 0), pl_json_str_or(c, "node", "?"),
			       pl_json_str(c, "archive"));
			noverwrite++;
			continue;
		}
		if (json_object_get(c, "old_vmid"))
			printf("  -   destroy %s (%s %lld), the guest that replaced it (backed up first)\n",
			       pl_json_str(c, "guest"), pl_json_str(c, "from_type"), pl_json_int(c, "old_vmid", 0));
		printf("  +   restore %s (%s %lld) on %s from %s\n", pl_json_str(c, "guest"), pl_json_str(c, "type"),
		       pl_json_int(c, "vmid", 0), pl_json_str_or(c, "node", "?"), pl_json_str(c, "archive"));
	}
	/* a restore over a guest loses what it wrote since: asked for apart */
	if (noverwrite && !overwrite && !isatty(STDIN_FILENO)) {
		pl_error("rollback of run %lld overwrites %zu guest%s from %s backup%s; "
			 "nothing was done (pass --overwrite to confirm)",
			 id, noverwrite, noverwrite == 1 ? "" : "s",
			 noverwrite == 1 ? "its" : "their", noverwrite == 1 ? "" : "s");
		rc = PL_EXIT_USAGE;
		goto out;
	}
	if (noverwrite && !overwrite &&
	    !pl_confirm("Overwrite the guests marked '!' from their backups? What they wrote since "
			"is lost")) {
		pl_error("rollback cancelled; nothing was done");
		goto out;
	}
	if (!yes && (!isatty(STDIN_FILENO) || !pl_confirm("Roll these guests back?"))) {
		pl_error("rollback %s; nothing was done", isatty(STDIN_FILENO) ? "cancelled" : "needs --yes when not on a terminal");
		rc = isatty(STDIN_FILENO) ? PL_EXIT_ERROR : PL_EXIT_USAGE;
		goto out;
	}
	fflush(stdout);
	pl_runs_begin(s.state, "rollback", &rb_id, NULL);
	ao.stop = &guard.stop;
	/* Its changes come from this store's record of the run, not from a
	 * file: the guests that run touched are the ones it may touch again. */
	owned = pl_runs_rollback_owned(plan);
	ao.owned = owned;
	pl_guard_arm(&guard);
	r = pl_apply_run(s.base, s.pve, plan, &ao, &result);
	pl_guard_over(&guard);
	pl_runs_finish(s.state, rb_id, json_is_true(json_object_get(result, "stopped")) ? "interrupted"
				       : r == 0 ? "ok" : "failed", result, NULL);
	if (pl_deploy_records_back(s.state, json_object_get(runrec, "result"), result, &err) != 0) {
		pl_error("%s", err);
		free(err);
		err = NULL;
	}
	if (guard.stop < PL_APPLY_ABANDON)
		pl_cmd_sync_now(&s, false, false, NULL, NULL, NULL, NULL);
	json_array_foreach(json_object_get(result, "changes"), i, c)
		if (pl_json_str(c, "error"))
			pl_error("%s: %s", pl_json_str(c, "guest"), pl_json_str(c, "error"));
	json_object_set(result, "refused", refused);
	if (ctx->output == PL_OUT_JSON)
		pl_print_json(json_incref(result));
	else if (ctx->verbosity >= 0)
		printf("Rolled back %lld change%s to the state before run %lld.\n",
		       pl_json_int(result, "ok", 0), pl_json_int(result, "ok", 0) == 1 ? "" : "s",
		       id);
	rc = pl_guard_exit(&guard,
			   r == 0 && json_array_size(refused) == 0 ? PL_EXIT_OK : PL_EXIT_ERROR);
out:
	pl_guard_release(&guard);
	free(err);
	json_decref(runrec);
	json_decref(refused);
	json_decref(blocked);
	json_decref(owned);
	json_decref(notes);
	json_decref(plan);
	json_decref(result);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_rollback = {
	.name = "rollback",
	.summary = "restore the guests an apply run changed, deleted or replaced (no RUN: list the "
		   "runs)",
	.usage = "[RUN] [--yes] [--overwrite]",
	.help = "Guests an apply run changed go back to their pvelab-pre-RUN snapshot, also\n"
		"those whose stacks it or a deploy run changed (their files and compose\n"
		"state as the snapshot has them; the stacks' records as before the run),\n"
		"for a run that was interrupted or killed: what it recorded as it went is what\n"
		"is rolled back. Guests an apply or destroy run deleted or replaced come back\n"
		"from the vzdump backup taken before the destroy (POST /nodes/N/qemu archive=,\n"
		"/nodes/N/lxc ostemplate= restore=1) under their old vmid and type; a\n"
		"replacement the run created is backed up and destroyed first. A changed guest\n"
		"that could not be snapshotted (a bind mount, a storage without snapshots) was\n"
		"backed up instead: it is restored from that archive only with --overwrite (or\n"
		"a second yes on a terminal), after a backup of its state now; bind and device\n"
		"mounts are in no backup and stay as they are. Guests the run created are\n"
		"named (pvelab destroy removes them). Each firewall scope the run changed\n"
		"goes back to the state apply read before its first write, unless it changed\n"
		"since the run: then it is refused and left alone, and the exit code is 1\n"
		"(docs/firewall.md). Before anything is done, each snapshot is checked on its\n"
		"node: ZFS rolls a volume back only to its newest snapshot, so a snapshot taken\n"
		"after the run's on a guest with a ZFS volume refuses the whole rollback (no\n"
		"guest goes back, none is half-way), naming what to delete. What will be done\n"
		"is shown before asking. Like apply, it refuses while another apply runs on\n"
		"the cluster.",
	.opts = opts,
	.max_args = 1,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
