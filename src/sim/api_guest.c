/*
 * API handlers for guests (/nodes/{node}/qemu and /lxc): list, create, config
 * with pending changes and hotplug, power, snapshots, clone, template,
 * resize, migrate, destroy, rrddata; locks and PVE's error texts.
 */
#include "core/common.h"

#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

#define GT(g) ((g)->lxc ? "CT" : "VM")

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

static struct pl_sim_guest *
req_guest(struct pl_sim_req *r, bool lxc)
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
static bool
flock_busy(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	if (!g->holder || !g->holder->running)
		return false;
	lock_timeout_msg(r, g);
	r->status = PL_SIM_WAIT;
	r->wait_vmid = g->vmid;
	return true;
}

static bool
check_lock(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	struct pl_sim *s = r->sim;

	if (flock_busy(r, g))
		return false;
	if (g->lock[0] && !pl_sim_pbool(r, "skiplock", false)) {
		pl_sim_fail(r, 500, "%s %u is locked (%s)", GT(g), g->vmid, g->lock);
		return false;
	}
	if (s->faults.lockwait > 0 && pl_sim_rand01(s) < s->faults.lockwait) {
		lock_timeout_msg(r, g);
		r->delay_ms = s->opts.lock_wait_ms;
		return false;
	}
	return true;
}

static void
set_lock(struct pl_sim *s, struct pl_sim_guest *g, const char *lock)
{
	snprintf(g->lock, sizeof(g->lock), "%s", lock);
	pl_sim_guest_touch(s, g);
}

static const char *
status_text(const struct pl_sim_guest *g)
{
	return g->status == PL_SIM_STOPPED ? "stopped" : "running";
}

static void
usage_into(json_t *o, const struct pl_sim_usage *u)
{
	json_object_set_new(o, "cpu", json_real(u->cpu));
	json_object_set_new(o, "cpus", json_integer(u->cpus));
	json_object_set_new(o, "mem", json_integer((json_int_t)u->mem));
	json_object_set_new(o, "maxmem", json_integer((json_int_t)u->maxmem));
	json_object_set_new(o, "disk", json_integer((json_int_t)u->disk));
	json_object_set_new(o, "maxdisk", json_integer((json_int_t)u->maxdisk));
	json_object_set_new(o, "netin", json_integer((json_int_t)u->netin));
	json_object_set_new(o, "netout", json_integer((json_int_t)u->netout));
	json_object_set_new(o, "diskread", json_integer((json_int_t)u->diskread));
	json_object_set_new(o, "diskwrite", json_integer((json_int_t)u->diskwrite));
	json_object_set_new(o, "uptime", json_integer(u->uptime));
}

static json_t *
guest_status(struct pl_sim *s, const struct pl_sim_guest *g, bool current)
{
	struct pl_sim_usage u;
	const char *name = pl_json_str(g->conf, g->lxc ? "hostname" : "name");
	json_t *o = json_object();

	pl_sim_guest_usage(s, g, time(NULL), &u);
	json_object_set_new(o, "vmid", json_integer(g->vmid));
	json_object_set_new(o, "name", json_string(name ? name : ""));
	json_object_set_new(o, "status", json_string(status_text(g)));
	usage_into(o, &u);
	if (g->status != PL_SIM_STOPPED)
		json_object_set_new(o, "pid", json_integer(10000 + g->vmid % 50000));
	if (g->lock[0])
		json_object_set_new(o, "lock", json_string(g->lock));
	if (pl_json_str(g->conf, "tags"))
		json_object_set_new(o, "tags", json_string(pl_json_str(g->conf, "tags")));
	if (pl_json_bool(g->conf, "template", false))
		json_object_set_new(o, "template", json_integer(1));
	if (g->lxc) {
		json_object_set_new(o, "type", json_string("lxc"));
		json_object_set_new(o, "maxswap",
				    json_integer((json_int_t)pl_json_int(g->conf, "swap", 512) << 20));
		json_object_set_new(o, "swap", json_integer(0));
	} else {
		json_object_set_new(o, "qmpstatus",
				    json_string(g->status == PL_SIM_PAUSED ? "paused"
									   : status_text(g)));
		if (g->status != PL_SIM_STOPPED) {
			bool v8 = !strcmp(s->schema->version, "8.4");

			json_object_set_new(o, "running-qemu", json_string(v8 ? "9.2.0" : "10.1.2"));
			json_object_set_new(o, "running-machine",
					    json_string(v8 ? "pc-i440fx-9.2+pve1"
							   : "pc-i440fx-10.1+pve0"));
		}
		if (current) {
			json_object_set_new(o, "ha", json_pack("{s:i}", "managed", 0));
			if (pl_json_str(g->conf, "agent"))
				json_object_set_new(o, "agent", json_integer(1));
		}
		json_object_set_new(o, "serial", json_integer(0));
	}
	return o;
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

		if (g->node == n && g->lxc == lxc)
			json_array_append_new(a, guest_status(s, g, false));
	}
	pl_sim_ok(r, a);
}


static void
gen_uuid(struct pl_sim *s, char out[37])
{
	uint64_t a = pl_sim_rand(s), b = pl_sim_rand(s);

	snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
		 (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
		 (unsigned)((b >> 48) & 0x3fff) | 0x8000, (unsigned long long)(b & 0xffffffffffffULL));
}

