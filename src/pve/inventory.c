/*
 * The sync fan-out: one /cluster/resources call names every node, guest and
 * storage; then per-guest configs and per-node details go out together through
 * the client's bounded queue, answers filled into the snapshot as they land.
 */
#include "core/common.h"
#include "pve/inventory.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "pve/client.h"

struct inv {
	struct pl_pve *c;
	json_t *snap;
	size_t done, total;
	int err;
	char *errmsg;
	pl_pve_progress_cb progress;
	void *parg;
};

struct item {
	struct inv *inv;
	json_t *target; /* guest or node object (borrowed from snap) */
	int kind;       /* 0 config, 1 node status, 2 bridges, 3 tasks */
};

static void
fail(struct inv *v, const struct pl_pve_result *res)
{
	if (v->err == 0) {
		v->err = res->err;
		v->errmsg = pl_strdup(res->errmsg ? res->errmsg : pl_strerror(res->err));
	}
}

static void
item_cb(const struct pl_pve_result *res, void *arg)
{
	struct item *it = arg;
	struct inv *v = it->inv;
	size_t i;
	json_t *o;

	v->done++;
	if (res->err == 0) {
		switch (it->kind) {
		case 0:
			json_object_set(it->target, "config",
					json_is_object(res->data) ? res->data : json_object());
			break;
		case 1:
			json_object_set(it->target, "detail", res->data);
			break;
		case 2:
			json_array_foreach(res->data, i, o) {
				json_t *b = json_deep_copy(o);

				json_object_set(b, "node", json_object_get(it->target, "node"));
				json_array_append_new(json_object_get(v->snap, "bridges"), b);
			}
			break;
		case 3:
			if (json_is_array(res->data))
				json_object_set(v->snap, "tasks", res->data);
			break;
		}
	} else if (it->kind == 0 && res->status == 500 && res->message &&
		   strstr(res->message, "does not exist")) {
		/* Deleted between the resource list and now: it is gone. */
		json_object_set_new(it->target, "_gone", json_true());
	} else if (it->kind == 3 || (it->kind != 0 && res->status == 595)) {
		/* Optional parts: the task list, details of an unreachable node. */
	} else {
		fail(v, res);
	}
	if (v->progress)
		v->progress(v->done, v->total, v->parg);
	free(it);
}

static void
queue(struct inv *v, json_t *target, int kind, const char *path, const json_t *params)
{
	struct item *it = pl_calloc(1, sizeof(*it));

	it->inv = v;
	it->target = target;
	it->kind = kind;
	v->total++;
	pl_pve_request(v->c, "GET", path, params, item_cb, it);
}

int
pl_pve_inventory(struct pl_pve *c, pl_pve_progress_cb progress, void *arg, json_t **snap,
		 char **errmsg)
{
	return pl_pve_inventory_some(c, NULL, NULL, progress, arg, snap, errmsg);
}

int
pl_pve_inventory_some(struct pl_pve *c, pl_pve_guest_filter filter, void *farg,
		      pl_pve_progress_cb progress, void *arg, json_t **snap, char **errmsg)
{
	struct inv v = { .c = c, .progress = progress, .parg = arg };
	json_t *res = NULL, *nodes, *guests, *storages, *o, *kept;
	size_t i;
	int r;

	*snap = NULL;
	if ((r = pl_pve_call(c, "GET", "/cluster/resources", NULL, &res, errmsg)) != 0)
		return r;
	if (!json_is_array(res)) {
		json_decref(res);
		return pl_seterr(errmsg, PL_EPARSE, "/cluster/resources did not return a list");
	}
	v.snap = json_pack("{s:[],s:[],s:[],s:[],s:[]}", "nodes", "guests", "storages", "bridges",
			   "tasks");
	nodes = json_object_get(v.snap, "nodes");
	guests = json_object_get(v.snap, "guests");
	storages = json_object_get(v.snap, "storages");
	json_array_foreach(res, i, o) {
		const char *t = pl_json_str(o, "type");

		if (t == NULL)
			continue;
		if (!strcmp(t, "node"))
			json_array_append(nodes, o);
		else if (!strcmp(t, "qemu") || !strcmp(t, "lxc"))
			json_array_append(guests, o);
		else if (!strcmp(t, "storage"))
			json_array_append(storages, o);
	}
	json_decref(res);
	json_array_foreach(guests, i, o) {
		char *path = pl_asprintf("/nodes/%s/%s/%lld/config", pl_json_str_or(o, "node", ""),
					 pl_json_str(o, "type"), pl_json_int(o, "vmid", 0));

		/* vmid arrives as a string on old nodes: store it as a number. */
		json_object_set_new(o, "vmid", json_integer(pl_json_int(o, "vmid", 0)));
		if (filter == NULL || filter(o, farg))
			queue(&v, o, 0, path, NULL);
		free(path);
	}
	json_array_foreach(nodes, i, o) {
		const char *n = pl_json_str(o, "node");
		json_t *p;
		char *path;

		if (n == NULL || strcmp(pl_json_str_or(o, "status", "online"), "online") != 0)
			continue;
		path = pl_asprintf("/nodes/%s/status", n);
		queue(&v, o, 1, path, NULL);
		free(path);
		path = pl_asprintf("/nodes/%s/network", n);
		p = json_pack("{s:s}", "type", "any_bridge");
		queue(&v, o, 2, path, p);
		json_decref(p);
		free(path);
	}
	queue(&v, NULL, 3, "/cluster/tasks", NULL);
	pl_pve_run(c);
	if (v.err) {
		r = pl_seterr(errmsg, v.err, "%s", v.errmsg);
		free(v.errmsg);
		json_decref(v.snap);
		return r;
	}
	/* Drop guests that vanished mid-way. */
	kept = json_array();
	json_array_foreach(guests, i, o)
		if (!json_is_true(json_object_get(o, "_gone")))
			json_array_append(kept, o);
	json_object_set_new(v.snap, "guests", kept);
	*snap = v.snap;
	return 0;
}

const json_t *
pl_pve_find_guest(const json_t *resources, const char *guest, bool *ambiguous)
{
	const json_t *found = NULL;
	long long vmid = -1;
	size_t i;
	json_t *o;

	*ambiguous = false;
	pl_str_to_ll(guest, 1, 999999999, &vmid);
	json_array_foreach(resources, i, o) {
		const char *t = pl_json_str(o, "type");

		if (t == NULL || (strcmp(t, "qemu") && strcmp(t, "lxc")))
			continue;
		if (vmid > 0 && pl_json_int(o, "vmid", -1) == vmid)
			return o;
		if (vmid < 0 && pl_json_str(o, "name") && !strcmp(pl_json_str(o, "name"), guest)) {
			if (found) {
				*ambiguous = true;
				return NULL;
			}
			found = o;
		}
	}
	return found;
}
