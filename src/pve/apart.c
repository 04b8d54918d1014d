/*
 * One read on a thread of its own, as the sync's workers read (their own
 * loop and a clone of the caller's client, their end handed back through a
 * pipe): a server's loop spends nothing on receiving, parsing and digesting
 * a large answer, such as the 3 MB /cluster/resources of 10,000 guests
 * every status interval.
 */
#include "core/common.h"
#include "pve/apart.h"
#include "core/err.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <unistd.h>

#define BACKGROUND_NICE 10
#define CANCEL_CHECK_MS 50

struct pl_pve_apart {
	struct pl_pve *c, *clone;
	struct event_base *base; /* the thread's */
	pthread_t thread;
	char *path;
	json_t *params;
	pl_pve_work_cb work;
	pl_pve_done_cb done;
	void *arg;
	bool answered; /* the thread's */
	atomic_bool cancel;
	int pipe[2];          /* the thread -> c's loop: "I am done" */
	struct event *end_ev; /* on c's loop */
};

void
pl_pve_thread_background(void)
{
	/* Linux: a thread's nice value is its own. Best effort: one the process
	 * may not take (RLIMIT_NICE) leaves the thread as it was. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), BACKGROUND_NICE);
}

static void
on_answer(const struct pl_pve_result *res, void *arg)
{
	struct pl_pve_apart *a = arg;

	a->answered = true;
	if (!atomic_load(&a->cancel))
		a->work(res, a->arg);
	event_base_loopbreak(a->base);
}

static void
on_check(evutil_socket_t fd, short what, void *arg)
{
	struct pl_pve_apart *a = arg;

	(void)fd;
	(void)what;
	if (atomic_load(&a->cancel))
		event_base_loopbreak(a->base);
}

static void *
run(void *arg)
{
	struct pl_pve_apart *a = arg;
	struct timeval every = { 0, CANCEL_CHECK_MS * 1000 };
	struct event *check = event_new(a->base, -1, EV_PERSIST, on_check, a);
	ssize_t n;

	pl_pve_thread_background();
	event_add(check, &every);
	pl_pve_request(a->clone, "GET", a->path, a->params, on_answer, a);
	while (!a->answered && !atomic_load(&a->cancel))
		if (event_base_loop(a->base, EVLOOP_ONCE) != 0)
			break;
	event_free(check);
	n = write(a->pipe[1], "", 1);
	(void)n;
	return NULL;
}

/* Join the thread, free what it used (its client before c, as a clone
 * must be). */
static void
apart_free(struct pl_pve_apart *a)
{
	pthread_join(a->thread, NULL);
	pl_pve_free(a->clone); /* drops a cancelled request */
	event_base_free(a->base);
	event_free(a->end_ev);
	close(a->pipe[0]);
	close(a->pipe[1]);
	free(a->path);
	json_decref(a->params);
	free(a);
}

static void
on_end(evutil_socket_t fd, short what, void *arg)
{
	struct pl_pve_apart *a = arg;
	pl_pve_done_cb done = a->done;
	void *done_arg = a->arg;

	(void)fd;
	(void)what;
	apart_free(a);
	done(done_arg);
}

struct pl_pve_apart *
pl_pve_get_apart(struct pl_pve *c, const char *path, const json_t *params, pl_pve_work_cb work,
		 pl_pve_done_cb done, void *arg, char **errmsg)
{
	struct pl_pve_apart *a = pl_calloc(1, sizeof(*a));
	int r;

	a->c = c;
	a->work = work;
	a->done = done;
	a->arg = arg;
	a->path = pl_strdup(path);
	a->params = params ? json_deep_copy(params) : NULL;
	if ((a->base = event_base_new()) == NULL)
		pl_die("cannot create an event loop");
	if ((r = pl_pve_clone(c, a->base, 1, &a->clone, errmsg)) != 0) {
		event_base_free(a->base);
		free(a->path);
		json_decref(a->params);
		free(a);
		return NULL;
	}
	pl_pve_compressed(a->clone); /* one large read: gzip, as c's */
	if (pipe2(a->pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		pl_die("cannot make a pipe: %s", strerror(errno));
	a->end_ev = event_new(pl_pve_base(c), a->pipe[0], EV_READ, on_end, a);
	event_add(a->end_ev, NULL);
	if (pthread_create(&a->thread, NULL, run, a) != 0)
		pl_die("cannot start a thread");
	return a;
}

void
pl_pve_apart_cancel(struct pl_pve_apart *a)
{
	if (a == NULL)
		return;
	atomic_store(&a->cancel, true);
	apart_free(a);
}
