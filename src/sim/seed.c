/*
 * The simulated cluster's seeds and state: building it from a seed document
 * (docs/sim.md) or generating one of N nodes and guests, dumping it in the seed
 * format, and the state file.
 */
#include "core/common.h"

#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <time.h>

#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/internal.h"

/* --- seeds --- */

static uint64_t
seed_size(const json_t *v, uint64_t dflt)
{
	unsigned long long b;

	if (json_is_integer(v))
		return (uint64_t)json_integer_value(v);
	if (json_is_string(v) && pl_size_parse(json_string_value(v), &b) == 0)
		return b;
	return dflt;
}

/* A fresh PVE install's /etc/network/interfaces: lo (priority 2 in file
 * order), the NIC, and vmbr0 on it with the node's address and a gateway
 * at .1 of its /24. */
static void
node_default_network(struct pl_sim_node *n)
{
	const char *ip = n->ip ? n->ip : "192.168.1.10";
	const char *dot = strrchr(ip, '.');
	char *c = pl_asprintf("%s/24", ip);
	char *gw = pl_asprintf("%.*s.1", dot ? (int)(dot - ip) : 0, ip);

	json_object_set_new(n->ifaces, "eno1",
			    json_pack("{s:s,s:s,s:i,s:s,s:i,s:i,s:[s]}", "iface", "eno1", "type",
				      "eth", "active", 1, "method", "manual", "exists", 1,
				      "priority", 3, "families", "inet"));
	json_object_set_new(n->ifaces, "vmbr0",
			    json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:[s]}",
				      "iface", "vmbr0", "type", "bridge", "active", 1, "method",
				      "static", "bridge_ports", "eno1", "bridge_stp", "off",
				      "bridge_fd", "0", "cidr", c, "address", ip, "gateway", gw,
				      "autostart", 1, "priority", 4, "families", "inet"));
	free(c);
	free(gw);
}

static int
seed_nodes(struct pl_sim *s, const json_t *nodes, char **errmsg)
{
	size_t i;
	json_t *n;

	if (!json_is_array(nodes) || json_array_size(nodes) == 0)
		return pl_seterr(errmsg, PL_EINVAL, "seed: 'nodes' must be a non-empty list");
	s->nnodes = json_array_size(nodes);
	s->nodes = pl_calloc(s->nnodes, sizeof(*s->nodes));
	json_array_foreach(nodes, i, n) {
		struct pl_sim_node *sn = &s->nodes[i];
		const char *name =
			json_is_string(n) ? json_string_value(n) : pl_json_str(n, "name");
		json_t *net = json_object_get(n, "network");

		if (!name)
			return pl_seterr(errmsg, PL_EINVAL, "seed: nodes[%zu] has no 'name'", i);
		sn->name = pl_strdup(name);
		sn->ip = pl_json_str(n, "ip") ? pl_strdup(pl_json_str(n, "ip")) :
						pl_asprintf("192.168.1.%zu", 10 + i);
		sn->cpus = (int)pl_json_int(n, "cpus", 16);
		sn->clock_offset = pl_json_int(n, "clock_offset", 0);
		sn->maxmem = seed_size(json_object_get(n, "memory"), 64ULL << 30);
		sn->maxdisk = seed_size(json_object_get(n, "disk"), 100ULL << 30);
		sn->online = pl_json_bool(n, "online", true);
		sn->boot = s->t0 - 86400 * 3 - (int64_t)(i * 3600);
		sn->ifaces = json_object();
		sn->pending = json_object();
		if (json_is_array(net)) {
			size_t j;
			json_t *ifc;

			json_array_foreach(net, j, ifc) {
				const char *iface = pl_json_str(ifc, "iface");
				json_t *c;

				if (!iface)
					return pl_seterr(
						errmsg, PL_EINVAL,
						"seed: nodes[%zu].network[%zu] has no 'iface'", i,
						j);
				c = json_deep_copy(ifc);
				if (!json_object_get(c, "type"))
					json_object_set_new(c, "type", json_string("bridge"));
				if (pl_json_str(c, "cidr") && !json_object_get(c, "address")) {
					const char *cidr = pl_json_str(c, "cidr");
					const char *sl = strchr(cidr, '/');

					json_object_set_new(
						c, "address",
						json_stringn(cidr, sl ? (size_t)(sl - cidr) :
									strlen(cidr)));
					if (sl)
						json_object_set_new(c, "netmask",
								    json_string(sl + 1));
				}
				if (!json_object_get(c, "families"))
					json_object_set_new(c, "families",
							    json_pack("[s]", "inet"));
				if (!json_object_get(c, "priority"))
					json_object_set_new(c, "priority",
							    json_integer((json_int_t)j + 1));
				json_object_set_new(c, "active", json_integer(1));
				json_object_set_new(sn->ifaces, iface, c);
			}
		} else if (json_is_object(net)) {
			json_object_update(sn->ifaces, net);
		} else {
			node_default_network(sn);
		}
		if (json_is_object(json_object_get(n, "network_pending")))
			json_object_update(sn->pending, json_object_get(n, "network_pending"));
	}
	return 0;
}

