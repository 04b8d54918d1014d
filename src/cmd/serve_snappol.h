/*
 * The snapshot-policies module of pvelab serve (serve_snappol.c): each
 * scheduled policy run on its calendar event on the server's loop, and
 * /api/v1/snapshot-policies.
 */
#ifndef PL_CMD_SERVE_SNAPPOL_H
#define PL_CMD_SERVE_SNAPPOL_H

#include "core/common.h"
#include "serve/serve.h"

struct pl_serve_cluster;
struct pl_snappol_sched;

struct pl_serve_snappol {
	struct pl_serve_module module; /* register this with pl_serve_add */
	struct pl_serve *sv;
	struct pl_snappol_sched *p; /* one per policy of the config, cluster after cluster */
	size_t n;
};

/* Schedule the policies of each of the n clusters (cl borrowed, outlives m)
 * on its session's loop, each run on its cluster's client and recorded in
 * its store; events go to sv and, with several clusters, say whose. */
void pl_serve_snappol_init(struct pl_serve_snappol *m, const struct pl_serve_cluster *cl, size_t n,
			   struct pl_serve *sv);
/* Whether a policy is running (a server that drains waits for it). */
bool pl_serve_snappol_busy(const struct pl_serve_snappol *m);
void pl_serve_snappol_release(struct pl_serve_snappol *m);

#endif
