/*
 * Loads pvelab.yaml, walks it against the declared schema (schema.c): types,
 * ranges, enums, required keys, unknown keys with a suggestion, defaults;
 * then applies `defaults:` to each guest.
 */
#include "core/common.h"

#include <limits.h>
#include "config/config.h"
#include "config/internal.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/propstr.h"
#include "core/str.h"
#include "core/yaml.h"

#include <ctype.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>

struct walk {
	struct pl_config *c;
	struct pl_diags *d;
};

/* Does a schema path ("/guests/ * /name") match a concrete pattern built
 * from the document ("/guests/ * /name")? Both use "*" for list items. */
static const struct pl_config_key *
find_row(const char *pattern)
{
	for (const struct pl_config_key *r = pl_config_schema(); r->path; r++)
		if (!strcmp(r->path, pattern))
			return r;
	return NULL;
}

void
pl_config_diag(const struct pl_config *c, struct pl_diags *d, enum pl_diag_level level,
	       const char *pointer, const char *fmt, ...)
{
	int line = 0, col = 0;
	char *msg = NULL, *shown;
	struct pl_buf key;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		pl_die("out of memory");
	va_end(ap);
	pl_config_where(c, pointer, &line, &col);
	/* "/guests/3/disks/0/size" reads as "guests[3].disks[0].size", the
	 * index the file has (one cluster's view of clusters: has fewer) */
	shown = pl_config_file_pointer(c, pointer);
	pl_buf_init(&key, 4096);
	for (const char *p = shown; *p;) {
		const char *seg = p + 1, *end = strchr(seg, '/');
		size_t n = end ? (size_t)(end - seg) : strlen(seg);

		if (n && strspn(seg, "0123456789") >= n)
			pl_buf_addf(&key, "[%.*s]", (int)n, seg);
		else
			pl_buf_addf(&key, "%s%.*s", key.len ? "." : "", (int)n, seg);
		p = seg + n;
	}
	pl_diags_add(d, level, c->path, line, col, key.len ? key.data : NULL, "%s", msg);
	pl_buf_release(&key);
	free(shown);
	free(msg);
}

/* Suggest a sibling key for an unknown one. */
static const char *
suggest_key(const char *parent_pattern, const char *key)
{
	const char *cands[256];
	size_t n = 0, plen = strlen(parent_pattern);

	for (const struct pl_config_key *r = pl_config_schema(); r->path && n < 256; r++) {
		if (strncmp(r->path, parent_pattern, plen) != 0 || r->path[plen] != '/')
			continue;
		if (strchr(r->path + plen + 1, '/') == NULL && strcmp(r->path + plen + 1, "*") != 0)
			cands[n++] = r->path + plen + 1;
	}
	return n ? pl_str_suggest(key, cands, n) : NULL;
}

static bool
parse_bool(const json_t *v, bool *out)
{
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return true;
	}
	if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
		*out = json_integer_value(v) == 1;
		return true;
	}
	if (json_is_string(v)) {
		const char *b = pl_bool_norm(json_string_value(v));

		if (b) {
			*out = b[0] == '1';
			return true;
		}
	}
	return false;
}

/* Parse a size; a bare number is in unit_mult bytes. */
static bool
parse_size(const json_t *v, unsigned long long unit_mult, unsigned long long *bytes)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*bytes = (unsigned long long)json_integer_value(v) * unit_mult;
		return true;
	}
	if (json_is_real(v) && json_real_value(v) >= 0) {
		*bytes = (unsigned long long)llround(json_real_value(v) * (double)unit_mult);
		return true;
	}
	if (!json_is_string(v))
		return false;
	const char *s = json_string_value(v);
	size_t n = strlen(s);
	char tmp[64];

	/* accept "32GB"/"32GiB" spellings too */
	if (n > 1 && n < sizeof(tmp) && (pl_str_endswith(s, "B"))) {
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(n - (pl_str_endswith(s, "iB") ? 2 : 1)), s);
		s = tmp;
	}
	if (pl_size_parse(s, bytes) != 0)
		return false;
	if (strspn(s, "0123456789.") == strlen(s))
		*bytes = (unsigned long long)llround(strtod(s, NULL) * (double)unit_mult);
	return true;
}

