/*
 * pvelab's MCP calls and sessions (mcp_tools.h): tools/call checks a call's
 * arguments against its tool (mcp_tools.c) and its role, answers status,
 * list, history and discovered in-process from the store, with the same view
 * functions as the CLI (kept while the store is unchanged), hands the rest
 * to a command or the runs engine (mcp_jobs.c), and shapes each answer: the
 * JSON as text and as structuredContent. The session's other methods are
 * here too.
 */
#include "core/common.h"
#include "cmd/mcp_impl.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/views.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "state/state.h"
#include "serve/serve.h"

#include <errno.h>
#include <event2/event.h>
#include <unistd.h>

json_t *
pl_mcp_result(bool error, const char *text, json_t *structured)
{
	json_t *r = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text);

	if (structured)
		json_object_set_new(r, "structuredContent", structured);
	if (error)
		json_object_set_new(r, "isError", json_true());
	return r;
}

void
pl_mcp_call_error(struct pl_mcp_call *c, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pl_mcp_call_done(c, pl_mcp_result(true, msg, NULL));
}

json_t *
pl_mcp_structured(json_t *v)
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
	if (!strcmp(tool, "discovered"))
		return pl_state_discovered(st, out, errmsg);
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
			pl_mcp_prop_name(p->name, name, sizeof(name));
			if (!pl_mcp_tool_skips(t, p->name) && !strcmp(name, key))
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
			json_t *sch = pl_mcp_opt_schema(o), *e;
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

/* The cluster a call names (its cluster argument, one of the config's):
 * *name (the caller's), or NULL when it names none; PL_EINVAL with *errmsg. */
static int
take_cluster(const struct pl_mcp_host *h, const char *tool, const json_t *args, char **name,
	     char **errmsg)
{
	const json_t *v = json_object_get(args, "cluster"), *e;
	json_t *names;
	char *list;
	size_t i;
	int r = 0;

	*name = NULL;
	if (v == NULL)
		return 0;
	if ((names = pl_mcp_cluster_names(h)) == NULL)
		return pl_seterr(errmsg, PL_EINVAL,
				 "unknown argument 'cluster' of tool %s (the config names no "
				 "clusters)",
				 tool);
	json_array_foreach(names, i, e)
		if (json_equal(e, v) && *name == NULL)
			*name = pl_strdup(json_string_value(e));
	json_decref(names);
	if (*name)
		return 0;
	list = pl_mcp_cluster_list(h);
	r = pl_seterr(errmsg, PL_EINVAL,
		      h->ncl ? "unknown cluster '%.60s' (clusters: %s)" :
			       "cluster '%.60s': this server works on cluster '%s' only",
		      json_is_string(v) ? json_string_value(v) : "(not a string)", list);
	free(list);
	return r;
}

