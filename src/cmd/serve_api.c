/*
 * The REST API of pvelab serve (/api/v1): a module of routes whose answers
 * are the read commands' -o json, made by the same functions (views.h).
 */
#include "core/common.h"
#include "cmd/serve_api.h"
#include "cmd/act.h"
#include "cmd/connect.h"
#include "cmd/views.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "plan/runs.h"
#include "serve/serve.h"

#include <limits.h>

/* Answer a view's failure: its code gives the status. */
static void
fail(struct pl_serve_req *req, int r, const char *field, const char *err)
{
	int status = pl_serve_status_of(r);
	const char *code = status == 404 ? "not_found" :
			   status == 409 ? "conflict" :
			   status == 400 ? "bad_request" :
			   status == 502 ? "cluster_error" :
					   "internal";

	pl_serve_error(req, status, code, field, "%s", err ? err : pl_strerror(r));
}

/* Answer what a view gave: out (stolen) when r is 0, kept as an answer of
 * class cls (PL_CACHE_*), else the failure; frees err. */
static void
answer(struct pl_serve_req *req, int r, const char *field, json_t *out, char *err, unsigned cls)
{
	if (r != 0)
		fail(req, r, field, err);
	else
		pl_serve_reply_cache(req, cls, out);
	free(err);
}

static void
get_cluster(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	json_t *out = NULL;
	char *err = NULL;
	int r;

	if (pl_serve_cached(req))
		return;
	r = pl_view_status(api->s->state, &out, &err);
	answer(req, r, NULL, out, err, PL_CACHE_STORE);
}

static void
get_nodes(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	json_t *out = NULL;
	char *err = NULL;
	int r;

	if (pl_serve_cached(req))
		return;
	r = pl_view_status(api->s->state, &out, &err);
	answer(req, r, NULL, json_incref(json_object_get(out, "nodes")), err, PL_CACHE_STORE);
	json_decref(out);
}

static void
get_guests(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	struct pl_view_list f = {
		pl_serve_query(req, "type"),   pl_serve_query(req, "node"),
		pl_serve_query(req, "status"), pl_serve_query(req, "tag"),
		pl_serve_query(req, "sort"),
	};
	const char *field = NULL;
	json_t *out = NULL;
	char *err = NULL;
	int r;

	if (pl_serve_cached(req))
		return;
	if ((r = pl_view_list_check(&f, &field, &err)) == 0)
		r = pl_view_list(api->s->state, &f, api->refresh->live_by_id, &out, &err);
	answer(req, r, field, out, err, PL_CACHE_LIVE);
}

static void
get_guest(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	json_t *out = NULL;
	char *err = NULL;
	int r;

	if (pl_serve_cached(req))
		return;
	/* snapshots are read from the node: not on the loop's time (docs/serve.md);
	 * the counters are the refresh's, kept in memory */
	r = pl_view_describe(api->s, pl_serve_path_param(req, "guest"), false,
			     api->refresh->live_by_id, &out, NULL, &err);
	answer(req, r, "guest", out, err, PL_CACHE_LIVE);
}

static void
get_history(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	json_t *out = NULL;
	char *err = NULL;
	int r;

	if (pl_serve_cached(req))
		return;
	r = pl_view_history(api->s->state, pl_serve_path_param(req, "guest"), &out, &err);
	answer(req, r, "guest", out, err, PL_CACHE_STORE);
}

static void
get_runs(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	const char *lim = pl_serve_query(req, "limit");
	long long limit = 50;
	json_t *out = NULL;
	char *err = NULL;
	int r;

	if (lim && pl_str_to_ll(lim, 1, 1000, &limit) != 0) {
		pl_serve_error(req, 400, "bad_request", "limit",
			       "limit is a number from 1 to 1000, "
			       "not '%.32s'",
			       lim);
		return;
	}
	if (pl_serve_cached(req))
		return;
	r = pl_runs_list(api->s->state, pl_serve_query(req, "kind"), (int)limit, &out, &err);
	answer(req, r, NULL, out, err, PL_CACHE_STORE);
}

static void
get_sync(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	json_t *info = pl_serve_refresh_info(api->refresh);
	long long hits, misses, bytes;

	pl_serve_cache_counts(api->refresh->sv, &hits, &misses, &bytes);
	json_object_set_new(info, "answers",
			    json_pack("{s:I,s:I,s:I}", "hits", (json_int_t)hits, "misses",
				      (json_int_t)misses, "bytes", (json_int_t)bytes));
	pl_serve_reply(req, 200, info);
}

