/* Unit tests for the simulator's cluster model: seeds, disk allocation, MAC
 * filling, the volume index, VMID allocation, usage figures and state dumps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/internal.h"

static struct pl_sim *
sim_new(const char *seed_json)
{
	struct pl_sim *s = pl_calloc(1, sizeof(*s));
	json_error_t je;
	json_t *seed = json_loads(seed_json, 0, &je);
	char *err = NULL;

	assert_non_null(seed);
	s->pools = json_object();
	s->rng = 42;
	s->t0 = 1700000000;
	if (pl_sim_seed_load(s, seed, &err) != 0)
		fail_msg("seed: %s", err);
	json_decref(seed);
	return s;
}

static void
sim_free(struct pl_sim *s)
{
	pl_sim_model_free(s);
	json_decref(s->pools);
	free(s->clustername);
	free(s);
}

static const char *SEED =
	"{\"nodes\":[\"a\",\"b\"],"
	"\"storages\":[{\"id\":\"local\",\"type\":\"dir\",\"content\":\"iso,vztmpl,backup\"},"
	"{\"id\":\"local-lvm\",\"type\":\"lvmthin\",\"content\":\"images,rootdir\",\"size\":\"1T\"},"
	"{\"id\":\"nas\",\"type\":\"nfs\",\"shared\":true,\"content\":\"images\"}],"
	"\"templates\":[\"local:vztmpl/debian.tar.zst\"],"
	"\"guests\":[{\"vmid\":100,\"node\":\"a\",\"status\":\"running\",\"config\":{\"name\":\"x\","
	"\"memory\":1024,\"cores\":2,\"scsi0\":\"local-lvm:32,discard=on\",\"scsi1\":\"nas:8\","
	"\"net0\":\"virtio,bridge=vmbr0\"}},"
	"{\"vmid\":101,\"type\":\"lxc\",\"node\":\"b\",\"config\":{\"rootfs\":\"local-lvm:8\","
	"\"net0\":\"name=eth0,bridge=vmbr0,ip=dhcp\"}}]}";

static void
test_seed_and_disks(void **state)
{
	struct pl_sim *s = sim_new(SEED);
	struct pl_sim_guest *g = pl_sim_guest_find(s, 100), *c = pl_sim_guest_find(s, 101);
	struct pl_sim_storage *lvm = pl_sim_storage_find(s, "local-lvm");

	assert_int_equal(s->nnodes, 2);
	assert_string_equal(s->nodes[1].name, "b");
	assert_non_null(json_object_get(s->nodes[0].ifaces, "vmbr0"));
	assert_non_null(g);
	assert_string_equal(pl_json_str(g->conf, "scsi0"),
			    "local-lvm:vm-100-disk-0,discard=on,size=32G");
	assert_string_equal(pl_json_str(g->conf, "scsi1"), "nas:100/vm-100-disk-0.qcow2,size=8G");
	assert_true(pl_str_startswith(pl_json_str(g->conf, "net0"), "virtio=BC:24:11:"));
	assert_string_equal(pl_json_str(c->conf, "rootfs"), "local-lvm:vm-101-disk-0,size=8G");
	assert_non_null(strstr(pl_json_str(c->conf, "net0"), "hwaddr=BC:24:11:"));
	assert_int_equal(strlen(g->digest), 40);
	/* local volumes are per node, shared ones everywhere */
	assert_non_null(pl_sim_volume_find(s, "local-lvm:vm-100-disk-0", 0, NULL));
	assert_null(pl_sim_volume_find(s, "local-lvm:vm-100-disk-0", 1, NULL));
	assert_non_null(pl_sim_volume_find(s, "nas:100/vm-100-disk-0.qcow2", 1, NULL));
	assert_non_null(pl_sim_volume_find(s, "local:vztmpl/debian.tar.zst", 1, NULL));
	assert_int_equal(pl_sim_storage_used(lvm, 0), 32ULL << 30);
	assert_int_equal(pl_sim_storage_used(lvm, 1), 8ULL << 30);
	assert_int_equal(pl_sim_nextid(s), 102);
	sim_free(s);
}

