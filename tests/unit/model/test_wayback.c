/* Unit tests for model/wayback: the one rule, shared by the planner and the
 * simulator, of whether Proxmox snapshots a guest (pve-storage
 * volume_has_feature per plugin; bind and device mounts; CD-ROMs skipped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "model/wayback.h"

/* storage id -> type, for the tests' cluster */
static const char *
type_of(const char *storage, void *arg)
{
	static const char *const types[][2] = {
		{ "local", "dir" }, { "local-lvm", "lvmthin" }, { "thick", "lvm" },
		{ "nas", "nfs" },   { "tank", "zfspool" },      { "ceph", "rbd" },
		{ "bt", "btrfs" },  { "san", "iscsi" },         { "smb", "cifs" },
	};

	(void)arg;
	for (size_t i = 0; i < PL_ARRAY_LEN(types); i++)
		if (!strcmp(storage, types[i][0]))
			return types[i][1];
	return NULL;
}

static void
expect(bool lxc, const char *conf_json, const char *why)
{
	json_t *conf = json_loads(conf_json, 0, NULL);
	char *got;

	assert_non_null(conf);
	got = pl_model_snapshot_blocker(lxc, conf, type_of, NULL);
	if (why == NULL && got != NULL)
		fail_msg("%s: expected no blocker, got '%s'", conf_json, got);
	if (why != NULL && (got == NULL || strcmp(got, why) != 0))
		fail_msg("%s: expected '%s', got '%s'", conf_json, why, got ? got : "(none)");
	free(got);
	json_decref(conf);
}

static void
test_volume_by_storage_type_and_format(void **state)
{
	(void)state;
	/* any volume: LVM-thin, ZFS, RBD, Btrfs */
	assert_true(pl_model_volume_snapshots("lvmthin", "vm-100-disk-0"));
	assert_true(pl_model_volume_snapshots("zfspool", "subvol-100-disk-0"));
	assert_true(pl_model_volume_snapshots("zfs", "vm-100-disk-0"));
	assert_true(pl_model_volume_snapshots("rbd", "vm-100-disk-0"));
	assert_true(pl_model_volume_snapshots("btrfs", "100/vm-100-disk-0.raw"));
	/* qcow2 only: Plugin.pm (dir, nfs, cifs) and thick LVM */
	assert_true(pl_model_volume_snapshots("dir", "100/vm-100-disk-0.qcow2"));
	assert_false(pl_model_volume_snapshots("dir", "100/vm-100-disk-0.raw"));
	assert_false(pl_model_volume_snapshots("dir", "100/vm-100-disk-0.vmdk"));
	assert_false(pl_model_volume_snapshots("dir", "subvol-100-disk-0"));
	assert_false(pl_model_volume_snapshots("nfs", "100/vm-100-disk-0.raw"));
	assert_true(pl_model_volume_snapshots("cifs", "100/vm-100-disk-0.qcow2"));
	assert_false(pl_model_volume_snapshots("lvm", "vm-100-disk-0"));
	assert_true(pl_model_volume_snapshots("lvm", "vm-100-disk-0.qcow2"));
	/* iSCSI: no snapshot feature */
	assert_false(pl_model_volume_snapshots("iscsi", "0.0.1.scsi-36001"));
	assert_false(pl_model_volume_snapshots("iscsidirect", "0.0.1.scsi-36001"));
}

static void
test_containers(void **state)
{
	(void)state;
	expect(true, "{\"rootfs\":\"local-lvm:subvol-100-disk-0,size=8G\"}", NULL);
	expect(true,
	       "{\"rootfs\":\"local-lvm:vm-100-disk-0,size=8G\",\"mp0\":\"/srv/media,mp=/data\"}",
	       "mp0 is a bind mount");
	expect(true, "{\"rootfs\":\"local-lvm:vm-100-disk-0\",\"mp1\":\"/dev/sdb1,mp=/disk\"}",
	       "mp1 is a device mount");
	expect(true, "{\"rootfs\":\"local-lvm:vm-100-disk-0\",\"mp0\":\"volume=/srv/x,mp=/x\"}",
	       "mp0 is a bind mount");
	/* a raw image on a directory storage */
	expect(true, "{\"rootfs\":\"local:100/vm-100-disk-0.raw,size=8G\"}",
	       "rootfs is a raw volume on dir storage 'local'");
	expect(true, "{\"rootfs\":\"local:subvol-100-disk-0\"}",
	       "rootfs is a subvol volume on dir storage 'local'");
	/* unused volumes are not looked at; of several, the first key */
	expect(true,
	       "{\"rootfs\":\"tank:subvol-100-disk-0\",\"unused0\":\"local:100/"
	       "vm-100-disk-1.raw\"}",
	       NULL);
	expect(true, "{\"rootfs\":\"local:100/vm-100-disk-0.raw\",\"mp0\":\"/srv/a,mp=/a\"}",
	       "mp0 is a bind mount");
}

