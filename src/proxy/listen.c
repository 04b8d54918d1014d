/*
 * The proxy's listeners and lifetime: the runtime (the active configuration
 * and its upstream TLS contexts) that connections hold, listeners per address,
 * SIGHUP reload, SIGINT/SIGTERM with a graceful drain, and pl_proxy_serve.
 */
#include "core/common.h"
#include "proxy/internal.h"
#include "proxy/proxy.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "proxy/loop.h"

/* ---- runtime ---- */

/* What the relay needs of every TLS session: partial writes whose rest is
 * retried from another buffer, no record buffers while idle (the memory
 * target), and read-ahead: one read() per record instead of header and body. */
static void
relay_modes(SSL_CTX *ctx)
{
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1);
}

void
pl_proxy_rt_unref(struct runtime *rt)
{
	if (rt == NULL || --rt->refs > 0)
		return;
	for (size_t i = 0; i < rt->cfg->ntargets; i++)
		SSL_CTX_free(rt->up_ctx[i]);
	free(rt->up_ctx);
	json_decref(rt->seen);
	json_decref(rt->warned);
	pl_proxy_config_free(rt->cfg);
	free(rt);
}

static int
rt_new(struct pl_proxy_config *cfg, struct runtime **out, char **errmsg)
{
	struct runtime *rt = pl_calloc(1, sizeof(*rt));

	rt->refs = 1;
	rt->cfg = cfg;
	rt->up_ctx = pl_calloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(SSL_CTX *));
	for (size_t i = 0; i < cfg->ntargets; i++) {
		if ((rt->up_ctx[i] = pl_proxy_upstream_ctx(cfg->targets[i], errmsg)) == NULL) {
			pl_proxy_rt_unref(rt);
			*out = NULL;
			return PL_ETLS;
		}
		relay_modes(rt->up_ctx[i]);
	}
	*out = rt;
	return 0;
}

static const char *
target_mode(const struct pl_proxy_target *t, char *buf, size_t n)
{
	if (t->insecure)
		return "INSECURE: no verification";
	if (t->pin[0]) {
		snprintf(buf, n, "pinned %.23s...%s", t->pin,
			 t->pin_from_file ? " (pins.json)" : "");
		return buf;
	}
	if (t->has_verify_at) {
		struct tm tm;

		gmtime_r(&t->verify_at, &tm);
		strftime(buf, n, "verified as of %Y-%m-%d", &tm);
		return buf;
	}
	return t->ignore_time ? "verified, dates ignored" : "verified";
}

/* ---- listeners and reload ---- */

static void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	if (l->resume)
		event_free(l->resume);
	if (l->lev)
		evconnlistener_free(l->lev);
	free(l->addr);
	free(l->targets);
	free(l);
}

static int
listener_open(struct pl_proxy *p, const char *addr, struct listener **out, char **errmsg)
{
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	struct listener *l;

	size_t alen = strlen(addr);
	bool any_port = alen > 2 && !strcmp(addr + alen - 2, ":0");

	*out = NULL;
	if (any_port) { /* libevent refuses port 0: parse port 1, then ask for any */
		char *one = pl_asprintf("%.*s:1", (int)(alen - 2), addr);

		if (evutil_parse_sockaddr_port(one, (struct sockaddr *)&ss, &sl) == 0) {
			if (ss.ss_family == AF_INET)
				((struct sockaddr_in *)&ss)->sin_port = 0;
			else
				((struct sockaddr_in6 *)&ss)->sin6_port = 0;
		} else {
			any_port = false;
		}
		free(one);
	}
	if (!any_port && evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sl) != 0)
		return pl_seterr(errmsg, PL_EINVAL, "invalid listen address '%s' (ADDR:PORT)",
				 addr);
	l = pl_calloc(1, sizeof(*l));
	l->p = p;
	l->addr = pl_strdup(addr);
	l->lev = evconnlistener_new_bind(p->base, pl_proxy_accept_cb, l,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
					 (struct sockaddr *)&ss, sl);
	if (l->lev == NULL) {
		int e = errno;

		listener_free(l);
		return pl_seterr(errmsg, PL_EIO, "cannot listen on '%s': %s", addr, strerror(e));
	}
	evconnlistener_set_error_cb(l->lev, pl_proxy_accept_error_cb);
	if (any_port) {
		struct sockaddr_storage b;
		socklen_t bl = sizeof(b);

		if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&b, &bl) == 0)
			pl_proxy_addr_str((struct sockaddr *)&b, l->bound, sizeof(l->bound), NULL);
	}
	*out = l;
	return 0;
}

