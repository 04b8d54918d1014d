/*
 * libcurl's multi interface on a libevent loop (curlev.h): one event per
 * socket curl asks to watch, one timer for curl's timeouts, and never a
 * call back into curl from inside its own callbacks.
 */
#include "core/common.h"
#include "core/curlev.h"
#include "core/err.h"

#include <event2/event.h>

struct pl_curlev {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	pl_curlev_done_cb done;
	void *arg;
};

static void
drain(struct pl_curlev *c)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE)
			c->done(m->easy_handle, m->data.result, c->arg);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pl_curlev *c = arg;
	int running;

	PL_UNUSED(fd);
	PL_UNUSED(what);
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	drain(c);
}

/* Never act from inside curl's timer callback: schedule it. */
static int
curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct pl_curlev *c = userp;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	PL_UNUSED(m);
	if (timeout_ms < 0)
		evtimer_del(c->timer);
	else
		evtimer_add(c->timer, &tv);
	return 0;
}

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pl_curlev *c = arg;
	int action =
		(what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;

	curl_multi_socket_action(c->multi, fd, action, &running);
	drain(c);
}

static int
curl_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct pl_curlev *c = userp;
	struct event *ev = socketp;
	short kind;

	PL_UNUSED(e);
	if (what == CURL_POLL_REMOVE) {
		if (ev) {
			event_free(ev);
			curl_multi_assign(c->multi, s, NULL);
		}
		return 0;
	}
	kind = (short)(EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
		       (what & CURL_POLL_OUT ? EV_WRITE : 0));
	if (ev)
		event_free(ev);
	ev = event_new(c->base, s, kind, sock_cb, c);
	curl_multi_assign(c->multi, s, ev);
	event_add(ev, NULL);
	return 0;
}

struct pl_curlev *
pl_curlev_new(struct event_base *base, pl_curlev_done_cb done, void *arg)
{
	struct pl_curlev *c = pl_calloc(1, sizeof(*c));

	c->base = base;
	c->done = done;
	c->arg = arg;
	c->multi = curl_multi_init();
	c->timer = evtimer_new(base, timer_cb, c);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	return c;
}

void
pl_curlev_add(struct pl_curlev *c, CURL *e)
{
	curl_multi_add_handle(c->multi, e);
}

void
pl_curlev_remove(struct pl_curlev *c, CURL *e)
{
	curl_multi_remove_handle(c->multi, e);
}

void
pl_curlev_free(struct pl_curlev *c)
{
	if (!c)
		return;
	curl_multi_cleanup(c->multi);
	event_free(c->timer);
	free(c);
}
