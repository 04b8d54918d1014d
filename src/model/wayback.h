/*
 * Whether Proxmox can snapshot a guest: the rule PVE applies when asked for
 * a snapshot, shared by the planner (which picks each update's way back
 * from it: a snapshot, else a vzdump backup) and the simulator (which
 * refuses such a snapshot as PVE does).
 */
#ifndef PL_MODEL_WAYBACK_H
#define PL_MODEL_WAYBACK_H

#include "core/common.h"

#include <jansson.h>

/* The type ("lvmthin", "dir", ...) of storage on the guest's node, or NULL
 * when it is not known. */
typedef const char *(*pl_model_storage_type_fn)(const char *storage, void *arg);

/* Whether a storage of type can snapshot volname (a volume id without its
 * "storage:" prefix), as pve-storage's volume_has_feature('snapshot') says:
 * LVM-thin, ZFS, RBD and Btrfs any volume; dir, NFS, CIFS and thick LVM a
 * qcow2 one only; iSCSI never. */
bool pl_model_volume_snapshots(const char *type, const char *volname);

/* Why PVE refuses a snapshot of a guest whose config is conf ("mp0 is a bind
 * mount", "scsi0 is a raw volume on lvm storage 'thick'"; caller frees), or
 * NULL when it takes one. The volumes are those PVE's has_feature looks at:
 * a VM's disks except CD-ROMs (cloud-init drives too), a container's rootfs
 * and mount points; unused volumes are not. A volume on a storage type_of
 * does not know counts as able. Of several, the first key in sort order. */
char *pl_model_snapshot_blocker(bool lxc, const json_t *conf, pl_model_storage_type_fn type_of,
				void *arg);

/* Whether a storage of type rolls a volume back only to its newest snapshot:
 * pve-storage's ZFSPoolPlugin::volume_rollback_is_possible (ZFSPlugin, ZFS
 * over iSCSI, inherits it) refuses an older one, since `zfs rollback`
 * without -r cannot skip the newer snapshots and PVE never destroys them. */
bool pl_model_rollback_newest_only(const char *type);

/* The volume PVE names when it refuses to roll a guest back to a snapshot
 * whose config is conf while newer snapshots exist: the first volume id
 * ("local-zfs:vm-100-disk-0") in sort order of a volume key on a storage
 * that rolls back only to its newest snapshot (caller frees); NULL when
 * there is none. */
char *pl_model_rollback_volume(bool lxc, const json_t *conf, pl_model_storage_type_fn type_of,
			       void *arg);

#endif
