/*
 * Private interfaces between the proxy's files: the local CA with its leaf
 * cache (ca.c) and the upstream TLS client with its verification (upstream.c).
 */
#ifndef PL_PROXY_INTERNAL_H
#define PL_PROXY_INTERNAL_H

#include "core/common.h"
#include "proxy/proxy.h"

#include <openssl/ssl.h>

struct pl_proxy_ca;

/* Open (creating if needed) the local CA of state_dir. */
int pl_proxy_ca_open(const char *state_dir, struct pl_proxy_ca **out, char **errmsg);
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

#endif
