/*
 * The simulator's replies as PVE's API daemon sends them: the standard
 * headers, the JSON envelope and error bodies, the reason phrase, gzip,
 * replies held back (latency, auth delay, timeouts) and connection resets.
 */
#include "core/common.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <time.h>
#include <zlib.h>

#include "core/err.h"
#include "core/str.h"
#include "sim/internal.h"

#define PL_SIM_TLS_RECORD 16384 /* the most plaintext one TLS record carries */
#define PL_SIM_WRITE_NOW 15000  /* below bufferevent_openssl's write frame */

struct pl_sim_pending {
	struct pl_sim_pending *next;
	struct pl_sim *sim;
	struct evhttp_request *req;
	int status;
	char *reason;
	struct evbuffer *body;
	struct event *ev;
	bool reset; /* close the connection instead of answering */
};

/* The HTTP date of this second ("Sun, 22 Nov 2026 04:54:08 GMT"), formatted
 * once per second. */
static const char *
http_date(struct pl_sim *s)
{
	time_t now = time(NULL);

	if (now != s->date_t) {
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		s->date_t = now;
	}
	return s->date;
}

void
pl_sim_std_headers(struct pl_sim *s, struct evhttp_request *req, bool json)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Server", "pve-api-daemon/3.0");
	evhttp_add_header(h, "Cache-Control", "max-age=0");
	evhttp_add_header(h, "Pragma", "no-cache");
	evhttp_add_header(h, "Expires", http_date(s));
	if (json)
		evhttp_add_header(h, "Content-Type", "application/json;charset=UTF-8");
}

/* Send the reply now: the Date header as evhttp would add it (without
 * formatting it again), and a reply that fits one TLS record joined into one
 * buffer chain, since bufferevent_openssl passes each chain to SSL_write on
 * its own: headers and body would be two records in two write(2)s.
 *
 * bufferevent_openssl on a socket writes only when the socket reports it is
 * writable, a loop turn later: two epoll_ctl and a wakeup per request. A
 * reply this small is written here instead, and the bufferevent told its
 * output drained, which is how evhttp learns the reply is out. Anything not
 * written stays for the bufferevent, which retries it whole: the length is
 * below its write frame. Telling it may finish the request and free the
 * connection, so the bufferevent is held. */
static void
send_now(struct pl_sim *s, struct evhttp_request *req, int status, const char *reason,
	 struct evbuffer *body)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct evbuffer *out;
	unsigned char *data;
	size_t len;
	int n;

	evhttp_add_header(evhttp_request_get_output_headers(req), "Date", http_date(s));
	evhttp_send_reply(req, status, reason, body);
	if (!bev)
		return;
	out = bufferevent_get_output(bev);
	len = evbuffer_get_length(out);
	if (len > PL_SIM_TLS_RECORD)
		return;
	data = evbuffer_pullup(out, -1);
	if (ssl == NULL || len == 0 || len > PL_SIM_WRITE_NOW)
		return;
	ERR_clear_error();
	if ((n = SSL_write(ssl, data, (int)len)) <= 0)
		return;
	evbuffer_drain(out, (size_t)n);
	bufferevent_incref(bev);
	bufferevent_trigger(bev, EV_WRITE, 0);
	bufferevent_decref(bev);
}

