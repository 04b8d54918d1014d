/*
 * The Prometheus exposition writer (expo.h): HELP/TYPE lines and samples in
 * the text format or OpenMetrics, numbers written without printf where they
 * are integers, and the bytes deflated in 64 KiB steps when gzip is asked.
 */
#include "core/common.h"
#include "serve/expo.h"
#include "core/err.h"

#include <math.h>

#define STAGE_FLUSH 65536
/* zlib's levels: an answer's own bytes are deflated on the loop, as fast as
 * can be; a kept segment once per picture and sent many times, a little
 * harder, for its bytes inflate faster in the scraper (bench/RESULTS.md) */
#define LEVEL_ANSWER 1
#define LEVEL_SEGMENT 3

/* --- content negotiation --- */

static const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* One element of a comma-separated header: its media range (or coding) in
 * type (lower case, truncated to size), and its q (1000ths) and version
 * parameters. Returns where the next element starts, NULL at the end. */
static const char *
next_element(const char *p, char *type, size_t size, int *q, char *version, size_t vsize)
{
	size_t n = 0;

	*q = 1000;
	version[0] = '\0';
	p = skip_ws(p);
	while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t') {
		if (n + 1 < size)
			type[n++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
		p++;
	}
	type[n] = '\0';
	p = skip_ws(p);
	while (*p == ';') {
		char name[16], val[32];
		size_t nn = 0, nv = 0;

		p = skip_ws(p + 1);
		while (*p && *p != '=' && *p != ';' && *p != ',') {
			if (nn + 1 < sizeof(name) && *p != ' ' && *p != '\t')
				name[nn++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
			p++;
		}
		name[nn] = '\0';
		if (*p == '=') {
			p = skip_ws(p + 1);
			if (*p == '"') {
				for (p++; *p && *p != '"'; p++) {
					if (*p == '\\' && p[1])
						p++;
					if (nv + 1 < sizeof(val))
						val[nv++] = *p;
				}
				if (*p == '"')
					p++;
			}
			while (*p && *p != ';' && *p != ',') {
				if (nv + 1 < sizeof(val) && *p != ' ' && *p != '\t')
					val[nv++] = *p;
				p++;
			}
		}
		val[nv] = '\0';
		if (!strcmp(name, "q")) {
			/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
			int v = 0, digits = 0;
			const char *s = val;

			if (*s != '0' && *s != '1') {
				*q = -1; /* unreadable: this element is ignored */
			} else {
				v = (*s++ - '0') * 1000;
				if (*s == '.')
					for (s++; *s >= '0' && *s <= '9' && digits < 3;
					     s++, digits++)
						v += (*s - '0') * (digits == 0 ? 100 :
								   digits == 1 ? 10 :
										 1);
				*q = (*s || v > 1000) ? -1 : v;
			}
		} else if (!strcmp(name, "version")) {
			snprintf(version, vsize, "%s", val);
		}
	}
	while (*p && *p != ',')
		p++;
	return *p == ',' ? p + 1 : NULL;
}

enum pl_expo_fmt
pl_expo_negotiate(const char *accept)
{
	int best_q = 0;
	enum pl_expo_fmt best = PL_EXPO_TEXT;
	const char *p = accept;

	while (p && *p) {
		char type[64], version[32];
		int q, fmt = -1;

		p = next_element(p, type, sizeof(type), &q, version, sizeof(version));
		if (!strcmp(type, "application/openmetrics-text") &&
		    (!version[0] || !strcmp(version, "1.0.0") || !strcmp(version, "0.0.1")))
			fmt = PL_EXPO_OPENMETRICS;
		else if ((!strcmp(type, "text/plain") &&
			  (!version[0] || !strcmp(version, "0.0.4"))) ||
			 !strcmp(type, "text/*") || !strcmp(type, "*/*"))
			fmt = PL_EXPO_TEXT;
		/* the first of equal q wins, as the scraper lists its preference */
		if (fmt >= 0 && q > best_q) {
			best_q = q;
			best = (enum pl_expo_fmt)fmt;
		}
	}
	return best;
}

bool
pl_expo_wants_gzip(const char *accept_encoding)
{
	const char *p = accept_encoding;
	int gzip = -1, star = -1;

	while (p && *p) {
		char coding[32], version[8];
		int q;

		p = next_element(p, coding, sizeof(coding), &q, version, sizeof(version));
		if (!strcmp(coding, "gzip") || !strcmp(coding, "x-gzip"))
			gzip = q;
		else if (!strcmp(coding, "*"))
			star = q;
	}
	return gzip > 0 || (gzip < 0 && star > 0);
}

const char *
pl_expo_content_type(enum pl_expo_fmt fmt)
{
	return fmt == PL_EXPO_OPENMETRICS ?
		       "application/openmetrics-text; version=1.0.0; charset=utf-8" :
		       "text/plain; version=0.0.4; charset=utf-8";
}

/* --- writing --- */

static void
add(struct pl_expo *e, const void *p, size_t n)
{
	if (e->err == 0 && pl_buf_add(&e->stage, p, n) != 0)
		e->err = PL_ETOOBIG;
}

static void
addstr(struct pl_expo *e, const char *s)
{
	add(e, s, strlen(s));
}

/* Deflate what is staged into out, with flush Z_NO_FLUSH, Z_FULL_FLUSH (a
 * boundary no later byte refers back across) or Z_FINISH; the gzip
 * trailer's CRC and length follow the bytes. */
static void
deflate_stage(struct pl_expo *e, int flush)
{
	if (e->stage.len) {
		e->crc =
			crc32(e->crc, (const unsigned char *)e->stage.data, (unsigned)e->stage.len);
		e->seg_crc = crc32(e->seg_crc, (const unsigned char *)e->stage.data,
				   (unsigned)e->stage.len);
		e->total += e->stage.len;
		e->seg_len += e->stage.len;
	}
	e->z.next_in = (unsigned char *)e->stage.data;
	e->z.avail_in = (unsigned)e->stage.len;
	for (;;) {
		int zr;

		if (e->err == 0 && pl_buf_grow(&e->out, 65536) != 0)
			e->err = PL_ETOOBIG;
		if (e->err)
			break;
		e->z.next_out = (unsigned char *)e->out.data + e->out.len;
		e->z.avail_out = (unsigned)(e->out.cap - e->out.len - 1);
		zr = deflate(&e->z, flush);
		e->out.len = (size_t)((char *)e->z.next_out - e->out.data);
		e->out.data[e->out.len] = '\0';
		if (zr == Z_STREAM_END || (e->z.avail_in == 0 && e->z.avail_out > 0))
			break;
		if (zr != Z_OK && zr != Z_BUF_ERROR) {
			e->err = PL_EINVAL;
			break;
		}
	}
	pl_buf_reset(&e->stage);
}

static void
maybe_flush(struct pl_expo *e)
{
	if (e->gzip && e->stage.len >= STAGE_FLUSH)
		deflate_stage(e, Z_NO_FLUSH);
}

void
pl_expo_init(struct pl_expo *e, enum pl_expo_fmt fmt, bool gzip, size_t max)
{
	memset(e, 0, sizeof(*e));
	e->fmt = fmt;
	e->gzip = gzip;
	pl_buf_init(&e->out, max);
	/* uncompressed the stage is the answer; compressed it is a window */
	pl_buf_init(&e->stage, gzip ? 0 : max);
	/* raw deflate in a gzip wrapper of our own (RFC 1952: no name, no
	 * time, OS unknown), so that cached segments can be spliced in; level
	 * 1: a scrape is on the loop */
	if (gzip) {
		static const unsigned char header[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255 };

		if (deflateInit2(&e->z, LEVEL_ANSWER, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) !=
			    Z_OK ||
		    pl_buf_add(&e->out, header, sizeof(header)) != 0) {
			e->err = PL_ENOMEM;
			e->gzip = false; /* nothing to end */
			return;
		}
		e->crc = e->seg_crc = crc32(0, NULL, 0);
	}
}

void
pl_expo_release(struct pl_expo *e)
{
	if (e->gzip)
		deflateEnd(&e->z);
	pl_buf_release(&e->stage);
	pl_buf_release(&e->out);
}

/* HELP text: backslash and newline escaped (and in OpenMetrics the quote). */
static void
add_help(struct pl_expo *e, const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			add(e, "\\\\", 2);
		else if (*p == '\n')
			add(e, "\\n", 2);
		else if (*p == '"' && e->fmt == PL_EXPO_OPENMETRICS)
			add(e, "\\\"", 2);
		else
			add(e, p, 1);
	}
}

