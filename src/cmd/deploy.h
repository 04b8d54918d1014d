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
/* Print what a deploy did, one line a stack, to stdout. */
void pl_deploy_print(const json_t *report);
#endif
