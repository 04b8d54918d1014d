/*
 * Shared plumbing and the human rendering of plans (see planning.h).
 */
#include "core/common.h"
#include "cmd/planning.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "plan/apply.h"
#include "plan/plan.h"
#include "plan/runs.h"
#include "plan/firewall.h"
#include "plan/templates.h"
#include "plan/day2.h"
#include "plan/stacks.h"
#include "model/guest.h"
#include "state/state.h"
#include "pve/inventory.h"

#include "pve/client.h"

#include <event2/event.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>


int
pl_planning_open(struct pl_session *s, struct pl_ctx *ctx, char **errmsg)
{
	struct stat st;
	int r;

	/* the config is what is missing most often: say so before anything else */
	memset(s, 0, sizeof(*s));
	if (stat(ctx->config_path, &st) != 0)
		return pl_seterr(errmsg, PL_ENOENT,
				 "no config file '%s' (write one, or pass -c FILE; pvelab import "
				 "writes guests from existing ones)",
				 ctx->config_path);
	if ((r = pl_session_open(s, ctx, PL_NEED_API | PL_NEED_STATE, errmsg)) != 0 || s->cfg == NULL)
		return r;
	return pl_planning_check(s->cfg, errmsg);
}

int
pl_planning_check(const struct pl_config *cfg, char **errmsg)
{
	struct pl_diags d;
	int r = 0;

	/* what validate calls an error (an unset password_env, a raw config key
	 * the schema rejects...) would fail or be dropped half-way through apply */
	pl_diags_init(&d);
	pl_config_check(cfg, &d);
	for (size_t i = 0; i < d.n && r == 0; i++) {
		if (d.items[i].level == PL_DIAG_ERROR) {
			char *line = pl_diag_line(&d.items[i]);

			r = pl_seterr(errmsg, PL_EINVAL, "%s (pvelab validate shows all problems)", line);
			free(line);
		}
	}
	pl_diags_release(&d);
	return r;
}

/* Whether two changes are the same, their steps aside (no_backup, which
 * changes them, comes only from the command line) and their way back (a
 * plan saved before way backs has none; any is safe: a snapshot Proxmox
 * refuses becomes a backup, and none comes only from the options). */
static bool
same_change(const json_t *a, const json_t *b)
{
	json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
	bool eq;

	json_object_del(x, "steps");
	json_object_del(y, "steps");
	json_object_del(x, "way_back");
	json_object_del(y, "way_back");
	eq = json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return eq;
}

/* A stack to deploy in a that b does not deploy the same way (the same
 * action on the same content: its hash covers every file), or NULL. */
static const json_t *
stack_missing(const json_t *a, const json_t *b)
{
	const json_t *x, *y;
	size_t i, j;

	json_array_foreach(a, i, x) {
		bool found = false;

		if (!strcmp(pl_json_str_or(x, "action", ""), "unchanged"))
			continue;
		json_array_foreach(b, j, y)
			found |= !strcmp(pl_json_str_or(x, "guest", ""),
					 pl_json_str_or(y, "guest", "")) &&
				 !strcmp(pl_json_str_or(x, "name", ""),
					 pl_json_str_or(y, "name", "")) &&
				 !strcmp(pl_json_str_or(x, "action", ""),
					 pl_json_str_or(y, "action", "")) &&
				 !strcmp(pl_json_str_or(x, "sha256", ""),
					 pl_json_str_or(y, "sha256", ""));
		if (!found)
			return x;
	}
	return NULL;
}

static char *
stacks_differ(const json_t *saved, const json_t *fresh)
{
	const json_t *x;

	if ((x = stack_missing(saved, fresh)) != NULL)
		return pl_asprintf("%ss stack %s in '%s', which a plan now does not (or not "
				   "with the same files)",
				   pl_json_str_or(x, "action", "?"), pl_json_str_or(x, "name", "?"),
				   pl_json_str_or(x, "guest", "?"));
	if ((x = stack_missing(fresh, saved)) != NULL)
		return pl_asprintf("leaves out the %s of stack %s in '%s'",
				   pl_json_str_or(x, "action", "?"), pl_json_str_or(x, "name", "?"),
				   pl_json_str_or(x, "guest", "?"));
	return NULL;
}

char *
pl_planning_differs(const json_t *saved, const json_t *fresh)
{
	const json_t *sc = json_object_get(saved, "changes"),
		     *fc = json_object_get(fresh, "changes");
	const json_t *c, *f;
	size_t i, j;

	for (int pass = 0; pass < 2; pass++) {
		const json_t *from = pass ? fc : sc, *in = pass ? sc : fc;

		json_array_foreach(from, i, c) {
			bool found = false;

			json_array_foreach(in, j, f)
				if (same_change(c, f))
					found = true;
			if (found)
				continue;
			if (!json_is_object(c))
				return pl_strdup("has a change that is not an object");
			if (pass)
				return pl_asprintf("leaves out the %s of %lld '%s'",
						   pl_json_str_or(c, "action", "change"),
						   pl_json_int(c, "vmid", 0),
						   pl_json_str_or(c, "guest", "?"));
			return pl_asprintf(
				"%ss %lld '%s'%s", pl_json_str_or(c, "action", "change"),
				pl_json_int(c, "vmid", 0), pl_json_str_or(c, "guest", "?"),
				json_array_size(sc) == json_array_size(fc) ? " differently" : "");
		}
	}
	if (json_array_size(sc) != json_array_size(fc))
		return pl_asprintf("has %zu changes where there are %zu", json_array_size(sc),
				   json_array_size(fc));
	return stacks_differ(json_object_get(saved, "stacks"), json_object_get(fresh, "stacks"));
}

