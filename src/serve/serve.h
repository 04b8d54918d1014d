/*
 * The HTTP(S) core of `pvelab serve`: listeners on the caller's event loop
 * (evhttp, TLS through bufferevent_openssl), limits, bearer-token roles, and
 * one route table that both dispatches requests and produces the OpenAPI
 * document. Everything else (the REST API, later metrics, the dashboard,
 * checks, MCP) is a module: a route table registered with the server.
 */
#ifndef PL_SERVE_SERVE_H
#define PL_SERVE_SERVE_H

#include "core/common.h"

#include <jansson.h>

struct event_base;
struct pl_state;
struct pl_serve;
struct pl_serve_req;
typedef struct ssl_ctx_st SSL_CTX;

/* Who may call a route; each role may do what the ones before it may. */
enum pl_serve_role {
	PL_ROLE_PUBLIC,   /* no token (the health probe) */
	PL_ROLE_VIEWER,   /* reads */
	PL_ROLE_OPERATOR, /* + power actions, snapshots, sync */
	PL_ROLE_ADMIN,    /* + plan, apply, rollback, destroy, tokens */
};
/* "viewer" -> PL_ROLE_VIEWER...; -1 for anything else. */
int pl_serve_role_parse(const char *name);
const char *pl_serve_role_name(int role);

/* A handler answers its request before it returns (pl_serve_reply or
 * pl_serve_error); long work answers 202 and goes on on the loop. */
typedef void (*pl_serve_fn)(struct pl_serve_req *req, void *arg);

/* A query parameter a route accepts; any other is a 400. */
struct pl_serve_param {
	const char *name;
	const char *help;
};

/* One route. path segments in braces ("/api/v1/guests/{guest}") match one
 * segment, read with pl_serve_path_param. The schemas are JSON Schema text,
 * quoted into the OpenAPI document as they are. */
struct pl_serve_route {
	const char *method; /* "GET", "POST", "DELETE" */
	const char *path;
	int role;
	int status; /* its success status (200, 202) */
	const char *summary;
	const char *response;               /* schema of the success body; NULL: none */
	const char *body;                   /* schema of the JSON body a POST takes; NULL: none */
	const struct pl_serve_param *query; /* ends with a NULL name; may be NULL */
	pl_serve_fn fn;
	unsigned flags; /* PL_ROUTE_* */
};

/* Route flags. */
enum {
	/* The body is any bytes (up to the body limit), not a JSON object:
	 * the handler reads it with pl_serve_body_raw. */
	PL_ROUTE_RAW_BODY = 1u << 0,
	/* Besides its JSON body, the route takes a YAML document (Content-Type
	 * application/yaml, text/yaml or application/x-yaml), read with
	 * pl_serve_body_raw; pl_serve_body_is_yaml tells which came. */
	PL_ROUTE_YAML_BODY = 1u << 1,
	/* The handler's own refusals are JSON-RPC error objects (MCP), not
	 * {"error":{code,message}}: the document says either may come. */
	PL_ROUTE_RPC_ERRORS = 1u << 2,
};

/* A module: routes ending with a NULL method, and the arg its handlers get. */
struct pl_serve_module {
	const char *name;
	const struct pl_serve_route *routes;
	void *arg;
};

struct pl_serve_limits {
	long long max_header; /* bytes of request line and headers */
	long long max_body;   /* bytes of a request body */
	int request_timeout;  /* seconds to send a whole request, idle keep-alive included */
	int max_connections;  /* open at once */
	int max_per_client;   /* open at once from one address */
	int event_ring;       /* events kept for Last-Event-ID replay */
};

/* Credentials other than a bearer token (a module's session cookie): asked
 * before the bearer token on every route that needs a role. Returns 1 and
 * fills name (its size given) and *role when the request carries credentials
 * it accepts; 0 when it carries none of its kind (the bearer token is checked
 * next); -1 when it answered the request itself (a refusal). */
typedef int (*pl_serve_auth_fn)(struct pl_serve_req *req, char *name, size_t size, int *role,
				void *arg);
/* Each module's hook is kept (at most PL_SERVE_AUTH_MAX, a programmer's
 * limit) and asked in the order set; the first that returns 1 or -1 decides. */
#define PL_SERVE_AUTH_MAX 8
void pl_serve_set_auth(struct pl_serve *sv, pl_serve_auth_fn fn, void *arg);

/* A server on base; state holds the tokens (borrowed, outlives the server). */
struct pl_serve *pl_serve_new(struct event_base *base, struct pl_state *state,
			      const struct pl_serve_limits *limits);
