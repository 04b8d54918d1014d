/*
 * pvelab serve's background refresh, on the server's loop: the resource list
 * every status_interval (kept in memory: live counters never touch the
 * store), a full sync every sync_interval, at once when the list shows a
 * guest's state changed, and on POST /api/v1/sync. A failing cluster is
 * retried with backoff while the last state keeps being served. What
 * follows a sync is spread over turns of the loop, so requests never wait
 * behind all of it.
 */
#include "core/common.h"
#include "cmd/serve_api.h"
#include "cmd/connect.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "pve/apart.h"
#include "pve/client.h"
#include "serve/serve.h"
#include "state/state.h"

#include <event2/event.h>
#include <time.h>

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Seconds until the next try after n failures in a row: the interval, then
 * doubling, at most cap. */
static long
backoff(long interval, int n, long cap)
{
	long d = interval;

	for (int i = 0; i < n && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

static void
arm(struct event *ev, long secs)
{
	struct timeval tv = { secs, 0 };

	evtimer_add(ev, &tv);
}

static void start_sync(struct pl_serve_refresh *f, const char *why);
static void drop_later(struct pl_serve_refresh *f, json_t *list);

/* An event of this refresh: with several clusters it says whose. */
static void
emit(struct pl_serve_refresh *f, const char *type, json_t *data)
{
	if (f->cluster)
		json_object_set_new(data, "cluster", json_string(f->cluster));
	pl_serve_emit(f->sv, type, data);
}

/* v in decimal into out (24 bytes); its length. */
static size_t
lltoa(long long v, char *out)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
	size_t n;

	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	n = (size_t)(tmp + sizeof(tmp) - p);
	memcpy(out, p, n);
	return n;
}

/* What of a resource entry makes a change the store records, as text into
 * b (emptied first): a guest whose key moved since the last list is synced
 * at once. Written without printf: every guest's, every status interval. */
static void
durable_text(struct pl_buf *b, const json_t *g)
{
	static const char *const keys[] = { "status", "name", "node", "lock", "tags" };
	char num[24];

	pl_buf_reset(b);
	for (size_t k = 0; k < PL_ARRAY_LEN(keys); k++) {
		pl_buf_addstr(b, pl_json_str_or(g, keys[k], ""));
		pl_buf_addch(b, '|');
	}
	pl_buf_add(b, num, lltoa(pl_json_int(g, "template", 0), num));
}

static json_t *
durable_key(struct pl_buf *b, const json_t *g)
{
	durable_text(b, g);
	return json_stringn(b->data, b->len);
}

/* The text of a guest's vmid into out (24 bytes); its length. */
static size_t
vmid_text(const json_t *g, char *out)
{
	return lltoa(pl_json_int(g, "vmid", 0), out);
}

static bool
is_guest(const json_t *g)
{
	const char *type = pl_json_str(g, "type");

	return type && (!strcmp(type, "qemu") || !strcmp(type, "lxc"));
}

/* A resource list read on a thread of its own: the answer and what the
 * loop compares it by, made there (megabytes of JSON, tens of milliseconds
 * of CPU at 10,000 guests), nothing of it touched by the loop until done. */
struct status_read {
	struct pl_serve_refresh *f;
	struct pl_pve_apart *job;
	int err;
	char *errmsg;
	json_t *list;  /* the resources */
	json_t *by_id; /* vmid (text) -> its guest's entry in list */
	json_t *keys;  /* vmid -> what of it the store records (durable_key) */
};

static void
status_read_free(struct status_read *r)
{
	free(r->errmsg);
	json_decref(r->list);
	json_decref(r->by_id);
	json_decref(r->keys);
	free(r);
}

/* On the reading thread. */
static void
read_resources(const struct pl_pve_result *res, void *arg)
{
	struct status_read *r = arg;
	struct pl_buf kb;
	json_t *g;
	size_t i;

	if (res->err) {
		r->err = res->err;
		r->errmsg = pl_strdup(res->errmsg ? res->errmsg : pl_strerror(res->err));
		return;
	}
	r->list = json_incref(res->data);
	r->by_id = json_object();
	r->keys = json_object();
	pl_buf_init(&kb, 0);
	json_array_foreach(res->data, i, g) {
		char id[24];
		size_t idlen;

		if (!is_guest(g))
			continue;
		idlen = vmid_text(g, id);
		json_object_setn_nocheck(r->by_id, id, idlen, g);
		json_object_setn_new_nocheck(r->keys, id, idlen, durable_key(&kb, g));
	}
	pl_buf_release(&kb);
}

/* On the loop: the list read (or not); a guest whose key moved since the
 * last list is synced at once. */
static void
on_resources(void *arg)
{
	struct status_read *r = arg;
	struct pl_serve_refresh *f = r->f;
	const char *id;
	json_t *key, *g;
	bool moved = false;

	f->status_busy = false;
	f->status_read = NULL;
	if (f->stopping)
		goto out;
	if (r->err) {
		f->status_failures++;
		free(f->status_error);
		f->status_error = r->errmsg;
		r->errmsg = NULL;
		f->status_error_at = now_s();
		pl_log_warn("refresh: %sstatus failed (%d in a row): %s", f->tag,
			    f->status_failures, f->status_error);
		emit(f, "status",
		     json_pack("{s:s,s:s,s:i}", "state", "failed", "error", f->status_error,
			       "failures", f->status_failures));
		arm(f->status_ev, backoff(f->status_interval, f->status_failures, 300));
		goto out;
	}
	if (f->status_failures)
		emit(f, "status", json_pack("{s:s}", "state", "ok"));
	f->status_failures = 0;
	f->status_ok_at = now_s();
	if (f->keys) {
		json_object_foreach(r->keys, id, key) {
			const json_t *old = json_object_get(f->keys, id);

			if (old && json_equal(old, key))
				continue;
			moved = true;
			g = json_object_get(r->by_id, id);
			emit(f, "guest",
			     json_pack("{s:I,s:s?,s:s?,s:s?,s:s?,s:s}", "vmid",
				       (json_int_t)pl_json_int(g, "vmid", 0), "name",
				       pl_json_str(g, "name"), "node", pl_json_str(g, "node"),
				       "status", pl_json_str(g, "status"), "lock",
				       pl_json_str(g, "lock"), "seen", "status"));
		}
		if (json_object_size(f->keys) != json_object_size(r->keys))
			moved = true; /* one went (ids are keys: a list naming one twice counts it once) */
	}
	json_decref(f->keys);
	f->keys = r->keys;
	json_decref(f->live_by_id);
	f->live_by_id = r->by_id;
	drop_later(f, f->live);
	f->live = r->list;
	r->keys = r->by_id = r->list = NULL;
	f->status_guests = json_object_size(f->live_by_id);
	pl_serve_cache_drop(f->sv, PL_CACHE_LIVE); /* their counters moved */
	if (moved)
		start_sync(f, "a guest changed");
	arm(f->status_ev, f->status_interval);
out:
	status_read_free(r);
}

static void
on_status_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_refresh *f = arg;
	struct status_read *r;
	char *err = NULL;

	if (f->status_busy || f->s->pve == NULL || f->stopping)
		return;
	f->status_busy = true;
	r = pl_calloc(1, sizeof(*r));
	r->f = f;
	r->job = pl_pve_get_apart(f->s->pve, "/cluster/resources", NULL, read_resources,
				  on_resources, r, &err);
	if (r->job == NULL) {
		r->err = PL_EINVAL;
		r->errmsg = err;
		on_resources(r);
		return;
	}
	f->status_read = r;
}