/* Check and normalise a scalar; returns the value to store (new ref) or NULL. */
static json_t *
check_scalar(struct walk *w, const struct pl_config_key *row, const char *ptr, json_t *v)
{
	unsigned long long bytes;
	bool b;

	switch (row->type) {
	case PL_CT_STRING:
		if (json_is_string(v))
			return json_incref(v);
		if (json_is_integer(v)) /* `name: 101` or `template: 9000` */
			return json_sprintf("%lld", (long long)json_integer_value(v));
		break;
	case PL_CT_SCALAR:
		if (json_is_string(v) || json_is_number(v) || json_is_boolean(v))
			return json_incref(v);
		break;
	case PL_CT_INT:
		if (json_is_integer(v) || (json_is_string(v) && pl_str_to_ll(json_string_value(v), LLONG_MIN, LLONG_MAX, &(long long){ 0 }) == 0)) {
			long long x = json_is_integer(v) ? json_integer_value(v) : strtoll(json_string_value(v), NULL, 10);
			long long lo, hi;

			if (row->choices && sscanf(row->choices, "%lld..%lld", &lo, &hi) == 2 &&
			    (x < lo || x > hi)) {
				pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr,
					       "%lld is out of range (%lld to %lld)", x, lo, hi);
				return NULL;
			}
			return json_integer(x);
		}
		break;
	case PL_CT_NUM:
		if (json_is_number(v))
			return json_incref(v);
		break;
	case PL_CT_BOOL:
		if (parse_bool(v, &b))
			return json_boolean(b);
		break;
	case PL_CT_ENUM: {
		const char *s = json_is_string(v) ? json_string_value(v) : NULL;
		char tmp[32];

		if (json_is_real(v)) { /* min_tls: 1.0 written without quotes */
			snprintf(tmp, sizeof(tmp), "%.1f", json_real_value(v));
			s = tmp;
		}
		if (s) {
			size_t n = strlen(s);

			for (const char *c = row->choices; c && *c;) {
				size_t len = strcspn(c, "|");

				if (len == n && !strncmp(c, s, n))
					return json_string(s);
				c += len + (c[len] == '|');
			}
			pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr, "'%s' is not one of %s", s,
				       row->choices);
			return NULL;
		}
		break;
	}
	case PL_CT_SIZE:
		if (parse_size(v, 1ULL << 30, &bytes) && bytes > 0) {
			char out[32];

			pl_size_format(bytes, out, sizeof(out));
			return json_string(out);
		}
		pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr,
			       "expected a size such as 32G or 512M");
		return NULL;
	case PL_CT_MIB:
		if (parse_size(v, 1ULL << 20, &bytes)) {
			if (bytes % (1ULL << 20)) {
				pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr,
					       "memory must be a whole number of MiB");
				return NULL;
			}
			return json_integer((json_int_t)(bytes >> 20));
		}
		pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr,
			       "expected memory such as 2048 (MiB), 2G or 512M");
		return NULL;
	case PL_CT_RANGE: {
		long long lo, hi;
		char tail;

		if (json_is_string(v) &&
		    sscanf(json_string_value(v), "%lld-%lld%c", &lo, &hi, &tail) == 2 && lo <= hi)
			return json_pack("[I,I]", (json_int_t)lo, (json_int_t)hi);
		pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr, "expected a range such as 200-209");
		return NULL;
	}
	default:
		break;
	}
	if (row->type == PL_CT_ENUM)
		pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr, "expected one of %s", row->choices);
	else
		pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr, "expected %s %s, got %s",
			       strchr("aeiou", pl_ctype_name(row->type)[0]) ? "an" : "a",
			       pl_ctype_name(row->type),
			       json_is_object(v)   ? "a mapping"
			       : json_is_array(v)  ? "a list"
			       : json_is_string(v) ? "a string"
			       : json_is_null(v)   ? "nothing"
						   : "a number");
	return NULL;
}

