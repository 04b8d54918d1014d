/*
 * A firewall scope's recorded state (see firewall.h): what apply reads of a
 * scope before and after it writes (history rows), the readable difference
 * of two states (pvelab history), and the change that puts a scope back as
 * it was before a run (pvelab rollback), planned on the same calls as apply.
 */
#include "core/common.h"
#include "plan/firewall.h"
#include "plan/firewall_int.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

#include <ctype.h>

#define CLUSTER "/cluster/firewall"
#define GROUPS CLUSTER "/groups"
#define IPSETS CLUSTER "/ipset"
#define ALIASES CLUSTER "/aliases"

static bool
is_cluster(const json_t *scope)
{
	return !strcmp(pl_json_str_or(scope, "scope", ""), "cluster");
}

/* "/cluster/firewall", "/nodes/N/firewall", "/nodes/N/TYPE/VMID/firewall". */
static char *
base_of(const json_t *scope)
{
	const char *s = pl_json_str_or(scope, "scope", "");

	if (!strcmp(s, "cluster"))
		return pl_strdup(CLUSTER);
	if (!strcmp(s, "node"))
		return pl_asprintf("/nodes/%s/firewall", pl_json_str_or(scope, "node", ""));
	return pl_asprintf("/nodes/%s/%s/%lld/firewall", pl_json_str_or(scope, "node", ""),
			   pl_json_str_or(scope, "type", "qemu"), pl_json_int(scope, "vmid", 0));
}

char *
pl_fw_scope_key(const json_t *scope)
{
	const char *s = pl_json_str_or(scope, "scope", "");

	if (!strcmp(s, "cluster"))
		return pl_strdup("firewall:cluster");
	if (!strcmp(s, "node"))
		return pl_asprintf("firewall:node:%s", pl_json_str_or(scope, "node", ""));
	return pl_asprintf("firewall:guest:%lld", pl_json_int(scope, "vmid", 0));
}

json_t *
pl_fw_scope_paths(const json_t *scope)
{
	char *base = base_of(scope);
	json_t *a = json_array();

	json_array_append_new(a, json_sprintf("%s/options", base));
	json_array_append_new(a, json_sprintf("%s/rules", base));
	if (is_cluster(scope)) {
		json_array_append_new(a, json_string(ALIASES));
		json_array_append_new(a, json_string(GROUPS));
		json_array_append_new(a, json_string(IPSETS));
	}
	free(base);
	return a;
}

json_t *
pl_fw_members(const char *path, const json_t *data)
{
	bool groups = !strcmp(path, GROUPS);
	json_t *a = json_array();
	const json_t *e;
	size_t i;

	if (!groups && strcmp(path, IPSETS))
		return a;
	json_array_foreach(data, i, e) {
		const char *n = pl_json_str(e, groups ? "group" : "name");

		if (n)
			json_array_append_new(a, json_sprintf("%s/%s", path, n));
	}
	return a;
}

/* The rules of an answer, projected (every value a string). */
static json_t *
rules_of(const json_t *list)
{
	json_t *a = json_array();
	const json_t *r;
	size_t i;

	json_array_foreach(list, i, r)
		json_array_append_new(a, pl_fw_rule_of(r, false));
	return a;
}

static void
set_text(json_t *o, const char *key, const json_t *v)
{
	char *t = pl_fw_text_of(v);

	if (*t)
		json_object_set_new(o, key, json_string(t));
	free(t);
}

static int
by_cidr(const void *a, const void *b)
{
	return strcmp(pl_json_str_or(*(json_t *const *)a, "cidr", ""),
		      pl_json_str_or(*(json_t *const *)b, "cidr", ""));
}

/* An IP set's entries, sorted (their order means nothing to PVE). */
static json_t *
entries_of(const json_t *list)
{
	size_t n = json_array_size(list), i;
	json_t **v = pl_calloc(n + 1, sizeof(*v)), *a = json_array();

	for (i = 0; i < n; i++) {
		const json_t *e = json_array_get(list, i);

		v[i] = json_object();
		set_text(v[i], "cidr", json_object_get(e, "cidr"));
		if (pl_json_int(e, "nomatch", 0))
			json_object_set_new(v[i], "nomatch", json_string("1"));
		set_text(v[i], "comment", json_object_get(e, "comment"));
	}
	qsort(v, n, sizeof(*v), by_cidr);
	for (i = 0; i < n; i++)
		json_array_append_new(a, v[i]);
	free(v);
	return a;
}

