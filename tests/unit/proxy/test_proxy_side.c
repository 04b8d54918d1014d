/* Unit tests for one TLS side of the relay (src/proxy/side.c) over a
 * non-blocking socketpair: what the socket does not take is kept and sent in
 * order later, readiness flags follow EAGAIN, EOF is seen, buffers go away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "proxy/internal.h"

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/socket.h>

struct pair {
	SSL_CTX *sctx, *cctx;
	struct pl_proxy_side client, server;
};

static void
modes(SSL_CTX *ctx)
{
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1);
}

/* A server context with a throwaway self-signed P-256 certificate. */
static SSL_CTX *
server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();

	assert_non_null(ctx);
	assert_non_null(key);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"side test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
	modes(ctx);
	return ctx;
}

static void
side_on(struct pl_proxy_side *s, SSL_CTX *ctx, int fd, bool server)
{
	pl_proxy_side_init(s);
	s->fd = fd;
	s->ssl = SSL_new(ctx);
	assert_int_equal(SSL_set_fd(s->ssl, fd), 1);
	if (server)
		SSL_set_accept_state(s->ssl);
	else
		SSL_set_connect_state(s->ssl);
}

static int
setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	int sv[2], small = 16 * 1024;

	p->sctx = server_ctx();
	p->cctx = SSL_CTX_new(TLS_client_method());
	modes(p->cctx);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	for (int i = 0; i < 2; i++) { /* small socket buffers: backpressure comes soon */
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	side_on(&p->client, p->cctx, sv[0], false);
	side_on(&p->server, p->sctx, sv[1], true);
	for (int i = 0, done = 0; done != 3; i++) {
		assert_true(i < 100);
		if (SSL_do_handshake(p->client.ssl) == 1)
			done |= 1;
		if (SSL_do_handshake(p->server.ssl) == 1)
			done |= 2;
	}
	*state = p;
	return 0;
}

static int
teardown(void **state)
{
	struct pair *p = *state;

	pl_proxy_side_release(&p->client);
	pl_proxy_side_release(&p->server);
	SSL_CTX_free(p->sctx);
	SSL_CTX_free(p->cctx);
	free(p);
	return 0;
}

/* Read what the server side can get now, appending to got at *have. */
static void
drain(struct pl_proxy_side *s, char *got, size_t size, size_t *have)
{
	size_t n;

	pl_proxy_side_wake(s, EV_READ);
	do {
		assert_int_equal(pl_proxy_side_read(s, got + *have, size - *have, &n), 0);
		*have += n;
	} while (n > 0);
}

static void
test_backpressure_keeps_order(void **state)
{
	struct pair *p = *state;
	size_t len = 512 * 1024, have = 0;
	char *data = malloc(len), *got = malloc(len);
	bool moved = false;

	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 7 + i / 251);
	assert_int_equal(pl_proxy_side_send(&p->client, data, len), 0);
	/* the socketpair took a little; the rest waits, and writing stopped */
	assert_true(pl_proxy_side_owes(&p->client));
	assert_false(p->client.can_write);
	for (int i = 0; have < len; i++) {
		assert_true(i < 10000);
		drain(&p->server, got, len, &have);
		assert_false(p->server.can_read); /* it hit EAGAIN */
		pl_proxy_side_wake(&p->client, EV_WRITE);
		assert_int_equal(pl_proxy_side_flush(&p->client, &moved), 0);
	}
	assert_true(moved);
	assert_memory_equal(got, data, len);
	/* all sent: the buffer is gone, as an idle connection must hold none */
	assert_false(pl_proxy_side_owes(&p->client));
	assert_int_equal(p->client.out.cap, 0);
	free(data);
	free(got);
}

static void
test_shutdown_is_eof(void **state)
{
	struct pair *p = *state;
	char buf[64];
	size_t have = 0;

	assert_int_equal(pl_proxy_side_send(&p->client, "last words", 10), 0);
	pl_proxy_side_shutdown(&p->client);
	assert_true(p->client.wclosed);
	drain(&p->server, buf, sizeof(buf), &have);
	assert_int_equal(have, 10);
	assert_memory_equal(buf, "last words", 10);
	assert_true(p->server.eof);
	/* the other direction still works after the half-close */
	assert_int_equal(pl_proxy_side_send(&p->server, "reply", 5), 0);
	have = 0;
	drain(&p->client, buf, sizeof(buf), &have);
	assert_int_equal(have, 5);
	assert_memory_equal(buf, "reply", 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_backpressure_keeps_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_is_eof, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
