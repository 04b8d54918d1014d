/*
 * jansson helpers tolerant of Proxmox's loose typing, and canonical hashing.
 */
#include "core/common.h"
#include "core/json.h"
#include "core/buf.h"
#include "core/err.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <yajl/yajl_parse.h>

/*
 * json_loadb, faster. jansson's lexer reads a character at a time through a
 * stream callback and copies each one into a buffer: about 140 instructions a
 * byte, a quarter of a sync's CPU. yajl (Debian's libyajl) scans the same text
 * several times faster; its events build the jansson values directly, through
 * jansson's own constructors, so strings and keys pass jansson's UTF-8 check.
 * Where the two could differ (a \u escape, \v or \f between tokens, a NUL
 * byte, a number strtod reads otherwise, a bare scalar) the text goes to
 * jansson whole, so the result or the failure is always json_loadb's;
 * tests/fuzz/fuzz_json_load.c compares them.
 */
#define JANSSON_MAX_DEPTH 2048 /* JSON_PARSER_MAX_DEPTH */

struct build {
	yajl_handle h;
	json_t *root;
	size_t end;     /* just past the top-level value */
	json_t **stack; /* open arrays and objects */
	size_t depth, cap;
	char *key; /* the pending member name (yajl may reuse its buffer) */
	size_t key_len, key_cap;
	bool ascii; /* no byte >= 0x80: nothing for jansson's UTF-8 check to refuse */
	bool defer; /* hand the text to jansson */
	/* Reading a list as it arrives (pl_json_items): the "data" array of the
	 * top-level object, whose object items go to on_item as each closes. */
	json_t *list;
	pl_json_item_cb on_item;
	void *item_arg;
	size_t fed; /* bytes given to yajl before the current chunk */
};

static bool all_ascii(const char *data, size_t len);

static int
b_add(struct build *b, json_t *v)
{
	json_t *top;

	if (v == NULL)
		return 0;
	if (b->depth + 1 > JANSSON_MAX_DEPTH) {
		json_decref(v);
		return 0;
	}
	if (b->depth == 0) {
		if (!json_is_object(v) && !json_is_array(v)) {
			/* yajl may see a bare number only when flushed: jansson's. */
			json_decref(v);
			b->defer = true;
			return 0;
		}
		b->root = v;
		return 1;
	}
	top = b->stack[b->depth - 1];
	if (json_is_array(top))
		return json_array_append_new(top, v) == 0;
	if (b->ascii || (b->on_item && all_ascii(b->key, b->key_len)))
		return json_object_setn_new_nocheck(top, b->key, b->key_len, v) == 0;
	return json_object_setn_new(top, b->key, b->key_len, v) == 0;
}

static int
b_open(struct build *b, json_t *v)
{
	if (!b_add(b, json_incref(v))) {
		json_decref(v);
		return 0;
	}
	if (b->depth == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->stack = pl_realloc(b->stack, b->cap * sizeof(*b->stack));
	}
	if (b->on_item && b->depth == 1 && json_is_array(v) && json_is_object(b->stack[0]) &&
	    b->key_len == 4 && !memcmp(b->key, "data", 4))
		b->list = v;
	b->stack[b->depth++] = v;
	json_decref(v); /* the parent (or root) holds it */
	return 1;
}

static int
b_close(void *ctx)
{
	struct build *b = ctx;

	if (--b->depth == 0)
		b->end = b->fed + yajl_get_bytes_consumed(b->h);
	else if (b->depth == 2 && b->list && b->stack[1] == b->list && json_is_object(b->stack[2]))
		b->on_item(b->stack[2], b->item_arg);
	return 1;
}

static int
b_null(void *ctx)
{
	return b_add(ctx, json_null());
}

static int
b_bool(void *ctx, int v)
{
	return b_add(ctx, json_boolean(v));
}

/* An integer yajl has checked (-?(0|[1-9][0-9]*)); false out of range, where
 * jansson's strtoll fails with ERANGE. */
static bool
int_value(const char *s, size_t n, json_int_t *out)
{
	bool neg = s[0] == '-';
	unsigned long long u = 0, lim = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;

	for (size_t i = neg; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (u > (lim - d) / 10)
			return false;
		u = u * 10 + d;
	}
	*out = neg ? (u ? -(json_int_t)(u - 1) - 1 : 0) : (json_int_t)u;
	return true;
}

