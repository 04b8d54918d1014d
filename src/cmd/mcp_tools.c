/*
 * pvelab's MCP tools, resources and prompts (mcp_tools.h). Each tool is a
 * command of the command table: its inputSchema comes from the command's
 * declared options, and it runs as that command with -o json (this binary,
 * in a child process on the loop, Ctrl-C on cancel), so its structuredContent
 * is the CLI's JSON; status, list and history answer in-process from the same
 * view functions. Only what the session's role allows is listed or run.
 */
#include "core/common.h"
#include "cmd/mcp_tools.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/views.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "plan/runs.h"
#include "serve/runs.h"
#include "state/state.h"
#include "serve/serve.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- the tools ---------------------------------------------------------- */

enum {
	H_RO = 1 << 0,      /* reads only */
	H_DESTROY = 1 << 1, /* may destroy or overwrite what exists */
	H_IDEM = 1 << 2,    /* the same call twice does no more than once */
	H_FAST = 1 << 3,    /* answered in-process from the store (without live) */
	H_ENGINE = 1 << 4,  /* carried out by the runs engine (serve/runs.h) */
};

#define S_STR "{\"type\":\"string\"}"
#define S_STR_OR_NULL "{\"type\":[\"string\",\"null\"]}"
#define S_ITEMS(item)                                                                              \
	"{\"type\":\"object\",\"required\":[\"items\"],\"properties\":{\"items\":{\"type\":"       \
	"\"array\",\"items\":" item "}}}"
#define S_OBJ "{\"type\":\"object\"}"
#define S_GUEST                                                                                    \
	"{\"type\":\"object\",\"required\":[\"vmid\",\"type\",\"node\"],\"properties\":{"          \
	"\"vmid\":{\"type\":\"integer\"},\"name\":" S_STR_OR_NULL ","                              \
	"\"type\":{\"enum\":[\"qemu\",\"lxc\"]},\"node\":" S_STR ",\"status\":" S_STR_OR_NULL      \
	",\"tags\":" S_STR_OR_NULL "}}"

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

