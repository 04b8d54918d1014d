/*
 * The apply executor: runs a plan's changes on the event loop through the
 * API client, in parallel (-j), each change a chain of Proxmox calls that
 * waits for its tasks. Bridges first, then guests, deletions last; an
 * existing guest is snapshotted before it is modified, so a run can be
 * rolled back. After a failure nothing new starts; running work finishes.
 * Asked to stop (pl_apply_opts.stop), it starts nothing new and lets each
 * change in flight finish the task it is waiting for; asked to abandon, it
 * stops waiting (Proxmox goes on with the tasks).
 */
#ifndef PL_PLAN_APPLY_H
#define PL_PLAN_APPLY_H

#include "core/common.h"

#include <jansson.h>

struct event_base;
struct pl_pve;

/* One step of one change, for progress display. */
struct pl_apply_event {
	const char *guest;
	const char *action; /* the change's action */
	const char *step;   /* "create", "snapshot", "start", ...; "done" when the change ends */
	bool done;          /* the step finished (else it started) */
	const char *error;  /* the change failed with this (done is true) */
	bool stopped;       /* the change ended early: "interrupted" or "abandoned" (done is true) */
	size_t finished, total; /* changes finished of all */
};

struct pl_apply_opts {
	int jobs;              /* changes in flight (default 4) */
	bool reboot;           /* reboot guests whose changes are pending */
	bool allow_replace;    /* carry out replacements */
	bool snapshot;         /* snapshot guests before modifying them (default on) */
	long long run_id;      /* names the snapshots pvelab-pre-<run_id> */
	long task_timeout_ms;  /* per task (0: 10 min) */
	void (*progress)(const struct pl_apply_event *ev, void *arg);
	/* Each time a change ends or takes a step that matters for a rollback
	 * (a snapshot taken, a guest created, destroyed or moved): change is
	 * its entry in the result, result the whole result so far (both
	 * borrowed for the call), for the caller to record. */
	void (*record)(const json_t *change, const json_t *result, void *arg);
	void *arg;
	/* Read after every event the executor handles, NULL for never: 0 go
	 * on; 1 (PL_APPLY_STOP) start no more changes, and end each change in
	 * flight once its current task has finished (unless that would leave a
	 * guest half made: a create, or a replace past its destroy, completes);
	 * 2 (PL_APPLY_ABANDON) also stop waiting for the tasks in flight. */
	const int *stop;
};

#define PL_APPLY_STOP 1
#define PL_APPLY_ABANDON 2

/*
 * Execute plan. Besides the planner's actions, "rollback" changes
 * ({"action":"rollback","snapshot","running"}) restore a snapshot.
 * *result (new reference) is
 * {"ok":N,"failed":N,"skipped":N,"interrupted":N,"abandoned":N,"stopped":bool,
 *  "changes":[{"guest","action","vmid","node","type","status","error",
 *  "snapshot","created","done","step","upid","was_running","pending_reboot"}]}:
 * status "ok", "failed", "not started" (counted as "skipped"), "interrupted"
 * (ended early between tasks) or "abandoned" (its task "upid" was still
 * running in step "step"); the results handed to opts.record say "running"
 * of a change in flight; "snapshot" is named only once it was taken,
 * "created" is true once the guest exists, "done" lists the steps finished.
 * Returns 0 when every change succeeded, PL_ECANCEL when stopped (and none
 * failed), PL_ETASK otherwise.
 */
int pl_apply_run(struct event_base *base, struct pl_pve *c, const json_t *plan,
		 const struct pl_apply_opts *o, json_t **result);

#endif
