/*
 * The server: evhttp listeners (TLS through bufferevent_openssl), the
 * connection limits, bearer-token authentication with roles, the route
 * matching shared with the OpenAPI document, and the JSON answers. Nothing
 * here waits: a failed login is answered later by a timer, never by sleeping.
 */
#include "core/common.h"
#include "serve/serve.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "serve/internal.h"
#include "state/state.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_SEGMENTS 16

int
pl_serve_role_parse(const char *name)
{
	static const char *const names[] = { "viewer", "operator", "admin" };

	for (int i = 0; name && i < 3; i++)
		if (!strcmp(name, names[i]))
			return PL_ROLE_VIEWER + i;
	return -1;
}

const char *
pl_serve_role_name(int role)
{
	switch (role) {
	case PL_ROLE_VIEWER:
		return "viewer";
	case PL_ROLE_OPERATOR:
		return "operator";
	case PL_ROLE_ADMIN:
		return "admin";
	default:
		return "public";
	}
}

int
pl_serve_status_of(int err)
{
	switch (err) {
	case PL_ENOENT:
		return 404;
	case PL_EINVAL:
	case PL_EPARSE:
	case PL_EUSAGE:
		return 400;
	case PL_ETOOBIG:
		return 413;
	case PL_EAUTH:
		return 401;
	case PL_EPERM:
		return 403;
	case PL_ECONFLICT:
		return 409;
	case PL_ECONNECT:
	case PL_ETLS:
	case PL_EHTTP:
	case PL_ETIMEOUT:
	case PL_ETASK:
		return 502;
	default:
		return 500;
	}
}

static const char *
reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 423:
		return "Locked";
	case 429:
		return "Too Many Requests";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	default:
		return status < 500 ? "Client Error" : "Server Error";
	}
}

