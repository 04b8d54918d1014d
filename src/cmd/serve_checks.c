/*
 * The checks module of pvelab serve (docs/checks.md): the declared checks on
 * the scheduler, the cluster's own checks recomputed from each resource list
 * the background refresh reads (no API call of their own but the backup
 * storages' content after each sync: serve_checks_backups.c), each state change
 * written to the store (when no sync holds it) and sent as a "check" event,
 * alerts through the notifiers, and the routes under /api/v1/checks.
 */
#include "core/common.h"
#include "cmd/serve_checks.h"
#include "check/alerts.h"
#include "check/check.h"
#include "cmd/connect.h"
#include "cmd/serve_api.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "plan/runs.h"
#include "serve/serve.h"
#include "state/state.h"

#include <event2/event.h>
#include <fnmatch.h>
#include <time.h>

/* Changes kept in memory while the store cannot take them. */
#define PENDING_MAX 10000
/* Changes a check's page shows. */
#define CHANGES_SHOWN 50

static void
arm(struct event *ev, double secs)
{
	struct timeval tv = { (time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6) };

	evtimer_add(ev, &tv);
}

/* Write the changes waiting, unless a sync holds the store: it writes from
 * its own transaction, which a write from here would join. */
static void
flush(struct pl_serve_checks *c)
{
	char *err = NULL;
	size_t done = 0;

	if (json_array_size(c->pending) == 0)
		return;
	if (c->refresh->job) {
		if (!evtimer_pending(c->flush_ev, NULL))
			arm(c->flush_ev, 1);
		return;
	}
	while (done < json_array_size(c->pending) &&
	       pl_state_check_event_add(c->s->state, json_array_get(c->pending, done), &err) == 0)
		done++;
	for (size_t i = 0; i < done; i++)
		json_array_remove(c->pending, 0);
	if (err) {
		pl_log_warn("checks: cannot record a change (%zu waiting): %s",
			    json_array_size(c->pending), err);
		free(err);
		arm(c->flush_ev, 5);
	}
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	PL_UNUSED(fd);
	PL_UNUSED(what);
	flush(arg);
}

static void
on_alert(const json_t *ev, void *arg)
{
	struct pl_serve_checks *c = arg;

	pl_serve_emit(c->sv, "alert", json_deep_copy(ev));
}

static void
on_result(const json_t *state, const json_t *change, void *arg)
{
	struct pl_serve_checks *c = arg;

	if (change) {
		const json_t *res = json_object_get(change, "result");

		pl_log_info("checks: %s %s -> %s%s%s", pl_json_str_or(change, "name", "?"),
			    pl_json_str_or(change, "from", "pending"),
			    pl_json_str_or(change, "to", "?"),
			    pl_json_str(res, "error") ? ": " : "",
			    pl_json_str_or(res, "error", ""));
		json_array_append(c->pending, (json_t *)change);
		while (json_array_size(c->pending) > PENDING_MAX)
			json_array_remove(c->pending, 0);
		flush(c);
		pl_serve_emit(c->sv, "check", json_deep_copy(change));
	}
	pl_alerts_update(c->alerts, state);
}

/* Silences set by pvelab silence and runs of pvelab apply (other processes)
 * are read from the store at most every few seconds, not for each notice. */
#define SILENCES_TTL 5

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Whether silence pattern p matches a check: its name (a shell pattern),
 * or its guest's name. */
static bool
silence_matches(const char *p, const json_t *state)
{
	const char *name = pl_json_str_or(state, "name", ""), *guest = pl_json_str(state, "guest");

	return fnmatch(p, name, 0) == 0 || (guest && !strcmp(p, guest)) ||
	       (pl_str_startswith(name, "guest:") && !strcmp(p, name + 6));
}

/* The newest apply, rollback or destroy still running (its process alive),
 * or 0. */
static long long
changing_run(struct pl_serve_checks *c)
{
	static const char *const kinds[] = { "apply", "rollback", "destroy" };
	long long id = 0;

	for (size_t k = 0; k < PL_ARRAY_LEN(kinds) && !id; k++) {
		json_t *runs = NULL;
		char *err = NULL;

		if (pl_runs_list(c->s->state, kinds[k], 1, &runs, &err) == 0 &&
		    !strcmp(pl_json_str_or(json_array_get(runs, 0), "status", ""), "running"))
			id = pl_json_int(json_array_get(runs, 0), "id", 0);
		json_decref(runs);
		free(err);
	}
	return id;
}

