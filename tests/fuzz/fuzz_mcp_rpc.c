/*
 * libFuzzer harness for the MCP session (src/mcp): each line of the input is
 * one message to a fresh session's pl_mcp_handle, tools answered at once, later
 * (in flight, then cancelled when the session ends) or with an error. Whatever
 * the bytes, no crash, every message sent is a JSON-RPC 2.0 object, and a line
 * answered gets exactly one final message.
 */
#include "core/common.h"
#include "core/err.h"
#include "core/json.h"
#include "mcp/mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int finals;

static void
on_send(const char *text, size_t len, void *ctx, bool final, void *arg)
{
	json_t *v = pl_json_parse(text, len, NULL);

	if (!json_is_object(v) || strcmp(pl_json_str_or(v, "jsonrpc", ""), "2.0") != 0 ||
	    memchr(text, '\n', len))
		__builtin_trap();
	json_decref(v);
	finals += final;
}

static int
method(struct pl_mcp *m, const char *name, const json_t *params, json_t **result, char **errmsg,
       void *arg)
{
	if (!strcmp(name, "tools/list")) {
		*result = json_pack("{s:[]}", "tools");
		return 0;
	}
	if (!strcmp(name, "resources/read")) {
		*errmsg = pl_strdup("no such resource");
		return PL_RPC_NOT_FOUND;
	}
	return PL_RPC_METHOD_NOT_FOUND;
}

static struct pl_mcp_call *held;

static void
call(struct pl_mcp *m, struct pl_mcp_call *c, const char *tool, const json_t *args, void *arg)
{
	if (!strcmp(tool, "now")) {
		pl_mcp_call_progress(c, 1, 2, "half");
		pl_mcp_call_done(c, json_pack("{s:[]}", "content"));
	} else if (!strcmp(tool, "later") && held == NULL) {
		held = c; /* answered when cancelled or at the end */
	} else {
		pl_mcp_call_fail(c, PL_RPC_INVALID_PARAMS, "Unknown tool");
	}
}

static void
cancel(struct pl_mcp *m, struct pl_mcp_call *c, void *arg)
{
	if (c == held) {
		held = NULL;
		pl_mcp_call_done(c, json_object());
	}
}

static const struct pl_mcp_ops ops = { method, call, cancel };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_mcp *m = pl_mcp_new(&ops, NULL, on_send, NULL);
	size_t from = 0;

	for (size_t i = 0; i <= size; i++) {
		enum pl_mcp_outcome out;
		int before = finals;

		if (i < size && data[i] != '\n')
			continue;
		out = pl_mcp_handle(m, (const char *)data + from, i - from, NULL);
		if ((out == PL_MCP_ANSWERED) != (finals == before + 1) ||
		    (out != PL_MCP_ANSWERED && finals != before))
			__builtin_trap();
		from = i + 1;
	}
	pl_mcp_free(m); /* cancels what is in flight */
	if (held)
		__builtin_trap();
	return 0;
}
