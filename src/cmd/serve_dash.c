/*
 * The web dashboard of pvelab serve: the embedded page and its assets with a
 * strict Content-Security-Policy, browser sessions (a token traded for an
 * HttpOnly SameSite=Strict cookie, every change needing the session's CSRF
 * header), and the charts' data: PVE's rrddata, proxied and cached.
 */
#include "core/common.h"
#include "cmd/serve_dash.h"
#include "cmd/connect.h"
#include "cmd/serve_api.h"
#include "cmd/views.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "pve/client.h"
#include "state/state.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <time.h>

#define COOKIE "pvelab_session"
#define CSRF_HEADER "X-CSRF-Token"
#define CACHE_SLOTS 64
#define CACHE_WAITERS 16

/* The page runs only its own script and style: nothing inline, nothing from
 * elsewhere, never framed. */
static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
			  "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
			  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct slot;

/* A request waiting for a slot's answer. */
struct waiter {
	struct slot *slot;
	struct pl_serve_req *req;
};

/* One cached rrddata answer, or one being fetched (busy) with the requests
 * that wait for it. */
struct slot {
	char key[192];
	json_t *data; /* the answer sent: {series, timeframe, cf, fetched} */
	double at;    /* when it was fetched */
	bool busy;
	struct waiter *waiting[CACHE_WAITERS];
	int nwaiting;
};

struct fetch {
	struct pl_dash *d;
	int slot;
	char timeframe[8], cf[8];
	struct fetch *next;
};

