/*
 * What the dashboard's overview, history and drift read that no command
 * answers, from what the server already keeps in memory (never a read of the
 * cluster per request): node certificate expiry and the drift of the
 * metrics' after-sync reads and planning refresh, storage usage from the
 * refresh's resource list, and the store's history of every guest, paged.
 */
#include "core/common.h"
#include "cmd/serve_dash.h"
#include "cmd/serve_api.h"
#include "cmd/connect.h"
#include "cmd/serve_metrics.h"
#include "cmd/views.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"

#include <math.h>
#include <stdlib.h>

/* A certificate expiring within these many days warns, then fails (as the
 * Proxmox UI and blackbox_exporter users set their alerts). */
#define CERT_WARN_DAYS 30
#define CERT_FAIL_DAYS 7

static json_t *
age_of(double at, double now)
{
	return at > 0 ? json_real(now - at) : json_null();
}

/* By node, then storage (or certificate file). */
static int
by_node(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(pl_json_str_or(x, "node", ""), pl_json_str_or(y, "node", ""));

	if (c == 0)
		c = strcmp(pl_json_str_or(x, "storage", ""), pl_json_str_or(y, "storage", ""));
	return c ? c : strcmp(pl_json_str_or(x, "filename", ""), pl_json_str_or(y, "filename", ""));
}

/* arr sorted by node: a new array of the same items. */
static json_t *
sorted_by_node(json_t *arr)
{
	size_t i, n = json_array_size(arr);
	json_t **v = pl_calloc(n + 1, sizeof(*v)), *out = json_array();

	for (i = 0; i < n; i++)
		v[i] = json_array_get(arr, i);
	qsort(v, n, sizeof(*v), by_node);
	for (i = 0; i < n; i++)
		json_array_append(out, v[i]);
	free(v);
	json_decref(arr);
	return out;
}

/* GET /api/v1/certificates: each node's certificates as the last read after
 * a sync found them (/nodes/{node}/certificates/info), with days left. */
static void
get_certificates(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	const struct pl_serve_metrics *m = d->metrics;
	double now = pl_metrics_now();
	json_t *list = json_array(), *certs, *c;
	const char *node;
	size_t i;

	json_object_foreach(m->certs, node, certs) {
		json_array_foreach(certs, i, c) {
			double left;
			const char *state;

			if (!json_is_integer(json_object_get(c, "notafter")))
				continue;
			left = ((double)pl_json_int(c, "notafter", 0) - now) / 86400.0;
			/* a hostile node's year 292277026596 still fits an int */
			left = left < -1e6 ? -1e6 : left > 1e6 ? 1e6 : left;
			state = left < 0              ? "expired" :
				left < CERT_FAIL_DAYS ? "critical" :
				left < CERT_WARN_DAYS ? "warning" :
							"ok";
			json_array_append_new(
				list,
				json_pack("{s:s,s:s?,s:s?,s:s?,s:O?,s:O,s:s?,s:i,s:s}", "node",
					  node, "filename", pl_json_str(c, "filename"), "subject",
					  pl_json_str(c, "subject"), "issuer",
					  pl_json_str(c, "issuer"), "notbefore",
					  json_object_get(c, "notbefore"), "notafter",
					  json_object_get(c, "notafter"), "fingerprint",
					  pl_json_str(c, "fingerprint"), "days_left",
					  (int)floor(left), "state", state));
		}
	}
	pl_serve_reply(req, 200,
		       json_pack("{s:o,s:o,s:i,s:i,s:o}", "read_at",
				 m->certs && m->slow_at > 0 ? json_real(m->slow_at) : json_null(),
				 "age", m->certs ? age_of(m->slow_at, now) : json_null(),
				 "warn_days", CERT_WARN_DAYS, "fail_days", CERT_FAIL_DAYS,
				 "certificates", sorted_by_node(list)));
}

/* GET /api/v1/storages: each node's storages with their usage, from the
 * refresh's last resource list. */
