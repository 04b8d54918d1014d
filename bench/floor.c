/*
 * bench/floor.c: the transport floor of a sync, for bench/floor.sh: the GETs of
 * a list of API paths (one per line on stdin) over CONC keep-alive HTTPS
 * connections with libcurl's multi interface driven by libevent, as pvelab's
 * client does, on one thread, the bodies thrown away: no parsing, hashing
 * nor recording. Usage: floor URL TOKEN CONC < paths
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct floor {
	struct event_base *base;
	struct event *timer;
	CURLM *multi;
	const char *url;
	char **paths;
	size_t npaths, next, done, failed;
};

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* Give a finished handle the next path, if any. */
static void
reap(struct floor *f)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
		CURL *e = msg->easy_handle;
		long status = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		if (msg->data.result != CURLE_OK || status != 200)
			f->failed++;
		f->done++;
		curl_multi_remove_handle(f->multi, e);
		if (f->next < f->npaths) {
			char url[1024];

			snprintf(url, sizeof(url), "%s/api2/json%s", f->url, f->paths[f->next++]);
			curl_easy_setopt(e, CURLOPT_URL, url);
			curl_multi_add_handle(f->multi, e);
		} else {
			curl_easy_cleanup(e);
		}
	}
	if (f->done == f->npaths)
		event_base_loopbreak(f->base);
}

static void
on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct floor *f = arg;
	int running;

	curl_multi_socket_action(f->multi, fd,
				 (what & EV_READ ? CURL_CSELECT_IN : 0) |
					 (what & EV_WRITE ? CURL_CSELECT_OUT : 0),
				 &running);
	reap(f);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct floor *f = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	reap(f);
}

static int
socket_cb(CURL *e, curl_socket_t s, int what, void *arg, void *sockp)
{
	struct floor *f = arg;
	struct event *ev = sockp;

	(void)e;
	if (ev) {
		event_free(ev);
		ev = NULL;
	}
	if (what != CURL_POLL_REMOVE) {
		ev = event_new(f->base, s,
			       EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
				       (what & CURL_POLL_OUT ? EV_WRITE : 0),
			       on_socket_event, f);
		event_add(ev, NULL);
	}
	curl_multi_assign(f->multi, s, ev);
	return 0;
}

static int
timer_cb(CURLM *m, long ms, void *arg)
{
	struct floor *f = arg;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	(void)m;
	if (ms < 0)
		evtimer_del(f->timer);
	else
		evtimer_add(f->timer, &tv);
	return 0;
}

int
main(int argc, char **argv)
{
	struct floor f = { 0 };
	struct curl_slist *hdrs;
	char line[1024], auth[512];
	size_t cap = 0;
	long conc;

	if (argc != 4 || (conc = strtol(argv[3], NULL, 10)) < 1) {
		fprintf(stderr, "usage: floor URL TOKEN CONC < paths\n");
		return 64;
	}
	f.url = argv[1];
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (f.npaths == cap) {
			cap = cap ? 2 * cap : 1024;
			f.paths = realloc(f.paths, cap * sizeof(*f.paths));
		}
		f.paths[f.npaths++] = strdup(line);
	}
	snprintf(auth, sizeof(auth), "Authorization: PVEAPIToken=%s", argv[2]);
	hdrs = curl_slist_append(NULL, auth);
	f.base = event_base_new();
	f.timer = evtimer_new(f.base, on_timer, &f);
	f.multi = curl_multi_init();
	curl_multi_setopt(f.multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(f.multi, CURLMOPT_SOCKETDATA, &f);
	curl_multi_setopt(f.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(f.multi, CURLMOPT_TIMERDATA, &f);
	curl_multi_setopt(f.multi, CURLMOPT_MAX_HOST_CONNECTIONS, conc);
	for (long i = 0; i < conc && f.next < f.npaths; i++) {
		CURL *e = curl_easy_init();
		char url[1024];

		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
		/* the simulator's self-signed certificate: the floor measures transport */
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(e, CURLOPT_PROXY, "");
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
		snprintf(url, sizeof(url), "%s/api2/json%s", f.url, f.paths[f.next++]);
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_multi_add_handle(f.multi, e);
	}
	event_base_dispatch(f.base);
	if (f.failed)
		fprintf(stderr, "floor: %zu of %zu requests failed\n", f.failed, f.npaths);
	return f.failed ? 1 : 0;
}
