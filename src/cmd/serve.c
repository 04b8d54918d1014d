/*
 * `pvelab serve`: the long-running front-end. One event loop serves the REST
 * API (modules of routes on the serve core) over HTTP on loopback and HTTPS
 * elsewhere, and prints its bound addresses as one JSON line at start. The
 * process's life is here too: SIGTERM/SIGINT drain, SIGHUP reloads the config
 * and the certificate, and systemd hears of each (sd_notify).
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/serve_api.h"
#include "cmd/serve_metrics.h"
#include "cmd/serve_snappol.h"
#include "cmd/serve_checks.h"
#include "cmd/serve_mcp.h"
#include "cmd/mcp_tools.h"
#include "cmd/serve_dash.h"
#include "cmd/serve_runs.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/x509.h"
#include "proxy/proxy.h"
#include "serve/runs.h"
#include "serve/serve.h"
#include "state/state.h"

#include <event2/event.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <time.h>

static const struct pl_opt opts[] = {
	{ "listen", 'l', "ADDR:PORT",
	  "listen here (repeatable; default serve.listen, else 127.0.0.1:8080; port 0 picks one)" },
	{ "tls-cert", 0, "FILE", "certificate (PEM) for the HTTPS listeners" },
	{ "tls-key", 0, "FILE", "its private key (PEM)" },
	{ NULL, 0, NULL, NULL },
};

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
		char *dir = pl_session_local_dir(s);
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

/* The limits serve.* asks for. */
static void
limits_of(const struct pl_config *cfg, struct pl_serve_limits *lim)
{
	*lim = (struct pl_serve_limits){
		.max_header = cfg_int(cfg, "max_header_bytes", 16384),
		.max_body = cfg_int(cfg, "max_body_bytes", 1048576),
		.request_timeout = (int)cfg_int(cfg, "request_timeout", 30),
		.max_connections = (int)cfg_int(cfg, "max_connections", 256),
		.max_per_client = (int)cfg_int(cfg, "max_connections_per_client", 32),
		.event_ring = (int)cfg_int(cfg, "event_ring", 1024),
	};
}

/* A cluster watched besides the first (serve's own session): its context
 * (--cluster NAME), session and refresh. */
struct watched {
	struct pl_ctx ctx;
	struct pl_session s;
	struct pl_serve_refresh refresh;
	bool refreshing;
};

/* The running server and what its signals act on. */
struct life {
	struct pl_session *s;
	struct pl_serve *sv;
	struct pl_serve_refresh *refresh;
	struct pl_serve_cluster *cl; /* every cluster watched (cl[0]: s, refresh) */
	size_t ncl;
	const char *cli_cert, *cli_key; /* given on the command line: a reload keeps them */
	char **addrs;                   /* the listen addresses */
	size_t n;
	struct pl_config **old; /* configs a reload replaced: modules may still point in */
	size_t nold;
	SSL_CTX *tls;
	char fp[96];
	struct event *sigs[4], *stop_ev, *watchdog_ev;
	int stops; /* SIGTERM/SIGINT seen */
	int rc;
};

static void
notify_status(struct life *L, const char *what)
{
	int conns, streams;

	pl_serve_counts(L->sv, &conns, &streams);
	sd_notifyf(0, "STATUS=%s: %d connections, %d event streams", what, conns, streams);
}

/* The certificate (given, else serve.tls_cert/tls_key of cfg) for the
 * HTTPS listeners; NULL with no error when none is needed. */
static SSL_CTX *
tls_for(struct life *L, const struct pl_config *cfg, char fp[96], char **errmsg)
{
	const char *cert = L->cli_cert, *key = L->cli_key;
	bool need = false;
	SSL_CTX *tls;

	*errmsg = NULL;
	if (!cert && !key) {
		cert = cfg_str(cfg, "tls_cert");
		key = cfg_str(cfg, "tls_key");
	}
	if (!cert != !key) {
		pl_seterr(errmsg, PL_EUSAGE, "serve.tls_cert and serve.tls_key go together");
		return NULL;
	}
	for (size_t i = 0; i < L->n; i++)
		need |= !pl_serve_is_loopback(L->addrs[i]);
	if (!need && !cert)
		return NULL;
	tls = tls_context(L->s, cert, key, L->addrs, L->n, fp, errmsg);
	if (tls && client_ca(tls, cfg, errmsg) != 0) {
		SSL_CTX_free(tls);
		return NULL;
	}
	return tls;
}

