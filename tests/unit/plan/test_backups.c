/* Unit tests for plan/backups: the newest archive per guest, its age and
 * count, guests without any, archives of guests gone and of no guest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/json.h"
#include "plan/backups.h"

static void
test_newest(void **state)
{
	json_t *res =
		json_loads("[{\"type\":\"qemu\",\"vmid\":300,\"name\":\"proxy\",\"node\":\"pve1\"},"
			   "{\"type\":\"lxc\",\"vmid\":101,\"name\":\"dns\",\"node\":\"pve2\"},"
			   "{\"type\":\"storage\",\"storage\":\"local\",\"node\":\"pve1\"}]",
			   0, NULL);
	json_t *vols = json_loads(
		"[{\"volid\":\"local:backup/"
		"a-300\",\"vmid\":300,\"ctime\":1000,\"storage\":\"local\",\"size\":5},"
		"{\"volid\":\"nas:backup/"
		"b-300\",\"vmid\":300,\"ctime\":3000,\"storage\":\"nas\",\"size\":7},"
		"{\"volid\":\"nas:backup/c-300\",\"vmid\":300,\"ctime\":2000,\"storage\":\"nas\"},"
		"{\"volid\":\"nas:backup/"
		"gone-999\",\"vmid\":999,\"ctime\":9000,\"storage\":\"nas\"},"
		"{\"volid\":\"nas:backup/nobody\",\"ctime\":9000,\"storage\":\"nas\"}]",
		0, NULL);
	json_t *out = pl_backups_newest(res, vols, 3600);
	const json_t *a, *b;

	assert_int_equal(json_array_size(out), 2);
	a = json_array_get(out, 0); /* by vmid */
	b = json_array_get(out, 1);
	assert_int_equal(pl_json_int(a, "vmid", 0), 101);
	assert_int_equal(pl_json_int(a, "count", -1), 0);
	assert_null(json_object_get(a, "newest"));
	assert_int_equal(pl_json_int(b, "vmid", 0), 300);
	assert_int_equal(pl_json_int(b, "count", 0), 3);
	assert_string_equal(pl_json_str(b, "newest"), "nas:backup/b-300");
	assert_int_equal(pl_json_int(b, "age", 0), 600);
	assert_string_equal(pl_json_str(b, "storage"), "nas");
	assert_int_equal(pl_json_int(b, "size", 0), 7);
	json_decref(out);
	json_decref(res);
	json_decref(vols);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_newest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
