/*
 * The upstream side: an OpenSSL client context per target (legacy TLS and
 * ciphers only where configured) and our own certificate verification —
 * as of a date, by pinned fingerprint, ignoring only the dates, or not at all.
 */
#include "core/common.h"
#include "proxy/internal.h"
#include "core/err.h"
#include "core/log.h"
#include "core/x509.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static int upctx_idx = -1;

void
pl_proxy_asn1_time(const ASN1_TIME *t, char *out, size_t outsz)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		snprintf(out, outsz, "?");
		return;
	}
	strftime(out, outsz, "%Y-%m-%d %H:%M:%SZ", &tm);
}

void
pl_proxy_describe(X509 *cert, struct pl_proxy_verify *v)
{
	v->have_cert = true;
	X509_NAME_oneline(X509_get_subject_name(cert), v->subject, sizeof(v->subject));
	X509_NAME_oneline(X509_get_issuer_name(cert), v->issuer, sizeof(v->issuer));
	pl_proxy_asn1_time(X509_get0_notBefore(cert), v->not_before, sizeof(v->not_before));
	pl_proxy_asn1_time(X509_get0_notAfter(cert), v->not_after, sizeof(v->not_after));
	pl_x509_fingerprint(cert, v->fingerprint);
}

static bool
is_ip(const char *s)
{
	unsigned char tmp[16];

	return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* ignore_time: accept only date errors, keep chain and name checks. */
static int
ignore_time_cb(int ok, X509_STORE_CTX *x)
{
	if (!ok) {
		switch (X509_STORE_CTX_get_error(x)) {
		case X509_V_ERR_CERT_HAS_EXPIRED:
		case X509_V_ERR_CERT_NOT_YET_VALID:
		case X509_V_ERR_CRL_HAS_EXPIRED:
		case X509_V_ERR_CRL_NOT_YET_VALID:
			X509_STORE_CTX_set_error(x, X509_V_OK);
			return 1;
		default:
			break;
		}
	}
	return ok;
}

/* Replaces OpenSSL's chain verification for the upstream handshake. */
static int
verify_cb(X509_STORE_CTX *x, void *arg)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct pl_proxy_upctx *u = ssl ? SSL_get_ex_data(ssl, upctx_idx) : NULL;
	const struct pl_proxy_target *t;
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(x);
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	char when[32];
	int rc, err;

	if (u == NULL || leaf == NULL)
		return 0;
	t = u->target;
	pl_proxy_describe(leaf, &u->v);
	if (u->probe) {
		u->v.ok = true;
		snprintf(u->v.result, sizeof(u->v.result), "not verified (probe)");
		return 1;
	}
	if (t->insecure) {
		u->v.ok = true;
		snprintf(u->v.result, sizeof(u->v.result), "NOT VERIFIED (insecure)");
		return 1;
	}
	if (t->pin[0]) {
		u->v.ok = strcmp(u->v.fingerprint, t->pin) == 0;
		u->v.pin_mismatch = !u->v.ok;
		snprintf(u->v.result, sizeof(u->v.result), "%s",
		         u->v.ok ? "ok (pinned fingerprint)" : "pinned fingerprint changed");
		return u->v.ok;
	}
	if (is_ip(t->host))
		X509_VERIFY_PARAM_set1_ip_asc(param, t->host);
	else
		X509_VERIFY_PARAM_set1_host(param, t->host, 0);
	/* min_tls 1.0 lowers the security level for the handshake to 0; the
	 * chain is still held to level 1 (no 512-bit keys, no MD5) unless the
	 * target says weak_keys */
	X509_VERIFY_PARAM_set_auth_level(param, t->weak_keys ? 0 : 1);
	if (t->has_verify_at) {
		struct tm tm;

		X509_VERIFY_PARAM_set_time(param, t->verify_at);
		gmtime_r(&t->verify_at, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d", &tm);
	}
	if (t->ignore_time)
		X509_STORE_CTX_set_verify_cb(x, ignore_time_cb);
	rc = X509_verify_cert(x);
	err = X509_STORE_CTX_get_error(x);
	u->v.ok = rc > 0;
	if (u->v.ok && t->has_verify_at)
		snprintf(u->v.result, sizeof(u->v.result), "ok (verified as of %s)", when);
	else if (u->v.ok && t->ignore_time)
		snprintf(u->v.result, sizeof(u->v.result), "ok (chain and name; dates ignored)");
	else if (u->v.ok)
		snprintf(u->v.result, sizeof(u->v.result), "ok");
	else
		snprintf(u->v.result, sizeof(u->v.result), "%s%s%s (depth %d)",
		         X509_verify_cert_error_string(err), t->has_verify_at ? " as of " : "",
		         t->has_verify_at ? when : "", X509_STORE_CTX_get_error_depth(x));
	return u->v.ok;
}

SSL_CTX *
pl_proxy_upstream_ctx(const struct pl_proxy_target *t, char **errmsg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	X509_STORE *store;
	const char *ciphers = t->ciphers;

	if (upctx_idx < 0)
		upctx_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, t->min_tls);
	/* controllers often just close the socket: that is an EOF, not an error */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (t->min_tls < TLS1_2_VERSION) {
		/* old controllers: SHA-1 signatures, small keys, no RFC 5746 */
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT);
		if (ciphers == NULL)
			ciphers = "DEFAULT:@SECLEVEL=0";
	}
	if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		pl_seterr(errmsg, PL_EINVAL, "target '%s': no usable cipher in '%s'", t->name,
		          ciphers);
		SSL_CTX_free(ctx);
		return NULL;
	}
	store = SSL_CTX_get_cert_store(ctx);
	if (t->ca_file) {
		if (X509_STORE_load_file(store, t->ca_file) != 1) {
			pl_seterr(errmsg, PL_ETLS,
			          "target '%s': cannot load CA certificates from '%s'", t->name,
			          t->ca_file);
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (!t->pin[0] && !t->insecure) {
		X509_STORE_set_default_paths(store);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, verify_cb, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
fail:
	pl_seterr(errmsg, PL_ETLS, "cannot create a TLS context for target '%s'", t->name);
	return NULL;
}

SSL *
pl_proxy_upstream_ssl(SSL_CTX *ctx, struct pl_proxy_upctx *u)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		return NULL;
	SSL_set_ex_data(ssl, upctx_idx, u);
	if (!is_ip(u->target->host))
		SSL_set_tlsext_host_name(ssl, u->target->host);
	return ssl;
}
