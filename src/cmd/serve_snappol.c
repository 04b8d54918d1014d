/*
 * The snapshot policies of pvelab serve: each snapshot_policies entry with
 * a schedule runs on its calendar event on the server's loop (the engine is
 * plan/snappol.c's, asynchronous), one run of a policy at a time; each run
 * is logged, recorded in the store as a "snapshot-policy" run, sent on the
 * event stream and shown by GET /api/v1/snapshot-policies; an operator can
 * run one now (POST /api/v1/snapshot-policies/{label}/run).
 *
 * A run missed while the server was down, or while the policy's previous
 * run still went on, is not made up: the next one is the schedule's next
 * event after now. Making up at start would take snapshots at times the
 * schedule does not name, and a server restarted N times would take N of
 * them and prune N real ones (keep counts snapshots, not days), which is
 * why cv4pve-autosnap from cron and systemd timers (Persistent=false, their
 * default) do not either. `pvelab snapshot-policy run LABEL` runs one by hand.
 */
#include "core/common.h"
#include "cmd/serve_snappol.h"
#include "cmd/serve_api.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/calendar.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "plan/runs.h"
#include "plan/snappol.h"
#include "serve/serve.h"

#include <event2/event.h>
#include <sys/time.h>
#include <time.h>

struct pl_snappol_sched {
	struct pl_serve_snappol *m;
	struct pl_session *s; /* its cluster's: store, API client */
	const char *cluster;  /* its name when serve watches several, else NULL */
	json_t *policy; /* a copy of the config's entry */
	const char *label;
	bool scheduled;
	struct pl_calendar cal;
	time_t next;
	struct event *timer;
	struct pl_snappol *running;
	long long run_id; /* its run in the store (0: not recorded) */
	double started;
	char *trigger; /* "schedule" or the token that asked */
	long long runs, missed;
	json_t *last; /* the last run's summary, or NULL */
};

static void arm(struct pl_snappol_sched *p);

/* An event of p's: with several clusters it says whose. */
static void
emit(const struct pl_snappol_sched *p, json_t *ev)
{
	if (p->cluster)
		json_object_set_new(ev, "cluster", json_string(p->cluster));
	pl_serve_emit(p->m->sv, "snapshot-policy", ev);
}

/* What a run's result says, for the API and the event stream. */
static json_t *
summary(const struct pl_snappol_sched *p, int r, const json_t *res, double finished)
{
	json_t *errors = json_array(), *pruned = json_array(), *taken = json_array();
	const json_t *g;
	size_t i;

	json_array_foreach(json_object_get(res, "guests"), i, g) {
		const json_t *n;
		size_t k;

		if (json_is_true(json_object_get(g, "taken")))
			json_array_append_new(
				taken,
				json_pack("{s:s,s:I,s:s}", "guest", pl_json_str_or(g, "guest", "?"),
					  "vmid", (json_int_t)pl_json_int(g, "vmid", 0), "snapshot",
					  pl_json_str_or(g, "snapshot", "")));
		json_array_foreach(json_object_get(g, "pruned"), k, n)
			json_array_append_new(pruned,
					      json_pack("{s:s,s:I,s:O}", "guest",
							pl_json_str_or(g, "guest", "?"), "vmid",
							(json_int_t)pl_json_int(g, "vmid", 0),
							"snapshot", n));
		if (pl_json_str(g, "error") && strcmp(pl_json_str_or(g, "status", ""), "skipped"))
			json_array_append_new(errors,
					      json_pack("{s:s,s:I,s:s,s:s}", "guest",
							pl_json_str_or(g, "guest", "?"), "vmid",
							(json_int_t)pl_json_int(g, "vmid", 0),
							"status", pl_json_str_or(g, "status", "?"),
							"error", pl_json_str(g, "error")));
	}
	json_array_foreach(json_object_get(res, "missing"), i, g)
		json_array_append_new(errors, json_pack("{s:O,s:s,s:s}", "guest", g, "status",
							"missing", "error", "no such guest"));
	return json_pack("{s:s,s:s,s:s,s:I,s:f,s:f,s:I,s:I,s:I,s:I,s:o,s:o,s:o}", "label", p->label,
			 "status", r == 0 ? "ok" : "failed", "trigger", p->trigger, "run_id",
			 (json_int_t)p->run_id, "started", p->started, "finished", finished, "ok",
			 (json_int_t)pl_json_int(res, "ok", 0), "failed",
			 (json_int_t)pl_json_int(res, "failed", 0), "unsupported",
			 (json_int_t)pl_json_int(res, "unsupported", 0), "skipped",
			 (json_int_t)pl_json_int(res, "skipped", 0), "taken", taken, "pruned",
			 pruned, "errors", errors);
}

