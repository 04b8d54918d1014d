/*
 * References from pvelab.yaml into the cluster (see check.h). A reference the
 * config itself satisfies (a bridge it declares) is not an error.
 */
#include "core/common.h"
#include "plan/check.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "core/snapshot.h"
#include "plan/templates.h"

static const json_t *
node_of(const json_t *cluster, const char *node)
{
	const json_t *n;
	size_t i;

	json_array_foreach(json_object_get(cluster, PL_SNAP_NODES), i, n)
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

/* Does a storage's content list ("images,rootdir") have type? */
static bool
has_content(const json_t *st, const char *type)
{
	const char *c = pl_json_str_or(st, "content", "");
	size_t n = strlen(type);

	for (;;) {
		size_t len = strcspn(c, ",");

		if (len == n && !strncmp(c, type, n))
			return true;
		if (c[len] == '\0')
			return false;
		c += len + 1;
	}
}

/* The nodes a storage is on, "pve1, pve2", or "" when it is nowhere. */
static void
storage_nodes(const json_t *cluster, const char *storage, char *out, size_t outlen)
{
	const json_t *x;
	size_t i, len = 0;

	out[0] = '\0';
	json_array_foreach(json_object_get(cluster, PL_SNAP_STORAGES), i, x)
		if (!strcmp(pl_json_str_or(x, "storage", ""), storage) && len + 1 < outlen)
			len += (size_t)snprintf(out + len, outlen - len, "%s%s", len ? ", " : "",
						pl_json_str_or(x, "node", "?"));
}

/* A storage a guest puts something on: on the node (or in the cluster when
 * the node is not known yet), available there, and allowed to hold what
 * goes there (content "images" for VM disks, "rootdir" for container
 * volumes, "vztmpl" for templates, "iso" for ISO images). */
static void
check_storage(const struct pl_config *c, const json_t *cluster, struct pl_diags *d,
	      const char *storage, const char *node, const char *content, const char *what,
	      const char *ptr)
{
	const json_t *x, *st = NULL;
	char hint[128], where[256];
	size_t i;

	if (storage == NULL)
		return;
	json_array_foreach(json_object_get(cluster, PL_SNAP_STORAGES), i, x)
		if (!strcmp(pl_json_str_or(x, "storage", ""), storage) &&
		    (node == NULL || !strcmp(pl_json_str_or(x, "node", ""), node)) &&
		    (st == NULL || !strcmp(pl_json_str_or(x, "status", "available"), "available")))
			st = x;
	if (st == NULL) {
		storage_nodes(cluster, storage, where, sizeof(where));
		if (node && where[0]) {
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "no storage '%s' on node '%s' (it is on %s only)", storage, node, where);
			return;
		}
		suggest_names(json_object_get(cluster, PL_SNAP_STORAGES), "storage", storage, hint, sizeof(hint));
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no storage '%s'%s%s%s%s", storage,
			       node ? " on node '" : " in the cluster", node ? node : "", node ? "'" : "", hint);
		return;
	}
	if (content && !has_content(st, content)) {
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
			       "storage '%s' does not allow content type '%s' for %s (it allows '%s')",
			       storage, content, what, pl_json_str_or(st, "content", ""));
		return;
	}
	if (node && pl_json_str(st, "status") && strcmp(pl_json_str(st, "status"), "available"))
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "storage '%s' is not available on node '%s' "
			       "(status '%s')", storage, node, pl_json_str(st, "status"));
}

/* The storage of a volume written "storage:..." ("local:iso/x.iso"), or
 * NULL for "none", "cdrom" and the like. */
static bool
volume_storage(const char *vol, char *out, size_t outlen)
{
	size_t n = strcspn(vol, ":,");

	if (vol[n] != ':' || n == 0 || n >= outlen)
		return false;
	snprintf(out, outlen, "%.*s", (int)n, vol);
	return true;
}

/* A container's template: on the node's storage, or downloadable there
 * through aplinfo. Only known when the snapshot has the content lists
 * (validate --live, plan). */
static void
check_template(const struct pl_config *c, const json_t *cluster, struct pl_diags *d,
	       const char *volid, const char *node, const char *ptr)
{
	bool known = false;
	char *fix;

	if (pl_templates_present(cluster, node, volid, &known) || !known ||
	    pl_templates_downloadable(cluster, node, volid))
		return;
	fix = pl_templates_suggest(cluster, volid);
	if (fix && strcmp(fix, volid))
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no template '%s'%s%s%s, and the appliance index "
			       "does not have it to download (did you mean '%s'?)", volid,
			       node ? " on node '" : " in the cluster", node ? node : "", node ? "'" : "", fix);
	else
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no template '%s'%s%s%s, and the appliance index "
			       "does not have it to download (pveam available lists what does)", volid,
			       node ? " on node '" : " in the cluster", node ? node : "", node ? "'" : "");
	free(fix);
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

