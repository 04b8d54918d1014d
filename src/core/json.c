/*
 * jansson helpers tolerant of Proxmox's loose typing, and canonical hashing.
 */
#include "core/common.h"
#include "core/json.h"
#include "core/buf.h"
#include "core/err.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>

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

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static json_t *
load_piece(const char *p, size_t n)
{
	char *text = pl_malloc(n + 2);
	json_t *v;

	text[0] = '[';
	memcpy(text + 1, p, n);
	text[n + 1] = ']';
	v = json_loadb(text, n + 2, 0, NULL);
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
		return json_loadb(data, len, JSON_DECODE_ANY, NULL);
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

const char *
pl_json_str(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *
pl_json_str_or(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = pl_json_str(obj, key);

	return s ? s : dflt;
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
		} else {
			i = 0;
			json_object_foreach((json_t *)v, k, m)
			{
				if ((i++ > 0 && (r = put(b, ",", 1)) != 0) ||
				    (r = write_string(b, k,
				                      json_object_iter_key_len(
				                          json_object_key_to_iter(k)))) != 0 ||
				    (r = put(b, ":", 1)) != 0 ||
				    (r = write_value(b, m, sorted)) != 0)
					return r;
			}
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

static char *
dump_alloc(const json_t *v, bool sorted)
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
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
