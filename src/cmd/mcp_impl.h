/*
 * What the files of pvelab's MCP tools share, private to them: the tool
 * table and its schemas (mcp_tools.c), tools/call and the session
 * (mcp_call.c), and the work behind a call, a child process or the runs
 * engine (mcp_jobs.c).
 */
#ifndef PL_CMD_MCP_IMPL_H
#define PL_CMD_MCP_IMPL_H

#include "core/common.h"
#include "cmd/mcp_tools.h"

#include <jansson.h>

struct pl_opt;

enum {
	H_RO = 1 << 0,      /* reads only */
	H_DESTROY = 1 << 1, /* may destroy or overwrite what exists */
	H_IDEM = 1 << 2,    /* the same call twice does no more than once */
	H_FAST = 1 << 3,    /* answered in-process from the store (without live) */
	H_ENGINE = 1 << 4,  /* carried out by the runs engine (serve/runs.h) */
};

/* A positional argument of a tool: its property name, and what it is. */
struct tool_arg {
	const char *name;
	const char *help;
	bool many; /* an array of strings (GUEST...) */
	bool required;
};

struct tool_info {
	const char *cmd; /* the command's name */
	int role;        /* the role that may see and call it */
	unsigned hints;
	const char *output; /* JSON Schema of its structuredContent */
	const struct tool_arg args[3];
	const char *skip[6]; /* options an MCP client does not get */
	const char *confirm; /* the argument that "confirm" must repeat (destroy) */
	const char *summary; /* a tool that is no command (the engine's): what it does */
};

/* mcp_tools.c: the names a tool's cluster argument may take (new
 * reference), or NULL when the config names no clusters. */
json_t *pl_mcp_cluster_names(const struct pl_mcp_host *h);
/* The same as text, "home, lab" (caller frees). */
char *pl_mcp_cluster_list(const struct pl_mcp_host *h);
/* mcp_tools.c: the tool of that name, or NULL. */
const struct tool_info *pl_mcp_tool_find(const char *name);
/* Whether t hides the command's option opt from MCP clients. */
bool pl_mcp_tool_skips(const struct tool_info *t, const char *opt);
/* The JSON name of an option: "no-snapshot" -> "no_snapshot". */
void pl_mcp_prop_name(const char *opt, char *out, size_t size);
/* An option's JSON Schema (new reference). */
json_t *pl_mcp_opt_schema(const struct pl_opt *o);
/* tools/list's answer for ss's role. */
json_t *pl_mcp_tools_list(const struct pl_mcp_sess *ss);

/* mcp_call.c: a tool call's result, text and structuredContent (stolen, may
 * be NULL); the JSON a command printed as structuredContent (an array
 * becomes {"items": [...]}); a failed call's answer. */
json_t *pl_mcp_result(bool error, const char *text, json_t *structured);
json_t *pl_mcp_structured(json_t *v);
void pl_mcp_call_error(struct pl_mcp_call *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* mcp_jobs.c: run t for c as this binary's command: argv is the program with
 * its global options (the tool's options appended, -o json), pos its
 * positional arguments; c is answered when the command ends. */
void pl_mcp_job_start(struct pl_mcp_sess *ss, struct pl_mcp_call *c, const struct tool_info *t,
		      json_t *argv, const json_t *pos);
/* Have the runs engine carry t out for c (H_ENGINE); cluster: the one the
 * call names (NULL: none), whose engine it is when there are several. */
void pl_mcp_engine_call(struct pl_mcp_sess *ss, struct pl_mcp_call *c, const struct tool_info *t,
			const json_t *args, const char *cluster);
/* notifications/cancelled for the call whose data is data. */
void pl_mcp_jobs_cancel(struct pl_mcp_host *h, void *data);
/* Kill what still runs; nobody waits for the answers. */
void pl_mcp_jobs_release(struct pl_mcp_host *h);

#endif