static json_t *walk_node(struct walk *w, const struct pl_config_key *row, struct pl_buf *ptr,
			 struct pl_buf *pat, json_t *v);

/* Default value of a row as JSON (parsed as YAML scalar text). */
static json_t *
default_value(struct walk *w, const struct pl_config_key *row, const char *ptr)
{
	json_t *raw, *v;

	if (!strcmp(row->dflt, "true") || !strcmp(row->dflt, "false"))
		raw = json_boolean(row->dflt[0] == 't');
	else if (strspn(row->dflt, "0123456789") == strlen(row->dflt))
		raw = json_integer(strtoll(row->dflt, NULL, 10));
	else
		raw = json_string(row->dflt);
	v = check_scalar(w, row, ptr, raw);
	json_decref(raw);
	return v;
}

static json_t *
walk_map(struct walk *w, const struct pl_config_key *row, struct pl_buf *ptr, struct pl_buf *pat,
	 json_t *v)
{
	size_t ptr_len = ptr->len, pat_len = pat->len;
	json_t *out = json_object();
	const char *k;
	json_t *child;

	json_object_foreach(v, k, child) {
		char *esc;
		const struct pl_config_key *crow;

		/* top-level x-* keys are ignored: a place for YAML anchors, as in compose files */
		if (pat_len == 0 && !strncmp(k, "x-", 2))
			continue;
		esc = pl_yaml_ptr_escape(k);
		pl_buf_addf(ptr, "/%s", esc);
		if (row->type == PL_CT_DICT)
			pl_buf_addstr(pat, "/*");
		else
			pl_buf_addf(pat, "/%s", esc);
		crow = find_row(pat->data);
		if (crow && json_is_null(child) && pat_len == strlen("/guests/*") &&
		    !strncmp(pat->data, "/guests/*", pat_len) && crow->type != PL_CT_MAP &&
		    crow->type != PL_CT_DICT && crow->type != PL_CT_LIST) {
			/* `machine: null` on a guest: not set, whatever defaults say
			 * (apply_defaults drops it once merged) */
			json_object_set_new(out, k, json_null());
		} else if (crow == NULL) {
			char *parent = pl_strndup(pat->data, pat_len);
			const char *s = suggest_key(parent, k);

			if (s)
				pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr->data,
					       "unknown key (did you mean '%s'?)", s);
			else
				pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr->data, "unknown key");
			free(parent);
		} else {
			json_t *nv = walk_node(w, crow, ptr, pat, child);

			if (nv)
				json_object_set_new(out, k, nv);
		}
		free(esc);
		pl_buf_truncate(ptr, ptr_len);
		pl_buf_truncate(pat, pat_len);
	}
	if (row->type == PL_CT_DICT)
		return out;
	/* required keys and defaults of the declared children */
	for (const struct pl_config_key *r = pl_config_schema(); r->path; r++) {
		const char *name;

		if (strncmp(r->path, pat->data, pat_len) != 0 || r->path[pat_len] != '/')
			continue;
		name = r->path + pat_len + 1;
		if (strchr(name, '/') || !strcmp(name, "*") || json_object_get(v, name))
			continue;
		if (r->required) {
			pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr->data,
				       "missing required key '%s'", name);
		} else if (r->dflt) {
			json_t *dv;

			pl_buf_addf(ptr, "/%s", name);
			dv = default_value(w, r, ptr->data);
			pl_buf_truncate(ptr, ptr_len);
			if (dv)
				json_object_set_new(out, name, dv);
		}
	}
	return out;
}