static const struct tool_info tools[] = {
	{ "status",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM | H_FAST,
	  "{\"type\":\"object\",\"required\":[\"nodes\",\"guests\"],\"properties\":{\"nodes\":"
	  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"node\",\"status\"]}},"
	  "\"guests\":{\"type\":\"object\",\"required\":[\"total\"],\"properties\":{\"total\":"
	  "{\"type\":\"integer\"}}},\"last_sync\":{\"type\":[\"object\",\"null\"]}}}",
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "list",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM | H_FAST,
	  S_ITEMS(S_GUEST),
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "describe",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  "{\"type\":\"object\",\"required\":[\"vmid\",\"type\",\"node\",\"tasks\"],\"properties\":"
	  "{\"vmid\":{\"type\":\"integer\"},\"config\":" S_OBJ ",\"tasks\":{\"type\":\"array\"}}}",
	  { { "guest", "the guest: its name or vmid", false, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "history",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM | H_FAST,
	  S_ITEMS("{\"type\":\"object\",\"required\":[\"id\",\"kind\",\"sha256\",\"ts\","
		  "\"changes\"]"
		  ",\"properties\":{\"id\":{\"type\":\"integer\"},\"kind\":{\"enum\":["
		  "\"discovered\","
		  "\"created\",\"updated\",\"deleted\"]},\"changes\":{\"type\":\"array\"}}}"),
	  { { "guest", "the guest: its name or vmid (deleted ones too)", false, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "snapshots",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  S_ITEMS("{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":" S_STR
		  "}}"),
	  { { "guest", "the guest: its name or vmid", false, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "backups",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  "{\"type\":\"object\",\"required\":[\"guests\"],\"properties\":{\"guests\":{\"type\":"
	  "\"array\"},\"storages\":{\"type\":\"array\"},\"errors\":{\"type\":\"array\"}}}",
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "doctor", PL_ROLE_VIEWER, H_RO | H_IDEM, S_OBJ, { { 0 } }, { 0 }, NULL, NULL },
	{ "check",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  S_OBJ,
	  { { "targets", "check names or guests (none: all)", true, false } },
	  { 0 },
	  NULL,
	  NULL },
	{ "validate",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  "{\"type\":\"object\",\"required\":[\"valid\",\"errors\",\"diagnostics\"],\"properties\":"
	  "{\"valid\":{\"type\":\"boolean\"},\"errors\":{\"type\":\"integer\"},\"warnings\":{"
	  "\"type\":\"integer\"},\"diagnostics\":{\"type\":\"array\"}}}",
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "plan",
	  PL_ROLE_VIEWER,
	  H_RO | H_ENGINE,
	  "{\"type\":\"object\",\"required\":[\"plan_id\",\"summary\"],\"properties\":{\"plan_id\":"
	  "{\"type\":\"string\"},\"summary\":{\"type\":\"object\"}}}",
	  { { 0 } },
	  { "out", "detailed-exitcode", "no-backup" },
	  NULL,
	  NULL },
	{ "version",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  "{\"type\":\"object\",\"required\":[\"version\"],\"properties\":{\"version\":" S_STR "}}",
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "config-schema",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  S_ITEMS("{\"type\":\"object\",\"required\":[\"path\",\"type\"]}"),
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
#define POWER(verb, hints)                                                                         \
	{                                                                                          \
		verb, PL_ROLE_OPERATOR, hints, S_OBJ,                                              \
			{ { "guests", "the guests: names or vmids", true, true } }, { 0 }, NULL,   \
			NULL                                                                       \
	}
	POWER("start", H_IDEM),
	POWER("stop", H_IDEM | H_DESTROY),
	POWER("shutdown", H_IDEM | H_DESTROY),
	POWER("reboot", H_DESTROY),
	POWER("suspend", H_IDEM),
	POWER("resume", H_IDEM),
	{ "snapshot",
	  PL_ROLE_OPERATOR,
	  H_ENGINE,
	  S_OBJ,
	  { { "guest", "the guest: its name or vmid", false, true },
	    { "name", "the snapshot's name", false, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "backup",
	  PL_ROLE_OPERATOR,
	  0,
	  S_OBJ,
	  { { "guests", "the guests: names or vmids", true, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "sync", PL_ROLE_OPERATOR, H_IDEM, S_OBJ, { { 0 } }, { 0 }, NULL, NULL },
	{ "apply",
	  PL_ROLE_ADMIN,
	  H_DESTROY | H_ENGINE,
	  S_OBJ,
	  { { "plan_id", "the plan_id the plan tool returned (a stale plan is refused)", false,
	      true } },
	  { "yes", "profile", "reboot", "allow-replace", "no-snapshot" },
	  NULL,
	  NULL },
	{ "rollback",
	  PL_ROLE_ADMIN,
	  H_DESTROY | H_ENGINE,
	  S_OBJ,
	  { { "run", "the run to undo (default: the newest apply)", false, false } },
	  { "yes" },
	  NULL,
	  NULL },
	{ "destroy",
	  PL_ROLE_ADMIN,
	  H_DESTROY,
	  S_OBJ,
	  { { "guests", "the guests to destroy: names or vmids", true, true },
	    { "confirm", "the guests again, comma-separated, exactly as given in guests", false,
	      true } },
	  { "yes" },
	  "guests",
	  NULL },
	/* what the CLI has no command for: the engine's own */
	{ "snapshot-rollback",
	  PL_ROLE_ADMIN,
	  H_DESTROY | H_ENGINE,
	  S_OBJ,
	  { { "guest", "the guest: its name or vmid", false, true },
	    { "name", "the snapshot to roll back to", false, true },
	    { "confirm", "the guest again, exactly as given in guest", false, true } },
	  { 0 },
	  "guest",
	  "roll a guest back to one of its snapshots (what it is now is snapshotted first)" },
	{ "snapshot-delete",
	  PL_ROLE_OPERATOR,
	  H_DESTROY | H_IDEM | H_ENGINE,
	  S_OBJ,
	  { { "guest", "the guest: its name or vmid", false, true },
	    { "name", "the snapshot to delete", false, true } },
	  { 0 },
	  NULL,
	  "delete one snapshot of a guest" },
};

static const struct tool_info *
tool_find(const char *name)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(tools); i++)
		if (!strcmp(tools[i].cmd, name))
			return &tools[i];
	return NULL;
}

static bool
skipped(const struct tool_info *t, const char *opt)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(t->skip) && t->skip[i]; i++)
		if (!strcmp(t->skip[i], opt))
			return true;
	return false;
}

/* The JSON name of an option: "no-snapshot" -> "no_snapshot". */
static void
prop_name(const char *opt, char *out, size_t size)
{
	size_t i;

	for (i = 0; opt[i] && i + 1 < size; i++)
		out[i] = opt[i] == '-' ? '_' : opt[i];
	out[i] = '\0';
}

/* An option's schema: flags are booleans, counts and seconds integers, a
 * metavariable "a|b" an enum, anything else a string. */
static json_t *
opt_schema(const struct pl_opt *o)
{
	json_t *s;

	if (o->arg == NULL)
		s = json_pack("{s:s}", "type", "boolean");
	else if (!strcmp(o->arg, "N") || !strcmp(o->arg, "SECS"))
		s = json_pack("{s:s,s:i}", "type", "integer", "minimum", 0);
	else if (strchr(o->arg, '|')) {
		json_t *e = json_array();
		char *dup = pl_strdup(o->arg), *p = dup, *bar;

		while ((bar = strchr(p, '|'))) {
			*bar = '\0';
			json_array_append_new(e, json_string(p));
			p = bar + 1;
		}
		json_array_append_new(e, json_string(p));
		free(dup);
		s = json_pack("{s:s,s:o}", "type", "string", "enum", e);
	} else
		s = json_pack("{s:s}", "type", "string");
	json_object_set_new(s, "description", json_string(o->help));
	return s;
}

static json_t *
input_schema(const struct tool_info *t, const struct pl_cmd *cmd)
{
	json_t *props = json_object(), *req = json_array();
	char name[64];

	for (size_t i = 0; i < PL_ARRAY_LEN(t->args) && t->args[i].name; i++) {
		const struct tool_arg *a = &t->args[i];

		json_object_set_new(
			props, a->name,
			a->many ? json_pack("{s:s,s:{s:s},s:i,s:s}", "type", "array", "items",
					    "type", "string", "minItems", a->required ? 1 : 0,
					    "description", a->help) :
				  json_pack("{s:s,s:s}", "type", "string", "description", a->help));
		if (a->required)
			json_array_append_new(req, json_string(a->name));
	}
	for (const struct pl_opt *o = cmd ? cmd->opts : NULL; o && o->name; o++) {
		if (skipped(t, o->name))
			continue;
		prop_name(o->name, name, sizeof(name));
		json_object_set_new(props, name, opt_schema(o));
	}
	return json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties", props, "required",
			 req, "additionalProperties", 0);
}

static json_t *
tool_json(const struct tool_info *t, const struct pl_cmd *cmd)
{
	json_t *out = json_loads(t->output, 0, NULL);
	char title[96];

	snprintf(title, sizeof(title), "pvelab %s", t->cmd);
	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:{s:b,s:b,s:b,s:b}}", "name", t->cmd, "title",
			 title, "description", cmd ? cmd->summary : t->summary, "inputSchema",
			 input_schema(t, cmd), "outputSchema", out, "annotations", "readOnlyHint",
			 !!(t->hints & H_RO), "destructiveHint", !!(t->hints & H_DESTROY),
			 "idempotentHint", !!(t->hints & H_IDEM), "openWorldHint", 0);
}

static json_t *
tools_list(const struct pl_mcp_sess *ss)
{
	json_t *list = json_array();

	/* in the command table's order: it is the one list */
	for (const struct pl_cmd *const *c = pl_commands; *c; c++) {
		const struct tool_info *t = tool_find((*c)->name);

		if (t == NULL || !((*c)->flags & (PL_CMD_MCP_READ | PL_CMD_MCP_WRITE)) ||
		    t->role > ss->role)
			continue;
		json_array_append_new(list, tool_json(t, *c));
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(tools); i++) /* then the engine's own */
		if (tools[i].summary && tools[i].role <= ss->role)
			json_array_append_new(list, tool_json(&tools[i], NULL));
	return json_pack("{s:o}", "tools", list);
}

/* ---- calls ----------------------------------------------------------- */

/* A tool call's result: text, structuredContent (stolen, may be NULL). */
static json_t *
result(bool error, const char *text, json_t *structured)
{
	json_t *r = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text);

	if (structured)
		json_object_set_new(r, "structuredContent", structured);
	if (error)
		json_object_set_new(r, "isError", json_true());
	return r;
}

static void call_error(struct pl_mcp_call *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
call_error(struct pl_mcp_call *c, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pl_mcp_call_done(c, result(true, msg, NULL));
}

/* The JSON a command printed, as structuredContent: an object as it is, an
 * array as {"items": [...]} (structuredContent is an object). */
static json_t *
structured(json_t *v)
{
	return json_is_object(v) ? v : json_pack("{s:o}", "items", v);
}

/* An in-process answer (H_FAST): 0, or a code with *errmsg. */
static int
fast_view(struct pl_mcp_sess *ss, const char *tool, const json_t *args, json_t **out, char **errmsg)
{
	struct pl_state *st = ss->h->s->state;
	const json_t *live = ss->h->live_by_id ? *ss->h->live_by_id : NULL;

	if (!strcmp(tool, "status"))
		return pl_view_status(st, out, errmsg);
	if (!strcmp(tool, "history"))
		return pl_view_history(st, pl_json_str(args, "guest"), out, errmsg);
	{
		struct pl_view_list f = { pl_json_str(args, "type"), pl_json_str(args, "node"),
					  pl_json_str(args, "status"), pl_json_str(args, "tag"),
					  pl_json_str(args, "sort") };
		const char *field;
		int r = pl_view_list_check(&f, &field, errmsg);

		return r ? r : pl_view_list(st, &f, live, out, errmsg);
	}
}

#define CACHE_MAX 32

/* An in-process answer kept while the store has not changed (status counts
 * 10,000 guests in tens of milliseconds; the same question again costs one
 * PRAGMA). A list laid over the server's live counters is never kept. New
 * reference, or NULL: answer afresh (fast_answer, which keeps it). */
static json_t *
fast_cached(struct pl_mcp_sess *ss, const char *tool, const json_t *args)
{
	char *a = pl_json_canonical(args), *key = pl_asprintf("%s %s", tool, a);
	json_t *e = json_object_get(ss->h->cache, key), *v = NULL;
	unsigned long long now = pl_state_changes(ss->h->s->state);

	if (e && now && (unsigned long long)json_integer_value(json_object_get(e, "at")) == now)
		v = json_deep_copy(json_object_get(e, "v"));
	free(ss->h->cache_key);
	ss->h->cache_key = key; /* what fast_answer keeps its answer under */
	ss->h->cache_at = now;
	free(a);
	return v;
}

static void
fast_keep(struct pl_mcp_sess *ss, const char *tool, const json_t *v)
{
	struct pl_mcp_host *h = ss->h;

	if (h->cache_at == 0 || h->cache_key == NULL ||
	    (!strcmp(tool, "list") && h->live_by_id && *h->live_by_id))
		return;
	if (json_object_size(h->cache) >= CACHE_MAX)
		json_object_clear(h->cache);
	json_object_set_new(
		h->cache, h->cache_key,
		json_pack("{s:I,s:O}", "at", (json_int_t)h->cache_at, "v", (json_t *)v));
}

static int
fast_answer(struct pl_mcp_sess *ss, const char *tool, const json_t *args, json_t **out,
	    char **errmsg)
{
	int r = fast_view(ss, tool, args, out, errmsg);

	if (r == 0)
		fast_keep(ss, tool, *out);
	return r;
}

/* A command running for a call. It outlives its session when the client
 * goes away first, so it keeps the host and the client's name. */
struct pl_mcp_job {
	struct pl_mcp_host *h;
	char client[96];
	struct pl_mcp_call *call;
	struct pl_mcp_job *next;
	const struct tool_info *t;
	pid_t pid;
	int fd[2]; /* its stdout, its stderr */
	struct event *ev[2], *timer;
	struct pl_buf out, err;
	size_t err_seen; /* stderr bytes already reported as progress */
	int lines;
	bool killed_big;
};

static void job_finish(struct pl_mcp_job *j);

static void
job_free(struct pl_mcp_job *j)
{
	struct pl_mcp_host *h = j->h;
	struct pl_mcp_job **pp;

	for (pp = &h->jobs; *pp && *pp != j; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = j->next;
		h->njobs--;
	}
	for (int i = 0; i < 2; i++) {
		if (j->ev[i])
			event_free(j->ev[i]);
		if (j->fd[i] >= 0)
			close(j->fd[i]);
	}
	if (j->timer)
		event_free(j->timer);
	pl_buf_release(&j->out);
	pl_buf_release(&j->err);
	free(j);
	if (h->njobs == 0 && h->rjobs == NULL && h->on_idle)
		h->on_idle(h->idle_arg);
}

/* Each new line on stderr is a progress notification, when asked for. */
static void
job_progress(struct pl_mcp_job *j)
{
	char *nl;

	while (j->err_seen < j->err.len &&
	       (nl = memchr(j->err.data + j->err_seen, '\n', j->err.len - j->err_seen))) {
		char line[512];
		size_t n = (size_t)(nl - (j->err.data + j->err_seen));

		snprintf(line, sizeof(line), "%.*s", (int)(n < 500 ? n : 500),
			 j->err.data + j->err_seen);
		j->err_seen += n + 1;
		pl_mcp_call_progress(j->call, ++j->lines, 0, line);
	}
}

static void
on_job_read(evutil_socket_t fd, short what, void *arg)
{
	struct pl_mcp_job *j = arg;
	int i = fd == j->fd[0] ? 0 : 1;
	char chunk[16384];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		if (pl_buf_add(i ? &j->err : &j->out, chunk, (size_t)n) != 0 && i == 0 &&
		    !j->killed_big) {
			j->killed_big = true; /* more than a client should get */
			kill(j->pid, SIGTERM);
		}
		if (i == 1)
			job_progress(j);
		return;
	}
	event_free(j->ev[i]);
	j->ev[i] = NULL;
	close(j->fd[i]);
	j->fd[i] = -1;
	if (j->fd[0] < 0 && j->fd[1] < 0)
		job_finish(j);
}

static void
on_job_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pl_mcp_job *j = arg;

	pl_log_warn("mcp: %s ran out of time: stopping it", j->t->cmd);
	kill(j->pid, SIGINT);
}

/* The command's message for the user: its stderr's last "pvelab:" line(s),
 * else all of it (capped). */
static char *
job_message(struct pl_mcp_job *j, int status)
{
	const char *e = j->err.data ? j->err.data : "";
	const char *p = strstr(e, "pvelab: ");

	if (j->killed_big)
		return pl_strdup("its answer was larger than 64 MiB: stopped");
	if (p == NULL)
		p = e;
	if (*p == '\0')
		return pl_asprintf("pvelab %s failed (exit %d)", j->t->cmd, status);
	return pl_asprintf("%.4000s", p);
}

static void
job_finish(struct pl_mcp_job *j)
{
	int st = 0, code;
	json_t *v = NULL;
	char *msg;

	while (waitpid(j->pid, &st, 0) < 0 && errno == EINTR)
		;
	code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	job_progress(j);
	if (j->out.len && !j->killed_big)
		v = pl_json_parse(j->out.data, j->out.len, NULL);
	if (code == 0 && v) {
		char *text = pl_json_compact(v);

		pl_mcp_call_done(j->call, result(false, text, structured(v)));
		free(text);
	} else {
		msg = job_message(j, code);
		/* a command that answered with JSON and failed (validate: invalid) */
		pl_mcp_call_done(j->call, result(true, msg, v ? structured(v) : NULL));
		free(msg);
	}
	job_free(j);
}

/* Append "--opt[=value]" for each option given in args; PL_EINVAL with
 * *errmsg for an unknown argument or one of the wrong type. */
static int
build_argv(const struct tool_info *t, const struct pl_cmd *cmd, const json_t *args, json_t *argv,
	   char **errmsg)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)args, key, v) {
		const struct pl_opt *o = NULL;
		bool positional = false;
		char name[64];

		for (size_t i = 0; i < PL_ARRAY_LEN(t->args) && t->args[i].name; i++)
			positional |= !strcmp(t->args[i].name, key);
		if (positional)
			continue;
		for (const struct pl_opt *p = cmd ? cmd->opts : NULL; p && p->name && o == NULL;
		     p++) {
			prop_name(p->name, name, sizeof(name));
			if (!skipped(t, p->name) && !strcmp(name, key))
				o = p;
		}
		if (o == NULL)
			return pl_seterr(errmsg, PL_EINVAL, "unknown argument '%.60s' of tool %s",
					 key, t->cmd);
		if (o->arg == NULL) {
			if (!json_is_boolean(v))
				return pl_seterr(errmsg, PL_EINVAL, "argument '%s' is a boolean",
						 key);
			if (json_is_true(v))
				json_array_append_new(argv, json_sprintf("--%s", o->name));
		} else {
			json_t *sch = opt_schema(o), *e;
			const json_t *choices = json_object_get(sch, "enum");
			bool number = !strcmp(pl_json_str_or(sch, "type", ""), "integer"), ok;
			size_t i;

			ok = number ? json_is_integer(v) && json_integer_value(v) >= 0 :
				      json_is_string(v);
			json_array_foreach(choices, i, e)
				if (ok && json_equal(e, v))
					break;
			if (ok && choices && i == json_array_size(choices))
				ok = false;
			json_decref(sch);
			if (!ok)
				return pl_seterr(errmsg, PL_EINVAL, "argument '%s' is %s", key,
						 number  ? "a number from 0 up" :
						 choices ? "one of the choices its schema lists" :
							   "a string");
			if (number)
				json_array_append_new(
					argv, json_sprintf("--%s=%lld", o->name,
							   (long long)json_integer_value(v)));
			else
				json_array_append_new(argv, json_sprintf("--%s=%s", o->name,
									 json_string_value(v)));
		}
	}
	return 0;
}

