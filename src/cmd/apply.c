/*
 * `pvelab apply [PLAN.json]`: carry out a plan (a fresh one, or a saved one
 * if the cluster has not changed since), in parallel, snapshotting each guest
 * before changing it; the run is recorded as it goes for `pvelab rollback
 * RUN`. One apply per cluster at a time (cmd/guard.c); Ctrl-C stops it safely.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/deploy.h"
#include "cmd/guard.h"
#include "cmd/planning.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "config/config.h"
#include "plan/apply.h"
#include "plan/plan.h"
#include "plan/runs.h"
#include "plan/snappol.h"

#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "jobs", 'j', "N", "changes in flight at once (default 4)" },
	{ "reboot", 0, NULL, "reboot guests whose changes stay pending until a reboot" },
	{ "allow-replace", 0, NULL, "carry out changes that recreate a guest" },
	{ "allow-delete", 0, NULL, "carry out deletes (up to safety.max_deletes)" },
	{ "yes", 'y', NULL, "do not ask for confirmation" },
	{ "no-snapshot", 0, NULL, "do not snapshot guests before changing them" },
	{ "no-backup", 0, NULL, "destroy deleted and replaced guests without a vzdump backup" },
	{ "profile", 'p', "NAME", "only the guests of this profile" },
	{ "no-stacks", 0, NULL, "do not deploy the guests' stacks afterwards (pvelab deploy)" },
	{ "rollback-on-failure", 0, NULL,
	  "a stack whose deploy fails rolls its guest back to the snapshot taken before" },
	{ "verify", 0, NULL,
	  "afterwards, pvelab verify: guests reachable, services answering, stacks running" },
	{ NULL, 0, NULL, NULL },
};

enum {
	O_JOBS,
	O_REBOOT,
	O_REPLACE,
	O_DELETE,
	O_YES,
	O_NOSNAP,
	O_NOBACKUP,
	O_PROFILE,
	O_NOSTACKS,
	O_STACK_ROLLBACK,
	O_VERIFY
};

struct progress {
	const struct pl_ctx *ctx;
	struct pl_state *state;
	long long run_id;
	const json_t *plan;
	const char *project; /* whose the storages it creates are */
	bool show;
	bool live;       /* redraw a status line (stderr is a terminal) */
	json_t *running; /* guest -> current step */
	struct pl_guard *guard;
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

	json_object_set_new(copy, "run", json_integer(p->run_id));
	json_object_set(copy, "plan_summary", json_object_get(p->plan, "summary"));
	if (pl_runs_update(p->state, p->run_id, copy, &err) != 0) {
		pl_warn(p->ctx, "%s", err);
		free(err);
		err = NULL;
	}
	if (pl_runs_storage_done(p->state, p->project, change, &err) != 0) {
		pl_warn(p->ctx, "%s", err);
		free(err);
	}
	if (pl_guard_lost(p->guard))
		pl_error("the apply lock was lost with the connection to the state database: "
			 "no more changes are started");
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
	bool touched = pl_json_int(res, "ok", 0) > 0; /* anything to roll back? */
	size_t i, nstacks = 0;

	json_array_foreach(json_object_get(res, "stacks"), i, c)
		nstacks += !json_is_true(json_object_get(c, "ok"));
	if (pl_json_int(res, "failed", 0) == 0 && !stopped && nstacks) {
		printf("%sApply failed%s (run %lld): %lld change%s done, %zu stack%s failed to "
		       "deploy "
		       "(below); %s rollback %lld takes back the guests this run changed.\n",
		       pl_color(ctx, PL_C_RED), pl_color(ctx, PL_C_RESET), run,
		       pl_json_int(res, "ok", 0), pl_json_int(res, "ok", 0) == 1 ? "" : "s",
		       nstacks, nstacks == 1 ? "" : "s", me, run);
		free(me);
		return;
	}
	if (pl_json_int(res, "failed", 0) == 0 && !stopped) {
		if (ctx->verbosity >= 0) /* -q: only errors */
			printf("%sApply complete%s (run %lld): %lld change%s done.\n",
			       pl_color(ctx, PL_C_GREEN), pl_color(ctx, PL_C_RESET), run,
			       pl_json_int(res, "ok", 0), pl_json_int(res, "ok", 0) == 1 ? "" : "s");
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
		else if (!strcmp(st, "interrupted") && json_array_size(json_object_get(c, "steps_done")))
			printf(" (stopped after %s)",
			       json_string_value(json_array_get(json_object_get(c, "steps_done"),
								json_array_size(json_object_get(c, "steps_done")) - 1)));
		printf("\n");
	}
	json_array_foreach(json_object_get(res, "changes"), i, c)
		touched |= json_array_size(json_object_get(c, "steps_done")) > 0;
	if (!touched)
		printf("Nothing was changed: run %s plan to see the changes again.\n", me);
	else if (stopped)
		printf("To finish: %s apply (%s plan shows what is left).\nTo undo: %s rollback %lld.\n",
		       me, me, me, run);
	else
		printf("Run %s plan to see what is left; %s rollback %lld restores the guests "
		       "this run changed.\n", me, me, run);
	free(me);
}

