/*
 * API handlers for high availability (/cluster/ha): resources, groups (PVE 8,
 * and PVE 9 before migration), rules (PVE 9), status; and the HA requests a
 * start or stop of an HA-managed guest becomes, with the CRM and LRM that carry
 * them out (pve-ha-manager's PVE/API2/HA/{Resources,Groups,Rules,Status}.pm,
 * PVE/HA/Config.pm, PVE/HA/Manager.pm).
 */
#include "core/common.h"

#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/ha.h"
#include "sim/internal.h"

json_t *
pl_sim_ha_part(struct pl_sim *s, const char *name)
{
	json_t *o;

	if (!s->ha)
		s->ha = json_object();
	if ((o = json_object_get(s->ha, name)) == NULL) {
		o = json_object();
		json_object_set_new(s->ha, name, o);
	}
	return o;
}

bool
pl_sim_ha_v8(struct pl_sim *s)
{
	return !strcmp(s->schema->version, "8.4");
}

/* PVE::HA::Config::have_groups_been_migrated: on PVE 9 once no group is left
 * (a fresh PVE 9 cluster has none); PVE 8 has groups only. */
bool
pl_sim_ha_groups_migrated(struct pl_sim *s)
{
	return !pl_sim_ha_v8(s) && json_object_size(pl_sim_ha_part(s, "groups")) == 0;
}

/* PVE::HA::Config::parse_sid: "vm:100", "ct:100", or a bare VMID looked up. A
 * new string (caller frees) or NULL with the failure set. */
static char *
parse_sid(struct pl_sim_req *r, const char *sid, const char *errpfx)
{
	const char *colon;

	if (sid && *sid && strspn(sid, "0123456789") == strlen(sid)) {
		struct pl_sim_guest *g =
			pl_sim_guest_find(r->sim, (uint32_t)strtoul(sid, NULL, 10));

		if (!g) {
			pl_sim_fail(r, 500,
				    "%sunable to detect SID from VMID - VM/CT %s does not exist",
				    errpfx, sid);
			return NULL;
		}
		return pl_asprintf("%s:%u", g->lxc ? "ct" : "vm", g->vmid);
	}
	if (!sid || (colon = strchr(sid, ':')) == NULL || colon == sid || !colon[1] ||
	    strpbrk(sid, " \t")) {
		pl_sim_fail(r, 500, "%sunable to parse service id '%s'", errpfx, sid ? sid : "");
		return NULL;
	}
	return pl_strdup(sid);
}

/* The guest of a "vm:100" / "ct:100" service id, or NULL. */
struct pl_sim_guest *
pl_sim_ha_sid_guest(struct pl_sim *s, const char *sid)
{
	struct pl_sim_guest *g;

	if (strncmp(sid, "vm:", 3) && strncmp(sid, "ct:", 3))
		return NULL;
	g = pl_sim_guest_find(s, (uint32_t)strtoul(sid + 3, NULL, 10));
	if (g && g->lxc != (sid[0] == 'c'))
		return NULL;
	return g;
}

static void
sid_of(const struct pl_sim_guest *g, char out[32])
{
	snprintf(out, 32, "%s:%u", g->lxc ? "ct" : "vm", g->vmid);
}

/* The requested state of a resource; "enabled" is "started". */
const char *
pl_sim_ha_req_state(const json_t *res)
{
	const char *st = pl_json_str_or(res, "state", "started");

	return !strcmp(st, "enabled") ? "started" : st;
}

static void
guest_changed(struct pl_sim *s, struct pl_sim_guest *g)
{
	if (!g)
		return;
	free(g->res);
	g->res = NULL;
	s->dirty = true;
	s->gen++;
}

static void
set_service(struct pl_sim *s, const char *sid, const char *state)
{
	json_t *svc = pl_sim_ha_part(s, "service");
	struct pl_sim_guest *g = pl_sim_ha_sid_guest(s, sid);

	if (!state)
		json_object_del(svc, sid);
	else
		json_object_set_new(svc, sid,
				    json_pack("{s:s,s:s}", "state", state, "node",
					      g ? s->nodes[g->node].name : ""));
	guest_changed(s, g);
}

