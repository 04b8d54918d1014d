/*
 * The proxy's local CA: created on first use in the state directory (key mode
 * 0600), and the leaf certificates it issues per SNI name or listener address,
 * cached in memory for the life of the process.
 */
#include "core/common.h"
#include "proxy/internal.h"
#include "core/err.h"
#include "core/file.h"
#include "core/x509.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEAF_CACHE_MAX 1024
#define CA_DAYS 3650
#define LEAF_DAYS 397 /* browsers refuse leaf certificates valid for longer */

struct leaf {
	char *key;
	X509 *cert;
};

struct pl_proxy_ca {
	EVP_PKEY *ca_key;
	X509 *ca_cert;
	EVP_PKEY *leaf_key; /* one key for all leaves: issuing stays cheap */
	struct leaf *leaves;
	size_t n;
};

char *
pl_proxy_ca_path(const char *state_dir)
{
	return pl_path_join(state_dir, "proxy-ca.pem");
}

static char *
ca_key_path(const char *state_dir)
{
	return pl_path_join(state_dir, "proxy-ca-key.pem");
}

static int
ca_load(const char *state_dir, bool create, EVP_PKEY **key, X509 **cert, bool *created,
        char **errmsg)
{
	char *cp = pl_proxy_ca_path(state_dir), *kp = ca_key_path(state_dir);
	char *lp = pl_path_join(state_dir, "proxy-ca.lock");
	int r = 0, lock = -1;

	*key = NULL;
	*cert = NULL;
	if (created)
		*created = false;
	/* two proxies starting at once must not make two CAs */
	if (create && pl_mkdir_p(state_dir, 0700, NULL) == 0 &&
	    (lock = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		flock(lock, LOCK_EX);
	if (access(cp, F_OK) == 0 || access(kp, F_OK) == 0) {
		struct stat st;

		if (stat(kp, &st) == 0 && (st.st_mode & 077) != 0) {
			r = pl_seterr(errmsg, PL_EPERM,
			              "the proxy CA key '%s' is readable by others (chmod 600 it)",
			              kp);
			goto out;
		}
		if ((*cert = pl_x509_read_cert(cp, errmsg)) == NULL ||
		    (*key = pl_x509_read_key(kp, errmsg)) == NULL) {
			r = PL_ETLS;
			goto out;
		}
		goto out;
	}
	if (!create) {
		r = pl_seterr(errmsg, PL_ENOENT, "no proxy CA in '%s' yet", state_dir);
		goto out;
	}
	if ((r = pl_mkdir_p(state_dir, 0700, errmsg)) != 0)
		goto out;
	if ((*key = pl_x509_new_key()) == NULL) {
		r = pl_seterr(errmsg, PL_ETLS, "cannot generate a key for the proxy CA");
		goto out;
	}
	if ((*cert = pl_x509_issue(*key, "pvelab proxy local CA", NULL, CA_DAYS, true, NULL, NULL,
	                           errmsg)) == NULL) {
		r = PL_ETLS;
		goto out;
	}
	/* key first: a certificate without its key would be useless */
	if ((r = pl_x509_write_key(kp, *key, errmsg)) != 0 ||
	    (r = pl_x509_write_cert(cp, *cert, errmsg)) != 0)
		goto out;
	if (created)
		*created = true;
out:
	if (r != 0) {
		EVP_PKEY_free(*key);
		X509_free(*cert);
		*key = NULL;
		*cert = NULL;
	}
	if (lock >= 0)
		close(lock);
	free(lp);
	free(cp);
	free(kp);
	return r;
}

int
pl_proxy_ca_ensure(const char *state_dir, bool create, char **pem, bool *created, char **errmsg)
{
	EVP_PKEY *key;
	X509 *cert;
	int r;

	if ((r = ca_load(state_dir, create, &key, &cert, created, errmsg)) != 0)
		return r;
	*pem = pl_x509_cert_pem(cert);
	EVP_PKEY_free(key);
	X509_free(cert);
	return 0;
}

int
pl_proxy_ca_open(const char *state_dir, struct pl_proxy_ca **out, char **errmsg)
{
	struct pl_proxy_ca *ca = pl_calloc(1, sizeof(*ca));
	int r;

	*out = NULL;
	if ((r = ca_load(state_dir, true, &ca->ca_key, &ca->ca_cert, NULL, errmsg)) != 0)
		goto out;
	if ((ca->leaf_key = pl_x509_new_key()) == NULL) {
		r = pl_seterr(errmsg, PL_ETLS, "cannot generate the proxy's leaf key");
		goto out;
	}
	*out = ca;
	ca = NULL;
out:
	pl_proxy_ca_free(ca);
	return r;
}

void
pl_proxy_ca_free(struct pl_proxy_ca *ca)
{
	if (ca == NULL)
		return;
	for (size_t i = 0; i < ca->n; i++) {
		free(ca->leaves[i].key);
		X509_free(ca->leaves[i].cert);
	}
	free(ca->leaves);
	EVP_PKEY_free(ca->ca_key);
	EVP_PKEY_free(ca->leaf_key);
	X509_free(ca->ca_cert);
	free(ca);
}

static X509 *
leaf_get(struct pl_proxy_ca *ca, const char *name, const char *extra, char **errmsg)
{
	char *key = pl_asprintf("%s|%s", name, extra ? extra : "");
	const char *sans[3] = {name, extra, NULL};
	X509 *cert;

	for (size_t i = 0; i < ca->n; i++)
		if (!strcmp(ca->leaves[i].key, key)) {
			free(key);
			return ca->leaves[i].cert;
		}
	if ((cert = pl_x509_issue(ca->leaf_key, name, sans, LEAF_DAYS, false, ca->ca_key,
	                          ca->ca_cert, errmsg)) == NULL) {
		free(key);
		return NULL;
	}
	if (ca->n == LEAF_CACHE_MAX) { /* full: forget the oldest */
		free(ca->leaves[0].key);
		X509_free(ca->leaves[0].cert);
		memmove(ca->leaves, ca->leaves + 1, (ca->n - 1) * sizeof(*ca->leaves));
		ca->n--;
	}
	ca->leaves = pl_realloc(ca->leaves, (ca->n + 1) * sizeof(*ca->leaves));
	ca->leaves[ca->n].key = key;
	ca->leaves[ca->n].cert = cert;
	ca->n++;
	return cert;
}

int
pl_proxy_ca_use_leaf(struct pl_proxy_ca *ca, SSL *ssl, const char *name, const char *extra,
                     char **errmsg)
{
	X509 *cert = leaf_get(ca, name, extra, errmsg);

	if (cert == NULL)
		return PL_ETLS;
	if (SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, ca->leaf_key) != 1)
		return pl_seterr(errmsg, PL_ETLS, "cannot install the leaf certificate for '%s'",
		                 name);
	return 0;
}
