/*
 * API handlers for guests (/nodes/{node}/qemu and /lxc): list, create, config
 * with pending changes and hotplug, status, destroy, rrddata; locks and
 * PVE's error texts, shared with the other api_*.c guest files.
 */
#include "core/common.h"

#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/sshkey.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

/* Parameters of create/update calls that are not config keys. */
static const char *const not_conf[] = {
	"node", "vmid", "digest", "delete", "revert", "skiplock", "background_delay", "force",
	"start", "pool", "storage", "ostemplate", "password", "ssh-public-keys", "unique",
	"restore", "archive", "ignore-unpack-errors", "live-restore", "bwlimit", "import-working-storage",
	NULL,
};

static bool
is_conf_param(const char *k)
{
	for (size_t i = 0; not_conf[i]; i++)
		if (!strcmp(not_conf[i], k))
			return false;
	return true;
}

struct pl_sim_guest *
pl_sim_req_guest(struct pl_sim_req *r, bool lxc)
{
	int n = pl_sim_req_node(r);
	long long vmid = pl_sim_pint(r, "vmid", 0);
	struct pl_sim_guest *g;

	if (n < 0)
		return NULL;
	g = pl_sim_guest_find(r->sim, (uint32_t)vmid);
	if (!g || g->lxc != lxc || g->node != n) {
		pl_sim_fail(r, 500, "Configuration file 'nodes/%s/%s/%lld.conf' does not exist",
			    r->sim->nodes[n].name, lxc ? "lxc" : "qemu-server", vmid);
		return NULL;
	}
	return g;
}

/* PVE's check_lock, and the lock-file timeout the lockwait fault simulates. */
static void
lock_timeout_msg(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	if (g->lxc)
		pl_sim_fail(r, 500, "can't lock file '/run/lock/lxc/pve-config-%u.lock' - got timeout",
			    g->vmid);
	else
		pl_sim_fail(r, 500, "can't lock file '/var/lock/qemu-server/lock-%u.conf' - got timeout",
			    g->vmid);
}

/* A running task holds the guest's lock file (as PVE's power operations do
 * for their whole run): the call waits for it, then runs again. */
bool
pl_sim_flock_busy(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	if (!g->holder || !g->holder->running)
		return false;
	lock_timeout_msg(r, g);
	r->status = PL_SIM_WAIT;
	r->wait_vmid = g->vmid;
	return true;
}

bool
pl_sim_skiplock_ok(struct pl_sim_req *r)
{
	if (pl_sim_pbool(r, "skiplock", false) && strcmp(r->user, "root@pam") != 0) {
		pl_sim_param_fail(r, "skiplock", "Only root may use this option.");
		return false;
	}
	return true;
}

char *
pl_sim_lock_refusal(struct pl_sim_req *r, const struct pl_sim_guest *g)
{
	if (!g->lock[0] || pl_sim_pbool(r, "skiplock", false))
		return NULL;
	return pl_asprintf("%s is locked (%s)", PL_SIM_GT(g), g->lock);
}

char *
pl_sim_missing_volume(struct pl_sim *s, const struct pl_sim_guest *g)
{
	const char *k;
	json_t *v;

	json_object_foreach(g->conf, k, v) {
		const char *val = json_string_value(v);
		char volid[256], sid[128];
		struct pl_sim_storage *st;
		size_t vl;

		if (!val || !pl_sim_is_volume_key(g, k, val) || val[0] == '/' ||
		    strstr(val, "cloudinit"))
			continue;
		vl = strcspn(val, ",");
		if (vl >= sizeof(volid) || !memchr(val, ':', vl))
			continue;
		snprintf(sid, sizeof(sid), "%.*s", (int)strcspn(val, ":"), val);
		snprintf(volid, sizeof(volid), "%.*s", (int)vl, val);
		/* (a volume on a storage the simulator does not know stays unchecked) */
		if ((st = pl_sim_storage_find(s, sid)) == NULL)
			continue;
		if (!pl_sim_storage_on_node(st, s->nodes[g->node].name))
			return pl_asprintf("storage '%s' is not available on node '%s'", sid,
					   s->nodes[g->node].name);
		if (!pl_sim_volume_find(s, volid, g->node, NULL))
			return pl_asprintf("volume '%s' does not exist", volid);
	}
	return NULL;
}

bool
pl_sim_check_lock(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	char *why;

	if (pl_sim_flock_busy(r, g))
		return false;
	if (!pl_sim_skiplock_ok(r))
		return false;
	if ((why = pl_sim_lock_refusal(r, g)) != NULL) {
		pl_sim_fail(r, 500, "%s", why);
		free(why);
		return false;
	}
	return pl_sim_check_lock_fault(r, g);
}

bool
pl_sim_check_lock_fault(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	struct pl_sim *s = r->sim;

	if (s->faults.lockwait > 0 && pl_sim_rand01(s) < s->faults.lockwait) {
		lock_timeout_msg(r, g);
		r->delay_ms = s->opts.lock_wait_ms;
		return false;
	}
	return true;
}

