/*
 * The check scheduler of pvelab serve: each check on its own timer (first
 * at a random moment of its interval, so that a thousand checks do not start
 * together), due checks queued and started in batches on the engine under
 * one concurrency cap, and the state machine that turns results into
 * confirmed states: down after retries+1 failures in a row, changes counted
 * for flap detection. Everything runs on the caller's loop.
 */
#include "core/common.h"
#include "check/check.h"
#include "core/err.h"
#include "core/json.h"

#include <event2/event.h>
#include <math.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <time.h>

/* State changes remembered per check for flap counting. */
#define FLAP_MAX 64

struct entry {
	struct pl_check_sched *s;
	json_t *spec;   /* as added; a fed (cluster) check's has only name and retries */
	json_t *state;  /* what the API shows */
	json_t *recent; /* newest last, at most PL_CHECK_RECENT */
	struct event *timer;
	double due;       /* monotonic time the next probe is due */
	double queued_at; /* when the one queued was due */
	bool queued, running;
	long long fails;
	double flips[FLAP_MAX]; /* wall times of the last changes, a ring */
	size_t nflips;
	TAILQ_ENTRY(entry) q;
};

struct batch {
	struct pl_check_sched *s;
	struct pl_check_run *run;
	LIST_ENTRY(batch) link;
};

struct pl_check_sched {
	struct event_base *base;
	struct pl_check_sched_opts o;
	struct entry **v;
	size_t n;
	json_t *index; /* name -> position in v */
	size_t inflight;
	TAILQ_HEAD(, entry) queue;
	LIST_HEAD(, batch) batches;
	struct event *kick;
};

