/*
 * What the firewall's files share (firewall.c plans, firewall_fetch.c reads,
 * firewall_import.c writes YAML): the rule properties and their projection.
 */
#ifndef PL_PLAN_FIREWALL_INT_H
#define PL_PLAN_FIREWALL_INT_H

#include "core/common.h"

#include <jansson.h>

/* A rule's properties, as the API names them (PVE::Firewall $rule_properties). */
#define PL_FW_NRULE_KEYS 13
extern const char *const pl_fw_rule_keys[PL_FW_NRULE_KEYS];

/* A value as PVE's parser sees it (true -> "1"); "" for none. Caller frees. */
char *pl_fw_text_of(const json_t *v);
/* A rule as the API's parameters, every value a string: a declared one
 * (yaml: type "in" and enable on by default), or a live one projected on
 * the same keys. New reference. */
json_t *pl_fw_rule_of(const json_t *src, bool yaml);
/* The live guest a declared one is (by vmid, else by name: project's first). */
const json_t *pl_fw_live_guest(const json_t *snap, const json_t *g, const char *project);
/* What fw declares of an online node's host firewall (firewall.nodes by
 * name, else firewall.host), or NULL. */
const json_t *pl_fw_host_declared(const json_t *fw, const json_t *node);

#endif