static void
on_done(int r, json_t *result, void *arg)
{
	struct pl_snappol_sched *p = arg;
	json_t *sum = summary(p, r, result, (double)time(NULL));
	const json_t *e;
	char *err = NULL;
	size_t i;

	p->running = NULL;
	if (p->run_id &&
	    pl_runs_finish(p->s->state, p->run_id, r == 0 ? "ok" : "failed", sum, &err) != 0) {
		pl_log_warn("serve: snapshot policy %s: %s", p->label, err);
		free(err);
	}
	json_array_foreach(json_object_get(sum, "errors"), i, e)
		pl_log_warn("serve: snapshot policy %s: %s (%lld): %s", p->label,
			    pl_json_str_or(e, "guest", "?"), pl_json_int(e, "vmid", 0),
			    pl_json_str_or(e, "error", "?"));
	pl_log_info("serve: snapshot policy %s %s: %zu taken, %zu pruned, %lld failed, %lld "
		    "cannot snapshot",
		    p->label, r == 0 ? "done" : "failed",
		    json_array_size(json_object_get(sum, "taken")),
		    json_array_size(json_object_get(sum, "pruned")), pl_json_int(sum, "failed", 0),
		    pl_json_int(sum, "unsupported", 0));
	json_decref(p->last);
	p->last = sum;
	emit(p, json_deep_copy(sum));
}

/* Start a run of p now (trigger: "schedule" or who asked); PL_ECONFLICT
 * when one is running, PL_EINVAL without a cluster. */
static int
start(struct pl_snappol_sched *p, const char *trigger, char **errmsg)
{
	struct pl_snappol_opts o = { 0 };
	json_t *one;
	char *err = NULL;

	if (p->running)
		return pl_seterr(errmsg, PL_ECONFLICT,
				 "snapshot policy '%s' is running (since %.0f s ago); one run at "
				 "a time",
				 p->label, (double)time(NULL) - p->started);
	if (p->s->pve == NULL)
		return pl_seterr(errmsg, PL_EINVAL,
				 "pvelab serve has no cluster to snapshot (set PVELAB_URL or "
				 "cluster: in the config)");
	free(p->trigger);
	p->trigger = pl_strdup(trigger);
	p->started = (double)time(NULL);
	p->runs++;
	p->run_id = 0;
	if (pl_runs_begin(p->s->state, "snapshot-policy", &p->run_id, &err) != 0) {
		pl_log_warn("serve: snapshot policy %s: not recorded: %s", p->label, err);
		free(err);
		p->run_id = 0;
	}
	pl_log_info("serve: snapshot policy %s: run %lld (%s)", p->label, p->runs, p->trigger);
	one = json_pack("[O]", p->policy);
	p->running = pl_snappol_start(p->s->base, p->s->pve, one, &o, on_done, p);
	json_decref(one);
	emit(p,
	     json_pack("{s:s,s:s,s:s,s:I,s:f}", "label", p->label, "status", "running", "trigger",
		       p->trigger, "run_id", (json_int_t)p->run_id, "started", p->started));
	return 0;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pl_snappol_sched *p = arg;
	char *err = NULL;

	(void)fd;
	(void)what;
	if (p->running) { /* this event is missed, not queued */
		p->missed++;
		pl_log_warn("serve: snapshot policy %s: still running at its next event; skipped",
			    p->label);
	} else if (start(p, "schedule", &err) != 0) {
		p->missed++;
		pl_log_warn("serve: snapshot policy %s: %s", p->label, err);
		free(err);
	}
	arm(p);
}

/* Wait for the schedule's next event after now (and after the one that
 * just fired: a timer a little early must not fire it twice). */
