/*
 * Day-2 configuration as code: the storages, backup jobs and resource pools
 * of pvelab.yaml planned against the cluster's (/storage, /cluster/backup,
 * /pools) and applied through the same executor as guests, one API call per
 * change. Pure planning; the only I/O is apply reading secret files.
 */
#ifndef PL_PLAN_DAY2_H
#define PL_PLAN_DAY2_H

#include "core/common.h"

#include <jansson.h>

struct pl_config;

/* Whether a plan's action is one of these: "storage", "backup_job", "pool". */
bool pl_day2_action(const char *action);

/*
 * Add to changes (and blocked) what makes the cluster's storages, backup
 * jobs and pools those cfg declares. guests are the plan's guest changes so
 * far (a job names guests the same apply creates). Each change:
 * {"action":"storage|backup_job|pool","type":<the same>,"guest":<id>,
 *  "class":"create|update|delete","what":"dir storage|backup job|pool",
 *  "method","path","params",["secrets":{param: file}],["diffs"]}.
 * A job or pool belongs to a project by the marker "[pvelab:<project>]" in
 * its comment: one with another marker or none is never changed or deleted
 * (blocked when declared); one with this project's marker that cfg no longer
 * declares is deleted. A storage is deleted only when declared with
 * state: absent, and never while a guest's volume or a job uses it (PVE's
 * DELETE does not check: pve-storage API2/Storage/Config.pm delete).
 * With only ({name: true}, a profile's guests): the storages and pools
 * those guests name (a volume "ID:...", pool:) and their memberships; no
 * backup job, no removal.
 */
void pl_day2_plan(const struct pl_config *cfg, const json_t *snap, const char *project,
		  const json_t *guests, const json_t *only, json_t *changes, json_t *blocked);

/* Whether planning cfg needs every guest's config (a storage to remove is
 * checked against all their volumes), not only the declared guests'. */
bool pl_day2_needs_configs(const struct pl_config *cfg);

/* The removals `pvelab destroy` makes of what cfg declares and project
 * manages (new reference; blocked gets what cannot go): its jobs and pools
 * by their marker, its storages by owners ({"<storage>": "<project>"}, the
 * store's pl_state_storage_owners: storage.cfg has no comment to mark). */
json_t *pl_day2_destroy(const struct pl_config *cfg, const json_t *snap, const char *project,
			const json_t *owners, json_t *blocked);

/* Add to sigs a signature of each storage, backup job and pool of snap
 * ("storage ID", "backup job ID", "pool ID"): a saved plan is stale when one
 * changed, appeared or went. */
void pl_day2_sigs(const json_t *snap, json_t *sigs);

/* The executor's phase of a day-2 change: 0 (before the guests: storages
 * and pools they may need) or 2 (after them: jobs naming them, removals). */
int pl_day2_phase(const json_t *change);

/* The call a change makes: its method, path and parameters with the secret
 * files read in (wiped by pl_day2_request_free). */
int pl_day2_request(const json_t *change, const char **method, char **path, json_t **params,
		    char **errmsg);
void pl_day2_request_free(json_t *params);

/* The comment carrying project's marker ("user text [pvelab:P]"). */
char *pl_day2_mark(const char *comment, const char *project);
/* The project a comment marks (caller frees), or NULL; *user (optional)
 * gets the text without the marker. */
char *pl_day2_marker(const char *comment, char **user);

/* Import: "storage:ID", "backup-job:ID" or "pool:ID". The YAML entry that
 * declares the live object (new reference, under *section: "storages",
 * "backups" or "pools"), or NULL with *errmsg. For a job or pool *mark gets
 * the call that puts project's marker on it ({"method","path","params"}),
 * NULL when it carries it already; another project's is refused. */
bool pl_day2_import_arg(const char *arg);
json_t *pl_day2_import(const json_t *snap, const char *arg, const char *project,
		       const char **section, json_t **mark, char **errmsg);

#endif
