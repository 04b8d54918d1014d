/*
 * Plans, applies, rollbacks and snapshots for pvelab serve and its modules
 * (REST, dashboard, MCP): each is started on the server's event loop, never
 * waits on it, and ends in one callback with the JSON the CLI's -o json gives
 * for the same command (one code path: the CLI's planner, guard and executor).
 * Plans live in memory under an unguessable id; applies and rollbacks are runs
 * in the state store, one at a time per cluster, each with who asked for it.
 * Implemented in cmd/serve_runs_engine.c (the planner and guard it drives are
 * cmd/'s), for the server's modules, which live in cmd/ too.
 */
#ifndef PL_SERVE_RUNS_H
#define PL_SERVE_RUNS_H

#include "core/common.h"

#include <jansson.h>

struct pl_session;
struct pl_serve;
struct pl_serve_runs;

/* A plan is kept this long after it was made (seconds), and at most this many
 * at once (the oldest gives way). */
#define PL_SERVE_PLAN_TTL 900
#define PL_SERVE_PLANS_MAX 64

/*
 * How every operation here ends: err 0 and result (borrowed for the call), or
 * err (a PL_E* code: PL_ENOENT unknown plan, run, guest or snapshot;
 * PL_ECONFLICT stale plan, an apply running, a guest locked; PL_EINVAL a plan
 * the safety rules refuse; PL_ECONNECT/PL_EHTTP/PL_ETASK the cluster) and
 * errmsg, one line naming the problem. pl_serve_status_of(err) is its HTTP
 * status.
 */
typedef void (*pl_serve_runs_cb)(int err, const json_t *result, const char *errmsg, void *arg);

/* The engine of one server. s (its config, state store and API client) and
 * sv (where "run" events go; may be NULL) are borrowed and outlive it.
 * changed(arg), when given, is called after anything that changed guests
 * (the server then syncs its store). */
struct pl_serve_runs *pl_serve_runs_new(struct pl_session *s, struct pl_serve *sv,
					void (*changed)(void *arg), void *arg);
/* Stops the run in flight as Ctrl-C does (nothing new starts; the changes in
 * flight finish their task, for at most PL_SERVE_STOP_WAIT seconds, then
 * Proxmox is left to finish them), running the loop until it is recorded
 * interrupted. What has not ended yet ends with PL_ECANCEL ("the server is
 * stopping"): a run not yet started, a plan, a snapshot action; no callback
 * after. Free it before the server, and forget it in what a closing
 * connection calls then. */
#define PL_SERVE_STOP_WAIT 30
void pl_serve_runs_free(struct pl_serve_runs *rs);

/* The server's background refresh: hold(arg, true) holds its full syncs
 * while a run writes the store, hold(arg, false) releases them (counted);
 * syncing(arg) says whether one is running (it keeps a write transaction open
 * on the store while it reads the cluster: a run waits for it to end, at
 * most PL_SERVE_STORE_WAIT seconds). Without it, a run waits only for an
 * open transaction. */
#define PL_SERVE_STORE_WAIT 60
void pl_serve_runs_set_refresh(struct pl_serve_runs *rs, void (*hold)(void *arg, bool on),
			       bool (*syncing)(void *arg), void *arg);

/* Several clusters: the engine of cluster name (borrowed, outlives it),
 * which each of its run events names ("cluster"). */
void pl_serve_runs_set_cluster(struct pl_serve_runs *rs, const char *name);

/* No callback with arg after this (a caller that goes away: a closed
 * connection, an ended MCP session); what it started goes on. */
void pl_serve_runs_forget(struct pl_serve_runs *rs, void *arg);

/* ---- plans ------------------------------------------------------------- */

/* The options of pvelab plan (and of the apply that carries the plan out). */
struct pl_serve_plan_opts {
	bool reboot;         /* --reboot */
	bool allow_replace;  /* --allow-replace */
	bool allow_delete;   /* --allow-delete: the plan says apply may delete */
	bool no_snapshot;    /* --no-snapshot */
	const char *profile; /* --profile (copied) */
};

