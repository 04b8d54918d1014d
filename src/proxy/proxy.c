/*
 * The proxy's event loop: listeners, per-connection TLS on both sides with
 * libevent's OpenSSL bufferevents, routing by SNI/Host, a byte-exact relay with
 * backpressure and half-close, error pages, SIGHUP reload, graceful shutdown.
 */
#include "core/common.h"
#include "proxy/internal.h"
#include "proxy/proxy.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RELAY_HIGH (512 * 1024)    /* stop reading a side when the other owes this much */
#define RELAY_CHUNK (128 * 1024)   /* per read/write callback (libevent's default: 16 KiB) */
#define ROUTE_PEEK_MAX (16 * 1024) /* request head we read to find the Host header */
#define RESP_HEAD_MAX (64 * 1024)  /* response head we hold to rewrite Location */
#define HANDSHAKE_TIMEOUT 30
#define ERRPAGE_WAIT 10

/* The active configuration plus what it needs at run time; connections keep
 * a reference so a reload never pulls a target from under them. */
struct runtime {
	int refs;
	struct pl_proxy_config *cfg;
	SSL_CTX **up_ctx; /* per target */
};

struct listener {
	struct pl_proxy *p;
	char *addr;
	struct evconnlistener *lev;
	size_t *targets; /* indices into p->rt->cfg->targets */
	size_t ntargets;
	struct listener *next;
};

enum relay_state { RS_HEAD, RS_BODY, RS_RAW };

struct conn {
	struct pl_proxy *p;
	struct runtime *rt;
	size_t *cand; /* candidate targets (indices) from the listener */
	size_t ncand;
	long target; /* chosen index, or -1 */
	struct bufferevent *down, *up;
	struct pl_proxy_upctx upx;
	char client[64];
	char local_ip[64];
	int local_port;
	char sni[256];
	char host[256];
	bool down_ready, up_ready;
	bool down_eof, up_eof;
	bool down_wclosed, up_wclosed;
	bool failed;  /* upstream refused: waiting to serve the error page */
	bool closing; /* finish once the downstream output is flushed */
	int fail_status;
	char fail_reason[512];
	uint64_t bytes_up, bytes_down;
	struct timeval start;
	enum relay_state rs;
	long long body_left;
	struct conn *prev, *next;
};

struct pl_proxy {
	struct event_base *base;
	struct evdns_base *dns;
	struct pl_proxy_ca *ca;
	SSL_CTX *down_ctx;
	struct runtime *rt;
	struct listener *listeners;
	struct conn *conns;
	struct event *ev_int, *ev_term, *ev_hup, *ev_usr1, *ev_grace;
	bool stopping;
	struct pl_proxy_stats st;
};

static int conn_idx = -1;

const struct pl_proxy_stats *
pl_proxy_get_stats(const struct pl_proxy *p)
{
	return p ? &p->st : NULL;
}

/* ---- runtime ---- */

static void
rt_unref(struct runtime *rt)
{
	if (rt == NULL || --rt->refs > 0)
		return;
	for (size_t i = 0; i < rt->cfg->ntargets; i++)
		SSL_CTX_free(rt->up_ctx[i]);
	free(rt->up_ctx);
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
			rt_unref(rt);
			*out = NULL;
			return PL_ETLS;
		}
		SSL_CTX_set_mode(rt->up_ctx[i], SSL_MODE_RELEASE_BUFFERS);
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

/* ---- connections ---- */

static void conn_finish(struct conn *c, const char *why);

/* Relayed TLS records must not wait for Nagle and delayed ACKs. */
static void
nodelay(evutil_socket_t fd)
{
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
static void relay(struct conn *c, struct bufferevent *src);

static struct bufferevent *
other(struct conn *c, struct bufferevent *bev)
{
	return bev == c->down ? c->up : c->down;
}

static const struct pl_proxy_target *
conn_target(const struct conn *c)
{
	return c->target >= 0 ? c->rt->cfg->targets[c->target] : NULL;
}

static void
addr_str(const struct sockaddr *sa, char *out, size_t n, int *port)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int pt = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		pt = ntohs(s->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		pt = ntohs(s->sin6_port);
	}
	if (port) {
		snprintf(out, n, "%s", ip);
		*port = pt;
	} else {
		snprintf(out, n, sa->sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, pt);
	}
}