/* Events a turn of the loop tells at most, after a sync that changed many
 * guests (the first of 10,000 tells each). */
#define POST_EVENTS 500
/* Guests whose keys a turn of the loop makes at most, after a sync (about
 * 1.5 ms of CPU a thousand). */
#define POST_KEYS 2000

/* Run ev in the next turn of the loop, after it polled: requests that came
 * meanwhile are answered first (event_active would run it in this turn,
 * before any poll, however many times it is activated in a row). */
static void
next_turn(struct event *ev)
{
	static const struct timeval now = { 0, 0 };

	evtimer_add(ev, &now);
}

static void
post_step(struct pl_serve_refresh *f)
{
	next_turn(f->post_ev);
}

static void
post_free(struct pl_serve_refresh *f)
{
	json_decref(f->post_snap);
	json_decref(f->post_changes);
	json_decref(f->post_keys);
	f->post_snap = f->post_changes = f->post_keys = NULL;
	f->post_step = 0;
}

/* Guests a turn of the loop frees at most, after a sync (about 5 ms of CPU
 * a thousand). */
#define DROP_GUESTS 500

static void
on_drop(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_refresh *f = arg;
	size_t last = json_array_size(f->drop) - 1;
	json_t *list = json_array_get(f->drop, last);
	size_t n = json_array_size(list);

	for (int k = 0; k < DROP_GUESTS && n; k++)
		json_array_remove(list, --n);
	if (n == 0)
		json_array_remove(f->drop, last);
	if (json_array_size(f->drop)) {
		next_turn(f->drop_ev);
	} else {
		json_decref(f->drop);
		f->drop = NULL;
	}
}

