/*
 * `pvelab stop GUEST...`: stop guests at once (like pulling the plug); several guests go in parallel and each
 * waits for its Proxmox task (engine in act.c).
 */
#include "core/common.h"
#include "cmd/act.h"

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	return pl_act_power(ctx, &pl_cmd_stop, "stop", argc, argv);
}

const struct pl_cmd pl_cmd_stop = {
	.name = "stop",
	.summary = "stop guests at once (like pulling the plug)",
	.usage = "[--timeout SECS] [--overrule-shutdown] GUEST...",
	.help = "GUEST is a vmid or a name. Prints one line per guest when its task ends. A guest still\n"
		"shutting down holds its lock until its shutdown times out: --overrule-shutdown aborts\n"
		"that shutdown first (PVE 8.1 or later).",
	.opts = pl_act_stop_opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