static bool
name_matches(const struct pl_proxy_target *t, const char *name)
{
	if (!strcasecmp(t->name, name))
		return true;
	for (size_t i = 0; t->hostnames[i]; i++)
		if (!strcasecmp(t->hostnames[i], name))
			return true;
	return false;
}

/* Pick a target for name among the candidates; the only one if there is one. */
static long
route(struct conn *c, const char *name)
{
	if (c->ncand == 1)
		return (long)c->cand[0];
	for (size_t i = 0; name && *name && i < c->ncand; i++)
		if (name_matches(c->rt->cfg->targets[c->cand[i]], name))
			return (long)c->cand[i];
	return -1;
}

static void
html_escape(struct pl_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			pl_buf_addstr(b, "&lt;");
			break;
		case '>':
			pl_buf_addstr(b, "&gt;");
			break;
		case '&':
			pl_buf_addstr(b, "&amp;");
			break;
		case '"':
			pl_buf_addstr(b, "&quot;");
			break;
		default:
			pl_buf_addch(b, *s);
			break;
		}
	}
}

static void
row(struct pl_buf *b, const char *k, const char *v)
{
	pl_buf_addf(b, "<tr><th>%s</th><td>", k);
	html_escape(b, v);
	pl_buf_addstr(b, "</td></tr>\n");
}

/* The small page a browser sees when the upstream was refused. */
static void
send_error_page(struct conn *c)
{
	const struct pl_proxy_target *t = conn_target(c);
	const struct pl_proxy_verify *v = &c->upx.v;
	struct pl_buf body;
	struct evbuffer *out = bufferevent_get_output(c->down);
	const char *title = c->fail_status == 404 ? "Not Found" : "Bad Gateway";

	pl_buf_init(&body, 0);
	pl_buf_addf(&body,
	            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>pvelab proxy: "
	            "%s</title></head>\n<body><h1>pvelab proxy refused the upstream</h1>\n<p>",
	            title);
	html_escape(&body, c->fail_reason);
	pl_buf_addstr(&body, "</p>\n<table>\n");
	if (t) {
		char up[300];

		snprintf(up, sizeof(up), "https://%s:%d", t->host, t->port);
		row(&body, "target", t->name);
		row(&body, "upstream", up);
	}
	if (v->have_cert) {
		row(&body, "certificate subject", v->subject);
		row(&body, "issuer", v->issuer);
		row(&body, "valid from", v->not_before);
		row(&body, "valid until", v->not_after);
		if (v->pin_mismatch)
			row(&body, "expected fingerprint", t->pin);
		row(&body, v->pin_mismatch ? "actual fingerprint" : "fingerprint", v->fingerprint);
		row(&body, "verification", v->result);
	}
	pl_buf_addstr(&body, "</table>\n<p>");
	if (v->pin_mismatch)
		pl_buf_addf(&body,
		            "The controller now presents a different certificate. If you "
		            "replaced it yourself, record the new one with "
		            "<code>pvelab proxy trust %s</code>.",
		            t->name);
	else if (v->have_cert)
		pl_buf_addstr(&body,
		              "If the certificate merely expired, set <code>verify_at</code> "
		              "to a date inside its validity window, or pin it with "
		              "<code>pvelab proxy trust</code>.");
	pl_buf_addstr(&body, "</p>\n</body></html>\n");
	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
	                    "Content-Length: %zu\r\nCache-Control: no-store\r\n"
	                    "Connection: close\r\n\r\n",
	                    c->fail_status, title, body.len);
	evbuffer_add(out, body.data, body.len);
	pl_buf_release(&body);
	c->p->st.error_pages++;
	c->closing = true;
	bufferevent_disable(c->down, EV_READ);
}