static void
storage_defaults(struct pl_sim *s)
{
	s->nstores = 2;
	s->stores = pl_calloc(2, sizeof(*s->stores));
	s->stores[0].id = pl_strdup("local");
	s->stores[0].type = pl_strdup("dir");
	s->stores[0].content = pl_strdup("backup,iso,vztmpl");
	s->stores[0].path = pl_strdup("/var/lib/vz");
	s->stores[0].total = 100ULL << 30;
	s->stores[1].id = pl_strdup("local-lvm");
	s->stores[1].type = pl_strdup("lvmthin");
	s->stores[1].content = pl_strdup("images,rootdir");
	s->stores[1].total = 2048ULL << 30;
	pl_sim_storecfg_seed(&s->stores[0], NULL);
	pl_sim_storecfg_seed(&s->stores[1], NULL);
}

static int
seed_storages(struct pl_sim *s, const json_t *stores, char **errmsg)
{
	size_t i;
	json_t *v;

	if (!stores) {
		storage_defaults(s);
		return 0;
	}
	if (!json_is_array(stores))
		return pl_seterr(errmsg, PL_EINVAL, "seed: 'storages' must be a list");
	s->nstores = json_array_size(stores);
	s->stores = pl_calloc(s->nstores ? s->nstores : 1, sizeof(*s->stores));
	json_array_foreach(stores, i, v) {
		struct pl_sim_storage *st = &s->stores[i];
		const char *id = pl_json_str(v, "id");
		json_t *vols = json_object_get(v, "volumes");

		if (!id)
			return pl_seterr(errmsg, PL_EINVAL, "seed: storages[%zu] has no 'id'", i);
		st->id = pl_strdup(id);
		st->type = pl_strdup(pl_json_str_or(v, "type", "dir"));
		st->content = pl_strdup(pl_json_str_or(v, "content", "images,rootdir"));
		st->path = pl_json_str(v, "path") ? pl_strdup(pl_json_str(v, "path")) : NULL;
		st->shared = pl_json_bool(v, "shared", false);
		st->total = seed_size(json_object_get(v, "size"), 500ULL << 30);
		if (json_is_array(json_object_get(v, "nodes")))
			st->nodes = json_deep_copy(json_object_get(v, "nodes"));
		pl_sim_storecfg_seed(st, v);
		if (json_is_array(vols)) {
			size_t j;
			json_t *vo;

			json_array_foreach(vols, j, vo) {
				const char *volid = pl_json_str(vo, "volid");
				const char *node = pl_json_str(vo, "node");
				struct pl_sim_volume *nv;

				if (!volid)
					continue;
				nv = pl_sim_volume_add(st, volid,
						       pl_json_str_or(vo, "content", "images"),
						       pl_json_str(vo, "format"),
						       seed_size(json_object_get(vo, "size"), 0),
						       (uint32_t)pl_json_int(vo, "vmid", 0),
						       node ? pl_sim_node_index(s, node) : 0);
				nv->ctime = pl_json_int(vo, "ctime", nv->ctime);
				if (json_is_object(json_object_get(vo, "archive")))
					nv->conf = json_deep_copy(json_object_get(vo, "archive"));
			}
		}
	}
	return 0;
}

