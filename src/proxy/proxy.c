/*
 * The proxy's connections: per-connection TLS on both sides driven straight
 * through OpenSSL (side.c), routing by SNI/Host, a byte-exact relay with
 * backpressure and half-close, error pages. Listeners, reload and shutdown
 * are in listen.c.
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

#include "proxy/loop.h"

int pl_proxy_conn_idx = -1;

/* ---- connections ---- */

/* Relayed TLS records must not wait for Nagle and delayed ACKs. */
static void
nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static const struct pl_proxy_target *
conn_target(const struct conn *c)
{
	return c->target >= 0 ? c->rt->cfg->targets[c->target] : NULL;
}

void
pl_proxy_addr_str(const struct sockaddr *sa, char *out, size_t n, int *port)
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

/* The small page a browser sees when the upstream was refused; the connection
 * closes once it is written. */
static int
send_error_page(struct conn *c)
{
	const struct pl_proxy_target *t = conn_target(c);
	const struct pl_proxy_verify *v = &c->upx.v;
	struct pl_buf body, page;
	const char *title = c->fail_status == 404 ? "Not Found" : "Bad Gateway";
	int r;

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
	pl_buf_init(&page, 0);
	pl_buf_addf(&page,
	            "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
	            "Content-Length: %zu\r\nCache-Control: no-store\r\n"
	            "Connection: close\r\n\r\n",
	            c->fail_status, title, body.len);
	pl_buf_add(&page, body.data, body.len);
	r = pl_proxy_side_send(&c->down, page.data, page.len);
	pl_buf_release(&body);
	pl_buf_release(&page);
	c->p->st.error_pages++;
	c->closing = true;
	return r;
}

/* Read what the client sends before there is a relay into c->head, until it
 * holds want bytes, the socket would block or the client is done. */
static int
head_read(struct conn *c, size_t want)
{
	size_t n;
	int r = 0;

	while (r == 0 && c->head.len < want && c->down.can_read && !c->down.eof) {
		r = pl_proxy_side_read(&c->down, c->p->scratch, sizeof(c->p->scratch), &n);
		if (r == 0 && n > 0)
			r = pl_buf_add(&c->head, c->p->scratch, n);
	}
	return r;
}

/* While refusing: answer a client that speaks HTTP with the error page, close
 * on anyone else, and finish once the page is written. */
static void
failed_input(struct conn *c)
{
	const char *p;
	bool moved = false;
	size_t m, n;

	if (!c->closing) {
		if (head_read(c, 16) != 0) {
			pl_proxy_conn_finish(c, c->fail_reason);
			return;
		}
		m = c->head.len < 16 ? c->head.len : 16;
		p = c->head.data;
		if (m > 0 && pl_proxy_http_is_request(p, m)) {
			if (send_error_page(c) != 0) {
				pl_proxy_conn_finish(c, c->fail_reason);
				return;
			}
		} else if (c->down.eof || m == 16 || (m > 0 && !(p[0] >= 'A' && p[0] <= 'Z'))) {
			pl_proxy_conn_finish(c, c->fail_reason);
			return;
		} else {
			return; /* not enough to tell yet */
		}
	}
	/* the rest of the request goes unread: drop it, or closing would send a
	 * reset that can cut the page short */
	while (c->down.can_read && !c->down.eof)
		if (pl_proxy_side_read(&c->down, c->p->scratch, sizeof(c->p->scratch), &n) != 0)
			break;
	if (pl_proxy_side_flush(&c->down, &moved) != 0 || !pl_proxy_side_owes(&c->down)) {
		pl_proxy_side_shutdown(&c->down);
		pl_proxy_conn_finish(c, c->fail_reason);
	}
}

static void conn_fail(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Refuse the upstream: drop it, say why, and give the client ERRPAGE_WAIT
 * seconds to ask for the error page. */
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
	pl_proxy_side_release(&c->up);
	if (c->down.eof) {
		pl_proxy_conn_finish(c, c->fail_reason);
		return;
	}
	event_add(c->down.ev, &tv);
	failed_input(c);
}