static json_t *
walk_node(struct walk *w, const struct pl_config_key *row, struct pl_buf *ptr, struct pl_buf *pat,
	  json_t *v)
{
	switch (row->type) {
	case PL_CT_MAP:
	case PL_CT_DICT:
		if (!json_is_object(v)) {
			if (json_is_null(v) && row->type == PL_CT_DICT)
				return json_object();
			pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr->data, "expected a mapping");
			return NULL;
		}
		return walk_map(w, row, ptr, pat, v);
	case PL_CT_LIST: {
		size_t ptr_len = ptr->len, pat_len = pat->len, i;
		const struct pl_config_key *irow;
		json_t *out, *item;

		if (json_is_null(v))
			return json_array();
		pl_buf_addstr(pat, "/*");
		irow = find_row(pat->data);
		if (json_is_string(v) && irow && irow->type == PL_CT_STRING) {
			/* "tags: web" is the list of that one tag */
			json_t *one = json_pack("[O]", v);

			pl_buf_truncate(pat, pat_len);
			out = walk_node(w, row, ptr, pat, one);
			json_decref(one);
			return out;
		}
		if (!json_is_array(v)) {
			pl_buf_truncate(pat, pat_len);
			pl_config_diag(w->c, w->d, PL_DIAG_ERROR, ptr->data, "expected a list");
			return NULL;
		}
		out = json_array();
		json_array_foreach(v, i, item) {
			json_t *nv;

			pl_buf_addf(ptr, "/%zu", i);
			nv = irow ? walk_node(w, irow, ptr, pat, item) : NULL;
			if (nv)
				json_array_append_new(out, nv);
			else
				json_array_append_new(out, json_null()); /* keep indexes stable */
			pl_buf_truncate(ptr, ptr_len);
		}
		pl_buf_truncate(pat, pat_len);
		return out;
	}
	default:
		return check_scalar(w, row, ptr->data, v);
	}
}

/* Was pointer written in the file (rather than filled in from the schema)? */
static bool
written(const struct pl_config *c, const char *pointer)
{
	return c->marks && json_is_array(json_object_get(c->marks, pointer));
}

/* Merge defaults dv into guest object mine at pointer gptr: a key the guest
 * wrote wins; a key it did not write (absent, or filled in from the schema's
 * default, such as type: vm) takes the value from `defaults:`. Mappings the
 * guest wrote are merged key by key (e.g. features); lists are not merged. */
static void
merge_defaults(const struct pl_config *c, struct pl_buf *gptr, json_t *mine, const json_t *dv)
{
	size_t len = gptr->len;
	const char *k;
	json_t *d;

	json_object_foreach((json_t *)dv, k, d) {
		json_t *m = json_object_get(mine, k);
		char *esc = pl_yaml_ptr_escape(k);

		pl_buf_addf(gptr, "/%s", esc);
		free(esc);
		if (m == NULL || !written(c, gptr->data))
			json_object_set_new(mine, k, json_deep_copy(d));
		else if (json_is_object(m) && json_is_object(d))
			merge_defaults(c, gptr, m, d);
		pl_buf_truncate(gptr, len);
	}
}

/* guests with `defaults:` applied */
static json_t *
apply_defaults(const struct pl_config *c)
{
	const json_t *defaults = json_object_get(c->root, "defaults");
	json_t *out = json_array(), *g;
	struct pl_buf gptr;
	size_t i;

	pl_buf_init(&gptr, 1 << 16);
	json_array_foreach(json_object_get(c->root, "guests"), i, g) {
		json_t *m = json_deep_copy(g);

		if (!json_is_object(m)) {
			json_array_append_new(out, m ? m : json_null());
			continue;
		}
		pl_buf_reset(&gptr);
		pl_buf_addf(&gptr, "/guests/%zu", i);
		if (json_is_object(defaults))
			merge_defaults(c, &gptr, m, defaults);
		{ /* a key set to null: unset, also when defaults set it */
			const char *k;
			json_t *v;
			void *tmp;

			json_object_foreach_safe(m, tmp, k, v)
				if (json_is_null(v))
					json_object_del(m, k);
		}
		json_array_append_new(out, m);
	}
	pl_buf_release(&gptr);
	return out;
}

