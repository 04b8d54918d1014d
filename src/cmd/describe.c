/*
 * `pvelab describe GUEST`: one guest in full from the local state (config,
 * status, recent tasks), plus its snapshots read live when the API is set up.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/views.h"
#include "core/apischema.h"
#include "core/json.h"
#include "pve/client.h"
#include "state/state.h"

#include <time.h>

static const struct pl_opt opts[] = {
	{ "live", 'l', NULL, "sync from the cluster first" },
	{ NULL, 0, NULL, NULL },
};

static int
keycmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
print_config(const json_t *cfg)
{
	const char **keys = pl_calloc(json_object_size(cfg) + 1, sizeof(*keys));
	const char *k;
	json_t *v;
	size_t n = 0;

	json_object_foreach((json_t *)cfg, k, v)
		keys[n++] = k;
	qsort(keys, n, sizeof(*keys), keycmp);
	for (size_t i = 0; i < n; i++) {
		v = json_object_get(cfg, keys[i]);
		if (json_is_string(v))
			printf("  %-14s %s\n", keys[i], json_string_value(v));
		else {
			char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

			printf("  %-14s %s\n", keys[i], t);
			free(t);
		}
	}
	free(keys);
}

int
pl_view_describe(struct pl_session *s, const char *guest, bool snapshots, const json_t *live,
		 json_t **out, char **snap_err, char **errmsg)
{
	json_t *g = NULL, *tasks = NULL, *snaps = NULL;
	char *serr = NULL;
	int r;

	*out = NULL;
	if ((r = pl_session_guest(s, guest, &g, errmsg)) != 0)
		return r;
	pl_view_overlay(g, live);
	pl_state_tasks(s->state, pl_json_int(g, "vmid", 0), 10, &tasks, NULL);
	/* Snapshots are not part of a sync: ask the node when we can. */
	if (snapshots && pl_session_api(s, &serr) == 0)
		pl_session_snapshots(s, g, &snaps, &serr);
	/* (a store written before pvelab masked passwords may still hold one) */
	pl_api_mask_secrets(json_object_get(g, "config"));
	json_object_set_new(g, "tasks", tasks ? tasks : json_array());
	if (snaps)
		json_object_set_new(g, "snapshots", snaps);
	if (snap_err)
		*snap_err = serr;
	else
		free(serr);
	*out = g;
	return 0;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s = { 0 };
	struct pl_ctx one;
	struct pl_args a;
	char *cl = NULL;
	json_t *out = NULL, *t;
	char *err = NULL, *serr = NULL;
	bool live = false;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_describe, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	live = pl_args_has(&a, 0);
	/* several clusters: in the one that has it (one: the options after
	 * the command included) */
	one = *ctx;
	if (pl_cmd_guest_cluster(&one, a.pos[0], &cl, &err) != 0 ||
	    pl_session_read(&s, &one, live, &err) != 0 ||
	    pl_view_describe(&s, a.pos[0], true, NULL, &out, &serr, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (cl)
		json_object_set_new(out, "cluster", json_string(cl));
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(out);
		out = NULL;
		rc = PL_EXIT_OK;
		goto out;
	}
	printf("%s%lld %s%s (%s on %s): %s", pl_color(ctx, PL_C_BOLD), pl_json_int(out, "vmid", 0),
	       pl_json_str_or(out, "name", "-"), pl_color(ctx, PL_C_RESET),
	       !strcmp(pl_json_str_or(out, "type", ""), "qemu") ? "vm" : "lxc",
	       pl_json_str_or(out, "node", "?"), pl_json_str_or(out, "status", "?"));
	if (pl_json_str(out, "lock"))
		printf(", locked (%s)", pl_json_str(out, "lock"));
	if (pl_json_int(out, "template", 0))
		fputs(", template", stdout);
	if (cl)
		printf(", cluster %s", cl);
	putchar('\n');
	if (pl_json_str(out, "tags"))
		printf("tags: %s\n", pl_json_str(out, "tags"));
	if (json_is_number(json_object_get(out, "maxmem")))
		printf("cpu %.1f%% of %lld, mem %lld/%lld MiB, disk %lld GiB, uptime %lld s\n",
		       pl_json_num(out, "cpu", 0) * 100, pl_json_int(out, "maxcpu", 0),
		       pl_json_int(out, "mem", 0) >> 20, pl_json_int(out, "maxmem", 0) >> 20,
		       pl_json_int(out, "maxdisk", 0) >> 30, pl_json_int(out, "uptime", 0));
	else /* PVE lists a guest of an offline node without figures */
		puts("cpu, mem, disk: not reported by the cluster");
	printf("\nconfig:\n");
	if (json_object_get(out, "config"))
		print_config(json_object_get(out, "config"));
	else
		puts("  (not read yet: its node was offline or did not answer)");
	printf("\nsnapshots:\n");
	if (json_object_get(out, "snapshots") == NULL)
		printf("  (not available: %s)\n", serr ? serr : "no API connection");
	else if (json_array_size(json_object_get(out, "snapshots")) == 0)
		printf("  none\n");
	json_array_foreach(json_object_get(out, "snapshots"), i, t) {
		time_t when = (time_t)pl_json_int(t, "snaptime", 0);
		char ws[64] = "-";

		if (when)
			strftime(ws, sizeof(ws), "%Y-%m-%d %H:%M", localtime(&when));
		printf("  %-20s %s%s %s\n", pl_json_str_or(t, "name", "?"), ws,
		       pl_json_int(t, "vmstate", 0) ? " +ram" : "",
		       pl_json_str_or(t, "description", ""));
	}
	printf("\nrecent tasks:\n");
	if (json_array_size(json_object_get(out, "tasks")) == 0)
		printf("  none seen\n");
	json_array_foreach(json_object_get(out, "tasks"), i, t) {
		time_t when = (time_t)pl_json_int(t, "starttime", 0);
		char ws[64];

		strftime(ws, sizeof(ws), "%Y-%m-%d %H:%M:%S", localtime(&when));
		printf("  %s %-12s %s\n", ws, pl_json_str_or(t, "type", "?"),
		       pl_json_str_or(t, "status", "running"));
	}
	rc = PL_EXIT_OK;
out:
	json_decref(out);
	free(err);
	free(serr);
	pl_session_close(&s);
	free(cl);
	return rc;
}

const struct pl_cmd pl_cmd_describe = {
	.name = "describe",
	.summary = "show one guest: config, status, snapshots, recent tasks",
	.usage = "[--live] GUEST",
	.help = "GUEST is a vmid or a name.",
	.opts = opts,
	.min_args = 1,
	.max_args = 1,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
