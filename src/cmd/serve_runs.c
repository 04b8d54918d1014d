/*
 * The plan/apply/rollback/snapshot routes of pvelab serve: each a thin
 * handler on the runs engine (serve/runs.h), whose answers are the CLI's
 * plan, apply and rollback -o json. A route that waits for the engine (a plan,
 * the checks before an apply, a snapshot list) answers from its callback.
 */
#include "core/common.h"
#include "cmd/serve_runs.h"
#include "cmd/serve_api.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "serve/runs.h"
#include "serve/serve.h"

#include <limits.h>

/* A request waiting for the engine. */
struct wait {
	struct pl_serve_runs_api *m;
	struct pl_serve_req *req;
	int status;       /* of a success */
	long long action; /* a snapshot action's id (0: answer the request) */
	size_t cl;        /* the cluster whose engine it waits for (index into api->cl) */
};

/* The runs engine of cluster i (the server's one when it watches one); NULL
 * once the server stops. */
static struct pl_serve_runs *
engine(const struct pl_serve_runs_api *m, size_t i)
{
	if (m->runs == NULL || m->api->ncl == 1)
		return m->runs;
	return m->api->cl[i].runs;
}

/* Several clusters: an answer says whose it is. */
static json_t *
whose(const struct pl_serve_runs_api *m, size_t i, json_t *v)
{
	if (m->api->ncl > 1 && json_is_object(v))
		json_object_set_new(v, "cluster", json_string(m->api->cl[i].name));
	return v;
}

/* The engine's error as the API's: its status, and a code saying which. */
static void
fail(struct pl_serve_req *req, int err, const char *field, const char *msg)
{
	int status = pl_serve_status_of(err);
	const char *code = status == 404 ? "not_found" :
			   status == 409 ? "conflict" :
			   status == 400 ? "refused" :
			   status == 502 ? "cluster_error" :
					   "internal";

	if (err == PL_ECONFLICT && msg && strstr(msg, "guest is locked")) {
		status = 423;
		code = "locked";
	}
	if (err == PL_ECANCEL) {
		status = 503;
		code = "stopping";
	}
	if (err == PL_ENOENT && msg && strstr(msg, "the server has no ")) {
		status = 503;
		code = strstr(msg, "has no config") ? "no_config" : "no_cluster";
	}
	pl_serve_error(req, status, code, field, "%s", msg ? msg : pl_strerror(err));
}

/* "API token NAME": who asked, for the run's record and the log. */
static void
who_of(const struct pl_serve_req *req, char *out, size_t size)
{
	snprintf(out, size, "API token %s", pl_serve_caller(req) ? pl_serve_caller(req) : "?");
}

static void
on_gone(void *arg)
{
	struct wait *w = arg;

	if (engine(w->m, w->cl)) /* NULL: the engine is gone (the server stops) */
		pl_serve_runs_forget(engine(w->m, w->cl), w);
	free(w);
}

static struct wait *
wait_new(struct pl_serve_runs_api *m, struct pl_serve_req *req, int status, size_t cl)
{
	struct wait *w = pl_calloc(1, sizeof(*w));

	w->m = m;
	w->cl = cl;
	w->req = req;
	w->status = status;
	pl_serve_defer(req, on_gone, w);
	return w;
}

/* The engine refused at once: answer now (the handler is still running). */
static void
refused(struct wait *w, int err, const char *field, char *msg)
{
	fail(w->req, err, field, msg);
	free(msg);
	free(w);
}

/* The engine's answer to a waiting request. */
static void
on_answer(int err, const json_t *result, const char *errmsg, void *arg)
{
	struct wait *w = arg;

	if (err)
		fail(w->req, err, NULL, errmsg);
	else
		pl_serve_reply(w->req, w->status, whose(w->m, w->cl, json_deep_copy(result)));
	free(w);
}

/* Check a JSON body: only the fields of names, each of its kind ('b' boolean,
 * 's' string, 'i' integer). Answers and returns -1 when it is wrong. */
