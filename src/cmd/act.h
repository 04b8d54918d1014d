/*
 * The shared engine of the act commands (start, stop, shutdown, reboot,
 * suspend, resume, snapshot): resolve guests live, send the requests in
 * parallel, wait for each task and print one line per guest.
 */
#ifndef PL_CMD_ACT_H
#define PL_CMD_ACT_H

#include "cmd/cmd.h"

/* Run a power action ("start", "stop", ...) on the GUEST... arguments. */
int pl_act_power(struct pl_ctx *ctx, const struct pl_cmd *cmd, const char *action, int argc,
		 char **argv);

/* `snapshot GUEST NAME [--vmstate] [--description TEXT] [--timeout SECS]`. */
int pl_act_snapshot(struct pl_ctx *ctx, const struct pl_cmd *cmd, int argc, char **argv);

/* Options of the power commands: all take --timeout, the task wait, but for
 * shutdown and reboot, which give it to the guest to power down in; stop also
 * takes --overrule-shutdown, shutdown --force-stop. */
extern const struct pl_opt pl_act_opts[];
extern const struct pl_opt pl_act_stop_opts[];
extern const struct pl_opt pl_act_reboot_opts[];
extern const struct pl_opt pl_act_shutdown_opts[];

#endif
