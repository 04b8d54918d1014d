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
#include "config/config.h"
#include "core/buf.h"
#include "core/str.h"
#include "plan/runs.h"
#include "serve/serve.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

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

/* ---- which clusters a request covers ---- */

/* The name serve's one cluster has in the config (clusters: with one), or NULL. */
static const char *
only_name(const struct pl_serve_api *api)
{
	return api->s->cfg ? pl_config_cluster(api->s->cfg) : NULL;
}

/* "home, lab": the clusters serve watches (caller frees). */
static char *
cluster_list(const struct pl_serve_api *api)
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
	for (size_t i = 0; i < api->ncl; i++) {
		const char *n = api->cl[i].name ? api->cl[i].name : only_name(api);

		pl_buf_addf(&b, "%s%s", i ? ", " : "", n ? n : "one, unnamed");
	}
	return pl_buf_detach(&b, NULL);
}

/* The clusters the request covers, [*from, *to) of api->cl: all of them,
 * or the one ?cluster= names. false when it answered (an unknown one). */
static bool
chosen(struct pl_serve_req *req, const struct pl_serve_api *api, size_t *from, size_t *to)
{
	const char *want = pl_serve_query(req, "cluster");
	char *list;

	*from = 0;
	*to = api->ncl;
	if (want == NULL)
		return true;
	for (size_t i = 0; i < api->ncl; i++) {
		const char *n = api->cl[i].name ? api->cl[i].name : only_name(api);

		if (n && !strcmp(n, want)) {
			*from = i;
			*to = i + 1;
			return true;
		}
	}
	list = cluster_list(api);
	pl_serve_error(req, 400, "bad_request", "cluster",
		       "unknown cluster '%.60s' (serve watches: %s)", want, list);
	free(list);
	return false;
}

/* Say whose v is: an object gets "cluster", an array's objects each get it. */
static void
tag(json_t *v, const char *cluster)
{
	size_t i;
	json_t *x;

	if (json_is_object(v))
		json_object_set_new(v, "cluster", json_string(cluster));
	json_array_foreach(v, i, x)
		if (json_is_object(x))
			json_object_set_new(x, "cluster", json_string(cluster));
}

/* One cluster's part of a read: 0 and *out, or a code with *field, *err. */
typedef int (*part_fn)(struct pl_serve_req *req, const struct pl_serve_cluster *c, json_t **out,
		       const char **field, char **err);

/* A read over the clusters the request covers: one cluster's answer as it
 * is; several: an array answer's rows one cluster after another, an object
 * answer one per cluster in an array, each saying whose (as the CLI's -o json
 * over several clusters). */
static void
read_each(struct pl_serve_req *req, struct pl_serve_api *api, part_fn fn, unsigned cls,
	  json_t *(*finish)(struct pl_serve_req *req, json_t *all))
{
	const char *field = NULL;
	json_t *all = NULL, *out = NULL;
	char *err = NULL;
	size_t from, to;
	int r = 0;

	if (!chosen(req, api, &from, &to) || pl_serve_cached(req))
		return;
	if (to - from == 1) {
		r = fn(req, &api->cl[from], &out, &field, &err);
		answer(req, r, field, out, err, cls);
		return;
	}
	all = json_array();
	for (size_t i = from; i < to && r == 0; i++) {
		if ((r = fn(req, &api->cl[i], &out, &field, &err)) != 0) {
			pl_preferr(&err, r, "cluster '%s'", api->cl[i].name);
			break;
		}
		tag(out, api->cl[i].name);
		if (json_is_array(out))
			json_array_extend(all, out);
		else
			json_array_append(all, out);
		json_decref(out);
		out = NULL;
	}
	if (r == 0 && finish)
		all = finish(req, all);
	answer(req, r, field, r ? NULL : all, err, cls);
	if (r)
		json_decref(all);
}

/* The one cluster, of those the request covers, where probe finds GUEST:
 * its index into *at, what probe gave into *out. false when it answered: in
 * none (404), in two (400, ?cluster= chooses), or probe's own failure. One
 * cluster covered: probe's answer is the answer, failure included. */