void
pl_proxy_conn_finish(struct conn *c, const char *why)
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
	if (c->dns)
		evdns_getaddrinfo_cancel(c->dns);
	if (c->deadline)
		event_free(c->deadline);
	pl_proxy_side_release(&c->up);
	pl_proxy_side_release(&c->down);
	pl_buf_release(&c->head);
	pl_buf_release(&c->resp);
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pl_proxy_rt_unref(c->rt);
	free(c->cand);
	free(c);
	if (p->stopping && p->conns == NULL)
		event_base_loopexit(p->base, NULL);
}

/* ---- the relay ---- */

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

/* Bytes for the client, in order: straight to its socket while out is NULL
 * or empty, else appended to out, so that a rewritten head and the body after
 * it leave together in one TLS record. */
static int
emit(struct conn *c, struct pl_buf *out, const char *p, size_t n)
{
	if (out == NULL || out->len == 0)
		return pl_proxy_side_send(&c->down, p, n);
	return pl_buf_add(out, p, n);
}

/* Pass the response head collected so far on untouched. */
static int
resp_pass(struct conn *c, struct pl_buf *out)
{
	int r = emit(c, out, c->resp.data, c->resp.len);

	pl_buf_release(&c->resp);
	return r;
}

/* Append the response head in c->resp to out with its Location headers
 * rewritten, and learn how the body that follows is framed. */
static int
rewrite_head(struct conn *c, struct pl_buf *out)
{
	char from[4][300], to[300];
	const char *fromv[5];
	struct pl_proxy_resp info;
	struct pl_buf b;
	size_t nf = 0;
	int r;

	rewrite_origins(c, conn_target(c), from, to, sizeof(to));
	for (size_t i = 0; i < 4; i++)
		if (from[i][0])
			fromv[nf++] = from[i];
	fromv[nf] = NULL;
	pl_buf_init(&b, RESP_HEAD_MAX * 2);
	if (pl_proxy_http_rewrite(c->resp.data, c->resp.len, fromv, to, &b, &info) != 0) {
		pl_buf_release(&b);
		c->rs = RS_RAW;
		return resp_pass(c, out);
	}
	r = pl_buf_add(out, b.data, b.len);
	pl_buf_release(&b);
	pl_buf_release(&c->resp);
	if (info.status == 101 || info.chunked) {
		c->rs = RS_RAW;
	} else if ((info.status >= 100 && info.status < 200) || info.status == 204 ||
	           info.status == 304 || info.content_length == 0) {
		c->rs = RS_HEAD;
	} else if (info.content_length > 0) {
		c->rs = RS_BODY;
		c->body_left = info.content_length;
	} else {
		c->rs = RS_RAW;
	}
	return r;
}

/* Upstream -> downstream with Location rewriting: hold each response head,
 * rewrite it, then pass the body through by Content-Length. Anything we cannot
 * frame (chunked, upgrades, read-until-close, not HTTP) switches to a plain
 * byte relay for the rest of the connection. */
static int
rewrite(struct conn *c, const char *p, size_t n)
{
	struct pl_buf out; /* this chunk's bytes from the first rewritten head on */
	int r = 0;

	pl_buf_init(&out, 0);
	while (r == 0 && n > 0) {
		size_t k, had, end;

		if (c->rs == RS_RAW) {
			r = emit(c, &out, p, n);
			break;
		}
		if (c->rs == RS_BODY) {
			k = (long long)n < c->body_left ? n : (size_t)c->body_left;
			r = emit(c, &out, p, k);
			if ((c->body_left -= (long long)k) == 0)
				c->rs = RS_HEAD;
			p += k;
			n -= k;
			continue;
		}
		had = c->resp.len;
		k = n < RESP_HEAD_MAX - had ? n : RESP_HEAD_MAX - had;
		pl_buf_add(&c->resp, p, k); /* within its cap: k fits */
		end = pl_proxy_http_head_end(c->resp.data, c->resp.len);
		if (memcmp(c->resp.data, "HTTP/", c->resp.len < 5 ? c->resp.len : 5) != 0 ||
		    (end == 0 && c->resp.len == RESP_HEAD_MAX)) {
			c->rs = RS_RAW;
			r = resp_pass(c, &out);
			p += k;
			n -= k;
			continue;
		}
		if (end == 0)
			break; /* all of p is in c->resp: wait for the rest of the head */
		pl_buf_truncate(&c->resp, end);
		p += end - had;
		n -= end - had;
		r = rewrite_head(c, &out);
	}
	if (r == 0 && out.len > 0)
		r = pl_proxy_side_send(&c->down, out.data, out.len);
	pl_buf_release(&out);
	return r;
}

