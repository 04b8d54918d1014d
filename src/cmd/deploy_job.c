/*
 * An apply's stack deploys (pl_deploy_apply, the CLI's own code) on a thread
 * of their own, for pvelab serve, whose loop must keep answering while SSH
 * and the guest agent are waited on: the thread has its own loop, a clone of
 * the server's API client and its own connection to the store; compose's
 * output lines and the end come back to the server's loop through a pipe.
 */
#include "core/common.h"
#include "cmd/deploy.h"
#include "cmd/connect.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "pve/client.h"
#include "state/state.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define STOP_POLL_MS 100 /* how soon the thread hears a stop */

struct pl_deploy_job {
	pthread_t thread;
	bool started;
	/* the thread's: its session (cfg borrowed), options, plan and result */
	struct pl_session s;
	struct pl_deploy_opts o;
	json_t *plan, *result;
	char *state_path;
	int failed;
	bool stopped; /* the deploy was interrupted */
	char *err;    /* the thread could not begin (no store) */
	/* between the two */
	pthread_mutex_t lock;
	json_t *lines; /* under lock: output not yet handed on */
	bool over;     /* under lock */
	atomic_bool stop;
	int pipe[2];
	/* the loop's */
	struct event *wake;
	pl_deploy_line_cb on_line;
	pl_deploy_done_cb on_done;
	void *arg;
};

static void
poke(struct pl_deploy_job *j)
{
	ssize_t n = write(j->pipe[1], "", 1);

	(void)n; /* a full pipe wakes the loop already */
}

/* On the thread: one line of compose's output, queued for the loop. */
static void
on_line(const json_t *st, const char *line, void *arg)
{
	struct pl_deploy_job *j = arg;
	json_t *ev = json_pack("{s:s,s:s,s:O?,s:s}", "guest", pl_json_str_or(st, "guest", "?"),
			       "stack", pl_json_str_or(st, "name", "?"), "vmid",
			       json_object_get(st, "vmid"), "line", line);

	if (ev == NULL) /* not UTF-8: json_pack refused it */
		return;
	pthread_mutex_lock(&j->lock);
	json_array_append_new(j->lines, ev);
	pthread_mutex_unlock(&j->lock);
	poke(j);
}

/* On the thread, from its loop (which the deploy runs while it waits): a
 * stop asked from the server's loop interrupts the thread's client, as
 * Ctrl-C does the CLI's. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pl_deploy_job *j = arg;

	(void)fd;
	(void)what;
	if (atomic_load(&j->stop) && !pl_pve_interrupted(j->s.pve))
		pl_pve_interrupt(j->s.pve);
}

static void *
job_run(void *arg)
{
	struct pl_deploy_job *j = arg;
	struct timeval tv = { 0, STOP_POLL_MS * 1000 };
	struct event *tick = event_new(j->s.base, -1, EV_PERSIST, on_tick, j);

	event_add(tick, &tv);
	if (pl_state_open_existing(j->state_path, &j->s.state, &j->err) == 0)
		j->failed = pl_deploy_apply(&j->s, &j->o, j->plan, j->result);
	j->stopped = pl_pve_interrupted(j->s.pve);
	event_free(tick);
	pl_state_close(j->s.state);
	j->s.state = NULL;
	pthread_mutex_lock(&j->lock);
	j->over = true;
	pthread_mutex_unlock(&j->lock);
	poke(j);
	return NULL;
}

/* On the server's loop: hand on the lines queued, and the end once over. */
static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct pl_deploy_job *j = arg;
	char buf[256];
	json_t *lines, *ev;
	size_t i;
	bool over;

	(void)what;
	while (read(fd, buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&j->lock);
	lines = j->lines;
	j->lines = json_array();
	over = j->over;
	pthread_mutex_unlock(&j->lock);
	json_array_foreach(lines, i, ev)
		if (j->on_line)
			j->on_line(ev, j->arg);
	json_decref(lines);
	if (!over || !j->started)
		return;
	pthread_join(j->thread, NULL);
	j->started = false;
	if (j->err) { /* nothing was deployed: one entry says why */
		json_object_set_new(j->result, "stacks",
				    json_pack("[{s:s,s:s,s:b,s:s}]", "guest", "?", "name", "?",
					      "ok", 0, "error", j->err));
		j->failed = 1;
	}
	if (j->on_done)
		j->on_done(j->failed, j->stopped, j->result, j->arg);
}

struct pl_deploy_job *
pl_deploy_apply_start(struct pl_session *s, const struct pl_deploy_opts *o, const json_t *plan,
		      const json_t *result, pl_deploy_line_cb line, pl_deploy_done_cb done,
		      void *arg, char **errmsg)
{
	struct pl_deploy_job *j = pl_calloc(1, sizeof(*j));

	j->pipe[0] = j->pipe[1] = -1;
	pthread_mutex_init(&j->lock, NULL);
	j->lines = json_array();
	j->on_line = line;
	j->on_done = done;
	j->arg = arg;
	j->o = *o;
	j->o.line = on_line;
	j->o.record = NULL;
	j->o.arg = j;
	j->o.show = false;
	/* the thread's own copies: nothing it reads changes under it */
	j->plan = json_deep_copy(plan);
	j->result = json_deep_copy(result);
	j->state_path = pl_strdup(s->state_path);
	j->s.ctx = s->ctx;
	j->s.cfg = s->cfg; /* read only, and kept while a run is busy */
	if (pipe2(j->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		pl_seterr(errmsg, PL_EIO, "cannot make a pipe for the deploy's thread");
		goto fail;
	}
	if ((j->s.base = event_base_new()) == NULL) {
		pl_seterr(errmsg, PL_EIO, "cannot make an event loop for the deploy's thread");
		goto fail;
	}
	if (pl_pve_clone(s->pve, j->s.base, 1, &j->s.pve, errmsg) != 0)
		goto fail;
	j->wake = event_new(s->base, j->pipe[0], EV_READ | EV_PERSIST, on_wake, j);
	event_add(j->wake, NULL);
	if (pthread_create(&j->thread, NULL, job_run, j) != 0) {
		pl_seterr(errmsg, PL_EIO, "cannot start the deploy's thread");
		goto fail;
	}
	j->started = true;
	return j;
fail:
	pl_deploy_job_free(j);
	return NULL;
}

void
pl_deploy_job_stop(struct pl_deploy_job *j)
{
	if (j)
		atomic_store(&j->stop, true);
}

void
pl_deploy_job_free(struct pl_deploy_job *j)
{
	if (j == NULL)
		return;
	if (j->started) { /* still running: stopped, and waited for */
		atomic_store(&j->stop, true);
		pthread_join(j->thread, NULL);
	}
	if (j->wake)
		event_free(j->wake);
	for (int i = 0; i < 2; i++)
		if (j->pipe[i] >= 0)
			close(j->pipe[i]);
	pl_pve_free(j->s.pve); /* on the server's loop: it adds to the parent's counts */
	if (j->s.base)
		event_base_free(j->s.base);
	pthread_mutex_destroy(&j->lock);
	json_decref(j->lines);
	json_decref(j->plan);
	json_decref(j->result);
	free(j->state_path);
	free(j->err);
	free(j);
}
