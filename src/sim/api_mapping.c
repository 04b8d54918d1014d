/*
 * API handlers for PCI resource mappings (/cluster/mapping/pci, PVE 8+):
 * list (filtered by the Mapping privileges), get, create, update with digest
 * and delete, as pve-manager's API2/Cluster/Mapping/PCI.pm over
 * pve-guest-common's Mapping/PCI.pm; and the lookup a VM start makes for a
 * hostpci "mapping=NAME".
 */
#include "core/common.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/pci.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

/* The mapping's options as PVE's SectionConfig keeps them (besides map). */
static const char *const flag_keys[] = { "live-migration-capable", "mdev" };

/* /etc/pve/mapping/pci.cfg as SectionConfig writes it: "ID", then a tab,
 * key and value per line (a list one line per item), a blank line after
 * each section; its SHA-1 is the digest every answer carries. */
static void
cfg_digest(struct pl_sim *s, char out[41])
{
	struct pl_buf b;
	const char *id;
	json_t *m, *v;
	size_t i;

	pl_buf_init(&b, 0);
	json_object_foreach(s->pcimaps, id, m) {
		pl_buf_addf(&b, "%s\n", id);
		if (pl_json_str(m, "description"))
			pl_buf_addf(&b, "\tdescription %s\n", pl_json_str(m, "description"));
		if (json_object_get(m, "live-migration-capable"))
			pl_buf_addf(&b, "\tlive-migration-capable %lld\n",
				    pl_json_int(m, "live-migration-capable", 0));
		json_array_foreach(json_object_get(m, "map"), i, v)
			pl_buf_addf(&b, "\tmap %s\n", json_string_value(v));
		if (json_object_get(m, "mdev"))
			pl_buf_addf(&b, "\tmdev %lld\n", pl_json_int(m, "mdev", 0));
		pl_buf_addch(&b, '\n');
	}
	pl_sim_sha1_hex(b.data, b.len, out);
	pl_buf_release(&b);
}

/* The request's "map" (one value, or repeated keys) as a new array. */
static json_t *
map_param(const struct pl_sim_req *r)
{
	const json_t *v = json_object_get(r->params, "map");

	if (json_is_array(v))
		return json_deep_copy(v);
	return json_is_string(v) ? json_pack("[O]", v) : NULL;
}

/* Whether a map entry ("node=pve1,path=...") is for node. */
static bool
map_node_is(const char *entry, const char *node)
{
	for (const char *p = entry; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
		size_t n = strcspn(p, ",");

		if (pl_str_startswith(p, "node=") && n - 5 == strlen(node) &&
		    !strncmp(p + 5, node, n - 5))
			return true;
	}
	return false;
}

static bool
can_see(struct pl_sim_req *r, const char *id)
{
	static const char *const privs[] = { "Mapping.Modify", "Mapping.Use", "Mapping.Audit" };
	char *path = pl_asprintf("/mapping/pci/%s", id);
	bool ok = !pl_sim_access_filtered(r->sim, r->user);

	for (size_t i = 0; !ok && i < PL_ARRAY_LEN(privs); i++)
		ok = pl_sim_access_can(r->sim, r->user, path, privs[i]);
	free(path);
	return ok;
}

static json_t *
entry(const json_t *m, const char *digest)
{
	json_t *o = json_deep_copy(m);

	json_object_set_new(o, "digest", json_string(digest));
	return o;
}

static void
h_list(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	const char *check = pl_sim_p(r, "check-node"), *id;
	char digest[41];
	json_t *a = json_array(), *m;

	if (check && strcmp(check, "localhost") && pl_sim_node_index(s, check) < 0) {
		/* proxied to the node: an unknown one is not in the cluster */
		pl_sim_fail(r, 500,
			    "hostname lookup '%s' failed - failed to get address info for: "
			    "%s: Name or service not known",
			    check, check);
		json_decref(a);
		return;
	}
	cfg_digest(s, digest);
	json_object_foreach(s->pcimaps, id, m) {
		json_t *o;
		size_t i, found = 0;
		json_t *v;

		if (!can_see(r, id))
			continue;
		o = entry(m, digest);
		json_object_set_new(o, "id", json_string(id));
		if (check) {
			/* assert_valid needs the node's sysfs, which the simulator
			 * has not: only the missing mapping is reported */
			json_t *checks = json_array();

			json_array_foreach(json_object_get(m, "map"), i, v)
				found += map_node_is(json_string_value(v), check);
			if (!found)
				json_array_append_new(
					checks,
					json_pack("{s:s,s:o}", "severity", "warning", "message",
						  json_sprintf("No mapping for node %s.", check)));
			json_object_set_new(o, "checks", checks);
		}
		json_array_append_new(a, o);
	}
	pl_sim_ok(r, a);
}

static void
h_get(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "id");
	json_t *m = json_object_get(r->sim->pcimaps, id);
	char digest[41];

	if (m == NULL) {
		pl_sim_fail(r, 500, "mapping '%s' not found", id);
		return;
	}
	cfg_digest(r->sim, digest);
	pl_sim_ok(r, entry(m, digest));
}

/* Map_fmt's checks of each entry (the schema's property string holds
 * patterns the generic validation leaves out): false with the 400 set. */
