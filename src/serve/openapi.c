/*
 * The OpenAPI 3.1 document, made from the route table that dispatches the
 * requests (so it cannot drift), and the server's own module: the health
 * probe and the document itself.
 */
#include "core/common.h"
#include "serve/serve.h"
#include "core/err.h"
#include "core/json.h"
#include "serve/internal.h"

static const char error_schema[] =
	"{\"type\":\"object\",\"required\":[\"error\"],\"additionalProperties\":false,"
	"\"properties\":{\"error\":{\"type\":\"object\",\"required\":[\"code\",\"message\"],"
	"\"additionalProperties\":false,\"properties\":{\"code\":{\"type\":\"string\"},"
	"\"message\":{\"type\":\"string\"},\"field\":{\"type\":\"string\"}}}}}";

/* A schema written in a route table; a broken one is a programmer's error. */
static json_t *
schema(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);

	if (v == NULL) {
		fprintf(stderr, "pvelab: bug: route schema: %s: %s\n", e.text, text);
		abort();
	}
	return v;
}

/* "GET /api/v1/guests/{guest}" -> "get_api_v1_guests_guest" */
static json_t *
operation_id(const struct pl_serve_route *r)
{
	char id[256];
	size_t n = 0;

	for (const char *p = r->method; *p && n + 1 < sizeof(id); p++)
		id[n++] = (char)(*p | 0x20);
	for (const char *p = r->path; *p && n + 1 < sizeof(id); p++) {
		if (*p == '{' || *p == '}')
			continue;
		id[n++] = (*p == '/' || *p == '.' || *p == '-') ? '_' : *p;
	}
	id[n] = '\0';
	return json_string(id);
}

static json_t *
error_ref(const char *what)
{
	return json_pack("{s:s,s:{s:{s:{s:s}}}}", "description", what, "content",
			 "application/json", "schema", "$ref", "#/components/schemas/Error");
}

static json_t *
operation(const struct pl_serve_route *r)
{
	json_t *op = json_object(), *params = json_array(), *resp = json_object(), *ok;
	const char *media;
	char code[8];

	json_object_set_new(op, "operationId", operation_id(r));
	json_object_set_new(op, "summary", json_string(r->summary));
	json_object_set_new(op, "description",
			    json_sprintf("Role: %s.", pl_serve_role_name(r->role)));
	json_object_set_new(op, "x-pvelab-role", json_string(pl_serve_role_name(r->role)));
	for (const char *p = strchr(r->path, '{'); p; p = strchr(p + 1, '{')) {
		const char *e = strchr(p, '}');

		json_array_append_new(params, json_pack("{s:s%,s:s,s:b,s:{s:s}}", "name", p + 1,
							(size_t)(e - p - 1), "in", "path",
							"required", 1, "schema", "type", "string"));
	}
	for (const struct pl_serve_param *q = r->query; q && q->name; q++)
		json_array_append_new(params,
				      json_pack("{s:s,s:s,s:s,s:b,s:{s:s}}", "name", q->name, "in",
						"query", "description", q->help, "required", 0,
						"schema", "type", "string"));
	if (json_array_size(params))
		json_object_set_new(op, "parameters", params);
	else
		json_decref(params);
	if (r->body)
		json_object_set_new(op, "requestBody",
				    json_pack("{s:b,s:{s:{s:o}}}", "required", 0, "content",
					      "application/json", "schema", schema(r->body)));
	if (r->body && (r->flags & PL_ROUTE_YAML_BODY))
		json_object_set_new(json_object_get(json_object_get(op, "requestBody"), "content"),
				    "application/yaml",
				    json_pack("{s:{s:s,s:s}}", "schema", "type", "string",
					      "description", "a pvelab.yaml document"));
	snprintf(code, sizeof(code), "%d", r->status);
	/* a body that is not JSON names its media type in the schema; a route
	 * that answers with no body has no response schema */
	if (r->response) {
		ok = schema(r->response);
		media = json_string_value(json_object_get(ok, "contentMediaType"));
		json_object_set_new(resp, code,
				    json_pack("{s:s,s:{s:{s:o}}}", "description", r->summary,
					      "content", media ? media : "application/json",
					      "schema", ok));
	} else {
		json_object_set_new(resp, code, json_pack("{s:s}", "description", r->summary));
	}
	json_object_set_new(resp, "400", error_ref("malformed request"));
	if (r->flags & PL_ROUTE_RPC_ERRORS)
		json_object_set_new(
			resp, "400",
			json_pack("{s:s,s:{s:{s:{s:[{s:s},{s:s,s:[s,s],s:{s:{s:s}}}]}}}}",
				  "description",
				  "malformed request: the server's error, or a JSON-RPC "
				  "error object",
				  "content", "application/json", "schema", "anyOf", "$ref",
				  "#/components/schemas/Error", "type", "object", "required",
				  "jsonrpc", "error", "properties", "jsonrpc", "const", "2.0"));
	if (r->role > PL_ROLE_PUBLIC) {
		json_object_set_new(resp, "401", error_ref("no valid token"));
		json_object_set_new(resp, "403", error_ref("the token's role may not do this"));
	} else {
		json_object_set_new(op, "security", json_array());
	}
	json_object_set_new(resp, "default",
			    (r->flags & PL_ROUTE_RPC_ERRORS) ?
				    json_deep_copy(json_object_get(resp, "400")) :
				    error_ref("an error"));
	json_object_set_new(op, "responses", resp);
	return op;
}

