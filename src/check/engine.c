/*
 * The check engine: probes run concurrently on the caller's event_base, at
 * most a cap of them at once, nothing blocking and no thread. HTTP(S), TLS
 * and TCP go through one libcurl multi handle driven by the loop (TLS and
 * TCP as connect-only transfers; a TCP banner is read with curl_easy_recv
 * when the socket is readable); DNS through evdns; ping through an ICMP
 * socket (unprivileged SOCK_DGRAM where net.ipv4.ping_group_range allows,
 * SOCK_RAW otherwise). Every read is capped at PL_CHECK_READ_MAX.
 */
#include "core/common.h"
#include "check/check.h"
#include "core/buf.h"
#include "core/curlev.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/ip.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct probe;

struct pl_check_run {
	struct event_base *base;
	struct pl_curlev *curl;
	struct event *kick; /* start probes / report the end, from the loop */
	json_t *specs, *results;
	struct probe **probes; /* in flight, by spec index */
	size_t n, next, active, cap, left;
	pl_check_each_cb each;
	pl_check_done_cb done;
	void *arg;
};

struct probe {
	struct pl_check_run *r;
	size_t idx;
	const json_t *spec;
	const char *type;
	long long attempt;
	struct timespec t0;
	struct pl_buf data;
	long code;
	long long not_after;
	char *error;
	CURL *e;
	struct curl_slist *hdrs;
	struct event *tmo; /* deadline of a DNS, ping or banner probe */
	struct event *rd;  /* ping reply / TCP banner readable */
	struct evdns_base *dns;
	struct evdns_request *dreq;
	int fd;
	long long verify_at; /* Unix time the chain is verified at, 0: now */
	bool raw, v6;
	uint16_t qid; /* a DNS query's id */
	int qtype;
	bool answered; /* the DNS answer is in: the deadline event ends the probe */
	uint16_t seq;
};

static void pump(struct pl_check_run *r);
static void probe_begin(struct probe *p);
static void probe_end(struct probe *p);

static double
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
fail(struct probe *p, char *msg)
{
	if (!p->error)
		p->error = msg;
	else
		free(msg);
}

/* ---- libcurl (core/curlev.h drives it on the loop) ---- */

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct probe *p = arg;
	size_t n = size * nmemb, room = PL_CHECK_READ_MAX - p->data.len;

	/* Keep the first bytes only; the rest is read and dropped. */
	pl_buf_add(&p->data, ptr, n < room ? n : room);
	return n;
}

/* "Jan  1 00:00:00 2027 GMT" (OpenSSL's ASN1_TIME_print, as curl's certinfo has it). */
static long long
parse_expiry(const char *s)
{
	struct tm tm = { 0 };

	if (!strptime(s, "%b %d %H:%M:%S %Y", &tm))
		return 0;
	return (long long)timegm(&tm);
}

static void
read_certinfo(struct probe *p)
{
	struct curl_certinfo *ci = NULL;

	if (curl_easy_getinfo(p->e, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci ||
	    ci->num_of_certs < 1)
		return;
	for (struct curl_slist *l = ci->certinfo[0]; l; l = l->next)
		if (pl_str_startswith(l->data, "Expire date:"))
			p->not_after = parse_expiry(l->data + strlen("Expire date:"));
}

static void banner_cb(evutil_socket_t fd, short what, void *arg);
static void deadline_cb(evutil_socket_t fd, short what, void *arg);

/* A connect-only TCP check with a banner: wait for its first bytes. */
static bool
wait_banner(struct probe *p)
{
	curl_socket_t fd = CURL_SOCKET_BAD;
	struct timeval tv = { pl_json_int(p->spec, "timeout", PL_CHECK_TIMEOUT), 0 };

	if (strcmp(p->type, "tcp") != 0 || !pl_json_str(p->spec, "banner") ||
	    curl_easy_getinfo(p->e, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK ||
	    fd == CURL_SOCKET_BAD)
		return false;
	p->rd = event_new(p->r->base, fd, EV_READ | EV_PERSIST, banner_cb, p);
	p->tmo = evtimer_new(p->r->base, deadline_cb, p);
	event_add(p->rd, NULL);
	evtimer_add(p->tmo, &tv);
	return true;
}

static void
curl_done(CURL *e, CURLcode rc, void *arg)
{
	struct probe *p = NULL;

	PL_UNUSED(arg);
	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&p);
	if (rc != CURLE_OK) {
		fail(p, pl_strdup(curl_easy_strerror(rc)));
	} else {
		curl_easy_getinfo(p->e, CURLINFO_RESPONSE_CODE, &p->code);
		read_certinfo(p);
		if (wait_banner(p))
			return;
	}
	probe_end(p);
}

static void
banner_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;
	char buf[4096];
	size_t n = 0;
	CURLcode cc;

	PL_UNUSED(fd);
	PL_UNUSED(what);
	cc = curl_easy_recv(p->e, buf, sizeof(buf), &n);
	if (cc == CURLE_AGAIN)
		return;
	if (cc != CURLE_OK)
		fail(p, pl_strdup(curl_easy_strerror(cc)));
	else if (n > 0)
		pl_buf_add(&p->data, buf,
			   n < PL_CHECK_READ_MAX - p->data.len ? n :
								 PL_CHECK_READ_MAX - p->data.len);
	/* Decide at the first bytes, at the end of the stream, or when full. */
	probe_end(p);
}

