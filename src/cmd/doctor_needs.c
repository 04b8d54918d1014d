/*
 * What a config needs of its API token: for each thing it declares, the
 * privileges on the paths PVE checks them (the schema's `permissions` of
 * the endpoints apply calls), for `pvelab doctor` to test and for
 * `pvelab doctor --print-setup` to grant.
 */
#include "core/common.h"

#include "cmd/doctor.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

/* What pvelab does to a guest it manages, on the guest's path (POST/PUT
 * /nodes/{node}/qemu|lxc[/{vmid}/config], status, snapshot, vzdump). */
static const char *const guest_privs[] = {
	"VM.Audit",         "VM.Allocate",       "VM.Config.Disk",    "VM.Config.CPU",
	"VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt",
	"VM.Snapshot",      "VM.Backup",
};

/* Add need (what, path, privs...) to out, merging with the same what+path. */
static void
need(json_t *out, const char *what, const char *path, const char *const *privs, size_t n)
{
	json_t *e = NULL, *v, *list;
	size_t i;

	json_array_foreach(out, i, v)
		if (!strcmp(pl_json_str_or(v, "what", ""), what) &&
		    !strcmp(pl_json_str_or(v, "path", ""), path))
			e = v;
	if (!e) {
		e = json_pack("{s:s,s:s,s:[]}", "what", what, "path", path, "privileges");
		json_array_append_new(out, e);
	}
	list = json_object_get(e, "privileges");
	for (i = 0; i < n; i++) {
		bool have = false;
		size_t j;

		json_array_foreach(list, j, v)
			have |= !strcmp(json_string_value(v), privs[i]);
		if (!have)
			json_array_append_new(list, json_string(privs[i]));
	}
}

static void
need1(json_t *out, const char *what, const char *path, const char *priv)
{
	need(out, what, path, &priv, 1);
}

/* The vmid of the guest or template called name in /cluster/resources, or 0. */
static long long
vmid_of(const json_t *resources, const char *name)
{
	size_t i;
	json_t *r;

	json_array_foreach(resources, i, r)
		if (!strcmp(pl_json_str_or(r, "name", ""), name) && pl_json_int(r, "vmid", 0) > 0)
			return pl_json_int(r, "vmid", 0);
	return 0;
}

static void
guest_storage(json_t *out, const char *what, const json_t *o)
{
	const char *st = pl_json_str(o, "storage");
	char *path;

	if (!st)
		return;
	path = pl_asprintf("/storage/%s", st);
	need1(out, what, path, "Datastore.AllocateSpace");
	free(path);
}

/* Stacks deployed through the QEMU guest agent (agent/ping, exec,
 * exec-status, file-write): qemu-server checks VM.GuestAgent.Unrestricted
 * for exec since PVE 9, VM.Monitor for all of them before. transport is
 * stack_defaults.transport. */
static void
stack_needs(json_t *out, const json_t *g, const char *scope, const char *transport, int api_major)
{
	const json_t *st;
	size_t i;

	if (!strcmp(pl_json_str_or(g, "type", "vm"), "lxc"))
		return; /* a container's stacks go over SSH */
	json_array_foreach(json_object_get(g, "stacks"), i, st) {
		const char *t = pl_json_str_or(st, "transport", transport);

		if (!strcmp(t, "agent") ||
		    (!strcmp(t, "auto") && json_is_true(json_object_get(g, "agent")))) {
			char *w = pl_asprintf("guest %s: its stacks, through the guest agent",
					      pl_json_str_or(g, "name", "?"));

			need1(out, w, scope,
			      api_major >= 9 ? "VM.GuestAgent.Unrestricted" : "VM.Monitor");
			free(w);
			return;
		}
	}
}

