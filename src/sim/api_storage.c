/*
 * API handlers for a node's storages (list, status, content with usage
 * accounted from guest disks), appliance templates (aplinfo), backups
 * (vzdump) and the network configuration with pending changes.
 */
#include "core/common.h"

#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

static struct pl_sim_storage *
req_storage(struct pl_sim_req *r, int *node)
{
	const char *id = pl_sim_p(r, "storage");
	struct pl_sim_storage *st;

	if ((*node = pl_sim_req_node(r)) < 0)
		return NULL;
	st = id ? pl_sim_storage_find(r->sim, id) : NULL;
	if (!st || !pl_sim_storage_on_node(st, r->sim->nodes[*node].name)) {
		pl_sim_fail(r, 500, "storage '%s' does not exist", id ? id : "");
		return NULL;
	}
	return st;
}

static void
h_storage_list(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	int n = pl_sim_req_node(r);
	const char *content = pl_sim_p(r, "content"), *only = pl_sim_p(r, "storage");
	json_t *a;

	if (n < 0)
		return;
	a = json_array();
	for (size_t i = 0; i < s->nstores; i++) {
		struct pl_sim_storage *st = &s->stores[i];

		if (!pl_sim_storage_on_node(st, s->nodes[n].name))
			continue;
		if (only && strcmp(only, st->id))
			continue;
		if (content && !strstr(st->content, content))
			continue;
		if (!pl_sim_storage_listed(s, r->user, st->id))
			continue;
		json_array_append_new(a, pl_sim_storage_entry(s, st, n));
	}
	pl_sim_ok(r, a);
}

static void
h_storage_status(struct pl_sim_req *r)
{
	int n;
	struct pl_sim_storage *st = req_storage(r, &n);

	if (st)
		pl_sim_ok(r, pl_sim_storage_entry(r->sim, st, n));
}

static void
h_storage_index(struct pl_sim_req *r)
{
	int n;

	if (req_storage(r, &n))
		pl_sim_ok(r, json_pack("[{s:s},{s:s},{s:s}]", "subdir", "status", "subdir", "content",
				       "subdir", "rrddata"));
}

static json_t *
volume_json(const struct pl_sim_volume *v)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I}", "volid", v->volid, "content", v->content,
			      "format", v->format, "size", (json_int_t)v->size, "ctime",
			      (json_int_t)v->ctime);

	if (v->vmid)
		json_object_set_new(o, "vmid", json_integer(v->vmid));
	if (!strcmp(v->content, "images") || !strcmp(v->content, "rootdir"))
		json_object_set_new(o, "used", json_integer((json_int_t)(v->size / 3)));
	return o;
}

static void
h_content(struct pl_sim_req *r)
{
	int n;
	struct pl_sim_storage *st = req_storage(r, &n);
	const char *content = pl_sim_p(r, "content");
	long long vmid = pl_sim_pint(r, "vmid", 0);
	json_t *a;

	if (!st)
		return;
	a = json_array();
	for (size_t i = 0; i < st->nvols; i++) {
		const struct pl_sim_volume *v = &st->vols[i];

		if (v->node != -1 && v->node != n)
			continue;
		if (content && strcmp(content, v->content))
			continue;
		if (vmid && v->vmid != (uint32_t)vmid)
			continue;
		json_array_append_new(a, volume_json(v));
	}
	pl_sim_ok(r, a);
}

static void
h_content_alloc(struct pl_sim_req *r)
{
	int n;
	struct pl_sim_storage *st = req_storage(r, &n);
	const char *fn = pl_sim_p(r, "filename"), *size = pl_sim_p(r, "size");
	unsigned long long bytes = 0;
	char volid[300];

	if (!st)
		return;
	if (pl_size_parse(size, &bytes) != 0) {
		pl_sim_param_fail(r, "size", "unable to parse size '%s'", size);
		return;
	}
	if (bytes < (1ULL << 30) && strspn(size, "0123456789") == strlen(size))
		bytes <<= 10; /* plain numbers are KiB here */
	snprintf(volid, sizeof(volid), "%s:%s", st->id, fn);
	if (pl_sim_volume_find(r->sim, volid, n, NULL)) {
		pl_sim_fail(r, 500, "volume '%s' already exists", volid);
		return;
	}
	pl_sim_volume_add(st, volid, "images", pl_sim_p(r, "format") ? pl_sim_p(r, "format") : "raw",
			  bytes, (uint32_t)pl_sim_pint(r, "vmid", 0), n);
	r->sim->dirty = true;
	pl_sim_ok(r, json_string(volid));
}

