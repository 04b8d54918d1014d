/*
 * `pvelab apply [PLAN.json]`: carry out a plan (a fresh one, or a saved one
 * if the cluster has not changed since), in parallel, snapshotting each guest
 * before changing it; the run is recorded as it goes for `pvelab rollback
 * RUN`. One apply per cluster at a time (cmd/guard.c); Ctrl-C stops it safely.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/guard.h"
#include "cmd/planning.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "plan/apply.h"
#include "plan/plan.h"
#include "plan/runs.h"

#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "jobs", 'j', "N", "changes in flight at once (default 4)" },
	{ "reboot", 0, NULL, "reboot guests whose changes stay pending until a reboot" },
	{ "allow-replace", 0, NULL, "carry out changes that recreate a guest" },
	{ "yes", 'y', NULL, "do not ask for confirmation" },
	{ "no-snapshot", 0, NULL, "do not snapshot guests before changing them" },
	{ "profile", 'p', "NAME", "only the guests of this profile" },
	{ NULL, 0, NULL, NULL },
};

enum { O_JOBS, O_REBOOT, O_REPLACE, O_YES, O_NOSNAP, O_PROFILE };

struct progress {
	const struct pl_ctx *ctx;
	struct pl_state *state;
	long long run_id;
	const json_t *plan;
	bool show;
	bool live;       /* redraw a status line (stderr is a terminal) */
	json_t *running; /* guest -> current step */
};

/* The status line: how far, and what each change in flight is doing. */
static void
draw_status(struct progress *p, const struct pl_apply_event *ev)
{
	struct pl_buf line;
	const char *k;
	json_t *v;

	pl_buf_init(&line, 4096);
	pl_buf_addf(&line, "  [%zu/%zu]", ev->finished, ev->total);
	json_object_foreach(p->running, k, v) {
		if (line.len > 110) {
			pl_buf_addstr(&line, " ...");
			break;
		}
		pl_buf_addf(&line, " %s:%s", k, json_string_value(v));
	}
	fprintf(stderr, "\r\033[K%s", line.data);
	fflush(stderr);
	pl_buf_release(&line);
}

static void
on_progress(const struct pl_apply_event *ev, void *arg)
{
	struct progress *p = arg;
	bool finished = ev->error || (ev->done && !strcmp(ev->step, "done"));

	if (!p->show)
		return;
	if (p->live)
		fputs("\r\033[K", stderr);
	if (finished || ev->stopped)
		json_object_del(p->running, ev->guest);
	else if (!ev->done)
		json_object_set_new(p->running, ev->guest, json_string(ev->step));
	if (ev->error)
		fprintf(stderr, "  %sfailed%s %s (%s): %s\n", pl_color(p->ctx, PL_C_RED),
			pl_color(p->ctx, PL_C_RESET), ev->guest, ev->action, ev->error);
	else if (ev->stopped)
		fprintf(stderr, "  %sstopped%s %s (%s)  [%zu/%zu]\n", pl_color(p->ctx, PL_C_YELLOW),
			pl_color(p->ctx, PL_C_RESET), ev->guest, ev->action, ev->finished, ev->total);
	else if (finished)
		fprintf(stderr, "  %sdone%s   %s (%s)  [%zu/%zu]\n", pl_color(p->ctx, PL_C_GREEN),
			pl_color(p->ctx, PL_C_RESET), ev->guest, ev->action, ev->finished, ev->total);
	else if (!ev->done && !p->live)
		fprintf(stderr, "  ...    %s: %s\n", ev->guest, ev->step);
	if (p->live && json_object_size(p->running))
		draw_status(p, ev);
}

/* The run's result so far into its row, as each change ends or takes a step
 * a rollback needs to know about (a snapshot, a created guest). */
static void
on_record(const json_t *change, const json_t *result, void *arg)
{
	struct progress *p = arg;
	json_t *copy = json_copy((json_t *)result);
	char *err = NULL;

	(void)change;
	json_object_set_new(copy, "run", json_integer(p->run_id));
	json_object_set(copy, "plan_summary", json_object_get(p->plan, "summary"));
	if (pl_runs_update(p->state, p->run_id, copy, &err) != 0) {
		pl_warn(p->ctx, "%s", err);
		free(err);
	}
	json_decref(copy);
}

static json_t *
load_plan(const char *path, char **err)
{
	struct pl_buf b;
	json_t *plan;

	pl_buf_init(&b, 256 << 20);
	if (pl_file_read(path, &b, err) != 0) {
		pl_buf_release(&b);
		return NULL;
	}
	plan = pl_json_parse(b.data, b.len, err);
	pl_buf_release(&b);
	if (plan && pl_json_int(plan, "version", 0) != 1) {
		json_decref(plan);
		plan = NULL;
		pl_seterr(err, PL_EINVAL, "'%s' is not a pvelab plan (pvelab plan --out FILE makes one)", path);
	}
	return plan;
}