/* Set one config value, allocating disks and filling MACs. */
static int
conf_value(struct pl_sim_req *r, struct pl_sim_guest *g, json_t *into, const char *k,
	   const char *v)
{
	char *err = NULL, *a, *b;

	if ((a = pl_sim_disk_alloc(r->sim, g, k, v, &err)) == NULL) {
		pl_sim_fail(r, 500, "%s", err ? err : "disk allocation failed");
		free(err);
		return -1;
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

	if (n < 0)
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
			pl_sim_fail(r, 500, "unable to restore %s %lld - %s %lld already exists on node '%s'",
				    lxc ? "CT" : "VM", vmid, GT(other), vmid, s->nodes[other->node].name);
			return;
		} else {
			pl_sim_fail(r, 500, "unable to create %s %lld - %s %lld already exists on node '%s'",
				    lxc ? "CT" : "VM", vmid, GT(other), vmid, s->nodes[other->node].name);
			return;
		}
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

		if (txt && conf_value(r, g, g->conf, k, txt) != 0) {
			char *msg = pl_asprintf("unable to restore %s %lld - %s", lxc ? "CT" : "VM", vmid,
						r->reason);

			free(txt);
			pl_sim_guest_remove(s, (uint32_t)vmid, false);
			pl_sim_fail(r, 500, "%s", msg);
			free(msg);
			return;
		}
		free(txt);
	}
	json_object_foreach(r->params, k, v) {
		if (!is_conf_param(k) || !json_is_string(v))
			continue;
		if (conf_value(r, g, g->conf, k, json_string_value(v)) != 0) {
			char *msg = pl_asprintf("unable to create %s %lld - %s", lxc ? "CT" : "VM",
						vmid, r->reason);

			pl_sim_guest_remove(s, (uint32_t)vmid, false);
			pl_sim_fail(r, 500, "%s", msg);
			free(msg);
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

			if (conf_value(r, g, g->conf, "rootfs", root) != 0) {
				char *msg = pl_asprintf("unable to create CT %lld - %s", vmid, r->reason);

				free(root);
				pl_sim_guest_remove(s, (uint32_t)vmid, false);
				pl_sim_fail(r, 500, "%s", msg);
				free(msg);
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

		gen_uuid(s, uuid);
		if (!json_object_get(g->conf, "smbios1"))
			json_object_set_new(g->conf, "smbios1", json_sprintf("uuid=%s", uuid));
		gen_uuid(s, uuid);
		if (!json_object_get(g->conf, "vmgenid"))
			json_object_set_new(g->conf, "vmgenid", json_string(uuid));
		json_object_set_new(g->conf, "meta",
				    json_sprintf("creation-qemu=%s,ctime=%lld",
						 v8 ? "9.2.0" : "10.1.2", (long long)time(NULL)));
	}
	if (pool)
		pl_sim_pool_add(s, pool, (uint32_t)vmid, NULL);
	set_lock(s, g, "create");
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

static json_t *
snap_find(struct pl_sim_guest *g, const char *name, size_t *idx)
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
	struct pl_sim_guest *g = req_guest(r, lxc);
	const char *snap = pl_sim_p(r, "snapshot");
	size_t i;
	json_t *v;

	if (!g)
		return;
	if (snap) {
		json_t *sn = snap_find(g, snap, NULL);

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


/* Whether a change to key can be applied to a running guest at once. */
static bool
hot_key(const struct pl_sim_guest *g, const char *key)
{
	static const char *const always[] = { "name", "description", "tags", "onboot", "startup",
					      "cipassword", /* PVE writes it to the config at once */
					      "protection", "hookscript", "lock", "shares",
					      "vmstatestorage", "balloon", "hostname", "nameserver",
					      "searchdomain", "cpulimit", "cpuunits" };
	const char *hp;
	size_t kl = strcspn(key, "0123456789");

	for (size_t i = 0; i < PL_ARRAY_LEN(always); i++)
		if (!strcmp(always[i], key))
			return true;
	if (pl_str_startswith(key, "unused"))
		return true;
	if (g->lxc) {
		return !strcmp(key, "memory") || !strcmp(key, "swap") || !strcmp(key, "cores") ||
		       (!strncmp(key, "net", 3) && kl == 3) || (!strncmp(key, "mp", 2) && kl == 2);
	}
	hp = pl_json_str_or(g->conf, "hotplug", "network,disk,usb");
	if (!strcmp(hp, "0"))
		hp = "";
	if (!strcmp(hp, "1"))
		hp = "network,disk,usb,memory,cpu";
	if (!strncmp(key, "net", 3) && kl == 3)
		return strstr(hp, "network") != NULL;
	if (kl == strlen("scsi") && !strncmp(key, "scsi", 4))
		return strstr(hp, "disk") != NULL;
	if ((kl == 6 && !strncmp(key, "virtio", 6)) || (kl == 4 && !strncmp(key, "sata", 4)))
		return strstr(hp, "disk") != NULL;
	if (kl == 3 && !strncmp(key, "usb", 3))
		return strstr(hp, "usb") != NULL;
	if (!strcmp(key, "memory"))
		return strstr(hp, "memory") != NULL;
	if (!strcmp(key, "cores") || !strcmp(key, "vcpus") || !strcmp(key, "sockets"))
		return strstr(hp, "cpu") != NULL && strcmp(key, "sockets") != 0;
	return false;
}

static bool
is_volume_key(const struct pl_sim_guest *g, const char *key, const char *value)
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
	} else if (is_volume_key(g, key, old) && strcmp(key, "rootfs") != 0) {
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

static void
apply_pending(struct pl_sim *s, struct pl_sim_guest *g)
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

	if (!check_lock(r, g))
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
		if (conf_value(r, g, newvals, k, json_string_value(v)) != 0)
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
		if (!running || hot_key(g, key)) {
			delete_now(s, g, key);
			json_object_del(g->pending, key);
		} else if (json_object_get(g->conf, key)) {
			json_array_append_new(g->pending_del, json_string(key));
		} else {
			json_object_del(g->pending, key);
		}
	}
	json_object_foreach(newvals, k, v) {
		if (!running || hot_key(g, k) ||
		    (!json_object_get(g->conf, k) && is_volume_key(g, k, json_string_value(v)) &&
		     hot_key(g, k))) {
			const char *old = pl_json_str(g->conf, k);

			/* replacing a disk leaves the old volume as unusedN */
			if (old && is_volume_key(g, k, old) &&
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

static void
noop_done(struct pl_sim *s, struct pl_sim_task *t)
{
	(void)s;
	(void)t;
}

static void
h_qemu_config_post(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = req_guest(r, false);
	struct pl_sim_task *t;

	if (!g || !update_config(r, g))
		return;
	t = pl_sim_task_start(r->sim, g->node, "qmconfig", pl_sim_p(r, "vmid"), r->user, 0,
			      noop_done, NULL);
	pl_sim_task_log(t, "update VM %u: %s", g->vmid, "-config");
	pl_sim_ok_task(r, t);
}

static void
h_config_put(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);

	if (!g || !update_config(r, g))
		return;
	pl_sim_ok(r, json_null());
}


static void
h_pending(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);
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
	struct pl_sim_guest *g = req_guest(r, lxc);

	if (g)
		pl_sim_ok(r, guest_status(r->sim, g, true));
}


static void
h_status_index(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	if (req_guest(r, lxc))
		pl_sim_ok(r, json_pack("[{s:s},{s:s},{s:s},{s:s},{s:s},{s:s},{s:s}]", "subdir",
				       "current", "subdir", "start", "subdir", "stop", "subdir",
				       "reboot", "subdir", "shutdown", "subdir", "suspend", "subdir",
				       "resume"));
}


enum power { P_START, P_STOP, P_SHUTDOWN, P_REBOOT, P_SUSPEND, P_RESUME, P_RESET };

static void
power_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *g = pl_sim_guest_find(s, t->vmid);
	enum power p = (enum power)pl_json_int(t->args, "op", 0);

	if (!g)
		return;
	switch (p) {
	case P_START:
		apply_pending(s, g);
		g->status = PL_SIM_RUNNING;
		g->started = time(NULL);
		break;
	case P_SHUTDOWN:
		if (json_is_true(json_object_get(t->args, "ignored"))) {
			/* A guest without ACPI never powers down: PVE gives up after
			 * the timeout, or kills it with forceStop. */
			if (!json_is_true(json_object_get(t->args, "force"))) {
				pl_sim_task_fail(t, "VM quit/powerdown failed - got timeout");
				return;
			}
			pl_sim_task_log(t, "VM still running - terminating now with SIGTERM");
		}
		g->status = PL_SIM_STOPPED;
		break;
	case P_STOP:
		g->status = PL_SIM_STOPPED;
		break;
	case P_REBOOT:
		if (json_is_true(json_object_get(t->args, "ignored"))) {
			pl_sim_task_fail(t, "VM quit/powerdown failed - got timeout");
			return;
		}
		/* fall through */
	case P_RESET:
		apply_pending(s, g);
		g->status = PL_SIM_RUNNING;
		g->started = time(NULL);
		break;
	case P_SUSPEND:
		g->status = PL_SIM_PAUSED;
		break;
	case P_RESUME:
		g->status = PL_SIM_RUNNING;
		break;
	}
	free(g->res);
	g->res = NULL;
	s->dirty = true;
}

static void
h_power(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	enum power p = (enum power)r->op;
	static const char *const qm[] = { "qmstart", "qmstop", "qmshutdown", "qmreboot",
					  "qmsuspend", "qmresume", "qmreset" };
	static const char *const vz[] = { "vzstart", "vzstop", "vzshutdown", "vzreboot",
					  "vzsuspend", "vzresume", "vzreset" };
	struct pl_sim_guest *g = req_guest(r, lxc);
	struct pl_sim_task *t;
	char overruled[256] = "";
	bool ignored = false;

	if (!g)
		return;
	if (p == P_STOP && pl_sim_pbool(r, "overrule-shutdown", false) && g->holder &&
	    g->holder->running && strstr(g->holder->type, "shutdown")) {
		/* PVE 8.1+: a stop may abort the shutdown that holds the lock. */
		snprintf(overruled, sizeof(overruled), "%s", g->holder->upid);
		pl_sim_task_abort(g->holder, "received interrupt");
	}
	if (p == P_START) {
		if (pl_json_bool(g->conf, "template", false)) {
			pl_sim_fail(r, 500, "you can't start a vm if it's a template");
			return;
		}
		if (!check_lock(r, g))
			return;
		if (g->status != PL_SIM_STOPPED) {
			pl_sim_fail(r, 500, "%s %u already running", GT(g), g->vmid);
			return;
		}
	} else if (p == P_STOP) {
		if (flock_busy(r, g))
			return;
		if (g->lock[0] && !pl_sim_pbool(r, "skiplock", false) && strcmp(g->lock, "backup")) {
			pl_sim_fail(r, 500, "%s %u is locked (%s)", GT(g), g->vmid, g->lock);
			return;
		}
		if (lxc && g->status == PL_SIM_STOPPED) {
			pl_sim_fail(r, 500, "CT %u not running", g->vmid);
			return;
		}
	} else {
		if (!check_lock(r, g))
			return;
		if (g->status == PL_SIM_STOPPED) {
			pl_sim_fail(r, 500, "%s %u not running", GT(g), g->vmid);
			return;
		}
		if (p == P_RESUME && g->status != PL_SIM_PAUSED && !lxc) {
			pl_sim_fail(r, 500, "VM %u not paused", g->vmid);
			return;
		}
	}
	/* A VM with ACPI off ignores the power button that shutdown (and reboot,
	 * a shutdown and a start) presses. */
	ignored = (p == P_SHUTDOWN || p == P_REBOOT) && !lxc && !pl_json_bool(g->conf, "acpi", true);
	t = pl_sim_task_start(r->sim, g->node, lxc ? vz[p] : qm[p], pl_sim_p(r, "vmid"), r->user, 0,
			      power_done,
			      json_pack("{s:i,s:b,s:b}", "op", (int)p, "ignored", ignored, "force",
					pl_sim_pbool(r, "forceStop", false)));
	t->vmid = g->vmid;
	g->holder = t;
	if (ignored) /* PVE waits `timeout` seconds, 60 by default */
		pl_sim_task_run_for(t, (long)pl_sim_pint(r, "timeout", 60) * 1000);
	if (overruled[0])
		pl_sim_task_log(t, "overruled %s tasks: %s", lxc ? "vzshutdown" : "qmshutdown",
				overruled);
	pl_sim_ok_task(r, t);
}


/* --- snapshots --- */

static void
h_snap_list(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);
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
			json_object_set_new(o, "vmstate", json_integer(pl_json_bool(v, "vmstate", false)));
		if (pl_json_str(v, "parent"))
			json_object_set_new(o, "parent", json_string(pl_json_str(v, "parent")));
		json_array_append_new(a, o);
	}
	{
		json_t *cur = json_pack("{s:s,s:s}", "name", "current", "description",
					"You are here!");

		if (!lxc)
			json_object_set_new(cur, "running", json_integer(g->status != PL_SIM_STOPPED));
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

	if (!g)
		return;
	sn = json_pack("{s:s,s:s,s:I,s:o}", "name", pl_json_str_or(t->args, "name", ""),
		       "description", pl_json_str_or(t->args, "description", ""), "snaptime",
		       (json_int_t)time(NULL), "conf", json_deep_copy(g->conf));
	if (!g->lxc)
		json_object_set_new(sn, "vmstate", json_integer(pl_json_bool(t->args, "vmstate", false)));
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
	struct pl_sim_guest *g = req_guest(r, lxc);
	const char *name = pl_sim_p(r, "snapname");
	struct pl_sim_task *t;

	if (!g)
		return;
	if (!check_lock(r, g))
		return;
	if (!strcmp(name, "current") || !strcmp(name, "vzdump")) {
		pl_sim_fail(r, 500, "invalid snapshot name '%s'", name);
		return;
	}
	if (snap_find(g, name, NULL)) {
		pl_sim_fail(r, 500, "snapshot name '%s' already used", name);
		return;
	}
	if (pl_json_bool(g->conf, "template", false)) {
		pl_sim_fail(r, 500, "you can't take a snapshot if it's a template");
		return;
	}
	set_lock(r->sim, g, "snapshot");
	t = pl_sim_task_start(r->sim, g->node, lxc ? "vzsnapshot" : "qmsnapshot",
			      pl_sim_p(r, "vmid"), r->user, g->vmid, snap_done,
			      json_pack("{s:s,s:s,s:b}", "name", name, "description",
					pl_sim_p(r, "description") ? pl_sim_p(r, "description") : "",
					"vmstate", pl_sim_pbool(r, "vmstate", false)));
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

	if (!g || !(sn = snap_find(g, name, &idx)))
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

static void
h_snap_delete(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);
	const char *name = pl_sim_p(r, "snapname");
	struct pl_sim_task *t;

	if (!g)
		return;
	if (!snap_find(g, name, NULL)) {
		pl_sim_fail(r, 500, "snapshot '%s' does not exist", name);
		return;
	}
	if (!pl_sim_pbool(r, "force", false) && !check_lock(r, g))
		return;
	set_lock(r->sim, g, "snapshot-delete");
	t = pl_sim_task_start(r->sim, g->node, lxc ? "vzdelsnapshot" : "qmdelsnapshot",
			      pl_sim_p(r, "vmid"), r->user, g->vmid, snapdel_done,
			      json_pack("{s:s}", "name", name));
	pl_sim_ok_task(r, t);
}


static void
rollback_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *g = pl_sim_guest_find(s, t->vmid);
	const char *name = pl_json_str_or(t->args, "name", "");
	json_t *sn;

	if (!g || !(sn = snap_find(g, name, NULL)))
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

static void
h_snap_rollback(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);
	const char *name = pl_sim_p(r, "snapname");
	struct pl_sim_task *t;

	if (!g)
		return;
	if (!snap_find(g, name, NULL)) {
		pl_sim_fail(r, 500, "snapshot '%s' does not exist", name);
		return;
	}
	if (!check_lock(r, g))
		return;
	set_lock(r->sim, g, "rollback");
	t = pl_sim_task_start(r->sim, g->node, lxc ? "vzrollback" : "qmrollback",
			      pl_sim_p(r, "vmid"), r->user, g->vmid, rollback_done,
			      json_pack("{s:s,s:b}", "name", name, "start",
					pl_sim_pbool(r, "start", false)));
	pl_sim_ok_task(r, t);
}