static char *
full_volid(struct pl_sim_req *r, struct pl_sim_storage *st)
{
	const char *vol = pl_sim_p(r, "volume");

	if (strchr(vol, ':'))
		return pl_strdup(vol);
	return pl_asprintf("%s:%s", st->id, vol);
}

static void
h_volume(struct pl_sim_req *r)
{
	enum pl_sim_meth meth = r->m->meth;
	int n;
	struct pl_sim_storage *st = req_storage(r, &n);
	struct pl_sim_volume *v;
	char *volid;

	if (!st)
		return;
	volid = full_volid(r, st);
	v = pl_sim_volume_find(r->sim, volid, n, NULL);
	if (!v) {
		pl_sim_fail(r, 500, "volume '%s' does not exist", volid);
		free(volid);
		return;
	}
	if (meth == PL_SIM_GET) {
		json_t *o = volume_json(v);

		json_object_set_new(o, "path", json_sprintf("/var/lib/vz/%s", strchr(volid, ':') + 1));
		pl_sim_ok(r, o);
	} else if (meth == PL_SIM_DELETE) {
		struct pl_sim_task *t;

		if (v->vmid && (!strcmp(v->content, "images") || !strcmp(v->content, "rootdir")) &&
		    pl_sim_guest_find(r->sim, v->vmid)) {
			struct pl_sim_guest *g = pl_sim_guest_find(r->sim, v->vmid);
			const char *k;
			json_t *cv;
			bool used = false;

			json_object_foreach(g->conf, k, cv) {
				if (json_is_string(cv) && !strncmp(json_string_value(cv), volid,
								   strlen(volid)) &&
				    !pl_str_startswith(k, "unused"))
					used = true;
			}
			if (used) {
				pl_sim_fail(r, 500,
					    "unable to delete volume '%s' - volume is still in use "
					    "(referenced in config)",
					    volid);
				free(volid);
				return;
			}
		}
		pl_sim_volume_del(r->sim, volid, n);
		t = pl_sim_task_start(r->sim, n, "imgdel", volid, r->user, 0, NULL, NULL);
		pl_sim_ok_task(r, t);
	} else {
		pl_sim_ok(r, json_null());
	}
	free(volid);
}

/* --- aplinfo --- */

static void
h_aplinfo(struct pl_sim_req *r)
{
	if (pl_sim_req_node(r) < 0)
		return;
	pl_sim_ok(r, json_deep_copy(r->sim->aplinfo));
}

static void
download_done(struct pl_sim *s, struct pl_sim_task *t)
{
	const char *volid = pl_json_str_or(t->args, "volid", "");

	if (!pl_sim_volume_find(s, volid, t->node, NULL)) {
		struct pl_sim_storage *st = pl_sim_storage_find(s, pl_json_str_or(t->args, "storage", ""));

		if (st)
			pl_sim_volume_add(st, volid, "vztmpl",
					  strstr(volid, ".tar.zst") ? "tzst" : "tgz",
					  (uint64_t)pl_json_int(t->args, "size", 130 << 20), 0, t->node);
	}
	pl_sim_task_log(t, "download of '%s' finished", volid);
}

static void
h_aplinfo_download(struct pl_sim_req *r)
{
	int n;
	struct pl_sim_storage *st = req_storage(r, &n);
	const char *tpl = pl_sim_p(r, "template");
	size_t i;
	json_t *v, *found = NULL;
	struct pl_sim_task *t;
	char volid[300];

	if (!st)
		return;
	json_array_foreach(r->sim->aplinfo, i, v) {
		if (!strcmp(pl_json_str_or(v, "template", ""), tpl))
			found = v;
	}
	if (!found) {
		pl_sim_fail(r, 500, "no such template '%s'", tpl);
		return;
	}
	if (!strstr(st->content, "vztmpl")) {
		pl_sim_fail(r, 500, "storage '%s' does not support templates", st->id);
		return;
	}
	snprintf(volid, sizeof(volid), "%s:vztmpl/%s", st->id, tpl);
	t = pl_sim_task_start(r->sim, n, "download", tpl, r->user, 0, download_done,
			      json_pack("{s:s,s:s,s:I}", "volid", volid, "storage", st->id, "size",
					(json_int_t)(120 << 20)));
	pl_sim_ok_task(r, t);
}

