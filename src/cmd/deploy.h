/*
 * Deploying the guests' stacks, shared by `pvelab deploy` (a run of kind
 * "deploy") and `pvelab apply` (inside the apply's run): compare, then for
 * each stack to deploy a snapshot named after the run (pvelab-pre-RUN,
 * apply_snapshots.keep's retention, undone by rollback RUN), the files, compose
 * up, and a wait until its services run and their healthchecks pass.
 */
#ifndef PL_CMD_DEPLOY_H
#define PL_CMD_DEPLOY_H

#include "core/common.h"
#include "cmd/cmd.h"

#include <jansson.h>

struct pl_session;
struct pl_state;

struct pl_deploy_opts {
	const json_t *names;   /* guest names; NULL or empty: every guest with stacks */
	const char *profile;   /* replaces every stack's profiles when set */
	bool rollback;         /* a failed stack takes its guest back to the snapshot */
	bool force;            /* deploy unchanged stacks too */
	int timeout_s;         /* compose up; 0: stack_defaults.timeout, else 600 */
	int wait_s;            /* for a booting guest's agent or SSH */
	int health_s;          /* for healthchecks to pass after compose up; 0: 120 */
	long long run_id;      /* names the snapshots pvelab-pre-RUN */
	const json_t *snapped; /* {"VMID": "SNAPNAME"}: guests the run snapshotted already */
	const json_t *expect;  /* a plan's "stacks": only what it shows is deployed */
	bool show;             /* progress and compose's output on stderr */
	/* after each stack: its report entry (borrowed) */
	void (*record)(const json_t *entry, void *arg);
	/* each line of compose up's output (as shown: at most 200 a command,
	 * then one saying the rest is not), with the stack's rendering st */
	void (*line)(const json_t *st, const char *line, void *arg);
	void *arg;
};

/* The config's stacks (of o->names, with o->profile) rendered for the guests
 * the cluster has now: *stacks (with their files' content: never printed;
 * "before": the store's record of the last deploy, or null) and *plan
 * (pl_stacks_compare's), new references. */
int pl_deploy_plan(struct pl_session *s, const struct pl_deploy_opts *o, json_t **stacks,
		   json_t **plan, char **errmsg);
/* Deploy what plan creates or updates: *report gets one entry per stack
 * ({"guest","vmid","node","type","name","action","transport","snapshot"?,
 * "before" (the store's record before, or null),"ok","error"?,
 * "rolled_back"?,...}, no secret); returns how many failed. */
int pl_deploy_run(struct pl_session *s, const struct pl_deploy_opts *o, json_t *stacks,
		  const json_t *plan, json_t *report);
/* The stacks of an apply's plan (plan["stacks"]), deployed inside its run
 * once its changes (result, the executor's) are done: a guest the run
 * snapshotted already keeps that snapshot as its way back, the others get
 * pvelab-pre-RUN; only what the plan showed is deployed (o->expect and
 * o->snapped are set here, o->wait_s defaults to 300). result["stacks"] gets
 * the report; returns how many failed. */
int pl_deploy_apply(struct pl_session *s, struct pl_deploy_opts *o, const json_t *plan,
		    json_t *result);
/*
 * pl_deploy_apply on a thread of its own, for pvelab serve (whose loop must
 * not wait on SSH or the agent): plan and result are copied; the thread
 * reaches the cluster through a clone of s's client and the store through a
 * connection of its own, and reads s->cfg, which must not change until the
 * end. From s's loop: line(ev) for each line of compose's output
 * ({"guest","stack","vmid","line"}, borrowed; the same lines the CLI shows),
 * then done(failed, stopped, result) once, result the copy with "stacks".
 * NULL with *errmsg when the thread cannot start (nothing was deployed).
 */
struct pl_deploy_job;
typedef void (*pl_deploy_line_cb)(const json_t *ev, void *arg);
typedef void (*pl_deploy_done_cb)(int failed, bool stopped, json_t *result, void *arg);
struct pl_deploy_job *pl_deploy_apply_start(struct pl_session *s, const struct pl_deploy_opts *o,
					    const json_t *plan, const json_t *result,
					    pl_deploy_line_cb line, pl_deploy_done_cb done,
					    void *arg, char **errmsg);
/* Stop it as Ctrl-C stops the CLI's deploy: no stack more, the command in
 * the guest given up (done still follows, stopped true). */
void pl_deploy_job_stop(struct pl_deploy_job *j);
/* Free it (after done, or stopped and waited for first: no callback after).
 * Accepts NULL. */
void pl_deploy_job_free(struct pl_deploy_job *j);
/* After rollback RUN put the guests back: the records of the stacks that
 * run deployed (res, its result) into guests this rollback (result) took
 * back, as they were before it (forgotten when it created them), so that
 * the next plan compares with what the guests hold again. The first error
 * in *errmsg (the others are tried too). */
int pl_deploy_records_back(struct pl_state *state, const json_t *res, const json_t *result,
			   char **errmsg);
/* Print what a deploy did, one line a stack, to stdout. */
void pl_deploy_print(const json_t *report);
#endif