static void
h_snap_index(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);

	if (!g)
		return;
	if (!snap_find(g, pl_sim_p(r, "snapname"), NULL)) {
		pl_sim_fail(r, 500, "snapshot '%s' does not exist", pl_sim_p(r, "snapname"));
		return;
	}
	pl_sim_ok(r, json_pack("[{s:s},{s:s}]", "cmd", "rollback", "cmd", "config"));
}


static void
h_snap_config(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	bool put = r->op;
	struct pl_sim_guest *g = req_guest(r, lxc);
	json_t *sn;

	if (!g)
		return;
	if (!(sn = snap_find(g, pl_sim_p(r, "snapname"), NULL))) {
		pl_sim_fail(r, 500, "snapshot '%s' does not exist", pl_sim_p(r, "snapname"));
		return;
	}
	if (put) {
		if (pl_sim_p(r, "description"))
			json_object_set_new(sn, "description", json_string(pl_sim_p(r, "description")));
		r->sim->dirty = true;
		pl_sim_ok(r, json_null());
		return;
	}
	{
		json_t *o = pl_sim_conf_json(r->sim, g, json_object_get(sn, "conf"));

		json_object_set_new(o, "snaptime", json_integer(pl_json_int(sn, "snaptime", 0)));
		if (pl_json_str(sn, "description"))
			json_object_set_new(o, "description", json_string(pl_json_str(sn, "description")));
		if (pl_json_str(sn, "parent"))
			json_object_set_new(o, "parent", json_string(pl_json_str(sn, "parent")));
		pl_sim_ok(r, o);
	}
}


