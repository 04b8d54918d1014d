/*
 * The runs engine of pvelab serve (its API is serve/runs.h): plans, applies,
 * rollbacks and snapshots on the server's loop, with the CLI's asynchronous
 * planner (pl_planning_plan_start), guard and saved-plan checks and the
 * executor (pl_apply_start), each step a callback; plans kept in memory by
 * id, runs recorded in the store with who asked. It lives in cmd/ because
 * the planner and guard it drives do.
 */
#include "core/common.h"
#include "serve/runs.h"
#include "cmd/act.h"
#include "cmd/connect.h"
#include "cmd/deploy.h"
#include "cmd/guard.h"
#include "cmd/planning.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/diag.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "plan/apply.h"
#include "plan/plan.h"
#include "plan/rollback_check.h"
#include "plan/runs.h"
#include "plan/snappol.h"
#include "pve/client.h"
#include "serve/serve.h"
#include "state/state.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <time.h>

/* A plan or a snapshot action started for a caller, not ended yet. */
struct op {
	struct pl_serve_runs *rs;
	struct op *next;
	pl_serve_runs_cb cb; /* NULL once forgotten */
	void *arg;
	char *who;
	struct pl_planning_plan *pp; /* a plan's planner */
	long long after_run;         /* a plan's: the newest run that changed guests */
	/* a snapshot action: what, on which guest */
	const char *what; /* "list", "create", "rollback", "delete" */
	char *guest, *name, *kept;
	json_t *params, *entry; /* the guest's resource entry, once found */
	json_t *failed;         /* a rollback's failed result, while its way back goes */
	char *suffix;
	/* a plan of a config sent with the request: it, and the server's
	 * session with it in place of the server's config */
	struct pl_config *cfg;
	struct pl_session sess;
	json_t *yaml;
};

/* The apply or rollback this server carries out (one at a time). */
struct run {
	struct pl_serve_runs *rs;
	const char *kind; /* "apply", "rollback" */
	long long id;     /* its row in the store; 0 until it began */
	char *who;
	struct pl_serve_run_cbs cbs;
	struct pl_guard guard;
	struct pl_planning_plan *pp; /* the fresh plan an apply is checked against */
	json_t *kept;                /* the plan asked for (apply) */
	struct pl_apply_opts ao;
	struct pl_plan_opts po; /* an apply's, for its fresh plan */
	char *profile;          /* po's */
	json_t *plan, *owned, *running, *result;
	json_t *notes; /* a rollback's: what it cannot bring back */
	struct pl_apply *a;
	struct pl_deploy_job *deploy; /* an apply's stacks, after its changes */
	bool stack_rollback;          /* a failed stack takes its guest back */
	json_t *rolled;               /* a rollback's: the result of the run it undoes */
	struct pl_snappol *prune;
	size_t finished, total;
	bool started_said, held;
	struct event *later; /* its next step from the loop: the lock, then the plan */
	int waited;          /* turns of waiting for the store (PL_SERVE_STORE_WAIT) */
	json_t *storages;    /* a rollback's, for its check before any guest is touched */
	/* an apply of a plan made from a config sent with it: that config,
	 * and the session planning and applying use (run_session) */
	struct pl_config *cfg;
	struct pl_session sess;
};

struct pl_serve_runs {
	struct pl_session *s;
	struct pl_serve *sv;
	const char *cluster; /* named in each event when serve watches several (borrowed) */
	void (*changed)(void *arg);
	void *changed_arg;
	json_t *plans;                    /* id -> kept plan */
	json_t *plan_yaml;                /* id -> the config text a kept plan was made of */
	void (*hold)(void *arg, bool on); /* the refresh's syncs, held during a run */
	bool (*syncing)(void *arg);
	void *refresh;
	struct op *ops;
	struct run *run;
};

/* The session a run plans and records with: the server's, or its own
 * config's in place of the server's. */
static struct pl_session *
run_session(struct run *r)
{
	return r->cfg ? &r->sess : r->rs->s;
}

struct pl_serve_runs *
pl_serve_runs_new(struct pl_session *s, struct pl_serve *sv, void (*changed)(void *arg), void *arg)
{
	struct pl_serve_runs *rs = pl_calloc(1, sizeof(*rs));

	rs->s = s;
	rs->sv = sv;
	rs->changed = changed;
	rs->changed_arg = arg;
	rs->plans = json_object();
	rs->plan_yaml = json_object();
	return rs;
}

void
pl_serve_runs_set_cluster(struct pl_serve_runs *rs, const char *cluster)
{
	rs->cluster = cluster;
}

void
pl_serve_runs_set_refresh(struct pl_serve_runs *rs, void (*hold)(void *arg, bool on),
			  bool (*syncing)(void *arg), void *arg)
{
	rs->hold = hold;
	rs->syncing = syncing;
	rs->refresh = arg;
}

static void
op_free(struct op *o)
{
	struct op **pp = &o->rs->ops;

	while (*pp && *pp != o)
		pp = &(*pp)->next;
	if (*pp)
		*pp = o->next;
	free(o->who);
	free(o->guest);
	free(o->name);
	free(o->kept);
	free(o->suffix);
	json_decref(o->params);
	json_decref(o->entry);
	json_decref(o->failed);
	json_decref(o->yaml);
	pl_config_free(o->cfg);
	free(o);
}

static struct op *
op_new(struct pl_serve_runs *rs, const char *who, pl_serve_runs_cb cb, void *arg)
{
	struct op *o = pl_calloc(1, sizeof(*o));

	o->rs = rs;
	o->who = pl_strdup(who ? who : "?");
	o->cb = cb;
	o->arg = arg;
	o->next = rs->ops;
	rs->ops = o;
	return o;
}

/* The op's end: its callback (unless forgotten), then it is gone. */
static void
op_end(struct op *o, int err, const json_t *result, const char *errmsg)
{
	if (o->cb)
		o->cb(err, result, err ? (errmsg ? errmsg : pl_strerror(err)) : NULL, o->arg);
	op_free(o);
}

static void
run_free(struct run *r)
{
	if (r->rs->run == r)
		r->rs->run = NULL;
	pl_planning_plan_cancel(r->pp);
	pl_deploy_job_free(r->deploy);
	json_decref(r->rolled);
	if (r->later)
		event_free(r->later);
	if (r->held && r->rs->hold)
		r->rs->hold(r->rs->refresh, false);
	pl_guard_release(&r->guard);
	json_decref(r->kept);
	json_decref(r->plan);
	json_decref(r->owned);
	json_decref(r->running);
	json_decref(r->result);
	json_decref(r->notes);
	free(r->profile);
	free(r->who);
	pl_config_free(r->cfg);
	free(r);
}

void
pl_serve_runs_forget(struct pl_serve_runs *rs, void *arg)
{
	for (struct op *o = rs->ops; o; o = o->next)
		if (o->arg == arg)
			o->cb = NULL;
	if (rs->run && rs->run->cbs.arg == arg)
		memset(&rs->run->cbs, 0, sizeof(rs->run->cbs));
}

