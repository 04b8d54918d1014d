/*
 * API handlers for the firewall (stub while being written).
 */
#include "core/common.h"

#include "sim/api.h"
#include "sim/internal.h"

int
pl_sim_fw_seed(struct pl_sim *s, const json_t *fw, char **errmsg)
{
	(void)s;
	(void)fw;
	(void)errmsg;
	return 0;
}

json_t *
pl_sim_fw_dump(struct pl_sim *s)
{
	(void)s;
	return NULL;
}

const struct pl_sim_route_def pl_sim_firewall_routes[] = {
	{ 0, NULL, NULL, false, 0 },
};
