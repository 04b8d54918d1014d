/* Unit tests for the simulator's cluster configuration checks: the calendar
 * events of backup jobs (proxmox-time's grammar) and the firewall's list
 * digest (PVE::Firewall::copy_list_with_digest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/calendar.h"
#include "sim/api.h"
#include "sim/fw.h"

static void
test_calendar_valid(void **state)
{
	static const char *const good[] = {
		"daily",          "hourly",
		"minutely",       "weekly",
		"monthly",        "yearly",
		"annually",       "quarterly",
		"semiannually",   "semi-annually",
		"02:30",          "2:30",
		"*/15",           "25:00",
		"mon..fri 02:30", "sat,sun 03:00",
		"monday 01:00",   "*-*-1 03:00",
		"*-*-* 00:00:00", "2026-12-24 18:00",
		"12-24",          "mon..fri *:0/15",
		"0/2:00",         "sun,wed 22:00 UTC",
		"  daily  ",      "fri",
		"1..5:00",        "8..17/2:30",
		"*-1,7-1 00:00",  "mon",
	};
	static const char *const bad[] = {
		"",           "   ",      "02:70",        "someday", "mon..fri 24:00:00",
		"1..",        "*-13-01",  "fri..mon..",   "5..1:00", "mon 02:30 extra",
		"2200-01-01", "mon,,tue", "*/0:00:00:00",
	};
	char *why = NULL;

	(void)state;
	for (size_t i = 0; i < PL_ARRAY_LEN(good); i++)
		if (pl_calendar_parse(good[i], NULL, &why) < 0)
			fail_msg("'%s' rejected: %s", good[i], why);
	for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++)
		if (pl_calendar_parse(bad[i], NULL, NULL) == 0)
			fail_msg("'%s' accepted", bad[i]);
}

static void
test_fw_list_digest(void **state)
{
	json_t *list = json_pack("[{s:s,s:s,s:s},{s:s}]", "type", "in", "action", "ACCEPT",
				 "enable", "1", "cidr", "10.0.0.0/8");
	json_t *empty = json_array();
	char d[41];

	(void)state;
	/* sha1("action:ACCEPT\nenable:1\ntype:in\ncidr:10.0.0.0/8\n") */
	pl_sim_fw_list_digest(list, d);
	assert_string_equal(d, "e2b7e71cbf87d6d75dc0f6f5396606ee1654a8a9");
	pl_sim_fw_list_digest(empty, d);
	assert_string_equal(d, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	json_decref(list);
	json_decref(empty);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_calendar_valid),
		cmocka_unit_test(test_fw_list_digest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
