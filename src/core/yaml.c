/*
 * YAML loading with positions (see yaml.h), on libfyaml's document API.
 */
#include "core/common.h"
#include "core/yaml.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"

#include <errno.h>
#include <libfyaml.h>
#include <math.h>

struct conv {
	json_t *marks;
	const char *name;
	char *err;
};

static void
set_mark(struct conv *c, const char *ptr, struct fy_token *tok)
{
	const struct fy_mark *m = tok ? fy_token_start_mark(tok) : NULL;

	if (c->marks == NULL || m == NULL || json_object_get(c->marks, ptr))
		return;
	json_object_set_new(c->marks, ptr, json_pack("[i,i]", m->line + 1, m->column + 1));
}

static json_t *
scalar_value(struct fy_node *n)
{
	size_t len;
	const char *s = fy_node_get_scalar(n, &len);
	char *text, *end;
	json_t *v;

	if (s == NULL)
		return json_null();
	if (fy_node_get_style(n) != FYNS_PLAIN)
		return json_stringn(s, len);
	text = pl_strndup(s, len);
	if (len == 0 || !strcmp(text, "~") || !strcmp(text, "null") || !strcmp(text, "Null") ||
	    !strcmp(text, "NULL"))
		v = json_null();
	else if (!strcmp(text, "true") || !strcmp(text, "True") || !strcmp(text, "TRUE"))
		v = json_true();
	else if (!strcmp(text, "false") || !strcmp(text, "False") || !strcmp(text, "FALSE"))
		v = json_false();
	else {
		long long i;
		double d;

		bool hex = text[0] == '0' && (text[1] == 'x' || text[1] == 'X');

		errno = 0;
		i = strtoll(text, &end, hex ? 16 : 10);
		if (!errno && *end == '\0' && end != text) {
			v = json_integer(i);
		} else {
			errno = 0;
			d = strtod(text, &end);
			if (!errno && *end == '\0' && isfinite(d) &&
			    strspn(text, "+-0123456789.eE") == len)
				v = json_real(d);
			else
				v = json_stringn(s, len);
		}
	}
	free(text);
	return v;
}

/* The first mark inside a node, for collections that have none of their own. */
static struct fy_token *
first_token(struct fy_node *n)
{
	void *it = NULL;

	switch (fy_node_get_type(n)) {
	case FYNT_SCALAR:
		return fy_node_get_scalar_token(n);
	case FYNT_SEQUENCE: {
		struct fy_node *item = fy_node_sequence_iterate(n, &it);

		return item ? first_token(item) : NULL;
	}
	case FYNT_MAPPING: {
		struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);

		return p ? first_token(fy_node_pair_key(p)) : NULL;
	}
	}
	return NULL;
}

static json_t *
convert(struct conv *c, struct fy_node *n, struct pl_buf *ptr)
{
	void *it = NULL;
	size_t base = ptr->len;
	json_t *out;

	if (n == NULL)
		return json_null();
	switch (fy_node_get_type(n)) {
	case FYNT_SCALAR:
		return scalar_value(n);
	case FYNT_SEQUENCE: {
		struct fy_node *item;
		size_t i = 0;

		out = json_array();
		while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
			pl_buf_addf(ptr, "/%zu", i++);
			set_mark(c, ptr->data, first_token(item));
			json_array_append_new(out, convert(c, item, ptr));
			pl_buf_truncate(ptr, base);
		}
		return out;
	}
	case FYNT_MAPPING: {
		struct fy_node_pair *p;

		out = json_object();
		while ((p = fy_node_mapping_iterate(n, &it)) != NULL) {
			struct fy_node *k = fy_node_pair_key(p);
			size_t klen = 0;
			const char *ks = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &klen) : NULL;
			char *key, *esc;

			if (ks == NULL) {
				if (c->err == NULL) {
					const struct fy_mark *m = first_token(k) ? fy_token_start_mark(first_token(k)) : NULL;

					c->err = pl_asprintf("%s:%d:%d: mapping keys must be plain scalars",
							     c->name, m ? m->line + 1 : 0, m ? m->column + 1 : 0);
				}
				continue;
			}
			key = pl_strndup(ks, klen);
			esc = pl_yaml_ptr_escape(key);
			pl_buf_addf(ptr, "/%s", esc);
			set_mark(c, ptr->data, fy_node_get_scalar_token(k));
			json_object_set_new(out, key, convert(c, fy_node_pair_value(p), ptr));
			pl_buf_truncate(ptr, base);
			free(esc);
			free(key);
		}
		return out;
	}
	}
	return json_null();
}

