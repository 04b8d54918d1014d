/*
 * The shared engine of the act commands (start, stop, shutdown, reboot,
 * suspend, resume, snapshot): resolve guests live, send the requests in
 * parallel, wait for each task and print one line per guest.
 */
#ifndef PL_CMD_ACT_H
#define PL_CMD_ACT_H

#include "cmd/cmd.h"

#include <jansson.h>

/* Run a power action ("start", "stop", ...) on the GUEST... arguments. */
int pl_act_power(struct pl_ctx *ctx, const struct pl_cmd *cmd, const char *action, int argc,
		 char **argv);

struct pl_session;
/* Called once with the action's result, as `-o json` lists them:
 * {vmid,name,node,action,ok,upid?,error?,unchanged?,seconds} (borrowed). */
typedef void (*pl_act_cb)(const json_t *result, void *arg);
/* The same engine on the session's loop, for one guest (its entry in the
 * resource list): the POST, then the wait for its task (timeout_ms), the task
 * remembered in the store; cb runs once, from the loop or from this call
 * (a guest refused at once: locked). params: PVE's (may be NULL). */
void pl_act_start(struct pl_session *s, const char *action, const json_t *guest,
		  const json_t *params, long timeout_ms, pl_act_cb cb, void *arg);

/* The same for any call that starts a task on the guest: method ("POST",
 * "DELETE") on /nodes/N/TYPE/VMID/suffix ("snapshot", "snapshot/NAME/rollback");
 * action names it in the result. action, method and suffix must live until
 * cb (string literals, or the caller's until then). */
void pl_act_call(struct pl_session *s, const char *action, const char *method, const char *suffix,
		 const json_t *guest, const json_t *params, long timeout_ms, pl_act_cb cb,
		 void *arg);

/* `snapshot GUEST NAME [--vmstate] [--description TEXT] [--timeout SECS]`. */
/* A write recorded as a run of kind (the power actions, snapshot, backup),
 * in the state store when there is one (opened into s->state if need be,
 * never created): its id, 0 without a store. pl_act_run_end finishes it,
 * "ok" or "failed", with result (stolen, may be NULL); via (plan/runs.h)
 * says who asked. */
long long pl_act_run_begin(struct pl_session *s, const char *kind);
void pl_act_run_end(struct pl_session *s, long long id, bool ok, json_t *result);

int pl_act_snapshot(struct pl_ctx *ctx, const struct pl_cmd *cmd, int argc, char **argv);

/* Options of the power commands: all take --timeout, the task wait, but for
 * shutdown and reboot, which give it to the guest to power down in; stop also
 * takes --overrule-shutdown, shutdown --force-stop. */
extern const struct pl_opt pl_act_opts[];
extern const struct pl_opt pl_act_stop_opts[];
extern const struct pl_opt pl_act_reboot_opts[];
extern const struct pl_opt pl_act_shutdown_opts[];

#endif
