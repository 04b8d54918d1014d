/*
 * API handlers for guest snapshots: list, create, delete, rollback and
 * their config, with the lock and task each takes on PVE.
 */
#include "core/common.h"

#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "model/wayback.h"
#include "sim/api.h"
#include "sim/internal.h"

/* --- snapshots --- */

/* The guest and its snapshot named by "snapname" (in *snap); NULL with PVE's
 * error set when either does not exist. */
static struct pl_sim_guest *
req_snap(struct pl_sim_req *r, json_t **snap)
{
	struct pl_sim_guest *g = pl_sim_req_guest(r, r->lxc);
	const char *name = pl_sim_p(r, "snapname");

	if (!g)
		return NULL;
	if (!(*snap = pl_sim_snap_find(g, name, NULL))) {
		pl_sim_fail(r, 500, "snapshot '%s' does not exist", name);
		return NULL;
	}
	return g;
}

static void
h_snap_list(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);
	json_t *a;
	size_t i;
	json_t *v;

	if (!g)
		return;
	a = json_array();
	json_array_foreach(g->snaps, i, v) {
		json_t *o = json_pack("{s:s,s:s,s:I}", "name", pl_json_str_or(v, "name", ""),
				      "description", pl_json_str_or(v, "description", ""),
				      "snaptime", (json_int_t)pl_json_int(v, "snaptime", 0));

		if (!lxc)
			json_object_set_new(o, "vmstate",
					    json_integer(pl_json_bool(v, "vmstate", false)));
		if (pl_json_str(v, "parent"))
			json_object_set_new(o, "parent", json_string(pl_json_str(v, "parent")));
		json_array_append_new(a, o);
	}
	{
		/* qemu-server's and pve-container's snapshot_list alike */
		json_t *cur = json_pack("{s:s,s:s,s:s,s:i}", "name", "current", "description",
					"You are here!", "digest", g->digest, "running",
					g->status != PL_SIM_STOPPED);
		if (g->parent)
			json_object_set_new(cur, "parent", json_string(g->parent));
		json_array_append_new(a, cur);
	}
	pl_sim_ok(r, a);
}

static void
snap_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *g = pl_sim_guest_find(s, t->vmid);
	json_t *sn;

	char *why;

	if (!g)
		return;
	/* pve-guest-common AbstractConfig::__snapshot_prepare, in the worker:
	 * it dies before the config (and its lock) is written, and the task
	 * fails with PVE's bare message */
	if ((why = pl_sim_snapshot_blocker(s, g)) != NULL) {
		pl_sim_task_fail(t, "snapshot feature is not available");
		free(why);
		return;
	}
	sn = json_pack("{s:s,s:s,s:I,s:o}", "name", pl_json_str_or(t->args, "name", ""),
		       "description", pl_json_str_or(t->args, "description", ""), "snaptime",
		       (json_int_t)time(NULL), "conf", json_deep_copy(g->conf));
	if (!g->lxc)
		json_object_set_new(sn, "vmstate",
				    json_integer(pl_json_bool(t->args, "vmstate", false)));
	if (g->parent)
		json_object_set_new(sn, "parent", json_string(g->parent));
	json_array_append_new(g->snaps, sn);
	free(g->parent);
	g->parent = pl_strdup(pl_json_str_or(t->args, "name", ""));
	pl_sim_task_log(t, "snapshot '%s' created", g->parent);
}

static void
h_snap_create(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);
	const char *name = pl_sim_p(r, "snapname");
	struct pl_sim_task *t;

	if (!g)
		return;
	if (!pl_sim_check_lock(r, g))
		return;
	if (!strcmp(name, "current") || !strcmp(name, "vzdump")) {
		pl_sim_fail(r, 500, "invalid snapshot name '%s'", name);
		return;
	}
	if (pl_sim_snap_find(g, name, NULL)) {
		pl_sim_fail(r, 500, "snapshot name '%s' already used", name);
		return;
	}
	if (pl_json_bool(g->conf, "template", false)) {
		pl_sim_fail(r, 500, "you can't take a snapshot if it's a template");
		return;
	}
	pl_sim_set_lock(r->sim, g, "snapshot");
	t = pl_sim_task_start(
		r->sim, g->node, lxc ? "vzsnapshot" : "qmsnapshot", pl_sim_p(r, "vmid"), r->user,
		g->vmid, snap_done,
		json_pack("{s:s,s:s,s:b}", "name", name, "description",
			  pl_sim_p(r, "description") ? pl_sim_p(r, "description") : "", "vmstate",
			  pl_sim_pbool(r, "vmstate", false)));
	pl_sim_ok_task(r, t);
}

