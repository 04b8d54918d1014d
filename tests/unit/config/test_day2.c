/* Unit tests for config/check_day2: snapshot policies' labels (valid in PVE
 * snapshot names, unique), selections and schedules (PVE calendar events),
 * and the apply_snapshots and snapshot_policies keys' types and ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/diag.h"
#include "core/err.h"

/* Load text and run every check; the diagnostics' messages, one a line. */
static char *
diagnose(const char *text, size_t *errors)
{
	struct pl_config *c = NULL;
	struct pl_diags d;
	char *out = pl_strdup("");

	pl_diags_init(&d);
	pl_config_load_string("t.yaml", text, strlen(text), &c, &d);
	if (c)
		pl_config_check(c, &d);
	*errors = 0;
	for (size_t i = 0; i < d.n; i++) {
		char *line = pl_diag_line(&d.items[i]);
		char *more = pl_asprintf("%s%s\n", out, line);

		*errors += d.items[i].level == PL_DIAG_ERROR;
		free(out);
		free(line);
		out = more;
	}
	pl_diags_release(&d);
	pl_config_free(c);
	return out;
}

static void
test_good_policies(void **state)
{
	size_t errors;
	char *out = diagnose("guests: []\n"
			     "apply_snapshots: {keep: 3}\n"
			     "snapshot_policies:\n"
			     "  - {label: daily, keep: 7, schedule: '02:30', tags: [prod]}\n"
			     "  - {label: hourly-2, keep: 24, schedule: 'mon..fri *:0/15 UTC',\n"
			     "     vmstate: true, guests: [web, 101], exclude: [db]}\n"
			     "  - {label: M_1, keep: 1, pools: [infra]}\n",
			     &errors);

	if (errors)
		fail_msg("%s", out);
	free(out);
}

static void
test_bad_policies(void **state)
{
	size_t errors;
	char *out = diagnose("guests: []\n"
			     "apply_snapshots: {keep: 0}\n"
			     "snapshot_policies:\n"
			     "  - {label: daily, keep: 7, schedule: 'every day', tags: [prod]}\n"
			     "  - {label: daily, keep: 101, guests: [x]}\n"
			     "  - {label: 'a.b', keep: 2, guests: [x]}\n"
			     "  - {label: abcdefghijklmnopqrstuvwxy, keep: 2, guests: [x]}\n"
			     "  - {label: none, keep: 2}\n"
			     "  - {keep: 2, guests: [x]}\n",
			     &errors);

	assert_non_null(strstr(out, "apply_snapshots.keep: 0 is out of range"));
	assert_non_null(strstr(out, "t.yaml:4:"));
	assert_non_null(strstr(out, "not a calendar event 'every day'"));
	assert_non_null(strstr(out, "duplicate label 'daily' (first used by policy 0"));
	assert_non_null(strstr(out, "snapshot_policies[1].keep: 101 is out of range"));
	assert_non_null(strstr(out, "label 'a.b' cannot name snapshots"));
	assert_non_null(strstr(out, "label 'abcdefghijklmnopqrstuvwxy' cannot name snapshots"));
	assert_non_null(strstr(out, "policy 'none' selects no guest"));
	assert_non_null(strstr(out, "snapshot_policies[5]: missing required key 'label'"));
	assert_int_equal(errors, 8);
	free(out);
}

static void
test_label_rule(void **state)
{
	assert_true(pl_config_snap_label_valid("daily"));
	assert_true(pl_config_snap_label_valid("abcdefghijklmnopqrstuvwx")); /* 24 */
	assert_false(pl_config_snap_label_valid("abcdefghijklmnopqrstuvwxy"));
	assert_false(pl_config_snap_label_valid(""));
	assert_false(pl_config_snap_label_valid(NULL));
	assert_false(pl_config_snap_label_valid("a b"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_policies),
		cmocka_unit_test(test_bad_policies),
		cmocka_unit_test(test_label_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