static void
get_storages(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	const json_t *live = d->api->refresh->live, *r;
	json_t *out = json_array();
	size_t i;

	json_array_foreach(live, i, r) {
		long long used = pl_json_int(r, "disk", -1), total = pl_json_int(r, "maxdisk", -1);

		if (strcmp(pl_json_str_or(r, "type", ""), "storage") || !pl_json_str(r, "node") ||
		    !pl_json_str(r, "storage"))
			continue;
		json_array_append_new(
			out,
			json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:b,s:o,s:o,s:o}", "node",
				  pl_json_str(r, "node"), "storage", pl_json_str(r, "storage"),
				  "plugintype", pl_json_str(r, "plugintype"), "status",
				  pl_json_str(r, "status"), "content", pl_json_str(r, "content"),
				  "shared", pl_json_int(r, "shared", 0) != 0, "disk",
				  used >= 0 ? json_integer(used) : json_null(), "maxdisk",
				  total >= 0 ? json_integer(total) : json_null(), "used_fraction",
				  used >= 0 && total > 0 ? json_real((double)used / (double)total) :
							   json_null()));
	}
	out = sorted_by_node(out);
	pl_serve_reply(req, 200, out);
}

/* GET /api/v1/history: every guest's history, newest first, paged. */
static void
get_timeline(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	struct pl_view_timeline q = {
		pl_serve_query(req, "guest"),  pl_serve_query(req, "node"),
		pl_serve_query(req, "kind"),   pl_serve_query(req, "since"),
		pl_serve_query(req, "before"), pl_serve_query(req, "limit"),
	};
	const char *field = NULL;
	json_t *out = NULL;
	char *err = NULL;
	int r;

	if ((r = pl_view_timeline(d->api->s->state, &q, &out, &field, &err)) != 0) {
		int status = pl_serve_status_of(r);

		pl_serve_error(req, status,
			       status == 404 ? "not_found" :
			       status == 400 ? "bad_request" :
					       "internal",
			       field, "%s", err ? err : pl_strerror(r));
	} else {
		pl_serve_reply(req, 200, out);
	}
	free(err);
}

/* GET /api/v1/drift: what the metrics' planning refresh (after each sync)
 * found between pvelab.yaml and the cluster. */
static void
get_drift(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	const struct pl_serve_metrics *m = d->metrics;
	const struct pl_config *cfg = d->api->s->cfg;
	json_t *changes = json_array(), *differ = json_object(), *c;
	size_t i;

	json_array_foreach(m->drift, i, c) {
		const char *id = pl_json_str_or(c, "id", ""), *slash = strchr(id, '/');
		const char *action = pl_json_str_or(c, "action", "");
		json_t *x = json_deep_copy(c);

		json_object_set_new(x, "vmid", json_integer(slash ? atoll(slash + 1) : 0));
		json_array_append_new(changes, x);
		if (!strcmp(action, "update") || !strcmp(action, "replace"))
			json_object_set_new(differ, id, json_true());
	}
	pl_serve_reply(req, 200,
		       json_pack("{s:b,s:o,s:o,s:b,s:s?,s:i,s:o,s:o}", "config",
				 cfg && json_array_size(pl_config_guests(cfg)) > 0, "planned_at",
				 m->drift && m->plan_at > 0 ? json_real(m->plan_at) : json_null(),
				 "age",
				 m->drift ? age_of(m->plan_at, pl_metrics_now()) : json_null(),
				 "planning", m->planning != NULL, "error", m->plan_error, "differ",
				 (int)json_object_size(differ), "changes", changes, "pending",
				 m->pending ? json_incref(m->pending) : json_array()));
	json_decref(differ);
}

#define NUM_OR_NULL "{\"type\":[\"number\",\"null\"]}"
#define STR_OR_NULL "{\"type\":[\"string\",\"null\"]}"
#define INT_OR_NULL "{\"type\":[\"integer\",\"null\"]}"

static const struct pl_serve_param timeline_query[] = {
	{ "guest", "only this guest (vmid or name, deleted ones too) or object (storage:ID, "
		   "pool:ID, firewall:...)" },
	{ "node", "only rows whose state is on this node" },
	{ "kind", "only discovered, created, updated or deleted rows" },
	{ "since", "only rows recorded at or after this time (Unix seconds)" },
	{ "before", "only rows older than this id (the next of the page before)" },
	{ "limit", "at most this many rows, newest first (1-500, default 50)" },
	{ NULL, NULL },
};

