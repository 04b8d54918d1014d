/*
 * `pvelab status`: the nodes with their cpu, memory and disk use, and guest
 * counts by type and state, from the local state (or --live).
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/views.h"
#include "core/json.h"
#include "state/state.h"

#include <time.h>

static const struct pl_opt opts[] = {
	{ "live", 'l', NULL, "sync from the cluster first" },
	{ NULL, 0, NULL, NULL },
};

static double
pct(long long used, long long max)
{
	return max > 0 ? 100.0 * (double)used / (double)max : 0;
}

int
pl_view_status(struct pl_state *st, json_t **out, char **errmsg)
{
	json_t *nodes = NULL, *guests = NULL, *lastrun = NULL, *counts, *nout, *n, *g;
	long long total = 0, unseen = 0;
	size_t i;
	int r;

	*out = NULL;
	if ((r = pl_state_nodes(st, &nodes, errmsg)) != 0 ||
	    (r = pl_state_guest_counts(st, &guests, errmsg)) != 0)
		goto out;
	pl_state_last_run(st, "sync", &lastrun, NULL);
	counts = json_pack("{s:I,s:{},s:{}}", "total", (json_int_t)0, "qemu", "lxc");
	json_array_foreach(guests, i, g) {
		json_t *by = json_object_get(counts, pl_json_str_or(g, "type", "qemu"));
		const char *status = pl_json_str_or(g, "status", "unknown");
		long long k = pl_json_int(g, "n", 0);

		total += k;
		if (pl_json_int(g, "unseen", 0))
			unseen += k;
		if (by) /* rows per status and visibility: add them up */
			json_object_set_new(by, status,
					    json_integer(pl_json_int(by, status, 0) + k));
	}
	json_object_set_new(counts, "total", json_integer(total));
	/* guests kept as last synced because the token cannot see them */
	json_object_set_new(counts, "unseen", json_integer(unseen));
	nout = json_array();
	json_array_foreach(nodes, i, n) {
		json_t *d = json_object_get(n, "detail");

		json_array_append_new(nout, json_pack(
			"{s:s?,s:s?,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:s?}", "node", pl_json_str(n, "node"),
			"status", pl_json_str(n, "status"), "cpu", pl_json_num(n, "cpu", 0), "maxcpu",
			(json_int_t)pl_json_int(n, "maxcpu", 0), "mem",
			(json_int_t)pl_json_int(n, "mem", 0), "maxmem",
			(json_int_t)pl_json_int(n, "maxmem", 0), "disk",
			(json_int_t)pl_json_int(n, "disk", 0), "maxdisk",
			(json_int_t)pl_json_int(n, "maxdisk", 0), "uptime",
			(json_int_t)pl_json_int(n, "uptime", 0), "pveversion",
			pl_json_str(d, "pveversion")));
	}
	*out = json_pack("{s:o,s:o,s:O?}", "nodes", nout, "guests", counts, "last_sync", lastrun);
out:
	json_decref(nodes);
	json_decref(guests);
	json_decref(lastrun);
	return r;
}

/* The node rows of one cluster; cluster: its name when there are several. */
static void
print_nodes(const json_t *out, const char *cluster)
{
	const json_t *n;
	size_t i;

	json_array_foreach(json_object_get(out, "nodes"), i, n) {
		char cpu[16] = "-", mem[32] = "-", disk[32] = "-", up[24] = "-";

		/* An offline node has no figures (PVE lists only its name). */
		if (!strcmp(pl_json_str_or(n, "status", ""), "online")) {
			snprintf(cpu, sizeof(cpu), "%5.1f%%", pl_json_num(n, "cpu", 0) * 100);
			snprintf(mem, sizeof(mem), "%lld/%lldG %3.0f%%",
				 pl_json_int(n, "mem", 0) >> 30, pl_json_int(n, "maxmem", 0) >> 30,
				 pct(pl_json_int(n, "mem", 0), pl_json_int(n, "maxmem", 0)));
			snprintf(disk, sizeof(disk), "%lld/%lldG %3.0f%%",
				 pl_json_int(n, "disk", 0) >> 30,
				 pl_json_int(n, "maxdisk", 0) >> 30,
				 pct(pl_json_int(n, "disk", 0), pl_json_int(n, "maxdisk", 0)));
			snprintf(up, sizeof(up), "%lldh", pl_json_int(n, "uptime", 0) / 3600);
		}
		if (cluster)
			printf("%-12s ", cluster);
		printf("%-14s %-8s %6s %16s %16s %8s\n", pl_json_str_or(n, "node", "?"),
		       pl_json_str_or(n, "status", "?"), cpu, mem, disk, up);
	}
}

