/*
 * Planning (see plan.h): match declared guests to live ones (by vmid, else by
 * name), diff them key by key with the model's Proxmox semantics, allocate
 * vmids from category ranges, pick nodes, and list what this config's project
 * manages but the config no longer has. Guests of other projects, legacy
 * pvelab guests and unmanaged ones are listed and never touched.
 */
#include "core/common.h"
#include "plan/plan.h"
#include "config/config.h"
#include "core/access.h"
#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "core/snapshot.h"
#include "model/guest.h"
#include "plan/templates.h"
#include "plan/day2.h"
#include "plan/apply.h"
#include "plan/firewall.h"
#include "plan/wayback.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/evp.h>

struct planner {
	const struct pl_config *cfg;
	const char *project; /* the config's: it deletes only guests tagged with it */
	const json_t *snap;
	const struct pl_plan_opts *o;
	json_t *changes, *blocked;
	json_t *used_vmids;  /* "vmid" -> true: live, declared or allocated */
	json_t *matched;     /* "vmid" -> true: live guests claimed by the config */
	json_t *by_vmid;     /* "vmid" -> live guest (borrowed from snap) */
	json_t *by_name;     /* name -> [live guests] */
	json_t *planned;     /* node -> bytes of memory this plan puts there */
	json_t *templates;   /* "template|node|volid" -> its change (borrowed from tmpl_changes) */
	json_t *tmpl_changes; /* template downloads, listed after the bridges */
};

static const char *
live_type(const json_t *live)
{
	return pl_json_str_or(live, "type", "qemu");
}

static void
mark_vmid(json_t *set, long long vmid)
{
	char k[32];

	snprintf(k, sizeof(k), "%lld", vmid);
	json_object_set_new(set, k, json_true());
}

static bool
vmid_used(const json_t *set, long long vmid)
{
	char k[32];

	snprintf(k, sizeof(k), "%lld", vmid);
	return json_object_get(set, k) != NULL;
}

/* Is a guest in the selected profile (members are categories or names)? */
static bool
in_profile(const struct planner *p, const struct pl_model_guest *m)
{
	const json_t *members, *v;
	size_t i;
	char ptr[256];

	if (p->o->profile == NULL)
		return true;
	snprintf(ptr, sizeof(ptr), "/profiles/%s", p->o->profile);
	members = pl_config_get(p->cfg, ptr);
	json_array_foreach(members, i, v) {
		const char *s = json_string_value(v);

		if (s && (!strcmp(s, m->name) || (m->category && !strcmp(s, m->category))))
			return true;
	}
	return false;
}

static const json_t *
find_live(const struct planner *p, const struct pl_model_guest *m, bool *by_name)
{
	const json_t *g, *best = NULL, *same = json_object_get(p->by_name, m->name);
	int best_rank = 4;
	char key[32];
	size_t i;

	*by_name = false;
	if (m->vmid) {
		snprintf(key, sizeof(key), "%lld", m->vmid);
		return json_object_get(p->by_vmid, key);
	}
	/* by name: this project's guest first, then the same type; a guest of
	 * the other type is a replacement */
	json_array_foreach(same, i, g) {
		int rank = (pl_model_owned_by(g, p->project) ? 0 : 2) +
			   (strcmp(live_type(g), m->lxc ? "lxc" : "qemu") ? 1 : 0);

		if (pl_json_int(g, "template", 0) == 1 || vmid_used(p->matched, pl_json_int(g, "vmid", 0)))
			continue;
		if (rank < best_rank) {
			best_rank = rank;
			best = g;
		}
	}
	*by_name = best != NULL;
	return best;
}

/* Why a declared guest cannot take a live one another owner manages (caller
 * frees), or NULL when it is this project's or unmanaged. */
static char *
owned_elsewhere(const struct planner *p, const struct pl_model_guest *m, const json_t *live)
{
	char *owner = NULL, *why = NULL;

	switch (pl_model_owner(live, &owner)) {
	case PL_OWNER_NONE:
		break;
	case PL_OWNER_LEGACY:
		why = pl_asprintf("%lld '%s' was made by pvelab before projects (pvelab adopt %s claims "
				  "it for project '%s')", pl_json_int(live, "vmid", 0),
				  pl_json_str_or(live, "name", ""), m->name, p->project);
		break;
	case PL_OWNER_PROJECT:
		if (strcmp(owner, p->project))
			why = pl_asprintf("%lld '%s' is managed by project '%s' (pvelab adopt %s --from "
					  "%s moves it here)", pl_json_int(live, "vmid", 0),
					  pl_json_str_or(live, "name", ""), owner, m->name, owner);
		break;
	}
	free(owner);
	return why;
}

static long long
allocate_vmid(struct planner *p, const struct pl_model_guest *m, char **errmsg)
{
	const json_t *cat = NULL;
	long long lo = 100, hi = 999999999;

	if (m->category) {
		char ptr[256];

		snprintf(ptr, sizeof(ptr), "/conventions/categories/%s/vmids", m->category);
		cat = pl_config_get(p->cfg, ptr);
		if (json_is_array(cat)) {
			lo = json_integer_value(json_array_get(cat, 0));
			hi = json_integer_value(json_array_get(cat, 1));
		}
	}
	for (long long id = lo; id <= hi; id++) {
		if (!vmid_used(p->used_vmids, id)) {
			mark_vmid(p->used_vmids, id);
			return id;
		}
	}
	pl_seterr(errmsg, PL_ECONFLICT, "no free vmid for '%s' in %lld-%lld%s%s%s", m->name, lo,
		  hi, m->category ? " (category '" : "", m->category ? m->category : "",
		  m->category ? "')" : "");
	return 0;
}

/* A create whose vmid apply asks Proxmox for: "vmid" null, and the range
 * of the guest's category when it has one (apply probes it). */