bool
pl_config_project_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 32 || !strchr("abcdefghijklmnopqrstuvwxyz0123456789", s[0]))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* A name made into a project: lower case, other characters as '-', starting
 * with a letter or digit, at most 32 characters, no trailing '-' or '_'. */
static char *
sanitise_project(const char *name)
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
	for (const char *p = name; *p && b.len < 32; p++) {
		char c = (char)tolower((unsigned char)*p);

		if (!isalnum((unsigned char)c) && c != '_' && c != '-')
			c = '-';
		if (b.len == 0 && !isalnum((unsigned char)c))
			continue;
		if (c == '-' && b.len && b.data[b.len - 1] == '-')
			continue;
		pl_buf_addf(&b, "%c", c);
	}
	while (b.len && (b.data[b.len - 1] == '-' || b.data[b.len - 1] == '_'))
		pl_buf_truncate(&b, b.len - 1);
	if (b.len == 0) {
		pl_buf_release(&b);
		return NULL;
	}
	return pl_buf_detach(&b, NULL);
}

char *
pl_config_default_project(const char *path)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	const char *dot = strchr(base, '.');
	char *stem = pl_strndup(base, dot ? (size_t)(dot - base) : strlen(base)), *r;

	if (!strcmp(stem, "pvelab")) { /* pvelab.yaml: the directory names the project */
		char *dir = pl_path_dirname(path), *real = realpath(dir, NULL);
		const char *d = real ? real : dir, *ds = strrchr(d, '/');

		free(stem);
		stem = pl_strdup(ds ? ds + 1 : d);
		free(real);
		free(dir);
	}
	r = sanitise_project(stem);
	free(stem);
	return r;
}

/* `project:`, checked, or the default; an error when neither is usable. */
static void
set_project(struct pl_config *c, struct pl_diags *d)
{
	const char *p = json_string_value(json_object_get(c->root, "project"));

	if (p) {
		if (!pl_config_project_valid(p))
			pl_config_diag(c, d, PL_DIAG_ERROR, "/project",
				       "'%s' is not a project name (lower-case letters, digits, '-' and "
				       "'_', starting with a letter or digit, at most 32; it becomes the "
				       "tag pvelab-<project>)", p);
		c->project = pl_strdup(p);
		return;
	}
	c->project = pl_config_default_project(c->path);
	if (c->project == NULL) {
		pl_diags_add(d, PL_DIAG_ERROR, c->path, 0, 0, NULL,
			     "cannot name this config's project from '%s' (set project: NAME)", c->path);
		c->project = pl_strdup("default");
	}
}

static int
load_doc(const char *name, json_t *doc, json_t *marks, struct pl_config **out,
	 struct pl_diags *d)
{
	struct pl_config *c = pl_calloc(1, sizeof(*c));
	struct walk w = { .c = c, .d = d };
	struct pl_config_key root_row = { "", PL_CT_MAP, NULL, NULL, NULL, false };
	struct pl_buf ptr, pat;
	size_t before = d->nerrors;

	c->path = pl_strdup(name);
	c->marks = marks;
	pl_buf_init(&ptr, 1 << 16);
	pl_buf_init(&pat, 1 << 16);
	if (json_is_null(doc)) { /* an empty file is an empty config */
		json_decref(doc);
		doc = json_object();
	}
	c->root = walk_node(&w, &root_row, &ptr, &pat, doc);
	if (c->root == NULL)
		c->root = json_object();
	pl_buf_release(&ptr);
	pl_buf_release(&pat);
	json_decref(doc);
	c->guests = apply_defaults(c);
	set_project(c, d);
	pl_config_check_clusters(c, d);
	*out = c;
	return d->nerrors > before ? PL_EINVAL : 0;
}

