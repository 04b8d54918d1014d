/*
 * Certificates and keys for pvelab's own TLS endpoints (see x509.h).
 */
#include "core/common.h"
#include "core/x509.h"
#include "core/err.h"
#include "core/file.h"

#include <ctype.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>

EVP_PKEY *
pl_x509_new_key(void)
{
	return EVP_EC_gen("P-256");
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return 0;
}

static bool
looks_like_ip(const char *s)
{
	unsigned char tmp[16];

	return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

X509 *
pl_x509_issue(EVP_PKEY *key, const char *cn, const char *const *sans, int days, bool is_ca,
	      EVP_PKEY *issuer_key, X509 *issuer_cert, char **errmsg)
{
	X509 *cert = X509_new();
	X509_NAME *name;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char *san = NULL;
	int ok = 0;

	if (cert == NULL)
		goto out;
	X509_set_version(cert, 2);
	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400);
	X509_set_pubkey(cert, key);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"pvelab", -1,
				   -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				   0);
	X509_set_issuer_name(cert, issuer_cert ? X509_get_subject_name(issuer_cert) : name);
	if (is_ca) {
		add_ext(cert, issuer_cert ? issuer_cert : cert, NID_basic_constraints,
			"critical,CA:TRUE,pathlen:0");
		add_ext(cert, issuer_cert ? issuer_cert : cert, NID_key_usage,
			"critical,keyCertSign,cRLSign,digitalSignature");
	} else {
		add_ext(cert, issuer_cert ? issuer_cert : cert, NID_basic_constraints, "CA:FALSE");
		add_ext(cert, issuer_cert ? issuer_cert : cert, NID_key_usage,
			"critical,digitalSignature,keyEncipherment");
		add_ext(cert, issuer_cert ? issuer_cert : cert, NID_ext_key_usage, "serverAuth");
	}
	add_ext(cert, issuer_cert ? issuer_cert : cert, NID_subject_key_identifier, "hash");
	if (issuer_cert)
		add_ext(cert, issuer_cert, NID_authority_key_identifier, "keyid:always");
	for (size_t i = 0; sans && sans[i]; i++) {
		char *next = pl_asprintf("%s%s%s:%s", san ? san : "", san ? "," : "",
					 looks_like_ip(sans[i]) ? "IP" : "DNS", sans[i]);

		free(san);
		san = next;
	}
	if (san && add_ext(cert, issuer_cert ? issuer_cert : cert, NID_subject_alt_name, san) != 0)
		goto out;
	if (X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) == 0)
		goto out;
	ok = 1;
out:
	if (!ok) {
		unsigned long e = ERR_get_error();

		pl_seterr(errmsg, PL_ETLS, "cannot make a certificate for '%s': %s", cn,
			  e ? ERR_reason_error_string(e) : "unknown error");
		X509_free(cert);
		cert = NULL;
	}
	BN_free(bn);
	free(san);
	return cert;
}

void
pl_x509_fingerprint(X509 *cert, char out[96])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	X509_digest(cert, EVP_sha256(), md, &n);
	for (unsigned int i = 0; i < n && i < 32; i++)
		snprintf(out + 3 * i, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
	out[95] = '\0';
}

int
pl_x509_fingerprint_norm(const char *in, char out[96])
{
	int nhex = 0;

	for (const char *p = in; *p; p++) {
		if (*p == ':' || *p == ' ')
			continue;
		if (!isxdigit((unsigned char)*p) || nhex >= 64)
			return PL_EINVAL;
		out[nhex / 2 * 3 + nhex % 2] = (char)toupper((unsigned char)*p);
		if (nhex % 2 == 1 && nhex < 63)
			out[nhex / 2 * 3 + 2] = ':';
		nhex++;
	}
	if (nhex != 64)
		return PL_EINVAL;
	out[95] = '\0';
	return 0;
}

static int
write_bio(const char *path, BIO *bio, mode_t mode, char **errmsg)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);

	return pl_file_write_atomic(path, data, (size_t)len, mode, errmsg);
}

int
pl_x509_write_cert(const char *path, X509 *cert, char **errmsg)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int r;

	PEM_write_bio_X509(bio, cert);
	r = write_bio(path, bio, 0644, errmsg);
	BIO_free(bio);
	return r;
}

int
pl_x509_write_key(const char *path, EVP_PKEY *key, char **errmsg)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int r;

	PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
	r = write_bio(path, bio, 0600, errmsg);
	BIO_free(bio);
	return r;
}

X509 *
pl_x509_read_cert(const char *path, char **errmsg)
{
	BIO *bio = BIO_new_file(path, "r");
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	if (cert == NULL)
		pl_seterr(errmsg, PL_ETLS, "cannot read a PEM certificate from '%s'", path);
	BIO_free(bio);
	return cert;
}

EVP_PKEY *
pl_x509_read_key(const char *path, char **errmsg)
{
	BIO *bio = BIO_new_file(path, "r");
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

	if (key == NULL)
		pl_seterr(errmsg, PL_ETLS, "cannot read a PEM private key from '%s'", path);
	BIO_free(bio);
	return key;
}

char *
pl_x509_cert_pem(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *s;
	long len;

	PEM_write_bio_X509(bio, cert);
	len = BIO_get_mem_data(bio, &data);
	s = pl_strndup(data, (size_t)len);
	BIO_free(bio);
	return s;
}
