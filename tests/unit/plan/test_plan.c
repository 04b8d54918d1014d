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
#include "core/err.h"
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

/* The steps as one comma-separated string, for short assertions. */
static char *
steps_of(const json_t *c)
{
	char buf[512] = "";
	const json_t *s;
	size_t i, n = 0;

	json_array_foreach(json_object_get(c, "steps"), i, s)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "",
				      json_string_value(s));
	return pl_strdup(buf);
}

static void
assert_steps(const json_t *c, const char *want)
{
	char *got;

	assert_non_null(c);
	got = steps_of(c);
	assert_string_equal(got, want);
	free(got);
}

static void
test_steps_follow_the_options(void **state)
{
	/* memory without hotplug on a running guest: pending until a reboot */
	const char *cfg = "guests:\n  - name: web\n    vmid: 101\n    memory: 4G\n    cores: 2\n"
			  "    networks: [{bridge: vmbr0}]\n    disks: [{storage: local-lvm, size: 64G}]\n"
			  "  - name: ctx\n    category: mcp\n    type: lxc\n    ostemplate: local:vztmpl/d.tar.zst\n"
			  "conventions:\n  categories:\n    mcp: {vmids: 200-209}\n";
	struct pl_plan_opts o = { 0 };
	json_t *plan = build(cfg, SNAP, &o);
	const json_t *sum = json_object_get(plan, "summary");

	assert_steps(change_of(plan, "web", "update"), "snapshot,config,resize");
	assert_steps(change_of(plan, "ctx", "create"), "template,create,start");
	assert_steps(change_of(plan, "gone", "delete"), "backup,stop,destroy");
	assert_int_equal(pl_json_int(sum, "reboot", -1), 0);
	assert_true(json_is_true(json_object_get(json_object_get(plan, "options"), "snapshot")));
	json_decref(plan);

	/* --reboot: the update reboots, and the summary counts it */
	o.reboot = true;
	plan = build(cfg, SNAP, &o);
	sum = json_object_get(plan, "summary");
	assert_steps(change_of(plan, "web", "update"), "snapshot,config,resize,reboot");
	assert_int_equal(pl_json_int(sum, "reboot", -1), 1);
	assert_int_equal(pl_json_int(sum, "update", -1), 1);
	json_decref(plan);

	/* --no-snapshot: no snapshot step, and the plan's options say so */
	o.no_snapshot = true;
	plan = build(cfg, SNAP, &o);
	assert_steps(change_of(plan, "web", "update"), "config,resize,reboot");
	assert_true(json_is_false(json_object_get(json_object_get(plan, "options"), "snapshot")));
	json_decref(plan);

	/* --no-backup: a delete destroys without the backup step */
	o.no_backup = true;
	plan = build(cfg, SNAP, &o);
	assert_steps(change_of(plan, "gone", "delete"), "stop,destroy");
	json_decref(plan);
}

static void
test_clone_source_resolved_or_blocked(void **state)
{
	const char *snap =
		"{\"nodes\":[{\"node\":\"pve\",\"status\":\"online\",\"maxmem\":100,\"mem\":10}],"
		"\"guests\":[{\"vmid\":9000,\"name\":\"tmpl\",\"node\":\"pve\",\"type\":\"qemu\","
		"\"status\":\"stopped\",\"template\":1}]}";
	struct pl_plan_opts o = { 0 };
	json_t *plan = build("guests:\n  - name: a\n    clone: {template: tmpl}\n"
			     "  - name: b\n    clone: {template: '9000'}\n"
			     "  - name: c\n    clone: {template: nosuch}\n", snap, &o);
	const json_t *a = change_of(plan, "a", "create"), *from = json_object_get(a, "clone_from");

	assert_int_equal(pl_json_int(from, "vmid", 0), 9000);
	assert_string_equal(pl_json_str(from, "node"), "pve");
	assert_string_equal(pl_json_str(from, "name"), "tmpl");
	assert_steps(a, "find template,clone,configure clone,start");
	assert_int_equal(pl_json_int(json_object_get(change_of(plan, "b", "create"), "clone_from"), "vmid", 0),
			 9000);
	assert_null(change_of(plan, "c", "create"));
	assert_int_equal(json_array_size(json_object_get(plan, "blocked")), 1);
	assert_non_null(strstr(pl_json_str(json_array_get(json_object_get(plan, "blocked"), 0), "reason"),
			       "no template 'nosuch' in the cluster"));
	assert_int_equal(pl_json_int(json_object_get(plan, "summary"), "create", 0), 2);
	assert_int_equal(pl_json_int(json_object_get(plan, "summary"), "blocked", 0), 1);
	json_decref(plan);
}

