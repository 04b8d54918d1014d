/*
 * Act commands' engine: one live /cluster/resources to find each guest's node,
 * then POSTs in parallel through the client's queue, each followed by a task
 * wait; a line per guest as it finishes; the tasks are remembered in the state.
 */
#include "core/common.h"
#include "cmd/act.h"
#include "cmd/connect.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "plan/runs.h"
#include "pve/client.h"
#include "state/state.h"

#include <time.h>

const struct pl_opt pl_act_opts[] = {
	{ "timeout", 0, "SECS", "give up waiting for each task after SECS (default 600)" },
	{ NULL, 0, NULL, NULL },
};

const struct pl_opt pl_act_stop_opts[] = {
	{ "timeout", 0, "SECS", "give up waiting for each task after SECS (default 600)" },
	{ "overrule-shutdown", 0, NULL, "abort a shutdown still waiting on the guest (PVE 8.1+)" },
	{ NULL, 0, NULL, NULL },
};

const struct pl_opt pl_act_reboot_opts[] = {
	{ "timeout", 0, "SECS", "give each guest SECS to power down (PVE's default: 60)" },
	{ NULL, 0, NULL, NULL },
};

const struct pl_opt pl_act_shutdown_opts[] = {
	{ "timeout", 0, "SECS", "give each guest SECS to power down (PVE's default: 60)" },
	{ "force-stop", 0, NULL, "stop a guest still running when the timeout passes" },
	{ NULL, 0, NULL, NULL },
};

struct job {
	struct pl_session *s;
	struct pl_ctx *ctx;
	const char *action;
	const char *method; /* NULL: POST */
	const json_t *params;
	long long vmid;
	char name[128], node[64], type[8];
	char *upid;
	struct timespec t0;
	long timeout_ms;
	bool done, ok;
	char *msg;
	json_t *results;
	pl_act_cb cb; /* pl_act_start's caller: called with the result, then the job freed */
	void *arg;
	const char *suffix;
};

static void
job_finish(struct job *j)
{
	if (j->cb == NULL)
		return;
	j->cb(json_array_get(j->results, json_array_size(j->results) - 1), j->arg);
	json_decref(j->results);
	json_decref((json_t *)j->params);
	free(j->upid);
	free(j->msg);
	free(j);
}

static double
since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
job_done(struct job *j, bool ok, const char *msg)
{
	j->done = true;
	j->ok = ok;
	j->msg = msg ? pl_strdup(msg) : NULL;
	json_array_append_new(j->results,
			      json_pack("{s:I,s:s,s:s,s:s,s:b,s:s?,s:s?,s:f}", "vmid",
					(json_int_t)j->vmid, "name", j->name, "node", j->node,
					"action", j->action, "ok", ok, "upid", j->upid, "error", msg,
					"seconds", since(&j->t0)));
	if (j->ctx == NULL || j->ctx->output == PL_OUT_JSON)
		return job_finish(j);
	if (ok && pl_chatty(j->ctx))
		printf("%s (%lld): %s %sok%s (%.1f s)\n", j->name, j->vmid, j->action,
		       pl_color(j->ctx, PL_C_GREEN), pl_color(j->ctx, PL_C_RESET), since(&j->t0));
	else if (!ok)
		fprintf(stderr, "pvelab: %s '%s' (%lld) failed: %s\n", j->action, j->name, j->vmid,
			msg);
	fflush(stdout);
	job_finish(j);
}

static void
record_task(struct job *j, const char *status, const char *exitstatus)
{
	json_t *t;

	if (j->s->state == NULL || j->upid == NULL)
		return;
	t = json_pack("{s:s,s:s,s:s,s:I,s:s,s:I,s:s,s:s?}", "upid", j->upid, "node", j->node,
		      "type", j->action, "vmid", (json_int_t)j->vmid, "id", "", "starttime",
		      (json_int_t)time(NULL), "status", status, "exitstatus", exitstatus);
	json_object_set_new(t, "id", json_sprintf("%lld", j->vmid));
	pl_state_task_put(j->s->state, j->upid, t, NULL);
	json_decref(t);
}

/* What to do about the failures power actions meet most: a guest that
 * ignores the ACPI power button, and a stop held up by that shutdown. */