/* Every storage a guest puts something on, with the content type it needs. */
static void
check_guest_storages(const struct pl_config *c, const json_t *cluster, struct pl_diags *d,
		     const json_t *g, size_t i, const char *node)
{
	bool lxc = !strcmp(pl_json_str_or(g, "type", "vm"), "lxc");
	const char *tmpl = pl_json_str(g, "ostemplate"), *k;
	const json_t *x;
	json_t *v;
	char ptr[256], storage[128];
	size_t j;

	json_array_foreach(json_object_get(g, "disks"), j, x) {
		snprintf(ptr, sizeof(ptr), "/guests/%zu/disks/%zu/storage", i, j);
		check_storage(c, cluster, d, pl_json_str_or(x, "storage", "local-lvm"), node, "images",
			      "VM disks", ptr);
	}
	if (json_is_object(json_object_get(g, "efidisk"))) {
		snprintf(ptr, sizeof(ptr), "/guests/%zu/efidisk/storage", i);
		check_storage(c, cluster, d, pl_json_str(json_object_get(g, "efidisk"), "storage"), node,
			      "images", "an EFI disk", ptr);
	}
	if (json_is_object(json_object_get(g, "tpm"))) {
		snprintf(ptr, sizeof(ptr), "/guests/%zu/tpm/storage", i);
		check_storage(c, cluster, d, pl_json_str(json_object_get(g, "tpm"), "storage"), node,
			      "images", "a TPM state disk", ptr);
	}
	if (json_is_object(json_object_get(g, "clone")) && pl_json_str(json_object_get(g, "clone"), "storage")) {
		snprintf(ptr, sizeof(ptr), "/guests/%zu/clone/storage", i);
		check_storage(c, cluster, d, pl_json_str(json_object_get(g, "clone"), "storage"), node,
			      "images", "a cloned VM's disks", ptr);
	}
	json_array_foreach(json_object_get(g, "mounts"), j, x) {
		snprintf(ptr, sizeof(ptr), "/guests/%zu/mounts/%zu/storage", i, j);
		check_storage(c, cluster, d, pl_json_str(x, "storage"), node, "rootdir",
			      "container volumes", ptr);
	}
	if (lxc && (tmpl || json_is_object(json_object_get(g, "rootfs")))) {
		snprintf(ptr, sizeof(ptr), "/guests/%zu/%s", i,
			 pl_json_str(json_object_get(g, "rootfs"), "storage") ? "rootfs/storage" : "ostemplate");
		check_storage(c, cluster, d, pl_json_str_or(json_object_get(g, "rootfs"), "storage", "local-lvm"),
			      node, "rootdir", "container volumes", ptr);
	}
	if (lxc && tmpl && volume_storage(tmpl, storage, sizeof(storage))) {
		snprintf(ptr, sizeof(ptr), "/guests/%zu/ostemplate", i);
		check_storage(c, cluster, d, storage, node, "vztmpl", "container templates", ptr);
		check_template(c, cluster, d, tmpl, node, ptr);
	}
	/* raw settings that name a volume: an ISO image on a storage */
	json_object_foreach((json_t *)json_object_get(g, "config"), k, v) {
		if (!json_is_string(v) || !strstr(json_string_value(v), ":iso/") ||
		    !volume_storage(json_string_value(v), storage, sizeof(storage)))
			continue;
		snprintf(ptr, sizeof(ptr), "/guests/%zu/config/%s", i, k);
		check_storage(c, cluster, d, storage, node, "iso", "ISO images", ptr);
	}
}

/* A guest declared by vmid against what has that vmid now. A container
 * without 'ostemplate' can only be an existing container. */
