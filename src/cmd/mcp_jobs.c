/*
 * The work behind an MCP tool call (mcp_impl.h): a command of this binary
 * run with -o json in a child process on the loop (its stdout the answer,
 * its stderr lines progress, Ctrl-C on cancel or timeout), or a call the
 * runs engine carries out (plan, apply, rollback, snapshots) with its
 * progress events.
 */
#include "core/common.h"
#include "cmd/mcp_impl.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "plan/runs.h"
#include "serve/runs.h"
#include "state/state.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Who asks, as runs record it: "MCP client NAME VERSION", and the token
 * over HTTP. */
static void
who_asks(const struct pl_mcp_sess *ss, char *out, size_t size)
{
	snprintf(out, size, "MCP client %s%s%s%s", pl_mcp_client(ss->m),
		 ss->token[0] ? " (token " : "", ss->token, ss->token[0] ? ")" : "");
}

/* A command running for a call. It outlives its session when the client
 * goes away first, so it keeps the host. */
struct pl_mcp_job {
	struct pl_mcp_host *h;
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

		pl_mcp_call_done(j->call, pl_mcp_result(false, text, pl_mcp_structured(v)));
		free(text);
	} else {
		msg = job_message(j, code);
		/* a command that answered with JSON and failed (validate: invalid) */
		pl_mcp_call_done(j->call,
				 pl_mcp_result(true, msg, v ? pl_mcp_structured(v) : NULL));
		free(msg);
	}
	job_free(j);
}

/* Start argv; its environment is ours but PVELAB_STATE, the store of this
 * server, and PVELAB_VIA, who asks (plan/runs.h: its runs record it). */
static int
spawn(struct pl_mcp_job *j, json_t *argv, const char *who, char **errmsg)
{
	struct pl_mcp_host *h = j->h;
	posix_spawn_file_actions_t fa;
	char **av = pl_calloc(json_array_size(argv) + 1, sizeof(*av));
	char **env;
	size_t n = 0, i;
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, r;
	/* with clusters: the config says where each one's store is, from the
	 * same environment: the command finds the one of its --cluster */
	bool own_state = !(h->s->cfg && pl_config_clusters(h->s->cfg));
	char *state_var = own_state ? pl_asprintf("PVELAB_STATE=%s", h->s->state_path) : NULL;
	char *via_var = pl_asprintf(PL_RUNS_VIA_ENV "=%s", who);
	json_t *e;

	json_array_foreach(argv, i, e)
		av[i] = (char *)json_string_value(e);
	while (environ[n])
		n++;
	env = pl_calloc(n + 5, sizeof(*env));
	for (i = n = 0; environ[i]; i++)
		if ((!own_state || strncmp(environ[i], "PVELAB_STATE=", 13)) &&
		    strncmp(environ[i], PL_RUNS_VIA_ENV "=", sizeof(PL_RUNS_VIA_ENV)))
			env[n++] = environ[i];
	if (state_var)
		env[n++] = state_var;
	env[n++] = via_var;
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
	free(via_var);
	free(env);
	free(av);
	return r;
}

void
pl_mcp_job_start(struct pl_mcp_sess *ss, struct pl_mcp_call *c, const struct tool_info *t,
		 json_t *argv, const json_t *pos)
{
	struct pl_mcp_host *h = ss->h;
	struct pl_mcp_job *j = pl_calloc(1, sizeof(*j));
	struct timeval tv = { (t->hints & H_RO) ? 300 : 3600, 0 }; /* then Ctrl-C */
	char *err = NULL, who[200];

	j->h = h;
	j->next = h->jobs;
	h->jobs = j;
	h->njobs++;
	j->call = c;
	j->t = t;
	j->fd[0] = j->fd[1] = -1;
	pl_buf_init(&j->out, 0);
	pl_buf_init(&j->err, 65536);
	if (h->s->cfg || h->s->ctx->config_given) {
		json_array_insert_new(argv, 1, json_string("-c"));
		json_array_insert_new(argv, 2, json_string(h->s->ctx->config_path));
	}
	if (pl_mcp_call_wants_progress(c))
		json_array_append_new(argv, json_string("-v"));
	json_array_append_new(argv, json_string(t->cmd));
	if (!strcmp(t->cmd, "destroy")) /* confirm was its confirmation */
		json_array_append_new(argv, json_string("--yes"));
	json_array_append_new(argv, json_string("--"));
	json_array_extend(argv, (json_t *)pos);
	who_asks(ss, who, sizeof(who));
	if (spawn(j, argv, who, &err) != 0) {
		pl_mcp_call_error(c, "%s", err);
		free(err);
		job_free(j);
		return;
	}
	j->timer = evtimer_new(h->s->base, on_job_timeout, j);
	evtimer_add(j->timer, &tv);
	pl_mcp_call_set_data(c, j);
	pl_log_info("mcp: %s runs %s (pid %d)", pl_mcp_client(ss->m), t->cmd, (int)j->pid);
}

