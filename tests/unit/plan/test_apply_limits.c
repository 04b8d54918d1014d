/* Unit tests for the executor's own delete limit (plan/apply): a plan file is
 * never trusted, so pl_apply_run refuses a plan with more deletes than its
 * options allow before it touches anything (no client, no loop needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "core/json.h"
#include "plan/apply.h"

static json_t *
plan_with_deletes(int n)
{
	json_t *plan = json_pack("{s:i,s:[{s:s,s:s,s:s,s:i,s:s}]}", "version", 1, "changes", "action",
				 "update", "guest", "keep", "type", "qemu", "vmid", 100, "node", "pve");

	for (int i = 0; i < n; i++)
		json_array_append_new(json_object_get(plan, "changes"),
				      json_pack("{s:s,s:s,s:s,s:i,s:s}", "action", "delete", "guest", "gone",
						"type", "qemu", "vmid", 200 + i, "node", "pve"));
	return plan;
}

static void
test_deletes_refused_without_allow_delete(void **state)
{
	struct pl_apply_opts o = { .jobs = 1, .max_deletes = -1 };
	json_t *plan = plan_with_deletes(1), *res = NULL;

	assert_int_equal(pl_apply_run(NULL, NULL, plan, &o, &res), PL_EINVAL);
	assert_int_equal(pl_json_int(res, "ok", -1), 0);
	assert_int_equal(pl_json_int(res, "skipped", -1), 2);
	assert_string_equal(pl_json_str(json_array_get(json_object_get(res, "changes"), 1), "error"),
			    "refused: deleting guests needs --allow-delete");
	assert_null(pl_json_str(json_array_get(json_object_get(res, "changes"), 0), "error"));
	json_decref(res);
	json_decref(plan);
}

static void
test_deletes_over_the_limit_refused(void **state)
{
	struct pl_apply_opts o = { .jobs = 1, .allow_delete = true, .max_deletes = 2 };
	json_t *plan = plan_with_deletes(3), *res = NULL;

	assert_int_equal(pl_apply_run(NULL, NULL, plan, &o, &res), PL_EINVAL);
	assert_string_equal(pl_json_str(json_array_get(json_object_get(res, "changes"), 3), "error"),
			    "refused: 3 deletes, more than the limit of 2");
	json_decref(res);
	json_decref(plan);
}

/* Only guests in opts.owned may be stopped, rebooted, replaced, rolled back
 * or destroyed, whatever the plan says; the whole plan is refused. */
static void
test_unowned_guests_refused(void **state)
{
	json_t *owned = json_pack("{s:b,s:b}", "200", 1, "100", 1);
	struct pl_apply_opts o = { .jobs = 1, .allow_delete = true, .max_deletes = -1,
				   .allow_replace = true, .reboot = true, .owned = owned };
	json_t *plan = plan_with_deletes(2), *res = NULL, *ch;
	const char *want[] = { NULL, NULL, "refused: guest 201 is not managed by this project",
			       "refused: guest 300 is not managed by this project",
			       "refused: guest 400 is not managed by this project",
			       "refused: guest 500 is not managed by this project",
			       "refused: guest 600 is not managed by this project", NULL };

	ch = json_object_get(plan, "changes");
	json_array_append_new(ch, json_pack("{s:s,s:s,s:i}", "action", "stop", "guest", "s", "vmid", 300));
	json_array_append_new(ch, json_pack("{s:s,s:s,s:i,s:i}", "action", "restore", "guest", "r",
					    "vmid", 200, "old_vmid", 400));
	json_array_append_new(ch, json_pack("{s:s,s:s,s:i}", "action", "replace", "guest", "p", "vmid", 500));
	json_array_append_new(ch, json_pack("{s:s,s:s,s:i,s:b}", "action", "update", "guest", "u",
					    "vmid", 600, "reboot", 1));
	json_array_append_new(ch, json_pack("{s:s,s:s,s:i}", "action", "create", "guest", "c", "vmid", 700));
	assert_int_equal(pl_apply_run(NULL, NULL, plan, &o, &res), PL_EINVAL);
	assert_int_equal(json_array_size(json_object_get(res, "changes")), PL_ARRAY_LEN(want));
	for (size_t i = 0; i < PL_ARRAY_LEN(want); i++) {
		const char *e = pl_json_str(json_array_get(json_object_get(res, "changes"), i), "error");

		if (want[i])
			assert_string_equal(e, want[i]);
		else
			assert_null(e);
	}
	json_decref(res);
	/* no allow-list at all: nothing may be destroyed */
	o.owned = NULL;
	assert_int_equal(pl_apply_run(NULL, NULL, plan, &o, &res), PL_EINVAL);
	assert_string_equal(pl_json_str(json_array_get(json_object_get(res, "changes"), 1), "error"),
			    "refused: guest 200 is not managed by this project");
	json_decref(res);
	json_decref(plan);
	json_decref(owned);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deletes_refused_without_allow_delete),
		cmocka_unit_test(test_deletes_over_the_limit_refused),
		cmocka_unit_test(test_unowned_guests_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