static void
guest_needs(json_t *out, const json_t *g, const json_t *resources, const char *transport,
	    int api_major)
{
	const char *name = pl_json_str_or(g, "name", "?"), *pool = pl_json_str(g, "pool");
	bool ct = !strcmp(pl_json_str_or(g, "type", "vm"), "lxc");
	long long vmid = pl_json_int(g, "vmid", 0);
	char *what = pl_asprintf("guest %s: create, configure, power, snapshot, back up", name);
	char *scope = pool ? pl_asprintf("/pool/%s", pool) :
		      vmid ? pl_asprintf("/vms/%lld", vmid) :
			     pl_strdup("/vms");
	char *disks = pl_asprintf("guest %s: its disks", name);
	const json_t *v, *clone = json_object_get(g, "clone");
	size_t i;

	need(out, what, scope, guest_privs, PL_ARRAY_LEN(guest_privs));
	stack_needs(out, g, scope, transport, api_major);
	if (!ct)
		need1(out, what, scope, "VM.Config.HWType");
	if (json_object_get(g, "cloudinit"))
		need1(out, what, scope, "VM.Config.Cloudinit");
	json_array_foreach(json_object_get(g, "disks"), i, v)
		guest_storage(out, disks, v);
	json_array_foreach(json_object_get(g, "mounts"), i, v)
		guest_storage(out, disks, v);
	guest_storage(out, disks, json_object_get(g, "rootfs"));
	guest_storage(out, disks, json_object_get(g, "efidisk"));
	guest_storage(out, disks, json_object_get(g, "tpm"));
	guest_storage(out, disks, clone);
	if (clone && pl_json_str(clone, "template")) {
		long long t = vmid_of(resources, pl_json_str(clone, "template"));
		char *w = pl_asprintf("guest %s: clone %s", name, pl_json_str(clone, "template"));
		char *p = t ? pl_asprintf("/vms/%lld", t) : pl_strdup("/vms");
		/* VM.Audit too: plan and apply find the template by its name in
		 * /cluster/resources, which lists only what the token audits */
		static const char *const clone_privs[] = { "VM.Audit", "VM.Clone" };

		need(out, w, p, clone_privs, PL_ARRAY_LEN(clone_privs));
		free(w);
		free(p);
	}
	if (pl_json_str(g, "ostemplate") && strchr(pl_json_str(g, "ostemplate"), ':')) {
		const char *t = pl_json_str(g, "ostemplate");
		char *st = pl_strndup(t, (size_t)(strchr(t, ':') - t));
		char *w = pl_asprintf("guest %s: its template %s", name, t);
		char *p = pl_asprintf("/storage/%s", st);

		need1(out, w, p, "Datastore.Audit");
		free(st);
		free(w);
		free(p);
	}
	if (ct && json_is_false(json_object_get(g, "unprivileged"))) {
		char *w = pl_asprintf("guest %s: a privileged container", name);

		need1(out, w, "/", "Sys.Modify");
		free(w);
	}
	/* PVE 8 checks SDN.Use on a bridge's local zone for every NIC */
	json_array_foreach(json_object_get(g, "networks"), i, v) {
		char *w, *p;

		if (api_major < 8 || !pl_json_str(v, "bridge"))
			continue;
		w = pl_asprintf("guest %s: its network", name);
		p = pl_asprintf("/sdn/zones/localnetwork/%s", pl_json_str(v, "bridge"));
		need1(out, w, p, "SDN.Use");
		free(w);
		free(p);
	}
	json_array_foreach(json_object_get(g, "hostpci"), i, v) {
		char *w = pl_asprintf("guest %s: PCI passthrough", name), *p;

		if (pl_json_str(v, "mapping")) {
			p = pl_asprintf("/mapping/pci/%s", pl_json_str(v, "mapping"));
			need1(out, w, p, "Mapping.Use");
			free(p);
		} else {
			/* qemu-server: a raw host device is root@pam's alone */
			need1(out, w, "/", "root@pam");
		}
		free(w);
	}
	free(what);
	free(scope);
	free(disks);
}