/* --- vzdump --- */

/* PVE::Storage::prune_mark_backup_group over one guest's archives, newest
 * first: each keep-* option keeps the newest archive of as many periods as
 * it says (a period another option kept counts for it), the rest are
 * removed; keep-all, or no positive option, removes nothing. */
static const char *const keep_opts[] = {
	"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly",
}; /* in this order; period_of() gives each one's period, in local time as PVE's */

static int
newest_first(const void *a, const void *b)
{
	const struct pl_sim_volume *x = *(struct pl_sim_volume *const *)a,
				   *y = *(struct pl_sim_volume *const *)b;

	return (x->ctime < y->ctime) - (x->ctime > y->ctime);
}

static void
period_of(char *out, size_t len, size_t opt, int64_t ctime)
{
	time_t t = (time_t)ctime;
	struct tm tm;

	localtime_r(&t, &tm);
	switch (opt) {
	case 1:
		strftime(out, len, "%Y/%m/%d/%H", &tm);
		break;
	case 2:
		strftime(out, len, "%Y/%m/%d", &tm);
		break;
	case 3:
		strftime(out, len, "%G/%V", &tm);
		break;
	case 4:
		strftime(out, len, "%Y/%m", &tm);
		break;
	case 5:
		strftime(out, len, "%Y", &tm);
		break;
	default: /* keep-last: each archive is its own period */
		snprintf(out, len, "%lld", (long long)ctime);
	}
}

/* vzdump's remove step for guest g after its backup to st: the archives of
 * its type there, pruned by keep ("keep-last=3,keep-daily=7"); logs as
 * VZDump.pm does and returns how many it removed. */
static int
vzdump_prune(struct pl_sim *s, struct pl_sim_task *t, struct pl_sim_storage *st,
	     const struct pl_sim_guest *g, const char *keep)
{
	struct pl_sim_volume **list = pl_calloc(st->nvols + 1, sizeof(*list));
	long long counts[PL_ARRAY_LEN(keep_opts)] = { 0 };
	bool all = false, any = false;
	char *mark, period[64], **gone;
	int *gone_node;
	size_t n = 0, i, k;
	int pruned = 0;
	json_t *kept = json_object();
	struct pl_buf str;

	pl_buf_init(&str, 0);
	for (const char *p = keep; p && *p; p += strspn(p, ",")) {
		size_t l = strcspn(p, ",");
		const char *eq = memchr(p, '=', l);
		long long v = eq ? strtoll(eq + 1, NULL, 10) : 0;

		if (eq && (size_t)(eq - p) == 8 && !strncmp(p, "keep-all", 8))
			all = v > 0;
		for (k = 0; eq && k < PL_ARRAY_LEN(keep_opts); k++)
			if (strlen(keep_opts[k]) == (size_t)(eq - p) &&
			    !strncmp(p, keep_opts[k], (size_t)(eq - p)))
				counts[k] = v;
		p += l;
	}
	for (k = 0; k < PL_ARRAY_LEN(keep_opts); k++) {
		static const size_t by_name[] = { 2, 1, 0, 4, 3, 5 }; /* Perl's sort keys */
		size_t o = by_name[k];

		any |= counts[k] > 0;
		if (counts[o])
			pl_buf_addf(&str, "%s%s=%lld", str.len ? ", " : "", keep_opts[o],
				    counts[o]);
	}
	if (all || !any) {
		pl_buf_release(&str);
		json_decref(kept);
		free(list);
		return 0;
	}
	pl_sim_task_log(t, "INFO: prune older backups with retention: %s", str.data);
	pl_buf_release(&str);
	for (i = 0; i < st->nvols; i++) {
		struct pl_sim_volume *v = &st->vols[i];

		if (v->vmid == g->vmid && !strcmp(v->content, "backup") &&
		    !strncmp(v->format, g->lxc ? "tar" : "vma", 3) &&
		    (st->shared || v->node == g->node))
			list[n++] = v;
	}
	qsort(list, n, sizeof(*list), newest_first);
	mark = pl_calloc(n + 1, 1); /* 0 undecided, 'k' keep, 'r' remove */
	for (k = 0; k < PL_ARRAY_LEN(keep_opts); k++) {
		json_t *newly = json_object();

		if (counts[k] <= 0) {
			json_decref(newly);
			continue;
		}
		json_object_clear(kept);
		for (i = 0; i < n; i++) {
			period_of(period, sizeof(period), k, list[i]->ctime);
			if (mark[i] == 'k')
				json_object_set_new(kept, period, json_true());
		}
		for (i = 0; i < n; i++) {
			period_of(period, sizeof(period), k, list[i]->ctime);
			if (mark[i] || json_object_get(kept, period))
				continue;
			if (!json_object_get(newly, period)) {
				if ((long long)json_object_size(newly) >= counts[k])
					break;
				json_object_set_new(newly, period, json_true());
				mark[i] = 'k';
			} else {
				mark[i] = 'r';
			}
		}
		json_decref(newly);
	}
	gone = pl_calloc(n + 1, sizeof(*gone));
	gone_node = pl_calloc(n + 1, sizeof(*gone_node));
	for (i = 0; i < n; i++)
		if (mark[i] != 'k') {
			gone_node[pruned] = list[i]->node;
			gone[pruned++] = pl_strdup(list[i]->volid);
		}
	for (i = 0; i < (size_t)pruned; i++) { /* list points into st->vols: collected first */
		pl_sim_task_log(t, "INFO: removing backup '%s'", gone[i]);
		pl_sim_volume_del(s, gone[i], gone_node[i]);
		free(gone[i]);
	}
	free(gone_node);
	pl_sim_task_log(t, "INFO: pruned %d backup(s)%s", pruned,
			pruned ? " not covered by keep-retention policy" : "");
	free(gone);
	free(mark);
	free(list);
	json_decref(kept);
	return pruned;
}

