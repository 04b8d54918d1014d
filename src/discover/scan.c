/*
 * The discovery scanner: non-blocking connects on one libevent loop (bounded,
 * rate-limited, deadlines everywhere), one protocol conversation per open port
 * (conn.c), asynchronous reverse DNS. No credentials, ever.
 */
#include "core/common.h"
#include "discover/discover.h"
#include "discover/proto.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "discover/scanner.h"

static void pump(struct scan *s);

/* ---- reverse DNS ---- */

static void
load_etc_hosts(struct scan *s)
{
	FILE *f = fopen("/etc/hosts", "re");
	char line[512];

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#'), *save = NULL, *addr, *name;
		struct pl_disc_addr a;

		if (hash)
			*hash = '\0';
		if ((addr = strtok_r(line, " \t\r\n", &save)) == NULL ||
		    (name = strtok_r(NULL, " \t\r\n", &save)) == NULL)
			continue;
		memset(&a, 0, sizeof(a));
		if (inet_pton(AF_INET, addr, &a.u.v4) == 1)
			a.family = AF_INET;
		else if (inet_pton(AF_INET6, addr, &a.u.v6) == 1)
			a.family = AF_INET6;
		else
			continue;
		s->etc_hosts = pl_realloc(s->etc_hosts, (s->netc_hosts + 1) * sizeof(*s->etc_hosts));
		s->etc_hosts[s->netc_hosts].addr = a;
		s->etc_hosts[s->netc_hosts].name = pl_strdup(name);
		s->netc_hosts++;
	}
	fclose(f);
}

static bool
addr_eq(const struct pl_disc_addr *a, const struct pl_disc_addr *b)
{
	if (a->family != b->family)
		return false;
	return a->family == AF_INET ? a->u.v4.s_addr == b->u.v4.s_addr
				    : !memcmp(&a->u.v6, &b->u.v6, sizeof(a->u.v6));
}

static bool
is_loopback(const struct pl_disc_addr *a)
{
	if (a->family == AF_INET)
		return (ntohl(a->u.v4.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&a->u.v6);
}

static void
dns_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	struct host *h = arg;

	PL_UNUSED(ttl);
	if (result == DNS_ERR_NONE && type == DNS_PTR && count > 0 && addresses &&
	    ((char **)addresses)[0] && h->name == NULL)
		h->name = pl_strdup(((char **)addresses)[0]);
}

struct dns_req {
	struct scan *s;
	struct host *h;
};

static void
dns_done(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	struct dns_req *r = arg;
	struct scan *s = r->s;

	dns_cb(result, type, count, ttl, addresses, r->h);
	free(r);
	s->dns_pending--;
	if (result != DNS_ERR_SHUTDOWN)
		pump(s);
}

void
pl_disc_start_dns(struct scan *s, struct host *h)
{
	struct dns_req *r;

	if (h->dns_started || !s->o->dns)
		return;
	h->dns_started = true;
	for (size_t i = 0; i < s->netc_hosts; i++)
		if (addr_eq(&s->etc_hosts[i].addr, &h->addr)) {
			h->name = pl_strdup(s->etc_hosts[i].name);
			return;
		}
	/* loopback names come from /etc/hosts only: never ask a network resolver */
	if (s->dns == NULL || is_loopback(&h->addr))
		return;
	r = pl_malloc(sizeof(*r));
	r->s = s;
	r->h = h;
	s->dns_pending++;
	if ((h->addr.family == AF_INET
		     ? evdns_base_resolve_reverse(s->dns, &h->addr.u.v4, 0, dns_done, r)
		     : evdns_base_resolve_reverse_ipv6(s->dns, &h->addr.u.v6, 0, dns_done, r)) ==
	    NULL) {
		s->dns_pending--;
		free(r);
	}
}

/* ---- scheduling ---- */

static void
check_done(struct scan *s)
{
	if (s->done)
		return;
	if (s->next_job < s->njobs || s->fq_head || s->inflight > 0)
		return;
	if (s->dns_pending > 0) {
		if (!evtimer_pending(s->dns_guard, NULL))
			evtimer_add(s->dns_guard, &s->tv_timeout);
		return;
	}
	s->done = true;
	event_base_loopexit(s->base, NULL);
}

static void
dns_guard_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scan *s = arg;

	PL_UNUSED(fd);
	PL_UNUSED(what);
	s->done = true;
	event_base_loopexit(s->base, NULL);
}

