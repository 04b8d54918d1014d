/*
 * A read off the caller's loop: one GET on a thread of its own, for a
 * server whose loop must not stall on a large answer (src/pve/apart.c).
 */
#ifndef PL_PVE_APART_H
#define PL_PVE_APART_H

#include "pve/client.h"

struct pl_pve_apart;

/* On the reading thread, with the answer (borrowed for the call). */
typedef void (*pl_pve_work_cb)(const struct pl_pve_result *res, void *arg);
/* On the caller's loop, once work has run (or the read could not). */
typedef void (*pl_pve_done_cb)(void *arg);

/* GET path (params as pl_pve_request takes them) on a thread with its own
 * loop and a clone of c, running behind the caller's loop in priority: the
 * answer is received and parsed there and given to work, also there; done
 * then runs on c's loop. arg is the caller's: work fills it in, done reads
 * it, nothing else touches it meanwhile. NULL (and *errmsg) when the clone
 * cannot be made. */
struct pl_pve_apart *pl_pve_get_apart(struct pl_pve *c, const char *path, const json_t *params,
				      pl_pve_work_cb work, pl_pve_done_cb done, void *arg,
				      char **errmsg);
/* Stop the read and wait for its thread, on c's loop before done: done is
 * not called. NULL is fine. */
void pl_pve_apart_cancel(struct pl_pve_apart *a);

/* Lower the calling thread's priority (nice 10) so that a server's loop
 * wins the CPU from its background readers: best effort. */
void pl_pve_thread_background(void);

#endif
