/*
 * `pvelab snapshot GUEST NAME [--vmstate]`: take a snapshot and wait for its
 * task (engine in act.c).
 */
#include "core/common.h"
#include "cmd/act.h"

static const struct pl_opt opts[] = {
	{ "vmstate", 0, NULL, "include the RAM of a running VM" },
	{ "description", 'd', "TEXT", "a note stored with the snapshot" },
	{ "timeout", 0, "SECS", "give up waiting for the task after SECS (default 600)" },
	{ NULL, 0, NULL, NULL },
};

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	return pl_act_snapshot(ctx, &pl_cmd_snapshot, argc, argv);
}

const struct pl_cmd pl_cmd_snapshot = {
	.name = "snapshot",
	.summary = "take a snapshot of a guest",
	.usage = "[--vmstate] [--description TEXT] [--timeout SECS] GUEST NAME",
	.opts = opts,
	.min_args = 2,
	.max_args = 2,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