void
pl_expo_family(struct pl_expo *e, const char *name, enum pl_expo_type type, const char *help)
{
	static const char *const types[] = { "gauge", "counter", "histogram" };
	size_t n = strlen(name);

	if (n >= sizeof(e->fam))
		n = sizeof(e->fam) - 1;
	memcpy(e->fam, name, n);
	e->fam[n] = '\0';
	e->famlen = n;
	/* OpenMetrics names a counter's family without the _total of its sample */
	if (e->fmt == PL_EXPO_OPENMETRICS && type == PL_EXPO_COUNTER && n > 6 &&
	    !strcmp(name + n - 6, "_total"))
		n -= 6;
	addstr(e, "# HELP ");
	add(e, name, n);
	add(e, " ", 1);
	add_help(e, help);
	addstr(e, "\n# TYPE ");
	add(e, name, n);
	add(e, " ", 1);
	addstr(e, types[type]);
	add(e, "\n", 1);
	maybe_flush(e);
}

/* "00".."99": an integer's digits two at a time. */
static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324"
				     "25262728293031323334353637383940414243444546474849"
				     "50515253545556575859606162636465666768697071727374"
				     "75767778798081828384858687888990919293949596979899";

/* Digits of an unsigned integer, backwards into end. */
static char *
utoa_end(char *end, unsigned long long v)
{
	while (v >= 100) {
		end -= 2;
		memcpy(end, digit_pairs + 2 * (v % 100), 2);
		v /= 100;
	}
	if (v >= 10) {
		end -= 2;
		memcpy(end, digit_pairs + 2 * v, 2);
	} else {
		*--end = (char)('0' + v);
	}
	return end;
}