/* What happens to the guests this apply destroys. */
static void
print_backups(const struct pl_ctx *ctx, const json_t *plan, const struct pl_apply_opts *ao)
{
	const json_t *c;
	size_t i, n = 0;

	json_array_foreach(json_object_get(plan, "changes"), i, c) {
		const char *a = pl_json_str_or(c, "action", "");

		n += !strcmp(a, "delete") || (!strcmp(a, "replace") && ao->allow_replace);
	}
	if (n == 0)
		return;
	if (ao->no_backup)
		printf("%s--no-backup: %zu guest%s will be destroyed without a backup; rollback cannot "
		       "bring %s back.%s\n", pl_color(ctx, PL_C_RED), n, n == 1 ? "" : "s",
		       n == 1 ? "it" : "them", pl_color(ctx, PL_C_RESET));
	else
		printf("Before destroying %s, apply backs %s up (vzdump to %s%s%s); pvelab rollback "
		       "RUN restores %s.\n", n == 1 ? "a guest" : "guests", n == 1 ? "it" : "them",
		       ao->backup_storage ? "'" : "", ao->backup_storage ? ao->backup_storage
		       : "'local' or another storage with content 'backup' on its node",
		       ao->backup_storage ? "'" : "", n == 1 ? "it" : "them");
}

/* apply_snapshots.keep: after an apply that succeeded, each guest it
 * snapshotted keeps its newest N pvelab-pre-RUN snapshots (plan/snappol.c);
 * what went is in result's "pruned_snapshots". A failure here is a warning:
 * the apply itself is done. */
static size_t
prune_apply_snapshots(const struct pl_ctx *ctx, struct pl_session *s, json_t *result)
{
	const json_t *keep = pl_config_get(s->cfg, "/apply_snapshots/keep"), *w;
	json_t *guests = pl_planning_prune_guests(result), *pr = NULL, *warnings = json_array();
	struct pl_snappol_opts o = { 0 };
	size_t i, n;

	if (!json_is_integer(keep)) {
		json_decref(guests);
		json_decref(warnings);
		return 0;
	}
	if (guests)
		pl_snappol_prune_apply(s->base, s->pve, guests, json_integer_value(keep), &o, &pr);
	n = pl_planning_pruned(result, pr, warnings);
	json_array_foreach(warnings, i, w)
		pl_warn(ctx, "%s", json_string_value(w));
	json_decref(warnings);
	json_decref(guests);
	json_decref(pr);
	return n;
}

/* The plan's stacks, deployed inside the apply's run (cmd/deploy.h).
 * Returns how many failed. */
static int
deploy_stacks(struct pl_ctx *ctx, const struct pl_args *a, struct pl_session *s, const json_t *plan,
	      json_t *result, long long run_id)
{
	struct pl_deploy_opts o = { .rollback = pl_args_has(a, O_STACK_ROLLBACK),
				    .run_id = run_id,
				    .show = ctx->output == PL_OUT_TEXT && pl_chatty(ctx) };

	return pl_deploy_apply(s, &o, plan, result);
}

/* pvelab verify after an apply, when asked. Under -o json it runs quietly:
 * apply's JSON stays the only document on stdout. */
