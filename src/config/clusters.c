/*
 * Several clusters in one config: `clusters:` names them, the declared
 * objects say which one they belong to with `cluster: NAME`, and a command
 * works on one cluster's view of the config (pl_config_select_cluster), in
 * which that cluster's entry is `cluster:` and the other clusters' objects
 * are gone: everything below the command sees a one-cluster config.
 */
#include "core/common.h"
#include "config/config.h"
#include "config/internal.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "core/yaml.h"

/* The sections whose items carry `cluster:`. */
static const char *const lists[] = {
	"guests",    "bridges", "storages",     "pools", "backups", "snapshot_policies",
	"templates", "hosts",   "pci_mappings",
};

const json_t *
pl_config_clusters(const struct pl_config *c)
{
	const json_t *cl = json_object_get(c->root, "clusters");

	return json_object_size(cl) ? cl : NULL;
}

const char *
pl_config_cluster(const struct pl_config *c)
{
	return c->cluster;
}

char *
pl_config_cluster_list(const struct pl_config *c)
{
	struct pl_buf b;
	const char *k;
	json_t *v;

	pl_buf_init(&b, 0);
	json_object_foreach((json_t *)pl_config_clusters(c), k, v)
		pl_buf_addf(&b, "%s%s", b.len ? ", " : "", k);
	return pl_buf_detach(&b, NULL);
}

/* One object's cluster: key at ptr, against the clusters there are. */
static void
check_item(const struct pl_config *c, struct pl_diags *d, const json_t *item, const char *ptr)
{
	const json_t *cls = pl_config_clusters(c);
	const char *name = pl_json_str(item, "cluster");
	char *list, *at;

	if (!json_is_object(item) || (name == NULL && json_object_size(cls) < 2))
		return;
	at = pl_asprintf("%s/cluster", ptr);
	list = pl_config_cluster_list(c);
	if (name == NULL)
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
			       "cluster: missing (this config has several clusters: %s)", list);
	else if (cls == NULL)
		pl_config_diag(c, d, PL_DIAG_ERROR, at,
			       "cluster '%s': this config names no clusters (clusters: NAME: ... "
			       "declares them)",
			       name);
	else if (json_object_get(cls, name) == NULL)
		pl_config_diag(c, d, PL_DIAG_ERROR, at, "unknown cluster '%s' (clusters: %s)", name,
			       list);
	free(list);
	free(at);
}

void
pl_config_check_clusters(const struct pl_config *c, struct pl_diags *d)
{
	const json_t *cls = pl_config_clusters(c), *fw;
	const char *k;
	json_t *v;
	size_t i;

	if (json_object_get(c->root, "clusters") && cls == NULL)
		pl_config_diag(c, d, PL_DIAG_ERROR, "/clusters", "clusters: names no cluster");
	if (cls && pl_config_written(c, "/cluster"))
		pl_config_diag(
			c, d, PL_DIAG_ERROR, "/cluster",
			"cluster: and clusters: are both set (one cluster: cluster:; several: "
			"each under clusters: NAME)");
	json_object_foreach((json_t *)cls, k, v)
		if (!pl_config_project_valid(k)) {
			char *esc = pl_yaml_ptr_escape(k), *ptr = pl_asprintf("/clusters/%s", esc);

			pl_config_diag(
				c, d, PL_DIAG_ERROR, ptr,
				"'%s' is not a cluster name (lower-case letters, digits, '-' "
				"and '_', starting with a letter or digit, at most 32)",
				k);
			free(ptr);
			free(esc);
		}
	for (size_t s = 0; s < PL_ARRAY_LEN(lists); s++) {
		/* guests: as `defaults:` made them (it may name the cluster) */
		const json_t *items = s == 0 ? c->guests : json_object_get(c->root, lists[s]),
			     *item;

		json_array_foreach(items, i, item) {
			char ptr[96];

			snprintf(ptr, sizeof(ptr), "/%s/%zu", lists[s], i);
			check_item(c, d, item, ptr);
		}
	}
	if ((fw = json_object_get(c->root, "firewall")) != NULL && json_object_size(fw))
		check_item(c, d, fw, "/firewall");
}

/* Whether item belongs to cluster name (one cluster: also when it names none). */
static bool
belongs(const json_t *item, const char *name, bool only)
{
	const char *cl = pl_json_str(item, "cluster");

	return cl ? !strcmp(cl, name) : only;
}

/* "/guests/7/disks/0" -> the section's index (7) and what follows. */
static bool
split_mark(const char *ptr, const char *section, size_t *idx, const char **rest)
{
	size_t n = strlen(section);
	char *end;

	if (ptr[0] != '/' || strncmp(ptr + 1, section, n) || ptr[n + 1] != '/')
		return false;
	*idx = strtoul(ptr + n + 2, &end, 10);
	if (end == ptr + n + 2 || (*end && *end != '/'))
		return false;
	*rest = end;
	return true;
}

/* Profiles name guests of every cluster: a member that is only another
 * cluster's guest (a name in away) is not this cluster's to select. */
