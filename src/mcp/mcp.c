/*
 * One MCP session over JSON-RPC 2.0 (mcp.h): message checks with the
 * specified error for each malformed shape, the lifecycle and version
 * negotiation, calls in flight with progress and cancellation. It never
 * blocks and never sees a socket: the transports feed it and carry its
 * messages away.
 */
#include "core/common.h"
#include "mcp/mcp.h"
#include "core/err.h"
#include "core/json.h"

const char *const pl_mcp_versions[] = { "2025-11-25", "2025-06-18", "2025-03-26", NULL };

struct pl_mcp_call {
	struct pl_mcp *m; /* NULL once the session is gone */
	json_t *id;
	json_t *progress_token;
	void *ctx;
	void *data;
	bool cancelled; /* its answer is not sent */
	bool dropped;   /* no transport left for its answer */
	struct pl_mcp_call *prev, *next;
};

struct pl_mcp {
	const struct pl_mcp_ops *ops;
	void *ops_arg;
	pl_mcp_send_fn send;
	void *send_arg;
	char *version; /* agreed in initialize */
	char client[96];
	struct pl_mcp_call *calls;
	int ncalls;
	struct pl_mcp_call *handling; /* the call pl_mcp_handle is starting */
	bool handled_now;             /* ...and it was answered before ops->call returned */
};

struct pl_mcp *
pl_mcp_new(const struct pl_mcp_ops *ops, void *ops_arg, pl_mcp_send_fn send, void *send_arg)
{
	struct pl_mcp *m = pl_calloc(1, sizeof(*m));

	m->ops = ops;
	m->ops_arg = ops_arg;
	m->send = send;
	m->send_arg = send_arg;
	snprintf(m->client, sizeof(m->client), "?");
	return m;
}

void
pl_mcp_free(struct pl_mcp *m)
{
	if (m == NULL)
		return;
	while (m->calls) {
		struct pl_mcp_call *c = m->calls;

		m->calls = c->next;
		c->m = NULL;
		c->cancelled = true;
		/* the op answers it later (or now): that frees it alone */
		m->ops->cancel(m, c, m->ops_arg);
	}
	free(m->version);
	free(m);
}

bool
pl_mcp_ready(const struct pl_mcp *m)
{
	return m->version != NULL;
}

const char *
pl_mcp_version(const struct pl_mcp *m)
{
	return m->version;
}

const char *
pl_mcp_client(const struct pl_mcp *m)
{
	return m->client;
}

static void
send_msg(struct pl_mcp *m, json_t *msg, void *ctx, bool final)
{
	char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	static const char fallback[] =
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,"
		"\"message\":\"Internal error: the answer could not be encoded\"}}";

	if (text)
		m->send(text, strlen(text), ctx, final, m->send_arg);
	else
		m->send(fallback, sizeof(fallback) - 1, ctx, final, m->send_arg);
	free(text);
	json_decref(msg);
}

/* id (borrowed; NULL: null) */
static void
send_error(struct pl_mcp *m, const json_t *id, int code, const char *message, void *ctx)
{
	send_msg(m,
		 json_pack("{s:s,s:O,s:{s:i,s:o}}", "jsonrpc", "2.0", "id",
			   id ? (json_t *)id : json_null(), "error", "code", code, "message",
			   pl_json_string_lossy(message)),
		 ctx, true);
}

static void
send_result(struct pl_mcp *m, const json_t *id, json_t *result, void *ctx)
{
	send_msg(m,
		 json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", (json_t *)id, "result", result),
		 ctx, true);
}

void
pl_mcp_notify(struct pl_mcp *m, const char *method, json_t *params)
{
	json_t *msg = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", method);

	if (params)
		json_object_set_new(msg, "params", params);
	send_msg(m, msg, NULL, false);
}

void
pl_mcp_forget_ctx(struct pl_mcp *m, void *ctx)
{
	for (struct pl_mcp_call *c = m->calls; c; c = c->next)
		if (c->ctx == ctx) {
			c->ctx = NULL;
			c->dropped = true;
		}
}

/* ---- calls ---- */

void
pl_mcp_call_set_data(struct pl_mcp_call *c, void *data)
{
	c->data = data;
}

void *
pl_mcp_call_data(const struct pl_mcp_call *c)
{
	return c->data;
}

bool
pl_mcp_call_wants_progress(const struct pl_mcp_call *c)
{
	return c->progress_token != NULL && c->m && !c->cancelled && !c->dropped;
}