/* The downstream sent data while we are refusing: answer HTTP, else close. */
static void
failed_input(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->down);
	size_t n = evbuffer_get_length(in), m = n < 16 ? n : 16;
	const char *p;

	if (c->closing || n == 0)
		return;
	p = (const char *)evbuffer_pullup(in, (ssize_t)m);
	if (pl_proxy_http_is_request(p, m)) {
		evbuffer_drain(in, n);
		send_error_page(c);
	} else if (m == 16 || !(p[0] >= 'A' && p[0] <= 'Z')) {
		conn_finish(c, c->fail_reason);
	}
}

static void conn_fail(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
conn_fail(struct conn *c, int status, const char *fmt, ...)
{
	va_list ap;
	struct timeval tv = {ERRPAGE_WAIT, 0};

	va_start(ap, fmt);
	vsnprintf(c->fail_reason, sizeof(c->fail_reason), fmt, ap);
	va_end(ap);
	c->failed = true;
	c->fail_status = status;
	if (c->up) {
		bufferevent_free(c->up);
		c->up = NULL;
	}
	if (c->down_eof) {
		conn_finish(c, c->fail_reason);
		return;
	}
	bufferevent_set_timeouts(c->down, &tv, &tv);
	failed_input(c);
}

static void
conn_finish(struct conn *c, const char *why)
{
	struct pl_proxy *p = c->p;
	const struct pl_proxy_target *t = conn_target(c);
	struct timeval now, d;

	gettimeofday(&now, NULL);
	timersub(&now, &c->start, &d);
	if (c->down_ready)
		pl_log(
		    c->failed ? PL_LOG_WARN : PL_LOG_INFO,
		    "proxy: client=%s target=%s sni=%s cert=\"%s\" not_after=\"%s\" verify=\"%s\" "
		    "up=%llu down=%llu duration=%ld.%03lds%s%s",
		    c->client, t ? t->name : "-", c->sni[0] ? c->sni : "-",
		    c->upx.v.have_cert ? c->upx.v.subject : "-",
		    c->upx.v.have_cert ? c->upx.v.not_after : "-",
		    c->upx.v.result[0] ? c->upx.v.result : "-", (unsigned long long)c->bytes_up,
		    (unsigned long long)c->bytes_down, (long)d.tv_sec, (long)(d.tv_usec / 1000),
		    why ? " end=" : "", why ? why : "");
	if (c->down_ready && !c->failed)
		p->st.completed++;
	p->st.bytes_up += c->bytes_up;
	p->st.bytes_down += c->bytes_down;
	p->st.active--;
	if (c->up)
		bufferevent_free(c->up);
	if (c->down)
		bufferevent_free(c->down);
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	rt_unref(c->rt);
	free(c->cand);
	free(c);
	if (p->stopping && p->conns == NULL)
		event_base_loopexit(p->base, NULL);
}

/* TLS close_notify plus a TCP half-close: the peer reads EOF, can still send. */
static void
half_close(struct conn *c, struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (bev == c->down)
		c->down_wclosed = true;
	else
		c->up_wclosed = true;
	if (ssl)
		SSL_shutdown(ssl);
	shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void
check_done(struct conn *c)
{
	if (c->down_eof && c->up_eof && evbuffer_get_length(bufferevent_get_output(c->down)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->up)) == 0)
		conn_finish(c, NULL);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct bufferevent *src = other(c, bev);
	bool src_eof = bev == c->down ? c->up_eof : c->down_eof;
	bool *wclosed = bev == c->down ? &c->down_wclosed : &c->up_wclosed;

	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_finish(c, c->failed ? c->fail_reason : NULL);
		return;
	}
	/* the output drained below the low-water mark: resume the source */
	if (src && !src_eof && !(bufferevent_get_enabled(src) & EV_READ)) {
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		bufferevent_enable(src, EV_READ);
		relay(c, src);
	}
	if (src_eof && !*wclosed && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		half_close(c, bev);
		check_done(c);
	}
}

