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
	unsigned long crc, seg_crc;    /* CRC-32 of the text so far, of the segment's */
	size_t total, seg_len, seg_at; /* bytes of text; of the segment's; where it began in out */
	int err;                       /* the first failure (PL_ETOOBIG past the cap) */
	unsigned segs_made;            /* segments compressed and kept (pl_expo_seg_end) */
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
/* Start a family: its HELP and TYPE lines. */
void pl_expo_family(struct pl_expo *e, const char *name, enum pl_expo_type type, const char *help);
/* A sample of the current family: its name plus suffix ("", "_bucket"...),
 * n label pairs (kv[2i] the name, kv[2i+1] the value, escaped here). */
void pl_expo_sample(struct pl_expo *e, const char *suffix, const char *const *kv, size_t n,
		    double v);
/* A label set as samples write it ({k="v",...}, values escaped), appended
 * to b; open: without its closing brace, for a tail to end it. Returns 0 or
 * PL_ETOOBIG. */
int pl_expo_labels(struct pl_buf *b, const char *const *kv, size_t n, bool open);
/* A sample of the current family whose label text is made already (by
 * pl_expo_labels, once for many answers): head then tail, as they are. */
void pl_expo_sample_pre(struct pl_expo *e, const char *head, size_t hlen, const char *tail,
			size_t tlen, double v);
/* The answer (caller frees): OpenMetrics' "# EOF", the gzip trailer.
 * Returns 0 or the first error (nothing is handed out then). */
int pl_expo_finish(struct pl_expo *e, char **data, size_t *len);
/* The same for an answer sent in parts: end it (its last bytes are then
 * pending); returns 0 or the first error. */
int pl_expo_end(struct pl_expo *e);
/* The bytes of the answer written since the last pl_expo_sent (compressed
 * when gzip: what the compressor holds back comes later), borrowed. */
const char *pl_expo_pending(const struct pl_expo *e, size_t *len);
/* The pending bytes are sent: their buffer starts over, its room kept (never
 * between pl_expo_seg_begin and pl_expo_seg_end). */
void pl_expo_sent(struct pl_expo *e);

/* A family's part of gzip answers, compressed once and spliced into later
 * answers while what it shows has not changed (the same hash): a segment
 * begins and ends at a full flush, so no byte of it refers outside it. */
struct pl_expo_seg {
	uint64_t hash;
	int fmt;
	unsigned char *z; /* its compressed bytes (NULL: none yet) */
	size_t zlen;
	unsigned long crc; /* CRC-32 and length of its text */
	size_t len;
};
/* In a gzip answer, when g holds hash: its bytes are the answer's next and
 * true is returned (write nothing). Else false: write the family between
 * pl_expo_seg_begin and pl_expo_seg_end, which keeps it in g. */
bool pl_expo_seg_reuse(struct pl_expo *e, struct pl_expo_seg *g, uint64_t hash);
void pl_expo_seg_begin(struct pl_expo *e);
void pl_expo_seg_end(struct pl_expo *e, struct pl_expo_seg *g, uint64_t hash);
void pl_expo_seg_release(struct pl_expo_seg *g);

/* Append v as the text formats write numbers (integers exactly, NaN,
 * +Inf, -Inf) to b. */
void pl_expo_number(struct pl_buf *b, double v);

#endif