void
pl_sim_set_lock(struct pl_sim *s, struct pl_sim_guest *g, const char *lock)
{
	snprintf(g->lock, sizeof(g->lock), "%s", lock);
	pl_sim_guest_touch(s, g);
}

static void
h_list(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim *s = r->sim;
	int n = pl_sim_req_node(r);
	json_t *a;

	if (n < 0)
		return;
	a = json_array();
	for (size_t i = 0; i < s->nguests; i++) {
		struct pl_sim_guest *g = s->guests[i];

		if (g->node == n && g->lxc == lxc &&
		    (!pl_sim_access_filtered(s, r->user) || pl_sim_vm_visible(s, r->user, g->vmid)))
			json_array_append_new(
				a,
				pl_sim_guest_status(s, g, pl_sim_pbool(r, "full", false), false));
	}
	pl_sim_ok(r, a);
}

void
pl_sim_gen_uuid(struct pl_sim *s, char out[37])
{
	uint64_t a = pl_sim_rand(s), b = pl_sim_rand(s);

	snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
		 (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
		 (unsigned)((b >> 48) & 0x3fff) | 0x8000, (unsigned long long)(b & 0xffffffffffffULL));
}

/* Set one config value, allocating disks and filling MACs. */
int
pl_sim_conf_value(struct pl_sim_req *r, struct pl_sim_guest *g, json_t *into, const char *k,
		  const char *v)
{
	char *err = NULL, *a, *b;
	bool nospace = false;
	const char *imp = strstr(v, "import-from=");

	/* $check_drive_param, before anything is made */
	if (imp && !g->lxc &&
	    (imp == v || imp[-1] != ',' || strcspn(v, ",") < 3 ||
	     strncmp(v + strcspn(v, ",") - 2, ":0", 2) != 0)) {
		pl_sim_param_fail(r, k,
				  "'import-from' requires special syntax - use <storage "
				  "ID>:0,import-from=<source>");
		return -1;
	}
	if ((a = pl_sim_disk_alloc(r->sim, g, k, v, &err, &nospace)) == NULL) {
		pl_sim_fail(r, 500, "%s", err ? err : "disk allocation failed");
		free(err);
		return nospace ? PL_SIM_IN_WORKER : -1;
	}
	b = pl_sim_net_fill(r->sim, g, k, a);
	json_object_set_new(into, k, json_string(b));
	free(a);
	free(b);
	return 0;
}

static void
create_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *g = pl_sim_guest_find(s, t->vmid);

	pl_sim_task_log(t, "%s", pl_json_str_or(t->args, "log", ""));
	if (g && pl_json_bool(t->args, "start", false)) {
		g->status = PL_SIM_RUNNING;
		g->started = time(NULL);
	}
}

/* PVE never shows a VM's cloud-init password: GET config and pending
 * answer '**********' (qemu-server's API2/Qemu.pm). */
static void
mask_cipassword(const struct pl_sim_guest *g, json_t *o)
{
	if (!g->lxc && json_object_get(o, "cipassword"))
		json_object_set_new(o, "cipassword", json_string("**********"));
}

/* PVE stores the cloud-init password crypt()ed unless it already looks
 * like a crypt hash; the simulator's stand-in is "$5$sim$<sha256>". */
static void
hash_cipassword(const struct pl_sim_guest *g, json_t *conf)
{
	const char *pw = pl_json_str(conf, "cipassword");
	char hex[65];

	if (g->lxc || pw == NULL || (pw[0] == '$' && strchr(pw + 1, '$')))
		return;
	pl_sha256_hex(pw, strlen(pw), hex);
	json_object_set_new(conf, "cipassword", json_sprintf("$5$sim$%s", hex));
}

void
pl_sim_fail_task(struct pl_sim_req *r, int node, const char *type, const char *msg)
{
	struct pl_sim_task *t =
		pl_sim_task_start(r->sim, node, type, pl_sim_p(r, "vmid"), r->user, 0, NULL, NULL);

	pl_sim_task_doom(t, msg);
	free(r->reason);
	r->reason = NULL;
	pl_sim_ok_task(r, t);
}

/* A create or restore whose config failed (r's failure says why): the new
 * guest goes; what PVE checks before it forks answers 500, what its worker
 * meets (PL_SIM_IN_WORKER) ends the task with "unable to create VM 100 - ...". */
static void
create_failed(struct pl_sim_req *r, struct pl_sim_guest *g, int rc, const char *what,
	      const char *type)
{
	char *msg = pl_asprintf("unable to %s %s %u - %s", what, PL_SIM_GT(g), g->vmid, r->reason);
	int node = g->node;

	pl_sim_guest_remove(r->sim, g->vmid, false);
	if (r->status == 400) /* a parameter's check: answered as it is */
		;
	else if (rc == PL_SIM_IN_WORKER)
		pl_sim_fail_task(r, node, type, msg);
	else
		pl_sim_fail(r, 500, "%s", msg);
	free(msg);
}

static bool in_list(const char *list, const char *key);

/* API2::Qemu's check_hostpci_perm for each hostpci value a request sets,
 * and each it replaces or deletes: only root@pam itself (not even its
 * tokens) passes a raw device; a mapping needs Mapping.Use on it. False
 * with the failure set. */