static int
no_cluster(const struct pl_serve_runs *rs, bool config, char **errmsg)
{
	if (config && rs->s->cfg == NULL)
		return pl_seterr(errmsg, PL_ENOENT,
				 "the server has no config to plan (start pvelab serve with -c "
				 "pvelab.yaml)");
	if (rs->s->pve == NULL)
		return pl_seterr(errmsg, PL_ENOENT,
				 "the server has no cluster (set cluster: in pvelab.yaml, or "
				 "PVELAB_URL and PVELAB_TOKEN)");
	return 0;
}

/* ---- plans ------------------------------------------------------------- */

/* Drop expired plans, and the oldest while there are more than max. */
static void
plans_expire(struct pl_serve_runs *rs, size_t max)
{
	double now = (double)time(NULL);
	const char *k, *oldest;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(rs->plans, tmp, k, v)
		if (pl_json_num(v, "expires", 0) <= now)
			json_object_del(rs->plans, k);
	while (json_object_size(rs->plans) > max) {
		double t = 0;

		oldest = NULL;
		json_object_foreach(rs->plans, k, v)
			if (oldest == NULL || pl_json_num(v, "created", 0) < t) {
				oldest = k;
				t = pl_json_num(v, "created", 0);
			}
		json_object_del(rs->plans, oldest);
	}
	json_object_foreach_safe(rs->plan_yaml, tmp, k, v)
		if (json_object_get(rs->plans, k) == NULL)
			json_object_del(rs->plan_yaml, k);
}

static void
config_sha(const struct pl_config *cfg, char out[65])
{
	pl_json_sha256(pl_config_get(cfg, ""), out);
}

/* The JSON pointer of key under parent (its "~" and "/" escaped). */
static char *
pointer_of(const char *parent, const char *key)
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
	pl_buf_addstr(&b, parent);
	pl_buf_addch(&b, '/');
	for (; *key; key++)
		if (*key == '~')
			pl_buf_addstr(&b, "~0");
		else if (*key == '/')
			pl_buf_addstr(&b, "~1");
		else
			pl_buf_addch(&b, *key);
	return pl_buf_detach(&b, NULL);
}

/* A JSON pointer as the config's messages name a key: "guests[0].name". */
static char *
dotted(const char *pointer)
{
	struct pl_buf b;
	const char *p = pointer;

	pl_buf_init(&b, 0);
	while (*p == '/') {
		size_t n = strcspn(++p, "/");

		if (n && strspn(p, "0123456789") == n) {
			pl_buf_addf(&b, "[%.*s]", (int)n, p);
		} else {
			if (b.len)
				pl_buf_addch(&b, '.');
			for (size_t i = 0; i < n; i++)
				if (p[i] == '~' && i + 1 < n) {
					pl_buf_addch(&b, p[i + 1] == '1' ? '/' : '~');
					i++;
				} else {
					pl_buf_addch(&b, p[i]);
				}
		}
		p += n;
	}
	return pl_buf_detach(&b, NULL);
}

/* The first place v (at pointer at) written in cfg that would make the
 * server read something of its own: a file (a *_file key) or its
 * environment (*_env). NULL when none; caller frees. */
static char *
reads_server(const struct pl_config *cfg, const json_t *v, const char *at)
{
	const char *k;
	json_t *c;
	size_t i;
	char *p, *found = NULL;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, c) {
			size_t n = strlen(k);

			p = pointer_of(at, k);
			if (n > 5 && (!strcmp(k + n - 5, "_file") || !strcmp(k + n - 4, "_env")) &&
			    pl_config_written(cfg, p))
				return p;
			found = reads_server(cfg, c, p);
			free(p);
			if (found)
				return found;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, c) {
			char idx[32];

			snprintf(idx, sizeof(idx), "%zu", i);
			p = pointer_of(at, idx);
			found = reads_server(cfg, c, p);
			free(p);
			if (found)
				return found;
		}
	}
	return NULL;
}

int
pl_serve_plan_config(const char *yaml, size_t len, struct pl_config **out, char **field,
		     char **errmsg)
{
	/* what only the server's own config says: where its cluster, store,
	 * listeners and secrets are */
	static const char *const servers[] = { "/cluster", "/state",  "/serve",
					       "/proxy",   "/alerts", "/stack_defaults" };
	struct pl_config *cfg = NULL;
	struct pl_diags d;
	char *at = NULL;
	int r = 0;

	*out = NULL;
	if (field)
		*field = NULL;
	pl_diags_init(&d);
	if (pl_config_load_string("body", yaml, len, &cfg, &d) != 0 || cfg == NULL) {
		for (size_t i = 0; i < d.n; i++) {
			char *line;

			if (d.items[i].level != PL_DIAG_ERROR)
				continue;
			if (field && d.items[i].key)
				*field = pl_strdup(d.items[i].key);
			line = pl_diag_line(&d.items[i]);
			r = pl_seterr(errmsg, PL_EINVAL, "%s", line);
			free(line);
			break;
		}
		if (r == 0)
			r = pl_seterr(errmsg, PL_EINVAL,
				      "the config sent is not a valid pvelab.yaml");
		goto out;
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(servers) && at == NULL; i++)
		if (pl_config_written(cfg, servers[i]))
			at = pl_strdup(servers[i]);
	/* a stack's compose, env and other files are read from the server's disk */
	for (size_t i = 0; i < json_array_size(pl_config_guests(cfg)) && at == NULL; i++) {
		char *p = pl_asprintf("/guests/%zu/stacks", i);

		if (pl_config_written(cfg, p))
			at = p;
		else
			free(p);
	}
	if (at || (at = reads_server(cfg, pl_config_get(cfg, ""), "")) != NULL) {
		char *key = dotted(at);
		int line = 0, col = 0;

		pl_config_where(cfg, at, &line, &col);
		r = pl_seterr(errmsg, PL_EINVAL,
			      "body:%d:%d: error: %s: a config sent to the server may not name "
			      "what the server reads itself (its files, its environment, its "
			      "cluster, store or listeners): those come from the server's own "
			      "config",
			      line, col, key);
		free(at);
		if (field)
			*field = key;
		else
			free(key);
		goto out;
	}
	if ((r = pl_planning_check(cfg, errmsg)) != 0)
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	pl_config_free(cfg);
	pl_diags_release(&d);
	return r;
}

