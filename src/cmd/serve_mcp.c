/*
 * MCP over Streamable HTTP at /mcp on pvelab serve: POST carries one
 * JSON-RPC message (answered as JSON, or as an SSE stream while a tool
 * runs), GET opens the session's stream for its notifications, DELETE ends
 * the session. Sessions (Mcp-Session-Id) belong to the token that opened
 * them; its role decides which tools they get. Origin is checked.
 */
#include "core/common.h"
#include "cmd/serve_mcp.h"
#include "cmd/connect.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"

#include <event2/event.h>
#include <fcntl.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_SESSIONS 64
#define IDLE_SECONDS 3600 /* a session unused this long is ended */

/* A POST whose answer streams. */
struct post {
	struct mcp_http *hs;
	struct pl_serve_req *req;
};

/* One session. */
struct mcp_http {
	struct pl_serve_mcp *mod;
	struct pl_mcp_sess *ss;
	char id[33];
	char token[64]; /* the token that opened it */
	time_t used;
	struct pl_serve_req *get; /* its GET stream, if open */
	struct post *posts[PL_MCP_MAX_CALLS + 1];
	struct pl_serve_req *cur; /* the POST being handled now */
	char *cur_reply;          /* ...and its answer, when it came at once */
	struct mcp_http *next;
};

static struct post **
post_slot(struct mcp_http *hs, const struct pl_serve_req *req)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(hs->posts); i++)
		if (hs->posts[i] && hs->posts[i]->req == req)
			return &hs->posts[i];
	return NULL;
}

static void
on_send(const char *text, size_t len, void *ctx, bool final, void *arg)
{
	struct mcp_http *hs = arg;
	struct post **p;

	if (ctx == NULL) { /* the session's own: on its GET stream, if open */
		if (hs->get)
			pl_serve_sse_send(hs->get, "message", text, len);
		return;
	}
	if ((p = post_slot(hs, ctx)) != NULL) {
		pl_serve_sse_send(ctx, "message", text, len);
		if (final) {
			pl_serve_sse_end(ctx);
			free(*p);
			*p = NULL;
		}
		return;
	}
	if (ctx == hs->cur && final && hs->cur_reply == NULL)
		hs->cur_reply = pl_strndup(text, len);
}

static void
on_get_close(void *arg)
{
	struct mcp_http *hs = arg;

	hs->get = NULL;
}

static void
on_post_close(void *arg)
{
	struct post *p = arg, **slot = post_slot(p->hs, p->req);

	/* the call goes on; its answer has nowhere to go */
	pl_mcp_forget_ctx(p->hs->ss->m, p->req);
	if (slot)
		*slot = NULL;
	free(p);
}

static void
session_free(struct mcp_http *hs)
{
	struct mcp_http **pp = &hs->mod->sessions;

	while (*pp && *pp != hs)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = hs->next;
		hs->mod->nsessions--;
	}
	pl_mcp_sess_free(hs->ss); /* its calls are cancelled: nothing more is sent */
	for (size_t i = 0; i < PL_ARRAY_LEN(hs->posts); i++)
		if (hs->posts[i]) {
			pl_serve_sse_end(hs->posts[i]->req);
			free(hs->posts[i]);
		}
	if (hs->get)
		pl_serve_sse_end(hs->get);
	free(hs->cur_reply);
	free(hs);
}

static bool
busy(const struct mcp_http *hs)
{
	if (hs->get)
		return true;
	for (size_t i = 0; i < PL_ARRAY_LEN(hs->posts); i++)
		if (hs->posts[i])
			return true;
	return false;
}

/* End sessions unused for IDLE_SECONDS; with want_room, also the least
 * recently used idle one when the table is full. */
static void
reap(struct pl_serve_mcp *mod, bool want_room)
{
	time_t now = time(NULL);
	struct mcp_http *oldest = NULL, *next;

	for (struct mcp_http *hs = mod->sessions; hs; hs = next) {
		next = hs->next;
		if (!busy(hs) && now - hs->used > IDLE_SECONDS) {
			session_free(hs);
			continue;
		}
		if (!busy(hs) && (oldest == NULL || hs->used < oldest->used))
			oldest = hs;
	}
	if (want_room && mod->nsessions >= MAX_SESSIONS && oldest)
		session_free(oldest);
}

static void
rpc_error(struct pl_serve_req *req, int status, int code, const char *msg)
{
	char body[400];

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":\"%s\"},\"id\":null}\n",
		 code, msg);
	pl_serve_reply_raw(req, status, "application/json", body, strlen(body));
}

/* Whether an Accept header names type (or any type). */
static bool
accepts(const char *accept, const char *type)
{
	return accept && (strstr(accept, type) || strstr(accept, "*/*"));
}

/* Origin: absent (not a browser), or this server's own origin, or a
 * loopback page. A page of another site must not drive the API (DNS
 * rebinding, cross-site requests). */
