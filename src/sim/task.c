/*
 * Worker tasks: a UPID in PVE's exact format, a log, a timer of --task-ms
 * after which the task's effect is applied and it ends with "OK" or an error;
 * the guest lock it holds is released then.
 */
#include "core/common.h"

#include <event2/event.h>
#include <stdarg.h>
#include <time.h>

#include "core/err.h"
#include "sim/internal.h"

#define PL_SIM_MAX_TASKS 4000

static void
task_free(struct pl_sim_task *t)
{
	if (!t)
		return;
	if (t->ev)
		event_free(t->ev);
	free(t->upid);
	free(t->type);
	free(t->id);
	free(t->user);
	free(t->exitstatus);
	json_decref(t->log);
	json_decref(t->args);
	free(t);
}

void
pl_sim_task_log(struct pl_sim_task *t, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(t->log, json_string(buf));
}

void
pl_sim_task_fail(struct pl_sim_task *t, const char *msg)
{
	free(t->exitstatus);
	t->exitstatus = pl_strdup(msg);
}

static void
task_finish(struct pl_sim_task *t)
{
	struct pl_sim *s = t->sim;
	struct pl_sim_guest *g;

	if (t->done)
		t->done(s, t);
	if (t->unlock && t->vmid && (g = pl_sim_guest_find(s, t->vmid)) != NULL) {
		g->lock[0] = 0;
		pl_sim_guest_touch(s, g);
	}
	t->running = false;
	t->end = time(NULL);
	if (t->exitstatus) {
		pl_sim_task_log(t, "TASK ERROR: %s", t->exitstatus);
	} else {
		t->exitstatus = pl_strdup("OK");
		pl_sim_task_log(t, "TASK OK");
	}
	s->dirty = true;
	s->gen++;
	for (size_t i = 0; i < s->nguests; i++) {
		struct pl_sim_guest *hg = s->guests[i];

		if (hg->holder == t) {
			uint32_t vmid = hg->vmid;

			hg->holder = NULL;
			pl_sim_lock_released(s, vmid);
			break;
		}
	}
}

void
pl_sim_task_doom(struct pl_sim_task *t, const char *msg)
{
	t->done = NULL;
	pl_sim_task_fail(t, msg);
}

void
pl_sim_task_run_for(struct pl_sim_task *t, long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(t->ev, &tv);
}

void
pl_sim_task_abort(struct pl_sim_task *t, const char *why)
{
	if (!t->running)
		return;
	evtimer_del(t->ev);
	t->done = NULL;
	pl_sim_task_fail(t, why);
	task_finish(t);
}

static void
task_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pl_sim_task *t = arg;

	(void)fd;
	(void)what;
	task_finish(t);
}

static void
tasks_trim(struct pl_sim *s)
{
	size_t drop = 0;

	if (s->ntasks < PL_SIM_MAX_TASKS)
		return;
	for (size_t i = 0; i < s->ntasks && drop < s->ntasks / 4; i++) {
		if (s->tasks[i]->running)
			continue;
		task_free(s->tasks[i]);
		s->tasks[i] = NULL;
		drop++;
	}
	{
		size_t o = 0;

		for (size_t i = 0; i < s->ntasks; i++)
			if (s->tasks[i])
				s->tasks[o++] = s->tasks[i];
		s->ntasks = o;
	}
}

struct pl_sim_task *
pl_sim_task_start(struct pl_sim *s, int node, const char *type, const char *id, const char *user,
		  uint32_t vmid, pl_sim_task_fn done, json_t *args)
{
	struct pl_sim_task *t = pl_calloc(1, sizeof(*t));
	int64_t now = time(NULL);
	uint32_t pstart = (uint32_t)((now - s->nodes[node].boot) * 100);

	tasks_trim(s);
	t->sim = s;
	t->node = node;
	t->type = pl_strdup(type);
	t->id = pl_strdup(id ? id : "");
	t->user = pl_strdup(user);
	t->start = now;
	t->running = true;
	t->vmid = vmid;
	t->unlock = vmid != 0;
	t->done = done;
	t->args = args;
	t->log = json_array();
	t->upid = pl_asprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", s->nodes[node].name,
			      s->next_pid++, pstart, (uint32_t)now, type, t->id, user);
	s->tasks = pl_realloc(s->tasks, (s->ntasks + 1) * sizeof(*s->tasks));
	s->tasks[s->ntasks++] = t;
	t->ev = evtimer_new(s->base, task_timer, t);
	pl_sim_task_run_for(t, s->opts.task_ms);
	return t;
}

struct pl_sim_task *
pl_sim_task_find(struct pl_sim *s, const char *upid)
{
	for (size_t i = s->ntasks; i-- > 0;)
		if (!strcmp(s->tasks[i]->upid, upid))
			return s->tasks[i];
	return NULL;
}

json_t *
pl_sim_task_json(const struct pl_sim_task *t)
{
	const struct pl_sim *s = t->sim;
	unsigned pid = 0, pstart = 0;
	json_t *o;

	sscanf(t->upid + strlen("UPID:") + strlen(s->nodes[t->node].name) + 1, "%8X:%8X", &pid,
	       &pstart);
	o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:i,s:i,s:s}", "upid", t->upid, "node",
		      s->nodes[t->node].name, "type", t->type, "id", t->id, "user", t->user,
		      "starttime", (json_int_t)t->start, "pid", (int)pid, "pstart", (int)pstart,
		      "status", t->running ? "running" : "stopped");
	if (!t->running) {
		json_object_set_new(o, "exitstatus", json_string(t->exitstatus));
		json_object_set_new(o, "endtime", json_integer(t->end));
	}
	return o;
}

void
pl_sim_tasks_free(struct pl_sim *s)
{
	for (size_t i = 0; i < s->ntasks; i++)
		task_free(s->tasks[i]);
	free(s->tasks);
	s->tasks = NULL;
	s->ntasks = 0;
}