static void
on_planned(int err, json_t *snap, json_t *plan, const char *errmsg, void *arg)
{
	struct op *o = arg;
	struct pl_serve_runs *rs = o->rs;
	unsigned char raw[16];
	char id[33], cfgsha[65];
	json_t *kept;
	time_t now = time(NULL);

	(void)snap;
	o->pp = NULL;
	if (err) {
		op_end(o, err, NULL, errmsg);
		return;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		op_end(o, PL_EIO, NULL, "cannot draw random bytes for the plan's id");
		return;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	config_sha(o->cfg ? o->cfg : rs->s->cfg, cfgsha);
	kept = json_pack("{s:s,s:I,s:I,s:s,s:{s:s,s:s},s:I,s:O}", "id", id, "created",
			 (json_int_t)now, "expires", (json_int_t)(now + PL_SERVE_PLAN_TTL), "who",
			 o->who, "fingerprint", "cluster", pl_json_str_or(plan, "snapshot", ""),
			 "config", cfgsha, "after_run", (json_int_t)o->after_run, "plan", plan);
	plans_expire(rs, PL_SERVE_PLANS_MAX - 1);
	json_object_set(rs->plans, id, kept);
	if (o->yaml)
		json_object_set(rs->plan_yaml, id, o->yaml);
	pl_log_info("serve: plan %.8s... made for %s: %lld change(s)", id, o->who,
		    (long long)json_array_size(json_object_get(plan, "changes")));
	op_end(o, 0, kept, NULL);
	json_decref(kept);
}

int
pl_serve_plan_start(struct pl_serve_runs *rs, const struct pl_serve_plan_opts *po, const char *who,
		    pl_serve_runs_cb cb, void *arg, char **errmsg)
{
	return pl_serve_plan_start_yaml(rs, po, NULL, 0, who, cb, arg, errmsg);
}

int
pl_serve_plan_start_yaml(struct pl_serve_runs *rs, const struct pl_serve_plan_opts *po,
			 const char *yaml, size_t len, const char *who, pl_serve_runs_cb cb,
			 void *arg, char **errmsg)
{
	struct pl_plan_opts o = { 0 };
	struct pl_config *cfg = NULL;
	struct op *op;
	int r;

	if (yaml) {
		json_t *text = json_stringn(yaml, len); /* kept as text for the apply */

		if (text == NULL)
			return pl_seterr(errmsg, PL_EINVAL, "the config sent is not UTF-8 text");
		json_decref(text);
		if ((r = no_cluster(rs, false, errmsg)) != 0 ||
		    (r = pl_serve_plan_config(yaml, len, &cfg, NULL, errmsg)) != 0)
			return r;
	} else if ((r = no_cluster(rs, true, errmsg)) != 0 ||
		   (r = pl_planning_check(rs->s->cfg, errmsg)) != 0) {
		return r;
	}
	if (po) {
		o.reboot = po->reboot;
		o.allow_replace = po->allow_replace;
		o.allow_delete = po->allow_delete;
		o.no_snapshot = po->no_snapshot;
		o.profile = po->profile;
	}
	op = op_new(rs, who, cb, arg);
	if (cfg) {
		op->cfg = cfg;
		op->sess = *rs->s;
		op->sess.cfg = cfg;
		op->yaml = json_stringn(yaml, len);
	}
	/* apply refuses the plan once another run changed guests after this */
	if ((r = pl_runs_newest(rs->s->state, &op->after_run, NULL, errmsg)) != 0) {
		op_free(op);
		return r;
	}
	op->pp = pl_planning_plan_start(op->cfg ? &op->sess : rs->s, &o, on_planned, op);
	return 0;
}

json_t *
pl_serve_plan_get(struct pl_serve_runs *rs, const char *id)
{
	plans_expire(rs, PL_SERVE_PLANS_MAX);
	return id ? json_incref(json_object_get(rs->plans, id)) : NULL;
}

/* ---- runs ---------------------------------------------------------------- */

/* An event of the run, to the stream and the caller. */
static void
run_event(struct run *r, json_t *ev)
{
	json_object_set_new(ev, "run", json_integer(r->id));
	json_object_set_new(ev, "kind", json_string(r->kind));
	if (r->rs->cluster)
		json_object_set_new(ev, "cluster", json_string(r->rs->cluster));
	if (r->cbs.progress)
		r->cbs.progress(ev, r->cbs.arg);
	if (r->rs->sv)
		pl_serve_emit(r->rs->sv, "run", ev);
	else
		json_decref(ev);
}

static void
say_started(struct run *r)
{
	json_t *res;

	if (r->started_said)
		return;
	r->started_said = true;
	res = json_pack("{s:I,s:s,s:s,s:I}", "run", (json_int_t)r->id, "kind", r->kind, "who",
			r->who, "total", (json_int_t)r->total);
	if (r->cbs.started)
		r->cbs.started(0, res, NULL, r->cbs.arg);
	json_decref(res);
}

/* A refusal after the caller was told 0: started with the error, the end. */
static void
run_refused(struct run *r, int err, const char *msg)
{
	pl_log_info("serve: %s for %s refused: %s", r->kind, r->who, msg);
	if (r->cbs.started)
		r->cbs.started(err, NULL, msg, r->cbs.arg);
	run_free(r);
}

static void
on_progress(const struct pl_apply_event *ev, void *arg)
{
	struct run *r = arg;
	bool finished = ev->error || ev->stopped || (ev->done && !strcmp(ev->step, "done"));

	r->finished = ev->finished;
	r->total = ev->total;
	if (finished)
		json_object_del(r->running, ev->guest);
	else if (!ev->done)
		json_object_set_new(r->running, ev->guest, json_string(ev->step));
	run_event(r, json_pack("{s:s,s:s,s:s,s:b,s:s?,s:b,s:I,s:I}", "guest", ev->guest, "action",
			       ev->action, "step", ev->step, "done", ev->done, "error", ev->error,
			       "stopped", ev->stopped, "finished", (json_int_t)ev->finished,
			       "total", (json_int_t)ev->total));
}

/* The run's result so far into its row (what a rollback needs to know). */
static void
on_record(const json_t *change, const json_t *result, void *arg)
{
	struct run *r = arg;
	const struct pl_config *cfg = run_session(r)->cfg;
	json_t *copy = json_copy((json_t *)result);
	char *err = NULL;

	json_object_set_new(copy, "run", json_integer(r->id));
	json_object_set_new(copy, "via", json_string(r->who));
	if (r->plan && json_object_get(r->plan, "summary"))
		json_object_set(copy, "plan_summary", json_object_get(r->plan, "summary"));
	if (pl_runs_update(r->rs->s->state, r->id, copy, &err) != 0) {
		pl_log_warn("serve: run %lld: %s", r->id, err);
		free(err);
		err = NULL;
	}
	if (pl_runs_storage_done(r->rs->s->state, cfg ? pl_config_project(cfg) : NULL, change,
				 &err) != 0) {
		pl_log_warn("serve: run %lld: %s", r->id, err);
		free(err);
	}
	if (pl_guard_lost(&r->guard))
		pl_log_warn("serve: run %lld: the apply lock was lost with the connection to the "
			    "state database: no more changes are started",
			    r->id);
	json_decref(copy);
}

/* The end: the record, the sync, the caller, the stream. */
static void
run_over(struct run *r)
{
	struct pl_serve_runs *rs = r->rs;
	const char *status = pl_json_str_or(r->result, "status", "failed");

	pl_log_info("serve: %s run %lld for %s: %s", r->kind, r->id, r->who, status);
	pl_guard_release(&r->guard);
	/* one sync after the run, asked while held, started at the release */
	if (rs->changed && r->ao.stop && *r->ao.stop < PL_APPLY_ABANDON)
		rs->changed(rs->changed_arg);
	if (r->held && rs->hold) {
		r->held = false;
		rs->hold(rs->refresh, false);
	}
	say_started(r);
	run_event(r, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I}", "state", "finished", "status", status,
			       "ok", (json_int_t)pl_json_int(r->result, "ok", 0), "failed",
			       (json_int_t)pl_json_int(r->result, "failed", 0), "finished",
			       (json_int_t)r->finished, "total", (json_int_t)r->total));
	if (r->cbs.done)
		r->cbs.done(0, r->result, NULL, r->cbs.arg);
	run_free(r);
}