void pl_serve_free(struct pl_serve *sv);
/* Another store (another cluster's, borrowed, outliving the server) whose
 * commits make kept answers stale, as the first one's do. */
void pl_serve_add_store(struct pl_serve *sv, struct pl_state *state);
/* New limits (a reload): connections accepted from now on get them. */
void pl_serve_set_limits(struct pl_serve *sv, const struct pl_serve_limits *limits);
/* Bytes an event stream may have unsent before it waits for its client
 * (default 64 KiB): what a client that stops reading can hold. */
void pl_serve_set_stream_buffer(struct pl_serve *sv, long long bytes);
/* The TLS context of the HTTPS listeners' next connections (a reload of the
 * certificate); open connections keep theirs. The server takes a reference. */
void pl_serve_set_tls(struct pl_serve *sv, SSL_CTX *tls);
/* Client connections open now, and how many of them read the event stream. */
void pl_serve_counts(const struct pl_serve *sv, int *conns, int *streams);

/* Stop gracefully: close the listeners, end each event stream with a last
 * "shutdown" event, close idle connections, answer what still comes with
 * Connection: close. done runs once (from the loop) when no request is being
 * answered, no stream is still sending and no work is held. */
void pl_serve_drain(struct pl_serve *sv, void (*done)(void *arg), void *arg);
bool pl_serve_draining(const struct pl_serve *sv);
/* Background work a drain waits for (a sync, an apply): hold when it starts,
 * release when it ends. */
void pl_serve_hold(struct pl_serve *sv);
void pl_serve_release(struct pl_serve *sv);

/* Register a module (its routes are borrowed for the server's life). */
void pl_serve_add(struct pl_serve *sv, const struct pl_serve_module *m);
/* Listen on "ADDR:PORT" ("[v6]:PORT"; port 0 picks one). tls (borrowed, may
 * be NULL) serves HTTPS; without it only a loopback address is accepted.
 * *bound (optional, caller frees) is the address it got, "ADDR:PORT". */
int pl_serve_listen(struct pl_serve *sv, const char *addr, SSL_CTX *tls, char **bound,
		    char **errmsg);
/* Whether "ADDR:PORT" is a loopback address (127.0.0.0/8, ::1, localhost). */
bool pl_serve_is_loopback(const char *addr);
/* The OpenAPI 3.1 document of every registered route (new reference). */
json_t *pl_serve_openapi(const struct pl_serve *sv);

/* The request's path parameter name ("guest"), decoded; NULL if none. */
const char *pl_serve_path_param(const struct pl_serve_req *req, const char *name);
/* A query parameter, decoded; NULL when absent. */
const char *pl_serve_query(const struct pl_serve_req *req, const char *name);
/* The JSON body (borrowed; NULL when there was none). */
const json_t *pl_serve_body(const struct pl_serve_req *req);
/* The raw request body and its length (a PL_ROUTE_RAW_BODY route; NULL and
 * 0 when there was none). Not NUL-terminated. */
const unsigned char *pl_serve_body_raw(const struct pl_serve_req *req, size_t *len);
/* Whether the body is a YAML document (a PL_ROUTE_YAML_BODY route). */
bool pl_serve_body_is_yaml(const struct pl_serve_req *req);
/* A request header (case-insensitive name); NULL when absent. */
const char *pl_serve_header(const struct pl_serve_req *req, const char *name);
/* The request's method ("GET", "POST"...). */
const char *pl_serve_method(const struct pl_serve_req *req);
/* Whether the request came over TLS (an HTTPS listener). */
bool pl_serve_is_tls(const struct pl_serve_req *req);
/* The token's name (NULL on a public route) and role. */
const char *pl_serve_caller(const struct pl_serve_req *req);
int pl_serve_caller_role(const struct pl_serve_req *req);
/* Whether the request came over TLS with a client certificate the
 * listener's context verified (SSL_CTX_set_verify); its subject's CN (or
 * whole subject) goes into name (size given). */
bool pl_serve_peer_cert(const struct pl_serve_req *req, char *name, size_t size);
/* Answer with status and len bytes of content_type, taking data (freed with
 * free() once sent): a large answer is not copied. */
void pl_serve_reply_take(struct pl_serve_req *req, int status, const char *content_type, void *data,
			 size_t len);
/* The same with data that stays the caller's: done(data, len, arg) is
 * called once it is sent or dropped (maybe before this returns). */
void pl_serve_reply_lend(struct pl_serve_req *req, int status, const char *content_type,
			 const void *data, size_t len,
			 void (*done)(const void *data, size_t len, void *arg), void *arg);