bool
pl_serve_is_loopback(const char *addr)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
	struct in6_addr a6;
	struct in_addr a4;

	if (n >= sizeof(host))
		return false;
	memcpy(host, addr, n);
	host[n] = '\0';
	if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	if (!strcmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

struct pl_serve *
pl_serve_new(struct event_base *base, struct pl_state *state, const struct pl_serve_limits *lim)
{
	struct pl_serve *sv = pl_calloc(1, sizeof(*sv));

	sv->base = base;
	sv->state = state;
	sv->lim = *lim;
	sv->stream_buffer = 65536;
	pl_serve_add(sv, &pl_serve_core_module);
	return sv;
}

static void conn_drop(struct pl_serve_conn *c);

void
pl_serve_free(struct pl_serve *sv)
{
	if (sv == NULL)
		return;
	sv->drained = NULL;
	for (size_t i = 0; i < sv->nlis; i++)
		evhttp_free(sv->lis[i]->http); /* closes its connections: conn_drop each */
	while (sv->conns)
		conn_drop(sv->conns);
	for (size_t i = 0; i < sv->naccepted; i++)
		bufferevent_decref(sv->accepted[i]);
	for (size_t i = 0; i < sv->nlis; i++)
		free(sv->lis[i]);
	pl_serve_events_free(sv);
	pl_serve_cache_free(sv);
	if (sv->accept_ev)
		event_free(sv->accept_ev);
	if (sv->drain_ev)
		event_free(sv->drain_ev);
	SSL_CTX_free(sv->tls);
	free(sv->accepted);
	free(sv->lis);
	free(sv->mods);
	free(sv->more_states);
	free(sv);
}

void
pl_serve_add_store(struct pl_serve *sv, struct pl_state *state)
{
	sv->more_states =
		pl_realloc(sv->more_states, (sv->nmore_states + 1) * sizeof(*sv->more_states));
	sv->more_states[sv->nmore_states++] = state;
}

void
pl_serve_set_limits(struct pl_serve *sv, const struct pl_serve_limits *lim)
{
	int ring = sv->lim.event_ring; /* the ring keeps its size */

	sv->lim = *lim;
	sv->lim.event_ring = ring;
	for (size_t i = 0; i < sv->nlis; i++) {
		struct evhttp *http = sv->lis[i]->http;

		evhttp_set_max_headers_size(http, lim->max_header);
		evhttp_set_max_body_size(http, lim->max_body);
		evhttp_set_timeout(http, lim->request_timeout);
	}
}

void
pl_serve_set_stream_buffer(struct pl_serve *sv, long long bytes)
{
	sv->stream_buffer = bytes > 0 ? bytes : 65536;
}

void
pl_serve_set_tls(struct pl_serve *sv, SSL_CTX *tls)
{
	if (tls == sv->tls)
		return;
	if (tls)
		SSL_CTX_up_ref(tls);
	SSL_CTX_free(sv->tls);
	sv->tls = tls;
}

void
pl_serve_counts(const struct pl_serve *sv, int *conns, int *streams)
{
	int n = 0;

	for (const struct pl_serve_conn *c = sv->conns; c; c = c->next)
		n += c->stream != NULL;
	*conns = sv->nconns;
	*streams = n;
}

void
pl_serve_add(struct pl_serve *sv, const struct pl_serve_module *m)
{
	sv->mods = pl_realloc(sv->mods, (sv->nmods + 1) * sizeof(*sv->mods));
	sv->mods[sv->nmods++] = m;
}

/* ---- matching ---------------------------------------------------------- */

/* Split a raw path into decoded segments; false for what no route takes: no
 * leading '/', empty, "." or ".." segments, an encoded '/' or NUL, invalid
 * UTF-8 (a parameter becomes a JSON string, which must be UTF-8), too many. */
/* jansson's own check (json_stringn refuses invalid UTF-8). */
static bool
utf8_valid(const char *s, size_t len)
{
	json_t *t = json_stringn(s, len);

	json_decref(t);
	return t != NULL;
}

static bool
split_path(const char *path, char **seg, int *nseg)
{
	const char *p = path;

	*nseg = 0;
	if (*p != '/')
		return false;
	if (!strcmp(p, "/"))
		return true;
	while (*p == '/') {
		const char *s = ++p;
		size_t len, dlen = 0;
		char *raw, *dec;

		while (*p && *p != '/')
			p++;
		len = (size_t)(p - s);
		if (len == 0 || *nseg == MAX_SEGMENTS)
			return false;
		raw = pl_strndup(s, len);
		dec = evhttp_uridecode(raw, 0, &dlen);
		free(raw);
		if (dec == NULL || dlen != strlen(dec) || strchr(dec, '/') || !strcmp(dec, ".") ||
		    !strcmp(dec, "..") || dlen == 0 || !utf8_valid(dec, dlen)) {
			free(dec);
			return false;
		}
		seg[(*nseg)++] = dec;
	}
	return *p == '\0';
}

/* Does route path rp match the segments? Binds {params} into params. */
static bool
route_matches(const char *rp, char **seg, int nseg, json_t *params)
{
	const char *p = rp;
	int i = 0;

	if (!strcmp(rp, "/"))
		return nseg == 0;
	while (*p == '/') {
		const char *s = ++p;
		size_t len;

		while (*p && *p != '/')
			p++;
		len = (size_t)(p - s);
		if (i >= nseg)
			return false;
		if (len > 2 && s[0] == '{' && s[len - 1] == '}') {
			if (params) {
				char *name = pl_strndup(s + 1, len - 2);

				json_object_set_new(params, name, json_string(seg[i]));
				free(name);
			}
		} else if (strlen(seg[i]) != len || strncmp(seg[i], s, len)) {
			return false;
		}
		i++;
	}
	return i == nseg;
}

const struct pl_serve_route *
pl_serve_match(const struct pl_serve *sv, const char *method, const char *path, json_t **params,
	       int *status)
{
	char *seg[MAX_SEGMENTS];
	int nseg = 0;
	const struct pl_serve_route *found = NULL;
	bool path_ok = false;

	if (params)
		*params = NULL;
	if (!split_path(path, seg, &nseg)) {
		*status = 400;
		goto out;
	}
	*status = 404;
	for (size_t m = 0; m < sv->nmods && !found; m++)
		for (const struct pl_serve_route *r = sv->mods[m]->routes; r->method; r++) {
			if (!route_matches(r->path, seg, nseg, NULL))
				continue;
			path_ok = true;
			if (strcmp(r->method, method))
				continue;
			found = r;
			if (params) {
				*params = json_object();
				route_matches(r->path, seg, nseg, *params);
			}
			break;
		}
	if (!found && path_ok)
		*status = 405;
out:
	for (int i = 0; i < nseg; i++)
		free(seg[i]);
	return found;
}

/* The module a route belongs to (its handler's arg). */
static void *
route_arg(const struct pl_serve *sv, const struct pl_serve_route *route)
{
	for (size_t m = 0; m < sv->nmods; m++)
		for (const struct pl_serve_route *r = sv->mods[m]->routes; r->method; r++)
			if (r == route)
				return sv->mods[m]->arg;
	return NULL;
}

/* ---- connections ------------------------------------------------------- */

/* Connections from addr that count against the limits. */
static int
conns_from(const struct pl_serve *sv, const char *addr)
{
	int n = 0;

	for (const struct pl_serve_conn *c = sv->conns; c; c = c->next)
		n += !c->refused && !strcmp(c->addr, addr);
	return n;
}

/* A request the connection's end leaves with us: evhttp detaches one whose
 * answer was not finished (held back, or a stream) instead of freeing it. */
static void
orphan_free(struct pl_serve_req *r)
{
	if (r->req && evhttp_request_get_connection(r->req) == NULL)
		evhttp_request_free(r->req);
	pl_serve_req_free(r);
}

static void
conn_drop(struct pl_serve_conn *c)
{
	struct pl_serve *sv = c->sv;
	struct pl_serve_conn **pp = &sv->conns;

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	if (c->refused)
		sv->nrefused--;
	else
		sv->nconns--;
	if (c->busy)
		sv->busy--;
	if (c->deadline_ev)
		event_free(c->deadline_ev);
	if (c->held_ev)
		event_free(c->held_ev);
	if (c->held)
		orphan_free(c->held);
	if (c->stream) {
		size_t unsent = pl_serve_unsent(c);

		if (unsent && !c->ending)
			pl_log_warn("%s:%u: event stream closed with %zu bytes unread", c->addr,
				    c->port, unsent);
		orphan_free(c->stream);
	}
	if (c->deferred) {
		struct pl_serve_req *r = c->deferred;

		c->deferred = NULL;
		if (r->gone)
			r->gone(r->gone_arg);
		orphan_free(r);
	}
	free(c);
	pl_serve_drain_check(sv);
}

static void
on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct pl_serve_conn *c = arg;

	evbuffer_remove_cb_entry(c->rx, c->rx_cb); /* the buffer may outlive c */
	if (c->receiving && c->sv->draining)
		pl_log_info("%s:%u closed before its request was all in", c->addr, c->port);
	conn_drop(c);
}

