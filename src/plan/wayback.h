/*
 * The way back of an update: what apply takes before it changes an existing
 * guest, so that `pvelab rollback RUN` can undo the change. A snapshot when
 * Proxmox can take one (model/wayback.h decides, from the inventory the
 * planner has), else a vzdump backup; none with --no-snapshot.
 */
#ifndef PL_PLAN_WAYBACK_H
#define PL_PLAN_WAYBACK_H

#include "core/common.h"

#include <jansson.h>

/* The kinds, as plans and run results name them. */
#define PL_WAY_BACK_SNAPSHOT "snapshot"
#define PL_WAY_BACK_BACKUP "backup"
#define PL_WAY_BACK_NONE "none"

/* The way back of an update of live (a snapshot's guest entry) on node,
 * with the snapshot's storages: {"kind":"snapshot"}, {"kind":"backup",
 * "reason":"mp0 is a bind mount"} or, with no_snapshot, {"kind":"none",
 * "reason":"--no-snapshot"}. New reference. */
json_t *pl_plan_way_back(const json_t *live, const char *node, const json_t *storages,
			 bool no_snapshot);

/* The kind of a change's "way_back" (a plan's update): "snapshot" when the
 * change names none (a plan from before way backs). */
const char *pl_plan_way_back_kind(const json_t *change);

/* How many snapshots of snaps (a guest's list as PVE gives it: name,
 * snaptime) were taken after snap, those of the same second counted (on
 * doubt); -1 when snap is not there. */
int pl_plan_snapshots_after(const char *snap, const json_t *snaps);

/* Why `pvelab rollback` may not take a guest back to snapshot snap, asked
 * before it touches any guest: snaps is the guest's snapshot list as PVE
 * gives it (name, snaptime), conf the snapshot's config, lxc its type,
 * storages the cluster's (/cluster/resources entries). PVE refuses when a
 * volume lies on ZFS and a snapshot was taken after snap; a snapshot no
 * longer there is a refusal too. NULL when it may; caller frees. */
char *pl_plan_rollback_blocker(const char *snap, const json_t *snaps, const json_t *conf, bool lxc,
			       const char *node, const json_t *storages);

#endif
