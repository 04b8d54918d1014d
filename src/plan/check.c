/*
 * References from pvelab.yaml into the cluster (see check.h). A reference the
 * config itself satisfies (a bridge it declares) is not an error.
 */
#include "core/common.h"
#include "plan/check.h"
#include "config/config.h"
#include "core/json.h"
#include "core/str.h"

static const json_t *
node_of(const json_t *cluster, const char *node)
{
	const json_t *n;
	size_t i;

	json_array_foreach(json_object_get(cluster, "nodes"), i, n)
		if (!strcmp(pl_json_str_or(n, "node", ""), node))
			return n;
	return NULL;
}

/* Is there an item with item[key1]==v1 (and node==node when node is given)? */
static bool
has(const json_t *list, const char *key, const char *value, const char *node)
{
	const json_t *x;
	size_t i;

	json_array_foreach(list, i, x)
		if (!strcmp(pl_json_str_or(x, key, ""), value) &&
		    (node == NULL || !strcmp(pl_json_str_or(x, "node", ""), node)))
			return true;
	return false;
}

static void
suggest_names(const json_t *list, const char *key, const char *value, char *out, size_t outlen)
{
	const char *names[512];
	const json_t *x;
	const char *s;
	size_t i, n = 0;

	json_array_foreach(list, i, x)
		if (n < 512 && pl_json_str(x, key))
			names[n++] = pl_json_str(x, key);
	s = n ? pl_str_suggest(value, names, n) : NULL;
	if (s)
		snprintf(out, outlen, " (did you mean '%s'?)", s);
	else
		out[0] = '\0';
}

static void
check_storage(const struct pl_config *c, const json_t *cluster, struct pl_diags *d,
	      const char *storage, const char *node, const char *ptr)
{
	char hint[128];

	if (storage == NULL || has(json_object_get(cluster, "storages"), "storage", storage, node))
		return;
	suggest_names(json_object_get(cluster, "storages"), "storage", storage, hint, sizeof(hint));
	pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no storage '%s'%s%s%s%s", storage,
		       node ? " on node '" : " in the cluster", node ? node : "", node ? "'" : "", hint);
}

static bool
declared_bridge(const struct pl_config *c, const char *name, const char *node)
{
	const json_t *b;
	size_t i;

	json_array_foreach(pl_config_get(c, "/bridges"), i, b)
		if (!strcmp(pl_json_str_or(b, "name", ""), name) &&
		    (!pl_json_str(b, "node") || !node || !strcmp(pl_json_str(b, "node"), node)))
			return true;
	return false;
}

void
pl_plan_check_cluster(const struct pl_config *c, const json_t *cluster, struct pl_diags *d)
{
	const json_t *g, *x;
	size_t i, j;
	char ptr[256], hint[128];

	json_array_foreach(pl_config_guests(c), i, g) {
		const char *node = pl_json_str(g, "node");
		const json_t *n = node ? node_of(cluster, node) : NULL;

		if (!json_is_object(g))
			continue;
		if (node && n == NULL) {
			suggest_names(json_object_get(cluster, "nodes"), "node", node, hint, sizeof(hint));
			snprintf(ptr, sizeof(ptr), "/guests/%zu/node", i);
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no node '%s' in the cluster%s", node, hint);
		}
		json_array_foreach(json_object_get(g, "disks"), j, x) {
			snprintf(ptr, sizeof(ptr), "/guests/%zu/disks/%zu/storage", i, j);
			check_storage(c, cluster, d, pl_json_str_or(x, "storage", "local-lvm"), n ? node : NULL, ptr);
		}
		json_array_foreach(json_object_get(g, "mounts"), j, x) {
			snprintf(ptr, sizeof(ptr), "/guests/%zu/mounts/%zu/storage", i, j);
			check_storage(c, cluster, d, pl_json_str(x, "storage"), n ? node : NULL, ptr);
		}
		if (!strcmp(pl_json_str_or(g, "type", "vm"), "lxc")) {
			const char *tmpl = pl_json_str(g, "ostemplate");
			char storage[128];

			snprintf(ptr, sizeof(ptr), "/guests/%zu/rootfs/storage", i);
			check_storage(c, cluster, d, pl_json_str_or(json_object_get(g, "rootfs"), "storage", "local-lvm"),
				      n ? node : NULL, ptr);
			if (tmpl && strchr(tmpl, ':')) {
				snprintf(storage, sizeof(storage), "%.*s", (int)strcspn(tmpl, ":"), tmpl);
				snprintf(ptr, sizeof(ptr), "/guests/%zu/ostemplate", i);
				check_storage(c, cluster, d, storage, n ? node : NULL, ptr);
			}
		}
		json_array_foreach(json_object_get(g, "networks"), j, x) {
			const char *br = pl_json_str_or(x, "bridge", "vmbr0");

			if (has(json_object_get(cluster, "bridges"), "iface", br, n ? node : NULL) ||
			    declared_bridge(c, br, node))
				continue;
			snprintf(ptr, sizeof(ptr), "/guests/%zu/networks/%zu/bridge", i, j);
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "no bridge '%s'%s%s%s (declare it under bridges: to have pvelab create it)",
				       br, n ? " on node '" : " in the cluster", n ? node : "", n ? "'" : "");
		}
		if (json_is_object(json_object_get(g, "clone"))) {
			const char *t = pl_json_str(json_object_get(g, "clone"), "template");
			long long id = 0;
			bool found = false;

			pl_str_to_ll(t ? t : "", 1, 999999999, &id);
			json_array_foreach(json_object_get(cluster, "guests"), j, x)
				if (pl_json_int(x, "template", 0) == 1 &&
				    ((id && pl_json_int(x, "vmid", 0) == id) || !strcmp(pl_json_str_or(x, "name", ""), t ? t : "")))
					found = true;
			if (!found) {
				snprintf(ptr, sizeof(ptr), "/guests/%zu/clone/template", i);
				pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no template '%s' in the cluster", t ? t : "");
			}
		}
		if (n) {
			long long cores = pl_json_int(g, "cores", 1) * pl_json_int(g, "sockets", 1);
			long long mem = pl_json_int(g, "memory", 0);

			snprintf(ptr, sizeof(ptr), "/guests/%zu", i);
			if (pl_json_int(n, "maxcpu", 0) && cores > pl_json_int(n, "maxcpu", 0))
				pl_config_diag(c, d, PL_DIAG_WARNING, ptr, "%lld cores is more than node '%s' has (%lld)",
					       cores, node, pl_json_int(n, "maxcpu", 0));
			if (pl_json_int(n, "maxmem", 0) && mem * 1048576 > pl_json_int(n, "maxmem", 0))
				pl_config_diag(c, d, PL_DIAG_WARNING, ptr, "%lld MiB of memory is more than node '%s' has (%lld MiB)",
					       mem, node, pl_json_int(n, "maxmem", 0) / 1048576);
		}
	}
	json_array_foreach(pl_config_get(c, "/bridges"), i, x) {
		const char *node = pl_json_str(x, "node");

		if (node && !node_of(cluster, node)) {
			snprintf(ptr, sizeof(ptr), "/bridges/%zu/node", i);
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no node '%s' in the cluster", node);
		}
	}
}
