/*
 * What a notice says (notice.h): the title and message of a check's change,
 * the body each kind of notifier gets for one check's notice, and the one
 * notice a group window's notices become.
 */
#include "core/common.h"
#include "check/notice.h"
#include "check/check.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

#include <stdlib.h>
#include <time.h>

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* RFC 3339 in UTC with milliseconds, as Alertmanager reads it. */
static char *
rfc3339(double t)
{
	time_t s = (time_t)t;
	struct tm tm;
	char b[40];

	gmtime_r(&s, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
	return pl_asprintf("%s.%03dZ", b, (int)((t - (double)s) * 1000));
}

const char *
pl_notice_severity(const char *status)
{
	if (!strcmp(status, PL_CHECK_DOWN))
		return "critical";
	if (!strcmp(status, PL_CHECK_WARNING))
		return "warning";
	return NULL;
}

/* Title and message of a notice: "DOWN: web/http", "web/http (http ...) is
 * down: connection refused". */
static void
texts(const json_t *state, const char *event, const char *status, char **title, char **msg)
{
	const char *name = pl_json_str_or(state, "name", "?");
	const json_t *last = json_object_get(state, "last");
	const char *target = pl_json_str(state, "target");
	const char *err = pl_json_str(last, "error");
	char *what = target ? pl_asprintf("%s (%s %s)", name, pl_json_str_or(state, "type", ""),
					  target) :
			      pl_strdup(name);

	if (!strcmp(event, "resolved")) {
		*title = pl_asprintf("RESOLVED: %s", name);
		*msg = pl_asprintf("%s is %s again (was %s)", what,
				   pl_json_str_or(state, "status", "up"), status);
	} else {
		*title = pl_asprintf("%s%s: %s", !strcmp(event, "repeat") ? "STILL " : "",
				     !strcmp(status, PL_CHECK_DOWN) ? "DOWN" : "WARNING", name);
		*msg = pl_asprintf("%s is %s%s%s", what, status, err ? ": " : "", err ? err : "");
	}
	/* a header line (ntfy's Title, a mail's Subject): no control character */
	for (char *p = *title; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	free(what);
}

static void
body_ntfy(struct pl_buf *b, const json_t *cfg, const char *event, const char *status,
	  const char *title, const char *msg)
{
	const json_t *tags = json_object_get(cfg, "tags"), *t;
	long long prio = pl_json_int(cfg, "priority", 0);
	size_t i;

	if (prio == 0)
		prio = !strcmp(event, "resolved") ? 3 : !strcmp(status, PL_CHECK_DOWN) ? 4 : 3;
	/* headers first, one a line, then a NUL, then the message */
	pl_buf_addf(b, "Title: %s\nPriority: %lld\nTags: %s", title, prio,
		    !strcmp(event, "resolved")     ? "white_check_mark" :
		    !strcmp(status, PL_CHECK_DOWN) ? "rotating_light" :
						     "warning");
	json_array_foreach(tags, i, t)
		if (json_string_value(t))
			pl_buf_addf(b, ",%s", json_string_value(t));
	pl_buf_addch(b, '\n');
	if (pl_json_str(cfg, "click"))
		pl_buf_addf(b, "Click: %s\n", pl_json_str(cfg, "click"));
	pl_buf_addch(b, '\0');
	pl_buf_addstr(b, msg);
}

static json_t *
am_alert(const json_t *state, const char *status, double since, double ends, const char *title,
	 const char *msg)
{
	char *s = rfc3339(since), *e = rfc3339(ends);
	json_t *labels = json_pack("{s:s,s:s,s:s,s:s}", "alertname", "pvelab_check", "job",
				   "pvelab", "check", pl_json_str_or(state, "name", "?"),
				   "severity", pl_notice_severity(status));
	json_t *al;

	if (pl_json_str(state, "guest"))
		json_object_set(labels, "guest", json_object_get(state, "guest"));
	if (pl_json_str(state, "type"))
		json_object_set(labels, "type", json_object_get(state, "type"));
	if (pl_json_str(state, "target"))
		json_object_set(labels, "instance", json_object_get(state, "target"));
	al = json_pack("{s:o,s:{s:s,s:s},s:s,s:s}", "labels", labels, "annotations", "summary",
		       title, "description", msg, "startsAt", s, "endsAt", e);
	free(s);
	free(e);
	return al;
}

static void
body_email(struct pl_buf *b, const json_t *cfg, const char *event, const char *title,
	   const char *msg, const char *json)
{
	const json_t *to = json_object_get(cfg, "to"), *t;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	size_t i;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	pl_buf_addf(b, "Date: %s\r\nFrom: pvelab <%s>\r\nTo: ", date,
		    pl_json_str_or(cfg, "from", ""));
	json_array_foreach(to, i, t)
		pl_buf_addf(b, "%s<%s>", i ? ", " : "", json_string_value(t));
	pl_buf_addf(b,
		    "\r\nSubject: [pvelab] %s\r\nMessage-ID: <%lld.%d@pvelab>\r\nMIME-Version: "
		    "1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
		    "8bit\r\nX-Pvelab-Event: %s\r\n\r\n%s\r\n\r\n%s\r\n",
		    title, (long long)now, (int)(random() & 0xffffff), event, msg, json);
}

json_t *
pl_notice_item(const json_t *state, const char *event, const char *status, const char *prev,
	       double since)
{
	const char *name = pl_json_str_or(state, "name", "?");
	char *title, *msg;
	json_t *doc, *it;

	texts(state, event, status, &title, &msg);
	doc = json_pack("{s:i,s:s,s:s,s:s,s:s?,s:s?,s:O?,s:O?,s:O?,s:f,s:f,s:s,s:s,s:O?}",
			"version", 1, "event", event, "check", name, "status",
			pl_json_str_or(state, "status", "?"), "previous", prev, "severity",
			pl_notice_severity(status), "guest", json_object_get(state, "guest"),
			"type", json_object_get(state, "type"), "target",
			json_object_get(state, "target"), "since", since, "ts", now_s(), "title",
			title, "message", msg, "result", json_object_get(state, "last"));
	it = json_pack("{s:O,s:s,s:s,s:s?,s:f,s:s,s:s,s:o}", "state", state, "event", event,
		       "status", status, "previous", prev, "since", since, "title", title,
		       "message", msg, "doc", doc);
	free(title);
	free(msg);
	return it;
}

void
pl_notice_body(struct pl_buf *b, enum pl_notice_type type, const json_t *cfg, const json_t *it)
{
	const json_t *state = json_object_get(it, "state");
	const char *event = pl_json_str_or(it, "event", "?");
	const char *status = pl_json_str_or(it, "status", "?");
	const char *prev = pl_json_str(it, "previous");
	const char *title = pl_json_str_or(it, "title", ""),
		   *msg = pl_json_str_or(it, "message", "");
	double since = pl_json_num(it, "since", 0), now = now_s();
	char *json = pl_json_compact(json_object_get(it, "doc"));

	switch (type) {
	case PL_NOTICE_NTFY:
		body_ntfy(b, cfg, event, status, title, msg);
		break;
	case PL_NOTICE_WEBHOOK:
		pl_buf_addstr(b, json);
		break;
	case PL_NOTICE_EMAIL:
		body_email(b, cfg, event, title, msg, json);
		break;
	case PL_NOTICE_ALERTMANAGER: {
		json_t *arr = json_array();
		char *text;

		if (prev && pl_notice_severity(prev) && strcmp(prev, status) != 0)
			json_array_append_new(arr, am_alert(state, prev, since, now, title, msg));
		json_array_append_new(
			arr, am_alert(state, status, since,
				      !strcmp(event, "resolved") ? now : now + PL_NOTICE_AM_ENDS,
				      title, msg));
		text = pl_json_compact(arr);
		pl_buf_addstr(b, text);
		free(text);
		json_decref(arr);
		break;
	}
	}
	free(json);
}

/* What a line of a grouped notice calls an item: DOWN, STILL WARNING,
 * RESOLVED... */
static const char *
label_of(const json_t *it)
{
	const char *ev = pl_json_str_or(it, "event", ""), *st = pl_json_str_or(it, "status", "");
	bool down = !strcmp(st, PL_CHECK_DOWN);

	if (!strcmp(ev, "resolved"))
		return "RESOLVED";
	if (!strcmp(ev, "repeat"))
		return down ? "STILL DOWN" : "STILL WARNING";
	return down ? "DOWN" : "WARNING";
}

json_t *
pl_notice_group(struct pl_buf *b, enum pl_notice_type type, const json_t *cfg, const json_t *items)
{
	static const char *const order[] = { "DOWN", "WARNING", "STILL DOWN", "STILL WARNING",
					     "RESOLVED" };
	size_t count = json_array_size(items), i;
	const char *event = "resolved", *status = PL_CHECK_UP;
	struct pl_buf title, msg;
	json_t *members, *docs, *doc;
	const json_t *it;
	char *json;

	/* "pvelab: 3 DOWN, 1 RESOLVED", then one line per check */
	pl_buf_init(&title, 4096);
	pl_buf_init(&msg, 1 << 20);
	pl_buf_addstr(&title, "pvelab:");
	for (size_t k = 0; k < PL_ARRAY_LEN(order); k++) {
		size_t c = 0;

		json_array_foreach(items, i, it)
			c += !strcmp(label_of(it), order[k]);
		if (c)
			pl_buf_addf(&title, "%s %zu %s", title.len > 7 ? "," : "", c, order[k]);
	}
	members = json_array();
	docs = json_array();
	json_array_foreach(items, i, it) {
		const char *ev = pl_json_str_or(it, "event", "");
		const char *st = pl_json_str_or(it, "status", "");

		pl_buf_addf(&msg, "%s%s: %s", i ? "\n" : "", label_of(it),
			    pl_json_str_or(it, "message", ""));
		json_array_append_new(
			members, json_pack("{s:O,s:s}", "check",
					   json_object_get(json_object_get(it, "doc"), "check"),
					   "event", ev));
		json_array_append(docs, json_object_get(it, "doc"));
		/* the notice is as urgent as its most urgent line */
		if (strcmp(ev, "resolved") && !strcmp(st, PL_CHECK_DOWN)) {
			event = "firing";
			status = PL_CHECK_DOWN;
		} else if (strcmp(ev, "resolved") && strcmp(status, PL_CHECK_DOWN)) {
			event = "firing";
			status = PL_CHECK_WARNING;
		}
	}
	doc = json_pack("{s:i,s:s,s:s%,s:s%,s:f,s:I,s:o}", "version", 1, "event", "group", "title",
			title.data, title.len, "message", msg.data, msg.len, "ts", now_s(), "count",
			(json_int_t)count, "notices", docs);
	json = pl_json_compact(doc);
	switch (type) {
	case PL_NOTICE_NTFY:
		body_ntfy(b, cfg, event, status, title.data, msg.data);
		break;
	case PL_NOTICE_EMAIL:
		body_email(b, cfg, "group", title.data, msg.data, json);
		break;
	default:
		pl_buf_addstr(b, json);
		break;
	}
	free(json);
	json_decref(doc);
	pl_buf_release(&title);
	pl_buf_release(&msg);
	return members;
}