json_t *
pl_fw_scope_state(const json_t *scope, const json_t *reads)
{
	char *base = base_of(scope), *p;
	json_t *st = json_object(), *opts = json_object(), *v;
	const json_t *e;
	const char *k;
	size_t i;

	p = pl_asprintf("%s/options", base);
	json_object_foreach((json_t *)json_object_get(reads, p), k, v)
		if (strcmp(k, "digest"))
			set_text(opts, k, v);
	free(p);
	json_object_set_new(st, "options", opts);
	p = pl_asprintf("%s/rules", base);
	json_object_set_new(st, "rules", rules_of(json_object_get(reads, p)));
	free(p);
	if (is_cluster(scope)) {
		json_t *al = json_object(), *gr = json_object(), *ips = json_object();

		json_array_foreach(json_object_get(reads, ALIASES), i, e) {
			json_t *a = json_object();

			set_text(a, "cidr", json_object_get(e, "cidr"));
			set_text(a, "comment", json_object_get(e, "comment"));
			json_object_set_new(al, pl_json_str_or(e, "name", "?"), a);
		}
		json_array_foreach(json_object_get(reads, GROUPS), i, e) {
			const char *n = pl_json_str_or(e, "group", "?");
			json_t *g = json_object();

			p = pl_asprintf("%s/%s", GROUPS, n);
			set_text(g, "comment", json_object_get(e, "comment"));
			json_object_set_new(g, "rules", rules_of(json_object_get(reads, p)));
			json_object_set_new(gr, n, g);
			free(p);
		}
		json_array_foreach(json_object_get(reads, IPSETS), i, e) {
			const char *n = pl_json_str_or(e, "name", "?");
			json_t *s = json_object();

			p = pl_asprintf("%s/%s", IPSETS, n);
			set_text(s, "comment", json_object_get(e, "comment"));
			json_object_set_new(s, "entries", entries_of(json_object_get(reads, p)));
			json_object_set_new(ips, n, s);
			free(p);
		}
		json_object_set_new(st, "aliases", al);
		json_object_set_new(st, "groups", gr);
		json_object_set_new(st, "ipsets", ips);
	}
	free(base);
	return st;
}

/* --- differences, for people --- */

static void
row(json_t *out, const char *key, const char *from, const char *to)
{
	json_t *r = json_pack("{s:s}", "key", key);

	if (from)
		json_object_set_new(r, "old", json_string(from));
	if (to)
		json_object_set_new(r, "new", json_string(to));
	json_array_append_new(out, r);
}

/* The rules of two lists, as a line diff (the longest common run of rules
 * stays; the rest is removed or added, with its position). */
static void
rules_rows(json_t *out, const char *what, const json_t *a, const json_t *b)
{
	size_t n = json_array_size(a), m = json_array_size(b), i, j;
	char **ta = pl_calloc(n + 1, sizeof(char *)), **tb = pl_calloc(m + 1, sizeof(char *));
	unsigned *l = NULL;
	char key[200];

	for (i = 0; i < n; i++)
		ta[i] = pl_fw_rule_text(json_array_get(a, i));
	for (j = 0; j < m; j++)
		tb[j] = pl_fw_rule_text(json_array_get(b, j));
	if (n * m <= 4000000) { /* l[i][j]: the common run of a[i..] and b[j..] */
		l = pl_calloc((n + 1) * (m + 1), sizeof(*l));
		for (i = n; i-- > 0;)
			for (j = m; j-- > 0;)
				l[i * (m + 1) + j] =
					!strcmp(ta[i], tb[j]) ? l[(i + 1) * (m + 1) + j + 1] + 1 :
					l[(i + 1) * (m + 1) + j] > l[i * (m + 1) + j + 1] ?
								l[(i + 1) * (m + 1) + j] :
								l[i * (m + 1) + j + 1];
	}
	for (i = 0, j = 0; i < n || j < m;) {
		if (i < n && j < m && !strcmp(ta[i], tb[j])) {
			i++, j++;
		} else if (l && i < n && j < m &&
			   l[(i + 1) * (m + 1) + j] < l[i * (m + 1) + j + 1]) {
			snprintf(key, sizeof(key), "%srule %zu", what, j);
			row(out, key, NULL, tb[j++]);
		} else if (l == NULL && i < n && j < m) { /* too long to align: by position */
			snprintf(key, sizeof(key), "%srule %zu", what, j);
			row(out, key, ta[i++], tb[j++]);
		} else if (i < n) {
			snprintf(key, sizeof(key), "%srule %zu", what, i);
			row(out, key, ta[i++], NULL);
		} else {
			snprintf(key, sizeof(key), "%srule %zu", what, j);
			row(out, key, NULL, tb[j++]);
		}
	}
	for (i = 0; i < n; i++)
		free(ta[i]);
	for (j = 0; j < m; j++)
		free(tb[j]);
	free(ta);
	free(tb);
	free(l);
}

