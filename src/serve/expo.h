/*
 * The Prometheus exposition writer: the text format 0.0.4 or OpenMetrics
 * 1.0.0 (chosen from the scraper's Accept header), gzip-compressed as it is
 * written when asked, so that a 10,000-guest answer never exists uncompressed.
 */
#ifndef PL_SERVE_EXPO_H
#define PL_SERVE_EXPO_H

#include "core/common.h"
#include "core/buf.h"

#include <zlib.h>

enum pl_expo_fmt {
	PL_EXPO_TEXT,        /* text/plain; version=0.0.4 */
	PL_EXPO_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
};

enum pl_expo_type {
	PL_EXPO_GAUGE,
	PL_EXPO_COUNTER, /* its family name ends in _total */
	PL_EXPO_HISTOGRAM,
};

struct pl_expo {
	enum pl_expo_fmt fmt;
	bool gzip;
	z_stream z;
	struct pl_buf stage; /* written, not yet compressed */
	struct pl_buf out;   /* the answer so far */
	char fam[128];       /* the current family's name */
	size_t famlen;
	int err; /* the first failure (PL_ETOOBIG past the cap) */
};

/* The format a scraper's Accept header asks for (NULL: none): the
 * acceptable media range with the highest q; the text format when none
 * is acceptable or the header cannot be read. */
enum pl_expo_fmt pl_expo_negotiate(const char *accept);
/* Whether an Accept-Encoding header accepts gzip. */
bool pl_expo_wants_gzip(const char *accept_encoding);
/* The Content-Type of a format. */
const char *pl_expo_content_type(enum pl_expo_fmt fmt);

/* Start an answer of at most max bytes (compressed when gzip). */
void pl_expo_init(struct pl_expo *e, enum pl_expo_fmt fmt, bool gzip, size_t max);
void pl_expo_release(struct pl_expo *e);
/* Room for n bytes of an uncompressed answer, made at once. */
void pl_expo_reserve(struct pl_expo *e, size_t n);
/* Start a family: its HELP and TYPE lines. */
void pl_expo_family(struct pl_expo *e, const char *name, enum pl_expo_type type, const char *help);
/* A sample of the current family: its name plus suffix ("", "_bucket"...),
 * n label pairs (kv[2i] the name, kv[2i+1] the value, escaped here). */
void pl_expo_sample(struct pl_expo *e, const char *suffix, const char *const *kv, size_t n,
		    double v);
/* The answer (caller frees): OpenMetrics' "# EOF", the gzip trailer.
 * Returns 0 or the first error (nothing is handed out then). */
int pl_expo_finish(struct pl_expo *e, char **data, size_t *len);

/* A gzip answer's beginning kept to start others with (the part that only
 * changes when the cluster's picture does): its bytes and a copy of the
 * compressor's state, so that an answer resumed from it is one gzip stream. */
struct pl_expo_prefix {
	enum pl_expo_fmt fmt;
	char *bytes;
	size_t len;
	z_stream z;
	bool saved;
};
/* Keep what e (a gzip answer) holds so far in p (released first). */
int pl_expo_save(struct pl_expo *e, struct pl_expo_prefix *p);
/* Start e as a copy of p (an answer of at most max bytes). */
int pl_expo_resume(struct pl_expo *e, const struct pl_expo_prefix *p, size_t max);
void pl_expo_prefix_release(struct pl_expo_prefix *p);

/* Append v as the text formats write numbers (integers exactly, NaN,
 * +Inf, -Inf) to b. */
void pl_expo_number(struct pl_buf *b, double v);

#endif