static int
check_body(struct pl_serve_req *req, const char *const names[][2])
{
	const json_t *body = pl_serve_body(req);
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)body, k, v) {
		size_t i;

		for (i = 0; names[i][0] && strcmp(names[i][0], k); i++)
			;
		if (names[i][0] == NULL) {
			pl_serve_error(req, 400, "unknown_field", k, "unknown field '%.60s'", k);
			return -1;
		}
		if ((names[i][1][0] == 'b' && !json_is_boolean(v)) ||
		    (names[i][1][0] == 's' && !json_is_string(v)) ||
		    (names[i][1][0] == 'i' && !json_is_integer(v))) {
			pl_serve_error(req, 400, "bad_field", k, "'%s' is %s", k,
				       names[i][1][0] == 'b' ? "true or false" :
				       names[i][1][0] == 's' ? "a string" :
							       "an integer");
			return -1;
		}
	}
	return 0;
}

static bool
flag(const struct pl_serve_req *req, const char *name)
{
	return json_is_true(json_object_get(pl_serve_body(req), name));
}

/* ---- plans ------------------------------------------------------------- */

/* A boolean query parameter into *v: true/1/yes or false/0/no (absent:
 * false). Answers 400 naming it and returns -1 otherwise. */
static int
query_flag(struct pl_serve_req *req, const char *name, bool *v)
{
	const char *q = pl_serve_query(req, name);

	*v = q && (!strcmp(q, "true") || !strcmp(q, "1") || !strcmp(q, "yes"));
	if (q && !*v && strcmp(q, "false") && strcmp(q, "0") && strcmp(q, "no")) {
		pl_serve_error(req, 400, "bad_query", name, "%s is true or false, not '%.32s'",
			       name, q);
		return -1;
	}
	return 0;
}

static void
post_plan(struct pl_serve_req *req, void *arg)
{
	static const char *const fields[][2] = {
		{ "reboot", "b" },      { "allow_replace", "b" }, { "allow_delete", "b" },
		{ "no_snapshot", "b" }, { "profile", "s" },       { "cluster", "s" },
		{ NULL, NULL },
	};
	struct pl_serve_runs_api *m = arg;
	struct pl_serve_plan_opts o = {
		.reboot = flag(req, "reboot"),
		.allow_replace = flag(req, "allow_replace"),
		.allow_delete = flag(req, "allow_delete"),
		.no_snapshot = flag(req, "no_snapshot"),
		.profile = pl_json_str(pl_serve_body(req), "profile"),
	};
	char who[128], *err = NULL, *field = NULL;
	struct pl_config *cfg = NULL;
	const unsigned char *yaml = NULL;
	const char *want = pl_serve_query(req, "cluster"), *named;
	size_t len = 0;
	struct wait *w;
	int r, at;

	if (pl_serve_body_is_yaml(req)) {
		/* a config of the caller's: validated as the file is, refused
		 * with the place it names (400) before anything starts */
		yaml = pl_serve_body_raw(req, &len);
		if ((r = pl_serve_plan_config((const char *)yaml, len, &cfg, &field, &err)) != 0) {
			pl_serve_error(req, 400, "invalid_config", field, "%s", err);
			free(field);
			free(err);
			return;
		}
		pl_config_free(cfg);
		if (query_flag(req, "reboot", &o.reboot) != 0 ||
		    query_flag(req, "allow_replace", &o.allow_replace) != 0 ||
		    query_flag(req, "allow_delete", &o.allow_delete) != 0 ||
		    query_flag(req, "no_snapshot", &o.no_snapshot) != 0)
			return;
		o.profile = pl_serve_query(req, "profile");
	} else if (check_body(req, fields) != 0) {
		return;
	} else if (pl_serve_query(req, "reboot") || pl_serve_query(req, "allow_replace") ||
		   pl_serve_query(req, "allow_delete") || pl_serve_query(req, "no_snapshot") ||
		   pl_serve_query(req, "profile")) {
		pl_serve_error(req, 400, "bad_query", NULL,
			       "the options go in the JSON body (query parameters are for a YAML "
			       "body)");
		return;
	}
	/* several clusters: the plan is of the one named (?cluster= or the
	 * body's cluster), and only that one's engine can apply it */
	named = pl_serve_body_is_yaml(req) ? NULL : pl_json_str(pl_serve_body(req), "cluster");
	if (want && named && strcmp(want, named)) {
		pl_serve_error(req, 400, "bad_request", "cluster",
			       "?cluster=%.60s and the body's cluster '%.60s' differ", want, named);
		return;
	}
	if ((at = pl_serve_api_cluster_of(req, m->api, want ? want : named, "a plan")) < 0)
		return;
	who_of(req, who, sizeof(who));
	w = wait_new(m, req, 201, (size_t)at);
	if ((r = pl_serve_plan_start_yaml(engine(m, (size_t)at), &o,
					  yaml ? (const char *)yaml : NULL, len, who, on_answer, w,
					  &err)) != 0)
		refused(w, r, NULL, err);
}

