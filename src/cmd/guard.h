/*
 * What every command that changes guests through the executor (apply,
 * rollback, destroy) wraps its run in: the one-apply-per-cluster lock in the
 * state store (plus a lock file on this host, so that configs with separate
 * state databases are serialised too), and SIGINT/SIGTERM handled on the
 * session's event loop (the first stops scheduling, the second stops waiting;
 * a third ends the process, or inside `pvelab console` fails the command's
 * requests so that it returns and the console goes on).
 */
#ifndef PL_CMD_GUARD_H
#define PL_CMD_GUARD_H

#include "core/common.h"
#include "cmd/cmd.h"

struct event;
struct pl_session;

struct pl_guard {
	struct pl_session *s;
	char *key;            /* the lock's name: the cluster's endpoints */
	bool locked;
	int fd;               /* the host's lock file, held with flock while fd_held */
	bool fd_held;
	char *fd_path;
	int stop;             /* for pl_apply_opts.stop */
	int signo;            /* the first signal received, 0 for none */
	bool over;            /* the run has ended: only its record is left to write */
	struct event *ev[2];  /* SIGINT, SIGTERM while armed */
};

/* Take the cluster's lock for s (a stale one is taken over, said with -v).
 * On PL_ECONFLICT *errmsg is the one-line refusal naming the holder. */
int pl_guard_take(struct pl_guard *g, struct pl_session *s, char **errmsg);
/* Catch SIGINT and SIGTERM on s's event loop until released (before, they
 * end the process: nothing has changed, and its lock dies with it). */
void pl_guard_arm(struct pl_guard *g);
/* Whether a guard is armed in this process (the console then leaves its
 * Ctrl-C to the guard: stop scheduling first, stop waiting on the second). */
bool pl_guard_armed(void);
/* The run has ended: a signal now is remembered for the exit code while the
 * run is recorded, and a second one ends the process at once (inside the
 * console: fails the command's open requests). */
void pl_guard_over(struct pl_guard *g);
/* Disarm and release the lock; the guard may be zeroed memory never taken. */
void pl_guard_release(struct pl_guard *g);
/* Did the lock die since it was taken (PostgreSQL: with a broken connection
 * to the state database, which pvelab made again without it)? Then the run
 * starts nothing more (stop becomes PL_APPLY_STOP): true once, to say so. */
bool pl_guard_lost(struct pl_guard *g);
/* The exit code: 128 + the signal when one came, else code. */
int pl_guard_exit(const struct pl_guard *g, int code);
/* How the user ran pvelab, for hints: "pvelab" or "pvelab -c FILE" when -c
 * was given (quoted for the shell when needed). Caller frees. */
char *pl_cmd_invocation(const struct pl_ctx *ctx);
/* s quoted for a POSIX shell when it needs it. Caller frees. */
char *pl_cmd_shell_word(const char *s);

#endif