/* Bytes came in on c: the start (or more) of its next request. A drain
 * waits for that request and answers it (within its deadline) instead of
 * cutting it off. */
static void
on_rx(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct pl_serve_conn *c = arg;

	if (info->n_added && !c->busy)
		c->receiving = true;
}

void
pl_serve_conn_close(struct pl_serve_conn *c, const char *why)
{
	pl_log_info("%s:%u closed: %s", c->addr, c->port, why);
	evhttp_connection_free(c->evcon); /* on_conn_close drops c */
}

/* The total deadline of a request: evhttp's own timeout starts over with
 * every byte, so a client sending one byte at a time would never meet it. */
static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_conn *c = arg;

	pl_serve_conn_close(c, c->refused ? "over the connection limit, and no request came" :
					    "no whole request within the request timeout");
}

static void
arm_deadline(struct pl_serve_conn *c)
{
	int secs = c->sv->lim.request_timeout > 0 ? c->sv->lim.request_timeout : 30;
	struct timeval tv = { c->refused && secs > 5 ? 5 : secs, 0 };

	evtimer_add(c->deadline_ev, &tv);
}

static struct pl_serve_conn *
conn_find(const struct pl_serve *sv, const struct evhttp_connection *evcon)
{
	struct pl_serve_conn *c;

	for (c = sv->conns; c && c->evcon != evcon; c = c->next)
		;
	return c;
}

/* Count a new connection against the limits. One over them is kept only to
 * answer its first request 503 (within a short deadline), and one more than
 * that is closed at once (when may_free: evhttp is not inside one of its
 * requests). Returns NULL when it was closed. */
static struct pl_serve_conn *
conn_register(struct pl_serve *sv, struct evhttp_connection *evcon, bool may_free)
{
	struct pl_serve_conn *c;
	char *peer = NULL;
	ev_uint16_t port = 0;
	bool over;

	evhttp_connection_get_peer(evcon, &peer, &port);
	peer = peer ? peer : "";
	over = sv->nconns >= sv->lim.max_connections ||
	       conns_from(sv, peer) >= sv->lim.max_per_client;
	if (over && may_free && sv->nrefused >= sv->lim.max_connections) {
		pl_log_warn("%s:%u closed at once: %d connections open and %d over the limits",
			    peer, (unsigned)port, sv->nconns, sv->nrefused);
		evhttp_connection_free(evcon);
		return NULL;
	}
	c = pl_calloc(1, sizeof(*c));
	c->sv = sv;
	c->evcon = evcon;
	snprintf(c->addr, sizeof(c->addr), "%s", peer);
	c->port = port;
	c->refused = over;
	if (over)
		sv->nrefused++;
	else
		sv->nconns++;
	c->next = sv->conns;
	sv->conns = c;
	evhttp_connection_set_closecb(evcon, on_conn_close, c);
	c->rx = bufferevent_get_input(evhttp_connection_get_bufferevent(evcon));
	c->rx_cb = evbuffer_add_cb(c->rx, on_rx, c);
	/* evhttp may have read bytes already (they came with the accept) */
	c->receiving = evbuffer_get_length(c->rx) > 0;
	c->deadline_ev = evtimer_new(sv->base, on_deadline, c);
	arm_deadline(c);
	return c;
}

/* The connections accepted in this turn of the loop: evhttp has made each
 * from the bufferevent on_accept_bev gave it, and made itself that
 * bufferevent's callback argument (libevent 2.1's evhttp shows a server no
 * connection before its first request; this is how one is counted at
 * accept). A NULL argument: evhttp freed it already. */
static void
on_accepted(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve *sv = arg;

	for (size_t i = 0; i < sv->naccepted; i++) {
		struct bufferevent *bev = sv->accepted[i];
		void *evcon = NULL;

		bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
		if (evcon && conn_find(sv, evcon) == NULL)
			conn_register(sv, evcon, true);
		bufferevent_decref(bev);
	}
	sv->naccepted = 0;
}

/* evhttp's accept: the connection's bufferevent (TLS on an HTTPS listener),
 * kept referenced until on_accepted, which runs before it can read. */
static struct bufferevent *
on_accept_bev(struct event_base *base, void *arg)
{
	struct pl_serve_listener *l = arg;
	struct pl_serve *sv = l->sv;
	struct bufferevent *bev;

	if (l->tls) {
		SSL *ssl = sv->tls ? SSL_new(sv->tls) : NULL;

		if (ssl == NULL)
			return NULL;
		bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						     BEV_OPT_CLOSE_ON_FREE |
							     BEV_OPT_DEFER_CALLBACKS);
	} else {
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (bev == NULL)
		return NULL;
	if (sv->accept_ev == NULL)
		sv->accept_ev = event_new(base, -1, 0, on_accepted, sv);
	bufferevent_incref(bev);
	sv->accepted = pl_realloc(sv->accepted, (sv->naccepted + 1) * sizeof(*sv->accepted));
	sv->accepted[sv->naccepted++] = bev;
	event_active(sv->accept_ev, EV_TIMEOUT, 1);
	return bev;
}