/* Pass n bytes read from src on to the other side. */
static int
relay_bytes(struct conn *c, const struct pl_proxy_side *src, const char *p, size_t n)
{
	if (src == &c->down) {
		c->bytes_up += n;
		return pl_proxy_side_send(&c->up, p, n);
	}
	c->bytes_down += n;
	if (c->rs == RS_RAW || !conn_target(c)->rewrite_location)
		return pl_proxy_side_send(&c->down, p, n);
	return rewrite(c, p, n);
}

/* Record which side failed, for the log line. */
static int
side_error(struct conn *c, const struct pl_proxy_side *s)
{
	c->error = s == &c->down ? "client error" : "upstream error";
	return PL_EIO;
}

/* One step of src -> dst: write what dst still owes, then pass on one record
 * from src (src waits while dst owes anything: that is the backpressure), or
 * src's end of stream once dst owes nothing. */
static int
relay_step(struct conn *c, struct pl_proxy_side *src, struct pl_proxy_side *dst, bool *moved)
{
	size_t n;
	int r;

	if (pl_proxy_side_flush(dst, moved) != 0)
		return side_error(c, dst);
	if (pl_proxy_side_owes(dst))
		return 0;
	if (src->eof) {
		if (!dst->wclosed)
			pl_proxy_side_shutdown(dst);
		return 0;
	}
	if (!src->can_read)
		return 0;
	if (pl_proxy_side_read(src, c->p->scratch, sizeof(c->p->scratch), &n) != 0)
		return side_error(c, src);
	if (n == 0 && !src->eof)
		return 0;
	*moved = true; /* also for the EOF: the next step passes it on */
	if (n > 0)
		r = relay_bytes(c, src, c->p->scratch, n);
	else
		r = src == &c->up ? resp_pass(c, NULL) : 0; /* a partial head goes as it is */
	return r != 0 ? side_error(c, dst) : 0;
}

/* Relay both ways until neither side can move, RELAY_BUDGET records a turn so
 * that other connections get theirs; finish once both directions have ended
 * and everything was delivered. */
static void
relay_run(struct conn *c)
{
	bool moved = true;

	for (int i = 0; moved && i < RELAY_BUDGET; i++) {
		moved = false;
		if (relay_step(c, &c->down, &c->up, &moved) != 0 ||
		    relay_step(c, &c->up, &c->down, &moved) != 0) {
			pl_proxy_conn_finish(c, c->error);
			return;
		}
	}
	if (moved)
		event_active(c->down.ev, 0, 0); /* more to do: after the others */
	else if (c->down.eof && c->up.eof && !pl_proxy_side_owes(&c->down) &&
	         !pl_proxy_side_owes(&c->up))
		pl_proxy_conn_finish(c, NULL);
}

/* ---- the upstream side ---- */

/* The last error OpenSSL queued, as text in buf, or NULL; empties the queue. */
static const char *
ssl_error_text(char *buf, size_t n)
{
	unsigned long e = ERR_peek_last_error();

	ERR_clear_error();
	if (e == 0)
		return NULL;
	ERR_error_string_n(e, buf, n);
	return buf;
}

/* The upstream handshake failed, timed out or was refused by our verification:
 * count it and tell the client why. */