/* SIGHUP: read the config file and the certificate again. Anything wrong
 * keeps what runs; open connections are not touched. */
static void
reload(struct life *L)
{
	struct pl_session *s = L->s;
	const char *path = s->cfg ? pl_config_path(s->cfg) : s->ctx->config_path;
	struct pl_config *cfg = NULL;
	struct pl_serve_limits lim;
	struct pl_diags d;
	struct timespec now;
	const json_t *l, *v;
	SSL_CTX *tls = NULL;
	char fp[96] = "", *err = NULL, *line = NULL;
	size_t i;
	bool same = true;

	clock_gettime(CLOCK_MONOTONIC, &now);
	sd_notifyf(0, "RELOADING=1\nSTATUS=reloading %s\nMONOTONIC_USEC=%llu", path,
		   (unsigned long long)now.tv_sec * 1000000ULL +
			   (unsigned long long)now.tv_nsec / 1000);
	pl_diags_init(&d);
	if (pl_config_load(path, &cfg, &d) != 0) {
		for (i = 0; i < d.n && !line; i++)
			if (d.items[i].level == PL_DIAG_ERROR)
				line = pl_diag_line(&d.items[i]);
		pl_log_error("serve: reload refused, the running config kept: %s",
			     line ? line : "the config file cannot be read");
		goto out;
	}
	/* the cluster serve watches, narrowed as at the start */
	if (s->cfg && pl_config_cluster(s->cfg) &&
	    pl_config_select_cluster(cfg, pl_config_cluster(s->cfg), &err) != 0) {
		pl_log_error("serve: reload refused, the running config kept: %s", err);
		goto out;
	}
	/* a certificate from files is read again (renewed); one the local CA
	 * issued is kept, so that its fingerprint stays what clients pinned */
	if (L->cli_cert || cfg_str(cfg, "tls_cert") || cfg_str(s->cfg, "tls_cert"))
		tls = tls_for(L, cfg, fp, &err);
	if (err) {
		pl_log_error("serve: reload refused, the running config kept: %s", err);
		goto out;
	}
	/* the listeners stay: moving them would drop connections */
	l = pl_config_get(cfg, "/serve/listen");
	if (json_array_size(l)) {
		same = json_array_size(l) == L->n;
		json_array_foreach(l, i, v)
			same &= i < L->n && !strcmp(json_string_value(v), L->addrs[i]);
	}
	if (!same)
		pl_log_warn(
			"serve: serve.listen changed: the new addresses take effect at a restart");
	limits_of(cfg, &lim);
	pl_serve_set_limits(L->sv, &lim);
	pl_serve_set_stream_buffer(L->sv, cfg_int(cfg, "stream_buffer", 65536));
	for (i = 0; i < L->ncl; i++)
		pl_serve_refresh_set_intervals(L->cl[i].refresh,
					       cfg_int(cfg, "status_interval", 10),
					       cfg_int(cfg, "sync_interval", 300));
	if (tls) {
		pl_serve_set_tls(L->sv, tls);
		SSL_CTX_free(L->tls);
		L->tls = tls;
		tls = NULL;
		if (strcmp(fp, L->fp))
			pl_log_info("serve: TLS certificate fingerprint now %s", fp);
		snprintf(L->fp, sizeof(L->fp), "%s", fp);
	}
	if (s->cfg) {
		L->old = pl_realloc(L->old, (L->nold + 1) * sizeof(*L->old));
		L->old[L->nold++] = s->cfg;
	}
	s->cfg = cfg;
	cfg = NULL;
	pl_log_info("serve: reloaded %s", path);
	pl_serve_emit(L->sv, "reload", json_pack("{s:s}", "config", path));
out:
	sd_notify(0, "READY=1");
	notify_status(L, "serving");
	SSL_CTX_free(tls);
	pl_config_free(cfg);
	pl_diags_release(&d);
	free(line);
	free(err);
}