static void
test_alloc_and_index(void **state)
{
	struct pl_sim *s = sim_new(SEED);
	struct pl_sim_guest *g = pl_sim_guest_find(s, 100);
	char *err = NULL, *v;

	v = pl_sim_disk_alloc(s, g, "scsi2", "local-lvm:4", &err, NULL);
	assert_string_equal(v, "local-lvm:vm-100-disk-1,size=4G");
	free(v);
	v = pl_sim_disk_alloc(s, g, "scsi3", "nope:4", &err, NULL);
	assert_null(v);
	assert_string_equal(err, "storage 'nope' does not exist");
	free(err);
	err = NULL;
	v = pl_sim_disk_alloc(s, g, "scsi3", "local:4", &err, NULL);
	assert_null(v);
	assert_string_equal(err, "storage 'local' does not support content-type 'images'");
	free(err);
	v = pl_sim_disk_alloc(s, g, "ide2", "local:iso/x.iso,media=cdrom", NULL, NULL);
	assert_string_equal(v, "local:iso/x.iso,media=cdrom");
	free(v);
	v = pl_sim_disk_alloc(s, g, "name", "local-lvm:4", NULL, NULL); /* not a disk key */
	assert_string_equal(v, "local-lvm:4");
	free(v);
	/* swap-remove keeps the index right */
	pl_sim_volume_del(s, "local-lvm:vm-100-disk-0", 0);
	assert_null(pl_sim_volume_find(s, "local-lvm:vm-100-disk-0", 0, NULL));
	assert_non_null(pl_sim_volume_find(s, "local-lvm:vm-100-disk-1", 0, NULL));
	assert_non_null(pl_sim_volume_find(s, "local-lvm:vm-101-disk-0", 1, NULL));
	v = pl_sim_disk_alloc(s, g, "scsi4", "local-lvm:1", NULL, NULL);
	assert_string_equal(v, "local-lvm:vm-100-disk-0,size=1G"); /* the freed number */
	free(v);
	v = pl_sim_net_fill(s, g, "net1", "e1000=bc:24:11:00:00:01,bridge=vmbr1");
	assert_string_equal(v, "e1000=bc:24:11:00:00:01,bridge=vmbr1");
	free(v);
	pl_sim_guest_remove(s, 100, false);
	assert_null(pl_sim_guest_find(s, 100));
	assert_null(pl_sim_volume_find(s, "local-lvm:vm-100-disk-1", 0, NULL));
	assert_non_null(pl_sim_volume_find(s, "local:vztmpl/debian.tar.zst", 0, NULL));
	assert_int_equal(pl_sim_nextid(s), 100);
	sim_free(s);
}

static void
test_usage_and_dump(void **state)
{
	struct pl_sim *s = sim_new(SEED);
	struct pl_sim_guest *g = pl_sim_guest_find(s, 100);
	struct pl_sim_usage u, n[2];
	json_t *dump;
	struct pl_sim *again;
	char *text;

	pl_sim_guest_usage(s, g, s->t0 + 100, &u);
	assert_int_equal(u.cpus, 2);
	assert_int_equal(u.maxmem, 1024ULL << 20);
	assert_int_equal(u.maxdisk, 32ULL << 30);
	assert_true(u.cpu > 0 && u.cpu < 1 && u.mem > 0 && u.mem < u.maxmem);
	assert_true(u.uptime > 0);
	pl_sim_guest_usage(s, pl_sim_guest_find(s, 101), s->t0, &u);
	assert_true(u.cpu == 0 && u.uptime == 0 && u.netin == 0); /* stopped */
	pl_sim_nodes_usage(s, s->t0 + 100, n);
	assert_true(n[0].mem > 0 && n[0].cpu > 0 && n[0].uptime > 0);
	assert_true(n[1].cpu <= 0.0100001); /* nothing runs there */

	dump = pl_sim_state_dump(s);
	text = json_dumps(dump, JSON_COMPACT);
	again = sim_new(text);
	assert_string_equal(pl_json_str(pl_sim_guest_find(again, 100)->conf, "scsi0"),
			    pl_json_str(g->conf, "scsi0"));
	assert_string_equal(pl_sim_guest_find(again, 100)->digest, g->digest);
	assert_int_equal(pl_sim_storage_used(pl_sim_storage_find(again, "local-lvm"), 0),
			 pl_sim_storage_used(pl_sim_storage_find(s, "local-lvm"), 0));
	assert_int_equal(pl_sim_guest_find(again, 100)->status, PL_SIM_RUNNING);
	free(text);
	json_decref(dump);
	sim_free(again);
	sim_free(s);
}

static void
test_bad_seeds(void **state)
{
	static const char *const bad[][2] = {
		{ "{\"nodes\":[]}", "non-empty list" },
		{ "{\"nodes\":[\"a\"],\"guests\":[{\"vmid\":5}]}", "vmid" },
		{ "{\"nodes\":[\"a\"],\"guests\":[{\"vmid\":100,\"node\":\"z\"}]}", "unknown node 'z'" },
		{ "{\"nodes\":[\"a\"],\"guests\":[{\"vmid\":100},{\"vmid\":100}]}", "used twice" },
		{ "{\"nodes\":[\"a\"],\"templates\":[\"x:vztmpl/a.tar\"]}", "storage 'x'" },
	};

	for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
		struct pl_sim *s = pl_calloc(1, sizeof(*s));
		json_t *seed = json_loads(bad[i][0], 0, NULL);
		char *err = NULL;

		s->pools = json_object();
		assert_int_not_equal(pl_sim_seed_load(s, seed, &err), 0);
		if (!err || !strstr(err, bad[i][1]))
			fail_msg("seed %zu: want '%s' in '%s'", i, bad[i][1], err ? err : "");
		free(err);
		json_decref(seed);
		sim_free(s);
	}
}

