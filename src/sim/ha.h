/*
 * What the HA handler files share (api_ha.c, api_harules.c): the HA
 * configuration and its lookups.
 */
#ifndef PL_SIM_HA_H
#define PL_SIM_HA_H

#include "core/common.h"

#include <jansson.h>

#include "sim/internal.h"

/* A part of the HA state (resources, groups, rules, service), created empty. */
json_t *pl_sim_ha_part(struct pl_sim *s, const char *name);
/* Whether the simulator plays PVE 8.4. */
bool pl_sim_ha_v8(struct pl_sim *s);
/* PVE::HA::Config::have_groups_been_migrated. */
bool pl_sim_ha_groups_migrated(struct pl_sim *s);
/* The guest of a "vm:100" / "ct:100" service id, or NULL. */
struct pl_sim_guest *pl_sim_ha_sid_guest(struct pl_sim *s, const char *sid);
/* A resource's requested state ("enabled" is "started"). */
const char *pl_sim_ha_req_state(const json_t *res);
/* The digest of a part's config file. */
void pl_sim_ha_digest(struct pl_sim *s, const char *part, char out[41]);
/* A schema method by path, or NULL. */
const struct pl_sim_method *pl_sim_ha_method(struct pl_sim *s, const char *path,
					     enum pl_sim_meth m);
/* The digest parameter matches the part's; false with "errpfx: detected
 * modified configuration ..." set. */
bool pl_sim_ha_digest_ok(struct pl_sim_req *r, const char *part, const char *errpfx);

#endif
