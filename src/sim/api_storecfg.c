/*
 * API handlers for the cluster's storage configuration (/storage, PVE's
 * storage.cfg): list, read, create, update and delete with each type's
 * options, content rules and the config digest, as pve-storage's
 * PVE/API2/Storage/Config.pm and the plugins' options()/plugindata() do.
 */
#include "core/common.h"

#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

/* A storage type: PVE::Storage::<Type>Plugin's options() and plugindata().
 * In opts (space-separated), "=name" is fixed and required, "~name" fixed
 * and optional, a bare name optional. content, nodes, path and shared live
 * in the storage's own fields; the rest in its cfg. */
struct stype {
	const char *type;
	const char *content_ok;   /* plugindata content[0] */
	const char *content_dflt; /* content[1]: what parse_config sets when none is given */
	bool shared;              /* in PVE::Storage::Plugin's @SHARED_STORAGE */
	const char *opts;         /* space-separated */
	const char *sensitive;    /* kept in /etc/pve/priv, never in storage.cfg */
};

static const char dir_opts[] = "=path content-dirs nodes shared disable prune-backups "
			       "max-protected-backups content format mkdir create-base-path "
			       "create-subdirs is_mountpoint bwlimit preallocation "
			       "~snapshot-as-volume-chain";
static const char nfs_opts[] =
	"=path content-dirs =server =export nodes disable prune-backups "
	"max-protected-backups options content format mkdir create-base-path "
	"create-subdirs bwlimit preallocation ~snapshot-as-volume-chain";
static const char cifs_opts[] =
	"=path content-dirs =server =share subdir nodes disable prune-backups "
	"max-protected-backups content format username password domain "
	"smbversion mkdir create-base-path create-subdirs bwlimit preallocation "
	"options ~snapshot-as-volume-chain";
static const char lvmthin_opts[] = "=thinpool =vgname nodes disable content bwlimit";
static const char zfspool_opts[] =
	"=pool blocksize sparse nodes disable content bwlimit mountpoint";
static const char pbs_opts[] = "=server =datastore namespace port nodes disable content username "
			       "password encryption-key master-pubkey prune-backups "
			       "max-protected-backups fingerprint";
static const char no_secrets[] = "";
static const char cifs_secrets[] = "password";
static const char pbs_secrets[] = "password encryption-key master-pubkey";

static const struct stype stypes[] = {
	{ "dir", "backup,images,import,iso,none,rootdir,snippets,vztmpl", "images,rootdir", false,
	  dir_opts, no_secrets },
	{ "nfs", "backup,images,import,iso,rootdir,snippets,vztmpl", "images", true, nfs_opts,
	  no_secrets },
	{ "cifs", "backup,images,import,iso,rootdir,snippets,vztmpl", "images", true, cifs_opts,
	  cifs_secrets },
	{ "lvmthin", "images,rootdir", "images,rootdir", false, lvmthin_opts, no_secrets },
	{ "zfspool", "images,rootdir", "images,rootdir", false, zfspool_opts, no_secrets },
	{ "pbs", "backup,none", "backup", true, pbs_opts, pbs_secrets },
};

static const struct stype *
stype_find(const char *type)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(stypes); i++)
		if (type && !strcmp(stypes[i].type, type))
			return &stypes[i];
	return NULL;
}

/* The option's flags in the type: 0 unknown, else 'o' optional, 'f' fixed and
 * required, 'F' fixed and optional. */
static char
opt_kind(const struct stype *t, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = t->opts; *p;) {
		size_t l = strcspn(p, " ");
		char kind = (*p == '=') ? 'f' : (*p == '~') ? 'F' : 'o';
		const char *w = kind == 'o' ? p : p + 1;
		size_t wl = kind == 'o' ? l : l - 1;

		if (wl == n && !strncmp(w, name, n))
			return kind;
		p += l;
		p += strspn(p, " ");
	}
	return 0;
}

/* Whether a space-separated list holds name. */
static bool
in_list(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		size_t l = strcspn(p, " ");

		if (l == n && !strncmp(p, name, n))
			return true;
		p += l;
		p += strspn(p, " ");
	}
	return false;
}