/* Let go of a list (the reference is taken) of guests or resources: 10,000
 * guests' configs are half a million JSON values, 50 ms of CPU to free at
 * once, a list of 10,000 resources 15 ms; what nothing else holds goes a
 * batch of entries per turn. */
static void
drop_later(struct pl_serve_refresh *f, json_t *list)
{
	if (list == NULL || list->refcount > 1 || !json_is_array(list)) {
		json_decref(list);
		return;
	}
	if (f->drop == NULL)
		f->drop = json_array();
	json_array_append_new(f->drop, list);
	if (f->drop_ev == NULL)
		f->drop_ev = evtimer_new(f->s->base, on_drop, f);
	next_turn(f->drop_ev);
}

/* Let go of a sync's snapshot: its guests a batch per turn. */
static void
drop_snap(struct pl_serve_refresh *f, json_t *snap)
{
	json_t *guests = json_incref(json_object_get(snap, "guests"));

	json_decref(snap);
	drop_later(f, guests);
}

/* The end of a sync, or of what followed it: the next one. */
static void
sync_over(struct pl_serve_refresh *f)
{
	pl_serve_release(f->sv);
	if (f->sync_again && !f->stopping) {
		f->sync_again = false;
		start_sync(f, "asked while one ran");
	}
}

/* What follows a recorded sync, each step in its own turn of the loop (each
 * is milliseconds of CPU at 10,000 guests, and requests wait for none of
 * them): the keys later lists compare with, a batch of guests at a time, the
 * modules' hook, the change events a batch at a time, then the sync's own
 * event. The sync counts as running until the last. */
static void
on_post(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_refresh *f = arg;
	const struct pl_state_counts *cnt = &f->sync_counts;
	json_t *changes = f->post_changes, *g;
	size_t i;

	switch (f->post_step++) {
	case 0: {
		json_t *guests = json_object_get(f->post_snap, "guests");
		struct pl_buf kb;

		if (f->post_keys == NULL)
			f->post_keys = json_object();
		pl_buf_init(&kb, 0);
		for (i = f->post_done; i < json_array_size(guests) && i < f->post_done + POST_KEYS;
		     i++) {
			char id[24];

			g = json_array_get(guests, i);
			json_object_setn_new_nocheck(f->post_keys, id, vmid_text(g, id),
						     durable_key(&kb, g));
		}
		pl_buf_release(&kb);
		f->post_done = i;
		if (i < json_array_size(guests)) {
			f->post_step--; /* the next batch */
			post_step(f);
			return;
		}
		json_decref(f->keys);
		f->keys = f->post_keys;
		f->post_keys = NULL;
		f->post_done = 0;
		post_step(f);
		return;
	}
	case 1:
		if (f->on_sync)
			f->on_sync(f->post_snap, f->on_sync_arg);
		post_step(f);
		return;
	case 2:
		for (i = f->post_done;
		     i < json_array_size(changes) && i < f->post_done + POST_EVENTS; i++) {
			g = json_array_get(changes, i);
			emit(f, "guest",
			     json_pack("{s:O?,s:O?,s:O?,s:I,s:s}", "vmid",
				       json_object_get(g, "vmid"), "name",
				       json_object_get(g, "name"), "kind",
				       json_object_get(g, "kind"), "run_id",
				       (json_int_t)f->sync_run, "seen", "sync"));
		}
		f->post_done = i;
		if (i < json_array_size(changes)) {
			f->post_step--; /* the next batch */
			post_step(f);
			return;
		}
		break;
	}
	f->sync_ok_at = f->sync_finished;
	emit(f, "sync",
	     json_pack("{s:I,s:s,s:I,s:{s:i,s:i,s:i,s:i}}", "seq", (json_int_t)f->sync_seq, "state",
		       "ok", "run_id", (json_int_t)f->sync_run, "counts", "added", cnt->added,
		       "changed", cnt->changed, "removed", cnt->removed, "unchanged",
		       cnt->unchanged));
	pl_log_info("refresh: %ssync %lld recorded as run %lld: +%d ~%d -%d (%d unchanged, "
		    "%zu not read)",
		    f->tag, f->sync_seq, f->sync_run, cnt->added, cnt->changed, cnt->removed,
		    cnt->unchanged, f->post_unread);
	drop_snap(f, f->post_snap);
	f->post_snap = NULL;
	post_free(f);
	if (!f->stopping)
		arm(f->sync_ev, f->sync_interval);
	sync_over(f);
}

