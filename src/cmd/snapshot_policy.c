/*
 * `pvelab snapshot-policy run [LABEL]` and `snapshot-policy list`: the
 * snapshot_policies of pvelab.yaml, taken and pruned now (the engine is
 * plan/snappol.c), or listed with when each runs next.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/calendar.h"
#include "core/diag.h"
#include "core/json.h"
#include "plan/snappol.h"

#include <time.h>

static const struct pl_opt opts[] = {
	{ "timeout", 0, "SECS", "give up waiting for each task after SECS (default 600)" },
	{ "jobs", 'j', "N", "guests worked on at once (default 4)" },
	{ NULL, 0, NULL, NULL },
};

enum { O_TIMEOUT, O_JOBS };

/* The config's policies, checked; NULL with a message printed. */
static const json_t *
policies_of(struct pl_session *s)
{
	struct pl_diags d;
	const json_t *pols;
	bool bad = false;

	if (s->cfg == NULL) {
		pl_error("no config file '%s' (snapshot policies are declared in its "
			 "snapshot_policies: section)",
			 s->ctx->config_path);
		return NULL;
	}
	pl_diags_init(&d);
	pl_config_check_day2(s->cfg, &d);
	for (size_t i = 0; i < d.n && !bad; i++) {
		if (d.items[i].level == PL_DIAG_ERROR) {
			char *line = pl_diag_line(&d.items[i]);

			pl_error("%s (pvelab validate shows all problems)", line);
			free(line);
			bad = true;
		}
	}
	pl_diags_release(&d);
	if (bad)
		return NULL;
	pols = pl_config_get(s->cfg, "/snapshot_policies");
	if (json_array_size(pols) == 0) {
		pl_error("%s declares no snapshot_policies (docs/day2.md shows one)",
			 pl_config_path(s->cfg));
		return NULL;
	}
	return pols;
}

static void
on_progress(const json_t *e, void *arg)
{
	const struct pl_ctx *ctx = arg;
	const char *st = pl_json_str_or(e, "status", "?");
	const json_t *pruned = json_object_get(e, "pruned");

	if (!strcmp(st, "unsupported") || !strcmp(st, "failed")) {
		fprintf(stderr, "pvelab: %s %s '%s' (%lld): %s\n", pl_json_str_or(e, "label", "?"),
			!strcmp(st, "failed") ? "failed on" : "cannot snapshot",
			pl_json_str_or(e, "guest", "?"), pl_json_int(e, "vmid", 0),
			pl_json_str_or(e, "error", "?"));
		return;
	}
	if (!pl_chatty(ctx))
		return;
	printf("%s (%lld) %s: ", pl_json_str_or(e, "guest", "?"), pl_json_int(e, "vmid", 0),
	       pl_json_str_or(e, "label", "?"));
	if (!strcmp(st, "skipped"))
		printf("skipped (%s)\n", pl_json_str_or(e, "error", "?"));
	else
		printf("%s %s, %zu pruned, %lld kept\n",
		       json_is_true(json_object_get(e, "taken")) ? "took" : "already had",
		       pl_json_str_or(e, "snapshot", "?"), json_array_size(pruned),
		       pl_json_int(e, "kept", 0));
	fflush(stdout);
}

