/* Unit tests for pve/resp: the response envelope and error shapes (recorded
 * PVE answers), UPIDs, permission and lock messages, the backoff schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "pve/client.h"
#include "pve/resp.h"

static json_t *
example(const char *name)
{
	char *path = pl_asprintf("%s/tests/data/pve-api/examples/%s", PL_TEST_SRCDIR, name);
	json_t *v = json_load_file(path, 0, NULL);

	free(path);
	return v;
}

static void
test_success_envelope(void **state)
{
	struct pl_pve_resp r;
	const char *body = "{\"data\":[{\"vmid\":\"100\"}],\"total\":1}";

	assert_int_equal(pl_pve_resp_parse(200, "OK", body, strlen(body), &r), 0);
	assert_true(json_is_array(r.data));
	assert_null(r.message);
	pl_pve_resp_release(&r);

	/* {"data":null} is a success (PUT config). */
	assert_int_equal(pl_pve_resp_parse(200, "OK", "{\"data\":null}", 13, &r), 0);
	assert_true(json_is_null(r.data));
	pl_pve_resp_release(&r);

	/* A 200 that is not JSON is a parse error, not a crash. */
	assert_int_equal(pl_pve_resp_parse(200, "OK", "<html>", 6, &r), PL_EPARSE);
	assert_non_null(r.message);
	pl_pve_resp_release(&r);
	assert_int_equal(pl_pve_resp_parse(200, "OK", "", 0, &r), PL_EPARSE);
	pl_pve_resp_release(&r);
}

/* Replay the recorded error exchanges: status, reason and body as PVE sent them. */
static void
test_recorded_errors(void **state)
{
	static const struct {
		const char *file;
		int err;
		const char *contains;
	} cases[] = {
		{ "error-400-param-invalid-format.http.json", PL_EHTTP,
		  "Parameter verification failed. (vmid: invalid format - value does not look like a valid VM ID)" },
		{ "error-401-invalid-token-value.http.json", PL_EAUTH, "invalid token value!" },
		{ "error-401-ticket-wrong-password.http.json", PL_EAUTH, "authentication failure" },
		{ "error-500-config-does-not-exist.http.json", PL_EHTTP,
		  "Configuration file 'nodes/pve/lxc/101.conf' does not exist" },
		{ "error-500-vm-already-exists.http.json", PL_EHTTP, "VM 100 already exists" },
	};

	for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
		json_t *ex = example(cases[i].file), *resp;
		struct pl_pve_resp r;
		const char *body;
		char *text;

		assert_non_null(ex);
		resp = json_object_get(ex, "response");
		body = json_string_value(json_object_get(resp, "body"));
		if (body == NULL)
			body = "";
		assert_int_equal(pl_pve_resp_parse(json_integer_value(json_object_get(resp, "status")),
						   pl_json_str(resp, "reason"), body, strlen(body), &r),
				 cases[i].err);
		text = pl_pve_resp_errtext(&r);
		if (strstr(text, cases[i].contains) == NULL)
			fail_msg("%s: '%s' lacks '%s'", cases[i].file, text, cases[i].contains);
		assert_null(strchr(text, '\n'));
		free(text);
		pl_pve_resp_release(&r);
		json_decref(ex);
	}
}

static void
test_message_in_body_wins(void **state)
{
	struct pl_pve_resp r;
	const char *body = "{\"data\":null,\"message\":\"VM 100 is locked (backup)\\n\"}";
	char lock[32];

	assert_int_equal(pl_pve_resp_parse(500, "VM 100 is locked", body, strlen(body), &r), PL_EHTTP);
	assert_string_equal(r.message, "VM 100 is locked (backup)");
	assert_true(pl_pve_lock_parse(r.message, lock, sizeof(lock)));
	assert_string_equal(lock, "backup");
	pl_pve_resp_release(&r);
	assert_int_equal(pl_pve_resp_parse(403, "Permission check failed (/vms/100, VM.PowerMgmt)",
					   "", 0, &r), PL_EPERM);
	pl_pve_resp_release(&r);
	assert_int_equal(pl_pve_resp_parse(503, NULL, "", 0, &r), PL_EHTTP);
	assert_string_equal(r.message, "HTTP 503");
	pl_pve_resp_release(&r);
}