static void
on_pruned(int err, json_t *pr, void *arg)
{
	struct run *r = arg;
	json_t *warnings = json_array(), *w;
	size_t i;

	(void)err;
	r->prune = NULL;
	pl_planning_pruned(r->result, pr, warnings);
	json_array_foreach(warnings, i, w)
		pl_log_warn("serve: run %lld: %s", r->id, json_string_value(w));
	json_decref(warnings);
	run_over(r);
}

/* The run's end in the store, apply_snapshots.keep, then run_over. */
static void
run_finish(struct run *r, int ar, bool stopped)
{
	struct pl_serve_runs *rs = r->rs;
	const char *status = stopped ? "interrupted" : ar == 0 ? "ok" : "failed";
	const json_t *keep = pl_config_get(run_session(r)->cfg, "/apply_snapshots/keep");
	json_t *guests;
	char *err = NULL;

	if (pl_runs_finish(rs->s->state, r->id, status, r->result, &err) != 0) {
		pl_log_warn("serve: run %lld: %s", r->id, err);
		free(err);
		err = NULL;
	}
	/* a rollback put the guests back: their stacks' records too */
	if (r->rolled && pl_deploy_records_back(rs->s->state, r->rolled, r->result, &err) != 0) {
		pl_log_warn("serve: run %lld: %s", r->id, err);
		free(err);
	}
	json_object_set_new(r->result, "status", json_string(status));
	if (!strcmp(r->kind, "apply") && ar == 0 && !stopped && json_is_integer(keep) &&
	    (guests = pl_planning_prune_guests(r->result)) != NULL) {
		struct pl_snappol_opts so = { 0 };

		r->prune =
			pl_snappol_prune_apply_start(rs->s->base, rs->s->pve, guests,
						     json_integer_value(keep), &so, on_pruned, r);
		json_decref(guests);
		return;
	}
	if (!strcmp(r->kind, "apply") && json_is_integer(keep))
		json_object_set_new(r->result, "pruned_snapshots", json_array());
	run_over(r);
}

/* A line of compose's output in a guest: an event of the run. */
static void
on_deploy_line(const json_t *ev, void *arg)
{
	struct run *r = arg;
	json_t *e = json_deep_copy(ev);

	json_object_set_new(e, "step", json_string("deploy"));
	json_object_set_new(e, "finished", json_integer((json_int_t)r->finished));
	json_object_set_new(e, "total", json_integer((json_int_t)r->total));
	run_event(r, e);
}

static void
on_deployed(int failed, bool stopped, json_t *result, void *arg)
{
	struct run *r = arg;
	const json_t *e;
	size_t i;

	json_object_set(r->result, "stacks", json_object_get(result, "stacks"));
	json_array_foreach(json_object_get(result, "stacks"), i, e)
		run_event(r, json_pack("{s:s,s:s,s:O?,s:s,s:b,s:s?,s:O?,s:I,s:I}", "guest",
				       pl_json_str_or(e, "guest", "?"), "stack",
				       pl_json_str_or(e, "name", "?"), "vmid",
				       json_object_get(e, "vmid"), "step", "deployed", "done",
				       json_is_true(json_object_get(e, "ok")), "error",
				       pl_json_str(e, "error"), "rolled_back",
				       json_object_get(e, "rolled_back"), "finished",
				       (json_int_t)r->finished, "total", (json_int_t)r->total));
	pl_log_info("serve: run %lld: %zu stack(s) deployed, %d failed%s", r->id,
		    json_array_size(json_object_get(result, "stacks")) - (size_t)failed, failed,
		    stopped ? " (stopped)" : "");
	if (stopped)
		json_object_set_new(r->result, "stopped", json_true());
	run_finish(r, failed ? PL_EIO : 0, stopped);
}

/* After an apply's changes, the stacks its plan showed (cmd/deploy.h), as
 * the CLI's apply deploys them: on a thread, the loop answering meanwhile.
 * false when there are none to deploy. */
static bool
deploy_stacks(struct run *r)
{
	struct pl_deploy_opts o = { .rollback = r->stack_rollback, .run_id = r->id };
	char *err = NULL;

	if (pl_json_int(json_object_get(r->plan, "summary"), "stacks", 0) == 0)
		return false;
	run_event(r, json_pack("{s:s,s:I,s:I,s:I}", "state", "deploying", "stacks",
			       (json_int_t)pl_json_int(json_object_get(r->plan, "summary"),
						       "stacks", 0),
			       "finished", (json_int_t)r->finished, "total", (json_int_t)r->total));
	r->deploy = pl_deploy_apply_start(run_session(r), &o, r->plan, r->result, on_deploy_line,
					  on_deployed, r, &err);
	if (r->deploy == NULL) {
		json_object_set_new(r->result, "stacks",
				    json_pack("[{s:s,s:s,s:b,s:s}]", "guest", "?", "name", "?",
					      "ok", 0, "error", err ? err : "?"));
		free(err);
		run_finish(r, PL_EIO, false);
	}
	return true;
}

static void
on_applied(int ar, json_t *result, void *arg)
{
	struct run *r = arg;
	bool stopped = json_is_true(json_object_get(result, "stopped"));

	r->a = NULL;
	r->result = json_deep_copy(result);
	json_object_set_new(r->result, "run", json_integer(r->id));
	json_object_set_new(r->result, "via", json_string(r->who));
	if (r->notes)
		json_object_set(r->result, "notes", r->notes);
	if (!strcmp(r->kind, "apply")) {
		json_object_set_new(r->result, "no_backup", json_boolean(r->ao.no_backup));
		json_object_set(r->result, "plan_summary", json_object_get(r->plan, "summary"));
		if (ar == 0 && !stopped && r->guard.stop == 0 && deploy_stacks(r))
			return;
	}
	run_finish(r, ar, stopped);
}

