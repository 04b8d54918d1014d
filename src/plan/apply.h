/*
 * The apply executor: runs a plan's changes on the event loop through the
 * API client, in parallel (-j), each change a chain of Proxmox calls that
 * waits for its tasks. Bridges first, then guests, deletions last; an
 * existing guest is snapshotted before it is modified, so a run can be
 * rolled back. After a failure nothing new starts; running work finishes.
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
	void *arg;
};

/*
 * Execute plan. Besides the planner's actions, "rollback" changes
 * ({"action":"rollback","snapshot","running"}) restore a snapshot.
 * *result (new reference) is
 * {"ok":N,"failed":N,"skipped":N,"changes":[{"guest","action","vmid","node",
 *  "type","status":"ok|failed|skipped","error","snapshot","was_running",
 *  "steps_done":[step names carried out, as pl_apply_steps lists them]}]}.
 * Returns 0 when every change succeeded, PL_ETASK otherwise.
 */
int pl_apply_run(struct event_base *base, struct pl_pve *c, const json_t *plan,
		 const struct pl_apply_opts *o, json_t **result);

/*
 * The steps apply runs for one change of a plan under these options (only
 * reboot, allow_replace and snapshot matter), by name: ["snapshot","config",
 * "resize","reboot"]. The executor builds its program with the same code, so
 * a plan lists exactly what apply does. New reference.
 */
json_t *pl_apply_steps(const json_t *change, const struct pl_apply_opts *o);

#endif
