/*
 * libFuzzer harness for pvelab serve's request router: the input's first line
 * is the method, the rest the raw request path. Whatever it is, matching must
 * not crash, and a match must bind exactly the route's {parameters}, none of
 * them empty or holding a '/' (a path trick that reached a handler).
 */
#include "core/common.h"
#include "core/err.h"
#include "core/json.h"
#include "serve/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
noop(struct pl_serve_req *req, void *arg)
{
}

static const struct pl_serve_route routes[] = {
	{ "GET", "/api/v1/guests", 1, 200, "s", "{}", NULL, NULL, noop, 0 },
	{ "GET", "/api/v1/guests/{guest}", 1, 200, "s", "{}", NULL, NULL, noop, 0 },
	{ "GET", "/api/v1/guests/{guest}/history", 1, 200, "s", "{}", NULL, NULL, noop, 0 },
	{ "POST", "/api/v1/guests/{guest}/snapshots/{name}", 2, 202, "s", "{}", "{}", NULL, noop,
	  0 },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};
static const struct pl_serve_module mod = { "fuzz", routes, NULL };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pl_serve *sv;
	const uint8_t *nl = memchr(data, '\n', size);
	char *method, *path;
	const struct pl_serve_route *r;
	json_t *params = NULL, *v;
	const char *k;
	int status = 0;

	if (sv == NULL) {
		static const struct pl_serve_limits lim = { 1024, 1024, 1, 1, 1, 16 };

		sv = pl_serve_new(NULL, NULL, &lim);
		pl_serve_add(sv, &mod);
	}
	if (nl == NULL)
		return 0;
	method = pl_strndup((const char *)data, (size_t)(nl - data));
	path = pl_strndup((const char *)nl + 1, size - (size_t)(nl - data) - 1);
	r = pl_serve_match(sv, method, path, &params, &status);
	if (r) {
		size_t braces = 0;

		for (const char *p = r->path; *p; p++)
			braces += *p == '{';
		if (json_object_size(params) != braces)
			__builtin_trap();
		json_object_foreach(params, k, v)
			if (json_string_length(v) == 0 || strchr(json_string_value(v), '/'))
				__builtin_trap();
	} else if (params || (status != 400 && status != 404 && status != 405)) {
		__builtin_trap();
	}
	json_decref(params);
	free(method);
	free(path);
	return 0;
}