/* The positional arguments, checked against the tool's; PL_EINVAL with *errmsg. */
static int
add_positionals(const struct tool_info *t, const json_t *args, json_t *pos, char **errmsg)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(t->args) && t->args[i].name; i++) {
		const struct tool_arg *a = &t->args[i];
		const json_t *v = json_object_get(args, a->name);
		size_t k;
		json_t *e;

		if (v == NULL) {
			if (a->required)
				return pl_seterr(errmsg, PL_EINVAL, "tool %s needs '%s' (%s)",
						 t->cmd, a->name, a->help);
			continue;
		}
		if (!strcmp(a->name, "confirm") || !strcmp(a->name, "plan_id"))
			continue; /* checked by the caller, not passed on */
		if (a->many) {
			if (!json_is_array(v) || (a->required && json_array_size(v) == 0))
				return pl_seterr(errmsg, PL_EINVAL,
						 "'%s' is a list of strings (at least one)",
						 a->name);
			json_array_foreach(v, k, e) {
				if (!json_is_string(e) || !*json_string_value(e))
					return pl_seterr(errmsg, PL_EINVAL,
							 "'%s' is a list of non-empty strings",
							 a->name);
				json_array_append(pos, e);
			}
		} else if (json_is_string(v) && *json_string_value(v)) {
			json_array_append(pos, (json_t *)v);
		} else {
			return pl_seterr(errmsg, PL_EINVAL, "'%s' is a non-empty string", a->name);
		}
	}
	return 0;
}