static void
arm(struct pl_snappol_sched *p)
{
	struct timeval now, tv;
	long long ms;

	gettimeofday(&now, NULL);
	p->next = pl_calendar_next(&p->cal, now.tv_sec > p->next ? now.tv_sec : p->next);
	if (p->next < 0)
		return;
	ms = ((long long)p->next - now.tv_sec) * 1000 - now.tv_usec / 1000;
	tv.tv_sec = ms > 0 ? ms / 1000 : 0;
	tv.tv_usec = ms > 0 ? (ms % 1000) * 1000 : 0;
	evtimer_add(p->timer, &tv);
}

static const char *const states[] = { "idle", "running" };

static json_t *
policy_view(const struct pl_snappol_sched *p)
{
	return json_pack("{s:s,s:O?,s:O,s:s,s:o,s:I,s:I,s:O?,s:s*}", "label", p->label, "schedule",
			 json_object_get(p->policy, "schedule"), "keep",
			 json_object_get(p->policy, "keep"), "state", states[p->running != NULL],
			 "next", p->scheduled && p->next > 0 ? json_integer(p->next) : json_null(),
			 "runs", (json_int_t)p->runs, "missed", (json_int_t)p->missed, "last",
			 p->last, "cluster", p->cluster);
}

/* Whether p is of the cluster the request names (?cluster=; none: any). */
static bool
of_cluster(const struct pl_snappol_sched *p, struct pl_serve_req *req)
{
	const char *want = pl_serve_query(req, "cluster");

	return want == NULL || (p->cluster && !strcmp(p->cluster, want));
}

static void
get_policies(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_snappol *m = arg;
	json_t *out = json_array();

	for (size_t i = 0; i < m->n; i++)
		if (of_cluster(&m->p[i], req))
			json_array_append_new(out, policy_view(&m->p[i]));
	pl_serve_reply(req, 200, out);
}

static void
post_run(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_snappol *m = arg;
	const char *label = pl_serve_path_param(req, "label");
	struct pl_snappol_sched *p = NULL;
	char *err = NULL;
	int r;

	/* each cluster has its own policies: a label two of them use needs
	 * ?cluster= */
	for (size_t i = 0; label && i < m->n; i++) {
		if (strcmp(m->p[i].label, label) || !of_cluster(&m->p[i], req))
			continue;
		if (p) {
			pl_serve_error(
				req, 400, "bad_request", "cluster",
				"snapshot policy '%.64s' is in clusters '%s' and '%s' (choose "
				"one with ?cluster=NAME)",
				label, p->cluster, m->p[i].cluster);
			return;
		}
		p = &m->p[i];
	}
	if (p == NULL) {
		pl_serve_error(req, 404, "not_found", "label",
			       "no snapshot policy labelled '%.64s'", label ? label : "");
		return;
	}
	if ((r = start(p, pl_serve_caller(req) ? pl_serve_caller(req) : "api", &err)) != 0) {
		pl_serve_error(req, r == PL_ECONFLICT ? 409 : 503,
			       r == PL_ECONFLICT ? "conflict" : "unavailable", "label", "%s", err);
		free(err);
		return;
	}
	pl_serve_reply(req, 202, policy_view(p));
}

#define POLICY                                                                                     \
	"{\"type\":\"object\",\"required\":[\"label\",\"keep\",\"state\",\"next\",\"runs\","       \
	"\"missed\"],\"properties\":{\"label\":{\"type\":\"string\"},\"schedule\":{\"type\":"      \
	"[\"string\",\"null\"]},\"keep\":{\"type\":\"integer\"},\"state\":{\"enum\":[\"idle\","    \
	"\"running\"]},\"next\":{\"type\":[\"integer\",\"null\"]},\"runs\":{\"type\":"             \
	"\"integer\"},\"missed\":{\"type\":\"integer\"},\"last\":{\"type\":[\"object\","           \
	"\"null\"],\"required\":[\"status\",\"started\",\"finished\",\"taken\",\"pruned\","        \
	"\"errors\"],\"properties\":{\"status\":{\"enum\":[\"ok\",\"failed\"]},\"taken\":"         \
	"{\"type\":\"array\"},\"pruned\":{\"type\":\"array\"},\"errors\":{\"type\":"               \
	"\"array\"}}}}}"

static const struct pl_serve_param cluster_query[] = {
	{ "cluster", "with several clusters: only this one's policies" },
	{ NULL, NULL },
};