/* Whether a comma list (a,b,c) holds item. */
static bool
csv_has(const char *list, const char *item)
{
	size_t n = strlen(item);

	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == n && !strncmp(p, item, n))
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* PVE::Storage::Plugin::decode_value for content: unsupported types are
 * dropped (PVE warns), 'none' does not combine. The sorted list (caller frees)
 * or NULL with *err. */
static char *
content_decode(const struct stype *t, const char *value, char **err)
{
	char *dup = pl_strdup(value), *save = NULL, *tok, *items[32];
	size_t n = 0;
	bool none = false;
	struct pl_buf b;

	for (tok = strtok_r(dup, ",; ", &save); tok && n < PL_ARRAY_LEN(items);
	     tok = strtok_r(NULL, ",; ", &save)) {
		bool dup_item = false;

		if (!csv_has(t->content_ok, tok))
			continue;
		for (size_t i = 0; i < n; i++)
			dup_item |= !strcmp(items[i], tok);
		if (dup_item)
			continue;
		none |= !strcmp(tok, "none");
		items[n++] = tok;
	}
	if (none && n > 1) {
		free(dup);
		*err = pl_strdup("unable to combine 'none' with other content types");
		return NULL;
	}
	if (n == 0 && !csv_has(t->content_ok, "none")) {
		free(dup);
		*err = pl_strdup("storage does not support content type 'none'");
		return NULL;
	}
	qsort(items, n, sizeof(items[0]), cmp_str);
	pl_buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		if (i)
			pl_buf_addch(&b, ',');
		pl_buf_addstr(&b, items[i]);
	}
	free(dup);
	return n ? pl_buf_detach(&b, NULL) : (pl_buf_release(&b), pl_strdup("none"));
}

/* Where a storage's fixed options point when a seed does not say. */
static void
fill_defaults(struct pl_sim_storage *st)
{
	char buf[300];

	if (!st->cfg)
		st->cfg = json_object();
#define DFLT(k, v)                                                                                 \
	do {                                                                                       \
		if (!json_object_get(st->cfg, k))                                                  \
			json_object_set_new(st->cfg, k, json_string(v));                           \
	} while (0)
	if (!strcmp(st->type, "lvmthin")) {
		DFLT("thinpool", "data");
		DFLT("vgname", "pve");
	} else if (!strcmp(st->type, "zfspool")) {
		DFLT("pool", "rpool/data");
	} else if (!strcmp(st->type, "nfs") || !strcmp(st->type, "cifs")) {
		DFLT("server", "192.168.1.5");
		snprintf(buf, sizeof(buf), "/export/%s", st->id);
		if (!strcmp(st->type, "nfs"))
			DFLT("export", buf);
		else
			DFLT("share", st->id);
	} else if (!strcmp(st->type, "pbs")) {
		DFLT("server", "192.168.1.6");
		DFLT("datastore", st->id);
	}
#undef DFLT
	if (!st->path &&
	    (!strcmp(st->type, "dir") || !strcmp(st->type, "nfs") || !strcmp(st->type, "cifs"))) {
		snprintf(buf, sizeof(buf), "/mnt/pve/%s", st->id);
		st->path = pl_strdup(buf);
	}
	if (stype_find(st->type) && stype_find(st->type)->shared)
		st->shared = true;
}

void
pl_sim_storecfg_seed(struct pl_sim_storage *st, const json_t *seed)
{
	const struct stype *t = stype_find(st->type);
	const char *k;
	json_t *v;

	if (!st->cfg)
		st->cfg = json_object();
	json_object_foreach((json_t *)seed, k, v) {
		char *txt;

		if (!t || !opt_kind(t, k) || in_list(t->sensitive, k) || !strcmp(k, "content") ||
		    !strcmp(k, "nodes") || !strcmp(k, "path") || !strcmp(k, "shared"))
			continue;
		if ((txt = pl_api_value_text(v)) != NULL)
			json_object_set_new(st->cfg, k, json_string(txt));
		free(txt);
	}
	fill_defaults(st);
}

void
pl_sim_storecfg_dump(const struct pl_sim_storage *st, json_t *o)
{
	if (st->cfg)
		json_object_update(o, st->cfg);
}

