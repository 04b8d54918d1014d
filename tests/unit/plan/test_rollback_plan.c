/* Unit tests for plan/runs' rollback plan, which the CLI's rollback and the
 * server's share: a snapshot taken is rolled back, a guest destroyed with a
 * backup restored (the replacement destroyed first), a changed guest backed up
 * instead of snapshotted overwritten, and what cannot come back is a note. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/json.h"
#include "plan/runs.h"

static const char *const RUN =
	"{\"id\":7,\"kind\":\"apply\",\"status\":\"interrupted\",\"result\":{\"changes\":["
	/* snapshotted, then interrupted: rolled back */
	"{\"guest\":\"web\",\"action\":\"update\",\"vmid\":100,\"node\":\"pve1\",\"type\":\"qemu\","
	"\"status\":\"interrupted\",\"snapshot\":\"pvelab-pre-7\",\"was_running\":true},"
	/* never started: nothing */
	"{\"guest\":\"db\",\"action\":\"update\",\"vmid\":101,\"node\":\"pve1\",\"type\":\"qemu\","
	"\"status\":\"not started\"},"
	/* deleted after a backup: restored */
	"{\"guest\":\"old\",\"action\":\"delete\",\"vmid\":102,\"node\":\"pve2\",\"type\":\"lxc\","
	"\"status\":\"ok\",\"destroyed\":true,\"backup\":\"local:backup/vzdump-lxc-102.tar.zst\","
	"\"backup_storage\":\"local\",\"was_running\":false},"
	/* replaced under a new vmid: the new one goes first */
	"{\"guest\":\"app\",\"action\":\"replace\",\"vmid\":110,\"node\":\"pve1\",\"type\":\"lxc\","
	"\"from_type\":\"qemu\",\"old_vmid\":103,\"old_node\":\"pve2\",\"status\":\"ok\","
	"\"created\":true,\"destroyed\":true,\"backup\":\"local:backup/vzdump-qemu-103.vma.zst\"},"
	/* backed up instead of snapshotted: overwritten from the archive */
	"{\"guest\":\"nas\",\"action\":\"update\",\"vmid\":104,\"node\":\"pve2\",\"type\":\"lxc\","
	"\"status\":\"ok\",\"backup\":\"local:backup/vzdump-lxc-104.tar.zst\"},"
	/* destroyed without a backup, and a guest created: notes */
	"{\"guest\":\"gone\",\"action\":\"delete\",\"vmid\":105,\"status\":\"ok\","
	"\"destroyed\":true,\"no_backup\":true},"
	"{\"guest\":\"new\",\"action\":\"create\",\"vmid\":106,\"status\":\"ok\"}]}}";

static void
test_rollback_plan(void **state)
{
	json_t *run = json_loads(RUN, 0, NULL), *notes = json_array();
	json_t *plan, *owned;
	const json_t *c;

	(void)state;
	assert_non_null(run);
	plan = pl_runs_rollback_plan(run, notes);
	assert_int_equal(json_array_size(json_object_get(plan, "changes")), 4);
	c = json_array_get(json_object_get(plan, "changes"), 0);
	assert_string_equal(pl_json_str(c, "action"), "rollback");
	assert_string_equal(pl_json_str(c, "snapshot"), "pvelab-pre-7");
	assert_true(json_is_true(json_object_get(c, "running")));
	c = json_array_get(json_object_get(plan, "changes"), 1);
	assert_string_equal(pl_json_str(c, "action"), "restore");
	assert_int_equal(pl_json_int(c, "vmid", 0), 102);
	assert_string_equal(pl_json_str(c, "archive"), "local:backup/vzdump-lxc-102.tar.zst");
	assert_null(json_object_get(c, "old_vmid"));
	c = json_array_get(json_object_get(plan, "changes"), 2);
	assert_string_equal(pl_json_str(c, "action"), "restore");
	assert_int_equal(pl_json_int(c, "vmid", 0), 103);
	assert_string_equal(pl_json_str(c, "type"), "qemu");
	assert_string_equal(pl_json_str(c, "node"), "pve2");
	assert_int_equal(pl_json_int(c, "old_vmid", 0), 110);
	assert_string_equal(pl_json_str(c, "from_type"), "lxc");
	c = json_array_get(json_object_get(plan, "changes"), 3);
	assert_int_equal(pl_json_int(c, "vmid", 0), 104);
	assert_true(json_is_true(json_object_get(c, "overwrite")));
	/* the guests it may touch: those the run touched, the replacement too */
	owned = pl_runs_rollback_owned(plan);
	assert_int_equal(json_object_size(owned), 5);
	assert_non_null(json_object_get(owned, "110"));
	assert_null(json_object_get(owned, "101"));
	assert_int_equal(json_array_size(notes), 2);
	assert_non_null(strstr(json_string_value(json_array_get(notes, 0)),
			       "without a backup (--no-backup)"));
	assert_non_null(strstr(json_string_value(json_array_get(notes, 1)), "created new (106)"));
	json_decref(owned);
	json_decref(plan);
	json_decref(notes);
	json_decref(run);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rollback_plan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
