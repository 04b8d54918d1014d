/*
 * The inventory snapshot: the JSON object a sync reads from the cluster
 * (pve/inventory.c), the state store records (state/state.c) and the planner,
 * import and the commands read. Each key is named here once, with what it
 * holds; code uses these names, never the string.
 *
 *   {PL_SNAP_NODES: [...], PL_SNAP_GUESTS: [...], PL_SNAP_STORAGES: [...],
 *    PL_SNAP_BRIDGES: [...], PL_SNAP_TASKS: [...]}
 */
#ifndef PL_CORE_SNAPSHOT_H
#define PL_CORE_SNAPSHOT_H

/* Top-level keys: each an array, present (maybe empty) in every snapshot. */

/* Nodes: /cluster/resources?type=node entries ("node", "status": "online" or
 * "offline", counters), each with PL_SNAP_DETAIL when the node answered. */
#define PL_SNAP_NODES "nodes"
/* Guests: /cluster/resources?type=vm entries ("vmid", "type": "qemu" or
 * "lxc", "node", "name", "status", "template", "tags", "lock", counters),
 * each with PL_SNAP_CONFIG, or PL_SNAP_UNREAD when its config was not read. */
#define PL_SNAP_GUESTS "guests"
/* Storages: /cluster/resources?type=storage entries ("node", "storage",
 * "plugintype", "content", "shared", sizes). */
#define PL_SNAP_STORAGES "storages"
/* Bridges: /nodes/NODE/network?type=any_bridge entries ("iface", "type",
 * "vlan-aware"...), each with "node" added. */
#define PL_SNAP_BRIDGES "bridges"
/* Tasks: /cluster/tasks entries ("upid", "node", "type", "id", "user",
 * "starttime", "endtime", "status"); empty when the list could not be read. */
#define PL_SNAP_TASKS "tasks"

/* The cluster's storage configuration: GET /storage entries ("storage",
 * "type", "content", "nodes", options, "digest"); absent when not read. */
#define PL_SNAP_STORECFG "storage_config"
/* Scheduled backup jobs: GET /cluster/backup entries; absent when not read. */
#define PL_SNAP_JOBS "backup_jobs"
/* Resource pools: GET /pools entries ("poolid", "comment"); absent when not read. */
#define PL_SNAP_POOLS "pools"
/* PCI resource mappings: GET /cluster/mapping/pci entries ("id", "map" [...],
 * "description", "mdev", "live-migration-capable", "digest"); absent when not
 * read (PVE before 8). */
#define PL_SNAP_PCIMAPS "pci_mappings"

/* Keys added to the API's entries. */

/* A guest's config: /nodes/NODE/{qemu,lxc}/VMID/config, an object. A
 * partial inventory (pl_pve_inventory_some) leaves it out of the guests it
 * was not asked for. */
#define PL_SNAP_CONFIG "config"
/* A node's status: /nodes/NODE/status, an object. */
#define PL_SNAP_DETAIL "detail"
/* Why a guest's config was not read now (a string: PL_PVE_UNREAD_* in
 * pve/inventory.h): the guest is kept as last recorded, and plan and import
 * refuse to act on it. Never stored as part of the guest. */
#define PL_SNAP_UNREAD "_unread"
/* The token's effective permissions (GET /access/permissions): path ->
 * {priv: 1}; absent when they could not be read. */
#define PL_SNAP_PERMS "access"
/* A kept guest's mark that the token cannot see it (why, a string). */
#define PL_SNAP_UNSEEN "_unseen"

#endif
