/*
 * What pvelab offers MCP clients, for both transports (pvelab mcp on stdio,
 * /mcp on pvelab serve): tools made from the command table, resources with
 * subscriptions, prompts. A session's role decides which tools it sees.
 */
#ifndef PL_CMD_MCP_TOOLS_H
#define PL_CMD_MCP_TOOLS_H

#include "core/common.h"
#include "mcp/mcp.h"

#include <event2/util.h>
#include <jansson.h>

struct event;
struct pl_session;
struct pl_mcp_sess;
struct pl_mcp_job;
struct pl_mcp_rjob;
struct pl_serve_runs;

/* Commands run at once for tool calls when mcp.max_processes is not set. */
#define PL_MCP_MAX_PROCESSES 8

/* One of a config's several clusters that an MCP server covers: its
 * session and its runs engine (NULL without an API client). */
struct pl_mcp_cluster {
	const char *name;
	struct pl_session *s;
	struct pl_serve_runs *runs;
};

/* What every session of one process shares. */
struct pl_mcp_host {
	struct pl_session *s;
	/* several clusters, none chosen at start: each one (cl[0] is s's); the
	 * tools take a cluster argument. NULL: s is the one cluster (a tool's
	 * cluster may only name it) */
	const struct pl_mcp_cluster *cl;
	size_t ncl;
	json_t *const *live_by_id;  /* the server's live guest list (NULL: none) */
	char *exe;                  /* this binary: tools run as its commands */
	struct pl_serve_runs *runs; /* plans, applies, snapshots (NULL: no cluster) */
	char *latest_plan;          /* the newest plan_id made through MCP, or NULL */
	json_t *cache;              /* "tool args" -> {"at": store changes, "v": answer} */
	char *cache_key;            /* the question being answered */
	unsigned long long cache_at;
	struct event *poll; /* the subscriptions' poll */
	struct pl_mcp_sess *sessions;
	long poll_ms;
	struct pl_mcp_job *jobs;   /* commands running for calls */
	struct pl_mcp_rjob *rjobs; /* calls the runs engine carries out */
	int njobs;
	int max_jobs; /* mcp.max_processes: commands at once, all sessions together */
	/* called when the last job and engine call end (a transport waiting to stop) */
	void (*on_idle)(void *arg);
	void *idle_arg;
};

/* One MCP session with its role (PL_ROLE_VIEWER: read tools only;
 * operator: + power, snapshots, backup, sync; admin: + apply, rollback,
 * destroy). */
struct pl_mcp_sess {
	struct pl_mcp_host *h;
	struct pl_mcp *m;
	int role;
	json_t *subs;   /* uri -> sha256 of its content as last told */
	char token[64]; /* the serve token it came with ("" on stdio) */
	struct pl_mcp_sess *next;
};

/* Set h up on s and runs (borrowed, outlive h; runs may be NULL): 0, or a
 * code with *errmsg. */
int pl_mcp_host_init(struct pl_mcp_host *h, struct pl_session *s, struct pl_serve_runs *runs,
		     char **errmsg);
/* Cover several clusters (cl borrowed, outliving h; cl[0] is h's session). */
void pl_mcp_host_set_clusters(struct pl_mcp_host *h, const struct pl_mcp_cluster *cl, size_t n);
/* Free h: commands still running are killed (free the sessions first). */
void pl_mcp_host_release(struct pl_mcp_host *h);

/* A session whose messages leave through send. */
struct pl_mcp_sess *pl_mcp_sess_new(struct pl_mcp_host *h, int role, pl_mcp_send_fn send,
				    void *arg);
/* Free ss: its calls are cancelled (their commands get Ctrl-C and finish
 * on the loop, answering no one). */
void pl_mcp_sess_free(struct pl_mcp_sess *ss);

/* The resources and prompts (mcp_resources.c), as the methods of the same
 * names answer: 0 with *res, or a JSON-RPC code with *errmsg. */
#define PL_MCP_GUEST_URI "pvelab://guest/"
int pl_mcp_resources_list(struct pl_mcp_sess *ss, const json_t *params, json_t **res,
			  char **errmsg);
int pl_mcp_resources_read(struct pl_mcp_sess *ss, const json_t *params, json_t **res,
			  char **errmsg);
int pl_mcp_subscribe(struct pl_mcp_sess *ss, const json_t *params, bool on, json_t **res,
		     char **errmsg);
json_t *pl_mcp_prompts_list(void);
int pl_mcp_prompts_get(struct pl_mcp_sess *ss, const json_t *params, json_t **res, char **errmsg);
/* The subscriptions' poll (a timer of the host): notify what changed. */
void pl_mcp_poll(evutil_socket_t fd, short what, void *arg);

#endif