const struct pl_serve_route pl_dash_read_routes[] = {
	{ "GET", "/api/v1/certificates", PL_ROLE_VIEWER, 200,
	  "each online node's certificates (from /nodes/{node}/certificates/info, read after "
	  "each sync) with days left: warning under 30, critical under 7",
	  "{\"type\":\"object\",\"required\":[\"read_at\",\"age\",\"warn_days\",\"fail_days\","
	  "\"certificates\"],\"properties\":{\"read_at\":" NUM_OR_NULL ",\"age\":" NUM_OR_NULL
	  ",\"warn_days\":{\"type\":\"integer\"},\"fail_days\":{\"type\":\"integer\"},"
	  "\"certificates\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":"
	  "[\"node\",\"notafter\",\"days_left\",\"state\"],\"properties\":{\"node\":{\"type\":"
	  "\"string\"},\"filename\":" STR_OR_NULL ",\"subject\":" STR_OR_NULL ",\"notafter\":"
	  "{\"type\":\"integer\"},\"days_left\":{\"type\":\"integer\"},\"state\":{\"enum\":"
	  "[\"ok\",\"warning\",\"critical\",\"expired\"]}}}}}}",
	  NULL, NULL, get_certificates, 0 },
	{ "GET", "/api/v1/storages", PL_ROLE_VIEWER, 200,
	  "each node's storages with their usage, from the last resource list",
	  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"node\",\"storage\","
	  "\"shared\",\"disk\",\"maxdisk\",\"used_fraction\"],\"properties\":{\"node\":{\"type\":"
	  "\"string\"},\"storage\":{\"type\":\"string\"},\"plugintype\":" STR_OR_NULL ","
	  "\"status\":" STR_OR_NULL ",\"shared\":{\"type\":\"boolean\"},\"disk\":" INT_OR_NULL
	  ",\"maxdisk\":" INT_OR_NULL ",\"used_fraction\":" NUM_OR_NULL "}}}",
	  NULL, NULL, get_storages, 0 },
	{ "GET", "/api/v1/history", PL_ROLE_VIEWER, 200,
	  "the history of every guest and object, newest first, each row with its changes from "
	  "the row before (as pvelab history -o json gives them), a page at a time",
	  "{\"type\":\"object\",\"required\":[\"items\",\"next\"],\"properties\":{\"items\":"
	  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"id\",\"guest\","
	  "\"vmid\",\"kind\",\"ts\",\"changes\"],\"properties\":{\"id\":{\"type\":\"integer\"},"
	  "\"guest\":{\"type\":\"string\"},\"vmid\":" INT_OR_NULL ",\"name\":" STR_OR_NULL ","
	  "\"node\":" STR_OR_NULL ",\"kind\":{\"enum\":[\"discovered\",\"created\",\"updated\","
	  "\"deleted\"]},\"run\":" INT_OR_NULL ",\"ts\":{\"type\":\"number\"},\"changes\":"
	  "{\"type\":\"array\"}}}},\"next\":" INT_OR_NULL "}}",
	  NULL, timeline_query, get_timeline, 0 },
	{ "GET", "/api/v1/drift", PL_ROLE_VIEWER, 200,
	  "what pvelab.yaml's plan holds against the cluster, as the background planning after "
	  "each sync last found it: the changes by guest and the keys pending a reboot",
	  "{\"type\":\"object\",\"required\":[\"config\",\"planned_at\",\"age\",\"planning\","
	  "\"differ\",\"changes\",\"pending\"],\"properties\":{\"config\":{\"type\":"
	  "\"boolean\"},\"planned_at\":" NUM_OR_NULL ",\"age\":" NUM_OR_NULL ",\"planning\":"
	  "{\"type\":\"boolean\"},\"error\":" STR_OR_NULL ",\"differ\":{\"type\":\"integer\"},"
	  "\"changes\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"id\","
	  "\"vmid\",\"guest\",\"action\",\"class\"]}},\"pending\":{\"type\":\"array\",\"items\":"
	  "{\"type\":\"object\",\"required\":[\"vmid\",\"guest\",\"keys\"]}}}}",
	  NULL, NULL, get_drift, 0 },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};