/* What real vzdump logs, in the order it logs it; the archive is written
 * under the storage's dump directory and keeps the guest's config (the sim
 * keeps it with the volume, as PVE keeps it inside the archive, for restore). */
static void
vzdump_done(struct pl_sim *s, struct pl_sim_task *t)
{
	json_t *ids = json_object_get(t->args, "vmids");
	struct pl_sim_storage *st = pl_sim_storage_find(s, pl_json_str_or(t->args, "storage", ""));
	size_t i;
	json_t *v;

	pl_sim_task_log(t, "INFO: starting new backup job: vzdump --storage %s --mode %s --compress zstd",
			st ? st->id : "?", pl_json_str_or(t->args, "mode", "snapshot"));
	json_array_foreach(ids, i, v) {
		struct pl_sim_guest *g = pl_sim_guest_find(s, (uint32_t)json_integer_value(v));
		struct pl_sim_volume *vol;
		struct pl_sim_usage u;
		struct tm tm;
		time_t now = time(NULL);
		char stamp[32], name[200], volid[300];

		if (!g || !st)
			continue;
		if (!strcmp(g->lock, "backup")) {
			g->lock[0] = 0;
			pl_sim_guest_touch(s, g);
		}
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y_%m_%d-%H_%M_%S", &tm);
		snprintf(name, sizeof(name), "vzdump-%s-%u-%s.%s", g->lxc ? "lxc" : "qemu", g->vmid,
			 stamp, g->lxc ? "tar.zst" : "vma.zst");
		snprintf(volid, sizeof(volid), "%s:backup/%s", st->id, name);
		pl_sim_task_log(t, "INFO: Starting Backup of VM %u (%s)", g->vmid, g->lxc ? "lxc" : "qemu");
		pl_sim_task_log(t, "INFO: status = %s", g->status == PL_SIM_STOPPED ? "stopped" : "running");
		pl_sim_task_log(t, "INFO: creating vzdump archive '%s/dump/%s'",
				st->path ? st->path : "/mnt/pve/backup", name);
		if (pl_sim_volume_find(s, volid, g->node, NULL)) { /* two in one second: PVE fails too */
			pl_sim_task_log(t, "ERROR: Backup of VM %u failed - archive '%s' already exists",
					g->vmid, name);
			pl_sim_task_fail(t, "job errors");
			continue;
		}
		pl_sim_guest_usage(s, g, now, &u);
		if (pl_sim_storage_used(st, g->node) + u.maxdisk / 10 + (1 << 20) > st->total) {
			pl_sim_task_log(t, "ERROR: Backup of VM %u failed - vma_queue_write: write error - "
					"No space left on device", g->vmid);
			pl_sim_task_fail(t, "job errors");
			continue;
		}
		vol = pl_sim_volume_add(st, volid, "backup", g->lxc ? "tar.zst" : "vma.zst",
					u.maxdisk / 10 + (1 << 20), g->vmid, g->node);
		vol->conf = json_pack("{s:s,s:o}", "type", g->lxc ? "lxc" : "qemu", "config",
				      json_deep_copy(g->conf)); /* as it is now, not as it becomes */
		s->dirty = true;
		/* VZDump.pm: the call's prune-backups, else the storage's; with
		 * remove (the default) the guest's older archives are pruned */
		if (!json_is_false(json_object_get(t->args, "remove")))
			vzdump_prune(s, t, st, g,
				     pl_json_str(t->args, "prune-backups") ?
					     pl_json_str(t->args, "prune-backups") :
					     pl_json_str(st->cfg, "prune-backups"));
		pl_sim_task_log(t, "INFO: Finished Backup of VM %u (00:00:01)", g->vmid);
	}
	pl_sim_task_log(t, "INFO: Backup job finished %s", t->exitstatus ? "with errors" : "successfully");
}

