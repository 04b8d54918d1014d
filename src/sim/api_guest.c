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
pl_sim_check_lock(struct pl_sim_req *r, struct pl_sim_guest *g)
{
	struct pl_sim *s = r->sim;

	if (pl_sim_flock_busy(r, g))
		return false;
	if (g->lock[0] && !pl_sim_pbool(r, "skiplock", false)) {
		pl_sim_fail(r, 500, "%s %u is locked (%s)", PL_SIM_GT(g), g->vmid, g->lock);
		return false;
	}
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

		if (txt && pl_sim_conf_value(r, g, g->conf, k, txt) != 0) {
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
		if (pl_sim_conf_value(r, g, g->conf, k, json_string_value(v)) != 0) {
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

			if (pl_sim_conf_value(r, g, g->conf, "rootfs", root) != 0) {
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

		pl_sim_gen_uuid(s, uuid);
		if (!json_object_get(g->conf, "smbios1"))
			json_object_set_new(g->conf, "smbios1", json_sprintf("uuid=%s", uuid));
		pl_sim_gen_uuid(s, uuid);
		if (!json_object_get(g->conf, "vmgenid"))
			json_object_set_new(g->conf, "vmgenid", json_string(uuid));
		json_object_set_new(g->conf, "meta",
				    json_sprintf("creation-qemu=%s,ctime=%lld",
						 v8 ? "9.2.0" : "10.1.2", (long long)time(NULL)));
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

	if (!pl_sim_check_lock(r, g))
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
		    (!json_object_get(g->conf, k) &&
		     pl_sim_is_volume_key(g, k, json_string_value(v)) && hot_key(g, k))) {
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

	if (!g || !update_config(r, g))
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
		pl_sim_ok(r, guest_status(r->sim, g, true));
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