/* --- clone, template --- */

static void
clone_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *src = pl_sim_guest_find(s, (uint32_t)pl_json_int(t->args, "src", 0));
	uint32_t newid = (uint32_t)pl_json_int(t->args, "newid", 0);
	struct pl_sim_guest *g = pl_sim_guest_find(s, newid);

	if (src && src->lock[0] && !strcmp(src->lock, "clone")) {
		src->lock[0] = 0;
		pl_sim_guest_touch(s, src);
	}
	if (g) {
		g->lock[0] = 0;
		pl_sim_guest_touch(s, g);
	}
	pl_sim_task_log(t, "clone to %u finished", newid);
}

static void
h_clone(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim *s = r->sim;
	struct pl_sim_guest *src = req_guest(r, lxc), *g, *other;
	long long newid = pl_sim_pint(r, "newid", 0);
	const char *target = pl_sim_p(r, "target"), *storage = pl_sim_p(r, "storage");
	const char *snapname = pl_sim_p(r, "snapname"), *pool = pl_sim_p(r, "pool");
	bool tmpl, full;
	int tn, ndisk = 0;
	json_t *conf;
	const char *k;
	json_t *v;
	struct pl_sim_task *t;

	if (!src)
		return;
	tmpl = pl_json_bool(src->conf, "template", false);
	full = pl_sim_pbool(r, "full", !tmpl);
	tn = target ? pl_sim_node_index(s, target) : src->node;
	if (tn < 0) {
		pl_sim_fail(r, 500, "no such cluster node '%s'", target);
		return;
	}
	if ((other = pl_sim_guest_find(s, (uint32_t)newid)) != NULL) {
		pl_sim_fail(r, 500, "unable to create %s %lld - %s %lld already exists on node '%s'",
			    lxc ? "CT" : "VM", newid, GT(other), newid, s->nodes[other->node].name);
		return;
	}
	if (!full && !tmpl) {
		pl_sim_fail(r, 500, "Linked clone feature is not supported for %s",
			    lxc ? "non-template containers" : "non-template VMs");
		return;
	}
	if (!full && storage) {
		pl_sim_param_fail(r, "storage", "parameter 'storage' not allowed for linked clones");
		return;
	}
	if (pool && !json_object_get(s->pools, pool)) {
		pl_sim_fail(r, 500, "pool '%s' does not exist", pool);
		return;
	}
	if (!tmpl && !check_lock(r, src))
		return;
	if (snapname) {
		json_t *sn = snap_find(src, snapname, NULL);

		if (!sn) {
			pl_sim_fail(r, 500, "snapshot '%s' does not exist", snapname);
			return;
		}
		conf = json_object_get(sn, "conf");
	} else {
		conf = src->conf;
	}
	g = pl_sim_guest_add(s, (uint32_t)newid, lxc, tn);
	json_object_foreach(conf, k, v) {
		const char *sv = json_string_value(v);

		if (!sv || !strcmp(k, "template") || pl_str_startswith(k, "unused") ||
		    !strcmp(k, "vmgenid") || !strcmp(k, "smbios1") || !strcmp(k, "meta"))
			continue;
		if (!lxc && strstr(sv, "-cloudinit") && strchr(sv, ':')) {
			/* a fresh cloud-init drive for the clone */
			char ci[160];

			snprintf(ci, sizeof(ci), "%.*s:cloudinit", (int)strcspn(sv, ":"), sv);
			if (conf_value(r, g, g->conf, k, ci) != 0) {
				char *msg = pl_strdup(r->reason);

				pl_sim_guest_remove(s, (uint32_t)newid, false);
				pl_sim_fail(r, 500, "clone failed: %s", msg);
				free(msg);
				return;
			}
			continue;
		}
		if (is_volume_key(src, k, sv)) {
			char vol[256], *nv;
			const char *rest = sv + strcspn(sv, ",");
			const char *sz = strstr(sv, "size=");
			char szv[32] = "8G";
			double gb;
			unsigned long long bytes = 8ULL << 30;

			if (sz) {
				snprintf(szv, sizeof(szv), "%.*s", (int)strcspn(sz + 5, ","), sz + 5);
				pl_size_parse(szv, &bytes);
			}
			gb = (double)bytes / (1024.0 * 1024.0 * 1024.0);
			if (full) {
				char st[128];

				snprintf(st, sizeof(st), "%.*s", (int)strcspn(sv, ":"), sv);
				snprintf(vol, sizeof(vol), "%s:%g", storage ? storage : st, gb);
				if (conf_value(r, g, g->conf, k, vol) != 0) {
					char *msg = pl_strdup(r->reason);

					pl_sim_guest_remove(s, (uint32_t)newid, false);
					pl_sim_fail(r, 500, "clone failed: %s", msg);
					free(msg);
					return;
				}
				/* keep the source's options besides file and size */
				nv = pl_strdup(pl_json_str_or(g->conf, k, ""));
				(void)rest;
				free(nv);
			} else {
				char st[128];
				const char *colon = strchr(sv, ':');
				size_t vl = strcspn(sv, ",");
				struct pl_sim_storage *sto;
				char newvol[700];

				snprintf(st, sizeof(st), "%.*s", (int)(colon ? colon - sv : 0), sv);
				snprintf(vol, sizeof(vol), "%.*s", (int)(vl - (colon ? (size_t)(colon - sv) + 1 : 0)),
					 colon ? colon + 1 : sv);
				snprintf(newvol, sizeof(newvol), "%s:%s/%s-%lld-disk-%zu%s", st, vol,
					 lxc ? "subvol" : "vm", newid, (size_t)ndisk++,
					 rest);
				sto = pl_sim_storage_find(s, st);
				if (sto) {
					char vid[700];

					snprintf(vid, sizeof(vid), "%.*s", (int)strcspn(newvol, ","), newvol);
					pl_sim_volume_add(sto, vid, lxc ? "rootdir" : "images", "raw",
							  bytes, g->vmid, tn);
				}
				json_object_set_new(g->conf, k, json_string(newvol));
			}
			continue;
		}
		if (!strncmp(k, "net", 3)) {
			/* clones get new MAC addresses */
			const struct pl_pfmt *f = pl_pfmt_get(lxc ? "lxc.net" : "qemu.net");
			struct pl_propstr p;
			struct pl_buf b;
			char *filled;

			pl_propstr_init(&p);
			pl_buf_init(&b, 0);
			if (f && pl_propstr_parse(f, sv, &p, NULL) == 0) {
				pl_propstr_del(&p, lxc ? "hwaddr" : "macaddr");
				pl_propstr_format(f, &p, &b);
				filled = pl_sim_net_fill(s, g, k, b.data);
				json_object_set_new(g->conf, k, json_string(filled));
				free(filled);
			} else {
				json_object_set(g->conf, k, v);
			}
			pl_propstr_release(&p);
			pl_buf_release(&b);
			continue;
		}
		json_object_set(g->conf, k, v);
	}
	if (lxc) {
		if (pl_sim_p(r, "hostname"))
			json_object_set_new(g->conf, "hostname", json_string(pl_sim_p(r, "hostname")));
	} else {
		char uuid[37];
		const char *oname = pl_json_str_or(src->conf, "name", "");

		if (pl_sim_p(r, "name"))
			json_object_set_new(g->conf, "name", json_string(pl_sim_p(r, "name")));
		else
			json_object_set_new(g->conf, "name", json_sprintf("Copy-of-VM-%s", oname));
		gen_uuid(s, uuid);
		json_object_set_new(g->conf, "smbios1", json_sprintf("uuid=%s", uuid));
		gen_uuid(s, uuid);
		json_object_set_new(g->conf, "vmgenid", json_string(uuid));
		json_object_set_new(g->conf, "meta", json_sprintf("creation-qemu=10.1.2,ctime=%lld",
								  (long long)time(NULL)));
	}
	if (pl_sim_p(r, "description"))
		json_object_set_new(g->conf, "description", json_string(pl_sim_p(r, "description")));
	if (pool)
		pl_sim_pool_add(s, pool, (uint32_t)newid, NULL);
	set_lock(s, g, "create");
	if (!tmpl)
		set_lock(s, src, "clone");
	t = pl_sim_task_start(s, src->node, lxc ? "vzclone" : "qmclone", pl_sim_p(r, "vmid"),
			      r->user, 0, clone_done,
			      json_pack("{s:I,s:I}", "src", (json_int_t)src->vmid, "newid",
					(json_int_t)newid));
	pl_sim_ok_task(r, t);
}