static bool
hostpci_perm_ok(struct pl_sim_req *r, const struct pl_sim_guest *g)
{
	const char *del = pl_sim_p(r, "delete"), *k;
	json_t *vals = json_object(), *v;
	bool ok = true;

	if (!strcmp(r->user, "root@pam") || (g && g->lxc) || r->lxc) {
		json_decref(vals);
		return true;
	}
	json_object_foreach(r->params, k, v)
		if (pl_str_startswith(k, "hostpci") && json_is_string(v)) {
			json_object_set(vals, k, v);
			if (g && pl_json_str(g->conf, k)) {
				char *old = pl_asprintf("%s (old)", k);

				json_object_set(vals, old, json_object_get(g->conf, k));
				free(old);
			}
		}
	json_object_foreach(g ? g->conf : NULL, k, v)
		if (pl_str_startswith(k, "hostpci") && in_list(del, k))
			json_object_set(vals, k, v);
	json_object_foreach(vals, k, v) {
		const char *val = json_string_value(v), *m = strstr(val, "mapping=");
		char opt[32], *path;

		snprintf(opt, sizeof(opt), "%.*s", (int)strcspn(k, " "), k);
		if (m == NULL || (m != val && m[-1] != ',')) {
			pl_sim_fail(r, 500, "only root can set '%s' config for non-mapped devices",
				    opt);
			ok = false;
			break;
		}
		path = pl_asprintf("/mapping/pci/%.*s", (int)strcspn(m + 8, ","), m + 8);
		if (!pl_sim_access_can(r->sim, r->user, path, "Mapping.Use")) {
			pl_sim_fail(r, 403, "Permission check failed (%s, Mapping.Use)", path);
			ok = false;
		}
		free(path);
		if (!ok)
			break;
	}
	json_decref(vals);
	return ok;
}