/* A storage as storage.cfg holds it, as text values (no digest). */
static json_t *
storecfg_text(const struct pl_sim_storage *st)
{
	json_t *o = json_pack("{s:s,s:s}", "storage", st->id, "type", st->type);
	char *err = NULL, *content;
	const struct stype *t = stype_find(st->type);

	if (st->cfg)
		json_object_update(o, st->cfg);
	content = t ? content_decode(t, st->content, &err) : pl_strdup(st->content);
	json_object_set_new(o, "content", json_string(content ? content : st->content));
	free(content);
	free(err);
	if (st->path)
		json_object_set_new(o, "path", json_string(st->path));
	if (st->shared)
		json_object_set_new(o, "shared", json_string("1"));
	if (st->nodes && json_array_size(st->nodes)) {
		struct pl_buf b;
		size_t i;
		json_t *n;

		pl_buf_init(&b, 0);
		json_array_foreach(st->nodes, i, n) {
			if (i)
				pl_buf_addch(&b, ',');
			pl_buf_addstr(&b, json_string_value(n) ? json_string_value(n) : "");
		}
		json_object_set_new(o, "nodes", json_string(b.data ? b.data : ""));
		pl_buf_release(&b);
	}
	return o;
}

/* The digest of the whole storage configuration: SHA-1 of its canonical form
 * (PVE hashes the file; any change to any storage changes it). */
static void
storecfg_digest(struct pl_sim *s, char out[41])
{
	json_t *a = json_array();

	for (size_t i = 0; i < s->nstores; i++)
		json_array_append_new(a, storecfg_text(&s->stores[i]));
	pl_sim_sha1_json(a, out);
	json_decref(a);
}

static const struct pl_sim_method *
post_method(struct pl_sim *s)
{
	struct pl_sim_path *p = pl_sim_schema_find(s->schema, "/storage");

	return p ? p->methods[PL_SIM_POST] : NULL;
}

/* PVE's $api_storage_config: the section plus storage and digest, typed. */
static json_t *
storecfg_entry(struct pl_sim *s, const struct pl_sim_storage *st, const char *digest)
{
	json_t *txt = storecfg_text(st);
	json_t *o = pl_sim_typed(post_method(s), txt);

	json_decref(txt);
	json_object_set_new(o, "digest", json_string(digest));
	return o;
}

static void
h_list(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	const char *type = pl_sim_p(r, "type");
	char digest[41];
	json_t *a = json_array();

	storecfg_digest(s, digest);
	for (size_t i = 0; i < s->nstores; i++)
		if ((!type || !strcmp(type, s->stores[i].type)) &&
		    pl_sim_storage_listed(s, r->user, s->stores[i].id))
			json_array_append_new(a, storecfg_entry(s, &s->stores[i], digest));
	pl_sim_ok(r, a);
}

static void
h_get(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "storage");
	struct pl_sim_storage *st = pl_sim_storage_find(r->sim, id);
	char digest[41];

	if (!st) {
		pl_sim_fail(r, 500, "storage '%s' does not exist", id);
		return;
	}
	storecfg_digest(r->sim, digest);
	pl_sim_ok(r, storecfg_entry(r->sim, st, digest));
}

/* The parameters that are storage options (not the id, type, digest, delete
 * or a sensitive one). */
static bool
is_option_param(const struct stype *t, const char *k)
{
	return strcmp(k, "storage") && strcmp(k, "type") && strcmp(k, "digest") &&
	       strcmp(k, "delete") && !in_list(t->sensitive, k);
}

/* PVE::SectionConfig::check_config: NULL or the error (caller frees). */
static char *
check_config(const struct stype *t, const json_t *params, bool create)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)params, k, v) {
		char kind;

		if (!is_option_param(t, k))
			continue;
		kind = opt_kind(t, k);
		if (!create && (kind == 'f' || kind == 'F'))
			return pl_asprintf("can't change value of fixed parameter '%s'", k);
		if (!kind)
			return pl_asprintf("unexpected property '%s'", k);
		if (!strcmp(k, "content")) {
			char *err = NULL, *c = content_decode(t, json_string_value(v), &err);

			free(c);
			if (err)
				return err;
		}
	}
	for (const char *p = t->opts; create && *p;) {
		size_t l = strcspn(p, " ");

		if (*p == '=' && !json_object_getn(params, p + 1, l - 1))
			return pl_asprintf("missing value for required option '%.*s'", (int)l - 1,
					   p + 1);
		p += l;
		p += strspn(p, " ");
	}
	return NULL;
}