static void
post_sync(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	long long seq;

	if (api->s->pve == NULL) {
		pl_serve_error(req, 503, "no_cluster", NULL,
			       "no cluster to sync (set cluster: in "
			       "pvelab.yaml or PVELAB_URL and PVELAB_TOKEN)");
		return;
	}
	seq = pl_serve_refresh_sync(api->refresh);
	pl_serve_reply(req, 202,
		       json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "state", "running"));
}

/* ---- power actions ---- */

struct action_wait {
	struct pl_serve_api *api;
	long long id;
};

static json_t *
action_get(struct pl_serve_api *api, long long id)
{
	json_t *a = api->actions[id % PL_SERVE_ACTIONS];

	return a && pl_json_int(a, "id", 0) == id ? a : NULL;
}

long long
pl_serve_api_action_new(struct pl_serve_api *api, const char *action, long long vmid,
			const char *name, json_t **copy)
{
	json_t *a = json_pack("{s:I,s:s,s:I,s:s?,s:s,s:n}", "id", (json_int_t)++api->action_seq,
			      "action", action, "vmid", (json_int_t)vmid, "name", name, "state",
			      "running", "result");

	json_decref(api->actions[api->action_seq % PL_SERVE_ACTIONS]);
	api->actions[api->action_seq % PL_SERVE_ACTIONS] = a;
	if (copy)
		*copy = json_deep_copy(a);
	return api->action_seq;
}

void
pl_serve_api_action_end(struct pl_serve_api *api, long long id, const json_t *result)
{
	json_t *a = action_get(api, id);
	bool ok = json_is_true(json_object_get(result, "ok"));

	if (a) {
		json_object_set_new(a, "state", json_string(ok ? "ok" : "failed"));
		json_object_set(a, "result", (json_t *)result);
		pl_serve_emit(api->refresh->sv, "action", json_deep_copy(a));
	}
	/* the store follows what pvelab itself changed at once */
	if (ok && !json_is_true(json_object_get(result, "unchanged")) && api->refresh->s->pve)
		pl_serve_refresh_sync(api->refresh);
}

static void
on_action(const json_t *result, void *arg)
{
	struct action_wait *w = arg;

	pl_serve_api_action_end(w->api, w->id, result);
	free(w);
}

static void
post_action(struct pl_serve_req *req, const char *action, struct pl_serve_api *api)
{
	const char *guest = pl_serve_path_param(req, "guest");
	json_t *stored = NULL, *a;
	const json_t *entry;
	struct action_wait *w;
	char *err = NULL, id[32];
	int r;

	if (api->s->pve == NULL) {
		pl_serve_error(req, 503, "no_cluster", NULL,
			       "no cluster to act on (set cluster: in "
			       "pvelab.yaml or PVELAB_URL and PVELAB_TOKEN)");
		return;
	}
	if ((r = pl_session_guest(api->s, guest, &stored, &err)) != 0) {
		fail(req, r, "guest", err);
		goto out;
	}
	/* where the guest is now (the last resource list), else where it was synced */
	snprintf(id, sizeof(id), "%lld", pl_json_int(stored, "vmid", 0));
	entry = json_object_get(api->refresh->live_by_id, id);
	if (entry == NULL)
		entry = stored;
	w = pl_calloc(1, sizeof(*w));
	w->api = api;
	w->id = pl_serve_api_action_new(api, action, pl_json_int(stored, "vmid", 0),
					pl_json_str(stored, "name"), &a);
	pl_act_start(api->s, action, entry, NULL, 600000, on_action, w);
	pl_serve_reply(req, 202, a);
out:
	json_decref(stored);
	free(err);
}

