/*
 * What the proxy's event loop files share: proxy.c (connections and the
 * relay) and listen.c (runtime, listeners, reload, shutdown).
 */
#ifndef PL_PROXY_LOOP_H
#define PL_PROXY_LOOP_H

#include "core/common.h"
#include "core/buf.h"
#include "proxy/internal.h"
#include "proxy/proxy.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/time.h>

struct evdns_base;
struct evdns_getaddrinfo_request;

#define RELAY_CHUNK (16 * 1024)    /* one TLS record: read from one side, written to the other */
#define RELAY_BUDGET 64            /* chunks per turn before other connections get theirs */
#define ROUTE_PEEK_MAX (16 * 1024) /* request head we read to find the Host header */
#define RESP_HEAD_MAX (64 * 1024)  /* response head we hold to rewrite Location */
#define HANDSHAKE_TIMEOUT 30
#define ERRPAGE_WAIT 10
#define RELOAD_LIMIT 10 /* seconds a reloaded config may take to parse (in a child) */
#define SIDE_EVENTS (EV_READ | EV_WRITE | EV_PERSIST | EV_ET)

/* The active configuration plus what it needs at run time; connections keep
 * a reference so a reload never pulls a target from under them. */
struct runtime {
	int refs;
	struct pl_proxy_config *cfg;
	SSL_CTX **up_ctx; /* per target */
	json_t *seen;     /* seen.json, loaded on first use */
	json_t *warned;   /* HOST:PORT -> fingerprint already warned about */
};

struct listener {
	struct pl_proxy *p;
	char *addr;
	char bound[INET6_ADDRSTRLEN + 8]; /* what port 0 became */
	struct evconnlistener *lev;
	struct event *resume; /* re-enables lev after running out of descriptors */
	time_t logged;        /* when that was last logged */
	size_t *targets;      /* indices into p->rt->cfg->targets */
	size_t ntargets;
	struct listener *next;
};

enum relay_state { RS_HEAD, RS_BODY, RS_RAW };

/* One client connection: the downstream side from accept on, the upstream
 * side once routed. Everything it allocates is freed in pl_proxy_conn_finish. */
struct conn {
	struct pl_proxy *p;
	struct runtime *rt;
	size_t *cand; /* candidate targets (indices) from the listener */
	size_t ncand;
	long target; /* chosen index, or -1 */
	struct pl_proxy_side down, up;
	struct evdns_getaddrinfo_request *dns;
	bool up_connecting; /* connect() issued, not yet writable */
	struct pl_proxy_upctx upx;
	char client[64];
	char local_ip[64];
	int local_port;
	char sni[256];
	char host[256];
	bool down_ready, up_ready; /* handshakes done */
	bool failed;               /* upstream refused: waiting to serve the error page */
	bool closing;              /* finish once the error page is written */
	int fail_status;
	char fail_reason[512];
	const char *error; /* why the relay failed: which side */
	uint64_t bytes_up, bytes_down;
	struct timeval start;
	struct event *deadline; /* handshake and first request head, from accept */
	uint64_t idle_mark;     /* bytes moved when the idle timer last fired */
	struct pl_buf head;     /* what the client sent before there was a relay */
	enum relay_state rs;
	long long body_left;
	struct pl_buf resp; /* an upstream response head, collected to rewrite */
	struct conn *prev, *next;
};

struct pl_proxy {
	struct event_base *base;
	struct evdns_base *dns;
	struct pl_proxy_ca *ca;
	SSL_CTX *down_ctx;
	struct runtime *rt;
	struct listener *listeners;
	struct conn *conns;
	struct event *ev_int, *ev_term, *ev_hup, *ev_usr1, *ev_grace;
	bool stopping;
	struct pl_proxy_stats st;
	time_t cap_logged;         /* when refusing over max_conns was last logged */
	pid_t reload_pid;          /* the child trying the reloaded config, or 0 */
	struct event *reload_ev;   /* its verdict (a byte on a pipe), or the time limit */
	char scratch[RELAY_CHUNK]; /* the relay's one read buffer, shared by all */
};

/* The SSL ex_data index under which a connection finds itself. */
extern int pl_proxy_conn_idx;

/* --- listen.c --- */
/* Drop a reference to a runtime; the last one frees it. */
void pl_proxy_rt_unref(struct runtime *rt);

/* --- proxy.c --- */
/* End a connection (why: NULL when it closed cleanly), logging it. */
void pl_proxy_conn_finish(struct conn *c, const char *why);
/* The downstream handshake's ClientHello: routing by SNI. */
int pl_proxy_client_hello_cb(SSL *ssl, int *al, void *arg);
/* A listener accepted a client connection. */
void pl_proxy_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
			int salen, void *arg);
/* A listener failed to accept (out of file descriptors...). */
void pl_proxy_accept_error_cb(struct evconnlistener *lev, void *arg);
/* A socket address as text: "IP:PORT" ("[IP]:PORT" for IPv6), or with port
 * non-NULL the IP alone and the port in *port. */
void pl_proxy_addr_str(const struct sockaddr *sa, char *out, size_t n, int *port);

#endif
