/*
 * API handlers for HA groups (PVE 8, and PVE 9 until they are migrated to
 * rules), HA rules (PVE 9) and the HA status, as pve-ha-manager's
 * PVE/API2/HA/{Groups,Rules,Status}.pm answer them.
 */
#include "core/common.h"

#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/ha.h"
#include "sim/internal.h"

/* --- groups (PVE 8; PVE 9 until they are migrated to rules) --- */

static json_t *
named_entry(struct pl_sim *s, const char *path, const char *idkey, const char *id, json_t *v,
	    const char *digest)
{
	json_t *o = pl_sim_typed(pl_sim_ha_method(s, path, PL_SIM_POST), v);

	json_object_set_new(o, idkey, json_string(id));
	json_object_set_new(o, "digest", json_string(digest));
	return o;
}

static bool
groups_usable(struct pl_sim_req *r, const char *what)
{
	if (pl_sim_ha_groups_migrated(r->sim)) {
		pl_sim_fail(r, 500, "cannot %s: ha groups have been migrated to rules", what);
		return false;
	}
	return true;
}

static void
h_group_list(struct pl_sim_req *r)
{
	char digest[41];
	const char *id;
	json_t *v, *a;

	if (!groups_usable(r, "index groups"))
		return;
	pl_sim_ha_digest(r->sim, "groups", digest);
	a = json_array();
	json_object_foreach(pl_sim_ha_part(r->sim, "groups"), id, v)
		json_array_append_new(
			a, named_entry(r->sim, "/cluster/ha/groups", "group", id, v, digest));
	pl_sim_ok(r, a);
}

static void
h_group_get(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "group");
	json_t *v;
	char digest[41];

	if (!groups_usable(r, "read group"))
		return;
	if ((v = json_object_get(pl_sim_ha_part(r->sim, "groups"), id)) == NULL) {
		pl_sim_fail(r, 500, "no such ha group '%s'", id);
		return;
	}
	pl_sim_ha_digest(r->sim, "groups", digest);
	pl_sim_ok(r, named_entry(r->sim, "/cluster/ha/groups", "group", id, v, digest));
}

/* The text values of a request's parameters but the named ones. */
static json_t *
params_but(const struct pl_sim_req *r, const char *const *skip, size_t nskip)
{
	json_t *o = json_object();
	const char *k;
	json_t *v;

	json_object_foreach(r->params, k, v) {
		bool drop = false;

		for (size_t i = 0; i < nskip; i++)
			drop |= !strcmp(skip[i], k);
		if (!drop)
			json_object_set(o, k, v);
	}
	return o;
}

static void
h_group_create(struct pl_sim_req *r)
{
	static const char *const skip[] = { "group", "type" };
	const char *id = pl_sim_p(r, "group");

	if (!groups_usable(r, "create group"))
		return;
	if (json_object_get(pl_sim_ha_part(r->sim, "groups"), id)) {
		pl_sim_fail(r, 500, "create ha group failed: ha group ID '%s' already defined", id);
		return;
	}
	json_object_set_new(pl_sim_ha_part(r->sim, "groups"), id,
			    params_but(r, skip, PL_ARRAY_LEN(skip)));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_group_update(struct pl_sim_req *r)
{
	static const char *const skip[] = { "group", "type", "digest", "delete" };
	const char *id = pl_sim_p(r, "group"), *del = pl_sim_p(r, "delete");
	json_t *g, *upd;

	if (!groups_usable(r, "update group") ||
	    !pl_sim_ha_digest_ok(r, "groups", "update ha group failed"))
		return;
	if ((g = json_object_get(pl_sim_ha_part(r->sim, "groups"), id)) == NULL) {
		pl_sim_fail(r, 500, "update ha group failed: no such ha group '%s'", id);
		return;
	}
	if (del) {
		char *dup = pl_strdup(del), *save = NULL, *tok;

		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save))
			json_object_del(g, tok);
		free(dup);
	}
	upd = params_but(r, skip, PL_ARRAY_LEN(skip));
	json_object_update(g, upd);
	json_decref(upd);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_group_delete(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "group"), *sid;
	json_t *v;

	if (!groups_usable(r, "delete group"))
		return;
	if (!json_object_get(pl_sim_ha_part(r->sim, "groups"), id)) {
		pl_sim_fail(r, 500, "delete ha group failed: no such ha group '%s'", id);
		return;
	}
	json_object_foreach(pl_sim_ha_part(r->sim, "resources"), sid, v) {
		if (!strcmp(pl_json_str_or(v, "group", ""), id)) {
			pl_sim_fail(r, 500,
				    "delete ha group failed: ha group is used by service '%s'",
				    sid);
			return;
		}
	}
	json_object_del(pl_sim_ha_part(r->sim, "groups"), id);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* --- rules (PVE 9) --- */

static bool
rules_usable(struct pl_sim_req *r, const char *what)
{
	if (!pl_sim_ha_groups_migrated(r->sim)) {
		pl_sim_fail(r, 500, "cannot %s ha rule: ha groups have not been migrated yet",
			    what);
		return false;
	}
	return true;
}