/* Whether a "100,101 102;103" list holds item. */
static bool
list_has(const char *list, const char *item)
{
	size_t n = strlen(item);

	for (const char *p = list; p && *p;) {
		size_t l = strcspn(p, ",; ");

		if (l == n && !strncmp(p, item, n))
			return true;
		p += l;
		p += strspn(p, ",; ");
	}
	return false;
}

static void
h_vzdump(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	int n = pl_sim_req_node(r);
	const char *vmids = pl_sim_p(r, "vmid"), *storage = pl_sim_p(r, "storage");
	bool all = pl_sim_pbool(r, "all", false);
	struct pl_sim_storage *st;
	json_t *ids;
	struct pl_sim_task *t;

	if (n < 0)
		return;
	if (!storage)
		storage = "local";
	st = pl_sim_storage_find(s, storage);
	if (!st || !strstr(st->content, "backup")) {
		pl_sim_fail(r, 500, "storage '%s' does not support backups", storage);
		return;
	}
	ids = json_array();
	for (size_t i = 0; i < s->nguests; i++) {
		struct pl_sim_guest *g = s->guests[i];
		char buf[16];

		if (g->node != n)
			continue;
		snprintf(buf, sizeof(buf), "%u", g->vmid);
		if (!all && !list_has(vmids, buf))
			continue;
		if (g->lock[0]) {
			pl_sim_fail(r, 500, "%s is locked (%s)", g->lxc ? "CT" : "VM", g->lock);
			json_decref(ids);
			return;
		}
		json_array_append_new(ids, json_integer(g->vmid));
	}
	if (!all && json_array_size(ids) == 0) {
		pl_sim_fail(r, 500, "unable to find VM '%s' on node '%s'", vmids ? vmids : "",
			    s->nodes[n].name);
		json_decref(ids);
		return;
	}
	{
		size_t i;
		json_t *v;

		json_array_foreach(ids, i, v) {
			struct pl_sim_guest *g = pl_sim_guest_find(s, (uint32_t)json_integer_value(v));

			snprintf(g->lock, sizeof(g->lock), "backup");
			pl_sim_guest_touch(s, g);
		}
	}
	t = pl_sim_task_start(
		s, n, "vzdump", json_array_size(ids) == 1 ? vmids : "", r->user, 0, vzdump_done,
		json_pack("{s:o,s:s,s:s,s:s?,s:b}", "vmids", ids, "storage", st->id, "mode",
			  pl_sim_p(r, "mode") ? pl_sim_p(r, "mode") : "snapshot", "prune-backups",
			  pl_sim_p(r, "prune-backups"), "remove", pl_sim_pbool(r, "remove", true)));
	pl_sim_ok_task(r, t);
}

static void
h_vzdump_defaults(struct pl_sim_req *r)
{
	if (pl_sim_req_node(r) < 0)
		return;
	pl_sim_ok(r, json_pack("{s:s,s:s,s:s}", "storage", "local", "mode", "snapshot", "compress",
			       "zstd"));
}

