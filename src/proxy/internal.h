/*
 * Private interfaces between the proxy's files: the local CA with its leaf
 * cache (ca.c), the upstream TLS client with its verification (upstream.c) and
 * one TLS endpoint of a relayed connection (side.c).
 */
#ifndef PL_PROXY_INTERNAL_H
#define PL_PROXY_INTERNAL_H

#include "core/common.h"
#include "proxy/proxy.h"
#include "core/buf.h"

#include <openssl/ssl.h>

struct pl_proxy_ca;

/* Open (creating if needed) the local CA of cfg->state_dir; a new one is
 * constrained to private names and cfg's names. */
int pl_proxy_ca_open(const struct pl_proxy_config *cfg, struct pl_proxy_ca **out,
                     char **errmsg);
void pl_proxy_ca_free(struct pl_proxy_ca *ca);
/* Install a leaf certificate for name (a DNS name or IP) on ssl, issuing and
 * caching it on first use; extra is an optional second SAN. */
int pl_proxy_ca_use_leaf(struct pl_proxy_ca *ca, SSL *ssl, const char *name, const char *extra,
                         char **errmsg);

/* What the upstream presented and what we concluded. */
struct pl_proxy_verify {
	bool have_cert;
	bool ok;
	bool pin_mismatch;
	char subject[256];
	char issuer[256];
	char not_before[32];
	char not_after[32];
	char fingerprint[96];
	char result[256]; /* "ok (verified as of 2019-06-01)" or why it failed */
};

/* Per-connection data the verify callback finds through SSL ex_data. */
struct pl_proxy_upctx {
	const struct pl_proxy_target *target;
	struct pl_proxy_verify v;
	bool probe; /* record only, accept anything (pvelab proxy trust) */
};

/* A client SSL_CTX for the target: its minimum version, ciphers, trust store
 * and our verification callback. */
SSL_CTX *pl_proxy_upstream_ctx(const struct pl_proxy_target *t, char **errmsg);
/* A new SSL for one upstream connection (SNI set, upctx attached). */
SSL *pl_proxy_upstream_ssl(SSL_CTX *ctx, struct pl_proxy_upctx *u);
/* Format an ASN1 time as "2019-06-01 12:00:00Z". */
void pl_proxy_asn1_time(const ASN1_TIME *t, char *out, size_t outsz);
/* Describe a certificate into v (subject, issuer, dates, fingerprint). */
void pl_proxy_describe(X509 *cert, struct pl_proxy_verify *v);

/* One TLS endpoint: SSL on a non-blocking socket, one edge-triggered event
 * (EV_READ|EV_WRITE|EV_ET|EV_PERSIST, added once), and readiness remembered
 * until a call would block, so nothing re-arms epoll per read or write. */
struct pl_proxy_side {
	int fd;   /* -1 until connected */
	SSL *ssl; /* SSL_MODE_ENABLE_PARTIAL_WRITE | ACCEPT_MOVING_WRITE_BUFFER */
	struct event *ev;
	bool can_read;  /* no read has hit EAGAIN since the last read edge */
	bool can_write; /* likewise for writes */
	bool read_wants_write, write_wants_read; /* renegotiation turned a call around */
	bool eof;          /* the peer finished sending (close_notify or FIN) */
	bool wclosed;      /* we sent close_notify and a TCP half-close */
	struct pl_buf out; /* accepted for this side, not yet taken by SSL_write;
	                    * allocated only while non-empty */
};

/* Empty, no socket, both directions assumed ready. */
void pl_proxy_side_init(struct pl_proxy_side *s);
/* Free the event, the session, the socket and the buffer; back to init. */
void pl_proxy_side_release(struct pl_proxy_side *s);
/* Record the readiness an event reported. */
void pl_proxy_side_wake(struct pl_proxy_side *s, short what);
/* Read one record's worth into buf; *n == 0 when it would block or at EOF
 * (s->eof). 0, or PL_EIO on a TLS or socket error. */
int pl_proxy_side_read(struct pl_proxy_side *s, char *buf, size_t size, size_t *n);
/* Write p now as far as the socket takes it and keep the rest in s->out. 0,
 * PL_EIO, or PL_ETOOBIG when s owes too much already. */
int pl_proxy_side_send(struct pl_proxy_side *s, const char *p, size_t n);
/* Write what s owes; sets *moved when some went out. 0 or PL_EIO. */
int pl_proxy_side_flush(struct pl_proxy_side *s, bool *moved);
/* Whether s still owes bytes to its socket. */
bool pl_proxy_side_owes(const struct pl_proxy_side *s);
/* Send close_notify and half-close the socket: the peer reads EOF. */
void pl_proxy_side_shutdown(struct pl_proxy_side *s);

#endif
