/*
 * What the firewall's files share (api_firewall.c, api_fwsets.c,
 * fw_check.c): the config files, PVE's list digests and the rule checks.
 */
#ifndef PL_SIM_FW_H
#define PL_SIM_FW_H

#include "core/common.h"

#include <jansson.h>

#include "sim/internal.h"

/* Route operations: the scope of the config file, and whether the rules are
 * a security group's. */
enum { FW_CLUSTER = 0, FW_NODE = 1, FW_GUEST = 2, FW_GROUP = 4 };

/* The member object (array) key of o, created empty when missing. */
json_t *pl_sim_fw_sub(json_t *o, const char *key);
json_t *pl_sim_fw_subarr(json_t *o, const char *key);
/* cluster.fw */
json_t *pl_sim_fw_cluster(struct pl_sim *s);
/* The file a request is about (cluster.fw, host.fw, <vmid>.fw) and the rule
 * environment of its rules; NULL with the failure set. */
json_t *pl_sim_fw_file(struct pl_sim_req *r, const char **env);
/* PVE::Firewall::copy_list_with_digest's digest of a list. */
void pl_sim_fw_list_digest(const json_t *list, char out[41]);
/* The digest parameter matches the list's; false with the failure set. */
bool pl_sim_fw_digest_ok(struct pl_sim_req *r, const json_t *list);
/* The list typed as tmpl_path's POST declares it, each entry with the list's
 * digest (and its pos). */
json_t *pl_sim_fw_list_out(struct pl_sim_req *r, const json_t *list, const char *tmpl_path,
			   bool pos);
/* A new alias entry {name, cidr, ipversion, comment}. */
json_t *pl_sim_fw_alias_new(const char *name, const char *cidr, const char *comment);
/* Set (alias taken) or, with NULL, delete a file's alias; keys are lower-case. */
void pl_sim_fw_alias_set(json_t *file, const char *name, json_t *alias);
/* Lower-case a string in place. */
void pl_sim_fw_lower(char *s);

/* --- rule checks (fw_check.c) --- */
/* 4 or 6 for an address, CIDR or range; 0 when invalid. */
int pl_sim_fw_ipver(const char *txt);
/* Whether s is a valid alias / IP set / group name. */
bool pl_sim_fw_is_name(const char *s);
/* An alias of a file by name (case-insensitive), or NULL. */
json_t *pl_sim_fw_alias(json_t *file, const char *name);
/* PVE::Firewall::verify_rule: false with the 400 set. */
bool pl_sim_fw_verify_rule(struct pl_sim_req *r, json_t *file, const char *env, json_t *rule);
/* PVE::Firewall::copy_rule_data from the request. */
void pl_sim_fw_copy_rule(const struct pl_sim_req *r, json_t *rule);
/* Whether k is a rule property. */
bool pl_sim_fw_is_rule_key(const char *k);
/* GET /cluster/firewall/macros */
json_t *pl_sim_fw_macro_list(void);

#endif
