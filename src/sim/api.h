/*
 * What the simulator's API handler files share: their route tables and the
 * request helpers (parameters, node and guest lookup, task replies).
 */
#ifndef PL_SIM_API_H
#define PL_SIM_API_H

#include "core/common.h"

#include <jansson.h>

#include "sim/internal.h"

struct pl_sim_route_def {
	enum pl_sim_meth meth;
	const char *path; /* NULL ends a table */
	pl_sim_handler fn;
	bool lxc; /* the guest kind the path is for: the handler reads r->lxc */
	int op;   /* the handler's operation, in r->op (e.g. which power action) */
};

/* Route tables of the api_*.c handler files. */
extern const struct pl_sim_route_def pl_sim_guest_routes[];
extern const struct pl_sim_route_def pl_sim_power_routes[];
extern const struct pl_sim_route_def pl_sim_snapshot_routes[];
extern const struct pl_sim_route_def pl_sim_clone_routes[];
extern const struct pl_sim_route_def pl_sim_agent_routes[];
extern const struct pl_sim_route_def pl_sim_storage_routes[];
extern const struct pl_sim_route_def pl_sim_pool_routes[];
extern const struct pl_sim_route_def pl_sim_access_routes[];
extern const struct pl_sim_route_def pl_sim_access_admin_routes[];
extern const struct pl_sim_route_def pl_sim_nodetime_routes[];
extern const struct pl_sim_route_def pl_sim_feature_routes[];
extern const struct pl_sim_route_def pl_sim_storecfg_routes[];
extern const struct pl_sim_route_def pl_sim_ha_routes[];
extern const struct pl_sim_route_def pl_sim_harules_routes[];
extern const struct pl_sim_route_def pl_sim_backup_routes[];
extern const struct pl_sim_route_def pl_sim_firewall_routes[];
extern const struct pl_sim_route_def pl_sim_fwsets_routes[];
extern const struct pl_sim_route_def pl_sim_guestexec_routes[];
extern const struct pl_sim_route_def pl_sim_mapping_routes[];

/* A parameter as text, or NULL. */
const char *pl_sim_p(const struct pl_sim_req *r, const char *name);
/* A boolean / integer parameter, or dflt when absent. */
bool pl_sim_pbool(const struct pl_sim_req *r, const char *name, bool dflt);
long long pl_sim_pint(const struct pl_sim_req *r, const char *name, long long dflt);
/* The node named by the "node" parameter; -1 with the failure set. */
int pl_sim_req_node(struct pl_sim_req *r);
/* Answer with the task's UPID. */
void pl_sim_ok_task(struct pl_sim_req *r, struct pl_sim_task *t);
/* /nodes and /cluster/resources entry of a node. */
json_t *pl_sim_node_entry(struct pl_sim *s, int node, int64_t now);
/* /nodes/{node}/storage entry. */
json_t *pl_sim_storage_entry(struct pl_sim *s, struct pl_sim_storage *st, int node);
/* rrddata series of a guest (g) or a node (g NULL). */
json_t *pl_sim_rrd(struct pl_sim *s, const struct pl_sim_guest *g, int node,
		   const char *timeframe);
/* Why a VM on node cannot start with this hostpci value (caller frees): its
 * "mapping=NAME" has no device on the node; NULL when it can. */
char *pl_sim_pcimap_missing(struct pl_sim *s, const char *hostpci, const char *node);
/* Pool membership. */
int pl_sim_pool_add(struct pl_sim *s, const char *pool, uint32_t vmid, char **err);
void pl_sim_pool_forget(struct pl_sim *s, uint32_t vmid);

/* --- status answers (status.c) --- */
/* A guest's entry in GET /nodes/{node}/qemu|lxc (full: the list's full=1,
 * QEMU asked for blockstat, nics, balloon...) or, with current, its
 * GET .../status/current (full, plus ha, spice, agent). */
json_t *pl_sim_guest_status(struct pl_sim *s, const struct pl_sim_guest *g, bool full,
			    bool current);
/* A running VM's memory use seen from the host (memhost; 0 for containers). */
uint64_t pl_sim_memhost(const struct pl_sim_guest *g, const struct pl_sim_usage *u);
/* A network interface as GET /nodes/{node}/network shows it (new reference):
 * the fields PVE's reader fills in (method6, families, netmask, bridge_stp...). */
json_t *pl_sim_iface_out(const json_t *iface);

/* --- guests (api_guest.c), shared by the guest handler files --- */
/* "VM" or "CT", as PVE's messages name a guest. */
#define PL_SIM_GT(g) ((g)->lxc ? "CT" : "VM")
/* The guest named by the "node" and "vmid" parameters, of the route's kind;
 * NULL with PVE's "Configuration file ... does not exist" set. */
struct pl_sim_guest *pl_sim_req_guest(struct pl_sim_req *r, bool lxc);
/* A running task holds the guest's lock file (as PVE's power operations do
 * for their whole run): the call waits for it, then runs again. */
