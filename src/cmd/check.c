/*
 * `pvelab check [NAME|GUEST]...`: every declared check once, concurrently
 * (src/check/), with the cluster's own checks when an API is configured; a
 * table or -o json (docs/checks.md). Exit 0 all up, 1 one down, 2 warnings.
 */
#include "core/common.h"
#include "check/check.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/json.h"
#include "core/str.h"
#include "plan/backups.h"
#include "pve/client.h"

#include <event2/event.h>

static const struct pl_opt opts[] = {
	{ "no-cluster", 0, NULL, "skip the cluster's own checks (no API call)" },
	{ NULL, 0, NULL, NULL },
};

struct wait {
	struct event_base *base;
	json_t *results;
};

static void
done_cb(json_t *results, void *arg)
{
	struct wait *w = arg;

	w->results = json_incref(results);
	event_base_loopbreak(w->base);
}

/* The newest-backup checks: one read of every backup storage's content. */
static void
add_backups(struct pl_session *s, json_t *cluster, long long days)
{
	json_t *list = NULL, *res;
	char *err = NULL;

	if (days <= 0)
		return;
	if (pl_backups_list(s->base, s->pve, false, &list, &err) != 0) {
		json_array_append_new(cluster,
				      json_pack("{s:s,s:s,s:s,s:s}", "name", "backups", "type",
						"backup", "status", PL_CHECK_DOWN, "error",
						err ? err : "cannot list backups"));
	} else {
		res = pl_check_backups(s->cfg, json_object_get(list, "guests"), days);
		json_array_extend(cluster, res);
		json_decref(res);
	}
	json_decref(list);
	free(err);
}

static bool
selected(const json_t *x, char **want, int n)
{
	const char *name = pl_json_str_or(x, "name", ""), *guest = pl_json_str(x, "guest");

	if (n == 0)
		return true;
	for (int i = 0; i < n; i++) {
		if (!strcmp(name, want[i]) || (guest && !strcmp(guest, want[i])) ||
		    (pl_str_startswith(name, "guest:") && !strcmp(name + 6, want[i])) ||
		    (pl_str_startswith(name, "backup:") && !strcmp(name + 7, want[i])))
			return true;
	}
	return false;
}

/* Keep the items of arr that one of want names; mark each name found. */
static json_t *
filter(json_t *arr, char **want, int n, bool *found)
{
	json_t *out = json_array(), *x;
	size_t i;

	json_array_foreach(arr, i, x) {
		if (!selected(x, want, n))
			continue;
		json_array_append(out, x);
		for (int k = 0; k < n; k++)
			found[k] |= selected(x, want + k, 1);
	}
	json_decref(arr);
	return out;
}