static void
vmid_at_apply(const struct planner *p, const struct pl_model_guest *m, json_t *c)
{
	const json_t *cat = NULL;

	json_object_set_new(c, "vmid", json_null());
	json_object_set_new(c, "vmid_at_apply", json_true());
	if (m->category) {
		char ptr[256];

		snprintf(ptr, sizeof(ptr), "/conventions/categories/%s/vmids", m->category);
		cat = pl_config_get(p->cfg, ptr);
		if (json_is_array(cat))
			json_object_set(c, "vmid_range", (json_t *)cat);
	}
}

/* The online node with the most memory free, counting what this plan
 * already puts on each node, so that new guests spread out. */
static const char *
pick_node(const struct planner *p)
{
	const json_t *n, *best = NULL;
	long long best_free = LLONG_MIN;
	size_t i;

	json_array_foreach(json_object_get(p->snap, PL_SNAP_NODES), i, n) {
		long long free_mem = pl_json_int(n, "maxmem", 0) - pl_json_int(n, "mem", 0) -
				     pl_json_int(p->planned, pl_json_str_or(n, "node", ""), 0);

		if (strcmp(pl_json_str_or(n, "status", "online"), "online") != 0)
			continue;
		if (free_mem > best_free) {
			best_free = free_mem;
			best = n;
		}
	}
	return best ? pl_json_str(best, "node") : NULL;
}

static bool
node_known(const struct planner *p, const char *node)
{
	const json_t *n;
	size_t i;

	json_array_foreach(json_object_get(p->snap, PL_SNAP_NODES), i, n)
		if (!strcmp(pl_json_str_or(n, "node", ""), node))
			return true;
	return false;
}

static void
block(struct planner *p, const char *guest, const char *key, const char *reason)
{
	json_array_append_new(p->blocked, json_pack("{s:s,s:s?,s:s}", "guest", guest, "key", key,
						    "reason", reason));
}

/* Resolve clone.template to a template of the cluster, as apply will: the
 * change carries the source; false (and blocked) when there is none. */
static bool
resolve_clone(struct planner *p, const struct pl_model_guest *m, json_t *c)
{
	const json_t *clone = json_object_get(m->create, "clone"), *g;
	const char *tmpl;
	long long want_id = 0;
	size_t i;

	if (m->lxc || !json_is_object(clone))
		return true;
	tmpl = pl_json_str_or(clone, "template", "");
	pl_str_to_ll(tmpl, 1, 999999999, &want_id);
	json_array_foreach(json_object_get(p->snap, PL_SNAP_GUESTS), i, g) {
		if (pl_json_int(g, "template", 0) != 1)
			continue;
		if ((want_id && pl_json_int(g, "vmid", 0) == want_id) ||
		    !strcmp(pl_json_str_or(g, "name", ""), tmpl)) {
			json_object_set_new(c, "clone_from",
					    json_pack("{s:I,s:s,s:s}", "vmid",
						      (json_int_t)pl_json_int(g, "vmid", 0), "node",
						      pl_json_str_or(g, "node", ""), "name",
						      pl_json_str_or(g, "name", "")));
			return true;
		}
	}
	char *why = pl_asprintf("no template '%s' in the cluster (convert a VM with 'qm template', "
				"or fix clone.template)", tmpl);

	block(p, m->name, "clone.template", why);
	free(why);
	return false;
}

/* Config keys that hold volumes (what a migration has to take along). */
static bool
volume_key(bool lxc, const char *k)
{
	size_t n = strcspn(k, "0123456789");

	if (k[n] == 0 && strcmp(k, "rootfs"))
		return false;
	if (!strncmp(k, "unused", n) && n == 6)
		return true;
	if (lxc)
		return !strcmp(k, "rootfs") || (n == 2 && !strncmp(k, "mp", 2));
	return (n == 4 && (!strncmp(k, "scsi", 4) || !strncmp(k, "sata", 4))) ||
	       (n == 3 && !strncmp(k, "ide", 3)) || (n == 6 && !strncmp(k, "virtio", 6)) ||
	       !strcmp(k, "efidisk0") || !strcmp(k, "tpmstate0");
}

/* Why the guest cannot move to node (a storage it uses is not there), or
 * NULL. PVE's migration refuses the same (storage_check_enabled on the
 * target). Unknown when the snapshot lists no storages. */
static char *
migrate_blocker(const struct planner *p, const json_t *live, const char *node)
{
	const json_t *storages = json_object_get(p->snap, PL_SNAP_STORAGES), *st;
	bool lxc = !strcmp(live_type(live), "lxc");
	const char *k;
	json_t *v;
	size_t i;

	if (json_array_size(storages) == 0)
		return NULL;
	json_object_foreach(json_object_get(live, PL_SNAP_CONFIG), k, v) {
		const char *val = json_string_value(v);
		size_t vl, sl;
		bool there = false;

		if (val == NULL || !volume_key(lxc, k))
			continue;
		vl = strcspn(val, ",");
		sl = strcspn(val, ":");
		/* bind mounts, passthrough devices, "none", an empty drive */
		if (sl >= vl || val[0] == '/' || !strncmp(val, "volume=", 7))
			continue;
		json_array_foreach(storages, i, st)
			if (!strcmp(pl_json_str_or(st, "node", ""), node) &&
			    strlen(pl_json_str_or(st, "storage", "")) == sl &&
			    !strncmp(pl_json_str_or(st, "storage", ""), val, sl))
				there = true;
		if (!there)
			return pl_asprintf("disk %s is on '%.*s', which node '%s' does not have", k,
					   (int)sl, val, node);
	}
	return NULL;
}

static json_t *
change_new(const char *action, const struct pl_model_guest *m, long long vmid, const char *node)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:s?}", "action", action, "guest", m->name, "type",
			 m->lxc ? "lxc" : "qemu", "vmid", (json_int_t)vmid, "node", node);
}

/* Is storage shared (one copy for every node)? */
static bool
storage_shared(const json_t *snap, const char *storage)
{
	const json_t *s;
	size_t i;

	json_array_foreach(json_object_get(snap, PL_SNAP_STORAGES), i, s)
		if (!strcmp(pl_json_str_or(s, "storage", ""), storage))
			return pl_json_int(s, "shared", 0) != 0;
	return false;
}

