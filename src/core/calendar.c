/*
 * PVE calendar events (see calendar.h). The grammar is proxmox-time's
 * (calendar_event.rs, the parser behind pve-common's PVE::CalendarEvent),
 * read and restated here with its backtracking: an optional list may stop
 * at an element it cannot parse and leave the rest to what follows, and the
 * whole text must be used. In short:
 *
 *   event   = keyword | [weekdays] [date] [time], at least one of them, [" UTC"]
 *   keyword = minutely|hourly|daily|weekly|monthly|yearly|annually|quarterly|
 *             semiannually|semi-annually
 *   weekdays= wdrange ("," wdrange)*    wdrange = day [".." day] (wraps: fri..mon)
 *   date    = [list(year) "-"] list(month) "-" list(day)
 *   time    = [list(hour) ":"] list(minute) [":" list(second)]
 *   list    = "*" ["/" N>0] | value ("," value)*
 *   value   = N [".." N] ["/" N]
 *
 * with N below the field's limit (year 2200, month 13, day 32, hour 24,
 * minute and second 60). No time means 00:00:00; no seconds mean :00.
 */
#include "core/common.h"
#include "core/calendar.h"
#include "core/err.h"

#include <ctype.h>
#include <limits.h>

static void
field_set(struct pl_cal_field *f, uint32_t v)
{
	f->bits[v / 64] |= 1ULL << (v % 64);
}

static bool
field_has(const struct pl_cal_field *f, uint32_t v)
{
	return f->any || (v < 64 * PL_ARRAY_LEN(f->bits) && (f->bits[v / 64] >> (v % 64)) & 1);
}

/* The smallest value in f above v below max, or -1. */
static long
field_next(const struct pl_cal_field *f, uint32_t v, uint32_t max)
{
	for (uint32_t x = v + 1; x < max; x++)
		if (field_has(f, x))
			return x;
	return -1;
}

/* One number below max (proxmox-time's parse_time_comp). */
static bool
comp(const char **pp, uint32_t max, uint32_t *out)
{
	const char *p = *pp;
	unsigned long long v = 0;

	if (!isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		v = v * 10 + (unsigned)(*p - '0');
		if (v > UINT32_MAX)
			return false;
	}
	if (v >= max)
		return false;
	*out = (uint32_t)v;
	*pp = p;
	return true;
}

/* Add lo..hi every step (step 0: lo alone) to f, below max. */
static void
add_values(struct pl_cal_field *f, uint32_t lo, uint32_t hi, uint32_t step, uint32_t max)
{
	if (step == 0) {
		field_set(f, lo);
		return;
	}
	for (uint64_t v = lo; v <= hi && v < max; v += step)
		field_set(f, (uint32_t)v);
}

/* value = N [".." N] ["/" N] */
static bool
value(const char **pp, uint32_t max, struct pl_cal_field *f)
{
	const char *p = *pp, *q;
	uint32_t a, b, r;

	if (!comp(&p, max, &a))
		return false;
	q = p;
	if (q[0] == '.' && q[1] == '.' && (q += 2, comp(&q, max, &b))) {
		p = q;
		if (a > b)
			return false;
		if (*p == '/') {
			p++;
			if (!comp(&p, max, &r))
				return false;
			add_values(f, a, b, r, max);
		} else {
			add_values(f, a, b, 1, max);
		}
	} else if (*p == '/') {
		p++;
		if (!comp(&p, max, &r))
			return false;
		add_values(f, a, UINT32_MAX, r, max);
	} else {
		field_set(f, a);
	}
	*pp = p;
	return true;
}

/* list = "*" ["/" N>0] | value ("," value)* */
static bool
list(const char **pp, uint32_t start, uint32_t max, struct pl_cal_field *f)
{
	const char *p = *pp;

	memset(f, 0, sizeof(*f));
	if (*p == '*') {
		const char *q = p + 1;
		uint32_t r;

		if (*q == '/' && (q++, comp(&q, max, &r)) && r > 0) {
			add_values(f, start, UINT32_MAX, r, max);
			*pp = q;
			return true;
		}
		f->any = true;
		*pp = p + 1;
		return true;
	}
	if (!value(&p, max, f))
		return false;
	for (;;) {
		const char *q = p;
		struct pl_cal_field more = *f;

		if (*q++ != ',' || !value(&q, max, &more))
			break;
		*f = more;
		p = q;
	}
	*pp = p;
	return true;
}

static const char *const day_names[7][2] = {
	{ "mon", "monday" }, { "tue", "tuesday" },  { "wed", "wednesday" }, { "thu", "thursday" },
	{ "fri", "friday" }, { "sat", "saturday" }, { "sun", "sunday" },
};