bool pl_sim_flock_busy(struct pl_sim_req *r, struct pl_sim_guest *g);
/* PVE's check_lock (skiplock honoured) and the lockwait fault; false with
 * the failure set. */
bool pl_sim_check_lock(struct pl_sim_req *r, struct pl_sim_guest *g);
/* skiplock is root@pam's alone (PVE's "Only root may use this option.");
 * false with the 400 set. */
bool pl_sim_skiplock_ok(struct pl_sim_req *r);
/* PVE::AbstractConfig::check_lock's message of a locked guest ("VM is
 * locked (backup)"), or NULL when unlocked or skiplock is given. */
char *pl_sim_lock_refusal(struct pl_sim_req *r, const struct pl_sim_guest *g);
/* A volume of the guest's config that its start could not activate (its
 * storage not on the guest's node: storage_check_enabled; gone from it:
 * PVE::Storage::Plugin::activate_volume), PVE's message (caller frees), or
 * NULL. */
char *pl_sim_missing_volume(struct pl_sim *s, const struct pl_sim_guest *g);
/* The lockwait fault alone (--faults lockwait=P); false with the failure set. */
bool pl_sim_check_lock_fault(struct pl_sim_req *r, struct pl_sim_guest *g);
/* Set (or clear, with "") a guest's config lock. */
void pl_sim_set_lock(struct pl_sim *s, struct pl_sim_guest *g, const char *lock);
/* A random UUID from the simulator's generator. */
void pl_sim_gen_uuid(struct pl_sim *s, char out[37]);
/* Answer with the UPID of a task (of type, on node) that fails with msg, as
 * PVE reports what its worker meets; clears r's failure. */
void pl_sim_fail_task(struct pl_sim_req *r, int node, const char *type, const char *msg);
/* pl_sim_conf_value's failure that PVE meets in its worker (a storage
 * without room): create and clone report it as a failed task. */
#define PL_SIM_IN_WORKER 1
/* Set one config value, allocating disks and filling MACs: 0, or -1 or
 * PL_SIM_IN_WORKER with the failure set. */
int pl_sim_conf_value(struct pl_sim_req *r, struct pl_sim_guest *g, json_t *into, const char *k,
		      const char *v);
/* A snapshot by name (its position in *idx when idx is not NULL), or NULL. */
json_t *pl_sim_snap_find(struct pl_sim_guest *g, const char *name, size_t *idx);
/* Whether a config key holds a volume (a disk, not a CD-ROM or "none"). */
bool pl_sim_is_volume_key(const struct pl_sim_guest *g, const char *key, const char *value);
/* Why a guest's volumes cannot be snapshotted ("scsi0 is a raw volume on
 * dir storage 'local'"; caller frees), or NULL when they can: the rule of
 * model/wayback.h on the simulator's storages (api_feature.c). */
char *pl_sim_snapshot_blocker(struct pl_sim *s, const struct pl_sim_guest *g);
/* A task's done() that changes nothing when the task ends. */
void pl_sim_noop_done(struct pl_sim *s, struct pl_sim_task *t);
/* Apply the pending changes and deletions to the config (as a start does). */
void pl_sim_apply_pending(struct pl_sim *s, struct pl_sim_guest *g);

/* --- cluster configuration (api_backup.c, api_ha.c, api_firewall.c) --- */

/* --- HA (api_ha.c) --- */
enum { PL_SIM_HA_START, PL_SIM_HA_STOP, PL_SIM_HA_SHUTDOWN };
/* A start, stop or shutdown (PL_SIM_HA_*; -1: none of them) of an HA-managed
 * guest becomes an HA request (task hastart/hastop): true when the call is
 * answered so, false when the guest is not HA managed. */
bool pl_sim_ha_power(struct pl_sim_req *r, struct pl_sim_guest *g, int what);
/* The guest's hastate in /cluster/resources, or NULL when not HA managed. */
const char *pl_sim_ha_state(struct pl_sim *s, const struct pl_sim_guest *g);
/* qemu-server's and pve-container's destroy: refused (500 set, true) for an
 * HA-managed guest without purge. */
bool pl_sim_ha_destroy_refused(struct pl_sim_req *r, struct pl_sim_guest *g);
/* A guest was destroyed: its firewall file goes (remove_vmfw_conf); with
 * purge it also leaves the backup jobs (remove_vmid_from_backup_jobs) and
 * HA (delete_service_from_config). */
void pl_sim_cluster_forget(struct pl_sim *s, uint32_t vmid, bool lxc, bool purge);
void pl_sim_fw_forget(struct pl_sim *s, uint32_t vmid);
void pl_sim_jobs_forget(struct pl_sim *s, uint32_t vmid);
/* A node's hastate in /cluster/resources, or NULL while HA is unused. */
const char *pl_sim_ha_node_state(struct pl_sim *s, int node);
/* The "ha" member of a guest's status/current: PVE::HA::Config::
 * get_service_status ({managed: 0}, or {managed: 1, state}). New reference. */
json_t *pl_sim_ha_status_json(struct pl_sim *s, const struct pl_sim_guest *g);

#endif
