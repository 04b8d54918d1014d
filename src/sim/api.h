/*
 * What the simulator's API handler files share: their route tables and the
 * request helpers (parameters, node and guest lookup, task replies).
 */
#ifndef PL_SIM_API_H
#define PL_SIM_API_H

#include "core/common.h"

#include <jansson.h>

#include "sim/internal.h"

struct pl_sim_route_def {
	enum pl_sim_meth meth;
	const char *path; /* NULL ends a table */
	pl_sim_handler fn;
	bool lxc; /* the guest kind the path is for: the handler reads r->lxc */
	int op;   /* the handler's operation, in r->op (e.g. which power action) */
};

/* Route tables of api_guest.c and api_storage.c. */
extern const struct pl_sim_route_def pl_sim_guest_routes[];
extern const struct pl_sim_route_def pl_sim_storage_routes[];

/* A parameter as text, or NULL. */
const char *pl_sim_p(const struct pl_sim_req *r, const char *name);
/* A boolean / integer parameter, or dflt when absent. */
bool pl_sim_pbool(const struct pl_sim_req *r, const char *name, bool dflt);
long long pl_sim_pint(const struct pl_sim_req *r, const char *name, long long dflt);
/* The node named by the "node" parameter; -1 with the failure set. */
int pl_sim_req_node(struct pl_sim_req *r);
/* Answer with the task's UPID. */
void pl_sim_ok_task(struct pl_sim_req *r, struct pl_sim_task *t);
/* /nodes and /cluster/resources entry of a node. */
json_t *pl_sim_node_entry(struct pl_sim *s, int node, int64_t now);
/* /nodes/{node}/storage entry. */
json_t *pl_sim_storage_entry(struct pl_sim *s, struct pl_sim_storage *st, int node);
/* rrddata series of a guest (g) or a node (g NULL). */
json_t *pl_sim_rrd(struct pl_sim *s, const struct pl_sim_guest *g, int node,
		   const char *timeframe);
/* Pool membership. */
int pl_sim_pool_add(struct pl_sim *s, const char *pool, uint32_t vmid, char **err);
void pl_sim_pool_forget(struct pl_sim *s, uint32_t vmid);

#endif
