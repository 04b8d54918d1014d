/* Unit tests for the proxy's parsers of untrusted input and its config helpers:
 * SNI, Host, response-head Location rewriting, URLs, dates, the pins file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"
#include "proxy/proxy.h"

#include <openssl/ssl.h>
#include <unistd.h>

static void
test_sni(void **state)
{
	static const uint8_t ok[] = {0,   13,  0,   0,   10,  'I', 'd', 'r',
	                             'a', 'c', '.', 'T', 'e', 's', 't'};
	static const uint8_t bad_len[] = {0,   14,  0,   0,   10,  'i', 'd', 'r',
	                                  'a', 'c', '.', 't', 'e', 's', 't'};
	static const uint8_t overrun[] = {0, 5, 0, 0, 200, 'a', 'b'};
	static const uint8_t badchar[] = {0, 6, 0, 0, 3, 'a', '<', 'b'};
	static const uint8_t other_type[] = {0, 4, 1, 0, 1, 'x'};
	char out[256];

	assert_int_equal(pl_proxy_sni_parse(ok, sizeof(ok), out, sizeof(out)), 0);
	assert_string_equal(out, "idrac.test");
	assert_int_equal(pl_proxy_sni_parse(bad_len, sizeof(bad_len), out, sizeof(out)), PL_EPARSE);
	assert_int_equal(pl_proxy_sni_parse(overrun, sizeof(overrun), out, sizeof(out)), PL_EPARSE);
	assert_int_equal(pl_proxy_sni_parse(badchar, sizeof(badchar), out, sizeof(out)), PL_EPARSE);
	assert_int_equal(pl_proxy_sni_parse(other_type, sizeof(other_type), out, sizeof(out)),
	                 PL_ENOENT);
	assert_int_equal(pl_proxy_sni_parse(ok, 1, out, sizeof(out)), PL_EPARSE);
	assert_int_equal(pl_proxy_sni_parse(ok, sizeof(ok), out, 5), PL_EPARSE); /* too small */
}

static void
test_host(void **state)
{
	const char *h1 = "GET / HTTP/1.1\r\nUser-Agent: x\r\nHOST:  iLO.Lab:8090 \r\n\r\n";
	const char *h2 = "GET / HTTP/1.1\r\nHost: [fd00::5]:443\r\n\r\n";
	const char *h3 = "GET / HTTP/1.1\r\nX-Host: a\r\n\r\nHost: b\r\n";
	const char *h4 = "GET / HTTP/1.1\r\nHost: a b\r\n\r\n";
	char out[256];

	assert_int_equal(pl_proxy_http_host(h1, strlen(h1), out, sizeof(out)), 0);
	assert_string_equal(out, "ilo.lab");
	assert_int_equal(pl_proxy_http_host(h2, strlen(h2), out, sizeof(out)), 0);
	assert_string_equal(out, "fd00::5");
	assert_int_equal(pl_proxy_http_host(h3, strlen(h3), out, sizeof(out)), PL_ENOENT);
	assert_int_equal(pl_proxy_http_host(h4, strlen(h4), out, sizeof(out)), PL_EPARSE);
	assert_int_equal(pl_proxy_http_head_end(h1, strlen(h1)), strlen(h1));
	assert_int_equal(pl_proxy_http_head_end(h1, strlen(h1) - 1), 0);
	assert_true(pl_proxy_http_is_request("GET / HTTP/1.1", 14));
	assert_true(pl_proxy_http_is_request("OPTIONS * ", 10));
	assert_false(pl_proxy_http_is_request("\x16\x03\x01", 3));
	assert_false(pl_proxy_http_is_request("GE", 2));
}

static void
test_rewrite(void **state)
{
	const char *from[] = {"https://10.0.0.5:443", "https://10.0.0.5", NULL};
	const char *head = "HTTP/1.1 302 Found\r\nlocation: https://10.0.0.5/start.html?x=1\r\n"
	                   "Location: https://10.0.0.50/no\r\nContent-Length: 12\r\n\r\n";
	const char *want =
	    "HTTP/1.1 302 Found\r\nlocation: https://idrac.lab:8090/start.html?x=1\r\n"
	    "Location: https://10.0.0.50/no\r\nContent-Length: 12\r\n\r\n";
	const char *chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct pl_proxy_resp info;
	struct pl_buf b;

	pl_buf_init(&b, 0);
	assert_int_equal(
	    pl_proxy_http_rewrite(head, strlen(head), from, "https://idrac.lab:8090", &b, &info),
	    0);
	assert_string_equal(b.data, want);
	assert_int_equal(info.status, 302);
	assert_int_equal(info.content_length, 12);
	assert_int_equal(info.rewritten, 1);
	pl_buf_reset(&b);
	assert_int_equal(pl_proxy_http_rewrite(chunked, strlen(chunked), from, "x", &b, &info), 0);
	assert_true(info.chunked);
	assert_string_equal(b.data, chunked);
	pl_buf_reset(&b);
	assert_int_equal(pl_proxy_http_rewrite("SSH-2.0-x\r\n\r\n", 13, from, "x", &b, &info),
	                 PL_EPARSE);
	pl_buf_release(&b);
}

