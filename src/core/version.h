/*
 * Build and library version facts, for `pvelab version` and the server's /version.
 */
#ifndef PL_CORE_VERSION_H
#define PL_CORE_VERSION_H

#include <jansson.h>

/* {"version","commit","libraries":{name: version}}; caller owns the reference. */
json_t *pl_version_info(void);

#endif