char *
pl_planning_deletes_refused(const struct pl_config *cfg, const json_t *plan,
			    struct pl_apply_opts *ao, const char *flag)
{
	const json_t *max = pl_config_get(cfg, "/safety/max_deletes"), *c;
	struct pl_buf names;
	char *why = NULL;
	long long n = 0;
	size_t i;

	ao->max_deletes = json_is_integer(max) ? json_integer_value(max) : -1;
	pl_buf_init(&names, 0);
	json_array_foreach(json_object_get(plan, "changes"), i, c) {
		if (strcmp(pl_json_str_or(c, "action", ""), "delete"))
			continue;
		pl_buf_addf(&names, "%s%s", names.len ? ", " : "", pl_json_str_or(c, "guest", "?"));
		n++;
	}
	if (n && !ao->allow_delete)
		why = pl_asprintf(
			"refusing to delete %lld guest%s (%s) without %s; nothing was done", n,
			n == 1 ? "" : "s", names.data, flag);
	else if (n && ao->max_deletes >= 0 && n > ao->max_deletes)
		why = pl_asprintf("refusing to delete %lld guest%s (%s): safety.max_deletes in %s "
				  "allows %lld; nothing was done",
				  n, n == 1 ? "" : "s", names.data, pl_config_path(cfg),
				  ao->max_deletes);
	pl_buf_release(&names);
	return why;
}

/* The guests whose config a plan needs: those the config names (by vmid or
 * name) and those pvelab manages. The rest of a big cluster is listed, not
 * read: the list alone names every template (vmid, node, name, "template":
 * 1), which is all the planner needs to resolve clone sources. */
struct wanted {
	json_t *vmids, *names;
	bool all; /* a storage to remove: every guest's volumes are looked at */
};

static bool
wanted_guest(const json_t *res, void *arg)
{
	const struct wanted *w = arg;
	char key[32];

	snprintf(key, sizeof(key), "%lld", pl_json_int(res, "vmid", 0));
	return w->all || json_object_get(w->vmids, key) ||
	       json_object_get(w->names, pl_json_str_or(res, "name", "")) ||
	       pl_model_is_managed(res);
}

/* The refresh: the inventory, then the pending keys and the template lists
 * (all at once), each step a callback on the client's loop. */
struct pl_planning_refresh {
	struct pl_session *s;
	struct wanted w;
	struct pl_pve_inv *inv;
	struct pl_templates_fetch *tf;
	struct pl_fw_fetch *fw;
	json_t *snap, *pending;
	int asked;      /* pending-key requests with this as their argument */
	bool tpl_done, fw_done, cancelled;
	int err;
	char *errmsg;
	pl_planning_cb cb;
	void *arg;
};

/* One guest's pending keys. */
struct pending_req {
	struct pl_planning_refresh *p;
	char key[32];
	long long vmid;
};

static void
refresh_free(struct pl_planning_refresh *p)
{
	json_decref(p->w.vmids);
	json_decref(p->w.names);
	json_decref(p->snap);
	json_decref(p->pending);
	free(p->errmsg);
	free(p);
}

/* Both halves in (the pending keys and the template lists): the end. */
static void
refresh_maybe_end(struct pl_planning_refresh *p)
{
	if (p->asked > 0 || !p->tpl_done || !p->fw_done)
		return;
	if (p->cancelled) {
		refresh_free(p);
		return;
	}
	if (p->err == 0)
		json_object_set(p->snap, "pending", p->pending);
	p->cb(p->err, p->err ? NULL : p->snap, p->errmsg, p->arg);
	refresh_free(p);
}

static void
on_pending(const struct pl_pve_result *res, void *arg)
{
	struct pending_req *q = arg;
	struct pl_planning_refresh *p = q->p;
	const json_t *g;
	json_t *keys;
	size_t k;

	p->asked--;
	if (p->cancelled) {
	} else if (res->err) {
		/* without them the plan would miss a reboot an earlier apply owes */
		if (p->err == 0) {
			p->err = res->err;
			p->errmsg = pl_asprintf("cannot read the changes guest %lld has pending: %s",
						q->vmid, res->errmsg ? res->errmsg : pl_strerror(res->err));
		}
	} else {
		keys = json_array();
		json_array_foreach(res->data, k, g)
			if (json_object_get(g, "pending") || json_object_get(g, "delete"))
				json_array_append_new(keys, json_string(pl_json_str_or(g, "key", "?")));
		if (json_array_size(keys))
			json_object_set_new(p->pending, q->key, keys);
		else
			json_decref(keys);
	}
	free(q);
	refresh_maybe_end(p);
}

/* Guests an earlier apply left with changes pending until a reboot: ask
 * Proxmox which of them still have pending keys (a handful of calls, not one
 * per guest, all at once) for snap["pending"]. */
static int
ask_pending(struct pl_planning_refresh *p, char **errmsg)
{
	json_t *runs = NULL, *seen = json_object(), *live_by = json_object();
	const json_t *run, *c, *g;
	size_t i, j;
	int r;

	if ((r = pl_runs_list(p->s->state, "apply", 50, &runs, errmsg)) != 0)
		goto out;
	json_array_foreach(json_object_get(p->snap, PL_SNAP_GUESTS), i, g) {
		char key[32];

		snprintf(key, sizeof(key), "%lld", pl_json_int(g, "vmid", 0));
		json_object_set(live_by, key, (json_t *)g);
	}
	json_array_foreach(runs, i, run) {
		json_array_foreach(json_object_get(json_object_get(run, "result"), "changes"), j, c) {
			struct pending_req *q;
			const json_t *live;
			char key[32], *path;

			if (!json_is_true(json_object_get(c, "pending_reboot")))
				continue;
			snprintf(key, sizeof(key), "%lld", pl_json_int(c, "vmid", 0));
			if (json_object_get(seen, key))
				continue;
			json_object_set_new(seen, key, json_true());
			live = json_object_get(live_by, key);
			if (live == NULL || strcmp(pl_json_str_or(live, "status", ""), "running"))
				continue;
			q = pl_calloc(1, sizeof(*q));
			q->p = p;
			q->vmid = pl_json_int(live, "vmid", 0);
			snprintf(q->key, sizeof(q->key), "%s", key);
			path = pl_asprintf("/nodes/%s/%s/%lld/pending", pl_json_str_or(live, "node", ""),
					   pl_json_str_or(live, "type", "qemu"), q->vmid);
			p->asked++;
			pl_pve_request(p->s->pve, "GET", path, NULL, on_pending, q);
			free(path);
		}
	}
out:
	json_decref(runs);
	json_decref(seen);
	json_decref(live_by);
	return r;
}

