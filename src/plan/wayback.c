/*
 * An update's way back (plan/wayback.h): the snapshot rule of
 * model/wayback.h applied to the cluster inventory's storages.
 */
#include "core/common.h"
#include "plan/wayback.h"
#include "core/json.h"
#include "core/snapshot.h"
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
