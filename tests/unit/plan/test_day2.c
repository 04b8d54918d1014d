/* Unit tests for the planning of storages, backup jobs and pools (day2.c):
 * the ownership marker, comparisons as PVE means them, what is blocked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/json.h"
#include "plan/day2.h"
#include "plan/plan.h"

static const char *SNAP =
	"{\"nodes\":[{\"node\":\"pve\",\"status\":\"online\",\"maxmem\":100,\"mem\":10}],"
	"\"storages\":[],\"bridges\":[],"
	"\"guests\":[{\"vmid\":101,\"name\":\"web\",\"type\":\"qemu\",\"node\":\"pve\",\"tags\":"
	"\"prod;web\","
	"\"pool\":\"infra\",\"config\":{\"scsi0\":\"nas:vm-101-disk-0,size=8G\"}},"
	"{\"vmid\":102,\"name\":\"db\",\"type\":\"qemu\",\"node\":\"pve\",\"tags\":\"prod\","
	"\"config\":{\"scsi0\":\"local-lvm:vm-102-disk-0\"}},"
	"{\"vmid\":103,\"name\":\"dark\",\"type\":\"lxc\",\"node\":\"pve\",\"_unread\":\"no "
	"answer\"}],"
	"\"storage_config\":[{\"storage\":\"nas\",\"type\":\"nfs\",\"server\":\"10.0.0.9\","
	"\"export\":\"/x\","
	"\"path\":\"/mnt/pve/nas\",\"content\":\"rootdir,images,backup\",\"digest\":\"abc\"},"
	"{\"storage\":\"scratch\",\"type\":\"dir\",\"path\":\"/srv/s\",\"content\":\"iso\"}],"
	"\"backup_jobs\":[{\"id\":\"hand\",\"schedule\":\"daily\",\"storage\":\"nas\",\"all\":1},"
	"{\"id\":\"ours\",\"schedule\":\"daily\",\"storage\":\"nas\",\"vmid\":\"102,101\","
	"\"enabled\":1,"
	"\"comment\":\"[pvelab:t]\"},"
	"{\"id\":\"theirs\",\"schedule\":\"daily\",\"storage\":\"nas\",\"all\":1,\"comment\":\"x "
	"[pvelab:other]\"}],"
	"\"pools\":[{\"poolid\":\"infra\",\"comment\":\"[pvelab:t]\"},{\"poolid\":\"empty\","
	"\"comment\":\"[pvelab:t]\"}]}";

static json_t *
build(const char *cfgtext)
{
	struct pl_plan_opts o = { 0 };
	struct pl_config *c = NULL;
	struct pl_diags d;
	json_t *snap = json_loads(SNAP, 0, NULL), *plan = NULL;
	char *err = NULL;

	pl_diags_init(&d);
	assert_int_equal(pl_config_load_string("t.yaml", cfgtext, strlen(cfgtext), &c, &d), 0);
	assert_non_null(snap);
	assert_int_equal(pl_plan_build(c, snap, &o, &plan, &err), 0);
	pl_config_free(c);
	pl_diags_release(&d);
	json_decref(snap);
	return plan;
}

/* The change of a day-2 action and id, or NULL. */
static const json_t *
change(const json_t *plan, const char *action, const char *id)
{
	const json_t *c;
	size_t i;

	json_array_foreach(json_object_get(plan, "changes"), i, c)
		if (!strcmp(json_string_value(json_object_get(c, "action")), action) &&
		    !strcmp(json_string_value(json_object_get(c, "guest")), id))
			return c;
	return NULL;
}

static const char *
blocked(const json_t *plan, const char *who)
{
	const json_t *b;
	size_t i;

	json_array_foreach(json_object_get(plan, "blocked"), i, b)
		if (!strcmp(json_string_value(json_object_get(b, "guest")), who))
			return json_string_value(json_object_get(b, "reason"));
	return NULL;
}

static void
test_marker(void **state)
{
	char *m = pl_day2_mark("nightly", "lab"), *user = NULL, *p;

	assert_string_equal(m, "nightly [pvelab:lab]");
	p = pl_day2_marker(m, &user);
	assert_string_equal(p, "lab");
	assert_string_equal(user, "nightly");
	free(p);
	free(user);
	free(m);
	m = pl_day2_mark(NULL, "lab");
	assert_string_equal(m, "[pvelab:lab]");
	p = pl_day2_marker(m, &user);
	assert_string_equal(p, "lab");
	assert_null(user);
	free(p);
	free(m);
	/* a comment that only mentions pvelab is nobody's */
	assert_null(pl_day2_marker("see [pvelab:x] docs", &user));
	assert_string_equal(user, "see [pvelab:x] docs");
	free(user);
	assert_null(pl_day2_marker(NULL, NULL));
}

static void
test_ours_as_declared_is_no_change(void **state)
{
	/* vmid lists and content compare as sets; an unwritten enabled is on */
	json_t *plan =
		build("project: t\n"
		      "storages:\n  - {name: nas, type: nfs, server: 10.0.0.9, export: /x, "
		      "content: [images, backup, rootdir]}\n"
		      "backups:\n  - {id: ours, schedule: daily, storage: nas, guests: [web, db]}\n"
		      "pools:\n  - {name: infra}\n  - {name: empty}\n");

	assert_int_equal(json_array_size(json_object_get(plan, "changes")), 0);
	assert_int_equal(json_array_size(json_object_get(plan, "blocked")), 0);
	json_decref(plan);
}