/* A response is written (evhttp's on-complete): the connection's next
 * request must come within the deadline; an event stream is over. */
static void
on_complete(struct evhttp_request *req, void *arg)
{
	struct pl_serve_conn *c = arg;
	struct pl_serve *sv = c->sv;

	if (c->stream && c->stream->req == req) {
		pl_serve_req_free(c->stream); /* evhttp frees req */
		c->stream = NULL;
	}
	if (c->busy) {
		c->busy = false;
		sv->busy--;
	}
	c->receiving = evbuffer_get_length(c->rx) > 0; /* a pipelined request */
	arm_deadline(c);
	pl_serve_drain_check(sv);
}

/* ---- draining ---------------------------------------------------------- */

static void
on_drained(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve *sv = arg;
	void (*done)(void *) = sv->drained;

	sv->drained = NULL;
	if (done)
		done(sv->drained_arg);
}

void
pl_serve_drain_check(struct pl_serve *sv)
{
	if (!sv->draining || sv->drained == NULL || sv->busy || sv->holds)
		return;
	for (const struct pl_serve_conn *c = sv->conns; c; c = c->next)
		if (c->stream || c->receiving)
			return;
	event_active(sv->drain_ev, EV_TIMEOUT, 1);
}

void
pl_serve_drain(struct pl_serve *sv, void (*done)(void *arg), void *arg)
{
	struct pl_serve_conn *c, *next;

	if (sv->draining)
		return;
	sv->draining = true;
	sv->drained = done;
	sv->drained_arg = arg;
	sv->drain_ev = event_new(sv->base, -1, 0, on_drained, sv);
	for (size_t i = 0; i < sv->nlis; i++)
		if (sv->lis[i]->bound) {
			evhttp_del_accept_socket(sv->lis[i]->http, sv->lis[i]->bound);
			sv->lis[i]->bound = NULL;
		}
	pl_serve_events_end(sv);
	/* idle connections go now; one whose request is coming in is answered
	 * (Connection: close) once it is in, or cut at its request deadline */
	for (c = sv->conns; c; c = next) {
		next = c->next;
		if (c->receiving && !c->busy)
			pl_log_info("%s:%u: its request is coming in: answered before the stop",
				    c->addr, c->port);
		else if (!c->busy && !c->stream)
			pl_serve_conn_close(c, "the server is stopping");
	}
	pl_serve_drain_check(sv);
}

bool
pl_serve_draining(const struct pl_serve *sv)
{
	return sv->draining;
}

void
pl_serve_hold(struct pl_serve *sv)
{
	sv->holds++;
}

void
pl_serve_release(struct pl_serve *sv)
{
	if (sv->holds > 0)
		sv->holds--;
	pl_serve_drain_check(sv);
}

/* ---- failed logins ----------------------------------------------------- */

/* How long to hold back the answer to an address's nth failure in a row: none
 * for the first two (a typo), then doubling from 250 ms to 8 s. */
static long
fail_delay_ms(int n)
{
	if (n < 3)
		return 0;
	if (n > 8)
		return 8000;
	return 250L << (n - 3);
}

static struct pl_serve_fail *
fail_slot(struct pl_serve *sv, const char *addr, bool add)
{
	struct pl_serve_fail *old = &sv->fails[0];

	for (size_t i = 0; i < PL_ARRAY_LEN(sv->fails); i++) {
		struct pl_serve_fail *f = &sv->fails[i];

		if (f->n && !strcmp(f->addr, addr))
			return f;
		if (f->last < old->last)
			old = f;
	}
	if (!add)
		return NULL;
	memset(old, 0, sizeof(*old)); /* the least recent address gives way */
	snprintf(old->addr, sizeof(old->addr), "%s", addr);
	return old;
}

/* ---- requests ---------------------------------------------------------- */

void
pl_serve_req_free(struct pl_serve_req *r)
{
	if (r == NULL)
		return;
	json_decref(r->params);
	json_decref(r->body);
	json_decref(r->held_body);
	evhttp_clear_headers(&r->query);
	free(r);
}

const char *
pl_serve_path_param(const struct pl_serve_req *r, const char *name)
{
	return pl_json_str(r->params, name);
}

const char *
pl_serve_query(const struct pl_serve_req *r, const char *name)
{
	return evhttp_find_header(&r->query, name);
}

const json_t *
pl_serve_body(const struct pl_serve_req *r)
{
	return r->body;
}

const unsigned char *
pl_serve_body_raw(const struct pl_serve_req *r, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);

	*len = evbuffer_get_length(in);
	return *len ? evbuffer_pullup(in, -1) : NULL;
}

