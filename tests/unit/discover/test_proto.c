/* Unit tests for discover/proto: SSH banners, RFB, X.224, HTTP heads and
 * bodies (chunked, capped), HTML titles and the real Redfish captures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "discover/proto.h"

static void
test_ssh(void **state)
{
	const char *b = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
	json_t *o;

	assert_int_equal(pl_disc_ssh_parse(b, 10, &o), PL_DISC_MORE);
	assert_int_equal(pl_disc_ssh_parse(b, strlen(b), &o), PL_DISC_DONE);
	assert_string_equal(pl_json_str(o, "protocol"), "2.0");
	assert_string_equal(pl_json_str(o, "software"), "OpenSSH_9.2p1");
	assert_string_equal(pl_json_str(o, "comment"), "Debian-2+deb12u3");
	assert_string_equal(pl_json_str(o, "os"), "Debian");
	assert_string_equal(pl_json_str(o, "banner"), "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3");
	json_decref(o);
	/* lines before the identification are allowed (RFC 4253 4.2) */
	b = "hello\r\nSSH-2.0-OpenSSH_for_Windows_8.1\r\n";
	assert_int_equal(pl_disc_ssh_parse(b, strlen(b), &o), PL_DISC_DONE);
	assert_string_equal(pl_json_str(o, "os"), "Windows");
	assert_null(json_object_get(o, "comment"));
	json_decref(o);
	b = "SSH-2.0-dropbear_2022.83\n";
	assert_int_equal(pl_disc_ssh_parse(b, strlen(b), &o), PL_DISC_DONE);
	assert_null(json_object_get(o, "os"));
	json_decref(o);
	b = "SSH-nodash\n";
	assert_int_equal(pl_disc_ssh_parse(b, strlen(b), &o), PL_EPARSE);
	assert_null(o);
}

static void
test_rfb(void **state)
{
	int ma, mi;
	json_t *o;
	const unsigned char sec38[] = { 2, 2, 19 };
	const unsigned char sec33[] = { 0, 0, 0, 2 };
	const unsigned char fail[] = { 0, 0, 0, 0, 0, 0, 0, 3, 'n', 'o', '!' };

	assert_int_equal(pl_disc_rfb_version("RFB 003.0", 9, &ma, &mi), PL_DISC_MORE);
	assert_int_equal(pl_disc_rfb_version("SSH-2.0-x", 9, &ma, &mi), PL_EPARSE);
	assert_int_equal(pl_disc_rfb_version("RFB 003.008\n", 12, &ma, &mi), PL_DISC_DONE);
	assert_int_equal(ma, 3);
	assert_int_equal(mi, 8);
	assert_int_equal(pl_disc_rfb_version("RFB 003.0x8\n", 12, &ma, &mi), PL_EPARSE);
	assert_int_equal(pl_disc_rfb_security(sec38, 2, 8, &o), PL_DISC_MORE);
	assert_int_equal(pl_disc_rfb_security(sec38, 3, 8, &o), PL_DISC_DONE);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "security_types"), 0)),
			    "VNC Authentication");
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "security_types"), 1)),
			    "VeNCrypt");
	json_decref(o);
	assert_int_equal(pl_disc_rfb_security(sec33, 4, 3, &o), PL_DISC_DONE);
	assert_int_equal(json_array_size(json_object_get(o, "security_types")), 1);
	json_decref(o);
	assert_int_equal(pl_disc_rfb_security(fail + 3, 4, 8, &o), PL_DISC_MORE);
	assert_int_equal(pl_disc_rfb_security(fail, 10, 3, &o), PL_DISC_MORE);
	assert_int_equal(pl_disc_rfb_security(fail, 11, 3, &o), PL_DISC_DONE);
	assert_string_equal(pl_json_str(o, "reason"), "no!");
	json_decref(o);
}