static void
on_templates(json_t *snap, void *arg)
{
	struct pl_planning_refresh *p = arg;

	(void)snap;
	p->tf = NULL;
	p->tpl_done = true;
	refresh_maybe_end(p);
}

static void
on_firewall(int err, const char *errmsg, void *arg)
{
	struct pl_planning_refresh *p = arg;

	p->fw = NULL;
	p->fw_done = true;
	if (err && p->err == 0) {
		p->err = err;
		p->errmsg = pl_strdup(errmsg);
	}
	refresh_maybe_end(p);
}

static void
on_inventory(int err, json_t *snap, size_t unread, const char *errmsg, void *arg)
{
	struct pl_planning_refresh *p = arg;
	char *msg = NULL;
	int r;

	(void)unread;
	p->inv = NULL;
	if (err) {
		p->cb(err, NULL, errmsg, p->arg);
		refresh_free(p);
		return;
	}
	p->snap = json_incref(snap);
	if ((r = ask_pending(p, &msg)) != 0) {
		p->err = r;
		p->errmsg = msg;
	}
	/* which templates are on the nodes: the plan lists the downloads */
	p->fw = pl_fw_fetch_start(p->s->pve, p->s->cfg, false, NULL, p->snap, on_firewall, p);
	p->tf = pl_templates_fetch_start(p->s->pve, p->s->cfg, p->snap, true, on_templates, p);
}

struct pl_planning_refresh *
pl_planning_refresh_start(struct pl_session *s, pl_planning_cb cb, void *arg)
{
	struct pl_planning_refresh *p = pl_calloc(1, sizeof(*p));
	struct pl_pve_inventory_opts o = { .filter = wanted_guest };
	const json_t *g;
	size_t i;

	p->s = s;
	p->cb = cb;
	p->arg = arg;
	p->pending = json_object();
	p->w.vmids = json_object();
	p->w.names = json_object();
	json_array_foreach(pl_config_guests(s->cfg), i, g) {
		char key[32];

		snprintf(key, sizeof(key), "%lld", pl_json_int(g, "vmid", 0));
		json_object_set_new(p->w.vmids, key, json_true());
		json_object_set_new(p->w.names, pl_json_str_or(g, "name", ""), json_true());
	}
	p->w.all = pl_day2_needs_configs(s->cfg);
	o.farg = &p->w;
	p->inv = pl_pve_inventory_start(s->pve, &o, on_inventory, p);
	return p;
}

void
pl_planning_refresh_cancel(struct pl_planning_refresh *p)
{
	if (p == NULL || p->cancelled)
		return;
	p->cancelled = true;
	if (p->inv) { /* nothing else started yet */
		pl_pve_inventory_cancel(p->inv);
		refresh_free(p);
		return;
	}
	if (p->tf) {
		pl_templates_fetch_cancel(p->tf);
		p->tf = NULL;
		p->tpl_done = true;
	}
	if (p->fw) {
		pl_fw_fetch_cancel(p->fw);
		p->fw = NULL;
		p->fw_done = true;
	}
	if (p->asked == 0)
		refresh_free(p);
}

/* The plan itself: the refresh, what the token may see, then the planner. */
struct pl_planning_plan {
	struct pl_session *s;
	struct pl_plan_opts o;
	char *profile;
	struct pl_planning_refresh *refresh;
	bool asking, cancelled; /* GET /access/permissions in flight */
	json_t *snap;
	pl_planning_plan_cb cb;
	void *arg;
};

static void
plan_free(struct pl_planning_plan *pp)
{
	json_decref(pp->snap);
	free(pp->profile);
	free(pp);
}

/* The config's profile, or why not. */
static int
check_profile(const struct pl_session *s, const char *profile, char **errmsg)
{
	const json_t *all = pl_config_get(s->cfg, "/profiles");
	struct pl_buf names;
	const char *k;
	json_t *v;
	int r;

	if (profile == NULL || json_object_get(all, profile))
		return 0;
	pl_buf_init(&names, 4096);
	json_object_foreach((json_t *)all, k, v)
		pl_buf_addf(&names, "%s%s", names.len ? ", " : "", k);
	r = pl_seterr(errmsg, PL_EINVAL, "no profile '%s' in %s (%s%s)", profile,
		      pl_config_path(s->cfg), names.len ? "its profiles: " : "it has no profiles:",
		      names.len ? names.data : " add a profiles: section");
	pl_buf_release(&names);
	return r;
}

/* The guest a stack goes into: the cluster's by its name, else the one the
 * plan creates; 0 when neither (the guest is not there yet). */
