/*
 * What the firewall's files share (firewall.c plans, firewall_fetch.c reads,
 * firewall_import.c writes YAML, firewall_state.c records and undoes): the
 * rule properties and their projection, and the pieces a change is built of.
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

/* A rule as a line of a PVE firewall file ("IN HTTPS(ACCEPT) -source +lan").
 * Caller frees. */
char *pl_fw_rule_text(const json_t *r);

/* One firewall change being built: its diffs, calls and the digests seen. */
struct pl_fwc {
	json_t *ch, *diffs, *calls, *digests;
};
struct pl_fwc pl_fw_change_new(const char *scope, const char *guest, const char *what);
/* Append the change to changes when it has calls, else drop it. */
void pl_fw_change_end(struct pl_fwc *c, json_t *changes);
void pl_fw_diff(struct pl_fwc *c, const char *key, const char *from, const char *to,
		const char *note);
/* A call (path is taken); list: the path whose digest it carries. */
void pl_fw_call(struct pl_fwc *c, const char *method, char *path, json_t *params, const char *list);
/* The digest of a list (live: its answer, or NULL) apply checks first. */
void pl_fw_saw(struct pl_fwc *c, const char *path, const json_t *live);
/* The calls that make the live rules at path (live_l: the API's answer)
 * the wanted ones, in order: want as YAML rules (yaml) or as rules already
 * projected by pl_fw_rule_of. */
void pl_fw_rules_diff(struct pl_fwc *c, const char *path, const json_t *want, bool yaml,
		      const json_t *live_l, const char *what);

#endif