struct pl_dash_cache {
	struct slot slots[CACHE_SLOTS];
	struct fetch *fetches; /* in flight */
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
random_hex(char out[65])
{
	unsigned char b[32];

	if (RAND_bytes(b, sizeof(b)) != 1)
		abort(); /* no randomness: nothing safe to hand out */
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	OPENSSL_cleanse(b, sizeof(b));
}

/* ---- assets ---------------------------------------------------------------- */

static const struct {
	const char *name, *type;
} assets[] = {
	{ "index.html", "text/html; charset=utf-8" },
	{ "app.js", "text/javascript; charset=utf-8" },
	{ "app.css", "text/css; charset=utf-8" },
	{ "icon.svg", "image/svg+xml" },
};

static void
security_headers(struct pl_serve_req *req)
{
	pl_serve_add_header(req, "Content-Security-Policy", csp);
	pl_serve_add_header(req, "X-Frame-Options", "DENY");
	pl_serve_add_header(req, "Referrer-Policy", "no-referrer");
	pl_serve_add_header(req, "Cross-Origin-Opener-Policy", "same-origin");
	pl_serve_add_header(req, "Permissions-Policy", "camera=(), microphone=(), geolocation=()");
}

static void
send_asset(struct pl_serve_req *req, const char *name)
{
	static char etags[PL_ARRAY_LEN(assets)][70];
	const char *inm = pl_serve_header(req, "If-None-Match"), *data;
	size_t i, len;

	for (i = 0; i < PL_ARRAY_LEN(assets) && strcmp(assets[i].name, name); i++)
		;
	if (i == PL_ARRAY_LEN(assets) || (data = pl_dash_asset(name, &len)) == NULL) {
		pl_serve_error(req, 404, "not_found", "file", "no such file '%.64s'", name);
		return;
	}
	if (etags[i][0] == '\0') {
		char sha[65];

		pl_sha256_hex(data, len, sha);
		snprintf(etags[i], sizeof(etags[i]), "\"%.32s\"", sha);
	}
	security_headers(req);
	pl_serve_add_header(req, "ETag", etags[i]);
	pl_serve_add_header(req, "Cache-Control", "no-cache");
	if (inm && !strcmp(inm, etags[i]))
		pl_serve_reply_raw(req, 304, NULL, NULL, 0);
	else
		pl_serve_reply_raw(req, 200, assets[i].type, data, len);
}

static void
get_index(struct pl_serve_req *req, void *arg)
{
	send_asset(req, "index.html");
}

static void
get_file(struct pl_serve_req *req, void *arg)
{
	const char *f = pl_serve_path_param(req, "file");

	send_asset(req, f);
}

/* ---- sessions -------------------------------------------------------------- */

bool
pl_dash_cookie_value(const char *h, char out[65])
{
	size_t n = strlen(COOKIE);

	while (h && *h) {
		while (*h == ' ' || *h == ';')
			h++;
		if (!strncmp(h, COOKIE, n) && h[n] == '=') {
			const char *v = h + n + 1;
			size_t l = strcspn(v, "; ");

			if (l != 64 || strspn(v, "0123456789abcdef") < 64)
				return false;
			memcpy(out, v, 64);
			out[64] = '\0';
			return true;
		}
		h += strcspn(h, ";");
	}
	return false;
}

static struct pl_dash_session *
session_of(struct pl_dash *d, struct pl_serve_req *req)
{
	char v[65], sha[65];

	if (!pl_dash_cookie_value(pl_serve_header(req, "Cookie"), v))
		return NULL;
	pl_sha256_hex(v, 64, sha);
	OPENSSL_cleanse(v, sizeof(v));
	for (size_t i = 0; i < PL_DASH_SESSIONS; i++)
		if (d->sessions[i].id_sha[0] && CRYPTO_memcmp(d->sessions[i].id_sha, sha, 64) == 0)
			return &d->sessions[i];
	return NULL;
}

static void
session_drop(struct pl_dash_session *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
}

/* The token behind a session, if it still may be used: a new reference. */
static json_t *
session_token(struct pl_dash *d, struct pl_dash_session *s)
{
	json_t *tok = NULL;

	if (now_s() - s->created > (double)d->session_ttl ||
	    pl_state_token_find(d->api->s->state, s->token_sha, &tok, NULL) != 0)
		goto gone;
	if (!json_is_null(json_object_get(tok, "revoked")) ||
	    (json_is_number(json_object_get(tok, "expires")) &&
	     pl_json_num(tok, "expires", 0) <= (double)time(NULL)))
		goto gone;
	return tok;
gone:
	json_decref(tok);
	session_drop(s);
	return NULL;
}

/* The serve core's credentials hook: a session cookie stands for its token;
 * a change (any method but GET and HEAD) also needs the session's CSRF
 * header. An Authorization header wins over a cookie. */
static int
cookie_auth(struct pl_serve_req *req, char *name, size_t size, int *role, void *arg)
{
	struct pl_dash *d = arg;
	const char *m = pl_serve_method(req), *csrf;
	struct pl_dash_session *s;
	json_t *tok;

	if (pl_serve_header(req, "Authorization"))
		return 0;
	if ((s = session_of(d, req)) == NULL || (tok = session_token(d, s)) == NULL)
		return 0;
	if (strcmp(m, "GET") && strcmp(m, "HEAD")) {
		csrf = pl_serve_header(req, CSRF_HEADER);
		if (csrf == NULL || strlen(csrf) != 64 || CRYPTO_memcmp(csrf, s->csrf, 64) != 0) {
			pl_log_warn("dashboard: a %s of session '%s' refused: %s header %s", m,
				    s->name, CSRF_HEADER, csrf ? "wrong" : "missing");
			pl_serve_error(req, 403, "csrf", NULL,
				       "a change from a browser session needs the page's %s "
				       "header",
				       CSRF_HEADER);
			json_decref(tok);
			return -1;
		}
	}
	s->used = now_s();
	snprintf(name, size, "%s", pl_json_str_or(tok, "name", "?"));
	*role = pl_serve_role_parse(pl_json_str(tok, "role"));
	json_decref(tok);
	return *role < 0 ? 0 : 1;
}

static void
set_cookie(struct pl_serve_req *req, const char *value, long max_age)
{
	char *c = pl_asprintf("%s=%s; Path=/; Max-Age=%ld; HttpOnly; SameSite=Strict%s", COOKIE,
			      value, max_age, pl_serve_is_tls(req) ? "; Secure" : "");

	pl_serve_add_header(req, "Set-Cookie", c);
	OPENSSL_cleanse(c, strlen(c));
	free(c);
}

/* POST /ui/login with Authorization: Bearer TOKEN (the core checked it, its
 * role and the failures in a row): a session for that token. */
static void
post_login(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	const char *h = pl_serve_header(req, "Authorization");
	struct pl_dash_session *s = &d->sessions[0];
	char id[65];

	if (h == NULL) {
		pl_serve_error(req, 400, "bad_request", NULL,
			       "log in with the token in 'Authorization: Bearer pvl_...'");
		return;
	}
	for (size_t i = 0; i < PL_DASH_SESSIONS; i++) { /* a free slot, else the least used */
		if (d->sessions[i].id_sha[0] == '\0') {
			s = &d->sessions[i];
			break;
		}
		if (d->sessions[i].used < s->used)
			s = &d->sessions[i];
	}
	session_drop(s);
	h += 7;
	while (*h == ' ')
		h++;
	pl_sha256_hex(h, strlen(h), s->token_sha);
	random_hex(id);
	pl_sha256_hex(id, 64, s->id_sha);
	random_hex(s->csrf);
	snprintf(s->name, sizeof(s->name), "%s", pl_serve_caller(req));
	s->created = s->used = now_s();
	set_cookie(req, id, d->session_ttl);
	OPENSSL_cleanse(id, sizeof(id));
	pl_log_info("dashboard: session for token '%s' (%s)", s->name,
		    pl_serve_role_name(pl_serve_caller_role(req)));
	pl_serve_reply(req, 200,
		       json_pack("{s:s,s:s,s:s,s:f,s:b}", "name", s->name, "role",
				 pl_serve_role_name(pl_serve_caller_role(req)), "csrf", s->csrf,
				 "expires", s->created + (double)d->session_ttl, "tls",
				 pl_serve_is_tls(req)));
}

static void
post_logout(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	struct pl_dash_session *s = session_of(d, req);

	if (s)
		session_drop(s);
	set_cookie(req, "", 0);
	pl_serve_reply(req, 200, json_pack("{s:b}", "ended", s != NULL));
}

/* GET /ui/session (public, so that a page opened without a session costs no
 * failed login): who the session cookie is, or 401. */
static void
get_session(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	struct pl_dash_session *s = session_of(d, req);
	json_t *tok = s ? session_token(d, s) : NULL;
	int role = pl_serve_role_parse(pl_json_str(tok, "role"));

	if (tok == NULL || role < 0) {
		json_decref(tok);
		pl_serve_error(req, 401, "unauthorized", NULL, "no session: log in");
		return;
	}
	pl_serve_reply(req, 200,
		       json_pack("{s:s,s:s,s:s,s:f,s:b}", "name", pl_json_str_or(tok, "name", "?"),
				 "role", pl_serve_role_name(role), "csrf", s->csrf, "expires",
				 s->created + (double)d->session_ttl, "tls", pl_serve_is_tls(req)));
	json_decref(tok);
}

/* ---- rrddata ----------------------------------------------------------------- */

/* How long an answer of a timeframe is kept: about one of PVE's steps. */
static double
ttl_of(const char *tf)
{
	static const struct {
		const char *tf;
		double ttl;
	} t[] = { { "hour", 20 }, { "day", 60 }, { "week", 600 }, { "month", 1800 } };

	for (size_t i = 0; i < PL_ARRAY_LEN(t); i++)
		if (!strcmp(t[i].tf, tf))
			return t[i].ttl;
	return 3600;
}

/* A node name as PVE allows it (pve-node: a DNS label), so it can be put in a
 * path as it is. */
static bool
node_name_ok(const char *n)
{
	size_t l = n ? strlen(n) : 0;

	return l > 0 && l < 64 &&
	       strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == l &&
	       n[0] != '-';
}

/* A waiting request's client went away (or the server stops). */
static void
on_gone(void *arg)
{
	struct waiter *w = arg;
	struct slot *sl = w->slot;

	for (int i = 0; i < sl->nwaiting; i++)
		if (sl->waiting[i] == w) {
			sl->waiting[i] = sl->waiting[--sl->nwaiting];
			break;
		}
	free(w);
}

static void
answer_waiting(struct slot *sl, int status, const char *err)
{
	while (sl->nwaiting) {
		struct waiter *w = sl->waiting[--sl->nwaiting];

		if (status == 200)
			pl_serve_reply(w->req, 200, json_incref(sl->data));
		else
			pl_serve_error(w->req, status, "cluster_error", NULL, "%s", err);
		free(w);
	}
}

static void
on_rrd(const struct pl_pve_result *res, void *arg)
{
	struct fetch *f = arg, **pp;
	struct pl_dash *d = f->d;
	struct slot *sl = &d->cache->slots[f->slot];

	for (pp = &d->cache->fetches; *pp && *pp != f; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = f->next;
	sl->busy = false;
	if (res->err || !json_is_array(res->data)) {
		char *msg =
			pl_asprintf("rrddata from the cluster: %s",
				    res->err ? (res->errmsg ? res->errmsg : pl_strerror(res->err)) :
					       "not a list");

		answer_waiting(sl, 502, msg);
		free(msg);
		sl->key[0] = '\0';
	} else {
		json_decref(sl->data);
		sl->at = now_s();
		sl->data = json_pack("{s:O,s:s,s:s,s:f}", "series", res->data, "timeframe",
				     f->timeframe, "cf", f->cf, "fetched", sl->at);
		answer_waiting(sl, 200, NULL);
	}
	free(f);
}

/* Answer GET …/rrddata for pve_path ("/nodes/pve1/qemu/100/rrddata"): from
 * the cache while fresh, else after one request to the cluster that every
 * request for the same series waits on. */
static void
rrd_answer(struct pl_dash *d, struct pl_serve_req *req, const char *pve_path)
{
	const char *tf = pl_serve_query(req, "timeframe"), *cf = pl_serve_query(req, "cf");
	static const char *const tfs[] = { "hour", "day", "week", "month", "year" };
	struct slot *sl = NULL, *old = NULL;
	char key[192];
	bool ok = false;
	double now = now_s();

	if (tf == NULL)
		tf = "hour";
	if (cf == NULL)
		cf = "AVERAGE";
	for (size_t i = 0; i < PL_ARRAY_LEN(tfs); i++)
		ok |= !strcmp(tf, tfs[i]);
	if (!ok) {
		pl_serve_error(req, 400, "bad_request", "timeframe",
			       "timeframe is hour, day, week, month or year, not '%.32s'", tf);
		return;
	}
	if (strcmp(cf, "AVERAGE") && strcmp(cf, "MAX")) {
		pl_serve_error(req, 400, "bad_request", "cf", "cf is AVERAGE or MAX, not '%.32s'",
			       cf);
		return;
	}
	if (d->api->s->pve == NULL) {
		pl_serve_error(req, 503, "no_cluster", NULL,
			       "no cluster to read charts from (set cluster: in pvelab.yaml or "
			       "PVELAB_URL and PVELAB_TOKEN)");
		return;
	}
	snprintf(key, sizeof(key), "%s?%s&%s", pve_path, tf, cf);
	for (int i = 0; i < CACHE_SLOTS; i++) {
		struct slot *s = &d->cache->slots[i];

		if (!strcmp(s->key, key)) {
			sl = s;
			break;
		}
		if (!s->busy && (old == NULL || s->at < old->at))
			old = s;
	}
	if (sl && !sl->busy && sl->data && now - sl->at < ttl_of(tf)) {
		pl_serve_reply(req, 200, json_incref(sl->data));
		return;
	}
	if (sl == NULL && (sl = old) != NULL) {
		json_decref(sl->data);
		memset(sl, 0, sizeof(*sl));
		snprintf(sl->key, sizeof(sl->key), "%s", key);
	}
	if (sl == NULL || sl->nwaiting == CACHE_WAITERS) {
		pl_serve_add_header(req, "Retry-After", "1");
		pl_serve_error(req, 503, "busy", NULL, "too many charts are being read; try again");
		return;
	}
	struct waiter *w = pl_calloc(1, sizeof(*w));

	w->slot = sl;
	w->req = req;
	sl->waiting[sl->nwaiting++] = w;
	pl_serve_defer(req, on_gone, w);
	if (!sl->busy) {
		struct fetch *f = pl_calloc(1, sizeof(*f));
		json_t *params = json_pack("{s:s,s:s}", "timeframe", tf, "cf", cf);

		f->d = d;
		f->slot = (int)(sl - d->cache->slots);
		snprintf(f->timeframe, sizeof(f->timeframe), "%s", tf);
		snprintf(f->cf, sizeof(f->cf), "%s", cf);
		f->next = d->cache->fetches;
		d->cache->fetches = f;
		sl->busy = true;
		pl_pve_request(d->api->s->pve, "GET", pve_path, params, on_rrd, f);
		json_decref(params);
	}
}

static void
get_node_rrd(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	const char *node = pl_serve_path_param(req, "node");
	json_t *st = NULL;
	char *err = NULL, path[128];
	int r;

	if ((r = pl_view_status(d->api->s->state, &st, &err)) != 0) {
		pl_serve_error(req, pl_serve_status_of(r), "internal", NULL, "%s", err);
		goto out;
	}
	if (!node_name_ok(node) ||
	    pl_json_find(json_object_get(st, "nodes"), "node", node, false) == NULL) {
		pl_serve_error(req, 404, "not_found", "node", "no node '%.64s' (as last synced)",
			       node);
		goto out;
	}
	snprintf(path, sizeof(path), "/nodes/%s/rrddata", node);
	rrd_answer(d, req, path);
out:
	json_decref(st);
	free(err);
}

static void
get_guest_rrd(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	json_t *names = NULL, *stored = NULL;
	const json_t *found, *live;
	const char *node, *type;
	char *err = NULL, id[32], path[160];
	int r;

	if ((r = pl_state_guest_names(d->api->s->state, &names, &err)) != 0 ||
	    (found = pl_guest_lookup(names, pl_serve_path_param(req, "guest"), &err)) == NULL ||
	    (r = pl_state_guest(d->api->s->state, pl_json_int(found, "vmid", 0), &stored, &err)) !=
		    0) {
		r = r ? r : PL_ENOENT;
		pl_serve_error(req, pl_serve_status_of(r),
			       r == PL_ENOENT ? "not_found" : "internal", "guest", "%s",
			       err ? err : pl_strerror(r));
		goto out;
	}
	/* where it runs now (the last resource list), else where it was synced */
	snprintf(id, sizeof(id), "%lld", pl_json_int(stored, "vmid", 0));
	live = json_object_get(d->api->refresh->live_by_id, id);
	node = pl_json_str(live ? live : stored, "node");
	type = pl_json_str(stored, "type");
	if (!node_name_ok(node) || !type || (strcmp(type, "qemu") && strcmp(type, "lxc"))) {
		pl_serve_error(req, 502, "cluster_error", "guest",
			       "guest %s has no node or type pvelab can read charts from", id);
		goto out;
	}
	snprintf(path, sizeof(path), "/nodes/%s/%s/%s/rrddata", node, type, id);
	rrd_answer(d, req, path);
out:
	json_decref(names);
	json_decref(stored);
	free(err);
}

/* ---- discovery ------------------------------------------------------------ */

/* GET /api/v1/discovered: what pvelab discover --save remembered. */
static void
get_discovered(struct pl_serve_req *req, void *arg)
{
	struct pl_dash *d = arg;
	json_t *out = NULL;
	char *err = NULL;
	int r;

	if ((r = pl_state_discovered(d->api->s->state, &out, &err)) != 0)
		pl_serve_error(req, pl_serve_status_of(r), "internal", NULL, "%s",
			       err ? err : pl_strerror(r));
	else
		pl_serve_reply(req, 200, out);
	free(err);
}

/* ---- the module ------------------------------------------------------------ */

#define SESSION                                                                                    \
	"{\"type\":\"object\",\"required\":[\"name\",\"role\",\"tls\"],\"properties\":{"           \
	"\"name\":{\"type\":\"string\"},\"role\":{\"enum\":[\"viewer\",\"operator\",\"admin\"]},"  \
	"\"csrf\":{\"type\":\"string\",\"description\":\"send it as X-CSRF-Token with every "      \
	"change\"},\"expires\":{\"type\":\"number\"},\"tls\":{\"type\":\"boolean\"}}}"
#define RRD                                                                                        \
	"{\"type\":\"object\",\"required\":[\"series\",\"timeframe\",\"cf\",\"fetched\"],"         \
	"\"properties\":{\"series\":{\"type\":\"array\",\"items\":{\"type\":\"object\","           \
	"\"required\":[\"time\"]}},\"timeframe\":{\"type\":\"string\"},\"cf\":{\"type\":"          \
	"\"string\"},\"fetched\":{\"type\":\"number\"}}}"

static const struct pl_serve_param rrd_query[] = {
	{ "timeframe", "hour (default), day, week, month or year" },
	{ "cf", "AVERAGE (default) or MAX" },
	{ NULL, NULL },
};

static const struct pl_serve_route routes[] = {
	{ "GET", "/", PL_ROLE_PUBLIC, 200, "the dashboard (a web page)",
	  "{\"type\":\"string\",\"contentMediaType\":\"text/html\"}", NULL, NULL, get_index, 0 },
	{ "GET", "/ui/session", PL_ROLE_PUBLIC, 200,
	  "who the browser session is, and its CSRF token (401 without a session)", SESSION, NULL,
	  NULL, get_session, 0 },
	{ "POST", "/ui/login", PL_ROLE_VIEWER, 200,
	  "trade the bearer token for a session cookie (HttpOnly, SameSite=Strict, Secure over "
	  "HTTPS)",
	  SESSION, NULL, NULL, post_login, 0 },
	{ "POST", "/ui/logout", PL_ROLE_VIEWER, 200, "end the browser session",
	  "{\"type\":\"object\"}", NULL, NULL, post_logout, 0 },
	{ "GET", "/ui/{file}", PL_ROLE_PUBLIC, 200, "the dashboard's script, style and icon",
	  "{\"type\":\"string\",\"contentMediaType\":\"*/*\"}", NULL, NULL, get_file, 0 },
	{ "GET", "/api/v1/nodes/{node}/rrddata", PL_ROLE_VIEWER, 200,
	  "a node's CPU, memory, network and disk series over a timeframe (PVE's rrddata, "
	  "cached)",
	  RRD, NULL, rrd_query, get_node_rrd, 0 },
	{ "GET", "/api/v1/guests/{guest}/rrddata", PL_ROLE_VIEWER, 200,
	  "a guest's CPU, memory, network and disk series over a timeframe (PVE's rrddata, "
	  "cached)",
	  RRD, NULL, rrd_query, get_guest_rrd, 0 },
	{ "GET", "/api/v1/discovered", PL_ROLE_VIEWER, 200,
	  "the hosts pvelab discover --save remembered, present or vanished, by address",
	  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"address\","
	  "\"kind\",\"first_seen\",\"last_seen\",\"present\"],\"properties\":{\"address\":"
	  "{\"type\":\"string\"},\"kind\":{\"type\":\"string\"},\"first_seen\":{\"type\":"
	  "\"number\"},\"last_seen\":{\"type\":\"number\"},\"present\":{\"type\":"
	  "\"boolean\"},\"record\":{\"type\":[\"object\",\"null\"]}}}}",
	  NULL, NULL, get_discovered, 0 },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};

void
pl_dash_init(struct pl_dash *d, struct pl_serve *sv, struct pl_serve_api *api,
	     const struct pl_serve_metrics *metrics)
{
	memset(d, 0, sizeof(*d));
	d->sv = sv;
	d->api = api;
	d->metrics = metrics;
	d->cache = pl_calloc(1, sizeof(*d->cache));
	d->session_ttl = 12 * 3600;
	d->module.name = "dashboard";
	d->module.routes = routes;
	d->module.arg = d;
	pl_serve_add(sv, &d->module);
	d->reads.name = "dashboard reads";
	d->reads.routes = pl_dash_read_routes;
	d->reads.arg = d;
	pl_serve_add(sv, &d->reads);
	pl_serve_set_auth(sv, cookie_auth, d);
}

void
pl_dash_release(struct pl_dash *d)
{
	if (d->cache == NULL)
		return;
	/* the client is freed after us and never calls back then */
	while (d->cache->fetches) {
		struct fetch *f = d->cache->fetches;

		d->cache->fetches = f->next;
		free(f);
	}
	for (int i = 0; i < CACHE_SLOTS; i++)
		json_decref(d->cache->slots[i].data);
	free(d->cache);
	OPENSSL_cleanse(d->sessions, sizeof(d->sessions));
}