static void
pump(struct scan *s)
{
	double t = pl_disc_now(),
	       last = (double)s->last_refill.tv_sec + s->last_refill.tv_nsec / 1e9;

	s->tokens += (t - last) * s->o->rate;
	if (s->tokens > s->burst)
		s->tokens = s->burst;
	s->last_refill.tv_sec = (time_t)t;
	s->last_refill.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
	while (s->inflight < s->concurrency && (s->fq_head || s->next_job < s->njobs)) {
		struct conn *c;
		bool from_queue = s->fq_head != NULL;

		if (s->tokens < 1.0) {
			long long us = (long long)((1.0 - s->tokens) / s->o->rate * 1e6) + 1;
			struct timeval tv = { (time_t)(us / 1000000), (suseconds_t)(us % 1000000) };

			event_add(s->pump_ev, &tv);
			return;
		}
		if (from_queue) {
			c = s->fq_head;
			s->fq_head = c->next;
			if (s->fq_head == NULL)
				s->fq_tail = NULL;
			c->next = NULL;
		} else {
			size_t j = s->next_job++;

			/* port-major order spreads the load over hosts */
			c = pl_disc_conn_new(s, j % s->nhosts, j / s->nhosts);
		}
		if (!pl_disc_conn_start(c)) {
			if (s->inflight == 0) {
				/* nothing in flight will free a socket: give up on this one */
				pl_disc_conn_free(c);
				continue;
			}
			if (from_queue) {
				c->next = s->fq_head;
				s->fq_head = c;
				if (s->fq_tail == NULL)
					s->fq_tail = c;
			} else {
				pl_disc_conn_free(c);
				s->next_job--;
			}
			s->concurrency = s->inflight; /* learn the real limit */
			return;
		}
		s->tokens -= 1.0;
	}
	check_done(s);
}

static void
progress_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scan *s = arg;

	PL_UNUSED(fd);
	PL_UNUSED(what);
	s->o->progress(s->o->progress_arg, s->finished, s->njobs, s->up);
}

static void
pump_cb(evutil_socket_t fd, short what, void *arg)
{
	PL_UNUSED(fd);
	PL_UNUSED(what);
	pump(arg);
}

/* ---- records ---- */

static const char *
state_name(enum pstate st)
{
	switch (st) {
	case P_OPEN: return "open";
	case P_CLOSED: return "closed";
	case P_FILTERED: return "filtered";
	case P_UNREACH: return "unreachable";
	case P_NORESP: return "no-response";
	default: return "unknown";
	}
}

static json_t *
host_evidence(struct scan *s, struct host *h)
{
	json_t *a = json_array();

	for (size_t p = 0; p < s->o->nports; p++) {
		const struct pl_disc_port *port = &s->o->ports[p];
		json_t *e = json_object();

		json_object_set_new(e, "port", json_integer(port->port));
		json_object_set_new(e, "proto", json_string(port->udp ? "udp" : "tcp"));
		json_object_set_new(e, "state", json_string(state_name(h->st[p])));
		if (h->ev && h->ev[p])
			json_object_update(e, h->ev[p]);
		json_array_append_new(a, e);
	}
	return a;
}

