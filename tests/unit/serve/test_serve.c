/* Unit tests for serve/: route matching (parameters, 404/405, path tricks),
 * loopback detection, the refusal of plain HTTP elsewhere, the OpenAPI
 * document made from the routes, and the token store under it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "core/json.h"
#include "serve/serve.h"
#include "state/state.h"

#include <event2/event.h>

static void
noop(struct pl_serve_req *req, void *arg)
{
}

static const struct pl_serve_param q[] = { { "kind", "k" }, { NULL, NULL } };
static const struct pl_serve_route routes[] = {
	{ "GET", "/api/v1/guests", PL_ROLE_VIEWER, 200, "list", "{\"type\":\"array\"}", NULL, q,
	  noop, 0 },
	{ "GET", "/api/v1/guests/{guest}", PL_ROLE_VIEWER, 200, "one", "{}", NULL, NULL, noop, 0 },
	{ "POST", "/api/v1/guests/{guest}/start", PL_ROLE_OPERATOR, 202, "start", "{}", "{}", NULL,
	  noop, 0 },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};
static const struct pl_serve_module mod = { "test", routes, NULL };
static const struct pl_serve_limits lim = { 16384, 1 << 20, 30, 10, 5, 16 };

static struct pl_serve *
server(struct event_base *base)
{
	struct pl_serve *sv = pl_serve_new(base, NULL, &lim);

	pl_serve_add(sv, &mod);
	return sv;
}

static void
test_match(void **unused)
{
	struct pl_serve *sv = server(NULL);
	const struct pl_serve_route *r;
	json_t *p = NULL;
	int st = 0;

	r = pl_serve_match(sv, "GET", "/api/v1/guests", &p, &st);
	assert_ptr_equal(r, &routes[0]);
	assert_int_equal(json_object_size(p), 0);
	json_decref(p);
	r = pl_serve_match(sv, "GET", "/api/v1/guests/web%20one", &p, &st);
	assert_ptr_equal(r, &routes[1]);
	assert_string_equal(pl_json_str(p, "guest"), "web one");
	json_decref(p);
	r = pl_serve_match(sv, "POST", "/api/v1/guests/101/start", &p, &st);
	assert_ptr_equal(r, &routes[2]);
	assert_string_equal(pl_json_str(p, "guest"), "101");
	json_decref(p);
	/* the server's own routes are there too */
	assert_non_null(pl_serve_match(sv, "GET", "/healthz", NULL, &st));
	assert_non_null(pl_serve_match(sv, "GET", "/api/v1/openapi.json", NULL, &st));
	assert_null(pl_serve_match(sv, "DELETE", "/api/v1/guests/1", NULL, &st));
	assert_int_equal(st, 405);
	assert_null(pl_serve_match(sv, "GET", "/api/v1/guest", NULL, &st));
	assert_int_equal(st, 404);
	assert_null(pl_serve_match(sv, "GET", "/api/v1/guests/1/start/x", NULL, &st));
	assert_int_equal(st, 404);
	static const char *const bad[] = {
		"/api/v1/../healthz",   "/api/v1/%2e%2e/healthz",
		"/api/v1/guests/a%2Fb", "//healthz",
		"/api/v1/guests/",      "/api/v1/guests/%00",
		"api/v1/guests",        "",
		"/./healthz",           "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r",
	};
	for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
		p = json_true();
		assert_null(pl_serve_match(sv, "GET", bad[i], &p, &st));
		assert_int_equal(st, 400);
		assert_null(p);
	}
	pl_serve_free(sv);
}

static void
test_loopback_and_plain_http(void **unused)
{
	struct event_base *base = event_base_new();
	struct pl_serve *sv = server(base);
	char *bound = NULL, *err = NULL;

	assert_true(pl_serve_is_loopback("127.0.0.1:80"));
	assert_true(pl_serve_is_loopback("127.9.9.9:0"));
	assert_true(pl_serve_is_loopback("[::1]:8080"));
	assert_true(pl_serve_is_loopback("localhost:1"));
	assert_false(pl_serve_is_loopback("0.0.0.0:8080"));
	assert_false(pl_serve_is_loopback("192.168.1.5:8080"));
	assert_false(pl_serve_is_loopback("[::]:8080"));
	assert_false(pl_serve_is_loopback("128.0.0.1:8080"));
	assert_int_equal(pl_serve_listen(sv, "0.0.0.0:0", NULL, &bound, &err), PL_EPERM);
	assert_non_null(strstr(err, "not loopback"));
	assert_null(bound);
	free(err);
	err = NULL;
	assert_int_equal(pl_serve_listen(sv, "127.0.0.1", NULL, &bound, &err), PL_EINVAL);
	free(err);
	err = NULL;
	assert_int_equal(pl_serve_listen(sv, "127.0.0.1:99999", NULL, &bound, &err), PL_EINVAL);
	free(err);
	err = NULL;
	assert_int_equal(pl_serve_listen(sv, "127.0.0.1:0", NULL, &bound, &err), 0);
	assert_true(!strncmp(bound, "127.0.0.1:", 10) && strcmp(bound, "127.0.0.1:0"));
	free(bound);
	pl_serve_free(sv);
	event_base_free(base);
}