/* "10.0.0.0/24, !10.0.0.99 # comment" */
static char *
entries_text(const json_t *set)
{
	struct pl_buf b;
	const json_t *e;
	char *out;
	size_t i;

	pl_buf_init(&b, 0);
	json_array_foreach(json_object_get(set, "entries"), i, e)
		pl_buf_addf(&b, "%s%s%s", i ? ", " : "", pl_json_int(e, "nomatch", 0) ? "!" : "",
			    pl_json_str_or(e, "cidr", ""));
	if (pl_json_str(set, "comment"))
		pl_buf_addf(&b, "%s# %s", b.len ? " " : "", pl_json_str(set, "comment"));
	out = pl_strdup(b.data ? b.data : "");
	pl_buf_release(&b);
	return out;
}

static char *
alias_text(const json_t *a)
{
	return pl_json_str(a, "comment") ? pl_asprintf("%s # %s", pl_json_str_or(a, "cidr", ""),
						       pl_json_str(a, "comment")) :
					   pl_strdup(pl_json_str_or(a, "cidr", ""));
}

/* Each key of two objects once, in order: the first's, then the second's own. */
static json_t *
keys_of(const json_t *a, const json_t *b)
{
	json_t *k = json_array(), *seen = json_object(), *v;
	const char *key;

	for (int pass = 0; pass < 2; pass++)
		json_object_foreach((json_t *)(pass ? b : a), key, v)
			if (!json_object_get(seen, key)) {
				json_object_set_new(seen, key, json_true());
				json_array_append_new(k, json_string(key));
			}
	json_decref(seen);
	return k;
}

json_t *
pl_fw_state_diff(const json_t *from, const json_t *to)
{
	static const char *const sections[] = { "aliases", "ipsets", "groups" };
	json_t *out = json_array(), *keys, *k;
	char key[200];
	size_t i;

	keys = keys_of(json_object_get(from, "options"), json_object_get(to, "options"));
	json_array_foreach(keys, i, k) {
		const char *n = json_string_value(k);

		snprintf(key, sizeof(key), "option %s", n);
		if (!json_equal(json_object_get(json_object_get(from, "options"), n),
				json_object_get(json_object_get(to, "options"), n)))
			row(out, key, pl_json_str(json_object_get(from, "options"), n),
			    pl_json_str(json_object_get(to, "options"), n));
	}
	json_decref(keys);
	rules_rows(out, "", json_object_get(from, "rules"), json_object_get(to, "rules"));
	for (size_t s = 0; s < PL_ARRAY_LEN(sections); s++) {
		const json_t *fa = json_object_get(from, sections[s]),
			     *ta = json_object_get(to, sections[s]);

		keys = keys_of(fa, ta);
		json_array_foreach(keys, i, k) {
			const char *n = json_string_value(k);
			const json_t *x = json_object_get(fa, n), *y = json_object_get(ta, n);
			char *xt, *yt;

			if (json_equal(x, y))
				continue;
			if (s == 2) { /* a group: its comment, then its rules */
				snprintf(key, sizeof(key), "group %s", n);
				if (!x || !y ||
				    !json_equal(json_object_get(x, "comment"),
						json_object_get(y, "comment")))
					row(out, key, x ? pl_json_str_or(x, "comment", "") : NULL,
					    y ? pl_json_str_or(y, "comment", "") : NULL);
				snprintf(key, sizeof(key), "group %s ", n);
				rules_rows(out, key, json_object_get(x, "rules"),
					   json_object_get(y, "rules"));
				continue;
			}
			snprintf(key, sizeof(key), "%s %s", s ? "ipset" : "alias", n);
			xt = x ? (s ? entries_text(x) : alias_text(x)) : NULL;
			yt = y ? (s ? entries_text(y) : alias_text(y)) : NULL;
			row(out, key, xt, yt);
			free(xt);
			free(yt);
		}
		json_decref(keys);
	}
	return out;
}