static long long
stack_vmid(const json_t *snap, const json_t *plan, const char *guest)
{
	const json_t *g;
	size_t i;

	json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, g)
		if (!json_is_true(json_object_get(g, "template")) &&
		    pl_json_int(g, "template", 0) == 0 &&
		    !strcmp(pl_json_str_or(g, "name", ""), guest))
			return pl_json_int(g, "vmid", 0);
	json_array_foreach(json_object_get(plan, "changes"), i, g)
		if (!strcmp(pl_json_str_or(g, "guest", ""), guest) && pl_json_int(g, "vmid", 0) > 0)
			return pl_json_int(g, "vmid", 0);
	return 0;
}

/* plan["stacks"]: the config's stacks compared with their last deploys
 * (plan/stacks.h, without any file's content), and how many change in
 * plan["summary"]["stacks"]. What apply deploys after its steps. */
static int
plan_stacks(struct pl_session *s, const json_t *snap, json_t *plan, char **errmsg)
{
	json_t *rendered = NULL, *rec = NULL, *st, *cmp;
	size_t i, n = 0;
	int r;

	if ((r = pl_stacks_render(s->cfg, NULL, NULL, &rendered, errmsg)) != 0)
		return r;
	if (json_array_size(rendered) == 0) {
		json_decref(rendered);
		return 0;
	}
	if ((r = pl_state_stacks(s->state, &rec, errmsg)) != 0) {
		json_decref(rendered);
		return r;
	}
	json_array_foreach(rendered, i, st) {
		long long vmid = stack_vmid(snap, plan, pl_json_str_or(st, "guest", ""));

		json_object_set_new(st, "vmid", vmid > 0 ? json_integer(vmid) : json_null());
	}
	cmp = pl_stacks_compare(rendered, rec);
	json_array_foreach(cmp, i, st)
		n += strcmp(pl_json_str_or(st, "action", ""), "unchanged") != 0;
	json_object_set_new(plan, "stacks", cmp);
	if (json_is_object(json_object_get(plan, "summary")))
		json_object_set_new(json_object_get(plan, "summary"), "stacks",
				    json_integer((json_int_t)n));
	json_decref(rendered);
	json_decref(rec);
	return 0;
}

static void
plan_end(struct pl_planning_plan *pp)
{
	json_t *plan = NULL;
	char *err = NULL;
	int r;

	if ((r = check_profile(pp->s, pp->o.profile, &err)) == 0)
		r = pl_plan_build(pp->s->cfg, pp->snap, &pp->o, &plan, &err);
	if (r == 0 && !pp->o.no_stacks && (r = plan_stacks(pp->s, pp->snap, plan, &err)) != 0) {
		json_decref(plan);
		plan = NULL;
	}
	pp->cb(r, r ? NULL : pp->snap, plan, r ? (err ? err : pl_strerror(r)) : NULL, pp->arg);
	json_decref(plan);
	free(err);
	plan_free(pp);
}

static void
on_permissions(const struct pl_pve_result *res, void *arg)
{
	struct pl_planning_plan *pp = arg;

	pp->asking = false;
	if (pp->cancelled) {
		plan_free(pp);
		return;
	}
	/* what the token sees: plan creates no guest on a vmid out of its view
	 * (a token that may not read its permissions plans without) */
	if (res->err == 0 && res->data)
		json_object_set(pp->snap, PL_SNAP_PERMS, res->data);
	plan_end(pp);
}

static void
on_refreshed(int err, json_t *snap, const char *errmsg, void *arg)
{
	struct pl_planning_plan *pp = arg;
	char *msg;

	pp->refresh = NULL;
	if (err) {
		msg = pl_asprintf("cannot refresh the cluster: %s",
				  errmsg ? errmsg : pl_strerror(err));
		pp->cb(err, NULL, NULL, msg, pp->arg);
		free(msg);
		plan_free(pp);
		return;
	}
	pp->snap = json_incref(snap);
	pp->asking = true;
	pl_pve_request(pp->s->pve, "GET", "/access/permissions", NULL, on_permissions, pp);
}

struct pl_planning_plan *
pl_planning_plan_start(struct pl_session *s, const struct pl_plan_opts *o, pl_planning_plan_cb cb,
		       void *arg)
{
	struct pl_planning_plan *pp = pl_calloc(1, sizeof(*pp));

	pp->s = s;
	pp->o = *o;
	pp->profile = o->profile ? pl_strdup(o->profile) : NULL;
	pp->o.profile = pp->profile;
	pp->cb = cb;
	pp->arg = arg;
	pp->refresh = pl_planning_refresh_start(s, on_refreshed, pp);
	return pp;
}

void
pl_planning_plan_cancel(struct pl_planning_plan *pp)
{
	if (pp == NULL || pp->cancelled)
		return;
	pp->cancelled = true;
	if (pp->refresh) {
		pl_planning_refresh_cancel(pp->refresh);
		plan_free(pp);
	}
	/* else its permissions request frees it as it answers */
}

struct plan_wait {
	bool done;
	int err;
	json_t *snap, *plan;
	char *msg;
};

static void
plan_waited(int err, json_t *snap, json_t *plan, const char *errmsg, void *arg)
{
	struct plan_wait *w = arg;

	w->done = true;
	w->err = err;
	w->snap = json_incref(snap);
	w->plan = json_incref(plan);
	w->msg = err ? pl_strdup(errmsg ? errmsg : pl_strerror(err)) : NULL;
}

int
pl_planning_build(struct pl_session *s, const struct pl_plan_opts *o, json_t **snap,
		  json_t **plan, char **errmsg)
{
	struct plan_wait w = { 0 };
	int r;

	*snap = *plan = NULL;
	if ((r = pl_session_api(s, errmsg)) != 0)
		return pl_preferr(errmsg, r, "cannot refresh the cluster");
	pl_planning_plan_start(s, o, plan_waited, &w);
	while (!w.done)
		if (event_base_loop(pl_pve_base(s->pve), EVLOOP_ONCE) != 0)
			pl_die("the refresh stalled: the event loop has nothing left to wait for");
	if (w.err) {
		json_decref(w.snap);
		pl_seterr(errmsg, w.err, "%s", w.msg);
		free(w.msg);
		return w.err;
	}
	*snap = w.snap;
	*plan = w.plan;
	return 0;
}