static void
test_openapi_from_routes(void **unused)
{
	struct pl_serve *sv = server(NULL);
	json_t *doc = pl_serve_openapi(sv), *op;

	assert_string_equal(pl_json_str(doc, "openapi"), "3.1.0");
	op = json_object_get(
		json_object_get(json_object_get(doc, "paths"), "/api/v1/guests/{guest}/start"),
		"post");
	assert_non_null(op);
	assert_string_equal(pl_json_str(op, "x-pvelab-role"), "operator");
	assert_string_equal(pl_json_str(op, "operationId"), "post_api_v1_guests_guest_start");
	assert_non_null(json_object_get(json_object_get(op, "responses"), "202"));
	assert_non_null(json_object_get(op, "requestBody"));
	assert_string_equal(pl_json_str(json_array_get(json_object_get(op, "parameters"), 0), "in"),
			    "path");
	op = json_object_get(json_object_get(json_object_get(doc, "paths"), "/api/v1/guests"),
			     "get");
	assert_string_equal(
		pl_json_str(json_array_get(json_object_get(op, "parameters"), 0), "name"), "kind");
	/* the probe needs no token */
	op = json_object_get(json_object_get(json_object_get(doc, "paths"), "/healthz"), "get");
	assert_int_equal(json_array_size(json_object_get(op, "security")), 0);
	assert_non_null(json_object_get(op, "security"));
	json_decref(doc);
	pl_serve_free(sv);
}

static void
test_roles_and_statuses(void **unused)
{
	assert_int_equal(pl_serve_role_parse("viewer"), PL_ROLE_VIEWER);
	assert_int_equal(pl_serve_role_parse("admin"), PL_ROLE_ADMIN);
	assert_int_equal(pl_serve_role_parse("root"), -1);
	assert_int_equal(pl_serve_role_parse(NULL), -1);
	assert_true(PL_ROLE_VIEWER < PL_ROLE_OPERATOR && PL_ROLE_OPERATOR < PL_ROLE_ADMIN);
	assert_int_equal(pl_serve_status_of(PL_ENOENT), 404);
	assert_int_equal(pl_serve_status_of(PL_ECONFLICT), 409);
	assert_int_equal(pl_serve_status_of(PL_ECONNECT), 502);
	assert_int_equal(pl_serve_status_of(PL_EDB), 500);
}

static void
test_token_store(void **unused)
{
	char dir[] = "/tmp/pl-serve-XXXXXX", *path, *err = NULL;
	struct pl_state *s;
	json_t *t = NULL;

	assert_non_null(mkdtemp(dir));
	path = pl_asprintf("%s/state.db", dir);
	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_int_equal(pl_state_token_add(s, "a", "viewer", "aa", 0, &err), 0);
	assert_int_equal(pl_state_token_add(s, "b", "admin", "bb", 1e10, &err), 0);
	assert_int_equal(pl_state_token_add(s, "a", "admin", "cc", 0, &err), PL_ECONFLICT);
	free(err);
	err = NULL;
	assert_int_equal(pl_state_token_add(s, "c", "root", "dd", 0, &err), PL_EDB);
	free(err);
	err = NULL;
	assert_int_equal(pl_state_token_find(s, "bb", &t, &err), 0);
	assert_string_equal(pl_json_str(t, "name"), "b");
	assert_true(json_is_null(json_object_get(t, "revoked")));
	assert_true(pl_json_num(t, "expires", 0) == 1e10);
	json_decref(t);
	assert_int_equal(pl_state_token_find(s, "zz", &t, &err), PL_ENOENT);
	assert_int_equal(pl_state_token_revoke(s, "a", &err), 0);
	assert_int_equal(pl_state_token_revoke(s, "a", &err), PL_ENOENT);
	free(err);
	err = NULL;
	assert_int_equal(pl_state_token_find(s, "aa", &t, &err), 0);
	assert_true(json_is_real(json_object_get(t, "revoked")));
	json_decref(t);
	assert_int_equal(pl_state_tokens(s, &t, &err), 0);
	assert_int_equal(json_array_size(t), 2);
	assert_null(json_object_get(json_array_get(t, 0), "sha256"));
	json_decref(t);
	pl_state_close(s);
	char *cmd = pl_asprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_loopback_and_plain_http),
		cmocka_unit_test(test_openapi_from_routes),
		cmocka_unit_test(test_roles_and_statuses),
		cmocka_unit_test(test_token_store),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