static int
after_apply(struct pl_ctx *ctx, const struct pl_args *a, const struct pl_config *cfg, int rc)
{
	struct pl_ctx quiet = *ctx;
	char w_verify[] = "verify";
	char *vargv[] = { w_verify, NULL };

	if (rc != PL_EXIT_OK || !cfg)
		return rc;
	if (ctx->output == PL_OUT_JSON) {
		quiet.output = PL_OUT_TEXT;
		quiet.verbosity = -1;
	}
	if (pl_args_has(a, O_VERIFY) && pl_cmd_verify.run(&quiet, 1, vargv) != 0)
		return PL_EXIT_ERROR;
	return rc;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_plan_opts po = { 0 };
	struct pl_apply_opts ao;
	int njobs = 4;
	struct progress prog = { .ctx = ctx };
	struct pl_guard guard = { 0 };
	struct pl_session s;
	struct pl_args a;
	bool yes = false;
	size_t pruned = 0;
	long long jobs = 4, run_id = 0;
	json_t *snap = NULL, *plan = NULL, *saved = NULL, *result = NULL, *owned = NULL;
	char *err = NULL;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_apply, ctx, argc, argv)) != 0 ||
	    (r = pl_args_num(&a, O_JOBS, 1, 64, &jobs)) != 0)
		return pl_args_exit(r);
	njobs = (int)jobs;
	po.reboot = pl_args_has(&a, O_REBOOT);
	po.allow_replace = pl_args_has(&a, O_REPLACE);
	po.allow_delete = pl_args_has(&a, O_DELETE);
	yes = pl_args_has(&a, O_YES);
	po.no_snapshot = pl_args_has(&a, O_NOSNAP);
	po.no_backup = pl_args_has(&a, O_NOBACKUP);
	po.profile = pl_args_str(&a, O_PROFILE, NULL);
	po.no_stacks = pl_args_has(&a, O_NOSTACKS);
	if (a.npos && (saved = load_plan(a.pos[0], &err)) == NULL) {
		pl_error("%s", err);
		free(err);
		return PL_EXIT_ERROR;
	}
	if (saved) { /* the saved plan's options are the ones it was made with */
		const json_t *so = json_object_get(saved, "options");

		po.allow_replace = json_is_true(json_object_get(so, "allow_replace"));
		po.reboot = json_is_true(json_object_get(so, "reboot"));
		po.no_snapshot = json_is_false(json_object_get(so, "snapshot"));
		if (json_is_true(json_object_get(so, "allow_delete")))
			po.allow_delete = true;
		/* no_backup only ever from this command line: a plan file is never
		 * trusted to skip a backup */
		po.profile = pl_json_str(so, "profile");
		/* --no-stacks: not this time (the next plan shows them again) */
		if (po.no_stacks)
			json_object_del(saved, "stacks");
	}
	/* the options the plan listed its steps with are the executor's */
	pl_plan_apply_opts(&po, &ao);
	ao.jobs = njobs;
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
		if ((why = pl_planning_differs(saved, plan)) != NULL) {
			pl_error("'%s' %s, which a plan of %s does not (a plan file is never trusted; run "
				 "pvelab plan again)", a.pos[0], why, pl_config_path(s.cfg));
			free(why);
			goto out;
		}
		/* the same changes: the fresh plan is the one carried out */
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
		rc = after_apply(ctx, &a, s.cfg, PL_EXIT_OK);
		goto out;
	}
	ao.backup_storage = json_string_value(pl_config_get(s.cfg, "/backup/storage"));
	if (ctx->output != PL_OUT_JSON) {
		pl_planning_print(ctx, plan);
		print_backups(ctx, plan, &ao);
	}
	if ((err = pl_planning_deletes_refused(s.cfg, plan, &ao, "--allow-delete")) != NULL) {
		pl_error("%s", err);
		goto out;
	}
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
	if (pl_runs_set_project(s.state, run_id, pl_config_project(s.cfg), &err) != 0) {
		pl_warn(ctx, "%s", err);
		free(err);
		err = NULL;
	}
	ao.run_id = run_id;
	owned = pl_apply_owned(snap, pl_config_project(s.cfg));
	ao.owned = owned;
	ao.progress = on_progress;
	ao.record = on_record;
	ao.stop = &guard.stop;
	ao.arg = &prog;
	prog.state = s.state;
	prog.guard = &guard;
	prog.run_id = run_id;
	prog.plan = plan;
	prog.project = pl_config_project(s.cfg);
	prog.live = isatty(STDERR_FILENO) && ctx->verbosity >= 0;
	prog.show = ctx->output != PL_OUT_JSON && ctx->verbosity >= 0 && (prog.live || ctx->verbosity > 0);
	prog.running = json_object();
	r = pl_apply_run(s.base, s.pve, plan, &ao, &result);
	/* the run has ended: a signal now only waits for it to be recorded */
	pl_guard_over(&guard);
	if (prog.live)
		fputs("\r\033[K", stderr);
	json_decref(prog.running);
	if (r == 0 && !json_is_true(json_object_get(result, "stopped")) && guard.stop == 0 &&
	    json_array_size(json_object_get(plan, "stacks")) > 0 &&
	    pl_json_int(json_object_get(plan, "summary"), "stacks", 0) > 0 &&
	    deploy_stacks(ctx, &a, &s, plan, result, run_id) > 0)
		r = PL_EIO;
	json_object_set_new(result, "run", json_integer(run_id));
	json_object_set_new(result, "no_backup", json_boolean(ao.no_backup));
	json_object_set(result, "plan_summary", json_object_get(plan, "summary"));
	if (pl_runs_finish(s.state, run_id,
			   json_is_true(json_object_get(result, "stopped")) ? "interrupted"
			   : r == 0 ? "ok" : "failed", result, &err) != 0)
		pl_warn(ctx, "%s", err);
	if (r == 0 && !json_is_true(json_object_get(result, "stopped")))
		pruned = prune_apply_snapshots(ctx, &s, result);
	/* record what the cluster looks like now (history rows for this apply);
	 * after a second signal the user wants out, and tasks are still running */
	json_decref(snap);
	snap = NULL;
	free(err);
	err = NULL;
	if (guard.stop < PL_APPLY_ABANDON &&
	    pl_cmd_sync_now(&s, false, false, NULL, NULL, NULL, &err) != 0)
		pl_warn(ctx, "applied, but the refresh afterwards failed: %s", err);
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_incref(result));
	} else {
		print_result(ctx, result, run_id);
		pl_deploy_print(json_object_get(result, "stacks"));
	}
	if (pruned && ctx->output != PL_OUT_JSON && ctx->verbosity >= 0)
		printf("Deleted %zu older apply snapshot%s (apply_snapshots.keep: %lld).\n", pruned,
		       pruned == 1 ? "" : "s",
		       pl_json_int(pl_config_get(s.cfg, "/apply_snapshots"), "keep", 0));
	fflush(stdout);
	rc = pl_guard_exit(&guard, r == 0 ? PL_EXIT_OK : PL_EXIT_ERROR);
	pl_guard_release(&guard);
	rc = after_apply(ctx, &a, s.cfg, rc);