void
pl_mcp_call_progress(struct pl_mcp_call *c, double progress, double total, const char *message)
{
	json_t *p;

	if (!pl_mcp_call_wants_progress(c))
		return;
	p = json_pack("{s:O,s:f}", "progressToken", c->progress_token, "progress", progress);
	if (total > 0)
		json_object_set_new(p, "total", json_real(total));
	if (message)
		json_object_set_new(p, "message", json_string(message));
	send_msg(c->m,
		 json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", "notifications/progress",
			   "params", p),
		 c->ctx, false);
}

static void
call_free(struct pl_mcp_call *c)
{
	struct pl_mcp *m = c->m;

	if (m) {
		if (c->prev)
			c->prev->next = c->next;
		else
			m->calls = c->next;
		if (c->next)
			c->next->prev = c->prev;
		m->ncalls--;
		if (m->handling == c)
			m->handled_now = true;
	}
	json_decref(c->id);
	json_decref(c->progress_token);
	free(c);
}

void
pl_mcp_call_done(struct pl_mcp_call *c, json_t *result)
{
	if (c->m && !c->cancelled && !c->dropped)
		send_result(c->m, c->id, result, c->ctx);
	else
		json_decref(result);
	call_free(c);
}

void
pl_mcp_call_fail(struct pl_mcp_call *c, int code, const char *message)
{
	if (c->m && !c->cancelled && !c->dropped)
		send_error(c->m, c->id, code, message, c->ctx);
	call_free(c);
}

/* ---- messages ---- */

/* The version to answer a client asking for want: the same when spoken,
 * else the newest (the client decides whether it can go on). */
static const char *
negotiate(const char *want)
{
	for (size_t i = 0; pl_mcp_versions[i]; i++)
		if (!strcmp(want, pl_mcp_versions[i]))
			return pl_mcp_versions[i];
	return pl_mcp_versions[0];
}

