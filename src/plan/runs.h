/*
 * Apply and rollback runs: begun before any change, finished with the
 * per-change result, read back by rollback. The state store keeps them
 * (pl_state_run_*, pl_state_lock_*); these calls add who this process is and
 * whether the process named by a run or the lock still lives.
 */
#ifndef PL_PLAN_RUNS_H
#define PL_PLAN_RUNS_H

#include "core/common.h"

#include <jansson.h>

struct pl_state;

/* Insert a run of kind ("apply", "destroy", "rollback", "deploy") with status running,
 * owned by this process (pid, host, process start time); a cluster lock this
 * process holds (pl_runs_lock) then names the run. */
int pl_runs_begin(struct pl_state *s, const char *kind, long long *id, char **errmsg);
/* Record the project (config) a run acts for. */
int pl_runs_set_project(struct pl_state *s, long long id, const char *project, char **errmsg);
/* Who asked for this process's writes: the environment's PVELAB_VIA, which
 * the MCP server sets for the commands it runs ("MCP client NAME VERSION"),
 * control characters as '?', at most 200 bytes; NULL when unset. The
 * results pl_runs_update and pl_runs_finish record carry it as "via". */
#define PL_RUNS_VIA_ENV "PVELAB_VIA"
const char *pl_runs_via(void);
/* Record a running run's result so far, in a transaction of its own. */
int pl_runs_update(struct pl_state *s, long long id, const json_t *result, char **errmsg);
/* Record its end: status "ok", "failed" or "interrupted" and the result JSON. */
int pl_runs_finish(struct pl_state *s, long long id, const char *status, const json_t *result,
		   char **errmsg);
/* {"id","kind","started","finished","status","result","project","pid","host"}
 * of a run, or PL_ENOENT. A running run whose process is gone is found
 * "interrupted". */
int pl_runs_get(struct pl_state *s, long long id, json_t **run, char **errmsg);
/* The newest runs of a kind (NULL: any), newest first (as pl_runs_get). */
int pl_runs_list(struct pl_state *s, const char *kind, int limit, json_t **runs, char **errmsg);
/* Record every running run whose process is gone from this host (or is
 * another process with its pid) as "interrupted"; *n (optional) counts them. */
int pl_runs_reap(struct pl_state *s, int *n, char **errmsg);
/* After a change of a run ended (its entry in the result, as the executor
 * hands it to pl_apply_opts.record): a storage it created is recorded as
 * project's, one it deleted as no one's (pl_state_storage_own/disown);
 * anything else does nothing. */
int pl_runs_storage_done(struct pl_state *s, const char *project, const json_t *entry,
			 char **errmsg);
/* The newest run that changed guests (apply, destroy, rollback, deploy): *id, 0 when
 * none; *kind (optional) is borrowed from a static table. */
int pl_runs_newest(struct pl_state *s, long long *id, const char **kind, char **errmsg);

/*
 * One apply at a time per cluster: a lock named by the cluster, held by this
 * process until pl_runs_unlock or its death (a lock whose process is gone
 * from this host, or whose pid now belongs to another process, is stale and
 * taken over). Locks live in one state database: two databases on one
 * cluster are not serialised by them.
 */
/* Take lock name. PL_ECONFLICT when a live process holds it (the message
 * names its run, pid, host and start); *stale (optional, new reference) is
 * the lock taken over from a dead holder ({"pid","host","started","run_id"}),
 * NULL when there was none. */
int pl_runs_lock(struct pl_state *s, const char *name, json_t **stale, char **errmsg);
/* Release lock name if this process holds it. */
int pl_runs_unlock(struct pl_state *s, const char *name, char **errmsg);

/* The plan that rolls run back (an apply's or destroy's record, as
 * pl_runs_get gives it): a "rollback" change per guest it snapshotted, a
 * "restore" per guest it destroyed with a backup, an overwriting "restore"
 * per changed guest whose way back was a backup, a "rollback" per guest
 * whose stack deploy took the run's snapshot. What cannot be rolled back
 * (a guest created, one destroyed without a backup) goes to notes as lines.
 * New reference. */
json_t *pl_runs_rollback_plan(const json_t *run, json_t *notes);
/* The guests such a plan may touch ({"<vmid>": true}), for
 * pl_apply_opts.owned: those the run touched. New reference. */
json_t *pl_runs_rollback_owned(const json_t *plan);

#endif