/* Begin the run in the store and hand plan to the executor. */
static int
run_go(struct run *r, char **errmsg)
{
	struct pl_serve_runs *rs = r->rs;
	int e;

	if ((e = pl_runs_begin(rs->s->state, r->kind, &r->id, errmsg)) != 0)
		return e;
	if (!strcmp(r->kind, "apply") &&
	    pl_runs_set_project(rs->s->state, r->id, pl_config_project(run_session(r)->cfg),
				errmsg) != 0) {
		pl_log_warn("serve: run %lld: %s", r->id, *errmsg);
		free(*errmsg);
		*errmsg = NULL;
	}
	r->total = json_array_size(json_object_get(r->plan, "changes"));
	r->running = json_object();
	r->ao.run_id = r->id;
	r->ao.owned = r->owned;
	r->ao.progress = on_progress;
	r->ao.record = on_record;
	r->ao.stop = &r->guard.stop;
	r->ao.arg = r;
	pl_log_info("serve: %s run %lld for %s: %zu change(s)", r->kind, r->id, r->who, r->total);
	{ /* the first record says who asked, before any change */
		json_t *none = json_pack("{s:[]}", "changes");

		on_record(NULL, none, r);
		json_decref(none);
	}
	run_event(r, json_pack("{s:s,s:s,s:I}", "state", "started", "who", r->who, "total",
			       (json_int_t)r->total));
	r->a = pl_apply_start(rs->s->base, rs->s->pve, r->plan, &r->ao, on_applied, r);
	return 0;
}

/* The fresh plan of the same config and options: the kept one is carried out
 * only when it still says the same (a stale plan is never trusted). */
static void
on_replanned(int err, json_t *snap, json_t *fresh, const char *errmsg, void *arg)
{
	struct run *r = arg;
	struct pl_serve_runs *rs = r->rs;
	const json_t *saved = json_object_get(r->kept, "plan");
	const char *id = pl_json_str_or(r->kept, "id", "?");
	char *why = NULL, *msg = NULL;

	r->pp = NULL;
	if (err) {
		run_refused(r, err, errmsg);
		return;
	}
	if ((why = pl_plan_stale(saved, fresh)) != NULL) {
		msg = pl_asprintf(
			"the cluster changed since plan %s was made (%s); refusing to apply a "
			"stale plan (plan again)",
			id, why);
		err = PL_ECONFLICT;
	} else if ((why = pl_planning_differs(saved, fresh)) != NULL) {
		msg = pl_asprintf(
			"plan %s %s, which a plan of %s now does not (the config changed; "
			"plan again)",
			id, why, r->cfg ? "the config sent with it" : pl_config_path(rs->s->cfg));
		err = PL_ECONFLICT;
	} else if (json_array_size(json_object_get(fresh, "blocked"))) {
		msg = pl_asprintf(
			"plan %s has blocked changes (its \"blocked\" says why); nothing was "
			"done",
			id);
		err = PL_EINVAL;
	} else if (!pl_plan_has_changes(fresh)) {
		msg = pl_asprintf("plan %s has no changes: the cluster matches the config", id);
		err = PL_EINVAL;
	} else {
		r->ao.backup_storage =
			json_string_value(pl_config_get(run_session(r)->cfg, "/backup/storage"));
		msg = pl_planning_deletes_refused(run_session(r)->cfg, fresh, &r->ao,
						  "allow_delete");
		err = msg ? PL_EINVAL : 0;
	}
	if (err == 0) {
		/* the same changes: the fresh plan is the one carried out */
		r->plan = json_incref(fresh);
		r->owned = pl_apply_owned(snap, pl_config_project(run_session(r)->cfg));
		err = run_go(r, &msg);
	}
	if (err) {
		run_refused(r, err, msg);
	} else {
		say_started(r);
	}
	free(why);
	free(msg);
}

/* A rollback's check (plan/rollback_check.h) answered: it goes ahead
 * whole, or not at all. */
static void
on_rollback_checked(int err, const json_t *blocked, const char *errmsg, void *arg)
{
	struct run *r = arg;
	char *msg = NULL;
	const json_t *b;
	size_t i;

	json_decref(r->storages);
	r->storages = NULL;
	if (err) {
		run_refused(r, err, errmsg);
		return;
	}
	json_array_foreach(blocked, i, b) {
		char *longer = pl_asprintf("%s%s%s: %s", msg ? msg : "", msg ? "; " : "",
					   pl_json_str_or(b, "guest", "?"),
					   pl_json_str_or(b, "reason", "?"));

		free(msg);
		msg = longer;
	}
	if (msg) { /* no guest half-way back */
		char *full = pl_asprintf("rollback refused; nothing was done: %s", msg);

		run_refused(r, PL_ECONFLICT, full);
		free(full);
	} else if ((err = run_go(r, &msg)) == 0) {
		say_started(r);
	} else {
		run_refused(r, err, msg);
	}
	free(msg);
}

/* The run's first step, from the loop: once no sync of the server's holds
 * the store (a write now would join its transaction), the cluster's lock,
 * then an apply's fresh plan, or a rollback's start. */
static void
on_step(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	struct pl_serve_runs *rs = r->rs;
	char *err = NULL;
	int e;

	(void)fd;
	(void)what;
	if ((rs->syncing && rs->syncing(rs->refresh)) || pl_state_in_transaction(rs->s->state)) {
		struct timeval tv = { 0, 50000 };

		if (++r->waited > PL_SERVE_STORE_WAIT * 20) {
			run_refused(r, PL_ECONFLICT,
				    "the server's sync kept the state store busy; try again");
			return;
		}
		evtimer_add(r->later, &tv);
		return;
	}
	/* before planning: an apply must not plan against half-made guests */
	if ((e = pl_guard_take(&r->guard, run_session(r), &err)) == 0) {
		if (!strcmp(r->kind, "apply")) {
			r->pp = pl_planning_plan_start(run_session(r), &r->po, on_replanned, r);
			return;
		}
		if (!strcmp(r->kind, "rollback") &&
		    (e = pl_state_storages(rs->s->state, &r->storages, &err)) == 0) {
			pl_rollback_check_start(rs->s->pve, r->plan, r->storages,
						on_rollback_checked, r);
			return;
		}
		if (e == 0 && (e = run_go(r, &err)) == 0) {
			say_started(r);
			return;
		}
	}
	run_refused(r, e, err);
	free(err);
}

/* The run of this server: syncs held until it ends, its first step next. */
static struct run *
run_new(struct pl_serve_runs *rs, const char *kind, const char *who,
	const struct pl_serve_run_cbs *cbs)
{
	struct run *r = pl_calloc(1, sizeof(*r));

	r->rs = rs;
	r->kind = kind;
	r->who = pl_strdup(who ? who : "?");
	if (cbs)
		r->cbs = *cbs;
	rs->run = r;
	if (rs->hold) {
		r->held = true;
		rs->hold(rs->refresh, true);
	}
	r->later = evtimer_new(rs->s->base, on_step, r);
	event_active(r->later, EV_TIMEOUT, 1);
	return r;
}