/* Numbers as jansson reads them: an integer unless '.', 'e' or 'E'; out of
 * range is an error, a real's underflow is not. */
static int
b_number(void *ctx, const char *s, size_t n)
{
	struct build *b = ctx;
	char tmp[64], *end;
	json_int_t i;
	double d;
	size_t k = 0;

	while (k < n && s[k] != '.' && s[k] != 'e' && s[k] != 'E')
		k++;
	if (k == n)
		return int_value(s, n, &i) && b_add(b, json_integer(i));
	if (n >= sizeof(tmp)) {
		b->defer = true;
		return 0;
	}
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	d = strtod(tmp, &end);
	if (end != tmp + n) {
		b->defer = true; /* a locale's decimal comma */
		return 0;
	}
	if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
		return 0;
	return b_add(b, json_real(d));
}

static int
b_string(void *ctx, const unsigned char *s, size_t n)
{
	struct build *b = ctx;

	if (b->on_item && memchr(s, '\0', n))
		return 0; /* a \u0000, which jansson refuses */
	if (b->ascii || (b->on_item && all_ascii((const char *)s, n)))
		return b_add(b, json_stringn_nocheck((const char *)s, n));
	return b_add(b, json_stringn((const char *)s, n));
}

static int
b_key(void *ctx, const unsigned char *s, size_t n)
{
	struct build *b = ctx;

	if (b->on_item && memchr(s, '\0', n))
		return 0;
	/* A second "data" after the list would replace what was handed on. */
	if (b->list && b->depth == 1 && n == 4 && !memcmp(s, "data", 4))
		return 0;
	if (n + 1 > b->key_cap) {
		b->key_cap = n + 64;
		b->key = pl_realloc(b->key, b->key_cap);
	}
	memcpy(b->key, s, n);
	b->key[n] = '\0';
	b->key_len = n;
	return 1;
}

static int
b_start_map(void *ctx)
{
	return b_open(ctx, json_object());
}

static int
b_start_array(void *ctx)
{
	return b_open(ctx, json_array());
}

static const yajl_callbacks build_cbs = {
    .yajl_null = b_null,
    .yajl_boolean = b_bool,
    .yajl_number = b_number,
    .yajl_string = b_string,
    .yajl_start_map = b_start_map,
    .yajl_map_key = b_key,
    .yajl_end_map = b_close,
    .yajl_start_array = b_start_array,
    .yajl_end_array = b_close,
};

/* What yajl reads otherwise than jansson: \u escapes (NUL, lone surrogates),
 * \v and \f (whitespace to yajl), NUL bytes (jansson's reader skips them). */
static bool
for_jansson(const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	if (memchr(data, '\v', len) || memchr(data, '\f', len) || memchr(data, '\0', len))
		return true;
	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL && ++p < end)
		if (*p++ == 'u')
			return true;
	return false;
}

static bool
all_ascii(const char *data, size_t len)
{
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, data + i, 8);
		acc |= w;
	}
	for (; i < len; i++)
		acc |= (unsigned char)data[i];
	return (acc & 0x8080808080808080ULL) == 0;
}

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

json_t *
pl_json_loadb(const char *data, size_t len, size_t flags)
{
	struct build b = {.ascii = all_ascii(data, len)};
	bool ok;

	if ((flags & ~(size_t)(JSON_DECODE_ANY | JSON_ALLOW_NUL)) || for_jansson(data, len))
		return json_loadb(data, len, flags, NULL);
	if ((b.h = yajl_alloc(&build_cbs, NULL, &b)) == NULL)
		pl_die("out of memory");
	yajl_config(b.h, yajl_dont_validate_strings, 1); /* jansson's constructors check */
	ok = yajl_parse(b.h, (const unsigned char *)data, len) == yajl_status_ok &&
	     yajl_complete_parse(b.h) == yajl_status_ok && b.root;
	yajl_free(b.h);
	free(b.stack);
	free(b.key);
	/* yajl lets an unterminated token after the value pass: only whitespace may. */
	ok = ok && skip_ws(data + b.end, data + len) == data + len;
	if (!ok) {
		json_decref(b.root);
		return b.defer ? json_loadb(data, len, flags, NULL) : NULL;
	}
	return b.root;
}