/* "PREFIXHOST:PORT" of a spec, an IPv6 address in brackets. */
static char *
host_port(const json_t *spec, const char *prefix, long long dflt_port)
{
	const char *host = pl_json_str_or(spec, "host", "");
	bool v6 = strchr(host, ':') != NULL;

	return pl_asprintf("%s%s%s%s:%lld", prefix, v6 ? "[" : "", host, v6 ? "]" : "",
			   pl_json_int(spec, "port", dflt_port));
}

/* verify_at: verify the chain as of that day (an old BMC's expired
 * certificate), as the proxy does; host name and pin still hold. */
static CURLcode
ssl_ctx_cb(CURL *e, void *sslctx, void *arg)
{
	const struct probe *p = arg;

	PL_UNUSED(e);
	X509_VERIFY_PARAM_set_time(SSL_CTX_get0_param(sslctx), (time_t)p->verify_at);
	return CURLE_OK;
}

/* "YYYY-MM-DD" as noon UTC of that day; 0 when it is not a date. */
static long long
parse_day(const char *s)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%d", &tm);

	if (!end || *end)
		return 0;
	tm.tm_hour = 12;
	return (long long)timegm(&tm);
}

static void
start_curl(struct probe *p)
{
	const json_t *spec = p->spec, *hv;
	const char *method = pl_json_str_or(spec, "method", "GET"), *k;
	long tmo = (long)pl_json_int(spec, "timeout", PL_CHECK_TIMEOUT) * 1000;
	bool web = !strcmp(p->type, "http") || !strcmp(p->type, "https");
	bool verify = pl_json_bool(spec, "verify", true);
	char *url;

	if (web)
		url = pl_strdup(pl_json_str_or(spec, "url", ""));
	else
		url = host_port(spec, strcmp(p->type, "tls") ? "http://" : "https://", 0);
	p->e = curl_easy_init();
	curl_easy_setopt(p->e, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(p->e, CURLOPT_PRIVATE, p);
	curl_easy_setopt(p->e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->e, CURLOPT_TIMEOUT_MS, tmo);
	curl_easy_setopt(p->e, CURLOPT_FRESH_CONNECT, 1L);
	/* Not for connect-only: it would close the socket a banner is read from. */
	curl_easy_setopt(p->e, CURLOPT_FORBID_REUSE, web ? 1L : 0L);
	curl_easy_setopt(p->e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(p->e, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
	curl_easy_setopt(p->e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	curl_easy_setopt(p->e, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(p->e, CURLOPT_PROXY, "");
	if (pl_json_str(spec, "ca_file"))
		curl_easy_setopt(p->e, CURLOPT_CAINFO, pl_json_str(spec, "ca_file"));
	if (verify && pl_json_str(spec, "verify_at")) {
		p->verify_at = parse_day(pl_json_str(spec, "verify_at"));
		curl_easy_setopt(p->e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
		curl_easy_setopt(p->e, CURLOPT_SSL_CTX_DATA, p);
	}
	if (pl_json_str(spec, "pin_sha256")) {
		char *pin = pl_asprintf("sha256//%s", pl_json_str(spec, "pin_sha256"));

		curl_easy_setopt(p->e, CURLOPT_PINNEDPUBLICKEY, pin);
		free(pin);
	}
	if (!web) {
		curl_easy_setopt(p->e, CURLOPT_CONNECT_ONLY, 1L);
	} else {
		if (!strcmp(method, "HEAD"))
			curl_easy_setopt(p->e, CURLOPT_NOBODY, 1L);
		else if (strcmp(method, "GET") != 0)
			curl_easy_setopt(p->e, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(p->e, CURLOPT_FOLLOWLOCATION,
				 pl_json_bool(spec, "follow_redirects", false) ? 1L : 0L);
		curl_easy_setopt(p->e, CURLOPT_MAXREDIRS, 5L);
		curl_easy_setopt(p->e, CURLOPT_WRITEFUNCTION, write_cb);
		curl_easy_setopt(p->e, CURLOPT_WRITEDATA, p);
		curl_easy_setopt(p->e, CURLOPT_USERAGENT, "pvelab-check");
		json_object_foreach((json_t *)json_object_get(spec, "headers"), k, hv) {
			char *h = pl_asprintf("%s: %s", k,
					      json_string_value(hv) ? json_string_value(hv) : "");

			p->hdrs = curl_slist_append(p->hdrs, h);
			free(h);
		}
		curl_easy_setopt(p->e, CURLOPT_HTTPHEADER, p->hdrs);
	}
	pl_curlev_add(p->r->curl, p->e);
}

/* ---- DNS ---- */

static void
dns_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	struct probe *p = arg;
	char a[INET6_ADDRSTRLEN];
	struct timeval now = { 0, 0 };

	PL_UNUSED(ttl);
	p->dreq = NULL;
	if (result == DNS_ERR_SHUTDOWN || result == DNS_ERR_CANCEL)
		return;
	if (result != DNS_ERR_NONE) {
		fail(p, pl_asprintf("DNS: %s", evdns_err_to_string(result)));
	} else {
		for (int i = 0; i < count; i++) {
			const void *ad = type == DNS_IPv4_A ?
						 (const void *)((const char *)addresses + 4 * i) :
						 (const void *)((const char *)addresses + 16 * i);

			if (!inet_ntop(type == DNS_IPv4_A ? AF_INET : AF_INET6, ad, a, sizeof(a)))
				continue;
			if (p->data.len)
				pl_buf_addch(&p->data, '\n');
			pl_buf_addstr(&p->data, a);
		}
		if (count == 0)
			fail(p, pl_strdup("DNS: no answer"));
	}
	/* Not from inside evdns: probe_end frees its base. */
	p->answered = true;
	evtimer_add(p->tmo, &now);
}

/* The answer of a query evdns cannot make (dns.c parses it). */
static void
dnsraw_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;
	uint8_t buf[PL_CHECK_DNS_READ];
	char *err = NULL;
	ssize_t n;

	PL_UNUSED(what);
	while ((n = recv(fd, buf, sizeof(buf), 0)) >= 0) {
		/* another query's late answer, or noise: wait for ours */
		if (n < 2 || (buf[0] << 8 | buf[1]) != p->qid)
			continue;
		if (pl_check_dns_parse(buf, (size_t)n, p->qid, p->qtype, &p->data, &err) != 0)
			fail(p, err);
		probe_end(p);
		return;
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK) {
		fail(p, pl_asprintf("DNS: %s", strerror(errno)));
		probe_end(p);
	}
}

static void
start_dnsraw(struct probe *p, const struct sockaddr *sa, int salen)
{
	uint8_t q[PL_CHECK_DNS_MAX];
	size_t qlen = 0;
	uint16_t id;
	struct timeval tv = { pl_json_int(p->spec, "timeout", PL_CHECK_TIMEOUT), 0 };

	evutil_secure_rng_get_bytes(&id, sizeof(id));
	p->qid = id;
	if (pl_check_dns_query(pl_json_str_or(p->spec, "dns_name", ""), p->qtype, id, q, &qlen) !=
	    0) {
		fail(p, pl_asprintf("DNS: '%s' is not a name to ask for",
				    pl_json_str_or(p->spec, "dns_name", "")));
		probe_end(p);
		return;
	}
	p->fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0 || connect(p->fd, sa, (socklen_t)salen) != 0 || send(p->fd, q, qlen, 0) < 0) {
		fail(p, pl_asprintf("DNS: %s", strerror(errno)));
		probe_end(p);
		return;
	}
	p->rd = event_new(p->r->base, p->fd, EV_READ | EV_PERSIST, dnsraw_cb, p);
	p->tmo = evtimer_new(p->r->base, deadline_cb, p);
	event_add(p->rd, NULL);
	evtimer_add(p->tmo, &tv);
}

static void
start_dns(struct probe *p)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char *server = host_port(p->spec, "", 53);
	char tmo[32];
	struct timeval backstop = { 0, 0 };
	const char *name = pl_json_str_or(p->spec, "dns_name", "");
	const char *type = pl_json_str_or(p->spec, "dns_type", "A");
	bool v6 = !strcmp(type, "AAAA");

	if (evutil_parse_sockaddr_port(server, (struct sockaddr *)&ss, &sslen) != 0) {
		fail(p, pl_asprintf("name server '%s' is not an address", server));
		free(server);
		probe_end(p);
		return;
	}
	free(server);
	if (strcmp(type, "A") != 0 && !v6) {
		if ((p->qtype = pl_check_dns_type(type)) == 0) {
			fail(p, pl_asprintf("DNS: no record type '%s'", type));
			probe_end(p);
			return;
		}
		start_dnsraw(p, (struct sockaddr *)&ss, sslen);
		return;
	}
	p->tmo = evtimer_new(p->r->base, deadline_cb, p);
	p->dns = evdns_base_new(p->r->base, 0);
	snprintf(tmo, sizeof(tmo), "%lld", pl_json_int(p->spec, "timeout", PL_CHECK_TIMEOUT));
	evdns_base_set_option(p->dns, "timeout:", tmo);
	evdns_base_set_option(p->dns, "attempts:", "1");
	evdns_base_nameserver_sockaddr_add(p->dns, (struct sockaddr *)&ss, (ev_socklen_t)sslen, 0);
	p->dreq = v6 ? evdns_base_resolve_ipv6(p->dns, name, DNS_QUERY_NO_SEARCH, dns_cb, p) :
		       evdns_base_resolve_ipv4(p->dns, name, DNS_QUERY_NO_SEARCH, dns_cb, p);
	if (!p->dreq) {
		fail(p, pl_strdup("DNS: cannot send the query"));
		probe_end(p);
		return;
	}
	/* evdns has its own timeout; this one is the backstop. */
	backstop.tv_sec = pl_json_int(p->spec, "timeout", PL_CHECK_TIMEOUT) + 1;
	evtimer_add(p->tmo, &backstop);
}

/* ---- ping ---- */

static uint16_t
icmp_sum(const void *data, size_t n)
{
	const uint8_t *b = data;
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		s += (uint32_t)(b[n - 1] << 8);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((uint16_t)~s);
}

static void
ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;
	uint8_t buf[1500];
	ssize_t n;

	PL_UNUSED(what);
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
		const uint8_t *b = buf;
		struct icmphdr h;

		/* a raw IPv4 socket hands the IP header over too; IPv6 never does */
		if (p->raw && !p->v6) {
			size_t ihl = (size_t)(buf[0] & 0x0f) * 4;

			if ((size_t)n < ihl + sizeof(h))
				continue;
			b += ihl;
			n -= (ssize_t)ihl;
		}
		if ((size_t)n < sizeof(h))
			continue;
		/* ICMPv6's echo header has ICMPv4's layout, other type numbers */
		memcpy(&h, b, sizeof(h));
		if (h.type == (p->v6 ? ICMP6_ECHO_REPLY : ICMP_ECHOREPLY) &&
		    ntohs(h.un.echo.sequence) == p->seq &&
		    (!p->raw || ntohs(h.un.echo.id) == (uint16_t)(getpid() & 0xffff))) {
			probe_end(p);
			return;
		}
	}
}

static void
start_ping(struct probe *p)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sa6 = (struct sockaddr_in6 *)&ss;
	const char *host = pl_json_str_or(p->spec, "host", "");
	struct icmphdr h = { 0 };
	uint8_t pkt[sizeof(h) + 16] = { 0 };
	struct timeval tv = { pl_json_int(p->spec, "timeout", PL_CHECK_TIMEOUT), 0 };
	int fam, proto;
	static uint16_t seq;

	if (inet_pton(AF_INET, host, &sa->sin_addr) == 1) {
		fam = sa->sin_family = AF_INET;
		proto = IPPROTO_ICMP;
	} else if (inet_pton(AF_INET6, host, &sa6->sin6_addr) == 1) {
		fam = sa6->sin6_family = AF_INET6;
		proto = IPPROTO_ICMPV6;
		p->v6 = true;
	} else {
		fail(p, pl_asprintf("'%s' is not an IPv4 or IPv6 address", host));
		probe_end(p);
		return;
	}
	p->fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	if (p->fd < 0 && (errno == EACCES || errno == EPERM)) {
		p->fd = socket(fam, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
		p->raw = true;
	}
	if (p->fd < 0) {
		fail(p, pl_asprintf("cannot open an ICMP socket: %s (allow it with sysctl "
				    "net.ipv4.ping_group_range, or run as root)",
				    strerror(errno)));
		probe_end(p);
		return;
	}
	p->seq = ++seq;
	h.type = p->v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
	h.un.echo.id = htons((uint16_t)(getpid() & 0xffff));
	h.un.echo.sequence = htons(p->seq);
	memcpy(pkt, &h, sizeof(h));
	memcpy(pkt + sizeof(h), "pvelab-check-ping", 16);
	/* the kernel sums ICMPv6 itself (it covers a pseudo-header) */
	if (!p->v6)
		h.checksum = icmp_sum(pkt, sizeof(pkt));
	memcpy(pkt, &h, sizeof(h));
	p->rd = event_new(p->r->base, p->fd, EV_READ | EV_PERSIST, ping_cb, p);
	p->tmo = evtimer_new(p->r->base, deadline_cb, p);
	event_add(p->rd, NULL);
	evtimer_add(p->tmo, &tv);
	if (sendto(p->fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&ss,
		   p->v6 ? sizeof(*sa6) : sizeof(*sa)) < 0) {
		fail(p, pl_asprintf("ping: %s", strerror(errno)));
		probe_end(p);
	}
}

/* ---- a probe's life ---- */

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;

	PL_UNUSED(fd);
	PL_UNUSED(what);
	if (!p->answered)
		fail(p, pl_asprintf("no answer within %llds",
				    pl_json_int(p->spec, "timeout", PL_CHECK_TIMEOUT)));
	probe_end(p);
}