static bool
make_template(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	struct pl_sim *s = r->sim;
	const char *k;
	json_t *v;

	if (pl_json_bool(g->conf, "template", false)) {
		pl_sim_fail(r, 500, "you can't convert a template to a template");
		return false;
	}
	if (g->status != PL_SIM_STOPPED) {
		pl_sim_fail(r, 500, "you can't convert a %s to template if %s is running", GT(g),
			    GT(g));
		return false;
	}
	if (!check_lock(r, g))
		return false;
	json_object_foreach(g->conf, k, v) {
		const char *sv = json_string_value(v);
		const char *dash;
		struct pl_sim_volume *vol;
		struct pl_sim_storage *vst = NULL;
		char volid[256], *nv;

		if (!sv || !is_volume_key(g, k, sv) || !(dash = strstr(sv, ":vm-")))
			continue;
		snprintf(volid, sizeof(volid), "%.*s", (int)strcspn(sv, ","), sv);
		vol = pl_sim_volume_find(s, volid, g->node, &vst);
		nv = pl_asprintf("%.*s:base-%s", (int)(dash - sv), sv, dash + 4);
		if (vol) {
			free(vol->volid);
			vol->volid = pl_strndup(nv, strcspn(nv, ","));
			pl_sim_storage_reindex(vst);
		}
		json_object_set_new(g->conf, k, json_string(nv));
		free(nv);
	}
	json_object_set_new(g->conf, "template", json_string("1"));
	pl_sim_guest_touch(s, g);
	return true;
}

static void
h_qemu_template(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = req_guest(r, false);
	struct pl_sim_task *t;

	if (!g || !make_template(r, g))
		return;
	t = pl_sim_task_start(r->sim, g->node, "qmtemplate", pl_sim_p(r, "vmid"), r->user, 0,
			      noop_done, NULL);
	pl_sim_ok_task(r, t);
}

static void
h_lxc_template(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = req_guest(r, true);

	if (g && make_template(r, g))
		pl_sim_ok(r, json_null());
}

/* --- resize, migrate, destroy, rrd --- */