/* Answer in parts as the client takes them (chunked transfer coding), so
 * that a big answer is never whole in memory. gone(arg) runs once if the
 * client goes before pl_serve_stream_end; req is gone then. */
void pl_serve_stream_start(struct pl_serve_req *req, int status, const char *content_type,
			   void (*gone)(void *arg), void *arg);
/* A part: len bytes of data, lent until release(data, len, arg) is called;
 * sent(arg) runs once all that was written is in the socket, i.e. the
 * client is taking it (not when it goes first: gone runs). */
void pl_serve_stream_write(struct pl_serve_req *req, const void *data, size_t len,
			   void (*release)(const void *data, size_t len, void *arg),
			   void (*sent)(void *arg), void *arg);
/* The end of the answer; incomplete: the connection is closed instead, so
 * that the client sees the answer cut (not from the handler). req is gone
 * after. */
void pl_serve_stream_end(struct pl_serve_req *req, bool complete);
/* Add a header to the answer (before pl_serve_reply*): Set-Cookie,
 * Content-Encoding, Mcp-Session-Id... */
void pl_serve_add_header(struct pl_serve_req *req, const char *name, const char *value);
/* Answer later, from an asynchronous call's callback: the request outlives
 * its handler until pl_serve_reply* answers it. When the client goes away
 * first, gone(arg) is called (gone may be NULL) and req must not be used
 * after; a server freed with requests deferred calls gone for each. */
void pl_serve_defer(struct pl_serve_req *req, void (*gone)(void *arg), void *arg);
/* Answer with status and len bytes of content_type (copied). */
void pl_serve_reply_raw(struct pl_serve_req *req, int status, const char *content_type,
			const void *data, size_t len);
/* Answer with status and body (stolen; NULL: no body). */
void pl_serve_reply(struct pl_serve_req *req, int status, json_t *body);
/* Answer {"error":{"code","message","field"?}}; field may be NULL. */
void pl_serve_error(struct pl_serve_req *req, int status, const char *code, const char *field,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The HTTP status for a pl_err code (PL_ENOENT 404, PL_ECONFLICT 409...). */
int pl_serve_status_of(int err);

/* A deferred answer (pl_serve_defer) that streams: Server-Sent Events (200,
 * text/event-stream) on req, kept open by the heartbeat. gone(arg) runs once
 * if the client goes first; req is gone then. */
void pl_serve_sse_start(struct pl_serve_req *req, void (*gone)(void *arg), void *arg);
/* One event: "event: TYPE" (type may be NULL), then data, one line of len bytes. */
void pl_serve_sse_send(struct pl_serve_req *req, const char *type, const char *data, size_t len);
/* End the stream and free req (on_close does not run). */
void pl_serve_sse_end(struct pl_serve_req *req);

/* Answers kept between changes (cache.c). A read route whose answer comes
 * from the store and the refresh asks pl_serve_cached first (true: it was
 * answered with the kept bytes); on a miss it renders its answer and sends it
 * with pl_serve_reply_cache, which keeps it under the request's path and
 * query. Every kept answer is dropped when the store's generation moves
 * (pl_state_generation: a commit of any process, a write of the server's),
 * when an event is emitted (pl_serve_emit), and those of a class with
 * pl_serve_cache_drop. A client that accepts gzip gets a large answer
 * gzipped, compressed once. */
enum {
	PL_CACHE_STORE = 1u << 0, /* made from the store alone */
	PL_CACHE_LIVE = 1u << 1,  /* also from the refresh's live counters */
};
bool pl_serve_cached(struct pl_serve_req *req);
/* Answer 200 with body (stolen) and keep it, of class cls. */
void pl_serve_reply_cache(struct pl_serve_req *req, unsigned cls, json_t *body);
/* Drop the kept answers of the classes in cls (a mask). */
void pl_serve_cache_drop(struct pl_serve *sv, unsigned cls);
/* Hits and misses since the start, and the bytes kept now. */
void pl_serve_cache_counts(const struct pl_serve *sv, long long *hits, long long *misses,
			   long long *bytes);

/* Send an event to every open stream (GET /api/v1/events) and keep it in the
 * replay ring: type ("sync", "guest"...), data an object (stolen). Returns
 * its id. */
long long pl_serve_emit(struct pl_serve *sv, const char *type, json_t *data);

/* For the fuzz harness and tests: match method and path against the routes
 * as the server does. Returns the route, or NULL with *status 400, 404 or
 * 405; params (optional) gets the path parameters (new reference). */
const struct pl_serve_route *pl_serve_match(const struct pl_serve *sv, const char *method,
					    const char *path, json_t **params, int *status);

#endif