/* --- the way back --- */

/* Options as they were: each one that differs set again, or deleted. */
static void
undo_options(struct pl_fwc *c, const char *path, const json_t *was, const json_t *now)
{
	json_t *params = json_object(), *keys = keys_of(was, now), *k;
	struct pl_buf del;
	char key[160];
	size_t i;

	pl_buf_init(&del, 0);
	json_array_foreach(keys, i, k) {
		const char *n = json_string_value(k), *w = pl_json_str(was, n),
			   *h = pl_json_str(now, n);

		if (w && h && !strcmp(w, h))
			continue;
		snprintf(key, sizeof(key), "option %s", n);
		pl_fw_diff(c, key, h, w, NULL);
		if (w)
			json_object_set_new(params, n, json_string(w));
		else
			pl_buf_addf(&del, "%s%s", del.len ? "," : "", n);
	}
	if (del.len)
		json_object_set_new(params, "delete", json_string(del.data));
	pl_buf_release(&del);
	json_decref(keys);
	if (json_object_size(params))
		pl_fw_call(c, "PUT", pl_strdup(path), params, path);
	else
		json_decref(params);
}

/* A group or IP set: made again (POST list {idkey: name, comment}), its
 * comment set back, or removed once emptied. */
static void
undo_section(struct pl_fwc *c, const char *list, const char *idkey, const char *name,
	     const json_t *was, const json_t *now, const char *what)
{
	const char *cm = pl_json_str(was, "comment");
	char key[200];

	snprintf(key, sizeof(key), "%s %s", what, name);
	if (was && !now) {
		pl_fw_diff(c, key, NULL, cm ? cm : "", "added");
		pl_fw_call(c, "POST", pl_strdup(list),
			   json_pack("{s:s,s:s?}", idkey, name, "comment", cm), NULL);
	} else if (was &&
		   !json_equal(json_object_get(was, "comment"), json_object_get(now, "comment"))) {
		pl_fw_diff(c, key, pl_json_str(now, "comment"), cm ? cm : "", "comment");
		pl_fw_call(c, "POST", pl_strdup(list),
			   json_pack("{s:s,s:s,s:s}", idkey, name, "rename", name, "comment",
				     cm ? cm : ""),
			   list);
	}
}

static void
undo_entries(struct pl_fwc *c, const char *name, const json_t *was, const json_t *now)
{
	char *path = pl_asprintf("%s/%s", IPSETS, name);
	const json_t *e, *w = json_object_get(was, "entries"), *h = json_object_get(now, "entries");
	char key[200];
	size_t i;

	snprintf(key, sizeof(key), "ipset %s entry", name);
	json_array_foreach(h, i, e) {
		const char *cidr = pl_json_str_or(e, "cidr", "");
		char *enc;

		if (pl_json_find(w, "cidr", cidr, false))
			continue;
		enc = pl_str_url_encode(cidr);
		pl_fw_diff(c, key, cidr, NULL, "removed");
		pl_fw_call(c, "DELETE", pl_asprintf("%s/%s", path, enc), NULL, path);
		free(enc);
	}
	json_array_foreach(w, i, e) {
		const char *cidr = pl_json_str_or(e, "cidr", "");
		const json_t *l = pl_json_find(h, "cidr", cidr, false);
		json_t *p = json_pack("{s:i,s:s}", "nomatch", (int)pl_json_int(e, "nomatch", 0),
				      "comment", pl_json_str_or(e, "comment", ""));

		if (l == NULL) {
			json_object_set_new(p, "cidr", json_string(cidr));
			if (!pl_json_str(e, "comment"))
				json_object_del(p, "comment");
			pl_fw_diff(c, key, NULL, cidr, "added");
			pl_fw_call(c, "POST", pl_strdup(path), p, NULL);
		} else if (!json_equal(l, e)) {
			char *enc = pl_str_url_encode(cidr);

			pl_fw_diff(c, key, cidr, cidr, "changed");
			pl_fw_call(c, "PUT", pl_asprintf("%s/%s", path, enc), p, path);
			free(enc);
		} else {
			json_decref(p);
		}
	}
	free(path);
}