#define YAML_MAX_NODES 1000000 /* a document's nodes, once aliases are expanded */
#define YAML_MAX_DEPTH 512     /* nesting, once aliases are expanded */

/*
 * The nodes n stands for once every alias in it is expanded, counted before
 * libfyaml expands them (fy_document_resolve has no budget: a few hundred
 * bytes of anchors, each used ten times by the next, make 10^9 nodes). Each
 * node's count is kept in memo, so an anchor used many times is counted once;
 * the count stops just past YAML_MAX_NODES; an alias loop or nesting deeper
 * than YAML_MAX_DEPTH counts as too many.
 */
static size_t
expanded_size(struct fy_node *n, json_t *memo, int depth)
{
	const size_t over = YAML_MAX_NODES + 1;
	char key[32];
	json_t *seen;
	size_t total = 1;
	void *it = NULL;

	if (n == NULL)
		return 1;
	if (depth > YAML_MAX_DEPTH)
		return over;
	snprintf(key, sizeof(key), "%p", (void *)n);
	if ((seen = json_object_get(memo, key)) != NULL) /* 0: still being counted, a loop */
		return json_integer_value(seen) ? (size_t)json_integer_value(seen) : over;
	json_object_set_new(memo, key, json_integer(0));
	if (fy_node_is_alias(n)) {
		struct fy_node *to = fy_node_resolve_alias(n);

		/* NULL: undefined, or a loop: fy_document_resolve says which */
		total = to ? expanded_size(to, memo, depth + 1) : 1;
	} else if (fy_node_get_type(n) == FYNT_SEQUENCE) {
		struct fy_node *item;

		while (total < over && (item = fy_node_sequence_iterate(n, &it)) != NULL)
			total += expanded_size(item, memo, depth + 1);
	} else if (fy_node_get_type(n) == FYNT_MAPPING) {
		struct fy_node_pair *p;

		while (total < over && (p = fy_node_mapping_iterate(n, &it)) != NULL) {
			total += expanded_size(fy_node_pair_key(p), memo, depth + 1);
			if (total < over)
				total += expanded_size(fy_node_pair_value(p), memo, depth + 1);
		}
	}
	if (total > over)
		total = over;
	json_object_set_new(memo, key, json_integer((json_int_t)total));
	return total;
}

/* Where text stops being UTF-8 (libfyaml 0.7.12 spins on some invalid
 * bytes, "%\xff\n"): the offset of the first bad byte, or len. Overlong
 * forms, surrogates and code points past U+10FFFF are bad too. */
static size_t
utf8_bad_at(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned int cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return i;
		if (len - i <= n)
			return i;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += n + 1;
	}
	return len;
}

static json_t *
load(const char *name, struct fy_document *doc, struct fy_diag *diag, char **firstp,
     json_t **marks, char **errmsg)
{
	struct conv c = { .name = name };
	struct pl_buf ptr;
	json_t *v = NULL, *memo;
	size_t nodes;

	if (doc == NULL || fy_diag_got_error(diag)) {
		void *it = NULL;
		struct fy_diag_error *e = fy_diag_errors_iterate(diag, &it);
		char *first = *firstp;
		size_t n = first ? strcspn(first, "\n") : 0;

		if (e)
			pl_seterr(errmsg, PL_EPARSE, "%s:%d:%d: %s", name, e->line + 1,
				  e->column + 1, e->msg);
		else if (n) {
			/* "SOURCE:L:C: error: reason" -> "NAME:L:C: reason"; for text in
			 * memory libfyaml names the source "<memory-@...>". */
			char *tag = strstr(first, ": error: ");
			int line = 0, col = 0;

			if (tag && (size_t)(tag - first) < n) {
				char *p = tag;

				while (p > first && p[-1] != '<' && (p[-1] == ':' || (p[-1] >= '0' && p[-1] <= '9')))
					p--;
				if (sscanf(p, ":%d:%d", &line, &col) == 2)
					pl_seterr(errmsg, PL_EPARSE, "%s:%d:%d: %.*s", name, line, col,
						  (int)(n - (size_t)(tag - first) - 9), tag + 9);
				else
					pl_seterr(errmsg, PL_EPARSE, "%s: %.*s", name,
						  (int)(n - (size_t)(tag - first) - 9), tag + 9);
			} else {
				pl_seterr(errmsg, PL_EPARSE, "%s: %.*s", name, (int)n, first);
			}
		}
		else
			pl_seterr(errmsg, PL_EPARSE, "%s: cannot parse YAML", name);
		goto out;
	}
	memo = json_object();
	nodes = expanded_size(fy_document_root(doc), memo, 0);
	json_decref(memo);
	if (nodes > YAML_MAX_NODES) {
		pl_seterr(errmsg, PL_EPARSE, "%s: more than %d nodes or %d levels once aliases are "
			  "expanded (an alias bomb?)", name, YAML_MAX_NODES, YAML_MAX_DEPTH);
		goto out;
	}
	if (fy_document_resolve(doc) != 0) {
		pl_seterr(errmsg, PL_EPARSE, "%s: cannot resolve an alias or merge key (a merge key needs an alias: <<: *name)", name);
		goto out;
	}
	if (marks)
		c.marks = json_object();
	pl_buf_init(&ptr, 1 << 16);
	set_mark(&c, "", first_token(fy_document_root(doc)));
	v = convert(&c, fy_document_root(doc), &ptr);
	pl_buf_release(&ptr);
	if (c.err) {
		pl_seterr(errmsg, PL_EPARSE, "%s", c.err);
		free(c.err);
		json_decref(v);
		json_decref(c.marks);
		v = NULL;
		goto out;
	}
	if (v == NULL) {
		/* a value libfyaml gave back broken (a long single-quoted scalar
		 * with '' escapes, as libfyaml 0.7.12 unescapes it): an error, never
		 * NULL without one */
		pl_seterr(errmsg, PL_EPARSE,
			  "%s: cannot read a value of this YAML (a quoted scalar?)", name);
		json_decref(c.marks);
		goto out;
	}
	if (marks)
		*marks = c.marks;
out:
	fy_document_destroy(doc);
	fy_diag_destroy(diag);
	free(*firstp); /* the diagnostics may have come while resolving */
	return v;
}