/* A template node needs: nothing when it is there (or the snapshot cannot
 * tell), else a download change (one per node and volid, one per volid on a
 * shared storage), or blocked when the appliance index does not have it.
 * Returns the change's key for a create to depend on, or NULL. */
static const char *
plan_template(struct planner *p, const char *volid, const char *node, const char *who)
{
	char storage[128], *key;
	const char *slash = strrchr(volid, '/');
	bool known = false;
	json_t *c;

	if (node == NULL || !strchr(volid, ':') || pl_templates_present(p->snap, node, volid, &known) || !known)
		return NULL;
	snprintf(storage, sizeof(storage), "%.*s", (int)strcspn(volid, ":"), volid);
	key = pl_asprintf("template|%s|%s", storage_shared(p->snap, storage) ? storage : node, volid);
	if ((c = json_object_get(p->templates, key)) == NULL) {
		if (json_object_get(p->snap, "aplinfo") && !pl_templates_downloadable(p->snap, node, volid)) {
			char *why = pl_asprintf("template '%s' is not on node '%s' and its appliance index "
						"does not have it (pveam available lists what does)", volid, node);

			json_array_append_new(p->blocked, json_pack("{s:s,s:s}", "guest", who, "reason", why));
			free(why);
			free(key);
			return NULL;
		}
		c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "action", "template", "guest", volid, "node",
			      node, "volid", volid, "storage", storage, "template", slash ? slash + 1 : volid,
			      "class", "create");
		json_object_set_new(c, "key", json_string(key));
		json_array_append_new(p->tmpl_changes, c);
		json_object_set(p->templates, key, c);
	}
	free(key);
	return pl_json_str(c, "key");
}

/* A container create (or replace) waits for its template's download. */
static void
template_for(struct planner *p, json_t *change, const struct pl_model_guest *m, const char *node)
{
	const char *volid = pl_json_str(m->create, "ostemplate");
	const char *key = m->lxc && volid ? plan_template(p, volid, node, m->name) : NULL;

	if (key)
		json_object_set_new(change, "depends_on", json_pack("[s]", key));
}

/* `templates:` entries: on their node, else on every online node with the
 * storage, whether a guest uses them or not. */
static void
plan_declared_templates(struct planner *p)
{
	const json_t *t, *n;
	size_t i, j;

	json_array_foreach(pl_config_get(p->cfg, "/templates"), i, t) {
		const char *storage = pl_json_str_or(t, "storage", "local");
		char *volid;

		if (pl_json_str(t, "template") == NULL)
			continue;
		volid = pl_asprintf("%s:vztmpl/%s", storage, pl_json_str(t, "template"));
		json_array_foreach(json_object_get(p->snap, PL_SNAP_NODES), j, n) {
			const char *node = pl_json_str(n, "node");

			if (node && (pl_json_str(t, "node") ? !strcmp(pl_json_str(t, "node"), node)
							    : !strcmp(pl_json_str_or(n, "status", "online"), "online")))
				plan_template(p, volid, node, volid);
		}
		free(volid);
	}
}

static void
plan_create(struct planner *p, const struct pl_model_guest *m)
{
	char *err = NULL;
	/* pvelab picks a free vmid from what it sees: with a partial view it
	 * could pick one an unseen guest holds, so apply asks Proxmox
	 * (/cluster/nextid, open to every user) just before the create */
	bool at_apply =
		!m->vmid && !pl_access_sees_all_vms(json_object_get(p->snap, PL_SNAP_PERMS));
	long long vmid = m->vmid ? m->vmid : at_apply ? 0 : allocate_vmid(p, m, &err);
	const char *node = m->node ? m->node : pick_node(p);
	long long mem = pl_json_int(m->config, "memory", 512) << 20;
	json_t *c;

	if (vmid == 0 && !at_apply) {
		json_array_append_new(p->blocked, json_pack("{s:s,s:s}", "guest", m->name, "reason", err));
		free(err);
		return;
	}
	if (node == NULL) {
		json_array_append_new(p->blocked, json_pack("{s:s,s:s}", "guest", m->name, "reason",
							    "no online node to create it on"));
		return;
	}
	/* a guest there would be out of view: pvelab cannot tell it is free;
	 * in a pool the token audits, PVE's own create refuses a taken vmid */
	if (!at_apply && !pl_access_sees_vm(json_object_get(p->snap, PL_SNAP_PERMS), vmid,
					    pl_json_str(m->create, "pool"))) {
		char *why =
			pl_asprintf("the token cannot see vmid %lld (no VM.Audit on /vms/%lld): "
				    "a guest it cannot see may hold it (grant VM.Audit there, e.g. "
				    "pveum acl modify /vms/%lld --tokens TOKENID --roles "
				    "PVEAuditor, or choose a vmid the token sees)",
				    vmid, vmid, vmid);

		json_array_append_new(p->blocked,
				      json_pack("{s:s,s:I,s:s}", "guest", m->name, "vmid",
						(json_int_t)vmid, "reason", why));
		free(why);
		return;
	}
	if (!node_known(p, node)) {
		char *why = pl_asprintf("no node '%s' in the cluster", node);

		json_array_append_new(p->blocked, json_pack("{s:s,s:s}", "guest", m->name, "reason", why));
		free(why);
		return;
	}
	if (m->lxc && pl_json_str(m->create, "ostemplate") == NULL) {
		char *why = m->vmid ? pl_asprintf("no container %lld to manage, and a new container needs "
						  "'ostemplate'", m->vmid)
				    : pl_strdup("a new container needs 'ostemplate'");

		json_array_append_new(p->blocked, json_pack("{s:s,s:s}", "guest", m->name, "reason", why));
		free(why);
		return;
	}
	c = change_new("create", m, vmid, node);
	if (at_apply)
		vmid_at_apply(p, m, c);
	if (!resolve_clone(p, m, c)) {
		json_decref(c);
		return;
	}
	json_object_set_new(p->planned, node, json_integer(pl_json_int(p->planned, node, 0) + mem));
	json_object_set_new(c, "class", json_string("create"));
	json_object_set(c, "config", m->config);
	json_object_set(c, "create", m->create);
	json_object_set_new(c, "start", json_boolean(m->running));
	template_for(p, c, m, node);
	json_array_append_new(p->changes, c);
}