static void
test_vms(void **state)
{
	(void)state;
	expect(false,
	       "{\"scsi0\":\"local-lvm:vm-101-disk-0,size=32G\",\"ide2\":\"none,media=cdrom\","
	       "\"ide0\":\"local-lvm:vm-101-cloudinit,media=cdrom\",\"net0\":\"virtio,bridge="
	       "vmbr0\"}",
	       NULL);
	/* an ISO on a directory storage is a CD-ROM: skipped */
	expect(false,
	       "{\"scsi0\":\"ceph:vm-101-disk-0\",\"ide2\":\"local:iso/debian.iso,media=cdrom\"}",
	       NULL);
	expect(false, "{\"scsi0\":\"thick:vm-101-disk-0,size=32G\"}",
	       "scsi0 is a raw volume on lvm storage 'thick'");
	expect(false,
	       "{\"virtio1\":\"nas:101/vm-101-disk-1.qcow2\",\"efidisk0\":\"nas:101/"
	       "vm-101-disk-0.raw\"}",
	       "efidisk0 is a raw volume on nfs storage 'nas'");
	expect(false, "{\"sata0\":\"/dev/disk/by-id/ata-X\"}",
	       "sata0 is the host device '/dev/disk/by-id/ata-X', not a storage volume");
	expect(false, "{\"tpmstate0\":\"smb:101/vm-101-disk-2.raw\"}",
	       "tpmstate0 is a raw volume on cifs storage 'smb'");
	expect(false, "{\"scsi0\":\"bt:101/vm-101-disk-0.raw\"}", NULL);
	/* a storage the inventory does not know counts as able */
	expect(false, "{\"scsi0\":\"gone:vm-101-disk-0\"}", NULL);
	/* keys that are no drives */
	expect(false, "{\"scsihw\":\"virtio-scsi-single\",\"description\":\"/srv/x\"}", NULL);
}

static void
rollback_volume(bool lxc, const char *conf_json, const char *volid)
{
	json_t *conf = json_loads(conf_json, 0, NULL);
	char *got = pl_model_rollback_volume(lxc, conf, type_of, NULL);

	if (volid == NULL && got != NULL)
		fail_msg("%s: expected none, got '%s'", conf_json, got);
	if (volid != NULL && (got == NULL || strcmp(got, volid) != 0))
		fail_msg("%s: expected '%s', got '%s'", conf_json, volid, got ? got : "(none)");
	free(got);
	json_decref(conf);
}

/* ZFS rolls a volume back only to its newest snapshot; the others to any */
static void
test_rollback_newest_only(void **state)
{
	(void)state;
	assert_true(pl_model_rollback_newest_only("zfspool"));
	assert_true(pl_model_rollback_newest_only("zfs"));
	assert_false(pl_model_rollback_newest_only("lvmthin"));
	assert_false(pl_model_rollback_newest_only("rbd"));
	assert_false(pl_model_rollback_newest_only(NULL));
	rollback_volume(false, "{\"scsi0\":\"local-lvm:vm-101-disk-0,size=8G\"}", NULL);
	/* the first drive key in sort order that is on ZFS; CD-ROMs skipped */
	rollback_volume(false,
			"{\"virtio0\":\"tank:vm-101-disk-1\",\"scsi1\":\"tank:vm-101-disk-0,size="
			"8G\",\"scsi0\":\"local-lvm:vm-101-disk-2\",\"ide2\":\"tank:iso/x.iso,"
			"media=cdrom\"}",
			"tank:vm-101-disk-0");
	rollback_volume(true, "{\"rootfs\":\"local-lvm:vm-200-disk-0\",\"mp0\":\"tank:subvol-"
			      "200-disk-1,mp=/data\"}",
			"tank:subvol-200-disk-1");
	rollback_volume(true, "{\"mp0\":\"/srv/media,mp=/data\"}", NULL); /* a bind mount */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_volume_by_storage_type_and_format),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_vms),
		cmocka_unit_test(test_rollback_newest_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