static void
up_refused(struct conn *c, bool timeout, const char *why)
{
	const struct pl_proxy_target *t = conn_target(c);

	if (c->upx.v.have_cert && !c->upx.v.ok) {
		c->p->st.verify_failed++;
		if (c->upx.v.pin_mismatch) {
			c->p->st.pin_mismatch++;
			conn_fail(
			    c, 502,
			    "The certificate of '%s' changed: expected fingerprint %s, got %s.",
			    t->name, t->pin, c->upx.v.fingerprint);
		} else {
			conn_fail(
			    c, 502,
			    "The certificate of '%s' failed verification: %s. It is valid from "
			    "%s until %s.",
			    t->name, c->upx.v.result, c->upx.v.not_before, c->upx.v.not_after);
		}
		return;
	}
	c->p->st.connect_failed++;
	if (timeout)
		conn_fail(c, 504, "Timed out connecting to '%s' (%s:%d).", t->name, t->host,
		          t->port);
	else if (strstr(why, "protocol") || strstr(why, "cipher") ||
	         strstr(why, "handshake failure"))
		conn_fail(c, 502,
		          "TLS handshake with '%s' (%s:%d) failed: %s. Old controllers need "
		          "min_tls: \"1.0\" (--min-tls 1.0) and legacy ciphers.",
		          t->name, t->host, t->port, why);
	else
		conn_fail(c, 502, "Cannot reach '%s' (%s:%d): %s.", t->name, t->host, t->port, why);
}

/* verify_at and ignore_time accept any certificate of the right name and
 * issuer, an old one whose key leaked too: remember the one that first
 * passed, and say so when another one does. */
static void
note_seen(struct conn *c)
{
	const struct pl_proxy_target *t = conn_target(c);
	struct runtime *rt = c->rt;
	const char *fp = c->upx.v.fingerprint, *was;
	char key[300], *err = NULL;

	if (!(t->has_verify_at || t->ignore_time) || !c->upx.v.ok || !fp[0])
		return;
	snprintf(key, sizeof(key), "%s:%d", t->host, t->port);
	if (rt->seen == NULL) {
		rt->seen = pl_proxy_seen_load(rt->cfg->state_dir);
		rt->warned = json_object();
	}
	if ((was = pl_json_str(json_object_get(rt->seen, key), "sha256")) == NULL) {
		json_object_set_new(rt->seen, key, json_pack("{s:s}", "sha256", fp));
		if (pl_proxy_seen_record(rt->cfg->state_dir, key, fp, c->upx.v.subject, &err) != 0) {
			pl_log_warn("proxy: target '%s': %s", t->name, err);
			free(err);
		}
		return;
	}
	if (strcasecmp(was, fp) == 0 || !strcmp(pl_json_str_or(rt->warned, key, ""), fp))
		return;
	json_object_set_new(rt->warned, key, json_string(fp));
	pl_log_warn("proxy: target '%s': its certificate changed since it was first verified "
	            "(was %s, now %s); an old certificate whose key leaked would pass too: check "
	            "the controller, then remove its entry from seen.json", t->name, was, fp);
}

/* Drive the upstream connect and handshake; start the relay when done. */
static void
up_handshake(struct conn *c, short what)
{
	const struct pl_proxy_target *t = conn_target(c);
	char buf[256];
	const char *why;
	int r, err = 0;
	socklen_t len = sizeof(err);

	if (c->up_connecting) {
		if (getsockopt(c->up.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			up_refused(c, false, strerror(err));
			return;
		}
		if (!(what & EV_WRITE))
			return; /* still connecting */
		c->up_connecting = false;
	}
	errno = 0;
	if ((r = SSL_do_handshake(c->up.ssl)) != 1) {
		switch (SSL_get_error(c->up.ssl, r)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return;
		default:
			err = errno;
			if ((why = ssl_error_text(buf, sizeof(buf))) == NULL)
				why = err ? strerror(err) : "it closed the connection";
			up_refused(c, false, why);
			return;
		}
	}
	ERR_clear_error(); /* SSL_get_error needs an empty queue; verification may leave some */
	c->up_ready = true;
	event_remove_timer(c->up.ev);
	note_seen(c);
	/* from now on down.ev's timeout (restarted by each event) is the idle timer */
	event_add(c->down.ev, &(struct timeval){c->rt->cfg->idle_timeout > 0
	                                                ? c->rt->cfg->idle_timeout
	                                                : PL_PROXY_IDLE_TIMEOUT, 0});
	if (t->insecure)
		pl_log_warn("proxy: target '%s': relaying WITHOUT verifying the upstream "
		            "certificate (insecure: true)",
		            t->name);
	relay_run(c); /* the Host-routed request, and what the client sent meanwhile */
}

static void
up_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	pl_proxy_side_wake(&c->up, what);
	if (c->up_ready)
		relay_run(c);
	else if (what & EV_TIMEOUT)
		up_refused(c, true, NULL);
	else
		up_handshake(c, what);
}

