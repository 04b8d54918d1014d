/*
 * The planner: desired guests (pvelab.yaml) against a cluster snapshot (the
 * sync's {"nodes","guests","storages","bridges"}) gives a plan of classified
 * changes. Pure: no I/O, so the same inputs always give the same plan.
 */
#ifndef PL_PLAN_PLAN_H
#define PL_PLAN_PLAN_H

#include "core/common.h"

#include <jansson.h>

struct pl_config;

struct pl_plan_opts {
	bool allow_replace; /* replacements are planned, not refused */
	bool reboot;        /* apply may reboot guests for pending changes */
	bool allow_delete;  /* recorded in "options": apply may delete guests */
	bool no_snapshot;   /* apply will not snapshot guests before changing them */
	bool no_backup;     /* apply destroys without a vzdump backup first */
	const char *profile; /* only the guests of this profile; NULL: all */
	bool no_stacks;      /* cmd/planning.c leaves out "stacks" (apply --no-stacks) */
};

/*
 * Build a plan (new reference):
 * {"version":1,"project","snapshot":"<sha256>","changes":[...],"unmanaged":[...],
 *  "elsewhere":[...],"blocked":[...],"summary":{...},"options":{...}}
 * Only guests tagged pvelab-<the config's project> are deleted; guests of other
 * projects and legacy ones (tagged only pvelab) are listed under "elsewhere"
 * ({vmid,name,type,node,project}, project null for legacy) and, when declared,
 * blocked with the way out (pvelab adopt).
 * Each change: {"action":"create|update|replace|delete|start|stop|bridge",
 *  "guest","type":"qemu|lxc","vmid","node","class", ...action fields}.
 * snap may carry "pending": {"<vmid>": [keys]} (changes waiting for a
 * reboot); with o->reboot they become "reboot" changes, else they are listed
 * under "pending".
 * Update changes carry "diffs":[{"key","from","to","class","note"}], "set"
 * (key -> value to POST), "delete" (keys), "resize" (disk -> size) and
 * "reboot" (whether a reboot is needed to apply the pending part) and
 * "way_back" ({"kind":"snapshot"|"backup"|"none","reason"}: plan/wayback.h).
 * Every change carries "steps": what apply will run for it under these
 * options (pl_apply_steps); a clone's create carries "clone_from":
 * {"vmid","node","name"}, the template resolved now. The summary counts
 * each action, "reboot" (changes whose steps reboot) and "blocked".
 */
int pl_plan_build(const struct pl_config *cfg, const json_t *snap, const struct pl_plan_opts *o,
		  json_t **plan, char **errmsg);

/* The executor's options that decide a change's steps, from the plan's: one
 * mapping, so that a plan's "steps" and apply's program agree. */
struct pl_apply_opts;
void pl_plan_apply_opts(const struct pl_plan_opts *o, struct pl_apply_opts *ao);

/* SHA-256 of the durable part of a snapshot (vmid, node, type, status and
 * config digest of every guest; bridges): a saved plan is refused when it
 * no longer matches. */
void pl_plan_snapshot_sha(const json_t *snap, char out[65]);

/* Per-guest (and per-bridge) signatures of a snapshot, as stored in a plan. */
json_t *pl_plan_snapshot_sigs(const json_t *snap);
/* NULL when a saved plan still matches a fresh one; else what changed
 * ("guest 105 changed"), caller frees. */
char *pl_plan_stale(const json_t *saved, const json_t *fresh);

/* Whether the cluster differs from the config (changes, blocked ones, or a
 * stack in plan["stacks"] to create or update). */
bool pl_plan_has_changes(const json_t *plan);

#endif