static const double powers_of_ten[16] = { 1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
					  1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15 };

/* |v| (not an integer) as the fewest decimals k that read back as it, when
 * that is a decimal of at most 15 digits which %.15g writes in fixed
 * notation (1e-4 <= |v| < 1e15): m/10^k with m and 10^k exact doubles is
 * one correctly rounded division, the double strtod makes of the text, and
 * a decimal of at most 15 digits is what %.15g writes for the double it
 * reads as (DBL_DIG). Returns the length written to out, 0 when v is not
 * such a number (printf decides). */
static size_t
short_decimal(char *out, double v)
{
	double a = fabs(v);
	char tmp[40], *end = tmp + sizeof(tmp), *s;
	unsigned long long m = 0, ip;
	int k;
	size_t n;

	if (!(a >= 1e-4 && a < 1e15))
		return 0;
	for (k = 1; k < 16; k++) {
		double scaled = a * powers_of_ten[k], r;

		if (scaled >= 1e15)
			return 0;
		r = floor(scaled + 0.5);
		if (r / powers_of_ten[k] == a) {
			m = (unsigned long long)r;
			break;
		}
	}
	if (k == 16)
		return 0;
	while (k > 1 && m % 10 == 0) /* never with the fewest k, but cheap to be sure */
		m /= 10, k--;
	ip = m / (unsigned long long)powers_of_ten[k];
	s = utoa_end(end, m % (unsigned long long)powers_of_ten[k]);
	while (end - s < k)
		*--s = '0';
	*--s = '.';
	s = utoa_end(s, ip);
	if (v < 0)
		*--s = '-';
	n = (size_t)(end - s);
	memcpy(out, s, n);
	return n;
}

/* v as the text formats write it, into out (at least 40 bytes); its length:
 * integers exactly, else the shortest of %.15g..%.17g that reads back as v. */