/* Origins in upstream Location headers that we map back to the proxy. */
static void
rewrite_origins(struct conn *c, const struct pl_proxy_target *t, char from[4][300], char *to,
                size_t tosz)
{
	bool v6 = strchr(t->host, ':') != NULL;
	const char *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
	const char *name = c->host[0] ? c->host : c->sni[0] ? c->sni : c->rt->cfg->name;
	bool lv6;

	snprintf(from[0], 300, "https://%s%s%s:%d", lb, t->host, rb, t->port);
	snprintf(from[1], 300, "https://%s%s%s", lb, t->host, rb);
	snprintf(from[2], 300, "http://%s%s%s", lb, t->host, rb);
	if (t->port != 443)
		from[1][0] = '\0'; /* "https://host" means port 443, not ours */
	from[3][0] = '\0';
	if (name == NULL)
		name = c->local_ip;
	lv6 = strchr(name, ':') != NULL;
	if (c->local_port == 443)
		snprintf(to, tosz, "https://%s%s%s", lv6 ? "[" : "", name, lv6 ? "]" : "");
	else
		snprintf(to, tosz, "https://%s%s%s:%d", lv6 ? "[" : "", name, lv6 ? "]" : "",
		         c->local_port);
}

/* Upstream -> downstream with Location rewriting: hold each response head,
 * rewrite it, then pass the body through by Content-Length. Anything we cannot
 * frame (chunked, upgrades, read-until-close, not HTTP) switches to a plain
 * byte relay for the rest of the connection. */
static void
relay_rewrite(struct conn *c, struct evbuffer *in, struct evbuffer *out)
{
	const struct pl_proxy_target *t = conn_target(c);

	while (evbuffer_get_length(in) > 0) {
		size_t len = evbuffer_get_length(in);
		struct evbuffer_ptr e;
		struct pl_proxy_resp info;
		struct pl_buf b;
		char from[4][300], to[300];
		const char *fromv[5];
		const char *head;
		size_t hl, nf = 0;

		if (c->rs == RS_RAW) {
			c->bytes_down += len;
			evbuffer_add_buffer(out, in);
			return;
		}
		if (c->rs == RS_BODY) {
			size_t n = (long long)len < c->body_left ? len : (size_t)c->body_left;

			evbuffer_remove_buffer(in, out, n);
			c->bytes_down += n;
			if ((c->body_left -= (long long)n) == 0)
				c->rs = RS_HEAD;
			continue;
		}
		head = (const char *)evbuffer_pullup(in, len < 5 ? (ssize_t)len : 5);
		if (memcmp(head, "HTTP/", len < 5 ? len : 5) != 0) {
			c->rs = RS_RAW;
			continue;
		}
		e = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (e.pos < 0) {
			if (len >= RESP_HEAD_MAX || c->up_eof)
				c->rs = RS_RAW;
			else
				return; /* wait for the rest of the head */
			continue;
		}
		hl = (size_t)e.pos + 4;
		head = (const char *)evbuffer_pullup(in, (ssize_t)hl);
		rewrite_origins(c, t, from, to, sizeof(to));
		for (size_t i = 0; i < 4; i++)
			if (from[i][0])
				fromv[nf++] = from[i];
		fromv[nf] = NULL;
		pl_buf_init(&b, RESP_HEAD_MAX * 2);
		if (pl_proxy_http_rewrite(head, hl, fromv, to, &b, &info) != 0) {
			pl_buf_release(&b);
			c->rs = RS_RAW;
			continue;
		}
		evbuffer_add(out, b.data, b.len);
		pl_buf_release(&b);
		evbuffer_drain(in, hl);
		c->bytes_down += hl;
		if (info.status == 101 || info.chunked)
			c->rs = RS_RAW;
		else if ((info.status >= 100 && info.status < 200) || info.status == 204 ||
		         info.status == 304)
			c->rs = RS_HEAD;
		else if (info.content_length > 0) {
			c->rs = RS_BODY;
			c->body_left = info.content_length;
		} else if (info.content_length == 0)
			c->rs = RS_HEAD;
		else
			c->rs = RS_RAW;
	}
}