static void
on_synced(int err, const struct pl_state_counts *cnt, json_t *changes, json_t *snap,
	  long long run_id, size_t unread, const char *errmsg, void *arg)
{
	struct pl_serve_refresh *f = arg;

	f->job = NULL;
	f->sync_finished = now_s();
	free(f->sync_error);
	f->sync_error = NULL;
	if (err) {
		f->sync_failures++;
		f->sync_error = pl_strdup(errmsg ? errmsg : pl_strerror(err));
		pl_log_warn("refresh: %ssync %lld failed (%d in a row): %s", f->tag, f->sync_seq,
			    f->sync_failures, f->sync_error);
		emit(f, "sync",
		     json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)f->sync_seq, "state", "failed",
			       "error", f->sync_error));
		if (!f->stopping)
			arm(f->sync_ev,
			    backoff(f->status_interval, f->sync_failures, f->sync_interval));
		sync_over(f);
		return;
	}
	f->sync_failures = 0;
	f->sync_run = run_id;
	f->sync_counts = *cnt;
	f->post_unread = unread;
	f->post_snap = json_incref(snap);
	f->post_changes = changes ? json_incref(changes) : json_array();
	f->post_done = 0;
	f->post_step = 0;
	if (f->post_ev == NULL)
		f->post_ev = evtimer_new(f->s->base, on_post, f);
	post_step(f);
}

static void
start_sync(struct pl_serve_refresh *f, const char *why)
{
	char *err = NULL;

	if (f->stopping)
		return;
	if (f->job || f->post_snap || f->held) {
		f->sync_again = true;
		return;
	}
	f->sync_seq++;
	f->sync_started = now_s();
	pl_log_info("refresh: %ssync %lld (%s)", f->tag, f->sync_seq, why);
	pl_serve_hold(f->sv); /* a drain lets it finish (on_synced releases it) */
	f->job = pl_cmd_sync_start(f->s, false, false, false, on_synced, f, &err);
	if (f->job == NULL) {
		struct pl_state_counts none = { 0 };

		on_synced(PL_EINVAL, &none, NULL, NULL, 0, 0, err, f);
	}
	free(err);
}

static void
on_sync_timer(evutil_socket_t fd, short what, void *arg)
{
	start_sync(arg, "interval");
}

void
pl_serve_refresh_init(struct pl_serve_refresh *f, struct pl_session *s, const char *cluster,
		      struct pl_serve *sv, long status_interval, long sync_interval)
{
	memset(f, 0, sizeof(*f));
	f->s = s;
	f->cluster = cluster;
	f->tag = cluster ? pl_asprintf("%s: ", cluster) : pl_strdup("");
	f->sv = sv;
	f->status_interval = status_interval;
	f->sync_interval = sync_interval;
	f->status_ev = evtimer_new(s->base, on_status_timer, f);
	f->sync_ev = evtimer_new(s->base, on_sync_timer, f);
	if (s->pve == NULL)
		return; /* no cluster configured: the store is served as it is */
	arm(f->status_ev, 0);
	start_sync(f, "start");
}

