/*
 * The Proxmox VE API client: libcurl's multi interface driven by the caller's
 * libevent loop, with a bounded request queue, keep-alive reuse, token or
 * ticket auth, pinned or CA-verified TLS, retries, failover and task waiting.
 */
#ifndef PL_PVE_CLIENT_H
#define PL_PVE_CLIENT_H

#include "core/common.h"

#include <jansson.h>

struct event_base;
struct pl_pve;

struct pl_pve_opts {
	const char *const *endpoints; /* "https://host:8006", failover order */
	size_t n_endpoints;
	const char *token;      /* "USER@REALM!TOKENID=SECRET" (API token auth) */
	const char *username;   /* ticket auth: user@realm ... */
	const char *password;   /* ... and password */
	const char *fingerprint; /* SHA-256 pin "AA:BB:..."; replaces CA verification */
	const char *ca_file;    /* PEM bundle to verify against */
	long timeout_ms;        /* per request; 0: 30 s */
	int concurrency;        /* requests in flight; 0: 16 */
	int retries;            /* extra attempts for idempotent requests; <0: 4 */
	long retry_base_ms;     /* first backoff; 0: 100 ms */
	size_t max_body;        /* response cap; 0: 64 MiB */
	bool plain;             /* ask for uncompressed answers: many small ones */
};

/* What a request's callback receives; everything is borrowed for the call. */
struct pl_pve_result {
	int err;                /* 0 or PL_E* */
	long status;            /* HTTP status, 0 when no response */
	json_t *data;           /* the "data" member on success (may be JSON null) */
	const json_t *errors;   /* PVE's per-parameter "errors" object, or NULL */
	const char *message;    /* PVE's own error text, or NULL */
	const char *errmsg;     /* one line for the user, with a hint; NULL on success */
	const char *lock;       /* the lock named by a "locked" error, or NULL */
	const char *url;        /* the endpoint that answered or failed */
};

typedef void (*pl_pve_cb)(const struct pl_pve_result *res, void *arg);

/* 0 when libcurl's TLS backend (curl_version_info()->ssl_version) is OpenSSL,
 * the only one whose context callback enforces a fingerprint pin; else
 * PL_ETLS with a message. */
int pl_pve_tls_backend_check(const char *ssl_version, char **errmsg);

/* Told of every finished request: method, path as asked, HTTP status (0:
 * none), error (0 or PL_E*) and seconds since it was asked. A clone made
 * after this tells it too, on its own thread: fn must be thread-safe. */
typedef void (*pl_pve_observe_fn)(const char *method, const char *path, long status, int err,
				  double seconds, void *arg);
void pl_pve_set_observer(struct pl_pve *c, pl_pve_observe_fn fn, void *arg);

/* Make a client on base (owned by the caller). Validates the options; a pin
 * fails unless libcurl uses OpenSSL. */
int pl_pve_new(struct event_base *base, const struct pl_pve_opts *o, struct pl_pve **out,
	       char **errmsg);
/* A client for another thread's loop: the same endpoints, credentials, TLS
 * trust and limits, starting on c's current endpoint with c's ticket, with
 * 1/shares of c's concurrency (rounded up), made for many small reads (plain).
 * c is only read until the clone is freed (before c), which adds the clone's
 * requests to c's count. */
int pl_pve_clone(const struct pl_pve *c, struct event_base *base, int shares,
		 struct pl_pve **out, char **errmsg);
/* Ask for compressed answers (Accept-Encoding) from c's first request on:
 * a clone made for a large read (a list of megabytes). */
void pl_pve_compressed(struct pl_pve *c);
/* Threads the client's bulk work may use (the inventory's workers, parsing
 * large lists): one per CPU, at most four. */
int pl_pve_threads(void);
/* Cancel what is pending (callbacks are not called) and free. Accepts NULL. */
void pl_pve_free(struct pl_pve *c);

/* Queue METHOD path (e.g. "/cluster/resources"); params is an object of form or
 * query fields (borrowed; strings, numbers, booleans). cb runs exactly once. */
void pl_pve_request(struct pl_pve *c, const char *method, const char *path,
		    const json_t *params, pl_pve_cb cb, void *arg);
/* Takes the body of a 200 answer as it arrives (decompressed); nonzero
 * breaks the transfer off. */
typedef int (*pl_pve_body_cb)(const char *p, size_t n, void *arg);
/* pl_pve_request, with a 200 answer's body handed to on_body as it arrives
 * instead of parsed: cb then gets no data, and an answer broken off once some
 * of it was handed on is an error, never retried. Other answers are as for
 * pl_pve_request (retried when they may be, with PVE's message). */
void pl_pve_request_stream(struct pl_pve *c, const char *method, const char *path,
			   const json_t *params, pl_pve_body_cb on_body, pl_pve_cb cb, void *arg);
/* Stop everything pending without closing the client: every request and
 * task wait completes with PL_ECANCEL ("interrupted"), their callbacks run
 * (those in flight at once, the rest from the loop), and so does everything
 * asked until pl_pve_resume. Idle connections stay open. For `pvelab
 * console`, whose Ctrl-C stops one command and keeps the session. */
void pl_pve_interrupt(struct pl_pve *c);
/* Accept requests again after pl_pve_interrupt. */
void pl_pve_resume(struct pl_pve *c);
/* Whether c is interrupted now (between pl_pve_interrupt and pl_pve_resume). */
bool pl_pve_interrupted(const struct pl_pve *c);
/* Whether the client clone c was made from is interrupted now (read on the
 * clone's thread, which then interrupts the clone itself: a clone's loop is
 * its thread's). False for a client that is no clone. */
bool pl_pve_parent_interrupted(const struct pl_pve *c);
/* Requests not yet completed (and tasks waited on). */
size_t pl_pve_pending(const struct pl_pve *c);
/* The event loop it runs on. */
struct event_base *pl_pve_base(const struct pl_pve *c);
/* How many requests it keeps in flight (its connections). */
int pl_pve_concurrency(const struct pl_pve *c);
/* Run the event loop until nothing is pending. */
void pl_pve_run(struct pl_pve *c);
/* The API token in use, "USER@REALM!TOKENID" without its secret (caller
 * frees), or NULL when the client logs in with a password. */
char *pl_pve_token_id(const struct pl_pve *c);
/* Blocking convenience for front-ends: one request; *data is a new reference. */
int pl_pve_call(struct pl_pve *c, const char *method, const char *path, const json_t *params,
		json_t **data, char **errmsg);

typedef void (*pl_pve_task_cb)(int err, const char *exitstatus, const char *errmsg, void *arg);
/* Poll a task (UPID) with backoff until it stops; on failure errmsg ends with
 * the last lines of the task log. timeout_ms 0: no limit. A state machine on
 * the client's loop: cb runs once, from the loop (also for a malformed UPID),
 * never inside this call; pl_pve_free drops it without calling cb. */
void pl_pve_task_wait(struct pl_pve *c, const char *upid, long timeout_ms, pl_pve_task_cb cb,
		      void *arg);

/* Number of HTTP requests sent (attempts included), for tests and benchmarks. */
unsigned long pl_pve_requests_sent(const struct pl_pve *c);
/* TLS connections it (and its freed clones) made, and how many of them
 * resumed an earlier session instead of a full handshake. */
void pl_pve_tls_counts(const struct pl_pve *c, unsigned long *handshakes,
		       unsigned long *resumed);

/* Normalise "host", "host:port" or "https://host[:port][/]" into
 * "https://host:port" (caller frees); NULL with *errmsg when it is not a URL. */
char *pl_pve_endpoint_norm(const char *in, char **errmsg);

#endif
