/*
 * `pvelab plan`: refresh the cluster, compare it with pvelab.yaml and show
 * every change with how it reaches the guest (live, at reboot, restart,
 * replace). --out saves the plan for `pvelab apply plan.json`.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/guard.h"
#include "cmd/planning.h"
#include "core/file.h"
#include "core/json.h"
#include "plan/plan.h"
#include "plan/runs.h"

static const struct pl_opt opts[] = {
	{ "out", 0, "FILE", "save the plan as JSON for pvelab apply FILE" },
	{ "detailed-exitcode", 0, NULL, "exit 2 when there are changes, 0 when none" },
	{ "reboot", 0, NULL, "plan to reboot guests whose changes stay pending" },
	{ "allow-replace", 0, NULL, "allow changes that recreate a guest" },
	{ "allow-delete", 0, NULL, "record in --out's plan that apply may delete guests" },
	{ "no-snapshot", 0, NULL, "plan for apply --no-snapshot (no snapshot steps)" },
	{ "no-backup", 0, NULL, "plan for apply --no-backup (no backup before a destroy)" },
	{ "profile", 'p', "NAME", "only the guests of this profile" },
	{ NULL, 0, NULL, NULL },
};

enum { O_OUT, O_DETAILED, O_REBOOT, O_REPLACE, O_DELETE, O_NOSNAP, O_NOBACKUP, O_PROFILE };

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_plan_opts po = { 0 };
	struct pl_session s;
	struct pl_args a;
	const char *out = NULL;
	bool detailed = false;
	json_t *snap = NULL, *plan = NULL;
	char *err = NULL;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_plan, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	out = pl_args_str(&a, O_OUT, NULL);
	detailed = pl_args_has(&a, O_DETAILED);
	po.reboot = pl_args_has(&a, O_REBOOT);
	po.allow_replace = pl_args_has(&a, O_REPLACE);
	po.allow_delete = pl_args_has(&a, O_DELETE);
	po.no_snapshot = pl_args_has(&a, O_NOSNAP);
	po.no_backup = pl_args_has(&a, O_NOBACKUP);
	po.profile = pl_args_str(&a, O_PROFILE, NULL);
	if (pl_planning_open(&s, ctx, &err) != 0 || pl_planning_build(&s, &po, &snap, &plan, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (out) {
		long long newest = 0;
		char *text;

		/* apply refuses the plan once another run changed guests after it */
		if (pl_runs_newest(s.state, &newest, NULL, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
		json_object_set_new(plan, "after_run", json_integer(newest));
		text = json_dumps(plan, JSON_INDENT(2) | JSON_SORT_KEYS);

		r = pl_file_write_atomic(out, text, strlen(text), 0600, &err); /* names guests and hosts */
		free(text);
		if (r != 0) {
			pl_error("%s", err);
			goto out;
		}
	}
	if (ctx->output == PL_OUT_JSON)
		pl_print_json(json_incref(plan));
	else {
		pl_planning_print(ctx, plan);
		if (out) {
			char *me = pl_cmd_invocation(ctx), *word = pl_cmd_shell_word(out);

			printf("Saved the plan to '%s': %s apply %s\n", out, me, word);
			free(me);
			free(word);
		}
	}
	rc = detailed && pl_plan_has_changes(plan) ? PL_EXIT_CHANGES : PL_EXIT_OK;
out:
	free(err);
	json_decref(snap);
	json_decref(plan);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_plan = {
	.name = "plan",
	.summary = "show what apply would change, and how each change reaches the guest",
	.usage = "[--out FILE] [--detailed-exitcode] [--reboot] [--allow-replace] [--allow-delete] "
		 "[--no-snapshot] [--no-backup] [--profile NAME]",
	.help = "Each change lists the steps apply will run for it (snapshot, config, resize,\n"
		"reboot, backup, ...) under the same options: pass plan the --reboot,\n"
		"--allow-replace, --no-snapshot and --no-backup you will pass apply (a saved\n"
		"plan keeps them, but a backup is skipped only when apply itself says\n"
		"--no-backup). Each update shows its way back when it is not a snapshot: a\n"
		"vzdump backup first, with why Proxmox cannot snapshot the guest, or none\n"
		"(--no-snapshot). Clone sources are resolved now; an unknown clone.template, a\n"
		"move to a node without the guest's storage, and a disk shrink are blocked\n"
		"with the reason. Only guests of this config's project (project:, tag\n"
		"pvelab-<project>) are updated or deleted; guests of other projects and those\n"
		"pvelab made before projects are listed as managed elsewhere and never touched\n"
		"(pvelab adopt).",
	.opts = opts,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