/* Open the upstream socket towards sa; up_cb takes it from there. */
static void
up_connect(struct conn *c, const struct sockaddr *sa, socklen_t salen)
{
	const struct pl_proxy_target *t = conn_target(c);
	struct timeval tv = {HANDSHAKE_TIMEOUT, 0};
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || SSL_set_fd(c->up.ssl, fd) != 1 ||
	    (connect(fd, sa, salen) != 0 && errno != EINPROGRESS)) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		c->p->st.connect_failed++;
		conn_fail(c, 502, "Cannot reach '%s' (%s:%d): %s.", t->name, t->host, t->port,
		          strerror(e));
		return;
	}
	c->up.fd = fd;
	nodelay(fd);
	c->up_connecting = true;
	c->up.ev = event_new(c->p->base, fd, SIDE_EVENTS, up_cb, c);
	event_add(c->up.ev, &tv);
}

static void
up_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct conn *c = arg;
	struct sockaddr_storage ss;
	socklen_t len;

	if (err == EVUTIL_EAI_CANCEL)
		return; /* c is being finished */
	c->dns = NULL;
	if (err != 0) {
		c->p->st.connect_failed++;
		conn_fail(c, 502, "Cannot resolve '%s': %s.", conn_target(c)->host,
		          evutil_gai_strerror(err));
		return;
	}
	len = ai->ai_addrlen;
	memcpy(&ss, ai->ai_addr, len);
	evutil_freeaddrinfo(ai);
	up_connect(c, (struct sockaddr *)&ss, len);
}

/* The client is routed: connect to its target. Callers return right after,
 * since the name lookup may answer, and even finish c, before this returns. */
static void
start_upstream(struct conn *c)
{
	const struct pl_proxy_target *t = conn_target(c);
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *req;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char hp[300], port[16];

	c->upx.target = t;
	event_remove_timer(c->down.ev);
	if ((c->up.ssl = pl_proxy_upstream_ssl(c->rt->up_ctx[c->target], &c->upx)) == NULL) {
		conn_fail(c, 502, "cannot create a TLS session for '%s'", t->name);
		return;
	}
	SSL_set_connect_state(c->up.ssl);
	/* a request routed by its Host header goes first */
	c->bytes_up += c->head.len;
	pl_buf_add(&c->up.out, c->head.data, c->head.len);
	pl_buf_release(&c->head);
	snprintf(hp, sizeof(hp), strchr(t->host, ':') ? "[%s]:%d" : "%s:%d", t->host, t->port);
	if (evutil_parse_sockaddr_port(hp, (struct sockaddr *)&ss, &sslen) == 0) {
		up_connect(c, (struct sockaddr *)&ss, (socklen_t)sslen);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	snprintf(port, sizeof(port), "%d", t->port);
	req = evdns_getaddrinfo(c->p->dns, t->host, port, &hints, up_resolved, c);
	if (req != NULL)
		c->dns = req; /* else up_resolved has run already */
}

/* ---- the downstream side ---- */

/* No SNI named a target: route by the Host header of the first request. */
static void
route_by_host(struct conn *c)
{
	size_t m, end;

	if (head_read(c, ROUTE_PEEK_MAX) != 0) {
		pl_proxy_conn_finish(c, "client error");
		return;
	}
	m = c->head.len < ROUTE_PEEK_MAX ? c->head.len : ROUTE_PEEK_MAX;
	if ((end = pl_proxy_http_head_end(c->head.data, m)) == 0) {
		if (m == ROUTE_PEEK_MAX || (m >= 16 && !pl_proxy_http_is_request(c->head.data, m)))
			pl_proxy_conn_finish(c, "no SNI and no Host header to route by");
		else if (c->down.eof)
			pl_proxy_conn_finish(c, "client closed");
		return;
	}
	if (pl_proxy_http_host(c->head.data, end, c->host, sizeof(c->host)) != 0 ||
	    (c->target = route(c, c->host)) < 0) {
		c->p->st.unrouted++;
		conn_fail(c, 404, "No target is configured for host '%s'.",
		          c->host[0] ? c->host : "(none)");
		return;
	}
	start_upstream(c);
}

static void
down_handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->down.ssl);

	if (r != 1) {
		int e = SSL_get_error(c->down.ssl, r);

		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return;
		ERR_clear_error();
		c->p->st.tls_failed++;
		pl_log_debug("proxy: %s: client TLS handshake failed", c->client);
		pl_proxy_conn_finish(c, NULL);
		return;
	}
	ERR_clear_error();
	c->down_ready = true;
	if ((c->target = route(c, c->sni)) >= 0) {
		start_upstream(c);
		return;
	}
	pl_log_debug("proxy: %s: SNI '%s' matches no target; waiting for Host", c->client, c->sni);
	route_by_host(c);
}

