/*
 * Alerts (alerts.h): what to notify is decided by comparing a check's state
 * with what was last notified for it (so a notice held back while a check
 * flaps is caught up once it settles); each notifier has a FIFO of notices,
 * one in flight, retried with exponential backoff until alerts.retry_for,
 * so a dead notifier delays nothing but itself and gets its notices in order
 * when it comes back. HTTP and SMTP both go through libcurl on the loop.
 */
#include "core/common.h"
#include "check/alerts.h"
#include "check/check.h"
#include "check/notice.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/calendar.h"
#include "core/curlev.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <fnmatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/queue.h>
#include <time.h>

#define QUEUE_MAX 1000          /* notices waiting per notifier; the oldest go first */
#define BACKOFF_MAX 60          /* seconds between two tries, at most */
#define AM_RESEND PL_NOTICE_AM_RESEND
#define TICK 5                  /* seconds between two looks at repeats and refreshes */

static const char *const type_names[] = { "ntfy", "webhook", "email", "alertmanager" };

struct notice {
	TAILQ_ENTRY(notice) q;
	char *check, *event;
	json_t *members; /* a grouped notice's [{"check","event"}], else NULL */
	struct pl_buf body;
	size_t off; /* SMTP upload position */
	double first;
	int tries;
};

struct notifier {
	struct pl_alerts *a;
	enum pl_notice_type type;
	char *name, *url, *shown;
	char *token, *secret, *password; /* wiped on free */
	json_t *cfg;
	long timeout;
	TAILQ_HEAD(, notice) q;
	size_t nq;
	struct notice *cur;
	CURL *e;
	struct curl_slist *hdrs, *rcpt;
	struct event *retry;
	int backoff;
	json_t *group;          /* notices waiting for the group window to close */
	struct event *group_ev; /* when it closes */
	long long sent, failed, dropped;
	char *last_error;
	double last_sent;
};

struct pl_alerts {
	struct event_base *base;
	struct pl_curlev *curl;
	struct notifier *nv;
	size_t nn;
	json_t *routes;     /* copy of alerts.routes */
	json_t *guest_tags; /* guest name -> its tags */
	json_t *firing;     /* check -> {"status","since","sent","state"} as last notified */
	json_t *windows;    /* copy of alerts.maintenance */
	pl_alerts_hold_fn hold;
	void *hold_arg;
	long repeat, retry_for, group_wait;
	struct event *tick;
	pl_alerts_event_cb cb;
	void *arg;
};

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
tell(struct pl_alerts *a, const char *check, const char *event, const char *notifier,
     const char *state, const char *key, const char *why)
{
	json_t *ev;

	if (!a->cb)
		return;
	ev = json_pack("{s:s,s:s,s:s?,s:s}", "check", check, "event", event, "notifier", notifier,
		       "state", state);
	if (key && why)
		json_object_set_new(ev, key, json_string(why));
	a->cb(ev, a->arg);
	json_decref(ev);
}

/* ---- delivery ---- */

/* Tell of a notice's fate: of each check a grouped one holds. */
static void
tell_notice(struct notifier *n, const struct notice *x, const char *state, const char *err)
{
	const json_t *m;
	size_t i;

	if (!x->members) {
		tell(n->a, x->check, x->event, n->name, state, "error", err);
		return;
	}
	json_array_foreach(x->members, i, m)
		tell(n->a, pl_json_str_or(m, "check", "?"), pl_json_str_or(m, "event", "?"),
		     n->name, state, "error", err);
}

static void send_next(struct notifier *n);

static void
notice_free(struct notice *x)
{
	if (!x)
		return;
	free(x->check);
	free(x->event);
	json_decref(x->members);
	pl_buf_release(&x->body);
	free(x);
}

static void
transfer_release(struct notifier *n)
{
	if (n->e) {
		pl_curlev_remove(n->a->curl, n->e);
		curl_easy_cleanup(n->e);
		n->e = NULL;
	}
	curl_slist_free_all(n->hdrs);
	n->hdrs = NULL;
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	PL_UNUSED(fd);
	PL_UNUSED(what);
	send_next(arg);
}

