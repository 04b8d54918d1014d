/*
 * `pvelab snapshots GUEST`: the guest's snapshots, read live from its node.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/json.h"
#include "pve/client.h"

#include <time.h>

static const struct pl_opt opts[] = {
	{ NULL, 0, NULL, NULL },
};

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	json_t *res = NULL, *list = NULL, *t;
	const json_t *g;
	char *err = NULL;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_snapshots, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if (pl_session_open(&s, ctx, PL_NEED_API, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (pl_session_live_guests(&s, &res, &err) != 0 ||
	    (g = pl_guest_lookup(res, a.pos[0], &err)) == NULL) {
		pl_error("%s", err);
		goto out;
	}
	if (pl_session_snapshots(&s, g, &list, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(list);
		list = NULL;
	} else if (json_array_size(list) == 0) {
		printf("%s (%lld) has no snapshots\n", pl_json_str_or(g, "name", "-"),
		       pl_json_int(g, "vmid", 0));
	} else {
		printf("%s%-20s %-17s %-5s %-20s %s%s\n", pl_color(ctx, PL_C_BOLD), "NAME", "TAKEN",
		       "RAM", "PARENT", "DESCRIPTION", pl_color(ctx, PL_C_RESET));
		json_array_foreach(list, i, t) {
			time_t when = (time_t)pl_json_int(t, "snaptime", 0);
			char ws[64] = "-";
			const char *d = pl_json_str_or(t, "description", "");

			if (when)
				strftime(ws, sizeof(ws), "%Y-%m-%d %H:%M", localtime(&when));
			printf("%-20s %-17s %-5s %-20s %.*s\n", pl_json_str_or(t, "name", "?"), ws,
			       pl_json_int(t, "vmstate", 0) ? "yes" : "no",
			       pl_json_str_or(t, "parent", "-"), (int)strcspn(d, "\n"), d);
		}
	}
	rc = PL_EXIT_OK;
out:
	json_decref(list);
	json_decref(res);
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_snapshots = {
	.name = "snapshots",
	.summary = "list a guest's snapshots",
	.usage = "GUEST",
	.opts = opts,
	.min_args = 1,
	.max_args = 1,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