static void
h_resize(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);
	const char *disk = pl_sim_p(r, "disk"), *size = pl_sim_p(r, "size");
	const char *cur, *szp;
	unsigned long long old = 0, add = 0, nw;
	const struct pl_pfmt *f;
	struct pl_propstr p;
	struct pl_buf b;
	char sz[32], volid[256];
	struct pl_sim_volume *vol;

	if (!g)
		return;
	if (!check_lock(r, g))
		return;
	if (!(cur = pl_json_str(g->conf, disk)) || !is_volume_key(g, disk, cur)) {
		pl_sim_fail(r, 500, "disk '%s' does not exist", disk);
		return;
	}
	if ((szp = strstr(cur, "size=")) != NULL) {
		snprintf(sz, sizeof(sz), "%.*s", (int)strcspn(szp + 5, ","), szp + 5);
		pl_size_parse(sz, &old);
	}
	if (pl_size_parse(size[0] == '+' ? size + 1 : size, &add) != 0) {
		pl_sim_param_fail(r, "size", "value does not match the regex pattern");
		return;
	}
	nw = size[0] == '+' ? old + add : add;
	if (nw < old) {
		pl_sim_fail(r, 500, "shrinking disks is not supported");
		return;
	}
	snprintf(volid, sizeof(volid), "%.*s", (int)strcspn(cur, ","), cur);
	{
		char fname[40];
		size_t bl = strcspn(disk, "0123456789");

		if (!strcmp(disk, "efidisk0") || !strcmp(disk, "tpmstate0"))
			bl = strlen(disk);
		snprintf(fname, sizeof(fname), "qemu.%.*s", (int)bl, disk);
		f = pl_pfmt_get(lxc ? (strcmp(disk, "rootfs") ? "lxc.mp" : "lxc.rootfs") : fname);
	}
	pl_propstr_init(&p);
	pl_buf_init(&b, 0);
	pl_size_format(nw, sz, sizeof(sz));
	if (f && pl_propstr_parse(f, cur, &p, NULL) == 0) {
		pl_propstr_set(&p, "size", sz);
		pl_propstr_format(f, &p, &b);
		json_object_set_new(g->conf, disk, json_string(b.data));
	}
	pl_propstr_release(&p);
	pl_buf_release(&b);
	/* cur is gone now: the config value was replaced */
	if ((vol = pl_sim_volume_find(r->sim, volid, g->node, NULL)) != NULL)
		vol->size = nw;
	pl_sim_guest_touch(r->sim, g);
	if (!strcmp(r->m->returns, "string")) {
		struct pl_sim_task *t = pl_sim_task_start(r->sim, g->node, "resize",
							  pl_sim_p(r, "vmid"), r->user, 0,
							  noop_done, NULL);

		pl_sim_ok_task(r, t);
	} else {
		pl_sim_ok(r, json_null());
	}
}


/* PVE's migration (QemuMigrate / LXC Migrate prepare) checks every volume's
 * storage on the target with storage_check_enabled: NULL when all are
 * there, else its message (caller frees). */
static char *
migrate_storage_error(struct pl_sim *s, const struct pl_sim_guest *g, int tn)
{
	const char *k;
	json_t *v;

	json_object_foreach(g->conf, k, v) {
		const char *val = json_string_value(v);
		size_t kl = strcspn(k, "0123456789"), vl, sl;
		char sid[128];
		struct pl_sim_storage *st;

		if (!val || !(is_volume_key(g, k, val) || (kl == 6 && !strncmp(k, "unused", 6)) ||
			      (!g->lxc && strstr(val, "media=cdrom"))))
			continue;
		vl = strcspn(val, ",");
		sl = strcspn(val, ":");
		if (sl >= vl || val[0] == '/' || sl >= sizeof(sid))
			continue; /* none, cdrom, a device or a bind mount */
		snprintf(sid, sizeof(sid), "%.*s", (int)sl, val);
		if ((st = pl_sim_storage_find(s, sid)) != NULL &&
		    !pl_sim_storage_on_node(st, s->nodes[tn].name))
			return pl_asprintf("storage '%s' is not available on node '%s'", sid,
					   s->nodes[tn].name);
	}
	return NULL;
}

/* A live migration without with-local-disks: QemuMigrate's volume scan
 * refuses disks on local storages (cloud-init drives are generated anew).
 * Logs each one; true when there is one. */
static bool
migrate_local_disks(struct pl_sim *s, const struct pl_sim_guest *g, struct pl_sim_task *t)
{
	bool found = false;
	const char *k;
	json_t *v;

	json_object_foreach(g->conf, k, v) {
		const char *val = json_string_value(v);
		char volid[256];
		struct pl_sim_storage *st;

		if (!val || !is_volume_key(g, k, val) || strstr(val, "cloudinit") || val[0] == '/')
			continue;
		snprintf(volid, sizeof(volid), "%.*s", (int)strcspn(val, ","), val);
		*strchrnul(volid, ':') = 0;
		if ((st = pl_sim_storage_find(s, volid)) == NULL || st->shared)
			continue;
		snprintf(volid, sizeof(volid), "%.*s", (int)strcspn(val, ","), val);
		pl_sim_task_log(t, "WARN: can't migrate local disk '%s': can't live migrate attached "
			       "local disks without with-local-disks option", volid);
		found = true;
	}
	return found;
}

static void
migrate_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *g = pl_sim_guest_find(s, t->vmid);
	int tn = (int)pl_json_int(t->args, "target", 0);
	char *err;

	if (!g)
		return;
	if ((err = migrate_storage_error(s, g, tn)) != NULL) {
		/* AbstractMigrate: prepare died, nothing moved */
		pl_sim_task_log(t, "ERROR: migration aborted (duration 00:00:00): %s", err);
		pl_sim_task_fail(t, "migration aborted");
		free(err);
		return;
	}
	if (pl_json_bool(t->args, "live_local", false) && migrate_local_disks(s, g, t)) {
		pl_sim_task_log(t, "ERROR: Problem found while scanning volumes - can't migrate VM - "
			       "check log");
		pl_sim_task_log(t, "ERROR: migration aborted (duration 00:00:00): Problem found "
			       "while scanning volumes - can't migrate VM - check log");
		pl_sim_task_fail(t, "migration aborted");
		return;
	}
	for (size_t k = 0; k < s->nstores; k++) {
		for (size_t v = 0; v < s->stores[k].nvols; v++)
			if (s->stores[k].vols[v].vmid == g->vmid && s->stores[k].vols[v].node == g->node)
				s->stores[k].vols[v].node = tn;
		pl_sim_storage_reindex(&s->stores[k]);
	}
	pl_sim_task_log(t, "migration finished successfully (duration 00:00:01)");
	g->node = tn;
	if (pl_json_bool(t->args, "restart", false)) {
		g->status = PL_SIM_RUNNING;
		g->started = time(NULL);
	}
	free(g->res);
	g->res = NULL;
}

