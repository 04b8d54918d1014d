/*
 * The simulator's internals shared by its files: the cluster model (nodes,
 * storages, guests, tasks), the per-request context handlers fill in, and
 * the functions the model, the API handlers and the HTTP server call.
 */
#ifndef PL_SIM_INTERNAL_H
#define PL_SIM_INTERNAL_H

#include "core/common.h"

#include <jansson.h>

#include "core/buf.h"
#include "sim/schema.h"
#include "sim/sim.h"

struct event;
struct event_base;
struct evbuffer;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;

struct pl_sim_volume {
	char *volid;   /* "local-lvm:vm-100-disk-0" */
	char *content; /* images, rootdir, iso, vztmpl, backup */
	char *format;  /* raw, subvol, iso, tzst, vma.zst */
	uint64_t size;
	uint32_t vmid; /* 0 when not owned by a guest */
	int64_t ctime;
	int node;      /* node index for local storages, -1 on shared ones */
	json_t *conf;  /* a backup's archive: {"type","config"} as vzdump captured them */
};

struct pl_sim_storage {
	char *id;
	char *type;    /* dir, lvmthin, zfspool, nfs, ... */
	char *content; /* "images,rootdir" */
	char *path;    /* for dir-like storages, or NULL */
	bool shared;
	uint64_t total; /* per node for local storages */
	json_t *nodes;  /* array of node names it is restricted to, or NULL */
	struct pl_sim_volume *vols;
	size_t nvols, capvols;
	json_t *index; /* "volid\x1fnode" -> position in vols */
	json_t *cfg;   /* its other storage.cfg options (server, export, ...) as text */
};

struct pl_sim_node {
	char *name;
	char *ip;
	int cpus;
	uint64_t maxmem;
	uint64_t maxdisk;
	bool online;
	int64_t boot;
	int64_t clock_offset; /* seconds its clock is off (seed: clock_offset) */
	json_t *ifaces;       /* iface -> object (active config) */
	json_t *pending; /* iface -> object, or null for a pending deletion */
};

enum pl_sim_gstatus { PL_SIM_STOPPED, PL_SIM_RUNNING, PL_SIM_PAUSED };

struct pl_sim_guest {
	uint32_t vmid;
	bool lxc;
	int node;
	enum pl_sim_gstatus status;
	json_t *conf;        /* key -> string, as PVE's config file holds it */
	json_t *pending;     /* key -> string: changes waiting for a restart */
	json_t *pending_del; /* array of keys to delete at restart */
	json_t *snaps;       /* array of {name, description, snaptime, vmstate, parent, conf} */
	char *parent;        /* current snapshot the state descends from, or NULL */
	char lock[24];       /* "" when unlocked */
	int64_t started;     /* epoch of the last start */
	char digest[41];
	char *res;           /* cached static part of the /cluster/resources entry */
	size_t reslen;
	struct pl_sim_blob *confbody; /* cached GET .../config answer, or NULL */
	uint64_t confgen;    /* the model generation confbody was built in */
	struct pl_sim_task *holder; /* task holding the config file lock (flock) */
	bool sized;          /* cpus/maxmem/maxdisk below are current */
	int cpus;
	uint64_t maxmem, maxdisk;
	json_t *agent; /* guest agent state (api_guestexec.c), or NULL */
};

struct pl_sim;
struct pl_sim_task;

typedef void (*pl_sim_task_fn)(struct pl_sim *sim, struct pl_sim_task *t);

struct pl_sim_task {
	struct pl_sim *sim;
	char *upid;
	int node;
	char *type;
	char *id;
	char *user;
	int64_t start, end;
	bool running;
	char *exitstatus;
	json_t *log;        /* array of strings */
	uint32_t vmid;      /* guest it holds locked, 0 if none */
	bool unlock;        /* clear the guest's lock when done */
	json_t *args;       /* handler data for done() */
	pl_sim_task_fn done;
	struct event *ev;
};

struct pl_sim_faults {
	double error, timeout, reset, lockwait;
	double noanswer; /* a node's call fails 595, as when PVE's proxy cannot reach it */
	double truncate; /* an answer over 4 KiB breaks off half-way */
	double nextidrace; /* another client creates the VM nextid just answered */
	int latency_ms;
};

struct pl_sim_pending; /* a reply held back (auth delay, latency, timeout) */
struct pl_sim_waiter;  /* a call waiting for a guest's lock file */