static void
test_job_selection_by_tags_and_created_guests(void **state)
{
	/* tags resolve to vmids, a guest this plan creates by the vmid it gets;
	 * the old explicit list goes when the selection changes to a pool */
	json_t *plan =
		build("project: t\n"
		      "guests:\n  - {name: new, vmid: 150, tags: [prod]}\n"
		      "backups:\n  - {id: ours, schedule: daily, storage: nas, tags: [prod]}\n"
		      "  - {id: fresh, schedule: daily, storage: nas, guests: [new, 101]}\n"
		      "  - {id: bad, schedule: daily, storage: nas, guests: [nosuch]}\n"
		      "pools:\n  - {name: infra}\n  - {name: empty}\n");
	const json_t *c = change(plan, "backup_job", "ours");

	assert_non_null(c);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(c, "params"), "vmid")),
		"101,102,150");
	c = change(plan, "backup_job", "fresh");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(c, "params"), "vmid")),
		"101,150");
	assert_string_equal(json_string_value(json_object_get(c, "class")), "create");
	assert_non_null(strstr(blocked(plan, "backup job bad"), "no guest 'nosuch'"));
	json_decref(plan);

	plan = build(
		"project: t\nbackups:\n  - {id: ours, schedule: daily, storage: nas, pool: infra}\n"
		"pools:\n  - {name: infra}\n  - {name: empty}\n");
	c = change(plan, "backup_job", "ours");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(c, "params"), "pool")), "infra");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(c, "params"), "delete")), "vmid");
	json_decref(plan);
}

static void
test_ownership(void **state)
{
	/* hand-made and other projects' jobs are blocked when declared and
	 * never deleted; ours that are not declared go (a pool only when empty) */
	json_t *plan = build(
		"project: t\nbackups:\n  - {id: hand, schedule: daily, storage: nas, all: true}\n"
		"  - {id: theirs, schedule: daily, storage: nas, all: true}\n");

	assert_non_null(strstr(blocked(plan, "backup job hand"), "pvelab import backup-job:hand"));
	assert_non_null(strstr(blocked(plan, "backup job theirs"), "managed by project 'other'"));
	assert_string_equal(
		json_string_value(json_object_get(change(plan, "backup_job", "ours"), "class")),
		"delete");
	assert_string_equal(
		json_string_value(json_object_get(change(plan, "pool", "empty"), "class")),
		"delete");
	assert_null(change(plan, "pool", "infra"));
	assert_non_null(strstr(blocked(plan, "pool infra"), "web (101)"));
	json_decref(plan);
}

static void
test_storage_in_use_and_fixed_keys(void **state)
{
	json_t *plan = build("project: t\nstorages:\n  - {name: nas, type: nfs, state: absent}\n"
			     "  - {name: scratch, type: dir, path: /srv/other}\n");
	const char *why = blocked(plan, "storage nas");

	/* a volume, a backup job, and a guest whose config was not read */
	assert_non_null(why);
	assert_non_null(strstr(why, "web (101)"));
	assert_non_null(strstr(why, "backup job 'hand'"));
	assert_non_null(strstr(why, "dark (103, its config not read)"));
	assert_null(strstr(why, "db (102)"));
	assert_null(change(plan, "storage", "nas"));
	assert_non_null(strstr(blocked(plan, "storage scratch"),
			       "path of storage 'scratch' cannot change"));
	json_decref(plan);

	/* nothing has a volume on scratch, but the guest not read may: blocked
	 * until it can be read (the e2e test removes an unused storage) */
	plan = build("project: t\nstorages:\n  - {name: scratch, type: dir, state: absent}\n");
	assert_null(change(plan, "storage", "scratch"));
	why = blocked(plan, "storage scratch");
	assert_non_null(strstr(why, "in use by dark (103, its config not read) ("));
	json_decref(plan);
}

static void
test_secrets_stay_files(void **state)
{
	json_t *plan =
		build("project: t\nstorages:\n  - {name: pbs, type: pbs, server: h, datastore: d, "
		      "password_file: /run/pw, fingerprint_file: /run/fp}\n");
	const json_t *c = change(plan, "storage", "pbs");
	const json_t *sec = json_object_get(c, "secrets");

	assert_string_equal(json_string_value(json_object_get(sec, "password")), "/run/pw");
	assert_string_equal(json_string_value(json_object_get(sec, "fingerprint")), "/run/fp");
	assert_null(json_object_get(json_object_get(c, "params"), "password"));
	assert_null(json_object_get(json_object_get(c, "params"), "fingerprint"));
	assert_int_equal(pl_day2_phase(c), 0);
	json_decref(plan);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_marker),
		cmocka_unit_test(test_ours_as_declared_is_no_change),
		cmocka_unit_test(test_job_selection_by_tags_and_created_guests),
		cmocka_unit_test(test_ownership),
		cmocka_unit_test(test_storage_in_use_and_fixed_keys),
		cmocka_unit_test(test_secrets_stay_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