static void
test_url_date_version(void **state)
{
	char *host = NULL;
	int port = 0, v;
	time_t t;

	assert_int_equal(pl_proxy_parse_url("https://192.168.1.120", &host, &port, NULL), 0);
	assert_string_equal(host, "192.168.1.120");
	assert_int_equal(port, 443);
	free(host);
	assert_int_equal(pl_proxy_parse_url("https://[fd00::1]:8443/", &host, &port, NULL), 0);
	assert_string_equal(host, "fd00::1");
	assert_int_equal(port, 8443);
	free(host);
	assert_int_equal(pl_proxy_parse_url("idrac7.lab:444", &host, &port, NULL), 0);
	assert_string_equal(host, "idrac7.lab");
	free(host);
	assert_int_equal(pl_proxy_parse_url("http://x", &host, &port, NULL), PL_EINVAL);
	assert_int_equal(pl_proxy_parse_url("https://x:99999", &host, &port, NULL), PL_EINVAL);
	assert_int_equal(pl_proxy_parse_url("https://x/path", &host, &port, NULL), PL_EINVAL);
	assert_int_equal(pl_proxy_parse_date("2019-06-01", &t, NULL), 0);
	assert_int_equal((long long)t, 1559347200LL);
	assert_int_equal(pl_proxy_parse_date("2019-06-01T12:00:00Z", &t, NULL), 0);
	assert_int_equal((long long)t, 1559347200LL + 43200);
	assert_int_equal(pl_proxy_parse_date("2019-13-01", &t, NULL), PL_EINVAL);
	assert_int_equal(pl_proxy_parse_tls_version("1.0", &v, NULL), 0);
	assert_int_equal(v, TLS1_VERSION);
	assert_int_equal(pl_proxy_parse_tls_version("1.4", &v, NULL), PL_EINVAL);
}

static void
test_pins_and_config(void **state)
{
	char dir[] = "/tmp/pl-proxy-unit-XXXXXX";
	char fp[96];
	struct pl_proxy_config *c = NULL;
	json_t *j;
	char *err = NULL, *path;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(pl_proxy_pin_lookup(dir, "h:443", fp), PL_ENOENT);
	assert_int_equal(pl_proxy_pin_record(dir, "h:443",
	                                     "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:"
	                                     "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99",
	                                     "/CN=h", "2020", NULL),
	                 0);
	assert_int_equal(pl_proxy_pin_lookup(dir, "h:443", fp), 0);
	assert_string_equal(fp, "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:"
	                        "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99");
	j = json_pack("{s:s,s:[{s:s,s:s,s:s,s:[s]},{s:s,s:s}]}", "listen", "127.0.0.1:1", "targets",
	              "name", "a", "upstream", "https://h", "ca_file", "ca.pem", "hostnames",
	              "A.lab", "upstream", "https://h2:444", "verify_at", "2019-01-01");
	assert_int_equal(pl_proxy_config_from_json(j, "/etc/pvelab", dir, &c, &err), 0);
	assert_int_equal(c->ntargets, 2);
	assert_string_equal(c->targets[0]->ca_file, "/etc/pvelab/ca.pem");
	assert_string_equal(c->targets[0]->hostnames[0], "a.lab");
	assert_string_equal(c->targets[1]->name, "h2:444");
	assert_true(c->targets[1]->has_verify_at);
	assert_int_equal(pl_proxy_config_finish(c, &err), 0);
	assert_true(c->targets[0]->pin_from_file); /* h:443 was pinned above */
	assert_false(c->targets[1]->pin_from_file);
	pl_proxy_config_free(c);
	json_decref(j);
	j = json_pack("{s:[{s:s,s:s,s:b}]}", "targets", "upstream", "https://h", "verify_at",
	              "2019-01-01", "insecure", 1);
	assert_int_equal(pl_proxy_config_from_json(j, NULL, dir, &c, &err), 0);
	assert_int_equal(pl_proxy_config_finish(c, &err), PL_EINVAL);
	assert_non_null(strstr(err, "choose one"));
	free(err);
	pl_proxy_config_free(c);
	json_decref(j);
	path = pl_proxy_pins_path(dir);
	unlink(path);
	free(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sni),
	    cmocka_unit_test(test_host),
	    cmocka_unit_test(test_rewrite),
	    cmocka_unit_test(test_url_date_version),
	    cmocka_unit_test(test_pins_and_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
