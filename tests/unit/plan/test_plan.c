/* Unit tests for plan/plan: creation with vmid allocation, no changes when
 * live matches, classified updates, deletes only of managed guests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/json.h"
#include "core/propstr.h"
#include "plan/plan.h"

static const char *CFG =
	"conventions:\n  categories:\n    mcp: {vmids: 200-209}\n"
	"guests:\n"
	"  - name: web\n    vmid: 101\n    node: pve\n    memory: 2G\n    cores: 2\n"
	"    networks: [{bridge: vmbr0}]\n    disks: [{storage: local-lvm, size: 32G}]\n"
	"  - name: ctx\n    category: mcp\n    type: lxc\n    ostemplate: local:vztmpl/d.tar.zst\n"
	"  - name: new2\n    category: mcp\n    type: lxc\n    ostemplate: local:vztmpl/d.tar.zst\n";

static const char *SNAP =
	"{\"nodes\":[{\"node\":\"pve\",\"status\":\"online\",\"maxmem\":100,\"mem\":10},"
	"{\"node\":\"pve2\",\"status\":\"online\",\"maxmem\":100,\"mem\":50}],"
	"\"bridges\":[],"
	"\"guests\":["
	"{\"vmid\":101,\"name\":\"web\",\"node\":\"pve\",\"type\":\"qemu\",\"status\":\"running\",\"tags\":\"pvelab;pvelab-t\","
	" \"config\":{\"name\":\"web\",\"memory\":2048,\"cores\":2,\"tags\":\"pvelab;pvelab-t\",\"digest\":\"x\","
	"  \"net0\":\"virtio=BC:24:11:00:00:01,bridge=vmbr0\",\"scsi0\":\"local-lvm:vm-101-disk-0,size=32G\"}},"
	"{\"vmid\":200,\"name\":\"someone\",\"node\":\"pve\",\"type\":\"lxc\",\"status\":\"running\",\"tags\":\"\"},"
	"{\"vmid\":150,\"name\":\"gone\",\"node\":\"pve\",\"type\":\"qemu\",\"status\":\"stopped\",\"tags\":\"pvelab;pvelab-t;x\"},"
	"{\"vmid\":160,\"name\":\"old\",\"node\":\"pve\",\"type\":\"qemu\",\"status\":\"stopped\",\"tags\":\"pvelab\"},"
	"{\"vmid\":170,\"name\":\"theirs\",\"node\":\"pve2\",\"type\":\"qemu\",\"status\":\"stopped\",\"tags\":\"pvelab;pvelab-lab2\"}"
	"]}";

static json_t *
build(const char *cfgtext, const char *snaptext, struct pl_plan_opts *o)
{
	struct pl_config *c = NULL;
	struct pl_diags d;
	json_t *snap = json_loads(snaptext, 0, NULL), *plan = NULL;
	char *err = NULL;

	pl_diags_init(&d);
	assert_int_equal(pl_config_load_string("t.yaml", cfgtext, strlen(cfgtext), &c, &d), 0);
	assert_non_null(snap);
	assert_int_equal(pl_plan_build(c, snap, o, &plan, &err), 0);
	pl_config_free(c);
	pl_diags_release(&d);
	json_decref(snap);
	return plan;
}

static const json_t *
change_of(const json_t *plan, const char *guest, const char *action)
{
	const json_t *c;
	size_t i;

	json_array_foreach(json_object_get(plan, "changes"), i, c)
		if (!strcmp(pl_json_str(c, "guest"), guest) && !strcmp(pl_json_str(c, "action"), action))
			return c;
	return NULL;
}

static void
test_create_update_delete(void **state)
{
	struct pl_plan_opts o = { 0 };
	json_t *plan = build(CFG, SNAP, &o);
	const json_t *c;

	/* web matches exactly: no update */
	assert_null(change_of(plan, "web", "update"));
	/* ctx and new2 get vmids from mcp's range, skipping 200 (taken live) */
	c = change_of(plan, "ctx", "create");
	assert_non_null(c);
	assert_int_equal(pl_json_int(c, "vmid", 0), 201);
	assert_string_equal(pl_json_str(c, "node"), "pve"); /* most free memory */
	assert_int_equal(pl_json_int(change_of(plan, "new2", "create"), "vmid", 0), 202);
	/* managed guest not in config: deleted; unmanaged: listed */
	assert_non_null(change_of(plan, "gone", "delete"));
	assert_null(change_of(plan, "someone", "delete"));
	assert_int_equal(json_array_size(json_object_get(plan, "unmanaged")), 1);
	assert_int_equal(pl_json_int(json_object_get(plan, "summary"), "create", 0), 2);
	json_decref(plan);
}

static void
test_update_classes(void **state)
{
	struct pl_plan_opts o = { 0 };
	const char *cfg = "guests:\n  - name: web\n    vmid: 101\n    memory: 4G\n    cores: 2\n"
			  "    description: hi\n    networks: [{bridge: vmbr1}]\n"
			  "    disks: [{storage: local-lvm, size: 64G}]\n";
	json_t *plan = build(cfg, SNAP, &o);
	const json_t *c = change_of(plan, "web", "update");

	assert_non_null(c);
	assert_string_equal(pl_json_str(c, "class"), "reboot"); /* memory without hotplug */
	assert_true(json_is_true(json_object_get(c, "reboot")));
	assert_string_equal(pl_json_str(json_object_get(c, "set"), "net0"),
			    "virtio=BC:24:11:00:00:01,bridge=vmbr1");
	assert_string_equal(pl_json_str(json_object_get(c, "resize"), "scsi0"), "64G");
	assert_null(json_object_get(json_object_get(c, "set"), "scsi0"));
	assert_int_equal(json_array_size(json_object_get(c, "diffs")), 4);
	json_decref(plan);
}