static double
mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double
wall(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
arm_at(struct entry *e, double due)
{
	double d = due - mono();
	struct timeval tv;

	if (d < 0)
		d = 0;
	e->due = due;
	tv.tv_sec = (time_t)d;
	tv.tv_usec = (suseconds_t)((d - (double)tv.tv_sec) * 1e6);
	evtimer_add(e->timer, &tv);
}

static struct entry *
find(const struct pl_check_sched *s, const char *name)
{
	const json_t *i = json_object_get(s->index, name);

	return i ? s->v[json_integer_value(i)] : NULL;
}

static void pump(struct pl_check_sched *s);

static void
on_due(evutil_socket_t fd, short what, void *arg)
{
	struct entry *e = arg;
	long long iv = pl_json_int(e->spec, "interval", PL_CHECK_INTERVAL);

	PL_UNUSED(fd);
	PL_UNUSED(what);
	/* the next one keeps the rate: due + interval, not now + interval */
	e->queued_at = e->due;
	arm_at(e, e->due + (double)iv);
	if (e->running || e->queued) {
		json_object_set_new(e->state, "overlaps",
				    json_integer(pl_json_int(e->state, "overlaps", 0) + 1));
		return;
	}
	e->queued = true;
	TAILQ_INSERT_TAIL(&e->s->queue, e, q);
	pump(e->s);
}

/* The changes of e within the flap window before now. */
static int
flaps(struct entry *e, double now)
{
	size_t n = e->nflips < FLAP_MAX ? e->nflips : FLAP_MAX;
	int c = 0;

	for (size_t i = 0; i < n; i++)
		if (now - e->flips[i] <= (double)e->s->o.flap_window)
			c++;
	return c;
}

/* Take a result into e's state; returns the change it confirmed (new), or NULL. */
static json_t *
take(struct entry *e, const json_t *result)
{
	const char *st = pl_json_str_or(result, "status", PL_CHECK_DOWN);
	const char *cur = pl_json_str_or(e->state, "status", "pending");
	long long retries = pl_json_int(e->spec, "retries", 0);
	double now = wall();
	json_t *r = json_deep_copy(result), *change = NULL;
	const char *next = cur;
	int fl;

	json_object_set_new(r, "ts", json_real(now));
	json_array_append(e->recent, r);
	while (json_array_size(e->recent) > PL_CHECK_RECENT)
		json_array_remove(e->recent, 0);
	json_object_set_new(e->state, "last", r);
	json_object_set_new(e->state, "probes",
			    json_integer(pl_json_int(e->state, "probes", 0) + 1));
	if (!strcmp(st, PL_CHECK_DOWN)) {
		e->fails++;
		if (e->fails > retries)
			next = PL_CHECK_DOWN;
	} else {
		e->fails = 0;
		next = st;
	}
	json_object_set_new(e->state, "fails", json_integer(e->fails));
	if (strcmp(next, cur) != 0) {
		e->flips[e->nflips++ % FLAP_MAX] = now;
		change = json_pack("{s:O,s:f,s:s?,s:s,s:O}", "name",
				   json_object_get(e->state, "name"), "ts", now, "from",
				   strcmp(cur, "pending") ? cur : NULL, "to", next, "result", r);
		if (json_object_get(e->state, "guest"))
			json_object_set(change, "guest", json_object_get(e->state, "guest"));
		json_object_set_new(e->state, "status", json_string(next));
		json_object_set_new(e->state, "since", json_real(now));
		json_object_set_new(e->state, "changes",
				    json_integer(pl_json_int(e->state, "changes", 0) + 1));
	}
	fl = flaps(e, now);
	json_object_set_new(e->state, "flaps", json_integer(fl));
	json_object_set_new(
		e->state, "flapping",
		json_boolean(e->s->o.flap_threshold > 0 && fl >= e->s->o.flap_threshold));
	if (change)
		json_object_set(change, "flapping", json_object_get(e->state, "flapping"));
	return change;
}

static void
report(struct entry *e, const json_t *result)
{
	json_t *change = take(e, result);

	if (e->s->o.result)
		e->s->o.result(e->state, change, e->s->o.arg);
	json_decref(change);
}

static void
on_each(const json_t *result, void *arg)
{
	struct batch *b = arg;
	struct pl_check_sched *s = b->s;
	struct entry *e = find(s, pl_json_str_or(result, "name", ""));

	s->inflight--;
	if (e && e->running) {
		long long retries = pl_json_int(e->spec, "retries", 0);
		long long ri = pl_json_int(e->spec, "retry_interval", 0);

		e->running = false;
		report(e, result);
		/* failing short of its retries: the next probe sooner */
		if (e->fails > 0 && e->fails <= retries && ri > 0 && mono() + (double)ri < e->due)
			arm_at(e, mono() + (double)ri);
	}
	/* not from inside the engine's callback: its run is still walking */
	event_active(s->kick, EV_TIMEOUT, 0);
}

static void
on_done(json_t *results, void *arg)
{
	struct batch *b = arg;

	PL_UNUSED(results);
	LIST_REMOVE(b, link);
	free(b);
}

static void
pump(struct pl_check_sched *s)
{
	size_t cap = s->o.concurrency ? s->o.concurrency : PL_CHECK_CONCURRENCY;
	json_t *specs;
	struct batch *b;
	struct entry *e;

	if (s->inflight >= cap || TAILQ_EMPTY(&s->queue))
		return;
	specs = json_array();
	while (s->inflight < cap && (e = TAILQ_FIRST(&s->queue)) != NULL) {
		json_t *spec = json_deep_copy(e->spec);

		TAILQ_REMOVE(&s->queue, e, q);
		e->queued = false;
		e->running = true;
		s->inflight++;
		/* retries are counted here, one probe per interval */
		json_object_set_new(spec, "retries", json_integer(0));
		if (s->o.prepare)
			s->o.prepare(spec, s->o.arg);
		/* how long it waited for a slot after it was due */
		json_object_set_new(e->state, "lag_ms",
				    json_real(fmax(0, (mono() - e->queued_at) * 1e3)));
		json_array_append_new(specs, spec);
	}
	b = pl_calloc(1, sizeof(*b));
	b->s = s;
	LIST_INSERT_HEAD(&s->batches, b, link);
	b->run = pl_check_start(s->base, specs, json_array_size(specs), on_each, on_done, b);
	json_decref(specs);
}

static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	PL_UNUSED(fd);
	PL_UNUSED(what);
	pump(arg);
}