static void
h_migrate(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);
	const char *target = pl_sim_p(r, "target");
	int tn;
	bool restart = false;
	struct pl_sim_task *t;
	char *storage_err;

	if (!g)
		return;
	tn = pl_sim_node_index(r->sim, target);
	if (tn < 0) {
		pl_sim_fail(r, 500, "no such cluster node '%s'", target);
		return;
	}
	if (tn == g->node) {
		pl_sim_fail(r, 500, "target is local node.");
		return;
	}
	if (!check_lock(r, g))
		return;
	if (g->status != PL_SIM_STOPPED) {
		if (!lxc && !pl_sim_pbool(r, "online", false)) {
			pl_sim_fail(r, 500, "can't migrate running VM without --online");
			return;
		}
		if (lxc && !pl_sim_pbool(r, "restart", false)) {
			pl_sim_fail(r, 500, "lxc live migration is currently not implemented");
			return;
		}
		/* prepare fails (the storage check) before a container is shut down */
		storage_err = migrate_storage_error(r->sim, g, tn);
		restart = storage_err == NULL;
		if (lxc && restart)
			g->status = PL_SIM_STOPPED;
		free(storage_err);
	}
	set_lock(r->sim, g, "migrate");
	t = pl_sim_task_start(r->sim, g->node, lxc ? "vzmigrate" : "qmigrate", pl_sim_p(r, "vmid"),
			      r->user, g->vmid, migrate_done,
			      json_pack("{s:i,s:b,s:b}", "target", tn, "restart", restart && lxc,
					"live_local", !lxc && g->status != PL_SIM_STOPPED &&
					!pl_sim_pbool(r, "with-local-disks", false)));
	pl_sim_ok_task(r, t);
}


static void
h_migrate_check(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);
	json_t *allowed = json_array();

	if (!g) {
		json_decref(allowed);
		return;
	}
	for (size_t i = 0; i < r->sim->nnodes; i++)
		if ((int)i != g->node && r->sim->nodes[i].online)
			json_array_append_new(allowed, json_string(r->sim->nodes[i].name));
	pl_sim_ok(r, json_pack("{s:b,s:o,s:{},s:[],s:[]}", "running", g->status != PL_SIM_STOPPED,
			       "allowed_nodes", allowed, "not_allowed_nodes", "local_disks",
			       "local_resources"));
}


static void
destroy_done(struct pl_sim *s, struct pl_sim_task *t)
{
	/* PVE drops the guest's ACLs and pool membership on every destroy;
	 * purge also removes its backups (and job entries) */
	pl_sim_pool_forget(s, t->vmid);
	pl_sim_guest_remove(s, t->vmid, pl_json_bool(t->args, "purge", false));
	pl_sim_task_log(t, "destroyed");
	t->vmid = 0;
}

static void
h_destroy(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);
	struct pl_sim_task *t;

	if (!g)
		return;
	if (!check_lock(r, g))
		return;
	if (pl_json_bool(g->conf, "protection", false)) {
		pl_sim_fail(r, 500, "can't remove %s %u - protection mode enabled", GT(g), g->vmid);
		return;
	}
	if (g->status != PL_SIM_STOPPED) {
		pl_sim_fail(r, 500, "%s %u is running - destroy failed", GT(g), g->vmid);
		return;
	}
	set_lock(r->sim, g, "destroyed");
	t = pl_sim_task_start(r->sim, g->node, lxc ? "vzdestroy" : "qmdestroy",
			      pl_sim_p(r, "vmid"), r->user, g->vmid, destroy_done,
			      json_pack("{s:b}", "purge", pl_sim_pbool(r, "purge", false)));
	pl_sim_ok_task(r, t);
}


static void
h_guest_index(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	if (req_guest(r, lxc))
		pl_sim_ok(r, json_pack("[{s:s},{s:s},{s:s},{s:s},{s:s}]", "subdir", "config",
				       "subdir", "pending", "subdir", "status", "subdir", "snapshot",
				       "subdir", "rrddata"));
}


static void
h_rrddata(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = req_guest(r, lxc);

	if (g)
		pl_sim_ok(r, pl_sim_rrd(r->sim, g, g->node, pl_sim_p(r, "timeframe")));
}


/* --- guest agent / container interfaces: addresses for IP discovery --- */

/* The address a guest's NIC shows: the static one from ipconfigN / netN ip=,
 * or a stable DHCP-like one derived from the VMID. */
static void
nic_addr(const struct pl_sim_guest *g, int idx, char *out, size_t len, int *prefix)
{
	char key[16];
	const char *v, *ip;

	snprintf(key, sizeof(key), g->lxc ? "net%d" : "ipconfig%d", idx);
	v = pl_json_str(g->conf, key);
	*prefix = 24;
	if (v && (ip = strstr(v, "ip=")) != NULL && strncmp(ip + 3, "dhcp", 4) != 0 &&
	    strncmp(ip + 3, "manual", 6) != 0) {
		size_t n = strcspn(ip + 3, "/,");

		snprintf(out, len, "%.*s", (int)n, ip + 3);
		if (ip[3 + n] == '/')
			*prefix = (int)strtol(ip + 4 + n, NULL, 10);
		return;
	}
	snprintf(out, len, "10.%u.%u.%u", (unsigned)(idx + 10) & 0xff, (g->vmid >> 8) & 0xff,
		 (g->vmid & 0xff) ? (g->vmid & 0xff) : 1);
}

static const char *
nic_mac(const struct pl_sim_guest *g, const char *val, char *out, size_t len)
{
	const char *m = g->lxc ? strstr(val, "hwaddr=") : strchr(val, '=');

	if (!m)
		return NULL;
	m += g->lxc ? 7 : 1;
	snprintf(out, len, "%.17s", m);
	for (char *c = out; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
	return out;
}

static json_t *
nic_list(const struct pl_sim_guest *g, bool lxc_shape)
{
	json_t *a = json_array();

	if (lxc_shape)
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s}", "name", "lo", "hwaddr",
						   "00:00:00:00:00:00", "inet", "127.0.0.1/8",
						   "inet6", "::1/128"));
	else
		json_array_append_new(a, json_pack("{s:s,s:s,s:[{s:s,s:s,s:i}]}", "name", "lo",
						   "hardware-address", "00:00:00:00:00:00",
						   "ip-addresses", "ip-address-type", "ipv4",
						   "ip-address", "127.0.0.1", "prefix", 8));
	for (int i = 0; i < 32; i++) {
		char key[16], ip[64], mac[32], name[16], cidr[80];
		const char *v;
		int prefix;

		snprintf(key, sizeof(key), "net%d", i);
		if (!(v = pl_json_str(g->conf, key)) || !nic_mac(g, v, mac, sizeof(mac)))
			continue;
		nic_addr(g, i, ip, sizeof(ip), &prefix);
		snprintf(name, sizeof(name), "eth%d", i);
		if (g->lxc && strstr(v, "name=")) {
			const char *nm = strstr(v, "name=") + 5;

			snprintf(name, sizeof(name), "%.*s", (int)strcspn(nm, ","), nm);
		}
		if (lxc_shape) {
			snprintf(cidr, sizeof(cidr), "%s/%d", ip, prefix);
			json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", name, "hwaddr", mac,
							   "inet", cidr));
		} else {
			json_array_append_new(a, json_pack("{s:s,s:s,s:[{s:s,s:s,s:i}]}", "name", name,
							   "hardware-address", mac, "ip-addresses",
							   "ip-address-type", "ipv4", "ip-address", ip,
							   "prefix", prefix));
		}
	}
	return a;
}

