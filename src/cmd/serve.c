/*
 * `pvelab serve`: the long-running front-end. One event loop serves the REST
 * API (modules of routes on the serve core) over HTTP on loopback and HTTPS
 * elsewhere, and prints its bound addresses as one JSON line at start.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/serve_api.h"
#include "cmd/serve_metrics.h"
#include "cmd/serve_snappol.h"
#include "cmd/serve_checks.h"
#include "cmd/serve_mcp.h"
#include "cmd/serve_dash.h"
#include "cmd/serve_runs.h"
#include "config/config.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/x509.h"
#include "proxy/proxy.h"
#include "serve/runs.h"
#include "serve/serve.h"

#include <event2/event.h>
#include <openssl/ssl.h>
#include <signal.h>

static const struct pl_opt opts[] = {
	{ "listen", 'l', "ADDR:PORT",
	  "listen here (repeatable; default serve.listen, else 127.0.0.1:8080; port 0 picks one)" },
	{ "tls-cert", 0, "FILE", "certificate (PEM) for the HTTPS listeners" },
	{ "tls-key", 0, "FILE", "its private key (PEM)" },
	{ NULL, 0, NULL, NULL },
};

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	pl_log_info("serve: signal %d, stopping", (int)sig);
	event_base_loopexit(arg, NULL);
}

/* A plan, apply or snapshot changed guests: the store follows at once. */
static void
on_changed(void *arg)
{
	struct pl_serve_refresh *f = arg;

	if (f->s && f->s->pve)
		pl_serve_refresh_sync(f);
}

/* A run holds the refresh's syncs (they keep the store's transaction open). */
static void
hold_syncs(void *arg, bool on)
{
	pl_serve_refresh_hold(arg, on);
}

static bool
syncing(void *arg)
{
	return pl_serve_refresh_syncing(arg);
}

/* Whether the environment names a cluster (PVELAB_URL, as connect.c reads it). */
static bool
env_cluster(void)
{
	const char *u = getenv("PVELAB_URL");

	return u && *u;
}