/* What the LRM does when the CRM asks it to start or stop a guest: a task of
 * root@pam (qmstart, qmshutdown, vzstop, ...) that changes the guest at its end. */
static void
lrm_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *g = pl_sim_guest_find(s, t->vmid);
	bool start = pl_json_bool(t->args, "start", false);
	char sid[32];

	if (!g)
		return;
	if (start && g->status == PL_SIM_STOPPED) {
		pl_sim_apply_pending(s, g);
		g->status = PL_SIM_RUNNING;
		g->started = time(NULL);
	} else if (!start) {
		g->status = PL_SIM_STOPPED;
	}
	sid_of(g, sid);
	if (!start && json_object_get(pl_sim_ha_part(s, "service"), sid))
		set_service(s, sid, "stopped");
	guest_changed(s, g);
}

static void
lrm_run(struct pl_sim *s, struct pl_sim_guest *g, bool start, long timeout)
{
	const char *type = start       ? (g->lxc ? "vzstart" : "qmstart") :
			   timeout > 0 ? (g->lxc ? "vzshutdown" : "qmshutdown") :
					 (g->lxc ? "vzstop" : "qmstop");
	char id[16];
	struct pl_sim_task *t;

	snprintf(id, sizeof(id), "%u", g->vmid);
	t = pl_sim_task_start(s, g->node, type, id, "root@pam", 0, lrm_done,
			      json_pack("{s:b}", "start", start));
	t->vmid = g->vmid;
}

/* One round of the CRM for a resource (PVE::HA::Manager's next_state_*): the
 * service state follows the requested one, the LRM starts or stops the guest. */
static void
crm_round(struct pl_sim *s, const char *sid, long timeout)
{
	json_t *res = json_object_get(pl_sim_ha_part(s, "resources"), sid);
	struct pl_sim_guest *g = pl_sim_ha_sid_guest(s, sid);
	const char *want;

	if (!res || !strcmp(pl_sim_ha_req_state(res), "ignored")) {
		set_service(s, sid, NULL);
		return;
	}
	want = pl_sim_ha_req_state(res);
	if (!g) {
		set_service(s, sid, "error");
		return;
	}
	if (!strcmp(want, "started")) {
		set_service(s, sid, "started");
		if (g->status == PL_SIM_STOPPED && s->nodes[g->node].online)
			lrm_run(s, g, true, 0);
	} else if (g->status != PL_SIM_STOPPED) {
		set_service(s, sid, "request_stop");
		lrm_run(s, g, false, timeout);
	} else {
		set_service(s, sid, "stopped");
	}
}

/* --- the hooks other files call --- */

const char *
pl_sim_ha_state(struct pl_sim *s, const struct pl_sim_guest *g)
{
	char sid[32];
	json_t *v;

	if (!s->ha)
		return NULL;
	sid_of(g, sid);
	/* pve-manager's /cluster/resources: the manager's service state, else
	 * the configured one */
	if ((v = json_object_get(json_object_get(s->ha, "service"), sid)) != NULL)
		return pl_json_str(v, "state");
	if ((v = json_object_get(json_object_get(s->ha, "resources"), sid)) != NULL)
		return pl_json_str_or(v, "state", "started");
	return NULL;
}

json_t *
pl_sim_ha_status_json(struct pl_sim *s, const struct pl_sim_guest *g)
{
	json_t *svc;
	char sid[32];

	sid_of(g, sid);
	if (!s->ha || !json_object_get(pl_sim_ha_part(s, "resources"), sid) ||
	    !strcmp(pl_sim_ha_req_state(json_object_get(pl_sim_ha_part(s, "resources"), sid)),
		    "ignored"))
		return json_pack("{s:i}", "managed", 0);
	svc = json_object_get(pl_sim_ha_part(s, "service"), sid);
	return json_pack("{s:i,s:s}", "managed", 1, "state",
			 pl_json_str_or(svc, "state", "queued"));
}

const char *
pl_sim_ha_node_state(struct pl_sim *s, int node)
{
	if (!s->ha || json_object_size(json_object_get(s->ha, "resources")) == 0)
		return NULL;
	return s->nodes[node].online ? "online" : "unknown";
}