static SSL_CTX *
make_ssl_ctx(char **errmsg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		pl_seterr(errmsg, PL_ETLS, "cannot create a TLS context");
		return NULL;
	}
	/* Identification only: we read the peer's certificate to report it and
	 * never send a credential over these connections, so verification is
	 * off. Old BMCs (iDRAC 7/8, iLO 3/4) speak only TLS 1.0 with small keys
	 * and SHA-1 and lack secure renegotiation, so legacy protocol versions,
	 * security level 0 and legacy server connect are allowed here. Never
	 * reuse this context for anything that authenticates. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, 0);
	SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
	SSL_CTX_set_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT | SSL_OP_IGNORE_UNEXPECTED_EOF);
	return ctx;
}

int
pl_disc_run(const struct pl_disc_opts *o, const struct pl_disc_targets *t, json_t **records,
	    char **errmsg)
{
	struct scan s;
	struct rlimit rl;
	int r = PL_EIO;

	*records = NULL;
	memset(&s, 0, sizeof(s));
	s.o = o;
	if (t->n == 0 || o->nports == 0)
		return pl_seterr(errmsg, PL_EINVAL, "nothing to scan");
	if ((s.ssl = make_ssl_ctx(errmsg)) == NULL)
		return PL_ETLS;
	s.base = event_base_new();
	if (s.base == NULL) {
		SSL_CTX_free(s.ssl);
		return pl_seterr(errmsg, PL_EIO, "cannot create an event loop");
	}
	s.nhosts = t->n;
	s.hosts = pl_calloc(s.nhosts, sizeof(*s.hosts));
	for (size_t i = 0; i < s.nhosts; i++) {
		s.hosts[i].addr = t->addrs[i];
		s.hosts[i].st = pl_calloc(o->nports, 1);
	}
	s.njobs = s.nhosts * o->nports;
	/* sockets in flight are bounded by the descriptor limit too */
	s.concurrency = (size_t)(o->concurrency > 0 ? o->concurrency : 1);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < s.concurrency + 64) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < s.concurrency + 64)
			s.concurrency = rl.rlim_cur > 96 ? (size_t)rl.rlim_cur - 64 : 32;
	}
	s.burst = o->rate / 50.0 > 1.0 ? o->rate / 50.0 : 1.0;
	s.tokens = s.burst;
	clock_gettime(CLOCK_MONOTONIC, &s.last_refill);
	s.tv_timeout.tv_sec = o->timeout_ms / 1000;
	s.tv_timeout.tv_usec = (o->timeout_ms % 1000) * 1000;
	s.pump_ev = evtimer_new(s.base, pump_cb, &s);
	s.dns_guard = evtimer_new(s.base, dns_guard_cb, &s);
	if (o->dns) {
		load_etc_hosts(&s);
		s.dns = evdns_base_new(s.base, 0);
		if (s.dns && evdns_base_resolv_conf_parse(s.dns, DNS_OPTION_NAMESERVERS,
							  "/etc/resolv.conf") == 0 &&
		    evdns_base_count_nameservers(s.dns) > 0) {
			char tmo[32];

			snprintf(tmo, sizeof(tmo), "%.3f", o->timeout_ms / 1000.0);
			evdns_base_set_option(s.dns, "timeout:", tmo);
			evdns_base_set_option(s.dns, "attempts:", "1");
		} else if (s.dns) {
			evdns_base_free(s.dns, 0);
			s.dns = NULL;
		}
	}
	if (o->progress) {
		struct timeval quarter = { 0, 250000 };

		s.progress_ev = event_new(s.base, -1, EV_PERSIST, progress_cb, &s);
		event_add(s.progress_ev, &quarter);
	}
	pump(&s);
	if (!s.done && event_base_dispatch(s.base) < 0) {
		pl_seterr(errmsg, PL_EIO, "event loop failed");
		goto out;
	}
	if (s.dns) {
		evdns_base_free(s.dns, 1); /* fails what is still pending: names stay empty */
		s.dns = NULL;
	}
	*records = json_array();
	for (size_t i = 0; i < s.nhosts; i++) {
		struct host *h = &s.hosts[i];
		char addr[INET6_ADDRSTRLEN];

		if (!h->open && !o->all)
			continue;
		pl_disc_addr_str(&h->addr, addr, sizeof(addr));
		json_array_append_new(*records,
				      pl_disc_record(addr, h->name, host_evidence(&s, h)));
	}
	r = 0;
out:
	while (s.fq_head) {
		struct conn *c = s.fq_head;

		s.fq_head = c->next;
		pl_disc_conn_free(c);
	}
	if (s.dns)
		evdns_base_free(s.dns, 1);
	for (size_t i = 0; i < s.nhosts; i++) {
		struct host *h = &s.hosts[i];

		if (h->ev)
			for (size_t p = 0; p < o->nports; p++)
				json_decref(h->ev[p]);
		free(h->ev);
		free(h->st);
		free(h->name);
	}
	free(s.hosts);
	for (size_t i = 0; i < s.netc_hosts; i++)
		free(s.etc_hosts[i].name);
	free(s.etc_hosts);
	if (s.progress_ev) {
		o->progress(o->progress_arg, s.finished, s.njobs, s.up);
		event_free(s.progress_ev);
	}
	event_free(s.pump_ev);
	event_free(s.dns_guard);
	event_base_free(s.base);
	SSL_CTX_free(s.ssl);
	return r;
}
