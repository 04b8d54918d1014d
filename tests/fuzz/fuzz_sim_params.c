/*
 * libFuzzer harness for the simulator's request parameter validation: the
 * first line is an API path (routed over the PVE 9.1 schema), the rest is
 * either a JSON object body or "key=value" lines, validated as a POST (or
 * GET when the path has no POST).
 */
#include "core/common.h"

#include <jansson.h>

#include "core/err.h"
#include "core/json.h"
#include "sim/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pl_sim_schema *schema;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *nl, *line;
	const struct pl_sim_path *p;
	const struct pl_sim_method *m = NULL;
	json_t *vars = NULL, *params, *errors;
	const char *k;
	json_t *v;

	if (!schema && (schema = pl_sim_schema_load("9.1", NULL)) == NULL)
		return 0;
	if (size > 65536)
		return 0;
	text = pl_strndup((const char *)data, size);
	nl = strchr(text, '\n');
	if (nl)
		*nl = 0;
	p = pl_sim_route(schema, text, &vars);
	if (p)
		for (int i = PL_SIM_POST; i >= PL_SIM_GET && !m; i--)
			m = p->methods[i];
	if (!m) {
		for (int i = 0; i < PL_SIM_NMETH && !m; i++)
			m = p ? p->methods[i] : NULL;
	}
	if (!m) {
		json_decref(vars);
		free(text);
		return 0;
	}
	params = json_deep_copy(vars);
	if (nl && nl[1] == '{') {
		json_t *body = pl_json_parse(nl + 1, strlen(nl + 1), NULL);

		json_object_foreach(body, k, v) {
			char *t = pl_api_value_text(v);

			if (t)
				json_object_set_new(params, k, json_string(t));
			free(t);
		}
		json_decref(body);
	} else {
		for (line = nl ? nl + 1 : NULL; line && *line;) {
			char *end = strchr(line, '\n'), *eq;

			if (end)
				*end = 0;
			if ((eq = strchr(line, '=')) != NULL) {
				*eq = 0;
				json_t *s = json_string(eq + 1); /* NULL if not UTF-8 */

				if (s)
					json_object_set_new(params, line, s);
			}
			line = end ? end + 1 : NULL;
		}
	}
	errors = json_object();
	pl_sim_validate(m, params, errors);
	json_decref(errors);
	json_decref(params);
	json_decref(vars);
	free(text);
	return 0;
}