bool
pl_serve_body_is_yaml(const struct pl_serve_req *r)
{
	const char *t = pl_serve_header(r, "Content-Type");
	size_t n = t ? strcspn(t, "; \t") : 0;

	return t && ((n == 16 && !strncasecmp(t, "application/yaml", n)) ||
		     (n == 9 && !strncasecmp(t, "text/yaml", n)) ||
		     (n == 18 && !strncasecmp(t, "application/x-yaml", n)));
}

const char *
pl_serve_header(const struct pl_serve_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

const char *
pl_serve_method(const struct pl_serve_req *r)
{
	return r->method;
}

bool
pl_serve_is_tls(const struct pl_serve_req *r)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

	return bev && bufferevent_openssl_get_ssl(bev) != NULL;
}

const char *
pl_serve_caller(const struct pl_serve_req *r)
{
	return r->caller[0] ? r->caller : NULL;
}

int
pl_serve_caller_role(const struct pl_serve_req *r)
{
	return r->role;
}

void
pl_serve_add_header(struct pl_serve_req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

void
pl_serve_set_auth(struct pl_serve *sv, pl_serve_auth_fn fn, void *arg)
{
	if (sv->nauth == PL_SERVE_AUTH_MAX)
		pl_die("serve: more than %d credential hooks", PL_SERVE_AUTH_MAX);
	sv->auth[sv->nauth].fn = fn;
	sv->auth[sv->nauth++].arg = arg;
}

static const char *
method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	default:
		return "OTHER";
	}
}

static void
free_taken(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

/* The headers every answer gets, and its line in the access log. */
static void
common_headers(struct pl_serve_req *r, int status, const char *type, const char *note)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	struct timespec t1;

	if (type)
		evhttp_add_header(h, "Content-Type", type);
	if (status == 401)
		evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"pvelab\"");
	if (r->close || r->sv->draining)
		evhttp_add_header(h, "Connection", "close");
	if (evhttp_find_header(h, "Cache-Control") == NULL)
		evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* the access log: never a header, so never a token */
	pl_log_info("%s %s %s %d %.1f ms%s%s%s", r->peer, r->method, r->path, status,
		    pl_elapsed_s(&r->t0, &t1) * 1000, note, r->caller[0] ? " token=" : "",
		    r->caller);
}

/* Send the answer: len bytes of type (NULL: no body); with done, data is
 * handed to the buffer, not copied, and done(data, len, arg) called once it
 * is sent or dropped. */
static void
send_bytes(struct pl_serve_req *r, int status, const char *type, const void *data, size_t len,
	   evbuffer_ref_cleanup_cb done, void *arg)
{
	struct evbuffer *buf = evbuffer_new();

	if (type) {
		if (done)
			evbuffer_add_reference(buf, data, len, done, arg);
		else
			evbuffer_add(buf, data, len);
	} else if (done) {
		done(data, len, arg);
	}
	common_headers(r, status, type, "");
	evhttp_send_reply(r->req, status, reason(status), buf);
	evbuffer_free(buf);
}

static void
send_now(struct pl_serve_req *r, int status, const char *type, const void *data, size_t len)
{
	send_bytes(r, status, type, data, len, NULL, NULL);
}

void
pl_serve_reply_take(struct pl_serve_req *r, int status, const char *type, void *data, size_t len)
{
	if (r->answered) {
		free(data);
		return;
	}
	r->answered = true;
	send_bytes(r, status, type, data, len, free_taken, NULL);
}

void
pl_serve_reply_lend(struct pl_serve_req *r, int status, const char *type, const void *data,
		    size_t len, void (*done)(const void *data, size_t len, void *arg), void *arg)
{
	if (r->answered) {
		done(data, len, arg);
		return;
	}
	r->answered = true;
	send_bytes(r, status, type, data, len, done, arg);
}

#define STREAM_WRITE ((ev_ssize_t)1 << 20)

void
pl_serve_stream_start(struct pl_serve_req *r, int status, const char *type, void (*gone)(void *arg),
		      void *arg)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

	/* parts of up to STREAM_WRITE bytes go to the socket in one write, not
	 * in libevent's 16 KiB steps (a loop iteration each) */
	if (bev)
		bufferevent_set_max_single_write(bev, STREAM_WRITE);
	pl_serve_defer(r, gone, arg);
	r->answered = true;
	r->streaming = true;
	common_headers(r, status, type, " (first part)");
	evhttp_send_reply_start(r->req, status, reason(status));
}

static void
on_part_sent(struct evhttp_connection *evcon, void *arg)
{
	struct pl_serve_req *r = arg;

	(void)evcon;
	if (r->sent)
		r->sent(r->sent_arg);
}

void
pl_serve_stream_write(struct pl_serve_req *r, const void *data, size_t len,
		      void (*release)(const void *data, size_t len, void *arg),
		      void (*sent)(void *arg), void *arg)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add_reference(b, data, len, release, arg);
	r->sent = sent;
	r->sent_arg = arg;
	evhttp_send_reply_chunk_with_cb(r->req, b, on_part_sent, r);
	evbuffer_free(b);
}

void
pl_serve_stream_end(struct pl_serve_req *r, bool complete)
{
	r->streaming = false;
	r->sent = NULL;
	r->gone = NULL;
	if (!complete && !r->in_handler && r->conn) {
		pl_serve_conn_close(r->conn, "its answer could not be finished"); /* frees r */
		return;
	}
	if (r->conn && r->conn->deferred == r)
		r->conn->deferred = NULL;
	evhttp_send_reply_end(r->req);
	if (!r->in_handler) /* else the server frees it when the handler returns */
		pl_serve_req_free(r);
}