static void
test_unmanaged_vmid_is_never_taken_over(void **state)
{
	/* vmid 200 is the unmanaged "someone": declaring it must not touch it,
	 * even with replacements allowed */
	struct pl_plan_opts o = { .allow_replace = true };
	const char *cfg = "guests:\n  - name: mine\n    vmid: 200\n    type: lxc\n"
			  "    ostemplate: local:vztmpl/d.tar.zst\n";
	json_t *plan = build(cfg, SNAP, &o);

	assert_int_equal(json_array_size(json_object_get(plan, "blocked")), 1);
	assert_non_null(strstr(pl_json_str(json_array_get(json_object_get(plan, "blocked"), 0), "reason"),
			       "vmid 200 is taken by 'someone'"));
	assert_null(change_of(plan, "mine", "update"));
	assert_null(change_of(plan, "mine", "replace"));
	json_decref(plan);
}

static void
test_other_projects_are_never_touched(void **state)
{
	/* "t.yaml" is project t: lab2's guest and the legacy one (tagged only
	 * pvelab) are listed as managed elsewhere, never deleted, and blocked
	 * with the way out when declared */
	struct pl_plan_opts o = { .allow_replace = true, .allow_delete = true };
	json_t *plan = build("guests: []\n", SNAP, &o);
	const json_t *e, *b;

	assert_string_equal(pl_json_str(plan, "project"), "t");
	assert_non_null(change_of(plan, "web", "delete"));
	assert_null(change_of(plan, "old", "delete"));
	assert_null(change_of(plan, "theirs", "delete"));
	assert_int_equal(pl_json_int(json_object_get(plan, "summary"), "delete", 0), 2);
	e = json_object_get(plan, "elsewhere");
	assert_int_equal(json_array_size(e), 2);
	assert_int_equal(pl_json_int(json_array_get(e, 0), "vmid", 0), 160);
	assert_true(json_is_null(json_object_get(json_array_get(e, 0), "project")));
	assert_string_equal(pl_json_str(json_array_get(e, 1), "project"), "lab2");
	assert_true(json_is_true(json_object_get(json_object_get(plan, "options"), "allow_delete")));
	json_decref(plan);

	plan = build("guests:\n  - name: theirs\n  - name: old\n    memory: 1G\n", SNAP, &o);
	b = json_object_get(plan, "blocked");
	assert_int_equal(json_array_size(b), 2);
	assert_non_null(strstr(pl_json_str(json_array_get(b, 0), "reason"),
			       "managed by project 'lab2' (pvelab adopt theirs --from lab2 moves it here)"));
	assert_non_null(strstr(pl_json_str(json_array_get(b, 1), "reason"),
			       "made by pvelab before projects (pvelab adopt old claims it for project 't')"));
	assert_null(change_of(plan, "theirs", "update"));
	assert_null(change_of(plan, "old", "update"));
	assert_null(change_of(plan, "theirs", "create"));
	assert_int_equal(json_array_size(json_object_get(plan, "elsewhere")), 0);
	json_decref(plan);
}

static void
test_unknown_node_is_blocked(void **state)
{
	struct pl_plan_opts o = { 0 };
	json_t *plan = build("guests:\n  - name: x\n    node: nope\n", SNAP, &o);

	assert_null(change_of(plan, "x", "create"));
	assert_string_equal(pl_json_str(json_array_get(json_object_get(plan, "blocked"), 0), "reason"),
			    "no node 'nope' in the cluster");
	assert_true(pl_plan_has_changes(plan)); /* --detailed-exitcode says 2 */
	json_decref(plan);
}

static void
test_snapshot_sha_stable(void **state)
{
	json_t *a = json_loads(SNAP, 0, NULL), *b = json_loads(SNAP, 0, NULL);
	char x[65], y[65];

	pl_plan_snapshot_sha(a, x);
	json_object_set_new(json_array_get(json_object_get(b, "guests"), 0), "cpu", json_real(0.5));
	pl_plan_snapshot_sha(b, y);
	assert_string_equal(x, y); /* volatile numbers do not count */
	json_object_set_new(json_array_get(json_object_get(b, "guests"), 0), "status", json_string("stopped"));
	pl_plan_snapshot_sha(b, y);
	assert_string_not_equal(x, y);
	json_decref(a);
	json_decref(b);
}

static int
teardown(void **state)
{
	pl_pfmt_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_update_delete),
		cmocka_unit_test(test_update_classes),
		cmocka_unit_test(test_unmanaged_vmid_is_never_taken_over),
		cmocka_unit_test(test_unknown_node_is_blocked),
		cmocka_unit_test(test_other_projects_are_never_touched),
		cmocka_unit_test(test_snapshot_sha_stable),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