static const char *
template_content(const char *volid, const char **format)
{
	if (strstr(volid, ":vztmpl/")) {
		*format = strstr(volid, ".tar.zst") ? "tzst" : "tgz";
		return "vztmpl";
	}
	if (strstr(volid, ":iso/")) {
		*format = "iso";
		return "iso";
	}
	if (strstr(volid, ":backup/")) {
		*format = strstr(volid, ".vma") ? "vma.zst" : "tar.zst";
		return "backup";
	}
	*format = "raw";
	return "images";
}

int
pl_sim_add_template(struct pl_sim *s, const char *volid, uint64_t size, char **errmsg)
{
	const char *fmt, *content = template_content(volid, &fmt);
	struct pl_sim_storage *st = NULL;
	const char *colon = strchr(volid, ':');
	char sid[128];

	if (!colon || (size_t)(colon - volid) >= sizeof(sid))
		return pl_seterr(errmsg, PL_EINVAL, "seed: invalid template volume '%s'", volid);
	memcpy(sid, volid, (size_t)(colon - volid));
	sid[colon - volid] = 0;
	if ((st = pl_sim_storage_find(s, sid)) == NULL)
		return pl_seterr(errmsg, PL_ENOENT,
				 "seed: template '%s' is on storage '%s', which is not defined",
				 volid, sid);
	if (st->shared) {
		if (!pl_sim_volume_find(s, volid, -1, NULL))
			pl_sim_volume_add(st, volid, content, fmt, size, 0, -1);
		return 0;
	}
	for (size_t i = 0; i < s->nnodes; i++) {
		if (!pl_sim_storage_on_node(st, s->nodes[i].name) ||
		    pl_sim_volume_find(s, volid, (int)i, NULL))
			continue;
		pl_sim_volume_add(st, volid, content, fmt, size, 0, (int)i);
	}
	return 0;
}

/* The config locks of the schema's `lock` enums (qemu-server, pve-container). */
static bool
valid_lock(const char *lock, bool lxc)
{
	static const char *const vm[] = { "backup",   "clone",  "create",          "migrate",
					  "rollback", "snapshot", "snapshot-delete", "suspending",
					  "suspended", NULL };
	static const char *const ct[] = { "backup",   "create",   "destroyed",       "disk",
					  "fstrim",   "migrate",  "mounted",         "rollback",
					  "snapshot", "snapshot-delete", NULL };

	for (const char *const *l = lxc ? ct : vm; *l; l++)
		if (!strcmp(*l, lock))
			return true;
	return false;
}