/* A desired disk value ("local-lvm:8,opts") whose storage and/or size
 * pvelab filled in for a create, with the live disk's ("vault:subvol-1-disk-0,
 * size=4G"): what the YAML does not set is not compared. */
static char *
undefault(const char *want, const char *have, const char *parts)
{
	size_t wl = strcspn(want, ","), hl = strcspn(have, ",");
	const char *wc = memchr(want, ':', wl), *hc = memchr(have, ':', hl);
	const char *hs = strstr(have, ",size=");
	char *storage, *size, *out;
	unsigned long long bytes = 0;

	if (wc == NULL || hc == NULL || memchr(have, '=', hl))
		return pl_strdup(want);
	storage = strstr(parts, "storage") ? pl_strndup(have, (size_t)(hc - have))
					   : pl_strndup(want, (size_t)(wc - want));
	if (strstr(parts, "size") && hs) {
		char *sz = pl_strndup(hs + 6, strcspn(hs + 6, ","));

		pl_size_parse(sz, &bytes);
		free(sz);
	}
	if (bytes)
		size = pl_asprintf("%g", (double)bytes / (1024.0 * 1024.0 * 1024.0));
	else
		size = pl_strndup(wc + 1, wl - (size_t)(wc - want) - 1);
	out = pl_asprintf("%s:%s%s", storage, size, want + wl);
	free(storage);
	free(size);
	return out;
}

/* A replace removes the live guest (its own type, vmid, node: "from_type",
 * "old_vmid", "old_node"). Without a vmid in the YAML the new guest gets one
 * of its own and is created before the old one is destroyed; either way a
 * create known to fail now is blocked, so nothing is destroyed for it. */
static void
plan_replace(struct planner *p, const struct pl_model_guest *m, const json_t *live, json_t *c)
{
	const json_t *storages = json_object_get(p->snap, PL_SNAP_STORAGES);
	const char *node = m->node ? m->node : pl_json_str(live, "node");
	char *err = NULL, *why;

	json_object_set_new(c, "from_type", json_string(live_type(live)));
	json_object_set_new(c, "old_vmid", json_integer(pl_json_int(live, "vmid", 0)));
	json_object_set_new(c, "old_node", json_string(pl_json_str_or(live, "node", "")));
	if (node)
		json_object_set_new(c, "node", json_string(node));
	if (m->vmid == 0) {
		long long vmid = allocate_vmid(p, m, &err);

		if (vmid)
			json_object_set_new(c, "vmid", json_integer(vmid));
		free(err); /* no free vmid: replaced in place, proven first like a fixed one */
	}
	why = pl_apply_create_problem(c, json_array_size(storages) ? storages : NULL, node ? node : "");
	if (why) {
		char *reason = pl_asprintf("cannot be replaced: %s", why);

		json_array_append_new(p->blocked, json_pack("{s:s,s:s}", "guest", m->name, "reason", reason));
		free(reason);
		free(why);
	}
}