static void
undo_aliases(struct pl_fwc *c, const json_t *was, const json_t *now)
{
	json_t *keys = keys_of(was, now), *k;
	char key[200];
	size_t i;

	json_array_foreach(keys, i, k) {
		const char *n = json_string_value(k);
		const json_t *w = json_object_get(was, n), *h = json_object_get(now, n);

		snprintf(key, sizeof(key), "alias %s", n);
		if (json_equal(w, h))
			continue;
		if (!w) {
			pl_fw_diff(c, key, pl_json_str(h, "cidr"), NULL, "removed");
			pl_fw_call(c, "DELETE", pl_asprintf("%s/%s", ALIASES, n), NULL, ALIASES);
		} else if (!h) {
			pl_fw_diff(c, key, NULL, pl_json_str(w, "cidr"), "added");
			pl_fw_call(c, "POST", pl_strdup(ALIASES),
				   json_pack("{s:s,s:s,s:s?}", "name", n, "cidr",
					     pl_json_str_or(w, "cidr", ""), "comment",
					     pl_json_str(w, "comment")),
				   NULL);
		} else {
			pl_fw_diff(c, key, pl_json_str(h, "cidr"), pl_json_str(w, "cidr"),
				   "changed");
			pl_fw_call(c, "PUT", pl_asprintf("%s/%s", ALIASES, n),
				   json_pack("{s:s,s:s}", "cidr", pl_json_str_or(w, "cidr", ""),
					     "comment", pl_json_str_or(w, "comment", "")),
				   ALIASES);
		}
	}
	json_decref(keys);
}

/* The cluster's groups and IP sets as they were; the ones the run made go
 * once emptied (PVE refuses to delete a group or set with members). */
static void
undo_sets(struct pl_fwc *c, const json_t *was, const json_t *now, const json_t *reads)
{
	json_t *keys;
	const json_t *k;
	size_t i;

	pl_fw_saw(c, GROUPS, json_object_get(reads, GROUPS));
	keys = keys_of(json_object_get(was, "groups"), json_object_get(now, "groups"));
	json_array_foreach(keys, i, k) {
		const char *n = json_string_value(k);
		const json_t *w = json_object_get(json_object_get(was, "groups"), n),
			     *h = json_object_get(json_object_get(now, "groups"), n);
		char *p = pl_asprintf("%s/%s", GROUPS, n), *what = pl_asprintf("group %s", n);
		json_t *none = json_array();

		undo_section(c, GROUPS, "group", n, w, h, "group");
		pl_fw_saw(c, p, json_object_get(reads, p));
		pl_fw_rules_diff(c, p, w ? json_object_get(w, "rules") : none, false,
				 json_object_get(reads, p), what);
		if (!w) {
			pl_fw_diff(c, what, pl_json_str_or(h, "comment", ""), NULL, "removed");
			pl_fw_call(c, "DELETE", pl_strdup(p), NULL, NULL);
		}
		json_decref(none);
		free(p);
		free(what);
	}
	json_decref(keys);
	pl_fw_saw(c, IPSETS, json_object_get(reads, IPSETS));
	keys = keys_of(json_object_get(was, "ipsets"), json_object_get(now, "ipsets"));
	json_array_foreach(keys, i, k) {
		const char *n = json_string_value(k);
		const json_t *w = json_object_get(json_object_get(was, "ipsets"), n),
			     *h = json_object_get(json_object_get(now, "ipsets"), n);
		char *p = pl_asprintf("%s/%s", IPSETS, n);

		undo_section(c, IPSETS, "name", n, w, h, "ipset");
		pl_fw_saw(c, p, json_object_get(reads, p));
		undo_entries(c, n, w, h);
		if (!w) {
			char key[200];

			snprintf(key, sizeof(key), "ipset %s", n);
			pl_fw_diff(c, key, pl_json_str_or(h, "comment", ""), NULL, "removed");
			pl_fw_call(c, "DELETE", pl_strdup(p), NULL, NULL);
		}
		free(p);
	}
	json_decref(keys);
}