static int
seed_guest(struct pl_sim *s, const json_t *gv, size_t idx, char **errmsg)
{
	long long vmid = pl_json_int(gv, "vmid", 0);
	const char *type = pl_json_str_or(gv, "type", "qemu");
	const char *node = pl_json_str(gv, "node");
	const char *status = pl_json_str_or(gv, "status", "stopped");
	json_t *conf = json_object_get(gv, "config");
	int ni = node ? pl_sim_node_index(s, node) : (int)(idx % s->nnodes);
	struct pl_sim_guest *g;
	const char *k;
	json_t *v;

	if (vmid < 100 || vmid > 999999999)
		return pl_seterr(errmsg, PL_EINVAL,
				 "seed: guests[%zu] needs a 'vmid' of 100 or more", idx);
	if (ni < 0)
		return pl_seterr(errmsg, PL_ENOENT, "seed: guest %lld is on unknown node '%s'",
				 vmid, node);
	if (strcmp(type, "qemu") && strcmp(type, "lxc"))
		return pl_seterr(errmsg, PL_EINVAL,
				 "seed: guest %lld has type '%s' (want qemu or lxc)", vmid, type);
	if ((g = pl_sim_guest_add(s, (uint32_t)vmid, !strcmp(type, "lxc"), ni)) == NULL)
		return pl_seterr(errmsg, PL_ECONFLICT, "seed: VMID %lld is used twice", vmid);
	json_object_foreach(conf, k, v) {
		char *txt = pl_api_value_text(v), *a, *err = NULL;

		if (!txt)
			continue;
		if (!strcmp(k, "lock")) { /* the guest's lock, as a crash leaves it */
			if (!valid_lock(txt, g->lxc)) {
				pl_seterr(errmsg, PL_EINVAL, "seed: guest %lld: lock '%.30s' is "
					  "not one PVE sets", vmid, txt);
				free(txt);
				return PL_EINVAL;
			}
			snprintf(g->lock, sizeof(g->lock), "%s", txt);
			free(txt);
			continue;
		}
		if ((a = pl_sim_disk_alloc(s, g, k, txt, &err, NULL)) == NULL) {
			pl_seterr(errmsg, PL_EINVAL, "seed: guest %lld: %s: %s", vmid, k, err);
			free(err);
			free(txt);
			return PL_EINVAL;
		}
		free(txt);
		txt = pl_sim_net_fill(s, g, k, a);
		free(a);
		json_object_set_new(g->conf, k, json_string(txt));
		free(txt);
	}
	if (!json_object_get(g->conf, "name") && !g->lxc)
		json_object_set_new(g->conf, "name", json_sprintf("vm%lld", vmid));
	if (!json_object_get(g->conf, "hostname") && g->lxc)
		json_object_set_new(g->conf, "hostname", json_sprintf("ct%lld", vmid));
	if (json_is_object(json_object_get(gv, "pending")))
		json_object_update(g->pending, json_object_get(gv, "pending"));
	if (json_is_array(json_object_get(gv, "pending_delete")))
		json_array_extend(g->pending_del, json_object_get(gv, "pending_delete"));
	if (json_is_array(json_object_get(gv, "snapshots"))) {
		size_t j;
		json_t *sn;

		json_array_foreach(json_object_get(gv, "snapshots"), j, sn) {
			json_t *c = json_deep_copy(sn);

			if (!json_object_get(c, "conf"))
				json_object_set_new(c, "conf", json_deep_copy(g->conf));
			if (!json_object_get(c, "snaptime"))
				json_object_set_new(c, "snaptime", json_integer(s->t0 - 3600));
			json_array_append_new(g->snaps, c);
		}
	}
	if (pl_json_str(gv, "parent"))
		g->parent = pl_strdup(pl_json_str(gv, "parent"));
	else if (json_array_size(g->snaps))
		g->parent = pl_strdup(pl_json_str_or(
			json_array_get(g->snaps, json_array_size(g->snaps) - 1), "name", ""));
	if (!strcmp(status, "running") || !strcmp(status, "paused")) {
		g->status = !strcmp(status, "paused") ? PL_SIM_PAUSED : PL_SIM_RUNNING;
		g->started = s->t0 - pl_json_int(gv, "uptime", 3600 + (vmid % 7200));
	}
	pl_sim_guest_touch(s, g);
	return 0;
}

/* pci_mappings: {ID: {map: ["node=...,path=...,id=..."], description}}, as
 * /etc/pve/mapping/pci.cfg holds them. */