static bool
origin_ok(struct pl_serve_req *req)
{
	const char *o = pl_serve_header(req, "Origin"), *host = pl_serve_header(req, "Host");
	const char *h;

	if (o == NULL)
		return true;
	h = strstr(o, "://");
	if (h == NULL)
		return false;
	h += 3;
	if (host && !strcmp(h, host))
		return true;
	return !strncmp(h, "localhost", 9) && (h[9] == '\0' || h[9] == ':') ?
		       true :
	       !strncmp(h, "127.0.0.1", 9) && (h[9] == '\0' || h[9] == ':') ?
		       true :
		       !strncmp(h, "[::1]", 5) && (h[5] == '\0' || h[5] == ':');
}

/* The checks every method shares: Origin, protocol version, the session.
 * Returns the session, or NULL after answering (with *need false: none was
 * given and none is needed). */
static struct mcp_http *
session_of(struct pl_serve_req *req, struct pl_serve_mcp *mod, bool *none)
{
	const char *id = pl_serve_header(req, "Mcp-Session-Id");
	const char *ver = pl_serve_header(req, "MCP-Protocol-Version");
	const char *who = pl_serve_caller(req);
	bool known = ver == NULL;

	*none = false;
	if (!origin_ok(req)) {
		rpc_error(req, 403, -32000, "Forbidden: the Origin is not this server's");
		return NULL;
	}
	for (size_t i = 0; ver && pl_mcp_versions[i]; i++)
		known |= !strcmp(ver, pl_mcp_versions[i]);
	if (!known) {
		rpc_error(req, 400, -32000, "Bad Request: unsupported MCP-Protocol-Version");
		return NULL;
	}
	if (id == NULL) {
		*none = true;
		return NULL;
	}
	for (struct mcp_http *hs = mod->sessions; hs; hs = hs->next)
		if (!strcmp(hs->id, id) && !strcmp(hs->token, who ? who : "")) {
			hs->used = time(NULL);
			return hs;
		}
	rpc_error(req, 404, -32001, "Session not found");
	return NULL;
}