struct pl_config;
/* Load a pvelab.yaml sent to the server as `pvelab validate` would the file,
 * refusing what would make the server read something of its own on the
 * sender's word: a *_file or *_env key anywhere, and cluster, state, serve,
 * proxy and alerts (the server's own config says those). 0 with *out (the
 * caller's), else PL_EINVAL with *errmsg naming the place and *field
 * (optional, the caller's) the key. */
int pl_serve_plan_config(const char *yaml, size_t len, struct pl_config **out, char **field,
			 char **errmsg);

/*
 * Plan the server's config against the cluster now, as `pvelab plan -o json`
 * does (the same refresh and planner). who names the caller ("token ci",
 * "MCP client claude"; copied). cb gets the kept plan:
 *   {"id": 32 hex digits, "created": unix time, "expires": unix time,
 *    "who", "fingerprint": {"cluster": sha256, "config": sha256},
 *    "after_run": the newest run that changed guests, "plan": {as plan -o json}}
 * Returns 0 (cb follows, from the loop), or an error with no callback: no
 * config or cluster (PL_ENOENT), a config validate rejects (PL_EINVAL).
 */
int pl_serve_plan_start(struct pl_serve_runs *rs, const struct pl_serve_plan_opts *o,
			const char *who, pl_serve_runs_cb cb, void *arg, char **errmsg);
/* The same for a pvelab.yaml sent with the request (len bytes, copied),
 * planned instead of the server's config under pl_serve_plan_config's rules;
 * an apply of the plan uses that config too. */
int pl_serve_plan_start_yaml(struct pl_serve_runs *rs, const struct pl_serve_plan_opts *o,
			     const char *yaml, size_t len, const char *who, pl_serve_runs_cb cb,
			     void *arg, char **errmsg);
/* A kept plan as pl_serve_plan_start gave it (new reference), or NULL when
 * there is none by that id (never made, expired or given way). */
json_t *pl_serve_plan_get(struct pl_serve_runs *rs, const char *id);

/* ---- applies and rollbacks ---------------------------------------------- */

struct pl_serve_apply_opts {
	int jobs;                 /* changes in flight (0: 4) */
	bool allow_delete;        /* carry out deletes (also when the plan was made without) */
	bool no_backup;           /* destroy without a vzdump backup first */
	bool no_stacks;           /* leave the plan's stacks for later (apply --no-stacks) */
	bool rollback_on_failure; /* a stack whose deploy fails takes its guest back */
};

/* What a run's caller hears. Every member may be NULL; arg is theirs. An
 * apply's stacks (its plan's "stacks") are deployed after its changes as
 * pvelab apply deploys them: progress then has {"state":"deploying",
 * "stacks"}, a line of compose's output {"guest","stack","vmid","step":
 * "deploy","line"} (at most 200 a command, as the CLI shows), and each
 * stack's end {"guest","stack","step":"deployed","done","error"?}; the
 * result's "stacks" is apply -o json's. */
struct pl_serve_run_cbs {
	/* Once: the run began (result {"run": id, "kind", "who", "total"}) or was
	 * refused (err, errmsg; then nothing else follows, nothing was done). */
	pl_serve_runs_cb started;
	/* Each step of each change, the same object the "run" event carries:
	 * {"run","kind","guest","action","step","done","error"?,"stopped",
	 *  "finished","total"}. */
	void (*progress)(const json_t *event, void *arg);
	/* Once, at the end: the run's result as pvelab apply -o json (rollback:
	 * as pvelab rollback -o json) gives it, with "run" and "status". */
	pl_serve_runs_cb done;
	void *arg;
};

/*
 * Carry out kept plan plan_id, as `pvelab apply PLANFILE --yes` does. Refused
 * at once (an error returned, no callback, nothing done) when there is no
 * config or cluster or no such plan (PL_ENOENT); when a run is running here,
 * or another apply, destroy or rollback ran since the plan was made
 * (PL_ECONFLICT, naming the run). Otherwise 0: once no sync holds the store,
 * the cluster's lock is taken and the cluster planned afresh, and
 * cbs->started refuses (nothing done) when the lock is held (PL_ECONFLICT,
 * naming its holder), or the cluster or config changed so that the fresh plan
 * differs (PL_ECONFLICT, naming what changed), or the plan has blocked
 * changes, none, or deletes without allow_delete or over
 * safety.max_deletes (PL_EINVAL); or says the run began. Only guests of the
 * config's project are touched; each is snapshotted (or backed up) first.
 * who is recorded with the run (its result's "via").
 */
