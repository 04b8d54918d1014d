/*
 * API handlers for resource pools (/pools): list, get, create, update with
 * members and storages, delete; the membership the guest handlers keep up.
 */
#include "core/common.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

/* --- pools --- */

static json_t *
pool_members(struct pl_sim *s, const char *id)
{
	json_t *pool = json_object_get(s->pools, id), *a = json_array(), *mem;
	size_t i;

	json_array_foreach(json_object_get(pool, "members"), i, mem) {
		long long vmid =
			json_is_integer(mem) ?
				json_integer_value(mem) :
				strtoll(json_string_value(mem) ? json_string_value(mem) : "0", NULL,
					10);
		struct pl_sim_guest *g = pl_sim_guest_find(s, (uint32_t)vmid);
		char sid[64];

		if (!g)
			continue;
		snprintf(sid, sizeof(sid), "%s/%u", g->lxc ? "lxc" : "qemu", g->vmid);
		json_array_append_new(
			a, json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", sid, "type",
				     g->lxc ? "lxc" : "qemu", "vmid", (json_int_t)g->vmid, "node",
				     s->nodes[g->node].name, "status",
				     g->status == PL_SIM_STOPPED ? "stopped" : "running"));
	}
	json_array_foreach(json_object_get(pool, "storage"), i, mem) {
		if (json_is_string(mem))
			json_array_append_new(a, json_pack("{s:s,s:s}", "type", "storage",
							   "storage", json_string_value(mem)));
	}
	return a;
}

static void
h_pools(struct pl_sim_req *r)
{
	const char *only = pl_sim_p(r, "poolid");
	json_t *a = json_array();
	const char *k;
	json_t *v;

	json_object_foreach(r->sim->pools, k, v) {
		json_t *o;

		char path[300];

		snprintf(path, sizeof(path), "/pool/%s", k);
		if ((only && strcmp(only, k)) ||
		    (pl_sim_access_filtered(r->sim, r->user) &&
		     !pl_sim_access_can(r->sim, r->user, path, "Pool.Audit")))
			continue;
		o = json_pack("{s:s,s:s}", "poolid", k, "comment",
			      pl_json_str_or(v, "comment", ""));
		if (only)
			json_object_set_new(o, "members", pool_members(r->sim, k));
		json_array_append_new(a, o);
	}
	pl_sim_ok(r, a);
}

static void
h_pool_get(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "poolid");
	json_t *p = json_object_get(r->sim->pools, id);

	if (!p) {
		pl_sim_fail(r, 500, "pool '%s' does not exist", id);
		return;
	}
	pl_sim_ok(r, json_pack("{s:s,s:o}", "comment", pl_json_str_or(p, "comment", ""), "members",
			       pool_members(r->sim, id)));
}

static void
h_pool_create(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "poolid");

	if (json_object_get(r->sim->pools, id)) {
		pl_sim_fail(r, 500, "create pool failed: pool '%s' already exists", id);
		return;
	}
	json_object_set_new(r->sim->pools, id,
			    json_pack("{s:s,s:[],s:[]}", "comment",
				      pl_sim_p(r, "comment") ? pl_sim_p(r, "comment") : "",
				      "members", "storage"));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* Remove vmid from every pool (on destroy with purge, or before a move). */
void
pl_sim_pool_forget(struct pl_sim *s, uint32_t vmid)
{
	const char *k;
	json_t *v;

	json_object_foreach(s->pools, k, v) {
		json_t *mem = json_object_get(v, "members");

		for (size_t i = json_array_size(mem); i-- > 0;) {
			json_t *m = json_array_get(mem, i);
			long long id =
				json_is_integer(m) ?
					json_integer_value(m) :
					strtoll(json_string_value(m) ? json_string_value(m) : "0",
						NULL, 10);

			if (id == vmid)
				json_array_remove(mem, i);
		}
	}
	s->dirty = true;
}

int
pl_sim_pool_add(struct pl_sim *s, const char *pool, uint32_t vmid, char **err)
{
	json_t *p = json_object_get(s->pools, pool);
	struct pl_sim_guest *g;

	if (!p)
		return pl_seterr(err, PL_ENOENT, "pool '%s' does not exist", pool);
	pl_sim_pool_forget(s, vmid);
	if (!json_is_array(json_object_get(p, "members")))
		json_object_set_new(p, "members", json_array());
	json_array_append_new(json_object_get(p, "members"), json_integer(vmid));
	if ((g = pl_sim_guest_find(s, vmid)) != NULL) {
		free(g->res);
		g->res = NULL;
	}
	return 0;
}

static void
h_pool_update(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	const char *id = pl_sim_p(r, "poolid");
	json_t *p = json_object_get(s->pools, id);
	const char *vms = pl_sim_p(r, "vms"), *storage = pl_sim_p(r, "storage");
	bool del = pl_sim_pbool(r, "delete", false);
	char *dup, *save = NULL, *tok;

	if (!p) {
		pl_sim_fail(r, 500, "pool '%s' does not exist", id);
		return;
	}
	if (pl_sim_p(r, "comment"))
		json_object_set_new(p, "comment", json_string(pl_sim_p(r, "comment")));
	if (vms) {
		dup = pl_strdup(vms);
		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save)) {
			uint32_t vmid = (uint32_t)strtoul(tok, NULL, 10);
			struct pl_sim_guest *g = pl_sim_guest_find(s, vmid);

			if (!g) {
				pl_sim_fail(r, 500, "VM %s does not exist", tok);
				free(dup);
				return;
			}
			if (del) {
				pl_sim_pool_forget(s, vmid);
			} else {
				pl_sim_pool_add(s, id, vmid, NULL);
			}
			free(g->res);
			g->res = NULL;
		}
		free(dup);
	}
	if (storage) {
		json_t *st = json_object_get(p, "storage");

		if (!json_is_array(st)) {
			st = json_array();
			json_object_set_new(p, "storage", st);
		}
		dup = pl_strdup(storage);
		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save)) {
			for (size_t i = json_array_size(st); i-- > 0;)
				if (!strcmp(json_string_value(json_array_get(st, i)), tok))
					json_array_remove(st, i);
			if (!del)
				json_array_append_new(st, json_string(tok));
		}
		free(dup);
	}
	s->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_pool_delete(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "poolid");
	json_t *p = json_object_get(r->sim->pools, id);

	if (!p) {
		pl_sim_fail(r, 500, "pool '%s' does not exist", id);
		return;
	}
	if (json_array_size(json_object_get(p, "members")) ||
	    json_array_size(json_object_get(p, "storage"))) {
		pl_sim_fail(r, 500, "delete pool failed: pool '%s' is not empty", id);
		return;
	}
	json_object_del(r->sim->pools, id);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

const struct pl_sim_route_def pl_sim_pool_routes[] = {
	{ PL_SIM_GET, "/pools", h_pools, false, 0 },
	{ PL_SIM_POST, "/pools", h_pool_create, false, 0 },
	{ PL_SIM_PUT, "/pools", h_pool_update, false, 0 },
	{ PL_SIM_DELETE, "/pools", h_pool_delete, false, 0 },
	{ PL_SIM_GET, "/pools/{poolid}", h_pool_get, false, 0 },
	{ PL_SIM_PUT, "/pools/{poolid}", h_pool_update, false, 0 },
	{ PL_SIM_DELETE, "/pools/{poolid}", h_pool_delete, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