/* Why a check's notices wait (alerts.h's hold): a silence of pvelab silence,
 * or, for a guest's checks, an apply (rollback, destroy) that is running:
 * it may stop and start guests on purpose. */
static char *
held(const json_t *state, void *arg)
{
	struct pl_serve_checks *c = arg;
	double now = now_s();
	const char *name = pl_json_str_or(state, "name", "");
	const json_t *x;
	size_t i;

	if (now - c->silences_at > SILENCES_TTL && !c->refresh->job) {
		json_t *all = NULL;
		char *err = NULL;

		if (pl_state_silences(c->s->state, now, &all, &err) == 0) {
			json_decref(c->silences);
			c->silences = all;
		} else {
			pl_log_warn("checks: cannot read the silences: %s", err);
		}
		free(err);
		c->busy_run = changing_run(c);
		c->silences_at = now;
	}
	json_array_foreach(c->silences, i, x) {
		if (pl_json_num(x, "until", 0) > now &&
		    silence_matches(pl_json_str_or(x, "pattern", ""), state))
			return pl_json_str(x, "reason") ?
				       pl_asprintf("silence %lld (%s)", pl_json_int(x, "id", 0),
						   pl_json_str(x, "reason")) :
				       pl_asprintf("silence %lld", pl_json_int(x, "id", 0));
	}
	if (c->busy_run && (pl_json_str(state, "guest") || pl_str_startswith(name, "guest:")))
		return pl_asprintf("run %lld (an apply, rollback or destroy) is running",
				   c->busy_run);
	return NULL;
}

/* Before a probe: a guest the cluster checks found stopped or on an offline
 * node is not probed (one failure, not a flood). */
static void
prepare(json_t *spec, void *arg)
{
	struct pl_serve_checks *c = arg;

	pl_check_mark_cause(spec, c->cluster, c->causes);
}

/* The cluster's checks from the newest resource list, and the refresh's own. */
static void
on_cluster(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_checks *c = arg;
	struct pl_serve_refresh *f = c->refresh;
	json_t *res, *x;
	size_t i;

	PL_UNUSED(fd);
	PL_UNUSED(what);
	arm(c->cluster_ev, (double)(f->status_interval > 0 ? f->status_interval : 10));
	if (f->live && f->status_ok_at > c->cluster_seen) {
		json_t *causes = NULL;

		c->cluster_seen = f->status_ok_at;
		res = pl_check_cluster(c->s->cfg, c->cl_opts, f->live, &causes);
		json_decref(c->cluster);
		json_decref(c->causes);
		c->cluster = res;
		c->causes = causes;
		json_array_foreach(res, i, x)
			pl_check_sched_feed(c->sched, x);
	}
	pl_serve_checks_backups(c);
	x = f->status_failures ?
		    json_pack("{s:s,s:s,s:s,s:s}", "name", "cluster", "type", "api", "status",
			      PL_CHECK_DOWN, "error",
			      f->status_error ? f->status_error : "the cluster does not answer") :
		    json_pack("{s:s,s:s,s:s}", "name", "cluster", "type", "api", "status",
			      PL_CHECK_UP);
	if (f->status_failures || f->status_ok_at > 0)
		pl_check_sched_feed(c->sched, x);
	json_decref(x);
}

/* ---- routes ---- */

static void
get_checks(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_checks *c = arg;
	json_t *list = pl_check_sched_list(c->sched), *x;
	json_t *sum = json_pack("{s:i,s:i,s:i,s:i,s:i}", "up", 0, "warning", 0, "down", 0,
				"skipped", 0, "pending", 0);
	size_t i;

	json_array_foreach(list, i, x) {
		const char *st = pl_json_str_or(x, "status", "pending");

		json_object_set_new(sum, st, json_integer(pl_json_int(sum, st, 0) + 1));
	}
	pl_serve_reply(req, 200,
		       json_pack("{s:o,s:o,s:o}", "checks", list, "summary", sum, "alerts",
				 pl_alerts_info(c->alerts)));
}