static int
cmd_run(struct pl_ctx *ctx, struct pl_args *a, long long timeout, long long jobs)
{
	struct pl_snappol_opts o = { 0 };
	struct pl_session s;
	const json_t *pols, *p;
	json_t *chosen = NULL, *result = NULL;
	char *err = NULL;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if (pl_session_open(&s, ctx, PL_NEED_API, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if ((pols = policies_of(&s)) == NULL)
		goto out;
	chosen = json_array();
	json_array_foreach(pols, i, p)
		if (a->npos < 2 || !strcmp(pl_json_str_or(p, "label", ""), a->pos[1]))
			json_array_append(chosen, (json_t *)p);
	if (json_array_size(chosen) == 0) {
		pl_error("no snapshot policy labelled '%s' in %s", a->pos[1],
			 pl_config_path(s.cfg));
		goto out;
	}
	o.task_timeout_ms = (long)timeout * 1000;
	o.jobs = (int)jobs;
	if (ctx->output != PL_OUT_JSON) {
		o.progress = on_progress;
		o.arg = ctx;
	}
	r = pl_snappol_run(s.base, s.pve, chosen, &o, &result);
	json_array_foreach(json_object_get(result, "missing"), i, p)
		pl_error("no guest '%s' on the cluster (named in a snapshot policy's guests:)",
			 json_string_value(p));
	if (pl_json_str(result, "error"))
		pl_error("%s", pl_json_str(result, "error"));
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(result);
		result = NULL;
	} else if (pl_chatty(ctx)) {
		printf("%lld ok, %lld failed, %lld cannot snapshot, %lld skipped.\n",
		       pl_json_int(result, "ok", 0), pl_json_int(result, "failed", 0),
		       pl_json_int(result, "unsupported", 0), pl_json_int(result, "skipped", 0));
	}
	rc = r == 0 ? PL_EXIT_OK : PL_EXIT_ERROR;
out:
	json_decref(chosen);
	json_decref(result);
	free(err);
	pl_session_close(&s);
	return rc;
}

/* The policies and when each runs next (no cluster needed). */
static int
cmd_list(struct pl_ctx *ctx)
{
	struct pl_session s;
	const json_t *pols, *p;
	json_t *out = json_array();
	char *err = NULL;
	size_t i;
	int rc = PL_EXIT_ERROR;

	if (pl_session_open(&s, ctx, 0, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if ((pols = policies_of(&s)) == NULL)
		goto out;
	json_array_foreach(pols, i, p) {
		json_t *e = json_deep_copy(p);
		struct pl_calendar cal;

		if (pl_json_str(p, "schedule") &&
		    pl_calendar_parse(pl_json_str(p, "schedule"), &cal, NULL) == 0) {
			time_t next = pl_calendar_next(&cal, time(NULL));

			if (next >= 0)
				json_object_set_new(e, "next", json_integer((json_int_t)next));
		}
		json_array_append_new(out, e);
	}
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(out);
		out = NULL;
	} else {
		printf("%s%-16s %-5s %-24s %s%s\n", pl_color(ctx, PL_C_BOLD), "LABEL", "KEEP",
		       "SCHEDULE", "NEXT", pl_color(ctx, PL_C_RESET));
		json_array_foreach(out, i, p) {
			time_t next = (time_t)pl_json_int(p, "next", 0);
			char when[64] = "-";
			struct tm tm;

			if (next && localtime_r(&next, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
			printf("%-16s %-5lld %-24s %s\n", pl_json_str_or(p, "label", "?"),
			       pl_json_int(p, "keep", 0), pl_json_str_or(p, "schedule", "-"), when);
		}
	}
	rc = PL_EXIT_OK;
out:
	json_decref(out);
	free(err);
	pl_session_close(&s);
	return rc;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	long long timeout = 600, jobs = 4;
	int r;

	if ((r = pl_args_parse(&a, &pl_cmd_snapshot_policy, ctx, argc, argv)) != 0 ||
	    (r = pl_args_num(&a, O_TIMEOUT, 1, 86400, &timeout)) != 0 ||
	    (r = pl_args_num(&a, O_JOBS, 1, 64, &jobs)) != 0)
		return pl_args_exit(r);
	if (!strcmp(a.pos[0], "run"))
		return cmd_run(ctx, &a, timeout, jobs);
	if (!strcmp(a.pos[0], "list"))
		return a.npos == 1 ? cmd_list(ctx) :
				     pl_usage_error(&pl_cmd_snapshot_policy, "list takes no LABEL");
	return pl_usage_error(&pl_cmd_snapshot_policy, "'%s' is not run [LABEL] or list", a.pos[0]);
}

const struct pl_cmd pl_cmd_snapshot_policy = {
	.name = "snapshot-policy",
	.summary = "take and prune the snapshots of pvelab.yaml's snapshot policies now",
	.usage = "run [LABEL] [--timeout SECS] [-j N] | list",
	.help = "run: each policy (or the one labelled LABEL) snapshots the guests it selects\n"
		"(guests:, tags:, pools:, less exclude:) as auto<label><yyMMddHHmmss> in local\n"
		"time, described 'cv4pve-autosnap', the names and description cv4pve-autosnap\n"
		"gives its own, so both tools can share a cluster; then each guest keeps the\n"
		"newest keep: snapshots of that label and the older ones are deleted. No other\n"
		"snapshot is ever deleted: not one taken by hand, not another label's, not\n"
		"apply's pvelab-pre-RUN (apply_snapshots.keep is their retention). A guest whose\n"
		"storage cannot take snapshots is reported and keeps what it has; the exit code\n"
		"is then 1, as for a failure or a guests: name the cluster does not have.\n"
		"pvelab serve runs each policy on its schedule: (a run missed while it was\n"
		"down is not made up); without it, run this from cron or a systemd timer.\n"
		"list: the policies and when each schedule fires next.",
	.opts = opts,
	.min_args = 1,
	.max_args = 2,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