/* Move what src has read to the other side, pausing src when the other side
 * is backed up (the write callback resumes it). */
static void
relay(struct conn *c, struct bufferevent *src)
{
	struct bufferevent *dst = other(c, src);
	struct evbuffer *in = bufferevent_get_input(src), *out;
	size_t n = evbuffer_get_length(in);

	if (dst == NULL || n == 0 || (src == c->down && !c->up_ready))
		return;
	out = bufferevent_get_output(dst);
	if (src == c->up && conn_target(c)->rewrite_location && c->rs != RS_RAW) {
		relay_rewrite(c, in, out);
	} else {
		if (src == c->down)
			c->bytes_up += n;
		else
			c->bytes_down += n;
		evbuffer_add_buffer(out, in);
	}
	if (evbuffer_get_length(out) >= RELAY_HIGH) {
		bufferevent_disable(src, EV_READ);
		bufferevent_setwatermark(dst, EV_WRITE, RELAY_HIGH / 2, 0);
	}
}

static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);

static void
start_upstream(struct conn *c)
{
	const struct pl_proxy_target *t = conn_target(c);
	struct timeval tv = {HANDSHAKE_TIMEOUT, 0};
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char hp[300];
	SSL *ssl;
	int r;

	c->upx.target = t;
	bufferevent_set_timeouts(c->down, NULL, NULL);
	if ((ssl = pl_proxy_upstream_ssl(c->rt->up_ctx[c->target], &c->upx)) == NULL) {
		conn_fail(c, 502, "cannot create a TLS session for '%s'", t->name);
		return;
	}
	c->up = bufferevent_openssl_socket_new(c->p->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                       BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->up == NULL) {
		SSL_free(ssl);
		conn_fail(c, 502, "cannot create a connection to '%s'", t->name);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->up, 1);
	bufferevent_set_max_single_read(c->up, RELAY_CHUNK);
	bufferevent_set_max_single_write(c->up, RELAY_CHUNK);
	bufferevent_setcb(c->up, up_read_cb, write_cb, up_event_cb, c);
	bufferevent_set_timeouts(c->up, &tv, &tv);
	bufferevent_enable(c->up, EV_READ | EV_WRITE);
	snprintf(hp, sizeof(hp), strchr(t->host, ':') ? "[%s]:%d" : "%s:%d", t->host, t->port);
	if (evutil_parse_sockaddr_port(hp, (struct sockaddr *)&ss, &sslen) == 0)
		r = bufferevent_socket_connect(c->up, (struct sockaddr *)&ss, sslen);
	else
		r = bufferevent_socket_connect_hostname(c->up, c->p->dns, AF_UNSPEC, t->host,
		                                        t->port);
	if (r != 0)
		conn_fail(c, 502, "cannot connect to %s: %s", hp,
		          evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void
up_read_cb(struct bufferevent *bev, void *arg)
{
	relay(arg, bev);
}

static void
on_eof(struct conn *c, struct bufferevent *bev)
{
	struct bufferevent *dst = other(c, bev);

	if (bev == c->down)
		c->down_eof = true;
	else
		c->up_eof = true;
	bufferevent_disable(bev, EV_READ);
	if (bev == c->down && c->up && !c->up_ready)
		return; /* the upstream's CONNECTED event flushes and half-closes */
	if (dst == NULL || (bev == c->down && !c->up_ready)) {
		conn_finish(c, bev == c->down ? "client closed" : "upstream closed");
		return;
	}
	if (bev == c->up)
		c->rs = RS_RAW; /* flush whatever is left as is */
	relay(c, bev);
	if (evbuffer_get_length(bufferevent_get_output(dst)) == 0 &&
	    !(bev == c->down ? c->up_wclosed : c->down_wclosed))
		half_close(c, dst);
	check_done(c);
}

static const char *
ssl_error_text(struct bufferevent *bev, char *buf, size_t n)
{
	unsigned long e, last = 0;

	/* libevent hands them back newest first, with SSL_get_error codes mixed in */
	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (last == 0 && ERR_GET_LIB(e) != 0)
			last = e;
	while ((e = ERR_get_error()) != 0)
		if (last == 0)
			last = e;
	if (last == 0)
		return NULL;
	ERR_error_string_n(last, buf, n);
	return buf;
}

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	const struct pl_proxy_target *t = conn_target(c);

	if (what & BEV_EVENT_CONNECTED) {
		c->up_ready = true;
		nodelay(bufferevent_getfd(bev));
		bufferevent_set_timeouts(bev, NULL, NULL);
		if (t->insecure)
			pl_log_warn("proxy: target '%s': relaying WITHOUT verifying the upstream "
			            "certificate (insecure: true)",
			            t->name);
		if (!c->down_eof)
			bufferevent_enable(c->down, EV_READ);
		relay(c, c->down);
		if (c->down_eof)
			on_eof(c, c->down);
		return;
	}
	if (!c->up_ready) {
		char buf[256];
		const char *se = ssl_error_text(bev, buf, sizeof(buf));
		int dnserr = bufferevent_socket_get_dns_error(bev);

		if (c->upx.v.have_cert && !c->upx.v.ok) {
			c->p->st.verify_failed++;
			if (c->upx.v.pin_mismatch) {
				c->p->st.pin_mismatch++;
				conn_fail(
				    c, 502,
				    "The certificate of '%s' changed: expected fingerprint %s, "
				    "got %s.",
				    t->name, t->pin, c->upx.v.fingerprint);
			} else {
				conn_fail(c, 502,
				          "The certificate of '%s' failed verification: %s. It is "
				          "valid from %s until %s.",
				          t->name, c->upx.v.result, c->upx.v.not_before,
				          c->upx.v.not_after);
			}
			return;
		}
		c->p->st.connect_failed++;
		if (what & BEV_EVENT_TIMEOUT)
			conn_fail(c, 504, "Timed out connecting to '%s' (%s:%d).", t->name, t->host,
			          t->port);
		else if (dnserr)
			conn_fail(c, 502, "Cannot resolve '%s': %s.", t->host,
			          evutil_gai_strerror(dnserr));
		else if (se && (strstr(se, "protocol") || strstr(se, "cipher") ||
		                strstr(se, "handshake failure")))
			conn_fail(c, 502,
			          "TLS handshake with '%s' (%s:%d) failed: %s. Old controllers "
			          "need min_tls: \"1.0\" (--min-tls 1.0) and legacy ciphers.",
			          t->name, t->host, t->port, se);
		else
			conn_fail(c, 502, "Cannot reach '%s' (%s:%d): %s.", t->name, t->host,
			          t->port,
			          se ? se : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return;
	}
	if (what & BEV_EVENT_EOF) {
		on_eof(c, bev);
		return;
	}
	conn_finish(c, "upstream error");
}

static void
down_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->failed) {
		failed_input(c);
		return;
	}
	if (c->target < 0) {
		size_t n = evbuffer_get_length(in);
		size_t m = n < ROUTE_PEEK_MAX ? n : ROUTE_PEEK_MAX;
		const char *p = (const char *)evbuffer_pullup(in, (ssize_t)m);
		size_t end = pl_proxy_http_head_end(p, m);

		if (end == 0) {
			if (m == ROUTE_PEEK_MAX || (m >= 16 && !pl_proxy_http_is_request(p, m)))
				conn_finish(c, "no SNI and no Host header to route by");
			return;
		}
		if (pl_proxy_http_host(p, end, c->host, sizeof(c->host)) != 0 ||
		    (c->target = route(c, c->host)) < 0) {
			c->p->st.unrouted++;
			conn_fail(c, 404, "No target is configured for host '%s'.",
			          c->host[0] ? c->host : "(none)");
			return;
		}
		start_upstream(c);
		return;
	}
	/* Backpressure by disabling reads, never by a read watermark: libevent 2.1
	 * suspends a watermarked OpenSSL bufferevent with part of a record left
	 * inside OpenSSL, and nothing wakes it for that remainder. */
	if (!c->up_ready && evbuffer_get_length(in) >= RELAY_HIGH)
		bufferevent_disable(bev, EV_READ);
	relay(c, bev);
}