/*
 * A {"data":[...]} answer read as it arrives: yajl's events build the same
 * values as pl_json_loadb's, and each object in the list is handed on as soon
 * as it is complete. There is no falling back to jansson here (what has been
 * handed on stays handed on): strings are still checked by jansson's
 * constructors; the few texts that pl_json_loadb gives to jansson whole fail
 * (a number of 64 characters or more, a bare scalar, \u0000, \v, \f, a NUL
 * byte), and so does a second "data" member after the list. One difference
 * is left: a lone UTF-16 surrogate escape, which yajl reads as '?' or passes
 * on (jansson's check then refuses what is not UTF-8) where jansson refuses
 * it. PVE does not send those; tests/fuzz/fuzz_json_items.c checks the rest.
 */
struct pl_json_items {
	struct build b;
	bool failed;
	/* yajl re-reads an unfinished token from its start on every chunk: one
	 * long string would cost the square of its length. The token in progress
	 * is followed here, and held to PL_JSON_MAX_TOKEN. */
	bool in_str, esc;
	size_t tok;
};

/* Follow the lexer over data; false once a string, key or bare token is
 * longer than PL_JSON_MAX_TOKEN bytes. */
static bool
items_tokens_ok(struct pl_json_items *r, const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	while (p < end) {
		if (r->in_str) {
			const char *q = p;

			if (r->esc) {
				r->esc = false;
				q++;
			}
			while (q < end && *q != '"' && *q != '\\')
				q++;
			r->tok += (size_t)(q - p);
			if (r->tok > PL_JSON_MAX_TOKEN)
				return false;
			if (q == end)
				return true;
			if (*q == '\\') {
				r->esc = true;
			} else {
				r->in_str = false;
				r->tok = 0;
			}
			p = q + 1;
			continue;
		}
		switch (*p++) {
		case '"':
			r->in_str = true;
			/* fallthrough */
		case '{': case '}': case '[': case ']': case ',': case ':':
		case ' ': case '\t': case '\r': case '\n':
			r->tok = 0;
			break;
		default:
			if (++r->tok > PL_JSON_MAX_TOKEN)
				return false;
		}
	}
	return true;
}

struct pl_json_items *
pl_json_items_new(pl_json_item_cb on_item, void *arg)
{
	struct pl_json_items *r = pl_calloc(1, sizeof(*r));

	r->b.on_item = on_item;
	r->b.item_arg = arg;
	if ((r->b.h = yajl_alloc(&build_cbs, NULL, &r->b)) == NULL)
		pl_die("out of memory");
	yajl_config(r->b.h, yajl_dont_validate_strings, 1); /* jansson's constructors check */
	return r;
}

int
pl_json_items_feed(struct pl_json_items *r, const char *data, size_t len)
{
	bool closed = r->b.root && r->b.depth == 0;

	/* \v and \f are whitespace to yajl, NUL bytes skipped by jansson: JSON
	 * has neither, and pl_json_loadb leaves their judging to jansson. */
	if (r->failed || memchr(data, '\v', len) || memchr(data, '\f', len) ||
	    memchr(data, '\0', len) || !items_tokens_ok(r, data, len) ||
	    yajl_parse(r->b.h, (const unsigned char *)data, len) != yajl_status_ok) {
		r->failed = true;
		return -1;
	}
	/* Only whitespace after the value (see pl_json_loadb). */
	if (r->b.root && r->b.depth == 0) {
		const char *after = data + (closed ? 0 : r->b.end - r->b.fed);

		if (skip_ws(after, data + len) != data + len) {
			r->failed = true;
			return -1;
		}
	}
	r->b.fed += len;
	return 0;
}

json_t *
pl_json_items_end(struct pl_json_items *r)
{
	json_t *root = NULL;

	if (!r->failed && yajl_complete_parse(r->b.h) == yajl_status_ok && r->b.root &&
	    r->b.depth == 0)
		root = r->b.root;
	else
		json_decref(r->b.root);
	yajl_free(r->b.h);
	free(r->b.stack);
	free(r->b.key);
	free(r);
	return root;
}

json_t *
pl_json_parse(const char *data, size_t len, char **errmsg)
{
	json_error_t e;
	json_t *v = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

	if (v == NULL)
		pl_seterr(errmsg, PL_EPARSE, "line %d col %d: %s", e.line, e.column, e.text);
	return v;
}

/*
 * Large lists parsed on several threads. jansson reads about 25 MB/s, so the
 * 3 MB /cluster/resources of a 10,000-guest cluster costs over 100 ms on one
 * core. Its array is cut between top-level elements (a scan that follows only
 * strings and brackets) and each piece is parsed by jansson as an array of its
 * own. Anything unexpected parses the whole text with jansson instead, so the
 * result (or the failure) is always json_loadb's.
 */