static const char *
hint(const struct job *j, const char *message)
{
	if (message == NULL)
		return "";
	if (strstr(message, "powerdown failed - got timeout"))
		return strcmp(j->action, "reboot")
			       ? " (the guest did not power down in time: does its OS act on ACPI? "
				 "'pvelab stop' stops it now; 'pvelab shutdown --force-stop' stops "
				 "it when the timeout passes)"
			       : " (the guest did not power down in time: does its OS act on ACPI? "
				 "'pvelab stop' then 'pvelab start' restarts it)";
	if (!strcmp(j->action, "stop") && strstr(message, "can't lock file") &&
	    !json_object_get(j->params, "overrule-shutdown"))
		return " (a task holds the guest; if it is a shutdown still waiting, 'pvelab stop "
		       "--overrule-shutdown' aborts it first, on PVE 8.1 or later)";
	return "";
}

/* What list and describe show once the action is done (suspend: PVE's
 * resources keep "running" for a paused VM, so the store is left alone). */
static void
record_status(struct job *j)
{
	static const char *const after[][2] = {
		{ "start", "running" }, { "stop", "stopped" },	 { "shutdown", "stopped" },
		{ "reboot", "running" }, { "resume", "running" },
	};

	if (j->s->state == NULL)
		return;
	for (size_t i = 0; i < PL_ARRAY_LEN(after); i++)
		if (!strcmp(j->action, after[i][0]))
			pl_state_guest_set_status(j->s->state, j->vmid, after[i][1], NULL);
}

static bool already(const char *action, const char *message);
static void report_unchanged(struct job *j);

static void
task_cb(int err, const char *exitstatus, const char *errmsg, void *arg)
{
	struct job *j = arg;
	char *m;

	if (err && exitstatus && already(j->action, exitstatus)) {
		/* PVE's vm_start finds a running VM inside its task */
		record_task(j, exitstatus, exitstatus);
		report_unchanged(j);
		return;
	}
	m = err ? pl_asprintf("%s%s", errmsg, hint(j, errmsg)) : NULL;

	record_task(j, err ? (exitstatus ? exitstatus : "error") : exitstatus, exitstatus);
	if (err == 0)
		record_status(j);
	job_done(j, err == 0, m);
	free(m);
}

/* PVE refused because the guest is already where the action leads. */
static bool
already(const char *action, const char *message)
{
	if (!strcmp(action, "start"))
		return strstr(message, "already running") != NULL;
	if (!strcmp(action, "stop") || !strcmp(action, "shutdown"))
		return strstr(message, "not running") != NULL;
	return false;
}

/* Nothing to do is success, as Ansible's "ok". (cluster/resources can lag
 * behind, so this is decided by the node's answer.) */
static void
report_unchanged(struct job *j)
{
	record_status(j);
	if (j->ctx && pl_chatty(j->ctx))
		printf("%s (%lld): already %s\n", j->name, j->vmid,
		       strcmp(j->action, "start") ? "stopped" : "running");
	j->done = j->ok = true;
	json_array_append_new(j->results,
			      json_pack("{s:I,s:s,s:s,s:s,s:b,s:b}", "vmid", (json_int_t)j->vmid,
					"name", j->name, "node", j->node, "action", j->action, "ok",
					1, "unchanged", 1));
	job_finish(j);
}

static void
post_cb(const struct pl_pve_result *res, void *arg)
{
	struct job *j = arg;
	const char *upid = json_string_value(res->data);

	if (res->err == PL_EHTTP && res->message && already(j->action, res->message)) {
		report_unchanged(j);
		return;
	}
	if (res->err == PL_EHTTP && res->message && res->status != 403) {
		/* (a refusal's errmsg says which privilege to grant, to whom) */
		/* PVE's own words say it best ("VM 100 already running"), with
		 * the parameters it names ("snapname: invalid configuration ID") */
		struct pl_buf why;
		const char *k;
		json_t *v;

		pl_buf_init(&why, 4096);
		json_object_foreach((json_t *)res->errors, k, v)
			pl_buf_addf(&why, "%s%s: %s", why.len ? "; " : " (", k,
				    json_is_string(v) ? json_string_value(v) : "invalid");
		if (why.len)
			pl_buf_addch(&why, ')');
		for (size_t i = 0; i < why.len; i++)
			if (why.data[i] == '\n' || why.data[i] == '\r')
				why.data[i] = ' ';
		char *m = pl_asprintf("%s%s (HTTP %ld%s)%s", res->message, why.data, res->status,
				      res->status == 595 ? ": its node did not answer; is it up?" : "",
				      hint(j, res->message));

		pl_buf_release(&why);
		job_done(j, false, m);
		free(m);
		return;
	}
	if (res->err) {
		job_done(j, false, res->errmsg);
		return;
	}
	if (upid == NULL) {
		/* Some calls finish at once and return null. */
		record_status(j);
		job_done(j, true, NULL);
		return;
	}
	j->upid = pl_strdup(upid);
	record_task(j, "running", NULL);
	pl_pve_task_wait(j->s->pve, upid, j->timeout_ms, task_cb, j);
}