static void
drop_members(struct pl_config *c, const json_t *away)
{
	const char *pname;
	json_t *members;

	json_object_foreach(json_object_get(c->root, "profiles"), pname, members) {
		for (size_t i = json_array_size(members); i-- > 0;) {
			const char *m = json_string_value(json_array_get(members, i));

			if (m && json_object_get(away, m))
				json_array_remove(members, i);
		}
	}
}

int
pl_config_select_cluster(struct pl_config *c, const char *name, char **errmsg)
{
	const json_t *cls = pl_config_clusters(c);
	json_t *entry, *one, *marks, *fw, *mv, *away, *mine;
	bool only = json_object_size(cls) == 1;
	const char *k;
	void *tmp;

	if (c->cluster) /* narrowed already: its objects no longer say whose they are */
		return strcmp(c->cluster, name) ?
			       pl_seterr(errmsg, PL_EINVAL,
					 "%s is narrowed to cluster '%s' already", c->path,
					 c->cluster) :
			       0;
	if (cls == NULL)
		return pl_seterr(errmsg, PL_ENOENT,
				 "--cluster %s: %s declares no clusters: (leave "
				 "--cluster out)",
				 name, c->path);
	if ((entry = json_object_get(cls, name)) == NULL) {
		char *list = pl_config_cluster_list(c);
		int r = pl_seterr(errmsg, PL_ENOENT, "unknown cluster '%s' (clusters in %s: %s)",
				  name, c->path, list);

		free(list);
		return r;
	}
	json_decref(c->moved);
	c->moved = json_object();
	away = json_object(); /* guest names of the other clusters only */
	mine = json_object();
	one = json_deep_copy(entry);
	json_object_del(one, "state");
	json_object_set_new(c->root, "cluster", one);
	/* which items stay, and where their marks move */
	marks = json_object();
	for (size_t s = 0; s < PL_ARRAY_LEN(lists); s++) {
		json_t *items = json_object_get(c->root, lists[s]), *kept = json_array();
		json_t *gkept = s == 0 ? json_array() : NULL, *item, *from = json_array();
		size_t *to = pl_calloc(json_array_size(items) + 1, sizeof(*to)), i;

		json_array_foreach(items, i, item) {
			/* guests: their cluster may come from defaults: */
			const json_t *judge = s == 0 ? json_array_get(c->guests, i) : item;

			if (s == 0 && pl_json_str(judge, "name"))
				json_object_set_new(belongs(judge, name, only) ? mine : away,
						    pl_json_str(judge, "name"), json_true());
			if (!belongs(judge, name, only))
				continue;
			to[i] = json_array_size(kept) + 1;
			json_array_append_new(from, json_integer((json_int_t)i));
			json_object_del(item, "cluster");
			json_array_append(kept, item);
			if (gkept) {
				json_object_del((json_t *)judge, "cluster");
				json_array_append(gkept, (json_t *)judge);
			}
		}
		json_object_foreach_safe(c->marks, tmp, k, mv) {
			const char *rest;
			size_t idx;
			char *moved;

			if (!split_mark(k, lists[s], &idx, &rest))
				continue;
			if (idx < json_array_size(items) && to[idx]) {
				moved = pl_asprintf("/%s/%zu%s", lists[s], to[idx] - 1, rest);
				json_object_set(marks, moved, mv);
				free(moved);
			}
			json_object_del(c->marks, k);
		}
		if (items)
			json_object_set_new(c->root, lists[s], kept);
		else
			json_decref(kept);
		if (gkept) {
			json_decref(c->guests);
			c->guests = gkept;
		}
		json_object_set_new(c->moved, lists[s], from);
		free(to);
	}
	json_object_update(c->marks, marks);
	json_decref(marks);
	json_object_foreach((json_t *)mine, k, mv) /* web here and web there: here */
		json_object_del(away, k);
	drop_members(c, away);
	json_decref(away);
	json_decref(mine);
	fw = json_object_get(c->root, "firewall");
	if (fw && !belongs(fw, name, only))
		json_object_del(c->root, "firewall");
	else if (fw)
		json_object_del(fw, "cluster");
	free(c->cluster);
	c->cluster = pl_strdup(name);
	return 0;
}

const char *
pl_config_cluster_state(const struct pl_config *c)
{
	const json_t *cls = pl_config_clusters(c);

	return c->cluster ? pl_json_str(json_object_get(cls, c->cluster), "state") : NULL;
}

char *
pl_config_file_pointer(const struct pl_config *c, const char *pointer)
{
	for (size_t s = 0; c->moved && s < PL_ARRAY_LEN(lists); s++) {
		const json_t *from = json_object_get(c->moved, lists[s]);
		const char *rest;
		size_t idx;

		if (split_mark(pointer, lists[s], &idx, &rest) && idx < json_array_size(from))
			return pl_asprintf("/%s/%lld%s", lists[s],
					   (long long)json_integer_value(json_array_get(from, idx)),
					   rest);
	}
	return pl_strdup(pointer);
}
