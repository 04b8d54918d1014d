/*
 * The power commands — `pvelab start|stop|shutdown|reboot|suspend|resume
 * GUEST...`: several guests go in parallel and each waits for its Proxmox
 * task (engine in act.c). Each command is a row of its own; only the text,
 * the options and the action differ.
 */
#include "core/common.h"
#include "cmd/act.h"

#define GUEST_HELP "GUEST is a vmid or a name. Prints one line per guest when its task ends."

/* One power command: pl_cmd_<verb> running pl_act_power with action <verb>. */
#define POWER_CMD(verb, summary_, usage_, help_, opts_)                                            \
	static int run_##verb(struct pl_ctx *ctx, int argc, char **argv)                           \
	{                                                                                          \
		return pl_act_power(ctx, &pl_cmd_##verb, #verb, argc, argv);                       \
	}                                                                                          \
	const struct pl_cmd pl_cmd_##verb = {                                                      \
		.name = #verb,                                                                     \
		.summary = summary_,                                                               \
		.usage = usage_,                                                                   \
		.help = help_,                                                                     \
		.opts = opts_,                                                                     \
		.min_args = 1,                                                                     \
		.max_args = PL_ARGS_MANY,                                                          \
		.run = run_##verb,                                                                 \
		.flags = PL_CMD_MCP_WRITE,                                                         \
	}

POWER_CMD(start, "start guests and wait until they run", "[--timeout SECS] GUEST...", GUEST_HELP,
	  pl_act_opts);

POWER_CMD(stop, "stop guests at once (like pulling the plug)",
	  "[--timeout SECS] [--overrule-shutdown] GUEST...",
	  GUEST_HELP
	  " A guest still\n"
	  "shutting down holds its lock until its shutdown times out: --overrule-shutdown aborts\n"
	  "that shutdown first (PVE 8.1 or later).",
	  pl_act_stop_opts);

POWER_CMD(
	shutdown, "shut guests down cleanly (ACPI or init)",
	"[--timeout SECS] [--force-stop] GUEST...",
	GUEST_HELP
	" A guest that\n"
	"does not act on ACPI (no ACPI, or an OS that ignores the power button) is still running\n"
	"when the timeout passes: the shutdown fails, or with --force-stop PVE stops it.",
	pl_act_shutdown_opts);

POWER_CMD(
	reboot, "reboot guests cleanly", "[--timeout SECS] GUEST...",
	GUEST_HELP
	" A reboot is a\n"
	"shutdown and a start: a guest that does not act on ACPI fails it when the timeout passes.",
	pl_act_reboot_opts);

POWER_CMD(suspend, "pause guests (RAM stays on the node)", "[--timeout SECS] GUEST...", GUEST_HELP,
	  pl_act_opts);

POWER_CMD(resume, "resume paused guests", "[--timeout SECS] GUEST...", GUEST_HELP, pl_act_opts);