/* Check the guest g (its resource entry) and send the action's request; the
 * job ends through job_done. */
static void
job_send(struct job *j, const json_t *g, const char *given, const char *suffix)
{
	const char *lock;
	char *path;

	j->vmid = pl_json_int(g, "vmid", 0);
	snprintf(j->name, sizeof(j->name), "%s", pl_json_str_or(g, "name", given));
	snprintf(j->node, sizeof(j->node), "%s", pl_json_str_or(g, "node", ""));
	snprintf(j->type, sizeof(j->type), "%s", pl_json_str_or(g, "type", "qemu"));
	lock = pl_json_str(g, "lock");
	if (lock && *lock && !(strcmp(j->action, "resume") == 0 && !strcmp(lock, "suspended"))) {
		char *m =
			pl_asprintf("guest is locked by '%s' (wait for that operation to "
				    "finish, or clear a stale lock with '%s unlock %lld' on "
				    "node '%s')",
				    lock, strcmp(j->type, "lxc") ? "qm" : "pct", j->vmid, j->node);

		job_done(j, false, m);
		free(m);
		return;
	}
	if (j->params && json_object_get(j->params, "vmstate") && !strcmp(j->type, "lxc")) {
		job_done(j, false, "containers have no RAM state to save (drop --vmstate)");
		return;
	}
	path = pl_asprintf("/nodes/%s/%s/%lld/%s", j->node, j->type, j->vmid, suffix);
	pl_pve_request(j->s->pve, j->method ? j->method : "POST", path, j->params, post_cb, j);
	free(path);
}