static int
seed_pcimaps(struct pl_sim *s, const json_t *maps, char **errmsg)
{
	const char *id;
	json_t *m;

	if (maps == NULL)
		return 0;
	if (!json_is_object(maps))
		return pl_seterr(errmsg, PL_EINVAL, "seed: pci_mappings must be a mapping of ids");
	json_object_foreach((json_t *)maps, id, m) {
		size_t i;
		json_t *v;

		if (!json_is_array(json_object_get(m, "map")))
			return pl_seterr(errmsg, PL_EINVAL,
					 "seed: pci_mappings: '%s' has no map list", id);
		json_array_foreach(json_object_get(m, "map"), i, v)
			if (!json_is_string(v))
				return pl_seterr(errmsg, PL_EINVAL,
						 "seed: pci_mappings: '%s': each map is a string",
						 id);
		json_object_set_new(s->pcimaps, id, json_deep_copy(m));
	}
	return 0;
}

int
pl_sim_seed_load(struct pl_sim *s, const json_t *seed, char **errmsg)
{
	const json_t *tpl = json_object_get(seed, "templates");
	const json_t *guests = json_object_get(seed, "guests");
	const json_t *pools = json_object_get(seed, "pools");
	size_t i;
	json_t *v;
	int r;

	if (!json_is_object(seed))
		return pl_seterr(errmsg, PL_EINVAL, "seed: the top level must be a mapping");
	free(s->clustername);
	s->clustername = pl_strdup(pl_json_str_or(seed, "cluster", "pvelab"));
	if ((r = seed_nodes(s, json_object_get(seed, "nodes"), errmsg)) != 0)
		return r;
	if ((r = seed_storages(s, json_object_get(seed, "storages"), errmsg)) != 0)
		return r;
	json_array_foreach(tpl, i, v) {
		const char *volid =
			json_is_string(v) ? json_string_value(v) : pl_json_str(v, "volid");

		if (!volid)
			continue;
		if ((r = pl_sim_add_template(s, volid,
					     seed_size(json_object_get(v, "size"), 130ULL << 20),
					     errmsg)) != 0)
			return r;
	}
	json_array_foreach(guests, i, v) {
		if ((r = seed_guest(s, v, i, errmsg)) != 0)
			return r;
	}
	if (json_is_array(pools)) {
		json_array_foreach(pools, i, v) {
			const char *id = pl_json_str(v, "poolid");

			if (!id)
				continue;
			json_object_set_new(
				s->pools, id,
				json_pack("{s:s,s:o}", "comment", pl_json_str_or(v, "comment", ""),
					  "members",
					  json_is_array(json_object_get(v, "members")) ?
						  json_deep_copy(json_object_get(v, "members")) :
						  json_array()));
		}
	} else if (json_is_object(pools)) {
		json_t *copy = json_deep_copy(pools);

		json_object_update(s->pools, copy);
		json_decref(copy);
	}
	if ((r = seed_pcimaps(s, json_object_get(seed, "pci_mappings"), errmsg)) != 0 ||
	    (r = pl_sim_ha_seed(s, json_object_get(seed, "ha"), errmsg)) != 0 ||
	    (r = pl_sim_jobs_seed(s, json_object_get(seed, "backup_jobs"), errmsg)) != 0 ||
	    (r = pl_sim_fw_seed(s, json_object_get(seed, "firewall"), errmsg)) != 0 ||
	    (r = pl_sim_access_seed(s, json_object_get(seed, "access"), errmsg)) != 0)
		return r;
	return 0;
}

/* The configs of generated guests beyond name, disk and NIC: key, value. */
static const char *const ct_conf[] = { "memory", "512",    "swap", "512",   "cores", "1",
				       "ostype", "debian", "arch", "amd64", NULL };
static const char *const vm_conf[] = { "memory",  "2048",
				       "cores",   "2",
				       "sockets", "1",
				       "ostype",  "l26",
				       "scsihw",  "virtio-scsi-single",
				       "boot",    "order=scsi0;net0",
				       NULL };