static void
ha_request_done(struct pl_sim *s, struct pl_sim_task *t)
{
	const char *sid = pl_json_str(t->args, "sid");
	json_t *res = sid ? json_object_get(pl_sim_ha_part(s, "resources"), sid) : NULL;

	if (!res)
		return;
	json_object_set_new(
		res, "state",
		json_string(pl_json_bool(t->args, "start", false) ? "started" : "stopped"));
	crm_round(s, sid, (long)pl_json_int(t->args, "timeout", 0));
}

bool
pl_sim_ha_power(struct pl_sim_req *r, struct pl_sim_guest *g, int what)
{
	struct pl_sim *s = r->sim;
	json_t *res;
	char sid[32];
	struct pl_sim_task *t;
	long timeout = 0;

	if (what < 0 || !s->ha)
		return false;
	sid_of(g, sid);
	res = json_object_get(json_object_get(s->ha, "resources"), sid);
	/* PVE::HA::Config::vm_is_ha_managed: ignored resources behave as unmanaged */
	if (!res || !strcmp(pl_sim_ha_req_state(res), "ignored"))
		return false;
	if (what == PL_SIM_HA_STOP && pl_sim_pbool(r, "overrule-shutdown", false)) {
		pl_sim_param_fail(r, "overrule-shutdown", "Not applicable for HA resources.");
		return true;
	}
	if (what == PL_SIM_HA_SHUTDOWN)
		timeout = (long)pl_sim_pint(r, "timeout", 60);
	/* qemu-server's vm_start / vm_stop / vm_shutdown and pve-container's: a
	 * worker that runs ha-manager and ends before the CRM acts */
	t = pl_sim_task_start(s, g->node, what == PL_SIM_HA_START ? "hastart" : "hastop",
			      pl_sim_p(r, "vmid"), r->user, 0, ha_request_done,
			      json_pack("{s:s,s:b,s:I}", "sid", sid, "start",
					what == PL_SIM_HA_START, "timeout", (json_int_t)timeout));
	pl_sim_task_log(t, "Requesting HA %s for %s %u", what == PL_SIM_HA_START ? "start" : "stop",
			PL_SIM_GT(g), g->vmid);
	pl_sim_ok_task(r, t);
	return true;
}

/* --- resources --- */

void
pl_sim_ha_digest(struct pl_sim *s, const char *part, char out[41])
{
	pl_sim_sha1_json(pl_sim_ha_part(s, part), out);
}

const struct pl_sim_method *
pl_sim_ha_method(struct pl_sim *s, const char *path, enum pl_sim_meth m)
{
	struct pl_sim_path *p = pl_sim_schema_find(s->schema, path);

	return p ? p->methods[m] : NULL;
}

static json_t *
res_entry(struct pl_sim *s, const char *sid, json_t *res, const char *digest)
{
	json_t *o = pl_sim_typed(pl_sim_ha_method(s, "/cluster/ha/resources", PL_SIM_POST), res);

	json_object_set_new(o, "sid", json_string(sid));
	json_object_set_new(o, "digest", json_string(digest));
	if (pl_sim_ha_groups_migrated(s))
		json_object_del(o, "group");
	else if (pl_json_str(res, "group") &&
		 !json_object_get(pl_sim_ha_part(s, "groups"), pl_json_str(res, "group")))
		json_object_set_new(o, "errors",
				    json_pack("{s:s++}", "group", "group '",
					      pl_json_str(res, "group"), "' does not exist"));
	return o;
}

static void
h_res_list(struct pl_sim_req *r)
{
	const char *type = pl_sim_p(r, "type");
	char digest[41];
	const char *sid;
	json_t *v, *a = json_array();

	pl_sim_ha_digest(r->sim, "resources", digest);
	json_object_foreach(pl_sim_ha_part(r->sim, "resources"), sid, v)
		if (!type || !strcmp(type, pl_json_str_or(v, "type", "")))
			json_array_append_new(a, res_entry(r->sim, sid, v, digest));
	pl_sim_ok(r, a);
}

