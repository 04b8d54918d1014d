/* Unit tests for check/: specs resolved from a config (types from the
 * protocol, addresses, defaults), the classification of what a probe saw,
 * the cluster's own checks and the exit code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "check/check.h"
#include "config/config.h"
#include "core/json.h"

static struct pl_config *
load(const char *text)
{
	struct pl_config *c = NULL;
	struct pl_diags d;

	pl_diags_init(&d);
	assert_int_equal(pl_config_load_string("t.yaml", text, strlen(text), &c, &d), 0);
	pl_diags_release(&d);
	return c;
}

static const json_t *
find(const json_t *arr, const char *name)
{
	const json_t *x;
	size_t i;

	json_array_foreach(arr, i, x)
		if (!strcmp(pl_json_str_or(x, "name", ""), name))
			return x;
	return NULL;
}

static void
test_specs_from_services(void **state)
{
	struct pl_config *c;
	json_t *s;
	const json_t *x;

	PL_UNUSED(state);
	c = load("checks:\n  timeout: 3\n  retries: 1\n"
		 "  targets:\n    - {name: bmc, check: https, host: 10.0.0.9, verify: false}\n"
		 "    - {name: ns, check: dns, host: 10.0.0.1}\n"
		 "guests:\n"
		 "  - name: web\n    networks: [{ip: 10.0.0.5/24}]\n    services:\n"
		 "      - {name: ui, port: 80, protocol: http, path: health}\n"
		 "      - {name: api, port: 8443, protocol: https, host_port: 9443, timeout: 7}\n"
		 "      - {name: ssh, port: 22}\n"
		 "      - {name: syslog, port: 514, protocol: udp}\n"
		 "      - {name: tls, port: 443, check: tls, warn_days: 30}\n"
		 "      - {name: off, port: 8080, protocol: http, check: none}\n"
		 "  - name: dyn\n    networks: [{ip: dhcp}]\n    services:\n"
		 "      - {name: ui, port: 80, protocol: http}\n");
	s = pl_check_specs(c);

	assert_int_equal(json_array_size(s), 9);
	x = find(s, "web/ui");
	assert_string_equal(pl_json_str(x, "type"), "http");
	assert_string_equal(pl_json_str(x, "url"), "http://10.0.0.5:80/health");
	assert_string_equal(pl_json_str(x, "guest"), "web");
	assert_int_equal(pl_json_int(x, "timeout", 0), 3);
	assert_int_equal(pl_json_int(x, "retries", 0), 1);
	assert_int_equal(pl_json_int(x, "interval", 0), PL_CHECK_INTERVAL);
	assert_true(pl_json_bool(x, "verify", false));
	x = find(s, "web/api");
	assert_string_equal(pl_json_str(x, "url"), "https://10.0.0.5:9443/");
	assert_int_equal(pl_json_int(x, "timeout", 0), 7);
	x = find(s, "web/ssh");
	assert_string_equal(pl_json_str(x, "type"), "tcp");
	assert_int_equal(pl_json_int(x, "port", 0), 22);
	assert_null(json_object_get(x, "skip"));
	assert_string_equal(pl_json_str(find(s, "web/syslog"), "skip"), "check: none");
	assert_string_equal(pl_json_str(find(s, "web/off"), "skip"), "check: none");
	assert_int_equal(pl_json_int(find(s, "web/tls"), "warn_days", 0), 30);
	assert_non_null(strstr(pl_json_str(find(s, "dyn/ui"), "skip"), "no address"));
	x = find(s, "bmc");
	assert_string_equal(pl_json_str(x, "url"), "https://10.0.0.9:443/");
	assert_false(pl_json_bool(x, "verify", true));
	assert_null(json_object_get(x, "guest"));
	x = find(s, "ns");
	assert_int_equal(pl_json_int(x, "port", 0), 53);
	assert_non_null(strstr(pl_json_str(x, "skip"), "dns_name"));
	json_decref(s);
	pl_config_free(c);
}

static void
test_bad_check_keys_fail(void **state)
{
	struct pl_config *c = NULL;
	struct pl_diags d;
	const char *bad[] = {
		"guests:\n  - name: a\n    services:\n      - {name: x, port: 1, check: smtp}\n",
		"guests:\n  - name: a\n    services:\n      - {name: x, port: 1, timeout: 0}\n",
		"checks:\n  targets:\n    - {check: tcp, host: h}\n",
		"checks:\n  cluster:\n    storage_percent: 101\n",
		"checks:\n  intervall: 5\n",
	};

	PL_UNUSED(state);
	for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
		pl_diags_init(&d);
		assert_int_not_equal(
			pl_config_load_string("t.yaml", bad[i], strlen(bad[i]), &c, &d), 0);
		assert_true(d.nerrors > 0);
		pl_config_free(c);
		c = NULL;
		pl_diags_release(&d);
	}
}

/* What pvelab validate says of checks that parse but cannot work. */
static void
test_validate_checks(void **state)
{
	const char *bad[][2] = {
		{ "checks:\n  targets:\n    - {name: a, host: h}\n    - {name: a, host: i}\n",
		  "duplicate check name 'a'" },
		{ "checks:\n  targets:\n    - {name: a, check: ping}\n", "has no host" },
		{ "checks:\n  targets:\n    - {name: a, check: dns, host: h}\n", "needs dns_name" },
		{ "guests:\n  - name: g\n    services:\n"
		  "      - {name: w, port: 80, protocol: http, body_regex: \"(\"}\n",
		  "not an extended regular expression" },
		{ "guests:\n  - name: g\n    services:\n"
		  "      - {name: w, port: 80, protocol: http, json_value: 1}\n",
		  "json_value needs json_path" },
	};

	PL_UNUSED(state);
	for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
		struct pl_config *c = NULL;
		struct pl_diags d;
		bool hit = false;

		pl_diags_init(&d);
		assert_int_equal(
			pl_config_load_string("t.yaml", bad[i][0], strlen(bad[i][0]), &c, &d), 0);
		pl_config_check(c, &d);
		for (size_t k = 0; k < d.n; k++) {
			char *line = pl_diag_line(&d.items[k]);

			hit |= strstr(line, bad[i][1]) != NULL;
			free(line);
		}
		assert_true(hit);
		pl_config_free(c);
		pl_diags_release(&d);
	}
}