/* Make the listeners match rt: keep identical addresses, open new ones,
 * close the rest. On failure nothing changes. */
static int
sync_listeners(struct pl_proxy *p, struct runtime *rt, char **errmsg)
{
	const struct pl_proxy_config *cfg = rt->cfg;
	size_t nt = cfg->ntargets, na = 0, j;
	const char **addrs = pl_calloc(nt + 1, sizeof(char *));
	struct listener **ls = pl_calloc(nt + 1, sizeof(*ls));
	bool *fresh = pl_calloc(nt + 1, sizeof(bool));
	struct listener *l, **pp;
	int r = 0;

	for (size_t i = 0; i < nt; i++) {
		const char *a = cfg->targets[i]->listen ? cfg->targets[i]->listen : cfg->listen;
		bool dup = false;

		for (j = 0; j < na; j++)
			dup = dup || !strcmp(addrs[j], a);
		if (!dup)
			addrs[na++] = a;
	}
	for (j = 0; j < na; j++) {
		for (l = p->listeners; l && strcmp(l->addr, addrs[j]); l = l->next)
			;
		if (l == NULL) {
			if ((r = listener_open(p, addrs[j], &l, errmsg)) != 0)
				break;
			fresh[j] = true;
		}
		ls[j] = l;
	}
	if (r != 0) {
		for (size_t k = 0; k < j; k++)
			if (fresh[k])
				listener_free(ls[k]);
		goto out;
	}
	/* commit: unlink the kept ones, free what is no longer configured */
	for (j = 0; j < na; j++)
		for (pp = &p->listeners; *pp; pp = &(*pp)->next)
			if (*pp == ls[j]) {
				*pp = ls[j]->next;
				break;
			}
	while (p->listeners) {
		l = p->listeners;
		p->listeners = l->next;
		pl_log_info("proxy: no longer listening on %s", l->addr);
		listener_free(l);
	}
	for (j = 0; j < na; j++) {
		l = ls[j];
		free(l->targets);
		l->targets = pl_calloc(nt, sizeof(size_t));
		l->ntargets = 0;
		for (size_t i = 0; i < nt; i++) {
			const char *a =
				cfg->targets[i]->listen ? cfg->targets[i]->listen : cfg->listen;

			if (!strcmp(a, addrs[j]))
				l->targets[l->ntargets++] = i;
		}
		l->next = p->listeners;
		p->listeners = l;
	}
out:
	free(addrs);
	free(ls);
	free(fresh);
	return r;
}

static void
announce(struct pl_proxy *p)
{
	for (struct listener *l = p->listeners; l; l = l->next)
		for (size_t i = 0; i < l->ntargets; i++) {
			const struct pl_proxy_target *t = p->rt->cfg->targets[l->targets[i]];
			char mode[160];

			if (t->pin_from_file && t->ca_file)
				pl_log_warn(
					"proxy: target '%s': the pin in pins.json (pvelab proxy "
					"trust) is used, not ca_file '%s'; set verify_at or "
					"ignore_time to verify with the CA, or drop ca_file",
					t->name, t->ca_file);
			if (t->weak_keys && !t->insecure)
				pl_log_warn(
					"proxy: target '%s': weak_keys: its chain may use small "
					"keys and MD5/SHA-1 signatures, which others can forge",
					t->name);
			pl_log(t->insecure ? PL_LOG_WARN : PL_LOG_INFO,
			       "proxy: listening on %s for '%s' -> https://%s:%d (%s)%s",
			       l->bound[0] ? l->bound : l->addr, t->name, t->host, t->port,
			       target_mode(t, mode, sizeof(mode)),
			       t->insecure ? " -- anyone between pvelab and the controller can "
					     "read and change this traffic" :
					     "");
		}
}

static int
apply(struct pl_proxy *p, struct pl_proxy_config *cfg, char **errmsg)
{
	struct runtime *rt;
	int r;

	if ((r = pl_proxy_config_finish(cfg, errmsg)) != 0) {
		pl_proxy_config_free(cfg);
		return r;
	}
	if ((r = rt_new(cfg, &rt, errmsg)) != 0)
		return r;
	if ((r = sync_listeners(p, rt, errmsg)) != 0) {
		pl_proxy_rt_unref(rt);
		return r;
	}
	pl_proxy_rt_unref(p->rt);
	p->rt = rt;
	announce(p);
	return 0;
}