/* A YAML error "NAME:L:C: reason" (or "NAME: reason") as a located diagnostic. */
static int
yaml_error(const char *name, char *err, struct pl_diags *d)
{
	size_t n = strlen(name);
	int line = 0, col = 0, used = 0;
	const char *msg = err;

	if (!strncmp(err, name, n) && err[n] == ':') {
		if (sscanf(err + n, ":%d:%d: %n", &line, &col, &used) == 2 && used)
			msg = err + n + used;
		else
			msg = err + n + 1 + (err[n + 1] == ' ');
	}
	pl_diags_add(d, PL_DIAG_ERROR, name, line, col, NULL, "%s", msg);
	free(err);
	return PL_EPARSE;
}

char *
pl_config_default_path(void)
{
	const char *env = getenv("PVELAB_CONFIG");
	char *xdg = pl_xdg_dir("XDG_CONFIG_HOME", ".config");
	char *cands[3] = { pl_strdup("pvelab.yaml"),
			   xdg ? pl_path_join(xdg, "pvelab/pvelab.yaml") : NULL,
			   pl_strdup(PL_CONFIG_SYSTEM_DIR "/pvelab.yaml") };
	char *found = NULL;

	free(xdg);
	if (env && *env)
		found = pl_strdup(env);
	for (size_t i = 0; i < PL_ARRAY_LEN(cands); i++) {
		if (!found && cands[i] && access(cands[i], F_OK) == 0) {
			found = cands[i];
			cands[i] = NULL;
		}
		free(cands[i]);
	}
	return found ? found : pl_strdup("pvelab.yaml");
}

int
pl_config_load(const char *path, struct pl_config **out, struct pl_diags *d)
{
	json_t *marks = NULL;
	char *err = NULL;
	json_t *doc = pl_yaml_load_file(path, &marks, &err);

	*out = NULL;
	if (doc == NULL)
		return yaml_error(path, err, d);
	return load_doc(path, doc, marks, out, d);
}

int
pl_config_load_string(const char *name, const char *text, size_t len, struct pl_config **out,
		      struct pl_diags *d)
{
	json_t *marks = NULL;
	char *err = NULL;
	json_t *doc = pl_yaml_load_string(name, text, len, &marks, &err);

	*out = NULL;
	if (doc == NULL)
		return yaml_error(name, err, d);
	return load_doc(name, doc, marks, out, d);
}

void
pl_config_free(struct pl_config *c)
{
	if (c == NULL)
		return;
	json_decref(c->root);
	json_decref(c->marks);
	json_decref(c->guests);
	free(c->project);
	free(c->cluster);
	json_decref(c->moved);
	free(c->path);
	free(c);
}

const json_t *
pl_config_get(const struct pl_config *c, const char *pointer)
{
	const json_t *v = c->root;
	char *p = pl_strdup(pointer), *save = NULL;

	for (char *seg = strtok_r(p, "/", &save); v && seg; seg = strtok_r(NULL, "/", &save)) {
		if (json_is_array(v))
			v = json_array_get(v, strtoul(seg, NULL, 10));
		else
			v = json_object_get(v, seg);
	}
	free(p);
	return v;
}

const json_t *
pl_config_guests(const struct pl_config *c)
{
	return c->guests;
}

const char *
pl_config_path(const struct pl_config *c)
{
	return c->path;
}

const char *
pl_config_project(const struct pl_config *c)
{
	return c->project;
}

bool
pl_config_written(const struct pl_config *c, const char *pointer)
{
	return written(c, pointer);
}

bool
pl_config_where(const struct pl_config *c, const char *pointer, int *line, int *col)
{
	*line = *col = 0;
	return c->marks && pl_yaml_mark(c->marks, pointer, line, col);
}
