/*
 * What the discovery scanner's files (scan.c, conn.c) share: the scan, its
 * hosts and connections, and the functions one file calls in the other.
 */
#ifndef PL_DISCOVER_SCANNER_H
#define PL_DISCOVER_SCANNER_H

#include "core/common.h"

#include <jansson.h>
#include <openssl/ssl.h>
#include <time.h>

#include "core/buf.h"
#include "discover/discover.h"

struct event;
struct event_base;
struct evdns_base;
struct bufferevent;

#define MAX_BODY ((size_t)256 << 10)
#define MAX_IN (MAX_BODY + ((size_t)128 << 10))

/* What we learned about one port before any protocol talk. */
enum pstate { P_PENDING, P_OPEN, P_CLOSED, P_FILTERED, P_UNREACH, P_NORESP };

/* The conversation held on an open port. */
enum proto { PR_BANNER, PR_SSH, PR_HTTP, PR_HTTPS, PR_PVE, PR_RDP, PR_VNC, PR_IPMI };

struct host {
	struct pl_disc_addr addr;
	char *name;
	unsigned char *st; /* enum pstate per port */
	json_t **ev;       /* evidence per port, allocated on the first open port */
	bool open;
	bool dns_started;
};

struct scan;

struct conn {
	struct scan *s;
	size_t h, p; /* host and port index */
	enum proto proto;
	const char *path; /* HTTP request path */
	bool followup;    /* a second request to the same port */
	int fd;
	struct event *wev;   /* connect wait (or UDP read) */
	struct event *timer; /* exchange deadline */
	struct bufferevent *bev;
	struct pl_buf in;
	int rfb_minor;
	bool rfb_versioned;
	bool handshaken;
	struct conn *next; /* follow-up queue */
};

struct hostname {
	struct pl_disc_addr addr;
	char *name;
};

struct scan {
	const struct pl_disc_opts *o;
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ssl;
	struct host *hosts;
	size_t nhosts;
	size_t next_job, njobs;
	struct conn *fq_head, *fq_tail;
	size_t inflight, concurrency;
	size_t dns_pending;
	double tokens, burst;
	struct timespec last_refill;
	struct event *pump_ev;   /* runs pump() soon (rate limit wait or after a finish) */
	struct event *dns_guard; /* gives up on reverse DNS after the scan */
	struct event *progress_ev;
	size_t finished, up;
	bool done;
	struct hostname *etc_hosts;
	size_t netc_hosts;
	struct timeval tv_timeout;
};

/* Seconds on the monotonic clock. */
double pl_disc_now(void);
/* The evidence object of c's host and port, created on first use. */
json_t *pl_disc_evidence(struct conn *c);
/* A connection to port p of host h, not started. */
struct conn *pl_disc_conn_new(struct scan *s, size_t h, size_t p);
/* Start a connection (or the UDP probe) and hold the conversation; false if
 * it must be retried later (no sockets or ports left), c untouched. */
bool pl_disc_conn_start(struct conn *c);
/* Free c, closing its socket. */
void pl_disc_conn_free(struct conn *c);
/* c is over: count it, free it and let the scheduler start the next one. */
void pl_disc_conn_finish(struct conn *c);
/* Look h's name up (/etc/hosts first, then reverse DNS) unless started. */
void pl_disc_start_dns(struct scan *s, struct host *h);

#endif