static void
h_create(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim *s = r->sim;
	int n = pl_sim_req_node(r);
	long long vmid = pl_sim_pint(r, "vmid", 0);
	struct pl_sim_guest *g, *other;
	const char *pool = pl_sim_p(r, "pool");
	const char *k;
	json_t *v;
	struct pl_sim_task *t;
	const json_t *captured = NULL;
	const char *archive;
	bool restore;
	char uuid[37];
	int rc;

	if (n < 0 || !hostpci_perm_ok(r, NULL))
		return;
	restore = lxc ? pl_sim_pbool(r, "restore", false) : pl_sim_p(r, "archive") != NULL;
	archive = lxc ? pl_sim_p(r, "ostemplate") : pl_sim_p(r, "archive");
	if ((other = pl_sim_guest_find(s, (uint32_t)vmid)) != NULL) {
		/* force overwrites a stopped guest of the same type when restoring */
		if (restore && pl_sim_pbool(r, "force", false) && other->lxc == lxc &&
		    other->status == PL_SIM_STOPPED && !other->lock[0] && archive &&
		    pl_sim_volume_find(s, archive, n, NULL)) {
			pl_sim_pool_forget(s, other->vmid);
			pl_sim_guest_remove(s, other->vmid, false);
		} else if (restore) {
			pl_sim_fail(
				r, 500,
				"unable to restore %s %lld - %s %lld already exists on node '%s'",
				lxc ? "CT" : "VM", vmid, PL_SIM_GT(other), vmid,
				s->nodes[other->node].name);
			return;
		} else {
			pl_sim_fail(
				r, 500,
				"unable to create %s %lld - %s %lld already exists on node '%s'",
				lxc ? "CT" : "VM", vmid, PL_SIM_GT(other), vmid,
				s->nodes[other->node].name);
			return;
		}
	}
	/* PVE runs ssh-keygen -l on each key before anything else is made */
	if (lxc && pl_sim_p(r, "ssh-public-keys") &&
	    !pl_sshkey_lines_valid(pl_sim_p(r, "ssh-public-keys"))) {
		pl_sim_fail(r, 500, "SSH public key validation error");
		return;
	}
	if (pool && !json_object_get(s->pools, pool)) {
		pl_sim_fail(r, 500, "pool '%s' does not exist", pool);
		return;
	}
	if (restore) {
		struct pl_sim_volume *vol = archive ? pl_sim_volume_find(s, archive, n, NULL) : NULL;

		if (!vol || strcmp(vol->content, "backup") != 0) {
			pl_sim_fail(r, 500, "unable to restore %s %lld - volume '%s' does not exist",
				    lxc ? "CT" : "VM", vmid, archive ? archive : "");
			return;
		}
		if (vol->conf && strcmp(pl_json_str_or(vol->conf, "type", ""), lxc ? "lxc" : "qemu")) {
			pl_sim_fail(r, 500, "unable to restore %s %lld - archive '%s' is a %s backup",
				    lxc ? "CT" : "VM", vmid, archive, pl_json_str_or(vol->conf, "type", "?"));
			return;
		}
		captured = vol->conf ? json_object_get(vol->conf, "config") : NULL;
	} else if (lxc) {
		const char *tpl = pl_sim_p(r, "ostemplate");
		struct pl_sim_volume *vol = tpl ? pl_sim_volume_find(s, tpl, n, NULL) : NULL;

		if (!vol || strcmp(vol->content, "vztmpl") != 0) {
			pl_sim_fail(r, 500, "unable to create CT %lld - volume '%s' does not exist", vmid,
				    tpl ? tpl : "");
			return;
		}
	}
	g = pl_sim_guest_add(s, (uint32_t)vmid, lxc, n);
	/* a restore brings back the config the archive holds (its disks
	 * allocated anew on their storages); parameters given override it */
	json_object_foreach((json_t *)captured, k, v) {
		char *txt = pl_api_value_text(v);

		if (txt && (rc = pl_sim_conf_value(r, g, g->conf, k, txt)) != 0) {
			free(txt);
			create_failed(r, g, rc, "restore", lxc ? "vzrestore" : "qmrestore");
			return;
		}
		free(txt);
	}
	json_object_foreach(r->params, k, v) {
		if (!is_conf_param(k) || !json_is_string(v))
			continue;
		if ((rc = pl_sim_conf_value(r, g, g->conf, k, json_string_value(v))) != 0) {
			create_failed(r, g, rc, restore ? "restore" : "create",
				      restore ? (lxc ? "vzrestore" : "qmrestore") :
						(lxc ? "vzcreate" : "qmcreate"));
			return;
		}
	}
	hash_cipassword(g, g->conf);
	if (lxc) {
		const char *tpl = pl_sim_p(r, "ostemplate");
		static const char *const os[] = { "debian", "ubuntu", "alpine", "centos", "fedora",
						  "archlinux", "rockylinux", "almalinux", "opensuse" };

		if (!json_object_get(g->conf, "rootfs")) {
			char *root = pl_asprintf("%s:4", pl_sim_p(r, "storage") ? pl_sim_p(r, "storage")
									       : "local");

			if ((rc = pl_sim_conf_value(r, g, g->conf, "rootfs", root)) != 0) {
				free(root);
				create_failed(r, g, rc, restore ? "restore" : "create",
					      restore ? "vzrestore" : "vzcreate");
				return;
			}
			free(root);
		}
		if (!json_object_get(g->conf, "hostname"))
			json_object_set_new(g->conf, "hostname", json_sprintf("CT%lld", vmid));
		if (!json_object_get(g->conf, "arch"))
			json_object_set_new(g->conf, "arch", json_string("amd64"));
		if (!json_object_get(g->conf, "ostype")) {
			for (size_t i = 0; i < PL_ARRAY_LEN(os); i++)
				if (strstr(tpl, os[i])) {
					json_object_set_new(g->conf, "ostype", json_string(os[i]));
					break;
				}
		}
	} else {
		bool v8 = !strcmp(s->schema->version, "8.4");

		pl_sim_gen_uuid(s, uuid);
		if (!json_object_get(g->conf, "smbios1"))
			json_object_set_new(g->conf, "smbios1", json_sprintf("uuid=%s", uuid));
		pl_sim_gen_uuid(s, uuid);
		if (!json_object_get(g->conf, "vmgenid"))
			json_object_set_new(g->conf, "vmgenid", json_string(uuid));
		json_object_set_new(g->conf, "meta",
				    json_sprintf("creation-qemu=%s,ctime=%lld",
						 v8 ? "9.2.0" : "10.1.2", (long long)time(NULL)));
		/* create_vm: a VM without `boot` gets get_default_bootdevices */
		if (!restore && !json_object_get(g->conf, "boot") &&
		    !json_object_get(g->conf, "bootdisk")) {
			char *boot = pl_sim_default_boot(g->conf);

			if (boot)
				json_object_set_new(g->conf, "boot", json_string(boot));
			free(boot);
		}
	}
	if (pool)
		pl_sim_pool_add(s, pool, (uint32_t)vmid, NULL);
	pl_sim_set_lock(s, g, "create");
	t = pl_sim_task_start(s, n, restore ? (lxc ? "vzrestore" : "qmrestore") : (lxc ? "vzcreate" : "qmcreate"),
			      pl_sim_p(r, "vmid"), r->user, g->vmid, create_done,
			      json_pack("{s:b,s:s}", "start", pl_sim_pbool(r, "start", false), "log",
					restore ? "restore archive" : lxc ? "extracting archive" : "create VM"));
	pl_sim_ok_task(r, t);
}

/* --- config --- */

static json_t *
conf_out(struct pl_sim *s, struct pl_sim_guest *g, const json_t *conf)
{
	json_t *o = pl_sim_conf_json(s, g, conf);

	mask_cipassword(g, o);

	json_object_set_new(o, "digest", json_string(g->digest));
	if (g->lock[0])
		json_object_set_new(o, "lock", json_string(g->lock));
	if (g->parent)
		json_object_set_new(o, "parent", json_string(g->parent));
	return o;
}

json_t *
pl_sim_snap_find(struct pl_sim_guest *g, const char *name, size_t *idx)
{
	size_t i;
	json_t *v;

	json_array_foreach(g->snaps, i, v) {
		if (!strcmp(pl_json_str_or(v, "name", ""), name)) {
			if (idx)
				*idx = i;
			return v;
		}
	}
	return NULL;
}