static void
get_plan(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_runs_api *m = arg;
	json_t *p = NULL;
	size_t i;

	for (i = 0; i < m->api->ncl && p == NULL; i++)
		p = pl_serve_plan_get(engine(m, i), pl_serve_path_param(req, "id"));
	if (p == NULL) {
		pl_serve_error(req, 404, "not_found", "id",
			       "no plan '%.40s' (a plan is kept %d minutes)",
			       pl_serve_path_param(req, "id"), PL_SERVE_PLAN_TTL / 60);
		return;
	}
	pl_serve_reply(req, 200, whose(m, i - 1, p));
}

/* ---- runs ---------------------------------------------------------------- */

static void
on_started(int err, const json_t *result, const char *errmsg, void *arg)
{
	struct wait *w = arg;
	json_t *out;

	if (err) {
		fail(w->req, err, err == PL_EINVAL ? "plan_id" : NULL, errmsg);
	} else {
		out = whose(w->m, w->cl, json_deep_copy(result));
		json_object_set_new(out, "state", json_string("running"));
		pl_serve_reply(w->req, 202, out);
	}
	free(w);
}

static void
post_run(struct pl_serve_req *req, void *arg)
{
	static const char *const fields[][2] = {
		{ "plan_id", "s" },   { "allow_delete", "b" },        { "no_backup", "b" },
		{ "no_stacks", "b" }, { "rollback_on_failure", "b" }, { "jobs", "i" },
		{ NULL, NULL },
	};
	struct pl_serve_runs_api *m = arg;
	const json_t *body = pl_serve_body(req);
	struct pl_serve_apply_opts o = {
		.allow_delete = flag(req, "allow_delete"),
		.no_backup = flag(req, "no_backup"),
		.no_stacks = flag(req, "no_stacks"),
		.rollback_on_failure = flag(req, "rollback_on_failure"),
		.jobs = (int)pl_json_int(body, "jobs", 4),
	};
	struct pl_serve_run_cbs cbs = { .started = on_started };
	const char *want = pl_serve_query(req, "cluster"), *plan_id = pl_json_str(body, "plan_id");
	char who[128], *err = NULL;
	struct wait *w;
	size_t at = 0;
	int r;

	if (check_body(req, fields) != 0)
		return;
	if (plan_id == NULL) {
		pl_serve_error(req, 400, "missing_field", "plan_id",
			       "plan_id is required (POST /api/v1/plans makes a plan)");
		return;
	}
	if (o.jobs < 1 || o.jobs > 64) {
		pl_serve_error(req, 400, "bad_field", "jobs", "jobs is from 1 to 64");
		return;
	}
	/* a plan belongs to the cluster whose engine made it (?cluster= names
	 * it: another's plan is unknown there) */
	if (want) {
		if ((r = pl_serve_api_cluster_of(req, m->api, want, NULL)) < 0)
			return;
		at = (size_t)r;
	} else {
		for (size_t i = 0; i < m->api->ncl; i++) {
			json_t *p = pl_serve_plan_get(engine(m, i), plan_id);

			if (p)
				at = i;
			json_decref(p);
		}
	}
	who_of(req, who, sizeof(who));
	w = wait_new(m, req, 202, at);
	cbs.arg = w;
	if ((r = pl_serve_apply_start(engine(m, at), plan_id, &o, who, &cbs, &err)) != 0)
		refused(w, r, err && !strncmp(err, "no plan", 7) ? "plan_id" : NULL, err);
}

/* A run id from the path, or answered 400. */
static int
run_id(struct pl_serve_req *req, long long *id)
{
	const char *s = pl_serve_path_param(req, "id");

	if (pl_str_to_ll(s, 1, LLONG_MAX, id) == 0)
		return 0;
	pl_serve_error(req, 400, "bad_request", "id", "a run id is a positive number, not '%.32s'",
		       s);
	return -1;
}

/* Several clusters: the one whose store has run id, into *at (each store
 * numbers its own runs, so ?cluster= chooses when two have it). false once
 * it answered. */
