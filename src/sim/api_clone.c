/*
 * API handlers that copy or move a guest: clone (full and linked),
 * template, disk resize and migration.
 */
#include "core/common.h"

#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

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

/* The clone's disks could not be made: the new guest goes; a storage without
 * room is met by PVE's clone worker ("clone failed: ..." ends the task),
 * the rest before it forks. */
static void
clone_failed(struct pl_sim_req *r, struct pl_sim_guest *src, struct pl_sim_guest *g, int rc)
{
	char *msg = pl_asprintf("clone failed: %s", r->reason);

	pl_sim_guest_remove(r->sim, g->vmid, false);
	if (rc == PL_SIM_IN_WORKER)
		pl_sim_fail_task(r, src->node, src->lxc ? "vzclone" : "qmclone", msg);
	else
		pl_sim_fail(r, 500, "%s", msg);
	free(msg);
}

static void
h_clone(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim *s = r->sim;
	struct pl_sim_guest *src = pl_sim_req_guest(r, lxc), *g, *other;
	long long newid = pl_sim_pint(r, "newid", 0);
	const char *target = pl_sim_p(r, "target"), *storage = pl_sim_p(r, "storage");
	const char *snapname = pl_sim_p(r, "snapname"), *pool = pl_sim_p(r, "pool");
	bool tmpl, full;
	int tn, ndisk = 0, rc;
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
		pl_sim_fail(r, 500,
			    "unable to create %s %lld - %s %lld already exists on node '%s'",
			    lxc ? "CT" : "VM", newid, PL_SIM_GT(other), newid,
			    s->nodes[other->node].name);
		return;
	}
	if (!full && !tmpl) {
		pl_sim_fail(r, 500, "Linked clone feature is not supported for %s",
			    lxc ? "non-template containers" : "non-template VMs");
		return;
	}
	if (!full && storage) {
		pl_sim_param_fail(r, "storage",
				  "parameter 'storage' not allowed for linked clones");
		return;
	}
	if (pool && !json_object_get(s->pools, pool)) {
		pl_sim_fail(r, 500, "pool '%s' does not exist", pool);
		return;
	}
	if (!tmpl && !pl_sim_check_lock(r, src))
		return;
	if (snapname) {
		json_t *sn = pl_sim_snap_find(src, snapname, NULL);

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
			if ((rc = pl_sim_conf_value(r, g, g->conf, k, ci)) != 0) {
				clone_failed(r, src, g, rc);
				return;
			}
			continue;
		}
		if (pl_sim_is_volume_key(src, k, sv)) {
			char vol[256], *nv;
			const char *rest = sv + strcspn(sv, ",");
			const char *sz = strstr(sv, "size=");
			char szv[32] = "8G";
			double gb;
			unsigned long long bytes = 8ULL << 30;

			if (sz) {
				snprintf(szv, sizeof(szv), "%.*s", (int)strcspn(sz + 5, ","),
					 sz + 5);
				pl_size_parse(szv, &bytes);
			}
			gb = (double)bytes / (1024.0 * 1024.0 * 1024.0);
			if (full) {
				char st[128];

				snprintf(st, sizeof(st), "%.*s", (int)strcspn(sv, ":"), sv);
				snprintf(vol, sizeof(vol), "%s:%g", storage ? storage : st, gb);
				if ((rc = pl_sim_conf_value(r, g, g->conf, k, vol)) != 0) {
					clone_failed(r, src, g, rc);
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
				snprintf(vol, sizeof(vol), "%.*s",
					 (int)(vl - (colon ? (size_t)(colon - sv) + 1 : 0)),
					 colon ? colon + 1 : sv);
				snprintf(newvol, sizeof(newvol), "%s:%s/%s-%lld-disk-%zu%s", st,
					 vol, lxc ? "subvol" : "vm", newid, (size_t)ndisk++, rest);
				sto = pl_sim_storage_find(s, st);
				if (sto) {
					char vid[700];

					snprintf(vid, sizeof(vid), "%.*s",
						 (int)strcspn(newvol, ","), newvol);
					pl_sim_volume_add(sto, vid, lxc ? "rootdir" : "images",
							  "raw", bytes, g->vmid, tn);
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
			json_object_set_new(g->conf, "hostname",
					    json_string(pl_sim_p(r, "hostname")));
	} else {
		char uuid[37];
		const char *oname = pl_json_str_or(src->conf, "name", "");

		if (pl_sim_p(r, "name"))
			json_object_set_new(g->conf, "name", json_string(pl_sim_p(r, "name")));
		else
			json_object_set_new(g->conf, "name", json_sprintf("Copy-of-VM-%s", oname));
		pl_sim_gen_uuid(s, uuid);
		json_object_set_new(g->conf, "smbios1", json_sprintf("uuid=%s", uuid));
		pl_sim_gen_uuid(s, uuid);
		json_object_set_new(g->conf, "vmgenid", json_string(uuid));
		json_object_set_new(
			g->conf, "meta",
			json_sprintf("creation-qemu=10.1.2,ctime=%lld", (long long)time(NULL)));
	}
	if (pl_sim_p(r, "description"))
		json_object_set_new(g->conf, "description",
				    json_string(pl_sim_p(r, "description")));
	if (pool)
		pl_sim_pool_add(s, pool, (uint32_t)newid, NULL);
	pl_sim_set_lock(s, g, "create");
	if (!tmpl)
		pl_sim_set_lock(s, src, "clone");
	t = pl_sim_task_start(
		s, src->node, lxc ? "vzclone" : "qmclone", pl_sim_p(r, "vmid"), r->user, 0,
		clone_done,
		json_pack("{s:I,s:I}", "src", (json_int_t)src->vmid, "newid", (json_int_t)newid));
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
		pl_sim_fail(r, 500, "you can't convert a %s to template if %s is running",
			    PL_SIM_GT(g), PL_SIM_GT(g));
		return false;
	}
	if (!pl_sim_check_lock(r, g))
		return false;
	json_object_foreach(g->conf, k, v) {
		const char *sv = json_string_value(v);
		const char *dash;
		struct pl_sim_volume *vol;
		struct pl_sim_storage *vst = NULL;
		char volid[256], *nv;

		if (!sv || !pl_sim_is_volume_key(g, k, sv) || !(dash = strstr(sv, ":vm-")))
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
	struct pl_sim_guest *g = pl_sim_req_guest(r, false);
	struct pl_sim_task *t;

	if (!g || !make_template(r, g))
		return;
	t = pl_sim_task_start(r->sim, g->node, "qmtemplate", pl_sim_p(r, "vmid"), r->user, 0,
			      pl_sim_noop_done, NULL);
	pl_sim_ok_task(r, t);
}

static void
h_lxc_template(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = pl_sim_req_guest(r, true);

	if (g && make_template(r, g))
		pl_sim_ok(r, json_null());
}

/* --- resize, migrate, destroy, rrd --- */

static void
h_resize(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);
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
	if (!pl_sim_check_lock(r, g))
		return;
	if (!(cur = pl_json_str(g->conf, disk)) || !pl_sim_is_volume_key(g, disk, cur)) {
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
		struct pl_sim_task *t =
			pl_sim_task_start(r->sim, g->node, "resize", pl_sim_p(r, "vmid"), r->user,
					  0, pl_sim_noop_done, NULL);

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

		if (!val ||
		    !(pl_sim_is_volume_key(g, k, val) || (kl == 6 && !strncmp(k, "unused", 6)) ||
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

		if (!val || !pl_sim_is_volume_key(g, k, val) || strstr(val, "cloudinit") ||
		    val[0] == '/')
			continue;
		snprintf(volid, sizeof(volid), "%.*s", (int)strcspn(val, ","), val);
		*strchrnul(volid, ':') = 0;
		if ((st = pl_sim_storage_find(s, volid)) == NULL || st->shared)
			continue;
		snprintf(volid, sizeof(volid), "%.*s", (int)strcspn(val, ","), val);
		pl_sim_task_log(t,
				"WARN: can't migrate local disk '%s': can't live migrate attached "
				"local disks without with-local-disks option",
				volid);
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
		pl_sim_task_log(t,
				"ERROR: Problem found while scanning volumes - can't migrate VM - "
				"check log");
		pl_sim_task_log(t, "ERROR: migration aborted (duration 00:00:00): Problem found "
				   "while scanning volumes - can't migrate VM - check log");
		pl_sim_task_fail(t, "migration aborted");
		return;
	}
	for (size_t k = 0; k < s->nstores; k++) {
		for (size_t v = 0; v < s->stores[k].nvols; v++)
			if (s->stores[k].vols[v].vmid == g->vmid &&
			    s->stores[k].vols[v].node == g->node)
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
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);
	const char *target = pl_sim_p(r, "target");
	int tn;
	bool restart = false, live_lxc = false;
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
	if (!pl_sim_check_lock(r, g))
		return;
	if (g->status != PL_SIM_STOPPED) {
		if (!lxc && !pl_sim_pbool(r, "online", false)) {
			pl_sim_fail(r, 500, "can't migrate running VM without --online");
			return;
		}
		if (lxc && !pl_sim_pbool(r, "restart", false) &&
		    !pl_sim_pbool(r, "online", false)) {
			pl_sim_fail(
				r, 500,
				"can't migrate running container without --online or --restart");
			return;
		}
		live_lxc = lxc && !pl_sim_pbool(r, "restart", false);
		/* prepare fails (the storage check) before a container is shut down */
		storage_err = migrate_storage_error(r->sim, g, tn);
		restart = storage_err == NULL && !live_lxc;
		if (lxc && restart)
			g->status = PL_SIM_STOPPED;
		free(storage_err);
	}
	/* qemu-server's migrate_vm checks every volume's storage on the target
	 * before it forks (check_storage_availability); pve-container's only
	 * in the task (PVE::LXC::Migrate::prepare, see migrate_done) */
	if (!lxc && (storage_err = migrate_storage_error(r->sim, g, tn)) != NULL) {
		pl_sim_fail(r, 500, "%s", storage_err);
		free(storage_err);
		return;
	}
	pl_sim_set_lock(r->sim, g, "migrate");
	t = pl_sim_task_start(r->sim, g->node, lxc ? "vzmigrate" : "qmigrate", pl_sim_p(r, "vmid"),
			      r->user, g->vmid, migrate_done,
			      json_pack("{s:i,s:b,s:b}", "target", tn, "restart", restart && lxc,
					"live_local",
					!lxc && g->status != PL_SIM_STOPPED &&
						!pl_sim_pbool(r, "with-local-disks", false)));
	if (live_lxc) { /* PVE::LXC::Migrate::prepare */
		pl_sim_task_log(t, "ERROR: migration aborted (duration 00:00:00): lxc live "
				   "migration is currently not implemented");
		pl_sim_task_doom(t, "migration aborted");
	}
	pl_sim_ok_task(r, t);
}

static void
h_migrate_check(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);
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

#define Q "/nodes/{node}/qemu"
#define L "/nodes/{node}/lxc"

const struct pl_sim_route_def pl_sim_clone_routes[] = {
	{ PL_SIM_POST, Q "/{vmid}/clone", h_clone, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/template", h_qemu_template, false, 0 },
	{ PL_SIM_PUT, Q "/{vmid}/resize", h_resize, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/migrate", h_migrate_check, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/migrate", h_migrate, false, 0 },
	{ PL_SIM_POST, L "/{vmid}/clone", h_clone, true, 0 },
	{ PL_SIM_POST, L "/{vmid}/template", h_lxc_template, true, 0 },
	{ PL_SIM_PUT, L "/{vmid}/resize", h_resize, true, 0 },
	{ PL_SIM_GET, L "/{vmid}/migrate", h_migrate_check, true, 0 },
	{ PL_SIM_POST, L "/{vmid}/migrate", h_migrate, true, 0 },
	{ 0, NULL, NULL, false, 0 },
};
