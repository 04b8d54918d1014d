/*
 * `pvelab rollback RUN`: restore every guest an apply run changed to the
 * snapshot taken just before (pvelab-pre-RUN), and every guest it deleted or
 * replaced from the vzdump backup taken before the destroy (a replacement is
 * backed up and destroyed first); without RUN, list the runs.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/guard.h"
#include "cmd/planning.h"
#include "core/json.h"
#include "core/str.h"
#include "plan/apply.h"
#include "plan/runs.h"

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

	if (pl_runs_list(s->state, "apply", 20, &runs, &err) != 0) {
		pl_error("%s", err);
		free(err);
		return PL_EXIT_ERROR;
	}
	if (ctx->output == PL_OUT_JSON)
		return pl_print_json(runs);
	if (json_array_size(runs) == 0)
		printf("No apply runs recorded yet.\n");
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
		printf("\n");
	}
	json_decref(runs);
	return PL_EXIT_OK;
}

/* A deleted or replaced guest comes back from the backup the run took of it
 * before the destroy; a replacement the run created is destroyed first. */
static void
restore_change(json_t *changes, long long id, const json_t *c)
{
	bool replace = !strcmp(pl_json_str_or(c, "action", ""), "replace");
	const char *backup = pl_json_str(c, "backup");
	json_t *r;

	if (!json_is_true(json_object_get(c, "destroyed"))) {
		if (replace && json_is_true(json_object_get(c, "created")))
			printf("note: run %lld created %s (%lld) but kept the guest it replaces; "
			       "pvelab destroy %lld removes the new one\n", id, pl_json_str_or(c, "guest", "?"),
			       pl_json_int(c, "vmid", 0), pl_json_int(c, "vmid", 0));
		return;
	}
	if (backup == NULL) {
		printf("note: run %lld destroyed %s (%lld) without a backup%s: it cannot be restored\n", id,
		       pl_json_str_or(c, "guest", "?"), pl_json_int(c, replace ? "old_vmid" : "vmid", 0),
		       json_is_true(json_object_get(c, "no_backup")) ? " (--no-backup)" : "");
		return;
	}
	r = json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s,s:s?,s:b}", "action", "restore", "guest",
		      pl_json_str_or(c, "guest", ""), "type",
		      pl_json_str_or(c, replace ? "from_type" : "type", "qemu"), "vmid",
		      (json_int_t)pl_json_int(c, replace ? "old_vmid" : "vmid", 0), "node",
		      pl_json_str(c, replace ? "old_node" : "node"), "archive", backup, "backup_storage",
		      pl_json_str(c, "backup_storage"), "running",
		      json_is_true(json_object_get(c, "was_running")));
	if (replace && json_is_true(json_object_get(c, "created"))) {
		json_object_set_new(r, "old_vmid", json_integer(pl_json_int(c, "vmid", 0)));
		json_object_set_new(r, "from_type", json_string(pl_json_str_or(c, "type", "qemu")));
		json_object_set_new(r, "old_node", json_string(pl_json_str_or(c, "node", "")));
	}
	json_array_append_new(changes, r);
}

/* A changed guest whose way back was a backup (it could not be
 * snapshotted) comes back from that archive, restored over it where it is
 * now (force=1): its state now is backed up first. */