static void
h_config_get(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);
	const char *snap = pl_sim_p(r, "snapshot");
	size_t i;
	json_t *v;

	if (!g)
		return;
	if (snap) {
		json_t *sn = pl_sim_snap_find(g, snap, NULL);

		if (!sn) {
			pl_sim_fail(r, 500, "snapshot '%s' does not exist", snap);
			return;
		}
		json_t *o = pl_sim_conf_json(r->sim, g, json_object_get(sn, "conf"));

		mask_cipassword(g, o);
		pl_sim_ok(r, o);
		return;
	}
	if (pl_sim_pbool(r, "current", false)) {
		pl_sim_ok(r, conf_out(r->sim, g, g->conf));
		return;
	}
	/* the usual question (a sync asks it of every guest): answered from the
	 * serialised form until anything in the model changes */
	if (!g->confbody || g->confgen != r->sim->gen) {
		json_t *conf = json_copy(g->conf), *o;

		json_object_update(conf, g->pending);
		json_array_foreach(g->pending_del, i, v)
			json_object_del(conf, json_string_value(v));
		o = conf_out(r->sim, g, conf);
		pl_sim_blob_unref(g->confbody);
		g->confbody = pl_sim_blob_from_data(o, NULL);
		g->confgen = r->sim->gen;
		json_decref(o);
		json_decref(conf);
	}
	r->blob = pl_sim_blob_ref(g->confbody);
}

/* Keys a running VM takes at once, without hotplug: qemu-server's
 * $fast_plug_option (PVE::QemuServer), which includes every cloud-init key
 * ($confdesc_cloudinit): the drive is regenerated from them at the next
 * start, or at once with hotplug "cloudinit". */
static const char *const qemu_fastplug[] = {
	"description", "hookscript",     "lock",       "migrate_downtime", "migrate_speed",
	"name",        "onboot",         "protection", "shares",           "startup",
	"tags",        "vmstatestorage", "cicustom",   "cipassword",       "citype",
	"ciupgrade",   "ciuser",         "nameserver", "searchdomain",     "sshkeys",
};

/* pve-container's $LXC_FASTPLUG_OPTIONS (PVE::LXC::Config). */
static const char *const lxc_fastplug[] = {
	"description", "onboot", "startup", "protection", "hostname",
	"hookscript",  "cores",  "tags",    "lock",
};

static bool
in_table(const char *const *t, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i], key))
			return true;
	return false;
}

/* A VM's hotplug features: parse_hotplug_features of `hotplug`, "1" (the
 * default) being "network,disk,usb". */
static bool
hotplug_has(const struct pl_sim_guest *g, const char *feature)
{
	const char *hp = pl_json_str_or(g->conf, "hotplug", "1");

	if (!strcmp(hp, "0"))
		return false;
	if (!strcmp(hp, "1"))
		hp = "network,disk,usb";
	for (const char *p = hp; *p;) {
		size_t l = strcspn(p, ",; ");

		if (l == strlen(feature) && !strncmp(p, feature, l))
			return true;
		p += l;
		p += strspn(p, ",; ");
	}
	return false;
}

static bool
key_is(const char *key, const char *prefix)
{
	size_t n = strlen(prefix);

	return !strncmp(key, prefix, n) && key[n] &&
	       strspn(key + n, "0123456789") == strlen(key + n);
}

/* vmconfig_update_net: a NIC whose model, MAC, queues and MTU stay (and
 * that keeps a bridge) is re-plugged to its new bridge, tag or rate without
 * the hotplug feature. */
static bool
net_change_live(const char *old, const char *nw)
{
	static const char *const fixed[] = { "model", "macaddr", "queues", "mtu" };
	const struct pl_pfmt *f = pl_pfmt_get("qemu.net");
	struct pl_propstr a, b;
	bool live = false;

	pl_propstr_init(&a);
	pl_propstr_init(&b);
	if (f && old && nw && pl_propstr_parse(f, old, &a, NULL) == 0 &&
	    pl_propstr_parse(f, nw, &b, NULL) == 0) {
		live = pl_propstr_get(&a, "bridge") && pl_propstr_get(&b, "bridge");
		for (size_t i = 0; live && i < PL_ARRAY_LEN(fixed); i++) {
			const char *x = pl_propstr_get(&a, fixed[i]),
				   *y = pl_propstr_get(&b, fixed[i]);

			if ((x || y) && (!x || !y || strcasecmp(x, y) != 0))
				live = false;
		}
	}
	pl_propstr_release(&a);
	pl_propstr_release(&b);
	return live;
}

/* Whether setting (del false) or deleting (del true) key applies to a
 * running guest at once; the rest waits in pending for the next start.
 * qemu: PVE::QemuServer::vmconfig_hotplug_pending, vmconfig_update_disk
 * (new ide/sata disks, efidisk0 and tpmstate0 wait), vmconfig_update_net;
 * lxc: PVE::LXC::Config::vmconfig_hotplug_pending (a mount point only when
 * new). value is the new value when setting. */