/* Diff one declared guest against its live self. */
static void
plan_update(struct planner *p, const struct pl_model_guest *m, const json_t *live)
{
	const json_t *cfg = json_object_get(live, PL_SNAP_CONFIG);
	const char *hotplug = pl_json_str(cfg, "hotplug");
	bool running = !strcmp(pl_json_str_or(live, "status", ""), "running");
	long long vmid = pl_json_int(live, "vmid", 0);
	const char *node = pl_json_str(live, "node");
	json_t *diffs = json_array(), *set = json_object(), *del = json_array();
	json_t *resize = json_object(), *c;
	enum pl_change_class worst = PL_CHANGE_NONE;
	bool pending = false, replace = false, retype, moves;
	char *nomove = NULL;
	const char *k;
	json_t *v;

	/* another type: nothing compares key by key, the guest is made anew */
	retype = strcmp(live_type(live), m->lxc ? "lxc" : "qemu") != 0;
	if (retype) {
		replace = true;
		worst = PL_CHANGE_REPLACE;
		json_array_append_new(diffs, json_pack("{s:s,s:s,s:s,s:s}", "key", "type", "from",
						       live_type(live), "to", m->lxc ? "lxc" : "qemu",
						       "class", "replace"));
	}
	json_object_foreach(retype ? NULL : m->config, k, v) {
		const char *dflt = pl_json_str(m->defaults, k);
		char *want = pl_model_value_text(v);
		char *have = pl_model_value_text(json_object_get(cfg, k));
		struct pl_model_cmp r;

		if (dflt && !strcmp(dflt, "all")) {
			free(want); /* what the YAML leaves out is not managed */
			free(have);
			continue;
		}
		if (dflt && have) { /* a disk to add takes the defaults */
			char *w = undefault(want, have, dflt);

			free(want);
			want = w;
		}

		pl_model_compare(m->lxc, k, want, have, running, hotplug, &r);
		if (!r.equal && r.blocked) {
			/* impossible in place and by replacing too (a shrink): blocked,
			 * neither an update nor a replace */
			block(p, m->name, k, r.note);
		} else if (!r.equal) {
			json_array_append_new(diffs, json_pack("{s:s,s:s?,s:s?,s:s,s:s?,s:b}", "key", k,
							       /* what apply sends: kept MACs shown */
							       "from", have, "to", r.value ? r.value : want, "class",
							       pl_change_class_name(r.cls), "note",
							       r.note, "blocked", false));
			if (r.cls > worst)
				worst = r.cls;
			if (r.cls == PL_CHANGE_REPLACE)
				replace = true;
			if (r.cls == PL_CHANGE_REBOOT || r.cls == PL_CHANGE_RESTART)
				pending = true;
			if (r.resize)
				json_object_set_new(resize, k, json_string(r.size));
			if (r.value)
				json_object_set_new(set, k, json_string(r.value));
		}
		pl_model_cmp_release(&r);
		free(want);
		free(have);
	}
	/* collection members (net2, mp1...) the config no longer has */
	json_object_foreach(retype ? NULL : (json_t *)cfg, k, v) {
		if (json_object_get(m->config, k) || !pl_model_key_collection(m->lxc, k))
			continue;
		struct pl_model_cmp r;
		char *have = pl_model_value_text(v);

		pl_model_compare(m->lxc, k, NULL, have, running, hotplug, &r);
		json_array_append_new(diffs, json_pack("{s:s,s:s?,s:n,s:s,s:s}", "key", k, "from",
						       have, "to", "class",
						       pl_change_class_name(r.cls), "note", "removed"));
		json_array_append_new(del, json_string(k));
		if (r.cls > worst)
			worst = r.cls;
		if (r.cls == PL_CHANGE_REBOOT || r.cls == PL_CHANGE_RESTART)
			pending = true;
		pl_model_cmp_release(&r);
		free(have);
	}
	moves = m->node && node && strcmp(m->node, node) != 0 && !replace;
	if (moves && !node_known(p, m->node)) {
		nomove = pl_asprintf("no node '%s' in the cluster", m->node);
	} else if (moves) {
		nomove = migrate_blocker(p, live, m->node);
	}
	if (nomove) {
		block(p, m->name, "node", nomove);
		free(nomove);
		moves = false;
	} else if (moves) {
		json_array_append_new(diffs, json_pack("{s:s,s:s,s:s,s:s,s:s}", "key", "node", "from",
						       node, "to", m->node, "class", "restart",
						       "note", "migrate"));
		if (worst < PL_CHANGE_RESTART)
			worst = PL_CHANGE_RESTART;
	}
	if (replace) {
		/* the guest is made anew: say why, not how each key would have
		 * reached the old one; the change's config says what it becomes */
		size_t i = 0;

		while (i < json_array_size(diffs))
			if (strcmp(pl_json_str_or(json_array_get(diffs, i), "class", ""), "replace"))
				json_array_remove(diffs, i);
			else
				i++;
		json_object_clear(set);
		json_array_clear(del);
		json_object_clear(resize);
		pending = false;
	}
	if (json_array_size(diffs)) {
		c = change_new(replace ? "replace" : "update", m, vmid, node);
		json_object_set_new(c, "class", json_string(pl_change_class_name(worst)));
		json_object_set_new(c, "diffs", diffs);
		json_object_set_new(c, "set", set);
		json_object_set_new(c, "delete", del);
		json_object_set_new(c, "resize", resize);
		json_object_set_new(c, "running", json_boolean(running));
		if (pl_json_str(cfg, "digest"))
			json_object_set_new(c, "digest", json_string(pl_json_str(cfg, "digest")));
		json_object_set_new(c, "reboot", json_boolean(pending && running));
		if (moves)
			json_object_set_new(c, "migrate_to", json_string(m->node));
		if (!replace) /* before it changes, as the guest is now */
			json_object_set_new(
				c, "way_back",
				pl_plan_way_back(live, node,
						 json_object_get(p->snap, PL_SNAP_STORAGES),
						 p->o->no_snapshot));
		if (replace) {
			json_object_set(c, "config", m->config);
			json_object_set(c, "create", m->create);
			json_object_set_new(c, "start", json_boolean(m->running));
			plan_replace(p, m, live, c);
			template_for(p, c, m, pl_json_str(c, "node"));
			if (!p->o->allow_replace)
				json_array_append_new(p->blocked, json_pack("{s:s,s:s}", "guest", m->name,
									    "reason", "needs replacing (use --allow-replace)"));
			if (!resolve_clone(p, m, c)) {
				json_decref(c);
				c = NULL;
			}
		}
		if (c)
			json_array_append_new(p->changes, c);
	} else {
		json_decref(diffs);
		json_decref(set);
		json_decref(del);
		json_decref(resize);
	}
	if (!replace) {
		if (m->running && !running)
			json_array_append_new(p->changes, json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s}", "action", "start",
								    "guest", m->name, "type", live_type(live),
								    "vmid", (json_int_t)vmid, "node", node, "class", "live"));
		else if (!m->running && running)
			json_array_append_new(p->changes, json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s}", "action", "stop",
								    "guest", m->name, "type", live_type(live),
								    "vmid", (json_int_t)vmid, "node", node, "class", "live"));
	}
}

/* A bridge value as text for comparing: trailing newlines (PVE keeps the
 * comment's) and absent/empty/0 values alike. */
static char *
bridge_text(const json_t *v)
{
	char *t = pl_model_value_text(v);
	size_t n;

	if (t == NULL)
		return pl_strdup("");
	n = strlen(t);
	while (n && (t[n - 1] == '\n' || t[n - 1] == ' '))
		t[--n] = '\0';
	return t;
}

/* The bridge keys pvelab manages: YAML key -> the network API's key. */
static const char *const bridge_keys[][2] = {
	{ "cidr", "cidr" }, { "gateway", "gateway" }, { "ports", "bridge_ports" },
	{ "vlan_aware", "bridge_vlan_aware" }, { "comment", "comments" }, { "autostart", "autostart" },
};

/* Diff a declared bridge against the live one. Keys the YAML does not set
 * keep their live values: the update sends the whole bridge (PUT replaces the
 * address and method), so want gets them. */