/* destroy: confirm must be the guests, comma-separated, as given. */
static int
check_confirm(const struct tool_info *t, const json_t *args, char **errmsg)
{
	const json_t *list = json_object_get(args, t->confirm), *e;
	const char *confirm = pl_json_str(args, "confirm");
	struct pl_buf want;
	size_t i;
	int r = 0;

	pl_buf_init(&want, 65536);
	if (json_is_string(list))
		pl_buf_addstr(&want, json_string_value(list));
	json_array_foreach(list, i, e) {
		if (i)
			pl_buf_addch(&want, ',');
		pl_buf_addstr(&want, json_string_value(e) ? json_string_value(e) : "");
	}
	pl_buf_addch(&want, '\0');
	if (confirm == NULL || strcmp(confirm, want.data) != 0)
		r = pl_seterr(errmsg, PL_EINVAL,
			      "%s refused: confirm must repeat the %s exactly ('%.200s'), and "
			      "it is '%.200s'",
			      t->cmd, t->confirm, want.data, confirm ? confirm : "");
	pl_buf_release(&want);
	return r;
}

static int
spawn(struct pl_mcp_job *j, json_t *argv, char **errmsg)
{
	struct pl_mcp_host *h = j->h;
	posix_spawn_file_actions_t fa;
	char **av = pl_calloc(json_array_size(argv) + 1, sizeof(*av));
	char **env;
	size_t n = 0, i;
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, r;
	char *state_var = pl_asprintf("PVELAB_STATE=%s", h->s->state_path);
	json_t *e;

	json_array_foreach(argv, i, e)
		av[i] = (char *)json_string_value(e);
	while (environ[n])
		n++;
	env = pl_calloc(n + 4, sizeof(*env));
	for (i = n = 0; environ[i]; i++)
		if (strncmp(environ[i], "PVELAB_STATE=", 13))
			env[n++] = environ[i];
	env[n++] = state_var;
	env[n++] = "NO_COLOR=1";
	if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
		r = pl_seterr(errmsg, PL_EIO, "cannot make a pipe: %s", strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	r = posix_spawn(&j->pid, h->exe, &fa, NULL, av, env);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0) {
		r = pl_seterr(errmsg, PL_EIO, "cannot run %s: %s", h->exe, strerror(r));
		goto out;
	}
	j->fd[0] = out[0];
	j->fd[1] = err[0];
	out[0] = err[0] = -1;
	for (int k = 0; k < 2; k++) {
		evutil_make_socket_nonblocking(j->fd[k]);
		j->ev[k] = event_new(h->s->base, j->fd[k], EV_READ | EV_PERSIST, on_job_read, j);
		event_add(j->ev[k], NULL);
	}
	r = 0;
out:
	for (int k = 0; k < 2; k++) {
		if (out[k] >= 0)
			close(out[k]);
		if (err[k] >= 0)
			close(err[k]);
	}
	free(state_var);
	free(env);
	free(av);
	return r;
}

