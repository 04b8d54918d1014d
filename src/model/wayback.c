/*
 * The snapshot rule of model/wayback.h, read from Proxmox's own code:
 * pve-guest-common AbstractConfig::__snapshot_prepare dies "snapshot feature
 * is not available" unless $class->has_feature('snapshot'); QemuConfig and
 * LXC::Config has_feature ask PVE::Storage::volume_has_feature of every
 * volume (QemuConfig skips CD-ROMs); that returns false for a path that is
 * no volume (a container's bind or device mount, a VM's host device), else
 * asks the storage's plugin.
 */
#include "core/common.h"
#include "model/wayback.h"
#include "core/err.h"
#include "core/str.h"

/* The volume's format as the plugins' parse_volname tell it: Plugin.pm's
 * parse_name_dir by the file's extension, LVMPlugin ".qcow2" or raw. */
static const char *
volume_format(const char *volname)
{
	const char *base = strrchr(volname, '/');
	size_t n = strlen(volname);

	base = base ? base + 1 : volname;
	if (n >= 6 && !strcmp(volname + n - 6, ".qcow2"))
		return "qcow2";
	if (n >= 5 && !strcmp(volname + n - 5, ".vmdk"))
		return "vmdk";
	if (pl_str_startswith(base, "subvol-") || (n >= 7 && !strcmp(volname + n - 7, ".subvol")))
		return "subvol";
	return "raw";
}

bool
pl_model_volume_snapshots(const char *type, const char *volname)
{
	/* volume_has_feature of LvmThinPlugin, ZFSPoolPlugin, ZFSPlugin
	 * (ZFS over iSCSI), RBDPlugin: snapshot => { current => 1 }; and
	 * BTRFSPlugin: every format it stores (raw, qcow2, subvol) */
	static const char *const any[] = { "lvmthin", "zfspool", "zfs", "rbd", "btrfs" };

	for (size_t i = 0; i < PL_ARRAY_LEN(any); i++)
		if (!strcmp(type, any[i]))
			return true;
	/* Plugin.pm (dir, nfs, cifs, glusterfs) and LVMPlugin: qcow2 only;
	 * iSCSI plugins have no snapshot feature and hold no qcow2 */
	return !strncmp(type, "iscsi", 5) ? false : !strcmp(volume_format(volname), "qcow2");
}

/* The keys has_feature's foreach_volume visits (unused volumes are not). */
static bool
snapshot_key(bool lxc, const char *k)
{
	size_t n = strcspn(k, "0123456789");

	if (lxc)
		return !strcmp(k, "rootfs") || (n == 2 && k[n] && !strncmp(k, "mp", 2));
	if (!strcmp(k, "efidisk0") || !strcmp(k, "tpmstate0"))
		return true;
	if (k[n] == 0 || strspn(k + n, "0123456789") != strlen(k + n))
		return false;
	return (n == 4 && (!strncmp(k, "scsi", 4) || !strncmp(k, "sata", 4))) ||
	       (n == 3 && !strncmp(k, "ide", 3)) || (n == 6 && !strncmp(k, "virtio", 6));
}

/* Why the volume of key (its property string val) cannot be snapshotted. */
static char *
volume_blocker(bool lxc, const char *k, const char *val, pl_model_storage_type_fn type_of,
	       void *arg)
{
	size_t len = strcspn(val, ","), sl;
	char *volid, *why = NULL;
	const char *type;

	if (!lxc && (strstr(val, "media=cdrom") || (len == 4 && !strncmp(val, "none", 4))))
		return NULL; /* QemuConfig::has_feature skips drive_is_cdrom */
	if (!strncmp(val, "volume=", 7) || !strncmp(val, "file=", 5)) {
		val = strchr(val, '=') + 1;
		len = strcspn(val, ",");
	}
	volid = pl_strndup(val, len);
	if (volid[0] == '/') {
		/* PVE::LXC::Config classify_mountpoint: /dev/... is a device */
		bool dev = pl_str_startswith(volid, "/dev/");

		why = lxc ? pl_asprintf("%s is a %s mount", k, dev ? "device" : "bind") :
			    pl_asprintf("%s is the host %s '%s', not a storage volume", k,
					dev ? "device" : "file", volid);
		goto out;
	}
	sl = strcspn(volid, ":");
	if (volid[sl] == 0)
		goto out;
	volid[sl] = 0;
	type = type_of(volid, arg);
	if (type && !pl_model_volume_snapshots(type, volid + sl + 1))
		why = pl_asprintf("%s is a %s volume on %s storage '%s'", k,
				  volume_format(volid + sl + 1), type, volid);
out:
	free(volid);
	return why;
}

char *
pl_model_snapshot_blocker(bool lxc, const json_t *conf, pl_model_storage_type_fn type_of, void *arg)
{
	const char *k, *first = NULL;
	char *why = NULL;
	json_t *v;

	json_object_foreach((json_t *)conf, k, v) {
		char *w;

		if (!json_is_string(v) || !snapshot_key(lxc, k) || (first && strcmp(k, first) > 0))
			continue;
		if ((w = volume_blocker(lxc, k, json_string_value(v), type_of, arg)) == NULL)
			continue;
		free(why);
		why = w;
		first = k;
	}
	return why;
}

bool
pl_model_rollback_newest_only(const char *type)
{
	return type && (!strcmp(type, "zfspool") || !strcmp(type, "zfs"));
}

/* The volume id of key k's value val when it lies on a storage that rolls
 * back only to its newest snapshot; NULL otherwise. */
static char *
newest_only_volume(bool lxc, const char *val, pl_model_storage_type_fn type_of, void *arg)
{
	size_t len;
	const char *colon;
	char *store, *volid = NULL;

	if (!lxc && strstr(val, "media=cdrom"))
		return NULL;
	if (!strncmp(val, "volume=", 7) || !strncmp(val, "file=", 5))
		val = strchr(val, '=') + 1;
	len = strcspn(val, ",");
	if ((colon = memchr(val, ':', len)) == NULL)
		return NULL;
	store = pl_strndup(val, (size_t)(colon - val));
	if (pl_model_rollback_newest_only(type_of(store, arg)))
		volid = pl_strndup(val, len);
	free(store);
	return volid;
}

char *
pl_model_rollback_volume(bool lxc, const json_t *conf, pl_model_storage_type_fn type_of, void *arg)
{
	const char *k, *first = NULL;
	char *found = NULL;
	json_t *v;

	json_object_foreach((json_t *)conf, k, v) {
		char *volid;

		if (!json_is_string(v) || !snapshot_key(lxc, k) || (first && strcmp(k, first) > 0))
			continue;
		if ((volid = newest_only_volume(lxc, json_string_value(v), type_of, arg)) == NULL)
			continue;
		free(found);
		found = volid;
		first = k;
	}
	return found;
}