struct pl_sim {
	struct event_base *base;
	struct pl_sim_opts opts;
	struct pl_sim_schema *schema;
	const struct pl_sim_method *qemu_conf_m; /* typed output of config values */
	const struct pl_sim_method *lxc_conf_m;
	char *password;
	char *token_secret;
	char *ro_secret;
	unsigned char key[32]; /* ticket / CSRF HMAC key */
	uint64_t rng;
	struct pl_sim_faults faults;
	char *clustername;

	struct pl_sim_node *nodes;
	size_t nnodes;
	struct pl_sim_storage *stores;
	size_t nstores;
	struct pl_sim_guest **guests; /* sorted by vmid */
	size_t nguests, capguests;
	json_t *pools;   /* poolid -> {comment, vms: [vmid...], storage: [...]} */
	json_t *pcimaps; /* PCI mapping id -> {description, map: [...], mdev, ...} */
	json_t *aplinfo; /* array of appliance descriptions */
	json_t *ha;      /* HA: {resources, groups, rules, service} (api_ha.c) */
	json_t *jobs;    /* backup jobs: id -> job (api_backup.c) */
	json_t *fw;      /* firewall: {cluster, nodes, guests} files (api_firewall.c) */
	json_t *access;  /* {roles, users: {id: {password?, tokens}}, acl: [...]} (acl.c) */
	struct pl_sim_task **tasks;
	size_t ntasks;
	uint32_t next_pid;
	int64_t t0;      /* simulator start (epoch) */

	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	void *ssl_ctx;
	char fingerprint[96];
	char url[320];
	struct pl_sim_pending *held;
	struct pl_sim_waiter *waiters; /* calls waiting for a guest's lock file */
	int64_t date_t;  /* the second date was formatted for */
	char date[40];   /* "Sun, 22 Nov 2026 04:54:08 GMT": Date and Expires */
	bool dirty;
	struct event *save_ev;
	uint64_t gen;    /* bumped by every change; keys the response caches */
	struct {
		int64_t t;
		uint64_t gen;
		struct pl_sim_blob *body;
	} rescache[5];   /* /cluster/resources per type, valid within one second */
};

/* A reference-counted response body, sent without copying. */
struct pl_sim_blob {
	int refs;
	size_t len;
	struct pl_sim_blob *gz; /* its gzip form, made on first demand */
	char data[];
};

/* Take over a buffer's contents as a blob with one reference. */
struct pl_sim_blob *pl_sim_blob_from_buf(struct pl_buf *b);
/* The 200 answer {"data": data, ...top} serialised as a blob with one reference
 * (top may be NULL). */
struct pl_sim_blob *pl_sim_blob_from_data(json_t *data, const json_t *top);
struct pl_sim_blob *pl_sim_blob_ref(struct pl_sim_blob *bl);
void pl_sim_blob_unref(struct pl_sim_blob *bl);

/* One API call: what the handler gets and what it answers. */
struct pl_sim_req {
	struct pl_sim *sim;
	const struct pl_sim_method *m;
	const char *path;   /* below /api2/json */
	json_t *params;     /* name -> string (path variables included) */
	const char *user;   /* "root@pam" or "root@pam!pvelab" */
	bool lxc;           /* the route's guest kind (an .../lxc/... path) */
	int op;             /* the route's operation, for handlers serving several */
	int status;
	char *reason;       /* NULL: "OK" / derived from the message */
	json_t *data;
	json_t *errors;
	json_t *top;        /* extra top-level members (total, changes) */
	struct pl_buf raw;  /* a pre-serialised body, used when raw.len > 0 */
	struct pl_sim_blob *blob; /* or a shared one (a reference the request owns) */
	int delay_ms;       /* hold the reply this long */
	uint32_t wait_vmid; /* status PL_SIM_WAIT: retry when this guest's lock is free */
};

/* Handler status: the guest's lock file is held by a running task; the call
 * is retried when it ends and fails with r->reason after --lock-wait-ms. */
#define PL_SIM_WAIT 0

