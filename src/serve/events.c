/*
 * The event stream (GET /api/v1/events, Server-Sent Events): every event has
 * an id and is kept in a bounded ring, so a client that reconnects with
 * Last-Event-ID gets what it missed, or a "reset" event when the ring no
 * longer reaches back that far. A heartbeat keeps idle streams open.
 */
#include "core/common.h"
#include "serve/serve.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "serve/internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <time.h>

/* The bytes c's client has not taken yet: ours (TLS: before encryption) and
 * the kernel's send queue, which alone grows to megabytes for a client that
 * does not read. */
size_t
pl_serve_unsent(const struct pl_serve_conn *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
	int queued = 0;

	if (ioctl(bufferevent_getfd(bev), SIOCOUTQ, &queued) != 0 || queued < 0)
		queued = 0;
	return evbuffer_get_length(bufferevent_get_output(bev)) + (size_t)queued;
}

static size_t
ring_size(const struct pl_serve *sv)
{
	return (size_t)(sv->lim.event_ring > 0 ? sv->lim.event_ring : 1024);
}

static void
add_event(struct evbuffer *b, long long id, const char *type, const char *data)
{
	evbuffer_add_printf(b, "id: %lld\nevent: %s\ndata: %s\n\n", id, type, data);
}

static void pump(struct pl_serve_conn *c);

/* c's client took all that was sent: send what came meanwhile. */
static void
on_sent(struct evhttp_connection *evcon, void *arg)
{
	pump(arg);
}

static void
send_chunk(struct pl_serve_conn *c, struct evbuffer *b)
{
	if (evbuffer_get_length(b))
		evhttp_send_reply_chunk_with_cb(c->stream->req, b, on_sent, c);
}

/* Send c's stream the events it has not had, as one chunk, while its client
 * has less than stream_buffer bytes unsent: a client that does not read
 * holds that much and no more (and is closed once it has for
 * request_timeout); one that reads slower than the events come and falls
 * out of the ring gets a reset event and goes on from the newest. */
static void
pump(struct pl_serve_conn *c)
{
	struct pl_serve *sv = c->sv;
	size_t n = ring_size(sv), room, have = pl_serve_unsent(c);
	long long oldest =
		sv->event_seq - (long long)n + 1 > 1 ? sv->event_seq - (long long)n + 1 : 1;
	struct evbuffer *b;

	if (c->stream == NULL || c->ending || c->next_event > sv->event_seq ||
	    have >= (size_t)sv->stream_buffer)
		return;
	room = (size_t)sv->stream_buffer - have;
	b = evbuffer_new();
	if (c->next_event < oldest) {
		char *data = pl_asprintf("{\"reason\":\"this stream fell more than the %zu events "
					 "kept behind: reload\",\"last\":%lld}",
					 n, sv->event_seq);

		pl_log_warn("%s:%u: event stream fell %lld events behind: reset", c->addr, c->port,
			    sv->event_seq - c->next_event + 1);
		add_event(b, sv->event_seq, "reset", data);
		free(data);
		c->next_event = sv->event_seq + 1;
	}
	while (c->next_event <= sv->event_seq && evbuffer_get_length(b) < room) {
		const struct pl_serve_event *e = &sv->ring[(size_t)c->next_event % n];

		add_event(b, e->id, e->type, e->data);
		c->next_event++;
	}
	send_chunk(c, b);
	evbuffer_free(b);
}

static void
on_pump(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve *sv = arg;

	for (struct pl_serve_conn *c = sv->conns; c; c = c->next)
		pump(c);
}

long long
pl_serve_emit(struct pl_serve *sv, const char *type, json_t *data)
{
	size_t n = ring_size(sv);
	struct pl_serve_event *e;
	char *text = json_dumps(data, JSON_COMPACT);

	json_decref(data);
	/* whatever an event tells of may be in a kept answer */
	pl_serve_cache_drop(sv, ~0u);
	if (sv->ring == NULL)
		sv->ring = pl_calloc(n, sizeof(*sv->ring));
	e = &sv->ring[(size_t)(++sv->event_seq % (long long)n)];
	free(e->type);
	free(e->data);
	e->id = sv->event_seq;
	e->type = pl_strdup(type);
	e->data = text;
	/* the streams get it (and whatever else comes in this turn of the
	 * loop: a sync's changes) as one chunk */
	if (sv->base && sv->pump_ev == NULL)
		sv->pump_ev = event_new(sv->base, -1, 0, on_pump, sv);
	if (sv->pump_ev)
		event_active(sv->pump_ev, EV_TIMEOUT, 1);
	return e->id;
}

/* Every request_timeout/2: a comment line on each idle stream (evhttp
 * would close it), and the end of each whose client has read nothing of a
 * full buffer for request_timeout. */
static void
on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve *sv = arg;
	struct pl_serve_conn *c, *next;
	time_t now = time(NULL);

	for (c = sv->conns; c; c = next) {
		size_t left;

		next = c->next;
		if (c->deferred && c->deferred->kept) { /* a module's stream (pl_serve_sse_start) */
			struct evbuffer *hb = evbuffer_new();

			evbuffer_add(hb, ":\n\n", 3);
			evhttp_send_reply_chunk(c->deferred->req, hb);
			evbuffer_free(hb);
		}
		if (c->stream == NULL || c->ending)
			continue;
		pump(c);
		left = pl_serve_unsent(c);
		if (left < (size_t)sv->stream_buffer) {
			struct evbuffer *b = evbuffer_new();

			c->stalled_since = 0;
			evbuffer_add(b, ":\n\n", 3); /* a comment: clients ignore it */
			send_chunk(c, b);
			evbuffer_free(b);
		} else if (c->stalled_since == 0) {
			c->stalled_since = now;
		} else if (now - c->stalled_since >= sv->lim.request_timeout) {
			char why[128];

			snprintf(why, sizeof(why),
				 "its event stream left %zu bytes unread for %lld s", left,
				 (long long)(now - c->stalled_since));
			c->ending = true; /* said here, not again as it closes */
			pl_serve_conn_close(c, why);
		}
	}
}