/* Set one option on a storage from its text value. */
static void
storage_set(struct pl_sim_storage *st, const struct stype *t, const char *k, const char *v)
{
	if (!strcmp(k, "content")) {
		char *err = NULL;

		free(st->content);
		st->content = content_decode(t, v, &err);
		free(err);
		if (!st->content)
			st->content = pl_strdup("none");
	} else if (!strcmp(k, "path")) {
		free(st->path);
		st->path = pl_strdup(v);
	} else if (!strcmp(k, "shared")) {
		st->shared = t->shared || (pl_bool_norm(v) && pl_bool_norm(v)[0] == '1');
	} else if (!strcmp(k, "nodes")) {
		char *dup = pl_strdup(v), *save = NULL, *tok;

		json_decref(st->nodes);
		st->nodes = json_array();
		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save))
			json_array_append_new(st->nodes, json_string(tok));
		free(dup);
		if (!json_array_size(st->nodes)) {
			json_decref(st->nodes);
			st->nodes = NULL;
		}
	} else {
		json_object_set_new(st->cfg, k, json_string(v));
	}
}

static void
storage_unset(struct pl_sim_storage *st, const char *k)
{
	if (!strcmp(k, "nodes")) {
		json_decref(st->nodes);
		st->nodes = NULL;
	} else if (!strcmp(k, "content")) {
		free(st->content);
		st->content = pl_strdup(stype_find(st->type)->content_dflt);
	} else if (!strcmp(k, "shared")) {
		st->shared = stype_find(st->type)->shared;
	} else {
		json_object_del(st->cfg, k);
	}
}

static void
h_create(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	const char *id = pl_sim_p(r, "storage"), *type = pl_sim_p(r, "type");
	const struct stype *t = stype_find(type);
	json_t *params = json_deep_copy(r->params);
	struct pl_sim_storage *st;
	const char *k;
	json_t *v;
	char *err;

	if (!t) {
		pl_sim_fail(r, 501,
			    "storage type '%s' is not simulated (pvelab sim models dir, "
			    "nfs, cifs, lvmthin, zfspool and pbs)",
			    type ? type : "");
		goto out;
	}
	/* "prevent an empty nodelist" */
	if (pl_json_str(params, "nodes") && !*pl_json_str(params, "nodes"))
		json_object_del(params, "nodes");
	if ((err = check_config(t, params, true)) != NULL) {
		pl_sim_fail(r, 500, "%s", err);
		free(err);
		goto out;
	}
	if (pl_sim_storage_find(s, id)) {
		pl_sim_fail(r, 500, "create storage failed: storage ID '%s' already defined", id);
		goto out;
	}
	s->stores = pl_realloc(s->stores, (s->nstores + 1) * sizeof(*s->stores));
	st = &s->stores[s->nstores++];
	memset(st, 0, sizeof(*st));
	st->id = pl_strdup(id);
	st->type = pl_strdup(type);
	st->content = pl_strdup(t->content_dflt);
	st->shared = t->shared;
	st->total = (t->shared ? 4096ULL : 500ULL) << 30;
	st->cfg = json_object();
	json_object_foreach(params, k, v)
		if (is_option_param(t, k) && json_string_value(v))
			storage_set(st, t, k, json_string_value(v));
	s->dirty = true;
	pl_sim_ok(r, json_pack("{s:s,s:s}", "storage", id, "type", type));
out:
	json_decref(params);
}

/* The checks of a PUT's delete list; NULL or the error (caller frees). */
static char *
check_delete(const struct stype *t, const json_t *params, const char *del)
{
	char *dup = pl_strdup(del), *save = NULL, *tok, *err = NULL;

	for (tok = strtok_r(dup, ",; ", &save); tok && !err; tok = strtok_r(NULL, ",; ", &save)) {
		char kind = opt_kind(t, tok);

		if (!kind)
			err = pl_asprintf("no such option '%s'", tok);
		else if (kind == 'f')
			err = pl_asprintf("unable to delete required option '%s'", tok);
		else if (kind == 'F')
			err = pl_asprintf("unable to delete fixed option '%s'", tok);
		else if (json_object_get(params, tok))
			err = pl_asprintf("cannot set and delete property '%s' at the same time!",
					  tok);
	}
	free(dup);
	return err;
}