#define POWER(verb)                                                                                \
	static void post_##verb(struct pl_serve_req *req, void *arg)                               \
	{                                                                                          \
		post_action(req, #verb, arg);                                                      \
	}
POWER(start)
POWER(stop)
POWER(shutdown)
POWER(reboot)
POWER(suspend)
POWER(resume)

static void
get_action(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	const char *id = pl_serve_path_param(req, "id");
	long long n;
	json_t *a;

	if (pl_str_to_ll(id, 1, LLONG_MAX, &n) != 0 || (a = action_get(api, n)) == NULL) {
		pl_serve_error(req, 404, "not_found", "id",
			       "no action '%.32s' (the newest %d are "
			       "kept)",
			       id, PL_SERVE_ACTIONS);
		return;
	}
	pl_serve_reply(req, 200, json_deep_copy(a));
}

#define STR_OR_NULL "{\"type\":[\"string\",\"null\"]}"
#define OBJ "{\"type\":\"object\"}"
#define NODE                                                                                       \
	"{\"type\":\"object\",\"required\":[\"node\",\"status\"],\"properties\":{"                 \
	"\"node\":{\"type\":\"string\"},\"status\":{\"type\":\"string\"},"                         \
	"\"cpu\":{\"type\":\"number\"},\"maxcpu\":{\"type\":\"integer\"},"                         \
	"\"mem\":{\"type\":\"integer\"},\"maxmem\":{\"type\":\"integer\"},"                        \
	"\"disk\":{\"type\":\"integer\"},\"maxdisk\":{\"type\":\"integer\"},"                      \
	"\"uptime\":{\"type\":\"integer\"},\"pveversion\":" STR_OR_NULL "}}"
#define GUEST_SUMMARY                                                                              \
	"{\"type\":\"object\",\"required\":[\"vmid\",\"type\",\"node\"],\"properties\":{"          \
	"\"vmid\":{\"type\":\"integer\"},\"name\":" STR_OR_NULL ","                                \
	"\"type\":{\"enum\":[\"qemu\",\"lxc\"]},\"node\":{\"type\":\"string\"},"                   \
	"\"status\":" STR_OR_NULL ",\"tags\":" STR_OR_NULL "}}"
#define RUN                                                                                        \
	"{\"type\":\"object\",\"required\":[\"id\",\"kind\",\"status\"],\"properties\":{"          \
	"\"id\":{\"type\":\"integer\"},\"kind\":{\"type\":\"string\"},"                            \
	"\"status\":{\"type\":\"string\"},\"started\":{\"type\":\"number\"}}}"

static const struct pl_serve_param list_query[] = {
	{ "type", "vm (qemu) or lxc (ct)" },
	{ "node", "only guests on this node" },
	{ "status", "only guests in this state (running, stopped, ...)" },
	{ "tag", "only guests carrying this tag" },
	{ "sort", "vmid (default), name, node, status, mem or cpu" },
	{ NULL, NULL },
};

static const struct pl_serve_param runs_query[] = {
	{ "kind", "only runs of this kind (sync, apply, destroy, rollback, adopt)" },
	{ "limit", "at most this many, newest first (default 50)" },
	{ NULL, NULL },
};

static const struct pl_serve_route routes[] = {
	{ "GET", "/api/v1/cluster", PL_ROLE_VIEWER, 200,
	  "nodes and guest counts as last synced (pvelab status -o json)",
	  "{\"type\":\"object\",\"required\":[\"nodes\",\"guests\"],\"properties\":{\"nodes\":"
	  "{\"type\":\"array\",\"items\":" NODE "},\"guests\":{\"type\":\"object\",\"required\":"
	  "[\"total\"],\"properties\":{\"total\":{\"type\":\"integer\"}}},\"last_sync\":" RUN "}}",
	  NULL, NULL, get_cluster, 0 },
	{ "GET", "/api/v1/nodes", PL_ROLE_VIEWER, 200,
	  "the nodes as last synced (the nodes of pvelab status -o json)",
	  "{\"type\":\"array\",\"items\":" NODE "}", NULL, NULL, get_nodes, 0 },
	{ "GET", "/api/v1/guests", PL_ROLE_VIEWER, 200,
	  "the guests as last synced, filtered and sorted (pvelab list -o json)",
	  "{\"type\":\"array\",\"items\":" GUEST_SUMMARY "}", NULL, list_query, get_guests, 0 },
	{ "GET", "/api/v1/guests/{guest}", PL_ROLE_VIEWER, 200,
	  "one guest (vmid or name) as last synced, with its recent tasks (pvelab describe -o "
	  "json, without the snapshots it reads live)",
	  "{\"type\":\"object\",\"required\":[\"vmid\",\"type\",\"node\",\"tasks\"],"
	  "\"properties\":{\"vmid\":{\"type\":\"integer\"},\"config\":" OBJ ",\"tasks\":"
	  "{\"type\":\"array\"}}}",
	  NULL, NULL, get_guest, 0 },
	{ "GET", "/api/v1/guests/{guest}/history", PL_ROLE_VIEWER, 200,
	  "every recorded state of a guest, oldest first (pvelab history -o json)",
	  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"id\",\"kind\","
	  "\"sha256\",\"ts\",\"changes\",\"state\"],\"properties\":{\"id\":{\"type\":"
	  "\"integer\"},\"kind\":{\"enum\":[\"discovered\",\"created\",\"updated\",\"deleted\"]},"
	  "\"changes\":{\"type\":\"array\"},\"state\":" OBJ "}}}",
	  NULL, NULL, get_history, 0 },
	{ "GET", "/api/v1/runs", PL_ROLE_VIEWER, 200,
	  "the runs (syncs, applies, rollbacks...), newest first",
	  "{\"type\":\"array\",\"items\":" RUN "}", NULL, runs_query, get_runs, 0 },
	{ "GET", "/api/v1/sync", PL_ROLE_VIEWER, 200,
	  "the background refresh: age and last error of the status list and of the last sync, "
	  "the run it recorded",
	  "{\"type\":\"object\",\"required\":[\"cluster\",\"status\",\"sync\"],\"properties\":{"
	  "\"cluster\":{\"type\":\"boolean\"},\"status\":" OBJ ",\"sync\":{\"type\":"
	  "\"object\",\"required\":[\"seq\",\"state\"],\"properties\":{\"seq\":{\"type\":"
	  "\"integer\"},\"state\":{\"enum\":[\"none\",\"running\",\"ok\",\"failed\"]},"
	  "\"run_id\":{\"type\":[\"integer\",\"null\"]}}},\"answers\":{\"type\":\"object\","
	  "\"description\":\"the answers kept in memory: hits and misses since the start, "
	  "bytes kept now\",\"required\":[\"hits\",\"misses\",\"bytes\"],\"properties\":{"
	  "\"hits\":{\"type\":\"integer\"},\"misses\":{\"type\":\"integer\"},\"bytes\":{"
	  "\"type\":\"integer\"}}}}}",
	  NULL, NULL, get_sync, 0 },
	{ "POST", "/api/v1/sync", PL_ROLE_OPERATOR, 202,
	  "sync the whole cluster into the store now (after the one running); GET /api/v1/sync "
	  "follows it",
	  "{\"type\":\"object\",\"required\":[\"seq\",\"state\"],\"properties\":{\"seq\":"
	  "{\"type\":\"integer\"},\"state\":{\"const\":\"running\"}}}",
	  "{\"type\":\"object\",\"additionalProperties\":false}", NULL, post_sync, 0 },
#define ACTION                                                                                     \
	"{\"type\":\"object\",\"required\":[\"id\",\"action\",\"vmid\",\"state\"],"                \
	"\"properties\":{\"id\":{\"type\":\"integer\"},\"action\":{\"type\":\"string\"},"          \
	"\"vmid\":{\"type\":\"integer\"},\"name\":" STR_OR_NULL ",\"state\":{\"enum\":"            \
	"[\"running\",\"ok\",\"failed\"]},\"result\":{\"type\":[\"object\",\"null\"]}}}"
#define POWER_ROUTE(verb, what)                                                                    \
	{                                                                                          \
		"POST", "/api/v1/guests/{guest}/" #verb, PL_ROLE_OPERATOR, 202,                    \
			what " (as pvelab " #verb                                                  \
			     "): 202 at once; GET /api/v1/actions/{id} follows it",                \
			ACTION, "{\"type\":\"object\",\"additionalProperties\":false}", NULL,      \
			post_##verb, 0                                                             \
	}
	POWER_ROUTE(start, "start the guest"),
	POWER_ROUTE(stop, "stop the guest at once"),
	POWER_ROUTE(shutdown, "shut the guest down cleanly"),
	POWER_ROUTE(reboot, "reboot the guest cleanly"),
	POWER_ROUTE(suspend, "pause the guest"),
	POWER_ROUTE(resume, "resume the paused guest"),
	{ "GET", "/api/v1/actions/{id}", PL_ROLE_VIEWER, 200,
	  "a power action asked through the API: running, then ok or failed with its result "
	  "(as pvelab start -o json gives it)",
	  ACTION, NULL, NULL, get_action, 0 },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};

void
pl_serve_api_release(struct pl_serve_api *api)
{
	for (size_t i = 0; i < PL_SERVE_ACTIONS; i++)
		json_decref(api->actions[i]);
}

void
pl_serve_api_init(struct pl_serve_api *api, struct pl_session *s, struct pl_serve_refresh *refresh)
{
	memset(api, 0, sizeof(*api));
	api->s = s;
	api->refresh = refresh;
	api->module.name = "api/v1";
	api->module.routes = routes;
	api->module.arg = api;
}