static void
test_migration_needs_the_storage_on_the_target(void **state)
{
	const char *snap =
		"{\"nodes\":[{\"node\":\"pve\",\"status\":\"online\"},{\"node\":\"pve2\",\"status\":\"online\"}],"
		"\"storages\":[{\"storage\":\"local-lvm\",\"node\":\"pve\"},{\"storage\":\"local-lvm\",\"node\":\"pve2\"},"
		"{\"storage\":\"fast\",\"node\":\"pve\"},{\"storage\":\"local\",\"node\":\"pve\"},"
		"{\"storage\":\"local\",\"node\":\"pve2\"}],"
		"\"guests\":[{\"vmid\":101,\"name\":\"a\",\"node\":\"pve\",\"type\":\"qemu\",\"status\":\"stopped\","
		" \"tags\":\"pvelab;pvelab-t\",\"config\":{\"name\":\"a\",\"tags\":\"pvelab;pvelab-t\",\"memory\":512,"
		"  \"scsi0\":\"local-lvm:vm-101-disk-0,size=4G\",\"ide2\":\"none,media=cdrom\"}},"
		"{\"vmid\":102,\"name\":\"b\",\"node\":\"pve\",\"type\":\"qemu\",\"status\":\"stopped\","
		" \"tags\":\"pvelab;pvelab-t\",\"config\":{\"name\":\"b\",\"tags\":\"pvelab;pvelab-t\",\"memory\":512,"
		"  \"scsi0\":\"local-lvm:vm-102-disk-0,size=4G\",\"scsi1\":\"fast:vm-102-disk-1,size=4G\"}}]}";
	struct pl_plan_opts o = { 0 };
	json_t *plan = build("guests:\n  - {name: a, vmid: 101, node: pve2, state: stopped}\n"
			     "  - {name: b, vmid: 102, node: pve2, state: stopped}\n", snap, &o);
	const json_t *a = change_of(plan, "a", "update");

	assert_string_equal(pl_json_str(a, "migrate_to"), "pve2");
	assert_steps(a, "snapshot,migrate");
	assert_null(change_of(plan, "b", "update"));
	assert_int_equal(json_array_size(json_object_get(plan, "blocked")), 1);
	assert_string_equal(pl_json_str(json_array_get(json_object_get(plan, "blocked"), 0), "reason"),
			    "disk scsi1 is on 'fast', which node 'pve2' does not have");
	json_decref(plan);
}

static void
test_shrink_is_blocked_and_replace_shows_why(void **state)
{
	struct pl_plan_opts o = { .allow_replace = true };
	json_t *plan = build("guests:\n  - name: web\n    vmid: 101\n    memory: 2G\n    cores: 2\n"
			     "    networks: [{bridge: vmbr0}]\n    disks: [{storage: local-lvm, size: 16G}]\n",
			     SNAP, &o);
	const json_t *sum = json_object_get(plan, "summary");

	assert_null(change_of(plan, "web", "replace"));
	assert_null(change_of(plan, "web", "update"));
	assert_int_equal(pl_json_int(sum, "replace", -1), 0);
	assert_int_equal(pl_json_int(sum, "blocked", -1), 1);
	assert_string_equal(pl_json_str(json_array_get(json_object_get(plan, "blocked"), 0), "reason"),
			    "cannot shrink scsi0 from 32G to 16G: Proxmox only grows disks");
	json_decref(plan);

	/* a VM that becomes a container: one diff (the type), no per-key notes,
	 * nothing to set on the old guest, no reboot */
	plan = build("guests:\n  - name: web\n    vmid: 101\n    type: lxc\n    memory: 4G\n"
		     "    ostemplate: local:vztmpl/d.tar.zst\n", SNAP, &o);
	const json_t *c = change_of(plan, "web", "replace");

	assert_non_null(c);
	assert_int_equal(json_array_size(json_object_get(c, "diffs")), 1);
	assert_string_equal(pl_json_str(json_array_get(json_object_get(c, "diffs"), 0), "key"), "type");
	assert_int_equal(json_object_size(json_object_get(c, "set")), 0);
	assert_false(json_is_true(json_object_get(c, "reboot")));
	assert_non_null(json_object_get(c, "config"));
	assert_int_equal(pl_json_int(json_object_get(plan, "summary"), "replace", -1), 1);
	json_decref(plan);
}

static void
test_pending_reboot_once_per_guest(void **state)
{
	/* web has memory pending from an earlier apply; this plan also changes
	 * its description: one update that reboots, not an update and a reboot */
	json_t *snap = json_loads(SNAP, 0, NULL);
	char *text;
	struct pl_plan_opts o = { .reboot = true };
	json_t *plan;
	const char *cfg = "guests:\n  - name: web\n    vmid: 101\n    node: pve\n    memory: 2G\n"
			  "    cores: 2\n    description: hi\n    networks: [{bridge: vmbr0}]\n"
			  "    disks: [{storage: local-lvm, size: 32G}]\n";

	json_object_set_new(snap, "pending", json_pack("{s:[s]}", "101", "memory"));
	text = json_dumps(snap, 0);
	plan = build(cfg, text, &o);
	assert_int_equal(json_array_size(json_object_get(plan, "changes")), 2); /* + delete of gone */
	assert_null(change_of(plan, "web", "reboot"));
	assert_steps(change_of(plan, "web", "update"), "snapshot,config,reboot");
	assert_int_equal(pl_json_int(json_object_get(plan, "summary"), "reboot", -1), 1);
	json_decref(plan);
	/* without the other change: a reboot change */
	plan = build(CFG, text, &o);
	assert_steps(change_of(plan, "web", "reboot"), "reboot");
	assert_int_equal(pl_json_int(json_object_get(plan, "summary"), "reboot", -1), 1);
	json_decref(plan);
	free(text);
	json_decref(snap);
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
		cmocka_unit_test(test_steps_follow_the_options),
		cmocka_unit_test(test_clone_source_resolved_or_blocked),
		cmocka_unit_test(test_migration_needs_the_storage_on_the_target),
		cmocka_unit_test(test_shrink_is_blocked_and_replace_shows_why),
		cmocka_unit_test(test_pending_reboot_once_per_guest),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