static size_t
number_text(char *out, double v)
{
	char tmp[40], *end = tmp + sizeof(tmp), *s;
	size_t n;

	if (isnan(v)) {
		memcpy(out, "NaN", 3);
		return 3;
	}
	if (isinf(v)) {
		memcpy(out, v > 0 ? "+Inf" : "-Inf", 4);
		return 4;
	}
	if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		long long i = (long long)v;

		s = utoa_end(end, (unsigned long long)(i < 0 ? -i : i));
		if (i < 0)
			*--s = '-';
		n = (size_t)(end - s);
		memcpy(out, s, n);
		return n;
	}
	if ((n = short_decimal(out, v)) > 0)
		return n;
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (prec == 17 || strtod(tmp, NULL) == v)
			break;
	}
	n = strlen(tmp);
	memcpy(out, tmp, n);
	return n;
}

void
pl_expo_number(struct pl_buf *b, double v)
{
	char tmp[40];

	pl_buf_add(b, tmp, number_text(tmp, v));
}

/* A label value with backslash, quote and newline escaped; returns the end. */
static char *
put_label_value(char *p, const char *s, size_t len)
{
	const char *run = s, *end = s + len;

	for (const char *q = s; q < end; q++) {
		const char *esc = *q == '\\' ? "\\\\" :
				  *q == '"'  ? "\\\"" :
				  *q == '\n' ? "\\n" :
					       NULL;

		if (esc) {
			memcpy(p, run, (size_t)(q - run));
			p += q - run;
			memcpy(p, esc, 2);
			p += 2;
			run = q + 1;
		}
	}
	memcpy(p, run, (size_t)(end - run));
	return p + (end - run);
}

#define MAX_LABELS 16

void
pl_expo_sample(struct pl_expo *e, const char *suffix, const char *const *kv, size_t n, double v)
{
	size_t klen[MAX_LABELS], vlen[MAX_LABELS], slen = strlen(suffix);
	size_t need = e->famlen + slen + 4 + 40;
	char *p;

	if (e->err)
		return;
	if (n > MAX_LABELS) {
		e->err = PL_EINVAL;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		klen[i] = strlen(kv[2 * i]);
		vlen[i] = kv[2 * i + 1] ? strlen(kv[2 * i + 1]) : 0;
		need += klen[i] + 2 * vlen[i] + 4; /* every byte may double when escaped */
	}
	/* one check of the room, then the bytes written in place */
	if (pl_buf_grow(&e->stage, need) != 0) {
		e->err = PL_ETOOBIG;
		return;
	}
	p = e->stage.data + e->stage.len;
	memcpy(p, e->fam, e->famlen);
	p += e->famlen;
	memcpy(p, suffix, slen);
	p += slen;
	if (n) {
		*p++ = '{';
		for (size_t i = 0; i < n; i++) {
			if (i)
				*p++ = ',';
			memcpy(p, kv[2 * i], klen[i]);
			p += klen[i];
			*p++ = '=';
			*p++ = '"';
			p = put_label_value(p, kv[2 * i + 1] ? kv[2 * i + 1] : "", vlen[i]);
			*p++ = '"';
		}
		*p++ = '}';
	}
	*p++ = ' ';
	p += number_text(p, v);
	*p++ = '\n';
	e->stage.len = (size_t)(p - e->stage.data);
	*p = '\0';
	maybe_flush(e);
}

int
pl_expo_labels(struct pl_buf *b, const char *const *kv, size_t n, bool open)
{
	size_t need = 2;
	char *p;

	for (size_t i = 0; i < n; i++)
		need += strlen(kv[2 * i]) + 2 * (kv[2 * i + 1] ? strlen(kv[2 * i + 1]) : 0) + 4;
	if (pl_buf_grow(b, need) != 0)
		return PL_ETOOBIG;
	p = b->data + b->len;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		size_t klen = strlen(kv[2 * i]);
		const char *v = kv[2 * i + 1] ? kv[2 * i + 1] : "";

		if (i)
			*p++ = ',';
		memcpy(p, kv[2 * i], klen);
		p += klen;
		*p++ = '=';
		*p++ = '"';
		p = put_label_value(p, v, strlen(v));
		*p++ = '"';
	}
	if (!open)
		*p++ = '}';
	b->len = (size_t)(p - b->data);
	*p = '\0';
	return 0;
}