static bool
run_cluster(struct pl_serve_req *req, struct pl_serve_runs_api *m, long long id, size_t *at)
{
	const char *want = pl_serve_query(req, "cluster");
	size_t found = SIZE_MAX;
	char *list;
	int r;

	*at = 0;
	if (want || m->api->ncl == 1) {
		if ((r = pl_serve_api_cluster_of(req, m->api, want, NULL)) < 0)
			return false;
		*at = (size_t)r;
		return true;
	}
	for (size_t i = 0; i < m->api->ncl; i++) {
		json_t *run = NULL;
		char *err = NULL;

		r = pl_serve_run_get(engine(m, i), id, &run, &err);
		json_decref(run);
		free(err);
		if (r != 0)
			continue;
		if (found != SIZE_MAX) {
			pl_serve_error(req, 400, "bad_request", "cluster",
				       "run %lld is in clusters '%s' and '%s' (choose one with "
				       "?cluster=NAME)",
				       id, m->api->cl[found].name, m->api->cl[i].name);
			return false;
		}
		found = i;
	}
	if (found == SIZE_MAX) {
		list = pl_serve_api_cluster_list(m->api);
		pl_serve_error(req, 404, "not_found", "id", "no run %lld in any cluster (%s)", id,
			       list);
		free(list);
		return false;
	}
	*at = found;
	return true;
}

static void
get_run(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_runs_api *m = arg;
	json_t *out = NULL;
	char *err = NULL;
	long long id;
	size_t at;
	int r;

	if (run_id(req, &id) != 0 || !run_cluster(req, m, id, &at))
		return;
	if ((r = pl_serve_run_get(engine(m, at), id, &out, &err)) != 0)
		fail(req, r, "id", r == PL_ENOENT ? "no such run" : err);
	else
		pl_serve_reply(req, 200, whose(m, at, out));
	free(err);
}

static void
post_cancel(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_runs_api *m = arg;
	char *err = NULL;
	long long id;
	size_t at;
	int r;

	if (run_id(req, &id) != 0 || !run_cluster(req, m, id, &at))
		return;
	if ((r = pl_serve_run_cancel(engine(m, at), id, &err)) != 0)
		fail(req, r, "id", err);
	else
		pl_serve_reply(req, 202,
			       json_pack("{s:I,s:s}", "run", (json_int_t)id, "state", "stopping"));
	free(err);
}

static void
post_rollback(struct pl_serve_req *req, void *arg)
{
	static const char *const fields[][2] = { { "overwrite", "b" }, { NULL, NULL } };
	struct pl_serve_runs_api *m = arg;
	struct pl_serve_run_cbs cbs = { .started = on_started };
	char who[128], *err = NULL;
	struct wait *w;
	long long id;
	size_t at;
	int r;

	if (check_body(req, fields) != 0 || run_id(req, &id) != 0 || !run_cluster(req, m, id, &at))
		return;
	who_of(req, who, sizeof(who));
	w = wait_new(m, req, 202, at);
	cbs.arg = w;
	if ((r = pl_serve_rollback_start(engine(m, at), id, flag(req, "overwrite"), who, &cbs,
					 &err)) != 0)
		refused(w, r, err && !strncmp(err, "no run", 6) ? "id" : NULL, err);
}

/* ---- snapshots ------------------------------------------------------------ */

static void
get_snapshots(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_runs_api *m = arg;
	const char *guest = pl_serve_path_param(req, "guest");
	json_t *stored = NULL;
	char *err = NULL;
	struct wait *w;
	size_t at = 0;
	int r;

	if (m->api->ncl > 1 && !pl_serve_api_find_guest(req, m->api, guest, &at, &stored))
		return;
	json_decref(stored);
	w = wait_new(m, req, 200, at);
	if ((r = pl_serve_snapshots_list(engine(m, at), guest, on_answer, w, &err)) != 0)
		refused(w, r, "guest", err);
}

/* A snapshot action's end: kept for GET /api/v1/actions/{id}. */
static void
on_snap_action(int err, const json_t *result, const char *errmsg, void *arg)
{
	struct wait *w = arg;
	json_t *res = result ? json_deep_copy(result) : json_object();

	if (err) {
		json_object_set_new(res, "ok", json_false());
		json_object_set_new(res, "error", json_string(errmsg));
	}
	pl_serve_api_action_end(w->m->api, w->action, res);
	json_decref(res);
	free(w);
}

/* Start a snapshot action on the guest (as last synced, for the 202): the
 * engine finds it live and checks the snapshot. */