int
pl_sim_generate(struct pl_sim *s, int nodes, int guests, char **errmsg)
{
	json_t *seed = json_object(), *ns = json_array(), *tpl;
	int r;

	for (int i = 0; i < nodes; i++) {
		char *name = nodes == 1 ? pl_strdup("pve") : pl_asprintf("pve%d", i + 1);

		json_array_append_new(
			ns, json_pack("{s:s,s:i,s:s}", "name", name, "cpus", 32, "memory", "256G"));
		free(name);
	}
	json_object_set_new(seed, "nodes", ns);
	tpl = json_pack("[s,s,s]", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
			"local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
			"local:iso/debian-12.8.0-amd64-netinst.iso");
	json_object_set_new(seed, "templates", tpl);
	r = pl_sim_seed_load(s, seed, errmsg);
	json_decref(seed);
	if (r)
		return r;
	/* Guests are built directly (no seed round trip) so 10,000 start fast. */
	for (int i = 0; i < guests; i++) {
		uint32_t vmid = 100 + (uint32_t)i;
		bool lxc = i % 5 == 4;
		int node = i % nodes;
		struct pl_sim_guest *g = pl_sim_guest_add(s, vmid, lxc, node);
		struct pl_sim_storage *st = pl_sim_storage_find(s, "local-lvm");
		uint64_t r64 = pl_sim_rand(s);
		char volid[64], buf[160];

		snprintf(volid, sizeof(volid), "local-lvm:vm-%u-disk-0", vmid);
		pl_sim_volume_add(st, volid, lxc ? "rootdir" : "images", "raw",
				  (lxc ? 8ULL : 32ULL) << 30, vmid, node);
		json_object_set_new(g->conf, lxc ? "hostname" : "name",
				    json_sprintf("%s%u", lxc ? "ct" : "vm", vmid));
		for (const char *const *kv = lxc ? ct_conf : vm_conf; *kv; kv += 2)
			json_object_set_new(g->conf, kv[0], json_string(kv[1]));
		snprintf(buf, sizeof(buf), lxc ? "%s,size=8G" : "%s,iothread=1,size=32G", volid);
		json_object_set_new(g->conf, lxc ? "rootfs" : "scsi0", json_string(buf));
		snprintf(buf, sizeof(buf),
			 lxc ? "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:%02X:%02X:%02X,ip=dhcp,type="
			       "veth" :
			       "virtio=BC:24:11:%02X:%02X:%02X,bridge=vmbr0",
			 (unsigned)(r64 & 0xff), (unsigned)((r64 >> 8) & 0xff),
			 (unsigned)((r64 >> 16) & 0xff));
		json_object_set_new(g->conf, "net0", json_string(buf));
		if (i % 10 < 7) {
			g->status = PL_SIM_RUNNING;
			g->started = s->t0 - 600 - (int64_t)(r64 >> 40) % 86400;
		}
		pl_sim_guest_touch(s, g);
	}
	/* big generated clusters get storage that fits them */
	for (size_t k = 0; k < s->nstores; k++)
		for (int n = 0; n < nodes; n++) {
			uint64_t used = pl_sim_storage_used(&s->stores[k], n);

			if (used * 2 > s->stores[k].total)
				s->stores[k].total = used * 2;
		}
	return 0;
}

/* --- state --- */