/* serve.KEY as an integer, or dflt. */
static long long
cfg_int(const struct pl_config *cfg, const char *key, long long dflt)
{
	char ptr[64];
	const json_t *v;

	snprintf(ptr, sizeof(ptr), "/serve/%s", key);
	v = cfg ? pl_config_get(cfg, ptr) : NULL;
	return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

static const char *
cfg_str(const struct pl_config *cfg, const char *key)
{
	char ptr[64];

	snprintf(ptr, sizeof(ptr), "/serve/%s", key);
	return cfg ? json_string_value(pl_config_get(cfg, ptr)) : NULL;
}

/* The TLS context for the non-loopback listeners: the given certificate, or
 * one the local CA issues for their addresses (its fingerprint in *fp). */
static SSL_CTX *
tls_context(struct pl_session *s, const char *cert, const char *key, char **addrs, size_t n,
	    char fp[96], char **errmsg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *k = NULL;
	X509 *c = NULL;

	if (ctx == NULL) {
		pl_seterr(errmsg, PL_ETLS, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (cert) {
		if ((c = pl_x509_read_cert(cert, errmsg)) == NULL ||
		    (k = pl_x509_read_key(key, errmsg)) == NULL)
			goto fail;
	} else {
		const char **names = pl_calloc(n + 2, sizeof(*names));
		char *dir = pl_path_dirname(s->state_path);
		size_t m = 0;
		int r;

		for (size_t i = 0; i < n; i++) {
			char *colon = strrchr(addrs[i], ':');
			char *h = pl_strndup(addrs[i],
					     colon ? (size_t)(colon - addrs[i]) : strlen(addrs[i]));

			if (h[0] == '[') {
				memmove(h, h + 1, strlen(h));
				h[strlen(h) - 1] = '\0';
			}
			names[m++] = h;
		}
		r = pl_proxy_ca_issue(dir, names, &k, &c, errmsg);
		for (size_t i = 0; i < m; i++)
			free((char *)names[i]);
		free(names);
		free(dir);
		if (r != 0)
			goto fail;
	}
	if (SSL_CTX_use_certificate(ctx, c) != 1 || SSL_CTX_use_PrivateKey(ctx, k) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		pl_seterr(errmsg, PL_ETLS, "the TLS certificate and key do not go together");
		goto fail;
	}
	pl_x509_fingerprint(c, fp);
	X509_free(c);
	EVP_PKEY_free(k);
	return ctx;
fail:
	X509_free(c);
	EVP_PKEY_free(k);
	SSL_CTX_free(ctx);
	return NULL;
}

/* serve.metrics.client_ca: the HTTPS listeners ask for a client certificate
 * (without making one compulsory: other routes take bearer tokens) and
 * verify it against this CA; the metrics routes then want one. */
static int
client_ca(SSL_CTX *tls, const struct pl_config *cfg, char **errmsg)
{
	const char *ca =
		cfg ? json_string_value(pl_config_get(cfg, "/serve/metrics/client_ca")) : NULL;
	STACK_OF(X509_NAME) * names;

	if (ca == NULL)
		return 0;
	if (SSL_CTX_load_verify_locations(tls, ca, NULL) != 1 ||
	    (names = SSL_load_client_CA_file(ca)) == NULL) {
		pl_seterr(errmsg, PL_ETLS, "cannot read serve.metrics.client_ca '%s'", ca);
		return PL_ETLS;
	}
	SSL_CTX_set_client_CA_list(tls, names);
	SSL_CTX_set_verify(tls, SSL_VERIFY_PEER, NULL);
	return 0;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_serve_api api;
	struct pl_serve_mcp mcp;
	bool mcp_made = false;
	struct pl_serve_refresh refresh;
	struct pl_serve_metrics metrics = { 0 };
	struct pl_serve_snappol snappol = { 0 };
	struct pl_serve_checks checks = { 0 };
	struct pl_dash dash = { 0 };
	struct pl_serve_runs_api runs_api;
	struct pl_serve_runs *runs = NULL;
	bool refreshing = false, api_made = false;
	struct pl_serve *sv = NULL;
	struct event *sigint = NULL, *sigterm = NULL;
	struct pl_args a;
	SSL_CTX *tls = NULL;
	char **addrs = NULL, *err = NULL, fp[96] = "";
	const char *cert = NULL, *key = NULL;
	size_t n = 0;
	json_t *bound = json_array(), *line;
	bool need_tls = false;
	int r, rc = PL_EXIT_ERROR;

	memset(&s, 0, sizeof(s));
	pl_args_init(&a, &pl_cmd_serve, ctx, argc, argv);
	while ((r = pl_args_next(&a)) >= 0) {
		if (r == 0) {
			addrs = pl_realloc(addrs, (n + 1) * sizeof(*addrs));
			addrs[n++] = pl_strdup(a.value);
		} else if (r == 1) {
			cert = a.value;
		} else if (r == 2) {
			key = a.value;
		}
	}
	if (r != PL_ARGS_END) {
		rc = pl_args_exit(r);
		goto out;
	}
	if (a.npos) {
		rc = pl_usage_error(&pl_cmd_serve, "unexpected argument '%.60s' (it takes none)",
				    a.pos[0]);
		goto out;
	}
	pl_ctx_apply_log(ctx);
	if (ctx->verbosity == 0) /* a server logs each request (-q: only problems) */
		pl_log_set_level(PL_LOG_INFO);
	if (pl_session_open(&s, ctx, PL_NEED_STATE, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (n == 0) {
		const json_t *l = s.cfg ? pl_config_get(s.cfg, "/serve/listen") : NULL;
		size_t i;
		json_t *v;

		json_array_foreach(l, i, v) {
			addrs = pl_realloc(addrs, (n + 1) * sizeof(*addrs));
			addrs[n++] = pl_strdup(json_string_value(v));
		}
		if (n == 0) {
			addrs = pl_realloc(addrs, sizeof(*addrs));
			addrs[n++] = pl_strdup("127.0.0.1:8080");
		}
	}
	if (!cert && !key) {
		cert = cfg_str(s.cfg, "tls_cert");
		key = cfg_str(s.cfg, "tls_key");
	}
	if (!cert != !key) {
		rc = pl_usage_error(&pl_cmd_serve, "--tls-cert and --tls-key go together");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		need_tls |= !pl_serve_is_loopback(addrs[i]);
	if ((need_tls || cert) && (tls = tls_context(&s, cert, key, addrs, n, fp, &err)) == NULL) {
		pl_error("serve: %s", err);
		goto out;
	}
	if (tls && client_ca(tls, s.cfg, &err) != 0) {
		pl_error("serve: %s", err);
		goto out;
	}
	/* without a cluster the store is served as it is */
	if ((env_cluster() || (s.cfg && pl_config_get(s.cfg, "/cluster"))) &&
	    pl_session_api(&s, &err) != 0) {
		pl_error("serve: %s", err);
		goto out;
	}
	if (s.base == NULL && (s.base = event_base_new()) == NULL) {
		pl_error("cannot create an event loop");
		goto out;
	}
	sv = pl_serve_new(
		s.base, s.state,
		&(struct pl_serve_limits){
			.max_header = cfg_int(s.cfg, "max_header_bytes", 16384),
			.max_body = cfg_int(s.cfg, "max_body_bytes", 1048576),
			.request_timeout = (int)cfg_int(s.cfg, "request_timeout", 30),
			.max_connections = (int)cfg_int(s.cfg, "max_connections", 256),
			.max_per_client = (int)cfg_int(s.cfg, "max_connections_per_client", 32),
			.event_ring = (int)cfg_int(s.cfg, "event_ring", 1024),
		});
	pl_serve_api_init(&api, &s, &refresh);
	api_made = true;
	pl_serve_add(sv, &api.module);
	if (pl_serve_metrics_init(&metrics, &s, &refresh, &err) != 0) {
		pl_error("serve: %s", err);
		goto out;
	}
	pl_serve_add(sv, &metrics.module);
	pl_serve_snappol_init(&snappol, &s, sv);
	pl_serve_add(sv, &snappol.module);
	if (pl_serve_checks_init(&checks, &s, &refresh, sv, &err) != 0) {
		pl_error("serve: %s", err);
		goto out;
	}
	pl_serve_add(sv, &checks.module);
	runs = pl_serve_runs_new(&s, sv, on_changed, &refresh);
	pl_serve_runs_set_refresh(runs, hold_syncs, syncing, &refresh);
	pl_serve_runs_api_init(&runs_api, runs, &api);
	pl_serve_add(sv, &runs_api.module);
	if (pl_serve_mcp_init(&mcp, &s, runs, &refresh.live_by_id, &err) != 0) {
		pl_error("serve: %s", err);
		goto out;
	}
	mcp_made = true;
	pl_serve_add(sv, &mcp.module);
	pl_dash_init(&dash, sv, &api);
	for (size_t i = 0; i < n; i++) {
		bool loop = pl_serve_is_loopback(addrs[i]);
		char *b = NULL;

		/* loopback is plain HTTP unless a certificate was given */
		if (pl_serve_listen(sv, addrs[i], loop && !cert ? NULL : tls, &b, &err) != 0) {
			pl_error("serve: %s", err);
			goto out;
		}
		char *url = pl_asprintf("%s://%s", loop && !cert ? "http" : "https", b);

		json_array_append_new(bound, json_pack("{s:s,s:s,s:b}", "listen", b, "url", url,
						       "tls", !(loop && !cert)));
		free(url);
		free(b);
	}
	line = json_pack("{s:O,s:s,s:s*,s:s}", "listeners", bound, "url",
			 pl_json_str(json_array_get(bound, 0), "url"), "fingerprint",
			 fp[0] ? fp : NULL, "state", s.state_path);
	{
		char *text = json_dumps(line, JSON_COMPACT);

		printf("%s\n", text);
		fflush(stdout);
		free(text);
	}
	json_decref(line);
	if (fp[0])
		pl_log_info("serve: TLS certificate fingerprint %s", fp);
	pl_serve_refresh_init(&refresh, &s, sv, cfg_int(s.cfg, "status_interval", 10),
			      cfg_int(s.cfg, "sync_interval", 300));
	refreshing = true;
	pl_serve_metrics_start(&metrics);
	sigint = evsignal_new(s.base, SIGINT, on_signal, s.base);
	sigterm = evsignal_new(s.base, SIGTERM, on_signal, s.base);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	event_base_dispatch(s.base);
	rc = PL_EXIT_OK;
out:
	if (mcp_made)
		pl_serve_mcp_release(&mcp);
	pl_serve_runs_free(runs);
	runs_api.runs = NULL; /* the requests still waiting are dropped with the server */
	if (refreshing)
		pl_serve_refresh_release(&refresh);
	pl_serve_checks_release(&checks);
	pl_serve_free(sv);
	pl_serve_metrics_release(&metrics);
	pl_serve_snappol_release(&snappol);
	pl_dash_release(&dash);
	if (api_made)
		pl_serve_api_release(&api);
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	SSL_CTX_free(tls);
	for (size_t i = 0; i < n; i++)
		free(addrs[i]);
	free(addrs);
	json_decref(bound);
	pl_args_release(&a);
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_serve = {
	.name = "serve",
	.summary = "serve the REST API, its OpenAPI document and the web dashboard over HTTP(S)",
	.usage = "[--listen ADDR:PORT]... [--tls-cert FILE --tls-key FILE]",
	.help = "Plain HTTP only on loopback; any other listener is HTTPS, with --tls-cert/\n"
		"--tls-key (or serve.tls_cert/tls_key) or a certificate from pvelab's local CA\n"
		"(pvelab proxy ca), whose fingerprint is printed at start. Prints one JSON line\n"
		"with the bound addresses. Every endpoint but /healthz and the dashboard's page\n"
		"wants 'Authorization: Bearer <token>' (pvelab token create) or the dashboard's\n"
		"session. docs/serve.md describes the API; the web dashboard is at /\n"
		"(docs/dashboard.md); docs/metrics.md the Prometheus metrics (/metrics, and\n"
		"/pve as prometheus-pve-exporter answers it; serve.metrics.auth may also be\n"
		"none or tls).",
	.opts = opts,
	.run = run,
};