static void
answer_check(struct pl_serve_req *req, struct pl_serve_checks *c, const char *name)
{
	json_t *out = pl_check_sched_get(c->sched, name), *changes = NULL, *x;
	char *err = NULL;
	size_t i;

	if (out == NULL) {
		pl_serve_error(req, 404, "not_found", "name",
			       "no check '%.200s' (GET /api/v1/checks lists them)", name);
		return;
	}
	if (pl_state_check_events(c->s->state, name, CHANGES_SHOWN, &changes, &err) != 0) {
		pl_log_warn("checks: %s", err);
		changes = json_array();
	}
	/* those not in the store yet come first: they are the newest */
	for (i = json_array_size(c->pending); i > 0; i--) {
		x = json_array_get(c->pending, i - 1);
		if (!strcmp(pl_json_str_or(x, "name", ""), name))
			json_array_insert(changes, 0, x);
	}
	json_object_set_new(out, "changes", changes);
	free(err);
	pl_serve_reply(req, 200, out);
}

static void
get_check(struct pl_serve_req *req, void *arg)
{
	answer_check(req, arg, pl_serve_path_param(req, "name"));
}

/* Any name, those with a '/' the path cannot carry (api-cert:https://…)
 * included: GET /api/v1/check?name=NAME. */
static void
get_check_by_query(struct pl_serve_req *req, void *arg)
{
	const char *name = pl_serve_query(req, "name");

	if (name == NULL || *name == '\0') {
		pl_serve_error(req, 400, "bad_request", "name",
			       "name is missing (GET /api/v1/check?name=NAME)");
		return;
	}
	answer_check(req, arg, name);
}

static const struct pl_serve_param by_query[] = {
	{ "name", "the check's name, percent-encoded (api-cert:https%3A%2F%2Fpve1%3A8006)" },
	{ NULL, NULL },
};

static void
get_service_check(struct pl_serve_req *req, void *arg)
{
	char *name = pl_asprintf("%s/%s", pl_serve_path_param(req, "guest"),
				 pl_serve_path_param(req, "service"));

	answer_check(req, arg, name);
	free(name);
}

#define STATE                                                                                      \
	"{\"type\":\"object\",\"required\":[\"name\",\"status\"],\"properties\":{"                 \
	"\"name\":{\"type\":\"string\"},\"type\":{\"type\":\"string\"},"                           \
	"\"guest\":{\"type\":\"string\"},\"target\":{\"type\":\"string\"},"                        \
	"\"status\":{\"enum\":[\"pending\",\"up\",\"warning\",\"down\",\"skipped\"]},"             \
	"\"since\":{\"type\":\"number\"},\"last\":{\"type\":\"object\"},"                          \
	"\"fails\":{\"type\":\"integer\"},\"probes\":{\"type\":\"integer\"},"                      \
	"\"changes\":{\"type\":\"integer\"},\"flaps\":{\"type\":\"integer\"},"                     \
	"\"flapping\":{\"type\":\"boolean\"},\"overlaps\":{\"type\":\"integer\"},"                 \
	"\"lag_ms\":{\"type\":\"number\"},\"interval\":{\"type\":\"integer\"},"                    \
	"\"retries\":{\"type\":\"integer\"}}}"