static void
h_res_get(struct pl_sim_req *r)
{
	char *sid = parse_sid(r, pl_sim_p(r, "sid"), "");
	json_t *res;
	char digest[41];

	if (!sid)
		return;
	if ((res = json_object_get(pl_sim_ha_part(r->sim, "resources"), sid)) == NULL) {
		pl_sim_fail(r, 500, "no such resource '%s'", sid);
	} else {
		pl_sim_ha_digest(r->sim, "resources", digest);
		pl_sim_ok(r, res_entry(r->sim, sid, res, digest));
	}
	free(sid);
}

/* The resource options of a request as text (sid, type, digest, delete and
 * path variables left out). */
static json_t *
res_opts(const struct pl_sim_req *r)
{
	static const char *const keys[] = { "state",       "group",        "failback",
					    "max_restart", "max_relocate", "comment" };
	json_t *o = json_object();

	for (size_t i = 0; i < PL_ARRAY_LEN(keys); i++)
		if (pl_sim_p(r, keys[i]))
			json_object_set_new(o, keys[i], json_string(pl_sim_p(r, keys[i])));
	return o;
}

/* The type in a request must be the sid's ("types does not match"). */
static bool
type_matches(struct pl_sim_req *r, const char *sid)
{
	const char *t = pl_sim_p(r, "type");

	if (t && (strncmp(sid, t, strlen(t)) || sid[strlen(t)] != ':')) {
		pl_sim_fail(r, 500, "types does not match");
		return false;
	}
	return true;
}

static void
h_res_create(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	char *sid = parse_sid(r, pl_sim_p(r, "sid"), "");
	json_t *res;

	if (!sid)
		return;
	if (!type_matches(r, sid))
		goto out;
	if (pl_sim_p(r, "group") && pl_sim_ha_groups_migrated(s)) {
		pl_sim_fail(r, 500,
			    "invalid parameter 'group': ha groups have been migrated to rules");
		goto out;
	}
	if (strncmp(sid, "vm:", 3) && strncmp(sid, "ct:", 3)) {
		pl_sim_fail(r, 500, "unknown resource type '%.*s'", (int)strcspn(sid, ":"), sid);
		goto out;
	}
	/* PVE::HA::Resources::PVEVM/PVECT: verify_name, exists */
	if (sid[3] < '1' || sid[3] > '9' || strspn(sid + 3, "0123456789") != strlen(sid + 3)) {
		pl_sim_fail(r, 500, "invalid VMID");
		goto out;
	}
	if (!pl_sim_ha_sid_guest(s, sid)) {
		struct pl_sim_guest *other =
			pl_sim_guest_find(s, (uint32_t)strtoul(sid + 3, NULL, 10));

		if (other)
			pl_sim_fail(r, 500, "resource '%s' - guest with ID %u is not a %s", sid,
				    other->vmid, sid[0] == 'v' ? "VM" : "container");
		else
			pl_sim_fail(r, 500, "resource '%s' does not exist in cluster", sid);
		goto out;
	}
	if (json_object_get(pl_sim_ha_part(s, "resources"), sid)) {
		pl_sim_fail(r, 500, "create resource failed: resource ID '%s' already defined",
			    sid);
		goto out;
	}
	res = res_opts(r);
	json_object_set_new(res, "type", json_stringn(sid, strcspn(sid, ":")));
	json_object_set_new(pl_sim_ha_part(s, "resources"), sid, res);
	crm_round(s, sid, 0);
	pl_sim_ok(r, json_null());
out:
	free(sid);
}

bool
pl_sim_ha_digest_ok(struct pl_sim_req *r, const char *part, const char *errpfx)
{
	const char *want = pl_sim_p(r, "digest");
	char cur[41];

	pl_sim_ha_digest(r->sim, part, cur);
	if (want && strcmp(want, cur)) {
		pl_sim_fail(r, 500,
			    "%s: detected modified configuration - file changed by other user? Try "
			    "again.",
			    errpfx);
		return false;
	}
	return true;
}