json_t *
pl_sim_state_dump(struct pl_sim *s)
{
	json_t *root = json_object(), *nodes = json_array(), *stores = json_array(),
	       *guests = json_array();

	json_object_set_new(root, "cluster", json_string(s->clustername));
	for (size_t i = 0; i < s->nnodes; i++) {
		struct pl_sim_node *n = &s->nodes[i];

		json_array_append_new(nodes,
				      json_pack("{s:s,s:s,s:i,s:I,s:I,s:b,s:O,s:O,s:I}", "name",
						n->name, "ip", n->ip, "cpus", n->cpus, "memory",
						(json_int_t)n->maxmem, "disk",
						(json_int_t)n->maxdisk, "online", n->online,
						"network", n->ifaces, "network_pending", n->pending,
						"clock_offset", (json_int_t)n->clock_offset));
	}
	for (size_t i = 0; i < s->nstores; i++) {
		struct pl_sim_storage *st = &s->stores[i];
		json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:I}", "id", st->id, "type", st->type,
				      "content", st->content, "shared", st->shared, "size",
				      (json_int_t)st->total);
		json_t *vols = json_array();

		if (st->path)
			json_object_set_new(o, "path", json_string(st->path));
		if (st->nodes)
			json_object_set(o, "nodes", st->nodes);
		pl_sim_storecfg_dump(st, o);
		for (size_t v = 0; v < st->nvols; v++) {
			struct pl_sim_volume *vol = &st->vols[v];
			json_t *vo;

			if (!strcmp(vol->content, "images") || !strcmp(vol->content, "rootdir"))
				continue; /* re-registered from the guest configs */
			vo = json_pack("{s:s,s:s,s:s,s:I,s:I}", "volid", vol->volid, "content",
				       vol->content, "format", vol->format, "size",
				       (json_int_t)vol->size, "ctime", (json_int_t)vol->ctime);
			if (vol->vmid)
				json_object_set_new(vo, "vmid", json_integer(vol->vmid));
			if (vol->node >= 0)
				json_object_set_new(vo, "node",
						    json_string(s->nodes[vol->node].name));
			if (vol->conf)
				json_object_set(vo, "archive", vol->conf);
			json_array_append_new(vols, vo);
		}
		json_object_set_new(o, "volumes", vols);
		json_array_append_new(stores, o);
	}
	for (size_t i = 0; i < s->nguests; i++) {
		struct pl_sim_guest *g = s->guests[i];
		json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:O,s:O,s:O,s:O}", "vmid",
				      (json_int_t)g->vmid, "type", g->lxc ? "lxc" : "qemu", "node",
				      s->nodes[g->node].name, "status",
				      g->status == PL_SIM_RUNNING ? "running" :
				      g->status == PL_SIM_PAUSED  ? "paused" :
								    "stopped",
				      "config", g->conf, "pending", g->pending, "pending_delete",
				      g->pending_del, "snapshots", g->snaps);

		if (g->parent)
			json_object_set_new(o, "parent", json_string(g->parent));
		if (g->lock[0]) { /* read back by seed_guest */
			json_t *conf = json_deep_copy(g->conf);

			json_object_set_new(conf, "lock", json_string(g->lock));
			json_object_set_new(o, "config", conf);
		}
		if (g->status != PL_SIM_STOPPED)
			json_object_set_new(o, "uptime", json_integer(time(NULL) - g->started));
		json_array_append_new(guests, o);
	}
	json_object_set_new(root, "nodes", nodes);
	json_object_set_new(root, "storages", stores);
	json_object_set_new(root, "guests", guests);
	json_object_set(root, "pools", s->pools);
	if (json_object_size(s->pcimaps))
		json_object_set(root, "pci_mappings", s->pcimaps);
	json_object_set_new(root, "access", pl_sim_access_saved(s));
	if (s->ha)
		json_object_set_new(root, "ha", pl_sim_ha_dump(s));
	if (s->jobs)
		json_object_set_new(root, "backup_jobs", pl_sim_jobs_dump(s));
	if (s->fw)
		json_object_set_new(root, "firewall", pl_sim_fw_dump(s));
	return root;
}

int
pl_sim_state_save(struct pl_sim *s, char **errmsg)
{
	json_t *st;
	char *text;
	int r;

	if (!s->opts.state_file)
		return 0;
	st = pl_sim_state_dump(s);
	text = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(st);
	if (!text)
		return pl_seterr(errmsg, PL_ENOMEM, "cannot serialise the simulator state");
	r = pl_file_write_atomic(s->opts.state_file, text, strlen(text), 0600, errmsg);
	free(text);
	if (r == 0)
		s->dirty = false;
	return r;
}