/* Rules.pm's $assert_valid_resources_param: every resource must be HA managed. */
static char *
rule_resources_error(struct pl_sim *s, const char *list)
{
	char *dup = pl_strdup(list ? list : ""), *save = NULL, *tok, *err = NULL;
	struct pl_buf b;
	int n = 0;

	pl_buf_init(&b, 0);
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		n++;
		if (json_object_get(pl_sim_ha_part(s, "resources"), tok))
			continue;
		if (b.len)
			pl_buf_addstr(&b, ", ");
		pl_buf_addstr(&b, tok);
	}
	if (n == 0)
		err = pl_strdup("no resources were specified");
	else if (b.len)
		err = pl_asprintf("cannot use unmanaged resource(s) %s.", b.data);
	pl_buf_release(&b);
	free(dup);
	return err;
}

static void
h_rule_list(struct pl_sim_req *r)
{
	const char *type = pl_sim_p(r, "type"), *res = pl_sim_p(r, "resource");
	char digest[41];
	const char *id;
	json_t *v, *a = json_array();
	int order = 0;

	pl_sim_ha_digest(r->sim, "rules", digest);
	json_object_foreach(pl_sim_ha_part(r->sim, "rules"), id, v) {
		json_t *o;

		order++;
		if (type && strcmp(type, pl_json_str_or(v, "type", "")))
			continue;
		if (res && !strstr(pl_json_str_or(v, "resources", ""), res))
			continue;
		o = named_entry(r->sim, "/cluster/ha/rules", "rule", id, v, digest);
		json_object_set_new(o, "order", json_integer(order));
		json_array_append_new(a, o);
	}
	pl_sim_ok(r, a);
}

static void
h_rule_get(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "rule");
	json_t *v;
	char digest[41];

	if ((v = json_object_get(pl_sim_ha_part(r->sim, "rules"), id)) == NULL) {
		pl_sim_fail(r, 500, "no such ha rule '%s'", id);
		return;
	}
	pl_sim_ha_digest(r->sim, "rules", digest);
	pl_sim_ok(r, named_entry(r->sim, "/cluster/ha/rules", "rule", id, v, digest));
}

static void
h_rule_create(struct pl_sim_req *r)
{
	static const char *const skip[] = { "rule" };
	const char *id = pl_sim_p(r, "rule");
	char *err;

	if (!rules_usable(r, "create"))
		return;
	if (json_object_get(pl_sim_ha_part(r->sim, "rules"), id)) {
		pl_sim_fail(r, 500, "create ha rule failed: HA rule '%s' already defined", id);
		return;
	}
	if ((err = rule_resources_error(r->sim, pl_sim_p(r, "resources"))) != NULL) {
		pl_sim_fail(r, 500, "create ha rule failed: %s", err);
		free(err);
		return;
	}
	json_object_set_new(pl_sim_ha_part(r->sim, "rules"), id, params_but(r, skip, 1));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_rule_update(struct pl_sim_req *r)
{
	static const char *const skip[] = { "rule", "digest", "delete", "type" };
	const char *id = pl_sim_p(r, "rule"), *del = pl_sim_p(r, "delete");
	json_t *rule, *upd;
	char *err;

	if (!rules_usable(r, "update") ||
	    !pl_sim_ha_digest_ok(r, "rules", "update HA rules failed"))
		return;
	if ((rule = json_object_get(pl_sim_ha_part(r->sim, "rules"), id)) == NULL) {
		pl_sim_fail(r, 500, "update HA rules failed: no such ha rule '%s'", id);
		return;
	}
	if (pl_sim_p(r, "type") && strcmp(pl_sim_p(r, "type"), pl_json_str_or(rule, "type", ""))) {
		pl_sim_fail(r, 500, "update HA rules failed: types does not match");
		return;
	}
	if (pl_sim_p(r, "resources") &&
	    (err = rule_resources_error(r->sim, pl_sim_p(r, "resources"))) != NULL) {
		pl_sim_fail(r, 500, "update HA rules failed: %s", err);
		free(err);
		return;
	}
	if (del) {
		char *dup = pl_strdup(del), *save = NULL, *tok;

		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save))
			json_object_del(rule, tok);
		free(dup);
	}
	upd = params_but(r, skip, PL_ARRAY_LEN(skip));
	json_object_update(rule, upd);
	json_decref(upd);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_rule_delete(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "rule");

	if (!json_object_get(pl_sim_ha_part(r->sim, "rules"), id)) {
		pl_sim_fail(r, 500, "delete ha rule failed: no such ha rule '%s'", id);
		return;
	}
	json_object_del(pl_sim_ha_part(r->sim, "rules"), id);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* --- status --- */