int
pl_serve_apply_start(struct pl_serve_runs *rs, const char *plan_id,
		     const struct pl_serve_apply_opts *o, const char *who,
		     const struct pl_serve_run_cbs *cbs, char **errmsg)
{
	const json_t *so;
	json_t *kept;
	long long newest = 0;
	const char *kind = NULL;
	const json_t *yaml;
	struct pl_config *cfg = NULL;
	struct run *r;
	int e;

	/* a plan of a config sent with it is applied with that config */
	plans_expire(rs, PL_SERVE_PLANS_MAX);
	yaml = plan_id ? json_object_get(rs->plan_yaml, plan_id) : NULL;
	if ((e = no_cluster(rs, yaml == NULL, errmsg)) != 0)
		return e;
	if (yaml && (e = pl_serve_plan_config(json_string_value(yaml), json_string_length(yaml),
					      &cfg, NULL, errmsg)) != 0)
		return e;
	if ((kept = pl_serve_plan_get(rs, plan_id)) == NULL) {
		pl_config_free(cfg);
		return pl_seterr(errmsg, PL_ENOENT,
				 "no plan '%.40s' (a plan is kept %d minutes; make one again)",
				 plan_id ? plan_id : "", PL_SERVE_PLAN_TTL / 60);
	}
	if (rs->run) {
		json_decref(kept);
		pl_config_free(cfg);
		return pl_seterr(errmsg, PL_ECONFLICT,
				 "%s run %lld (asked by %s) is running; wait for it or cancel it",
				 rs->run->kind, rs->run->id, rs->run->who);
	}
	if ((e = pl_runs_newest(rs->s->state, &newest, &kind, errmsg)) != 0) {
		json_decref(kept);
		pl_config_free(cfg);
		return e;
	}
	if (newest > pl_json_int(kept, "after_run", 0)) {
		e = pl_seterr(
			errmsg, PL_ECONFLICT,
			"another %s (run %lld) ran since plan %s was made; refusing to apply a "
			"stale plan (plan again)",
			kind, newest, pl_json_str_or(kept, "id", "?"));
		json_decref(kept);
		pl_config_free(cfg);
		return e;
	}
	r = run_new(rs, "apply", who, cbs);
	r->kept = kept;
	r->stack_rollback = o && o->rollback_on_failure;
	if (o && o->no_stacks) { /* not this time: the next plan shows them again */
		r->kept = json_deep_copy(kept);
		json_decref(kept);
		json_object_del(json_object_get(r->kept, "plan"), "stacks");
		r->po.no_stacks = true;
	}
	if (cfg) {
		r->cfg = cfg;
		r->sess = *rs->s;
		r->sess.cfg = cfg;
	}
	/* the kept plan's options are the ones it was made with; no_backup only
	 * ever from the caller (a plan is never trusted to skip a backup) */
	so = json_object_get(json_object_get(kept, "plan"), "options");
	r->po.allow_replace = json_is_true(json_object_get(so, "allow_replace"));
	r->po.reboot = json_is_true(json_object_get(so, "reboot"));
	r->po.no_snapshot = json_is_false(json_object_get(so, "snapshot"));
	r->po.allow_delete =
		json_is_true(json_object_get(so, "allow_delete")) || (o && o->allow_delete);
	r->profile = pl_json_str(so, "profile") ? pl_strdup(pl_json_str(so, "profile")) : NULL;
	r->po.profile = r->profile;
	r->po.no_backup = o && o->no_backup;
	pl_plan_apply_opts(&r->po, &r->ao);
	r->ao.jobs = o && o->jobs > 0 ? o->jobs : 4;
	return 0;
}

int
pl_serve_rollback_start(struct pl_serve_runs *rs, long long run_id, bool overwrite, const char *who,
			const struct pl_serve_run_cbs *cbs, char **errmsg)
{
	json_t *rec = NULL, *notes = json_array(), *plan = NULL;
	const json_t *c;
	size_t i, noverwrite = 0;
	struct run *r = NULL;
	int e;

	(void)r;
	if ((e = no_cluster(rs, false, errmsg)) != 0)
		goto out;
	if (rs->run) {
		e = pl_seterr(errmsg, PL_ECONFLICT,
			      "%s run %lld (asked by %s) is running; wait for it or cancel it",
			      rs->run->kind, rs->run->id, rs->run->who);
		goto out;
	}
	if ((e = pl_runs_get(rs->s->state, run_id, &rec, errmsg)) != 0)
		goto out;
	if (strcmp(pl_json_str_or(rec, "kind", ""), "apply") &&
	    strcmp(pl_json_str_or(rec, "kind", ""), "deploy") &&
	    strcmp(pl_json_str_or(rec, "kind", ""), "destroy")) {
		e = pl_seterr(errmsg, PL_EINVAL,
			      "run %lld is a %s, not an apply, a deploy or a destroy", run_id,
			      pl_json_str_or(rec, "kind", "?"));
		goto out;
	}
	if (!strcmp(pl_json_str_or(rec, "status", ""), "running")) {
		e = pl_seterr(errmsg, PL_ECONFLICT, "run %lld is still running; cancel it first",
			      run_id);
		goto out;
	}
	plan = pl_runs_rollback_plan(rec, notes);
	json_array_foreach(json_object_get(plan, "changes"), i, c)
		noverwrite += json_is_true(json_object_get(c, "overwrite"));
	if (json_array_size(json_object_get(plan, "changes")) == 0) {
		const char *note = json_string_value(json_array_get(notes, 0));

		e = pl_seterr(errmsg, PL_EINVAL,
			      "run %lld changed no existing guest: nothing to roll back%s%s%s",
			      run_id, note ? " (" : "", note ? note : "", note ? ")" : "");
		goto out;
	}
	if (noverwrite && !overwrite) {
		e = pl_seterr(
			errmsg, PL_EINVAL,
			"rollback of run %lld overwrites %zu guest%s from %s backup%s; nothing "
			"was done (ask again with overwrite)",
			run_id, noverwrite, noverwrite == 1 ? "" : "s",
			noverwrite == 1 ? "its" : "their", noverwrite == 1 ? "" : "s");
		goto out;
	}
	r = run_new(rs, "rollback", who, cbs);
	r->plan = plan;
	plan = NULL;
	/* its changes come from this store's record of the run: the guests
	 * that run touched are the ones it may touch again */
	r->owned = pl_runs_rollback_owned(r->plan);
	r->ao.jobs = 4;
	r->notes = notes;
	notes = NULL;
	/* the stacks it deployed: their records go back with the guests */
	r->rolled = json_incref(json_object_get(rec, "result"));
	r = NULL;
out:
	json_decref(rec);
	json_decref(plan);
	json_decref(notes);
	return e;
}