/* The notice in flight is done with: sent, or given up on. */
static void
finish(struct notifier *n, const char *state, const char *err)
{
	struct notice *x = n->cur;

	n->cur = NULL;
	TAILQ_REMOVE(&n->q, x, q);
	n->nq--;
	if (!strcmp(state, "sent")) {
		n->sent++;
		n->last_sent = now_s();
		pl_log_info("alerts: %s of %s sent to %s", x->event, x->check, n->name);
	} else {
		n->dropped++;
		pl_log_warn("alerts: %s of %s to %s dropped: %s", x->event, x->check, n->name, err);
	}
	tell_notice(n, x, state, err);
	notice_free(x);
}

static void
failed(struct notifier *n, const char *err, bool permanent)
{
	struct notice *x = n->cur;
	long d = 1;
	struct timeval tv = { 0, 0 };

	n->failed++;
	free(n->last_error);
	n->last_error = pl_strdup(err);
	if (permanent || now_s() - x->first > (double)n->a->retry_for) {
		finish(n, "dropped", err);
		send_next(n);
		return;
	}
	n->cur = NULL;
	for (int i = 0; i < n->backoff && d < BACKOFF_MAX; i++)
		d *= 2;
	d = d < BACKOFF_MAX ? d : BACKOFF_MAX;
	n->backoff++;
	pl_log_warn("alerts: %s of %s to %s failed (try %d; again in %lds): %s", x->event, x->check,
		    n->name, x->tries, d, err);
	tell_notice(n, x, "failed", err);
	tv.tv_sec = d;
	evtimer_add(n->retry, &tv);
}

static void
on_done(CURL *e, CURLcode rc, void *arg)
{
	struct notifier *n = NULL;
	long code = 0;
	char err[160];

	PL_UNUSED(arg);
	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&n);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	transfer_release(n);
	if (rc != CURLE_OK) {
		snprintf(err, sizeof(err), "%s", curl_easy_strerror(rc));
		failed(n, err, false);
		return;
	}
	if (n->type != PL_NOTICE_EMAIL && (code < 200 || code > 299)) {
		snprintf(err, sizeof(err), "HTTP %ld", code);
		/* a refusal that a retry would repeat: 4xx but timeout and too many */
		failed(n, err, code >= 400 && code < 500 && code != 408 && code != 429);
		return;
	}
	n->backoff = 0;
	finish(n, "sent", NULL);
	send_next(n);
}

static size_t
read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct notice *x = arg;
	size_t room = size * nitems, left = x->body.len - x->off;
	size_t k = left < room ? left : room;

	memcpy(buf, x->body.data + x->off, k);
	x->off += k;
	return k;
}

/* A notifier's answer says nothing its status does not: read and dropped. */
static size_t
resp_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	PL_UNUSED(ptr);
	PL_UNUSED(arg);
	return size * nmemb;
}

static void
add_header(struct notifier *n, const char *name, const char *value)
{
	char *h = pl_asprintf("%s: %s", name, value);

	n->hdrs = curl_slist_append(n->hdrs, h);
	pl_free_secret(h); /* an Authorization header holds a secret */
}

/* The webhook's signature: "sha256=" and the hex HMAC-SHA256 of the body. */
static char *
signature(const char *key, const struct pl_buf *body)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)body->data, body->len, md,
	     &len);
	for (unsigned int i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return pl_asprintf("sha256=%s", hex);
}

