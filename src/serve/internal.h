/*
 * What the files of the serve layer share: the server, its connections and
 * a request in flight. Modules see only serve.h.
 */
#ifndef PL_SERVE_INTERNAL_H
#define PL_SERVE_INTERNAL_H

#include "core/common.h"
#include "serve/serve.h"

#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <time.h>

struct evhttp;
struct evhttp_connection;
struct evhttp_request;
struct event;
struct evhttp_bound_socket;
struct bufferevent;
struct evbuffer;
struct evbuffer_cb_entry;

/* A listening socket and whether it speaks TLS (the server's current
 * context: a reload swaps it for the connections that come after). */
struct pl_serve_listener {
	struct pl_serve *sv;
	struct evhttp *http;
	struct evhttp_bound_socket *bound; /* NULL once a drain closed it */
	bool tls;
};

/* An open client connection, known from its accept on. */
struct pl_serve_conn {
	struct pl_serve *sv;
	struct evhttp_connection *evcon;
	char addr[64];
	unsigned port;
	bool refused;                /* over a limit: answered 503 at its first request */
	bool busy;                   /* a request of it is being answered */
	bool receiving;              /* bytes of its next request came, not yet all of it */
	struct evbuffer *rx;         /* its input, watched by rx_cb for those bytes */
	struct evbuffer_cb_entry *rx_cb;
	struct event *deadline_ev;   /* its next request must be in by then */
	struct event *held_ev;       /* the timer of a held-back answer */
	struct pl_serve_req *held;   /* that answer's request */
	struct pl_serve_req *stream; /* an event stream this connection is reading */
	struct pl_serve_req *deferred; /* a request answered later (pl_serve_defer) */
	long long next_event;        /* the stream's next event to send */
	bool ending;                 /* the stream's last event is written */
	time_t stalled_since;        /* its client has left a full buffer unread since */
	struct pl_serve_conn *next;
};

/* Failed logins of one address in a row. */
struct pl_serve_fail {
	char addr[64];
	int n;
	time_t last;
};

/* A valid token as the store had it when the store was last unchanged:
 * authentication without a statement per request (a round trip on
 * PostgreSQL). Only tokens that authenticated are kept. */
struct pl_serve_tok {
	char sha[65];
	char name[64];
	int role;
	double expires; /* 0: never */
};

/* One event of the stream, kept in the replay ring. */
struct pl_serve_event {
	long long id;
	char *type;
	char *data; /* compact JSON */
};

struct pl_serve {
	struct event_base *base;
	struct pl_state *state;
	struct pl_state *
		*more_states; /* other clusters' stores: their commits also make answers stale */
	size_t nmore_states;
	struct pl_serve_limits lim;
	long long stream_buffer; /* bytes a stream may have unsent */
	const struct pl_serve_module **mods;
	size_t nmods;
	struct pl_serve_listener **lis;
	size_t nlis;
	SSL_CTX *tls; /* the TLS listeners' context (a reference) */
	struct pl_serve_conn *conns;
	int nconns, nrefused;
	struct bufferevent **accepted; /* made at accept, not yet registered */
	size_t naccepted;
	struct event *accept_ev; /* registers them once evhttp has its connection */
	int busy;                /* requests being answered */
	int holds;               /* work a drain waits for (pl_serve_hold) */
	bool draining;
	void (*drained)(void *arg);
	void *drained_arg;
	struct event *drain_ev; /* runs drained once nothing is left */
	struct event *pump_ev;  /* sends new events to the streams */
	struct pl_serve_fail fails[256];
	struct pl_serve_event *ring; /* the last lim.event_ring events, by id % size */
	long long event_seq;         /* the newest event's id */
	struct event *heartbeat;
	struct pl_serve_auth {
		pl_serve_auth_fn fn;
		void *arg;
	} auth[PL_SERVE_AUTH_MAX]; /* modules' credentials, asked in turn (none: bearer only) */
	size_t nauth;
	struct pl_serve_cache *cache; /* rendered answers (cache.c); NULL until one */
	struct pl_serve_tok toks[16]; /* valid tokens, while the store's generation is toks_gen */
	size_t ntoks;
	long long toks_gen;
};

struct pl_serve_req {
	struct pl_serve *sv;
	struct evhttp_request *req;
	struct pl_serve_conn *conn;
	const char *method;
	char path[512];
	char peer[64];
	char caller[64]; /* the token's name */
	int role;        /* the caller's role (PL_ROLE_PUBLIC: none) */
	json_t *params;
	struct evkeyvalq query;
	json_t *body;
	bool answered, close;
	bool kept;                 /* an event stream: it lives with its connection */
	bool deferred, in_handler; /* answered later; its handler is running */
	void (*gone)(void *arg);   /* a deferred request's client went away */
	void *gone_arg;
	bool streaming;          /* answered in parts (pl_serve_stream_start), not ended */
	void (*sent)(void *arg); /* its client took the last part (sent_arg) */
	void *sent_arg;
	int held_status;
	json_t *held_body;
	struct timespec t0;
};

void pl_serve_req_free(struct pl_serve_req *r);
/* Start the event stream on r (events.c): replay from Last-Event-ID. */
void pl_serve_events_open(struct pl_serve_req *r);
void pl_serve_events_free(struct pl_serve *sv);
/* End every event stream with a last "shutdown" event (a drain). */
void pl_serve_events_end(struct pl_serve *sv);
/* The bytes c's client has not taken: the server's and the kernel's. */
size_t pl_serve_unsent(const struct pl_serve_conn *c);
/* Close c's connection (its close callback frees c). */
void pl_serve_conn_close(struct pl_serve_conn *c, const char *why);
/* A drain is done when nothing is left: check, and say so from the loop. */
void pl_serve_drain_check(struct pl_serve *sv);
/* The server's own routes: /healthz and the OpenAPI document (openapi.c). */
extern const struct pl_serve_module pl_serve_core_module;

/* Free the cache's answers (those still being sent go when they are). */
void pl_serve_cache_free(struct pl_serve *sv);

#endif
