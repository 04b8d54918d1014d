/* Unit tests for core/calendar: what PVE's calendar-event parser accepts and
 * refuses (cases from proxmox-time's and pve-common's own tests, and the
 * backtracking corners of its grammar), and when an event fires next. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/calendar.h"
#include "core/err.h"

#define MIN 60
#define HOUR 3600
#define DAY 86400
#define JUL_31_2020 1596153600 /* a Friday */
#define DEC_31_2020 1609372800 /* a Thursday */

static bool
ok(const char *s)
{
	char *err = NULL;
	int r = pl_calendar_parse(s, NULL, &err);

	if (r != 0) {
		assert_non_null(err);
		assert_non_null(strstr(err, "calendar event"));
	}
	free(err);
	return r == 0;
}

static void
test_accepts(void **state)
{
	static const char *const good[] = {
		"*",
		"*/10",
		"*/12:0",
		"1/12:0/15",
		"1,4,6",
		"0..3",
		"23..23:0..3",
		"Mon",
		"sat..sun",
		"sun..sat",
		"Fri..Mon",
		"fri..mon",
		"wed,mon..tue,fri",
		"mon */15",
		"22/1:0",
		"*/2:*",
		"20..22:*/30",
		"0,1,3..5",
		"2,4:0,1,3..5",
		"daily",
		"weekly",
		"monthly",
		"yearly",
		"annually",
		"quarterly",
		"semiannually",
		"semi-annually",
		"minutely",
		"hourly",
		"daily UTC",
		"mon..fri 02:30",
		"mon..fri UTC",
		"2020-07-31",
		"02-28",
		"1965/5-01-01",
		"2020-7..9-2/2",
		"2020,2021-12-31",
		"*:*:*",
		"*:3:5",
		"MON",
		"monDay",
		"Tuesday",
		"mon,tue..wednesday,fri..sat",
		"sat 02:00",
		"  daily  ",
		"5/0",
		"mon2:00",
		"mon 2020-01-01 00:00",
		"*-*-* *:*:*",
		"4..10/2:0",
		"24:00", /* no hour 24, so minute 24, second 0, as PVE reads it */
		"00-01", /* month 0: parses, never fires */
	};

	for (size_t i = 0; i < PL_ARRAY_LEN(good); i++)
		if (!ok(good[i]))
			fail_msg("'%s' should parse", good[i]);
}

static void
test_refuses(void **state)
{
	static const char *const bad[] = {
		"",         "   ",        "61",
		"*/61",     "0..80",      " mon 0 0 0",
		" mon 0 0", "Daily",      "mo",
		"mon..",    "5..3",       "25:00:00",
		"1,80",     "*/0",        "UTC",
		"02-30-",   "2200-01-01", "13-01",
		"mon,",     "mon..xyz",   "daily 02:00",
		"tomorrow", "1.5",        "0:60",
		"12:00:60", "-1",         "99999999999999999999",
	};

	for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++)
		if (ok(bad[i]))
			fail_msg("'%s' should not parse", bad[i]);
}

static time_t
next(const char *s, time_t last)
{
	struct pl_calendar c;
	char *err = NULL;
	char *utc = pl_asprintf("%s UTC", s);

	if (pl_calendar_parse(utc, &c, &err) != 0)
		fail_msg("'%s': %s", utc, err);
	free(utc);
	return pl_calendar_next(&c, last);
}

static void
test_next(void **state)
{
	assert_int_equal(next("0", 0), HOUR);
	assert_int_equal(next("*", 0), MIN);
	assert_int_equal(next("*", 30), MIN);
	assert_int_equal(next("*", 60), 2 * MIN);
	assert_int_equal(next("*/10", 599), 600);
	assert_int_equal(next("*/10", 50 * MIN), HOUR);
	assert_int_equal(next("*/12:0", 10), 12 * HOUR);
	assert_int_equal(next("*/12:0", 13 * HOUR), DAY);
	assert_int_equal(next("1/12:0/15", 0), HOUR);
	assert_int_equal(next("1/12:0/15", HOUR + 45 * MIN), 13 * HOUR);
	assert_int_equal(next("1/12:0/15", 13 * HOUR + 45 * MIN), 25 * HOUR);
	assert_int_equal(next("*:*:*", 0), 1);
	assert_int_equal(next("*:3:5", 0), 3 * MIN + 5);
	assert_int_equal(next("Mon", 0), 4 * DAY); /* 1970-01-01 was a Thursday */
	assert_int_equal(next("Mon", 4 * DAY), 11 * DAY);
	assert_int_equal(next("sat..sun", 0), 2 * DAY);
	assert_int_equal(next("sat..sun", 2 * DAY), 3 * DAY);
	assert_int_equal(next("sat..sun", 3 * DAY), 9 * DAY);
	assert_int_equal(next("fri..mon", 0), 1 * DAY);
	assert_int_equal(next("fri..mon", 3 * DAY), 4 * DAY);
	assert_int_equal(next("fri..mon", 4 * DAY), 8 * DAY);
	assert_int_equal(next("22/1:0", 22 * HOUR + 59 * MIN), 23 * HOUR);
	assert_int_equal(next("20..22:*/30", 22 * HOUR + 30 * MIN), 44 * HOUR);
	assert_int_equal(next("2,4:0,1,3..5", 2 * HOUR + 5 * MIN), 4 * HOUR);
	assert_int_equal(next("4..10/2:0", 11 * HOUR), DAY + 4 * HOUR);
	assert_int_equal(next("6,4..10:23,5/5", 0), 4 * HOUR + 5 * MIN);
	assert_int_equal(next("sat", JUL_31_2020), JUL_31_2020 + DAY);
	assert_int_equal(next("thu", JUL_31_2020), JUL_31_2020 + 6 * DAY);
	assert_int_equal(next("mon", DEC_31_2020), DEC_31_2020 + 4 * DAY);
	assert_int_equal(next("daily", 1), DAY);
	assert_int_equal(next("weekly", 0), 4 * DAY);
	assert_int_equal(next("monthly", 0), 31 * DAY);
	assert_int_equal(next("quarterly", 0), (31 + 28 + 31) * DAY);
	assert_int_equal(next("semiannually", 0), (31 + 28 + 31 + 30 + 31 + 30) * DAY);
	assert_int_equal(next("yearly", 0), 365 * DAY);
	assert_int_equal(next("2020-07-31", 0), JUL_31_2020);
	assert_int_equal(next("02-29", 0), 2 * 365 * DAY + (31 + 28) * DAY);
	assert_int_equal(next("2020-7..9-2/2", JUL_31_2020), JUL_31_2020 + 2 * DAY);
	assert_int_equal(next("2020,2021-12-31", JUL_31_2020), DEC_31_2020);
	assert_int_equal(next("2021-02-29", 0), -1);
	assert_int_equal(next("02-30", 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_refuses),
		cmocka_unit_test(test_next),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