static void
check_vmid_type(const struct pl_config *c, const json_t *cluster, struct pl_diags *d,
		const json_t *g, size_t i)
{
	bool lxc = !strcmp(pl_json_str_or(g, "type", "vm"), "lxc");
	long long vmid = pl_json_int(g, "vmid", 0);
	const json_t *x, *live = NULL;
	char ptr[256];
	size_t j;

	if (vmid == 0)
		return;
	json_array_foreach(json_object_get(cluster, PL_SNAP_GUESTS), j, x)
		if (pl_json_int(x, "vmid", 0) == vmid)
			live = x;
	snprintf(ptr, sizeof(ptr), "/guests/%zu/vmid", i);
	if (lxc && !pl_json_str(g, "ostemplate")) {
		if (live == NULL)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no container %lld in the cluster, and a new "
				       "container needs 'ostemplate' (set it, or fix the vmid)", vmid);
		else if (strcmp(pl_json_str_or(live, "type", "qemu"), "lxc"))
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "vmid %lld is a VM ('%s'): declaring it a "
				       "container replaces it, and the new container needs 'ostemplate'",
				       vmid, pl_json_str_or(live, "name", ""));
		return;
	}
	if (live && pl_json_int(live, "template", 0) != 1 &&
	    strcmp(pl_json_str_or(live, "type", "qemu"), lxc ? "lxc" : "qemu"))
		pl_config_diag(c, d, PL_DIAG_WARNING, ptr, "vmid %lld is a %s ('%s'): this config replaces it "
			       "with a %s (plan shows it; apply needs --allow-replace)", vmid,
			       lxc ? "VM" : "container", pl_json_str_or(live, "name", ""),
			       lxc ? "container" : "VM");
}

/* The live guest a config guest is: the one with its vmid, else its name. */
static const json_t *
live_of(const json_t *cluster, const json_t *g)
{
	long long vmid = pl_json_int(g, "vmid", 0);
	const char *name = pl_json_str_or(g, "name", "");
	const json_t *x;
	size_t i;

	json_array_foreach(json_object_get(cluster, PL_SNAP_GUESTS), i, x)
		if (pl_json_int(x, "template", 0) != 1 &&
		    (vmid ? pl_json_int(x, "vmid", 0) == vmid :
			    !strcmp(pl_json_str_or(x, "name", ""), name)))
			return x;
	return NULL;
}

static double
gib(long long bytes)
{
	return (double)bytes / (double)(1LL << 30);
}

/* Over-commitment: the memory of every guest that runs on a node (this
 * config's running guests where they will be, and the running guests the
 * config does not declare) against the node's memory. A guest with no node
 * is on the only node, or when there are several, counted against the
 * memory of all online nodes together (the planner spreads them). */