void
pl_fw_uses(const json_t *rules, const char *user, json_t *uses)
{
	const json_t *r;
	size_t i;

	json_array_foreach(rules, i, r) {
		json_t *p = pl_fw_rule_of(r, false);

		if (!strcmp(pl_json_str_or(p, "type", ""), "group"))
			json_object_set_new(uses, pl_json_str_or(p, "action", ""),
					    json_string(user));
		for (int k = 0; k < 2; k++) {
			char *list = pl_strdup(pl_json_str_or(p, k ? "dest" : "source", "")),
			     *save = NULL;

			for (char *t = strtok_r(list, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				char *name = t + (*t == '+');
				char *slash = strchr(name, '/');

				if (slash &&
				    (!strncmp(name, "dc/", 3) || !strncmp(name, "guest/", 6)))
					name = slash + 1;
				/* an IP set, or an alias (a name: not an address) */
				if (*t == '+' ||
				    (isalpha((unsigned char)*name) && !strchr(name, ':')))
					json_object_set_new(uses, name, json_string(user));
			}
			free(list);
		}
		json_decref(p);
	}
}

/* A group, IP set or alias the run made that a scope left alone still
 * uses: what would break, or NULL. */
static char *
still_used(const json_t *was, const json_t *now, const json_t *uses)
{
	static const char *const sections[][2] = { { "groups", "group" },
						   { "ipsets", "IP set" },
						   { "aliases", "alias" } };
	const char *k;
	json_t *v;

	for (size_t s = 0; s < PL_ARRAY_LEN(sections); s++)
		json_object_foreach(json_object_get(now, sections[s][0]), k, v)
			if (!json_object_get(json_object_get(was, sections[s][0]), k) &&
			    json_object_get(uses, k))
				return pl_asprintf(
					"the %s %s it would delete is used by the firewall "
					"of %s, which stays",
					sections[s][1], k, pl_json_str(uses, k));
	return NULL;
}

json_t *
pl_fw_undo(const json_t *hist, const json_t *reads, const json_t *uses, char **why)
{
	const json_t *was = json_object_get(hist, "before"),
		     *after = json_object_get(hist, "after");
	json_t *now = pl_fw_scope_state(hist, reads), *changes, *out = NULL;
	const char *scope = pl_json_str_or(hist, "scope", "guest");
	char *base = base_of(hist), *p, *what;
	struct pl_fwc c;

	*why = NULL;
	if (!json_equal(now, after)) {
		json_t *d = pl_fw_state_diff(after, now);

		*why = pl_asprintf("its firewall changed since the run (%s)",
				   pl_json_str_or(json_array_get(d, 0), "key", "?"));
		json_decref(d);
		goto out;
	}
	if (!strcmp(scope, "cluster") && (*why = still_used(was, now, uses)) != NULL)
		goto out;
	what = !strcmp(scope, "cluster") ? pl_strdup("cluster") :
	       !strcmp(scope, "node") ? pl_asprintf("node %s", pl_json_str_or(hist, "node", "")) :
					pl_strdup("");
	c = pl_fw_change_new(scope, pl_json_str_or(hist, "guest", "?"),
			     pl_json_str_or(hist, "what", "firewall"));
	json_object_set_new(c.ch, "undo", json_true());
	if (strcmp(scope, "cluster"))
		json_object_set_new(c.ch, "node", json_string(pl_json_str_or(hist, "node", "")));
	if (!strcmp(scope, "guest")) {
		json_object_set_new(c.ch, "type",
				    json_string(pl_json_str_or(hist, "type", "qemu")));
		json_object_set_new(c.ch, "vmid", json_integer(pl_json_int(hist, "vmid", 0)));
	}
	/* the reverse of apply's order: options first (a policy the run made
	 * stricter goes before the rules that let traffic through) */
	p = pl_asprintf("%s/options", base);
	pl_fw_saw(&c, p, json_object_get(reads, p));
	undo_options(&c, p, json_object_get(was, "options"), json_object_get(now, "options"));
	free(p);
	p = pl_asprintf("%s/rules", base);
	pl_fw_saw(&c, p, json_object_get(reads, p));
	pl_fw_rules_diff(&c, p, json_object_get(was, "rules"), false, json_object_get(reads, p),
			 what);
	free(p);
	if (!strcmp(scope, "cluster")) {
		undo_sets(&c, was, now, reads);
		pl_fw_saw(&c, ALIASES, json_object_get(reads, ALIASES));
		undo_aliases(&c, json_object_get(was, "aliases"), json_object_get(now, "aliases"));
	}
	free(what);
	changes = json_array();
	pl_fw_change_end(&c, changes);
	out = json_incref(json_array_get(changes, 0));
	json_decref(changes);
out:
	free(base);
	json_decref(now);
	return out;
}