static void
on_drained(void *arg)
{
	struct life *L = arg;

	pl_log_info("serve: drained, stopping");
	event_base_loopexit(L->s->base, NULL);
}

/* The drain's deadline: what is still running is cut. */
static void
on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct life *L = arg;
	int conns, streams;

	pl_serve_counts(L->sv, &conns, &streams);
	pl_log_warn("serve: drain deadline reached: %d connections cut", conns);
	event_base_loopexit(L->s->base, NULL);
}

/* SIGTERM, SIGINT: finish what is in flight (at most serve.drain_timeout
 * seconds), then stop; a second one stops at once. */
static void
stop(struct life *L, int sig)
{
	long secs = cfg_int(L->s->cfg, "drain_timeout", 10);
	struct timeval tv = { secs, 0 };

	if (L->stops++) {
		pl_log_warn("serve: signal %d again: stopping now", sig);
		L->rc = PL_EXIT_ERROR;
		event_base_loopbreak(L->s->base);
		return;
	}
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	for (size_t i = 0; i < L->ncl; i++)
		pl_serve_refresh_stop(L->cl[i].refresh);
	L->stop_ev = evtimer_new(L->s->base, on_stop_deadline, L);
	evtimer_add(L->stop_ev, &tv);
	pl_serve_drain(L->sv, on_drained, L);
	pl_log_info("serve: signal %d: draining (at most %ld s; again to stop now)", sig, secs);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	if (sig == SIGHUP)
		reload(arg);
	else
		stop(arg, (int)sig);
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct life *L = arg;

	sd_notify(0, "WATCHDOG=1");
	notify_status(L, pl_serve_draining(L->sv) ? "draining" : "serving");
}

/* Several clusters: what is built for one cluster at a time (plans and
 * runs, checks, snapshot policies, metrics, the dashboard) is not
 * served yet; its entry points say so and how to have it, a server per
 * cluster. arg: the clusters' names. */
static void
one_cluster_only(struct pl_serve_req *req, void *arg)
{
	pl_serve_error(req, 501, "several_clusters", "cluster",
		       "this server watches several clusters (%s), and this route covers one: "
		       "run 'pvelab serve --cluster NAME' for it",
		       (const char *)arg);
}

#define ONE_ONLY(method, path, role, what)                                                         \
	{                                                                                          \
		method, path, role, 501,                                                           \
			what " (with one cluster; refused when serve watches several)", NULL,      \
			NULL, NULL, one_cluster_only, 0                                            \
	}

