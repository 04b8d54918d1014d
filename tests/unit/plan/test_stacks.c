/* Unit tests for plan/stacks.c: the plan's line diff (removals before
 * additions, a cap on the lines shown) and the comparison with the last
 * deploy (create with every file, update with the changed files only,
 * unchanged, a file gone; a new hash only for files without secrets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/json.h"
#include "plan/stacks.h"

static void
test_diff(void **state)
{
	char *d = pl_stacks_diff("a\nb\nc\n", "a\nB\nc\nd\n", 10);

	assert_string_equal(d, "-b\n+B\n+d\n");
	free(d);
	d = pl_stacks_diff("", "1\n2\n3\n", 2);
	assert_string_equal(d, "+1\n+2\n... 1 more\n");
	free(d);
	d = pl_stacks_diff("same\n", "same\n", 10);
	assert_string_equal(d, "");
	free(d);
}

static void
test_compare(void **state)
{
	json_t *rendered = json_loads(
		"[{\"guest\":\"g\",\"vmid\":100,\"name\":\"app\",\"sha256\":\"new\",\"files\":["
		"{\"path\":\"/s/"
		".env\",\"mode\":420,\"secret\":false,\"sha256\":\"e2\",\"_data\":\"T=2\\n\"},"
		"{\"path\":\"/s/"
		"c.yaml\",\"mode\":420,\"secret\":false,\"sha256\":\"c1\",\"_data\":\"x\"},"
		"{\"path\":\"/s/"
		"k.env\",\"mode\":384,\"secret\":true,\"sha256\":\"k2\",\"_data\":\"S=2\"}]},"
		"{\"guest\":\"g\",\"vmid\":100,\"name\":\"other\",\"sha256\":\"o\",\"files\":["
		"{\"path\":\"/o/"
		"c.yaml\",\"mode\":420,\"secret\":false,\"sha256\":\"c9\",\"_data\":\"y\"},"
		"{\"path\":\"/o/"
		"s.env\",\"mode\":384,\"secret\":true,\"sha256\":\"s9\",\"_data\":\"P=1\"}]}]",
		0, NULL);
	json_t *recorded =
		json_loads("[{\"vmid\":100,\"stack\":\"app\",\"sha256\":\"old\",\"files\":{"
			   "\"/s/.env\":{\"sha256\":\"e1\",\"mode\":420,\"text\":\"T=1\\n\"},"
			   "\"/s/c.yaml\":{\"sha256\":\"c1\",\"mode\":420,\"text\":\"x\"},"
			   "\"/s/k.env\":{\"sha256\":\"k1\",\"mode\":384,\"secret\":true},"
			   "\"/s/gone\":{\"sha256\":\"z\",\"mode\":420,\"text\":\"\"}}}]",
			   0, NULL);
	json_t *plan = pl_stacks_compare(rendered, recorded), *want;
	char *got;

	want = json_loads("[{\"guest\":\"g\",\"vmid\":100,\"name\":\"app\",\"action\":\"update\","
			  "\"sha256\":\"new\",\"files\":["
			  "{\"path\":\"/s/.env\",\"change\":\"update\",\"secret\":false,"
			  "\"sha256\":\"e2\",\"diff\":\"-T=1\\n+T=2\\n\"},"
			  "{\"path\":\"/s/k.env\",\"change\":\"update\",\"secret\":true},"
			  "{\"path\":\"/s/gone\",\"change\":\"delete\",\"secret\":false}]},"
			  "{\"guest\":\"g\",\"vmid\":100,\"name\":\"other\",\"action\":\"create\","
			  "\"sha256\":\"o\",\"files\":["
			  "{\"path\":\"/o/c.yaml\",\"change\":\"create\",\"secret\":false,"
			  "\"sha256\":\"c9\"},"
			  "{\"path\":\"/o/s.env\",\"change\":\"create\",\"secret\":true}]}]",
			  0, NULL);
	got = json_dumps(plan, JSON_SORT_KEYS);
	if (!json_equal(plan, want))
		fprintf(stderr, "got %s\n", got);
	assert_true(json_equal(plan, want));
	free(got);
	json_decref(want);
	json_decref(plan);
	/* recorded with the new hash: unchanged */
	json_object_set_new(json_array_get(recorded, 0), "sha256", json_string("new"));
	plan = pl_stacks_compare(rendered, recorded);
	assert_string_equal(pl_json_str(json_array_get(plan, 0), "action"), "unchanged");
	json_decref(plan);
	json_decref(rendered);
	json_decref(recorded);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_compare),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
