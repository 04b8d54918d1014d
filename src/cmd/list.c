/*
 * `pvelab list`: the guests as last synced, filtered by type, node, status or
 * tag and sorted; `-o json` gives an array of guest objects.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/views.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "state/state.h"

static const struct pl_opt opts[] = {
	{ "type", 't', "vm|lxc", "only VMs (qemu) or containers" },
	{ "node", 'n', "NODE", "only guests on this node" },
	{ "status", 's', "STATUS", "only guests in this state (running, stopped, ...)" },
	{ "tag", 'T', "TAG", "only guests carrying this tag" },
	{ "sort", 'S', "KEY", "sort by vmid (default), name, node, status, mem or cpu (the MEM and CPUS columns, biggest first)" },
	{ "live", 'l', NULL, "sync from the cluster first" },
	{ NULL, 0, NULL, NULL },
};

static const char *sort_key = "vmid";

static bool
has_tag(const char *tags, const char *tag)
{
	size_t n = strlen(tag);
	const char *p = tags;

	while (p && *p) {
		size_t l = strcspn(p, ";, ");

		if (l == n && !strncmp(p, tag, n))
			return true;
		p += l;
		p += strspn(p, ";, ");
	}
	return false;
}

static int
cmp(const void *a, const void *b)
{
	const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
	int r = 0;

	if (!strcmp(sort_key, "name") || !strcmp(sort_key, "node") || !strcmp(sort_key, "status"))
		r = strcmp(pl_json_str_or(x, sort_key, ""), pl_json_str_or(y, sort_key, ""));
	else if (!strcmp(sort_key, "mem") || !strcmp(sort_key, "cpu")) {
		/* by the columns the table shows: MEM(MiB) and CPUS, the sizes */
		const char *k = !strcmp(sort_key, "mem") ? "maxmem" : "maxcpu";
		double dx = pl_json_num(x, k, 0), dy = pl_json_num(y, k, 0);

		r = dx < dy ? 1 : dx > dy ? -1 : 0; /* biggest first */
	}
	if (r == 0) {
		long long vx = pl_json_int(x, "vmid", 0), vy = pl_json_int(y, "vmid", 0);

		r = vx < vy ? -1 : vx > vy;
	}
	return r;
}

int
pl_view_list_check(const struct pl_view_list *f, const char **field, char **errmsg)
{
	const char *t = f->type, *k = f->sort;

	if (t && strcmp(t, "vm") && strcmp(t, "qemu") && strcmp(t, "lxc") && strcmp(t, "ct")) {
		*field = "type";
		return pl_seterr(errmsg, PL_EINVAL, "type is vm or lxc, not '%s'", t);
	}
	if (k && strcmp(k, "vmid") && strcmp(k, "name") && strcmp(k, "node") &&
	    strcmp(k, "status") && strcmp(k, "mem") && strcmp(k, "cpu")) {
		*field = "sort";
		return pl_seterr(errmsg, PL_EINVAL,
				 "cannot sort by '%s' (vmid, name, node, status, "
				 "mem, cpu)",
				 k);
	}
	return 0;
}

void
pl_view_overlay(json_t *guest, const json_t *live)
{
	static const char *const counters[] = {
		"cpu",    "mem",   "maxmem", "maxcpu",   "disk",      "maxdisk",
		"uptime", "netin", "netout", "diskread", "diskwrite", "memhost",
	};
	const json_t *e;
	char id[32];

	if (live == NULL)
		return;
	snprintf(id, sizeof(id), "%lld", pl_json_int(guest, "vmid", 0));
	if ((e = json_object_get(live, id)) == NULL)
		return;
	for (size_t i = 0; i < PL_ARRAY_LEN(counters); i++) {
		json_t *v = json_object_get(e, counters[i]);

		if (v && json_object_get(guest, counters[i]))
			json_object_set(guest, counters[i], v);
	}
}

