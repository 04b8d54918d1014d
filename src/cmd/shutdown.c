/*
 * `pvelab shutdown GUEST...`: shut guests down cleanly (ACPI or init); several guests go in parallel and each
 * waits for its Proxmox task (engine in act.c).
 */
#include "core/common.h"
#include "cmd/act.h"

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	return pl_act_power(ctx, &pl_cmd_shutdown, "shutdown", argc, argv);
}

const struct pl_cmd pl_cmd_shutdown = {
	.name = "shutdown",
	.summary = "shut guests down cleanly (ACPI or init)",
	.usage = "[--timeout SECS] [--force-stop] GUEST...",
	.help = "GUEST is a vmid or a name. Prints one line per guest when its task ends. A guest that\n"
		"does not act on ACPI (no ACPI, or an OS that ignores the power button) is still running\n"
		"when the timeout passes: the shutdown fails, or with --force-stop PVE stops it.",
	.opts = pl_act_shutdown_opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
