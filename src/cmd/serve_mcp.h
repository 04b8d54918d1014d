/*
 * The /mcp module of pvelab serve: MCP over Streamable HTTP, with the tools,
 * resources and prompts of pvelab mcp (mcp_tools.h).
 */
#ifndef PL_CMD_SERVE_MCP_H
#define PL_CMD_SERVE_MCP_H

#include "core/common.h"
#include "cmd/mcp_tools.h"
#include "serve/serve.h"

struct mcp_http;

struct pl_serve_mcp {
	struct pl_serve_module module; /* register this with pl_serve_add */
	struct pl_mcp_host host;
	struct mcp_http *sessions;
	int nsessions;
	struct event *reaper;
};

/* Set mod up on s and the server's runs engine (may be NULL); live_by_id
 * (may be NULL) is the refresh's live guest list. */
int pl_serve_mcp_init(struct pl_serve_mcp *mod, struct pl_session *s, struct pl_serve_runs *runs,
		      json_t *const *live_by_id, char **errmsg);
/* End every session (before the server is freed). */
void pl_serve_mcp_release(struct pl_serve_mcp *mod);

#endif