static void
test_upid(void **state)
{
	struct pl_pve_upid u;
	json_t *ex = example("task-status-stopped-error.json");

	assert_int_equal(pl_pve_upid_parse("UPID:pve:00000C58:0000D636:5FBE5E7B:vzcreate:100:root@pam:", &u), 0);
	assert_string_equal(u.node, "pve");
	assert_int_equal(u.pid, 0xC58);
	assert_int_equal(u.pstart, 0xD636);
	assert_int_equal(u.starttime, 0x5FBE5E7B);
	assert_string_equal(u.type, "vzcreate");
	assert_string_equal(u.id, "100");
	assert_string_equal(u.user, "root@pam");
	/* Token users, empty ids, 9-digit pstart. */
	assert_int_equal(pl_pve_upid_parse("UPID:node-1:00001234:123456789:6B025BB2:aptupdate::root@pam!tok:", &u), 0);
	assert_string_equal(u.id, "");
	assert_string_equal(u.user, "root@pam!tok");
	assert_int_equal(u.pstart, 0x123456789UL);
	/* The recorded one. */
	assert_int_equal(pl_pve_upid_parse(pl_json_str(json_object_get(ex, "data"), "upid"), &u), 0);
	json_decref(ex);
	/* Broken ones. */
	assert_int_equal(pl_pve_upid_parse("UPID:pve:00000C58:0000D636:5FBE5E7B:vzcreate:100:root@pam", &u), PL_EPARSE);
	assert_int_equal(pl_pve_upid_parse("UPID:pve:00000C58:0000D636:5FBE5E7B:vzcreate:100:root@pam:x", &u), PL_EPARSE);
	assert_int_equal(pl_pve_upid_parse("UPID:pve:C58:0000D636:5FBE5E7B:vzcreate:100:root@pam:", &u), PL_EPARSE);
	assert_int_equal(pl_pve_upid_parse("UPID:p/e:00000C58:0000D636:5FBE5E7B:vzcreate:100:root@pam:", &u), PL_EPARSE);
	assert_int_equal(pl_pve_upid_parse("UPID:pve:0000XC58:0000D636:5FBE5E7B:vzcreate:100:root@pam:", &u), PL_EPARSE);
	assert_int_equal(pl_pve_upid_parse("nope", &u), PL_EPARSE);
	assert_int_equal(pl_pve_upid_parse(NULL, &u), PL_EPARSE);
}

static void
test_perm_and_lock(void **state)
{
	char path[64], priv[64], lock[16];

	assert_true(pl_pve_perm_parse("Permission check failed (/vms/100, VM.PowerMgmt)", path,
				      sizeof(path), priv, sizeof(priv)));
	assert_string_equal(path, "/vms/100");
	assert_string_equal(priv, "VM.PowerMgmt");
	assert_true(pl_pve_perm_parse("Permission check failed (/, Sys.Audit|Sys.Modify)", path,
				      sizeof(path), priv, sizeof(priv)));
	assert_string_equal(priv, "Sys.Audit|Sys.Modify");
	assert_false(pl_pve_perm_parse("Permission check failed", path, sizeof(path), priv,
				       sizeof(priv)));
	assert_false(pl_pve_perm_parse("Permission check failed (URI '/x' not available with API "
				       "token, need proper ticket.)", path, sizeof(path), priv,
				       sizeof(priv)));
	assert_true(pl_pve_lock_parse("CT is locked (snapshot)", lock, sizeof(lock)));
	assert_string_equal(lock, "snapshot");
	assert_false(pl_pve_lock_parse("VM 100 is locked ()", lock, sizeof(lock)));
	assert_false(pl_pve_lock_parse("VM is locked (averyveryverylonglockname)", lock, sizeof(lock)));
	assert_false(pl_pve_lock_parse(NULL, lock, sizeof(lock)));
}

static void
test_backoff(void **state)
{
	/* Grows, is capped, stays jittered between base/2 and the ceiling. */
	assert_int_equal(pl_pve_backoff_ms(1, 100, 2000, 0.0), 50);
	assert_int_equal(pl_pve_backoff_ms(1, 100, 2000, 0.999999), 99);
	assert_true(pl_pve_backoff_ms(3, 100, 2000, 0.999999) >= 399);
	assert_true(pl_pve_backoff_ms(3, 100, 2000, 0.999999) <= 400);
	assert_true(pl_pve_backoff_ms(30, 100, 2000, 0.999999) <= 2000);
	assert_true(pl_pve_backoff_ms(30, 100, 2000, 0.0) >= 50);
	for (int a = 1; a < 12; a++)
		for (double x = 0; x < 1; x += 0.125) {
			long d = pl_pve_backoff_ms(a, 100, 2000, x);

			assert_true(d >= 50 && d <= 2000);
		}
}

static void
test_endpoint_norm(void **state)
{
	char *e = NULL, *s;

	s = pl_pve_endpoint_norm("pve1", &e);
	assert_string_equal(s, "https://pve1:8006");
	free(s);
	s = pl_pve_endpoint_norm("https://10.0.0.1:443/", &e);
	assert_string_equal(s, "https://10.0.0.1:443");
	free(s);
	s = pl_pve_endpoint_norm("HTTPS://[::1]", &e);
	assert_string_equal(s, "https://[::1]:8006");
	free(s);
	assert_null(pl_pve_endpoint_norm("http://pve1:8006", &e));
	assert_non_null(strstr(e, "https"));
	free(e);
	e = NULL;
	assert_null(pl_pve_endpoint_norm("", &e));
	free(e);
}

/* A pin is only enforced through OpenSSL: any other backend is refused. */
static void
test_tls_backend(void **state)
{
	char *e = NULL;

	(void)state;
	assert_int_equal(pl_pve_tls_backend_check("OpenSSL/3.0.15", &e), 0);
	assert_null(e);
	assert_int_equal(pl_pve_tls_backend_check("GnuTLS/3.7.9", &e), PL_ETLS);
	assert_non_null(strstr(e, "'GnuTLS/3.7.9', not OpenSSL"));
	free(e);
	e = NULL;
	assert_int_equal(pl_pve_tls_backend_check(NULL, &e), PL_ETLS);
	free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_success_envelope),
		cmocka_unit_test(test_recorded_errors),
		cmocka_unit_test(test_message_in_body_wins),
		cmocka_unit_test(test_upid),
		cmocka_unit_test(test_perm_and_lock),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_endpoint_norm),
		cmocka_unit_test(test_tls_backend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