/* One cluster's guest counts and last sync, after its name when there are
 * several. */
static void
print_counts(const json_t *out, const char *cluster)
{
	const json_t *counts = json_object_get(out, "guests");
	const json_t *lastrun = json_object_get(out, "last_sync");
	long long unseen = pl_json_int(counts, "unseen", 0);

	printf("%s%sguests: %lld", cluster ? cluster : "", cluster ? ": " : "",
	       pl_json_int(counts, "total", 0));
	for (int t = 0; t < 2; t++) {
		const char *tn = t ? "lxc" : "qemu";
		json_t *by = json_object_get(counts, tn);
		const char *k;
		json_t *v;
		bool first = true;

		printf("%s%s ", t ? "; " : " (", t ? "containers" : "VMs");
		if (json_object_size(by) == 0)
			fputs("none", stdout);
		json_object_foreach(by, k, v) {
			printf("%s%lld %s", first ? "" : ", ", (long long)json_integer_value(v), k);
			first = false;
		}
	}
	puts(")");
	if (unseen)
		printf("outside the token's view: %lld of them, kept as last synced (no "
		       "VM.Audit on their /vms/ID or pool)\n",
		       unseen);
	if (lastrun) {
		time_t t = (time_t)pl_json_num(lastrun, "finished", 0);
		char when[64];

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
		printf("%slast sync: %s (run %lld)\n", cluster ? "  " : "", when,
		       pl_json_int(lastrun, "id", 0));
	}
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s = { 0 };
	struct pl_args a;
	json_t *all = json_array(), *out;
	char **cls = NULL, *err = NULL;
	size_t ncl, i;
	bool live = false;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_status, ctx, argc, argv)) != 0) {
		json_decref(all);
		return pl_args_exit(r);
	}
	live = pl_args_has(&a, 0);
	ncl = pl_cmd_clusters(ctx, &cls);
	for (i = 0; i < ncl; i++) {
		struct pl_ctx one = *ctx;

		one.cluster = cls[i] ? cls[i] : ctx->cluster;
		out = NULL;
		if ((r = pl_session_read(&s, &one, live, &err)) == PL_ENOENT && cls[i]) {
			/* never synced: the others are still shown */
			pl_warn(ctx, "cluster '%s': %s", cls[i], err);
			pl_session_close(&s);
			free(err);
			err = NULL;
			continue;
		}
		if (r != 0 || pl_view_status(s.state, &out, &err) != 0) {
			if (cls[i])
				pl_preferr(&err, PL_EINVAL, "cluster '%s'", cls[i]);
			pl_error("%s", err);
			goto out;
		}
		if (cls[i])
			json_object_set_new(out, "cluster", json_string(cls[i]));
		json_array_append_new(all, out);
		pl_session_close(&s);
	}
	if (ctx->output == PL_OUT_JSON) {
		/* several clusters: one object each, as one cluster's */
		pl_print_json(ncl > 1 ? json_incref(all) : json_incref(json_array_get(all, 0)));
	} else {
		printf("%s%s%-14s %-8s %6s %16s %16s %8s%s\n", pl_color(ctx, PL_C_BOLD),
		       ncl > 1 ? "CLUSTER      " : "", "NODE", "STATUS", "CPU", "MEM", "DISK",
		       "UPTIME", pl_color(ctx, PL_C_RESET));
		json_array_foreach(all, i, out)
			print_nodes(out, pl_json_str(out, "cluster"));
		fputc('\n', stdout);
		json_array_foreach(all, i, out)
			print_counts(out, pl_json_str(out, "cluster"));
	}
	rc = PL_EXIT_OK;
out:
	json_decref(all);
	free(err);
	pl_session_close(&s);
	pl_cmd_clusters_free(cls, ncl);
	return rc;
}

const struct pl_cmd pl_cmd_status = {
	.name = "status",
	.summary = "show nodes and guest counts from the local state",
	.usage = "[--live]",
	.opts = opts,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