static void
snapdel_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *g = pl_sim_guest_find(s, t->vmid);
	const char *name = pl_json_str_or(t->args, "name", "");
	size_t idx, i;
	json_t *sn, *v;
	char *parent;

	if (!g || !(sn = pl_sim_snap_find(g, name, &idx)))
		return;
	parent = pl_json_str(sn, "parent") ? pl_strdup(pl_json_str(sn, "parent")) : NULL;
	json_array_foreach(g->snaps, i, v) {
		if (pl_json_str(v, "parent") && !strcmp(pl_json_str(v, "parent"), name)) {
			if (parent)
				json_object_set_new(v, "parent", json_string(parent));
			else
				json_object_del(v, "parent");
		}
	}
	if (g->parent && !strcmp(g->parent, name)) {
		free(g->parent);
		g->parent = parent ? pl_strdup(parent) : NULL;
	}
	json_array_remove(g->snaps, idx);
	free(parent);
}

/* A snapshot's worker (delete or rollback) on the guest of the request: the
 * guest locked as lock while the task of type qm<type>/vz<type> runs. */
static void
snap_task(struct pl_sim_req *r, bool check_lock, const char *lock, const char *type,
	  pl_sim_task_fn done, json_t *args)
{
	json_t *sn;
	struct pl_sim_guest *g = req_snap(r, &sn);
	char task_type[32];

	if (!g || (check_lock && !pl_sim_check_lock(r, g))) {
		json_decref(args);
		return;
	}
	pl_sim_set_lock(r->sim, g, lock);
	snprintf(task_type, sizeof(task_type), "%s%s", r->lxc ? "vz" : "qm", type);
	pl_sim_ok_task(r, pl_sim_task_start(r->sim, g->node, task_type, pl_sim_p(r, "vmid"),
					    r->user, g->vmid, done, args));
}

static void
h_snap_delete(struct pl_sim_req *r)
{
	snap_task(r, !pl_sim_pbool(r, "force", false), "snapshot-delete", "delsnapshot",
		  snapdel_done, json_pack("{s:s}", "name", pl_sim_p(r, "snapname")));
}

static void
rollback_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *g = pl_sim_guest_find(s, t->vmid);
	const char *name = pl_json_str_or(t->args, "name", "");
	json_t *sn;

	if (!g || !(sn = pl_sim_snap_find(g, name, NULL)))
		return;
	json_decref(g->conf);
	g->conf = json_deep_copy(json_object_get(sn, "conf"));
	json_object_clear(g->pending);
	json_array_clear(g->pending_del);
	free(g->parent);
	g->parent = pl_strdup(name);
	if (pl_json_bool(sn, "vmstate", false) || pl_json_bool(t->args, "start", false)) {
		g->status = PL_SIM_RUNNING;
		g->started = time(NULL);
	} else {
		g->status = PL_SIM_STOPPED;
	}
	pl_sim_task_log(t, "rollback to snapshot '%s'", name);
}

/* Whether a later snapshot of g holds volid. */
static bool
newer_snapshot_has(struct pl_sim_guest *g, size_t idx, const char *volid, size_t len)
{
	const char *k;
	json_t *v;

	for (size_t i = idx + 1; i < json_array_size(g->snaps); i++)
		json_object_foreach(json_object_get(json_array_get(g->snaps, i), "conf"), k, v) {
			const char *val = json_string_value(v);

			if (val && pl_sim_is_volume_key(g, k, val) && strcspn(val, ",") == len &&
			    !strncmp(val, volid, len))
				return true;
		}
	return false;
}

/* PVE's error when snapshot sn (at idx) of g cannot be rolled back to: a
 * ZFS volume rolls back only to its newest snapshot (pve-storage's
 * ZFSPoolPlugin volume_rollback_is_possible: `zfs rollback` without -r, which
 * would destroy the newer ones). NULL when it can; caller frees. */
