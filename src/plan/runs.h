/*
 * Apply and rollback runs in the state store's runs table: begun before any
 * change, finished with the per-change result, read back by rollback.
 */
#ifndef PL_PLAN_RUNS_H
#define PL_PLAN_RUNS_H

#include "core/common.h"

#include <jansson.h>

struct pl_state;

/* Insert a run of kind ("apply", "destroy", "rollback") with status running. */
int pl_runs_begin(struct pl_state *s, const char *kind, long long *id, char **errmsg);
/* Record the project (config) a run acts for. */
int pl_runs_set_project(struct pl_state *s, long long id, const char *project, char **errmsg);
/* Record its end: status "ok" or "failed" and the result JSON. */
int pl_runs_finish(struct pl_state *s, long long id, const char *status, const json_t *result,
		   char **errmsg);
/* {"id","kind","started","finished","status","result","project"} of a run, or PL_ENOENT. */
int pl_runs_get(struct pl_state *s, long long id, json_t **run, char **errmsg);
/* The newest runs of a kind (NULL: any), newest first. */
int pl_runs_list(struct pl_state *s, const char *kind, int limit, json_t **runs, char **errmsg);

#endif
