/*
 * The glue between the front-end and the client/state layers: where the API
 * is (PVELAB_* environment first, then the `cluster:` section of pvelab.yaml,
 * or the one of `clusters:` the command works on) and where the state
 * database lives (PVELAB_STATE, `state:`, beside the config; one per cluster).
 */
#ifndef PL_CMD_CONNECT_H
#define PL_CMD_CONNECT_H

#include "core/common.h"
#include "cmd/cmd.h"

#include <jansson.h>

struct event_base;
struct pl_config;
struct pl_pve;
struct pl_state;

#define PL_NEED_API 0x1      /* an API client */
#define PL_NEED_STATE 0x2    /* the state store, created if missing */
#define PL_NEED_STATE_RO 0x4 /* an existing state store, read-only */
#define PL_NEED_STATE_IF 0x8 /* an existing state store, to write to (none made) */

struct pl_session {
	struct pl_ctx *ctx;
	struct pl_config *cfg; /* NULL without a config file */
	struct event_base *base;
	struct pl_pve *pve;
	struct pl_state *state;
	char *state_path;
	bool base_borrowed; /* base is another session's (pl_session_open_on) */
};

/* The clusters a read command covers, one session each, and how many:
 * every one of the config's clusters: (in the file's order) when it has
 * several and --cluster is not given, else one NULL entry (the command's one
 * pass as ever). *names is the caller's (pl_cmd_clusters_free); more than
 * one: each row says which cluster it is of. */
size_t pl_cmd_clusters(struct pl_ctx *ctx, char ***names);
void pl_cmd_clusters_free(char **names, size_t n);
/* For a read of one GUEST (vmid or name) over several clusters: the one
 * whose state knows it, into *cluster (the caller's) and ctx->cluster (a
 * copy of the command's context, to open the session with); *cluster NULL
 * when there is one cluster or --cluster chose. Else *errmsg: in two, or in
 * none. */
int pl_cmd_guest_cluster(struct pl_ctx *ctx, const char *guest, char **cluster, char **errmsg);

/* Where the state database lives (pl_state_path with the config's `state:`
 * key; the config is read when there is one): *path is the caller's. */
int pl_cmd_state_path(struct pl_ctx *ctx, char **path, char **errmsg);
/* Where pvelab keeps its local files for this config (pl_state_local_dir:
 * the state file's directory, or for PostgreSQL the one beside the config):
 * *dir is the caller's. */
int pl_cmd_local_dir(struct pl_ctx *ctx, char **dir, char **errmsg);
/* The same for an open session. Caller frees. */
char *pl_session_local_dir(struct pl_session *s);
/* Open what need asks for. On failure the message is one line for the user. */
int pl_session_open(struct pl_session *s, struct pl_ctx *ctx, unsigned need, char **errmsg);
/* Open ctx's state store and API client on base, the loop of another
 * session (a command over several clusters runs them all on one loop);
 * pl_session_close leaves base alone. */
int pl_session_open_on(struct pl_session *s, struct pl_ctx *ctx, struct event_base *base,
		       char **errmsg);
/* Keep what sessions open — the event loop, the API client (while its
 * settings stay the same) and the state store (while its path does) — for
 * the next sessions of this process, until pl_session_keep_end: `pvelab
 * console` runs its commands on one connection and one store. */
void pl_session_keep_begin(void);
void pl_session_keep_end(void);
/* The kept event loop and API client (NULL before a command opened one). */
struct event_base *pl_session_kept_base(void);
struct pl_pve *pl_session_kept_pve(void);
/* Close the kept API client (its pending callbacks never run); the next
 * session connects again. */
void pl_session_keep_drop_api(void);
/* Open the API client later (e.g. for --live). */
int pl_session_api(struct pl_session *s, char **errmsg);
void pl_session_close(struct pl_session *s);

/* Open the state for a read command; with live, sync into it first. */
int pl_session_read(struct pl_session *s, struct pl_ctx *ctx, bool live, char **errmsg);

struct pl_state_counts;
/* Sync the cluster into s->state (sync.c; also behind --live). snap_out and
 * changes are optional new references. */
int pl_cmd_sync_now(struct pl_session *s, bool dry_run, bool show_progress,
		    struct pl_state_counts *cnt, json_t **changes, json_t **snap_out, char **errmsg);
/* The same on the session's loop: returns at once (NULL with *errmsg when
 * there is no API client), cb runs once from the loop with the counts, the
 * changes and the snapshot (borrowed; NULL on error), the run's id and how
 * many guests were not read. counters: as pl_state_sync_counters. */
struct pl_cmd_sync_job;
typedef void (*pl_cmd_sync_cb)(int err, const struct pl_state_counts *cnt, json_t *changes,
			       json_t *snap, long long run_id, size_t unread, const char *errmsg,
			       void *arg);
struct pl_cmd_sync_job *pl_cmd_sync_start(struct pl_session *s, bool dry_run, bool show_progress,
					  bool counters, pl_cmd_sync_cb cb, void *arg,
					  char **errmsg);
/* Stop a sync before its cb: nothing of it is recorded. */
void pl_cmd_sync_cancel(struct pl_cmd_sync_job *j);
/* The cluster's guests as PVE lists them now (GET /cluster/resources?type=vm):
 * *guests is a new reference. */
int pl_session_live_guests(struct pl_session *s, json_t **guests, char **errmsg);
/* Find GUEST (vmid or name) among guests; on failure *errmsg names the
 * closest names. Returns the borrowed object or NULL. */
const json_t *pl_guest_lookup(const json_t *guests, const char *guest, char **errmsg);
/* Find GUEST (vmid or name) in the state: *g is a new reference to it as last
 * synced, or *errmsg says why not (naming the closest names). */
int pl_session_guest(struct pl_session *s, const char *guest, json_t **g, char **errmsg);
/* The snapshots of guest g (an object with node, type, vmid) from its node,
 * without PVE's "current" pseudo-entry: *list is a new reference. */
int pl_session_snapshots(struct pl_session *s, const json_t *g, json_t **list, char **errmsg);

#endif
