/*
 * The plan/apply/rollback/snapshot routes of pvelab serve (/api/v1/plans,
 * /api/v1/runs/..., /api/v1/guests/{guest}/snapshots...): a module on the
 * runs engine (serve/runs.h).
 */
#ifndef PL_CMD_SERVE_RUNS_H
#define PL_CMD_SERVE_RUNS_H

#include "core/common.h"
#include "serve/serve.h"

struct pl_serve_runs;
struct pl_serve_api;

struct pl_serve_runs_api {
	struct pl_serve_module module; /* register this with pl_serve_add */
	struct pl_serve_runs *runs;    /* borrowed */
	struct pl_serve_api *api;      /* where snapshot actions are kept (GET /api/v1/actions) */
};

void pl_serve_runs_api_init(struct pl_serve_runs_api *m, struct pl_serve_runs *runs,
			    struct pl_serve_api *api);

#endif
