/*
 * `pvelab proxy trust`: connect once to an upstream with the target's TLS
 * settings, accept whatever it presents, and describe the certificate (and
 * what a normal verification as of now says about it) so it can be pinned.
 */
#include "core/common.h"
#include "proxy/internal.h"
#include "core/err.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>

struct probe {
	struct event_base *base;
	struct pl_proxy_upctx u;
	struct pl_proxy_probe *out;
	bool done;
	int err;
	char why[256];
};

static void
probe_event(struct bufferevent *bev, short what, void *arg)
{
	struct probe *pr = arg;
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (what & BEV_EVENT_CONNECTED) {
		snprintf(pr->out->protocol, sizeof(pr->out->protocol), "%s", SSL_get_version(ssl));
		snprintf(pr->out->cipher, sizeof(pr->out->cipher), "%s",
		         SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
		pr->done = true;
	} else {
		unsigned long e, first = 0;

		while ((e = bufferevent_get_openssl_error(bev)) != 0)
			if (first == 0 && ERR_GET_LIB(e) != 0)
				first = e;
		e = first;
		int dns = bufferevent_socket_get_dns_error(bev);

		if (what & BEV_EVENT_TIMEOUT)
			snprintf(pr->why, sizeof(pr->why), "timed out");
		else if (dns)
			snprintf(pr->why, sizeof(pr->why), "%s", evutil_gai_strerror(dns));
		else if (e)
			ERR_error_string_n(e, pr->why, sizeof(pr->why));
		else
			snprintf(pr->why, sizeof(pr->why), "%s",
			         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		pr->err = PL_ECONNECT;
	}
	event_base_loopexit(pr->base, NULL);
}

/* A normal verification as of now against the target's anchors. */
static void
verify_now(const struct pl_proxy_target *t, SSL *ssl, struct pl_proxy_probe *out)
{
	X509 *leaf = SSL_get1_peer_certificate(ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *x = X509_STORE_CTX_new();
	unsigned char tmp[16];

	if (leaf == NULL || store == NULL || x == NULL)
		goto out;
	if (t->ca_file)
		X509_STORE_load_file(store, t->ca_file);
	else
		X509_STORE_set_default_paths(store);
	X509_STORE_CTX_init(x, store, leaf, chain);
	if (inet_pton(AF_INET, t->host, tmp) == 1 || inet_pton(AF_INET6, t->host, tmp) == 1)
		X509_VERIFY_PARAM_set1_ip_asc(X509_STORE_CTX_get0_param(x), t->host);
	else
		X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(x), t->host, 0);
	if (X509_verify_cert(x) == 1)
		snprintf(out->verify_now, sizeof(out->verify_now), "ok");
	else
		snprintf(out->verify_now, sizeof(out->verify_now), "%s (depth %d)",
		         X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)),
		         X509_STORE_CTX_get_error_depth(x));
	out->expired = X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0;
	{
		GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);

		for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
			GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
			size_t n = strlen(out->san);
			char ip[INET6_ADDRSTRLEN];

			if (g->type == GEN_DNS)
				snprintf(out->san + n, sizeof(out->san) - n, "%sDNS:%s",
				         n ? ", " : "",
				         (const char *)ASN1_STRING_get0_data(g->d.dNSName));
			else if (g->type == GEN_IPADD && g->d.iPAddress->length == 4 &&
			         inet_ntop(AF_INET, g->d.iPAddress->data, ip, sizeof(ip)))
				snprintf(out->san + n, sizeof(out->san) - n, "%sIP:%s",
				         n ? ", " : "", ip);
		}
		GENERAL_NAMES_free(gens);
	}
out:
	X509_free(leaf);
	X509_STORE_CTX_free(x);
	X509_STORE_free(store);
}

int
pl_proxy_probe(const struct pl_proxy_target *t, int timeout_s, struct pl_proxy_probe *out,
               char **errmsg)
{
	struct probe pr;
	struct evdns_base *dns = NULL;
	struct bufferevent *bev = NULL;
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	struct timeval tv = {timeout_s, 0};
	SSL_CTX *ctx;
	SSL *ssl;
	char hp[300];
	int r;

	memset(&pr, 0, sizeof(pr));
	memset(out, 0, sizeof(*out));
	pr.out = out;
	pr.u.target = t;
	pr.u.probe = true;
	if ((ctx = pl_proxy_upstream_ctx(t, errmsg)) == NULL)
		return PL_ETLS;
	pr.base = event_base_new();
	if (pr.base == NULL || (ssl = pl_proxy_upstream_ssl(ctx, &pr.u)) == NULL) {
		r = pl_seterr(errmsg, PL_ETLS, "cannot set up a TLS connection");
		goto out;
	}
	bev = bufferevent_openssl_socket_new(pr.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		r = pl_seterr(errmsg, PL_ETLS, "cannot set up a TLS connection");
		goto out;
	}
	bufferevent_setcb(bev, NULL, NULL, probe_event, &pr);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	snprintf(hp, sizeof(hp), strchr(t->host, ':') ? "[%s]:%d" : "%s:%d", t->host, t->port);
	if (evutil_parse_sockaddr_port(hp, (struct sockaddr *)&ss, &sl) == 0) {
		r = bufferevent_socket_connect(bev, (struct sockaddr *)&ss, sl);
	} else {
		dns = evdns_base_new(pr.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
		r = bufferevent_socket_connect_hostname(bev, dns, AF_UNSPEC, t->host, t->port);
	}
	if (r != 0) {
		r = pl_seterr(errmsg, PL_ECONNECT, "cannot connect to %s", hp);
		goto out;
	}
	event_base_dispatch(pr.base);
	if (!pr.done || !pr.u.v.have_cert) {
		r = pl_seterr(errmsg, PL_ECONNECT, "%s",
		              pr.why[0] ? pr.why : "no certificate received");
		goto out;
	}
	snprintf(out->subject, sizeof(out->subject), "%s", pr.u.v.subject);
	snprintf(out->issuer, sizeof(out->issuer), "%s", pr.u.v.issuer);
	snprintf(out->not_before, sizeof(out->not_before), "%s", pr.u.v.not_before);
	snprintf(out->not_after, sizeof(out->not_after), "%s", pr.u.v.not_after);
	snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", pr.u.v.fingerprint);
	verify_now(t, bufferevent_openssl_get_ssl(bev), out);
	r = 0;
out:
	if (bev)
		bufferevent_free(bev);
	if (dns)
		evdns_base_free(dns, 0);
	if (pr.base)
		event_base_free(pr.base);
	SSL_CTX_free(ctx);
	return r;
}
