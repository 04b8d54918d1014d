/*
 * A whole-cluster read: /cluster/resources once, then every guest's config,
 * node status and bridges in parallel, gathered into one snapshot object that
 * the state store records (pl_state_record_sync).
 */
#ifndef PL_PVE_INVENTORY_H
#define PL_PVE_INVENTORY_H

#include "core/common.h"

#include <jansson.h>

struct pl_pve;

/* Called as answers arrive: done of total requests. */
typedef void (*pl_pve_progress_cb)(size_t done, size_t total, void *arg);

/* Fetch the snapshot {"nodes","guests","storages","bridges","tasks"} (new
 * reference). Runs the client's loop until everything has answered. */
int pl_pve_inventory(struct pl_pve *c, pl_pve_progress_cb progress, void *arg, json_t **snap,
		     char **errmsg);

/* Decides whether a guest's config is fetched (arg is the caller's). */
typedef bool (*pl_pve_guest_filter)(const json_t *resource, void *arg);
/* The same, fetching the config only of the guests filter accepts (the others
 * are in the snapshot without "config"): a plan of 1,000 declared guests does
 * not need the other 9,000 configs of the cluster. */
int pl_pve_inventory_some(struct pl_pve *c, pl_pve_guest_filter filter, void *farg,
			  pl_pve_progress_cb progress, void *arg, json_t **snap, char **errmsg);

/* Resolve GUEST (a vmid or a name) against /cluster/resources entries:
 * the entry (borrowed) or NULL. Several guests with the same name: NULL with
 * *ambiguous set. */
const json_t *pl_pve_find_guest(const json_t *resources, const char *guest, bool *ambiguous);

#endif
