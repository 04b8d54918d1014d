/*
 * API handlers for the firewall's named sets: security groups (cluster),
 * IP sets and aliases (cluster and guests), as pve-firewall's
 * PVE/API2/Firewall/{Groups,IPSet,Aliases}.pm answer them.
 */
#include "core/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/fw.h"
#include "sim/internal.h"

/* --- security groups --- */

/* A file's security groups or IP sets (sections) as PVE lists them:
 * {idkey: name, comment} in name order. */
static json_t *
section_list(json_t *file, const char *sections, const char *idkey)
{
	json_t *a = json_array();
	const char *k;
	json_t *g;

	json_object_foreach(pl_sim_fw_sub(file, sections), k, g) {
		json_t *o = json_pack("{s:s}", idkey, k);

		if (pl_json_str(g, "comment"))
			json_object_set_new(o, "comment", json_string(pl_json_str(g, "comment")));
		json_array_append_new(a, o);
	}
	return a;
}

/* Create a security group or an IP set (what: "Security group", "IPSet"),
 * or rename one (rename=old, with the list's digest), as Groups.pm and
 * IPSet.pm's create do; its members live in child. */
static void
section_create(struct pl_sim_req *r, json_t *file, const char *sections, const char *idkey,
	       const char *what, const char *child)
{
	json_t *all = pl_sim_fw_sub(file, sections), *g;
	const char *name = pl_sim_p(r, idkey), *rename = pl_sim_p(r, "rename");
	const char *comment = pl_sim_p(r, "comment");

	if (rename) {
		json_t *list = section_list(file, sections, idkey);
		bool ok = pl_sim_fw_digest_ok(r, list);

		json_decref(list);
		if (!ok)
			return;
		if ((g = json_object_get(all, rename)) == NULL) {
			pl_sim_param_fail(r, idkey, "%s '%s' does not exist", what, rename);
			return;
		}
		if (strcmp(rename, name) && json_object_get(all, name)) {
			pl_sim_param_fail(r, idkey, "%s '%s' does already exist", what, name);
			return;
		}
		json_incref(g);
		json_object_del(all, rename);
		json_object_set_new(all, name, g);
	} else {
		if (json_object_get(all, name)) {
			pl_sim_param_fail(r, idkey, "%s '%s' already exists", what, name);
			return;
		}
		g = json_pack("{s:[]}", child);
		json_object_set_new(all, name, g);
	}
	if (comment)
		json_object_set_new(g, "comment", json_string(comment));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_groups(struct pl_sim_req *r)
{
	json_t *a = section_list(pl_sim_fw_cluster(r->sim), "groups", "group");

	pl_sim_ok(r, pl_sim_fw_list_out(r, a, "/cluster/firewall/groups", false));
	json_decref(a);
}

static void
h_group_create(struct pl_sim_req *r)
{
	section_create(r, pl_sim_fw_cluster(r->sim), "groups", "group", "Security group", "rules");
}

static void
h_group_delete(struct pl_sim_req *r)
{
	json_t *groups = pl_sim_fw_sub(pl_sim_fw_cluster(r->sim), "groups");
	const char *name = pl_sim_p(r, "group");
	json_t *g = json_object_get(groups, name);

	if (!g) {
		pl_sim_fail(r, 500, "no such security group '%s'", name);
		return;
	}
	if (json_array_size(json_object_get(g, "rules"))) {
		pl_sim_fail(r, 500, "Security group '%s' is not empty", name);
		return;
	}
	json_object_del(groups, name);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* --- IP sets --- */

static void
h_ipsets(struct pl_sim_req *r)
{
	const char *env;
	json_t *file = pl_sim_fw_file(r, &env), *a;

	if (!file)
		return;
	a = section_list(file, "ipset", "name");
	pl_sim_ok(r, pl_sim_fw_list_out(r, a, "/cluster/firewall/ipset", false));
	json_decref(a);
}

static void
h_ipset_create(struct pl_sim_req *r)
{
	const char *env;
	json_t *file = pl_sim_fw_file(r, &env);

	if (file)
		section_create(r, file, "ipset", "name", "IPSet", "entries");
}

/* The IP set of the name parameter; NULL with "no such IPSet" set. */
static json_t *
req_ipset(struct pl_sim_req *r, json_t **file)
{
	const char *env, *name = pl_sim_p(r, "name");
	json_t *set;

	if ((*file = pl_sim_fw_file(r, &env)) == NULL)
		return NULL;
	if ((set = json_object_get(pl_sim_fw_sub(*file, "ipset"), name)) == NULL) {
		pl_sim_fail(r, 500, "no such IPSet '%s'", name ? name : "");
		return NULL;
	}
	return set;
}

static void
h_ipset_get(struct pl_sim_req *r)
{
	json_t *file, *set = req_ipset(r, &file);

	if (set)
		pl_sim_ok(r, pl_sim_fw_list_out(r, pl_sim_fw_subarr(set, "entries"),
						"/cluster/firewall/ipset/{name}", false));
}

static void
h_ipset_delete(struct pl_sim_req *r)
{
	json_t *file, *set = req_ipset(r, &file);

	if (!set)
		return;
	if (json_array_size(json_object_get(set, "entries")) && !pl_sim_pbool(r, "force", false)) {
		pl_sim_fail(r, 500, "IPSet '%s' is not empty", pl_sim_p(r, "name"));
		return;
	}
	json_object_del(pl_sim_fw_sub(file, "ipset"), pl_sim_p(r, "name"));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* An entry of a set by CIDR, or NULL; *idx its position. */
static json_t *
entry_find(json_t *set, const char *cidr, size_t *idx)
{
	size_t i;
	json_t *e;

	json_array_foreach(pl_sim_fw_subarr(set, "entries"), i, e) {
		if (!strcmp(pl_json_str_or(e, "cidr", ""), cidr)) {
			*idx = i;
			return e;
		}
	}
	return NULL;
}

static void
h_ipset_add(struct pl_sim_req *r)
{
	json_t *file, *set = req_ipset(r, &file), *e;
	const char *cidr = pl_sim_p(r, "cidr"), *slash;
	size_t idx;

	if (!set)
		return;
	if (!pl_sim_fw_is_name(cidr) && !pl_sim_fw_ipver(cidr)) {
		pl_sim_param_fail(r, "cidr", "invalid IP address: '%s'", cidr);
		return;
	}
	if (entry_find(set, cidr, &idx)) {
		pl_sim_param_fail(r, "cidr", "address '%s' already exists", cidr);
		return;
	}
	if ((slash = strchr(cidr, '/')) != NULL && !strcmp(slash, "/0")) {
		pl_sim_param_fail(r, "cidr", "a zero prefix is not allowed in ipset entries");
		return;
	}
	if (pl_sim_fw_is_name(cidr) && !pl_sim_fw_alias(file, cidr) &&
	    !pl_sim_fw_alias(pl_sim_fw_cluster(r->sim), cidr)) {
		pl_sim_param_fail(r, "cidr", "no such alias '%s'", cidr);
		return;
	}
	e = json_pack("{s:s}", "cidr", cidr);
	if (pl_sim_p(r, "comment"))
		json_object_set_new(e, "comment", json_string(pl_sim_p(r, "comment")));
	if (pl_sim_pbool(r, "nomatch", false))
		json_object_set_new(e, "nomatch", json_string("1"));
	json_array_append_new(pl_sim_fw_subarr(set, "entries"), e);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* The entry of the cidr parameter; NULL with PVE's 400 set. */
static json_t *
req_entry(struct pl_sim_req *r, json_t **set, size_t *idx)
{
	json_t *file, *e;

	if ((*set = req_ipset(r, &file)) == NULL)
		return NULL;
	if ((e = entry_find(*set, pl_sim_p(r, "cidr"), idx)) == NULL)
		pl_sim_param_fail(r, "cidr", "no such IP/Network");
	return e;
}

static void
h_entry_get(struct pl_sim_req *r)
{
	json_t *set, *e, *list;
	size_t idx;

	if ((e = req_entry(r, &set, &idx)) == NULL)
		return;
	list = pl_sim_fw_list_out(r, pl_sim_fw_subarr(set, "entries"),
				  "/cluster/firewall/ipset/{name}", false);
	pl_sim_ok(r, json_incref(json_array_get(list, idx)));
	json_decref(list);
}

static void
h_entry_update(struct pl_sim_req *r)
{
	json_t *set, *e;
	size_t idx;

	if ((e = req_entry(r, &set, &idx)) == NULL ||
	    !pl_sim_fw_digest_ok(r, json_object_get(set, "entries")))
		return;
	if (pl_sim_p(r, "comment"))
		json_object_set_new(e, "comment", json_string(pl_sim_p(r, "comment")));
	if (pl_sim_p(r, "nomatch")) {
		if (pl_sim_pbool(r, "nomatch", false))
			json_object_set_new(e, "nomatch", json_string("1"));
		else
			json_object_del(e, "nomatch");
	}
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_entry_delete(struct pl_sim_req *r)
{
	json_t *set, *e;
	size_t idx;

	if ((e = req_entry(r, &set, &idx)) == NULL ||
	    !pl_sim_fw_digest_ok(r, json_object_get(set, "entries")))
		return;
	json_array_remove(json_object_get(set, "entries"), idx);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* --- aliases --- */

static json_t *
alias_list(json_t *file)
{
	json_t *a = json_array();
	const char *k;
	json_t *v;

	json_object_foreach(pl_sim_fw_sub(file, "aliases"), k, v)
		json_array_append(a, v);
	return a;
}

static void
h_aliases(struct pl_sim_req *r)
{
	const char *env;
	json_t *file = pl_sim_fw_file(r, &env), *a;

	if (!file)
		return;
	a = alias_list(file);
	pl_sim_ok(r, pl_sim_fw_list_out(r, a, "/cluster/firewall/aliases", false));
	json_decref(a);
}

static json_t *
req_alias(struct pl_sim_req *r, json_t **file)
{
	const char *env;
	json_t *a;

	if ((*file = pl_sim_fw_file(r, &env)) == NULL)
		return NULL;
	if ((a = pl_sim_fw_alias(*file, pl_sim_p(r, "name"))) == NULL)
		pl_sim_param_fail(r, "name", "no such alias");
	return a;
}

/* Set an alias from the request's cidr and comment; false with the 400 set. */
static bool
alias_put(struct pl_sim_req *r, json_t *file, const char *name)
{
	const char *cidr = pl_sim_p(r, "cidr");

	if (!cidr || !pl_sim_fw_ipver(cidr)) {
		pl_sim_param_fail(r, "cidr", "invalid IP address: '%s'", cidr ? cidr : "");
		return false;
	}
	pl_sim_fw_alias_set(file, name, pl_sim_fw_alias_new(name, cidr, pl_sim_p(r, "comment")));
	return true;
}

/* The alias of the name parameter, its digest checked; NULL with the
 * failure set. */
static json_t *
req_alias_locked(struct pl_sim_req *r, json_t **file)
{
	json_t *a, *list;
	bool ok;

	if ((a = req_alias(r, file)) == NULL)
		return NULL;
	list = alias_list(*file);
	ok = pl_sim_fw_digest_ok(r, list);
	json_decref(list);
	return ok ? a : NULL;
}

static void
h_alias_create(struct pl_sim_req *r)
{
	const char *env, *name = pl_sim_p(r, "name");
	json_t *file = pl_sim_fw_file(r, &env);

	if (!file)
		return;
	if (pl_sim_fw_alias(file, name)) {
		pl_sim_param_fail(r, "name", "alias '%s' already exists", name);
		return;
	}
	if (alias_put(r, file, name)) {
		r->sim->dirty = true;
		pl_sim_ok(r, json_null());
	}
}

static void
h_alias_get(struct pl_sim_req *r)
{
	json_t *file, *a = req_alias(r, &file), *list, *o;
	char digest[41];

	if (!a)
		return;
	list = alias_list(file);
	pl_sim_fw_list_digest(list, digest);
	json_decref(list);
	o = pl_sim_typed(NULL, a);
	json_object_set_new(o, "ipversion", json_integer(pl_json_int(a, "ipversion", 4)));
	json_object_set_new(o, "digest", json_string(digest));
	pl_sim_ok(r, o);
}

static void
h_alias_update(struct pl_sim_req *r)
{
	json_t *file, *a;
	const char *rename = pl_sim_p(r, "rename"), *name = pl_sim_p(r, "name");

	if ((a = req_alias_locked(r, &file)) == NULL)
		return;
	if (rename && strcasecmp(rename, name) && pl_sim_fw_alias(file, rename)) {
		pl_sim_param_fail(r, "name", "alias '%s' already exists", rename);
		return;
	}
	json_incref(a);
	pl_sim_fw_alias_set(file, name, NULL);
	if (!alias_put(r, file, rename ? rename : pl_json_str_or(a, "name", name))) {
		pl_sim_fw_alias_set(file, name, a);
		return;
	}
	json_decref(a);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_alias_delete(struct pl_sim_req *r)
{
	json_t *file;

	if (!req_alias_locked(r, &file))
		return;
	pl_sim_fw_alias_set(file, pl_sim_p(r, "name"), NULL);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

#define C "/cluster/firewall"
#define Q "/nodes/{node}/qemu/{vmid}/firewall"
#define L "/nodes/{node}/lxc/{vmid}/firewall"

const struct pl_sim_route_def pl_sim_fwsets_routes[] = {
	{ PL_SIM_GET, C "/groups", h_groups, false, FW_CLUSTER },
	{ PL_SIM_POST, C "/groups", h_group_create, false, FW_CLUSTER },
	{ PL_SIM_DELETE, C "/groups/{group}", h_group_delete, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/ipset", h_ipsets, false, FW_CLUSTER },
	{ PL_SIM_POST, C "/ipset", h_ipset_create, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/ipset/{name}", h_ipset_get, false, FW_CLUSTER },
	{ PL_SIM_POST, C "/ipset/{name}", h_ipset_add, false, FW_CLUSTER },
	{ PL_SIM_DELETE, C "/ipset/{name}", h_ipset_delete, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/ipset/{name}/{cidr}", h_entry_get, false, FW_CLUSTER },
	{ PL_SIM_PUT, C "/ipset/{name}/{cidr}", h_entry_update, false, FW_CLUSTER },
	{ PL_SIM_DELETE, C "/ipset/{name}/{cidr}", h_entry_delete, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/aliases", h_aliases, false, FW_CLUSTER },
	{ PL_SIM_POST, C "/aliases", h_alias_create, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/aliases/{name}", h_alias_get, false, FW_CLUSTER },
	{ PL_SIM_PUT, C "/aliases/{name}", h_alias_update, false, FW_CLUSTER },
	{ PL_SIM_DELETE, C "/aliases/{name}", h_alias_delete, false, FW_CLUSTER },
	{ PL_SIM_GET, Q "/ipset", h_ipsets, false, FW_GUEST },
	{ PL_SIM_POST, Q "/ipset", h_ipset_create, false, FW_GUEST },
	{ PL_SIM_GET, Q "/ipset/{name}", h_ipset_get, false, FW_GUEST },
	{ PL_SIM_POST, Q "/ipset/{name}", h_ipset_add, false, FW_GUEST },
	{ PL_SIM_DELETE, Q "/ipset/{name}", h_ipset_delete, false, FW_GUEST },
	{ PL_SIM_GET, Q "/ipset/{name}/{cidr}", h_entry_get, false, FW_GUEST },
	{ PL_SIM_PUT, Q "/ipset/{name}/{cidr}", h_entry_update, false, FW_GUEST },
	{ PL_SIM_DELETE, Q "/ipset/{name}/{cidr}", h_entry_delete, false, FW_GUEST },
	{ PL_SIM_GET, Q "/aliases", h_aliases, false, FW_GUEST },
	{ PL_SIM_POST, Q "/aliases", h_alias_create, false, FW_GUEST },
	{ PL_SIM_GET, Q "/aliases/{name}", h_alias_get, false, FW_GUEST },
	{ PL_SIM_PUT, Q "/aliases/{name}", h_alias_update, false, FW_GUEST },
	{ PL_SIM_DELETE, Q "/aliases/{name}", h_alias_delete, false, FW_GUEST },
	{ PL_SIM_GET, L "/ipset", h_ipsets, true, FW_GUEST },
	{ PL_SIM_POST, L "/ipset", h_ipset_create, true, FW_GUEST },
	{ PL_SIM_GET, L "/ipset/{name}", h_ipset_get, true, FW_GUEST },
	{ PL_SIM_POST, L "/ipset/{name}", h_ipset_add, true, FW_GUEST },
	{ PL_SIM_DELETE, L "/ipset/{name}", h_ipset_delete, true, FW_GUEST },
	{ PL_SIM_GET, L "/ipset/{name}/{cidr}", h_entry_get, true, FW_GUEST },
	{ PL_SIM_PUT, L "/ipset/{name}/{cidr}", h_entry_update, true, FW_GUEST },
	{ PL_SIM_DELETE, L "/ipset/{name}/{cidr}", h_entry_delete, true, FW_GUEST },
	{ PL_SIM_GET, L "/aliases", h_aliases, true, FW_GUEST },
	{ PL_SIM_POST, L "/aliases", h_alias_create, true, FW_GUEST },
	{ PL_SIM_GET, L "/aliases/{name}", h_alias_get, true, FW_GUEST },
	{ PL_SIM_PUT, L "/aliases/{name}", h_alias_update, true, FW_GUEST },
	{ PL_SIM_DELETE, L "/aliases/{name}", h_alias_delete, true, FW_GUEST },
	{ 0, NULL, NULL, false, 0 },
};
