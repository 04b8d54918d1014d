/*
 * The Model Context Protocol over JSON-RPC 2.0, without a transport: one
 * session reads one message at a time (pl_mcp_handle), answers the lifecycle
 * (initialize, version negotiation, ping) itself and hands every other method
 * to its ops. Replies and notifications leave through the send callback, so
 * stdio and Streamable HTTP share everything but the bytes on the wire.
 */
#ifndef PL_MCP_MCP_H
#define PL_MCP_MCP_H

#include "core/common.h"

#include <jansson.h>

/* JSON-RPC error codes (JSON-RPC 2.0 and MCP). */
#define PL_RPC_PARSE_ERROR (-32700)
#define PL_RPC_INVALID_REQUEST (-32600)
#define PL_RPC_METHOD_NOT_FOUND (-32601)
#define PL_RPC_INVALID_PARAMS (-32602)
#define PL_RPC_INTERNAL (-32603)
#define PL_RPC_NOT_FOUND (-32002) /* MCP: resource not found */
#define PL_RPC_BUSY (-32010)      /* pvelab: too many commands running; try later */

/* The protocol versions spoken, newest first. */
extern const char *const pl_mcp_versions[];

struct pl_mcp;
struct pl_mcp_call;

/* What happened to one message given to pl_mcp_handle. */
enum pl_mcp_outcome {
	PL_MCP_NOTHING,  /* a notification or a response: no answer owed */
	PL_MCP_ANSWERED, /* its answer was sent (through send, with its ctx) */
	PL_MCP_PENDING,  /* a call in flight: its answer comes later with the same ctx */
};

/* A message leaves: text is one compact JSON-RPC message (no newline). ctx
 * is the one given to pl_mcp_handle for the request it belongs to (its
 * progress and its answer; final for the answer), NULL for a message of the
 * session (resources/updated). */
typedef void (*pl_mcp_send_fn)(const char *text, size_t len, void *ctx, bool final, void *arg);

struct pl_mcp_ops {
	/* A method answered at once: 0 and *result (new reference), or a
	 * JSON-RPC error code and *errmsg (caller frees);
	 * PL_RPC_METHOD_NOT_FOUND for a method it does not know. */
	int (*method)(struct pl_mcp *m, const char *method, const json_t *params, json_t **result,
		      char **errmsg, void *arg);
	/* tools/call: answer c with pl_mcp_call_done or pl_mcp_call_fail, now
	 * or later from the loop. */
	void (*call)(struct pl_mcp *m, struct pl_mcp_call *c, const char *tool, const json_t *args,
		     void *arg);
	/* notifications/cancelled for c: stop it (its answer is not sent). */
	void (*cancel)(struct pl_mcp *m, struct pl_mcp_call *c, void *arg);
};

#define PL_MCP_MAX_CALLS 16 /* calls in flight in one session */

/* ops get ops_arg, send gets send_arg. */
struct pl_mcp *pl_mcp_new(const struct pl_mcp_ops *ops, void *ops_arg, pl_mcp_send_fn send,
			  void *send_arg);
/* Free m; calls still in flight are cancelled through ops->cancel first. */
void pl_mcp_free(struct pl_mcp *m);
/* Handle one message of len bytes (any bytes: malformed ones get the
 * specified error). ctx goes with its answer. */
enum pl_mcp_outcome pl_mcp_handle(struct pl_mcp *m, const char *data, size_t len, void *ctx);
/* Whether initialize was answered; the version agreed on (NULL before). */
bool pl_mcp_ready(const struct pl_mcp *m);
const char *pl_mcp_version(const struct pl_mcp *m);
/* The client's clientInfo name and version ("?" when it gave none). */
const char *pl_mcp_client(const struct pl_mcp *m);
/* Send a notification of the session (params stolen, may be NULL). */
void pl_mcp_notify(struct pl_mcp *m, const char *method, json_t *params);
/* Forget ctx: the transport that would carry answers for it is gone (the
 * calls go on; their answers are dropped). */
void pl_mcp_forget_ctx(struct pl_mcp *m, void *ctx);

/* A call in flight. */
void pl_mcp_call_set_data(struct pl_mcp_call *c, void *data);
void *pl_mcp_call_data(const struct pl_mcp_call *c);
/* Whether the client asked for progress (params._meta.progressToken). */
bool pl_mcp_call_wants_progress(const struct pl_mcp_call *c);
/* notifications/progress: progress grows with each; total <= 0: unknown. */
void pl_mcp_call_progress(struct pl_mcp_call *c, double progress, double total,
			  const char *message);
/* Answer with result (stolen) and free c. */
void pl_mcp_call_done(struct pl_mcp_call *c, json_t *result);
/* Answer with a JSON-RPC error and free c. */
void pl_mcp_call_fail(struct pl_mcp_call *c, int code, const char *message);

#endif