bool
pl_serve_peer_cert(const struct pl_serve_req *r, char *name, size_t size)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *cert;
	bool ok;

	if (ssl == NULL || (cert = SSL_get1_peer_certificate(ssl)) == NULL)
		return false;
	ok = SSL_get_verify_result(ssl) == X509_V_OK;
	if (ok && size) {
		X509_NAME *subj = X509_get_subject_name(cert);

		if (X509_NAME_get_text_by_NID(subj, NID_commonName, name, (int)size) < 0)
			X509_NAME_oneline(subj, name, (int)size);
	}
	X509_free(cert);
	return ok;
}

void
pl_serve_defer(struct pl_serve_req *r, void (*gone)(void *arg), void *arg)
{
	r->deferred = true;
	r->gone = gone;
	r->gone_arg = arg;
	if (r->conn)
		r->conn->deferred = r;
}

/* A deferred request answered after its handler returned is done with. */
static void
deferred_done(struct pl_serve_req *r)
{
	if (!r->deferred || r->in_handler)
		return;
	if (r->conn && r->conn->deferred == r)
		r->conn->deferred = NULL;
	pl_serve_req_free(r);
}

void
pl_serve_reply_raw(struct pl_serve_req *r, int status, const char *type, const void *data,
		   size_t len)
{
	if (r->answered)
		return;
	r->answered = true;
	send_now(r, status, type, data, len);
	deferred_done(r);
}

void
pl_serve_reply(struct pl_serve_req *r, int status, json_t *body)
{
	char *text = NULL;

	if (r->answered) {
		json_decref(body);
		return;
	}
	r->answered = true;
	if (body) {
		size_t n;

		text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		n = strlen(text);
		text[n] = '\n'; /* json_dumps leaves room: its NUL becomes the newline */
		send_now(r, status, "application/json", text, n + 1);
	} else {
		send_now(r, status, NULL, NULL, 0);
	}
	free(text);
	json_decref(body);
	deferred_done(r);
}

void
pl_serve_error(struct pl_serve_req *r, int status, const char *code, const char *field,
	       const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pl_serve_reply(r, status,
		       json_pack("{s:{s:s,s:s,s:s*}}", "error", "code", code, "message", msg,
				 "field", field));
}

static void
on_held(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_conn *c = arg;
	struct pl_serve_req *r = c->held;

	c->held = NULL;
	r->answered = false;
	pl_serve_reply(r, r->held_status, r->held_body);
	r->held_body = NULL;
	pl_serve_req_free(r);
}

/* A failed login: logged with the address (never the secret), answered 401,
 * later and later when one address keeps failing. Returns true when the
 * request is now held (the caller must not free it). */
static bool
auth_failed(struct pl_serve_req *r, const char *why)
{
	struct pl_serve *sv = r->sv;
	struct pl_serve_fail *f = fail_slot(sv, r->peer, true);
	long ms;

	f->n++;
	f->last = time(NULL);
	ms = fail_delay_ms(f->n);
	pl_log_warn("authentication failed from %s: %s (%d in a row%s)", r->peer, why, f->n,
		    ms ? ", answer held back" : "");
	if (ms == 0 || r->conn == NULL) {
		pl_serve_reply(r, 401,
			       json_pack("{s:{s:s,s:s}}", "error", "code", "unauthorized",
					 "message", why));
		return false;
	}
	r->answered = true; /* on_held sends it */
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	r->held_status = 401;
	r->held_body = json_pack("{s:{s:s,s:s}}", "error", "code", "unauthorized", "message", why);
	r->conn->held = r;
	if (r->conn->held_ev == NULL)
		r->conn->held_ev = evtimer_new(sv->base, on_held, r->conn);
	evtimer_add(r->conn->held_ev, &tv);
	return true;
}

/* The token whose secret hashes to sha: from the kept ones while the store
 * is unchanged, else from the store (then kept). 0, PL_ENOENT, or
 * PL_EPERM with why ("token revoked"). */
static int
token_of(struct pl_serve *sv, const char *sha, struct pl_serve_tok *out, const char **why)
{
	long long gen = pl_state_generation(sv->state);
	json_t *tok = NULL;

	if (gen != sv->toks_gen) {
		sv->ntoks = 0;
		sv->toks_gen = gen;
	}
	for (size_t i = 0; i < sv->ntoks; i++)
		if (!strcmp(sv->toks[i].sha, sha)) {
			*out = sv->toks[i];
			return 0;
		}
	if (pl_state_token_find(sv->state, sha, &tok, NULL) != 0)
		return PL_ENOENT;
	if (!json_is_null(json_object_get(tok, "revoked"))) {
		json_decref(tok);
		*why = "token revoked";
		return PL_EPERM;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->sha, sizeof(out->sha), "%s", sha);
	snprintf(out->name, sizeof(out->name), "%s", pl_json_str_or(tok, "name", "?"));
	out->role = pl_serve_role_parse(pl_json_str(tok, "role"));
	out->expires = json_is_number(json_object_get(tok, "expires")) ?
			       pl_json_num(tok, "expires", 0) :
			       0;
	json_decref(tok);
	/* full: the oldest goes (a handful of tokens is the usual case) */
	if (sv->ntoks == PL_ARRAY_LEN(sv->toks)) {
		memmove(sv->toks, sv->toks + 1, sizeof(sv->toks) - sizeof(sv->toks[0]));
		sv->ntoks--;
	}
	sv->toks[sv->ntoks++] = *out;
	return 0;
}