static void
send_next(struct notifier *n)
{
	struct notice *x = TAILQ_FIRST(&n->q);
	const char *ca = pl_json_str(n->cfg, "ca_file");
	char *url;

	if (n->cur || !x || evtimer_pending(n->retry, NULL))
		return;
	n->cur = x;
	x->tries++;
	x->off = 0;
	n->e = curl_easy_init();
	curl_easy_setopt(n->e, CURLOPT_PRIVATE, n);
	curl_easy_setopt(n->e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(n->e, CURLOPT_TIMEOUT_MS, n->timeout * 1000);
	curl_easy_setopt(n->e, CURLOPT_CONNECTTIMEOUT_MS, n->timeout * 1000);
	curl_easy_setopt(n->e, CURLOPT_PROXY, "");
	curl_easy_setopt(n->e, CURLOPT_WRITEFUNCTION, resp_cb);
	if (ca)
		curl_easy_setopt(n->e, CURLOPT_CAINFO, ca);
	if (n->type == PL_NOTICE_EMAIL) {
		const char *user = pl_json_str(n->cfg, "username");
		char *from = pl_asprintf("<%s>", pl_json_str_or(n->cfg, "from", ""));

		curl_easy_setopt(n->e, CURLOPT_URL, n->url);
		curl_easy_setopt(n->e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
		curl_easy_setopt(n->e, CURLOPT_MAIL_FROM, from);
		free(from);
		curl_easy_setopt(n->e, CURLOPT_MAIL_RCPT, n->rcpt);
		curl_easy_setopt(n->e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(n->e, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(n->e, CURLOPT_READDATA, x);
		curl_easy_setopt(n->e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body.len);
		if (pl_json_bool(n->cfg, "starttls", true))
			curl_easy_setopt(n->e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
		if (user)
			curl_easy_setopt(n->e, CURLOPT_USERNAME, user);
		if (n->password)
			curl_easy_setopt(n->e, CURLOPT_PASSWORD, n->password);
	} else {
		const json_t *h;
		const char *k;

		url = n->type == PL_NOTICE_ALERTMANAGER ? pl_asprintf("%s/api/v2/alerts", n->url) :
							  pl_strdup(n->url);
		curl_easy_setopt(n->e, CURLOPT_URL, url);
		free(url);
		curl_easy_setopt(n->e, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(n->e, CURLOPT_POST, 1L);
		curl_easy_setopt(n->e, CURLOPT_POSTFIELDS, x->body.data);
		curl_easy_setopt(n->e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
		curl_easy_setopt(n->e, CURLOPT_USERAGENT, "pvelab-alerts");
		add_header(n, "Expect", "");
		if (n->type != PL_NOTICE_NTFY)
			add_header(n, "Content-Type", "application/json");
		/* ntfy's headers of this notice travel at the head of its body */
		if (n->type == PL_NOTICE_NTFY) {
			char *nl = memchr(x->body.data, '\0', x->body.len);
			size_t hl = nl ? (size_t)(nl - x->body.data) + 1 : 0;

			for (char *p = x->body.data; nl && p < nl;) {
				char *end = strchr(p, '\n');

				*end = '\0';
				n->hdrs = curl_slist_append(n->hdrs, p);
				*end = '\n';
				p = end + 1;
			}
			curl_easy_setopt(n->e, CURLOPT_POSTFIELDS, x->body.data + hl);
			curl_easy_setopt(n->e, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)(x->body.len - hl));
		}
		if (n->type == PL_NOTICE_WEBHOOK) {
			add_header(n, "X-Pvelab-Event", x->event);
			if (n->secret) {
				char *sig = signature(n->secret, &x->body);

				add_header(n, "X-Pvelab-Signature", sig);
				free(sig);
			}
			json_object_foreach((json_t *)json_object_get(n->cfg, "headers"), k, h)
				add_header(n, k, json_string_value(h) ? json_string_value(h) : "");
		}
		if (n->token) {
			char *auth = pl_asprintf("Bearer %s", n->token);

			add_header(n, "Authorization", auth);
			pl_free_secret(auth);
		}
		curl_easy_setopt(n->e, CURLOPT_HTTPHEADER, n->hdrs);
	}
	pl_curlev_add(n->a->curl, n->e);
}

static void
enqueue(struct notifier *n, const char *check, const char *event, json_t *members,
	struct pl_buf *body)
{
	struct notice *x = pl_calloc(1, sizeof(*x));

	x->check = pl_strdup(check);
	x->event = pl_strdup(event);
	x->members = members;
	x->body = *body;
	x->first = now_s();
	if (n->nq >= QUEUE_MAX) {
		struct notice *old = TAILQ_FIRST(&n->q);

		if (old == n->cur)
			old = TAILQ_NEXT(old, q);
		if (old) {
			TAILQ_REMOVE(&n->q, old, q);
			n->nq--;
			n->dropped++;
			pl_log_warn("alerts: %s queue full: %s of %s dropped", n->name, old->event,
				    old->check);
			notice_free(old);
		}
	}
	TAILQ_INSERT_TAIL(&n->q, x, q);
	n->nq++;
	send_next(n);
}

/* Does route r send a notice of this check, at this severity? */
static bool
route_matches(const struct pl_alerts *a, const json_t *r, const json_t *state, const char *severity)
{
	const json_t *list, *v;
	const char *name = pl_json_str_or(state, "name", "");
	const char *guest = pl_json_str(state, "guest");
	bool hit;
	size_t i;

	if (!guest && pl_str_startswith(name, "guest:"))
		guest = name + 6;
	if (severity && (list = json_object_get(r, "severities")) != NULL) {
		hit = false;
		json_array_foreach(list, i, v)
			hit |= !strcmp(json_string_value(v) ? json_string_value(v) : "", severity);
		if (!hit)
			return false;
	}
	if ((list = json_object_get(r, "checks")) != NULL) {
		hit = false;
		json_array_foreach(list, i, v)
			hit |= json_string_value(v) && fnmatch(json_string_value(v), name, 0) == 0;
		if (!hit)
			return false;
	}
	if ((list = json_object_get(r, "guests")) != NULL) {
		hit = false;
		json_array_foreach(list, i, v)
			hit |= guest && json_string_value(v) &&
			       !strcmp(json_string_value(v), guest);
		if (!hit)
			return false;
	}
	if ((list = json_object_get(r, "tags")) != NULL) {
		const json_t *have = guest ? json_object_get(a->guest_tags, guest) : NULL, *t;
		size_t j;

		hit = false;
		json_array_foreach(list, i, v)
			json_array_foreach(have, j, t)
				hit |= json_equal(v, t);
		if (!hit)
			return false;
	}
	return true;
}

/* Whether notifier n gets notices of this check at this severity. */
static bool
routed(const struct pl_alerts *a, const struct notifier *n, const json_t *state,
       const char *severity)
{
	const json_t *r, *v;
	size_t i, j;

	if (json_array_size(a->routes) == 0)
		return true;
	json_array_foreach(a->routes, i, r) {
		bool named = false;

		json_array_foreach(json_object_get(r, "notifiers"), j, v)
			named |= json_string_value(v) && !strcmp(json_string_value(v), n->name);
		if (named && route_matches(a, r, state, severity))
			return true;
	}
	return false;
}

/* The group window of n closed: what waits goes as one notice (a single
 * one as it would have gone alone). */
static void
group_flush(struct notifier *n)
{
	size_t count = json_array_size(n->group);
	const json_t *it = json_array_get(n->group, 0);
	struct pl_buf b;

	if (count == 0)
		return;
	pl_buf_init(&b, 1 << 20);
	if (count == 1) {
		pl_notice_body(&b, n->type, n->cfg, it);
		enqueue(n, pl_json_str_or(json_object_get(it, "doc"), "check", "?"),
			pl_json_str_or(it, "event", "?"), NULL, &b);
	} else {
		json_t *members = pl_notice_group(&b, n->type, n->cfg, n->group);
		char *what = pl_asprintf("%zu checks", count);

		enqueue(n, what, "group", members, &b);
		free(what);
	}
	json_array_clear(n->group);
}

static void
on_group(evutil_socket_t fd, short what, void *arg)
{
	PL_UNUSED(fd);
	PL_UNUSED(what);
	group_flush(arg);
}

/* Notify event (firing, resolved, repeat, refresh) of a check whose
 * notified status is status (the one resolved, for resolved); prev is the
 * alert's status notified before (an Alertmanager alert of another severity
 * to end), or NULL. Alertmanager gets it now (it groups on its own); the
 * other notifiers when their group window closes. */
static void
notify(struct pl_alerts *a, const json_t *state, const char *event, const char *status,
       const char *prev, double since)
{
	const char *name = pl_json_str_or(state, "name", "?");
	const char *sev = pl_notice_severity(status);
	json_t *it;

	it = pl_notice_item(state, event, status, prev, since);
	for (size_t i = 0; i < a->nn; i++) {
		struct notifier *n = &a->nv[i];
		struct pl_buf b;

		if (!routed(a, n, state, sev))
			continue;
		if (!strcmp(event, "refresh") && (n->type != PL_NOTICE_ALERTMANAGER || n->nq > 0))
			continue;
		if (!strcmp(event, "repeat") && n->type == PL_NOTICE_ALERTMANAGER)
			continue; /* Alertmanager repeats by its own repeat_interval */
		if (n->type != PL_NOTICE_ALERTMANAGER && a->group_wait > 0) {
			struct timeval tv = { a->group_wait, 0 };

			json_array_append_new(n->group, json_deep_copy(it));
			if (!evtimer_pending(n->group_ev, NULL))
				evtimer_add(n->group_ev, &tv);
			continue;
		}
		pl_buf_init(&b, 1 << 20);
		pl_notice_body(&b, n->type, n->cfg, it);
		enqueue(n, name, event, NULL, &b);
	}
	json_decref(it);
}

/* The maintenance window of alerts.maintenance that holds state's check
 * now, or NULL. */
static const json_t *
in_window(const struct pl_alerts *a, const json_t *state, time_t now)
{
	const json_t *w;
	size_t i;

	json_array_foreach(a->windows, i, w) {
		struct pl_calendar cal;
		long long dur = pl_json_int(w, "duration", 3600);
		time_t start;

		if (pl_calendar_parse(pl_json_str_or(w, "schedule", ""), &cal, NULL) != 0)
			continue;
		/* the first start after now - duration, if it is not after now */
		start = pl_calendar_next(&cal, now - (time_t)dur);
		if (start < 0 || start > now)
			continue;
		if (route_matches(a, w, state, NULL))
			return w;
	}
	return NULL;
}

/* Why a notice of state's check is held back now (new), or NULL: cause (a
 * check that explains it), flapping, a maintenance window, a silence. */
static char *
hold_reason(const struct pl_alerts *a, const json_t *state, const char *cause)
{
	const json_t *w;

	if (cause)
		return pl_strdup(cause);
	if (json_is_true(json_object_get(state, "flapping")))
		return pl_strdup("the check is flapping");
	if ((w = in_window(a, state, time(NULL))) != NULL)
		return pl_asprintf("maintenance window '%s'", pl_json_str_or(w, "name", "?"));
	return a->hold ? a->hold(state, a->hold_arg) : NULL;
}

void
pl_alerts_set_hold(struct pl_alerts *a, pl_alerts_hold_fn fn, void *arg)
{
	if (a) {
		a->hold = fn;
		a->hold_arg = arg;
	}
}

void
pl_alerts_update(struct pl_alerts *a, const json_t *state)
{
	const char *name = pl_json_str_or(state, "name", "?");
	const char *status = pl_json_str_or(state, "status", "pending");
	const char *cause = pl_json_str(json_object_get(state, "last"), "caused_by");
	json_t *f = a ? json_object_get(a->firing, name) : NULL;
	const char *was = f ? pl_json_str(f, "status") : NULL;
	bool bad = pl_notice_severity(status) != NULL;
	double now = now_s();
	char *why;

	if (!a)
		return;
	if (bad ? (was && !strcmp(was, status)) : !was)
		return; /* nothing new to say */
	if ((why = hold_reason(a, state, bad && cause && !was ? cause : NULL)) != NULL) {
		if (!f || strcmp(pl_json_str_or(f, "held", ""), why)) {
			tell(a, name, bad ? "firing" : "resolved", NULL, "held", "reason", why);
			if (!f) {
				/* remember the hold, not a notice: nothing fires */
				json_object_set_new(a->firing, name,
						    json_pack("{s:s}", "held", why));
			} else {
				json_object_set_new(f, "held", json_string(why));
			}
		}
		free(why);
		return;
	}
	if (f && !was) {
		json_object_del(a->firing, name); /* a hold that ended: nothing was sent */
		f = NULL;
	}
	if (bad) {
		notify(a, state, "firing", status, was, pl_json_num(state, "since", now));
		json_object_set_new(a->firing, name,
				    json_pack("{s:s,s:f,s:f,s:f,s:o}", "status", status, "since",
					      pl_json_num(state, "since", now), "sent", now,
					      "refreshed", now, "state", json_deep_copy(state)));
	} else if (was) {
		notify(a, state, "resolved", was, NULL, pl_json_num(f, "since", now));
		json_object_del(a->firing, name);
	}
}

/* Repeats of alerts still firing, and Alertmanager's refreshes. The check's
 * state is what was last notified: the notice says it still holds. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pl_alerts *a = arg;
	const char *name;
	json_t *f;
	double now = now_s();

	PL_UNUSED(fd);
	PL_UNUSED(what);
	json_object_foreach(a->firing, name, f) {
		const char *st = pl_json_str(f, "status");
		json_t *state;

		if (!st)
			continue;
		state = json_object_get(f, "state");
		if (a->repeat > 0 && now - pl_json_num(f, "sent", now) >= (double)a->repeat) {
			char *why = hold_reason(a, state, NULL);

			if (!why)
				notify(a, state, "repeat", st, NULL, pl_json_num(f, "since", now));
			free(why);
			json_object_set_new(f, "sent", json_real(now));
		}
		if (now - pl_json_num(f, "refreshed", now) >= AM_RESEND) {
			notify(a, state, "refresh", st, NULL, pl_json_num(f, "since", now));
			json_object_set_new(f, "refreshed", json_real(now));
		}
	}
}

/* ---- config ---- */

/* A secret from KEY_file or KEY_env of notifier cfg, if it names one. */
static int
secret(const json_t *cfg, const char *key, const char *who, char **out, char **errmsg)
{
	char k[64];
	const char *file, *env;

	*out = NULL;
	snprintf(k, sizeof(k), "%s_file", key);
	file = pl_json_str(cfg, k);
	snprintf(k, sizeof(k), "%s_env", key);
	env = pl_json_str(cfg, k);
	if (file) {
		int r = pl_file_read_secret(file, out, errmsg);

		return r ? pl_preferr(errmsg, r, "alerts.notifiers '%s': %s_file", who, key) : 0;
	}
	if (env) {
		const char *v = getenv(env);

		if (!v || !*v)
			return pl_seterr(errmsg, PL_EINVAL,
					 "alerts.notifiers '%s': %s_env names '%s', which is not "
					 "set",
					 who, key, env);
		*out = pl_strdup(v);
	}
	return 0;
}

/* "scheme://host[:port]" of url: what logs and the API show of it (a path
 * may be a secret, as an ntfy topic is). */
static char *
shown_url(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *out;

	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		curl_url_cleanup(u);
		return NULL;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	out = pl_asprintf("%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return out;
}

static bool
has_ctl(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A key of cfg that goes into a header line (or an SMTP command) holding a
 * line break would inject one: refused. Returns the offending key or NULL. */
static const char *
unsafe_key(const json_t *cfg)
{
	static const char *const keys[] = { "click", "from", "username", "tags", "to", "headers" };
	const char *k;
	const json_t *v, *x;
	size_t i;

	for (size_t j = 0; j < PL_ARRAY_LEN(keys); j++) {
		v = json_object_get(cfg, keys[j]);
		if (json_is_string(v) && has_ctl(json_string_value(v)))
			return keys[j];
		json_array_foreach(v, i, x)
			if (has_ctl(json_string_value(x)))
				return keys[j];
		if (json_is_object(v))
			json_object_foreach((json_t *)v, k, x)
				if (has_ctl(k) || strchr(k, ':') || has_ctl(json_string_value(x)))
					return keys[j];
	}
	return NULL;
}

static int
notifier_init(struct pl_alerts *a, struct notifier *n, const json_t *cfg, char **errmsg)
{
	const char *name = pl_json_str_or(cfg, "name", "?");
	const char *type = pl_json_str_or(cfg, "type", "");
	const char *url = pl_json_str_or(cfg, "url", "");
	int r;

	n->a = a;
	n->name = pl_strdup(name);
	n->cfg = json_deep_copy(cfg);
	n->timeout = (long)pl_json_int(cfg, "timeout", 10);
	TAILQ_INIT(&n->q);
	n->retry = evtimer_new(a->base, on_retry, n);
	n->group = json_array();
	n->group_ev = evtimer_new(a->base, on_group, n);
	for (size_t i = 0; i < PL_ARRAY_LEN(type_names); i++)
		if (!strcmp(type, type_names[i]))
			n->type = (enum pl_notice_type)i;
	n->url = pl_strdup(url);
	while (n->type == PL_NOTICE_ALERTMANAGER && *n->url && n->url[strlen(n->url) - 1] == '/')
		n->url[strlen(n->url) - 1] = '\0';
	if ((n->shown = shown_url(url)) == NULL)
		return pl_seterr(errmsg, PL_EINVAL, "alerts.notifiers '%s': url is not a URL",
				 name);
	if (unsafe_key(cfg))
		return pl_seterr(errmsg, PL_EINVAL,
				 "alerts.notifiers '%s': %s holds a line break or another control "
				 "character (or a header name a ':')",
				 name, unsafe_key(cfg));
	if (n->type == PL_NOTICE_EMAIL) {
		const json_t *t;
		size_t i;

		if (!pl_str_startswith(url, "smtp://") && !pl_str_startswith(url, "smtps://"))
			return pl_seterr(errmsg, PL_EINVAL,
					 "alerts.notifiers '%s': url is smtp://HOST[:PORT] or "
					 "smtps://HOST[:PORT] for type email",
					 name);
		if (!pl_json_str(cfg, "from") || json_array_size(json_object_get(cfg, "to")) == 0)
			return pl_seterr(errmsg, PL_EINVAL,
					 "alerts.notifiers '%s': type email needs from and to",
					 name);
		json_array_foreach(json_object_get(cfg, "to"), i, t)
			n->rcpt = curl_slist_append(n->rcpt, json_string_value(t));
		if ((r = secret(cfg, "password", name, &n->password, errmsg)) != 0)
			return r;
		/* never a password in the clear */
		if (n->password && pl_str_startswith(url, "smtp://") &&
		    !pl_json_bool(cfg, "starttls", true))
			return pl_seterr(errmsg, PL_EINVAL,
					 "alerts.notifiers '%s': a password with starttls: false "
					 "would cross the network in the clear (use starttls or "
					 "smtps://)",
					 name);
	} else if (!pl_str_startswith(url, "http://") && !pl_str_startswith(url, "https://")) {
		return pl_seterr(errmsg, PL_EINVAL,
				 "alerts.notifiers '%s': url is http(s)://... for type %s", name,
				 type);
	}
	if ((r = secret(cfg, "token", name, &n->token, errmsg)) != 0 ||
	    (r = secret(cfg, "secret", name, &n->secret, errmsg)) != 0)
		return r;
	return 0;
}

static void
notifier_release(struct notifier *n)
{
	struct notice *x;

	transfer_release(n);
	while ((x = TAILQ_FIRST(&n->q)) != NULL) {
		TAILQ_REMOVE(&n->q, x, q);
		notice_free(x);
	}
	if (n->retry)
		event_free(n->retry);
	if (n->group_ev)
		event_free(n->group_ev);
	json_decref(n->group);
	curl_slist_free_all(n->rcpt);
	pl_free_secret(n->token);
	pl_free_secret(n->secret);
	pl_free_secret(n->password);
	json_decref(n->cfg);
	free(n->name);
	free(n->url);
	free(n->shown);
	free(n->last_error);
}

int
pl_alerts_new(struct event_base *base, const struct pl_config *c, pl_alerts_event_cb cb, void *arg,
	      struct pl_alerts **out, char **errmsg)
{
	const json_t *al = c ? pl_config_get(c, "/alerts") : NULL;
	const json_t *list = json_object_get(al, "notifiers"), *v, *g;
	struct pl_alerts *a;
	struct timeval tv = { TICK, 0 };
	size_t i;
	int r;

	*out = NULL;
	if (json_array_size(list) == 0)
		return 0;
	a = pl_calloc(1, sizeof(*a));
	a->base = base;
	a->cb = cb;
	a->arg = arg;
	a->curl = pl_curlev_new(base, on_done, a);
	a->routes = json_deep_copy(json_object_get(al, "routes"));
	a->windows = json_deep_copy(json_object_get(al, "maintenance"));
	a->firing = json_object();
	a->guest_tags = json_object();
	a->repeat = (long)pl_json_int(al, "repeat_interval", 14400);
	a->retry_for = (long)pl_json_int(al, "retry_for", 86400);
	a->group_wait = (long)pl_json_int(al, "group_wait", 30);
	json_array_foreach(pl_config_guests(c), i, g)
		if (pl_json_str(g, "name") && json_object_get(g, "tags"))
			json_object_set(a->guest_tags, pl_json_str(g, "name"),
					json_object_get(g, "tags"));
	a->nv = pl_calloc(json_array_size(list), sizeof(*a->nv));
	json_array_foreach(list, i, v) {
		a->nn++;
		if ((r = notifier_init(a, &a->nv[i], v, errmsg)) != 0) {
			pl_alerts_free(a);
			return r;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(a->nv[j].name, a->nv[i].name)) {
				r = pl_seterr(errmsg, PL_EINVAL,
					      "alerts.notifiers: two are named '%s'",
					      a->nv[i].name);
				pl_alerts_free(a);
				return r;
			}
	}
	json_array_foreach(a->routes, i, v) {
		const json_t *nm;
		size_t j;

		json_array_foreach(json_object_get(v, "notifiers"), j, nm) {
			bool known = false;

			for (size_t k = 0; k < a->nn; k++)
				known |= !strcmp(a->nv[k].name, json_string_value(nm));
			if (!known) {
				r = pl_seterr(errmsg, PL_EINVAL,
					      "alerts.routes[%zu]: no notifier named '%s'", i,
					      json_string_value(nm));
				pl_alerts_free(a);
				return r;
			}
		}
	}
	a->tick = event_new(base, -1, EV_PERSIST, on_tick, a);
	event_add(a->tick, &tv);
	*out = a;
	return 0;
}

json_t *
pl_alerts_info(const struct pl_alerts *a)
{
	json_t *ns = json_array(), *firing = json_array(), *f;
	const char *name;

	for (size_t i = 0; a && i < a->nn; i++) {
		const struct notifier *n = &a->nv[i];

		json_array_append_new(
			ns,
			json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:s?,s:o}", "name", n->name,
				  "type", type_names[n->type], "url", n->shown, "sent",
				  (json_int_t)n->sent, "failed", (json_int_t)n->failed, "dropped",
				  (json_int_t)n->dropped, "queued", (json_int_t)n->nq, "grouping",
				  (json_int_t)json_array_size(n->group), "last_error",
				  n->last_error, "last_sent",
				  n->last_sent ? json_real(n->last_sent) : json_null()));
	}
	if (a)
		json_object_foreach(a->firing, name, f)
			if (pl_json_str(f, "status"))
				json_array_append_new(
					firing, json_pack("{s:s,s:O,s:O,s:O}", "check", name,
							  "status", json_object_get(f, "status"),
							  "since", json_object_get(f, "since"),
							  "notified", json_object_get(f, "sent")));
	return json_pack("{s:o,s:o}", "notifiers", ns, "firing", firing);
}

void
pl_alerts_free(struct pl_alerts *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nn; i++)
		notifier_release(&a->nv[i]);
	free(a->nv);
	pl_curlev_free(a->curl);
	if (a->tick)
		event_free(a->tick);
	json_decref(a->routes);
	json_decref(a->windows);
	json_decref(a->firing);
	json_decref(a->guest_tags);
	free(a);
}