out:
	pl_guard_release(&guard);
	free(err);
	json_decref(snap);
	json_decref(plan);
	json_decref(saved);
	json_decref(owned);
	json_decref(result);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_apply = {
	.name = "apply",
	.summary = "make the cluster match pvelab.yaml (or carry out a saved plan)",
	.usage = "[PLAN.json] [-j N] [--reboot] [--allow-replace] [--allow-delete] [--yes] "
		 "[--no-snapshot] [--no-backup] [--profile NAME] [--no-stacks] "
		 "[--rollback-on-failure] [--verify]",
	.help = "Bridges and template downloads first, then guests in parallel, deletions last.\n"
		"A config validate rejects (an unset password_env, a raw config: value the\n"
		"Proxmox schema refuses...) is refused before anything is done. Each existing\n"
		"guest is snapshotted (pvelab-pre-RUN) before it changes, or backed up with\n"
		"vzdump when Proxmox cannot snapshot it (a bind mount, a storage without\n"
		"snapshots: the plan says which, and a refused snapshot falls back to a\n"
		"backup; nothing changes without one unless --no-snapshot); a guest deleted or\n"
		"replaced is backed up with vzdump first (backup.storage, else 'local' or another\n"
		"storage with content 'backup' on its node; none: the destroy is refused) unless\n"
		"--no-backup. A replace creates the new guest first when it gets a vmid of its\n"
		"own, else proves the create possible (config, storages, template) before the\n"
		"destroy. pvelab rollback RUN restores snapshots and backups. On a failure\n"
		"nothing new starts, running work finishes, and the result lists what was done\n"
		"and what was not. Each change runs exactly the steps the plan lists for it\n"
		"(the run records them as steps_done); a saved plan is carried out with the\n"
		"options it was made with. Without a terminal it needs --yes.\n"
		"Only guests of this config's project are ever deleted, and only with\n"
		"--allow-delete (at most safety.max_deletes of them when set): without it a\n"
		"plan that deletes is refused before anything is done.\n"
		"After a successful apply the guests' stacks are deployed as pvelab deploy\n"
		"does (a new guest waited for until its agent or SSH answers), unless\n"
		"--no-stacks; --verify then runs pvelab verify.\n"
		"\n"
		"One apply (or rollback, destroy) runs at a time per cluster: another one\n"
		"refuses at once, naming the pid, host and start of the one running. Ctrl-C\n"
		"(or SIGTERM) starts nothing new and lets each change in flight finish its\n"
		"current task, records the run as interrupted and exits 130 (143); a second\n"
		"Ctrl-C stops waiting (Proxmox goes on with the tasks). Run apply again to\n"
		"finish, or pvelab rollback RUN. A saved plan is refused once another apply\n"
		"ran after it was made.",
	.opts = opts,
	.max_args = 1,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