static void
overwrite_change(json_t *changes, const json_t *c)
{
	json_t *r = json_pack(
		"{s:s,s:s,s:s,s:I,s:s?,s:s,s:s?,s:b,s:b}", "action", "restore", "guest",
		pl_json_str_or(c, "guest", ""), "type", pl_json_str_or(c, "type", "qemu"), "vmid",
		(json_int_t)pl_json_int(c, "vmid", 0), "node", pl_json_str(c, "node"), "archive",
		pl_json_str(c, "backup"), "backup_storage", pl_json_str(c, "backup_storage"),
		"running", json_is_true(json_object_get(c, "was_running")), "overwrite", 1);

	json_array_append_new(changes, r);
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
	json_t *runrec = NULL, *plan = NULL, *result = NULL, *changes, *owned = NULL;
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
	    strcmp(pl_json_str_or(runrec, "kind", ""), "destroy") != 0) {
		pl_error("run %lld is a %s, not an apply or a destroy", id, pl_json_str_or(runrec, "kind", "?"));
		goto out;
	}
	plan = json_pack("{s:i,s:[]}", "version", 1, "changes");
	changes = json_object_get(plan, "changes");
	json_array_foreach(json_object_get(json_object_get(runrec, "result"), "changes"), i, c) {
		const char *action = pl_json_str_or(c, "action", "");

		const char *st = pl_json_str_or(c, "status", "");

		/* a snapshot is named once taken (runs before issue 15 named it
		 * when asked for: their "skipped" changes took none) */
		if (pl_json_str(c, "snapshot") && strcmp(st, "skipped") && strcmp(st, "not started"))
			json_array_append_new(changes, json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s,s:b}", "action", "rollback",
								 "guest", pl_json_str_or(c, "guest", ""), "type",
								 pl_json_str_or(c, "type", "qemu"), "vmid",
								 (json_int_t)pl_json_int(c, "vmid", 0), "node",
								 pl_json_str(c, "node"), "snapshot", pl_json_str(c, "snapshot"),
								 "running", json_is_true(json_object_get(c, "was_running"))));
		else if (!strcmp(action, "delete") || !strcmp(action, "replace"))
			restore_change(changes, id, c);
		else if (!strcmp(action, "update") && pl_json_str(c, "backup") &&
			 strcmp(st, "not started"))
			overwrite_change(changes, c);
		else if (json_is_true(json_object_get(c, "created")) ||
			 (!strcmp(action, "create") && !strcmp(st, "ok")))
			printf("note: run %lld created %s (%lld); pvelab destroy %lld removes it\n", id,
			       pl_json_str_or(c, "guest", "?"), pl_json_int(c, "vmid", 0), pl_json_int(c, "vmid", 0));
	}
	if (json_array_size(changes) == 0) {
		printf("Run %lld changed no existing guest: nothing to roll back.\n", id);
		rc = PL_EXIT_OK;
		goto out;
	}
	if (!strcmp(pl_json_str_or(runrec, "status", ""), "interrupted"))
		printf("Run %lld was interrupted; rolling back what it recorded.\n", id);
	json_array_foreach(changes, i, c) {
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
	owned = json_object();
	json_array_foreach(changes, i, c) {
		char key[32];

		snprintf(key, sizeof(key), "%lld", pl_json_int(c, "vmid", 0));
		json_object_set_new(owned, key, json_true());
		if (json_object_get(c, "old_vmid")) {
			snprintf(key, sizeof(key), "%lld", pl_json_int(c, "old_vmid", 0));
			json_object_set_new(owned, key, json_true());
		}
	}
	ao.owned = owned;
	pl_guard_arm(&guard);
	r = pl_apply_run(s.base, s.pve, plan, &ao, &result);
	pl_guard_over(&guard);
	pl_runs_finish(s.state, rb_id, json_is_true(json_object_get(result, "stopped")) ? "interrupted"
				       : r == 0 ? "ok" : "failed", result, NULL);
	if (guard.stop < PL_APPLY_ABANDON)
		pl_cmd_sync_now(&s, false, false, NULL, NULL, NULL, NULL);
	json_array_foreach(json_object_get(result, "changes"), i, c)
		if (pl_json_str(c, "error"))
			pl_error("%s: %s", pl_json_str(c, "guest"), pl_json_str(c, "error"));
	if (ctx->output == PL_OUT_JSON)
		pl_print_json(json_incref(result));
	else if (ctx->verbosity >= 0)
		printf("Rolled back %lld guest%s to the state before run %lld.\n", pl_json_int(result, "ok", 0),
		       pl_json_int(result, "ok", 0) == 1 ? "" : "s", id);
	rc = pl_guard_exit(&guard, r == 0 ? PL_EXIT_OK : PL_EXIT_ERROR);
out:
	pl_guard_release(&guard);
	free(err);
	json_decref(runrec);
	json_decref(owned);
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
		"for a run that was interrupted or killed: what it recorded as it went is what\n"
		"is rolled back. Guests an apply or destroy run deleted or replaced come back\n"
		"from the vzdump backup taken before the destroy (POST /nodes/N/qemu archive=,\n"
		"/nodes/N/lxc ostemplate= restore=1) under their old vmid and type; a\n"
		"replacement the run created is backed up and destroyed first. A changed guest\n"
		"that could not be snapshotted (a bind mount, a storage without snapshots) was\n"
		"backed up instead: it is restored from that archive only with --overwrite (or\n"
		"a second yes on a terminal), after a backup of its state now; bind and device\n"
		"mounts are in no backup and stay as they are. Guests the run created are\n"
		"named (pvelab destroy removes them). What will be done is shown before\n"
		"asking. Like apply, it refuses while another apply runs on the cluster.",
	.opts = opts,
	.max_args = 1,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