struct pl_check_sched *
pl_check_sched_new(struct event_base *base, const struct pl_check_sched_opts *o)
{
	struct pl_check_sched *s = pl_calloc(1, sizeof(*s));

	s->base = base;
	s->o = *o;
	s->index = json_object();
	TAILQ_INIT(&s->queue);
	LIST_INIT(&s->batches);
	s->kick = event_new(base, -1, 0, on_kick, s);
	return s;
}

static struct entry *
entry_new(struct pl_check_sched *s, const json_t *like)
{
	const char *name = pl_json_str_or(like, "name", "?");
	struct entry *e = find(s, name);
	static const char *const shown[] = { "type", "guest", "target", "interval", "retries" };

	if (e == NULL) {
		e = pl_calloc(1, sizeof(*e));
		e->s = s;
		e->state = json_pack("{s:s,s:s}", "name", name, "status", "pending");
		e->recent = json_array();
		json_object_set_new(s->index, name, json_integer((json_int_t)s->n));
		s->v = pl_realloc(s->v, (s->n + 1) * sizeof(*s->v));
		s->v[s->n++] = e;
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(shown); i++)
		if (json_object_get(like, shown[i]))
			json_object_set(e->state, shown[i], json_object_get(like, shown[i]));
	return e;
}

void
pl_check_sched_add(struct pl_check_sched *s, const json_t *spec)
{
	struct entry *e = entry_new(s, spec);
	long long iv = pl_json_int(spec, "interval", PL_CHECK_INTERVAL);
	json_t *target = NULL;

	json_decref(e->spec);
	e->spec = json_deep_copy(spec);
	/* the target as the engine reports it, known before the first result */
	if (pl_json_str(spec, "url"))
		target = json_incref(json_object_get(spec, "url"));
	else if (pl_json_str(spec, "host") && pl_json_int(spec, "port", 0) &&
		 strcmp(pl_json_str_or(spec, "type", ""), "ping"))
		target = json_sprintf("%s:%lld", pl_json_str(spec, "host"),
				      pl_json_int(spec, "port", 0));
	else if (pl_json_str(spec, "host"))
		target = json_incref(json_object_get(spec, "host"));
	if (target)
		json_object_set_new(e->state, "target", target);
	if (!e->timer)
		e->timer = evtimer_new(s->base, on_due, e);
	arm_at(e, mono() + (double)iv * ((double)random() / (double)RAND_MAX));
}

void
pl_check_sched_feed(struct pl_check_sched *s, const json_t *result)
{
	struct entry *e = entry_new(s, result);

	if (e->spec == NULL)
		e->spec = json_pack("{s:O,s:i}", "name", json_object_get(e->state, "name"),
				    "retries", 0);
	report(e, result);
}

json_t *
pl_check_sched_list(const struct pl_check_sched *s)
{
	json_t *out = json_array();

	for (size_t i = 0; i < s->n; i++)
		json_array_append_new(out, json_deep_copy(s->v[i]->state));
	return out;
}

json_t *
pl_check_sched_get(const struct pl_check_sched *s, const char *name)
{
	struct entry *e = find(s, name);
	json_t *out, *res;

	if (e == NULL)
		return NULL;
	out = json_deep_copy(e->state);
	res = json_array();
	for (size_t i = json_array_size(e->recent); i > 0; i--)
		json_array_append(res, json_array_get(e->recent, i - 1));
	json_object_set_new(out, "results", res);
	return out;
}

size_t
pl_check_sched_count(const struct pl_check_sched *s)
{
	return s ? s->n : 0;
}

const json_t *
pl_check_sched_state(const struct pl_check_sched *s, size_t i)
{
	return s && i < s->n ? s->v[i]->state : NULL;
}

void
pl_check_sched_free(struct pl_check_sched *s)
{
	struct batch *b;

	if (!s)
		return;
	while ((b = LIST_FIRST(&s->batches)) != NULL) {
		LIST_REMOVE(b, link);
		pl_check_cancel(b->run);
		free(b);
	}
	for (size_t i = 0; i < s->n; i++) {
		struct entry *e = s->v[i];

		if (e->timer)
			event_free(e->timer);
		json_decref(e->spec);
		json_decref(e->state);
		json_decref(e->recent);
		free(e);
	}
	free(s->v);
	json_decref(s->index);
	event_free(s->kick);
	free(s);
}