/* Keep a client-given name printable and short: it goes into logs and the history. */
static void
copy_printable(char *dst, size_t size, const char *src)
{
	size_t n = 0;

	for (; src && *src && n + 1 < size; src++)
		dst[n++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
	dst[n] = '\0';
}

static void
initialize(struct pl_mcp *m, const json_t *id, const json_t *params, void *ctx)
{
	const char *want = pl_json_str(params, "protocolVersion");
	const json_t *info = json_object_get(params, "clientInfo");
	const char *name = pl_json_str(info, "name"), *ver = pl_json_str(info, "version");
	char both[200];

	if (m->version) {
		send_error(m, id, PL_RPC_INVALID_REQUEST, "the session is initialized already",
			   ctx);
		return;
	}
	if (want == NULL) {
		send_error(m, id, PL_RPC_INVALID_PARAMS,
			   "initialize needs params.protocolVersion (a string)", ctx);
		return;
	}
	m->version = pl_strdup(negotiate(want));
	snprintf(both, sizeof(both), "%.80s%s%.40s", name ? name : "?", ver ? " " : "",
		 ver ? ver : "");
	copy_printable(m->client, sizeof(m->client), both);
	send_result(
		m, id,
		json_pack("{s:s,s:{s:{s:b},s:{s:b,s:b},s:{s:b}},s:{s:s,s:s,s:s},s:s}",
			  "protocolVersion", m->version, "capabilities", "tools", "listChanged", 0,
			  "resources", "subscribe", 1, "listChanged", 0, "prompts", "listChanged",
			  0, "serverInfo", "name", "pvelab", "title",
			  "pvelab (Proxmox VE homelab as code)", "version", PL_VERSION,
			  "instructions",
			  "pvelab reads a Proxmox VE cluster from its state store and changes it "
			  "only through plans: call plan, show the user the plan, and call apply "
			  "with its plan_id only after they agree. Write tools are listed only "
			  "when the server allows writes."),
		ctx);
}

static void
start_call(struct pl_mcp *m, const json_t *id, const json_t *params, void *ctx,
	   enum pl_mcp_outcome *out)
{
	const char *name = pl_json_str(params, "name");
	const json_t *args = json_object_get(params, "arguments");
	const json_t *meta = json_object_get(params, "_meta");
	const json_t *tok = json_object_get(meta, "progressToken");
	struct pl_mcp_call *c;

	if (name == NULL || (args && !json_is_object(args))) {
		send_error(m, id, PL_RPC_INVALID_PARAMS,
			   "tools/call needs params.name (a string) and params.arguments (an "
			   "object, if any)",
			   ctx);
		return;
	}
	if (m->ncalls >= PL_MCP_MAX_CALLS) {
		send_error(m, id, PL_RPC_INTERNAL,
			   "too many calls in flight in this session (at most 16)", ctx);
		return;
	}
	c = pl_calloc(1, sizeof(*c));
	c->m = m;
	c->id = json_deep_copy(id);
	c->progress_token =
		(json_is_string(tok) || json_is_integer(tok)) ? json_deep_copy(tok) : NULL;
	c->ctx = ctx;
	c->next = m->calls;
	if (m->calls)
		m->calls->prev = c;
	m->calls = c;
	m->ncalls++;
	m->handling = c;
	m->handled_now = false;
	m->ops->call(m, c, name, args, m->ops_arg);
	*out = m->handled_now ? PL_MCP_ANSWERED : PL_MCP_PENDING;
	m->handling = NULL;
}

static void
notification(struct pl_mcp *m, const char *method, const json_t *params)
{
	if (!strcmp(method, "notifications/cancelled")) {
		const json_t *rid = json_object_get(params, "requestId");

		for (struct pl_mcp_call *c = m->calls; rid && c; c = c->next)
			if (json_equal(c->id, rid) && !c->cancelled) {
				c->cancelled = true;
				m->ops->cancel(m, c, m->ops_arg);
				break;
			}
	}
	/* notifications/initialized and the others carry nothing to act on */
}

enum pl_mcp_outcome
pl_mcp_handle(struct pl_mcp *m, const char *data, size_t len, void *ctx)
{
	enum pl_mcp_outcome out = PL_MCP_ANSWERED;
	const json_t *id, *params;
	const char *method;
	json_t *msg, *result = NULL;
	char *err = NULL;
	int code;

	msg = pl_json_parse(data, len, &err);
	if (msg == NULL) {
		char text[300];

		snprintf(text, sizeof(text), "Parse error: %.250s", err ? err : "not JSON");
		send_error(m, NULL, PL_RPC_PARSE_ERROR, text, ctx);
		goto out;
	}
	if (!json_is_object(msg)) {
		send_error(m, NULL, PL_RPC_INVALID_REQUEST,
			   json_is_array(msg) ? "Invalid Request: batches are not supported" :
						"Invalid Request: a message is a JSON object",
			   ctx);
		goto out;
	}
	id = json_object_get(msg, "id");
	method = pl_json_str(msg, "method");
	params = json_object_get(msg, "params");
	if (id && !json_is_string(id) && !json_is_integer(id)) {
		send_error(m, NULL, PL_RPC_INVALID_REQUEST,
			   "Invalid Request: id is a string or an integer", ctx);
		goto out;
	}
	if (!json_is_string(json_object_get(msg, "jsonrpc")) ||
	    strcmp(pl_json_str(msg, "jsonrpc"), "2.0") != 0) {
		send_error(m, id, PL_RPC_INVALID_REQUEST,
			   "Invalid Request: jsonrpc must be \"2.0\"", ctx);
		goto out;
	}
	if (method == NULL) {
		if (id && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
			out = PL_MCP_NOTHING; /* a response: pvelab asks nothing of clients */
			goto out;
		}
		send_error(m, id, PL_RPC_INVALID_REQUEST,
			   "Invalid Request: method must be a string", ctx);
		goto out;
	}
	if (params && !json_is_object(params)) {
		if (id)
			send_error(m, id, PL_RPC_INVALID_PARAMS, "params must be an object", ctx);
		else
			out = PL_MCP_NOTHING;
		goto out;
	}
	if (id == NULL) {
		notification(m, method, params);
		out = PL_MCP_NOTHING;
		goto out;
	}
	if (!strcmp(method, "initialize")) {
		initialize(m, id, params, ctx);
	} else if (!strcmp(method, "ping")) {
		send_result(m, id, json_object(), ctx);
	} else if (m->version == NULL) {
		send_error(m, id, PL_RPC_INVALID_REQUEST,
			   "Invalid Request: initialize the session first", ctx);
	} else if (!strcmp(method, "tools/call")) {
		start_call(m, id, params, ctx, &out);
	} else if ((code = m->ops->method(m, method, params, &result, &err, m->ops_arg)) == 0) {
		send_result(m, id, result, ctx);
	} else {
		char text[300];

		if (code == PL_RPC_METHOD_NOT_FOUND)
			snprintf(text, sizeof(text), "Method not found: %.200s", method);
		else
			snprintf(text, sizeof(text), "%.280s", err ? err : "failed");
		send_error(m, id, code, text, ctx);
	}
out:
	json_decref(msg);
	free(err);
	return out;
}