/* A call the runs engine carries out (plan, apply, rollback, snapshots). */
struct pl_mcp_rjob {
	struct pl_mcp_host *h;
	struct pl_mcp_call *call;
	const struct tool_info *t;
	long long run;     /* the run, once it began (apply, rollback) */
	bool cancel_asked; /* before it began */
	double progress;
	struct pl_mcp_rjob *next;
};

static void
rjob_free(struct pl_mcp_rjob *rj)
{
	struct pl_mcp_host *h = rj->h;
	struct pl_mcp_rjob **pp;

	for (pp = &h->rjobs; *pp && *pp != rj; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = rj->next;
	free(rj);
	if (h->njobs == 0 && h->rjobs == NULL && h->on_idle)
		h->on_idle(h->idle_arg);
}

static void
on_engine_done(int err, const json_t *res, const char *errmsg, void *arg)
{
	struct pl_mcp_rjob *rj = arg;
	json_t *v;
	char *text;

	if (err != 0) {
		call_error(rj->call, "%s refused: %s", rj->t->cmd,
			   errmsg ? errmsg : pl_strerror(err));
		rjob_free(rj);
		return;
	}
	if (!strcmp(rj->t->cmd, "plan")) { /* the plan as plan -o json, with its id */
		v = json_deep_copy(json_object_get(res, "plan"));
		json_object_set_new(v, "plan_id", json_string(pl_json_str(res, "id")));
		free(rj->h->latest_plan);
		rj->h->latest_plan = pl_strdup(pl_json_str(res, "id"));
	} else {
		v = json_deep_copy(res);
	}
	text = pl_json_compact(v);
	pl_mcp_call_done(rj->call, result(json_is_false(json_object_get(v, "ok")) ||
						  (json_is_string(json_object_get(v, "status")) &&
						   strcmp(pl_json_str(v, "status"), "ok") != 0),
					  text, structured(v)));
	free(text);
	rjob_free(rj);
}

static void
on_engine_started(int err, const json_t *res, const char *errmsg, void *arg)
{
	struct pl_mcp_rjob *rj = arg;
	char msg[160];

	if (err != 0) { /* refused: nothing was done, nothing follows */
		on_engine_done(err, res, errmsg, arg);
		return;
	}
	rj->run = pl_json_int(res, "run", 0);
	snprintf(msg, sizeof(msg), "run %lld began: %lld changes", rj->run,
		 pl_json_int(res, "total", 0));
	pl_mcp_call_progress(rj->call, ++rj->progress, 0, msg);
	if (rj->cancel_asked)
		pl_serve_run_cancel(rj->h->runs, rj->run, NULL);
}

/* Each step of each change is a progress notification. */
static void
on_engine_progress(const json_t *ev, void *arg)
{
	struct pl_mcp_rjob *rj = arg;
	char msg[300];

	if (pl_json_str(ev, "guest") == NULL) /* the run itself */
		snprintf(msg, sizeof(msg), "%.20s run %lld: %lld of %lld changes done%s",
			 pl_json_str_or(ev, "kind", "?"), pl_json_int(ev, "run", 0),
			 pl_json_int(ev, "finished", 0), pl_json_int(ev, "total", 0),
			 json_is_true(json_object_get(ev, "stopped")) ? ", stopping" : "");
	else
		snprintf(msg, sizeof(msg), "%.80s %.20s: %.40s%s%.120s (%lld of %lld done)",
			 pl_json_str(ev, "guest"), pl_json_str_or(ev, "action", ""),
			 pl_json_str_or(ev, "step", ""),
			 pl_json_str(ev, "error") ? " failed: " : "",
			 pl_json_str_or(ev, "error", ""), pl_json_int(ev, "finished", 0),
			 pl_json_int(ev, "total", 0));
	pl_mcp_call_progress(rj->call, ++rj->progress, 0, msg);
}

static int
engine_start(struct pl_mcp_sess *ss, struct pl_mcp_rjob *rj, const json_t *args, char **errmsg)
{
	struct pl_serve_runs *rs = ss->h->runs;
	const char *tool = rj->t->cmd, *guest = pl_json_str(args, "guest");
	const char *name = pl_json_str(args, "name");
	struct pl_serve_run_cbs cbs = { on_engine_started, on_engine_progress, on_engine_done, rj };
	char who[200];

	snprintf(who, sizeof(who), "MCP client %s%s%s%s", pl_mcp_client(ss->m),
		 ss->token[0] ? " (token " : "", ss->token, ss->token[0] ? ")" : "");
	if (!strcmp(tool, "plan")) {
		struct pl_serve_plan_opts o = {
			pl_json_bool(args, "reboot", false),
			pl_json_bool(args, "allow_replace", false),
			pl_json_bool(args, "allow_delete", false),
			pl_json_bool(args, "no_snapshot", false),
			pl_json_str(args, "profile"),
		};

		return pl_serve_plan_start(rs, &o, who, on_engine_done, rj, errmsg);
	}
	if (!strcmp(tool, "apply")) {
		struct pl_serve_apply_opts o = { (int)pl_json_int(args, "jobs", 0),
						 pl_json_bool(args, "allow_delete", false),
						 pl_json_bool(args, "no_backup", false) };

		return pl_serve_apply_start(rs, pl_json_str(args, "plan_id"), &o, who, &cbs,
					    errmsg);
	}
	if (!strcmp(tool, "rollback")) {
		const char *run = pl_json_str(args, "run");
		long long id = 0;
		int r;

		if (run && pl_str_to_ll(run, 1, 1LL << 53, &id) != 0)
			return pl_seterr(errmsg, PL_EINVAL, "run is a run's number, not '%.32s'",
					 run);
		if (run == NULL && (r = pl_runs_newest(ss->h->s->state, &id, NULL, errmsg)) != 0)
			return r;
		if (id == 0)
			return pl_seterr(errmsg, PL_ENOENT, "no apply or destroy to roll back");
		return pl_serve_rollback_start(rs, id, pl_json_bool(args, "overwrite", false), who,
					       &cbs, errmsg);
	}
	if (!strcmp(tool, "snapshot"))
		return pl_serve_snapshot_create(
			rs, guest, name, pl_json_bool(args, "vmstate", false),
			pl_json_str(args, "description"), who, on_engine_done, rj, errmsg);
	if (!strcmp(tool, "snapshot-rollback"))
		return pl_serve_snapshot_rollback(rs, guest, name, false, who, on_engine_done, rj,
						  errmsg);
	return pl_serve_snapshot_delete(rs, guest, name, who, on_engine_done, rj, errmsg);
}

static void
call_tool(struct pl_mcp *m, struct pl_mcp_call *c, const char *tool, const json_t *args0, void *arg)
{
	struct pl_mcp_sess *ss = arg;
	const struct tool_info *t = tool_find(tool);
	const struct pl_cmd *cmd = t ? pl_cmd_find(tool) : NULL;
	json_t *args = args0 ? json_incref((json_t *)args0) : json_object();
	json_t *argv = NULL, *pos = NULL;
	struct pl_mcp_job *j = NULL;
	char *err = NULL;

	if (t == NULL || (cmd == NULL && t->summary == NULL)) {
		pl_mcp_call_fail(c, PL_RPC_INVALID_PARAMS, "Unknown tool (tools/list lists them)");
		goto out;
	}
	if (t->role > ss->role) {
		call_error(
			c,
			"%s changes the cluster: refused, this session may only read (pvelab mcp "
			"--allow-write, or a token with the %s role over HTTP)",
			tool, pl_serve_role_name(t->role));
		goto out;
	}
	argv = json_pack("[s,s,s]", ss->h->exe, "-o", "json");
	pos = json_array();
	if (build_argv(t, cmd, args, argv, &err) != 0 || add_positionals(t, args, pos, &err) != 0 ||
	    (t->confirm && check_confirm(t, args, &err) != 0)) {
		call_error(c, "%s", err);
		goto out;
	}
	if ((t->hints & H_FAST) && !json_is_true(json_object_get(args, "live"))) {
		json_t *v = fast_cached(ss, tool, args);
		int r = v ? 0 : fast_answer(ss, tool, args, &v, &err);

		if (r == 0) {
			char *text = pl_json_compact(v);

			pl_mcp_call_done(c, result(false, text, structured(v)));
			free(text);
		} else {
			call_error(c, "%s", err ? err : pl_strerror(r));
		}
		goto out;
	}
	if (t->hints & H_ENGINE) {
		struct pl_mcp_rjob *rj = pl_calloc(1, sizeof(*rj));

		rj->h = ss->h;
		rj->call = c;
		rj->t = t;
		rj->next = ss->h->rjobs;
		ss->h->rjobs = rj;
		pl_mcp_call_set_data(c, rj);
		if (ss->h->runs == NULL) {
			call_error(c,
				   "%s needs a cluster (cluster: in pvelab.yaml, or PVELAB_URL and "
				   "PVELAB_TOKEN)",
				   tool);
			rjob_free(rj);
		} else if (engine_start(ss, rj, args, &err) != 0) {
			call_error(c, "%s refused: %s", tool, err);
			rjob_free(rj);
		} else {
			pl_log_info("mcp: %s asked for %s", pl_mcp_client(m), tool);
		}
		goto out;
	}
	j = pl_calloc(1, sizeof(*j));
	j->h = ss->h;
	j->next = ss->h->jobs;
	ss->h->jobs = j;
	ss->h->njobs++;
	j->call = c;
	j->t = t;
	j->fd[0] = j->fd[1] = -1;
	pl_buf_init(&j->out, 0);
	pl_buf_init(&j->err, 65536);
	if (ss->h->s->cfg || ss->h->s->ctx->config_given) {
		json_array_insert_new(argv, 1, json_string("-c"));
		json_array_insert_new(argv, 2, json_string(ss->h->s->ctx->config_path));
	}
	if (pl_mcp_call_wants_progress(c))
		json_array_append_new(argv, json_string("-v"));
	json_array_append_new(argv, json_string(tool));
	if (!strcmp(tool, "destroy")) /* confirm was its confirmation */
		json_array_append_new(argv, json_string("--yes"));
	json_array_append_new(argv, json_string("--"));
	json_array_extend(argv, pos);
	if (spawn(j, argv, &err) != 0) {
		call_error(c, "%s", err);
		job_free(j);
		goto out;
	}
	j->timer = evtimer_new(ss->h->s->base, on_job_timeout, j);
	{
		struct timeval tv = { (t->hints & H_RO) ? 300 : 3600, 0 }; /* then Ctrl-C */

		evtimer_add(j->timer, &tv);
	}
	pl_mcp_call_set_data(c, j);
	pl_log_info("mcp: %s runs %s (pid %d)", pl_mcp_client(m), tool, (int)j->pid);
out:
	json_decref(args);
	json_decref(argv);
	json_decref(pos);
	free(err);
}

/* notifications/cancelled: Ctrl-C for the command, or the engine's cancel
 * for an apply or rollback (nothing new starts, the run is recorded
 * interrupted); its answer is dropped. */
static void
cancel_tool(struct pl_mcp *m, struct pl_mcp_call *c, void *arg)
{
	struct pl_mcp_sess *ss = arg;
	void *data = pl_mcp_call_data(c);

	for (struct pl_mcp_rjob *rj = ss->h->rjobs; rj; rj = rj->next)
		if (rj == data) {
			pl_log_info("mcp: %s cancelled by the client", rj->t->cmd);
			if (rj->run)
				pl_serve_run_cancel(ss->h->runs, rj->run, NULL);
			else
				rj->cancel_asked = true;
			return;
		}
	for (struct pl_mcp_job *j = ss->h->jobs; j; j = j->next)
		if (j == data && j->pid > 0) {
			pl_log_info("mcp: %s cancelled by the client: interrupting pid %d",
				    j->t->cmd, (int)j->pid);
			kill(j->pid, SIGINT);
			return;
		}
}

/* ---- the session ----------------------------------------------------- */

static int
method(struct pl_mcp *m, const char *name, const json_t *params, json_t **res, char **errmsg,
       void *arg)
{
	struct pl_mcp_sess *ss = arg;

	if (!strcmp(name, "tools/list")) {
		*res = tools_list(ss);
		return 0;
	}
	if (!strcmp(name, "resources/list"))
		return pl_mcp_resources_list(ss, params, res, errmsg);
	if (!strcmp(name, "resources/templates/list")) {
		*res = json_pack("{s:[{s:s,s:s,s:s,s:s,s:s}]}", "resourceTemplates", "uriTemplate",
				 PL_MCP_GUEST_URI "{guest}", "name", "guest", "title", "A guest",
				 "mimeType", "application/json", "description",
				 "a guest by name or vmid: its config and live state");
		return 0;
	}
	if (!strcmp(name, "resources/read"))
		return pl_mcp_resources_read(ss, params, res, errmsg);
	if (!strcmp(name, "resources/subscribe"))
		return pl_mcp_subscribe(ss, params, true, res, errmsg);
	if (!strcmp(name, "resources/unsubscribe"))
		return pl_mcp_subscribe(ss, params, false, res, errmsg);
	if (!strcmp(name, "prompts/list")) {
		*res = pl_mcp_prompts_list();
		return 0;
	}
	if (!strcmp(name, "prompts/get"))
		return pl_mcp_prompts_get(ss, params, res, errmsg);
	if (!strcmp(name, "logging/setLevel")) {
		*res = json_object();
		return 0;
	}
	return PL_RPC_METHOD_NOT_FOUND;
}

static const struct pl_mcp_ops ops = { method, call_tool, cancel_tool };

struct pl_mcp_sess *
pl_mcp_sess_new(struct pl_mcp_host *h, int role, pl_mcp_send_fn send, void *arg)
{
	struct pl_mcp_sess *ss = pl_calloc(1, sizeof(*ss));

	ss->h = h;
	ss->role = role;
	ss->subs = json_object();
	ss->m = pl_mcp_new(&ops, ss, send, arg);
	ss->next = h->sessions;
	h->sessions = ss;
	return ss;
}

void
pl_mcp_sess_free(struct pl_mcp_sess *ss)
{
	struct pl_mcp_sess **pp;

	if (ss == NULL)
		return;
	for (pp = &ss->h->sessions; *pp && *pp != ss; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = ss->next;
	pl_mcp_free(ss->m);
	json_decref(ss->subs);
	free(ss);
}

int
pl_mcp_host_init(struct pl_mcp_host *h, struct pl_session *s, struct pl_serve_runs *runs,
		 char **errmsg)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	memset(h, 0, sizeof(*h));
	if (n <= 0)
		return pl_seterr(errmsg, PL_EIO, "cannot find this program (/proc/self/exe): %s",
				 strerror(errno));
	exe[n] = '\0';
	h->s = s;
	h->runs = runs;
	h->exe = pl_strdup(exe);
	h->cache = json_object();
	h->poll_ms = 1000;
	h->poll = event_new(s->base, -1, EV_PERSIST, pl_mcp_poll, h);
	event_add(h->poll, &(struct timeval){ h->poll_ms / 1000, (h->poll_ms % 1000) * 1000 });
	return 0;
}

void
pl_mcp_host_release(struct pl_mcp_host *h)
{
	if (h->poll)
		event_free(h->poll);
	h->on_idle = NULL;
	while (h->jobs) { /* their sessions are gone: nobody waits for them */
		struct pl_mcp_job *j = h->jobs;

		kill(j->pid, SIGKILL);
		while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
			;
		pl_mcp_call_done(j->call, NULL);
		job_free(j);
	}
	while (h->rjobs) { /* the engine calls them no more */
		struct pl_mcp_rjob *rj = h->rjobs;

		pl_serve_runs_forget(h->runs, rj);
		pl_mcp_call_done(rj->call, NULL);
		rjob_free(rj);
	}
	json_decref(h->cache);
	free(h->cache_key);
	free(h->latest_plan);
	free(h->exe);
	memset(h, 0, sizeof(*h));
}