/* The guest of an agent call, or NULL after answering as PVE does when the
 * VM is stopped or has no agent configured. */
static struct pl_sim_guest *
agent_guest(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = req_guest(r, false);
	const char *agent;

	if (!g)
		return NULL;
	if (g->status == PL_SIM_STOPPED) {
		pl_sim_fail(r, 500, "VM %u is not running", g->vmid);
		return NULL;
	}
	agent = pl_json_str(g->conf, "agent");
	if (!agent || agent[0] == '0' || !strncmp(agent, "enabled=0", 9)) {
		pl_sim_fail(r, 500, "No QEMU guest agent configured");
		return NULL;
	}
	return g;
}

static void
h_agent_net(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = agent_guest(r);

	if (g)
		pl_sim_ok(r, json_pack("{s:o}", "result", nic_list(g, false)));
}

static void
h_agent_ping(struct pl_sim_req *r)
{
	if (agent_guest(r))
		pl_sim_ok(r, json_pack("{s:{}}", "result"));
}

/* Cloud-init: the drive is regenerated from the config at once (PUT), so
 * nothing is ever pending; dump shows the user-data PVE would write. */
static void
h_cloudinit_put(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = req_guest(r, false);

	if (g && check_lock(r, g))
		pl_sim_ok(r, json_null());
}

static void
h_cloudinit_get(struct pl_sim_req *r)
{
	if (req_guest(r, false))
		pl_sim_ok(r, json_array());
}

static void
h_cloudinit_dump(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = req_guest(r, false);
	const char *type = pl_sim_p(r, "type");
	const char *user = NULL, *name;
	char *text;

	if (!g)
		return;
	name = pl_json_str_or(g->conf, "name", "");
	user = pl_json_str(g->conf, "ciuser");
	if (type && !strcmp(type, "user"))
		text = pl_asprintf("#cloud-config\nhostname: %s\nmanage_etc_hosts: true\n"
				   "fqdn: %s\n%s%s%schpasswd:\n  expire: False\n"
				   "users:\n  - default\npackage_upgrade: true\n",
				   name, name, user ? "user: " : "", user ? user : "", user ? "\n" : "");
	else if (type && !strcmp(type, "meta"))
		text = pl_asprintf("instance-id: %.40s\n", g->digest);
	else
		text = pl_strdup("version: 1\nconfig:\n");
	pl_sim_ok(r, json_string(text));
	free(text);
}

static void
h_lxc_interfaces(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = req_guest(r, true);

	if (!g)
		return;
	if (g->status == PL_SIM_STOPPED) {
		pl_sim_fail(r, 500, "CT %u is not running", g->vmid);
		return;
	}
	pl_sim_ok(r, nic_list(g, true));
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
	{ PL_SIM_POST, Q "/{vmid}/status/start", h_power, false, P_START },
	{ PL_SIM_POST, Q "/{vmid}/status/stop", h_power, false, P_STOP },
	{ PL_SIM_POST, Q "/{vmid}/status/shutdown", h_power, false, P_SHUTDOWN },
	{ PL_SIM_POST, Q "/{vmid}/status/reboot", h_power, false, P_REBOOT },
	{ PL_SIM_POST, Q "/{vmid}/status/suspend", h_power, false, P_SUSPEND },
	{ PL_SIM_POST, Q "/{vmid}/status/resume", h_power, false, P_RESUME },
	{ PL_SIM_POST, Q "/{vmid}/status/reset", h_power, false, P_RESET },
	{ PL_SIM_GET, Q "/{vmid}/snapshot", h_snap_list, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/snapshot", h_snap_create, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/snapshot/{snapname}", h_snap_index, false, 0 },
	{ PL_SIM_DELETE, Q "/{vmid}/snapshot/{snapname}", h_snap_delete, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/snapshot/{snapname}/config", h_snap_config, false, 0 },
	{ PL_SIM_PUT, Q "/{vmid}/snapshot/{snapname}/config", h_snap_config, false, 1 },
	{ PL_SIM_POST, Q "/{vmid}/snapshot/{snapname}/rollback", h_snap_rollback, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/clone", h_clone, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/template", h_qemu_template, false, 0 },
	{ PL_SIM_PUT, Q "/{vmid}/resize", h_resize, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/migrate", h_migrate_check, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/migrate", h_migrate, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/rrddata", h_rrddata, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/agent/network-get-interfaces", h_agent_net, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/agent/ping", h_agent_ping, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/cloudinit", h_cloudinit_get, false, 0 },
	{ PL_SIM_PUT, Q "/{vmid}/cloudinit", h_cloudinit_put, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/cloudinit/dump", h_cloudinit_dump, false, 0 },
	{ PL_SIM_GET, L, h_list, true, 0 },
	{ PL_SIM_POST, L, h_create, true, 0 },
	{ PL_SIM_GET, L "/{vmid}", h_guest_index, true, 0 },
	{ PL_SIM_DELETE, L "/{vmid}", h_destroy, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/config", h_config_get, true, 0 },
	{ PL_SIM_PUT, L "/{vmid}/config", h_config_put, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/pending", h_pending, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/status", h_status_index, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/status/current", h_status_current, true, 0 },
	{ PL_SIM_POST, L "/{vmid}/status/start", h_power, true, P_START },
	{ PL_SIM_POST, L "/{vmid}/status/stop", h_power, true, P_STOP },
	{ PL_SIM_POST, L "/{vmid}/status/shutdown", h_power, true, P_SHUTDOWN },
	{ PL_SIM_POST, L "/{vmid}/status/reboot", h_power, true, P_REBOOT },
	{ PL_SIM_POST, L "/{vmid}/status/suspend", h_power, true, P_SUSPEND },
	{ PL_SIM_POST, L "/{vmid}/status/resume", h_power, true, P_RESUME },
	{ PL_SIM_GET, L "/{vmid}/snapshot", h_snap_list, true, 0 },
	{ PL_SIM_POST, L "/{vmid}/snapshot", h_snap_create, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/snapshot/{snapname}", h_snap_index, true, 0 },
	{ PL_SIM_DELETE, L "/{vmid}/snapshot/{snapname}", h_snap_delete, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/snapshot/{snapname}/config", h_snap_config, true, 0 },
	{ PL_SIM_PUT, L "/{vmid}/snapshot/{snapname}/config", h_snap_config, true, 1 },
	{ PL_SIM_POST, L "/{vmid}/snapshot/{snapname}/rollback", h_snap_rollback, true, 0 },
	{ PL_SIM_POST, L "/{vmid}/clone", h_clone, true, 0 },
	{ PL_SIM_POST, L "/{vmid}/template", h_lxc_template, true, 0 },
	{ PL_SIM_PUT, L "/{vmid}/resize", h_resize, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/migrate", h_migrate_check, true, 0 },
	{ PL_SIM_POST, L "/{vmid}/migrate", h_migrate, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/rrddata", h_rrddata, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/interfaces", h_lxc_interfaces, true, 0 },
	{ 0, NULL, NULL, false, 0 },
};