static void
check_overcommit(const struct pl_config *c, const json_t *cluster, struct pl_diags *d)
{
	json_t *used = json_object(), *ours = json_object(), *ourmem = json_object();
	json_t *declared = json_object();
	const json_t *nodes = json_object_get(cluster, PL_SNAP_NODES), *g, *x, *n;
	long long unplaced = 0, total = 0, cap = 0;
	const char *only =
		json_array_size(nodes) == 1 ? pl_json_str(json_array_get(nodes, 0), "node") : NULL;
	size_t i, nours = 0;
	char key[32];

	json_array_foreach(pl_config_guests(c), i, g) {
		const json_t *live = json_is_object(g) ? live_of(cluster, g) : NULL;
		const char *node;
		long long mem;

		if (live) {
			snprintf(key, sizeof(key), "%lld", pl_json_int(live, "vmid", 0));
			json_object_set_new(declared, key, json_true());
		}
		if (!json_is_object(g) || !strcmp(pl_json_str_or(g, "state", "running"), "stopped"))
			continue;
		node = pl_json_str(g, "node") ? pl_json_str(g, "node") :
		       live                   ? pl_json_str(live, "node") :
						only;
		mem = json_object_get(g, "memory") ? pl_json_int(g, "memory", 0) * 1048576 :
		      live                         ? pl_json_int(live, "maxmem", 0) :
						     512LL * 1048576; /* PVE's default */
		total += mem;
		nours++;
		if (node == NULL || node_of(cluster, node) == NULL) {
			unplaced += mem;
			continue;
		}
		json_object_set_new(used, node, json_integer(pl_json_int(used, node, 0) + mem));
		json_object_set_new(ours, node, json_integer(pl_json_int(ours, node, 0) + 1));
		json_object_set_new(ourmem, node, json_integer(pl_json_int(ourmem, node, 0) + mem));
	}
	json_array_foreach(json_object_get(cluster, PL_SNAP_GUESTS), i, x) {
		const char *node = pl_json_str_or(x, "node", "");

		snprintf(key, sizeof(key), "%lld", pl_json_int(x, "vmid", 0));
		if (json_object_get(declared, key) || pl_json_int(x, "template", 0) == 1 ||
		    strcmp(pl_json_str_or(x, "status", ""), "running") || !node_of(cluster, node))
			continue;
		total += pl_json_int(x, "maxmem", 0);
		json_object_set_new(
			used, node,
			json_integer(pl_json_int(used, node, 0) + pl_json_int(x, "maxmem", 0)));
	}
	json_array_foreach(nodes, i, n) {
		const char *node = pl_json_str_or(n, "node", "");
		long long max = pl_json_int(n, "maxmem", 0), u = pl_json_int(used, node, 0);

		if (max == 0 || strcmp(pl_json_str_or(n, "status", "online"), "online"))
			continue;
		cap += max;
		if (u > max)
			pl_config_diag(c, d, PL_DIAG_WARNING, "/guests",
				       "running guests on node '%s' need %.2f GiB of memory, more "
				       "than its "
				       "%.2f GiB (%lld of this config's guests take %.2f GiB of "
				       "it; stop some "
				       "with state: stopped, give them less memory or move them to "
				       "another node)",
				       node, gib(u), gib(max), pl_json_int(ours, node, 0),
				       gib(pl_json_int(ourmem, node, 0)));
	}
	if (unplaced && cap && total > cap)
		pl_config_diag(c, d, PL_DIAG_WARNING, "/guests",
			       "running guests need %.2f GiB of memory, more than the %.2f GiB of "
			       "all online "
			       "nodes together (%zu of this config's guests, %.2f GiB of them on "
			       "no node yet)",
			       gib(total), gib(cap), nours, gib(unplaced));
	json_decref(used);
	json_decref(ours);
	json_decref(ourmem);
	json_decref(declared);
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
			suggest_names(json_object_get(cluster, PL_SNAP_NODES), "node", node, hint, sizeof(hint));
			snprintf(ptr, sizeof(ptr), "/guests/%zu/node", i);
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no node '%s' in the cluster%s", node, hint);
		}
		check_guest_storages(c, cluster, d, g, i, n ? node : NULL);
		check_vmid_type(c, cluster, d, g, i);
		json_array_foreach(json_object_get(g, "networks"), j, x) {
			const char *br = pl_json_str_or(x, "bridge", "vmbr0");

			if (has(json_object_get(cluster, PL_SNAP_BRIDGES), "iface", br, n ? node : NULL) ||
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

			const json_t *plain = NULL;

			pl_str_to_ll(t ? t : "", 1, 999999999, &id);
			json_array_foreach(json_object_get(cluster, PL_SNAP_GUESTS), j, x) {
				if ((!id || pl_json_int(x, "vmid", 0) != id) && strcmp(pl_json_str_or(x, "name", ""), t ? t : ""))
					continue;
				if (pl_json_int(x, "template", 0) == 1 && !strcmp(pl_json_str_or(x, "type", "qemu"), "qemu"))
					found = true;
				else
					plain = x;
			}
			snprintf(ptr, sizeof(ptr), "/guests/%zu/clone/template", i);
			if (!found && plain)
				pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "'%s' (%lld) is a %s, not a VM template "
					       "(qm template %lld converts a VM)", pl_json_str_or(plain, "name", ""),
					       pl_json_int(plain, "vmid", 0),
					       strcmp(pl_json_str_or(plain, "type", "qemu"), "lxc") ? "VM" : "container",
					       pl_json_int(plain, "vmid", 0));
			else if (!found)
				pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no template '%s' in the cluster", t ? t : "");
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
	json_array_foreach(pl_config_get(c, "/templates"), i, x) {
		const char *node = pl_json_str(x, "node"), *file = pl_json_str(x, "template");
		const char *storage = pl_json_str_or(x, "storage", "local");
		char *volid;

		if (file == NULL)
			continue;
		if (node && !node_of(cluster, node)) {
			snprintf(ptr, sizeof(ptr), "/templates/%zu/node", i);
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no node '%s' in the cluster", node);
			continue;
		}
		snprintf(ptr, sizeof(ptr), "/templates/%zu/storage", i);
		check_storage(c, cluster, d, storage, node, "vztmpl", "container templates", ptr);
		volid = pl_asprintf("%s:vztmpl/%s", storage, file);
		snprintf(ptr, sizeof(ptr), "/templates/%zu/template", i);
		check_template(c, cluster, d, volid, node, ptr);
		free(volid);
	}
	json_array_foreach(pl_config_get(c, "/bridges"), i, x) {
		const char *node = pl_json_str(x, "node");

		if (node && !node_of(cluster, node)) {
			snprintf(ptr, sizeof(ptr), "/bridges/%zu/node", i);
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no node '%s' in the cluster", node);
		}
	}
	check_overcommit(c, cluster, d);
}