static void
reload_end(struct pl_proxy *p)
{
	if (p->reload_pid > 0) {
		kill(p->reload_pid, SIGKILL);
		while (waitpid(p->reload_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	p->reload_pid = 0;
	if (p->reload_ev) {
		close(event_get_fd(p->reload_ev));
		event_free(p->reload_ev);
		p->reload_ev = NULL;
	}
}

/* The child has parsed the file (its verdict does not matter: the load below
 * reports the error), or has not within RELOAD_LIMIT seconds. Only a file
 * known to parse in time is parsed here, on the loop that serves. */
static void
on_reload_checked(evutil_socket_t fd, short what, void *arg)
{
	struct pl_proxy *p = arg;
	struct pl_proxy_config *cfg;
	char verdict = 0, *err = NULL;
	bool done = !(what & EV_TIMEOUT) && read(fd, &verdict, 1) == 1;

	reload_end(p);
	if (!done) {
		pl_log_error("proxy: reload failed, keeping the running config: '%s' could not be "
			     "parsed within %d s",
			     p->rt->cfg->config_path, RELOAD_LIMIT);
		return;
	}
	if (pl_proxy_config_load(p->rt->cfg->config_path, p->rt->cfg->state_dir, &cfg, &err) != 0 ||
	    apply(p, cfg, &err) != 0) {
		pl_log_error("proxy: reload failed, keeping the running config: %s", err);
		free(err);
		return;
	}
	p->st.reloads++;
	pl_log_info("proxy: reloaded %s", p->rt->cfg->config_path);
}

/* SIGHUP: a file written over the config may be hostile (a YAML parser that
 * spins or an alias bomb): it is first parsed in a child held to a time and
 * memory limit, and the running config stays until that child is done. */
static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct pl_proxy *p = arg;
	struct timeval limit = { RELOAD_LIMIT, 0 };
	int fds[2];

	if (p->rt->cfg->config_path == NULL) {
		pl_log_info("proxy: SIGHUP: targets come from flags, nothing to reload");
		return;
	}
	if (p->reload_pid) {
		pl_log_info("proxy: SIGHUP: a reload is being checked already");
		return;
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		pl_log_error("proxy: reload failed, keeping the running config: pipe: %s",
			     strerror(errno));
		return;
	}
	if ((p->reload_pid = fork()) == 0) {
		struct rlimit as = { (rlim_t)1 << 30, (rlim_t)1 << 30 };
		struct pl_proxy_config *cfg = NULL;
		char ok;

		close(fds[0]);
		alarm(RELOAD_LIMIT);
#ifndef __SANITIZE_ADDRESS__ /* its shadow memory is far beyond any such limit */
		setrlimit(RLIMIT_AS, &as);
#else
		(void)as;
#endif
		ok = pl_proxy_config_load(p->rt->cfg->config_path, p->rt->cfg->state_dir, &cfg,
					  NULL) == 0;
		if (write(fds[1], &ok, 1) != 1)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	if (p->reload_pid < 0) {
		pl_log_error("proxy: reload failed, keeping the running config: fork: %s",
			     strerror(errno));
		p->reload_pid = 0;
		close(fds[0]);
		return;
	}
	p->reload_ev = event_new(p->base, fds[0], EV_READ, on_reload_checked, p);
	if (p->reload_ev == NULL) {
		close(fds[0]);
		reload_end(p);
		return;
	}
	event_add(p->reload_ev, &limit);
}

static void
on_usr1(evutil_socket_t sig, short what, void *arg)
{
	const struct pl_proxy_stats *st = &((struct pl_proxy *)arg)->st;

	pl_log_info("proxy: stats accepted=%llu active=%llu completed=%llu tls_failed=%llu "
		    "unrouted=%llu connect_failed=%llu verify_failed=%llu pin_mismatch=%llu "
		    "error_pages=%llu bytes_up=%llu bytes_down=%llu reloads=%llu over_cap=%llu "
		    "timed_out=%llu accept_paused=%llu",
		    (unsigned long long)st->accepted, (unsigned long long)st->active,
		    (unsigned long long)st->completed, (unsigned long long)st->tls_failed,
		    (unsigned long long)st->unrouted, (unsigned long long)st->connect_failed,
		    (unsigned long long)st->verify_failed, (unsigned long long)st->pin_mismatch,
		    (unsigned long long)st->error_pages, (unsigned long long)st->bytes_up,
		    (unsigned long long)st->bytes_down, (unsigned long long)st->reloads,
		    (unsigned long long)st->over_cap, (unsigned long long)st->timed_out,
		    (unsigned long long)st->accept_paused);
}

static void
on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct pl_proxy *p = arg;
	size_t n = 0;

	for (struct conn *c = p->conns; c; c = c->next)
		n++;
	pl_log_warn("proxy: grace period over, closing %zu connection(s)", n);
	while (p->conns)
		pl_proxy_conn_finish(p->conns, "shutdown");
	event_base_loopexit(p->base, NULL);
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct pl_proxy *p = arg;
	struct timeval tv = { p->rt->cfg->grace, 0 };

	if (p->stopping) { /* second signal: stop now */
		on_grace(-1, 0, p);
		return;
	}
	p->stopping = true;
	while (p->listeners) {
		struct listener *l = p->listeners;

		p->listeners = l->next;
		listener_free(l);
	}
	if (p->conns == NULL) {
		event_base_loopexit(p->base, NULL);
		return;
	}
	pl_log_info("proxy: stopping; %llu connection(s) get %d s to finish",
		    (unsigned long long)p->st.active, p->rt->cfg->grace);
	p->ev_grace = evtimer_new(p->base, on_grace, p);
	evtimer_add(p->ev_grace, &tv);
}

static SSL_CTX *
down_ctx_new(char **errmsg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		pl_seterr(errmsg, PL_ETLS, "cannot create the downstream TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* a client's TCP half-close without close_notify is an EOF to pass on, not
	 * a fatal error that sends an alert and kills our write side */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_IGNORE_UNEXPECTED_EOF);
	relay_modes(ctx);
	SSL_CTX_set_client_hello_cb(ctx, pl_proxy_client_hello_cb, NULL);
	return ctx;
}

int
pl_proxy_serve(struct pl_proxy_config *cfg, char **errmsg)
{
	struct pl_proxy *p = pl_calloc(1, sizeof(*p));
	struct event_config *ecfg;
	int r;

	if (pl_proxy_conn_idx < 0)
		pl_proxy_conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	/* the relay relies on edge-triggered events (epoll) */
	if ((ecfg = event_config_new()) != NULL &&
	    event_config_require_features(ecfg, EV_FEATURE_ET) == 0)
		p->base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (p->base == NULL) {
		pl_proxy_config_free(cfg);
		r = pl_seterr(errmsg, PL_EIO, "cannot create an edge-triggered event loop");
		goto out;
	}
	p->dns = evdns_base_new(p->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (p->dns == NULL)
		p->dns = evdns_base_new(p->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if ((r = pl_proxy_ca_open(cfg, &p->ca, errmsg)) != 0) {
		pl_proxy_config_free(cfg);
		goto out;
	}
	if ((p->down_ctx = down_ctx_new(errmsg)) == NULL) {
		pl_proxy_config_free(cfg);
		r = PL_ETLS;
		goto out;
	}
	if ((r = apply(p, cfg, errmsg)) != 0)
		goto out;
	p->ev_int = evsignal_new(p->base, SIGINT, on_stop, p);
	p->ev_term = evsignal_new(p->base, SIGTERM, on_stop, p);
	p->ev_hup = evsignal_new(p->base, SIGHUP, on_hup, p);
	p->ev_usr1 = evsignal_new(p->base, SIGUSR1, on_usr1, p);
	evsignal_add(p->ev_usr1, NULL);
	evsignal_add(p->ev_int, NULL);
	evsignal_add(p->ev_term, NULL);
	evsignal_add(p->ev_hup, NULL);
	event_base_dispatch(p->base);
	while (p->conns)
		pl_proxy_conn_finish(p->conns, "shutdown");
	pl_log_info("proxy: stopped; %llu connection(s), %llu relayed, %llu refused upstream, "
		    "%llu bytes up, %llu bytes down",
		    (unsigned long long)p->st.accepted, (unsigned long long)p->st.completed,
		    (unsigned long long)(p->st.verify_failed + p->st.connect_failed),
		    (unsigned long long)p->st.bytes_up, (unsigned long long)p->st.bytes_down);
	r = 0;
out:
	reload_end(p);
	while (p->listeners) {
		struct listener *l = p->listeners;

		p->listeners = l->next;
		listener_free(l);
	}
	if (p->ev_int)
		event_free(p->ev_int);
	if (p->ev_term)
		event_free(p->ev_term);
	if (p->ev_hup)
		event_free(p->ev_hup);
	if (p->ev_usr1)
		event_free(p->ev_usr1);
	if (p->ev_grace)
		event_free(p->ev_grace);
	pl_proxy_rt_unref(p->rt);
	SSL_CTX_free(p->down_ctx);
	pl_proxy_ca_free(p->ca);
	if (p->dns)
		evdns_base_free(p->dns, 0);
	if (p->base)
		event_base_free(p->base);
	free(p);
	return r;
}
