/*
 * pvelab's MCP tools (mcp_impl.h): the table of what each command offers as
 * a tool (role, annotations, the JSON Schema of its structuredContent, its
 * positional arguments), the inputSchema made from the command's declared
 * options, and tools/list. Calls are in mcp_call.c, their work in mcp_jobs.c.
 */
#include "core/common.h"
#include "cmd/mcp_impl.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/str.h"
#include "serve/serve.h"

#define S_STR "{\"type\":\"string\"}"
#define S_STR_OR_NULL "{\"type\":[\"string\",\"null\"]}"
#define S_ITEMS(item)                                                                              \
	"{\"type\":\"object\",\"required\":[\"items\"],\"properties\":{\"items\":{\"type\":"       \
	"\"array\",\"items\":" item "}}}"
#define S_OBJ "{\"type\":\"object\"}"
#define S_GUEST                                                                                    \
	"{\"type\":\"object\",\"required\":[\"vmid\",\"type\",\"node\"],\"properties\":{"          \
	"\"vmid\":{\"type\":\"integer\"},\"name\":" S_STR_OR_NULL ","                              \
	"\"type\":{\"enum\":[\"qemu\",\"lxc\"]},\"node\":" S_STR ",\"status\":" S_STR_OR_NULL      \
	",\"tags\":" S_STR_OR_NULL "}}"

