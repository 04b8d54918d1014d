/*
 * The web dashboard of pvelab serve: its embedded page, the login that trades
 * a pvelab token for a session cookie (with a CSRF token for every change),
 * and the charts' round-robin data, proxied from the cluster and cached.
 */
#ifndef PL_CMD_SERVE_DASH_H
#define PL_CMD_SERVE_DASH_H

#include "core/common.h"
#include "serve/serve.h"

struct pl_serve_api;
struct pl_serve_metrics;
struct pl_dash_cache;

/* Browser sessions kept at once; the oldest gives way. */
#define PL_DASH_SESSIONS 256

struct pl_dash_session {
	char id_sha[65];    /* SHA-256 of the cookie's value (the value is never kept) */
	char token_sha[65]; /* the token it was made from: revoking it ends the session */
	char csrf[65];
	char name[64];
	double created, used;
};

struct pl_dash {
	struct pl_serve_module module; /* register with pl_serve_add */
	struct pl_serve *sv;
	struct pl_serve_module reads; /* serve_dash_reads.c */
	struct pl_serve_api *api;     /* the session, the live list (borrowed) */
	/* certificates, drift (borrowed): what its reads after each sync keep */
	const struct pl_serve_metrics *metrics;
	struct pl_dash_session sessions[PL_DASH_SESSIONS];
	struct pl_dash_cache *cache; /* rrddata answers */
	long session_ttl;            /* seconds */
};

/* Set up the dashboard on sv: its routes and its cookie credentials. */
void pl_dash_init(struct pl_dash *d, struct pl_serve *sv, struct pl_serve_api *api,
		  const struct pl_serve_metrics *metrics);

/* Its reads of what the server keeps: certificates, storages, the history
 * of every guest, drift (serve_dash_reads.c; arg: the struct pl_dash). */
extern const struct pl_serve_route pl_dash_read_routes[];
void pl_dash_release(struct pl_dash *d);

/* The session cookie's value (64 hex digits) in a Cookie header (may be
 * NULL): true and out filled, or false when it has none or a malformed one. */
bool pl_dash_cookie_value(const char *header, char out[65]);

/* An embedded web file by name ("app.js"): its bytes, or NULL. */
const char *pl_dash_asset(const char *name, size_t *len);

#endif
