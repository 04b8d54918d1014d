/*
 * What plan, apply and destroy share: load the config, refresh the cluster
 * into the state store, build the plan, and show it the way Terraform users
 * expect (+ create, ~ update, -/+ replace, - delete), with each change's class.
 */
#ifndef PL_CMD_PLANNING_H
#define PL_CMD_PLANNING_H

#include "core/common.h"
#include "cmd/cmd.h"

#include <jansson.h>

struct pl_session;
struct pl_plan_opts;
struct pl_config;

/* Open a session with the API, state and config (the config is required). */
int pl_planning_open(struct pl_session *s, struct pl_ctx *ctx, char **errmsg);
/* What validate calls an error in cfg (an unset password_env, a raw config
 * key the schema rejects...): PL_EINVAL with the first, else 0. */
int pl_planning_check(const struct pl_config *cfg, char **errmsg);
/* Refresh and plan on the client's loop, every step a callback there: cb
 * once with snap and plan (borrowed), or an error (errmsg one line). Unless
 * o->no_stacks the plan has "stacks": the config's stacks compared with the
 * store's record of their last deploys (what apply deploys after its
 * changes), and their count in summary.stacks. o is copied. */
struct pl_planning_plan;
typedef void (*pl_planning_plan_cb)(int err, json_t *snap, json_t *plan, const char *errmsg,
				    void *arg);
struct pl_planning_plan *pl_planning_plan_start(struct pl_session *s, const struct pl_plan_opts *o,
						pl_planning_plan_cb cb, void *arg);
/* No callback after this. */
void pl_planning_plan_cancel(struct pl_planning_plan *pp);
/* Where a saved plan's changes differ from a fresh plan's of the same config
 * and cluster (an edited file, another project's plan): what, or NULL.
 * Every change counts, not only deletes and replaces. Caller frees. */
char *pl_planning_differs(const json_t *saved, const json_t *fresh);
/* Why plan's deletes are refused before anything is done (a new string), or
 * NULL: any without ao->allow_delete (flag names how to allow them:
 * "--allow-delete"), more than safety.max_deletes, which it sets in ao (the
 * executor checks again: a plan is never trusted). */
struct pl_apply_opts;
char *pl_planning_deletes_refused(const struct pl_config *cfg, const json_t *plan,
				  struct pl_apply_opts *ao, const char *flag);
/* Refresh and plan, the client's loop run until done (pl_planning_plan_start
 * waited for); *snap and *plan are new references. */
int pl_planning_build(struct pl_session *s, const struct pl_plan_opts *o, json_t **snap,
		      json_t **plan, char **errmsg);
/* The refresh alone (the inventory of the guests the config needs, the keys
 * earlier applies left pending, the template lists) on the client's loop:
 * every step a callback there, cb once at the end with snap borrowed (NULL
 * on error, errmsg then says why). */
struct pl_planning_refresh;
typedef void (*pl_planning_cb)(int err, json_t *snap, const char *errmsg, void *arg);
struct pl_planning_refresh *pl_planning_refresh_start(struct pl_session *s, pl_planning_cb cb,
						      void *arg);
/* No callback after this; what is in flight is dropped as it answers. */
void pl_planning_refresh_cancel(struct pl_planning_refresh *p);
/* apply_snapshots.keep after an apply or a deploy: the guests of result
 * (its changes and its "stacks") that took a pvelab-pre-RUN snapshot, for pl_snappol_prune_apply*; NULL
 * when none. New reference. */
json_t *pl_planning_prune_guests(const json_t *result);
/* What that pruning (pr, its result; may be NULL) deleted, as result's
 * "pruned_snapshots"; each guest it failed on appends a line to warnings.
 * Returns how many snapshots went. */
size_t pl_planning_pruned(json_t *result, const json_t *pr, json_t *warnings);
/* Print a plan for people. */
void pl_planning_print(const struct pl_ctx *ctx, const json_t *plan);
/* The stacks of a plan (plan["stacks"], pl_stacks_compare's shape) that are
 * created or updated, each file changed with its hash and diff (neither for
 * a secret). */
void pl_planning_print_stacks(const struct pl_ctx *ctx, const json_t *stacks);
/* Ask "question [y/N]" on the terminal; true only for yes. */
bool pl_confirm(const char *question);

#endif
