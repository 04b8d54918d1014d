/*
 * Reaching inside a guest for stacks and verify: the QEMU guest agent
 * through the Proxmox API (exec + exec-status, file-write) or an SSH session
 * (core/ssh.h), behind one small interface; plus the guest's task calls
 * (snapshot, rollback) and the reading of `docker compose ps`. Blocking: for
 * commands, never an event loop.
 */
#ifndef PL_CMD_GUESTX_H
#define PL_CMD_GUESTX_H

#include "core/common.h"

#include <jansson.h>

struct pl_session;
struct pl_ssh;

/* How one guest is reached: the agent through the API, or an SSH session. */
struct pl_gx {
	struct pl_session *s;
	const char *node;
	long long vmid;
	bool lxc;
	struct pl_ssh *ssh; /* NULL: the agent */
	/* optional: a command's output as it comes (stream 1 stdout, 2 stderr):
	 * over SSH while it runs, through the agent at its end */
	void (*on_output)(void *ctx, int stream, const char *p, size_t n);
	void *out_ctx;
};

struct pl_gx_res {
	int code;
	char *out, *err;
};

/* Run argv in the guest (agent exec then exec-status until it exited, or
 * the argv quoted for the SSH user's shell); res is the caller's to release. */
int pl_gx_run(struct pl_gx *x, const json_t *argv, int timeout_ms, struct pl_gx_res *res,
	      char **errmsg);
void pl_gx_res_release(struct pl_gx_res *x);
/* pl_gx_run, a non-zero exit an error naming the command. */
int pl_gx_must(struct pl_gx *x, const json_t *argv, char **errmsg);
/* Write path atomically with mode (missing directories made). */
int pl_gx_write(struct pl_gx *x, const char *path, const char *data, size_t len, unsigned mode,
		char **errmsg);
/* METHOD /nodes/NODE/{qemu|lxc}/VMID/SUFFIX, its task waited for. */
int pl_gx_task(struct pl_gx *x, const char *method, const char *suffix, const json_t *params,
	       char **errmsg);
/* How many services compose ps's output (JSON lines, or one array) shows not
 * running or unhealthy (none listed counts as one); *why names the first. */
int pl_gx_services_down(const char *ps, char **why);
/* Where compose ps's services are after compose up: PL_GX_DOWN when one is
 * not running, unhealthy, or none is listed (*why names it), PL_GX_STARTING
 * while one's healthcheck has not yet passed (*why names it), else PL_GX_UP. */
enum { PL_GX_UP, PL_GX_STARTING, PL_GX_DOWN };
int pl_gx_services_health(const char *ps, char **why);
/* An SSH session to guest gcfg (its ssh:, stack_defaults.ssh, else its
 * first static IPv4), host keys trusted on first use in the state store. */
int pl_gx_ssh_open(struct pl_session *s, const json_t *gcfg, struct pl_ssh **out, char **errmsg);

/* Reach guest gcfg (its config) that the cluster lists as g ({vmid, node,
 * type "qemu"|"lxc", status}) by transport ("auto": the agent for a VM with
 * agent: true, else SSH; *chosen says which): refused unless it runs; the
 * agent pinged (or SSH connected) again for up to wait_ms while it fails
 * as a booting guest does. x is set up; release it with pl_gx_close. */
int pl_gx_open(struct pl_session *s, const json_t *gcfg, const json_t *g, const char *transport,
	       int wait_ms, struct pl_gx *x, const char **chosen, char **errmsg);
void pl_gx_close(struct pl_gx *x);
/* The monotonic clock in ms, for the deadlines of the waits in guests. */
long long pl_gx_mono_ms(void);
/* Whether the command was interrupted: a Ctrl-C inside `pvelab console`
 * (its loop run once to take one that came) stopped s's API client. */
bool pl_gx_stopped(struct pl_session *s);

#endif