static void
down_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		c->down_ready = true;
		if (c->target < 0)
			c->target = route(c, c->sni);
		if (c->target >= 0)
			start_upstream(c);
		else
			pl_log_debug("proxy: %s: SNI '%s' matches no target; waiting for Host",
			             c->client, c->sni);
		return;
	}
	if (!c->down_ready) {
		c->p->st.tls_failed++;
		pl_log_debug("proxy: %s: client TLS handshake failed", c->client);
		conn_finish(c, NULL);
		return;
	}
	if (c->failed && (what & BEV_EVENT_TIMEOUT)) {
		conn_finish(c, c->fail_reason);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		if (c->failed || c->closing)
			conn_finish(c, c->fail_reason[0] ? c->fail_reason : "client closed");
		else
			on_eof(c, bev);
		return;
	}
	conn_finish(c, c->failed ? c->fail_reason : "client error");
}

/* Choose the downstream certificate: the SNI name, else the configured name
 * (with the local address as a second name), else the local address. */
static int
client_hello_cb(SSL *ssl, int *al, void *arg)
{
	struct conn *c = SSL_get_ex_data(ssl, conn_idx);
	const unsigned char *ext;
	size_t len;
	char *err = NULL;
	const char *name, *extra = NULL;

	if (c == NULL)
		return SSL_CLIENT_HELLO_ERROR;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) == 1)
		pl_proxy_sni_parse(ext, len, c->sni, sizeof(c->sni));
	if (c->sni[0]) {
		name = c->sni;
	} else if (c->rt->cfg->name) {
		name = c->rt->cfg->name;
		extra = c->local_ip;
	} else {
		name = c->local_ip;
	}
	if (pl_proxy_ca_use_leaf(c->p->ca, ssl, name, extra, &err) != 0) {
		pl_log_error("proxy: %s", err);
		free(err);
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	struct pl_proxy *p = l->p;
	struct conn *c;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct timeval tv = {HANDSHAKE_TIMEOUT, 0};
	SSL *ssl;

	if (p->stopping || (ssl = SSL_new(p->down_ctx)) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c = pl_calloc(1, sizeof(*c));
	c->p = p;
	c->rt = p->rt;
	c->rt->refs++;
	c->target = -1;
	c->ncand = l->ntargets;
	c->cand = pl_calloc(l->ntargets ? l->ntargets : 1, sizeof(size_t));
	memcpy(c->cand, l->targets, l->ntargets * sizeof(size_t));
	gettimeofday(&c->start, NULL);
	addr_str(sa, c->client, sizeof(c->client), NULL);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_str((struct sockaddr *)&ss, c->local_ip, sizeof(c->local_ip), &c->local_port);
	SSL_set_ex_data(ssl, conn_idx, c);
	nodelay(fd);
	c->down = bufferevent_openssl_socket_new(p->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	p->st.accepted++;
	p->st.active++;
	if (c->down == NULL) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		conn_finish(c, NULL);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->down, 1);
	bufferevent_set_max_single_read(c->down, RELAY_CHUNK);
	bufferevent_set_max_single_write(c->down, RELAY_CHUNK);
	bufferevent_setcb(c->down, down_read_cb, write_cb, down_event_cb, c);
	bufferevent_set_timeouts(c->down, &tv, &tv);
	bufferevent_enable(c->down, EV_READ | EV_WRITE);
}

static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	pl_log_error("proxy: accept failed: %s", evutil_socket_error_to_string(e));
}