json_t *
pl_doctor_needs(const struct pl_config *cfg, const json_t *resources, int api_major)
{
	json_t *out = json_array();
	const json_t *v;
	const char *k;
	size_t i;

	need1(out, "sync and plan: read the nodes", "/nodes", "Sys.Audit");
	need1(out, "sync and plan: read the storages", "/storage", "Datastore.Audit");
	if (!cfg)
		return out;
	json_array_foreach(pl_config_guests(cfg), i, v)
		guest_needs(
			out, v, resources,
			pl_json_str_or(pl_config_get(cfg, "/stack_defaults"), "transport", "auto"),
			api_major);
	if ((k = json_string_value(pl_config_get(cfg, "/backup/storage"))) != NULL) {
		char *p = pl_asprintf("/storage/%s", k);

		need1(out, "the way back: a backup before a destroy", p, "Datastore.AllocateSpace");
		free(p);
	}
	json_array_foreach(pl_config_get(cfg, "/bridges"), i, v) {
		char *p = pl_asprintf("/nodes/%s", pl_json_str_or(v, "node", ""));

		need1(out, "bridges", pl_json_str(v, "node") ? p : "/nodes", "Sys.Modify");
		free(p);
	}
	if (json_array_size(pl_config_get(cfg, "/storages")))
		need1(out, "storages", "/storage", "Datastore.Allocate");
	if (json_array_size(pl_config_get(cfg, "/backups"))) {
		static const char *const p[] = { "Sys.Audit", "Sys.Modify" };

		need(out, "backup jobs", "/", p, PL_ARRAY_LEN(p));
	}
	json_array_foreach(pl_config_get(cfg, "/pools"), i, v) {
		/* Pool.Audit: GET /pools lists only the pools the token audits */
		static const char *const privs[] = { "Pool.Allocate", "Pool.Audit" };
		char *p = pl_asprintf("/pool/%s", pl_json_str_or(v, "name", ""));

		need(out, "pools", p, privs, PL_ARRAY_LEN(privs));
		free(p);
	}
	json_array_foreach(pl_config_get(cfg, "/pci_mappings"), i, v) {
		/* POST and DELETE check /mapping/pci; the list shows only what the
		 * token audits */
		static const char *const privs[] = { "Mapping.Modify", "Mapping.Audit" };
		char *p = pl_asprintf("/mapping/pci/%s", pl_json_str_or(v, "name", ""));

		need(out, "PCI mappings", "/mapping/pci", privs, 1);
		need(out, "PCI mappings", p, privs, PL_ARRAY_LEN(privs));
		free(p);
	}
	{
		const json_t *fw = pl_config_get(cfg, "/firewall");
		static const char *const p[] = { "Sys.Audit", "Sys.Modify" };

		if (json_object_get(fw, "options") || json_object_get(fw, "aliases") ||
		    json_object_get(fw, "ipsets") || json_object_get(fw, "groups") ||
		    json_object_get(fw, "rules"))
			need(out, "the cluster firewall", "/", p, PL_ARRAY_LEN(p));
		if (json_object_get(fw, "host"))
			need(out, "the nodes' firewall", "/nodes", p, PL_ARRAY_LEN(p));
		json_object_foreach((json_t *)json_object_get(fw, "nodes"), k, v) {
			char *path = pl_asprintf("/nodes/%s", k);

			need(out, "the nodes' firewall", path, p, PL_ARRAY_LEN(p));
			free(path);
		}
	}
	json_array_foreach(pl_config_get(cfg, "/snapshot_policies"), i, v) {
		const json_t *x;
		size_t j;

		json_array_foreach(json_object_get(v, "pools"), j, x) {
			char *p = pl_asprintf("/pool/%s", json_string_value(x));

			need1(out, "snapshot policies", p, "VM.Snapshot");
			free(p);
		}
		if (json_array_size(json_object_get(v, "tags")))
			need1(out, "snapshot policies", "/vms", "VM.Snapshot");
	}
	return out;
}