json_t *
pl_planning_prune_guests(const json_t *result)
{
	json_t *guests = json_array();
	const json_t *c;
	size_t i, n = json_array_size(json_object_get(result, "changes"));

	/* its changes that took a snapshot, and the stacks whose deploy took the
	 * run's (cmd/deploy.c) */
	for (i = 0; i < n + json_array_size(json_object_get(result, "stacks")); i++) {
		c = i < n ? json_array_get(json_object_get(result, "changes"), i) :
			    json_array_get(json_object_get(result, "stacks"), i - n);
		if (i < n ? pl_json_str(c, "snapshot") == NULL :
			    !json_is_true(json_object_get(c, "snapshot_taken")))
			continue;
		json_array_append_new(guests, json_pack("{s:s,s:I,s:s,s:s}", "guest",
							pl_json_str_or(c, "guest", "?"), "vmid",
							(json_int_t)pl_json_int(c, "vmid", 0),
							"node", pl_json_str_or(c, "node", ""),
							"type", pl_json_str_or(c, "type", "qemu")));
	}
	if (json_array_size(guests) == 0) {
		json_decref(guests);
		return NULL;
	}
	return guests;
}

size_t
pl_planning_pruned(json_t *result, const json_t *pr, json_t *warnings)
{
	json_t *pruned = json_array();
	const json_t *e;
	size_t i, n = 0;

	json_array_foreach(json_object_get(pr, "guests"), i, e) {
		n += json_array_size(json_object_get(e, "pruned"));
		if (json_array_size(json_object_get(e, "pruned")))
			json_array_append_new(pruned,
					      json_pack("{s:s,s:I,s:O}", "guest",
							pl_json_str_or(e, "guest", "?"), "vmid",
							(json_int_t)pl_json_int(e, "vmid", 0),
							"pruned", json_object_get(e, "pruned")));
		if (!strcmp(pl_json_str_or(e, "status", ""), "failed"))
			json_array_append_new(
				warnings, json_sprintf("applied, but pruning the apply snapshots "
						       "of '%s' failed: %s",
						       pl_json_str_or(e, "guest", "?"),
						       pl_json_str_or(e, "error", "?")));
	}
	json_object_set_new(result, "pruned_snapshots", pruned);
	return n;
}

static const char *
sign_of(const char *action)
{
	if (!strcmp(action, "create") || !strcmp(action, "bridge") || !strcmp(action, "template"))
		return "+";
	if (!strcmp(action, "update") || !strcmp(action, "firewall"))
		return "~";
	if (!strcmp(action, "replace"))
		return "-/+";
	if (!strcmp(action, "delete"))
		return "-";
	if (!strcmp(action, "start"))
		return ">";
	if (!strcmp(action, "reboot"))
		return "@";
	return "#";
}

static const char *
color_of(const char *action)
{
	if (!strcmp(action, "create") || !strcmp(action, "bridge") || !strcmp(action, "start") ||
	    !strcmp(action, "template"))
		return PL_C_GREEN;
	if (!strcmp(action, "delete") || !strcmp(action, "replace"))
		return PL_C_RED;
	return PL_C_YELLOW;
}

static void
print_value(const char *v)
{
	if (v == NULL) {
		fputs("(none)", stdout);
		return;
	}
	/* keep multi-line values (descriptions, keys) on one line */
	for (const char *p = v; *p; p++)
		fputs(*p == '\n' ? "\\n" : (char[]){ *p, 0 }, stdout);
}

/* What a new guest gets, on one dim line (all of it with -v). */
static void
print_settings(const struct pl_ctx *ctx, const json_t *cfg)
{
	struct pl_buf line;
	const char *k;
	json_t *v;

	pl_buf_init(&line, 1 << 16);
	json_object_foreach((json_t *)cfg, k, v) {
		char *t = pl_model_value_text(v);
		const json_t *item;
		size_t i;

		/* a list (a PCI mapping's map): key=item for each */
		json_array_foreach(v, i, item)
			if (json_is_string(item))
				pl_buf_addf(&line, "%s%s=%s", line.len ? " " : "", k,
					    json_string_value(item));
		if (t && strcmp(k, "name") && strcmp(k, "hostname")) {
			pl_buf_addf(&line, "%s%s=", line.len ? " " : "", k);
			for (const char *c = t; *c; c++) /* one line, whatever the value */
				pl_buf_addstr(&line, *c == '\n' ? "\\n" : (char[]){ *c, 0 });
		}
		free(t);
	}
	/* cut only for a person at a terminal: a file or a pipe gets it all */
	if (line.len > 110 && ctx->verbosity < 1 && isatty(STDOUT_FILENO)) {
		pl_buf_truncate(&line, 107);
		pl_buf_addstr(&line, "...");
	}
	if (line.len)
		printf("      %s%s%s\n", pl_color(ctx, PL_C_DIM), line.data, pl_color(ctx, PL_C_RESET));
	pl_buf_release(&line);
}