int
pl_view_list(struct pl_state *st, const struct pl_view_list *f, const json_t *live, json_t **out,
	     char **errmsg)
{
	const char *type = f->type, *field;
	json_t *guests = NULL, **sel, *g;
	size_t n = 0, i;
	int r;

	*out = NULL;
	if ((r = pl_view_list_check(f, &field, errmsg)) != 0)
		return r;
	if (type)
		type = (!strcmp(type, "vm") || !strcmp(type, "qemu")) ? "qemu" : "lxc";
	if ((r = pl_state_guest_summaries(st, &(struct pl_state_filter){ type, f->node, f->status },
					  &guests, errmsg)) != 0)
		return r;
	sel = pl_calloc(json_array_size(guests) + 1, sizeof(*sel));
	json_array_foreach(guests, i, g) {
		if (f->tag == NULL || has_tag(pl_json_str(g, "tags"), f->tag))
			sel[n++] = g;
		pl_view_overlay(g, live); /* before the sort: mem and cpu may sort */
	}
	sort_key = f->sort ? f->sort : "vmid";
	qsort(sel, n, sizeof(*sel), cmp);
	*out = json_array();
	for (i = 0; i < n; i++)
		json_array_append(*out, sel[i]);
	free(sel);
	json_decref(guests);
	return 0;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_view_list f = { 0 };
	struct pl_session s = { 0 };
	char **cls = NULL;
	size_t ncl = 0;
	struct pl_args a;
	json_t *sel = NULL;
	const char *field;
	size_t i;
	bool live = false;
	char *err = NULL;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_list, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	f.type = pl_args_str(&a, 0, NULL);
	f.node = pl_args_str(&a, 1, NULL);
	f.status = pl_args_str(&a, 2, NULL);
	f.tag = pl_args_str(&a, 3, NULL);
	f.sort = pl_args_str(&a, 4, NULL);
	if (pl_view_list_check(&f, &field, &err) != 0) {
		rc = pl_usage_error(&pl_cmd_list, "--%s: %s", field, err);
		free(err);
		return rc;
	}
	live = pl_args_has(&a, 5);
	ncl = pl_cmd_clusters(ctx, &cls);
	sel = json_array();
	/* several clusters: each one's guests in turn, each saying whose */
	for (size_t k = 0; k < ncl; k++) {
		struct pl_ctx one = *ctx;
		json_t *part = NULL, *g;

		one.cluster = cls[k] ? cls[k] : ctx->cluster;
		if ((r = pl_session_read(&s, &one, live, &err)) == PL_ENOENT && cls[k]) {
			/* never synced: the others are still shown */
			pl_warn(ctx, "cluster '%s': %s", cls[k], err);
			pl_session_close(&s);
			free(err);
			err = NULL;
			continue;
		}
		if (r != 0 || pl_view_list(s.state, &f, NULL, &part, &err) != 0) {
			if (cls[k])
				pl_preferr(&err, PL_EINVAL, "cluster '%s'", cls[k]);
			pl_error("%s", err);
			goto out;
		}
		json_array_foreach(part, i, g)
			if (cls[k])
				json_object_set_new(g, "cluster", json_string(cls[k]));
		json_array_extend(sel, part);
		json_decref(part);
		pl_session_close(&s);
	}
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(sel);
		sel = NULL;
	} else {
		size_t unseen = 0;

		printf("%s%s%-6s %-24s %-5s %-12s %-9s %5s %9s  %s%s\n", pl_color(ctx, PL_C_BOLD),
		       ncl > 1 ? "CLUSTER      " : "", "VMID", "NAME", "TYPE", "NODE", "STATUS",
		       "CPUS", "MEM(MiB)", "TAGS", pl_color(ctx, PL_C_RESET));
		for (i = 0; i < json_array_size(sel); i++) {
			const json_t *x = json_array_get(sel, i);
			const char *st = pl_json_str_or(x, "status", "?");

			if (pl_json_str(x, PL_SNAP_UNSEEN)) { /* out of the token's view */
				unseen++;
				continue;
			}
			const char *col = !strcmp(st, "running") ? PL_C_GREEN :
					  !strcmp(st, "stopped") ? PL_C_DIM : PL_C_YELLOW;

			char cpus[24] = "-", mem[24] = "-"; /* none from an offline node */

			if (json_is_number(json_object_get(x, "maxcpu")))
				snprintf(cpus, sizeof(cpus), "%lld", pl_json_int(x, "maxcpu", 0));
			if (json_is_number(json_object_get(x, "maxmem")))
				snprintf(mem, sizeof(mem), "%lld", pl_json_int(x, "maxmem", 0) >> 20);
			if (ncl > 1)
				printf("%-12s ", pl_json_str_or(x, "cluster", "-"));
			printf("%-6lld %-24s %-5s %-12s %s%-9s%s %5s %9s  %s\n",
			       pl_json_int(x, "vmid", 0), pl_json_str_or(x, "name", "-"),
			       !strcmp(pl_json_str_or(x, "type", ""), "qemu") ? "vm" : "lxc",
			       pl_json_str_or(x, "node", "-"), pl_color(ctx, col), st,
			       pl_color(ctx, PL_C_RESET), cpus, mem, pl_json_str_or(x, "tags", ""));
		}
		if (unseen)
			pl_warn(ctx,
				"%zu guest%s outside the token's view (no VM.Audit on /vms/ID or "
				"its pool), kept as last synced and not listed (-o json has them)",
				unseen, unseen == 1 ? "" : "s");
	}
	rc = PL_EXIT_OK;
out:
	json_decref(sel);
	free(err);
	pl_session_close(&s);
	pl_cmd_clusters_free(cls, ncl);
	return rc;
}

const struct pl_cmd pl_cmd_list = {
	.name = "list",
	.summary = "list guests from the local state",
	.usage = "[--type vm|lxc] [--node NODE] [--status STATUS] [--tag TAG] [--sort KEY] [--live]",
	.help = "Reads the state database written by `pvelab sync`; --live syncs first.",
	.opts = opts,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
