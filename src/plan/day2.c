/*
 * Day-2 configuration (see day2.h): storages, backup jobs and pools, each
 * declared entry turned into the parameters PVE's API takes, compared with
 * the live object key by key (lists as sets), and changed with one call.
 */
#include "core/common.h"
#include "plan/day2.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/access.h"
#include "core/json.h"
#include "core/pci.h"
#include "core/snapshot.h"
#include "core/str.h"
#include "model/guest.h"

#include <ctype.h>

#define MARK_OPEN "[pvelab:"

bool
pl_day2_action(const char *a)
{
	return a && (!strcmp(a, "storage") || !strcmp(a, "backup_job") || !strcmp(a, "pool") ||
		     !strcmp(a, "pci_mapping"));
}

/* A value as the API's text: booleans 1/0, numbers plain. */
static char *
text_of(const json_t *v)
{
	if (json_is_string(v))
		return pl_strdup(json_string_value(v));
	if (json_is_boolean(v))
		return pl_strdup(json_is_true(v) ? "1" : "0");
	if (json_is_integer(v))
		return pl_asprintf("%lld", (long long)json_integer_value(v));
	if (json_is_real(v))
		return pl_asprintf("%g", json_real_value(v));
	return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A list ("a,b c;d", or a YAML list) as its sorted unique items joined by ','. */
static char *
set_norm(const json_t *v)
{
	char *items[256], *t = NULL, *tok, *save = NULL;
	size_t n = 0, i;
	struct pl_buf b;

	pl_buf_init(&b, 1 << 16);
	if (json_is_array(v)) {
		const json_t *e;

		json_array_foreach(v, i, e) {
			char *s = text_of(e);

			if (s)
				pl_buf_addf(&b, "%s%s", b.len ? "," : "", s);
			free(s);
		}
		t = pl_strdup(b.len ? b.data : "");
	} else {
		t = text_of(v);
	}
	pl_buf_truncate(&b, 0);
	for (tok = t ? strtok_r(t, ",; ", &save) : NULL; tok && n < PL_ARRAY_LEN(items);
	     tok = strtok_r(NULL, ",; ", &save))
		items[n++] = tok;
	qsort(items, n, sizeof(*items), cmp_str);
	for (i = 0; i < n; i++)
		if (i == 0 || strcmp(items[i], items[i - 1]))
			pl_buf_addf(&b, "%s%s", b.len ? "," : "", items[i]);
	char *out = pl_strdup(b.len ? b.data : "");

	free(t);
	pl_buf_release(&b);
	return out;
}

/* keep: {last: 3, daily: 7} as prune-backups' property string. */
static char *
prune_of(const json_t *keep)
{
	static const char *const keys[] = { "all",    "last",    "hourly", "daily",
					    "weekly", "monthly", "yearly" };
	struct pl_buf b;

	if (!json_is_object(keep))
		return NULL;
	pl_buf_init(&b, 1024);
	for (size_t i = 0; i < PL_ARRAY_LEN(keys); i++) {
		char *v = text_of(json_object_get(keep, keys[i]));

		if (v)
			pl_buf_addf(&b, "%skeep-%s=%s", b.len ? "," : "", keys[i], v);
		free(v);
	}
	char *out = pl_strdup(b.len ? b.data : "keep-all=1");

	pl_buf_release(&b);
	return out;
}

/* prune-backups back into keep: {...} (import). */
static json_t *
keep_of(const char *prune)
{
	json_t *keep = json_object();
	char *t = pl_strdup(prune), *tok, *save = NULL;

	for (tok = strtok_r(t, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		long long n;

		if (!eq || strncmp(tok, "keep-", 5))
			continue;
		*eq = 0;
		if (!strcmp(tok + 5, "all"))
			json_object_set_new(keep, "all", json_boolean(strcmp(eq + 1, "0") != 0));
		else if (pl_str_to_ll(eq + 1, 0, 1000000, &n) == 0)
			json_object_set_new(keep, tok + 5, json_integer(n));
	}
	free(t);
	return keep;
}

char *
pl_day2_mark(const char *comment, const char *project)
{
	if (comment && *comment)
		return pl_asprintf("%s %s%s]", comment, MARK_OPEN, project);
	return pl_asprintf("%s%s]", MARK_OPEN, project);
}

char *
pl_day2_marker(const char *comment, char **user)
{
	const char *m = comment ? strstr(comment, MARK_OPEN) : NULL;
	size_t n;

	if (user)
		*user = NULL;
	if (m == NULL || (n = strlen(m)) < strlen(MARK_OPEN) + 2 || m[n - 1] != ']') {
		if (user && comment && *comment)
			*user = pl_strdup(comment);
		return NULL;
	}
	if (user && m > comment)
		*user = pl_strndup(comment, (size_t)(m - comment) - (m[-1] == ' '));
	return pl_strndup(m + strlen(MARK_OPEN), n - strlen(MARK_OPEN) - 1);
}

/* --- planning --- */

struct d2 {
	const struct pl_config *cfg;
	const json_t *snap;
	const char *project;
	const json_t *guests; /* the plan's guest changes */
	json_t *changes, *blocked;
	const json_t *only; /* a profile's guests ({name: true}), or NULL: all */
};

/* Whether g (a declared guest) is one the plan is for. */
static bool
selected(const struct d2 *d, const json_t *g)
{
	return d->only == NULL || json_object_get(d->only, pl_json_str_or(g, "name", ""));
}

/* Whether v (a declared guest or part of it) names storage id: a volume
 * "id:..." or a "storage: id" key. */
static bool
names_storage(const json_t *v, const char *id)
{
	size_t n = strlen(id), i;
	const char *k;
	json_t *e;

	if (json_is_string(v))
		return !strncmp(json_string_value(v), id, n) && json_string_value(v)[n] == ':';
	json_object_foreach((json_t *)v, k, e)
		if ((!strcmp(k, "storage") && json_is_string(e) &&
		     !strcmp(json_string_value(e), id)) ||
		    names_storage(e, id))
			return true;
	json_array_foreach(v, i, e)
		if (names_storage(e, id))
			return true;
	return false;
}

/* With a profile: whether one of its guests needs the pool or storage e. */
static bool
needed(const struct d2 *d, bool pool, const json_t *e)
{
	const char *id = pl_json_str_or(e, "name", "");
	const json_t *g;
	size_t i;

	if (d->only == NULL)
		return true;
	json_array_foreach(pl_config_guests(d->cfg), i, g)
		if (selected(d, g) &&
		    (pool ? !strcmp(pl_json_str_or(g, "pool", ""), id) : names_storage(g, id)))
			return true;
	return false;
}

static void
block(struct d2 *d, const char *what, const char *id, char *reason)
{
	char *who = pl_asprintf("%s %s", what, id);

	json_array_append_new(d->blocked, json_pack("{s:s,s:s}", "guest", who, "reason", reason));
	free(who);
	free(reason);
}

static json_t *
change(const char *action, const char *id, const char *cls, const char *what, const char *method,
       char *path, json_t *params)
{
	json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "action", action, "type", action,
			      "guest", id, "class", cls, "what", what, "method", method, "path",
			      path, "params", params ? params : json_object());

	free(path);
	return c;
}

/* An update of the keys in set (taken), when diffs (taken) has any. */
static void
add_update(struct d2 *d, const char *action, const char *id, const char *what, char *path,
	   json_t *set, json_t *diffs)
{
	json_t *c;

	if (json_array_size(diffs) == 0) {
		free(path);
		json_decref(set);
		json_decref(diffs);
		return;
	}
	c = change(action, id, "update", what, "PUT", path, set);
	json_object_set_new(c, "diffs", diffs);
	json_array_append_new(d->changes, c);
}

/* Keys whose text is a set (order and duplicates do not count). */
static bool
set_key(const char *k)
{
	return !strcmp(k, "content") || !strcmp(k, "nodes") || !strcmp(k, "vmid") ||
	       !strcmp(k, "exclude") || !strcmp(k, "prune-backups");
}

/* Compare want's keys (but skip) with live's: diffs, and the keys that
 * differ with their wanted values in set. */
static json_t *
diff_keys(const json_t *want, const json_t *live, const char *const *skip, size_t nskip,
	  json_t *set)
{
	json_t *diffs = json_array(), *v;
	const char *k;

	json_object_foreach((json_t *)want, k, v) {
		bool skipped = false;

		for (size_t i = 0; i < nskip; i++)
			skipped |= !strcmp(k, skip[i]);
		if (skipped)
			continue;
		const json_t *lv = json_object_get(live, k);
		char *w = set_key(k) ? set_norm(v) : text_of(v);
		char *h = lv == NULL ? NULL : set_key(k) ? set_norm(lv) : text_of(lv);
		/* an unset boolean is its default: off, except a job's enabled */
		bool same = h ? !strcmp(w, h) :
				(!strcmp(w, "0") && strcmp(k, "enabled")) ||
					    (!strcmp(k, "enabled") && !strcmp(w, "1"));

		if (!same) {
			json_array_append_new(diffs,
					      json_pack("{s:s,s:s?,s:s,s:s}", "key", k, "from", h,
							"to", w, "class", "live"));
			json_object_set(set, k, v);
		}
		free(w);
		free(h);
	}
	return diffs;
}

/* Guests (by name) a volume or a job of storage id needs: "name (vmid)". */
static json_t *
storage_users(const struct d2 *d, const char *id, const json_t *spare)
{
	json_t *users = json_array();
	const json_t *g, *v, *j;
	const char *k;
	size_t i, n = strlen(id);

	json_array_foreach(json_object_get(d->snap, PL_SNAP_GUESTS), i, g) {
		/* a config not read may hold a volume there: it counts */
		bool uses = !json_is_object(json_object_get(g, PL_SNAP_CONFIG));

		if (json_object_get(spare, pl_json_str_or(g, "name", "")))
			continue;
		json_object_foreach((json_t *)json_object_get(g, PL_SNAP_CONFIG), k, v) {
			const char *s = json_string_value(v);

			uses |= s && !strncmp(s, id, n) && s[n] == ':';
		}
		if (uses)
			json_array_append_new(
				users,
				json_sprintf("%s (%lld%s)", pl_json_str_or(g, "name", "?"),
					     pl_json_int(g, "vmid", 0),
					     json_is_object(json_object_get(g, PL_SNAP_CONFIG)) ?
						     "" :
						     ", its config not read"));
	}
	json_array_foreach(json_object_get(d->snap, PL_SNAP_JOBS), i, j)
		if (!strcmp(pl_json_str_or(j, "storage", ""), id) &&
		    !json_is_true(json_object_get(spare, pl_json_str_or(j, "id", ""))))
			json_array_append_new(users, json_sprintf("backup job '%s'",
								  pl_json_str_or(j, "id", "?")));
	return users;
}

static char *
joined(const json_t *list)
{
	struct pl_buf b;
	const json_t *e;
	size_t i;

	pl_buf_init(&b, 1 << 16);
	json_array_foreach(list, i, e)
		pl_buf_addf(&b, "%s%s", i ? ", " : "", json_string_value(e));
	char *out = pl_strdup(b.len ? b.data : "");

	pl_buf_release(&b);
	return out;
}

/* The reason a storage cannot be removed now, or NULL. */
static char *
storage_busy(const struct d2 *d, const char *id, const json_t *spare)
{
	json_t *users = storage_users(d, id, spare);
	char *why = NULL;

	if (json_array_size(users)) {
		char *list = joined(users);

		why = pl_asprintf(
			"storage '%s' is in use by %s (Proxmox would remove it anyway and "
			"leave their volumes unreachable: move them or delete them first)",
			id, list);
		free(list);
	}
	json_decref(users);
	return why;
}

/* The storage options storages: names as the API does. */
static const char *const storage_keys[] = { "path",     "server",    "export",    "share",
					    "username", "datastore", "namespace", "vgname",
					    "thinpool", "pool" };

static const char *const fixed_keys[] = { "type",      "path",   "server",   "export", "share",
					  "datastore", "vgname", "thinpool", "pool" };

static json_t *
storage_params(const json_t *s, json_t *secrets)
{
	json_t *p = json_pack("{s:s,s:s}", "storage", pl_json_str_or(s, "name", ""), "type",
			      pl_json_str_or(s, "type", ""));
	const json_t *v;
	const char *k;
	char *t;

	for (size_t i = 0; i < PL_ARRAY_LEN(storage_keys); i++)
		if (pl_json_str(s, storage_keys[i]))
			json_object_set_new(p, storage_keys[i],
					    json_string(pl_json_str(s, storage_keys[i])));
	if (json_is_array(json_object_get(s, "content")))
		json_object_set_new(p, "content",
				    json_string((t = set_norm(json_object_get(s, "content")))));
	else
		t = NULL;
	free(t);
	if (json_is_array(json_object_get(s, "nodes"))) {
		t = set_norm(json_object_get(s, "nodes"));
		json_object_set_new(p, "nodes", json_string(t));
		free(t);
	}
	if (json_object_get(s, "shared"))
		json_object_set_new(p, "shared",
				    json_boolean(json_is_true(json_object_get(s, "shared"))));
	if (json_object_get(s, "disable"))
		json_object_set_new(p, "disable",
				    json_boolean(json_is_true(json_object_get(s, "disable"))));
	if ((t = prune_of(json_object_get(s, "keep"))) != NULL)
		json_object_set_new(p, "prune-backups", json_string(t));
	free(t);
	json_object_foreach((json_t *)json_object_get(s, "options"), k, v)
		if ((t = text_of(v)) != NULL) {
			json_object_set_new(p, k, json_string(t));
			free(t);
		}
	if (secrets && pl_json_str(s, "password_file"))
		json_object_set_new(secrets, "password",
				    json_string(pl_json_str(s, "password_file")));
	if (secrets && pl_json_str(s, "fingerprint_file"))
		json_object_set_new(secrets, "fingerprint",
				    json_string(pl_json_str(s, "fingerprint_file")));
	return p;
}

static void
plan_storage(struct d2 *d, const json_t *s)
{
	const char *id = pl_json_str_or(s, "name", "");
	const json_t *live =
		pl_json_find(json_object_get(d->snap, PL_SNAP_STORECFG), "storage", id, false);
	bool absent = !strcmp(pl_json_str_or(s, "state", "present"), "absent");
	json_t *secrets = json_object(), *p, *c;
	char *what = pl_asprintf("%s storage", pl_json_str_or(s, "type", "?"));

	if (absent && live) {
		char *why = storage_busy(d, id, NULL);

		if (why)
			block(d, "storage", id, why);
		else
			json_array_append_new(d->changes,
					      change("storage", id, "delete", what, "DELETE",
						     pl_asprintf("/storage/%s", id), NULL));
	} else if (!absent && !live) {
		p = storage_params(s, secrets);
		c = change("storage", id, "create", what, "POST", pl_strdup("/storage"), p);
		if (json_object_size(secrets))
			json_object_set(c, "secrets", secrets);
		json_array_append_new(d->changes, c);
	} else if (!absent) {
		json_t *set = json_object(), *diffs;
		static const char *const skip[] = { "storage" };

		p = storage_params(s, secrets);
		diffs = diff_keys(p, live, skip, PL_ARRAY_LEN(skip), set);
		for (size_t i = 0; i < PL_ARRAY_LEN(fixed_keys); i++)
			if (json_object_get(set, fixed_keys[i])) {
				block(d, "storage", id,
				      pl_asprintf("%s of storage '%s' cannot change ('%s' -> "
						  "'%s'): Proxmox fixes "
						  "it once the storage exists (declare a new "
						  "storage instead)",
						  fixed_keys[i], id,
						  pl_json_str_or(live, fixed_keys[i], ""),
						  pl_json_str_or(p, fixed_keys[i], "")));
				json_decref(set);
				json_decref(diffs);
				json_decref(p);
				goto out;
			}
		add_update(d, "storage", id, what, pl_asprintf("/storage/%s", id), set, diffs);
		json_decref(p);
	}
out:
	free(what);
	json_decref(secrets);
}

/* The vmid of a guest named (or numbered) ref: live, or made by this plan. */
static long long
resolve_guest(const struct d2 *d, const json_t *ref)
{
	const json_t *g;
	size_t i;
	long long n;

	if (json_is_integer(ref))
		return json_integer_value(ref);
	if (!json_is_string(ref))
		return 0;
	if (pl_str_to_ll(json_string_value(ref), 1, 999999999, &n) == 0)
		return n;
	json_array_foreach(d->guests, i, g)
		if (!strcmp(pl_json_str_or(g, "guest", ""), json_string_value(ref)) &&
		    pl_json_int(g, "vmid", 0))
			return pl_json_int(g, "vmid", 0);
	json_array_foreach(json_object_get(d->snap, PL_SNAP_GUESTS), i, g)
		if (!strcmp(pl_json_str_or(g, "name", ""), json_string_value(ref)))
			return pl_json_int(g, "vmid", 0);
	return 0;
}

static bool
has_tag(const char *tags, const json_t *want)
{
	const json_t *t;
	size_t i;
	bool hit = false;

	if (tags == NULL)
		return false;
	json_array_foreach(want, i, t) {
		char *list = pl_strdup(tags), *tok, *save = NULL;

		for (tok = strtok_r(list, ",; ", &save); tok && !hit;
		     tok = strtok_r(NULL, ",; ", &save))
			hit = !strcasecmp(tok, json_string_value(t));
		free(list);
	}
	return hit;
}

/* The create of this plan named ref whose vmid apply asks Proxmox for. */
static const json_t *
made_at_apply(const struct d2 *d, const json_t *ref)
{
	const json_t *g;
	size_t i;

	json_array_foreach(d->guests, i, g)
		if (json_is_string(ref) &&
		    !strcmp(pl_json_str_or(g, "guest", ""), json_string_value(ref)) &&
		    json_is_true(json_object_get(g, "vmid_at_apply")))
			return g;
	return NULL;
}

/* A job cannot name a vmid the plan does not know yet (see plan.c). */
static char *
at_apply_why(const json_t *create)
{
	return pl_asprintf("guest '%s' gets its vmid when apply creates it (the token does not "
			   "see every guest): declare its vmid, or apply and plan again to add "
			   "it to this job",
			   pl_json_str_or(create, "guest", "?"));
}

/* guests:, tags: or exclude: as a vmid list; NULL and *why when a name is unknown. */
static char *
vmid_list(const struct d2 *d, const json_t *refs, const json_t *tags, char **why)
{
	json_t *ids = json_array();
	const json_t *r, *g;
	size_t i;
	char *out;

	json_array_foreach(refs, i, r) {
		long long v = resolve_guest(d, r);

		if (v == 0 && (g = made_at_apply(d, r)) != NULL) {
			*why = at_apply_why(g);
			json_decref(ids);
			return NULL;
		}
		if (v == 0) {
			char *t = text_of(r);

			*why = pl_asprintf("no guest '%s' in the cluster or the config",
					   t ? t : "?");
			free(t);
			json_decref(ids);
			return NULL;
		}
		json_array_append_new(ids, json_integer(v));
	}
	if (json_array_size(tags)) {
		json_array_foreach(json_object_get(d->snap, PL_SNAP_GUESTS), i, g)
			if (has_tag(pl_json_str(g, "tags"), tags))
				json_array_append_new(ids, json_integer(pl_json_int(g, "vmid", 0)));
		json_array_foreach(d->guests, i, g) {
			if (strcmp(pl_json_str_or(g, "action", ""), "create") ||
			    !has_tag(pl_json_str(json_object_get(g, "config"), "tags"), tags))
				continue;
			if (json_is_true(json_object_get(g, "vmid_at_apply"))) {
				*why = at_apply_why(g);
				json_decref(ids);
				return NULL;
			}
			json_array_append_new(ids, json_integer(pl_json_int(g, "vmid", 0)));
		}
	}
	out = set_norm(ids);
	json_decref(ids);
	return out;
}

/* A job's plain keys: YAML's, the API's. */
static const char *const job_keys[][2] = {
	{ "schedule", "schedule" },
	{ "storage", "storage" },
	{ "mode", "mode" },
	{ "compress", "compress" },
	{ "node", "node" },
	{ "pool", "pool" },
	{ "notes_template", "notes-template" },
	{ "notification_mode", "notification-mode" },
};

/* A declared job as /cluster/backup's parameters; NULL and *why if it cannot be. */
static json_t *
job_params(const struct d2 *d, const json_t *b, char **why)
{
	json_t *p = json_pack("{s:s}", "id", pl_json_str_or(b, "id", ""));
	char *t;

	for (size_t i = 0; i < PL_ARRAY_LEN(job_keys); i++)
		if ((t = text_of(json_object_get(b, job_keys[i][0]))) != NULL) {
			json_object_set_new(p, job_keys[i][1], json_string(t));
			free(t);
		}
	if (json_is_true(json_object_get(b, "all")))
		json_object_set_new(p, "all", json_true());
	if (json_array_size(json_object_get(b, "guests")) ||
	    json_array_size(json_object_get(b, "tags"))) {
		if ((t = vmid_list(d, json_object_get(b, "guests"), json_object_get(b, "tags"),
				   why)) == NULL)
			goto bad;
		if (*t == 0) {
			free(t);
			*why = pl_strdup("its tags select no guest (a job needs at least one)");
			goto bad;
		}
		json_object_set_new(p, "vmid", json_string(t));
		free(t);
	}
	if (json_array_size(json_object_get(b, "exclude"))) {
		if ((t = vmid_list(d, json_object_get(b, "exclude"), NULL, why)) == NULL)
			goto bad;
		json_object_set_new(p, "exclude", json_string(t));
		free(t);
	}
	if ((t = prune_of(json_object_get(b, "keep"))) != NULL)
		json_object_set_new(p, "prune-backups", json_string(t));
	free(t);
	json_object_set_new(p, "enabled", json_boolean(pl_json_bool(b, "enabled", true)));
	t = pl_day2_mark(pl_json_str(b, "comment"), d->project);
	json_object_set_new(p, "comment", json_string(t));
	free(t);
	return p;
bad:
	json_decref(p);
	return NULL;
}

/* Who a live job or pool belongs to: NULL when this project; else why it
 * is left alone. */
static char *
not_ours(const char *project, const char *comment, const char *what, const char *id,
	 const char *ref)
{
	char *owner = pl_day2_marker(comment, NULL), *why = NULL;

	if (owner == NULL)
		why = pl_asprintf(
			"%s '%s' exists and pvelab does not manage it (pvelab import %s:%s "
			"adopts it)",
			what, id, ref, id);
	else if (strcmp(owner, project))
		why = pl_asprintf("%s '%s' is managed by project '%s'", what, id, owner);
	free(owner);
	return why;
}

static void
plan_job(struct d2 *d, const json_t *b)
{
	const char *id = pl_json_str_or(b, "id", "");
	const json_t *live = pl_json_find(json_object_get(d->snap, PL_SNAP_JOBS), "id", id, false);
	char *why = NULL;
	json_t *p;

	if (live && (why = not_ours(d->project, pl_json_str(live, "comment"), "backup job", id,
				    "backup-job"))) {
		block(d, "backup job", id, why);
		return;
	}
	if ((p = job_params(d, b, &why)) == NULL) {
		block(d, "backup job", id, why);
		return;
	}
	if (live == NULL) {
		json_array_append_new(d->changes, change("backup_job", id, "create", "backup job",
							 "POST", pl_strdup("/cluster/backup"), p));
		return;
	}
	static const char *const skip[] = { "id" };
	static const char *const selection[] = { "all", "vmid", "pool", "exclude" };
	json_t *set = json_object(), *diffs = diff_keys(p, live, skip, PL_ARRAY_LEN(skip), set);
	struct pl_buf del;

	/* a new selection replaces the old one: what it no longer has goes */
	pl_buf_init(&del, 1024);
	for (size_t i = 0; i < PL_ARRAY_LEN(selection); i++)
		if (json_object_get(live, selection[i]) && !json_object_get(p, selection[i]) &&
		    !(!strcmp(selection[i], "all") && !json_is_true(json_object_get(live, "all")) &&
		      pl_json_int(live, "all", 0) == 0)) {
			pl_buf_addf(&del, "%s%s", del.len ? "," : "", selection[i]);
			json_array_append_new(diffs,
					      json_pack("{s:s,s:s,s:n,s:s}", "key", selection[i],
							"from", "(set)", "to", "class", "live"));
		}
	if (del.len)
		json_object_set_new(set, "delete", json_string(del.data));
	add_update(d, "backup_job", id, "backup job", pl_asprintf("/cluster/backup/%s", id), set,
		   diffs);
	pl_buf_release(&del);
	json_decref(p);
}

static void
plan_pool(struct d2 *d, const json_t *pd)
{
	const char *id = pl_json_str_or(pd, "name", "");
	const json_t *live =
		pl_json_find(json_object_get(d->snap, PL_SNAP_POOLS), "poolid", id, false);
	char *why = NULL, *comment = pl_day2_mark(pl_json_str(pd, "comment"), d->project);
	json_t *c;

	if (live && (why = not_ours(d->project, pl_json_str(live, "comment"), "pool", id, "pool")))
		block(d, "pool", id, why);
	else if (live == NULL)
		json_array_append_new(
			d->changes,
			change("pool", id, "create", "pool", "POST", pl_strdup("/pools"),
			       json_pack("{s:s,s:s}", "poolid", id, "comment", comment)));
	else if (strcmp(pl_json_str_or(live, "comment", ""), comment)) {
		c = change("pool", id, "update", "pool", "PUT", pl_asprintf("/pools/%s", id),
			   json_pack("{s:s}", "comment", comment));
		json_object_set_new(c, "diffs",
				    json_pack("[{s:s,s:s,s:s,s:s}]", "key", "comment", "from",
					      pl_json_str_or(live, "comment", ""), "to", comment,
					      "class", "live"));
		json_array_append_new(d->changes, c);
	}
	free(comment);
}

/* Members of pool id among live guests not in spare (names): "name (vmid)". */
static json_t *
pool_members(const struct d2 *d, const char *id, const json_t *spare)
{
	json_t *m = json_array();
	const json_t *g;
	size_t i;

	json_array_foreach(json_object_get(d->snap, PL_SNAP_GUESTS), i, g)
		if (!strcmp(pl_json_str_or(g, "pool", ""), id) &&
		    !json_object_get(spare, pl_json_str_or(g, "name", "")))
			json_array_append_new(m, json_sprintf("%s (%lld)",
							      pl_json_str_or(g, "name", "?"),
							      pl_json_int(g, "vmid", 0)));
	return m;
}

/* Remove a pool or job of this project (a pool only once empty). */
static void
remove_marked(struct d2 *d, const char *kind, const json_t *live, const json_t *spare)
{
	bool pool = !strcmp(kind, "pool");
	const char *id = pl_json_str_or(live, pool ? "poolid" : "id", "");

	if (pool) {
		json_t *m = pool_members(d, id, spare);

		if (json_array_size(m)) {
			char *list = joined(m);

			block(d, "pool", id,
			      pl_asprintf("pool '%s' still has guests: %s (Proxmox removes only an "
					  "empty "
					  "pool)",
					  id, list));
			free(list);
		} else {
			json_array_append_new(d->changes,
					      change("pool", id, "delete", "pool", "DELETE",
						     pl_asprintf("/pools/%s", id), NULL));
		}
		json_decref(m);
		return;
	}
	json_array_append_new(d->changes, change("backup_job", id, "delete", "backup job", "DELETE",
						 pl_asprintf("/cluster/backup/%s", id), NULL));
}

/* Whether a live job, pool (comment) or PCI mapping (description) carries
 * project's marker. */
static bool
ours(const json_t *live, const char *project)
{
	const char *text = pl_json_str(live, "comment");
	char *owner;

	if (text == NULL)
		text = pl_json_str(live, "description");
	owner = live ? pl_day2_marker(text, NULL) : NULL;
	bool yes = owner && !strcmp(owner, project);

	free(owner);
	return yes;
}

static bool
declared(const struct pl_config *cfg, const char *section, const char *key, const char *id)
{
	return pl_json_find(pl_config_get(cfg, section), key, id, false) != NULL;
}

/* The live guest a declared one is, among this project's (by vmid, else
 * by name), or NULL. */
static const json_t *
owned_live(const struct d2 *d, const json_t *g)
{
	const json_t *l;
	size_t i;

	json_array_foreach(json_object_get(d->snap, PL_SNAP_GUESTS), i, l) {
		bool same = json_object_get(g, "vmid") ?
				    pl_json_int(l, "vmid", 0) == pl_json_int(g, "vmid", -1) :
				    !strcmp(pl_json_str_or(l, "name", ""),
					    pl_json_str_or(g, "name", "?"));

		if (same)
			return pl_model_owned_by(l, d->project) ? l : NULL;
	}
	return NULL;
}

/* Guests' pool: keys: an existing guest of this project that is not in its
 * pool joins it (PUT /pools/ID vms=..., allow-move: out of the pool it was
 * in), one change per pool. A new guest gets its pool when created. */
static void
plan_members(struct d2 *d)
{
	json_t *joins, *ids; /* pool -> [vmids] */
	const json_t *g, *l;
	const char *pool;
	size_t i;

	if (!json_is_array(json_object_get(d->snap, PL_SNAP_POOLS)))
		return; /* not read: no pool is known to exist */
	joins = json_object();

	json_array_foreach(pl_config_guests(d->cfg), i, g) {
		pool = pl_json_str(g, "pool");
		if (pool == NULL || !selected(d, g) || (l = owned_live(d, g)) == NULL ||
		    !strcmp(pl_json_str_or(l, "pool", ""), pool))
			continue;
		/* a pool the token may not audit is neither listed nor named in
		 * its guests' entries: membership cannot be told, so it is left
		 * as it is (the create put the guest in it) */
		if (!pl_access_sees_pool(json_object_get(d->snap, PL_SNAP_PERMS), pool))
			continue;
		if (!pl_json_find(json_object_get(d->snap, PL_SNAP_POOLS), "poolid", pool, false) &&
		    !declared(d->cfg, "/pools", "name", pool)) {
			block(d, "pool", pool,
			      pl_asprintf("guest '%s' is to join pool '%s', which does not exist "
					  "(declare it "
					  "under pools:)",
					  pl_json_str_or(g, "name", "?"), pool));
			continue;
		}
		if (!json_object_get(joins, pool))
			json_object_set_new(joins, pool, json_array());
		json_array_append_new(json_object_get(joins, pool),
				      json_integer(pl_json_int(l, "vmid", 0)));
	}
	json_object_foreach(joins, pool, ids) {
		char *vms = set_norm(ids);
		json_t *c = change("pool", pool, "update", "pool members", "PUT",
				   pl_asprintf("/pools/%s", pool),
				   json_pack("{s:s,s:b}", "vms", vms, "allow-move", 1));

		json_object_set_new(c, "diffs",
				    json_pack("[{s:s,s:s,s:s,s:s}]", "key", "members", "from", "",
					      "to", vms, "class", "live"));
		json_object_set_new(c, "members", json_true());
		json_array_append_new(d->changes, c);
		free(vms);
	}
	json_decref(joins);
}

/* --- PCI mappings --- */

/* The mapping a guest's hostpci entry names, or NULL. */
static const char *
guest_mapping(const json_t *dev)
{
	return pl_json_str(dev, "mapping");
}

/* With a profile: whether one of its guests passes mapping id. */
static bool
mapping_needed(const struct d2 *d, const char *id)
{
	const json_t *g, *dev;
	size_t i, k;

	if (d->only == NULL)
		return true;
	json_array_foreach(pl_config_guests(d->cfg), i, g)
		json_array_foreach(selected(d, g) ? json_object_get(g, "hostpci") : NULL, k, dev)
			if (guest_mapping(dev) && !strcmp(guest_mapping(dev), id))
				return true;
	return false;
}

/* A map list as one text: each entry's keys sorted (any order PVE or the
 * web UI wrote them in), the entries in order (the first present on a node
 * is the one used). */
static char *
map_text(const json_t *list)
{
	struct pl_buf b;
	const json_t *e;
	size_t i;

	pl_buf_init(&b, 0);
	json_array_foreach(list, i, e) {
		json_t *parts = json_array();
		char *t = pl_strdup(json_string_value(e) ? json_string_value(e) : ""), *tok,
		     *save = NULL, *norm;

		for (tok = strtok_r(t, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
			json_array_append_new(parts, json_string(tok));
		norm = set_norm(parts);
		pl_buf_addf(&b, "%s%s", i ? " " : "", norm);
		free(norm);
		free(t);
		json_decref(parts);
	}
	return pl_buf_detach(&b, NULL);
}

/* Live guests (not in spare) whose config passes mapping id: "name (vmid)". */
static json_t *
mapping_users(const struct d2 *d, const char *id, const json_t *spare)
{
	json_t *users = json_array();
	const json_t *g, *v;
	const char *k;
	size_t i;

	json_array_foreach(json_object_get(d->snap, PL_SNAP_GUESTS), i, g) {
		bool uses = false;

		if (json_object_get(spare, pl_json_str_or(g, "name", "")))
			continue;
		json_object_foreach((json_t *)json_object_get(g, PL_SNAP_CONFIG), k, v) {
			const char *m =
				json_is_string(v) ? strstr(json_string_value(v), "mapping=") : NULL;

			uses |= pl_str_startswith(k, "hostpci") && m &&
				!strncmp(m + 8, id, strlen(id)) &&
				(m[8 + strlen(id)] == ',' || m[8 + strlen(id)] == '\0');
		}
		if (uses)
			json_array_append_new(users, json_sprintf("%s (%lld)",
								  pl_json_str_or(g, "name", "?"),
								  pl_json_int(g, "vmid", 0)));
	}
	return users;
}

static const char *const map_flags[][2] = {
	/* YAML key, API key */
	{ "mdev", "mdev" },
	{ "live_migration_capable", "live-migration-capable" },
};

static void
plan_pcimap(struct d2 *d, const json_t *pm)
{
	const char *id = pl_json_str_or(pm, "name", "");
	const json_t *live =
		pl_json_find(json_object_get(d->snap, PL_SNAP_PCIMAPS), "id", id, false);
	char *why = NULL, *desc = pl_day2_mark(pl_json_str(pm, "description"), d->project);
	json_t *map = json_array(), *p, *set, *diffs;
	const json_t *e;
	size_t i;

	if (live && (why = not_ours(d->project, pl_json_str(live, "description"), "PCI mapping", id,
				    "pci-mapping"))) {
		block(d, "PCI mapping", id, why);
		free(desc);
		json_decref(map);
		return;
	}
	json_array_foreach(json_object_get(pm, "map"), i, e) {
		char *t = pl_pci_map_entry(e);

		json_array_append_new(map, json_string(t));
		free(t);
	}
	p = json_pack("{s:s,s:o}", "description", desc, "map", map);
	for (size_t f = 0; f < PL_ARRAY_LEN(map_flags); f++)
		if (pl_json_bool(pm, map_flags[f][0], false))
			json_object_set_new(p, map_flags[f][1], json_true());
	if (live == NULL) {
		json_object_set_new(p, "id", json_string(id));
		json_array_append_new(d->changes,
				      change("pci_mapping", id, "create", "PCI mapping", "POST",
					     pl_strdup("/cluster/mapping/pci"), p));
		free(desc);
		return;
	}
	set = json_object();
	diffs = json_array();
	if (strcmp(pl_json_str_or(live, "description", ""), desc)) {
		json_array_append_new(diffs,
				      json_pack("{s:s,s:s,s:s,s:s}", "key", "description", "from",
						pl_json_str_or(live, "description", ""), "to", desc,
						"class", "live"));
		json_object_set_new(set, "description", json_string(desc));
	}
	char *want = map_text(map), *have = map_text(json_object_get(live, "map"));

	if (strcmp(want, have)) {
		json_array_append_new(diffs, json_pack("{s:s,s:s,s:s,s:s}", "key", "map", "from",
						       have, "to", want, "class", "live"));
		json_object_set(set, "map", map);
	}
	free(want);
	free(have);
	for (size_t f = 0; f < PL_ARRAY_LEN(map_flags); f++) {
		bool w = pl_json_bool(pm, map_flags[f][0], false);
		const json_t *lv = json_object_get(live, map_flags[f][1]);
		bool h = json_is_true(lv) || pl_json_int(live, map_flags[f][1], 0) != 0;

		if (w != h) {
			json_array_append_new(diffs,
					      json_pack("{s:s,s:s,s:s,s:s}", "key", map_flags[f][1],
							"from", h ? "1" : "0", "to", w ? "1" : "0",
							"class", "live"));
			json_object_set_new(set, map_flags[f][1], json_boolean(w));
		}
	}
	add_update(d, "pci_mapping", id, "PCI mapping", pl_asprintf("/cluster/mapping/pci/%s", id),
		   set, diffs);
	json_decref(p);
	free(desc);
}

/* A guest of the plan that passes a mapping neither declared nor in the
 * cluster would not start (QemuServer::PCI: "PCI device mapping not found"). */
static void
plan_mapping_refs(struct d2 *d)
{
	const json_t *g, *dev;
	size_t i, k;

	if (!json_is_array(json_object_get(d->snap, PL_SNAP_PCIMAPS)))
		return; /* not read (PVE 7): nothing is known */
	json_array_foreach(pl_config_guests(d->cfg), i, g)
		json_array_foreach(selected(d, g) ? json_object_get(g, "hostpci") : NULL, k, dev) {
			const char *m = guest_mapping(dev);

			if (m && !declared(d->cfg, "/pci_mappings", "name", m) &&
			    !pl_json_find(json_object_get(d->snap, PL_SNAP_PCIMAPS), "id", m,
					  false))
				block(d, "PCI mapping", m,
				      pl_asprintf(
					      "guest '%s' passes PCI mapping '%s', which does not "
					      "exist (declare it under pci_mappings:)",
					      pl_json_str_or(g, "name", "?"), m));
		}
}

/* Remove a mapping of this project, unless a guest that stays passes it. */
static void
remove_pcimap(struct d2 *d, const json_t *live, const json_t *spare)
{
	const char *id = pl_json_str_or(live, "id", "");
	json_t *users = mapping_users(d, id, spare);

	if (json_array_size(users)) {
		char *list = joined(users);

		block(d, "PCI mapping", id,
		      pl_asprintf("PCI mapping '%s' is still passed to %s (those VMs would not "
				  "start)",
				  id, list));
		free(list);
	} else {
		json_array_append_new(d->changes,
				      change("pci_mapping", id, "delete", "PCI mapping", "DELETE",
					     pl_asprintf("/cluster/mapping/pci/%s", id), NULL));
	}
	json_decref(users);
}

/* Declared sections whose live list could not be read block the plan. */
static bool
readable(struct d2 *d, const char *section, const char *snapkey, const char *path)
{
	if (!json_array_size(pl_config_get(d->cfg, section)) || json_object_get(d->snap, snapkey))
		return true;
	block(d, section + 1, "*",
	      pl_asprintf("cannot read %s (does the API token have Sys.Audit and Datastore.Audit?)",
			  path));
	return false;
}

void
pl_day2_plan(const struct pl_config *cfg, const json_t *snap, const char *project,
	     const json_t *guests, const json_t *only, json_t *changes, json_t *blocked)
{
	struct d2 d = { cfg, snap, project, guests, changes, blocked, only };
	const json_t *e;
	size_t i;

	if (readable(&d, "/storages", PL_SNAP_STORECFG, "/storage"))
		json_array_foreach(pl_config_get(cfg, "/storages"), i, e)
			if (needed(&d, false, e))
				plan_storage(&d, e);
	if (readable(&d, "/pools", PL_SNAP_POOLS, "/pools")) {
		json_array_foreach(pl_config_get(cfg, "/pools"), i, e)
			if (needed(&d, true, e))
				plan_pool(&d, e);
		plan_members(&d);
	}
	if (readable(&d, "/pci_mappings", PL_SNAP_PCIMAPS, "/cluster/mapping/pci"))
		json_array_foreach(pl_config_get(cfg, "/pci_mappings"), i, e)
			if (mapping_needed(&d, pl_json_str_or(e, "name", "")))
				plan_pcimap(&d, e);
	plan_mapping_refs(&d);
	if (only) /* backup jobs and removals belong to no profile */
		return;
	if (readable(&d, "/backups", PL_SNAP_JOBS, "/cluster/backup"))
		json_array_foreach(pl_config_get(cfg, "/backups"), i, e)
			plan_job(&d, e);
	/* this project's jobs and pools the config no longer declares */
	json_array_foreach(json_object_get(snap, PL_SNAP_JOBS), i, e)
		if (ours(e, project) &&
		    !declared(cfg, "/backups", "id", pl_json_str_or(e, "id", "")))
			remove_marked(&d, "backup_job", e, NULL);
	json_array_foreach(json_object_get(snap, PL_SNAP_POOLS), i, e)
		if (ours(e, project) &&
		    !declared(cfg, "/pools", "name", pl_json_str_or(e, "poolid", "")))
			remove_marked(&d, "pool", e, NULL);
	json_array_foreach(json_object_get(snap, PL_SNAP_PCIMAPS), i, e)
		if (ours(e, project) &&
		    !declared(cfg, "/pci_mappings", "name", pl_json_str_or(e, "id", "")))
			remove_pcimap(&d, e, NULL);
}

bool
pl_day2_needs_configs(const struct pl_config *cfg)
{
	const json_t *e;
	size_t i;

	json_array_foreach(pl_config_get(cfg, "/storages"), i, e)
		if (!strcmp(pl_json_str_or(e, "state", "present"), "absent"))
			return true;
	return false;
}

json_t *
pl_day2_destroy(const struct pl_config *cfg, const json_t *snap, const char *project,
		const json_t *owners, json_t *blocked)
{
	struct d2 d = { cfg, snap, project, NULL, json_array(), blocked, NULL };
	json_t *spare = json_object(); /* what destroy removes first: guests, jobs */
	const json_t *e, *live;
	size_t i;

	json_array_foreach(pl_config_guests(cfg), i, e)
		json_object_set_new(spare, pl_json_str_or(e, "name", ""), json_true());
	json_array_foreach(pl_config_get(cfg, "/backups"), i, e) {
		live = pl_json_find(json_object_get(snap, PL_SNAP_JOBS), "id",
				    pl_json_str_or(e, "id", ""), false);
		if (ours(live, project)) {
			json_object_set_new(spare, pl_json_str_or(e, "id", ""), json_true());
			remove_marked(&d, "backup_job", live, spare);
		}
	}
	json_array_foreach(pl_config_get(cfg, "/pools"), i, e) {
		live = pl_json_find(json_object_get(snap, PL_SNAP_POOLS), "poolid",
				    pl_json_str_or(e, "name", ""), false);
		if (ours(live, project))
			remove_marked(&d, "pool", live, spare);
	}
	json_array_foreach(pl_config_get(cfg, "/pci_mappings"), i, e) {
		live = pl_json_find(json_object_get(snap, PL_SNAP_PCIMAPS), "id",
				    pl_json_str_or(e, "name", ""), false);
		if (ours(live, project))
			remove_pcimap(&d, live, spare);
	}
	json_array_foreach(pl_config_get(cfg, "/storages"), i, e) {
		const char *id = pl_json_str_or(e, "name", "");
		char *why;

		if (!pl_json_find(json_object_get(snap, PL_SNAP_STORECFG), "storage", id, false))
			continue;
		if (strcmp(pl_json_str_or(owners, id, ""), project) != 0)
			block(&d, "storage", id,
			      pl_asprintf("not created or imported by project '%s' (state: absent "
					  "removes it)",
					  project));
		else if ((why = storage_busy(&d, id, spare)) != NULL)
			block(&d, "storage", id, why);
		else
			json_array_append_new(d.changes,
					      change("storage", id, "delete", "storage", "DELETE",
						     pl_asprintf("/storage/%s", id), NULL));
	}
	json_decref(spare);
	return d.changes;
}

void
pl_day2_sigs(const json_t *snap, json_t *sigs)
{
	static const char *const lists[][3] = { { PL_SNAP_STORECFG, "storage", "storage" },
						{ PL_SNAP_JOBS, "id", "backup job" },
						{ PL_SNAP_POOLS, "poolid", "pool" },
						{ PL_SNAP_PCIMAPS, "id", "PCI mapping" } };
	const json_t *e;
	size_t i;

	for (size_t k = 0; k < PL_ARRAY_LEN(lists); k++)
		json_array_foreach(json_object_get(snap, lists[k][0]), i, e) {
			json_t *o = json_deep_copy(e);
			char sha[65], *key = pl_asprintf("%s %s", lists[k][2],
							 pl_json_str_or(e, lists[k][1], "?"));

			json_object_del(o, "digest"); /* the whole file's */
			pl_json_sha256(o, sha);
			json_object_set_new(sigs, key, json_string(sha));
			json_decref(o);
			free(key);
		}
}

int
pl_day2_phase(const json_t *ch)
{
	const char *a = pl_json_str_or(ch, "action", "");

	if (!strcmp(pl_json_str_or(ch, "class", ""), "delete"))
		return !strcmp(a, "backup_job") ? 2 : 3;
	/* jobs and members name guests the same apply may create or move */
	return !strcmp(a, "backup_job") || json_is_true(json_object_get(ch, "members")) ? 2 : 0;
}

int
pl_day2_request(const json_t *ch, const char **method, char **path, json_t **params, char **errmsg)
{
	const char *k;
	json_t *f;

	*method = pl_json_str_or(ch, "method", "GET");
	*path = pl_strdup(pl_json_str_or(ch, "path", "/"));
	*params = json_deep_copy(json_object_get(ch, "params"));
	json_object_foreach((json_t *)json_object_get(ch, "secrets"), k, f) {
		char *secret = NULL;
		int r;

		if ((r = pl_file_read_secret(json_string_value(f), &secret, errmsg)) != 0) {
			pl_day2_request_free(*params);
			free(*path);
			*params = NULL;
			*path = NULL;
			return r;
		}
		secret[strcspn(secret, "\r\n")] = 0;
		json_object_set_new(*params, k, json_string(secret));
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	return 0;
}

void
pl_day2_request_free(json_t *params)
{
	const char *k;
	json_t *v;

	json_object_foreach(params, k, v)
		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v), json_string_length(v));
	json_decref(params);
}

/* --- import --- */

static const char *const import_kinds[][4] = {
	/* prefix, snapshot key, id key, YAML section */
	{ "storage:", PL_SNAP_STORECFG, "storage", "storages" },
	{ "backup-job:", PL_SNAP_JOBS, "id", "backups" },
	{ "pool:", PL_SNAP_POOLS, "poolid", "pools" },
	{ "pci-mapping:", PL_SNAP_PCIMAPS, "id", "pci_mappings" },
};

bool
pl_day2_import_arg(const char *arg)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(import_kinds); i++)
		if (pl_str_startswith(arg, import_kinds[i][0]))
			return true;
	return false;
}

