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

/* Called on the caller's thread every 50 ms while the answers arrive (done of
 * total requests), when a pl_pve_guest_cb asks, and once at the end: also the
 * place for the caller's own work on answers in hand. */
typedef void (*pl_pve_progress_cb)(size_t done, size_t total, void *arg);

/* Called once per guest as soon as its config is in (guest is borrowed), so
 * that callers can work while the other answers are on their way. It runs on
 * the worker thread that fetched the guest: it may touch that guest and must
 * lock anything it shares. It returns true to have progress called now (a
 * batch of work for the caller's thread is ready). */
typedef bool (*pl_pve_guest_cb)(json_t *guest, void *arg);

/* Why a guest's config was not read: its node is listed offline (and was not
 * asked), its node did not answer (595), or the config was not on the node
 * the resource list named (deleted, or migrated, since). */
#define PL_PVE_UNREAD_OFFLINE "offline"
#define PL_PVE_UNREAD_NO_ANSWER "no answer"
#define PL_PVE_UNREAD_GONE "not found"

/* Fetch the snapshot {"nodes","guests","storages","bridges","tasks"} (new
 * reference). pl_pve_inventory_start with the client's loop run until it
 * ends (for the CLI).
 * progress and on_guest may be NULL; both get arg. A guest whose config
 * cannot be read now is in the snapshot, and passed to on_guest, without
 * "config" and with "_unread" set to one of the reasons above; *unread
 * counts them. */
int pl_pve_inventory(struct pl_pve *c, pl_pve_progress_cb progress, pl_pve_guest_cb on_guest,
		     void *arg, size_t *unread, json_t **snap, char **errmsg);

/* Decides whether a guest's config is fetched (arg is the caller's). */
typedef bool (*pl_pve_guest_filter)(const json_t *resource, void *arg);
/* The same, fetching the config only of the guests filter accepts (the others
 * are in the snapshot without "config"): a plan of 1,000 declared guests does
 * not need the other 9,000 configs of the cluster. A config that cannot be
 * read is an error here. */
int pl_pve_inventory_some(struct pl_pve *c, pl_pve_guest_filter filter, void *farg,
			  pl_pve_progress_cb progress, void *arg, json_t **snap, char **errmsg);

/* The same on the caller's loop (the client's event_base): the call returns
 * at once, every step is a callback there, and the workers' threads hand their
 * results back to it; nothing waits on it. */
struct pl_pve_inv;
struct pl_pve_inventory_opts {
	pl_pve_guest_filter filter; /* NULL: every guest's config */
	void *farg;
	pl_pve_progress_cb progress; /* from 50 ms after the list is in, on the loop */
	pl_pve_guest_cb on_guest;
	void *arg;                   /* for progress and on_guest */
	bool partial; /* a sync: a config not read is marked "_unread", not an error */
	/* a server's: the workers run at a lower priority (nice), so that its
	 * loop wins the CPU when they compete for it */
	bool background;
};
/* Called once, on the loop, at the end: snap (borrowed; NULL on error) as
 * pl_pve_inventory returns it, and errmsg (borrowed) when err is not 0. */
typedef void (*pl_pve_inventory_cb)(int err, json_t *snap, size_t unread, const char *errmsg,
				    void *arg);
struct pl_pve_inv *pl_pve_inventory_start(struct pl_pve *c, const struct pl_pve_inventory_opts *o,
					  pl_pve_inventory_cb cb, void *arg);
/* Stop: no more callbacks (cb, progress, on_guest once the workers see it);
 * what is in flight is dropped, and the handle freed from the loop once the
 * answer already due on c has come. Only before cb, on the loop's thread. */
void pl_pve_inventory_cancel(struct pl_pve_inv *h);

#endif
