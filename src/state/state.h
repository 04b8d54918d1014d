/*
 * The local state store: one SQLite file in WAL mode holding the cluster as
 * last seen (nodes, guests, storages, bridges, tasks), the runs that saw it,
 * and a history row per guest change with a SHA-256 of its canonical JSON.
 */
#ifndef PL_STATE_STATE_H
#define PL_STATE_STATE_H

#include "core/common.h"

#include <jansson.h>

struct pl_state;
struct sqlite3;

/* Open (creating the file, its directory and the schema) and migrate. */
int pl_state_open(const char *path, struct pl_state **out, char **errmsg);
/* Open an existing store for reading; PL_ENOENT when there is none. The file
 * is opened read-write (WAL recovery after a crash needs it) and migrated
 * when an older pvelab wrote it, so it is not read-only on disk. */
int pl_state_open_ro(const char *path, struct pl_state **out, char **errmsg);
void pl_state_close(struct pl_state *s);
/* The schema version (PRAGMA user_version) after migrations. */
int pl_state_version(struct pl_state *s);
/* The number of migrations this build knows. */
int pl_state_latest_version(void);
/* The raw handle, for layers above that add their own tables (plan runs). */
struct sqlite3 *pl_state_db(struct pl_state *s);

/* Copy what the WAL holds into the database on a thread of its own (NULL
 * when there is nothing to copy); wait for it before a write transaction, so
 * that the WAL starts over. Commits and closes leave that to it. */
struct pl_state_ckpt;
struct pl_state_ckpt *pl_state_checkpoint_start(struct pl_state *s);
void pl_state_checkpoint_wait(struct pl_state_ckpt *k);

/* A guest's change signature: ["<SHA-256 of the canonical durable JSON>", "<that JSON>"].
 * The durable part is what counts as a change: config and durable status
 * (name, node, status, lock, tags, template...), never cpu/mem/uptime/net
 * counters. New reference. */
json_t *pl_state_guest_sig(const json_t *guest);

struct pl_state_counts {
	int added, changed, removed, unchanged;
	int unread; /* guests marked "_unread" (config not read): kept as recorded */
};

/* Record a whole-cluster snapshot in one transaction:
 * {"nodes":[...],"guests":[{vmid,type,node,name,status,...,"config":{}}],
 *  "storages":[...],"bridges":[...],"tasks":[...]}.
 * Writes a run row and one history row per new/changed/gone guest. With
 * dry_run nothing is kept. changes (optional) gets [{vmid,name,kind}]. */
int pl_state_record_sync(struct pl_state *s, const json_t *snap, bool dry_run,
			 struct pl_state_counts *counts, json_t **changes, long long *run_id,
			 char **errmsg);

/* The same, guest by guest as the answers arrive: begin opens the write
 * transaction (held until end or abort) and reads what the store knows. */
struct pl_state_sync;
int pl_state_sync_begin(struct pl_state *s, bool dry_run, struct pl_state_sync **out,
			char **errmsg);
/* Record one guest with its pl_state_guest_sig (NULL: computed here). A
 * failed write is kept, later guests are skipped, and pl_state_sync_end
 * reports it. */
void pl_state_sync_guest(struct pl_state_sync *y, json_t *guest, const json_t *sig);
/* Guests not recorded since begin are gone; snap's nodes, storages, bridges
 * and tasks are written; then commit (roll back with dry_run). Frees y. */
int pl_state_sync_end(struct pl_state_sync *y, const json_t *snap,
		      struct pl_state_counts *counts, json_t **changes, long long *run_id,
		      char **errmsg);
/* Roll back and free. Accepts NULL. */
void pl_state_sync_abort(struct pl_state_sync *y);

/* Every guest as last seen (objects with config), sorted by vmid. */
int pl_state_guests(struct pl_state *s, json_t **out, char **errmsg);
/* The same, only those of this type ("qemu", "lxc"), node and status; a
 * NULL field, or a NULL filter, matches every guest. */
struct pl_state_filter {
	const char *type, *node, *status;
};
int pl_state_guests_where(struct pl_state *s, const struct pl_state_filter *f, json_t **out,
			  char **errmsg);
/* What pvelab list shows of the guests f selects, sorted by vmid, without
 * parsing their configs: [{vmid,name,node,type,status,tags,template (bool),
 * lock,cpu,maxcpu,mem,maxmem,maxdisk}]. */
int pl_state_guest_summaries(struct pl_state *s, const struct pl_state_filter *f,
			     json_t **out, char **errmsg);
/* [{vmid,name}] of every guest, sorted by vmid: enough to resolve a GUEST. */
int pl_state_guest_names(struct pl_state *s, json_t **out, char **errmsg);
/* [{type,status,n}]: how many guests of each type are in each state. */
int pl_state_guest_counts(struct pl_state *s, json_t **out, char **errmsg);
/* One guest by vmid; PL_ENOENT when unknown. */
int pl_state_guest(struct pl_state *s, long long vmid, json_t **out, char **errmsg);
/* Node objects as last seen, sorted by name. */
int pl_state_nodes(struct pl_state *s, json_t **out, char **errmsg);
/* Storages ([{node,storage,...}]) and bridges ([{node,iface,...}]). */
int pl_state_storages(struct pl_state *s, json_t **out, char **errmsg);
int pl_state_bridges(struct pl_state *s, json_t **out, char **errmsg);
/* History of a guest, oldest first: [{id,kind,sha256,run,ts,state}]. */
int pl_state_history(struct pl_state *s, long long vmid, json_t **out, char **errmsg);
/* Total history rows (for tests and benchmarks). */
long long pl_state_history_count(struct pl_state *s);
/* Tasks seen, newest first; vmid < 0 for all. */
int pl_state_tasks(struct pl_state *s, long long vmid, int limit, json_t **out, char **errmsg);
/* Remember a task (UPID plus what is known of it: status, exitstatus...). */
int pl_state_task_put(struct pl_state *s, const char *upid, const json_t *info, char **errmsg);
/* The latest run of a kind ("sync") as {id,kind,started,finished,summary}, or
 * PL_ENOENT. */
int pl_state_last_run(struct pl_state *s, const char *kind, json_t **out, char **errmsg);
/* Add a history row for a guest outside a sync (e.g. "created" by apply). */
int pl_state_history_add(struct pl_state *s, const json_t *guest, const char *kind,
			 long long run_id, char **errmsg);

#endif