long long
pl_serve_refresh_sync(struct pl_serve_refresh *f)
{
	start_sync(f, "asked");
	return f->sync_seq + (f->sync_again ? 1 : 0);
}

void
pl_serve_refresh_hold(struct pl_serve_refresh *f, bool on)
{
	f->held += on ? 1 : -1;
	if (f->held == 0 && f->sync_again && f->job == NULL && f->post_snap == NULL) {
		f->sync_again = false;
		start_sync(f, "asked while held");
	}
}

bool
pl_serve_refresh_syncing(const struct pl_serve_refresh *f)
{
	return f->job != NULL || f->post_snap != NULL;
}

json_t *
pl_serve_refresh_info(const struct pl_serve_refresh *f)
{
	double now = now_s();

	return json_pack(
		"{s:b,s:{s:i,s:o,s:o,s:s?,s:i},s:{s:i,s:I,s:s,s:o,s:o,s:o,s:s?,s:i,s:o}}",
		"cluster", f->s->pve != NULL, "status", "interval", (int)f->status_interval, "age",
		f->status_ok_at ? json_real(now - f->status_ok_at) : json_null(), "guests",
		f->status_ok_at ? json_integer((json_int_t)f->status_guests) : json_null(),
		"last_error", f->status_error, "failures", f->status_failures, "sync", "interval",
		(int)f->sync_interval, "seq", (json_int_t)f->sync_seq, "state",
		pl_serve_refresh_syncing(f) ? "running" :
		f->sync_error               ? "failed" :
		f->sync_ok_at               ? "ok" :
					      "none",
		"age", f->sync_ok_at ? json_real(now - f->sync_ok_at) : json_null(), "run_id",
		f->sync_run ? json_integer(f->sync_run) : json_null(), "counts",
		f->sync_ok_at ?
			json_pack("{s:i,s:i,s:i,s:i}", "added", f->sync_counts.added, "changed",
				  f->sync_counts.changed, "removed", f->sync_counts.removed,
				  "unchanged", f->sync_counts.unchanged) :
			json_null(),
		"last_error", f->sync_error, "failures", f->sync_failures, "finished",
		f->sync_finished ? json_real(f->sync_finished) : json_null());
}

void
pl_serve_refresh_set_intervals(struct pl_serve_refresh *f, long status_interval, long sync_interval)
{
	f->status_interval = status_interval;
	f->sync_interval = sync_interval;
}

void
pl_serve_refresh_stop(struct pl_serve_refresh *f)
{
	f->stopping = true;
	evtimer_del(f->status_ev);
	evtimer_del(f->sync_ev);
	if (f->job)
		pl_log_info("refresh: %sletting sync %lld finish", f->tag, f->sync_seq);
}

void
pl_serve_refresh_release(struct pl_serve_refresh *f)
{
	if (f->status_read) {
		pl_pve_apart_cancel(f->status_read->job);
		status_read_free(f->status_read);
	}
	if (f->job) {
		pl_log_warn("refresh: %ssync %lld cancelled: nothing of it recorded", f->tag,
			    f->sync_seq);
		pl_cmd_sync_cancel(f->job);
		pl_serve_release(f->sv);
	}
	f->job = NULL;
	if (f->post_snap)
		pl_serve_release(f->sv);
	post_free(f);
	if (f->post_ev)
		event_free(f->post_ev);
	json_decref(f->drop);
	if (f->drop_ev)
		event_free(f->drop_ev);
	if (f->status_ev)
		event_free(f->status_ev);
	if (f->sync_ev)
		event_free(f->sync_ev);
	json_decref(f->live);
	json_decref(f->live_by_id);
	json_decref(f->keys);
	free(f->status_error);
	free(f->sync_error);
	free(f->tag);
}