static int
teardown(void **state)
{
	pl_pfmt_cleanup();
	return 0;
}

/* import-from makes a new volume of the source's size and is not kept;
 * thick storages refuse what does not fit, thin ones over-commit. */
static void
test_import_and_space(void **state)
{
	struct pl_sim *s =
		sim_new("{\"nodes\":[\"a\"],\"storages\":[{\"id\":\"local\",\"type\":\"dir\","
			"\"content\":\"images,import\"},{\"id\":\"thick\",\"type\":\"lvm\","
			"\"content\":\"images\",\"size\":\"10G\"},{\"id\":\"thin\",\"type\":"
			"\"lvmthin\",\"content\":\"images\",\"size\":\"10G\"}],\"templates\":["
			"{\"volid\":\"local:import/os.qcow2\",\"size\":\"3G\"}],"
			"\"guests\":[{\"vmid\":100,\"config\":{}}]}");
	struct pl_sim_guest *g = pl_sim_guest_find(s, 100);
	char *err = NULL, *v;
	bool nospace = false;

	v = pl_sim_disk_alloc(s, g, "scsi0", "thin:0,import-from=local:import/os.qcow2,ssd=1", &err,
			      &nospace);
	assert_string_equal(v, "thin:vm-100-disk-0,size=3G,ssd=1");
	free(v);
	v = pl_sim_disk_alloc(s, g, "scsi1", "thin:4,import-from=local:import/os.qcow2", &err,
			      &nospace);
	assert_null(v);
	assert_non_null(strstr(err, "'import-from' requires special syntax"));
	free(err);
	err = NULL;
	v = pl_sim_disk_alloc(s, g, "scsi1", "thin:32", &err, &nospace);
	assert_string_equal(v, "thin:vm-100-disk-1,size=32G");
	assert_false(nospace);
	free(v);
	v = pl_sim_disk_alloc(s, g, "scsi2", "thick:8", &err, &nospace);
	assert_string_equal(v, "thick:vm-100-disk-0,size=8G");
	free(v);
	v = pl_sim_disk_alloc(s, g, "scsi3", "thick:4", &err, &nospace);
	assert_null(v);
	assert_true(nospace);
	assert_non_null(strstr(err, "insufficient free space (512 extents): 1024 required."));
	free(err);
	sim_free(s);
}

/* maxdisk is the boot disk's: boot order, legacy bootdisk, or the default
 * order a create would set. */
static void
test_boot_disk_size(void **state)
{
	struct pl_sim *s =
		sim_new("{\"nodes\":[\"a\"],\"storages\":[{\"id\":\"local-lvm\",\"type\":"
			"\"lvmthin\",\"content\":\"images\"}],\"guests\":["
			"{\"vmid\":100,\"config\":{\"sata0\":\"local-lvm:80\",\"scsi0\":"
			"\"local-lvm:8\",\"boot\":\"order=ide2;sata0;scsi0\",\"ide2\":"
			"\"none,media=cdrom\"}},"
			"{\"vmid\":101,\"config\":{\"sata0\":\"local-lvm:80\"}},"
			"{\"vmid\":102,\"config\":{\"virtio1\":\"local-lvm:5\",\"scsi3\":"
			"\"local-lvm:7\",\"bootdisk\":\"virtio1\"}},"
			"{\"vmid\":103,\"config\":{\"scsi0\":\"local-lvm:9\",\"boot\":"
			"\"order=net0\",\"net0\":\"virtio,bridge=vmbr0\"}}]}");
	struct pl_sim_usage u;
	char *boot;

	pl_sim_guest_usage(s, pl_sim_guest_find(s, 100), 1700000000, &u);
	assert_int_equal(u.maxdisk, 80ULL << 30);
	pl_sim_guest_usage(s, pl_sim_guest_find(s, 101), 1700000000, &u);
	assert_int_equal(u.maxdisk, 80ULL << 30);
	pl_sim_guest_usage(s, pl_sim_guest_find(s, 102), 1700000000, &u);
	assert_int_equal(u.maxdisk, 5ULL << 30);
	pl_sim_guest_usage(s, pl_sim_guest_find(s, 103), 1700000000, &u);
	assert_int_equal(u.maxdisk, 0);
	boot = pl_sim_default_boot(pl_sim_guest_find(s, 100)->conf);
	assert_string_equal(boot, "order=scsi0;ide2");
	free(boot);
	sim_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_and_disks),   cmocka_unit_test(test_alloc_and_index),
		cmocka_unit_test(test_usage_and_dump),   cmocka_unit_test(test_bad_seeds),
		cmocka_unit_test(test_import_and_space), cmocka_unit_test(test_boot_disk_size),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