static bool
hot_key(const struct pl_sim_guest *g, const char *key, bool del, const char *value)
{
	if (g->lxc) {
		if (in_table(lxc_fastplug, PL_ARRAY_LEN(lxc_fastplug), key) ||
		    !strcmp(key, "cpulimit") || !strcmp(key, "cpuunits") || !strcmp(key, "swap") ||
		    key_is(key, "net") || key_is(key, "unused"))
			return true;
		if (del)
			return false;
		if (!strcmp(key, "memory"))
			return true;
		return (key_is(key, "mp") || key_is(key, "dev")) && !json_object_get(g->conf, key);
	}
	if (in_table(qemu_fastplug, PL_ARRAY_LEN(qemu_fastplug), key) || key_is(key, "ipconfig") ||
	    key_is(key, "unused") || !strcmp(key, "cpuunits") || !strcmp(key, "cpulimit"))
		return true;
	if (!strcmp(key, "hotplug")) {
		const char *cur = pl_json_str_or(g->conf, "hotplug", "");

		return !strstr(cur, "memory") && !strstr(cur, "cpu") &&
		       (del || (!strstr(value, "memory") && !strstr(value, "cpu")));
	}
	if (!strcmp(key, "tablet"))
		return hotplug_has(g, "usb");
	if (key_is(key, "usb")) /* QEMU 7.1+ with a Linux or Windows 8+ guest */
		return hotplug_has(g, "usb") &&
		       (!strcmp(pl_json_str_or(g->conf, "ostype", ""), "l26") ||
			!strncmp(pl_json_str_or(g->conf, "ostype", ""), "win", 3));
	if (!strcmp(key, "vcpus"))
		return hotplug_has(g, "cpu");
	if (!strcmp(key, "memory"))
		return hotplug_has(g, "memory");
	if (!strcmp(key, "balloon")) {
		/* turning the balloon device on or off is not hot-pluggable */
		bool was = pl_json_int(g->conf, "balloon", 1) != 0;

		return del ? was : was == (strcmp(value, "0") != 0);
	}
	if (key_is(key, "net"))
		return hotplug_has(g, "network") ||
		       (!del && net_change_live(pl_json_str(g->conf, key), value));
	if (!strcmp(key, "efidisk0") || !strcmp(key, "tpmstate0"))
		return false;
	if (key_is(key, "scsi") || key_is(key, "virtio") || key_is(key, "ide") ||
	    key_is(key, "sata")) {
		const char *old = pl_json_str(g->conf, key);
		bool cd_new = value && strstr(value, "media=cdrom");

		/* a CD-ROM's medium changes without hotplug; the cloud-init drive
		 * is made after the other changes */
		if (!del && cd_new && old && strstr(old, "media=cdrom"))
			return true;
		if (!hotplug_has(g, "disk") || key_is(key, "ide") || key_is(key, "sata"))
			return false;
		return true;
	}
	return false;
}

bool
pl_sim_is_volume_key(const struct pl_sim_guest *g, const char *key, const char *value)
{
	size_t kl = strcspn(key, "0123456789");

	if (!value || strstr(value, "media=cdrom") || !strncmp(value, "none", 4))
		return false;
	if (g->lxc)
		return !strcmp(key, "rootfs") || (kl == 2 && !strncmp(key, "mp", 2));
	return (kl == 4 && (!strncmp(key, "scsi", 4) || !strncmp(key, "sata", 4))) ||
	       (kl == 3 && !strncmp(key, "ide", 3)) || (kl == 6 && !strncmp(key, "virtio", 6)) ||
	       !strcmp(key, "efidisk0") || !strcmp(key, "tpmstate0");
}

/* Delete a key now: disks become unusedN, unusedN volumes are freed. */
static void
delete_now(struct pl_sim *s, struct pl_sim_guest *g, const char *key)
{
	const char *old = pl_json_str(g->conf, key);

	if (!old)
		return;
	if (pl_str_startswith(key, "unused")) {
		pl_sim_volume_del(s, old, g->node);
	} else if (pl_sim_is_volume_key(g, key, old) && strcmp(key, "rootfs") != 0) {
		char vol[256], uk[16];
		size_t n = strcspn(old, ",");

		snprintf(vol, sizeof(vol), "%.*s", (int)n, old);
		for (int i = 0; i < 256; i++) {
			snprintf(uk, sizeof(uk), "unused%d", i);
			if (!json_object_get(g->conf, uk)) {
				json_object_set_new(g->conf, uk, json_string(vol));
				break;
			}
		}
	}
	json_object_del(g->conf, key);
}

void
pl_sim_apply_pending(struct pl_sim *s, struct pl_sim_guest *g)
{
	const char *k;
	json_t *v;
	size_t i;

	json_array_foreach(g->pending_del, i, v)
		delete_now(s, g, json_string_value(v));
	json_object_foreach(g->pending, k, v)
		json_object_set(g->conf, k, v);
	json_object_clear(g->pending);
	json_array_clear(g->pending_del);
	pl_sim_guest_touch(s, g);
}

static bool
in_list(const char *list, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = list; p && *p;) {
		size_t l = strcspn(p, ",; ");

		if (l == n && !strncmp(p, key, n))
			return true;
		p += l;
		p += strspn(p, ",; ");
	}
	return false;
}