static void
test_x224(void **state)
{
	unsigned char req[32];
	const unsigned char cc[] = { 3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0,
				     2, 0x1f, 8, 0, 2, 0, 0, 0 };
	const unsigned char failure[] = { 3, 0, 0, 19, 14, 0xd0, 0, 0, 0, 0, 0,
					  3, 0, 8, 0, 5, 0, 0, 0 };
	const unsigned char old[] = { 3, 0, 0, 11, 6, 0xd0, 0, 0, 0, 0, 0 };
	const unsigned char dr[] = { 3, 0, 0, 11, 6, 0x80, 0, 0, 0, 0, 0 };
	json_t *o;

	assert_int_equal(pl_disc_x224_request(req, sizeof(req)), 19);
	assert_int_equal(req[3], 19);
	assert_int_equal(req[4], 14);
	assert_int_equal(req[15], 3);
	assert_int_equal(pl_disc_x224_parse(cc, 10, &o), PL_DISC_MORE);
	assert_int_equal(pl_disc_x224_parse(cc, sizeof(cc), &o), PL_DISC_DONE);
	assert_string_equal(pl_json_str(o, "selected_protocol"), "hybrid");
	json_decref(o);
	assert_int_equal(pl_disc_x224_parse(failure, sizeof(failure), &o), PL_DISC_DONE);
	assert_string_equal(pl_json_str(o, "failure"), "HYBRID_REQUIRED_BY_SERVER");
	json_decref(o);
	assert_int_equal(pl_disc_x224_parse(old, sizeof(old), &o), PL_DISC_DONE);
	assert_string_equal(pl_json_str(o, "selected_protocol"), "rdp");
	json_decref(o);
	assert_int_equal(pl_disc_x224_parse(dr, sizeof(dr), &o), PL_EPARSE);
	assert_int_equal(pl_disc_x224_parse((const unsigned char *)"HTTP", 4, &o), PL_EPARSE);
}

static void
test_http(void **state)
{
	struct pl_disc_http r;
	const char *a = "HTTP/1.1 401 No ticket\r\nServer: pve-api-daemon/3.0\r\n"
			"Content-Length: 5\r\n\r\nhel";
	const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "4\r\n<tit\r\n6;x=y\r\nle>ab<\r\n0\r\n\r\n";

	assert_int_equal(pl_disc_http_parse(a, 10, false, 100, &r), PL_DISC_MORE);
	assert_int_equal(pl_disc_http_parse(a, strlen(a), false, 100, &r), PL_DISC_MORE);
	assert_int_equal(pl_disc_http_parse(a, strlen(a), true, 100, &r), PL_DISC_DONE);
	assert_int_equal(r.status, 401);
	assert_string_equal(r.reason, "No ticket");
	assert_string_equal(r.server, "pve-api-daemon/3.0");
	assert_string_equal(r.body, "hel");
	assert_true(r.truncated);
	pl_disc_http_release(&r);
	assert_int_equal(pl_disc_http_parse(ch, strlen(ch) - 5, false, 100, &r), PL_DISC_MORE);
	assert_int_equal(pl_disc_http_parse(ch, strlen(ch), false, 100, &r), PL_DISC_DONE);
	assert_string_equal(r.body, "<title>ab<");
	assert_false(r.truncated);
	pl_disc_http_release(&r);
	/* the cap holds for chunked bodies too */
	assert_int_equal(pl_disc_http_parse(ch, strlen(ch), false, 6, &r), PL_DISC_DONE);
	assert_string_equal(r.body, "<title");
	assert_true(r.truncated);
	pl_disc_http_release(&r);
	assert_int_equal(pl_disc_http_parse("SSH-2.0-x\r\n", 11, false, 100, &r), PL_EPARSE);
	assert_int_equal(pl_disc_http_parse("HTTP/1.1 2x0 OK\r\n\r\n", 19, false, 100, &r),
			 PL_EPARSE);
	/* found by fuzz_disc_http: a head that is only a status line */
	a = "HTTP/1.1 401 No ticketontent-Length: 0\r\n\r\n";
	assert_int_equal(pl_disc_http_parse(a, strlen(a), true, 100, &r), PL_DISC_DONE);
	assert_int_equal(r.status, 401);
	pl_disc_http_release(&r);
	/* found by fuzz_disc_http: a newline inside the version */
	a = "HTTP/1.\n 200 OK\r\n\r\n";
	assert_int_equal(pl_disc_http_parse(a, strlen(a), true, 100, &r), PL_EPARSE);
	/* no framing: the body ends when the peer closes */
	assert_int_equal(pl_disc_http_parse("HTTP/1.0 200 OK\n\nabc", 20, false, 100, &r),
			 PL_DISC_MORE);
	assert_int_equal(pl_disc_http_parse("HTTP/1.0 200 OK\n\nabc", 20, true, 100, &r),
			 PL_DISC_DONE);
	assert_string_equal(r.body, "abc");
	pl_disc_http_release(&r);
}

