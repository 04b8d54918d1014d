/*
 * The simulator's view of the official Proxmox VE API schema (embedded
 * pve-schema-9.1.json / 8.4): a path router over the schema's paths and the
 * parameter validation that produces PVE's own 400 error texts.
 */
#ifndef PL_SIM_SCHEMA_H
#define PL_SIM_SCHEMA_H

#include "core/common.h"

#include "core/apischema.h"

#include <jansson.h>

struct pl_sim_rnode;
struct pl_sim_req;

/* An API handler: reads r->params, fills r's response. */
typedef void (*pl_sim_handler)(struct pl_sim_req *r);

enum pl_sim_meth { PL_SIM_GET, PL_SIM_POST, PL_SIM_PUT, PL_SIM_DELETE, PL_SIM_NMETH };


struct pl_sim_method {
	enum pl_sim_meth meth;
	const char *path;       /* the schema path, "/nodes/{node}/qemu" */
	const json_t *def;      /* borrowed */
	struct pl_api_param *params;
	size_t nparams;
	json_t *index;          /* the schema's parameter names ("net[n]") -> position */
	bool allowtoken;
	const char *returns;    /* "array", "object", "string", "null", ... */
	pl_sim_handler handler; /* the simulator's implementation, or NULL */
	bool lxc;               /* for the handler: the route's guest kind */
	int op;                 /* for the handler: the route's operation */
};

struct pl_sim_path {
	char *path;
	struct pl_sim_method *methods[PL_SIM_NMETH];
};

struct pl_sim_schema {
	json_t *doc;
	char *version; /* "9.1" or "8.4" */
	struct pl_sim_path *paths;
	size_t npaths;
	struct pl_sim_rnode *root;
};

/* Load the embedded schema of a PVE version ("9.1" or "8.4"). */
struct pl_sim_schema *pl_sim_schema_load(const char *version, char **errmsg);
void pl_sim_schema_free(struct pl_sim_schema *s);

/* "GET" -> PL_SIM_GET ...; -1 if the method is not one of the four. */
int pl_sim_meth_parse(const char *m);
const char *pl_sim_meth_name(enum pl_sim_meth m);

/* Route an API path (below /api2/json, no query, e.g. "/nodes/pve/qemu") to a
 * schema path; on success *vars is a new object of the path variables. */
const struct pl_sim_path *pl_sim_route(const struct pl_sim_schema *s, const char *path,
				       json_t **vars);
/* The schema path with exactly this template ("/nodes/{node}/qemu"), or NULL. */
struct pl_sim_path *pl_sim_schema_find(const struct pl_sim_schema *s, const char *tmpl);

/* The parameter definition that applies to name ("net0" -> "net[n]"), or NULL. */
const struct pl_api_param *pl_sim_param_find(const struct pl_sim_method *m, const char *name);

/* Validate params (an object of string values; path variables included)
 * against the method: every error is added to errors as name -> PVE's message.
 * Returns the number of errors. */
int pl_sim_validate(const struct pl_sim_method *m, const json_t *params, json_t *errors);

#endif