static void
h_status_current(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	json_t *a = json_array(), *v;
	const char *sid;
	int64_t now = time(NULL);
	bool active = json_object_size(pl_sim_ha_part(s, "resources")) > 0;

	json_array_append_new(a,
			      json_pack("{s:s,s:s,s:s,s:s,s:i}", "id", "quorum", "type", "quorum",
					"node", s->nodes[0].name, "status", "OK", "quorate", 1));
	if (active) {
		char txt[300];

		snprintf(txt, sizeof(txt), "%s (active)", s->nodes[0].name);
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", "master", "type",
						   "master", "node", s->nodes[0].name, "status",
						   txt, "timestamp", (json_int_t)now));
		for (size_t i = 0; i < s->nnodes; i++) {
			char id[200];

			snprintf(id, sizeof(id), "lrm:%s", s->nodes[i].name);
			snprintf(txt, sizeof(txt), "%s (%s)", s->nodes[i].name,
				 s->nodes[i].online ? "active" : "old timestamp - dead?");
			json_array_append_new(a,
					      json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", id, "type",
							"lrm", "node", s->nodes[i].name, "status",
							txt, "timestamp", (json_int_t)now));
		}
	}
	json_object_foreach(pl_sim_ha_part(s, "resources"), sid, v) {
		struct pl_sim_guest *g = pl_sim_ha_sid_guest(s, sid);
		json_t *ss = json_object_get(pl_sim_ha_part(s, "service"), sid);
		const char *req = pl_sim_ha_req_state(v), *cur = pl_json_str(ss, "state"), *state;
		char id[64];

		/* PVE::HA::Tools::get_verbose_service_state */
		if (!strcmp(req, "ignored"))
			state = "ignored";
		else if (!cur)
			state = "queued";
		else if (!strcmp(cur, "stopped") && !strcmp(req, "started"))
			state = "starting";
		else if (!strcmp(cur, "stopped") && !strcmp(req, "disabled"))
			state = "disabled";
		else if (!strcmp(cur, "started") && strcmp(req, "started"))
			state = "stopping";
		else if (!strcmp(cur, "started") && g && g->status == PL_SIM_STOPPED)
			state = "starting";
		else
			state = cur;
		snprintf(id, sizeof(id), "service:%s", sid);
		json_array_append_new(a,
				      json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id", id, "type",
						"service", "sid", sid, "node",
						g ? s->nodes[g->node].name : "---", "state", state,
						"crm_state", cur ? cur : "", "request_state", req));
	}
	pl_sim_ok(r, a);
}

static void
h_manager_status(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	json_t *ms = json_object(), *ns = json_object(), *svc = json_object(), *lrm = json_object();
	const char *sid;
	json_t *v;
	int64_t now = time(NULL);

	for (size_t i = 0; i < s->nnodes; i++) {
		json_object_set_new(ns, s->nodes[i].name,
				    json_string(s->nodes[i].online ? "online" : "unknown"));
		json_object_set_new(lrm, s->nodes[i].name,
				    json_pack("{s:s,s:s,s:{},s:I}", "mode", "active", "state",
					      json_object_size(pl_sim_ha_part(s, "resources")) ?
						      "active" :
						      "wait_for_agent_lock",
					      "results", "timestamp", (json_int_t)now));
	}
	json_object_foreach(pl_sim_ha_part(s, "service"), sid, v) {
		struct pl_sim_guest *g = pl_sim_ha_sid_guest(s, sid);
		json_t *o = json_deep_copy(v);

		json_object_set_new(o, "running", json_integer(g && g->status != PL_SIM_STOPPED));
		json_object_set_new(svc, sid, o);
	}
	json_object_set_new(ms, "master_node", json_string(s->nodes[0].name));
	json_object_set_new(ms, "node_status", ns);
	json_object_set_new(ms, "service_status", svc);
	json_object_set_new(ms, "timestamp", json_integer(now));
	pl_sim_ok(r, json_pack("{s:o,s:o,s:{s:s,s:s}}", "manager_status", ms, "lrm_status", lrm,
			       "quorum", "node", s->nodes[0].name, "quorate", "1"));
}

const struct pl_sim_route_def pl_sim_harules_routes[] = {
	{ PL_SIM_GET, "/cluster/ha/groups", h_group_list, false, 0 },
	{ PL_SIM_POST, "/cluster/ha/groups", h_group_create, false, 0 },
	{ PL_SIM_GET, "/cluster/ha/groups/{group}", h_group_get, false, 0 },
	{ PL_SIM_PUT, "/cluster/ha/groups/{group}", h_group_update, false, 0 },
	{ PL_SIM_DELETE, "/cluster/ha/groups/{group}", h_group_delete, false, 0 },
	{ PL_SIM_GET, "/cluster/ha/rules", h_rule_list, false, 0 },
	{ PL_SIM_POST, "/cluster/ha/rules", h_rule_create, false, 0 },
	{ PL_SIM_GET, "/cluster/ha/rules/{rule}", h_rule_get, false, 0 },
	{ PL_SIM_PUT, "/cluster/ha/rules/{rule}", h_rule_update, false, 0 },
	{ PL_SIM_DELETE, "/cluster/ha/rules/{rule}", h_rule_delete, false, 0 },
	{ PL_SIM_GET, "/cluster/ha/status/current", h_status_current, false, 0 },
	{ PL_SIM_GET, "/cluster/ha/status/manager_status", h_manager_status, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
