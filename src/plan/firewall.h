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
 * not an online node of snap is added to blocked.
 */
void pl_fw_plan(const struct pl_config *cfg, const json_t *snap, json_t *changes, json_t *blocked);

/* PVE's digest of a list or options answer ("" for an empty list). */
const char *pl_fw_digest_of(const json_t *data);

/* The `firewall:` YAML of a live guest's options and rules (NULL when it
 * has neither) and of the cluster's (snap as pl_fw_fetch with all fills it).
 * New references. */
json_t *pl_fw_guest_yaml(const json_t *snap, const char *node, const char *type, long long vmid);
json_t *pl_fw_cluster_yaml(const json_t *snap);

#endif
