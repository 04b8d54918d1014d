/*
 * pl_buf: the one growable byte buffer, with a hard size cap, used for
 * everything read from the network or a file. Always NUL-terminated.
 * Ownership: the buffer owns data; pl_buf_detach() hands it to the caller.
 */
#ifndef PL_CORE_BUF_H
#define PL_CORE_BUF_H

#include "core/common.h"

#define PL_BUF_DEFAULT_MAX ((size_t)64 << 20)

struct pl_buf {
	char *data; /* never NULL after init; NUL-terminated */
	size_t len;
	size_t cap;
	size_t max; /* hard cap on len */
};

/* Start empty with a cap of max bytes (0 means PL_BUF_DEFAULT_MAX). */
void pl_buf_init(struct pl_buf *b, size_t max);
/* Free the contents; the buffer may be re-initialised. */
void pl_buf_release(struct pl_buf *b);
/* Empty it, keeping the allocation. */
void pl_buf_reset(struct pl_buf *b);
/* Take the contents (caller frees) and leave b empty. */
char *pl_buf_detach(struct pl_buf *b, size_t *len);

/* Append; PL_ETOOBIG (and nothing appended) if the cap would be exceeded. */
int pl_buf_add(struct pl_buf *b, const void *p, size_t n);
int pl_buf_addstr(struct pl_buf *b, const char *s);
int pl_buf_addch(struct pl_buf *b, char c);
int pl_buf_addf(struct pl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pl_buf_vaddf(struct pl_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Make room for n more bytes; returns 0 or PL_ETOOBIG. */
int pl_buf_grow(struct pl_buf *b, size_t n);
/* Drop the first n bytes. */
void pl_buf_consume(struct pl_buf *b, size_t n);
/* Shorten to len bytes. */
void pl_buf_truncate(struct pl_buf *b, size_t len);

#endif