/* libfyaml reports through this instead of stderr; keep the first message. */
static void
diag_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
	char **first = user;

	if (*first == NULL)
		*first = pl_strndup(buf, len);
}

static struct fy_diag *
quiet_diag(struct fy_parse_cfg *cfg, char **first)
{
	struct fy_diag_cfg dcfg;
	struct fy_diag *diag;

	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = diag_output;
	dcfg.user = first;
	dcfg.colorize = false;
	dcfg.level = FYET_ERROR;
	dcfg.show_source = false;
	dcfg.show_position = false;
	dcfg.show_type = false;
	dcfg.show_module = false;
	diag = fy_diag_create(&dcfg);
	memset(cfg, 0, sizeof(*cfg));
	cfg->flags = 0;
	cfg->diag = diag;
	return diag;
}

/* Only blanks and comments: libfyaml builds no document for it. */
static bool
blank_stream(const char *text, size_t len)
{
	bool comment = false;

	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\n')
			comment = false;
		else if (text[i] == '#')
			comment = true;
		else if (!comment && !strchr(" \t\r", text[i]))
			return false;
	}
	return true;
}

json_t *
pl_yaml_load_file(const char *path, json_t **marks, char **errmsg)
{
	struct pl_buf b;
	json_t *v;

	pl_buf_init(&b, 64 << 20);
	if (pl_file_read(path, &b, errmsg) != 0) {
		pl_buf_release(&b);
		return NULL;
	}
	v = pl_yaml_load_string(path, b.data, b.len, marks, errmsg);
	pl_buf_release(&b);
	return v;
}

json_t *
pl_yaml_load_string(const char *name, const char *text, size_t len, json_t **marks,
		    char **errmsg)
{
	struct fy_parse_cfg cfg;
	char *first = NULL;
	struct fy_diag *diag;
	struct fy_document *doc;
	size_t bad = utf8_bad_at((const unsigned char *)text, len);

	if (bad < len) {
		int line = 1, col = 1;

		for (size_t i = 0; i < bad; i++) {
			if (text[i] == '\n')
				line++, col = 1;
			else if (((unsigned char)text[i] & 0xc0) != 0x80)
				col++;
		}
		pl_seterr(errmsg, PL_EPARSE, "%s:%d:%d: invalid UTF-8 (byte 0x%02x; save the file "
			  "as UTF-8)", name, line, col, (unsigned char)text[bad]);
		return NULL;
	}
	if (blank_stream(text, len)) {
		if (marks)
			*marks = json_object();
		return json_null();
	}
	diag = quiet_diag(&cfg, &first);
	doc = fy_document_build_from_string(&cfg, text, len);
	return load(name, doc, diag, &first, marks, errmsg);
}