void
pl_expo_sample_pre(struct pl_expo *e, const char *head, size_t hlen, const char *tail, size_t tlen,
		   double v)
{
	char *p;

	if (e->err)
		return;
	if (pl_buf_grow(&e->stage, e->famlen + hlen + tlen + 44) != 0) {
		e->err = PL_ETOOBIG;
		return;
	}
	p = e->stage.data + e->stage.len;
	memcpy(p, e->fam, e->famlen);
	p += e->famlen;
	memcpy(p, head, hlen);
	p += hlen;
	memcpy(p, tail, tlen);
	p += tlen;
	*p++ = ' ';
	p += number_text(p, v);
	*p++ = '\n';
	e->stage.len = (size_t)(p - e->stage.data);
	*p = '\0';
	maybe_flush(e);
}

void
pl_expo_seg_release(struct pl_expo_seg *g)
{
	free(g->z);
	memset(g, 0, sizeof(*g));
}

bool
pl_expo_seg_reuse(struct pl_expo *e, struct pl_expo_seg *g, uint64_t hash)
{
	if (!e->gzip || e->err || !g->z || g->hash != hash || g->fmt != (int)e->fmt)
		return false;
	deflate_stage(e, Z_FULL_FLUSH); /* what came before ends at a boundary */
	if (pl_buf_add(&e->out, g->z, g->zlen) != 0) {
		e->err = PL_ETOOBIG;
		return true;
	}
	e->crc = crc32_combine(e->crc, g->crc, (z_off_t)g->len);
	e->total += g->len;
	return true;
}

/* Deflate what follows at level (at a full flush: nothing is pending, and
 * levels 1-3 share zlib's fast deflate, so nothing is written here). */
static void
set_level(struct pl_expo *e, int level)
{
	if (e->err == 0 && deflateParams(&e->z, level, Z_DEFAULT_STRATEGY) != Z_OK)
		e->err = PL_EINVAL;
}

void
pl_expo_seg_begin(struct pl_expo *e)
{
	if (!e->gzip || e->err)
		return;
	deflate_stage(e, Z_FULL_FLUSH);
	set_level(e, LEVEL_SEGMENT);
	e->seg_at = e->out.len;
	e->seg_crc = crc32(0, NULL, 0);
	e->seg_len = 0;
}

void
pl_expo_seg_end(struct pl_expo *e, struct pl_expo_seg *g, uint64_t hash)
{
	if (!e->gzip || e->err)
		return;
	deflate_stage(e, Z_FULL_FLUSH);
	set_level(e, LEVEL_ANSWER);
	if (e->err)
		return;
	free(g->z);
	g->zlen = e->out.len - e->seg_at;
	g->z = pl_malloc(g->zlen + 1);
	memcpy(g->z, e->out.data + e->seg_at, g->zlen);
	g->crc = e->seg_crc;
	g->len = e->seg_len;
	g->hash = hash;
	g->fmt = (int)e->fmt;
	e->segs_made++;
}

int
pl_expo_end(struct pl_expo *e)
{
	unsigned char trailer[8];

	if (e->fmt == PL_EXPO_OPENMETRICS)
		addstr(e, "# EOF\n");
	if (e->err || !e->gzip)
		return e->err;
	deflate_stage(e, Z_FINISH);
	for (int i = 0; i < 4; i++) {
		trailer[i] = (unsigned char)(e->crc >> (8 * i));
		trailer[4 + i] = (unsigned char)(e->total >> (8 * i)); /* mod 2^32 */
	}
	if (e->err == 0 && pl_buf_add(&e->out, trailer, sizeof(trailer)) != 0)
		e->err = PL_ETOOBIG;
	return e->err;
}

const char *
pl_expo_pending(const struct pl_expo *e, size_t *len)
{
	const struct pl_buf *b = e->gzip ? &e->out : &e->stage;

	*len = b->len;
	return b->data;
}

void
pl_expo_sent(struct pl_expo *e)
{
	pl_buf_reset(e->gzip ? &e->out : &e->stage);
}

int
pl_expo_finish(struct pl_expo *e, char **data, size_t *len)
{
	struct pl_buf *b = e->gzip ? &e->out : &e->stage;
	int r;

	if ((r = pl_expo_end(e)) != 0)
		return r;
	*data = pl_buf_detach(b, len);
	return 0;
}