static json_t *
classify(const char *spec_json, const struct pl_check_obs *o)
{
	json_t *spec = json_loads(spec_json, 0, NULL), *res = json_object();

	assert_non_null(spec);
	pl_check_classify(spec, o, res);
	json_decref(spec);
	return res;
}

static void
test_classify(void **state)
{
	struct pl_check_obs o = { .code = 200,
				  .data = "{\"a\":{\"b\":[1,\"x\"]}}",
				  .now = 1000000 };
	json_t *r;

	PL_UNUSED(state);
	o.len = strlen(o.data);
	r = classify("{\"type\":\"http\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "up");
	json_decref(r);
	o.code = 302;
	r = classify("{\"type\":\"http\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "up");
	json_decref(r);
	r = classify("{\"type\":\"http\",\"expect_status\":[200]}", &o);
	assert_string_equal(pl_json_str(r, "status"), "down");
	assert_string_equal(pl_json_str(r, "error"), "HTTP status 302");
	json_decref(r);
	o.code = 200;
	r = classify("{\"type\":\"http\",\"json_path\":\"$.a.b[1]\",\"json_value\":\"x\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "up");
	json_decref(r);
	r = classify("{\"type\":\"http\",\"json_path\":\"a.b.0\",\"json_value\":2}", &o);
	assert_string_equal(pl_json_str(r, "status"), "down");
	assert_string_equal(pl_json_str(r, "error"), "'a.b.0' is '1', not '2'");
	json_decref(r);
	r = classify("{\"type\":\"http\",\"body_regex\":\"\\\"b\\\":\\\\[1\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "up");
	json_decref(r);
	r = classify("{\"type\":\"http\",\"body_regex\":\"(\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "down");
	json_decref(r);
	/* a transport error is down whatever else */
	o.error = "Timeout was reached";
	r = classify("{\"type\":\"tcp\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "down");
	assert_string_equal(pl_json_str(r, "error"), "Timeout was reached");
	json_decref(r);
	o.error = NULL;
	/* certificate expiry: warn_days, fail_days, expired */
	o.code = 0;
	o.not_after = o.now + 3 * 86400 + 60;
	r = classify("{\"type\":\"tls\",\"warn_days\":14,\"fail_days\":0}", &o);
	assert_string_equal(pl_json_str(r, "status"), "warning");
	assert_int_equal(pl_json_int(r, "tls_days_left", 0), 3);
	json_decref(r);
	r = classify("{\"type\":\"tls\",\"warn_days\":2}", &o);
	assert_string_equal(pl_json_str(r, "status"), "up");
	json_decref(r);
	r = classify("{\"type\":\"tls\",\"warn_days\":14,\"fail_days\":7}", &o);
	assert_string_equal(pl_json_str(r, "status"), "down");
	json_decref(r);
	o.not_after = o.now - 10;
	o.code = 200;
	r = classify("{\"type\":\"https\"}", &o);
	assert_string_equal(pl_json_str(r, "error"), "certificate expired");
	assert_int_equal(pl_json_int(r, "tls_days_left", 0), -1);
	json_decref(r);
	o.not_after = 0;
	/* banner and DNS answers */
	o.data = "SSH-2.0-OpenSSH_9.2\r\n";
	o.len = strlen(o.data);
	r = classify("{\"type\":\"tcp\",\"banner\":\"^SSH-2\\\\.0\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "up");
	json_decref(r);
	r = classify("{\"type\":\"tcp\",\"banner\":\"^220 \"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "down");
	json_decref(r);
	o.data = "10.0.0.1\n10.0.0.12";
	o.len = strlen(o.data);
	r = classify("{\"type\":\"dns\",\"dns_answer\":\"10.0.0.1\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "up");
	json_decref(r);
	r = classify("{\"type\":\"dns\",\"dns_answer\":\"10.0.0.2\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "down");
	json_decref(r);
}

/* A body bigger than PL_CHECK_READ_MAX is matched on its first bytes only. */
static void
test_classify_bounded(void **state)
{
	size_t n = PL_CHECK_READ_MAX + 100;
	char *big = malloc(n + 1);
	struct pl_check_obs o = { .code = 200, .now = 1 };
	json_t *r;

	PL_UNUSED(state);
	memset(big, 'a', n);
	memcpy(big + PL_CHECK_READ_MAX + 10, "NEEDLE", 6);
	big[n] = '\0';
	o.data = big;
	o.len = n;
	r = classify("{\"type\":\"http\",\"body_regex\":\"NEEDLE\"}", &o);
	assert_string_equal(pl_json_str(r, "status"), "down");
	json_decref(r);
	free(big);
}

static void
test_cluster_checks(void **state)
{
	struct pl_config *c = load("guests:\n"
				   "  - name: a\n  - name: b\n    state: stopped\n"
				   "  - name: c\n  - name: d\n  - name: e\n");
	json_t *opts = json_pack("{s:b,s:b,s:i}", "node_offline", 1, "guest_state", 1,
				 "storage_percent", 80);
	json_t *res = json_loads(
		"[{\"type\":\"node\",\"node\":\"n1\",\"status\":\"online\"},"
		"{\"type\":\"node\",\"node\":\"n2\",\"status\":\"offline\"},"
		"{\"type\":\"qemu\",\"name\":\"a\",\"node\":\"n1\",\"status\":\"stopped\"},"
		"{\"type\":\"lxc\",\"name\":\"b\",\"node\":\"n1\",\"status\":\"stopped\"},"
		"{\"type\":\"qemu\",\"name\":\"c\",\"node\":\"n1\",\"status\":\"running\"},"
		"{\"type\":\"qemu\",\"name\":\"d\",\"node\":\"n2\",\"status\":\"unknown\"},"
		"{\"type\":\"storage\",\"storage\":\"local\",\"node\":\"n1\",\"disk\":85,"
		"\"maxdisk\":100},"
		"{\"type\":\"storage\",\"storage\":\"big\",\"node\":\"n1\",\"disk\":100,"
		"\"maxdisk\":100},"
		"{\"type\":\"storage\",\"storage\":\"ok\",\"node\":\"n1\",\"disk\":10,\"maxdisk\":"
		"100},"
		"{\"type\":\"storage\",\"storage\":\"local\",\"node\":\"n2\"}]",
		0, NULL);
	json_t *causes = NULL, *out = pl_check_cluster(c, opts, res, &causes);

	PL_UNUSED(state);
	assert_string_equal(pl_json_str(find(out, "node:n1"), "status"), "up");
	assert_string_equal(pl_json_str(find(out, "node:n2"), "status"), "down");
	assert_string_equal(pl_json_str(find(out, "guest:a"), "status"), "down");
	assert_string_equal(pl_json_str(find(out, "guest:a"), "error"),
			    "guest is stopped, declared running");
	assert_string_equal(pl_json_str(find(out, "guest:b"), "status"), "up");
	assert_string_equal(pl_json_str(find(out, "guest:c"), "status"), "up");
	/* on an offline node: explained by the node, no check of its own */
	assert_null(find(out, "guest:d"));
	assert_string_equal(pl_json_str(causes, "d"), "node:n2");
	assert_string_equal(pl_json_str(find(out, "guest:e"), "error"), "guest does not exist");
	assert_string_equal(pl_json_str(causes, "a"), "guest:a");
	assert_string_equal(pl_json_str(causes, "b"), "guest:b");
	assert_null(json_object_get(causes, "c"));
	assert_string_equal(pl_json_str(find(out, "storage:local@n1"), "status"), "warning");
	assert_string_equal(pl_json_str(find(out, "storage:big@n1"), "status"), "down");
	assert_string_equal(pl_json_str(find(out, "storage:ok@n1"), "status"), "up");
	assert_null(find(out, "storage:local@n2"));
	assert_int_equal(pl_check_exit_code(out), 1);
	json_decref(out);
	json_decref(causes);
	json_decref(opts);
	json_decref(res);
	pl_config_free(c);
}

static void
test_backup_checks(void **state)
{
	struct pl_config *c = load("guests:\n  - name: a\n  - name: b\n  - name: c\n"
				   "  - name: gone\n");
	json_t *newest =
		json_loads("[{\"name\":\"a\",\"count\":2,\"age\":3600,"
			   "\"newest\":\"local:backup/vzdump-qemu-100-x.vma.zst\"},"
			   "{\"name\":\"b\",\"count\":1,\"age\":300000,\"newest\":\"v\"},"
			   "{\"name\":\"c\",\"count\":0},{\"name\":\"other\",\"count\":0}]",
			   0, NULL);
	json_t *out = pl_check_backups(c, newest, 2);

	PL_UNUSED(state);
	assert_int_equal(json_array_size(out), 3);
	assert_string_equal(pl_json_str(find(out, "backup:a"), "status"), "up");
	assert_string_equal(pl_json_str(find(out, "backup:a"), "target"),
			    "local:backup/vzdump-qemu-100-x.vma.zst");
	assert_string_equal(pl_json_str(find(out, "backup:b"), "status"), "warning");
	assert_string_equal(pl_json_str(find(out, "backup:b"), "error"),
			    "newest backup is 3 days old (limit 2)");
	assert_string_equal(pl_json_str(find(out, "backup:c"), "error"), "no backup");
	assert_null(find(out, "backup:gone"));
	assert_int_equal(pl_check_exit_code(out), 2);
	json_decref(out);
	json_decref(newest);
	pl_config_free(c);
}

static void
test_exit_code(void **state)
{
	json_t *a = json_loads("[{\"status\":\"up\"},{\"status\":\"skipped\"}]", 0, NULL);
	json_t *b = json_loads("[{\"status\":\"up\"},{\"status\":\"warning\"}]", 0, NULL);
	json_t *c = json_loads("[{\"status\":\"warning\"},{\"status\":\"down\"}]", 0, NULL);

	PL_UNUSED(state);
	assert_int_equal(pl_check_exit_code(a), 0);
	assert_int_equal(pl_check_exit_code(b), 2);
	assert_int_equal(pl_check_exit_code(c), 1);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_specs_from_services),
		cmocka_unit_test(test_bad_check_keys_fail),
		cmocka_unit_test(test_validate_checks),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_classify_bounded),
		cmocka_unit_test(test_cluster_checks),
		cmocka_unit_test(test_backup_checks),
		cmocka_unit_test(test_exit_code),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