/* --- network --- */

static json_t *
net_merged(struct pl_sim_node *nd)
{
	json_t *m = json_deep_copy(nd->ifaces);
	const char *k;
	json_t *v;

	json_object_foreach(nd->pending, k, v) {
		if (json_is_null(v)) {
			json_object_del(m, k);
		} else {
			json_t *c = json_deep_copy(v);

			if (json_object_get(nd->ifaces, k) &&
			    json_object_get(json_object_get(nd->ifaces, k), "active"))
				json_object_set_new(c, "active", json_integer(1));
			json_object_set_new(m, k, c);
		}
	}
	return m;
}

static void
iface_text(struct pl_buf *b, const char *name, json_t *o)
{
	const char *method = pl_json_str_or(o, "method", "manual");
	const char *k;
	json_t *v;

	if (pl_json_bool(o, "autostart", false))
		pl_buf_addf(b, "auto %s\n", name);
	pl_buf_addf(b, "iface %s inet %s\n", name, method);
	json_object_foreach(o, k, v) {
		static const char *const skip[] = { "iface", "type", "method", "active", "exists",
						    "families", "priority", "autostart", "method6",
						    "netmask" };
		bool sk = false;
		char *t;

		for (size_t i = 0; i < PL_ARRAY_LEN(skip); i++)
			sk |= !strcmp(skip[i], k);
		if (sk || !(t = pl_api_value_text(v)))
			continue;
		pl_buf_addf(b, "\t%s %s\n", !strcmp(k, "cidr") ? "address" : k, t);
		free(t);
	}
	pl_buf_addch(b, '\n');
}

static char *
net_file(json_t *ifaces)
{
	struct pl_buf b;
	const char **names;
	size_t n = json_object_size(ifaces), i = 0;
	const char *k;
	json_t *v;

	pl_buf_init(&b, 0);
	pl_buf_addstr(&b, "auto lo\niface lo inet loopback\n\n");
	names = pl_calloc(n ? n : 1, sizeof(*names));
	json_object_foreach(ifaces, k, v)
		names[i++] = k;
	for (size_t a = 0; a < n; a++)
		for (size_t c = a + 1; c < n; c++)
			if (strcmp(names[a], names[c]) > 0) {
				const char *t = names[a];

				names[a] = names[c];
				names[c] = t;
			}
	for (i = 0; i < n; i++) {
		json_t *o = json_object_get(ifaces, names[i]);

		if (json_is_object(o))
			iface_text(&b, names[i], o);
	}
	free(names);
	return pl_buf_detach(&b, NULL);
}

/* A unified-diff-like text of /etc/network/interfaces -> .new, as PVE sends
 * in "changes". */
static char *
net_changes(struct pl_sim_node *nd)
{
	json_t *m = net_merged(nd);
	char *old = net_file(nd->ifaces), *nw = net_file(m);
	struct pl_buf b;
	char *ol, *nl, *sv1 = NULL, *sv2 = NULL;
	char *oc = pl_strdup(old), *nc = pl_strdup(nw);

	pl_buf_init(&b, 0);
	pl_buf_addstr(&b, "--- /etc/network/interfaces\n+++ /etc/network/interfaces.new\n@@ @@\n");
	for (ol = strtok_r(oc, "\n", &sv1); ol; ol = strtok_r(NULL, "\n", &sv1)) {
		char pat[512];

		snprintf(pat, sizeof(pat), "\n%s\n", ol);
		pl_buf_addf(&b, "%c%s\n", strstr(nw, ol) ? ' ' : '-', ol);
	}
	for (nl = strtok_r(nc, "\n", &sv2); nl; nl = strtok_r(NULL, "\n", &sv2))
		if (!strstr(old, nl))
			pl_buf_addf(&b, "+%s\n", nl);
	free(oc);
	free(nc);
	free(old);
	free(nw);
	json_decref(m);
	return pl_buf_detach(&b, NULL);
}

