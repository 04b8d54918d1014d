/*
 * One TLS endpoint of a relayed connection: OpenSSL directly on a
 * non-blocking socket watched by one edge-triggered event, readiness kept as
 * flags until a call would block, and the bytes still owed to the socket.
 */
#include "core/common.h"
#include "proxy/internal.h"
#include "core/err.h"

#include <event2/event.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes a side may owe before the relay counts it as stuck: a read chunk plus
 * a rewritten response head, with room to spare. */
#define SIDE_OUT_MAX (1024 * 1024)

void
pl_proxy_side_init(struct pl_proxy_side *s)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->can_read = s->can_write = true; /* speculative: the first call finds out */
	pl_buf_init(&s->out, SIDE_OUT_MAX);
}

void
pl_proxy_side_release(struct pl_proxy_side *s)
{
	if (s->ev)
		event_free(s->ev);
	SSL_free(s->ssl);
	if (s->fd >= 0)
		close(s->fd);
	pl_buf_release(&s->out);
	pl_proxy_side_init(s);
}

void
pl_proxy_side_wake(struct pl_proxy_side *s, short what)
{
	if (what & EV_READ) {
		s->can_read = true;
		if (s->write_wants_read)
			s->can_write = true;
		s->write_wants_read = false;
	}
	if (what & EV_WRITE) {
		s->can_write = true;
		if (s->read_wants_write)
			s->can_read = true;
		s->read_wants_write = false;
	}
}

/* After a failed SSL call: 0 when it would block (the flag of the operation
 * is cleared until the right event), PL_EIO on an error. */
static int
blocked(struct pl_proxy_side *s, bool reading)
{
	switch (SSL_get_error(s->ssl, 0)) {
	case SSL_ERROR_WANT_READ:
		if (reading) {
			s->can_read = false;
		} else {
			s->can_write = false;
			s->write_wants_read = true;
		}
		return 0;
	case SSL_ERROR_WANT_WRITE:
		if (reading) {
			s->can_read = false;
			s->read_wants_write = true;
		} else {
			s->can_write = false;
		}
		return 0;
	default:
		ERR_clear_error();
		return PL_EIO;
	}
}

int
pl_proxy_side_read(struct pl_proxy_side *s, char *buf, size_t size, size_t *n)
{
	*n = 0;
	if (SSL_read_ex(s->ssl, buf, size, n) == 1) {
		if (s->write_wants_read) /* what the write waited for may be in */
			pl_proxy_side_wake(s, EV_READ);
		return 0;
	}
	if (SSL_get_error(s->ssl, 0) == SSL_ERROR_ZERO_RETURN) {
		/* close_notify, or a plain TCP FIN (SSL_OP_IGNORE_UNEXPECTED_EOF) */
		s->eof = true;
		s->can_read = false;
		return 0;
	}
	return blocked(s, true);
}

int
pl_proxy_side_send(struct pl_proxy_side *s, const char *p, size_t n)
{
	size_t w;

	while (n > 0 && s->out.len == 0 && s->can_write) {
		if (SSL_write_ex(s->ssl, p, n, &w) != 1) {
			if (blocked(s, false) != 0)
				return PL_EIO;
			break;
		}
		p += w;
		n -= w;
		if (s->read_wants_write)
			pl_proxy_side_wake(s, EV_WRITE);
	}
	/* SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets the retry come from here */
	return n > 0 ? pl_buf_add(&s->out, p, n) : 0;
}

int
pl_proxy_side_flush(struct pl_proxy_side *s, bool *moved)
{
	size_t w;

	while (s->out.len > 0 && s->can_write) {
		if (SSL_write_ex(s->ssl, s->out.data, s->out.len, &w) != 1)
			return blocked(s, false);
		pl_buf_consume(&s->out, w);
		*moved = true;
		if (s->read_wants_write)
			pl_proxy_side_wake(s, EV_WRITE);
	}
	if (s->out.len == 0)
		pl_buf_release(&s->out); /* idle connections hold no buffers */
	return 0;
}

bool
pl_proxy_side_owes(const struct pl_proxy_side *s)
{
	return s->out.len > 0;
}

void
pl_proxy_side_shutdown(struct pl_proxy_side *s)
{
	s->wclosed = true;
	if (SSL_shutdown(s->ssl) < 0)
		ERR_clear_error();
	shutdown(s->fd, SHUT_WR);
}
