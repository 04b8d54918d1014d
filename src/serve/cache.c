/*
 * Answers kept in memory between the changes that make them stale: a read
 * route renders its answer once (with the same view code the CLI's -o json
 * uses) and later requests for the same path and query are sent those bytes,
 * gzipped once when the client accepts it, until the store, the refresh or an
 * event says something changed.
 */
#include "core/common.h"
#include "serve/internal.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "state/state.h"

#include <event2/http.h>
#include <zlib.h>

/* Bytes of answers kept at most (raw and gzipped); over it, all are dropped. */
#define CACHE_MAX_BYTES (32LL << 20)
/* Answers shorter than this are sent as they are, never gzipped. */
#define GZIP_MIN 1024
#define NBUCKETS 8192

/* Bytes shared by the cache and the answers being sent (refcounted: a drop
 * while a large answer is still going out leaves it to its last reader). */
struct blob {
	int refs;
	size_t len;
	unsigned char data[];
};

struct entry {
	struct entry *next;
	uint64_t hash;
	unsigned cls;
	struct blob *body, *gz; /* gz: NULL until a client asks, then maybe empty (no gain) */
	char key[];
};

struct pl_serve_cache {
	struct entry *buckets[NBUCKETS];
	long long generation; /* the store's, when these were rendered */
	long long bytes;
	long long hits, misses;
};

static void
blob_unref(struct blob *b)
{
	if (b && --b->refs == 0)
		free(b);
}

static void
blob_sent(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	blob_unref(arg);
}

static uint64_t
fnv1a(const char *s, uint64_t h)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static void
entry_free(struct pl_serve_cache *c, struct entry *e)
{
	c->bytes -= (long long)(e->body->len + (e->gz ? e->gz->len : 0));
	blob_unref(e->body);
	blob_unref(e->gz);
	free(e);
}

void
pl_serve_cache_drop(struct pl_serve *sv, unsigned cls)
{
	struct pl_serve_cache *c = sv->cache;

	/* nothing kept (a burst of events after the first drop): no walk */
	if (c == NULL || c->bytes == 0)
		return;
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct entry **p = &c->buckets[i];

		while (*p) {
			struct entry *e = *p;

			if (e->cls & cls) {
				*p = e->next;
				entry_free(c, e);
			} else {
				p = &e->next;
			}
		}
	}
}

void
pl_serve_cache_free(struct pl_serve *sv)
{
	pl_serve_cache_drop(sv, ~0u);
	free(sv->cache);
	sv->cache = NULL;
}

/* The cache, emptied first when the store changed since its answers were made. */
static struct pl_serve_cache *
cache_of(struct pl_serve *sv)
{
	long long gen = sv->state ? pl_state_generation(sv->state) : 0;

	/* several clusters: a commit to any one's store moves the sum */
	for (size_t i = 0; i < sv->nmore_states; i++)
		gen += pl_state_generation(sv->more_states[i]);
	if (sv->cache == NULL) {
		sv->cache = pl_calloc(1, sizeof(*sv->cache));
		sv->cache->generation = gen;
	}
	if (sv->cache->generation != gen) {
		pl_serve_cache_drop(sv, ~0u);
		sv->cache->generation = gen;
	}
	return sv->cache;
}

/* The key of a request: its path and query string as sent. */
static char *
key_of(const struct pl_serve_req *r, uint64_t *hash)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	char *key = pl_asprintf("%s?%s", r->path, q ? q : "");

	*hash = fnv1a(key, 0xcbf29ce484222325ULL);
	return key;
}

/* Whether Accept-Encoding names gzip ("gzip", "br, gzip;q=0.8") with a
 * weight above zero. */
static bool
accepts_gzip(const struct pl_serve_req *r)
{
	const char *p = pl_serve_header(r, "Accept-Encoding");

	while (p && *p) {
		size_t n;

		p += strspn(p, " \t");
		n = strcspn(p, ",");
		if (strncasecmp(p, "gzip", 4) == 0 && strchr(" \t;,", p[4] ? p[4] : ',')) {
			const char *q = memchr(p, '=', n);

			/* q=0, q=0.0, q=0.000: refused */
			return q == NULL || strspn(q + 1, "0.") < strcspn(q + 1, ", \t");
		}
		p = strchr(p, ',');
		p = p ? p + 1 : NULL;
	}
	return false;
}

