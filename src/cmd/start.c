/*
 * `pvelab start GUEST...`: start guests and wait until they run; several guests go in parallel and each
 * waits for its Proxmox task (engine in act.c).
 */
#include "core/common.h"
#include "cmd/act.h"

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	return pl_act_power(ctx, &pl_cmd_start, "start", argc, argv);
}

const struct pl_cmd pl_cmd_start = {
	.name = "start",
	.summary = "start guests and wait until they run",
	.usage = "[--timeout SECS] GUEST...",
	.help = "GUEST is a vmid or a name. Prints one line per guest when its task ends.",
	.opts = pl_act_opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