/* A weekday, any case, as its bit; the letters are taken whole. */
static bool
weekday(const char **pp, unsigned *bit)
{
	const char *p = *pp;
	size_t n = 0;

	while (isalpha((unsigned char)p[n]))
		n++;
	for (int d = 0; n && d < 7; d++)
		for (int k = 0; k < 2; k++)
			if (strlen(day_names[d][k]) == n && !strncasecmp(p, day_names[d][k], n)) {
				*bit = (unsigned)d;
				*pp = p + n;
				return true;
			}
	return false;
}

/* wdrange = day [".." day]; a range that wraps takes the days to Sunday
 * and from Monday. */
static bool
weekday_range(const char **pp, unsigned *days)
{
	const char *p = *pp, *q;
	unsigned a, b;

	if (!weekday(&p, &a))
		return false;
	q = p;
	if (q[0] == '.' && q[1] == '.' && (q += 2, weekday(&q, &b))) {
		p = q;
		for (unsigned d = a;; d = (d + 1) % 7) {
			*days |= 1u << d;
			if (d == b)
				break;
		}
	} else {
		*days |= 1u << a;
	}
	*pp = p;
	return true;
}

static const char *
spaces(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* date = [list(year) "-"] list(month) "-" list(day) */
static bool
date(const char **pp, struct pl_calendar *c)
{
	const char *p = *pp;

	if (list(&p, 0, 2200, &c->year) && *p == '-' && (p++, list(&p, 1, 13, &c->month)) &&
	    *p == '-' && (p++, list(&p, 1, 32, &c->day))) {
		*pp = p;
		return true;
	}
	p = *pp;
	memset(&c->year, 0, sizeof(c->year));
	c->year.any = true;
	if (list(&p, 1, 13, &c->month) && *p == '-' && (p++, list(&p, 1, 32, &c->day))) {
		*pp = p;
		return true;
	}
	return false;
}

/* time = [list(hour) ":"] list(minute) [":" list(second)] */
static bool
timespec(const char **pp, struct pl_calendar *c)
{
	const char *p = *pp, *q = p;

	if (list(&q, 0, 24, &c->hour) && *q == ':')
		p = q + 1;
	else
		c->hour = (struct pl_cal_field){ .any = true };
	if (!list(&p, 0, 60, &c->minute))
		return false;
	q = p;
	memset(&c->second, 0, sizeof(c->second));
	if (*q == ':' && (q++, list(&q, 0, 60, &c->second)))
		p = q;
	else
		field_set(&c->second, 0);
	*pp = p;
	return true;
}

static void
zero(struct pl_cal_field *f)
{
	memset(f, 0, sizeof(*f));
	field_set(f, 0);
}

/* The keywords, as proxmox-time spells them out. */
static bool
keyword(const char *s, struct pl_calendar *c)
{
	static const char *const words[] = { "minutely",     "hourly",    "daily",
					     "weekly",       "monthly",   "yearly",
					     "annually",     "quarterly", "semiannually",
					     "semi-annually" };
	size_t k;

	for (k = 0; k < PL_ARRAY_LEN(words); k++)
		if (!strcmp(s, words[k]))
			break;
	if (k == PL_ARRAY_LEN(words))
		return false;
	c->year.any = c->month.any = c->day.any = c->hour.any = c->minute.any = true;
	zero(&c->second);
	if (k >= 1)
		zero(&c->minute);
	if (k >= 2)
		zero(&c->hour);
	if (k == 3)
		c->days = 1; /* weekly: Monday */
	if (k >= 4) {
		memset(&c->day, 0, sizeof(c->day));
		field_set(&c->day, 1);
	}
	if (k >= 5) {
		memset(&c->month, 0, sizeof(c->month));
		if (k == 7) {
			for (uint32_t m = 1; m <= 10; m += 3)
				field_set(&c->month, m);
		} else {
			field_set(&c->month, 1);
			if (k >= 8)
				field_set(&c->month, 7);
		}
	}
	return true;
}

int
pl_calendar_parse(const char *text, struct pl_calendar *out, char **errmsg)
{
	struct pl_calendar c = { 0 };
	const char *p;
	char *s = NULL;
	size_t n;
	bool any = false;
	int r = PL_EINVAL;

	/* pve-common trims the text before proxmox-time sees it */
	while (*text && isspace((unsigned char)*text))
		text++;
	n = strlen(text);
	while (n && isspace((unsigned char)text[n - 1]))
		n--;
	s = pl_strndup(text, n);
	if (n == 0) {
		pl_seterr(errmsg, r,
			  "empty calendar event (e.g. 'daily', 'mon..fri 02:30', '*:0/15')");
		goto out;
	}
	if (n >= 3 && !strcmp(s + n - 3, "UTC")) {
		c.utc = true;
		n -= 3;
		while (n && s[n - 1] == ' ')
			n--;
		s[n] = '\0';
	}
	c.year.any = c.month.any = c.day.any = true;
	p = s;
	if (isalpha((unsigned char)*p)) {
		if (keyword(p, &c)) {
			r = 0;
			goto out;
		}
		if (!weekday_range(&p, &c.days))
			goto bad;
		for (;;) {
			const char *q = p;

			if (*q++ != ',' || !weekday_range(&q, &c.days))
				break;
			p = q;
		}
		p = spaces(p);
		any = true;
	}
	{
		struct pl_calendar d = c;

		if (date(&p, &d)) {
			c = d;
			p = spaces(p);
			any = true;
		}
	}
	if (timespec(&p, &c)) {
		any = true;
	} else {
		zero(&c.hour);
		zero(&c.minute);
		zero(&c.second);
	}
	if (any && *p == '\0') {
		r = 0;
		goto out;
	}
bad:
	pl_seterr(errmsg, r,
		  "not a calendar event '%s': cannot parse %s%s%s (PVE's form is [WEEKDAY] "
		  "[[YEAR-]MONTH-DAY] [HOUR:]MINUTE[:SECOND] [UTC], e.g. 'daily', "
		  "'mon..fri 02:30', '*:0/15')",
		  text, any ? "from '" : "it", any ? p : "", any ? "'" : "");
out:
	if (r == 0 && out)
		*out = c;
	free(s);
	return r;
}

/* Normalise tm after a change, in the event's zone. */
static bool
norm(struct tm *tm, bool utc)
{
	time_t t;

	tm->tm_isdst = -1;
	t = utc ? timegm(tm) : mktime(tm);
	if (t == (time_t)-1)
		return false;
	if (utc)
		gmtime_r(&t, tm);
	else
		localtime_r(&t, tm);
	return true;
}

time_t
pl_calendar_next(const struct pl_calendar *c, time_t last)
{
	time_t t = last + 1;
	struct tm tm;
	unsigned all = 0x7f;

	if (c->utc)
		gmtime_r(&t, &tm);
	else
		localtime_r(&t, &tm);
	/* field by field, as proxmox-time's compute_next_event: a field that
	 * does not match moves to its next value (the smaller fields reset),
	 * or, with none left, to the start of the next larger unit */
	for (int count = 0; count < 1000; count++) {
		uint32_t y = (uint32_t)tm.tm_year + 1900, mon = (uint32_t)tm.tm_mon + 1;
		uint32_t d = (uint32_t)tm.tm_mday, wd = (uint32_t)(tm.tm_wday + 6) % 7;
		long nx;

		if (!field_has(&c->year, y)) {
			if ((nx = field_next(&c->year, y, 2200)) < 0)
				return -1;
			tm = (struct tm){ .tm_year = (int)nx - 1900, .tm_mday = 1 };
		} else if (!field_has(&c->month, mon)) {
			nx = field_next(&c->month, mon, 13);
			tm = (struct tm){ .tm_year = tm.tm_year + (nx < 0),
					  .tm_mon = nx < 0 ? 0 : (int)nx - 1,
					  .tm_mday = 1 };
		} else if (!field_has(&c->day, d)) {
			nx = field_next(&c->day, d, 32);
			tm = (struct tm){ .tm_year = tm.tm_year,
					  .tm_mon = tm.tm_mon + (nx < 0),
					  .tm_mday = nx < 0 ? 1 : (int)nx };
		} else if (c->days && c->days != all && !(c->days >> wd & 1)) {
			int step = 1;

			while (wd + (unsigned)step < 7 && !(c->days >> (wd + (unsigned)step) & 1))
				step++;
			tm = (struct tm){ .tm_year = tm.tm_year,
					  .tm_mon = tm.tm_mon,
					  .tm_mday = tm.tm_mday + step };
		} else if (!field_has(&c->hour, (uint32_t)tm.tm_hour)) {
			nx = field_next(&c->hour, (uint32_t)tm.tm_hour, 24);
			tm.tm_min = tm.tm_sec = 0;
			if (nx < 0) {
				tm.tm_hour = 0;
				tm.tm_mday++;
			} else {
				tm.tm_hour = (int)nx;
			}
		} else if (!field_has(&c->minute, (uint32_t)tm.tm_min)) {
			nx = field_next(&c->minute, (uint32_t)tm.tm_min, 60);
			tm.tm_sec = 0;
			if (nx < 0) {
				tm.tm_min = 0;
				tm.tm_hour++;
			} else {
				tm.tm_min = (int)nx;
			}
		} else if (!field_has(&c->second, (uint32_t)tm.tm_sec)) {
			nx = field_next(&c->second, (uint32_t)tm.tm_sec, 60);
			if (nx < 0) {
				tm.tm_sec = 0;
				tm.tm_min++;
			} else {
				tm.tm_sec = (int)nx;
			}
		} else {
			tm.tm_isdst = -1;
			return c->utc ? timegm(&tm) : mktime(&tm);
		}
		if (!norm(&tm, c->utc))
			return -1;
	}
	return -1;
}