int
pl_serve_run_cancel(struct pl_serve_runs *rs, long long run_id, char **errmsg)
{
	struct run *r = rs->run;

	if (r == NULL || r->id != run_id || (r->a == NULL && r->deploy == NULL))
		return pl_seterr(errmsg, PL_ENOENT, "run %lld is not running in this server",
				 run_id);
	if (r->deploy) { /* its stacks: the command in the guest is given up */
		r->guard.stop = PL_APPLY_STOP;
		pl_log_info("serve: run %lld: stop asked while deploying stacks", run_id);
		pl_deploy_job_stop(r->deploy);
		return 0;
	}
	/* the first stops scheduling; a second stops waiting, as Ctrl-C twice */
	r->guard.stop = r->guard.stop ? PL_APPLY_ABANDON : PL_APPLY_STOP;
	pl_log_info("serve: run %lld: %s asked", run_id,
		    r->guard.stop == PL_APPLY_STOP ? "stop" : "abandon");
	pl_apply_cancel(r->a, r->guard.stop);
	return 0;
}

int
pl_serve_run_get(struct pl_serve_runs *rs, long long run_id, json_t **run, char **errmsg)
{
	const json_t *via;
	int e;

	*run = NULL;
	if ((e = pl_runs_get(rs->s->state, run_id, run, errmsg)) != 0)
		return e;
	if ((via = json_object_get(json_object_get(*run, "result"), "via")) != NULL)
		json_object_set(*run, "who", (json_t *)via);
	if (rs->run && rs->run->id == run_id && rs->run->running)
		json_object_set_new(
			*run, "progress",
			json_pack("{s:I,s:I,s:O,s:b}", "finished", (json_int_t)rs->run->finished,
				  "total", (json_int_t)rs->run->total, "running", rs->run->running,
				  "stopping", rs->run->guard.stop > 0));
	return 0;
}

long long
pl_serve_run_current(const struct pl_serve_runs *rs)
{
	return rs->run ? rs->run->id : 0;
}

bool
pl_serve_runs_busy(const struct pl_serve_runs *rs)
{
	return rs->run || rs->ops;
}

/* ---- snapshots ------------------------------------------------------------ */