static void
snap_action(struct pl_serve_req *req, struct pl_serve_runs_api *m, const char *action)
{
	const char *guest = pl_serve_path_param(req, "guest"), *name;
	const json_t *body = pl_serve_body(req), *found;
	json_t *names = NULL, *a = NULL, *stored = NULL;
	char who[128], *err = NULL;
	struct pl_serve_runs *rs;
	struct wait *w;
	size_t at = 0;
	int r = 0;

	name = strcmp(action, "snapshot") ? pl_serve_path_param(req, "name") :
					    pl_json_str(body, "name");
	if (name == NULL) {
		pl_serve_error(req, 400, "missing_field", "name", "name is required");
		return;
	}
	if (m->api->ncl > 1) { /* several clusters: the one whose store has it */
		if (!pl_serve_api_find_guest(req, m->api, guest, &at, &stored))
			goto out;
		found = stored;
	} else if ((r = pl_state_guest_names(m->api->s->state, &names, &err)) != 0 ||
		   (found = pl_guest_lookup(names, guest, &err)) == NULL) {
		fail(req, r ? r : PL_ENOENT, "guest", err);
		goto out;
	}
	rs = engine(m, at);
	who_of(req, who, sizeof(who));
	w = pl_calloc(1, sizeof(*w));
	w->m = m;
	w->cl = at;
	w->action = pl_serve_api_action_new(m->api, m->api->cl[at].name, action,
					    pl_json_int(found, "vmid", 0),
					    pl_json_str(found, "name"), &a);
	json_object_set_new(a, "snapshot", json_string(name));
	if (!strcmp(action, "snapshot"))
		r = pl_serve_snapshot_create(rs, guest, name, flag(req, "vmstate"),
					     pl_json_str(body, "description"), who, on_snap_action,
					     w, &err);
	else if (!strcmp(action, "rollback"))
		r = pl_serve_snapshot_rollback(rs, guest, name,
					       json_is_false(json_object_get(body, "keep")), who,
					       on_snap_action, w, &err);
	else
		r = pl_serve_snapshot_delete(rs, guest, name, who, on_snap_action, w, &err);
	if (r != 0) {
		json_t *res = json_pack("{s:b,s:s}", "ok", 0, "error", err ? err : pl_strerror(r));

		pl_serve_api_action_end(m->api, w->action, res);
		json_decref(res);
		free(w);
		fail(req, r, r == PL_EINVAL ? "name" : "guest", err);
		goto out;
	}
	pl_serve_reply(req, 202, a);
	a = NULL;
out:
	json_decref(a);
	json_decref(names);
	json_decref(stored);
	free(err);
}

static void
post_snapshot(struct pl_serve_req *req, void *arg)
{
	static const char *const fields[][2] = {
		{ "name", "s" }, { "vmstate", "b" }, { "description", "s" }, { NULL, NULL }
	};

	if (check_body(req, fields) == 0)
		snap_action(req, arg, "snapshot");
}

static void
post_snap_rollback(struct pl_serve_req *req, void *arg)
{
	static const char *const fields[][2] = { { "keep", "b" }, { NULL, NULL } };

	if (check_body(req, fields) == 0)
		snap_action(req, arg, "rollback");
}

static void
delete_snapshot(struct pl_serve_req *req, void *arg)
{
	snap_action(req, arg, "delsnapshot");
}

/* ---- the route table ------------------------------------------------------ */