int pl_serve_apply_start(struct pl_serve_runs *rs, const char *plan_id,
			 const struct pl_serve_apply_opts *o, const char *who,
			 const struct pl_serve_run_cbs *cbs, char **errmsg);

/*
 * Roll back run run_id as `pvelab rollback RUN --yes` does (the same changes
 * from the store's record, the same lock). Refused at once (an error
 * returned, no callback): no such run (PL_ENOENT); not an apply or a
 * destroy, nothing to roll back, or a guest to restore over itself from a
 * backup without overwrite (PL_EINVAL); a run running (PL_ECONFLICT). Then
 * cbs->started (from the loop; a refusal when the cluster's lock is held),
 * progress and done as for an apply; done's
 * result has "notes": what cannot be brought back (guests the run created).
 */
int pl_serve_rollback_start(struct pl_serve_runs *rs, long long run_id, bool overwrite,
			    const char *who, const struct pl_serve_run_cbs *cbs, char **errmsg);

/* Ask a run this server carries out to stop as Ctrl-C stops the CLI's:
 * nothing new starts, changes in flight finish their current task, the run is
 * recorded interrupted; asked again, it stops waiting for those tasks (they
 * go on in Proxmox), as a second Ctrl-C. PL_ENOENT when no such run is
 * running here. */
int pl_serve_run_cancel(struct pl_serve_runs *rs, long long run_id, char **errmsg);

/* A run as GET /api/v1/runs/{id} shows it (new reference): the store's record
 * (pl_runs_get: id, kind, status running/ok/failed/interrupted, result with
 * each change's steps_done) and, while it runs here, "progress": {"finished",
 * "total", "running": {guest: step}}; "who" when it was asked through the
 * server. NULL with *errmsg when there is none (PL_ENOENT) or the store fails. */
int pl_serve_run_get(struct pl_serve_runs *rs, long long run_id, json_t **run, char **errmsg);

/* The id of the run this server is carrying out, 0 when none. */
long long pl_serve_run_current(const struct pl_serve_runs *rs);
/* Whether a plan, run or snapshot action is in flight: they use the session's
 * config and client as they are, so a reload must wait until none is. */
bool pl_serve_runs_busy(const struct pl_serve_runs *rs);

/* ---- snapshots of one guest (vmid or name) -------------------------------- */

/* Each finds the guest live (where it runs now) and reads its snapshots
 * first: an unknown guest or snapshot is PL_ENOENT, a snapshot name already
 * taken PL_ECONFLICT, a locked guest PL_ECONFLICT ("guest is locked..."), a
 * failed task PL_ETASK with the task's result, all through cb. Refused at
 * once: no cluster (PL_ENOENT), a name PVE would refuse (PL_EINVAL). */

/* The guest's snapshots, read from its node, as pvelab snapshots -o json. */
int pl_serve_snapshots_list(struct pl_serve_runs *rs, const char *guest, pl_serve_runs_cb cb,
			    void *arg, char **errmsg);
/* Take snapshot name (vmstate: with the RAM of a running VM; description may
 * be NULL), as pvelab snapshot -o json reports it:
 * {vmid,name,node,action,ok,upid?,error?,seconds}. */
int pl_serve_snapshot_create(struct pl_serve_runs *rs, const char *guest, const char *name,
			     bool vmstate, const char *description, const char *who,
			     pl_serve_runs_cb cb, void *arg, char **errmsg);
/* Roll the guest back to snapshot name. Unless no_keep, what the guest is now
 * is snapshotted first (pvelab-pre-rollback-<unix time>, named in the result's
 * "kept"), so that the rollback has a way back too. */
int pl_serve_snapshot_rollback(struct pl_serve_runs *rs, const char *guest, const char *name,
			       bool no_keep, const char *who, pl_serve_runs_cb cb, void *arg,
			       char **errmsg);
/* Delete snapshot name. */
int pl_serve_snapshot_delete(struct pl_serve_runs *rs, const char *guest, const char *name,
			     const char *who, pl_serve_runs_cb cb, void *arg, char **errmsg);

#endif
