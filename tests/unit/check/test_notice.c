/* Unit tests for check/notice.c: a grouped notice's title counts its lines
 * in a fixed order, is as urgent as its most urgent line, lists each check
 * once, and a webhook's grouped body carries every single notice's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "check/check.h"
#include "check/notice.h"
#include "core/buf.h"
#include "core/json.h"

#include <string.h>

static json_t *
item(const char *name, const char *event, const char *status, const char *error)
{
	json_t *st = json_pack("{s:s,s:s,s:s,s:s,s:{s:s}}", "name", name, "type", "tcp", "target",
			       "10.0.0.5:22", "status",
			       !strcmp(event, "resolved") ? PL_CHECK_UP : status, "last", "status",
			       status);
	json_t *it;

	if (error)
		json_object_set_new(json_object_get(st, "last"), "error", json_string(error));
	it = pl_notice_item(st, event, status, NULL, 1.0);
	json_decref(st);
	return it;
}

static json_t *
three(void)
{
	json_t *items = json_array();

	json_array_append_new(items, item("nas", "resolved", PL_CHECK_DOWN, NULL));
	json_array_append_new(items, item("cert", "firing", PL_CHECK_WARNING, "expires in 3 days"));
	json_array_append_new(items, item("web", "firing", PL_CHECK_DOWN, "refused"));
	return items;
}

static void
test_ntfy_group(void **state)
{
	json_t *items = three(), *members;
	struct pl_buf b;
	const char *body;

	PL_UNUSED(state);
	pl_buf_init(&b, 1 << 20);
	members = pl_notice_group(&b, PL_NOTICE_NTFY, NULL, items);
	/* ntfy's headers, a NUL, the message */
	assert_non_null(strstr(b.data, "Title: pvelab: 1 DOWN, 1 WARNING, 1 RESOLVED\n"));
	assert_non_null(strstr(b.data, "Priority: 4\n"));
	assert_non_null(strstr(b.data, "Tags: rotating_light"));
	body = b.data + strlen(b.data) + 1;
	assert_string_equal(body, "RESOLVED: nas (tcp 10.0.0.5:22) is up again (was down)\n"
				  "WARNING: cert (tcp 10.0.0.5:22) is warning: expires in 3 days\n"
				  "DOWN: web (tcp 10.0.0.5:22) is down: refused");
	assert_int_equal(json_array_size(members), 3);
	assert_string_equal(pl_json_str(json_array_get(members, 0), "check"), "nas");
	assert_string_equal(pl_json_str(json_array_get(members, 0), "event"), "resolved");
	json_decref(members);
	pl_buf_release(&b);
	json_decref(items);
}

static void
test_webhook_group_and_calm_group(void **state)
{
	json_t *items = three(), *members, *doc;
	struct pl_buf b;

	PL_UNUSED(state);
	pl_buf_init(&b, 1 << 20);
	members = pl_notice_group(&b, PL_NOTICE_WEBHOOK, NULL, items);
	doc = json_loadb(b.data, b.len, 0, NULL);
	assert_non_null(doc);
	assert_string_equal(pl_json_str(doc, "event"), "group");
	assert_int_equal(pl_json_int(doc, "count", 0), 3);
	assert_string_equal(
		pl_json_str(json_array_get(json_object_get(doc, "notices"), 2), "check"), "web");
	assert_string_equal(
		pl_json_str(json_array_get(json_object_get(doc, "notices"), 2), "title"),
		"DOWN: web");
	json_decref(doc);
	json_decref(members);
	pl_buf_release(&b);
	json_decref(items);
	/* only recoveries: a calm notice */
	items = json_array();
	json_array_append_new(items, item("a", "resolved", PL_CHECK_DOWN, NULL));
	json_array_append_new(items, item("b", "resolved", PL_CHECK_WARNING, NULL));
	pl_buf_init(&b, 1 << 20);
	members = pl_notice_group(&b, PL_NOTICE_NTFY, NULL, items);
	assert_non_null(
		strstr(b.data, "Title: pvelab: 2 RESOLVED\nPriority: 3\nTags: white_check_mark"));
	json_decref(members);
	pl_buf_release(&b);
	json_decref(items);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ntfy_group),
		cmocka_unit_test(test_webhook_group_and_calm_group),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