static json_t *
bridge_diffs(const json_t *b, const json_t *lb, json_t *want)
{
	json_t *diffs = json_array();

	for (size_t i = 0; i < PL_ARRAY_LEN(bridge_keys); i++) {
		const char *yk = bridge_keys[i][0], *lk = bridge_keys[i][1];
		const json_t *wv = json_object_get(b, yk), *lv = json_object_get(lb, lk);
		bool boolean = !strcmp(yk, "vlan_aware") || !strcmp(yk, "autostart");
		char *w, *h;

		if (wv == NULL) {
			if (boolean && lv) {
				json_object_set_new(want, yk, json_boolean(pl_json_int(lb, lk, 0) != 0 || json_is_true(lv)));
			} else if (json_is_string(lv)) {
				char *t = bridge_text(lv);

				if (*t)
					json_object_set_new(want, yk, json_string(t));
				free(t);
			}
			continue;
		}
		json_object_set(want, yk, (json_t *)wv);
		if (boolean) {
			bool wb = json_is_true(wv), hb = pl_json_int(lb, lk, 0) != 0 || json_is_true(lv);

			if (wb != hb)
				json_array_append_new(diffs, json_pack("{s:s,s:s,s:s,s:s}", "key", yk, "from",
								       hb ? "1" : "0", "to", wb ? "1" : "0",
								       "class", "live"));
			continue;
		}
		w = bridge_text(wv);
		h = bridge_text(lv);
		if (strcmp(w, h) != 0)
			json_array_append_new(diffs, json_pack("{s:s,s:s?,s:s?,s:s}", "key", yk, "from",
							       *h ? h : NULL, "to", *w ? w : NULL, "class", "live"));
		free(w);
		free(h);
	}
	return diffs;
}

static void
plan_bridges(struct planner *p)
{
	const json_t *b, *n;
	size_t i, j;

	json_array_foreach(pl_config_get(p->cfg, "/bridges"), i, b) {
		const char *name = pl_json_str(b, "name");
		json_t *mine = json_deep_copy(b);
		char ptr[64];

		/* autostart has a default: only a written one is compared */
		snprintf(ptr, sizeof(ptr), "/bridges/%zu/autostart", i);
		if (!pl_config_written(p->cfg, ptr))
			json_object_del(mine, "autostart");
		json_array_foreach(json_object_get(p->snap, PL_SNAP_NODES), j, n) {
			const char *node = pl_json_str(n, "node");
			const json_t *lb, *found = NULL;
			json_t *want, *diffs;
			size_t k;

			if (node == NULL || (pl_json_str(b, "node") && strcmp(pl_json_str(b, "node"), node)))
				continue;
			json_array_foreach(json_object_get(p->snap, PL_SNAP_BRIDGES), k, lb)
				if (!strcmp(pl_json_str_or(lb, "node", ""), node) &&
				    !strcmp(pl_json_str_or(lb, "iface", ""), name))
					found = lb;
			if (found == NULL) {
				json_array_append_new(p->changes,
						      json_pack("{s:s,s:s,s:s,s:s,s:O}", "action", "bridge",
								"guest", name, "node", node, "class", "create",
								"bridge", b));
				continue;
			}
			want = json_pack("{s:s}", "name", name);
			diffs = bridge_diffs(mine, found, want);
			if (json_array_size(diffs))
				json_array_append_new(p->changes,
						      json_pack("{s:s,s:s,s:s,s:s,s:b,s:o,s:o}", "action", "bridge",
								"guest", name, "node", node, "class", "update",
								"update", 1, "bridge", want, "diffs", diffs));
			else {
				json_decref(want);
				json_decref(diffs);
			}
		}
		json_decref(mine);
	}
}

json_t *
pl_plan_snapshot_sigs(const json_t *snap)
{
	json_t *sigs = json_object();
	const json_t *g, *b;
	size_t i;

	json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, g) {
		const json_t *cfg = json_object_get(g, PL_SNAP_CONFIG);
		char sha[65], key[32];
		json_t *sig;

		if (pl_json_str(cfg, "digest") == NULL)
			pl_json_sha256(cfg ? cfg : json_null(), sha);
		sig = json_pack("[s?,s?,s?,s]", pl_json_str(g, "node"), pl_json_str(g, "type"),
				pl_json_str(g, "status"),
				pl_json_str(cfg, "digest") ? pl_json_str(cfg, "digest") : sha);
		pl_json_sha256(sig, sha);
		json_decref(sig);
		snprintf(key, sizeof(key), "%lld", pl_json_int(g, "vmid", 0));
		json_object_set_new(sigs, key, json_string(sha));
	}
	json_array_foreach(json_object_get(snap, PL_SNAP_BRIDGES), i, b) {
		char *key = pl_asprintf("bridge %s/%s", pl_json_str_or(b, "node", ""),
					pl_json_str_or(b, "iface", ""));
		json_t *managed = json_object();
		char sha[65];

		/* what a bridge update compares: a saved plan is stale when it changed */
		for (size_t k = 0; k < PL_ARRAY_LEN(bridge_keys); k++)
			if (json_object_get(b, bridge_keys[k][1]))
				json_object_set(managed, bridge_keys[k][1], json_object_get(b, bridge_keys[k][1]));
		pl_json_sha256(managed, sha);
		json_decref(managed);
		json_object_set_new(sigs, key, json_string(sha));
		free(key);
	}
	pl_day2_sigs(snap, sigs);
	return sigs;
}

void
pl_plan_snapshot_sha(const json_t *snap, char out[65])
{
	json_t *sigs = pl_plan_snapshot_sigs(snap);

	pl_json_sha256(sigs, out);
	json_decref(sigs);
}

char *
pl_plan_stale(const json_t *saved, const json_t *fresh)
{
	const json_t *a = json_object_get(saved, "signatures"), *b = json_object_get(fresh, "signatures");
	const char *k;
	json_t *v;

	if (!strcmp(pl_json_str_or(saved, "snapshot", ""), pl_json_str_or(fresh, "snapshot", "")))
		return NULL;
	json_object_foreach((json_t *)a, k, v) {
		const char *other = pl_json_str(b, k);

		if (other == NULL)
			return pl_asprintf("%s%s is gone", isdigit((unsigned char)*k) ? "guest " : "", k);
		if (strcmp(other, json_string_value(v)))
			return pl_asprintf("%s%s changed", isdigit((unsigned char)*k) ? "guest " : "", k);
	}
	json_object_foreach((json_t *)b, k, v)
		if (!json_object_get(a, k))
			return pl_asprintf("%s%s is new", isdigit((unsigned char)*k) ? "guest " : "", k);
	return pl_strdup("the cluster changed");
}