static void
h_res_update(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	char *sid = parse_sid(r, pl_sim_p(r, "sid"), "");
	const char *del = pl_sim_p(r, "delete"), *group = pl_sim_p(r, "group");
	json_t *res, *opts;
	const char *k;
	json_t *v;

	if (!sid)
		return;
	if (!type_matches(r, sid))
		goto out;
	if (group && pl_sim_ha_groups_migrated(s)) {
		pl_sim_fail(r, 500,
			    "invalid parameter 'group': ha groups have been migrated to rules");
		goto out;
	}
	if (group && !json_object_get(pl_sim_ha_part(s, "groups"), group)) {
		pl_sim_fail(r, 500, "HA group '%s' does not exist", group);
		goto out;
	}
	/* check_service_state */
	if (!strcmp(pl_json_str_or(json_object_get(pl_sim_ha_part(s, "service"), sid), "state", ""),
		    "error") &&
	    !(pl_sim_p(r, "state") && !strcmp(pl_sim_p(r, "state"), "disabled"))) {
		pl_sim_fail(r, 500, "service '%s' in error state, must be disabled and fixed first",
			    sid);
		goto out;
	}
	if (!pl_sim_ha_digest_ok(r, "resources", "update resources config failed"))
		goto out;
	if ((res = json_object_get(pl_sim_ha_part(s, "resources"), sid)) == NULL) {
		pl_sim_fail(r, 500, "update resources config failed: no such resource '%s'", sid);
		goto out;
	}
	if (del) {
		char *dup = pl_strdup(del), *save = NULL, *tok;
		static const char *const known[] = { "state",       "group",        "failback",
						     "max_restart", "max_relocate", "comment" };

		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save)) {
			bool ok = false;

			for (size_t i = 0; i < PL_ARRAY_LEN(known); i++)
				ok |= !strcmp(known[i], tok);
			if (!ok) {
				pl_sim_fail(r, 500,
					    "update resources config failed: no such option '%s'",
					    tok);
				free(dup);
				goto out;
			}
		}
		free(dup);
		dup = pl_strdup(del);
		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save))
			json_object_del(res, tok);
		free(dup);
	}
	opts = res_opts(r);
	json_object_foreach(opts, k, v)
		json_object_set(res, k, v);
	json_decref(opts);
	crm_round(s, sid, 0);
	pl_sim_ok(r, json_null());
out:
	free(sid);
}

/* PVE::HA::Config::delete_service_from_config: the resource goes; with purge
 * it also leaves every rule, and a rule left empty goes. */
static void
res_delete(struct pl_sim *s, const char *sid, bool purge)
{
	json_t *rules = pl_sim_ha_part(s, "rules");
	void *it;

	json_object_del(pl_sim_ha_part(s, "resources"), sid);
	set_service(s, sid, NULL);
	for (it = json_object_iter(rules); purge && it;) {
		json_t *rule = json_object_iter_value(it);
		const char *key = json_object_iter_key(it);
		char *left = pl_sim_list_without(pl_json_str(rule, "resources"), sid);

		it = json_object_iter_next(rules, it);
		if (!*left)
			json_object_del(rules, key);
		else
			json_object_set_new(rule, "resources", json_string(left));
		free(left);
	}
	s->dirty = true;
}

static void
h_res_delete(struct pl_sim_req *r)
{
	char *sid = parse_sid(r, pl_sim_p(r, "sid"), "");

	if (!sid)
		return;
	if (!json_object_get(pl_sim_ha_part(r->sim, "resources"), sid))
		pl_sim_fail(r, 500, "cannot delete service '%s', not HA managed!", sid);
	else {
		res_delete(r->sim, sid, pl_sim_pbool(r, "purge", true));
		pl_sim_ok(r, json_null());
	}
	free(sid);
}

bool
pl_sim_ha_destroy_refused(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	char sid[32];

	sid_of(g, sid);
	if (!r->sim->ha || !json_object_get(pl_sim_ha_part(r->sim, "resources"), sid) ||
	    pl_sim_pbool(r, "purge", false))
		return false;
	pl_sim_fail(r, 500,
		    "unable to remove %s %u - used in HA resources and purge parameter not set.",
		    PL_SIM_GT(g), g->vmid);
	return true;
}

