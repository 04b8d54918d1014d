/*
 * API handlers for what `pvelab doctor` asks a node about itself: its clock
 * (/nodes/{node}/time, shifted by the seed's per-node clock_offset so a skew
 * can be simulated) and its API certificate (/nodes/{node}/certificates/info,
 * the certificate the simulator really serves).
 */
#include "core/common.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <time.h>

#include "core/err.h"
#include "sim/api.h"
#include "sim/internal.h"

static void
h_node_time(struct pl_sim_req *r)
{
	int n = pl_sim_req_node(r);
	time_t now;
	struct tm tm;

	if (n < 0)
		return;
	now = time(NULL) + (time_t)r->sim->nodes[n].clock_offset;
	localtime_r(&now, &tm);
	pl_sim_ok(r, json_pack("{s:I,s:I,s:s}", "time", (json_int_t)now, "localtime",
			       (json_int_t)(now + tm.tm_gmtoff), "timezone", "UTC"));
}

static json_int_t
epoch(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (json_int_t)timegm(&tm);
}

static char *
name_of(const X509_NAME *n)
{
	char buf[512];

	X509_NAME_oneline(n, buf, sizeof(buf));
	return pl_strdup(buf);
}

static void
h_node_certs(struct pl_sim_req *r)
{
	X509 *cert = r->sim->ssl_ctx ? SSL_CTX_get0_certificate(r->sim->ssl_ctx) : NULL;
	EVP_PKEY *pub;
	json_t *a = json_array();
	BIO *bio;
	char *pem = NULL, *subject, *issuer;
	long len;

	if (pl_sim_req_node(r) < 0) {
		json_decref(a);
		return;
	}
	if (!cert) { /* --no-tls: nothing is served over TLS */
		pl_sim_ok(r, a);
		return;
	}
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(bio, cert);
	len = BIO_get_mem_data(bio, &pem);
	subject = name_of(X509_get_subject_name(cert));
	issuer = name_of(X509_get_issuer_name(cert));
	pub = X509_get0_pubkey(cert);
	json_array_append_new(
		a,
		json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s%,s:s,s:i}", "filename", "pveproxy-ssl.pem",
			  "fingerprint", r->sim->fingerprint, "notbefore",
			  epoch(X509_get0_notBefore(cert)), "notafter",
			  epoch(X509_get0_notAfter(cert)), "subject", subject, "issuer", issuer,
			  "pem", pem, (size_t)len, "public-key-type",
			  /* as openssl names the algorithm, which PVE reports */
			  EVP_PKEY_get_id(pub) == EVP_PKEY_EC ? "id-ecPublicKey" : "rsaEncryption",
			  "public-key-bits", EVP_PKEY_get_bits(pub)));
	free(subject);
	free(issuer);
	BIO_free(bio);
	pl_sim_ok(r, a);
}

const struct pl_sim_route_def pl_sim_nodetime_routes[] = {
	{ PL_SIM_GET, "/nodes/{node}/time", h_node_time, false, 0 },
	{ PL_SIM_GET, "/nodes/{node}/certificates/info", h_node_certs, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