static bool
guest_cluster(struct pl_serve_req *req, struct pl_serve_api *api, const char *guest,
	      int (*probe)(const struct pl_serve_cluster *c, const char *guest, json_t **out,
			   char **err),
	      size_t *at, json_t **out)
{
	size_t from, to, found = SIZE_MAX;
	char *err = NULL, *list;
	int r;

	*out = NULL;
	if (!chosen(req, api, &from, &to))
		return false;
	for (size_t i = from; i < to; i++) {
		json_t *o = NULL;

		r = probe(&api->cl[i], guest, &o, &err);
		if (r == PL_ENOENT && to - from > 1) {
			free(err);
			err = NULL;
			continue;
		}
		if (r != 0) {
			if (to - from > 1)
				pl_preferr(&err, r, "cluster '%s'", api->cl[i].name);
			fail(req, r, "guest", err);
			free(err);
			json_decref(*out);
			*out = NULL;
			return false;
		}
		if (found != SIZE_MAX) {
			pl_serve_error(req, 400, "bad_request", "cluster",
				       "'%.80s' is in clusters '%s' and '%s' (choose one with "
				       "?cluster=NAME)",
				       guest, api->cl[found].name, api->cl[i].name);
			json_decref(o);
			json_decref(*out);
			*out = NULL;
			return false;
		}
		found = i;
		*out = o;
	}
	if (found == SIZE_MAX) {
		list = cluster_list(api);
		pl_serve_error(req, 404, "not_found", "guest",
			       "guest '%.80s' not found in any cluster (%s; a new one is seen at "
			       "the next sync)",
			       guest, list);
		free(list);
		return false;
	}
	*at = found;
	return true;
}

static int
part_status(struct pl_serve_req *req, const struct pl_serve_cluster *c, json_t **out,
	    const char **field, char **err)
{
	return pl_view_status(c->s->state, out, err);
}

static void
get_cluster(struct pl_serve_req *req, void *arg)
{
	read_each(req, arg, part_status, PL_CACHE_STORE, NULL);
}

static int
part_nodes(struct pl_serve_req *req, const struct pl_serve_cluster *c, json_t **out,
	   const char **field, char **err)
{
	json_t *st = NULL;
	int r = pl_view_status(c->s->state, &st, err);

	*out = r ? NULL : json_incref(json_object_get(st, "nodes"));
	json_decref(st);
	return r;
}

static void
get_nodes(struct pl_serve_req *req, void *arg)
{
	read_each(req, arg, part_nodes, PL_CACHE_STORE, NULL);
}

static int
part_guests(struct pl_serve_req *req, const struct pl_serve_cluster *c, json_t **out,
	    const char **field, char **err)
{
	struct pl_view_list f = {
		pl_serve_query(req, "type"),   pl_serve_query(req, "node"),
		pl_serve_query(req, "status"), pl_serve_query(req, "tag"),
		pl_serve_query(req, "sort"),
	};
	int r;

	if ((r = pl_view_list_check(&f, field, err)) == 0)
		r = pl_view_list(c->s->state, &f, c->refresh->live_by_id, out, err);
	return r;
}

static void
get_guests(struct pl_serve_req *req, void *arg)
{
	read_each(req, arg, part_guests, PL_CACHE_LIVE, NULL);
}

/* snapshots are read from the node: not on the loop's time (docs/serve.md);
 * the counters are the refresh's, kept in memory */
static int
probe_describe(const struct pl_serve_cluster *c, const char *guest, json_t **out, char **err)
{
	return pl_view_describe(c->s, guest, false, c->refresh->live_by_id, out, NULL, err);
}

static int
probe_history(const struct pl_serve_cluster *c, const char *guest, json_t **out, char **err)
{
	return pl_view_history(c->s->state, guest, out, err);
}

/* A read of one guest, in the cluster that knows it. */
static void
read_guest(struct pl_serve_req *req, struct pl_serve_api *api,
	   int (*probe)(const struct pl_serve_cluster *c, const char *guest, json_t **out,
			char **err),
	   unsigned cls)
{
	json_t *out;
	size_t at;

	if (pl_serve_cached(req) ||
	    !guest_cluster(req, api, pl_serve_path_param(req, "guest"), probe, &at, &out))
		return;
	if (api->ncl > 1 && pl_serve_query(req, "cluster") == NULL)
		tag(out, api->cl[at].name);
	pl_serve_reply_cache(req, cls, out);
}

static void
get_guest(struct pl_serve_req *req, void *arg)
{
	read_guest(req, arg, probe_describe, PL_CACHE_LIVE);
}

static void
get_history(struct pl_serve_req *req, void *arg)
{
	read_guest(req, arg, probe_history, PL_CACHE_STORE);
}

static int
part_runs(struct pl_serve_req *req, const struct pl_serve_cluster *c, json_t **out,
	  const char **field, char **err)
{
	const char *lim = pl_serve_query(req, "limit");
	long long limit = 50;

	if (lim)
		pl_str_to_ll(lim, 1, 1000, &limit); /* checked by get_runs */
	return pl_runs_list(c->s->state, pl_serve_query(req, "kind"), (int)limit, out, err);
}