/* --- model (cluster.c) --- */
/* Node by name (NULL) or its index (-1 when unknown). */
struct pl_sim_node *pl_sim_node_find(struct pl_sim *s, const char *name);
int pl_sim_node_index(struct pl_sim *s, const char *name);
/* Storage by id, or NULL. */
struct pl_sim_storage *pl_sim_storage_find(struct pl_sim *s, const char *id);
/* Whether the storage is available on the named node. */
bool pl_sim_storage_on_node(const struct pl_sim_storage *st, const char *node);
/* Guest by VMID (cluster-wide), or NULL. */
struct pl_sim_guest *pl_sim_guest_find(struct pl_sim *s, uint32_t vmid);
/* A new empty guest; NULL if the VMID is taken. */
struct pl_sim_guest *pl_sim_guest_add(struct pl_sim *s, uint32_t vmid, bool lxc, int node);
/* Remove a guest with its disks (and, with purge, its other volumes but its backups). */
void pl_sim_guest_remove(struct pl_sim *s, uint32_t vmid, bool purge_disks);
/* Recompute the digest and drop cached serialisations after a change. */
void pl_sim_guest_touch(struct pl_sim *s, struct pl_sim_guest *g);
/* The lowest free VMID from 100. */
uint32_t pl_sim_nextid(struct pl_sim *s);
/* Add a volume to a storage (node ignored on shared ones); returns it. */
struct pl_sim_volume *pl_sim_volume_add(struct pl_sim_storage *st, const char *volid,
					const char *content, const char *format, uint64_t size,
					uint32_t vmid, int node);
/* A volume by "storage:name" seen from node (-1: any node), or NULL. */
struct pl_sim_volume *pl_sim_volume_find(struct pl_sim *s, const char *volid, int node,
					 struct pl_sim_storage **st_out);
/* Rebuild a storage's volume index after renaming or moving volumes. */
void pl_sim_storage_reindex(struct pl_sim_storage *st);
/* SHA-1 in hex of bytes, or of a JSON value's canonical form: the digests
 * of PVE's config files. */
void pl_sim_sha1_hex(const void *data, size_t len, char out[41]);
void pl_sim_sha1_json(const json_t *v, char out[41]);
/* A comma list without item (PVE::Tools::split_list, joined by ','): a new
 * string, "" when nothing is left. */
char *pl_sim_list_without(const char *list, const char *item);
/* Free a storage's volumes and fields (the struct itself stays). */
void pl_sim_storage_release(struct pl_sim_storage *st);
/* storage.cfg options of a seeded storage (api_storecfg.c): the type's options
 * from the seed entry, defaults for its fixed ones; and back into a dump. */
void pl_sim_storecfg_seed(struct pl_sim_storage *st, const json_t *seed);
void pl_sim_storecfg_dump(const struct pl_sim_storage *st, json_t *o);
/* Delete a volume if it exists. */
void pl_sim_volume_del(struct pl_sim *s, const char *volid, int node);
/* Bytes used on a storage as seen from a node. */
uint64_t pl_sim_storage_used(const struct pl_sim_storage *st, int node);
/* Allocate the disks a config value asks for ("local-lvm:32" -> a volume).
 * Returns the rewritten value (caller frees), or NULL with *err; *nospace
 * (when given) is set when the storage had no room, an error PVE meets in
 * its worker. */
char *pl_sim_disk_alloc(struct pl_sim *s, struct pl_sim_guest *g, const char *key,
			const char *value, char **err, bool *nospace);
/* Give net devices without a MAC one ("virtio,bridge=vmbr0"). Caller frees. */
char *pl_sim_net_fill(struct pl_sim *s, struct pl_sim_guest *g, const char *key,
		      const char *value);
/* Random numbers from the simulator's generator (deterministic with --rng-seed):
 * 64 bits, or a double in [0,1). */
uint64_t pl_sim_rand(struct pl_sim *s);
double pl_sim_rand01(struct pl_sim *s);
/* An object of text values typed as method m's parameters declare them
 * (integers and booleans as numbers), as PVE's API answers them. */
json_t *pl_sim_typed(const struct pl_sim_method *m, const json_t *obj);
/* The config as PVE's GET .../config returns it (numbers typed). */
json_t *pl_sim_conf_json(struct pl_sim *s, const struct pl_sim_guest *g, const json_t *conf);
/* The `boot` value qemu-server's create gives a VM without one
 * (get_default_bootdevices: first disk, first CD-ROM, first NIC), or NULL
 * when it has none of them. Caller frees. */
char *pl_sim_default_boot(const json_t *conf);
/* Usage figures of a guest at time now. */
struct pl_sim_usage {
	double cpu;
	uint64_t mem, maxmem, disk, maxdisk, netin, netout, diskread, diskwrite;
	int64_t uptime;
	int cpus;
};
/* A guest's figures at time now (zero activity when stopped). */
void pl_sim_guest_usage(struct pl_sim *s, const struct pl_sim_guest *g, int64_t now,
			struct pl_sim_usage *u);
