/*
 * Checks of a config against a cluster as last seen (the state store, or a
 * fresh sync): nodes, storages, bridges, clone sources and LXC templates that
 * do not exist, storages without the content type a volume needs or not
 * available on the node, containers declared by vmid that are not there,
 * guests larger than their node, and nodes whose running guests need more
 * memory than they have.
 */
#ifndef PL_PLAN_CHECK_H
#define PL_PLAN_CHECK_H

#include "core/common.h"
#include "core/diag.h"

#include <jansson.h>

struct pl_config;

/* cluster is {"nodes":[..],"storages":[..],"bridges":[..],"guests":[..]} as
 * the state store gives them, with "templates" and "aplinfo" when known
 * (pl_templates_fetch; templates are only checked then). Problems are added
 * to d, located in the config. */
void pl_plan_check_cluster(const struct pl_config *cfg, const json_t *cluster, struct pl_diags *d);

#endif
