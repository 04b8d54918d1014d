/*
 * The proxy's local CA: created on first use in the state directory (key mode
 * 0600), and the leaf certificates it issues per SNI name or listener address,
 * cached in memory for the life of the process. The CA carries name
 * constraints (private names and addresses, and the names configured when it
 * was made), so that its key, if it leaked, could not vouch for other sites.
 */
#include "core/common.h"
#include "proxy/internal.h"
#include "core/err.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/x509.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/x509v3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEAF_CACHE_MAX 1024
#define CA_DAYS 825 /* rotated by deleting proxy-ca*.pem (docs/proxy.md) */

/* Names any local CA may vouch for: private DNS suffixes (RFC 6762, 8375,
 * 6761, ICANN's .internal, the common .lan) and private, loopback, link-local
 * and shared address ranges. */
static const char ca_permitted[] =
    "permitted;DNS:lan,permitted;DNS:home.arpa,permitted;DNS:local,"
    "permitted;DNS:internal,permitted;DNS:test,permitted;DNS:localhost,"
    "permitted;IP:10.0.0.0/255.0.0.0,permitted;IP:172.16.0.0/255.240.0.0,"
    "permitted;IP:192.168.0.0/255.255.0.0,permitted;IP:127.0.0.0/255.0.0.0,"
    "permitted;IP:169.254.0.0/255.255.0.0,permitted;IP:100.64.0.0/255.192.0.0,"
    "permitted;IP:fc00::/fe00::,permitted;IP:fe80::/ffc0::,"
    "permitted;IP:::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

/* Add name to the constraints in b: an address as itself alone, else a DNS
 * name (and its subdomains). */
static void
permit_name(struct pl_buf *b, const char *name)
{
	unsigned char a[16];

	if (name == NULL || *name == '\0' || strpbrk(name, ",;:\\ ") != NULL) {
		if (name && strchr(name, ':') && inet_pton(AF_INET6, name, a) == 1)
			pl_buf_addf(b, ",permitted;IP:%s/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", name);
		return;
	}
	if (inet_pton(AF_INET, name, a) == 1)
		pl_buf_addf(b, ",permitted;IP:%s/255.255.255.255", name);
	else
		pl_buf_addf(b, ",permitted;DNS:%s", name);
}

/* Give the new CA cert its name constraints (the fixed ones and cfg's names)
 * and sign it again. */
static int
constrain(X509 *cert, EVP_PKEY *key, const struct pl_proxy_config *cfg, char **errmsg)
{
	struct pl_buf b;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int r = 0;

	pl_buf_init(&b, 0);
	pl_buf_addf(&b, "critical,%s", ca_permitted);
	if (cfg) {
		permit_name(&b, cfg->name);
		for (size_t i = 0; i < cfg->ntargets; i++) {
			permit_name(&b, cfg->targets[i]->name);
			for (size_t k = 0; cfg->targets[i]->hostnames[k]; k++)
				permit_name(&b, cfg->targets[i]->hostnames[k]);
		}
	}
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_name_constraints, b.data)) == NULL ||
	    X509_add_ext(cert, ext, -1) != 1 || X509_sign(cert, key, EVP_sha256()) <= 0)
		r = pl_seterr(errmsg, PL_ETLS, "cannot give the proxy CA its name constraints");
	X509_EXTENSION_free(ext);
	pl_buf_release(&b);
	return r;
}
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
ca_load(const char *state_dir, bool create, const struct pl_proxy_config *cfg, EVP_PKEY **key,
        X509 **cert, bool *created, char **errmsg)
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
		if (X509_get_ext_by_NID(*cert, NID_name_constraints, -1) < 0)
			pl_log_warn("proxy: the CA '%s' has no name constraints: it can vouch for any "
			            "site; rotate it (docs/proxy.md: delete proxy-ca.pem and "
			            "proxy-ca-key.pem, run pvelab proxy ca, trust the new one)", cp);
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
	if ((r = constrain(*cert, *key, cfg, errmsg)) != 0)
		goto out;
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

	if ((r = ca_load(state_dir, create, NULL, &key, &cert, created, errmsg)) != 0)
		return r;
	*pem = pl_x509_cert_pem(cert);
	EVP_PKEY_free(key);
	X509_free(cert);
	return 0;
}

int
pl_proxy_ca_open(const struct pl_proxy_config *cfg, struct pl_proxy_ca **out, char **errmsg)
{
	struct pl_proxy_ca *ca = pl_calloc(1, sizeof(*ca));
	int r;

	*out = NULL;
	if ((r = ca_load(cfg->state_dir, true, cfg, &ca->ca_key, &ca->ca_cert, NULL, errmsg)) != 0)
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
	unsigned char a[16];
	char *cn = NULL;
	X509 *cert;

	for (size_t i = 0; i < ca->n; i++)
		if (!strcmp(ca->leaves[i].key, key)) {
			free(key);
			return ca->leaves[i].cert;
		}
	/* An address as CN would be checked against the CA's DNS constraints
	 * (OpenSSL reads a CN as a DNS name when there is no DNS SAN). */
	if (inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1)
		cn = pl_asprintf("pvelab proxy %s", name);
	cert = pl_x509_issue(ca->leaf_key, cn ? cn : name, sans, LEAF_DAYS, false, ca->ca_key,
	                     ca->ca_cert, errmsg);
	free(cn);
	if (cert == NULL) {
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

int
pl_proxy_ca_issue(const char *state_dir, const char *const *names, EVP_PKEY **key, X509 **cert,
		  char **errmsg)
{
	EVP_PKEY *ca_key = NULL;
	X509 *ca_cert = NULL;
	int r;

	*key = NULL;
	*cert = NULL;
	if ((r = ca_load(state_dir, true, NULL, &ca_key, &ca_cert, NULL, errmsg)) != 0)
		return r;
	if ((*key = pl_x509_new_key()) == NULL)
		r = pl_seterr(errmsg, PL_ETLS, "cannot generate a key");
	else if ((*cert = pl_x509_issue(*key, "pvelab serve", names, LEAF_DAYS, false, ca_key,
					ca_cert, errmsg)) == NULL)
		r = PL_ETLS;
	if (r != 0) {
		EVP_PKEY_free(*key);
		*key = NULL;
	}
	EVP_PKEY_free(ca_key);
	X509_free(ca_cert);
	return r;
}
