/*
 * Checks of storages:, backups: and pools: that need no cluster: ids as PVE
 * accepts them, duplicates, each storage type's required keys and the keys
 * it has no use for, secret files readable (and private), backup jobs'
 * schedules (core/calendar, PVE's parser) and selections.
 */
#include "core/common.h"
#include "config/config.h"
#include "core/apischema.h"
#include "core/calendar.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/pci.h"

/* The id's problem as PVE's own format check words it (core/apischema:
 * pve-storage-id, pve-configid, pve-poolid), or NULL. */
static char *
id_problem(const char *fmt, const char *what, const char *id)
{
	char *e = pl_api_check_format(fmt, id), *msg;

	if (e == NULL)
		return NULL;
	e[strcspn(e, "\n")] = 0;
	msg = pl_asprintf("%s: %s", what, e);
	free(e);
	return msg;
}

/* An error at /section/i[/key]. */
static void
diag(const struct pl_config *c, struct pl_diags *d, const char *section, size_t i, const char *key,
     const char *msg)
{
	char ptr[160];

	snprintf(ptr, sizeof(ptr), "/%s/%zu%s%s", section, i, key ? "/" : "", key ? key : "");
	pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "%s", msg);
}

/* Whether id is new among the items of item's cluster (two clusters may
 * each have a storage 'nas'). */
static bool
unique(json_t *seen, const json_t *item, const char *id)
{
	char *key;
	bool fresh;

	if (id == NULL)
		return true;
	key = pl_asprintf("%s/%s", pl_json_str_or(item, "cluster", ""), id);
	fresh = json_object_get(seen, key) == NULL;
	if (fresh)
		json_object_set_new(seen, key, json_true());
	free(key);
	return fresh;
}

/* Per type: the keys it needs, and the keys of storages: it can use. */
static const char *const stype_keys[][3] = {
	{ "dir", "path", "path shared" },
	{ "nfs", "server export", "path server export" },
	{ "cifs", "server share", "path server share username password_file" },
	{ "lvmthin", "vgname thinpool", "vgname thinpool" },
	{ "zfspool", "pool", "pool" },
	{ "pbs", "server datastore",
	  "server datastore username password_file namespace fingerprint_file" },
};