#define PAR_MAX 8
#define PAR_MAX_DEPTH 1000

struct piece {
	const char *p;
	size_t n;
	json_t *v;
	pthread_t thread;
};

static json_t *
load_piece(const char *p, size_t n)
{
	char *text = pl_malloc(n + 2);
	json_t *v;

	text[0] = '[';
	memcpy(text + 1, p, n);
	text[n + 1] = ']';
	v = pl_json_loadb(text, n + 2, 0);
	free(text);
	return v;
}

static void *
piece_run(void *arg)
{
	struct piece *pc = arg;

	pc->v = load_piece(pc->p, pc->n);
	return NULL;
}

/* Cut {"data":[ e, e, ... ]} into up to n pieces of whole elements; 0 when the
 * text is not exactly of that shape. */
static int
cut_list(const char *data, size_t len, struct piece *pcs, int n)
{
	static const char key[] = "\"data\"";
	const char *end = data + len, *p = skip_ws(data, end), *from;
	int depth = 0, np = 0;
	bool in_str = false;

	if (p == end || *p++ != '{')
		return 0;
	p = skip_ws(p, end);
	if ((size_t)(end - p) < sizeof(key) - 1 || memcmp(p, key, sizeof(key) - 1) != 0)
		return 0;
	p = skip_ws(p + sizeof(key) - 1, end);
	if (p == end || *p++ != ':')
		return 0;
	p = skip_ws(p, end);
	if (p == end || *p++ != '[')
		return 0;
	from = p;
	for (; p < end; p++) {
		char c = *p;

		if (in_str) {
			if (c == '\\')
				p++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > PAR_MAX_DEPTH)
				return 0;
		} else if (c == '}' || c == ']') {
			if (depth-- == 0)
				break;
		} else if (c == ',' && depth == 0 && np < n - 1 &&
		           (size_t)(p - data) >= len / (size_t)n * (size_t)(np + 1)) {
			/* An empty piece would hide a stray comma: "[,1]" is not JSON. */
			if (skip_ws(from, p) == p)
				return 0;
			pcs[np++] = (struct piece){.p = from, .n = (size_t)(p - from)};
			from = p + 1;
		}
	}
	if (p >= end || *p != ']' || skip_ws(from, p) == p)
		return 0;
	pcs[np++] = (struct piece){.p = from, .n = (size_t)(p - from)};
	p = skip_ws(p + 1, end);
	if (p == end || *p != '}' || skip_ws(p + 1, end) != end)
		return 0;
	return np;
}

json_t *
pl_json_load_list(const char *data, size_t len, int threads)
{
	struct piece pcs[PAR_MAX];
	json_t *list, *doc = NULL;
	int n, started = 0;
	bool ok = true;

	if (threads > PAR_MAX)
		threads = PAR_MAX;
	if (threads < 2 || (n = cut_list(data, len, pcs, threads)) < 2)
		return pl_json_loadb(data, len, JSON_DECODE_ANY);
	for (; started < n - 1; started++)
		if (pthread_create(&pcs[started + 1].thread, NULL, piece_run, &pcs[started + 1]) !=
		    0)
			break;
	pcs[0].v = load_piece(pcs[0].p, pcs[0].n);
	for (int i = started + 1; i < n; i++)
		pcs[i].v = load_piece(pcs[i].p, pcs[i].n); /* a thread that did not start */
	for (int i = 0; i < started; i++)
		pthread_join(pcs[i + 1].thread, NULL);
	list = pcs[0].v;
	for (int i = 0; i < n; i++)
		ok = ok && pcs[i].v != NULL;
	for (int i = 1; i < n; i++) {
		if (ok)
			json_array_extend(list, pcs[i].v);
		json_decref(pcs[i].v);
	}
	if (ok) {
		doc = json_object();
		json_object_set_new(doc, "data", list);
		return doc;
	}
	json_decref(list);
	/* A piece did not parse: let jansson judge (and word) the whole. */
	return json_loadb(data, len, JSON_DECODE_ANY, NULL);
}

static int
cmp_by_key(const void *a, const void *b, void *key)
{
	long long x = pl_json_int(*(const json_t *const *)a, key, 0);
	long long y = pl_json_int(*(const json_t *const *)b, key, 0);

	return (x > y) - (x < y);
}