void
pl_sim_cluster_forget(struct pl_sim *s, uint32_t vmid, bool lxc, bool purge)
{
	char sid[32];

	pl_sim_fw_forget(s, vmid);
	if (!purge)
		return;
	pl_sim_jobs_forget(s, vmid);
	snprintf(sid, sizeof(sid), "%s:%u", lxc ? "ct" : "vm", vmid);
	if (s->ha && json_object_get(pl_sim_ha_part(s, "resources"), sid))
		res_delete(s, sid, true);
}

/* --- seeds and state --- */

/* A seed's list of objects keyed by idkey, or an object of them, as an object. */
static int
seed_keyed(const json_t *v, const char *idkey, json_t *into, char **errmsg)
{
	size_t i;
	json_t *e;
	const char *k;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, e) {
			json_t *c = json_object();
			const char *kk;
			json_t *ev;

			json_object_foreach(e, kk, ev) {
				char *txt = pl_api_value_text(ev);

				if (txt && strcmp(kk, idkey))
					json_object_set_new(c, kk, json_string(txt));
				free(txt);
			}
			json_object_set_new(into, k, c);
		}
		return 0;
	}
	json_array_foreach(v, i, e) {
		const char *id = pl_json_str(e, idkey);
		json_t *wrap;

		if (!id)
			return pl_seterr(errmsg, PL_EINVAL, "seed: ha entry %zu has no '%s'", i,
					 idkey);
		wrap = json_pack("{s:O}", id, e);
		seed_keyed(wrap, idkey, into, errmsg);
		json_decref(wrap);
	}
	return 0;
}

int
pl_sim_ha_seed(struct pl_sim *s, const json_t *ha, char **errmsg)
{
	const char *sid;
	json_t *v;
	int r;

	if (!ha)
		return 0;
	if ((r = seed_keyed(json_object_get(ha, "resources"), "sid", pl_sim_ha_part(s, "resources"),
			    errmsg)) != 0 ||
	    (r = seed_keyed(json_object_get(ha, "groups"), "group", pl_sim_ha_part(s, "groups"),
			    errmsg)) != 0 ||
	    (r = seed_keyed(json_object_get(ha, "rules"), "rule", pl_sim_ha_part(s, "rules"),
			    errmsg)) != 0)
		return r;
	json_object_foreach(pl_sim_ha_part(s, "resources"), sid, v) {
		struct pl_sim_guest *g = pl_sim_ha_sid_guest(s, sid);
		const char *want = pl_sim_ha_req_state(v);

		if (!g)
			return pl_seterr(errmsg, PL_ENOENT,
					 "seed: HA resource '%s' names no guest of the cluster",
					 sid);
		if (!json_object_get(v, "type"))
			json_object_set_new(v, "type", json_stringn(sid, strcspn(sid, ":")));
		/* a seeded cluster is settled: the CRM has brought each guest to
		 * its requested state */
		if (!strcmp(want, "ignored"))
			continue;
		if (!strcmp(want, "started") && g->status == PL_SIM_STOPPED) {
			g->status = PL_SIM_RUNNING;
			g->started = s->t0 - 600;
		} else if (strcmp(want, "started")) {
			g->status = PL_SIM_STOPPED;
		}
		set_service(s, sid, !strcmp(want, "started") ? "started" : "stopped");
	}
	return 0;
}

json_t *
pl_sim_ha_dump(struct pl_sim *s)
{
	if (!s->ha)
		return NULL;
	return json_pack("{s:O,s:O,s:O}", "resources", pl_sim_ha_part(s, "resources"), "groups",
			 pl_sim_ha_part(s, "groups"), "rules", pl_sim_ha_part(s, "rules"));
}

const struct pl_sim_route_def pl_sim_ha_routes[] = {
	{ PL_SIM_GET, "/cluster/ha/resources", h_res_list, false, 0 },
	{ PL_SIM_POST, "/cluster/ha/resources", h_res_create, false, 0 },
	{ PL_SIM_GET, "/cluster/ha/resources/{sid}", h_res_get, false, 0 },
	{ PL_SIM_PUT, "/cluster/ha/resources/{sid}", h_res_update, false, 0 },
	{ PL_SIM_DELETE, "/cluster/ha/resources/{sid}", h_res_delete, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