static void
h_net_list(struct pl_sim_req *r)
{
	int n = pl_sim_req_node(r);
	const char *type = pl_sim_p(r, "type");
	struct pl_sim_node *nd;
	json_t *m, *a, *v;
	const char *k;

	if (n < 0)
		return;
	nd = &r->sim->nodes[n];
	m = net_merged(nd);
	a = json_array();
	json_object_foreach(m, k, v) {
		const char *t = pl_json_str_or(v, "type", "");

		if (type && strcmp(type, t) &&
		    !(!strcmp(type, "any_bridge") && (!strcmp(t, "bridge") || !strcmp(t, "OVSBridge"))))
			continue;
		json_array_append_new(a, pl_sim_iface_out(v));
	}
	json_decref(m);
	pl_sim_ok(r, a);
	if (json_object_size(nd->pending)) {
		char *c = net_changes(nd);

		r->top = json_pack("{s:s}", "changes", c);
		free(c);
	}
}

static const char *const net_keys_skip[] = { "node", "iface", "digest", "delete", NULL };

static json_t *
iface_from_params(struct pl_sim_req *r, const json_t *base)
{
	json_t *o = base ? json_deep_copy(base) : json_object();
	const char *k, *del = pl_sim_p(r, "delete");
	json_t *v;

	json_object_foreach(r->params, k, v) {
		bool skip = false;

		for (size_t i = 0; net_keys_skip[i]; i++)
			skip |= !strcmp(net_keys_skip[i], k);
		if (skip || !json_is_string(v))
			continue;
		if (!strcmp(k, "autostart") || !strcmp(k, "bridge_vlan_aware") || !strcmp(k, "mtu"))
			json_object_set_new(o, k, json_integer(strtoll(json_string_value(v), NULL, 10)));
		else
			json_object_set(o, k, v);
	}
	/* a cidr in the request sets address and netmask, also over the old
	 * ones (PVE's map_cidr_to_address_netmask) */
	if (json_object_get(o, "cidr") && (!json_object_get(o, "address") || pl_sim_p(r, "cidr"))) {
		const char *c = pl_json_str(o, "cidr");
		const char *sl = strchr(c, '/');

		json_object_set_new(o, "address", json_stringn(c, sl ? (size_t)(sl - c) : strlen(c)));
		if (sl)
			json_object_set_new(o, "netmask", json_string(sl + 1));
	}
	for (const char *p = del; p && *p;) {
		size_t l = strcspn(p, ",; ");
		char key[64];

		snprintf(key, sizeof(key), "%.*s", (int)l, p);
		json_object_del(o, key);
		if (!strcmp(key, "cidr")) { /* PVE drops what it was made of */
			json_object_del(o, "address");
			json_object_del(o, "netmask");
		}
		p += l;
		p += strspn(p, ",; ");
	}
	json_object_set_new(o, "iface", json_string(pl_sim_p(r, "iface")));
	if (base) {
		/* PVE's update sets the method from this request's address: an
		 * update without one makes the interface manual, and the address
		 * and gateway are not written to the file any more */
		bool addr = pl_sim_p(r, "cidr") || pl_sim_p(r, "address");

		json_object_set_new(o, "method", json_string(addr ? "static" : "manual"));
		if (!addr)
			for (const char *const *q = (const char *const[]){ "address", "netmask", "cidr", "gateway", NULL }; *q; q++)
				json_object_del(o, *q);
	} else if (!json_object_get(o, "method")) {
		json_object_set_new(o, "method", json_string(json_object_get(o, "address") ? "static" : "manual"));
	}
	json_object_set_new(o, "families", json_pack("[s]", "inet"));
	json_object_set_new(o, "priority", json_integer(10));
	return o;
}