/* Guests other projects manage, or pvelab before projects: never touched. */
static void
print_elsewhere(const struct pl_ctx *ctx, const json_t *plan)
{
	const json_t *list = json_object_get(plan, "elsewhere"), *c;
	size_t i, n = json_array_size(list);

	if (n == 0 || ctx->verbosity < 0)
		return;
	printf("%s%zu guest%s managed elsewhere (never touched by project '%s'):",
	       json_array_size(json_object_get(plan, "unmanaged")) ? "" : "\n", n,
	       n == 1 ? " is" : "s are", pl_json_str_or(plan, "project", "?"));
	json_array_foreach(list, i, c) {
		if (i == 8 && ctx->verbosity < 1) {
			fputs(" ...", stdout);
			break;
		}
		if (pl_json_str(c, "project"))
			printf(" %lld %s (project '%s')%s", pl_json_int(c, "vmid", 0), pl_json_str_or(c, "name", ""),
			       pl_json_str(c, "project"), i + 1 < n ? "," : "");
		else
			printf(" %lld %s (pvelab before projects: pvelab adopt claims it)%s",
			       pl_json_int(c, "vmid", 0), pl_json_str_or(c, "name", ""), i + 1 < n ? "," : "");
	}
	putchar('\n');
}

/* The line no one should miss: which guests a delete destroys. */
static void
print_destroyed(const struct pl_ctx *ctx, const json_t *plan, long long ndel)
{
	const json_t *c;
	size_t i;
	bool first = true;

	printf("%s%lld guest%s will be DESTROYED:%s", pl_color(ctx, PL_C_RED), ndel,
	       ndel == 1 ? "" : "s", pl_color(ctx, PL_C_RESET));
	json_array_foreach(json_object_get(plan, "changes"), i, c) {
		if (strcmp(pl_json_str_or(c, "action", ""), "delete"))
			continue;
		printf("%s %s", first ? "" : ",", pl_json_str_or(c, "guest", "?"));
		first = false;
	}
	if (!json_is_true(json_object_get(json_object_get(plan, "options"), "allow_delete")))
		printf(" (apply deletes only with --allow-delete)");
	putchar('\n');
}

/* The steps apply runs for a change, on one dim line. */
static void
print_steps(const struct pl_ctx *ctx, const json_t *steps)
{
	const json_t *s;
	size_t i;

	if (json_array_size(steps) == 0)
		return;
	printf("      %ssteps:", pl_color(ctx, PL_C_DIM));
	json_array_foreach(steps, i, s)
		printf("%s %s", i ? "," : "", json_string_value(s));
	printf("%s\n", pl_color(ctx, PL_C_RESET));
}

/* An update's way back when it is not the usual snapshot: a backup first
 * (and why), or none at all (--no-snapshot), in red. */
static void
print_way_back(const struct pl_ctx *ctx, const json_t *wb)
{
	const char *kind = pl_json_str_or(wb, "kind", "snapshot");

	if (!strcmp(kind, "backup"))
		printf("      way back: a vzdump backup first, no snapshot (%s)\n",
		       pl_json_str_or(wb, "reason", "?"));
	else if (!strcmp(kind, "none"))
		printf("      %sway back: none (%s): rollback cannot undo this change%s\n",
		       pl_color(ctx, PL_C_RED), pl_json_str_or(wb, "reason", "?"),
		       pl_color(ctx, PL_C_RESET));
}

