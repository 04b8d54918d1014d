/*
 * LXC templates on the cluster's storages and in the appliance index (see
 * templates.h).
 */
#include "core/common.h"
#include "plan/templates.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "core/snapshot.h"
#include "pve/client.h"

/* "local:vztmpl/debian.tar.zst" -> "local" */
static void
volid_storage(const char *volid, char *out, size_t outlen)
{
	snprintf(out, outlen, "%.*s", (int)strcspn(volid, ":"), volid);
}

/* "local:vztmpl/debian.tar.zst" -> "debian.tar.zst" */
static const char *
volid_file(const char *volid)
{
	const char *slash = strrchr(volid, '/'), *colon = strchr(volid, ':');

	return slash ? slash + 1 : colon ? colon + 1 : volid;
}

json_t *
pl_templates_wanted(const struct pl_config *cfg)
{
	json_t *out = json_array();
	const json_t *g, *t;
	size_t i;

	json_array_foreach(pl_config_guests(cfg), i, g) {
		const char *volid = pl_json_str(g, "ostemplate");
		char storage[128], ptr[64];

		if (volid == NULL || strcmp(pl_json_str_or(g, "type", "vm"), "lxc") || !strchr(volid, ':'))
			continue;
		volid_storage(volid, storage, sizeof(storage));
		snprintf(ptr, sizeof(ptr), "/guests/%zu/ostemplate", i);
		json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s?,s:s,s:s}", "volid", volid,
						     "storage", storage, "template", volid_file(volid),
						     "node", pl_json_str(g, "node"), "ptr", ptr,
						     "guest", pl_json_str_or(g, "name", "")));
	}
	json_array_foreach(pl_config_get(cfg, "/templates"), i, t) {
		const char *storage = pl_json_str_or(t, "storage", "local");
		const char *file = pl_json_str(t, "template");
		char *volid, ptr[64];

		if (file == NULL)
			continue;
		volid = pl_asprintf("%s:vztmpl/%s", storage, file);
		snprintf(ptr, sizeof(ptr), "/templates/%zu/template", i);
		json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s?,s:s}", "volid", volid, "storage",
						     storage, "template", file, "node",
						     pl_json_str(t, "node"), "ptr", ptr));
		free(volid);
	}
	return out;
}

/* Is storage listed on node in snap's storages? */
static bool
storage_on(const json_t *snap, const char *storage, const char *node)
{
	const json_t *s;
	size_t i;

	json_array_foreach(json_object_get(snap, PL_SNAP_STORAGES), i, s)
		if (!strcmp(pl_json_str_or(s, "storage", ""), storage) &&
		    !strcmp(pl_json_str_or(s, "node", ""), node))
			return true;
	return false;
}

void
pl_templates_fetch(struct pl_pve *c, const struct pl_config *cfg, json_t *snap, bool aplinfo)
{
	json_t *wanted = pl_templates_wanted(cfg), *lists = json_object(), *apl = json_object();
	json_t *q = json_pack("{s:s}", "content", "vztmpl");
	const json_t *n, *w;
	size_t i, j;

	json_array_foreach(json_object_get(snap, PL_SNAP_NODES), i, n) {
		const char *node = pl_json_str(n, "node");
		json_t *per = json_object();
		bool missing = false;

		if (node == NULL || strcmp(pl_json_str_or(n, "status", "online"), "online")) {
			json_decref(per);
			continue;
		}
		json_array_foreach(wanted, j, w) {
			const char *storage = pl_json_str(w, "storage");
			json_t *data = NULL, *vols;
			const json_t *x;
			size_t k;
			char *path;

			if (json_object_get(per, storage) || !storage_on(snap, storage, node))
				continue;
			path = pl_asprintf("/nodes/%s/storage/%s/content", node, storage);
			if (pl_pve_call(c, "GET", path, q, &data, NULL) == 0) {
				vols = json_array();
				json_array_foreach(data, k, x)
					if (pl_json_str(x, "volid"))
						json_array_append_new(vols, json_string(pl_json_str(x, "volid")));
				json_object_set_new(per, storage, vols);
			}
			json_decref(data);
			free(path);
		}
		json_object_set_new(lists, node, per);
		json_object_set(snap, "templates", lists);
		json_array_foreach(wanted, j, w) {
			bool known;

			if (!pl_templates_present(snap, node, pl_json_str(w, "volid"), &known) && known)
				missing = true;
		}
		if (aplinfo && missing) {
			json_t *data = NULL, *names;
			const json_t *x;
			size_t k;
			char *path = pl_asprintf("/nodes/%s/aplinfo", node);

			if (pl_pve_call(c, "GET", path, NULL, &data, NULL) == 0) {
				names = json_array();
				json_array_foreach(data, k, x)
					if (pl_json_str(x, "template"))
						json_array_append_new(names, json_string(pl_json_str(x, "template")));
				json_object_set_new(apl, node, names);
			}
			json_decref(data);
			free(path);
		}
	}
	json_object_set(snap, "templates", lists);
	if (aplinfo)
		json_object_set(snap, "aplinfo", apl);
	json_decref(lists);
	json_decref(apl);
	json_decref(wanted);
	json_decref(q);
}

static bool
in_list(const json_t *list, const char *s)
{
	const json_t *x;
	size_t i;

	json_array_foreach(list, i, x)
		if (json_string_value(x) && !strcmp(json_string_value(x), s))
			return true;
	return false;
}

bool
pl_templates_present(const json_t *snap, const char *node, const char *volid, bool *known)
{
	const json_t *lists = json_object_get(snap, "templates"), *per;
	char storage[128];
	const char *k;

	*known = false;
	volid_storage(volid, storage, sizeof(storage));
	json_object_foreach((json_t *)lists, k, per) {
		const json_t *vols = json_object_get(per, storage);

		if ((node && strcmp(k, node)) || vols == NULL)
			continue;
		*known = true;
		if (in_list(vols, volid))
			return true;
	}
	return false;
}

bool
pl_templates_downloadable(const json_t *snap, const char *node, const char *volid)
{
	const json_t *apl = json_object_get(snap, "aplinfo"), *names;
	const char *k;

	json_object_foreach((json_t *)apl, k, names)
		if ((node == NULL || !strcmp(k, node)) && in_list(names, volid_file(volid)))
			return true;
	return false;
}

char *
pl_templates_suggest(const json_t *snap, const char *volid)
{
	const char **names = NULL;
	const json_t *per, *list, *x;
	const char *k, *k2, *s;
	size_t n = 0, i;
	char storage[128];
	char *out = NULL;

	volid_storage(volid, storage, sizeof(storage));
	json_object_foreach((json_t *)json_object_get(snap, "templates"), k, per)
		json_object_foreach((json_t *)per, k2, list)
			json_array_foreach(list, i, x) {
				names = pl_realloc(names, (n + 1) * sizeof(*names));
				names[n++] = volid_file(json_string_value(x));
			}
	json_object_foreach((json_t *)json_object_get(snap, "aplinfo"), k, list)
		json_array_foreach(list, i, x) {
			names = pl_realloc(names, (n + 1) * sizeof(*names));
			names[n++] = json_string_value(x);
		}
	if (n && (s = pl_str_suggest(volid_file(volid), names, n)) != NULL)
		out = pl_asprintf("%s:vztmpl/%s", storage, s);
	free(names);
	return out;
}
