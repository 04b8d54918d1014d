/*
 * The apply executor: runs a plan's changes on the event loop through the
 * API client, in parallel (-j), each change a chain of Proxmox calls that
 * waits for its tasks. Bridges first, then guests, deletions last; an
 * existing guest is snapshotted before it is modified, and backed up before
 * it is destroyed, so a run can be rolled back. After a failure nothing new
 * starts; running work finishes.
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
	bool allow_delete;     /* carry out deletes (else a plan with any is refused) */
	long long max_deletes; /* with allow_delete: refuse a plan with more; -1: no limit */
	bool snapshot;         /* snapshot guests before modifying them (default on) */
	bool no_backup;        /* destroy without a vzdump backup first (--no-backup) */
	const char *backup_storage; /* where backups go (NULL: 'local' or the first storage
				     * with content 'backup' on the guest's node) */
	long long run_id;      /* names the snapshots pvelab-pre-<run_id> */
	long task_timeout_ms;  /* per task (0: 10 min) */
	void (*progress)(const struct pl_apply_event *ev, void *arg);
	void *arg;
};

/*
 * Execute plan. Besides the planner's actions, "rollback" changes
 * ({"action":"rollback","snapshot","running"}) restore a snapshot, and
 * "restore" changes ({"action":"restore","archive","running"}, with
 * "old_vmid","from_type","old_node" when a replacement must go first)
 * restore a guest from a vzdump archive.
 * Before a delete or a replace destroys a guest it is backed up (vzdump)
 * unless o->no_backup; a failed backup stops the change before its destroy.
 * A change's "old_vmid", "from_type", "old_node" name the guest it removes
 * (default: its own vmid, type, node).
 * *result (new reference) is
 * {"ok":N,"failed":N,"skipped":N,"changes":[{"guest","action","vmid","node",
 *  "type","status":"ok|failed|skipped","error","snapshot","was_running",
 *  "backup":"<volid>","backup_storage","no_backup","from_type","old_vmid",
 *  "old_node","destroyed","created","archive",
 *  "steps_done":[step names carried out, as pl_apply_steps lists them]}]}.
 * A plan with more deletes than allowed (none without allow_delete, else
 * max_deletes) is refused whole: nothing runs, every change is "skipped" and
 * the deletes carry the reason in "error"; returns PL_EINVAL.
 * Returns 0 when every change succeeded, PL_ETASK otherwise.
 */
int pl_apply_run(struct event_base *base, struct pl_pve *c, const json_t *plan,
		 const struct pl_apply_opts *o, json_t **result);

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