void
pl_planning_print(const struct pl_ctx *ctx, const json_t *plan)
{
	const json_t *changes = json_object_get(plan, "changes"), *c, *d;
	const json_t *sum = json_object_get(plan, "summary");
	size_t i, j, reboots = 0;
	bool reboot_step;

	json_array_foreach(json_object_get(plan, "pending"), i, c) {
		printf("  %s!   pending%s %s (%lld): changes wait for a reboot:", pl_color(ctx, PL_C_YELLOW),
		       pl_color(ctx, PL_C_RESET), pl_json_str_or(c, "guest", "?"), pl_json_int(c, "vmid", 0));
		json_array_foreach(json_object_get(c, "keys"), j, d)
			printf(" %s", json_string_value(d));
		printf(" (pvelab apply --reboot reboots it)\n");
	}
	if (json_array_size(changes) == 0 && json_array_size(json_object_get(plan, "blocked")))
		printf("%sNothing can be applied:%s every difference is blocked.\n",
		       pl_color(ctx, PL_C_RED), pl_color(ctx, PL_C_RESET));
	else if (json_array_size(changes) == 0 && pl_json_int(sum, "stacks", 0) == 0)
		printf("%sNo changes.%s The cluster matches %s.\n", pl_color(ctx, PL_C_GREEN),
		       pl_color(ctx, PL_C_RESET), pl_json_str_or(plan, "config", "the config"));
	json_array_foreach(changes, i, c) {
		const char *a = pl_json_str_or(c, "action", "?");
		const char *cls = pl_json_str_or(c, "class", "");
		/* a bridge or template change has no guest type nor vmid */
		bool bupd = !strcmp(a, "bridge") && json_is_true(json_object_get(c, "update"));
		bool other = !strcmp(a, "bridge") || !strcmp(a, "template");
		bool fw = !strcmp(a, "firewall");
		/* a storage, backup job or pool: the sign of its class */
		const char *d2 = pl_day2_action(a) ? cls : NULL;

		bupd |= d2 && !strcmp(d2, "update");
		if (d2) { /* the kind in the action's column: the summary counts guests' actions */
			printf("  %s%-3s %-7s%s %s%s%s (%s)\n",
			       pl_color(ctx, bupd ? PL_C_YELLOW : color_of(d2)),
			       bupd ? "~" : sign_of(d2),
			       !strcmp(a, "backup_job")  ? "job" :
			       !strcmp(a, "pci_mapping") ? "mapping" :
							   a,
			       pl_color(ctx, PL_C_RESET), pl_color(ctx, PL_C_BOLD),
			       pl_json_str_or(c, "guest", "?"), pl_color(ctx, PL_C_RESET),
			       pl_json_str_or(c, "what", a));
			goto diffs;
		}
		printf("  %s%-3s %-7s%s %s%s%s (", pl_color(ctx, bupd ? PL_C_YELLOW : color_of(a)),
		       bupd ? "~" : sign_of(a), a, pl_color(ctx, PL_C_RESET), pl_color(ctx, PL_C_BOLD),
		       pl_json_str_or(c, "guest", "?"), pl_color(ctx, PL_C_RESET));
		if (fw)
			printf("%s)", pl_json_str_or(c, "what", "?"));
		else if (other)
			printf("%s on %s)", !strcmp(a, "bridge") ? "bridge" : "download", pl_json_str_or(c, "node", "?"));
		else if (json_is_true(json_object_get(c, "vmid_at_apply")))
			printf("%s on %s, vmid assigned at apply)", pl_json_str_or(c, "type", "?"),
			       pl_json_str_or(c, "node", "?"));
		else
			printf("%s %lld on %s)", pl_json_str_or(c, "type", "?"), pl_json_int(c, "vmid", 0),
			       pl_json_str_or(c, "node", "?"));
		if (!strcmp(a, "replace") && pl_json_str(c, "from_type") &&
		    (strcmp(pl_json_str(c, "from_type"), pl_json_str_or(c, "type", "")) ||
		     pl_json_int(c, "old_vmid", 0) != pl_json_int(c, "vmid", 0)))
			printf(" replacing %s %lld", pl_json_str(c, "from_type"), pl_json_int(c, "old_vmid", 0));
		if (!strcmp(a, "update") || !strcmp(a, "replace"))
			printf("  [%s]", cls);
		reboot_step = false;
		json_array_foreach(json_object_get(c, "steps"), j, d)
			reboot_step |= !strcmp(json_string_value(d), "reboot");
		if (reboot_step && strcmp(a, "reboot"))
			printf(" %s(then reboot)%s", pl_color(ctx, PL_C_YELLOW), pl_color(ctx, PL_C_RESET));
		else if (!reboot_step && json_is_true(json_object_get(c, "reboot"))) {
			printf(" %s(pending until reboot)%s", pl_color(ctx, PL_C_YELLOW),
			       pl_color(ctx, PL_C_RESET));
			reboots++;
		}
		if (json_object_get(c, "clone_from")) {
			const json_t *f = json_object_get(c, "clone_from");

			printf("  clone of %s (%lld on %s)", pl_json_str_or(f, "name", "?"),
			       pl_json_int(f, "vmid", 0), pl_json_str_or(f, "node", "?"));
		}
		/* a container's keys are a create parameter, in no config shown */
		if (pl_json_str(json_object_get(c, "create"), "ssh-public-keys")) {
			const char *k =
				pl_json_str(json_object_get(c, "create"), "ssh-public-keys");
			size_t nkeys = 0;

			for (; *k; k++)
				nkeys += *k == '\n';
			printf("  with %zu SSH key%s for root", nkeys, nkeys == 1 ? "" : "s");
		}
		putchar('\n');
		if (json_object_get(c, "config"))
			print_settings(ctx, json_object_get(c, "config"));
	diffs:
		if (d2 && !strcmp(d2, "create"))
			print_settings(ctx, json_object_get(c, "params"));
		json_array_foreach(json_object_get(c, "diffs"), j, d) {
			printf("      %s~%s %s: ", pl_color(ctx, PL_C_YELLOW), pl_color(ctx, PL_C_RESET),
			       pl_json_str_or(d, "key", "?"));
			print_value(pl_json_str(d, "from"));
			fputs(" -> ", stdout);
			print_value(pl_json_str(d, "to"));
			printf("  %s(%s%s%s)%s\n", pl_color(ctx, PL_C_DIM), pl_json_str_or(d, "class", ""),
			       pl_json_str(d, "note") ? ": " : "", pl_json_str_or(d, "note", ""),
			       pl_color(ctx, PL_C_RESET));
		}
		print_steps(ctx, json_object_get(c, "steps"));
		print_way_back(ctx, json_object_get(c, "way_back"));
	}
	json_array_foreach(json_object_get(plan, "blocked"), i, c)
		printf("  %s!   blocked%s %s: %s\n", pl_color(ctx, PL_C_RED), pl_color(ctx, PL_C_RESET),
		       pl_json_str_or(c, "guest", "?"), pl_json_str_or(c, "reason", "?"));
	if (json_array_size(json_object_get(plan, "unmanaged")) && ctx->verbosity >= 0) {
		printf("\n%zu guest%s not managed by pvelab (never touched; pvelab import adopts them):",
		       json_array_size(json_object_get(plan, "unmanaged")),
		       json_array_size(json_object_get(plan, "unmanaged")) == 1 ? " is" : "s are");
		json_array_foreach(json_object_get(plan, "unmanaged"), i, c) {
			if (i == 8 && ctx->verbosity < 1) {
				fputs(" ...", stdout);
				break;
			}
			printf(" %lld %s%s", pl_json_int(c, "vmid", 0), pl_json_str_or(c, "name", ""),
			       i + 1 < json_array_size(json_object_get(plan, "unmanaged")) ? "," : "");
		}
		putchar('\n');
	}
	print_elsewhere(ctx, plan);
	if (json_array_size(changes)) {
		long long ndel = pl_json_int(sum, "delete", 0);

		printf("\nPlan: %lld to create, %lld to update, %lld to replace, %s%lld to delete%s, "
		       "%lld to start, %lld to stop, %lld bridge%s, %lld reboot%s.",
		       pl_json_int(sum, "create", 0), pl_json_int(sum, "update", 0),
		       pl_json_int(sum, "replace", 0), ndel ? pl_color(ctx, PL_C_RED) : "", ndel,
		       ndel ? pl_color(ctx, PL_C_RESET) : "",
		       pl_json_int(sum, "start", 0), pl_json_int(sum, "stop", 0),
		       pl_json_int(sum, "bridge", 0), pl_json_int(sum, "bridge", 0) == 1 ? "" : "s",
		       pl_json_int(sum, "reboot", 0), pl_json_int(sum, "reboot", 0) == 1 ? "" : "s");
		if (pl_json_int(sum, "firewall", 0))
			printf(" %lld firewall change%s.", pl_json_int(sum, "firewall", 0),
			       pl_json_int(sum, "firewall", 0) == 1 ? "" : "s");
		long long nd2 = pl_json_int(sum, "storage", 0) + pl_json_int(sum, "backup_job", 0) +
				pl_json_int(sum, "pool", 0);

		if (nd2)
			printf(" %lld storage, backup job and pool change%s.", nd2,
			       nd2 == 1 ? "" : "s");
		if (pl_json_int(sum, "template", 0))
			printf(" %lld template download%s.", pl_json_int(sum, "template", 0),
			       pl_json_int(sum, "template", 0) == 1 ? "" : "s");
		if (pl_json_int(sum, "blocked", 0))
			printf(" %lld blocked.", pl_json_int(sum, "blocked", 0));
		if (reboots)
			printf(" %zu guest%s need%s a reboot to finish (apply --reboot does it).", reboots,
			       reboots == 1 ? "" : "s", reboots == 1 ? "s" : "");
		putchar('\n');
		if (ndel)
			print_destroyed(ctx, plan, ndel);
	}
	if (pl_json_int(sum, "stacks", 0)) {
		long long n = pl_json_int(sum, "stacks", 0);

		if (json_array_size(changes))
			putchar('\n');
		pl_planning_print_stacks(ctx, json_object_get(plan, "stacks"));
		printf("\nStacks: %lld to deploy after the changes above (pvelab deploy; apply "
		       "--no-stacks leaves them).\n",
		       n);
	}
}