static void
reset_conn(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

	if (fd >= 0) {
		struct linger lg = { 1, 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		shutdown(fd, SHUT_RDWR);
	}
	evhttp_send_reply(req, 500, "connection reset", NULL);
}

static void
pending_send(struct pl_sim_pending *p)
{
	if (p->reset)
		reset_conn(p->req);
	else
		send_now(p->sim, p->req, p->status, p->reason, p->body);
}

static void
pending_free(struct pl_sim_pending *p)
{
	if (p->ev)
		event_free(p->ev);
	if (p->body)
		evbuffer_free(p->body);
	free(p->reason);
	free(p);
}

static void
pending_unlink(struct pl_sim *s, struct pl_sim_pending *p)
{
	for (struct pl_sim_pending **pp = &s->held; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

static void
pending_fire(evutil_socket_t fd, short what, void *arg)
{
	struct pl_sim_pending *p = arg;

	(void)fd;
	(void)what;
	pending_unlink(p->sim, p);
	pending_send(p);
	pending_free(p);
}

/* Send now or after delay_ms; takes body. */
void
pl_sim_reply(struct pl_sim *s, struct evhttp_request *req, int status, const char *reason,
	     struct evbuffer *body, int delay_ms, bool reset)
{
	struct pl_sim_pending *p;
	struct timeval tv;
	char clean[256];
	size_t n = 0;

	/* the reason phrase is the first line of the message */
	for (const char *c = reason; *c && *c != '\n' && n < sizeof(clean) - 1; c++)
		clean[n++] = (*c == '\r') ? ' ' : *c;
	clean[n] = 0;
	if (delay_ms <= 0 && !reset) {
		send_now(s, req, status, clean, body);
		if (body)
			evbuffer_free(body);
		return;
	}
	p = pl_calloc(1, sizeof(*p));
	p->sim = s;
	p->req = req;
	p->status = status;
	p->reason = pl_strdup(clean);
	p->body = body;
	p->reset = reset;
	p->ev = evtimer_new(s->base, pending_fire, p);
	tv.tv_sec = delay_ms / 1000;
	tv.tv_usec = (delay_ms % 1000) * 1000;
	evtimer_add(p->ev, &tv);
	p->next = s->held;
	s->held = p;
}

void
pl_sim_reply_json(struct pl_sim *s, struct evhttp_request *req, int status, const char *msg,
		  json_t *errors, int delay_ms)
{
	struct evbuffer *b = evbuffer_new();
	json_t *o = json_object();
	char *text;

	json_object_set_new(o, "data", json_null());
	if (errors)
		json_object_set(o, "errors", errors);
	if (msg && status != 200) {
		char *m = pl_str_endswith(msg, "\n") ? pl_strdup(msg) : pl_asprintf("%s\n", msg);

		json_object_set_new(o, "message", json_string(m));
		free(m);
	}
	text = json_dumps(o, JSON_COMPACT);
	evbuffer_add(b, text, strlen(text));
	free(text);
	json_decref(o);
	pl_sim_std_headers(s, req, true);
	pl_sim_reply(s, req, status, msg ? msg : "OK", b, delay_ms, false);
}

/* 401 from the auth handler: reason phrase only, empty body, delayed. */
void
pl_sim_reply_401(struct pl_sim *s, struct evhttp_request *req, const char *msg)
{
	pl_sim_std_headers(s, req, false);
	pl_sim_reply(s, req, 401, msg, NULL, s->opts.auth_delay_ms, false);
}

/* gzip as PVE's server does for bodies over 1 KiB when the client accepts it. */
static struct pl_sim_blob *
gzip_data(const char *data, size_t len)
{
	z_stream z;
	struct pl_sim_blob *bl;
	size_t cap;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	cap = deflateBound(&z, (uLong)len);
	bl = pl_malloc(sizeof(*bl) + cap);
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)bl->data;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(bl);
		return NULL;
	}
	bl->refs = 1;
	bl->len = z.total_out;
	bl->gz = NULL;
	deflateEnd(&z);
	return bl;
}

static bool
accepts_gzip(struct evhttp_request *req)
{
	const char *ae =
		evhttp_find_header(evhttp_request_get_input_headers(req), "Accept-Encoding");

	return ae && strstr(ae, "gzip");
}

static void
blob_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	pl_sim_blob_unref(arg);
}

void
pl_sim_send_result(struct pl_sim *s, struct evhttp_request *req, struct pl_sim_req *r, int delay)
{
	struct evbuffer *b;
	struct pl_sim_blob *bl;

	if (r->status != 200) {
		pl_sim_reply_json(s, req, r->status, r->reason ? r->reason : "internal error",
				  r->errors, delay + r->delay_ms);
		return;
	}
	b = evbuffer_new();
	pl_sim_std_headers(s, req, true);
	if (r->raw.len) {
		evbuffer_add(b, r->raw.data, r->raw.len);
		pl_sim_reply(s, req, 200, "OK", b, delay, false);
		return;
	}
	if (!r->blob)
		r->blob = pl_sim_blob_from_data(r->data, r->top);
	bl = r->blob;
	if (bl->len > 1024 && accepts_gzip(req)) {
		if (!bl->gz)
			bl->gz = gzip_data(bl->data, bl->len);
		if (bl->gz) {
			bl = bl->gz;
			evhttp_add_header(evhttp_request_get_output_headers(req),
					  "Content-Encoding", "gzip");
		}
	}
	if (r->blob->len > 4096 && s->faults.truncate > 0 &&
	    pl_sim_rand01(s) < s->faults.truncate) {
		/* The answer breaks off: its whole length announced, half of it
		 * sent, the connection closed (a proxy restarting, a cable). */
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		char cl[32];

		snprintf(cl, sizeof(cl), "%zu", bl->len);
		evhttp_remove_header(h, "Connection");
		evhttp_add_header(h, "Connection", "close");
		evhttp_add_header(h, "Content-Length", cl);
		evbuffer_add_reference(b, bl->data, bl->len / 2, blob_cleanup, pl_sim_blob_ref(bl));
		pl_sim_reply(s, req, 200, "OK", b, delay, false);
		return;
	}
	evbuffer_add_reference(b, bl->data, bl->len, blob_cleanup, pl_sim_blob_ref(bl));
	pl_sim_reply(s, req, 200, "OK", b, delay, false);
}

void
pl_sim_held_flush(struct pl_sim *s)
{
	while (s->held) {
		struct pl_sim_pending *p = s->held;

		s->held = p->next;
		pending_send(p);
		pending_free(p);
	}
}
