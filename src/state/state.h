/*
 * The local state store: one SQLite file in WAL mode holding the cluster as
 * last seen (nodes, guests, storages, bridges, tasks), the runs that saw or
 * changed it, a history row per guest change with a SHA-256 of its canonical
 * JSON, the apply lock and the hosts discovery found. This layer is the only
 * code that opens the file or writes SQL; every table comes from a numbered
 * migration (migrations.c).
 */
#ifndef PL_STATE_STATE_H
#define PL_STATE_STATE_H

#include "core/common.h"

#include <jansson.h>

struct pl_state;

/* Where the store lives, for every command: the path given on the command
 * line (given; NULL when none), else $PVELAB_STATE, else the config's
 * `state:` key (config_state, relative to the config file's directory), else
 * .pvelab/state.db beside the config file (config_path, default
 * ./pvelab.yaml). Caller frees. */
char *pl_state_path(const char *given, const char *config_state, const char *config_path);

/* The directory pvelab keeps its local files in (the proxy's and serve's
 * certificate authority) for the store at where: the SQLite file's
 * directory; for PostgreSQL (or where NULL), the one the default SQLite
 * store of config_path is in. Nothing is created. Caller frees. */
char *pl_state_local_dir(const char *where, const char *config_path);

/* Is where a PostgreSQL connection string (postgres://, postgresql:// or
 * libpq's key=value) rather than a SQLite file? */
bool pl_state_is_pg(const char *where);
/* where as it may be shown: a connection string as
 * postgresql://user@host:port/db, never its password. Caller frees. */
char *pl_state_display(const char *where);
/* A PostgreSQL connection string whose tables are in schema (created by
 * pl_state_open), for one cluster of a database several share: libpq's
 * key=value form, its search_path option first. Caller frees. */
char *pl_state_pg_schema(const char *conninfo, const char *schema);
/* Does that connection string carry a password (never in the YAML)? */
bool pl_state_has_password(const char *where);
/* Is an open store PostgreSQL? */
bool pl_state_is_postgres(const struct pl_state *s);

/* Open (creating the file, its directory and the schema) and migrate; or
 * connect to PostgreSQL and migrate its schema. */
int pl_state_open(const char *path, struct pl_state **out, char **errmsg);
/* The same for an existing store only: PL_ENOENT when there is none (a
 * command that records what it did where a store exists, never making one). */
int pl_state_open_existing(const char *path, struct pl_state **out, char **errmsg);
/* Open an existing store read-only (SQLite's mode=ro, which also reads a
 * store on a read-only mount): never writes, never migrates. PL_ENOENT when there is no file or no schema in it; PL_EDB
 * when its schema is older or newer than this build's. */
int pl_state_open_ro(const char *path, struct pl_state **out, char **errmsg);
void pl_state_close(struct pl_state *s);
/* The schema version (PRAGMA user_version) after migrations. */
int pl_state_version(struct pl_state *s);
/* The number of migrations this build knows. */
int pl_state_latest_version(void);
/* A number that differs after anything changed the store, through this
 * connection or another (a reader's cache key; 0 when it cannot tell). */
unsigned long long pl_state_changes(struct pl_state *s);
/* The store's size in bytes: the SQLite file and its WAL, or the PostgreSQL
 * tables of pvelab's schema with their indexes. */
int pl_state_size(struct pl_state *s, long long *bytes, char **errmsg);

/* Copy what the WAL holds into the database on a thread of its own (NULL
 * when there is nothing to copy); wait for it before a write transaction, so
 * that the WAL starts over. Commits and closes leave that to it. */
struct pl_state_ckpt;
struct pl_state_ckpt *pl_state_checkpoint_start(struct pl_state *s);
void pl_state_checkpoint_wait(struct pl_state_ckpt *k);

/* A guest's change signature: ["<SHA-256 of the canonical durable JSON>", "<that JSON>"].
 * The durable part is what counts as a change: config and durable status
 * (name, node, status, lock, tags, template...), never cpu/mem/uptime/net
 * counters. New reference; NULL when its text would be over PL_BUF_DEFAULT_MAX. */
json_t *pl_state_guest_sig(const json_t *guest);

