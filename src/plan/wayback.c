/*
 * An update's way back (plan/wayback.h): the snapshot rule of
 * model/wayback.h applied to the cluster inventory's storages.
 */
#include "core/common.h"
#include "plan/wayback.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "core/err.h"
#include "model/wayback.h"

struct on_node {
	const json_t *storages;
	const char *node;
};

/* The plugin type of a storage on the node (/cluster/resources lists one
 * entry per node and storage, "plugintype" its type). */
static const char *
storage_type(const char *storage, void *arg)
{
	const struct on_node *on = arg;
	const json_t *st;
	size_t i;

	json_array_foreach(on->storages, i, st)
		if (!strcmp(pl_json_str_or(st, "storage", ""), storage) &&
		    (on->node == NULL || !strcmp(pl_json_str_or(st, "node", ""), on->node)))
			return pl_json_str(st, "plugintype");
	return NULL;
}

json_t *
pl_plan_way_back(const json_t *live, const char *node, const json_t *storages, bool no_snapshot)
{
	struct on_node on = { storages, node };
	bool lxc = !strcmp(pl_json_str_or(live, "type", ""), "lxc");
	char *why;
	json_t *wb;

	if (no_snapshot)
		return json_pack("{s:s,s:s}", "kind", PL_WAY_BACK_NONE, "reason", "--no-snapshot");
	why = pl_model_snapshot_blocker(lxc, json_object_get(live, PL_SNAP_CONFIG), storage_type,
					&on);
	if (why == NULL)
		return json_pack("{s:s}", "kind", PL_WAY_BACK_SNAPSHOT);
	wb = json_pack("{s:s,s:s}", "kind", PL_WAY_BACK_BACKUP, "reason", why);
	free(why);
	return wb;
}

const char *
pl_plan_way_back_kind(const json_t *change)
{
	return pl_json_str_or(json_object_get(change, "way_back"), "kind", PL_WAY_BACK_SNAPSHOT);
}

/* The names of the snapshots of snaps taken after target's (the same
 * second counted), quoted and comma-separated, into b; their count. */
static size_t
after(const json_t *target, const json_t *snaps, struct pl_buf *b)
{
	const char *snap = pl_json_str_or(target, "name", "");
	long long when = pl_json_int(target, "snaptime", 0);
	const json_t *t;
	size_t i, n = 0;

	json_array_foreach(snaps, i, t) {
		const char *name = pl_json_str_or(t, "name", "");

		if (strcmp(name, snap) && strcmp(name, "current") &&
		    pl_json_int(t, "snaptime", 0) >= when) {
			if (b)
				pl_buf_addf(b, "%s'%s'", n ? ", " : "", name);
			n++;
		}
	}
	return n;
}

int
pl_plan_snapshots_after(const char *snap, const json_t *snaps)
{
	const json_t *target = pl_json_find(snaps, "name", snap, false);

	return target ? (int)after(target, snaps, NULL) : -1;
}

char *
pl_plan_rollback_blocker(const char *snap, const json_t *snaps, const json_t *conf, bool lxc,
			 const char *node, const json_t *storages)
{
	struct on_node on = { storages, node };
	const json_t *target = pl_json_find(snaps, "name", snap, false);
	struct pl_buf newer;
	char *volid, *why;
	size_t n;

	if (target == NULL)
		return pl_asprintf("its snapshot '%s' is gone", snap);
	pl_buf_init(&newer, 0);
	n = after(target, snaps, &newer);
	if (n == 0 || (volid = pl_model_rollback_volume(lxc, conf, storage_type, &on)) == NULL) {
		pl_buf_release(&newer);
		return NULL;
	}
	why = pl_asprintf(
		"%s is on ZFS, which rolls back only to its newest snapshot, and %s "
		"%s taken after '%s': delete %s first (pvelab never deletes a snapshot it "
		"did not take)",
		volid, newer.data, n == 1 ? "was" : "were", snap, n == 1 ? "it" : "them");
	free(volid);
	pl_buf_release(&newer);
	return why;
}