static void
print_result(const struct pl_ctx *ctx, const json_t *res, long long run)
{
	const json_t *c;
	char *me = pl_cmd_invocation(ctx);
	bool stopped = json_is_true(json_object_get(res, "stopped"));
	size_t i;

	if (pl_json_int(res, "failed", 0) == 0 && !stopped) {
		printf("%sApply complete%s (run %lld): %lld change%s done.\n", pl_color(ctx, PL_C_GREEN),
		       pl_color(ctx, PL_C_RESET), run, pl_json_int(res, "ok", 0),
		       pl_json_int(res, "ok", 0) == 1 ? "" : "s");
		free(me);
		return;
	}
	if (stopped)
		printf("%sApply interrupted%s (run %lld): %lld done, %lld failed, %lld interrupted, "
		       "%lld abandoned, %lld not started.\n", pl_color(ctx, PL_C_YELLOW),
		       pl_color(ctx, PL_C_RESET), run, pl_json_int(res, "ok", 0),
		       pl_json_int(res, "failed", 0), pl_json_int(res, "interrupted", 0),
		       pl_json_int(res, "abandoned", 0), pl_json_int(res, "skipped", 0));
	else
		printf("%sApply failed%s (run %lld): %lld done, %lld failed, %lld not started.\n",
		       pl_color(ctx, PL_C_RED), pl_color(ctx, PL_C_RESET), run, pl_json_int(res, "ok", 0),
		       pl_json_int(res, "failed", 0), pl_json_int(res, "skipped", 0));
	json_array_foreach(json_object_get(res, "changes"), i, c) {
		const char *st = pl_json_str_or(c, "status", "?");

		printf("  %-11s %s %s", st, pl_json_str_or(c, "action", "?"), pl_json_str_or(c, "guest", "?"));
		if (pl_json_str(c, "error"))
			printf(": %s", pl_json_str(c, "error"));
		else if (!strcmp(st, "abandoned"))
			printf(": %s still running in Proxmox%s%s", pl_json_str_or(c, "step", "?"),
			       pl_json_str(c, "upid") ? " as " : "", pl_json_str_or(c, "upid", ""));
		else if (!strcmp(st, "interrupted") && json_array_size(json_object_get(c, "done")))
			printf(" (stopped after %s)",
			       json_string_value(json_array_get(json_object_get(c, "done"),
								json_array_size(json_object_get(c, "done")) - 1)));
		printf("\n");
	}
	if (stopped)
		printf("To finish: %s apply (%s plan shows what is left).\nTo undo: %s rollback %lld.\n",
		       me, me, me, run);
	else
		printf("Run %s plan to see what is left; %s rollback %lld restores the guests "
		       "this run changed.\n", me, me, run);
	free(me);
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_plan_opts po = { 0 };
	struct pl_apply_opts ao = { .jobs = 4, .snapshot = true };
	struct progress prog = { .ctx = ctx };
	struct pl_guard guard = { 0 };
	struct pl_session s;
	struct pl_args a;
	bool yes = false;
	long long jobs, run_id = 0;
	json_t *snap = NULL, *plan = NULL, *saved = NULL, *result = NULL;
	char *err = NULL;
	int r, rc = PL_EXIT_ERROR;

	pl_args_init(&a, &pl_cmd_apply, ctx, argc, argv);
	while ((r = pl_args_next(&a)) >= 0) {
		switch (r) {
		case O_JOBS:
			if ((r = pl_args_int(&a, 1, 64, &jobs)) != 0)
				goto usage;
			ao.jobs = (int)jobs;
			break;
		case O_REBOOT: po.reboot = ao.reboot = true; break;
		case O_REPLACE: po.allow_replace = ao.allow_replace = true; break;
		case O_YES: yes = true; break;
		case O_NOSNAP: ao.snapshot = false; break;
		case O_PROFILE: po.profile = a.value; break;
		}
	}
usage:
	if (r != PL_ARGS_END || a.npos > 1) {
		pl_args_release(&a);
		return r != PL_ARGS_END ? pl_args_exit(r) : pl_usage_error(&pl_cmd_apply, "takes at most one plan file");
	}
	if (a.npos && (saved = load_plan(a.pos[0], &err)) == NULL) {
		pl_error("%s", err);
		free(err);
		pl_args_release(&a);
		return PL_EXIT_ERROR;
	}
	if (saved) { /* the saved plan's options are the ones it was made with */
		const json_t *so = json_object_get(saved, "options");

		po.allow_replace = ao.allow_replace = json_is_true(json_object_get(so, "allow_replace"));
		po.reboot = ao.reboot = json_is_true(json_object_get(so, "reboot"));
		po.profile = pl_json_str(so, "profile");
	}
	if (pl_planning_open(&s, ctx, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	/* before planning: a second apply must not plan against half-made guests */
	if (pl_guard_take(&guard, &s, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (saved && json_is_integer(json_object_get(saved, "after_run"))) {
		long long newest = 0;
		const char *kind = NULL;

		if (pl_runs_newest(s.state, &newest, &kind, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
		if (newest > pl_json_int(saved, "after_run", 0)) {
			pl_error("another %s (run %lld) ran since '%s' was made; run pvelab plan again",
				 kind, newest, a.pos[0]);
			goto out;
		}
	}
	if (pl_planning_build(&s, &po, &snap, &plan, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (saved) {
		char *why = pl_plan_stale(saved, plan);

		if (why) {
			pl_error("the cluster changed since '%s' was made (%s); refusing to apply a "
				 "stale plan (run pvelab plan again)", a.pos[0], why);
			free(why);
			goto out;
		}
		json_decref(plan);
		plan = json_incref(saved);
	}
	if (json_array_size(json_object_get(plan, "blocked"))) {
		pl_planning_print(ctx, plan);
		pl_error("the plan has blocked changes (above); nothing was done");
		goto out;
	}
	if (!pl_plan_has_changes(plan)) {
		if (ctx->output == PL_OUT_JSON)
			pl_print_json(json_pack("{s:i,s:i,s:i,s:[]}", "ok", 0, "failed", 0, "skipped", 0, "changes"));
		else
			pl_planning_print(ctx, plan);
		rc = PL_EXIT_OK;
		goto out;
	}
	if (ctx->output != PL_OUT_JSON)
		pl_planning_print(ctx, plan);
	fflush(stdout); /* the plan before any progress on stderr (CI logs mix them) */
	if (!yes) {
		if (!isatty(STDIN_FILENO)) {
			pl_error("refusing to apply without --yes when not on a terminal");
			rc = PL_EXIT_USAGE;
			goto out;
		}
		if (!pl_confirm("Apply these changes?")) {
			pl_error("apply cancelled; nothing was done");
			goto out;
		}
	}
	pl_guard_arm(&guard); /* from here a signal stops the run instead of the process */
	if (pl_runs_begin(s.state, "apply", &run_id, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	ao.run_id = run_id;
	ao.progress = on_progress;
	ao.record = on_record;
	ao.stop = &guard.stop;
	ao.arg = &prog;
	prog.state = s.state;
	prog.run_id = run_id;
	prog.plan = plan;
	prog.live = isatty(STDERR_FILENO) && ctx->verbosity >= 0;
	prog.show = ctx->output != PL_OUT_JSON && ctx->verbosity >= 0 && (prog.live || ctx->verbosity > 0);
	prog.running = json_object();
	r = pl_apply_run(s.base, s.pve, plan, &ao, &result);
	/* the run has ended: a signal now only waits for it to be recorded */
	pl_guard_over(&guard);
	if (prog.live)
		fputs("\r\033[K", stderr);
	json_decref(prog.running);
	json_object_set_new(result, "run", json_integer(run_id));
	json_object_set(result, "plan_summary", json_object_get(plan, "summary"));
	if (pl_runs_finish(s.state, run_id,
			   json_is_true(json_object_get(result, "stopped")) ? "interrupted"
			   : r == 0 ? "ok" : "failed", result, &err) != 0)
		pl_warn(ctx, "%s", err);
	/* record what the cluster looks like now (history rows for this apply);
	 * after a second signal the user wants out, and tasks are still running */
	json_decref(snap);
	snap = NULL;
	free(err);
	err = NULL;
	if (guard.stop < PL_APPLY_ABANDON &&
	    pl_cmd_sync_now(&s, false, false, NULL, NULL, NULL, &err) != 0)
		pl_warn(ctx, "applied, but the refresh afterwards failed: %s", err);
	if (ctx->output == PL_OUT_JSON)
		pl_print_json(json_incref(result));
	else
		print_result(ctx, result, run_id);
	fflush(stdout);
	rc = pl_guard_exit(&guard, r == 0 ? PL_EXIT_OK : PL_EXIT_ERROR);
out:
	pl_guard_release(&guard);
	free(err);
	json_decref(snap);
	json_decref(plan);
	json_decref(saved);
	json_decref(result);
	pl_session_close(&s);
	pl_args_release(&a);
	return rc;
}

const struct pl_cmd pl_cmd_apply = {
	.name = "apply",
	.summary = "make the cluster match pvelab.yaml (or carry out a saved plan)",
	.usage = "[PLAN.json] [-j N] [--reboot] [--allow-replace] [--yes] [--no-snapshot]",
	.help = "Bridges first, then guests in parallel, deletions last. Each existing guest is\n"
		"snapshotted (pvelab-pre-RUN) before it changes; pvelab rollback RUN restores\n"
		"them. On a failure nothing new starts, running work finishes, and the result\n"
		"lists what was done and what was not. Without a terminal it needs --yes.\n"
		"\n"
		"One apply (or rollback, destroy) runs at a time per cluster: another one\n"
		"refuses at once, naming the pid, host and start of the one running. Ctrl-C\n"
		"(or SIGTERM) starts nothing new and lets each change in flight finish its\n"
		"current task, records the run as interrupted and exits 130 (143); a second\n"
		"Ctrl-C stops waiting (Proxmox goes on with the tasks). Run apply again to\n"
		"finish, or pvelab rollback RUN. A saved plan is refused once another apply\n"
		"ran after it was made.",
	.opts = opts,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