static int
newest_first(const void *a, const void *b)
{
	double x = pl_json_num(*(json_t *const *)a, "started", 0);
	double y = pl_json_num(*(json_t *const *)b, "started", 0);

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Several clusters' runs: newest first across them, at most limit. */
static json_t *
runs_merged(struct pl_serve_req *req, json_t *all)
{
	const char *lim = pl_serve_query(req, "limit");
	long long limit = 50;
	size_t n = json_array_size(all);
	json_t **v = pl_calloc(n ? n : 1, sizeof(*v)), *out = json_array();

	if (lim)
		pl_str_to_ll(lim, 1, 1000, &limit);
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(all, i);
	qsort(v, n, sizeof(*v), newest_first);
	for (size_t i = 0; i < n && i < (size_t)limit; i++)
		json_array_append(out, v[i]);
	free(v);
	json_decref(all);
	return out;
}

static void
get_runs(struct pl_serve_req *req, void *arg)
{
	const char *lim = pl_serve_query(req, "limit");
	long long limit = 50;

	if (lim && pl_str_to_ll(lim, 1, 1000, &limit) != 0) {
		pl_serve_error(req, 400, "bad_request", "limit",
			       "limit is a number from 1 to 1000, "
			       "not '%.32s'",
			       lim);
		return;
	}
	read_each(req, arg, part_runs, PL_CACHE_STORE, runs_merged);
}

static void
get_sync(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_api *api = arg;
	json_t *info = NULL;
	long long hits, misses, bytes;
	size_t from, to;

	if (!chosen(req, api, &from, &to))
		return;
	if (to - from == 1) {
		info = pl_serve_refresh_info(api->cl[from].refresh);
	} else {
		json_t *each = json_object();

		for (size_t i = from; i < to; i++)
			json_object_set_new(each, api->cl[i].name,
					    pl_serve_refresh_info(api->cl[i].refresh));
		info = json_pack("{s:o}", "clusters", each);
	}
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
	json_t *each = json_object();
	size_t from, to;
	long long seq = 0;

	if (!chosen(req, api, &from, &to))
		goto out;
	for (size_t i = from; i < to; i++)
		if (api->cl[i].s->pve) {
			seq = pl_serve_refresh_sync(api->cl[i].refresh);
			if (to - from > 1)
				json_object_set_new(each, api->cl[i].name,
						    json_pack("{s:I}", "seq", (json_int_t)seq));
		}
	if (seq == 0)
		pl_serve_error(req, 503, "no_cluster", NULL,
			       "no cluster to sync (set cluster: in "
			       "pvelab.yaml or PVELAB_URL and PVELAB_TOKEN)");
	else if (to - from > 1) /* several: each its own sync, numbered its own way */
		pl_serve_reply(req, 202,
			       json_pack("{s:O,s:s}", "clusters", each, "state", "running"));
	else
		pl_serve_reply(req, 202,
			       json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "state", "running"));
out:
	json_decref(each);
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
	const char *cluster = a ? pl_json_str(a, "cluster") : NULL;
	struct pl_serve_refresh *f = api->refresh;

	if (a) {
		json_object_set_new(a, "state", json_string(ok ? "ok" : "failed"));
		json_object_set(a, "result", (json_t *)result);
		pl_serve_emit(api->refresh->sv, "action", json_deep_copy(a));
	}
	for (size_t i = 0; cluster && i < api->ncl; i++)
		if (api->cl[i].name && !strcmp(api->cl[i].name, cluster))
			f = api->cl[i].refresh;
	/* the store follows what pvelab itself changed at once */
	if (ok && !json_is_true(json_object_get(result, "unchanged")) && f->s->pve)
		pl_serve_refresh_sync(f);
}

static void
on_action(const json_t *result, void *arg)
{
	struct action_wait *w = arg;

	pl_serve_api_action_end(w->api, w->id, result);
	free(w);
}

static int
probe_stored(const struct pl_serve_cluster *c, const char *guest, json_t **out, char **err)
{
	return pl_session_guest(c->s, guest, out, err);
}

