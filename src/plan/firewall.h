/*
 * The Proxmox firewall as code (docs/firewall.md): what the config's
 * `firewall:` sections and guests' `firewall:` keys need read from the
 * cluster, the plan's firewall changes (rule-level diffs, and the API calls
 * that make the live lists equal to the declared ones, with PVE's `pos`
 * semantics), and the YAML of what is live (import).
 */
#ifndef PL_PLAN_FIREWALL_H
#define PL_PLAN_FIREWALL_H

#include "core/common.h"

#include <jansson.h>

struct pl_config;
struct pl_pve;

/* Read the firewall lists and options into snap["firewall"] = {API path:
 * answer}. With cfg: what the config declares (the cluster's sections, its
 * nodes', and those of declared guests found in snap). With all (import):
 * every cluster list, group and IP set, and the lists of the guests in
 * vmids ({"<vmid>": true}, or NULL). A path that answers 4xx is left out
 * (it does not exist); any other failure is an error. cb once, from the
 * loop; err and errmsg (borrowed) say why. */
struct pl_fw_fetch;
typedef void (*pl_fw_cb)(int err, const char *errmsg, void *arg);
struct pl_fw_fetch *pl_fw_fetch_start(struct pl_pve *c, const struct pl_config *cfg, bool all,
				      const json_t *vmids, json_t *snap, pl_fw_cb cb, void *arg);
/* The same for the whole of each scope in scopes (see pl_fw_scope_paths):
 * every list of it, every group and IP set of the cluster's. */
struct pl_fw_fetch *pl_fw_fetch_scopes_start(struct pl_pve *c, const json_t *scopes, json_t *snap,
					     pl_fw_cb cb, void *arg);
int pl_fw_fetch_scopes(struct pl_pve *c, const json_t *scopes, json_t *snap, char **errmsg);
/* No callback after this; the handle goes once the calls in flight answer. */
void pl_fw_fetch_cancel(struct pl_fw_fetch *f);
/* The same, the client's loop run until done. */
int pl_fw_fetch(struct pl_pve *c, const struct pl_config *cfg, bool all, const json_t *vmids,
		json_t *snap, char **errmsg);

/*
 * Append the firewall changes of cfg against snap to changes: one per scope
 * ({"action":"firewall","scope":"cluster|node|guest","guest": what it is
 * for,"what","node","vmid","type","class":"live","diffs","calls","digests"}),
 * after the guest changes that are already in changes (a guest created by
 * this plan gets its firewall from them). "calls" are the API calls in
 * order ({"method","path","params","list"}: "list" is the path whose
 * digest the call carries, read just before it); "digests" the digest of
 * each list the plan saw, which apply checks before it writes anything.
 * Guests named in blocked are left alone; a node firewall.nodes names that is
 * not an online node of snap is added to blocked. With only ({name: true},
 * a profile's guests): those guests' firewall, and the datacenter's aliases,
 * IP sets and groups when one of them declares a firewall (what its rules may
 * name); no node's, not the datacenter's rules and options.
 */
void pl_fw_plan(const struct pl_config *cfg, const json_t *snap, const json_t *only,
		json_t *changes, json_t *blocked);

/* PVE's digest of a list or options answer ("" for an empty list). */
const char *pl_fw_digest_of(const json_t *data);

/* The `firewall:` YAML of a live guest's options and rules (NULL when it
 * has neither) and of the cluster's (snap as pl_fw_fetch with all fills it).
 * New references. */
json_t *pl_fw_guest_yaml(const json_t *snap, const char *node, const char *type, long long vmid);
json_t *pl_fw_cluster_yaml(const json_t *snap);

/*
 * A scope's recorded state (firewall_state.c). A scope is an object with
 * "scope" ("cluster", "node", "guest"), "node", "type" and "vmid" (a
 * firewall change, or a run result's "history" entry). Its state is every
 * list of it (options and rules; the cluster's also aliases, groups with
 * their rules and IP sets with their entries), projected and without
 * digests: two states are equal exactly when the lists are.
 */
/* The history key: "firewall:cluster", "firewall:node:N", "firewall:guest:VMID". */
char *pl_fw_scope_key(const json_t *scope);
/* The lists to read for its state (new array); once read, the group and IP
 * set lists name more (pl_fw_members). */
json_t *pl_fw_scope_paths(const json_t *scope);
/* A guest's firewall change planned for a guest whose vmid apply assigns
 * ("vmid_at_apply", its paths under .../0/firewall), for that vmid: a copy. */
json_t *pl_fw_change_for_vmid(const json_t *change, long long vmid);
/* The member paths a list's answer names (groups', IP sets'), else []. */
json_t *pl_fw_members(const char *path, const json_t *data);
/* The state of scope from the answers read ({path: answer}). New reference. */
json_t *pl_fw_scope_state(const json_t *scope, const json_t *reads);
/* Two states' differences for people: [{"key","old","new"}] (a rule moved
 * or changed is one removed and one added, each with its position). */
json_t *pl_fw_state_diff(const json_t *from, const json_t *to);
/* The change (as pl_fw_plan's, with "undo": true) that puts the scope of
 * hist (a run result's history entry: scope, "before", "after") back to
 * its state before the run, planned against reads (its lists now) and
 * carrying their digests. NULL when nothing is to be done, or with *why
 * (caller frees) when the scope is not as the run left it (it changed
 * behind the run's back since), or when the cluster's would delete a
 * group, IP set or alias named in uses: it is left alone. */
json_t *pl_fw_undo(const json_t *hist, const json_t *reads, const json_t *uses, char **why);
/* Add to uses each group, IP set and alias rules (an API answer) name:
 * name -> user. */
void pl_fw_uses(const json_t *rules, const char *user, json_t *uses);

#endif
