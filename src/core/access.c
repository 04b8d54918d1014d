/* Reading a token's effective permissions map (core/access.h). */
#include "core/common.h"
#include "core/access.h"

bool
pl_access_sees_vm(const json_t *perms, long long vmid, const char *pool)
{
	char path[300];
	const json_t *own;

	if (!json_is_object(perms))
		return true;
	snprintf(path, sizeof(path), "/vms/%lld", vmid);
	if ((own = json_object_get(perms, path)) != NULL)
		return json_object_get(own, "VM.Audit") != NULL;
	if (pool) {
		snprintf(path, sizeof(path), "/pool/%s", pool);
		if (json_object_get(json_object_get(perms, path), "VM.Audit"))
			return true;
	}
	return json_object_get(json_object_get(perms, "/vms"), "VM.Audit") != NULL;
}

bool
pl_access_sees_pool(const json_t *perms, const char *pool)
{
	char path[300];
	const json_t *own;

	if (!json_is_object(perms))
		return true;
	snprintf(path, sizeof(path), "/pool/%s", pool);
	if ((own = json_object_get(perms, path)) != NULL)
		return json_object_get(own, "Pool.Audit") != NULL;
	return json_object_get(json_object_get(perms, "/pool"), "Pool.Audit") != NULL;
}

bool
pl_access_sees_all_vms(const json_t *perms)
{
	return !json_is_object(perms) ||
	       json_object_get(json_object_get(perms, "/vms"), "VM.Audit") != NULL;
}