static const struct pl_serve_route one_cluster_routes[] = {
	ONE_ONLY("GET", "/", PL_ROLE_PUBLIC, "the web dashboard"),
	ONE_ONLY("GET", "/metrics", PL_ROLE_PUBLIC, "Prometheus metrics"),
	ONE_ONLY("GET", "/pve", PL_ROLE_PUBLIC, "prometheus-pve-exporter's metrics"),
	ONE_ONLY("POST", "/api/v1/plans", PL_ROLE_ADMIN, "plans"),
	ONE_ONLY("POST", "/api/v1/runs", PL_ROLE_ADMIN, "apply, destroy, rollback"),
	ONE_ONLY("GET", "/api/v1/checks", PL_ROLE_VIEWER, "health checks"),
	ONE_ONLY("GET", "/api/v1/snapshot-policies", PL_ROLE_VIEWER, "snapshot policies"),
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	static const int signals[] = { SIGINT, SIGTERM, SIGHUP };
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
	struct pl_mcp_cluster *mcl = NULL; /* several clusters: each one's runs engine for MCP */
	struct pl_serve_limits lim;
	struct pl_serve_module one_only = { "several clusters", one_cluster_routes, NULL };
	struct pl_ctx first;
	struct watched *W = NULL; /* the clusters after the first */
	char **cls = NULL, *names = NULL;
	size_t ncl = 0;
	struct life L;
	bool refreshing = false, api_made = false;
	struct pl_args a;
	char *err = NULL, *shown;
	json_t *bound = json_array(), *line;
	uint64_t wd_usec = 0;
	int r, rc = PL_EXIT_ERROR;

	memset(&s, 0, sizeof(s));
	memset(&L, 0, sizeof(L));
	L.s = &s;
	L.refresh = &refresh;
	pl_args_init(&a, &pl_cmd_serve, ctx, argc, argv);
	while ((r = pl_args_next(&a)) >= 0) {
		if (r == 0) {
			L.addrs = pl_realloc(L.addrs, (L.n + 1) * sizeof(*L.addrs));
			L.addrs[L.n++] = pl_strdup(a.value);
		} else if (r == 1) {
			L.cli_cert = a.value;
		} else if (r == 2) {
			L.cli_key = a.value;
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
	if (!L.cli_cert != !L.cli_key) {
		rc = pl_usage_error(&pl_cmd_serve, "--tls-cert and --tls-key go together");
		goto out;
	}
	pl_ctx_apply_log(ctx);
	if (ctx->verbosity == 0) /* a server logs each request (-q: only problems) */
		pl_log_set_level(PL_LOG_INFO);
	/* several clusters: the first is serve's own session, the others are
	 * watched beside it, each with its store and refresh */
	ncl = pl_cmd_clusters(ctx, &cls);
	first = *ctx;
	if (ncl > 1) {
		struct pl_buf b;

		first.cluster = cls[0];
		pl_buf_init(&b, 0);
		for (size_t i = 0; i < ncl; i++)
			pl_buf_addf(&b, "%s%s", i ? ", " : "", cls[i]);
		names = pl_buf_detach(&b, NULL);
		one_only.arg = names;
	}
	if (pl_session_open(&s, &first, PL_NEED_STATE, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (L.n == 0) {
		const json_t *l = s.cfg ? pl_config_get(s.cfg, "/serve/listen") : NULL;
		size_t i;
		json_t *v;

		json_array_foreach(l, i, v) {
			L.addrs = pl_realloc(L.addrs, (L.n + 1) * sizeof(*L.addrs));
			L.addrs[L.n++] = pl_strdup(json_string_value(v));
		}
		if (L.n == 0) {
			L.addrs = pl_realloc(L.addrs, sizeof(*L.addrs));
			L.addrs[L.n++] = pl_strdup("127.0.0.1:8080");
		}
	}
	L.tls = tls_for(&L, s.cfg, L.fp, &err);
	if (err) {
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
	L.ncl = ncl;
	L.cl = pl_calloc(ncl, sizeof(*L.cl));
	L.cl[0] = (struct pl_serve_cluster){ ncl > 1 ? cls[0] : NULL, &s, &refresh };
	if (ncl > 1)
		W = pl_calloc(ncl - 1, sizeof(*W));
	for (size_t i = 1; i < ncl; i++) {
		struct watched *w = &W[i - 1];

		w->ctx = *ctx;
		w->ctx.cluster = cls[i];
		if (pl_session_open_on(&w->s, &w->ctx, s.base, &err) != 0) {
			pl_error("serve: cluster '%s': %s", cls[i], err);
			goto out;
		}
		L.cl[i] = (struct pl_serve_cluster){ cls[i], &w->s, &w->refresh };
	}
	limits_of(s.cfg, &lim);
	L.sv = pl_serve_new(s.base, s.state, &lim);
	pl_serve_set_stream_buffer(L.sv, cfg_int(s.cfg, "stream_buffer", 65536));
	pl_serve_api_init(&api, &s, &refresh);
	api_made = true;
	pl_serve_add(L.sv, &api.module);
	if (ncl > 1) {
		for (size_t i = 1; i < ncl; i++)
			pl_serve_add_store(L.sv, W[i - 1].s.state);
		pl_serve_api_set_clusters(&api, L.cl, ncl);
		pl_serve_add(L.sv, &one_only);
		/* MCP covers every cluster, each with its own runs engine */
		mcl = pl_calloc(ncl, sizeof(*mcl));
		for (size_t i = 0; i < ncl; i++) {
			struct pl_serve_runs *rs =
				pl_serve_runs_new(L.cl[i].s, L.sv, on_changed, L.cl[i].refresh);

			pl_serve_runs_set_refresh(rs, hold_syncs, syncing, L.cl[i].refresh);
			mcl[i] = (struct pl_mcp_cluster){ cls[i], L.cl[i].s, rs };
		}
		runs = mcl[0].runs;
		if (pl_serve_mcp_init(&mcp, &s, runs, &refresh.live_by_id, &err) != 0) {
			pl_error("serve: %s", err);
			goto out;
		}
		mcp_made = true;
		pl_mcp_host_set_clusters(&mcp.host, mcl, ncl);
		pl_serve_add(L.sv, &mcp.module);
		goto listen;
	}
	if (pl_serve_metrics_init(&metrics, &s, &refresh, &err) != 0) {
		pl_error("serve: %s", err);
		goto out;
	}
	pl_serve_add(L.sv, &metrics.module);
	pl_serve_snappol_init(&snappol, &s, L.sv);
	pl_serve_add(L.sv, &snappol.module);
	if (pl_serve_checks_init(&checks, &s, &refresh, L.sv, &err) != 0) {
		pl_error("serve: %s", err);
		goto out;
	}
	pl_serve_add(L.sv, &checks.module);
	metrics.more = pl_serve_checks_metrics;
	metrics.more_arg = &checks;
	runs = pl_serve_runs_new(&s, L.sv, on_changed, &refresh);
	pl_serve_runs_set_refresh(runs, hold_syncs, syncing, &refresh);
	pl_serve_runs_api_init(&runs_api, runs, &api);
	pl_serve_add(L.sv, &runs_api.module);
	if (pl_serve_mcp_init(&mcp, &s, runs, &refresh.live_by_id, &err) != 0) {
		pl_error("serve: %s", err);
		goto out;
	}
	mcp_made = true;
	pl_serve_add(L.sv, &mcp.module);
	pl_dash_init(&dash, L.sv, &api, &metrics);
listen:
	for (size_t i = 0; i < L.n; i++) {
		/* loopback is plain HTTP unless a certificate was given */
		bool plain = pl_serve_is_loopback(L.addrs[i]) && !L.cli_cert &&
			     !cfg_str(s.cfg, "tls_cert");
		char *b = NULL;

		if (pl_serve_listen(L.sv, L.addrs[i], plain ? NULL : L.tls, &b, &err) != 0) {
			pl_error("serve: %s", err);
			goto out;
		}
		char *url = pl_asprintf("%s://%s", plain ? "http" : "https", b);

		json_array_append_new(
			bound, json_pack("{s:s,s:s,s:b}", "listen", b, "url", url, "tls", !plain));
		free(url);
		free(b);
	}
	shown = pl_state_display(s.state_path);
	line = json_pack("{s:O,s:s,s:s*,s:s}", "listeners", bound, "url",
			 pl_json_str(json_array_get(bound, 0), "url"), "fingerprint",
			 L.fp[0] ? L.fp : NULL, "state", shown);
	free(shown);
	if (ncl > 1) { /* each cluster's store */
		json_t *each = json_object();

		for (size_t i = 0; i < ncl; i++) {
			shown = pl_state_display(L.cl[i].s->state_path);
			json_object_set_new(each, cls[i], json_string(shown));
			free(shown);
		}
		json_object_set_new(line, "clusters", each);
	}
	{
		char *text = json_dumps(line, JSON_COMPACT);

		printf("%s\n", text);
		fflush(stdout);
		free(text);
	}
	json_decref(line);
	if (L.fp[0])
		pl_log_info("serve: TLS certificate fingerprint %s", L.fp);
	pl_serve_refresh_init(&refresh, &s, L.cl[0].name, L.sv,
			      cfg_int(s.cfg, "status_interval", 10),
			      cfg_int(s.cfg, "sync_interval", 300));
	refreshing = true;
	for (size_t i = 1; i < ncl; i++) {
		pl_serve_refresh_init(&W[i - 1].refresh, &W[i - 1].s, cls[i], L.sv,
				      cfg_int(s.cfg, "status_interval", 10),
				      cfg_int(s.cfg, "sync_interval", 300));
		W[i - 1].refreshing = true;
	}
	if (ncl > 1)
		pl_log_warn("serve: watching clusters %s; plans and runs, checks, snapshot "
			    "policies, metrics and the dashboard answer 501 (run a serve per "
			    "cluster with --cluster NAME for them)",
			    names);
	else
		pl_serve_metrics_start(&metrics);
	for (size_t i = 0; i < PL_ARRAY_LEN(signals); i++) {
		L.sigs[i] = evsignal_new(s.base, signals[i], on_signal, &L);
		event_add(L.sigs[i], NULL);
	}
	/* systemd: ready once listening, and a watchdog fed by this loop (a
	 * loop that stalls stops feeding it) */
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		struct timeval tv = { (time_t)(wd_usec / 2000000),
				      (suseconds_t)(wd_usec / 2 % 1000000) };

		L.watchdog_ev = event_new(s.base, -1, EV_PERSIST, on_watchdog, &L);
		event_add(L.watchdog_ev, &tv);
	}
	sd_notify(0, "READY=1");
	notify_status(&L, "serving");
	event_base_dispatch(s.base);
	rc = L.stops > 1 ? L.rc : PL_EXIT_OK;
out:
	if (mcp_made)
		pl_serve_mcp_release(&mcp);
	pl_serve_runs_free(runs);
	for (size_t i = 1; mcl && i < ncl; i++)
		pl_serve_runs_free(mcl[i].runs);
	free(mcl);
	runs_api.runs = NULL; /* the requests still waiting are dropped with the server */
	if (refreshing)
		pl_serve_refresh_release(&refresh);
	for (size_t i = 1; W && i < ncl; i++)
		if (W[i - 1].refreshing)
			pl_serve_refresh_release(&W[i - 1].refresh);
	pl_serve_checks_release(&checks);
	pl_serve_free(L.sv);
	pl_serve_metrics_release(&metrics);
	pl_serve_snappol_release(&snappol);
	pl_dash_release(&dash);
	if (api_made)
		pl_serve_api_release(&api);
	for (size_t i = 0; i < PL_ARRAY_LEN(L.sigs); i++)
		if (L.sigs[i])
			event_free(L.sigs[i]);
	if (L.stop_ev)
		event_free(L.stop_ev);
	if (L.watchdog_ev)
		event_free(L.watchdog_ev);
	SSL_CTX_free(L.tls);
	for (size_t i = 0; i < L.n; i++)
		free(L.addrs[i]);
	free(L.addrs);
	for (size_t i = 0; i < L.nold; i++)
		pl_config_free(L.old[i]);
	free(L.old);
	json_decref(bound);
	pl_args_release(&a);
	free(err);
	for (size_t i = 1; W && i < ncl; i++)
		pl_session_close(&W[i - 1].s);
	free(W);
	free(L.cl);
	pl_session_close(&s);
	pl_cmd_clusters_free(cls, ncl);
	free(names);
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
		"session. SIGTERM/SIGINT drain (a second one stops at once), SIGHUP reloads\n"
		"the config and the certificate; under systemd it notifies readiness and\n"
		"feeds the watchdog. docs/serve.md describes the API; the web dashboard is\n"
		"at / (docs/dashboard.md); docs/metrics.md the Prometheus metrics (/metrics,\n"
		"and /pve as prometheus-pve-exporter answers it).",
	.opts = opts,
	.run = run,
};
