/*
 * The simulator's /access administration beyond users and tokens, as
 * pve-access-control's API2/Role.pm and Group.pm have it: custom roles
 * (privileges checked against the known ones; the built-in roles cannot be
 * changed or deleted), groups and their members (used by the ACL resolution
 * in acl.c), and user updates that set group membership.
 */
#include "core/common.h"

#include <stdlib.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

static json_t *
roles(struct pl_sim *s)
{
	return json_object_get(s->access, "roles");
}

static bool
special(struct pl_sim *s, const char *role)
{
	return json_object_get(json_object_get(s->access, "special"), role) != NULL;
}

/* Add the comma/space/semicolon separated privs to role; false with the 400
 * answered on an unknown privilege (AccessControl::add_role_privs). */
static bool
add_privs(struct pl_sim_req *r, json_t *role, const char *privs)
{
	const json_t *valid = json_object_get(roles(r->sim), "Administrator");
	char *list = pl_strdup(privs ? privs : ""), *save = NULL;
	json_t *add = json_object();
	bool ok = true;

	for (char *p = strtok_r(list, ", ;", &save); p; p = strtok_r(NULL, ", ;", &save)) {
		if (!json_object_get(valid, p)) {
			pl_sim_fail(r, 500, "invalid privilege '%s'", p);
			ok = false;
			break;
		}
		json_object_set_new(add, p, json_true());
	}
	if (ok)
		json_object_update(role, add);
	json_decref(add);
	free(list);
	return ok;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The role's privileges, sorted and joined by commas (Role.pm's index). */
static char *
privs_list(const json_t *role)
{
	size_t n = 0, i;
	const char **keys = pl_calloc(json_object_size(role) + 1, sizeof(*keys));
	struct pl_buf b;
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)role, k, v)
		keys[n++] = k;
	qsort(keys, n, sizeof(*keys), by_name);
	pl_buf_init(&b, 0);
	for (i = 0; i < n; i++)
		pl_buf_addf(&b, "%s%s", i ? "," : "", keys[i]);
	free(keys);
	return pl_buf_detach(&b, NULL);
}

static void
h_roles(struct pl_sim_req *r)
{
	json_t *a = json_array(), *v;
	const char *k;

	json_object_foreach(roles(r->sim), k, v) {
		char *privs = privs_list(v);

		json_array_append_new(a, json_pack("{s:s,s:s,s:i}", "roleid", k, "privs", privs,
						   "special", special(r->sim, k)));
		free(privs);
	}
	pl_sim_ok(r, a);
}

static void
h_role_get(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "roleid");
	json_t *role = json_object_get(roles(r->sim), id), *out = json_object(), *v;
	const char *k;

	if (!role) {
		json_decref(out);
		pl_sim_fail(r, 500, "role '%s' does not exist", id);
		return;
	}
	json_object_foreach(role, k, v)
		json_object_set_new(out, k, json_integer(1));
	pl_sim_ok(r, out);
}

static void
h_role_create(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "roleid");
	json_t *role;

	if (!id || !*id || strchr(id, ':') || strchr(id, ',')) {
		pl_sim_fail(r, 400, "Parameter verification failed.\nroleid: invalid format");
		return;
	}
	if (json_object_get(roles(r->sim), id)) {
		pl_sim_fail(r, 500, "role '%s' already exists", id);
		return;
	}
	role = json_object();
	if (!add_privs(r, role, pl_sim_p(r, "privs"))) {
		json_decref(role);
		return;
	}
	json_object_set_new(roles(r->sim), id, role);
	r->sim->dirty = true;
	r->sim->gen++;
	pl_sim_ok(r, json_null());
}

static void
h_role_update(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "roleid");
	json_t *role = json_object_get(roles(r->sim), id), *next;

	if (special(r->sim, id)) {
		pl_sim_fail(r, 500, "auto-generated role '%s' cannot be modified", id);
		return;
	}
	if (!role) {
		pl_sim_fail(r, 500, "role '%s' does not exist", id);
		return;
	}
	next = pl_sim_pbool(r, "append", false) ? json_deep_copy(role) : json_object();
	if (!add_privs(r, next, pl_sim_p(r, "privs"))) {
		json_decref(next);
		return;
	}
	json_object_set_new(roles(r->sim), id, next);
	r->sim->dirty = true;
	r->sim->gen++;
	pl_sim_ok(r, json_null());
}

static void
h_role_delete(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "roleid");
	json_t *acl = json_object_get(r->sim->access, "acl");

	if (special(r->sim, id)) {
		pl_sim_fail(r, 500, "auto-generated role '%s' cannot be deleted", id);
		return;
	}
	if (!json_object_get(roles(r->sim), id)) {
		pl_sim_fail(r, 500, "role '%s' does not exist", id);
		return;
	}
	json_object_del(roles(r->sim), id);
	/* AccessControl::delete_role: its ACL entries go with it */
	for (size_t i = json_array_size(acl); i-- > 0;)
		if (!strcmp(pl_json_str_or(json_array_get(acl, i), "roleid", ""), id))
			json_array_remove(acl, i);
	r->sim->dirty = true;
	r->sim->gen++;
	pl_sim_ok(r, json_null());
}

/* --- groups --- */

static json_t *
groups(struct pl_sim *s)
{
	json_t *g = json_object_get(s->access, "groups");

	if (!g) {
		g = json_object();
		json_object_set_new(s->access, "groups", g);
	}
	return g;
}

bool
pl_sim_access_in_group(struct pl_sim *s, const char *group, const char *user)
{
	return json_object_get(json_object_get(json_object_get(groups(s), group), "users"), user) !=
	       NULL;
}