json_t *
pl_json_values_sorted(const json_t *obj, const char *key)
{
	json_t **v = pl_calloc(json_object_size(obj) + 1, sizeof(*v)), *out = json_array(), *e;
	const char *k;
	size_t n = 0;

	json_object_foreach((json_t *)obj, k, e)
		v[n++] = e;
	qsort_r(v, n, sizeof(*v), cmp_by_key, (void *)key);
	for (size_t i = 0; i < n; i++)
		json_array_append(out, v[i]);
	free(v);
	return out;
}

const char *
pl_json_str(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

json_t *
pl_json_string_lossy(const char *s)
{
	json_t *v;
	char *copy;

	if (s == NULL)
		s = "";
	v = json_string(s);
	if (v)
		return v;
	copy = strdup(s);
	if (copy == NULL)
		return json_string("");
	for (unsigned char *c = (unsigned char *)copy; *c; c++)
		if (*c >= 0x80)
			*c = '?';
	v = json_string(copy);
	free(copy);
	return v;
}

const char *
pl_json_str_or(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = pl_json_str(obj, key);

	return s ? s : dflt;
}

const json_t *
pl_json_find(const json_t *list, const char *key, const char *value, bool nocase)
{
	const json_t *e;
	size_t i;

	json_array_foreach(list, i, e) {
		const char *v = pl_json_str_or(e, key, "");

		if (nocase ? !strcasecmp(v, value) : !strcmp(v, value))
			return e;
	}
	return NULL;
}

long long
pl_json_int(const json_t *obj, const char *key, long long dflt)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	char *end;
	long long n;

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	if (json_is_true(v))
		return 1;
	if (json_is_false(v))
		return 0;
	if (!json_is_string(v))
		return dflt;
	s = json_string_value(v);
	errno = 0;
	n = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno)
		return dflt;
	return n;
}

double
pl_json_num(const json_t *obj, const char *key, double dflt)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	char *end;
	double d;

	if (json_is_number(v))
		return json_number_value(v);
	if (!json_is_string(v))
		return dflt;
	s = json_string_value(v);
	d = strtod(s, &end);
	return (end == s || *end != '\0') ? dflt : d;
}

bool
pl_json_bool(const json_t *obj, const char *key, bool dflt)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_boolean(v))
		return json_is_true(v);
	if (json_is_integer(v))
		return json_integer_value(v) != 0;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
		    !strcasecmp(s, "on"))
			return true;
		if (!strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
		    !strcasecmp(s, "off") || !strcmp(s, ""))
			return false;
	}
	return dflt;
}

/*
 * A compact writer for jansson values, byte for byte what json_dumps() writes
 * with JSON_COMPACT (and JSON_SORT_KEYS when sorted) but several times faster:
 * sync dumps and hashes every guest of a cluster, and jansson's dump formats
 * each integer with snprintf and each string through a callback per run.
 * tests/unit/core/test_json.c compares the two on awkward values.
 */
struct kv {
	const char *key;
	size_t len;
	const json_t *value;
};

static int
kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int r = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	return r ? r : (x->len > y->len) - (x->len < y->len);
}

static char *
room(struct pl_buf *b, size_t n)
{
	if (pl_buf_grow(b, n) != 0)
		return NULL;
	return b->data + b->len;
}

