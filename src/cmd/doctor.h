/*
 * `pvelab doctor`'s list of what a config needs of its token
 * (doctor_needs.c), shared by the report and --print-setup.
 */
#ifndef PL_CMD_DOCTOR_H
#define PL_CMD_DOCTOR_H

#include <jansson.h>

struct pl_config;

/* [{what, path, privileges: [...]}] for cfg (NULL: what every command needs);
 * resources is /cluster/resources (to find clone templates' vmids, may be
 * NULL); api_major the cluster's PVE major version. A privilege
 * "root@pam" means only root@pam may do it. New reference. */
json_t *pl_doctor_needs(const struct pl_config *cfg, const json_t *resources, int api_major);

#endif