static const struct pl_serve_route routes[] = {
	{ "GET", "/api/v1/snapshot-policies", PL_ROLE_VIEWER, 200,
	  "the snapshot policies: schedule, next run (epoch seconds, null without a schedule), "
	  "whether one runs, and the last run's result (snapshots taken and pruned, errors per "
	  "guest)",
	  "{\"type\":\"array\",\"items\":" POLICY "}", NULL, cluster_query, get_policies, 0 },
	{ "POST", "/api/v1/snapshot-policies/{label}/run", PL_ROLE_OPERATOR, 202,
	  "run a snapshot policy now (as pvelab snapshot-policy run LABEL): 202 at once, 409 "
	  "while it runs; GET /api/v1/snapshot-policies and the event stream follow it",
	  POLICY, "{\"type\":\"object\",\"additionalProperties\":false}", cluster_query, post_run,
	  0 },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};

/* The last recorded run of each label of cluster c's (from before this
 * server started): its policies are m->p[from..m->n). */
static void
load_last(struct pl_serve_snappol *m, const struct pl_serve_cluster *c, size_t from)
{
	json_t *runs = NULL;
	const json_t *r;
	size_t i;

	if (pl_runs_list(c->s->state, "snapshot-policy", 200, &runs, NULL) != 0)
		return;
	json_array_foreach(runs, i, r) {
		const json_t *res = json_object_get(r, "result");
		const char *label = pl_json_str(res, "label");

		for (size_t k = from; label && k < m->n; k++) {
			struct pl_snappol_sched *p = &m->p[k];

			if (!strcmp(p->label, label) && p->last == NULL && json_is_object(res))
				p->last = json_deep_copy(res);
		}
	}
	json_decref(runs);
}

/* The policies of cluster c's view of the config (only its own). */
static const json_t *
policies_of(const struct pl_serve_cluster *c)
{
	return c->s->cfg ? pl_config_get(c->s->cfg, "/snapshot_policies") : NULL;
}

/* Schedule cluster c's policies, in m->p made for all (its timers point
 * into it). */
static void
add_cluster(struct pl_serve_snappol *m, const struct pl_serve_cluster *c)
{
	struct pl_session *s = c->s;
	const json_t *e;
	size_t i, from = m->n;

	json_array_foreach(policies_of(c), i, e) {
		struct pl_snappol_sched *p = &m->p[m->n];
		const char *sched = pl_json_str(e, "schedule");

		if (!pl_json_str(e, "label"))
			continue;
		p->m = m;
		p->s = s;
		p->cluster = c->name;
		p->policy = json_deep_copy(e);
		p->label = pl_json_str(p->policy, "label");
		m->n++;
		if (sched == NULL)
			continue;
		if (pl_calendar_parse(sched, &p->cal, NULL) != 0) { /* validate says why */
			pl_log_warn("serve: snapshot policy %s: schedule '%s' is not a calendar "
				    "event; it runs only when asked",
				    p->label, sched);
			continue;
		}
		p->scheduled = true;
		p->timer = evtimer_new(s->base, on_timer, p);
		arm(p);
		pl_log_info("serve: snapshot policy %s%s%s runs on '%s'", p->label,
			    p->cluster ? " of cluster " : "", p->cluster ? p->cluster : "", sched);
	}
	load_last(m, c, from);
}

void
pl_serve_snappol_init(struct pl_serve_snappol *m, const struct pl_serve_cluster *cl, size_t n,
		      struct pl_serve *sv)
{
	size_t all = 0;

	memset(m, 0, sizeof(*m));
	m->sv = sv;
	m->module.name = "snapshot-policies";
	m->module.routes = routes;
	m->module.arg = m;
	for (size_t i = 0; i < n; i++)
		all += json_array_size(policies_of(&cl[i]));
	m->p = pl_calloc(all + 1, sizeof(*m->p));
	for (size_t i = 0; i < n; i++)
		add_cluster(m, &cl[i]);
}

void
pl_serve_snappol_release(struct pl_serve_snappol *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct pl_snappol_sched *p = &m->p[i];

		if (p->timer)
			event_free(p->timer);
		json_decref(p->policy);
		json_decref(p->last);
		free(p->trigger);
	}
	free(m->p);
	memset(m, 0, sizeof(*m));
}

bool
pl_serve_snappol_busy(const struct pl_serve_snappol *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->p[i].running)
			return true;
	return false;
}