static int
put(struct pl_buf *b, const char *p, size_t n)
{
	char *d = room(b, n);

	if (d == NULL)
		return PL_ETOOBIG;
	memcpy(d, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int
write_string(struct pl_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	static const char short_from[] = "\"\\\b\f\n\r\t", short_to[] = "\"\\bfnrt";
	size_t i = 0, run;
	char *d;

	/* Worst case: every byte a six-byte \u escape, plus the quotes. */
	if ((d = room(b, n * 6 + 2)) == NULL)
		return PL_ETOOBIG;
	*d++ = '"';
	while (i < n) {
		for (run = i; run < n; run++) {
			unsigned char c = (unsigned char)s[run];

			if (c < 0x20 || c == '"' || c == '\\')
				break;
		}
		memcpy(d, s + i, run - i);
		d += run - i;
		if ((i = run) == n)
			break;
		unsigned char c = (unsigned char)s[i++];
		const char *hit = memchr(short_from, c, sizeof(short_from) - 1);

		*d++ = '\\';
		if (hit) {
			*d++ = short_to[hit - short_from];
		} else {
			memcpy(d, "u00", 3);
			d[3] = hex[c >> 4];
			d[4] = hex[c & 15];
			d += 5;
		}
	}
	*d++ = '"';
	b->len = (size_t)(d - b->data);
	b->data[b->len] = '\0';
	return 0;
}

static int
write_integer(struct pl_buf *b, json_int_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return put(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* jansson's real format: %.17g, ".0" when it would read back as an integer,
 * no '+' and no leading zeros in the exponent. */
static int
write_real(struct pl_buf *b, double v)
{
	char tmp[40];
	int n = snprintf(tmp, sizeof(tmp) - 3, "%.17g", v);
	char *e;

	if (n < 0 || (size_t)n >= sizeof(tmp) - 3)
		return PL_ETOOBIG;
	for (char *p = tmp; *p; p++)
		if (*p == ',')
			*p = '.'; /* a locale's decimal comma */
	if (!strchr(tmp, '.') && !strchr(tmp, 'e')) {
		memcpy(tmp + n, ".0", 3);
		n += 2;
	}
	if ((e = strchr(tmp, 'e')) != NULL) {
		char *start = e + 1, *end = e + 2;

		if (*start == '-')
			start++;
		while (*end == '0')
			end++;
		if (end != start) {
			memmove(start, end, (size_t)(tmp + n - end) + 1);
			n -= (int)(end - start);
		}
	}
	return put(b, tmp, (size_t)n);
}

static int write_value(struct pl_buf *b, const json_t *v, bool sorted);

static bool
skipped(const char *k, const char *const *skip, size_t nskip)
{
	for (size_t i = 0; i < nskip; i++)
		if (k[0] == skip[i][0] && strcmp(k, skip[i]) == 0)
			return true;
	return false;
}

/* An object's members in jansson's order, but those named in skip; values
 * sorted or not as the caller writes. */
static int
write_members(struct pl_buf *b, const json_t *v, bool sorted, const char *const *skip, size_t nskip)
{
	const char *k;
	json_t *m;
	size_t i = 0;
	int r;

	json_object_foreach((json_t *)v, k, m)
	{
		if (skipped(k, skip, nskip))
			continue;
		if ((i++ > 0 && (r = put(b, ",", 1)) != 0) ||
		    (r = write_string(b, k,
		                      json_object_iter_key_len(json_object_key_to_iter(k)))) != 0 ||
		    (r = put(b, ":", 1)) != 0 || (r = write_value(b, m, sorted)) != 0)
			return r;
	}
	return 0;
}

static int
write_value(struct pl_buf *b, const json_t *v, bool sorted)
{
	size_t i, n;
	int r = 0;

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *m;

		if ((r = put(b, "{", 1)) != 0)
			return r;
		n = json_object_size(v);
		if (sorted && n > 1) {
			struct kv *kv = pl_calloc(n, sizeof(*kv));

			i = 0;
			json_object_foreach((json_t *)v, k, m) kv[i++] =
			    (struct kv){k, json_object_iter_key_len(json_object_key_to_iter(k)), m};
			qsort(kv, n, sizeof(*kv), kv_cmp);
			for (i = 0; i < n && r == 0; i++)
				if ((i == 0 || (r = put(b, ",", 1)) == 0) &&
				    (r = write_string(b, kv[i].key, kv[i].len)) == 0 &&
				    (r = put(b, ":", 1)) == 0)
					r = write_value(b, kv[i].value, sorted);
			free(kv);
		} else if ((r = write_members(b, v, sorted, NULL, 0)) != 0) {
			return r;
		}
		return r ? r : put(b, "}", 1);
	}
	case JSON_ARRAY:
		if ((r = put(b, "[", 1)) != 0)
			return r;
		n = json_array_size(v);
		for (i = 0; i < n; i++)
			if ((i > 0 && (r = put(b, ",", 1)) != 0) ||
			    (r = write_value(b, json_array_get(v, i), sorted)) != 0)
				return r;
		return put(b, "]", 1);
	case JSON_STRING:
		return write_string(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return write_integer(b, json_integer_value(v));
	case JSON_REAL:
		return write_real(b, json_real_value(v));
	case JSON_TRUE:
		return put(b, "true", 4);
	case JSON_FALSE:
		return put(b, "false", 5);
	case JSON_NULL:
		return put(b, "null", 4);
	}
	return PL_EPARSE;
}

int
pl_json_write(struct pl_buf *b, const json_t *v, bool sorted)
{
	size_t len = b->len;
	int r = write_value(b, v, sorted);

	if (r != 0)
		pl_buf_truncate(b, len);
	return r;
}

/* A line break and two spaces per level of depth. */
static int
put_newline(struct pl_buf *b, int depth)
{
	char *d = room(b, 1 + 2 * (size_t)depth);

	if (d == NULL)
		return PL_ETOOBIG;
	d[0] = '\n';
	memset(d + 1, ' ', 2 * (size_t)depth);
	b->len += 1 + 2 * (size_t)depth;
	b->data[b->len] = '\0';
	return 0;
}

/* jansson's JSON_INDENT(2) layout: one member or element per line, ": "
 * after keys, empty containers as {} and []. */
static int
write_pretty(struct pl_buf *b, const json_t *v, int depth)
{
	size_t i = 0;
	const char *k;
	json_t *m;
	int r = 0;

	if (json_is_object(v) && json_object_size(v) > 0) {
		if ((r = put(b, "{", 1)) != 0)
			return r;
		json_object_foreach((json_t *)v, k, m)
		{
			if ((i++ > 0 && (r = put(b, ",", 1)) != 0) ||
			    (r = put_newline(b, depth + 1)) != 0 ||
			    (r = write_string(b, k, json_object_iter_key_len(
							    json_object_key_to_iter(k)))) != 0 ||
			    (r = put(b, ": ", 2)) != 0 || (r = write_pretty(b, m, depth + 1)) != 0)
				return r;
		}
		return (r = put_newline(b, depth)) != 0 ? r : put(b, "}", 1);
	}
	if (json_is_array(v) && json_array_size(v) > 0) {
		if ((r = put(b, "[", 1)) != 0)
			return r;
		for (i = 0; i < json_array_size(v); i++)
			if ((i > 0 && (r = put(b, ",", 1)) != 0) ||
			    (r = put_newline(b, depth + 1)) != 0 ||
			    (r = write_pretty(b, json_array_get(v, i), depth + 1)) != 0)
				return r;
		return (r = put_newline(b, depth)) != 0 ? r : put(b, "]", 1);
	}
	return write_value(b, v, false);
}

int
pl_json_write_pretty(struct pl_buf *b, const json_t *v)
{
	size_t len = b->len;
	int r = write_pretty(b, v, 0);

	if (r != 0)
		pl_buf_truncate(b, len);
	return r;
}

static char *
dump_alloc(const json_t *v, bool sorted)
{
	struct pl_buf b;

	/* A value in memory was bounded when it was read; its text (escapes can
	 * make it 6 times longer) is not capped again. */
	pl_buf_init(&b, SIZE_MAX / 2);
	if (pl_json_write(&b, v, sorted) != 0)
		pl_die("JSON value larger than %zu bytes", b.max);
	return pl_buf_detach(&b, NULL);
}

char *
pl_json_canonical(const json_t *v)
{
	return dump_alloc(v, true);
}

char *
pl_json_compact(const json_t *v)
{
	return dump_alloc(v, false);
}

char *
pl_json_compact_without(const json_t *obj, const char *const *skip, size_t nskip)
{
	struct pl_buf b;

	pl_buf_init(&b, SIZE_MAX / 2); /* see dump_alloc */
	if (put(&b, "{", 1) != 0 || write_members(&b, obj, false, skip, nskip) != 0 ||
	    put(&b, "}", 1) != 0)
		pl_die("JSON value larger than %zu bytes", b.max);
	return pl_buf_detach(&b, NULL);
}

static const EVP_MD *sha256_md;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (sha256_md == NULL)
		pl_die("OpenSSL has no SHA-256");
}

void
pl_sha256_hex(const void *data, size_t len, char out[65])
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	pthread_once(&once, sha256_fetch);
	if (!EVP_Digest(data, len, md, &mdlen, sha256_md, NULL) || mdlen != 32)
		pl_die("SHA-256 failed");
	for (unsigned int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

void
pl_json_sha256(const json_t *v, char out[65])
{
	char *s = pl_json_canonical(v);

	pl_sha256_hex(s, strlen(s), out);
	free(s);
}

void
pl_json_keep_until_exit(json_t *v)
{
	static json_t *kept;

	if (v == NULL)
		return;
	if (kept == NULL)
		kept = json_array();
	json_array_append_new(kept, v);
}
