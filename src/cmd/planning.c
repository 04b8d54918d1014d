/*
 * Shared plumbing and the human rendering of plans (see planning.h).
 */
#include "core/common.h"
#include "cmd/planning.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "plan/plan.h"

#include <unistd.h>

int
pl_planning_open(struct pl_session *s, struct pl_ctx *ctx, char **errmsg)
{
	int r = pl_session_open(s, ctx, PL_NEED_API | PL_NEED_STATE, errmsg);

	if (r == 0 && s->cfg == NULL)
		r = pl_seterr(errmsg, PL_ENOENT,
			      "no config file '%s' (write one, or pass -c FILE; pvelab import "
			      "writes one from existing guests)",
			      ctx->config_path);
	return r;
}

int
pl_planning_build(struct pl_session *s, const struct pl_plan_opts *o, json_t **snap,
		  json_t **plan, char **errmsg)
{
	bool bar = s->ctx->tty && isatty(STDERR_FILENO) && s->ctx->verbosity >= 0;
	int r;

	*snap = *plan = NULL;
	if ((r = pl_cmd_sync_now(s, false, bar, NULL, NULL, snap, errmsg)) != 0)
		return pl_preferr(errmsg, r, "cannot refresh the cluster");
	if (o->profile && pl_config_get(s->cfg, "/profiles") &&
	    !json_object_get(pl_config_get(s->cfg, "/profiles"), o->profile))
		return pl_seterr(errmsg, PL_EINVAL, "no profile '%s' in %s", o->profile,
				 pl_config_path(s->cfg));
	return pl_plan_build(s->cfg, *snap, o, plan, errmsg);
}

static const char *
sign_of(const char *action)
{
	if (!strcmp(action, "create") || !strcmp(action, "bridge"))
		return "+";
	if (!strcmp(action, "update"))
		return "~";
	if (!strcmp(action, "replace"))
		return "-/+";
	if (!strcmp(action, "delete"))
		return "-";
	if (!strcmp(action, "start"))
		return ">";
	return "#";
}

static const char *
color_of(const char *action)
{
	if (!strcmp(action, "create") || !strcmp(action, "bridge") || !strcmp(action, "start"))
		return PL_C_GREEN;
	if (!strcmp(action, "delete") || !strcmp(action, "replace"))
		return PL_C_RED;
	return PL_C_YELLOW;
}

static void
print_value(const char *v)
{
	if (v == NULL) {
		fputs("(none)", stdout);
		return;
	}
	/* keep multi-line values (descriptions, keys) on one line */
	for (const char *p = v; *p; p++)
		fputs(*p == '\n' ? "\\n" : (char[]){ *p, 0 }, stdout);
}

void
pl_planning_print(const struct pl_ctx *ctx, const json_t *plan)
{
	const json_t *changes = json_object_get(plan, "changes"), *c, *d;
	const json_t *sum = json_object_get(plan, "summary");
	size_t i, j, reboots = 0;

	if (json_array_size(changes) == 0)
		printf("%sNo changes.%s The cluster matches %s.\n", pl_color(ctx, PL_C_GREEN),
		       pl_color(ctx, PL_C_RESET), pl_json_str_or(plan, "config", "the config"));
	json_array_foreach(changes, i, c) {
		const char *a = pl_json_str_or(c, "action", "?");
		const char *cls = pl_json_str_or(c, "class", "");

		printf("  %s%-3s %-7s%s %s%s%s (%s %lld on %s)", pl_color(ctx, color_of(a)), sign_of(a),
		       a, pl_color(ctx, PL_C_RESET), pl_color(ctx, PL_C_BOLD),
		       pl_json_str_or(c, "guest", "?"), pl_color(ctx, PL_C_RESET),
		       !strcmp(a, "bridge") ? "bridge" : pl_json_str_or(c, "type", "?"),
		       pl_json_int(c, "vmid", 0), pl_json_str_or(c, "node", "?"));
		if (!strcmp(a, "update") || !strcmp(a, "replace"))
			printf("  [%s]", cls);
		if (json_is_true(json_object_get(c, "reboot"))) {
			printf(" %s(pending until reboot)%s", pl_color(ctx, PL_C_YELLOW),
			       pl_color(ctx, PL_C_RESET));
			reboots++;
		}
		putchar('\n');
		json_array_foreach(json_object_get(c, "diffs"), j, d) {
			printf("      %s~%s %s: ", pl_color(ctx, PL_C_YELLOW), pl_color(ctx, PL_C_RESET),
			       pl_json_str_or(d, "key", "?"));
			print_value(pl_json_str(d, "from"));
			fputs(" -> ", stdout);
			print_value(pl_json_str(d, "to"));
			printf("  %s(%s%s%s)%s\n", pl_color(ctx, PL_C_DIM), pl_json_str_or(d, "class", ""),
			       pl_json_str(d, "note") ? ": " : "", pl_json_str_or(d, "note", ""),
			       pl_color(ctx, PL_C_RESET));
		}
	}
	json_array_foreach(json_object_get(plan, "blocked"), i, c)
		printf("  %s!   blocked%s %s: %s\n", pl_color(ctx, PL_C_RED), pl_color(ctx, PL_C_RESET),
		       pl_json_str_or(c, "guest", "?"), pl_json_str_or(c, "reason", "?"));
	if (json_array_size(json_object_get(plan, "unmanaged")) && ctx->verbosity >= 0) {
		printf("\n%zu guest%s not managed by pvelab (never touched; pvelab import adopts them):",
		       json_array_size(json_object_get(plan, "unmanaged")),
		       json_array_size(json_object_get(plan, "unmanaged")) == 1 ? " is" : "s are");
		json_array_foreach(json_object_get(plan, "unmanaged"), i, c) {
			if (i == 8 && ctx->verbosity < 1) {
				fputs(" ...", stdout);
				break;
			}
			printf(" %lld %s%s", pl_json_int(c, "vmid", 0), pl_json_str_or(c, "name", ""),
			       i + 1 < json_array_size(json_object_get(plan, "unmanaged")) ? "," : "");
		}
		putchar('\n');
	}
	if (json_array_size(changes)) {
		printf("\nPlan: %lld to create, %lld to update, %lld to replace, %lld to delete, "
		       "%lld to start, %lld to stop, %lld bridge%s.",
		       pl_json_int(sum, "create", 0), pl_json_int(sum, "update", 0),
		       pl_json_int(sum, "replace", 0), pl_json_int(sum, "delete", 0),
		       pl_json_int(sum, "start", 0), pl_json_int(sum, "stop", 0),
		       pl_json_int(sum, "bridge", 0), pl_json_int(sum, "bridge", 0) == 1 ? "" : "s");
		if (reboots)
			printf(" %zu guest%s need%s a reboot to finish (apply --reboot does it).", reboots,
			       reboots == 1 ? "" : "s", reboots == 1 ? "s" : "");
		putchar('\n');
	}
}

bool
pl_confirm(const char *question)
{
	char line[32];

	fprintf(stderr, "%s [y/N] ", question);
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}