/* The common part of POST/PUT config; false with the failure set. */
static bool
update_config(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	struct pl_sim *s = r->sim;
	const char *digest = pl_sim_p(r, "digest");
	const char *del = pl_sim_p(r, "delete");
	const char *revert = pl_sim_p(r, "revert");
	bool running = g->status != PL_SIM_STOPPED;
	json_t *newvals = json_object();
	const char *k;
	json_t *v;

	if (!hostpci_perm_ok(r, g) || !pl_sim_check_lock(r, g))
		goto fail;
	if (digest && strcmp(digest, g->digest) != 0) {
		pl_sim_fail(r, 500,
			    "detected modified configuration - file changed by other user? Try "
			    "again.");
		goto fail;
	}
	json_object_foreach(r->params, k, v) {
		if (!is_conf_param(k) || !json_is_string(v))
			continue;
		if (in_list(del, k)) {
			pl_sim_fail(r, 500,
				    "unable to delete '%s' - option is also set to a new value", k);
			goto fail;
		}
		if (pl_sim_conf_value(r, g, newvals, k, json_string_value(v)) != 0)
			goto fail;
	}
	for (const char *p = revert; p && *p;) {
		size_t l = strcspn(p, ",; ");
		char key[64];

		snprintf(key, sizeof(key), "%.*s", (int)l, p);
		json_object_del(g->pending, key);
		for (size_t i = json_array_size(g->pending_del); i-- > 0;)
			if (!strcmp(json_string_value(json_array_get(g->pending_del, i)), key))
				json_array_remove(g->pending_del, i);
		p += l;
		p += strspn(p, ",; ");
	}
	for (const char *p = del; p && *p;) {
		size_t l = strcspn(p, ",; ");
		char key[64];

		snprintf(key, sizeof(key), "%.*s", (int)l, p);
		p += l;
		p += strspn(p, ",; ");
		if (!key[0])
			continue;
		if (!strcmp(key, "lock")) { /* `qm unlock`: skiplock got it here */
			g->lock[0] = 0;
			continue;
		}
		if (!running || hot_key(g, key, true, NULL)) {
			delete_now(s, g, key);
			json_object_del(g->pending, key);
		} else if (json_object_get(g->conf, key)) {
			json_array_append_new(g->pending_del, json_string(key));
		} else {
			json_object_del(g->pending, key);
		}
	}
	json_object_foreach(newvals, k, v) {
		if (!strcmp(k, "lock")) {
			/* a fast-plug option: the guest is locked at once (then
			 * check_lock refuses the next change until `unlock`) */
			snprintf(g->lock, sizeof(g->lock), "%s", json_string_value(v));
			continue;
		}
		if (!running || hot_key(g, k, false, json_string_value(v))) {
			const char *old = pl_json_str(g->conf, k);

			/* replacing a disk leaves the old volume as unusedN */
			if (old && pl_sim_is_volume_key(g, k, old) &&
			    strcspn(old, ",") != strcspn(json_string_value(v), ",") + 0 &&
			    strncmp(old, json_string_value(v), strcspn(old, ",")) != 0)
				delete_now(s, g, k);
			json_object_set(g->conf, k, v);
			json_object_del(g->pending, k);
		} else {
			json_object_set(g->pending, k, v);
		}
	}
	json_decref(newvals);
	hash_cipassword(g, g->conf);
	pl_sim_guest_touch(s, g);
	return true;
fail:
	json_decref(newvals);
	return false;
}

void
pl_sim_noop_done(struct pl_sim *s, struct pl_sim_task *t)
{
	(void)s;
	(void)t;
}

static void
h_qemu_config_post(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = pl_sim_req_guest(r, false);
	struct pl_sim_task *t;
	char *why;

	if (!g || !pl_sim_skiplock_ok(r))
		return;
	if ((why = pl_sim_lock_refusal(r, g)) != NULL && !pl_sim_flock_busy(r, g)) {
		/* the POST's update runs in its worker: a lock fails the task */
		t = pl_sim_task_start(r->sim, g->node, "qmconfig", pl_sim_p(r, "vmid"), r->user, 0,
				      NULL, NULL);
		pl_sim_task_doom(t, why);
		free(why);
		pl_sim_ok_task(r, t);
		return;
	}
	free(why);
	if (!update_config(r, g))
		return;
	t = pl_sim_task_start(r->sim, g->node, "qmconfig", pl_sim_p(r, "vmid"), r->user, 0,
			      pl_sim_noop_done, NULL);
	pl_sim_task_log(t, "update VM %u: %s", g->vmid, "-config");
	pl_sim_ok_task(r, t);
}

static void
h_config_put(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);

	if (!g || !update_config(r, g))
		return;
	pl_sim_ok(r, json_null());
}