static void
call_tool(struct pl_mcp *m, struct pl_mcp_call *c, const char *tool, const json_t *args0, void *arg)
{
	struct pl_mcp_sess *ss = arg;
	const struct tool_info *t = pl_mcp_tool_find(tool);
	const struct pl_cmd *cmd = t ? pl_cmd_find(tool) : NULL;
	json_t *args = args0 ? json_incref((json_t *)args0) : json_object();
	json_t *argv = NULL, *pos = NULL;
	char *err = NULL, *cluster = NULL;
	const char *child_cluster;

	(void)m;
	if (t == NULL || (cmd == NULL && t->summary == NULL)) {
		pl_mcp_call_fail(c, PL_RPC_INVALID_PARAMS, "Unknown tool (tools/list lists them)");
		goto out;
	}
	if (t->role > ss->role) {
		pl_mcp_call_error(
			c,
			"%s changes the cluster: refused, this session may only read (pvelab mcp "
			"--allow-write, or a token with the %s role over HTTP)",
			tool, pl_serve_role_name(t->role));
		goto out;
	}
	if (take_cluster(ss->h, tool, args, &cluster, &err) != 0) {
		pl_mcp_call_error(c, "%s", err);
		goto out;
	}
	if (cluster) { /* a global option, not the tool's */
		json_t *rest = json_copy(args);

		json_object_del(rest, "cluster");
		json_decref(args);
		args = rest;
	}
	argv = json_pack("[s,s,s]", ss->h->exe, "-o", "json");
	/* the command works on the cluster asked for, or this server's one */
	child_cluster = cluster                          ? cluster :
			ss->h->ncl == 0 && ss->h->s->cfg ? pl_config_cluster(ss->h->s->cfg) :
							   NULL;
	if (child_cluster) {
		json_array_append_new(argv, json_string("--cluster"));
		json_array_append_new(argv, json_string(child_cluster));
	}
	pos = json_array();
	if (build_argv(t, cmd, args, argv, &err) != 0 || add_positionals(t, args, pos, &err) != 0 ||
	    (t->confirm && check_confirm(t, args, &err) != 0)) {
		pl_mcp_call_error(c, "%s", err);
		goto out;
	}
	/* several clusters: the command reads each one's store (or the one asked) */
	if ((t->hints & H_FAST) && ss->h->ncl == 0 &&
	    !json_is_true(json_object_get(args, "live"))) {
		json_t *v = fast_cached(ss, tool, args);
		int r = v ? 0 : fast_answer(ss, tool, args, &v, &err);

		if (r == 0) {
			char *text = pl_json_compact(v);

			pl_mcp_call_done(c, pl_mcp_result(false, text, pl_mcp_structured(v)));
			free(text);
		} else {
			pl_mcp_call_error(c, "%s", err ? err : pl_strerror(r));
		}
	} else if (t->hints & H_ENGINE) {
		pl_mcp_engine_call(ss, c, t, args, cluster);
	} else if (ss->h->njobs >= ss->h->max_jobs) {
		/* a protocol error, not the tool's: nothing ran, the same call may
		 * succeed later (N sessions x M calls must not fork N x M processes) */
		char msg[200];

		snprintf(
			msg, sizeof(msg),
			"Server busy: %d commands already run for MCP clients (mcp.max_processes); "
			"try again when one ends",
			ss->h->njobs);
		pl_mcp_call_fail(c, PL_RPC_BUSY, msg);
	} else {
		pl_mcp_job_start(ss, c, t, argv, pos);
	}
out:
	json_decref(args);
	json_decref(argv);
	json_decref(pos);
	free(cluster);
	free(err);
}

/* notifications/cancelled: Ctrl-C for the command, or the engine's cancel
 * for an apply or rollback (nothing new starts, the run is recorded
 * interrupted); its answer is dropped. */
static void
cancel_tool(struct pl_mcp *m, struct pl_mcp_call *c, void *arg)
{
	struct pl_mcp_sess *ss = arg;

	(void)m;
	pl_mcp_jobs_cancel(ss->h, pl_mcp_call_data(c));
}

/* ---- the session ----------------------------------------------------- */

static int
method(struct pl_mcp *m, const char *name, const json_t *params, json_t **res, char **errmsg,
       void *arg)
{
	struct pl_mcp_sess *ss = arg;

	if (!strcmp(name, "tools/list")) {
		*res = pl_mcp_tools_list(ss);
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
	const json_t *max;

	memset(h, 0, sizeof(*h));
	if (n <= 0)
		return pl_seterr(errmsg, PL_EIO, "cannot find this program (/proc/self/exe): %s",
				 strerror(errno));
	exe[n] = '\0';
	h->s = s;
	h->runs = runs;
	h->exe = pl_strdup(exe);
	h->cache = json_object();
	max = s->cfg ? pl_config_get(s->cfg, "/mcp/max_processes") : NULL;
	h->max_jobs = json_is_integer(max) ? (int)json_integer_value(max) : PL_MCP_MAX_PROCESSES;
	h->poll_ms = 1000;
	h->poll = event_new(s->base, -1, EV_PERSIST, pl_mcp_poll, h);
	event_add(h->poll, &(struct timeval){ h->poll_ms / 1000, (h->poll_ms % 1000) * 1000 });
	return 0;
}

void
pl_mcp_host_set_clusters(struct pl_mcp_host *h, const struct pl_mcp_cluster *cl, size_t n)
{
	h->cl = cl;
	h->ncl = n;
}

void
pl_mcp_host_release(struct pl_mcp_host *h)
{
	if (h->poll)
		event_free(h->poll);
	pl_mcp_jobs_release(h);
	json_decref(h->cache);
	free(h->cache_key);
	free(h->latest_plan);
	free(h->exe);
	memset(h, 0, sizeof(*h));
}