#define STR "{\"type\":\"string\"}"
#define INT "{\"type\":\"integer\"}"
#define BOOL "{\"type\":\"boolean\"}"
#define STR_OR_NULL "{\"type\":[\"string\",\"null\"]}"
#define PLAN                                                                                       \
	"{\"type\":\"object\",\"required\":[\"version\",\"changes\",\"summary\"],\"properties\":{" \
	"\"version\":{\"const\":1},\"snapshot\":" STR ",\"options\":{\"type\":\"object\"},"        \
	"\"summary\":{\"type\":\"object\"},\"blocked\":{\"type\":\"array\"},"                      \
	"\"changes\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":"             \
	"[\"action\",\"guest\"],\"properties\":{\"action\":" STR ",\"guest\":" STR ","             \
	"\"vmid\":" INT ",\"class\":" STR ",\"steps\":{\"type\":\"array\",\"items\":" STR "}}}}}}"
#define KEPT_PLAN                                                                                  \
	"{\"type\":\"object\",\"required\":[\"id\",\"created\",\"expires\",\"who\","               \
	"\"fingerprint\",\"after_run\",\"plan\"],\"properties\":{\"id\":{\"type\":\"string\","     \
	"\"pattern\":\"^[0-9a-f]{32}$\"},\"created\":" INT ",\"expires\":" INT ",\"who\":" STR "," \
	"\"fingerprint\":{\"type\":\"object\",\"required\":[\"cluster\",\"config\"],"              \
	"\"properties\":{\"cluster\":" STR ",\"config\":" STR "}},\"after_run\":" INT ","          \
	"\"plan\":" PLAN "}}"
#define STARTED                                                                                    \
	"{\"type\":\"object\",\"required\":[\"run\",\"kind\",\"who\",\"total\",\"state\"],"        \
	"\"properties\":{\"run\":" INT ",\"kind\":{\"enum\":[\"apply\",\"rollback\"]},"            \
	"\"who\":" STR ",\"total\":" INT ",\"state\":{\"const\":\"running\"}}}"
#define RUN_FULL                                                                                   \
	"{\"type\":\"object\",\"required\":[\"id\",\"kind\",\"status\"],\"properties\":{"          \
	"\"id\":" INT ",\"kind\":" STR ",\"status\":{\"enum\":[\"running\",\"ok\",\"failed\","     \
	"\"interrupted\"]},\"started\":{\"type\":\"number\"},\"finished\":{\"type\":[\"number\","  \
	"\"null\"]},\"who\":" STR ",\"result\":{\"type\":[\"object\",\"null\"]},\"progress\":"     \
	"{\"type\":\"object\",\"required\":[\"finished\",\"total\",\"running\"],\"properties\":{"  \
	"\"finished\":" INT ",\"total\":" INT ",\"running\":{\"type\":\"object\"},"                \
	"\"stopping\":" BOOL "}}}}"
#define ACTION                                                                                     \
	"{\"type\":\"object\",\"required\":[\"id\",\"action\",\"vmid\",\"state\",\"snapshot\"],"   \
	"\"properties\":{\"id\":" INT ",\"action\":{\"enum\":[\"snapshot\",\"rollback\","          \
	"\"delsnapshot\"]},\"vmid\":" INT ",\"name\":" STR_OR_NULL ",\"snapshot\":" STR ","        \
	"\"state\":{\"const\":\"running\"}}}"

static const struct pl_serve_param plan_query[] = {
	{ "reboot", "with a YAML body: as the JSON body's (true or false)" },
	{ "allow_replace", "with a YAML body: as the JSON body's" },
	{ "allow_delete", "with a YAML body: as the JSON body's" },
	{ "no_snapshot", "with a YAML body: as the JSON body's" },
	{ "profile", "with a YAML body: as the JSON body's" },
	{ "cluster", "with several clusters: the one to plan (or the JSON body's cluster)" },
	{ NULL, NULL },
};

static const struct pl_serve_param cluster_query[] = {
	{ "cluster", "with several clusters: the one whose run, plan or guest it is (needed "
		     "when two have it)" },
	{ NULL, NULL },
};

static const struct pl_serve_route routes[] = {
	{ "POST", "/api/v1/plans", PL_ROLE_ADMIN, 201,
	  "plan the server's config against the cluster now (pvelab plan -o json), kept "
	  "15 minutes under an unguessable id for POST /api/v1/runs; or, with a pvelab.yaml "
	  "as the body (Content-Type: application/yaml), that config instead, validated as "
	  "pvelab validate does the file (400 invalid_config naming the key), refused when "
	  "it names what the server reads itself (a *_file or *_env key, cluster, state, "
	  "serve, proxy, alerts); the options are the JSON body's or, with YAML, the "
	  "reboot, allow_replace, allow_delete, no_snapshot and profile query parameters",
	  KEPT_PLAN,
	  "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"reboot\":" BOOL
	  ",\"allow_replace\":" BOOL ",\"allow_delete\":" BOOL ",\"no_snapshot\":" BOOL
	  ",\"profile\":" STR ",\"cluster\":" STR "}}",
	  plan_query, post_plan, PL_ROUTE_YAML_BODY },
	{ "GET", "/api/v1/plans/{id}", PL_ROLE_VIEWER, 200, "a kept plan", KEPT_PLAN, NULL, NULL,
	  get_plan, 0 },
	{ "POST", "/api/v1/runs", PL_ROLE_ADMIN, 202,
	  "apply a kept plan (pvelab apply PLAN --yes): refused with 409 when another run ran "
	  "since it was made or a fresh plan differs, or an apply is running; 400 for blocked "
	  "changes and deletes without allow_delete or over safety.max_deletes. 202 once it "
	  "began; the event stream carries each step ('run' events), GET /api/v1/runs/{id} "
	  "its state. After the changes the plan's stacks are deployed as pvelab apply does "
	  "(unless no_stacks; rollback_on_failure as --rollback-on-failure), compose's output "
	  "lines going out as 'run' events with step 'deploy'",
	  STARTED,
	  "{\"type\":\"object\",\"required\":[\"plan_id\"],\"additionalProperties\":false,"
	  "\"properties\":{\"plan_id\":" STR ",\"allow_delete\":" BOOL ",\"no_backup\":" BOOL
	  ",\"no_stacks\":" BOOL ",\"rollback_on_failure\":" BOOL
	  ",\"jobs\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":64}}}",
	  cluster_query, post_run, 0 },
	{ "GET", "/api/v1/runs/{id}", PL_ROLE_VIEWER, 200,
	  "one run with its result (each change's steps_done) and, while it runs, its progress",
	  RUN_FULL, NULL, cluster_query, get_run, 0 },
	{ "POST", "/api/v1/runs/{id}/cancel", PL_ROLE_ADMIN, 202,
	  "stop a running apply or rollback as Ctrl-C stops the CLI's (nothing new starts, "
	  "changes in flight finish their task; recorded interrupted); a second cancel stops "
	  "waiting for the tasks",
	  "{\"type\":\"object\",\"required\":[\"run\",\"state\"],\"properties\":{\"run\":" INT
	  ",\"state\":{\"const\":\"stopping\"}}}",
	  "{\"type\":\"object\",\"additionalProperties\":false}", cluster_query, post_cancel, 0 },
	{ "POST", "/api/v1/runs/{id}/rollback", PL_ROLE_ADMIN, 202,
	  "roll back an apply, deploy or destroy run (pvelab rollback RUN --yes); a guest "
	  "restored over "
	  "itself from a backup needs overwrite",
	  STARTED,
	  "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"overwrite\":" BOOL
	  "}}",
	  cluster_query, post_rollback, 0 },
	{ "GET", "/api/v1/guests/{guest}/snapshots", PL_ROLE_VIEWER, 200,
	  "the guest's snapshots, read from its node (pvelab snapshots -o json)",
	  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"name\"],"
	  "\"properties\":{\"name\":" STR ",\"snaptime\":" INT ",\"description\":" STR
	  ",\"parent\":" STR "}}}",
	  NULL, cluster_query, get_snapshots, 0 },
	{ "POST", "/api/v1/guests/{guest}/snapshots", PL_ROLE_OPERATOR, 202,
	  "take a snapshot (pvelab snapshot): 202 at once; GET /api/v1/actions/{id} follows it",
	  ACTION,
	  "{\"type\":\"object\",\"required\":[\"name\"],\"additionalProperties\":false,"
	  "\"properties\":{\"name\":" STR ",\"vmstate\":" BOOL ",\"description\":" STR "}}",
	  cluster_query, post_snapshot, 0 },
	{ "POST", "/api/v1/guests/{guest}/snapshots/{name}/rollback", PL_ROLE_OPERATOR, 202,
	  "roll the guest back to the snapshot; what it is now is snapshotted first "
	  "(pvelab-pre-rollback-TIME) unless keep is false. GET /api/v1/actions/{id} follows it",
	  ACTION,
	  "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"keep\":" BOOL "}}",
	  cluster_query, post_snap_rollback, 0 },
	{ "DELETE", "/api/v1/guests/{guest}/snapshots/{name}", PL_ROLE_OPERATOR, 202,
	  "delete the snapshot: 202 at once; GET /api/v1/actions/{id} follows it", ACTION, NULL,
	  cluster_query, delete_snapshot, 0 },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};

void
pl_serve_runs_api_init(struct pl_serve_runs_api *m, struct pl_serve_runs *runs,
		       struct pl_serve_api *api)
{
	memset(m, 0, sizeof(*m));
	m->runs = runs;
	m->api = api;
	m->module.name = "runs";
	m->module.routes = routes;
	m->module.arg = m;
}