static void
h_net_create(struct pl_sim_req *r)
{
	int n = pl_sim_req_node(r);
	const char *iface = pl_sim_p(r, "iface");
	struct pl_sim_node *nd;
	json_t *m;

	if (n < 0)
		return;
	nd = &r->sim->nodes[n];
	m = net_merged(nd);
	if (json_object_get(m, iface)) {
		json_decref(m);
		pl_sim_param_fail(r, "iface", "interface already exists");
		return;
	}
	json_decref(m);
	json_object_set_new(nd->pending, iface, iface_from_params(r, NULL));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static json_t *
iface_get(struct pl_sim_req *r, struct pl_sim_node **ndp)
{
	int n = pl_sim_req_node(r);
	const char *iface = pl_sim_p(r, "iface");
	json_t *m, *o;

	if (n < 0)
		return NULL;
	*ndp = &r->sim->nodes[n];
	m = net_merged(*ndp);
	o = json_incref(json_object_get(m, iface));
	json_decref(m);
	if (!o)
		pl_sim_fail(r, 500, "interface does not exist");
	return o;
}

static void
h_net_get(struct pl_sim_req *r)
{
	struct pl_sim_node *nd;
	json_t *o = iface_get(r, &nd);

	if (o) {
		pl_sim_ok(r, pl_sim_iface_out(o));
		json_decref(o);
	}
}

static void
h_net_update(struct pl_sim_req *r)
{
	struct pl_sim_node *nd;
	json_t *o = iface_get(r, &nd);

	if (!o)
		return;
	json_object_set_new(nd->pending, pl_sim_p(r, "iface"), iface_from_params(r, o));
	json_decref(o);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_net_delete(struct pl_sim_req *r)
{
	struct pl_sim_node *nd;
	json_t *o = iface_get(r, &nd);

	if (!o)
		return;
	json_decref(o);
	if (json_object_get(nd->ifaces, pl_sim_p(r, "iface")))
		json_object_set_new(nd->pending, pl_sim_p(r, "iface"), json_null());
	else
		json_object_del(nd->pending, pl_sim_p(r, "iface"));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_net_apply(struct pl_sim_req *r)
{
	int n = pl_sim_req_node(r);
	struct pl_sim_node *nd;
	struct pl_sim_task *t;
	const char *k;
	json_t *v;

	if (n < 0)
		return;
	nd = &r->sim->nodes[n];
	json_object_foreach(nd->pending, k, v) {
		if (json_is_null(v)) {
			json_object_del(nd->ifaces, k);
		} else {
			json_t *c = json_deep_copy(v);

			json_object_set_new(c, "active", json_integer(1));
			json_object_set_new(nd->ifaces, k, c);
		}
	}
	json_object_clear(nd->pending);
	r->sim->dirty = true;
	t = pl_sim_task_start(r->sim, n, "srvreload", "networking", r->user, 0, NULL, NULL);
	pl_sim_task_log(t, "ifreload -a");
	pl_sim_ok_task(r, t);
}

static void
h_net_revert(struct pl_sim_req *r)
{
	int n = pl_sim_req_node(r);

	if (n < 0)
		return;
	json_object_clear(r->sim->nodes[n].pending);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

#define S "/nodes/{node}/storage"

const struct pl_sim_route_def pl_sim_storage_routes[] = {
	{ PL_SIM_GET, S, h_storage_list, false, 0 },
	{ PL_SIM_GET, S "/{storage}", h_storage_index, false, 0 },
	{ PL_SIM_GET, S "/{storage}/status", h_storage_status, false, 0 },
	{ PL_SIM_GET, S "/{storage}/content", h_content, false, 0 },
	{ PL_SIM_POST, S "/{storage}/content", h_content_alloc, false, 0 },
	{ PL_SIM_GET, S "/{storage}/content/{volume}", h_volume, false, 0 },
	{ PL_SIM_PUT, S "/{storage}/content/{volume}", h_volume, false, 0 },
	{ PL_SIM_DELETE, S "/{storage}/content/{volume}", h_volume, false, 0 },
	{ PL_SIM_GET, "/nodes/{node}/aplinfo", h_aplinfo, false, 0 },
	{ PL_SIM_POST, "/nodes/{node}/aplinfo", h_aplinfo_download, false, 0 },
	{ PL_SIM_POST, "/nodes/{node}/vzdump", h_vzdump, false, 0 },
	{ PL_SIM_GET, "/nodes/{node}/vzdump/defaults", h_vzdump_defaults, false, 0 },
	{ PL_SIM_GET, "/nodes/{node}/network", h_net_list, false, 0 },
	{ PL_SIM_POST, "/nodes/{node}/network", h_net_create, false, 0 },
	{ PL_SIM_PUT, "/nodes/{node}/network", h_net_apply, false, 0 },
	{ PL_SIM_DELETE, "/nodes/{node}/network", h_net_revert, false, 0 },
	{ PL_SIM_GET, "/nodes/{node}/network/{iface}", h_net_get, false, 0 },
	{ PL_SIM_PUT, "/nodes/{node}/network/{iface}", h_net_update, false, 0 },
	{ PL_SIM_DELETE, "/nodes/{node}/network/{iface}", h_net_delete, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