struct pl_state_counts {
	int added, changed, removed, unchanged;
	int unread; /* guests marked "_unread" (config not read): kept as recorded */
	int unseen; /* guests gone from view that the token cannot see: kept, not deleted */
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
/* How long a write waits for another process's write lock (seconds). */
#define PL_STATE_BUSY_S 10
#define PL_STATE_BUSY_S_TEXT "10"
int pl_state_sync_begin(struct pl_state *s, bool dry_run, struct pl_state_sync **out,
			char **errmsg);
/* The same without waiting for another writer (an event loop must not):
 * PL_ECONFLICT at once, nothing begun, while one holds the write lock. */
int pl_state_sync_try_begin(struct pl_state *s, bool dry_run, struct pl_state_sync **out,
			    char **errmsg);
/* Record one guest with its pl_state_guest_sig (NULL: computed here). A
 * failed write is kept, later guests are skipped, and pl_state_sync_end
 * reports it. */
void pl_state_sync_guest(struct pl_state_sync *y, json_t *guest, const json_t *sig);
/* Guests not recorded since begin are gone; snap's nodes, storages, bridges
 * and tasks are written; then commit (roll back with dry_run). Frees y. */
int pl_state_sync_end(struct pl_state_sync *y, const json_t *snap, struct pl_state_counts *counts,
		      json_t **changes, long long *run_id, char **errmsg);
/* Whether an unchanged guest's volatile counters (cpu, mem, uptime...) are
 * written (the default) or left as they were: a server that refreshes every
 * few seconds keeps them in memory, and an unchanged refresh writes (almost)
 * nothing. Call before the first guest. */
void pl_state_sync_counters(struct pl_state_sync *y, bool write);
/* Roll back and free. Accepts NULL. */
void pl_state_sync_abort(struct pl_state_sync *y);
/* Whether a transaction is open on s (a sync between begin and end): a
 * write now would join it, a BEGIN fail. */
bool pl_state_in_transaction(struct pl_state *s);

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
int pl_state_guest_summaries(struct pl_state *s, const struct pl_state_filter *f, json_t **out,
			     char **errmsg);
/* [{vmid,name}] of every guest, sorted by vmid: enough to resolve a GUEST. */
int pl_state_guest_names(struct pl_state *s, json_t **out, char **errmsg);
/* Those of pl_state_guest_names whose vmid or name is guest (indexed: no
 * scan of the table). */
int pl_state_guest_named(struct pl_state *s, const char *guest, json_t **out, char **errmsg);
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
/* The same for a storage, backup job or pool: key "storage:ID",
 * "backup-job:ID" or "pool:ID" (sync_day2.c). */
int pl_state_history_key(struct pl_state *s, const char *key, json_t **out, char **errmsg);
/* The history of every guest and object, newest first, a page at a time:
 * rows [{id,guest,vmid,kind,sha256,run,ts,state,prev}] (prev: the state of
 * the same guest's row before, or null), only those matching every filter
 * given (NULL/0 is none): before (ids below it), vmid, key (the guest column:
 * "storage:local"), node (of the state), kind, since (ts at or after). */
struct pl_state_history_filter {
	long long before, vmid;
	const char *key, *node, *kind;
	double since;
	int limit;
};
int pl_state_history_page(struct pl_state *s, const struct pl_state_history_filter *f, json_t **out,
			  char **errmsg);
/* Total history rows (for tests and benchmarks). */
long long pl_state_history_count(struct pl_state *s);
/* A number that grows whenever the store's committed contents may have
 * changed: another connection committed (PRAGMA data_version; on
 * PostgreSQL, a pvelab commit's NOTIFY) or this one wrote outside a
 * transaction. While this connection has a transaction open
 * it stays as it was (readers elsewhere see nothing of it yet). */
long long pl_state_generation(struct pl_state *s);
/* Tasks seen, newest first; vmid < 0 for all. */
int pl_state_tasks(struct pl_state *s, long long vmid, int limit, json_t **out, char **errmsg);
/* Remember a task (UPID plus what is known of it: status, exitstatus...). */
int pl_state_task_put(struct pl_state *s, const char *upid, const json_t *info, char **errmsg);
/* The vmids whose history ever carried this name (deleted guests too), as a
 * JSON array of integers in vmid order. */
int pl_state_history_vmids(struct pl_state *s, const char *name, json_t **out, char **errmsg);
/* A command changed a guest's power state: list and describe show it before
 * the next sync. */
int pl_state_guest_set_status(struct pl_state *s, long long vmid, const char *status,
			      char **errmsg);
/* The latest run of a kind ("sync") as {id,kind,started,finished,summary}, or
 * PL_ENOENT. */
int pl_state_last_run(struct pl_state *s, const char *kind, json_t **out, char **errmsg);

/* Copy everything from into to (pvelab state migrate; either engine to
 * either), in batches of their own transactions, so that running it again
 * after a cut resumes; then compare each table's row count and the
 * history's hash chain. *report: {"tables":{NAME:{copied,source,target}},
 * "history_chain":HEX}. */
int pl_state_copy(struct pl_state *from, struct pl_state *to, json_t **report, char **errmsg);
/* A SHA-256 over every history row in id order (its id, guest, vmid, kind,
 * sha256, run, ts and JSON): equal in two stores when their histories are. */
int pl_state_history_chain(struct pl_state *s, char out[65], char **errmsg);

/*
 * Runs and the apply lock. A run (sync, apply, destroy, rollback, adopt) is
 * a row begun before any change and finished with its result; a running
 * run and the lock name their process. Whether a process still lives is the
 * caller's answer (alive): the store keeps processes, it does not look for them.
 */
/* A process: pid, host name and start time (clock ticks after boot), so that
 * a pid reused after a crash is another process. */
struct pl_state_proc {
	long long pid;
	const char *host;
	long long start;
};
/* Is p still there? */
typedef bool (*pl_state_alive_fn)(const struct pl_state_proc *p, void *arg);

/* Insert a running run of kind owned by self; the apply lock self holds, if
 * any, then names it. */
int pl_state_run_begin(struct pl_state *s, const char *kind, const struct pl_state_proc *self,
		       long long *id, char **errmsg);
/* Record the project (config) a run acts for. */
int pl_state_run_set_project(struct pl_state *s, long long id, const char *project, char **errmsg);
/* Record a running run's result so far. */
int pl_state_run_update(struct pl_state *s, long long id, const json_t *result, char **errmsg);
/* Record its end: status "ok", "failed" or "interrupted" and the result;
 * the history rows of what its changes recorded ("history": {"key",
 * "before","after"}, vmid 0) are added then (or when pl_state_runs_reap
 * finds the run's process gone), once per run and key. */
int pl_state_run_finish(struct pl_state *s, long long id, const char *status,
			const json_t *result, char **errmsg);
/* A run as {"id","kind","started","finished","status","result","project",
 * "pid","host"}, or PL_ENOENT. A running run whose process alive (may be
 * NULL) finds gone is shown "interrupted", as pl_state_runs_reap records it;
 * nothing is written. */
int pl_state_run_get(struct pl_state *s, long long id, pl_state_alive_fn alive, void *arg,
		     json_t **run, char **errmsg);
/* The newest limit runs of kind (NULL: any), newest first, as pl_state_run_get. */
int pl_state_runs(struct pl_state *s, const char *kind, int limit, pl_state_alive_fn alive,
		  void *arg, json_t **runs, char **errmsg);
/* Record every running run whose process alive finds gone as "interrupted"
 * (its running changes too); *n (optional) counts them. */
int pl_state_runs_reap(struct pl_state *s, pl_state_alive_fn alive, void *arg, int *n,
		       char **errmsg);
/* The newest run that changed guests (apply, destroy, rollback): *id, 0 when
 * none; *kind (optional) is borrowed from a static table. */
int pl_state_run_newest_change(struct pl_state *s, long long *id, const char **kind, char **errmsg);
/* Take the apply lock name for self in one transaction. PL_ECONFLICT when
 * another process holds it and alive finds it there (the message names its
 * run, pid, host and start); *stale (optional, new reference) is the lock
 * taken over from a dead holder ({"pid","host","started","run_id"}), NULL
 * when there was none. */
int pl_state_lock_take(struct pl_state *s, const char *name, const struct pl_state_proc *self,
		       pl_state_alive_fn alive, void *arg, json_t **stale, char **errmsg);
/* Release lock name if self holds it. */
int pl_state_lock_release(struct pl_state *s, const char *name, const struct pl_state_proc *self,
			  char **errmsg);
/* Was lock name, held, lost since (PostgreSQL: its advisory lock died with
 * a broken connection, and pvelab connected again without taking it)? A run
 * that holds it must start nothing more. Always false on SQLite. */
bool pl_state_lock_lost(struct pl_state *s, const char *name);

/*
 * Hosts found by discovery (pvelab discover --save): address, kind, first and
 * last seen, present or vanished, and the host record.
 */
/* Decides whether a scan covered address (arg is the caller's). */
typedef bool (*pl_state_covers_fn)(const char *address, void *arg);
/* Record one scan in one transaction: every host of hosts
 * ([{"address","kind",...}], the whole object kept as its record) is present
 * now; a host present before, not in hosts, whose address covers accepts, is
 * marked vanished. *news gets [{address,kind}] of the hosts not present
 * before, *vanished those marked now (new references). */
int pl_state_discovered_save(struct pl_state *s, const json_t *hosts, pl_state_covers_fn covers,
			     void *arg, json_t **news, json_t **vanished, char **errmsg);
/* Every discovered host: [{address,kind,first_seen,last_seen,present,record}]
 * sorted by address. */
int pl_state_discovered(struct pl_state *s, json_t **out, char **errmsg);

/*
 * API tokens of pvelab serve. The store keeps a SHA-256 of each secret (hex),
 * never the secret; roles are "viewer", "operator" and "admin".
 */
/* Add token name; PL_ECONFLICT when that name exists (revoked ones too).
 * expires: unix seconds, 0 for never. */
int pl_state_token_add(struct pl_state *s, const char *name, const char *role, const char *sha256,
		       double expires, char **errmsg);
/* Every token, sorted by name: [{name,role,created,expires,revoked}]
 * (expires and revoked null when unset); never the hash. */
int pl_state_tokens(struct pl_state *s, json_t **out, char **errmsg);
/* Revoke token name now; PL_ENOENT when there is no such live token. */
int pl_state_token_revoke(struct pl_state *s, const char *name, char **errmsg);
/* The token whose secret hashes to sha256: {name,role,expires,revoked}, or
 * PL_ENOENT. Expiry and revocation are the caller's to judge. */
int pl_state_token_find(struct pl_state *s, const char *sha256, json_t **out, char **errmsg);

/*
 * Health checks' state changes (pvelab serve): one row per change, with the
 * result that made it. At most PL_STATE_CHECK_KEEP rows per check are kept.
 */
#define PL_STATE_CHECK_KEEP 1000
/* Record a change: ev is {"name","ts","from"?,"to",...} (kept whole). It
 * never waits for another process's write lock (the server's loop calls
 * it): PL_ECONFLICT then, and the caller tries again later. */
int pl_state_check_event_add(struct pl_state *s, const json_t *ev, char **errmsg);
/* The newest limit changes of check name (NULL: of every check), newest
 * first: the objects given to pl_state_check_event_add, each with its "id". */
int pl_state_check_events(struct pl_state *s, const char *name, int limit, json_t **out,
			  char **errmsg);
/* Hold the notices of the checks pattern matches until then (Unix time);
 * *id gets the silence's number. */
int pl_state_silence_add(struct pl_state *s, const char *pattern, double until, const char *reason,
			 long long *id, char **errmsg);
/* The silences that hold after now (0: every one), newest first:
 * [{id,pattern,created,until,reason}]. */
int pl_state_silences(struct pl_state *s, double now, json_t **out, char **errmsg);
/* End silence id now; PL_ENOENT when no silence of that number holds. */
int pl_state_silence_end(struct pl_state *s, long long id, char **errmsg);

/*
 * SSH host keys, trusted on first use (migration 9). The signature of
 * pl_state_ssh_trust is core/ssh.h's pl_ssh_hostkey_fn with the store as ctx.
 */
/* Trust host:port's key: record it when the host is new, refresh last_seen
 * when it is the recorded one, refuse (PL_EPERM, a message naming the host
 * and both fingerprints) when it differs. */
int pl_state_ssh_trust(void *state, const char *host, int port, const char *keytype,
		       const char *fingerprint, char **errmsg);
/* The recorded keys: [{host,port,keytype,fingerprint,first_seen,last_seen}]
 * by host, port. */
int pl_state_ssh_hosts(struct pl_state *s, json_t **out, char **errmsg);
/* Forget host:port's key (a host rebuilt on purpose); PL_ENOENT when none. */
int pl_state_ssh_forget(struct pl_state *s, const char *host, int port, char **errmsg);

/*
 * Stacks as last deployed (migration 9): per guest and stack, the stack's
 * hash and its files {"path": {"sha256","mode","text"?}} (text only for files
 * without secrets).
 */
/* Record a deploy, replacing the one before. */
int pl_state_stack_record(struct pl_state *s, long long vmid, const char *stack, const char *sha256,
			  const json_t *files, char **errmsg);
/* Forget the record of vmid's stack (a rollback took the guest back to
 * before it was deployed); none is no error. */
int pl_state_stack_forget(struct pl_state *s, long long vmid, const char *stack, char **errmsg);
/* Every recorded deploy: [{vmid,stack,sha256,files,deployed}] by vmid, stack. */
int pl_state_stacks(struct pl_state *s, json_t **out, char **errmsg);

/*
 * The storages a project owns (migration 11; storage.cfg has no comment to
 * mark them): the one whose apply created a storage or whose import adopted
 * it. One owner per storage; destroy removes only its project's.
 */
/* Record project as storage's owner, replacing any other. */
int pl_state_storage_own(struct pl_state *s, const char *storage, const char *project,
			 char **errmsg);
/* Forget storage's owner (it was deleted); none is no error. */
int pl_state_storage_disown(struct pl_state *s, const char *storage, char **errmsg);
/* {"<storage>": "<project>"} of every owned storage (new reference). */
int pl_state_storage_owners(struct pl_state *s, json_t **out, char **errmsg);

#endif