/* A node's figures: its running guests summed. */
void pl_sim_node_usage(struct pl_sim *s, int node, int64_t now, struct pl_sim_usage *u);
/* All nodes at once (one pass over the guests); u has nnodes entries. */
void pl_sim_nodes_usage(struct pl_sim *s, int64_t now, struct pl_sim_usage *u);
/* Put a template, ISO or backup volume on every node that has its storage. */
int pl_sim_add_template(struct pl_sim *s, const char *volid, uint64_t size, char **errmsg);
/* --- seeds and state (seed.c) --- */
/* Build the cluster from a seed document (docs/sim.md). */
int pl_sim_seed_load(struct pl_sim *s, const json_t *seed, char **errmsg);
/* Build a generated cluster of nodes and guests. */
int pl_sim_generate(struct pl_sim *s, int nodes, int guests, char **errmsg);
/* The seed's day-2 configuration: HA (api_ha.c), backup jobs (api_backup.c),
 * firewall (api_firewall.c); and their part of the state (new references,
 * NULL when there is nothing). */
int pl_sim_ha_seed(struct pl_sim *s, const json_t *ha, char **errmsg);
json_t *pl_sim_ha_dump(struct pl_sim *s);
int pl_sim_jobs_seed(struct pl_sim *s, const json_t *jobs, char **errmsg);
json_t *pl_sim_jobs_dump(struct pl_sim *s);
int pl_sim_fw_seed(struct pl_sim *s, const json_t *fw, char **errmsg);
json_t *pl_sim_fw_dump(struct pl_sim *s);
/* The whole cluster in the seed format (new reference). */
json_t *pl_sim_state_dump(struct pl_sim *s);
/* Write the state file atomically (no-op without --state-file). */
int pl_sim_state_save(struct pl_sim *s, char **errmsg);
/* Free nodes, storages and guests. */
void pl_sim_model_free(struct pl_sim *s);

/* --- tasks (task.c) --- */
/* Start a task of --task-ms on node; done() runs when it ends (args is
 * taken); a vmid makes the end clear that guest's lock. */
struct pl_sim_task *pl_sim_task_start(struct pl_sim *s, int node, const char *type,
				      const char *id, const char *user, uint32_t vmid,
				      pl_sim_task_fn done, json_t *args);