static void
h_update(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	const char *id = pl_sim_p(r, "storage"), *digest = pl_sim_p(r, "digest");
	const char *del = pl_sim_p(r, "delete");
	struct pl_sim_storage *st = pl_sim_storage_find(s, id);
	const struct stype *t;
	char cur[41], *err = NULL;
	const char *k;
	json_t *v;

	storecfg_digest(s, cur);
	if (digest && strcmp(digest, cur)) {
		pl_sim_fail(r, 500,
			    "update storage failed: detected modified configuration - file "
			    "changed by other user? Try again.");
		return;
	}
	if (!st) {
		pl_sim_fail(r, 500, "update storage failed: storage '%s' does not exist", id);
		return;
	}
	if ((t = stype_find(st->type)) == NULL) {
		pl_sim_fail(r, 501, "storage type '%s' is not simulated", st->type);
		return;
	}
	if ((err = check_config(t, r->params, false)) == NULL && del)
		err = check_delete(t, r->params, del);
	if (err) {
		pl_sim_fail(r, 500, "update storage failed: %s", err);
		free(err);
		return;
	}
	if (!st->cfg)
		st->cfg = json_object();
	if (del) {
		char *dup = pl_strdup(del), *save = NULL, *tok;

		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save))
			storage_unset(st, tok);
		free(dup);
	}
	json_object_foreach(r->params, k, v)
		if (is_option_param(t, k) && json_string_value(v))
			storage_set(st, t, k, json_string_value(v));
	s->dirty = true;
	pl_sim_ok(r, json_pack("{s:s,s:s}", "storage", st->id, "type", st->type));
}

/* PVE::AccessControl::remove_storage_access: the storage leaves every pool. */
static void
pools_forget_storage(struct pl_sim *s, const char *id)
{
	const char *k;
	json_t *p;

	json_object_foreach(s->pools, k, p) {
		json_t *a = json_object_get(p, "storage");

		for (size_t i = json_array_size(a); i-- > 0;)
			if (json_string_value(json_array_get(a, i)) &&
			    !strcmp(json_string_value(json_array_get(a, i)), id))
				json_array_remove(a, i);
	}
}

static void
h_delete(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	const char *id = pl_sim_p(r, "storage");
	struct pl_sim_storage *st = pl_sim_storage_find(s, id);
	size_t i;

	if (!st) {
		pl_sim_fail(r, 500, "delete storage failed: storage '%s' does not exist", id);
		return;
	}
	pools_forget_storage(s, id);
	s->dirty = true;
	if (!strcmp(id, "local")) {
		/* PVE::Storage::Plugin::parse_config puts a default 'local' (dir,
		 * /var/lib/vz) back whenever storage.cfg lacks one; its files stay. */
		free(st->type);
		st->type = pl_strdup("dir");
		free(st->content);
		st->content = pl_strdup("backup,images,iso,rootdir,snippets,vztmpl");
		free(st->path);
		st->path = pl_strdup("/var/lib/vz");
		st->shared = false;
		json_decref(st->nodes);
		st->nodes = NULL;
		json_decref(st->cfg);
		st->cfg = json_pack("{s:s}", "prune-backups", "keep-all=1");
		pl_sim_ok(r, json_null());
		return;
	}
	/* PVE removes only the section: guests keep their lines naming the
	 * storage, its volumes become unreachable (the data stays on the
	 * device, which the simulator does not keep). */
	i = (size_t)(st - s->stores);
	pl_sim_storage_release(st);
	memmove(&s->stores[i], &s->stores[i + 1], (s->nstores - i - 1) * sizeof(*s->stores));
	s->nstores--;
	pl_sim_ok(r, json_null());
}

const struct pl_sim_route_def pl_sim_storecfg_routes[] = {
	{ PL_SIM_GET, "/storage", h_list, false, 0 },
	{ PL_SIM_POST, "/storage", h_create, false, 0 },
	{ PL_SIM_GET, "/storage/{storage}", h_get, false, 0 },
	{ PL_SIM_PUT, "/storage/{storage}", h_update, false, 0 },
	{ PL_SIM_DELETE, "/storage/{storage}", h_delete, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