#define ONE_CHECK                                                                                  \
	"{\"allOf\":[" STATE ",{\"type\":\"object\",\"required\":[\"results\",\"changes\"],"       \
	"\"properties\":{\"results\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"        \
	"\"changes\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":"             \
	"[\"name\",\"ts\",\"to\"]}}}}]}"

static const struct pl_serve_route routes[] = {
	{ "GET", "/api/v1/checks", PL_ROLE_VIEWER, 200,
	  "every check's state (declared checks on their schedule, the cluster's own), a summary "
	  "by status, and the notifiers with their counters",
	  "{\"type\":\"object\",\"required\":[\"checks\",\"summary\",\"alerts\"],\"properties\":{"
	  "\"checks\":{\"type\":\"array\",\"items\":" STATE "},\"summary\":{\"type\":\"object\"},"
	  "\"alerts\":{\"type\":\"object\",\"required\":[\"notifiers\",\"firing\"]}}}",
	  NULL, NULL, get_checks, 0 },
	{ "GET", "/api/v1/checks/{name}", PL_ROLE_VIEWER, 200,
	  "one check: its state, its last results (newest first) and its recorded state changes "
	  "(newest first)",
	  ONE_CHECK, NULL, NULL, get_check, 0 },
	{ "GET", "/api/v1/checks/{guest}/{service}", PL_ROLE_VIEWER, 200,
	  "a guest's service check (GUEST/SERVICE), as /api/v1/checks/{name}", ONE_CHECK, NULL,
	  NULL, get_service_check, 0 },
	{ "GET", "/api/v1/check", PL_ROLE_VIEWER, 200,
	  "one check by a name given as a query parameter, as /api/v1/checks/{name}: for names "
	  "with a '/', which no path segment carries",
	  ONE_CHECK, NULL, by_query, get_check_by_query, 0 },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};

/* The API endpoints whose certificates are checked: PVELAB_URL, else the
 * config's cluster.endpoints (a new comma-separated string, or NULL). */
static char *
endpoints(const struct pl_config *cfg)
{
	const char *env = getenv("PVELAB_URL");
	const json_t *l = cfg ? pl_config_get(cfg, "/cluster/endpoints") : NULL, *v;
	char *out = NULL;
	size_t i;

	if (env && *env)
		return pl_strdup(env);
	json_array_foreach(l, i, v) {
		char *n = pl_asprintf("%s%s%s", out ? out : "", out ? "," : "",
				      json_string_value(v) ? json_string_value(v) : "");

		free(out);
		out = n;
	}
	return out;
}

int
pl_serve_checks_init(struct pl_serve_checks *c, struct pl_session *s,
		     struct pl_serve_refresh *refresh, struct pl_serve *sv, char **errmsg)
{
	const json_t *chk = s->cfg ? pl_config_get(s->cfg, "/checks") : NULL;
	const json_t *al = s->cfg ? pl_config_get(s->cfg, "/alerts") : NULL;
	json_t *specs, *x;
	size_t i;
	int r;

	memset(c, 0, sizeof(*c));
	c->s = s;
	c->refresh = refresh;
	c->sv = sv;
	c->module.name = "checks";
	c->module.routes = routes;
	c->module.arg = c;
	c->pending = json_array();
	c->cluster = json_array();
	c->causes = json_object();
	c->cl_opts = pl_check_cluster_opts(s->cfg);
	if ((r = pl_alerts_new(s->base, s->cfg, on_alert, c, &c->alerts, errmsg)) != 0)
		return r;
	pl_alerts_set_hold(c->alerts, held, c);
	c->sched = pl_check_sched_new(
		s->base, &(struct pl_check_sched_opts){
				 .concurrency = (size_t)pl_json_int(chk, "concurrency",
								    PL_CHECK_CONCURRENCY),
				 .flap_window = (long)pl_json_int(al, "flap_window", 3600),
				 .flap_threshold = (int)pl_json_int(al, "flap_threshold", 5),
				 .prepare = prepare,
				 .result = on_result,
				 .arg = c,
			 });
	c->flush_ev = evtimer_new(s->base, on_flush, c);
	c->cluster_ev = evtimer_new(s->base, on_cluster, c);
	specs = s->cfg ? pl_check_specs(s->cfg) : json_array();
	if (s->pve) {
		char *eps = endpoints(s->cfg);

		pl_check_cert_specs(specs, c->cl_opts, eps);
		free(eps);
		arm(c->cluster_ev, 1);
	}
	json_array_foreach(specs, i, x)
		pl_check_sched_add(c->sched, x);
	if (json_array_size(specs))
		pl_log_info("checks: %zu scheduled%s", json_array_size(specs),
			    c->alerts ? ", alerts on" : "");
	json_decref(specs);
	return 0;
}

void
pl_serve_checks_release(struct pl_serve_checks *c)
{
	if (c->s == NULL)
		return;
	pl_serve_checks_backups_stop(c);
	pl_check_sched_free(c->sched);
	pl_alerts_free(c->alerts);
	if (c->flush_ev) {
		flush(c);
		event_free(c->flush_ev);
	}
	if (c->cluster_ev)
		event_free(c->cluster_ev);
	json_decref(c->cl_opts);
	json_decref(c->cluster);
	json_decref(c->causes);
	json_decref(c->pending);
	json_decref(c->silences);
	c->s = NULL;
}