static void
down_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	pl_proxy_side_wake(&c->down, what);
	if (c->up_ready) {
		if (what == EV_TIMEOUT) {
			/* A quiet client side is fine while bytes flow the other way. */
			uint64_t moved = c->bytes_up + c->bytes_down;

			if (moved == c->idle_mark) {
				c->p->st.timed_out++;
				pl_proxy_conn_finish(c, "idle");
				return;
			}
			c->idle_mark = moved;
		}
		relay_run(c);
	} else if (what & EV_TIMEOUT) {
		if (!c->down_ready) {
			c->p->st.tls_failed++;
			pl_log_debug("proxy: %s: client TLS handshake timed out", c->client);
		}
		pl_proxy_conn_finish(c, !c->down_ready ? NULL :
					c->failed      ? c->fail_reason :
							 "no request");
	} else if (!c->down_ready) {
		down_handshake(c);
	} else if (c->failed) {
		failed_input(c);
	} else if (c->target < 0) {
		route_by_host(c);
	}
	/* else the upstream is on its way; its handshake starts the relay */
}

/* Whether the CA may issue a leaf for an SNI name: a target's name, one of
 * its hostnames or its controller's host, the configured name (--name), or
 * the address the client reached. */
static bool
may_issue(const struct conn *c, const char *name)
{
	const struct pl_proxy_config *cfg = c->rt->cfg;

	if (!strcasecmp(name, c->local_ip) || (cfg->name && !strcasecmp(cfg->name, name)))
		return true;
	for (size_t i = 0; i < cfg->ntargets; i++)
		if (name_matches(cfg->targets[i], name) || !strcasecmp(cfg->targets[i]->host, name))
			return true;
	return false;
}

/* Choose the downstream certificate: the SNI name, else the configured name
 * (with the local address as a second name), else the local address. A name
 * the proxy does not serve gets no certificate (unrecognized_name). */