/* PVE's pve-configid, at most 40 long (snapname), and never "current". */
static int
check_snapname(const char *name, char **errmsg)
{
	size_t n = name ? strlen(name) : 0;
	bool ok = n >= 2 && n <= 40 && ((name[0] | 0x20) >= 'a' && (name[0] | 0x20) <= 'z');

	for (size_t i = 1; ok && i < n; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		     (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '-';
	if (ok && strcmp(name, "current"))
		return 0;
	return pl_seterr(
		errmsg, PL_EINVAL,
		"'%.60s' is not a snapshot name (a letter, then letters, digits, - or _; 2 "
		"to 40 long; not 'current')",
		name ? name : "");
}

static void snap_step(struct op *o);

static void
on_act(const json_t *result, void *arg)
{
	struct op *o = arg;
	const char *error = pl_json_str(result, "error");
	json_t *res;

	if (o->failed) { /* the way back taken for nothing is gone again */
		op_end(o, PL_ETASK, o->failed, pl_json_str(o->failed, "error"));
		return;
	}
	if (error && o->kept && !strcmp(o->what, "rollback") &&
	    !strcmp(pl_json_str_or(result, "action", ""), "rollback")) {
		/* the guest is as it was: the snapshot taken before is not needed
		 * (and on ZFS it is what kept the rollback from being possible) */
		res = json_deep_copy(result);
		if (strstr(error, "most recent") || strstr(error, "can't rollback")) {
			char *hint = pl_asprintf(
				"%s (this storage rolls back only to the newest "
				"snapshot: ask again with keep false, and what the guest "
				"is now is lost)",
				error);

			json_object_set_new(res, "error", json_string(hint));
			free(hint);
		}
		o->failed = res;
		free(o->suffix);
		o->suffix = pl_asprintf("snapshot/%s", o->kept);
		pl_act_call(o->rs->s, "delsnapshot", "DELETE", o->suffix, o->entry, NULL, 600000,
			    on_act, o);
		return;
	}
	if (error) {
		op_end(o, strstr(error, "guest is locked") ? PL_ECONFLICT : PL_ETASK, result,
		       error);
		return;
	}
	if (o->kept && !strcmp(o->what, "rollback") &&
	    !strcmp(pl_json_str_or(result, "action", ""), "snapshot")) {
		/* the way back is taken: now the rollback itself */
		o->what = "rollback-now";
		snap_step(o);
		return;
	}
	res = json_deep_copy(result);
	if (o->kept)
		json_object_set_new(res, "kept", json_string(o->kept));
	pl_log_info("serve: %s of snapshot '%s' of %s for %s: ok", o->what, o->name,
		    pl_json_str_or(result, "name", "?"), o->who);
	if (o->rs->changed)
		o->rs->changed(o->rs->changed_arg);
	op_end(o, 0, res, NULL);
	json_decref(res);
}

/* Do what o asks of its guest, now that its entry is known. */
static void
snap_step(struct op *o)
{
	free(o->suffix);
	o->suffix = NULL;
	if (!strcmp(o->what, "create")) {
		pl_act_call(o->rs->s, "snapshot", "POST", "snapshot", o->entry, o->params, 600000,
			    on_act, o);
	} else if (!strcmp(o->what, "rollback") && o->kept) {
		json_t *p = json_pack("{s:s,s:s}", "snapname", o->kept, "description",
				      "taken by pvelab before a rollback asked through its API");

		pl_act_call(o->rs->s, "snapshot", "POST", "snapshot", o->entry, p, 600000, on_act,
			    o);
		json_decref(p);
	} else if (!strcmp(o->what, "rollback") || !strcmp(o->what, "rollback-now")) {
		o->what = "rollback";
		o->suffix = pl_asprintf("snapshot/%s/rollback", o->name);
		pl_act_call(o->rs->s, "rollback", "POST", o->suffix, o->entry, NULL, 600000, on_act,
			    o);
	} else {
		o->suffix = pl_asprintf("snapshot/%s", o->name);
		pl_act_call(o->rs->s, "delsnapshot", "DELETE", o->suffix, o->entry, NULL, 600000,
			    on_act, o);
	}
}

/* The guest's snapshots: the answer to a list, else the check that the one
 * named is there before rolling back to it or deleting it. */
static void
on_snapshots(const struct pl_pve_result *res, void *arg)
{
	struct op *o = arg;
	json_t *list;
	const json_t *t;
	bool found = false;
	size_t i;

	if (res->err) {
		op_end(o, res->err, NULL, res->errmsg);
		return;
	}
	list = json_array();
	json_array_foreach(res->data, i, t) {
		if (!strcmp(pl_json_str_or(t, "name", ""), "current"))
			continue;
		found |= o->name && !strcmp(pl_json_str_or(t, "name", ""), o->name);
		json_array_append(list, (json_t *)t);
	}
	if (!strcmp(o->what, "list")) {
		op_end(o, 0, list, NULL);
	} else if (!found && strcmp(o->what, "create")) {
		char *msg = pl_asprintf("%s (%lld) has no snapshot '%s'",
					pl_json_str_or(o->entry, "name", "?"),
					pl_json_int(o->entry, "vmid", 0), o->name);

		op_end(o, PL_ENOENT, NULL, msg);
		free(msg);
	} else if (found && !strcmp(o->what, "create")) {
		char *msg = pl_asprintf("%s (%lld) has a snapshot '%s' already",
					pl_json_str_or(o->entry, "name", "?"),
					pl_json_int(o->entry, "vmid", 0), o->name);

		op_end(o, PL_ECONFLICT, NULL, msg);
		free(msg);
	} else {
		snap_step(o);
	}
	json_decref(list);
}

static void
on_resources(const struct pl_pve_result *res, void *arg)
{
	struct op *o = arg;
	const json_t *g;
	char *err = NULL, *path;

	if (res->err) {
		op_end(o, res->err, NULL, res->errmsg);
		return;
	}
	if ((g = pl_guest_lookup(res->data, o->guest, &err)) == NULL) {
		op_end(o, PL_ENOENT, NULL, err);
		free(err);
		return;
	}
	o->entry = json_deep_copy(g);
	path = pl_asprintf("/nodes/%s/%s/%lld/snapshot", pl_json_str_or(g, "node", ""),
			   pl_json_str_or(g, "type", "qemu"), pl_json_int(g, "vmid", 0));
	pl_pve_request(o->rs->s->pve, "GET", path, NULL, on_snapshots, o);
	free(path);
}

/* Find the guest live (where it runs now), then its snapshots. */
static int
snap_start(struct pl_serve_runs *rs, const char *what, const char *guest, const char *name,
	   json_t *params, const char *who, pl_serve_runs_cb cb, void *arg, char **errmsg)
{
	json_t *q;
	struct op *o;
	int e;

	if ((e = no_cluster(rs, false, errmsg)) != 0 ||
	    (name && (e = check_snapname(name, errmsg)) != 0)) {
		json_decref(params);
		return e;
	}
	o = op_new(rs, who, cb, arg);
	o->what = what;
	o->guest = pl_strdup(guest ? guest : "");
	o->name = name ? pl_strdup(name) : NULL;
	o->params = params;
	q = json_pack("{s:s}", "type", "vm");
	pl_pve_request(rs->s->pve, "GET", "/cluster/resources", q, on_resources, o);
	json_decref(q);
	return 0;
}

int
pl_serve_snapshots_list(struct pl_serve_runs *rs, const char *guest, pl_serve_runs_cb cb, void *arg,
			char **errmsg)
{
	return snap_start(rs, "list", guest, NULL, NULL, NULL, cb, arg, errmsg);
}

int
pl_serve_snapshot_create(struct pl_serve_runs *rs, const char *guest, const char *name,
			 bool vmstate, const char *description, const char *who,
			 pl_serve_runs_cb cb, void *arg, char **errmsg)
{
	json_t *p = json_pack("{s:s}", "snapname", name ? name : "");

	if (vmstate)
		json_object_set_new(p, "vmstate", json_integer(1));
	if (description)
		json_object_set_new(p, "description", json_string(description));
	return snap_start(rs, "create", guest, name, p, who, cb, arg, errmsg);
}

int
pl_serve_snapshot_rollback(struct pl_serve_runs *rs, const char *guest, const char *name,
			   bool no_keep, const char *who, pl_serve_runs_cb cb, void *arg,
			   char **errmsg)
{
	int e = snap_start(rs, "rollback", guest, name, NULL, who, cb, arg, errmsg);

	if (e == 0 && !no_keep) /* the op just made is the first of the list */
		rs->ops->kept = pl_asprintf("pvelab-pre-rollback-%lld", (long long)time(NULL));
	return e;
}

int
pl_serve_snapshot_delete(struct pl_serve_runs *rs, const char *guest, const char *name,
			 const char *who, pl_serve_runs_cb cb, void *arg, char **errmsg)
{
	return snap_start(rs, "delete", guest, name, NULL, who, cb, arg, errmsg);
}

/* The server stops and its run has not ended in time: stop waiting. */
static void
on_give_up(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_runs *rs = arg;

	(void)fd;
	(void)what;
	if (rs->run && rs->run->a) {
		pl_log_warn("serve: run %lld: stopping took too long; Proxmox finishes the tasks "
			    "in flight",
			    rs->run->id);
		rs->run->guard.stop = PL_APPLY_ABANDON;
		pl_apply_cancel(rs->run->a, PL_APPLY_ABANDON);
	}
}

void
pl_serve_runs_free(struct pl_serve_runs *rs)
{
	if (rs == NULL)
		return;
	/* the server is going: no sync after, none released to start now */
	rs->changed = NULL;
	rs->hold = NULL;
	rs->syncing = NULL;
	/* a run in flight stops as on Ctrl-C: nothing new starts, each change in
	 * flight ends after its task (at most PL_SERVE_STOP_WAIT seconds, then
	 * the tasks are left to Proxmox), and it is recorded interrupted */
	if (rs->run) {
		struct run *r = rs->run;
		struct timeval tv = { PL_SERVE_STOP_WAIT, 0 };
		struct event *t = evtimer_new(rs->s->base, on_give_up, rs);

		if (!r->started_said && r->cbs.started) {
			r->started_said = true;
			r->cbs.started(PL_ECANCEL, NULL, "the server is stopping", r->cbs.arg);
		}
		memset(&r->cbs, 0, sizeof(r->cbs));
		if (r->deploy) {
			pl_log_info("serve: stopping %s run %lld's stacks", r->kind, r->id);
			pl_deploy_job_stop(r->deploy);
		}
		if (r->a) {
			pl_log_info("serve: stopping %s run %lld", r->kind, r->id);
			r->guard.stop = PL_APPLY_STOP;
			pl_apply_cancel(r->a, PL_APPLY_STOP);
			evtimer_add(t, &tv);
		}
		while (rs->run == r && (r->a || r->deploy || r->prune))
			if (event_base_loop(rs->s->base, EVLOOP_ONCE) != 0)
				break;
		event_free(t);
		if (rs->run == r)
			run_free(r);
	}
	while (rs->ops) {
		struct op *o = rs->ops;

		if (o->pp)
			pl_planning_plan_cancel(o->pp);
		/* what is in flight is dropped (the loop has ended): its caller
		 * hears so now */
		op_end(o, PL_ECANCEL, NULL, "the server is stopping");
	}
	json_decref(rs->plans);
	json_decref(rs->plan_yaml);
	free(rs);
}
