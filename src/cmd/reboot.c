/*
 * `pvelab reboot GUEST...`: reboot guests cleanly; several guests go in parallel and each
 * waits for its Proxmox task (engine in act.c).
 */
#include "core/common.h"
#include "cmd/act.h"

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	return pl_act_power(ctx, &pl_cmd_reboot, "reboot", argc, argv);
}

const struct pl_cmd pl_cmd_reboot = {
	.name = "reboot",
	.summary = "reboot guests cleanly",
	.usage = "[--timeout SECS] GUEST...",
	.help = "GUEST is a vmid or a name. Prints one line per guest when its task ends. A reboot is a\n"
		"shutdown and a start: a guest that does not act on ACPI fails it when the timeout passes.",
	.opts = pl_act_reboot_opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
