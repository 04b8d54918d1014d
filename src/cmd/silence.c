/*
 * `pvelab silence [NAME --for DURATION] | --remove ID`: hold the alerts of
 * the checks NAME matches (a check, a shell pattern, a guest) for a while;
 * pvelab serve reads the silences from the state store (docs/checks.md).
 * Without NAME it lists the silences that hold.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "state/state.h"

#include <limits.h>
#include <time.h>

static const struct pl_opt opts[] = {
	{ "for", 'f', "DURATION", "how long the silence holds (2h, 30m, 1d)" },
	{ "reason", 'r', "TEXT", "why (shown in the list and in held-back alert events)" },
	{ "remove", 0, "ID", "end silence ID now" },
	{ NULL, 0, NULL, NULL },
};

static void
when(double t, char out[32])
{
	time_t tt = (time_t)t;

	strftime(out, 32, "%Y-%m-%d %H:%M", localtime(&tt));
}

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int
list(struct pl_ctx *ctx, struct pl_session *s)
{
	json_t *all = NULL, *x;
	char *err = NULL;
	size_t i;

	if (pl_state_silences(s->state, now_s(), &all, &err) != 0) {
		pl_error("%s", err);
		free(err);
		return PL_EXIT_ERROR;
	}
	if (ctx->output == PL_OUT_JSON)
		return pl_print_json(all), PL_EXIT_OK;
	if (json_array_size(all) == 0 && pl_chatty(ctx))
		printf("no silence holds\n");
	else
		printf("%s%-5s %-30s %-17s %s%s\n", pl_color(ctx, PL_C_BOLD), "ID", "MATCHES",
		       "UNTIL", "REASON", pl_color(ctx, PL_C_RESET));
	json_array_foreach(all, i, x) {
		char until[32];

		when(pl_json_num(x, "until", 0), until);
		printf("%-5lld %-30s %-17s %s\n", pl_json_int(x, "id", 0),
		       pl_json_str_or(x, "pattern", "?"), until, pl_json_str_or(x, "reason", ""));
	}
	json_decref(all);
	return PL_EXIT_OK;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	const char *dur, *rm;
	char *err = NULL, until_s[32];
	long long secs = 0, id = 0;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_silence, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	dur = pl_args_str(&a, 0, NULL);
	rm = pl_args_str(&a, 2, NULL);
	if (rm && (a.npos || dur))
		return pl_usage_error(&pl_cmd_silence, "--remove ID takes nothing else");
	if (rm && pl_str_to_ll(rm, 1, LLONG_MAX, &id) != 0)
		return pl_usage_error(&pl_cmd_silence,
				      "--remove takes a silence's number, not '%s'", rm);
	if (a.npos && !dur)
		return pl_usage_error(&pl_cmd_silence, "silence NAME needs --for DURATION (2h)");
	if (!a.npos && (dur || pl_args_has(&a, 1)))
		return pl_usage_error(&pl_cmd_silence, "--for and --reason go with a NAME");
	if (dur && (secs = pl_str_duration(dur)) < 0)
		return pl_usage_error(&pl_cmd_silence,
				      "--for '%s' is not a duration (2h, 30m, 1d, 90s)", dur);
	if (pl_session_open(&s, ctx, PL_NEED_STATE, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (rm) {
		if (pl_state_silence_end(s.state, id, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
		if (pl_chatty(ctx))
			printf("silence %lld ended\n", id);
		rc = PL_EXIT_OK;
	} else if (!a.npos) {
		rc = list(ctx, &s);
	} else {
		double until = now_s() + (double)secs;

		if (pl_state_silence_add(s.state, a.pos[0], until, pl_args_str(&a, 1, NULL), &id,
					 &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
		when(until, until_s);
		if (ctx->output == PL_OUT_JSON)
			pl_print_json(json_pack("{s:I,s:s,s:f}", "id", (json_int_t)id, "pattern",
						a.pos[0], "until", until));
		else
			printf("silence %lld: alerts of '%s' held until %s\n", id, a.pos[0],
			       until_s);
		rc = PL_EXIT_OK;
	}
out:
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_silence = {
	.name = "silence",
	.summary = "hold the alerts of checks for a while, list or end silences",
	.usage = "[NAME --for DURATION [--reason TEXT]] | --remove ID",
	.help = "NAME is a check's name, a shell pattern of names (web/*, node:*) or a\n"
		"guest's name (its service checks and its guest: check). pvelab serve\n"
		"holds the notices of those checks until the silence ends and sends what\n"
		"still holds then; the checks themselves go on. Without NAME, lists the\n"
		"silences that hold. docs/checks.md describes alerts.",
	.opts = opts,
	.min_args = 0,
	.max_args = 1,
	.run = run,
};