json_t *
pl_serve_openapi(const struct pl_serve *sv)
{
	json_t *paths = json_object();

	for (size_t m = 0; m < sv->nmods; m++)
		for (const struct pl_serve_route *r = sv->mods[m]->routes; r->method; r++) {
			json_t *item = json_object_get(paths, r->path);
			char low[16];
			size_t i;

			if (item == NULL) {
				item = json_object();
				json_object_set_new(paths, r->path, item);
			}
			for (i = 0; r->method[i] && i + 1 < sizeof(low); i++)
				low[i] = (char)(r->method[i] | 0x20);
			low[i] = '\0';
			json_object_set_new(item, low, operation(r));
		}
	return json_pack("{s:s,s:{s:s,s:s,s:s},s:o,s:{s:{s:o},s:{s:{s:s,s:s}}},s:[{s:[]}]}",
			 "openapi", "3.1.0", "info", "title", "pvelab", "version", PL_VERSION,
			 "description", "The REST API of pvelab serve (docs/serve.md).", "paths",
			 paths, "components", "schemas", "Error", schema(error_schema),
			 "securitySchemes", "bearer", "type", "http", "scheme", "bearer",
			 "security", "bearer");
}

/* ---- the server's own module ------------------------------------------- */

static void
get_healthz(struct pl_serve_req *req, void *arg)
{
	pl_serve_reply(req, 200, json_pack("{s:s,s:s}", "status", "ok", "version", PL_VERSION));
}

static void
get_openapi(struct pl_serve_req *req, void *arg)
{
	pl_serve_reply(req, 200, pl_serve_openapi(req->sv));
}

static void
get_events(struct pl_serve_req *req, void *arg)
{
	pl_serve_events_open(req);
}

static const struct pl_serve_route core_routes[] = {
	{ "GET", "/healthz", PL_ROLE_PUBLIC, 200, "health probe: the server answers",
	  "{\"type\":\"object\",\"required\":[\"status\"],\"properties\":{\"status\":"
	  "{\"const\":\"ok\"},\"version\":{\"type\":\"string\"}}}",
	  NULL, NULL, get_healthz, 0 },
	{ "GET", "/api/v1/openapi.json", PL_ROLE_VIEWER, 200,
	  "this document, made from the route table that dispatches the requests",
	  "{\"type\":\"object\",\"required\":[\"openapi\",\"paths\"]}", NULL, NULL, get_openapi,
	  0 },
	{ "GET", "/api/v1/events", PL_ROLE_VIEWER, 200,
	  "Server-Sent Events (text/event-stream): each has an id, a type (sync, guest, action, "
	  "reset) and JSON data; send Last-Event-ID to get what was missed",
	  "{\"type\":\"string\",\"contentMediaType\":\"text/event-stream\"}", NULL, NULL,
	  get_events, 0 },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0 },
};

const struct pl_serve_module pl_serve_core_module = { "core", core_routes, NULL };
