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

/* Open a session with the API, state and config (the config is required). */
int pl_planning_open(struct pl_session *s, struct pl_ctx *ctx, char **errmsg);
/* Refresh and plan, the client's loop run until done; *snap and *plan are
 * new references. */
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
/* Print a plan for people. */
void pl_planning_print(const struct pl_ctx *ctx, const json_t *plan);
/* Ask "question [y/N]" on the terminal; true only for yes. */
bool pl_confirm(const char *question);

#endif