static void
random_hex(char *out, size_t n)
{
	unsigned char b[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0 && read(fd, b, sizeof(b)) == (ssize_t)sizeof(b);

	if (fd >= 0)
		close(fd);
	if (!ok)
		pl_die("cannot read /dev/urandom for a session id");
	for (size_t i = 0; i < sizeof(b) && 2 * i + 2 < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Whether the body is an initialize request (the only one without a session). */
static bool
is_initialize(const unsigned char *body, size_t len)
{
	json_t *v = pl_json_parse((const char *)body, len, NULL);
	bool yes = json_is_object(v) && json_object_get(v, "id") &&
		   !strcmp(pl_json_str_or(v, "method", ""), "initialize");

	json_decref(v);
	return yes;
}

static void
post_mcp(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_mcp *mod = arg;
	const char *type = pl_serve_header(req, "Content-Type");
	size_t len = 0;
	const unsigned char *body = pl_serve_body_raw(req, &len);
	struct mcp_http *hs;
	enum pl_mcp_outcome out;
	bool none, made = false;

	if (!accepts(pl_serve_header(req, "Accept"), "application/json") ||
	    !accepts(pl_serve_header(req, "Accept"), "text/event-stream")) {
		rpc_error(req, 406, -32000,
			  "Not Acceptable: Accept must name application/json and "
			  "text/event-stream");
		return;
	}
	if (type == NULL || strncasecmp(type, "application/json", 16) != 0) {
		rpc_error(req, 415, -32000, "Unsupported Media Type: send application/json");
		return;
	}
	hs = session_of(req, mod, &none);
	if (hs == NULL && !none)
		return;
	if (hs == NULL) {
		if (body == NULL || !is_initialize(body, len)) {
			json_t *v = body ? pl_json_parse((const char *)body, len, NULL) : NULL;

			if (v == NULL)
				rpc_error(req, 400, -32700, "Parse error");
			else
				rpc_error(req, 400, -32000,
					  "Bad Request: Mcp-Session-Id header is required");
			json_decref(v);
			return;
		}
		reap(mod, true);
		if (mod->nsessions >= MAX_SESSIONS) {
			rpc_error(req, 503, -32000, "too many MCP sessions open (at most 64)");
			return;
		}
		hs = pl_calloc(1, sizeof(*hs));
		hs->mod = mod;
		random_hex(hs->id, sizeof(hs->id));
		snprintf(hs->token, sizeof(hs->token), "%s",
			 pl_serve_caller(req) ? pl_serve_caller(req) : "");
		hs->used = time(NULL);
		hs->ss = pl_mcp_sess_new(&mod->host, pl_serve_caller_role(req), on_send, hs);
		snprintf(hs->ss->token, sizeof(hs->ss->token), "%s", hs->token);
		hs->next = mod->sessions;
		mod->sessions = hs;
		mod->nsessions++;
		made = true;
	}
	hs->cur = req;
	out = pl_mcp_handle(hs->ss->m, body ? (const char *)body : "", len, req);
	hs->cur = NULL;
	if (made) {
		if (!pl_mcp_ready(hs->ss->m)) { /* initialize refused: no session */
			char *reply = hs->cur_reply;

			hs->cur_reply = NULL;
			pl_serve_reply_raw(req, 200, "application/json", reply, strlen(reply));
			free(reply);
			session_free(hs);
			return;
		}
		pl_serve_add_header(req, "Mcp-Session-Id", hs->id);
		pl_log_info("mcp: session %.8s... for %s (%s, token %s)", hs->id,
			    pl_mcp_client(hs->ss->m), pl_serve_role_name(hs->ss->role), hs->token);
	}
	if (out == PL_MCP_NOTHING) {
		pl_serve_reply_raw(req, 202, NULL, NULL, 0);
	} else if (out == PL_MCP_ANSWERED && hs->cur_reply) {
		pl_serve_reply_raw(req, 200, "application/json", hs->cur_reply,
				   strlen(hs->cur_reply));
	} else if (out == PL_MCP_PENDING) {
		struct post **slot = hs->posts;
		struct post *p = pl_calloc(1, sizeof(*p));

		while (*slot) /* a free one: calls in flight are fewer than the slots */
			slot++;

		p->hs = hs;
		p->req = req;
		*slot = p;
		pl_serve_sse_start(req, on_post_close, p);
	} else {
		pl_serve_error(req, 500, "internal", NULL, "the MCP session gave no answer");
	}
	free(hs->cur_reply);
	hs->cur_reply = NULL;
}

static void
get_mcp(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_mcp *mod = arg;
	struct mcp_http *hs;
	bool none;

	if (!accepts(pl_serve_header(req, "Accept"), "text/event-stream")) {
		rpc_error(req, 406, -32000, "Not Acceptable: Accept must name text/event-stream");
		return;
	}
	if ((hs = session_of(req, mod, &none)) == NULL) {
		if (none)
			rpc_error(req, 400, -32000,
				  "Bad Request: Mcp-Session-Id header is required");
		return;
	}
	if (hs->get) {
		rpc_error(req, 409, -32000, "Conflict: this session's stream is open already");
		return;
	}
	hs->get = req;
	pl_serve_sse_start(req, on_get_close, hs);
}

static void
delete_mcp(struct pl_serve_req *req, void *arg)
{
	struct pl_serve_mcp *mod = arg;
	struct mcp_http *hs;
	bool none;

	if ((hs = session_of(req, mod, &none)) == NULL) {
		if (none)
			rpc_error(req, 400, -32000,
				  "Bad Request: Mcp-Session-Id header is required");
		return;
	}
	session_free(hs);
	pl_serve_reply_raw(req, 200, NULL, NULL, 0);
}

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
	reap(arg, false);
}

#define RPC_SCHEMA "{\"type\":\"object\",\"required\":[\"jsonrpc\"]}"

static const struct pl_serve_route routes[] = {
	{ "POST", "/mcp", PL_ROLE_VIEWER, 200,
	  "MCP Streamable HTTP: one JSON-RPC message; a request is answered as JSON, or as an "
	  "SSE stream (progress, then the answer) while a tool runs; 202 for a notification",
	  RPC_SCHEMA, RPC_SCHEMA, NULL, post_mcp, PL_ROUTE_RAW_BODY | PL_ROUTE_RPC_ERRORS },
	{ "GET", "/mcp", PL_ROLE_VIEWER, 200,
	  "MCP: the session's stream of notifications (resources/updated), text/event-stream",
	  "{\"type\":\"string\",\"contentMediaType\":\"text/event-stream\"}", NULL, NULL, get_mcp,
	  PL_ROUTE_RPC_ERRORS },
	{ "DELETE", "/mcp", PL_ROLE_VIEWER, 200, "MCP: end the session (Mcp-Session-Id); no body",
	  NULL, NULL, NULL, delete_mcp, PL_ROUTE_RPC_ERRORS },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};

int
pl_serve_mcp_init(struct pl_serve_mcp *mod, struct pl_session *s, struct pl_serve_runs *runs,
		  json_t *const *live_by_id, char **errmsg)
{
	int r;

	memset(mod, 0, sizeof(*mod));
	if ((r = pl_mcp_host_init(&mod->host, s, runs, errmsg)) != 0)
		return r;
	mod->host.live_by_id = live_by_id;
	mod->module.name = "mcp";
	mod->module.routes = routes;
	mod->module.arg = mod;
	mod->reaper = event_new(s->base, -1, EV_PERSIST, on_reap, mod);
	event_add(mod->reaper, &(struct timeval){ 60, 0 });
	return 0;
}

void
pl_serve_mcp_release(struct pl_serve_mcp *mod)
{
	while (mod->sessions)
		session_free(mod->sessions);
	if (mod->reaper)
		event_free(mod->reaper);
	pl_mcp_host_release(&mod->host);
}