static const struct tool_info tools[] = {
	{ "status",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM | H_FAST,
	  "{\"type\":\"object\",\"required\":[\"nodes\",\"guests\"],\"properties\":{\"nodes\":"
	  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"node\",\"status\"]}},"
	  "\"guests\":{\"type\":\"object\",\"required\":[\"total\"],\"properties\":{\"total\":"
	  "{\"type\":\"integer\"}}},\"last_sync\":{\"type\":[\"object\",\"null\"]}}}",
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "list",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM | H_FAST,
	  S_ITEMS(S_GUEST),
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "describe",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  "{\"type\":\"object\",\"required\":[\"vmid\",\"type\",\"node\",\"tasks\"],\"properties\":"
	  "{\"vmid\":{\"type\":\"integer\"},\"config\":" S_OBJ ",\"tasks\":{\"type\":\"array\"}}}",
	  { { "guest", "the guest: its name or vmid", false, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "history",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM | H_FAST,
	  S_ITEMS("{\"type\":\"object\",\"required\":[\"id\",\"kind\",\"sha256\",\"ts\","
		  "\"changes\"]"
		  ",\"properties\":{\"id\":{\"type\":\"integer\"},\"kind\":{\"enum\":["
		  "\"discovered\","
		  "\"created\",\"updated\",\"deleted\"]},\"changes\":{\"type\":\"array\"}}}"),
	  { { "guest", "the guest: its name or vmid (deleted ones too)", false, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "snapshots",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  S_ITEMS("{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":" S_STR
		  "}}"),
	  { { "guest", "the guest: its name or vmid", false, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "backups",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  "{\"type\":\"object\",\"required\":[\"guests\"],\"properties\":{\"guests\":{\"type\":"
	  "\"array\"},\"storages\":{\"type\":\"array\"},\"errors\":{\"type\":\"array\"}}}",
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "doctor", PL_ROLE_VIEWER, H_RO | H_IDEM, S_OBJ, { { 0 } }, { 0 }, NULL, NULL },
	{ "check",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  S_OBJ,
	  { { "targets", "check names or guests (none: all)", true, false } },
	  { 0 },
	  NULL,
	  NULL },
	{ "validate",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  "{\"type\":\"object\",\"required\":[\"valid\",\"errors\",\"diagnostics\"],\"properties\":"
	  "{\"valid\":{\"type\":\"boolean\"},\"errors\":{\"type\":\"integer\"},\"warnings\":{"
	  "\"type\":\"integer\"},\"diagnostics\":{\"type\":\"array\"}}}",
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "plan",
	  PL_ROLE_VIEWER,
	  H_RO | H_ENGINE,
	  "{\"type\":\"object\",\"required\":[\"plan_id\",\"summary\"],\"properties\":{\"plan_id\":"
	  "{\"type\":\"string\"},\"summary\":{\"type\":\"object\"}}}",
	  { { 0 } },
	  { "out", "detailed-exitcode", "no-backup" },
	  NULL,
	  NULL },
	{ "version",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  "{\"type\":\"object\",\"required\":[\"version\"],\"properties\":{\"version\":" S_STR "}}",
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
	{ "config-schema",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM,
	  S_ITEMS("{\"type\":\"object\",\"required\":[\"path\",\"type\"]}"),
	  { { 0 } },
	  { 0 },
	  NULL,
	  NULL },
#define POWER(verb, hints)                                                                         \
	{                                                                                          \
		verb, PL_ROLE_OPERATOR, hints, S_OBJ,                                              \
			{ { "guests", "the guests: names or vmids", true, true } }, { 0 }, NULL,   \
			NULL                                                                       \
	}
	POWER("start", H_IDEM),
	POWER("stop", H_IDEM | H_DESTROY),
	POWER("shutdown", H_IDEM | H_DESTROY),
	POWER("reboot", H_DESTROY),
	POWER("suspend", H_IDEM),
	POWER("resume", H_IDEM),
	{ "snapshot",
	  PL_ROLE_OPERATOR,
	  H_ENGINE,
	  S_OBJ,
	  { { "guest", "the guest: its name or vmid", false, true },
	    { "name", "the snapshot's name", false, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "backup",
	  PL_ROLE_OPERATOR,
	  0,
	  S_OBJ,
	  { { "guests", "the guests: names or vmids", true, true } },
	  { 0 },
	  NULL,
	  NULL },
	{ "sync", PL_ROLE_OPERATOR, H_IDEM, S_OBJ, { { 0 } }, { 0 }, NULL, NULL },
	{ "apply",
	  PL_ROLE_ADMIN,
	  H_DESTROY | H_ENGINE,
	  S_OBJ,
	  { { "plan_id", "the plan_id the plan tool returned (a stale plan is refused)", false,
	      true } },
	  { "yes", "profile", "reboot", "allow-replace", "no-snapshot" },
	  NULL,
	  NULL },
	{ "rollback",
	  PL_ROLE_ADMIN,
	  H_DESTROY | H_ENGINE,
	  S_OBJ,
	  { { "run", "the run to undo (default: the newest apply)", false, false } },
	  { "yes" },
	  NULL,
	  NULL },
	{ "destroy",
	  PL_ROLE_ADMIN,
	  H_DESTROY,
	  S_OBJ,
	  { { "guests", "the guests to destroy: names or vmids", true, true },
	    { "confirm", "the guests again, comma-separated, exactly as given in guests", false,
	      true } },
	  { "yes" },
	  "guests",
	  NULL },
	/* what the CLI has no command for: the store's and the engine's own */
	{ "discovered",
	  PL_ROLE_VIEWER,
	  H_RO | H_IDEM | H_FAST,
	  S_ITEMS("{\"type\":\"object\",\"required\":[\"address\",\"kind\",\"first_seen\","
		  "\"last_seen\",\"present\"],\"properties\":{\"address\":" S_STR ",\"kind\":" S_STR
		  ",\"first_seen\":{\"type\":\"integer\"},\"last_seen\":{"
		  "\"type\":\"integer\"},\"present\":{\"type\":\"boolean\"},\"record\":{"
		  "\"type\":[\"object\",\"null\"]}}}"),
	  { { 0 } },
	  { 0 },
	  NULL,
	  "the servers pvelab discover --save found (BMCs, hypervisors, NAS...), read from the "
	  "state store: address, kind, first and last seen, whether the last scan of its "
	  "range still found it, and what its ports answered" },
	{ "snapshot-rollback",
	  PL_ROLE_ADMIN,
	  H_DESTROY | H_ENGINE,
	  S_OBJ,
	  { { "guest", "the guest: its name or vmid", false, true },
	    { "name", "the snapshot to roll back to", false, true },
	    { "confirm", "the guest again, exactly as given in guest", false, true } },
	  { 0 },
	  "guest",
	  "roll a guest back to one of its snapshots (what it is now is snapshotted first)" },
	{ "snapshot-delete",
	  PL_ROLE_OPERATOR,
	  H_DESTROY | H_IDEM | H_ENGINE,
	  S_OBJ,
	  { { "guest", "the guest: its name or vmid", false, true },
	    { "name", "the snapshot to delete", false, true } },
	  { 0 },
	  NULL,
	  "delete one snapshot of a guest" },
};

const struct tool_info *
pl_mcp_tool_find(const char *name)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(tools); i++)
		if (!strcmp(tools[i].cmd, name))
			return &tools[i];
	return NULL;
}

bool
pl_mcp_tool_skips(const struct tool_info *t, const char *opt)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(t->skip) && t->skip[i]; i++)
		if (!strcmp(t->skip[i], opt))
			return true;
	return false;
}

void
pl_mcp_prop_name(const char *opt, char *out, size_t size)
{
	size_t i;

	for (i = 0; opt[i] && i + 1 < size; i++)
		out[i] = opt[i] == '-' ? '_' : opt[i];
	out[i] = '\0';
}

/* An option's schema: flags are booleans, counts and seconds integers, a
 * metavariable "a|b" an enum, anything else a string. */
json_t *
pl_mcp_opt_schema(const struct pl_opt *o)
{
	json_t *s;

	if (o->arg == NULL)
		s = json_pack("{s:s}", "type", "boolean");
	else if (!strcmp(o->arg, "N") || !strcmp(o->arg, "SECS"))
		s = json_pack("{s:s,s:i}", "type", "integer", "minimum", 0);
	else if (strchr(o->arg, '|')) {
		json_t *e = json_array();
		char *dup = pl_strdup(o->arg), *p = dup, *bar;

		while ((bar = strchr(p, '|'))) {
			*bar = '\0';
			json_array_append_new(e, json_string(p));
			p = bar + 1;
		}
		json_array_append_new(e, json_string(p));
		free(dup);
		s = json_pack("{s:s,s:o}", "type", "string", "enum", e);
	} else
		s = json_pack("{s:s}", "type", "string");
	json_object_set_new(s, "description", json_string(o->help));
	return s;
}

json_t *
pl_mcp_cluster_names(const struct pl_mcp_host *h)
{
	const char *one = h->s->cfg ? pl_config_cluster(h->s->cfg) : NULL;
	json_t *names;

	if (h->ncl == 0)
		return one ? json_pack("[s]", one) : NULL;
	names = json_array();
	for (size_t i = 0; i < h->ncl; i++)
		json_array_append_new(names, json_string(h->cl[i].name));
	return names;
}

char *
pl_mcp_cluster_list(const struct pl_mcp_host *h)
{
	json_t *names = pl_mcp_cluster_names(h), *e;
	struct pl_buf b;
	size_t i;

	pl_buf_init(&b, 0);
	json_array_foreach(names, i, e)
		pl_buf_addf(&b, "%s%s", i ? ", " : "", json_string_value(e));
	json_decref(names);
	return pl_buf_detach(&b, NULL);
}

static json_t *
input_schema(const struct pl_mcp_host *h, const struct tool_info *t, const struct pl_cmd *cmd)
{
	json_t *names = pl_mcp_cluster_names(h);
	json_t *props = json_object(), *req = json_array();
	char name[64];

	for (size_t i = 0; i < PL_ARRAY_LEN(t->args) && t->args[i].name; i++) {
		const struct tool_arg *a = &t->args[i];

		json_object_set_new(
			props, a->name,
			a->many ? json_pack("{s:s,s:{s:s},s:i,s:s}", "type", "array", "items",
					    "type", "string", "minItems", a->required ? 1 : 0,
					    "description", a->help) :
				  json_pack("{s:s,s:s}", "type", "string", "description", a->help));
		if (a->required)
			json_array_append_new(req, json_string(a->name));
	}
	for (const struct pl_opt *o = cmd ? cmd->opts : NULL; o && o->name; o++) {
		if (pl_mcp_tool_skips(t, o->name))
			continue;
		pl_mcp_prop_name(o->name, name, sizeof(name));
		json_object_set_new(props, name, pl_mcp_opt_schema(o));
	}
	if (names) /* --cluster NAME */
		json_object_set_new(
			props, "cluster",
			json_pack("{s:s,s:o,s:s}", "type", "string", "enum", names, "description",
				  h->ncl ? "the cluster to work on (reads cover every cluster "
					   "without it; changes need it)" :
					   "the cluster (this server works on this one only)"));
	return json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties", props, "required",
			 req, "additionalProperties", 0);
}

static json_t *
tool_json(const struct pl_mcp_host *h, const struct tool_info *t, const struct pl_cmd *cmd)
{
	json_t *out = json_loads(t->output, 0, NULL);
	char title[96];

	snprintf(title, sizeof(title), "pvelab %s", t->cmd);
	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:{s:b,s:b,s:b,s:b}}", "name", t->cmd, "title",
			 title, "description", cmd ? cmd->summary : t->summary, "inputSchema",
			 input_schema(h, t, cmd), "outputSchema", out, "annotations",
			 "readOnlyHint", !!(t->hints & H_RO), "destructiveHint",
			 !!(t->hints & H_DESTROY), "idempotentHint", !!(t->hints & H_IDEM),
			 "openWorldHint", 0);
}

json_t *
pl_mcp_tools_list(const struct pl_mcp_sess *ss)
{
	json_t *list = json_array();

	/* in the command table's order: it is the one list */
	for (const struct pl_cmd *const *c = pl_commands; *c; c++) {
		const struct tool_info *t = pl_mcp_tool_find((*c)->name);

		if (t == NULL || !((*c)->flags & (PL_CMD_MCP_READ | PL_CMD_MCP_WRITE)) ||
		    t->role > ss->role)
			continue;
		json_array_append_new(list, tool_json(ss->h, t, *c));
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(tools); i++) /* then the store's and the engine's own */
		if (tools[i].summary && tools[i].role <= ss->role)
			json_array_append_new(list, tool_json(ss->h, &tools[i], NULL));
	return json_pack("{s:o}", "tools", list);
}