static void
test_title(void **state)
{
	const char *h = "<html><head><TITLE lang=en>\n  pve &amp; friends &#65;\t&lt;x&gt; </title>";
	char *t = pl_disc_html_title(h, strlen(h));

	assert_string_equal(t, "pve & friends A <x>");
	free(t);
	assert_null(pl_disc_html_title("<titles>x</titles>", 18));
	assert_null(pl_disc_html_title("<title></title>", 15));
	t = pl_disc_html_title("<title>unterminated", 19);
	assert_string_equal(t, "unterminated");
	free(t);
}

static json_t *
capture(const char *dir)
{
	struct pl_buf b;
	char *path = pl_asprintf("%s/tests/data/redfish/%s/redfish_v1.json", PL_TEST_SRCDIR, dir);
	json_t *o = NULL;

	pl_buf_init(&b, 0);
	if (pl_file_read(path, &b, NULL) == 0)
		assert_int_equal(pl_disc_redfish_parse(b.data, b.len, &o), PL_DISC_DONE);
	pl_buf_release(&b);
	free(path);
	return o;
}

static void
test_redfish_captures(void **state)
{
	json_t *o;

	o = capture("idrac9_fw6.00.30.00_R750_libredfish-mockup");
	assert_non_null(o);
	assert_string_equal(pl_json_str(o, "kind"), "idrac");
	assert_string_equal(pl_json_str(o, "vendor"), "Dell");
	assert_string_equal(pl_json_str(o, "product"), "Integrated Dell Remote Access Controller");
	assert_string_equal(pl_json_str(o, "redfish_version"), "1.13.1");
	assert_string_equal(pl_json_str(o, "service_tag"), "F54P1G3");
	json_decref(o);
	o = capture("idrac_legacy_redfish1.0.2_dora-comment");
	assert_string_equal(pl_json_str(o, "kind"), "idrac");
	assert_string_equal(pl_json_str(o, "vendor"), "Dell");
	assert_null(json_object_get(o, "product"));
	json_decref(o);
	o = capture("X13_SYS-821GE-TNHR_bmc11.01.01_libredfish-mockup");
	assert_string_equal(pl_json_str(o, "kind"), "bmc");
	assert_string_equal(pl_json_str(o, "vendor"), "Supermicro");
	json_decref(o);
	o = capture("idrac9_fw3.34.34.34_14G_R640_sushy-oem-idrac");
	assert_string_equal(pl_json_str(o, "service_tag"), "GTS7DV2");
	json_decref(o);
}

static void
test_redfish_shapes(void **state)
{
	json_t *o;
	const char *hpe = "{\"RedfishVersion\":\"1.6.0\",\"Oem\":{\"Hpe\":{}}}";

	assert_int_equal(pl_disc_redfish_parse(hpe, strlen(hpe), &o), PL_DISC_DONE);
	assert_string_equal(pl_json_str(o, "kind"), "ilo");
	assert_string_equal(pl_json_str(o, "vendor"), "HPE");
	json_decref(o);
	assert_int_equal(pl_disc_redfish_parse("{\"data\":null}", 13, &o), PL_EPARSE);
	assert_int_equal(pl_disc_redfish_parse("[1]", 3, &o), PL_EPARSE);
	assert_int_equal(pl_disc_redfish_parse("{\"RedfishVersion\":", 18, &o), PL_EPARSE);
}

static void
test_rmcp(void **state)
{
	unsigned char ping[16], pong[28] = { 6, 0, 0xff, 6, 0, 0, 0x11, 0xbe, 0x40, 7, 0, 16,
					     0, 0, 0x11, 0xbe, 0, 0, 0, 0, 0x81, 0 };
	json_t *o;

	assert_int_equal(pl_disc_rmcp_ping(ping, sizeof(ping), 7), 12);
	assert_int_equal(ping[8], 0x80);
	assert_int_equal(pl_disc_rmcp_pong(pong, sizeof(pong), &o), PL_DISC_DONE);
	assert_true(json_is_true(json_object_get(o, "ipmi")));
	json_decref(o);
	assert_int_equal(pl_disc_rmcp_pong(ping, 12, &o), PL_EPARSE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ssh),	       cmocka_unit_test(test_rfb),
		cmocka_unit_test(test_x224),	       cmocka_unit_test(test_http),
		cmocka_unit_test(test_title),	       cmocka_unit_test(test_redfish_captures),
		cmocka_unit_test(test_redfish_shapes), cmocka_unit_test(test_rmcp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