void
pl_serve_events_end(struct pl_serve *sv)
{
	long long id;

	if (sv->ring == NULL && sv->conns == NULL)
		return;
	id = pl_serve_emit(sv, "shutdown", json_pack("{s:s}", "reason", "the server is stopping"));
	for (struct pl_serve_conn *c = sv->conns; c; c = c->next) {
		struct evbuffer *b;

		if (c->stream == NULL || c->ending)
			continue;
		/* what it has not had yet, then the last event, whatever its buffer */
		pump(c);
		b = evbuffer_new();
		if (c->next_event <= id) {
			add_event(b, id, "shutdown", sv->ring[(size_t)id % ring_size(sv)].data);
			c->next_event = id + 1;
		}
		send_chunk(c, b);
		evbuffer_free(b);
		c->ending = true;
		/* the stream's end, then the connection's: on_complete frees it */
		evhttp_add_header(evhttp_request_get_output_headers(c->stream->req), "Connection",
				  "close");
		evhttp_send_reply_end(c->stream->req);
	}
}

static void
heartbeat_start(struct pl_serve *sv)
{
	struct timeval tv = { sv->lim.request_timeout > 2 ? sv->lim.request_timeout / 2 : 1, 0 };

	if (sv->heartbeat)
		return;
	sv->heartbeat = event_new(sv->base, -1, EV_PERSIST, on_heartbeat, sv);
	event_add(sv->heartbeat, &tv);
}

void
pl_serve_sse_start(struct pl_serve_req *r, void (*gone)(void *arg), void *arg)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);

	if (r->conn == NULL || r->conn->deferred || r->conn->stream) {
		pl_serve_error(r, 409, "conflict", NULL, "this connection streams already");
		return;
	}
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Accel-Buffering", "no");
	pl_serve_defer(r, gone, arg);
	r->answered = true;
	r->kept = true;
	pl_log_info("%s %s %s 200 (stream) token=%s", r->peer, r->method, r->path, r->caller);
	evhttp_send_reply_start(r->req, 200, "OK");
	heartbeat_start(r->sv);
}

void
pl_serve_sse_send(struct pl_serve_req *r, const char *type, const char *data, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	if (type)
		evbuffer_add_printf(b, "event: %s\n", type);
	evbuffer_add(b, "data: ", 6);
	evbuffer_add(b, data, len);
	evbuffer_add(b, "\n\n", 2);
	evhttp_send_reply_chunk(r->req, b);
	evbuffer_free(b);
}

void
pl_serve_sse_end(struct pl_serve_req *r)
{
	if (r->conn && r->conn->deferred == r)
		r->conn->deferred = NULL;
	evhttp_send_reply_end(r->req);
	r->kept = false;
	if (!r->in_handler) /* else the server frees it when the handler returns */
		pl_serve_req_free(r);
}

void
pl_serve_events_open(struct pl_serve_req *r)
{
	struct pl_serve *sv = r->sv;
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	const char *last =
		evhttp_find_header(evhttp_request_get_input_headers(r->req), "Last-Event-ID");
	long long n = sv->lim.event_ring > 0 ? sv->lim.event_ring : 1024, from = sv->event_seq + 1;
	char *end;

	if (sv->draining) {
		pl_serve_error(r, 503, "stopping", NULL, "the server is stopping");
		return;
	}
	if (r->conn == NULL || r->conn->stream || r->conn->deferred) {
		pl_serve_error(r, 409, "conflict", NULL, "this connection streams events already");
		return;
	}
	if (last) {
		long long id = strtoll(last, &end, 10);
		long long oldest = sv->event_seq - n + 1 > 1 ? sv->event_seq - n + 1 : 1;

		/* what it missed, if the ring still has all of it */
		from = (*end == '\0' && end != last && id >= 0 && id <= sv->event_seq &&
			id + 1 >= oldest) ?
			       id + 1 :
			       -1;
	}
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Accel-Buffering", "no");
	r->answered = true;
	r->kept = true;
	r->conn->stream = r;
	pl_log_info("%s GET %s 200 (event stream from %lld) token=%s", r->peer, r->path,
		    from < 0 ? 0 : from, r->caller);
	evhttp_send_reply_start(r->req, 200, "OK");
	if (from < 0) {
		char *data = pl_asprintf("{\"reason\":\"Last-Event-ID '%.32s' is older than the "
					 "%lld events kept, or unknown: reload\",\"last\":%lld}",
					 last, n, sv->event_seq);
		struct evbuffer *b = evbuffer_new();

		add_event(b, sv->event_seq, "reset", data);
		send_chunk(r->conn, b);
		evbuffer_free(b);
		free(data);
		from = sv->event_seq + 1;
	}
	/* what it missed, paced by what it reads */
	r->conn->next_event = from;
	pump(r->conn);
	heartbeat_start(sv);
}

void
pl_serve_events_free(struct pl_serve *sv)
{
	size_t n = ring_size(sv);

	if (sv->heartbeat)
		event_free(sv->heartbeat);
	if (sv->pump_ev)
		event_free(sv->pump_ev);
	for (size_t i = 0; sv->ring && i < n; i++) {
		free(sv->ring[i].type);
		free(sv->ring[i].data);
	}
	free(sv->ring);
}
