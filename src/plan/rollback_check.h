/*
 * Whether the snapshot rollbacks of a rollback plan (plan/runs.h) can
 * happen, asked of the cluster before any guest is touched: each guest's
 * snapshots and the snapshot's config, judged by plan/wayback.h's rule (ZFS
 * takes a volume back only to its newest snapshot). On the client's loop.
 */
#ifndef PL_PLAN_ROLLBACK_CHECK_H
#define PL_PLAN_ROLLBACK_CHECK_H

#include "core/common.h"

#include <jansson.h>

struct pl_pve;

/* blocked: [{guest, reason}] (borrowed), empty when every rollback can go
 * ahead; err and errmsg when the cluster could not be asked. */
typedef void (*pl_rollback_check_cb)(int err, const json_t *blocked, const char *errmsg, void *arg);

/* Ask about every change of plan that rolls back to a snapshot; storages
 * are the cluster's (/cluster/resources entries, borrowed until cb). cb
 * runs once, from the loop. */
void pl_rollback_check_start(struct pl_pve *c, const json_t *plan, const json_t *storages,
			     pl_rollback_check_cb cb, void *arg);

#endif