static void
print_table(const struct pl_ctx *ctx, const json_t *results)
{
	const json_t *r;
	size_t i, w = 5;

	json_array_foreach(results, i, r) {
		size_t n = strlen(pl_json_str_or(r, "name", ""));

		w = n > w ? n : w;
	}
	printf("%s%-*s %-7s %-8s %9s  %s%s\n", pl_color(ctx, PL_C_BOLD), (int)w, "CHECK", "TYPE",
	       "STATUS", "LATENCY", "DETAIL", pl_color(ctx, PL_C_RESET));
	json_array_foreach(results, i, r) {
		const char *st = pl_json_str_or(r, "status", "?");
		const char *col = !strcmp(st, PL_CHECK_UP)      ? PL_C_GREEN :
				  !strcmp(st, PL_CHECK_DOWN)    ? PL_C_RED :
				  !strcmp(st, PL_CHECK_WARNING) ? PL_C_YELLOW :
								  PL_C_DIM;
		char lat[32] = "-";

		if (json_object_get(r, "latency_ms"))
			snprintf(lat, sizeof(lat), "%.1fms", pl_json_num(r, "latency_ms", 0));
		printf("%-*s %-7s %s%-8s%s %9s  %s%s%s%s\n", (int)w, pl_json_str_or(r, "name", ""),
		       pl_json_str_or(r, "type", ""), pl_color(ctx, col), st,
		       pl_color(ctx, PL_C_RESET), lat,
		       pl_json_str_or(r, "error", pl_json_str_or(r, "target", "")),
		       pl_json_str(r, "caused_by") ? " (caused by " : "",
		       pl_json_str_or(r, "caused_by", ""), pl_json_str(r, "caused_by") ? ")" : "");
	}
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	struct wait w = { 0 };
	json_t *specs = NULL, *cluster = NULL, *causes = NULL, *cl_opts = NULL, *all = NULL;
	json_t *summary;
	char *err = NULL;
	const char *url;
	bool *found = NULL;
	int r, rc = PL_EXIT_ERROR;
	size_t i;
	const json_t *x;

	if ((r = pl_args_parse(&a, &pl_cmd_check, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if (pl_session_open(&s, ctx, 0, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (!s.cfg) {
		pl_error("no config file '%s' (checks are declared in it; -c FILE names another)",
			 ctx->config_path);
		goto out;
	}
	specs = pl_check_specs(s.cfg);
	cl_opts = pl_check_cluster_opts(s.cfg);
	cluster = json_array();
	url = getenv("PVELAB_URL");
	if (!pl_args_has(&a, 0) && ((url && *url) || pl_config_get(s.cfg, "/cluster/endpoints"))) {
		json_t *res = NULL;

		if (pl_session_api(&s, &err) != 0 ||
		    pl_pve_call(s.pve, "GET", "/cluster/resources", NULL, &res, &err) != 0) {
			json_array_append_new(cluster,
					      json_pack("{s:s,s:s,s:s,s:s}", "name", "cluster",
							"type", "api", "status", PL_CHECK_DOWN,
							"error", err ? err : "no answer"));
		} else {
			json_decref(cluster);
			cluster = pl_check_cluster(s.cfg, cl_opts, res, &causes);
			pl_check_mark_causes(specs, cluster, causes);
			pl_check_cert_specs(specs, cl_opts, url);
			add_backups(&s, cluster, pl_json_int(cl_opts, "backup_days", 0));
		}
		json_decref(res);
		free(err);
		err = NULL;
	}
	found = pl_calloc((size_t)a.npos + 1, sizeof(*found));
	specs = filter(specs, a.pos, a.npos, found);
	cluster = filter(cluster, a.pos, a.npos, found);
	for (int k = 0; k < a.npos; k++) {
		if (!found[k]) {
			pl_error("no check or guest '%s' (pvelab check lists them all)", a.pos[k]);
			rc = PL_EXIT_USAGE;
			goto out;
		}
	}
	if (!s.base && (s.base = event_base_new()) == NULL) {
		pl_error("cannot create the event loop");
		goto out;
	}
	w.base = s.base;
	pl_check_start(s.base, specs,
		       (size_t)pl_json_int(pl_config_get(s.cfg, "/checks"), "concurrency",
					   PL_CHECK_CONCURRENCY),
		       NULL, done_cb, &w);
	event_base_dispatch(s.base);
	all = json_array();
	json_array_extend(all, cluster);
	json_array_extend(all, w.results);
	summary = json_pack("{s:i,s:i,s:i,s:i}", "up", 0, "warning", 0, "down", 0, "skipped", 0);
	json_array_foreach(all, i, x) {
		const char *st = pl_json_str_or(x, "status", "");

		json_object_set_new(summary, st, json_integer(pl_json_int(summary, st, 0) + 1));
	}
	rc = pl_check_exit_code(all);
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(
			json_pack("{s:O,s:o,s:i}", "checks", all, "summary", summary, "exit", rc));
	} else {
		print_table(ctx, all);
		if (pl_chatty(ctx))
			printf("\n%lld up, %lld warning, %lld down, %lld skipped\n",
			       pl_json_int(summary, "up", 0), pl_json_int(summary, "warning", 0),
			       pl_json_int(summary, "down", 0), pl_json_int(summary, "skipped", 0));
		json_decref(summary);
	}
out:
	json_decref(specs);
	json_decref(cluster);
	json_decref(causes);
	json_decref(cl_opts);
	json_decref(all);
	json_decref(w.results);
	free(found);
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_check = {
	.name = "check",
	.summary = "run the declared health checks once and show each result",
	.usage = "[--no-cluster] [NAME|GUEST]...",
	.help = "Probes every check the config declares (guests' services, checks.targets)\n"
		"at once, at most checks.concurrency in flight, and with an API configured\n"
		"adds the cluster's own: nodes offline, guests not in their declared state\n"
		"(their service checks are then marked as caused by it, not probed),\n"
		"storages above checks.cluster.storage_percent, API certificates expiring.\n"
		"Exit 0 when all are up, 1 when one is down, 2 when there are warnings only\n"
		"(for cron and Nagios-style tools). docs/checks.md has the -o json shape.",
	.opts = opts,
	.min_args = 0,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