static void
post_action(struct pl_serve_req *req, const char *action, struct pl_serve_api *api)
{
	const char *guest = pl_serve_path_param(req, "guest");
	const struct pl_serve_cluster *c;
	json_t *stored = NULL, *a;
	const json_t *entry;
	struct action_wait *w;
	char id[32];
	size_t at;

	if (api->s->pve == NULL) {
		pl_serve_error(req, 503, "no_cluster", NULL,
			       "no cluster to act on (set cluster: in "
			       "pvelab.yaml or PVELAB_URL and PVELAB_TOKEN)");
		return;
	}
	if (!guest_cluster(req, api, guest, probe_stored, &at, &stored))
		return;
	c = &api->cl[at];
	/* where the guest is now (the last resource list), else where it was synced */
	snprintf(id, sizeof(id), "%lld", pl_json_int(stored, "vmid", 0));
	entry = json_object_get(c->refresh->live_by_id, id);
	if (entry == NULL)
		entry = stored;
	w = pl_calloc(1, sizeof(*w));
	w->api = api;
	w->id = pl_serve_api_action_new(api, action, pl_json_int(stored, "vmid", 0),
					pl_json_str(stored, "name"), &a);
	if (c->name) { /* several clusters: the action says whose guest it is */
		json_object_set_new(action_get(api, w->id), "cluster", json_string(c->name));
		json_object_set_new(a, "cluster", json_string(c->name));
	}
	pl_act_start(c->s, action, entry, NULL, 600000, on_action, w);
	pl_serve_reply(req, 202, a);
	json_decref(stored);
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

#define CLUSTER_QUERY                                                                              \
	{                                                                                          \
		"cluster", "with several clusters: only this one (its answer as a one-cluster "    \
			   "serve gives it)"                                                       \
	}

static const struct pl_serve_param cluster_query[] = {
	CLUSTER_QUERY,
	{ NULL, NULL },
};

#define STATUS                                                                                     \
	"{\"type\":\"object\",\"required\":[\"nodes\",\"guests\"],\"properties\":{\"nodes\":"      \
	"{\"type\":\"array\",\"items\":" NODE "},\"guests\":{\"type\":\"object\",\"required\":"    \
	"[\"total\"],\"properties\":{\"total\":{\"type\":\"integer\"}}},\"last_sync\":" RUN ","    \
	"\"cluster\":{\"type\":\"string\"}}}"
#define REFRESH                                                                                    \
	"{\"type\":\"object\",\"required\":[\"cluster\",\"status\",\"sync\"],\"properties\":{"     \
	"\"cluster\":{\"type\":\"boolean\"},\"status\":" OBJ ",\"sync\":{\"type\":"                \
	"\"object\",\"required\":[\"seq\",\"state\"],\"properties\":{\"seq\":{\"type\":"           \
	"\"integer\"},\"state\":{\"enum\":[\"none\",\"running\",\"ok\",\"failed\"]},"              \
	"\"run_id\":{\"type\":[\"integer\",\"null\"]}}}}}"
#define ANSWERS                                                                                    \
	"{\"type\":\"object\",\"description\":\"the answers kept in memory: hits and misses "      \
	"since the start, bytes kept now\",\"required\":[\"hits\",\"misses\",\"bytes\"],"          \
	"\"properties\":{\"hits\":{\"type\":\"integer\"},\"misses\":{\"type\":\"integer\"},"       \
	"\"bytes\":{\"type\":\"integer\"}}}"

static const struct pl_serve_param list_query[] = {
	{ "type", "vm (qemu) or lxc (ct)" },
	{ "node", "only guests on this node" },
	{ "status", "only guests in this state (running, stopped, ...)" },
	{ "tag", "only guests carrying this tag" },
	{ "sort", "vmid (default), name, node, status, mem or cpu" },
	CLUSTER_QUERY,
	{ NULL, NULL },
};

static const struct pl_serve_param runs_query[] = {
	{ "kind", "only runs of this kind (sync, apply, destroy, rollback, adopt)" },
	{ "limit", "at most this many, newest first (default 50)" },
	CLUSTER_QUERY,
	{ NULL, NULL },
};

static const struct pl_serve_route routes[] = {
	{ "GET", "/api/v1/cluster", PL_ROLE_VIEWER, 200,
	  "nodes and guest counts as last synced (pvelab status -o json); with several "
	  "clusters, one such object per cluster, each with its cluster's name",
	  "{\"oneOf\":[" STATUS ",{\"type\":\"array\",\"items\":" STATUS "}]}", NULL, cluster_query,
	  get_cluster, 0 },
	{ "GET", "/api/v1/nodes", PL_ROLE_VIEWER, 200,
	  "the nodes as last synced (the nodes of pvelab status -o json)",
	  "{\"type\":\"array\",\"items\":" NODE "}", NULL, cluster_query, get_nodes, 0 },
	{ "GET", "/api/v1/guests", PL_ROLE_VIEWER, 200,
	  "the guests as last synced, filtered and sorted (pvelab list -o json)",
	  "{\"type\":\"array\",\"items\":" GUEST_SUMMARY "}", NULL, list_query, get_guests, 0 },
	{ "GET", "/api/v1/guests/{guest}", PL_ROLE_VIEWER, 200,
	  "one guest (vmid or name) as last synced, with its recent tasks (pvelab describe -o "
	  "json, without the snapshots it reads live)",
	  "{\"type\":\"object\",\"required\":[\"vmid\",\"type\",\"node\",\"tasks\"],"
	  "\"properties\":{\"vmid\":{\"type\":\"integer\"},\"config\":" OBJ ",\"tasks\":"
	  "{\"type\":\"array\"}}}",
	  NULL, cluster_query, get_guest, 0 },
	{ "GET", "/api/v1/guests/{guest}/history", PL_ROLE_VIEWER, 200,
	  "every recorded state of a guest, oldest first (pvelab history -o json)",
	  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"id\",\"kind\","
	  "\"sha256\",\"ts\",\"changes\",\"state\"],\"properties\":{\"id\":{\"type\":"
	  "\"integer\"},\"kind\":{\"enum\":[\"discovered\",\"created\",\"updated\",\"deleted\"]},"
	  "\"changes\":{\"type\":\"array\"},\"state\":" OBJ "}}}",
	  NULL, cluster_query, get_history, 0 },
	{ "GET", "/api/v1/runs", PL_ROLE_VIEWER, 200,
	  "the runs (syncs, applies, rollbacks...), newest first",
	  "{\"type\":\"array\",\"items\":" RUN "}", NULL, runs_query, get_runs, 0 },
	{ "GET", "/api/v1/sync", PL_ROLE_VIEWER, 200,
	  "the background refresh: age and last error of the status list and of the last sync, "
	  "the run it recorded; with several clusters, each one's under clusters.NAME",
	  "{\"oneOf\":[{\"type\":\"object\",\"required\":[\"clusters\",\"answers\"],"
	  "\"properties\":{\"clusters\":{\"type\":\"object\",\"additionalProperties\":"
	  "" REFRESH "},\"answers\":" ANSWERS "}},{\"allOf\":[" REFRESH ",{\"type\":"
	  "\"object\",\"required\":[\"answers\"],\"properties\":{\"answers\":" ANSWERS "}}]}]}",
	  NULL, cluster_query, get_sync, 0 },
	{ "POST", "/api/v1/sync", PL_ROLE_OPERATOR, 202,
	  "sync the whole cluster into the store now (after the one running); GET /api/v1/sync "
	  "follows it. Several clusters: each one (or ?cluster=NAME's), each sync numbered in "
	  "its cluster",
	  "{\"oneOf\":[{\"type\":\"object\",\"required\":[\"seq\",\"state\"],\"properties\":"
	  "{\"seq\":{\"type\":\"integer\"},\"state\":{\"const\":\"running\"}}},{\"type\":"
	  "\"object\",\"required\":[\"clusters\",\"state\"],\"properties\":{\"clusters\":{"
	  "\"type\":\"object\",\"additionalProperties\":{\"type\":\"object\",\"required\":"
	  "[\"seq\"]}},\"state\":{\"const\":\"running\"}}}]}",
	  "{\"type\":\"object\",\"additionalProperties\":false}", cluster_query, post_sync, 0 },
#define ACTION                                                                                     \
	"{\"type\":\"object\",\"required\":[\"id\",\"action\",\"vmid\",\"state\"],"                \
	"\"properties\":{\"id\":{\"type\":\"integer\"},\"action\":{\"type\":\"string\"},"          \
	"\"vmid\":{\"type\":\"integer\"},\"name\":" STR_OR_NULL ",\"cluster\":{\"type\":"          \
	"\"string\"},\"state\":{\"enum\":"                                                         \
	"[\"running\",\"ok\",\"failed\"]},\"result\":{\"type\":[\"object\",\"null\"]}}}"
#define POWER_ROUTE(verb, what)                                                                    \
	{                                                                                          \
		"POST", "/api/v1/guests/{guest}/" #verb, PL_ROLE_OPERATOR, 202,                    \
			what " (as pvelab " #verb                                                  \
			     "): 202 at once; GET /api/v1/actions/{id} follows it",                \
			ACTION, "{\"type\":\"object\",\"additionalProperties\":false}",            \
			cluster_query, post_##verb, 0                                              \
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
	api->one = (struct pl_serve_cluster){ NULL, s, refresh };
	api->cl = &api->one;
	api->ncl = 1;
	api->module.name = "api/v1";
	api->module.routes = routes;
	api->module.arg = api;
}

void
pl_serve_api_set_clusters(struct pl_serve_api *api, const struct pl_serve_cluster *cl, size_t n)
{
	api->cl = cl;
	api->ncl = n;
}