static char *
members(const json_t *g)
{
	struct pl_buf b;
	json_t *v;
	const char *k;
	size_t n = 0;

	pl_buf_init(&b, 0);
	json_object_foreach(json_object_get(g, "users"), k, v)
		pl_buf_addf(&b, "%s%s", n++ ? "," : "", k);
	return pl_buf_detach(&b, NULL);
}

static void
h_groups(struct pl_sim_req *r)
{
	json_t *a = json_array(), *v;
	const char *k;

	json_object_foreach(groups(r->sim), k, v) {
		char *u = members(v), *path = pl_asprintf("/access/groups/%s", k);

		/* the list is what the caller may administer or audit there */
		if (!pl_sim_access_filtered(r->sim, r->user) ||
		    pl_sim_access_can(r->sim, r->user, path, "User.Modify") ||
		    pl_sim_access_can(r->sim, r->user, path, "Sys.Audit") ||
		    pl_sim_access_can(r->sim, r->user, path, "Group.Allocate"))
			json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "groupid", k, "users",
							   u, "comment",
							   pl_json_str_or(v, "comment", "")));
		free(u);
		free(path);
	}
	pl_sim_ok(r, a);
}

static void
h_group_create(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "groupid");

	if (!id || !*id || strchr(id, '@') || strchr(id, '!') || strchr(id, ':')) {
		pl_sim_fail(r, 400, "Parameter verification failed.\ngroupid: invalid format");
		return;
	}
	if (json_object_get(groups(r->sim), id)) {
		pl_sim_fail(r, 500, "group '%s' already exists", id);
		return;
	}
	json_object_set_new(groups(r->sim), id,
			    json_pack("{s:{},s:s}", "users", "comment",
				      pl_sim_p(r, "comment") ? pl_sim_p(r, "comment") : ""));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_group_get(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "groupid");
	json_t *g = json_object_get(groups(r->sim), id), *m = json_array(), *v;
	const char *k;

	if (!g) {
		json_decref(m);
		pl_sim_fail(r, 500, "group '%s' does not exist", id);
		return;
	}
	json_object_foreach(json_object_get(g, "users"), k, v)
		json_array_append_new(m, json_string(k));
	pl_sim_ok(r, json_pack("{s:o,s:s}", "members", m, "comment",
			       pl_json_str_or(g, "comment", "")));
}

static void
h_group_delete(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "groupid");
	json_t *acl = json_object_get(r->sim->access, "acl");

	if (!json_object_get(groups(r->sim), id)) {
		pl_sim_fail(r, 500, "group '%s' does not exist", id);
		return;
	}
	json_object_del(groups(r->sim), id);
	for (size_t i = json_array_size(acl); i-- > 0;)
		if (!strcmp(pl_json_str_or(json_array_get(acl, i), "ugid", ""), id))
			json_array_remove(acl, i);
	r->sim->dirty = true;
	r->sim->gen++;
	pl_sim_ok(r, json_null());
}

/* Put user in each group of the list; false with the answer given when one
 * does not exist. append keeps the groups it is in already. */
bool
pl_sim_access_set_groups(struct pl_sim_req *r, const char *user, const char *list, bool append)
{
	char *l = pl_strdup(list ? list : ""), *save = NULL;
	json_t *want = json_object(), *g;
	const char *k;
	bool ok = true;

	for (char *id = strtok_r(l, ", ;", &save); id; id = strtok_r(NULL, ", ;", &save)) {
		if (!json_object_get(groups(r->sim), id)) {
			pl_sim_fail(r, 500, "no such group '%s'", id);
			ok = false;
			goto out;
		}
		json_object_set_new(want, id, json_true());
	}
	json_object_foreach(groups(r->sim), k, g) {
		json_t *users = json_object_get(g, "users");

		if (json_object_get(want, k))
			json_object_set_new(users, user, json_true());
		else if (!append)
			json_object_del(users, user);
	}
	r->sim->dirty = true;
	r->sim->gen++;
out:
	json_decref(want);
	free(l);
	return ok;
}

static void
h_user_update(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "userid");
	json_t *u = json_object_get(json_object_get(r->sim->access, "users"), id);

	if (!u) {
		pl_sim_fail(r, 500, "user '%s' does not exist", id);
		return;
	}
	if (pl_sim_p(r, "groups") && !pl_sim_access_set_groups(r, id, pl_sim_p(r, "groups"),
							       pl_sim_pbool(r, "append", false)))
		return;
	if (pl_sim_p(r, "expire"))
		json_object_set_new(u, "expire",
				    json_integer(strtoll(pl_sim_p(r, "expire"), NULL, 10)));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

const struct pl_sim_route_def pl_sim_access_admin_routes[] = {
	{ PL_SIM_GET, "/access/roles", h_roles, false, 0 },
	{ PL_SIM_POST, "/access/roles", h_role_create, false, 0 },
	{ PL_SIM_GET, "/access/roles/{roleid}", h_role_get, false, 0 },
	{ PL_SIM_PUT, "/access/roles/{roleid}", h_role_update, false, 0 },
	{ PL_SIM_DELETE, "/access/roles/{roleid}", h_role_delete, false, 0 },
	{ PL_SIM_GET, "/access/groups", h_groups, false, 0 },
	{ PL_SIM_POST, "/access/groups", h_group_create, false, 0 },
	{ PL_SIM_GET, "/access/groups/{groupid}", h_group_get, false, 0 },
	{ PL_SIM_DELETE, "/access/groups/{groupid}", h_group_delete, false, 0 },
	{ PL_SIM_PUT, "/access/users/{userid}", h_user_update, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
