/*
 * The growable, capped, NUL-terminated byte buffer (see buf.h).
 */
#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"

static char pl_buf_empty[1];

void
pl_buf_init(struct pl_buf *b, size_t max)
{
	b->data = pl_buf_empty;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : PL_BUF_DEFAULT_MAX;
}

void
pl_buf_release(struct pl_buf *b)
{
	if (b->cap)
		free(b->data);
	b->data = pl_buf_empty;
	b->len = b->cap = 0;
}

void
pl_buf_reset(struct pl_buf *b)
{
	b->len = 0;
	if (b->cap)
		b->data[0] = '\0';
}

char *
pl_buf_detach(struct pl_buf *b, size_t *len)
{
	char *p = b->cap ? b->data : pl_strdup("");

	if (len)
		*len = b->len;
	b->data = pl_buf_empty;
	b->len = b->cap = 0;
	return p;
}

int
pl_buf_grow(struct pl_buf *b, size_t n)
{
	size_t want, cap;

	if (n > b->max || b->len > b->max - n)
		return PL_ETOOBIG;
	want = b->len + n + 1;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap = cap < SIZE_MAX / 2 ? cap * 2 : want;
	if (b->cap == 0) {
		b->data = pl_malloc(cap);
		b->data[0] = '\0';
	} else {
		b->data = pl_realloc(b->data, cap);
	}
	b->cap = cap;
	return 0;
}

int
pl_buf_add(struct pl_buf *b, const void *p, size_t n)
{
	int r;

	if ((r = pl_buf_grow(b, n)) != 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
pl_buf_addstr(struct pl_buf *b, const char *s)
{
	return pl_buf_add(b, s, strlen(s));
}

int
pl_buf_addch(struct pl_buf *b, char c)
{
	return pl_buf_add(b, &c, 1);
}

int
pl_buf_vaddf(struct pl_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n, r;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return PL_EINVAL;
	if ((r = pl_buf_grow(b, (size_t)n)) != 0)
		return r;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
pl_buf_addf(struct pl_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = pl_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
pl_buf_consume(struct pl_buf *b, size_t n)
{
	if (n >= b->len) {
		pl_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void
pl_buf_truncate(struct pl_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}
