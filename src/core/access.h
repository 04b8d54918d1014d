/*
 * What a token's effective permissions (GET /access/permissions) let it see:
 * shared by sync (a guest out of view is not deleted) and plan (no create on
 * a vmid the token cannot see).
 */
#ifndef PL_CORE_ACCESS_H
#define PL_CORE_ACCESS_H

#include <jansson.h>
#include <stdbool.h>

/* Whether the token sees guest vmid (in pool, or NULL): VM.Audit on /vms/ID,
 * else, when the map has no entry of the guest's own, on /pool/POOL or /vms.
 * The map is RPCEnvironment::get_effective_permissions': /vms, every ACL path
 * and every pool member's /vms/ID. No map (not an object): everything. */
bool pl_access_sees_vm(const json_t *perms, long long vmid, const char *pool);

/* Whether the token may audit pool (Pool.Audit on /pool/POOL, else /pool;
 * no map: yes). Without it PVE lists no such pool and leaves "pool" out of
 * its guests' entries in /cluster/resources. */
bool pl_access_sees_pool(const json_t *perms, const char *pool);

/* Whether the token sees every guest (VM.Audit on /vms; no map: yes). */
bool pl_access_sees_all_vms(const json_t *perms);

#endif
