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
#include <event2/event.h>
#include <event2/http.h>

static void
write_event(struct pl_serve_req *r, long long id, const char *type, const char *data)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add_printf(b, "id: %lld\nevent: %s\ndata: %s\n\n", id, type, data);
	evhttp_send_reply_chunk(r->req, b);
	evbuffer_free(b);
}

long long
pl_serve_emit(struct pl_serve *sv, const char *type, json_t *data)
{
	size_t n = (size_t)(sv->lim.event_ring > 0 ? sv->lim.event_ring : 1024);
	struct pl_serve_event *e;
	char *text = json_dumps(data, JSON_COMPACT);

	json_decref(data);
	if (sv->ring == NULL)
		sv->ring = pl_calloc(n, sizeof(*sv->ring));
	e = &sv->ring[(size_t)(++sv->event_seq % (long long)n)];
	free(e->type);
	free(e->data);
	e->id = sv->event_seq;
	e->type = pl_strdup(type);
	e->data = text;
	for (struct pl_serve_conn *c = sv->conns; c; c = c->next)
		if (c->stream)
			write_event(c->stream, e->id, e->type, e->data);
	return e->id;
}

static void
on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve *sv = arg;

	for (struct pl_serve_conn *c = sv->conns; c; c = c->next)
		for (int i = 0; i < 2; i++) {
			struct pl_serve_req *r = i ? c->deferred : c->stream;
			struct evbuffer *b;

			if (r == NULL || !r->kept) /* a deferred answer not streaming */
				continue;
			b = evbuffer_new();
			evbuffer_add(b, ":\n\n", 3); /* a comment: clients ignore it */
			evhttp_send_reply_chunk(r->req, b);
			evbuffer_free(b);
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

		write_event(r, sv->event_seq, "reset", data);
		free(data);
	} else {
		for (long long id = from; id <= sv->event_seq; id++) {
			struct pl_serve_event *e = &sv->ring[id % n];

			write_event(r, e->id, e->type, e->data);
		}
	}
	heartbeat_start(sv);
}

void
pl_serve_events_free(struct pl_serve *sv)
{
	size_t n = (size_t)(sv->lim.event_ring > 0 ? sv->lim.event_ring : 1024);

	if (sv->heartbeat)
		event_free(sv->heartbeat);
	for (size_t i = 0; sv->ring && i < n; i++) {
		free(sv->ring[i].type);
		free(sv->ring[i].data);
	}
	free(sv->ring);
}