/* A call the runs engine carries out (plan, apply, rollback, snapshots). */
struct pl_mcp_rjob {
	struct pl_mcp_host *h;
	struct pl_session *s;     /* the cluster it works on */
	struct pl_serve_runs *rs; /* that cluster's engine */
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
		pl_mcp_call_error(rj->call, "%s refused: %s", rj->t->cmd,
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
	pl_mcp_call_done(rj->call,
			 pl_mcp_result(json_is_false(json_object_get(v, "ok")) ||
					       (json_is_string(json_object_get(v, "status")) &&
						strcmp(pl_json_str(v, "status"), "ok") != 0),
				       text, pl_mcp_structured(v)));
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
		pl_serve_run_cancel(rj->rs, rj->run, NULL);
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
	struct pl_serve_runs *rs = rj->rs;
	const char *tool = rj->t->cmd, *guest = pl_json_str(args, "guest");
	const char *name = pl_json_str(args, "name");
	struct pl_serve_run_cbs cbs = { on_engine_started, on_engine_progress, on_engine_done, rj };
	char who[200];

	who_asks(ss, who, sizeof(who));
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
		if (run == NULL && (r = pl_runs_newest(rj->s->state, &id, NULL, errmsg)) != 0)
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

void
pl_mcp_engine_call(struct pl_mcp_sess *ss, struct pl_mcp_call *c, const struct tool_info *t,
		   const json_t *args, const char *cluster)
{
	struct pl_mcp_host *h = ss->h;
	struct pl_mcp_rjob *rj = pl_calloc(1, sizeof(*rj));
	char *err = NULL;

	rj->h = h;
	rj->call = c;
	rj->t = t;
	rj->s = h->s;
	rj->rs = h->runs;
	for (size_t i = 0; i < h->ncl; i++) /* several clusters: the one named */
		if (cluster && !strcmp(h->cl[i].name, cluster)) {
			rj->s = h->cl[i].s;
			rj->rs = h->cl[i].runs;
		}
	rj->next = h->rjobs;
	h->rjobs = rj;
	pl_mcp_call_set_data(c, rj);
	if (h->ncl && cluster == NULL) {
		char *list = pl_mcp_cluster_list(h);

		pl_mcp_call_error(c,
				  "%s needs its cluster: this config has several (%s); pass "
				  "cluster",
				  t->cmd, list);
		free(list);
		rjob_free(rj);
	} else if (rj->rs == NULL) {
		pl_mcp_call_error(c,
				  "%s needs a cluster (cluster: in pvelab.yaml, or PVELAB_URL and "
				  "PVELAB_TOKEN)",
				  t->cmd);
		rjob_free(rj);
	} else if (engine_start(ss, rj, args, &err) != 0) {
		pl_mcp_call_error(c, "%s refused: %s", t->cmd, err);
		rjob_free(rj);
	} else {
		pl_log_info("mcp: %s asked for %s%s%s", pl_mcp_client(ss->m), t->cmd,
			    cluster ? " on cluster " : "", cluster ? cluster : "");
	}
	free(err);
}

void
pl_mcp_jobs_cancel(struct pl_mcp_host *h, void *data)
{
	for (struct pl_mcp_rjob *rj = h->rjobs; rj; rj = rj->next)
		if (rj == data) {
			pl_log_info("mcp: %s cancelled by the client", rj->t->cmd);
			if (rj->run)
				pl_serve_run_cancel(rj->rs, rj->run, NULL);
			else
				rj->cancel_asked = true;
			return;
		}
	for (struct pl_mcp_job *j = h->jobs; j; j = j->next)
		if (j == data && j->pid > 0) {
			pl_log_info("mcp: %s cancelled by the client: interrupting pid %d",
				    j->t->cmd, (int)j->pid);
			kill(j->pid, SIGINT);
			return;
		}
}

void
pl_mcp_jobs_release(struct pl_mcp_host *h)
{
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

		pl_serve_runs_forget(rj->rs, rj);
		pl_mcp_call_done(rj->call, NULL);
		rjob_free(rj);
	}
}
