/*
 * The apply executor: runs a plan's changes on the event loop through the
 * API client, in parallel (-j), each change a chain of Proxmox calls that
 * waits for its tasks. Bridges first, then guests, deletions last; an
 * existing guest is snapshotted before it is modified, and backed up before
 * it is destroyed, so a run can be rolled back. After a failure nothing new
 * starts; running work finishes. Asked to stop (pl_apply_opts.stop), it
 * starts nothing new and lets each change in flight finish the task it is
 * waiting for; asked to abandon, it stops waiting (Proxmox goes on with the
 * tasks).
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
	bool allow_delete;     /* carry out deletes (else a plan with any is refused) */
	long long max_deletes; /* with allow_delete: refuse a plan with more; -1: no limit */
	bool snapshot;         /* snapshot guests before modifying them (default on) */
	bool no_backup;        /* destroy without a vzdump backup first (--no-backup) */
	const char *backup_storage; /* where backups go (NULL: 'local' or the first storage
				     * with content 'backup' on the guest's node) */
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
	/* {"<vmid>": true} of the guests this run may stop, reboot, replace,
	 * roll back or destroy (pl_apply_owned); NULL: none. Borrowed. */
	const json_t *owned;
};

#define PL_APPLY_STOP 1
#define PL_APPLY_ABANDON 2

/*
 * Execute plan. Besides the planner's actions, "rollback" changes
 * ({"action":"rollback","snapshot","running"}) restore a snapshot,
 * "restore" changes ({"action":"restore","archive","running"}, with
 * "old_vmid","from_type","old_node" when a replacement must go first, or
 * "overwrite":true to back the guest up, stop it and restore over it)
 * restore a guest from a vzdump archive, and "backup" changes
 * ({"action":"backup","mode","compress"}: vzdump's, default snapshot and
 * zstd) take a vzdump backup of the guest now (its "backup" says which).
 * Before a delete or a replace destroys a guest it is backed up (vzdump)
 * unless o->no_backup; a failed backup stops the change before its destroy.
 * An update takes its way back first (o->snapshot): the vzdump backup
 * when its "way_back" kind is "backup" (plan/wayback.h), else a snapshot,
 * and a snapshot Proxmox refuses ("snapshot feature is not available")
 * becomes a backup; a failed way back ends the change before it changes
 * anything.
 * A change's "old_vmid", "from_type", "old_node" name the guest it removes
 * (default: its own vmid, type, node).
 * *result (new reference) is
 * {"ok":N,"failed":N,"skipped":N,"interrupted":N,"abandoned":N,"stopped":bool,
 *  "changes":[{"guest","action","vmid","node","type","status","error",
 *  "snapshot","created","destroyed","step","upid","was_running","pending_reboot",
 *  "backup":"<volid>","backup_storage","backup_node","no_backup","from_type",
 *  "old_vmid","old_node","archive","way_back" (an update's: {"kind","reason"}),
 *  "steps_done":[step names carried out, as pl_apply_steps lists them]}]}:
 * status "ok", "failed", "not started" (counted as "skipped"), "interrupted"
 * (ended early between tasks) or "abandoned" (its task "upid" was still
 * running in step "step"); the results handed to opts.record say "running"
 * of a change in flight; "snapshot" is named only once it was taken,
 * "created" is true once the new guest exists, "destroyed" once the old one
 * is gone, "backup" once its archive is known.
 * A plan with more deletes than allowed (none without allow_delete, else
 * max_deletes), or one that would stop, reboot, replace, roll back or destroy
 * a guest not in o->owned, is refused whole: nothing runs, every change is "not started"
 * and the deletes carry the reason in "error"; returns PL_EINVAL.
 * Returns 0 when every change succeeded, PL_ECANCEL when stopped (and none
 * failed), PL_ETASK otherwise.
 * This is pl_apply_start with the loop run until its callback (for the CLI):
 * it reads *o->stop after each turn of the loop.
 */
int pl_apply_run(struct event_base *base, struct pl_pve *c, const json_t *plan,
		 const struct pl_apply_opts *o, json_t **result);

/* A run on the caller's loop. */
struct pl_apply;
/* Called once, from the loop, when the run ends: r and result (borrowed) as
 * pl_apply_run returns them. The run's handle is gone once it returns. */
typedef void (*pl_apply_done_cb)(int r, json_t *result, void *arg);
/* Start executing plan on base and return at once; cb reports the end (also
 * of a plan refused whole). Nothing here waits: every step is a callback on
 * base. o is copied; what it points to (arg, *stop) must live until cb. A
 * change of *o->stop is seen at the run's next event; pl_apply_cancel says it
 * at once. */
struct pl_apply *pl_apply_start(struct event_base *base, struct pl_pve *c, const json_t *plan,
				const struct pl_apply_opts *o, pl_apply_done_cb cb, void *arg);
/* Ask a run to stop (PL_APPLY_STOP) or to stop waiting (PL_APPLY_ABANDON:
 * cb comes at the loop's next turn, the tasks in flight go on in Proxmox).
 * Only ever raises the level; a handle whose cb has run must not be used. */
void pl_apply_cancel(struct pl_apply *a, int level);
/* The allow-list for pl_apply_opts.owned: the guests of snap that project
 * owns (pl_model_owned_by). New reference. */
json_t *pl_apply_owned(const json_t *snap, const char *project);

/* Why a change's create would fail (a new string), or NULL: no ostemplate for
 * a container, a config the schema rejects, and with storages (a list of
 * {"storage","content"[,"node"]}) a storage missing on node or without the
 * content type the guest needs there. */
char *pl_apply_create_problem(const json_t *change, const json_t *storages, const char *node);
/*
 * The steps apply runs for one change of a plan under these options (only
 * reboot, allow_replace, snapshot and no_backup matter), by name: ["snapshot","config",
 * "resize","reboot"]. The executor builds its program with the same code, so
 * a plan lists exactly what apply does. New reference.
 */
json_t *pl_apply_steps(const json_t *change, const struct pl_apply_opts *o);

#endif