static bool
in_words(const char *words, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = words; (p = strstr(p, w)) != NULL; p += n)
		if ((p == words || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
			return true;
	return false;
}

static void
check_secret(const struct pl_config *c, struct pl_diags *d, const json_t *s, size_t i,
	     const char *key)
{
	char *secret = NULL, *err = NULL;

	if (pl_json_str(s, key) == NULL)
		return;
	if (pl_file_read_secret(pl_json_str(s, key), &secret, &err) != 0)
		diag(c, d, "storages", i, key, err);
	if (secret)
		explicit_bzero(secret, strlen(secret));
	free(secret);
	free(err);
}

static void
check_storage(const struct pl_config *c, struct pl_diags *d, const json_t *s, size_t i,
	      json_t *seen)
{
	static const char *const typed[] = { "path",      "server",    "export",
					     "share",     "username",  "password_file",
					     "datastore", "namespace", "fingerprint_file",
					     "vgname",    "thinpool",  "pool",
					     "shared" };
	static const char content_ok[] = "backup images rootdir iso vztmpl snippets import none";
	const char *name = pl_json_str_or(s, "name", "?"), *type = pl_json_str_or(s, "type", "");
	const json_t *v;
	size_t k;
	char *msg;

	if ((msg = id_problem("pve-storage-id", "storage name", name)) != NULL) {
		diag(c, d, "storages", i, "name", msg);
		free(msg);
	} else if (!unique(seen, s, name)) {
		msg = pl_asprintf("duplicate storage '%s'", name);
		diag(c, d, "storages", i, "name", msg);
		free(msg);
	}
	json_array_foreach(json_object_get(s, "content"), k, v)
		if (!json_is_string(v) || !in_words(content_ok, json_string_value(v))) {
			msg = pl_asprintf("unknown content type '%s' (%s)",
					  json_string_value(v) ? json_string_value(v) : "?",
					  content_ok);
			diag(c, d, "storages", i, "content", msg);
			free(msg);
		}
	if (!strcmp(pl_json_str_or(s, "state", "present"), "absent"))
		return; /* only its name matters */
	for (k = 0; k < PL_ARRAY_LEN(stype_keys); k++)
		if (!strcmp(stype_keys[k][0], type))
			break;
	if (k == PL_ARRAY_LEN(stype_keys))
		return; /* the schema's enum said so */
	for (size_t t = 0; t < PL_ARRAY_LEN(typed); t++) {
		bool can = in_words(stype_keys[k][2], typed[t]);
		bool needs = in_words(stype_keys[k][1], typed[t]);

		if (needs && !json_object_get(s, typed[t]))
			msg = pl_asprintf("%s storage '%s' needs %s", type, name, typed[t]);
		else if (!can && json_object_get(s, typed[t]))
			msg = pl_asprintf("%s is not an option of %s storages (%s are)", typed[t],
					  type, stype_keys[k][2]);
		else
			continue;
		diag(c, d, "storages", i, needs ? NULL : typed[t], msg);
		free(msg);
	}
	check_secret(c, d, s, i, "password_file");
	check_secret(c, d, s, i, "fingerprint_file");
}

/* The storage storages: declares by name, or NULL. */
static const json_t *
declared_storage(const struct pl_config *c, const char *name)
{
	const json_t *s;
	size_t i;

	json_array_foreach(pl_config_get(c, "/storages"), i, s)
		if (name && !strcmp(pl_json_str_or(s, "name", ""), name))
			return s;
	return NULL;
}

static void
check_job(const struct pl_config *c, struct pl_diags *d, const json_t *b, size_t i, json_t *seen)
{
	const char *id = pl_json_str_or(b, "id", "?"), *sched = pl_json_str(b, "schedule");
	bool all = json_is_true(json_object_get(b, "all")), pool = pl_json_str(b, "pool") != NULL;
	bool some = json_array_size(json_object_get(b, "guests")) ||
		    json_array_size(json_object_get(b, "tags"));
	const json_t *st = declared_storage(c, pl_json_str(b, "storage")), *v;
	char *msg = NULL, *err = NULL;
	size_t k;

	if ((msg = id_problem("pve-configid", "backup job id", id)) == NULL && !unique(seen, b, id))
		msg = pl_asprintf("duplicate backup job id '%s'", id);
	if (msg)
		diag(c, d, "backups", i, "id", msg);
	free(msg);
	msg = NULL;
	if (sched && pl_calendar_parse(sched, NULL, &err) != 0)
		diag(c, d, "backups", i, "schedule", err);
	free(err);
	/* PVE's selection modes are one of all, vmid (guests, tags) and pool */
	if (!all && !pool && !some)
		msg = pl_asprintf(
			"backup job '%s' selects no guest (give all:, guests:, tags: or pool:)",
			id);
	else if (all + pool + some > 1)
		msg = pl_asprintf(
			"backup job '%s' has %s: Proxmox selects by one of all, guests/tags and "
			"pool",
			id,
			all && some ? "all: true together with guests/tags" :
			all         ? "all: true together with pool" :
				      "pool together with guests/tags");
	else if (json_array_size(json_object_get(b, "exclude")) && !all && !pool)
		msg = pl_asprintf("backup job '%s': exclude needs all: true or pool:", id);
	if (msg)
		diag(c, d, "backups", i, NULL, msg);
	free(msg);
	msg = NULL;
	if (st && json_is_array(json_object_get(st, "content"))) {
		bool backup = false;

		json_array_foreach(json_object_get(st, "content"), k, v)
			backup |= json_is_string(v) && !strcmp(json_string_value(v), "backup");
		if (!backup) {
			msg = pl_asprintf(
				"storage '%s' does not hold backups (add backup to its content)",
				pl_json_str(b, "storage"));
			diag(c, d, "backups", i, "storage", msg);
			free(msg);
		}
	}
}

/* pci_mappings: ids, and node entries with a valid path and ids (a node
 * may have several: PVE takes the first present at VM start, as for SR-IOV
 * functions). A guest's mapping that is not declared may exist in the
 * cluster: the plan decides. */
static void
check_pcimaps(const struct pl_config *c, struct pl_diags *d, json_t *seen)
{
	const json_t *e, *m;
	size_t i, k;
	char *msg;

	json_array_foreach(pl_config_get(c, "/pci_mappings"), i, e) {
		const char *name = pl_json_str_or(e, "name", "?");

		if (!json_is_object(e))
			continue;
		if ((msg = id_problem("pve-configid", "mapping name", name)) == NULL &&
		    !unique(seen, e, name))
			msg = pl_asprintf("duplicate PCI mapping '%s'", name);
		if (msg)
			diag(c, d, "pci_mappings", i, "name", msg);
		free(msg);
		json_array_foreach(json_object_get(e, "map"), k, m) {
			const char *path = pl_json_str(m, "path");
			const char *sub = pl_json_str(m, "subsystem_id");
			char where[32];

			snprintf(where, sizeof(where), "map/%zu", k);
			msg = NULL;
			if (path && !pl_pci_path_ok(path))
				msg = pl_asprintf("path '%s' is no PCI address (0000:01:00 or "
						  "0000:01:00.0, lower case, ';' between several)",
						  path);
			else if (pl_json_str(m, "id") && !pl_pci_id_ok(pl_json_str(m, "id")))
				msg = pl_asprintf("id '%s' is no vendor:device pair (10de:2184)",
						  pl_json_str(m, "id"));
			else if (sub && !pl_pci_id_ok(sub))
				msg = pl_asprintf("subsystem_id '%s' is no vendor:device pair",
						  sub);
			else if (pl_json_str(m, "description") &&
				 strpbrk(pl_json_str(m, "description"), ",=\"\n"))
				msg = pl_strdup(
					"description: no ',', '=', '\"' or newline in a "
					"node's description (it is part of a property string)");
			if (msg)
				diag(c, d, "pci_mappings", i, where, msg);
			free(msg);
		}
	}
}

void
pl_config_check_storage(const struct pl_config *c, struct pl_diags *d)
{
	json_t *seen = json_object();
	const json_t *e;
	size_t i;
	char *msg;

	json_array_foreach(pl_config_get(c, "/storages"), i, e)
		if (json_is_object(e))
			check_storage(c, d, e, i, seen);
	json_object_clear(seen);
	json_array_foreach(pl_config_get(c, "/backups"), i, e)
		if (json_is_object(e))
			check_job(c, d, e, i, seen);
	json_object_clear(seen);
	json_array_foreach(pl_config_get(c, "/pools"), i, e) {
		const char *name = pl_json_str_or(e, "name", "?");

		if (!json_is_object(e))
			continue;
		if ((msg = id_problem("pve-poolid", "pool name", name)) == NULL &&
		    !unique(seen, e, name))
			msg = pl_asprintf("duplicate pool '%s'", name);
		if (msg)
			diag(c, d, "pools", i, "name", msg);
		free(msg);
	}
	json_object_clear(seen);
	check_pcimaps(c, d, seen);
	json_decref(seen);
}
