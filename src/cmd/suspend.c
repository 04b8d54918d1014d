/*
 * `pvelab suspend GUEST...`: pause guests (RAM stays on the node); several guests go in parallel and each
 * waits for its Proxmox task (engine in act.c).
 */
#include "core/common.h"
#include "cmd/act.h"

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	return pl_act_power(ctx, &pl_cmd_suspend, "suspend", argc, argv);
}

const struct pl_cmd pl_cmd_suspend = {
	.name = "suspend",
	.summary = "pause guests (RAM stays on the node)",
	.usage = "[--timeout SECS] GUEST...",
	.help = "GUEST is a vmid or a name. Prints one line per guest when its task ends.",
	.opts = pl_act_opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