/* ---- listeners and reload ---- */

static void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
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

	*out = NULL;
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sl) != 0)
		return pl_seterr(errmsg, PL_EINVAL, "invalid listen address '%s' (ADDR:PORT)",
		                 addr);
	l = pl_calloc(1, sizeof(*l));
	l->p = p;
	l->addr = pl_strdup(addr);
	l->lev = evconnlistener_new_bind(p->base, accept_cb, l,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
	                                 (struct sockaddr *)&ss, sl);
	if (l->lev == NULL) {
		int e = errno;

		listener_free(l);
		return pl_seterr(errmsg, PL_EIO, "cannot listen on '%s': %s", addr, strerror(e));
	}
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
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

			pl_log(t->insecure ? PL_LOG_WARN : PL_LOG_INFO,
			       "proxy: listening on %s for '%s' -> https://%s:%d (%s)%s", l->addr,
			       t->name, t->host, t->port, target_mode(t, mode, sizeof(mode)),
			       t->insecure ? " -- anyone between pvelab and the controller can "
			                     "read and change this traffic"
			                   : "");
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
		rt_unref(rt);
		return r;
	}
	rt_unref(p->rt);
	p->rt = rt;
	announce(p);
	return 0;
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct pl_proxy *p = arg;
	struct pl_proxy_config *cfg;
	char *err = NULL;

	if (p->rt->cfg->config_path == NULL) {
		pl_log_info("proxy: SIGHUP: targets come from flags, nothing to reload");
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

static void
on_usr1(evutil_socket_t sig, short what, void *arg)
{
	const struct pl_proxy_stats *st = &((struct pl_proxy *)arg)->st;

	pl_log_info("proxy: stats accepted=%llu active=%llu completed=%llu tls_failed=%llu "
	            "unrouted=%llu connect_failed=%llu verify_failed=%llu pin_mismatch=%llu "
	            "error_pages=%llu bytes_up=%llu bytes_down=%llu reloads=%llu",
	            (unsigned long long)st->accepted, (unsigned long long)st->active,
	            (unsigned long long)st->completed, (unsigned long long)st->tls_failed,
	            (unsigned long long)st->unrouted, (unsigned long long)st->connect_failed,
	            (unsigned long long)st->verify_failed, (unsigned long long)st->pin_mismatch,
	            (unsigned long long)st->error_pages, (unsigned long long)st->bytes_up,
	            (unsigned long long)st->bytes_down, (unsigned long long)st->reloads);
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
		conn_finish(p->conns, "shutdown");
	event_base_loopexit(p->base, NULL);
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct pl_proxy *p = arg;
	struct timeval tv = {p->rt->cfg->grace, 0};

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
	/* idle connections keep no 16 KiB record buffers (the memory target). Not
	 * read_ahead: it would save a read syscall per record, but data left inside
	 * OpenSSL never wakes libevent 2.1's bufferevent, and relays stall. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
	return ctx;
}

int
pl_proxy_serve(struct pl_proxy_config *cfg, char **errmsg)
{
	struct pl_proxy *p = pl_calloc(1, sizeof(*p));
	int r;

	if (conn_idx < 0)
		conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if ((p->base = event_base_new()) == NULL) {
		pl_proxy_config_free(cfg);
		r = pl_seterr(errmsg, PL_EIO, "cannot create the event loop");
		goto out;
	}
	p->dns = evdns_base_new(p->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	                                     EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (p->dns == NULL)
		p->dns = evdns_base_new(p->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if ((r = pl_proxy_ca_open(cfg->state_dir, &p->ca, errmsg)) != 0) {
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
		conn_finish(p->conns, "shutdown");
	pl_log_info("proxy: stopped; %llu connection(s), %llu relayed, %llu refused upstream, "
	            "%llu bytes up, %llu bytes down",
	            (unsigned long long)p->st.accepted, (unsigned long long)p->st.completed,
	            (unsigned long long)(p->st.verify_failed + p->st.connect_failed),
	            (unsigned long long)p->st.bytes_up, (unsigned long long)p->st.bytes_down);
	r = 0;
out:
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
	rt_unref(p->rt);
	SSL_CTX_free(p->down_ctx);
	pl_proxy_ca_free(p->ca);
	if (p->dns)
		evdns_base_free(p->dns, 0);
	if (p->base)
		event_base_free(p->base);
	free(p);
	return r;
}