static struct blob *
blob_new(const void *data, size_t len)
{
	struct blob *b = pl_calloc(1, sizeof(*b) + len);

	b->refs = 1;
	b->len = len;
	memcpy(b->data, data, len);
	return b;
}

/* body gzipped, or an empty blob when that does not make it smaller. */
static struct blob *
gzip_of(const struct blob *body)
{
	uLong cap = compressBound((uLong)body->len) + 32;
	struct blob *b = pl_calloc(1, sizeof(*b) + cap);
	z_stream z = { 0 };

	b->refs = 1;
	b->len = 0;
	/* windowBits 15 + 16: a gzip header and trailer, as Content-Encoding wants */
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return b;
	z.next_in = (Bytef *)body->data;
	z.avail_in = (uInt)body->len;
	z.next_out = b->data;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out < body->len)
		b->len = z.total_out;
	deflateEnd(&z);
	return b;
}

/* Send e's answer, gzipped when the client takes it and it is worth it. */
static void
send_entry(struct pl_serve_cache *c, struct pl_serve_req *r, struct entry *e)
{
	struct blob *b = e->body;

	pl_serve_add_header(r, "Vary", "Accept-Encoding");
	if (e->body->len >= GZIP_MIN && accepts_gzip(r)) {
		if (e->gz == NULL) {
			e->gz = gzip_of(e->body);
			c->bytes += (long long)e->gz->len;
		}
		if (e->gz->len) {
			b = e->gz;
			pl_serve_add_header(r, "Content-Encoding", "gzip");
		}
	}
	b->refs++;
	pl_serve_reply_lend(r, 200, "application/json", b->data, b->len, blob_sent, b);
}

static struct entry *
find(struct pl_serve_cache *c, const char *key, uint64_t hash)
{
	for (struct entry *e = c->buckets[hash % NBUCKETS]; e; e = e->next)
		if (e->hash == hash && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

bool
pl_serve_cached(struct pl_serve_req *r)
{
	struct pl_serve_cache *c = cache_of(r->sv);
	uint64_t hash;
	char *key = key_of(r, &hash);
	struct entry *e = find(c, key, hash);

	free(key);
	if (e == NULL) {
		c->misses++;
		return false;
	}
	c->hits++;
	send_entry(c, r, e);
	return true;
}

void
pl_serve_reply_cache(struct pl_serve_req *r, unsigned cls, json_t *body)
{
	struct pl_serve_cache *c = cache_of(r->sv);
	char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	uint64_t hash;
	char *key;
	struct entry *e;
	size_t n;

	json_decref(body);
	if (text == NULL) {
		pl_serve_error(r, 500, "internal", NULL, "the answer could not be encoded");
		return;
	}
	n = strlen(text);
	text[n] = '\n'; /* as pl_serve_reply: json_dumps leaves room for it */
	key = key_of(r, &hash);
	if ((e = find(c, key, hash)) == NULL) {
		if (c->bytes + (long long)n > CACHE_MAX_BYTES) {
			pl_log_debug("serve: answer cache full (%lld bytes): dropped", c->bytes);
			pl_serve_cache_drop(r->sv, ~0u);
		}
		e = pl_calloc(1, sizeof(*e) + strlen(key) + 1);
		memcpy(e->key, key, strlen(key) + 1);
		e->hash = hash;
		e->cls = cls;
		e->body = blob_new(text, n + 1);
		e->gz = NULL;
		e->next = c->buckets[hash % NBUCKETS];
		c->buckets[hash % NBUCKETS] = e;
		c->bytes += (long long)e->body->len;
	}
	free(key);
	free(text);
	send_entry(c, r, e);
}

void
pl_serve_cache_counts(const struct pl_serve *sv, long long *hits, long long *misses,
		      long long *bytes)
{
	const struct pl_serve_cache *c = sv->cache;

	*hits = c ? c->hits : 0;
	*misses = c ? c->misses : 0;
	*bytes = c ? c->bytes : 0;
}