/* A list ("a,b") as a YAML list of its sorted unique items. */
static json_t *
words(const json_t *v)
{
	char *t = set_norm(v), *tok, *save = NULL;
	json_t *l = json_array();

	for (tok = strtok_r(t, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		json_array_append_new(l, json_string(tok));
	free(t);
	return l;
}

static json_t *
storage_yaml(const json_t *live)
{
	static const char *const skip[] = { "storage",     "type",    "content",       "nodes",
					    "shared",      "disable", "prune-backups", "digest",
					    "fingerprint", "password" };
	json_t *y = json_pack("{s:s,s:s}", "name", pl_json_str_or(live, "storage", ""), "type",
			      pl_json_str_or(live, "type", "")),
	       *opts = json_object(), *v;
	const char *k;

	for (size_t i = 0; i < 2; i++)
		if (pl_json_str(live, i ? "nodes" : "content"))
			json_object_set_new(y, i ? "nodes" : "content",
					    words(json_object_get(live, i ? "nodes" : "content")));
	/* only a directory has the option; nfs, cifs and pbs are shared by type */
	if (json_object_get(live, "shared") && !strcmp(pl_json_str_or(live, "type", ""), "dir"))
		json_object_set_new(y, "shared", json_boolean(pl_json_int(live, "shared", 0) != 0));
	if (json_object_get(live, "disable"))
		json_object_set_new(y, "disable",
				    json_boolean(pl_json_int(live, "disable", 0) != 0));
	for (size_t i = 0; i < PL_ARRAY_LEN(storage_keys); i++)
		if (pl_json_str(live, storage_keys[i]))
			json_object_set_new(y, storage_keys[i],
					    json_string(pl_json_str(live, storage_keys[i])));
	if (pl_json_str(live, "prune-backups"))
		json_object_set_new(y, "keep", keep_of(pl_json_str(live, "prune-backups")));
	json_object_foreach((json_t *)live, k, v) {
		bool known = false;

		for (size_t i = 0; i < PL_ARRAY_LEN(storage_keys); i++)
			known |= !strcmp(k, storage_keys[i]);
		for (size_t i = 0; i < PL_ARRAY_LEN(skip); i++)
			known |= !strcmp(k, skip[i]);
		if (!known)
			json_object_set(opts, k, v);
	}
	if (json_object_size(opts))
		json_object_set(y, "options", opts);
	json_decref(opts);
	return y;
}

static json_t *
id_list(const char *list)
{
	json_t *l = json_array();
	char *t = pl_strdup(list), *tok, *save = NULL;
	long long n;

	for (tok = strtok_r(t, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save))
		json_array_append_new(l, pl_str_to_ll(tok, 1, 999999999, &n) == 0 ?
						 json_integer(n) :
						 json_string(tok));
	free(t);
	return l;
}

static json_t *
job_yaml(const json_t *live, const char *user)
{
	json_t *y = json_pack("{s:s}", "id", pl_json_str_or(live, "id", ""));

	for (size_t i = 0; i < PL_ARRAY_LEN(job_keys); i++) {
		char *t = text_of(json_object_get(live, job_keys[i][1]));

		if (t)
			json_object_set_new(y, job_keys[i][0], json_string(t));
		free(t);
	}
	if (pl_json_int(live, "all", 0) || json_is_true(json_object_get(live, "all")))
		json_object_set_new(y, "all", json_true());
	if (pl_json_str(live, "vmid"))
		json_object_set_new(y, "guests", id_list(pl_json_str(live, "vmid")));
	if (pl_json_str(live, "exclude"))
		json_object_set_new(y, "exclude", id_list(pl_json_str(live, "exclude")));
	if (pl_json_str(live, "prune-backups"))
		json_object_set_new(y, "keep", keep_of(pl_json_str(live, "prune-backups")));
	if (json_object_get(live, "enabled") && !pl_json_bool(live, "enabled", true) &&
	    pl_json_int(live, "enabled", 1) == 0)
		json_object_set_new(y, "enabled", json_false());
	if (user)
		json_object_set_new(y, "comment", json_string(user));
	return y;
}

/* A live mapping as its pci_mappings: entry (user: its description without
 * the marker). */
static json_t *
pcimap_yaml(const json_t *live, const char *user)
{
	json_t *y = json_pack("{s:s,s:[]}", "name", pl_json_str_or(live, "id", ""), "map"), *v;
	const json_t *e;
	size_t i;

	if (user)
		json_object_set_new(y, "description", json_string(user));
	for (size_t f = 0; f < PL_ARRAY_LEN(map_flags); f++)
		if (json_is_true(json_object_get(live, map_flags[f][1])) ||
		    pl_json_int(live, map_flags[f][1], 0))
			json_object_set_new(y, map_flags[f][0], json_true());
	json_array_foreach(json_object_get(live, "map"), i, e) {
		json_t *m = json_object();
		char *t = pl_strdup(json_string_value(e) ? json_string_value(e) : ""), *tok,
		     *save = NULL;
		long long n;

		for (tok = strtok_r(t, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(tok, '=');

			if (eq == NULL)
				continue;
			*eq++ = '\0';
			if (!strcmp(tok, "subsystem-id"))
				tok = "subsystem_id";
			v = !strcmp(tok, "iommugroup") && pl_str_to_ll(eq, 0, 65535, &n) == 0 ?
				    json_integer(n) :
				    json_string(eq);
			json_object_set_new(m, tok, v);
		}
		json_array_append_new(json_object_get(y, "map"), m);
		free(t);
	}
	return y;
}

json_t *
pl_day2_import(const json_t *snap, const char *arg, const char *project, const char **section,
	       json_t **mark, char **errmsg)
{
	size_t k;
	const char *id;
	const json_t *live = NULL, *list;
	char *owner, *user = NULL, *comment;
	json_t *y;

	*mark = NULL;
	for (k = 0; k < PL_ARRAY_LEN(import_kinds); k++)
		if (pl_str_startswith(arg, import_kinds[k][0]))
			break;
	if (k == PL_ARRAY_LEN(import_kinds)) {
		pl_seterr(errmsg, PL_EINVAL,
			  "'%s' names no storage, backup job, pool or PCI mapping", arg);
		return NULL;
	}
	id = arg + strlen(import_kinds[k][0]);
	list = json_object_get(snap, import_kinds[k][1]);
	if (list == NULL) {
		pl_seterr(errmsg, PL_EIO,
			  "cannot import '%s': the cluster's list of them could not be read", arg);
		return NULL;
	}
	if ((live = pl_json_find(list, import_kinds[k][2], id, false)) == NULL) {
		pl_seterr(errmsg, PL_ENOENT, "no %.*s '%s' in the cluster",
			  (int)strlen(import_kinds[k][0]) - 1, import_kinds[k][0], id);
		return NULL;
	}
	*section = import_kinds[k][3];
	if (k == 0)
		return storage_yaml(live);
	owner = pl_day2_marker(pl_json_str(live, k == 3 ? "description" : "comment"), &user);
	if (owner && strcmp(owner, project)) {
		pl_seterr(errmsg, PL_EINVAL,
			  "refusing to import '%s': it is managed by project '%s'", arg, owner);
		free(owner);
		free(user);
		return NULL;
	}
	comment = pl_day2_mark(user, project);
	if (k == 1) {
		y = job_yaml(live, user);
	} else if (k == 3) {
		y = pcimap_yaml(live, user);
	} else {
		y = json_pack("{s:s}", "name", id);
		if (user)
			json_object_set_new(y, "comment", json_string(user));
	}
	if (owner == NULL) { /* adopted: the marker goes on */
		char *path = k == 1 ? pl_asprintf("/cluster/backup/%s", id) :
			     k == 3 ? pl_asprintf("/cluster/mapping/pci/%s", id) :
				      pl_asprintf("/pools/%s", id);

		*mark = json_pack("{s:s,s:s,s:{s:s}}", "method", "PUT", "path", path, "params",
				  k == 3 ? "description" : "comment", comment);
		free(path);
	}
	free(comment);
	free(owner);
	free(user);
	return y;
}