static bool
map_ok(struct pl_sim_req *r, const json_t *map)
{
	static const char *const need[] = { "node", "path", "id" };
	const json_t *v;
	size_t i;

	json_array_foreach(map, i, v) {
		const char *e = json_string_value(v);
		char val[256];

		for (size_t k = 0; k < PL_ARRAY_LEN(need); k++)
			if (!pl_pci_prop(e, need[k], val, sizeof(val))) {
				pl_sim_param_fail(r, "map",
						  "invalid format - %s: property is missing and it "
						  "is not optional\n",
						  need[k]);
				return false;
			}
		if (pl_pci_prop(e, "path", val, sizeof(val)) && !pl_pci_path_ok(val)) {
			pl_sim_param_fail(r, "map",
					  "invalid format - path: value does not match "
					  "the regex pattern\n");
			return false;
		}
		if ((pl_pci_prop(e, "id", val, sizeof(val)) && !pl_pci_id_ok(val)) ||
		    (pl_pci_prop(e, "subsystem-id", val, sizeof(val)) && !pl_pci_id_ok(val))) {
			pl_sim_param_fail(r, "map",
					  "invalid format - %s: value does not match "
					  "the regex pattern\n",
					  pl_pci_id_ok(val) ? "subsystem-id" : "id");
			return false;
		}
	}
	return true;
}

/* Set the options of the request on m (SectionConfig::check_config). */
static void
set_opts(struct pl_sim_req *r, json_t *m)
{
	json_t *map = map_param(r);

	if (pl_sim_p(r, "description"))
		json_object_set_new(m, "description", json_string(pl_sim_p(r, "description")));
	for (size_t i = 0; i < PL_ARRAY_LEN(flag_keys); i++)
		if (pl_sim_p(r, flag_keys[i]))
			json_object_set_new(m, flag_keys[i],
					    json_integer(pl_sim_pbool(r, flag_keys[i], false)));
	if (map)
		json_object_set_new(m, "map", map);
}

static void
h_create(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	const char *id = pl_sim_p(r, "id");
	json_t *m;

	m = map_param(r);
	if (!map_ok(r, m)) {
		json_decref(m);
		return;
	}
	json_decref(m);
	if (json_object_get(s->pcimaps, id)) {
		pl_sim_fail(r, 500, "create hardware mapping failed: pci ID '%s' already defined",
			    id);
		return;
	}
	m = json_object();
	set_opts(r, m);
	json_object_set_new(s->pcimaps, id, m);
	s->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_update(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	const char *id = pl_sim_p(r, "id"), *want = pl_sim_p(r, "digest");
	const char *del = pl_sim_p(r, "delete");
	json_t *m = json_object_get(s->pcimaps, id);
	char digest[41], *list, *tok, *save = NULL;
	json_t *map = map_param(r);
	bool ok = map_ok(r, map);

	json_decref(map);
	if (!ok)
		return;
	cfg_digest(s, digest);
	if (want && strcmp(want, digest)) {
		pl_sim_fail(r, 500,
			    "update hardware mapping failed: detected modified configuration - "
			    "file changed by other user? Try again.");
		return;
	}
	if (m == NULL) {
		pl_sim_fail(r, 500, "update hardware mapping failed: pci ID '%s' does not exist",
			    id);
		return;
	}
	/* SectionConfig::delete_from_config, checked before anything changes */
	list = pl_strdup(del ? del : "");
	for (tok = strtok_r(list, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save)) {
		bool known = !strcmp(tok, "description") || !strcmp(tok, "map");

		for (size_t i = 0; i < PL_ARRAY_LEN(flag_keys); i++)
			known |= !strcmp(tok, flag_keys[i]);
		if (!known) {
			pl_sim_fail(r, 500, "update hardware mapping failed: no such option '%s'",
				    tok);
			goto out;
		}
		if (!strcmp(tok, "map")) {
			pl_sim_fail(r, 500,
				    "update hardware mapping failed: unable to delete required "
				    "option 'map'");
			goto out;
		}
		if (json_object_get(r->params, tok)) {
			pl_sim_fail(
				r, 500,
				"update hardware mapping failed: cannot set and delete property "
				"'%s' at the same time!",
				tok);
			goto out;
		}
	}
	free(list);
	list = pl_strdup(del ? del : "");
	for (tok = strtok_r(list, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save))
		json_object_del(m, tok);
	set_opts(r, m);
	s->dirty = true;
	pl_sim_ok(r, json_null());
out:
	free(list);
}

static void
h_delete(struct pl_sim_req *r)
{
	/* a mapping that is not there is no error (PCI.pm's delete) */
	json_object_del(r->sim->pcimaps, pl_sim_p(r, "id"));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

char *
pl_sim_pcimap_missing(struct pl_sim *s, const char *hostpci, const char *node)
{
	const char *p = strstr(hostpci, "mapping=");
	char name[64];
	json_t *m, *v;
	size_t i, n;

	if (p == NULL || (p != hostpci && p[-1] != ','))
		return NULL;
	n = strcspn(p + 8, ",");
	snprintf(name, sizeof(name), "%.*s", (int)(n < 63 ? n : 63), p + 8);
	m = json_object_get(s->pcimaps, name);
	json_array_foreach(json_object_get(m, "map"), i, v)
		if (map_node_is(json_string_value(v), node))
			return NULL;
	return pl_asprintf("PCI device mapping not found for '%s'", name);
}

const struct pl_sim_route_def pl_sim_mapping_routes[] = {
	{ PL_SIM_GET, "/cluster/mapping/pci", h_list, false, 0 },
	{ PL_SIM_POST, "/cluster/mapping/pci", h_create, false, 0 },
	{ PL_SIM_GET, "/cluster/mapping/pci/{id}", h_get, false, 0 },
	{ PL_SIM_PUT, "/cluster/mapping/pci/{id}", h_update, false, 0 },
	{ PL_SIM_DELETE, "/cluster/mapping/pci/{id}", h_delete, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