bool
pl_yaml_mark(const json_t *marks, const char *pointer, int *line, int *col)
{
	char *p = pl_strdup(pointer);
	bool found = false;

	for (;;) {
		json_t *m = json_object_get(marks, p);
		char *slash;

		if (json_is_array(m)) {
			*line = (int)json_integer_value(json_array_get(m, 0));
			*col = (int)json_integer_value(json_array_get(m, 1));
			found = true;
			break;
		}
		if ((slash = strrchr(p, '/')) == NULL)
			break;
		*slash = '\0';
	}
	free(p);
	return found;
}

char *
pl_yaml_ptr_escape(const char *key)
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
	for (const char *s = key; *s; s++) {
		if (*s == '~')
			pl_buf_addstr(&b, "~0");
		else if (*s == '/')
			pl_buf_addstr(&b, "~1");
		else
			pl_buf_addch(&b, *s);
	}
	return pl_buf_detach(&b, NULL);
}

/* Does a string need quotes to load back as the same string? */
static bool
needs_quotes(const char *s)
{
	static const char *const words[] = { "true", "false", "null", "yes", "no", "on", "off",
					     "~", "True", "False", "Null", "NULL", "TRUE", "FALSE",
					     "Yes", "No", "On", "Off", NULL };
	char *end;

	if (*s == '\0' || strchr("-?:,[]{}#&*!|>'\"%@` ", *s) || s[strlen(s) - 1] == ' ')
		return true;
	for (size_t i = 0; words[i]; i++)
		if (!strcmp(s, words[i]))
			return true;
	strtod(s, &end);
	if (*end == '\0')
		return true; /* would load as a number */
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (p[0] == ':' && (p[1] == ' ' || p[1] == '\0')) ||
		    (p[0] == ' ' && p[1] == '#'))
			return true;
	return false;
}

static void
emit_scalar(const json_t *v, struct pl_buf *out)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (!needs_quotes(s)) {
			pl_buf_addstr(out, s);
			return;
		}
		pl_buf_addch(out, '"');
		for (const char *p = s; *p; p++) {
			if (*p == '"' || *p == '\\')
				pl_buf_addf(out, "\\%c", *p);
			else if (*p == '\n')
				pl_buf_addstr(out, "\\n");
			else if (*p == '\t')
				pl_buf_addstr(out, "\\t");
			else if ((unsigned char)*p < 0x20)
				pl_buf_addf(out, "\\x%02x", (unsigned char)*p);
			else
				pl_buf_addch(out, *p);
		}
		pl_buf_addch(out, '"');
	} else if (json_is_integer(v)) {
		pl_buf_addf(out, "%lld", (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		pl_buf_addf(out, "%.17g", json_real_value(v));
	} else if (json_is_true(v)) {
		pl_buf_addstr(out, "true");
	} else if (json_is_false(v)) {
		pl_buf_addstr(out, "false");
	} else {
		pl_buf_addstr(out, "null");
	}
}

static bool
is_empty_collection(const json_t *v)
{
	return (json_is_object(v) && json_object_size(v) == 0) ||
	       (json_is_array(v) && json_array_size(v) == 0);
}

int
pl_yaml_emit(const json_t *v, int indent, struct pl_buf *out)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x) {
			json_t *key = json_string(k);

			pl_buf_addf(out, "%*s", indent, "");
			emit_scalar(key, out);
			json_decref(key);
			pl_buf_addch(out, ':');
			if (is_empty_collection(x)) {
				pl_buf_addstr(out, json_is_object(x) ? " {}\n" : " []\n");
			} else if (json_is_object(x) || json_is_array(x)) {
				pl_buf_addch(out, '\n');
				pl_yaml_emit(x, indent + 2, out);
			} else {
				pl_buf_addch(out, ' ');
				emit_scalar(x, out);
				pl_buf_addch(out, '\n');
			}
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			pl_buf_addf(out, "%*s- ", indent, "");
			if (json_is_object(x) && json_object_size(x)) {
				struct pl_buf item;
				size_t skip = (size_t)indent + 2;

				pl_buf_init(&item, out->max);
				pl_yaml_emit(x, indent + 2, &item);
				/* the first member goes on the dash's line */
				pl_buf_add(out, item.data + skip, item.len - skip);
				pl_buf_release(&item);
			} else if (json_is_array(x) && json_array_size(x)) {
				pl_buf_addch(out, '\n');
				pl_yaml_emit(x, indent + 2, out);
			} else {
				emit_scalar(x, out);
				pl_buf_addch(out, '\n');
			}
		}
	} else {
		pl_buf_addf(out, "%*s", indent, "");
		emit_scalar(v, out);
		pl_buf_addch(out, '\n');
	}
	return out->len >= out->max ? PL_ETOOBIG : 0;
}