static char *
rollback_blocked(struct pl_sim *s, struct pl_sim_guest *g, json_t *sn, size_t idx)
{
	const char *k;
	json_t *v;

	json_object_foreach(json_object_get(sn, "conf"), k, v) {
		const char *val = json_string_value(v), *colon;
		size_t len;
		char store[64];
		struct pl_sim_storage *st;

		if (!val || !pl_sim_is_volume_key(g, k, val) || !(colon = strchr(val, ':')))
			continue;
		len = strcspn(val, ",");
		snprintf(store, sizeof(store), "%.*s", (int)(colon - val), val);
		if ((st = pl_sim_storage_find(s, store)) == NULL ||
		    !pl_model_rollback_newest_only(st->type))
			continue;
		if (newer_snapshot_has(g, idx, val, len))
			return pl_asprintf("can't rollback, '%s' is not most recent snapshot on '%.*s'",
					   pl_json_str_or(sn, "name", ""), (int)len, val);
	}
	return NULL;
}

static void
h_snap_rollback(struct pl_sim_req *r)
{
	json_t *sn;
	struct pl_sim_guest *g = req_snap(r, &sn);
	size_t idx = 0;
	char *why;

	if (g == NULL) /* answered */
		return;
	if (pl_sim_snap_find(g, pl_sim_p(r, "snapname"), &idx) &&
	    (why = rollback_blocked(r->sim, g, sn, idx)) != NULL) {
		/* the worker dies on its first check, before it locks or stops
		 * the guest (AbstractConfig snapshot_rollback's prepare) */
		struct pl_sim_task *t =
			pl_sim_task_start(r->sim, g->node, r->lxc ? "vzrollback" : "qmrollback",
					  pl_sim_p(r, "vmid"), r->user, g->vmid, NULL, NULL);

		t->unlock = false;
		pl_sim_task_doom(t, why);
		pl_sim_ok_task(r, t);
		free(why);
		return;
	}
	snap_task(r, true, "rollback", "rollback", rollback_done,
		  json_pack("{s:s,s:b}", "name", pl_sim_p(r, "snapname"), "start",
			    pl_sim_pbool(r, "start", false)));
}

static void
h_snap_index(struct pl_sim_req *r)
{
	json_t *sn;

	if (req_snap(r, &sn))
		pl_sim_ok(r, json_pack("[{s:s},{s:s}]", "cmd", "rollback", "cmd", "config"));
}

static void
h_snap_config(struct pl_sim_req *r)
{
	bool put = r->op;
	json_t *sn;
	struct pl_sim_guest *g = req_snap(r, &sn);

	if (!g)
		return;
	if (put) {
		if (pl_sim_p(r, "description"))
			json_object_set_new(sn, "description",
					    json_string(pl_sim_p(r, "description")));
		r->sim->dirty = true;
		pl_sim_ok(r, json_null());
		return;
	}
	{
		json_t *o = pl_sim_conf_json(r->sim, g, json_object_get(sn, "conf"));

		json_object_set_new(o, "snaptime", json_integer(pl_json_int(sn, "snaptime", 0)));
		if (pl_json_str(sn, "description"))
			json_object_set_new(o, "description",
					    json_string(pl_json_str(sn, "description")));
		if (pl_json_str(sn, "parent"))
			json_object_set_new(o, "parent", json_string(pl_json_str(sn, "parent")));
		pl_sim_ok(r, o);
	}
}

#define Q "/nodes/{node}/qemu"
#define L "/nodes/{node}/lxc"

const struct pl_sim_route_def pl_sim_snapshot_routes[] = {
	{ PL_SIM_GET, Q "/{vmid}/snapshot", h_snap_list, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/snapshot", h_snap_create, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/snapshot/{snapname}", h_snap_index, false, 0 },
	{ PL_SIM_DELETE, Q "/{vmid}/snapshot/{snapname}", h_snap_delete, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/snapshot/{snapname}/config", h_snap_config, false, 0 },
	{ PL_SIM_PUT, Q "/{vmid}/snapshot/{snapname}/config", h_snap_config, false, 1 },
	{ PL_SIM_POST, Q "/{vmid}/snapshot/{snapname}/rollback", h_snap_rollback, false, 0 },
	{ PL_SIM_GET, L "/{vmid}/snapshot", h_snap_list, true, 0 },
	{ PL_SIM_POST, L "/{vmid}/snapshot", h_snap_create, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/snapshot/{snapname}", h_snap_index, true, 0 },
	{ PL_SIM_DELETE, L "/{vmid}/snapshot/{snapname}", h_snap_delete, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/snapshot/{snapname}/config", h_snap_config, true, 0 },
	{ PL_SIM_PUT, L "/{vmid}/snapshot/{snapname}/config", h_snap_config, true, 1 },
	{ PL_SIM_POST, L "/{vmid}/snapshot/{snapname}/rollback", h_snap_rollback, true, 0 },
	{ 0, NULL, NULL, false, 0 },
};