/* Check the bearer token; 0 when the caller may go on, else answered. */
static int
authenticate(struct pl_serve_req *r, const struct pl_serve_route *route, bool *held)
{
	const char *h =
		evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
	struct pl_serve_tok tok;
	const char *why = "unknown token";
	char sha[65];
	int role;

	*held = false;
	for (size_t i = 0; i < r->sv->nauth; i++) {
		const struct pl_serve_auth *a = &r->sv->auth[i];
		int got = a->fn(r, r->caller, sizeof(r->caller), &role, a->arg);

		if (got < 0)
			return -1;
		if (got > 0) {
			r->role = role;
			goto check_role;
		}
	}
	if (h == NULL || strncasecmp(h, "Bearer ", 7)) {
		*held = auth_failed(r, "no bearer token (Authorization: Bearer pvl_...)");
		return -1;
	}
	h += 7;
	while (*h == ' ')
		h++;
	pl_sha256_hex(h, strlen(h), sha);
	if (strncmp(h, "pvl_", 4) || token_of(r->sv, sha, &tok, &why) != 0) {
		*held = auth_failed(r, why);
		return -1;
	}
	if (tok.expires > 0 && tok.expires <= (double)time(NULL)) {
		*held = auth_failed(r, "token expired");
		return -1;
	}
	/* a success ends the address's run of failures */
	struct pl_serve_fail *f = fail_slot(r->sv, r->peer, false);

	if (f)
		f->n = 0;
	snprintf(r->caller, sizeof(r->caller), "%s", tok.name);
	role = r->role = tok.role;
check_role:
	if (role < route->role) {
		pl_serve_error(r, 403, "forbidden", NULL, "token '%s' is a %s: %s %s needs %s",
			       r->caller, pl_serve_role_name(role), route->method, route->path,
			       pl_serve_role_name(route->role));
		return -1;
	}
	return 0;
}

/* Read the query string: only the route's declared parameters, each once. */
static int
read_query(struct pl_serve_req *r, const struct pl_serve_route *route, const char *q)
{
	struct evkeyval *kv;

	if (q == NULL)
		return 0;
	if (evhttp_parse_query_str(q, &r->query) != 0) {
		pl_serve_error(r, 400, "bad_query", NULL, "malformed query string");
		return -1;
	}
	TAILQ_FOREACH(kv, &r->query, next) {
		const struct pl_serve_param *p = route->query;
		int seen = 0;
		struct evkeyval *o;

		while (p && p->name && strcmp(p->name, kv->key))
			p++;
		if (p == NULL || p->name == NULL) {
			pl_serve_error(r, 400, "unknown_parameter", kv->key,
				       "%s %s takes no query parameter '%.64s'", route->method,
				       route->path, kv->key);
			return -1;
		}
		TAILQ_FOREACH(o, &r->query, next)
			seen += !strcmp(o->key, kv->key);
		if (seen > 1) {
			pl_serve_error(r, 400, "bad_query", kv->key,
				       "query parameter '%s' given "
				       "%d times",
				       kv->key, seen);
			return -1;
		}
	}
	return 0;
}