/* Task by UPID, or NULL. */
struct pl_sim_task *pl_sim_task_find(struct pl_sim *s, const char *upid);
/* Append a line to the task log. */
void pl_sim_task_log(struct pl_sim_task *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* End a task with an error instead of OK. */
void pl_sim_task_fail(struct pl_sim_task *t, const char *msg);
/* The worker dies: the task runs its time, has no effect and ends with the
 * error (PVE's message, also its last log line), as PVE reports what its
 * workers find (a lock, a missing volume, a full storage). */
void pl_sim_task_doom(struct pl_sim_task *t, const char *msg);
/* Make a running task end MS from now instead. */
void pl_sim_task_run_for(struct pl_sim_task *t, long ms);
/* Kill a running task as PVE does (SIGTERM): it ends at once with WHY (its
 * worker's word: "received interrupt", or "interrupted by signal" from
 * workers that trap it), its effect not applied, its guest's lock released. */
void pl_sim_task_abort(struct pl_sim_task *t, const char *why);
/* Free all tasks (their timers too). */
void pl_sim_tasks_free(struct pl_sim *s);
/* The task as GET .../tasks/{upid}/status shows it. */
json_t *pl_sim_task_json(const struct pl_sim_task *t);

/* --- API handlers (api*.c) --- */
/* Bind the handler table to the schema's methods. */
void pl_sim_api_bind(struct pl_sim *s);
/* Run the handler of r->m; fills r's response. */
void pl_sim_api_call(struct pl_sim_req *r);
/* Answer 200 with data (taken). */
void pl_sim_ok(struct pl_sim_req *r, json_t *data);
/* Answer an error; the message's first line becomes the reason phrase. */
void pl_sim_fail(struct pl_sim_req *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Answer 400 Parameter verification failed. with one more per-parameter error. */
void pl_sim_param_fail(struct pl_sim_req *r, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* --- replies (reply.c) --- */
/* Add the headers PVE's daemon sends (Server, Cache-Control, Expires; the
 * JSON content type when json). */
void pl_sim_std_headers(struct pl_sim *s, struct evhttp_request *req, bool json);
/* Send now or after delay_ms (reset: close the connection instead); takes
 * body. The reason phrase is the first line of reason. */
void pl_sim_reply(struct pl_sim *s, struct evhttp_request *req, int status, const char *reason,
		  struct evbuffer *body, int delay_ms, bool reset);
/* An error answer {"data":null,"message":msg[,"errors":errors]}. */
void pl_sim_reply_json(struct pl_sim *s, struct evhttp_request *req, int status, const char *msg,
		       json_t *errors, int delay_ms);
/* 401 from the auth handler: reason phrase only, empty body, delayed. */
void pl_sim_reply_401(struct pl_sim *s, struct evhttp_request *req, const char *msg);
/* Send a handled call's answer (gzip and the truncate fault included). */
void pl_sim_send_result(struct pl_sim *s, struct evhttp_request *req, struct pl_sim_req *r,
			int delay);
/* Send every held reply now. */
void pl_sim_held_flush(struct pl_sim *s);

/* --- authentication (auth.c) --- */
/* The user of a valid ticket (caller frees), or NULL. */
char *pl_sim_ticket_check(struct pl_sim *s, const char *ticket);
/* Whether token is a valid CSRF token of user. */
bool pl_sim_csrf_check(struct pl_sim *s, const char *user, const char *token);
/* Value of NAME in a cookie/authorization header (caller frees), or NULL. */
char *pl_sim_auth_value(const char *hdr, const char *name);
/* Whether an API token value is "ID=SECRET". */
bool pl_sim_token_is(const char *value, const char *id, const char *secret);
/* Answer POST /access/ticket: a ticket and CSRF token, or 401. */
void pl_sim_login(struct pl_sim *s, struct evhttp_request *req, json_t *params);

/* --- access control (acl.c) --- */

/* The built-in users, tokens and ACLs: root@pam!pvelab (no privilege
 * separation) and audit@pve!ro (separated, PVEAuditor on /). */
void pl_sim_access_init(struct pl_sim *s);
/* Seed section "access": users (with tokens) and acl entries. */
int pl_sim_access_seed(struct pl_sim *s, const json_t *access, char **errmsg);
/* Add a token (value NULL: a random one); its value, or NULL for no such user. */
const char *pl_sim_access_add_token(struct pl_sim *s, const char *user, const char *tok,
				    bool privsep, const char *value);
void pl_sim_access_add_acl(struct pl_sim *s, const char *path, const char *ugid, const char *role,
			   bool propagate);
bool pl_sim_access_token_known(struct pl_sim *s, const char *id);
/* What the state file keeps of access control (new reference). */
json_t *pl_sim_access_saved(struct pl_sim *s);
/* Whether user is a member of group (acl_admin.c). */
bool pl_sim_access_in_group(struct pl_sim *s, const char *group, const char *user);
/* Put user in the listed groups (append: keep the others); false with the
 * request answered when a group does not exist. */
bool pl_sim_access_set_groups(struct pl_sim_req *r, const char *user, const char *list,
			      bool append);
/* The token id an Authorization "PVEAPIToken" value names (caller frees), or NULL. */
char *pl_sim_access_token_auth(struct pl_sim *s, const char *value);
bool pl_sim_access_password_ok(struct pl_sim *s, const char *user, const char *pw);
/* Privileges (priv -> true) of a user or token on a path (caller decrefs). */
json_t *pl_sim_access_privs(struct pl_sim *s, const char *auth, const char *path);
bool pl_sim_access_can(struct pl_sim *s, const char *auth, const char *path, const char *priv);
/* Storage lists (pve-storage's Config and Status index): a storage is listed
 * with Datastore.Audit or Datastore.AllocateSpace on /storage/ID. */
bool pl_sim_storage_listed(struct pl_sim *s, const char *auth, const char *id);
/* A method's permissions object checked for auth: NULL, or the 403 message. */
char *pl_sim_access_check(struct pl_sim *s, const json_t *perm, const char *auth,
			  const json_t *params);
/* Whether list answers are filtered for this caller (anyone but root@pam and
 * its unseparated tokens). */
bool pl_sim_access_filtered(struct pl_sim *s, const char *auth);
/* A pool member's VMID (numbers, or strings from a seed) (api.c). */
uint32_t pl_sim_member_vmid(const json_t *mem);
/* The pool guest vmid is a member of, or NULL (api.c). */
const char *pl_sim_guest_pool(struct pl_sim *s, uint32_t vmid);
/* Whether who (NULL: anyone) has VM.Audit on /vms/VMID (api.c). */
bool pl_sim_vm_visible(struct pl_sim *s, const char *who, uint32_t vmid);

/* --- HTTP (server.c) --- */
/* A task holding vmid's lock file ended: retry the calls waiting for it. */
void pl_sim_lock_released(struct pl_sim *s, uint32_t vmid);
/* Listen on --listen (TLS unless --no-tls) and parse --faults. */
int pl_sim_server_start(struct pl_sim *s, char **errmsg);
/* Answer held replies, close the listener and connections. */
void pl_sim_server_stop(struct pl_sim *s);

#endif