void
pl_plan_apply_opts(const struct pl_plan_opts *o, struct pl_apply_opts *ao)
{
	memset(ao, 0, sizeof(*ao));
	ao->reboot = o->reboot;
	ao->allow_replace = o->allow_replace;
	ao->snapshot = !o->no_snapshot;
	ao->no_backup = o->no_backup;
	ao->allow_delete = o->allow_delete;
	ao->max_deletes = -1;
}

int
pl_plan_build(const struct pl_config *cfg, const json_t *snap, const struct pl_plan_opts *o,
	      json_t **plan, char **errmsg)
{
	struct planner p = { .cfg = cfg, .snap = snap, .o = o, .project = pl_config_project(cfg) };
	const json_t *g;
	json_t *live;
	json_t *unmanaged = json_array(), *pending = json_array(), *elsewhere = json_array(),
	       *summary, *only = NULL;
	struct pl_model_guest *models;
	size_t i, nbridges, n = json_array_size(pl_config_guests(cfg)), reboots = 0;
	struct pl_apply_opts ao;
	char sha[65];
	int r = 0;

	pl_plan_apply_opts(o, &ao);

	p.changes = json_array();
	p.blocked = json_array();
	p.used_vmids = json_object();
	p.matched = json_object();
	models = pl_calloc(n ? n : 1, sizeof(*models));
	p.by_vmid = json_object();
	p.planned = json_object();
	p.by_name = json_object();
	p.templates = json_object();
	p.tmpl_changes = json_array();
	json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, live) {
		const char *name = pl_json_str_or(live, "name", "");
		json_t *list = json_object_get(p.by_name, name);
		char key[32];

		snprintf(key, sizeof(key), "%lld", pl_json_int(live, "vmid", 0));
		json_object_set_new(p.used_vmids, key, json_true());
		json_object_set(p.by_vmid, key, live);
		if (list == NULL)
			json_object_set_new(p.by_name, name, list = json_array());
		json_array_append(list, live);
	}
	json_array_foreach(pl_config_guests(cfg), i, g) {
		if ((r = pl_model_guest_from_config(g, &models[i], errmsg)) != 0)
			goto out;
		/* the guest carries its project's tag besides pvelab's */
		char *tags = pl_model_tags_owned(pl_json_str(models[i].config, "tags"), p.project);

		json_object_set_new(models[i].config, "tags", json_string(tags));
		free(tags);
		if (models[i].vmid)
			mark_vmid(p.used_vmids, models[i].vmid);
	}
	plan_bridges(&p);
	nbridges = json_array_size(p.changes);
	for (i = 0; i < n; i++) {
		bool by_name;

		if (!in_profile(&p, &models[i]))
			continue;
		live = (json_t *)find_live(&p, &models[i], &by_name);
		char *owner_why = live ? owned_elsewhere(&p, &models[i], live) : NULL;

		if (owner_why) { /* never taken from its owner: adopt is explicit */
			json_array_append_new(p.blocked, json_pack("{s:s,s:I,s:s}", "guest", models[i].name,
								   "vmid", (json_int_t)pl_json_int(live, "vmid", 0),
								   "reason", owner_why));
			free(owner_why);
			mark_vmid(p.matched, pl_json_int(live, "vmid", 0));
			continue;
		}
		if (live && !by_name && !pl_model_is_managed(live) &&
		    strcmp(pl_json_str_or(live, "name", ""), models[i].name) != 0) {
			char *why = pl_asprintf("vmid %lld is taken by '%s', which pvelab does not manage "
						"(choose another vmid, or pvelab import it)",
						models[i].vmid, pl_json_str_or(live, "name", ""));

			json_array_append_new(p.blocked, json_pack("{s:s,s:I,s:s}", "guest", models[i].name,
								   "vmid", (json_int_t)models[i].vmid, "reason", why));
			free(why);
			mark_vmid(p.matched, models[i].vmid);
			continue;
		}
		if (live && by_name && !pl_model_is_managed(live)) {
			json_array_append_new(p.blocked, json_pack("{s:s,s:I,s:s}", "guest", models[i].name,
								   "vmid", (json_int_t)pl_json_int(live, "vmid", 0),
								   "reason", "a guest with this name exists and pvelab does not manage it (pvelab import it, or set its vmid)"));
			mark_vmid(p.matched, pl_json_int(live, "vmid", 0));
			continue;
		}
		if (live) {
			mark_vmid(p.matched, pl_json_int(live, "vmid", 0));
			plan_update(&p, &models[i], live);
		} else {
			plan_create(&p, &models[i]);
		}
	}
	plan_declared_templates(&p);
	/* template downloads right after the bridges: apply runs them first */
	for (i = json_array_size(p.tmpl_changes); i > 0; i--)
		json_array_insert(p.changes, nbridges, json_array_get(p.tmpl_changes, i - 1));
	/* changes an earlier apply left pending until a reboot */
	json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, live) {
		char key[32];
		const json_t *keys;

		snprintf(key, sizeof(key), "%lld", pl_json_int(live, "vmid", 0));
		keys = json_object_get(json_object_get(snap, "pending"), key);
		if (!json_array_size(keys) || !vmid_used(p.matched, pl_json_int(live, "vmid", 0)) ||
		    strcmp(pl_json_str_or(live, "status", ""), "running"))
			continue;
		/* a guest this plan also changes is rebooted (or replaced) once, by
		 * that change: one line, one reboot */
		json_t *same = NULL, *c;
		size_t k;

		json_array_foreach(p.changes, k, c)
			if (pl_json_int(c, "vmid", 0) == pl_json_int(live, "vmid", 0) &&
			    (!strcmp(pl_json_str_or(c, "action", ""), "update") ||
			     !strcmp(pl_json_str_or(c, "action", ""), "replace")))
				same = c;
		if (same && !strcmp(pl_json_str(same, "action"), "update"))
			json_object_set_new(same, "reboot", json_true());
		if (same && o->reboot)
			continue;
		if (o->reboot)
			json_array_append_new(p.changes, json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s,s:O}", "action", "reboot",
								   "guest", pl_json_str_or(live, "name", ""), "type",
								   live_type(live), "vmid", (json_int_t)pl_json_int(live, "vmid", 0),
								   "node", pl_json_str(live, "node"), "class", "reboot", "keys", keys));
		else
			json_array_append_new(pending, json_pack("{s:s,s:I,s:O}", "guest", pl_json_str_or(live, "name", ""),
								 "vmid", (json_int_t)pl_json_int(live, "vmid", 0), "keys", keys));
	}
	/* what is live but not declared */
	json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, live) {
		long long vmid = pl_json_int(live, "vmid", 0);

		char *owner = NULL;
		enum pl_model_owner who;

		if (vmid_used(p.matched, vmid))
			continue;
		who = pl_model_owner(live, &owner);
		if (who == PL_OWNER_PROJECT && !strcmp(owner, p.project)) {
			if (o->profile == NULL)
				json_array_append_new(p.changes,
						      json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s,s:b}", "action", "delete", "guest",
								pl_json_str_or(live, "name", ""), "type", live_type(live),
								"vmid", (json_int_t)vmid, "node", pl_json_str(live, "node"),
								"class", "delete", "running",
								!strcmp(pl_json_str_or(live, "status", ""), "running")));
		} else if (who != PL_OWNER_NONE) {
			json_array_append_new(elsewhere, json_pack("{s:I,s:s,s:s,s:s?,s:s?}", "vmid", (json_int_t)vmid,
								   "name", pl_json_str_or(live, "name", ""), "type",
								   live_type(live), "node", pl_json_str(live, "node"),
								   "project", owner));
		}
		free(owner);
		if (who == PL_OWNER_NONE)
			json_array_append_new(unmanaged, json_pack("{s:I,s:s,s:s,s:s?}", "vmid", (json_int_t)vmid,
								   "name", pl_json_str_or(live, "name", ""), "type",
								   live_type(live), "node", pl_json_str(live, "node")));
	}
	/* the firewall as declared (docs/firewall.md), then storages, backup
	 * jobs and pools (day2.c); a profile's: what its guests need of them */
	if (o->profile) {
		only = json_object();
		for (i = 0; i < n; i++)
			if (in_profile(&p, &models[i]))
				json_object_set_new(only, models[i].name, json_true());
	}
	pl_fw_plan(cfg, snap, only, p.changes, p.blocked);
	pl_day2_plan(cfg, snap, p.project, p.changes, only, p.changes, p.blocked);
	json_decref(only);
	summary = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "create", 0, "update", 0, "replace", 0,
			    "delete", 0, "start", 0, "stop", 0, "bridge", 0, "blocked", 0);
	json_array_foreach(p.changes, i, g) {
		const char *a = pl_json_str(g, "action");
		json_t *steps = pl_apply_steps(g, &ao);
		const json_t *st;
		size_t k;

		/* "reboot" counts the reboots apply does, whatever the action */
		if (strcmp(a, "reboot"))
			json_object_set_new(summary, a, json_integer(pl_json_int(summary, a, 0) + 1));
		json_array_foreach(steps, k, st)
			if (!strcmp(json_string_value(st), "reboot"))
				reboots++;
		json_object_set_new((json_t *)g, "steps", steps);
	}
	json_object_set_new(summary, "reboot", json_integer(reboots));
	json_object_set_new(summary, "blocked", json_integer((json_int_t)json_array_size(p.blocked)));
	/* the signatures once: the snapshot hash is the hash of them */
	json_t *sigs = pl_plan_snapshot_sigs(snap);

	pl_json_sha256(sigs, sha);

	*plan = json_pack("{s:i,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:{s:b,s:b,s:b,s:b,s:b,s:s?}}", "version", 1,
			  "config", pl_config_path(cfg), "project", p.project, "snapshot", sha, "signatures", sigs,
			  "changes", p.changes, "unmanaged", unmanaged, "elsewhere", elsewhere, "pending", pending,
			  "blocked", p.blocked, "summary", summary, "options", "allow_replace", o->allow_replace,
			  "allow_delete", o->allow_delete, "reboot", o->reboot, "snapshot", !o->no_snapshot,
			  "no_backup", o->no_backup, "profile", o->profile);
	p.changes = p.blocked = unmanaged = pending = elsewhere = NULL;
out:
	for (i = 0; i < n; i++)
		pl_model_guest_release(&models[i]);
	free(models);
	json_decref(p.changes);
	json_decref(p.blocked);
	json_decref(unmanaged);
	json_decref(elsewhere);
	json_decref(pending);
	json_decref(p.used_vmids);
	json_decref(p.matched);
	json_decref(p.by_vmid);
	json_decref(p.by_name);
	json_decref(p.planned);
	json_decref(p.templates);
	json_decref(p.tmpl_changes);
	return r;
}

bool
pl_plan_has_changes(const json_t *plan)
{
	const json_t *st;
	size_t i;

	/* blocked differences are differences too: the cluster does not match */
	if (json_array_size(json_object_get(plan, "changes")) > 0 ||
	    json_array_size(json_object_get(plan, "blocked")) > 0)
		return true;
	/* and so is a stack to deploy (cmd/planning.c adds them) */
	json_array_foreach(json_object_get(plan, "stacks"), i, st)
		if (strcmp(pl_json_str_or(st, "action", ""), "unchanged"))
			return true;
	return false;
}