void
pl_planning_print_stacks(const struct pl_ctx *ctx, const json_t *stacks)
{
	const json_t *e, *f;
	size_t i, j;

	json_array_foreach(stacks, i, e) {
		const char *a = pl_json_str_or(e, "action", "?");
		bool create = !strcmp(a, "create");

		if (!strcmp(a, "unchanged"))
			continue;
		/* "stack" in the action's column: the summary counts guests' actions */
		printf("  %s%-3s stack  %s %s%s/%s%s (%s",
		       pl_color(ctx, create ? PL_C_GREEN : PL_C_YELLOW), create ? "+" : "~",
		       pl_color(ctx, PL_C_RESET), pl_color(ctx, PL_C_BOLD),
		       pl_json_str_or(e, "guest", "?"), pl_json_str_or(e, "name", "?"),
		       pl_color(ctx, PL_C_RESET), a);
		if (pl_json_int(e, "vmid", 0))
			printf(" in %lld", pl_json_int(e, "vmid", 0));
		printf(", sha256 %.12s)\n", pl_json_str_or(e, "sha256", "?"));
		json_array_foreach(json_object_get(e, "files"), j, f) {
			const char *c = pl_json_str_or(f, "change", "?");

			printf("      %s%s%s %s", pl_color(ctx, PL_C_YELLOW),
			       !strcmp(c, "create") ? "+" :
			       !strcmp(c, "delete") ? "-" :
						      "~",
			       pl_color(ctx, PL_C_RESET), pl_json_str_or(f, "path", "?"));
			if (json_is_true(json_object_get(f, "secret")))
				printf("  %s(secret: content and hash not shown)%s",
				       pl_color(ctx, PL_C_DIM), pl_color(ctx, PL_C_RESET));
			else if (pl_json_str(f, "sha256"))
				printf("  %ssha256 %.12s%s", pl_color(ctx, PL_C_DIM),
				       pl_json_str(f, "sha256"), pl_color(ctx, PL_C_RESET));
			putchar('\n');
			for (const char *p = pl_json_str_or(f, "diff", ""); *p;) {
				size_t n = strcspn(p, "\n");

				printf("          %s%.*s%s\n",
				       pl_color(ctx, *p == '+' ? PL_C_GREEN :
						     *p == '-' ? PL_C_RED :
								 PL_C_DIM),
				       (int)n, p, pl_color(ctx, PL_C_RESET));
				p += n + (p[n] == '\n');
			}
		}
	}
}

static void
on_confirm_signal(int sig)
{
	(void)sig; /* only to end the read: see pl_confirm */
}

bool
pl_confirm(const char *question)
{
	struct sigaction cur, mine = { .sa_handler = on_confirm_signal }, old;
	bool caught, yes = false;
	char line[32];

	/* Inside the console SIGINT is caught (for the event loop), and restarts
	 * the read: Ctrl-C would do nothing until Enter, then stop the command
	 * it had just confirmed. Here it ends the read: the answer is no. (On the
	 * command line it still ends the process: nothing has changed yet.) */
	sigaction(SIGINT, NULL, &cur);
	caught = !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler != SIG_DFL &&
		 cur.sa_handler != SIG_IGN;
	if (caught) {
		sigemptyset(&mine.sa_mask);
		sigaction(SIGINT, &mine, &old);
	}
	fprintf(stderr, "%s [y/N] ", question);
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) != NULL)
		yes = line[0] == 'y' || line[0] == 'Y';
	else if (caught && ferror(stdin)) {
		clearerr(stdin);
		fputc('\n', stderr);
	}
	if (caught)
		sigaction(SIGINT, &old, NULL);
	return yes;
}