static void
h_pending(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);
	json_t *a, *cur, *pend;
	const char *k;
	json_t *v;
	size_t i;

	if (!g)
		return;
	a = json_array();
	cur = pl_sim_conf_json(r->sim, g, g->conf);
	pend = pl_sim_conf_json(r->sim, g, g->pending);
	mask_cipassword(g, cur);
	if (!g->lxc && json_object_get(pend, "cipassword"))
		json_object_set_new(pend, "cipassword", json_string("********** "));
	json_object_set_new(cur, "digest", json_string(g->digest));
	json_object_foreach(cur, k, v) {
		json_t *o = json_pack("{s:s,s:O}", "key", k, "value", v);

		if (json_object_get(pend, k))
			json_object_set(o, "pending", json_object_get(pend, k));
		json_array_foreach(g->pending_del, i, v) {
			if (!strcmp(json_string_value(v), k))
				json_object_set_new(o, "delete", json_integer(1));
		}
		json_array_append_new(a, o);
	}
	json_object_foreach(pend, k, v) {
		if (!json_object_get(cur, k))
			json_array_append_new(a, json_pack("{s:s,s:O}", "key", k, "pending", v));
	}
	json_decref(cur);
	json_decref(pend);
	pl_sim_ok(r, a);
}

/* --- status --- */

static void
h_status_current(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);

	if (g)
		pl_sim_ok(r, pl_sim_guest_status(r->sim, g, true, true));
}

static void
h_status_index(struct pl_sim_req *r)
{
	bool lxc = r->lxc;

	if (pl_sim_req_guest(r, lxc))
		pl_sim_ok(r, json_pack("[{s:s},{s:s},{s:s},{s:s},{s:s},{s:s},{s:s}]", "subdir",
				       "current", "subdir", "start", "subdir", "stop", "subdir",
				       "reboot", "subdir", "shutdown", "subdir", "suspend", "subdir",
				       "resume"));
}

static void
destroy_done(struct pl_sim *s, struct pl_sim_task *t)
{
	/* PVE drops the guest's ACLs and pool membership on every destroy;
	 * purge also removes its backups (and job entries) */
	pl_sim_pool_forget(s, t->vmid);
	pl_sim_cluster_forget(s, t->vmid, t->type[0] == 'v', pl_json_bool(t->args, "purge", false));
	pl_sim_guest_remove(s, t->vmid, pl_json_bool(t->args, "purge", false));
	pl_sim_task_log(t, "destroyed");
	t->vmid = 0;
}

static void
h_destroy(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);
	struct pl_sim_task *t;

	if (!g)
		return;
	if (!pl_sim_check_lock(r, g))
		return;
	if (pl_json_bool(g->conf, "protection", false)) {
		pl_sim_fail(r, 500, "can't remove %s %u - protection mode enabled", PL_SIM_GT(g),
			    g->vmid);
		return;
	}
	if (pl_sim_ha_destroy_refused(r, g))
		return;
	if (g->status != PL_SIM_STOPPED) {
		pl_sim_fail(r, 500, "%s %u is running - destroy failed", PL_SIM_GT(g), g->vmid);
		return;
	}
	pl_sim_set_lock(r->sim, g, "destroyed");
	t = pl_sim_task_start(r->sim, g->node, lxc ? "vzdestroy" : "qmdestroy",
			      pl_sim_p(r, "vmid"), r->user, g->vmid, destroy_done,
			      json_pack("{s:b}", "purge", pl_sim_pbool(r, "purge", false)));
	pl_sim_ok_task(r, t);
}

static void
h_guest_index(struct pl_sim_req *r)
{
	bool lxc = r->lxc;

	if (pl_sim_req_guest(r, lxc))
		pl_sim_ok(r, json_pack("[{s:s},{s:s},{s:s},{s:s},{s:s}]", "subdir", "config",
				       "subdir", "pending", "subdir", "status", "subdir", "snapshot",
				       "subdir", "rrddata"));
}

static void
h_rrddata(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);

	if (g)
		pl_sim_ok(r, pl_sim_rrd(r->sim, g, g->node, pl_sim_p(r, "timeframe")));
}

#define Q "/nodes/{node}/qemu"
#define L "/nodes/{node}/lxc"

const struct pl_sim_route_def pl_sim_guest_routes[] = {
	{ PL_SIM_GET, Q, h_list, false, 0 },
	{ PL_SIM_POST, Q, h_create, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}", h_guest_index, false, 0 },
	{ PL_SIM_DELETE, Q "/{vmid}", h_destroy, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/config", h_config_get, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/config", h_qemu_config_post, false, 0 },
	{ PL_SIM_PUT, Q "/{vmid}/config", h_config_put, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/pending", h_pending, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/status", h_status_index, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/status/current", h_status_current, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/rrddata", h_rrddata, false, 0 },
	{ PL_SIM_GET, L, h_list, true, 0 },
	{ PL_SIM_POST, L, h_create, true, 0 },
	{ PL_SIM_GET, L "/{vmid}", h_guest_index, true, 0 },
	{ PL_SIM_DELETE, L "/{vmid}", h_destroy, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/config", h_config_get, true, 0 },
	{ PL_SIM_PUT, L "/{vmid}/config", h_config_put, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/pending", h_pending, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/status", h_status_index, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/status/current", h_status_current, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/rrddata", h_rrddata, true, 0 },
	{ 0, NULL, NULL, false, 0 },
};