int
pl_proxy_client_hello_cb(SSL *ssl, int *al, void *arg)
{
	struct conn *c = SSL_get_ex_data(ssl, pl_proxy_conn_idx);
	const unsigned char *ext;
	size_t len;
	char *err = NULL;
	const char *name, *extra = NULL;

	if (c == NULL)
		return SSL_CLIENT_HELLO_ERROR;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) == 1)
		pl_proxy_sni_parse(ext, len, c->sni, sizeof(c->sni));
	if (c->sni[0] && !may_issue(c, c->sni)) {
		c->p->st.unrouted++;
		pl_log_debug("proxy: %s: SNI '%s' is not a configured name; refused", c->client,
		             c->sni);
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
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

/* The one deadline for the handshake and the first request head: a client
 * that drips bytes does not restart it. Once routed, the relay's own
 * timeouts apply. */
static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->target >= 0 && !c->failed)
		return;
	c->p->st.timed_out++;
	if (!c->down_ready)
		c->p->st.tls_failed++;
	pl_log_debug("proxy: %s: no %s in time (proxy.handshake_timeout)", c->client,
	             c->down_ready ? "request" : "TLS handshake");
	pl_proxy_conn_finish(c, !c->down_ready ? NULL : c->failed ? c->fail_reason : "no request");
}

void
pl_proxy_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
		   void *arg)
{
	struct listener *l = arg;
	struct pl_proxy *p = l->p;
	struct conn *c;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct timeval tv = {p->rt->cfg->handshake_timeout > 0 ? p->rt->cfg->handshake_timeout
	                                                       : HANDSHAKE_TIMEOUT, 0};
	struct timeval idle = {p->rt->cfg->idle_timeout > 0 ? p->rt->cfg->idle_timeout
	                                                      : PL_PROXY_IDLE_TIMEOUT, 0};
	int cap = p->rt->cfg->max_conns > 0 ? p->rt->cfg->max_conns : PL_PROXY_MAX_CONNS;
	SSL *ssl;

	if (!p->stopping && p->st.active >= (uint64_t)cap) {
		p->st.over_cap++;
		if (time(NULL) - p->cap_logged >= 60) {
			p->cap_logged = time(NULL);
			pl_log_warn("proxy: %d connections open (proxy.max_connections); closing new "
			            "ones until some end", cap);
		}
	}
	if (p->stopping || p->st.active >= (uint64_t)cap ||
	    (ssl = SSL_new(p->down_ctx)) == NULL) {
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
	pl_proxy_side_init(&c->down);
	pl_proxy_side_init(&c->up);
	pl_buf_init(&c->head, ROUTE_PEEK_MAX + RELAY_CHUNK);
	pl_buf_init(&c->resp, RESP_HEAD_MAX);
	c->down.fd = fd;
	c->down.ssl = ssl;
	gettimeofday(&c->start, NULL);
	pl_proxy_addr_str(sa, c->client, sizeof(c->client), NULL);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		pl_proxy_addr_str((struct sockaddr *)&ss, c->local_ip, sizeof(c->local_ip),
				  &c->local_port);
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	p->st.accepted++;
	p->st.active++;
	SSL_set_ex_data(ssl, pl_proxy_conn_idx, c);
	SSL_set_accept_state(ssl);
	nodelay(fd);
	if (SSL_set_fd(ssl, fd) != 1 ||
	    (c->down.ev = event_new(p->base, fd, SIDE_EVENTS, down_cb, c)) == NULL ||
	    (c->deadline = evtimer_new(p->base, deadline_cb, c)) == NULL) {
		pl_proxy_conn_finish(c, NULL);
		return;
	}
	event_add(c->down.ev, &idle);
	evtimer_add(c->deadline, &tv);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	evconnlistener_enable(l->lev);
}

/* Out of descriptors, accept fails at once every time the listener is
 * readable: pause it for a second instead of spinning (and logging) on it. */
void
pl_proxy_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval pause = {1, 0};
	bool starved = e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;

	if (!starved || time(NULL) - l->logged >= 60) {
		l->logged = time(NULL);
		pl_log_error("proxy: accept on %s failed: %s%s", l->addr,
		             evutil_socket_error_to_string(e),
		             starved ? " (pausing the listener; raise ulimit -n or lower "
		                       "proxy.max_connections)" : "");
	}
	if (!starved)
		return;
	l->p->st.accept_paused++;
	if (l->resume == NULL)
		l->resume = evtimer_new(l->p->base, resume_cb, l);
	if (l->resume) {
		evconnlistener_disable(lev);
		evtimer_add(l->resume, &pause);
	}
}