/* Guests in resources for each name; NULL entries for failures (printed). */
static int
run_jobs(struct pl_ctx *ctx, const char *action, const char *suffix, const json_t *params,
	 char **guests, int nguests, long timeout_ms)
{
	struct pl_session s;
	json_t *res = NULL, *results = json_array();
	struct job *jobs = NULL;
	char *err = NULL;
	int failed = 0, rc = PL_EXIT_ERROR;
	long long run_id = 0;

	if (pl_session_open(&s, ctx, PL_NEED_API, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	/* Remember the tasks and the run when there is a state store. */
	run_id = pl_act_run_begin(&s, action);
	if (pl_session_live_guests(&s, &res, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	jobs = pl_calloc((size_t)nguests, sizeof(*jobs));
	for (int i = 0; i < nguests; i++) {
		struct job *j = &jobs[i];
		const json_t *g = pl_guest_lookup(res, guests[i], &err);

		j->s = &s;
		j->ctx = ctx;
		j->action = action;
		j->params = params;
		j->results = results;
		j->timeout_ms = timeout_ms;
		clock_gettime(CLOCK_MONOTONIC, &j->t0);
		if (g == NULL) {
			pl_error("%s", err);
			j->done = true;
			failed++;
			continue;
		}
		job_send(j, g, guests[i], suffix);
	}
	pl_pve_run(s.pve);
	for (int i = 0; i < nguests; i++)
		if (jobs[i].vmid && !jobs[i].ok)
			failed++;
	pl_act_run_end(&s, run_id, failed == 0, json_pack("{s:O}", "guests", results));
	run_id = 0;
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(results);
		results = NULL;
	}
	rc = failed ? PL_EXIT_ERROR : PL_EXIT_OK;
out:
	for (int i = 0; jobs && i < nguests; i++) {
		free(jobs[i].upid);
		free(jobs[i].msg);
	}
	free(jobs);
	json_decref(results);
	json_decref(res);
	free(err);
	if (run_id) /* not ended above: the guests were not found */
		pl_act_run_end(&s, run_id, false, NULL);
	pl_session_close(&s);
	return rc;
}

long long
pl_act_run_begin(struct pl_session *s, const char *kind)
{
	long long id = 0;

	if (s->state == NULL) { /* never create a store here */
		struct pl_session tmp;
		char *err = NULL;

		if (pl_session_open(&tmp, s->ctx, PL_NEED_STATE_IF, &err) == 0) {
			s->state = tmp.state;
			tmp.state = NULL;
		}
		pl_session_close(&tmp);
		free(err);
	}
	if (s->state && pl_runs_begin(s->state, kind, &id, NULL) != 0)
		id = 0;
	return id;
}

void
pl_act_run_end(struct pl_session *s, long long id, bool ok, json_t *result)
{
	if (id && s->state)
		pl_runs_finish(s->state, id, ok ? "ok" : "failed", result, NULL);
	json_decref(result);
}

int
pl_act_power(struct pl_ctx *ctx, const struct pl_cmd *cmd, const char *action, int argc,
	     char **argv)
{
	struct pl_args a;
	long long timeout = 600, wait;
	bool to_guest = !strcmp(action, "shutdown") || !strcmp(action, "reboot"), timed = false;
	json_t *params;
	char *suffix;
	int r;

	/* option 0 of every power command's table is --timeout */
	if ((r = pl_args_parse(&a, cmd, ctx, argc, argv)) != 0 ||
	    (r = pl_args_num(&a, 0, 1, 86400, &timeout)) != 0)
		return pl_args_exit(r);
	timed = pl_args_has(&a, 0);
	params = json_object();
	for (int i = 1; cmd->opts[i].name; i++) /* flags PVE takes as they are */
		if (pl_args_has(&a, i))
			json_object_set_new(params, !strcmp(cmd->opts[i].name, "force-stop")
							    ? "forceStop"
							    : cmd->opts[i].name,
					    json_integer(1));
	/* A shutdown's (or reboot's) timeout is the guest's to power down in
	 * (PVE's own, 60 s when not given); the task may then take a while to
	 * force a stop, or to start the guest again. */
	wait = timeout;
	if (to_guest && timed) {
		json_object_set_new(params, "timeout", json_integer(timeout));
		wait = timeout + 60;
	}
	suffix = pl_asprintf("status/%s", action);
	r = run_jobs(ctx, action, suffix, json_object_size(params) ? params : NULL, a.pos, a.npos,
		     (long)wait * 1000);
	free(suffix);
	json_decref(params);
	return r;
}

void
pl_act_start(struct pl_session *s, const char *action, const json_t *guest, const json_t *params,
	     long timeout_ms, pl_act_cb cb, void *arg)
{
	char *suffix = pl_asprintf("status/%s", action);

	pl_act_call(s, action, "POST", suffix, guest, params, timeout_ms, cb, arg);
	free(suffix);
}

void
pl_act_call(struct pl_session *s, const char *action, const char *method, const char *suffix,
	    const json_t *guest, const json_t *params, long timeout_ms, pl_act_cb cb, void *arg)
{
	struct job *j = pl_calloc(1, sizeof(*j));

	j->s = s;
	j->action = action;
	j->method = method;
	j->params = json_incref((json_t *)params);
	j->results = json_array();
	j->timeout_ms = timeout_ms;
	j->cb = cb;
	j->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &j->t0);
	job_send(j, guest, pl_json_str_or(guest, "name", "?"), suffix);
}

int
pl_act_snapshot(struct pl_ctx *ctx, const struct pl_cmd *cmd, int argc, char **argv)
{
	struct pl_args a;
	const char *desc = NULL;
	bool vmstate = false;
	long long timeout = 600;
	json_t *p;
	int r;

	if ((r = pl_args_parse(&a, cmd, ctx, argc, argv)) != 0 ||
	    (r = pl_args_num(&a, 2, 1, 86400, &timeout)) != 0)
		return pl_args_exit(r);
	vmstate = pl_args_has(&a, 0);
	desc = pl_args_str(&a, 1, NULL);
	p = json_pack("{s:s}", "snapname", a.pos[1]);
	if (vmstate)
		json_object_set_new(p, "vmstate", json_integer(1));
	if (desc)
		json_object_set_new(p, "description", json_string(desc));
	r = run_jobs(ctx, "snapshot", "snapshot", p, a.pos, 1, (long)timeout * 1000);
	json_decref(p);
	return r;
}