static int
read_body(struct pl_serve_req *r, const struct pl_serve_route *route)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	char *err = NULL;

	if (len == 0 || (route->flags & PL_ROUTE_RAW_BODY) ||
	    ((route->flags & PL_ROUTE_YAML_BODY) && pl_serve_body_is_yaml(r)))
		return 0;
	if (route->body == NULL) {
		pl_serve_error(r, 400, "unexpected_body", NULL, "%s %s takes no request body",
			       route->method, route->path);
		return -1;
	}
	r->body = pl_json_parse((const char *)evbuffer_pullup(in, -1), len, &err);
	if (r->body == NULL || !json_is_object(r->body)) {
		pl_serve_error(r, 400, "bad_json", NULL, "request body is not a JSON object%s%s",
			       err ? ": " : "", err ? err : "");
		free(err);
		return -1;
	}
	return 0;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct pl_serve *sv = arg;
	struct pl_serve_req *r = pl_calloc(1, sizeof(*r));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const struct pl_serve_route *route;
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	int status = 400;
	bool held = false;

	clock_gettime(CLOCK_MONOTONIC, &r->t0);
	TAILQ_INIT(&r->query);
	r->sv = sv;
	r->req = req;
	r->method = method_name(evhttp_request_get_command(req));
	snprintf(r->path, sizeof(r->path), "%s", path ? path : "?");
	if ((r->conn = conn_find(sv, evhttp_request_get_connection(req))) == NULL)
		r->conn = conn_register(sv, evhttp_request_get_connection(req), false);
	/* the request is in: no deadline while it is answered */
	evtimer_del(r->conn->deadline_ev);
	r->conn->busy = true;
	r->conn->receiving = false;
	sv->busy++;
	evhttp_request_set_on_complete_cb(req, on_complete, r->conn);
	if (r->conn->refused) {
		snprintf(r->peer, sizeof(r->peer), "%s", r->conn->addr);
		r->close = true;
		pl_serve_error(r, 503, "too_many_connections", NULL,
			       "too many connections (at "
			       "most %d, %d from one address)",
			       sv->lim.max_connections, sv->lim.max_per_client);
		goto out;
	}
	snprintf(r->peer, sizeof(r->peer), "%s", r->conn->addr);
	if (path == NULL || *path == '\0') {
		pl_serve_error(r, 400, "bad_path", NULL, "malformed request target");
		goto out;
	}
	route = pl_serve_match(sv, r->method, path, &r->params, &status);
	if (route == NULL) {
		if (status == 405)
			pl_serve_error(r, 405, "method_not_allowed", NULL,
				       "%s is not allowed on "
				       "'%.200s'",
				       r->method, path);
		else if (status == 404)
			pl_serve_error(r, 404, "not_found", NULL,
				       "no such endpoint '%.200s' "
				       "(GET /api/v1/openapi.json lists them)",
				       path);
		else
			pl_serve_error(r, 400, "bad_path", NULL, "malformed path '%.200s'", path);
		goto out;
	}
	if (route->role > PL_ROLE_PUBLIC && authenticate(r, route, &held) != 0)
		goto out;
	if (read_query(r, route, evhttp_uri_get_query(uri)) != 0 || read_body(r, route) != 0)
		goto out;
	r->in_handler = true;
	route->fn(r, route_arg(sv, route));
	r->in_handler = false;
	if (r->deferred && (!r->answered || r->streaming))
		return; /* its callbacks answer it */
	if (r->deferred && !r->kept && r->conn && r->conn->deferred == r)
		r->conn->deferred = NULL; /* answered at once after all (not a stream) */
	if (!r->answered)
		pl_serve_error(r, 500, "internal", NULL, "the handler of %s %s gave no answer",
			       route->method, route->path);
out:
	if (r->kept && r->conn->busy) { /* a stream: it lives with its connection */
		r->conn->busy = false;
		sv->busy--;
	}
	if (!held && !r->kept)
		pl_serve_req_free(r);
}

/* ---- listening --------------------------------------------------------- */

int
pl_serve_listen(struct pl_serve *sv, const char *addr, SSL_CTX *tls, char **bound, char **errmsg)
{
	const char *colon = strrchr(addr, ':');
	char host[256], out[300];
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct pl_serve_listener *l;
	struct evhttp *http;
	long long port;
	char *end;
	size_t n;

	if (colon == NULL || colon == addr || (n = (size_t)(colon - addr)) >= sizeof(host))
		return pl_seterr(errmsg, PL_EINVAL, "listen address '%s' is not ADDR:PORT", addr);
	errno = 0;
	port = strtoll(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 0 || port > 65535)
		return pl_seterr(errmsg, PL_EINVAL, "listen address '%s': bad port", addr);
	memcpy(host, addr, n);
	host[n] = '\0';
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	if (tls == NULL && !pl_serve_is_loopback(addr))
		return pl_seterr(errmsg, PL_EPERM,
				 "listen address '%s' is not loopback: plain "
				 "HTTP only on 127.0.0.1 or ::1 (give --tls-cert/--tls-key, or "
				 "let serve issue one from pvelab's local CA)",
				 addr);
	if ((http = evhttp_new(sv->base)) == NULL)
		return pl_seterr(errmsg, PL_ENOMEM, "cannot create an HTTP server");
	evhttp_set_max_headers_size(http, sv->lim.max_header);
	evhttp_set_max_body_size(http, sv->lim.max_body);
	evhttp_set_timeout(http, sv->lim.request_timeout);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
						 EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
						 EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(http, on_request, sv);
	l = pl_calloc(1, sizeof(*l));
	l->sv = sv;
	l->http = http;
	l->tls = tls != NULL;
	evhttp_set_bevcb(http, on_accept_bev, l);
	if ((bs = evhttp_bind_socket_with_handle(http,
						 !strcmp(host, "localhost") ? "127.0.0.1" : host,
						 (ev_uint16_t)port)) == NULL) {
		evhttp_free(http);
		free(l);
		return pl_seterr(errmsg, PL_EIO,
				 "cannot listen on '%s': %s (in use? a local "
				 "address?)",
				 addr, strerror(errno ? errno : EADDRNOTAVAIL));
	}
	if (tls)
		pl_serve_set_tls(sv, tls);
	l->bound = bs;
	sv->lis = pl_realloc(sv->lis, (sv->nlis + 1) * sizeof(*sv->lis));
	sv->lis[sv->nlis++] = l;
	if (bound) {
		char ip[INET6_ADDRSTRLEN] = "?";

		getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
			snprintf(out, sizeof(out), "[%s]:%u", ip, ntohs(s6->sin6_port));
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
			snprintf(out, sizeof(out), "%s:%u", ip, ntohs(s4->sin_port));
		}
		*bound = pl_strdup(out);
	}
	return 0;
}