/* Release what one attempt holds, keeping the probe. */
static void
attempt_release(struct probe *p)
{
	if (p->e) {
		pl_curlev_remove(p->r->curl, p->e);
		curl_easy_cleanup(p->e);
		p->e = NULL;
	}
	curl_slist_free_all(p->hdrs);
	p->hdrs = NULL;
	if (p->tmo)
		event_free(p->tmo);
	if (p->rd)
		event_free(p->rd);
	p->tmo = p->rd = NULL;
	if (p->dns) {
		struct evdns_base *d = p->dns;

		p->dns = NULL;
		evdns_base_free(d, 1);
	}
	p->dreq = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

static void
probe_free(struct probe *p)
{
	attempt_release(p);
	pl_buf_release(&p->data);
	free(p->error);
	free(p);
}

static void
probe_begin(struct probe *p)
{
	pl_buf_reset(&p->data);
	free(p->error);
	p->error = NULL;
	p->code = 0;
	p->not_after = 0;
	p->answered = p->raw = p->v6 = false;
	p->fd = -1;
	p->attempt++;
	clock_gettime(CLOCK_MONOTONIC, &p->t0);
	if (!strcmp(p->type, "dns"))
		start_dns(p);
	else if (!strcmp(p->type, "ping"))
		start_ping(p);
	else
		start_curl(p);
}

static void
report(struct pl_check_run *r, size_t idx, json_t *result)
{
	json_array_set_new(r->results, idx, result);
	r->left--;
	if (r->each)
		r->each(result, r->arg);
	if (r->left == 0)
		event_active(r->kick, EV_TIMEOUT, 0);
}

static json_t *
result_new(const json_t *spec)
{
	json_t *res = json_pack("{s:O?,s:O?}", "name", json_object_get(spec, "name"), "type",
				json_object_get(spec, "type"));
	const char *host = pl_json_str(spec, "host");

	if (json_object_get(spec, "guest"))
		json_object_set(res, "guest", json_object_get(spec, "guest"));
	if (pl_json_str(spec, "url"))
		json_object_set(res, "target", json_object_get(spec, "url"));
	else if (host && pl_json_int(spec, "port", 0) &&
		 strcmp(pl_json_str_or(spec, "type", ""), "ping"))
		json_object_set_new(res, "target",
				    json_sprintf("%s:%lld", host, pl_json_int(spec, "port", 0)));
	else if (host)
		json_object_set_new(res, "target", json_string(host));
	return res;
}

static void
probe_end(struct probe *p)
{
	struct pl_check_run *r = p->r;
	struct pl_check_obs o = { 0 };
	json_t *res;
	size_t idx;

	o.latency_ms = ms_since(&p->t0);
	o.error = p->error;
	o.code = p->code;
	o.data = p->data.data;
	o.len = p->data.len;
	o.not_after = p->not_after;
	o.now = (long long)time(NULL);
	res = result_new(p->spec);
	pl_check_classify(p->spec, &o, res);
	attempt_release(p);
	if (!strcmp(pl_json_str_or(res, "status", ""), PL_CHECK_DOWN) &&
	    p->attempt <= pl_json_int(p->spec, "retries", 0)) {
		json_decref(res);
		probe_begin(p);
		return;
	}
	json_object_set_new(res, "attempts", json_integer(p->attempt));
	idx = p->idx;
	r->probes[idx] = NULL;
	probe_free(p);
	r->active--;
	report(r, idx, res);
	pump(r);
}

static void
pump(struct pl_check_run *r)
{
	while (r->active < r->cap && r->next < r->n) {
		size_t idx = r->next++;
		const json_t *spec = json_array_get(r->specs, idx);
		struct probe *p;

		if (pl_json_str(spec, "skip") || pl_json_str(spec, "caused_by")) {
			json_t *res = result_new(spec);
			bool skip = pl_json_str(spec, "skip") != NULL;

			json_object_set_new(res, "status",
					    json_string(skip ? PL_CHECK_SKIPPED : PL_CHECK_DOWN));
			json_object_set(res, "error",
					json_object_get(spec, skip ? "skip" : "cause"));
			if (!skip)
				json_object_set(res, "caused_by",
						json_object_get(spec, "caused_by"));
			report(r, idx, res);
			continue;
		}
		p = pl_calloc(1, sizeof(*p));
		p->r = r;
		p->idx = idx;
		p->spec = spec;
		p->type = pl_json_str_or(spec, "type", "tcp");
		pl_buf_init(&p->data, PL_CHECK_READ_MAX);
		r->probes[idx] = p;
		r->active++;
		probe_begin(p);
	}
}

static void
run_free(struct pl_check_run *r)
{
	for (size_t i = 0; i < r->n; i++) {
		struct probe *p = r->probes[i];

		if (p)
			probe_free(p);
	}
	pl_curlev_free(r->curl);
	event_free(r->kick);
	json_decref(r->specs);
	json_decref(r->results);
	free(r->probes);
	free(r);
}

/* From the loop: start the first probes; at the end, report and free. */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pl_check_run *r = arg;

	PL_UNUSED(fd);
	PL_UNUSED(what);
	if (r->left > 0) {
		pump(r);
		return;
	}
	r->done(r->results, r->arg);
	run_free(r);
}

struct pl_check_run *
pl_check_start(struct event_base *base, const json_t *specs, size_t concurrency,
	       pl_check_each_cb each, pl_check_done_cb done, void *arg)
{
	struct pl_check_run *r = pl_calloc(1, sizeof(*r));

	r->base = base;
	r->specs = json_deep_copy(specs);
	r->n = r->left = json_array_size(specs);
	r->results = json_array();
	for (size_t i = 0; i < r->n; i++)
		json_array_append_new(r->results, json_null());
	r->probes = pl_calloc(r->n + 1, sizeof(*r->probes));
	r->cap = concurrency ? concurrency : PL_CHECK_CONCURRENCY;
	r->each = each;
	r->done = done;
	r->arg = arg;
	r->curl = pl_curlev_new(base, curl_done, r);
	r->kick = event_new(base, -1, 0, kick_cb, r);
	event_active(r->kick, EV_TIMEOUT, 0);
	return r;
}

void
pl_check_cancel(struct pl_check_run *r)
{
	if (r)
		run_free(r);
}
