/*
 * pvelab's MCP resources (the cluster, the config, the latest plan, each
 * guest) with their subscriptions, and its prompts (mcp_tools.h). A
 * subscription is kept by comparing, every poll, what the resource would
 * answer with what the session was last told.
 */
#include "core/common.h"
#include "cmd/mcp_tools.h"
#include "cmd/connect.h"
#include "cmd/views.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/str.h"
#include "plan/runs.h"
#include "serve/runs.h"

#include <time.h>

/* ---- resources ------------------------------------------------------- */

#define PL_MCP_GUEST_URI "pvelab://guest/"

static json_t *
resource(const char *uri, const char *name, const char *title, const char *mime, const char *desc)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s}", "uri", uri, "name", name, "title", title,
			 "mimeType", mime, "description", desc);
}

#define PAGE 500

int
pl_mcp_resources_list(struct pl_mcp_sess *ss, const json_t *params, json_t **res, char **errmsg)
{
	const char *cursor = pl_json_str(params, "cursor");
	struct pl_view_list f = { 0 };
	long long from = 0;
	json_t *list = json_array(), *guests = NULL, *g;
	size_t i;
	int r;

	if (cursor && (pl_str_to_ll(cursor, 0, 1LL << 40, &from) != 0)) {
		json_decref(list);
		*errmsg = pl_strdup("invalid cursor (give back a nextCursor as it came)");
		return PL_RPC_INVALID_PARAMS;
	}
	if (from == 0) {
		json_array_append_new(list, resource("pvelab://cluster", "cluster", "The cluster",
						     "application/json",
						     "nodes and guest counts as last synced "
						     "(pvelab status -o json)"));
		if (ss->h->s->cfg)
			json_array_append_new(
				list, resource("pvelab://config", "config", "The declared config",
					       "application/yaml",
					       "the homelab config file pvelab plans from"));
		if (ss->h->latest_plan)
			json_array_append_new(list,
					      resource("pvelab://plan/latest", "plan-latest",
						       "The latest plan", "application/json",
						       "the newest plan made through MCP, with its "
						       "plan_id"));
	}
	if ((r = pl_view_list(ss->h->s->state, &f, NULL, &guests, errmsg)) != 0) {
		json_decref(list);
		return PL_RPC_INTERNAL;
	}
	for (i = (size_t)from; i < json_array_size(guests) && i < (size_t)from + PAGE; i++) {
		char uri[160], title[160];
		const char *name;

		g = json_array_get(guests, i);
		name = pl_json_str(g, "name");
		if (name)
			snprintf(uri, sizeof(uri), PL_MCP_GUEST_URI "%.100s", name);
		else
			snprintf(uri, sizeof(uri), PL_MCP_GUEST_URI "%lld",
				 pl_json_int(g, "vmid", 0));
		snprintf(title, sizeof(title), "%s %lld (%.80s)",
			 !strcmp(pl_json_str_or(g, "type", ""), "lxc") ? "CT" : "VM",
			 pl_json_int(g, "vmid", 0), name ? name : "no name");
		json_array_append_new(list, resource(uri, uri + strlen(PL_MCP_GUEST_URI), title,
						     "application/json",
						     "the guest's config and live state"));
	}
	*res = json_pack("{s:o}", "resources", list);
	if (i < json_array_size(guests))
		json_object_set_new(*res, "nextCursor", json_sprintf("%zu", i));
	json_decref(guests);
	return 0;
}

/* The text of a resource: 0 with *text and *mime, or a JSON-RPC code. */
static int
resource_text(struct pl_mcp_sess *ss, const char *uri, char **text, const char **mime,
	      char **errmsg)
{
	struct pl_mcp_host *h = ss->h;
	json_t *v = NULL;
	int r;

	*mime = "application/json";
	if (!strcmp(uri, "pvelab://cluster")) {
		r = pl_view_status(h->s->state, &v, errmsg);
	} else if (!strcmp(uri, "pvelab://config") && h->s->cfg) {
		struct pl_buf b;

		pl_buf_init(&b, 16 << 20);
		if (pl_file_read(h->s->ctx->config_path, &b, errmsg) != 0) {
			pl_buf_release(&b);
			return PL_RPC_INTERNAL;
		}
		pl_buf_addch(&b, '\0');
		*text = pl_buf_detach(&b, NULL);
		*mime = "application/yaml";
		return 0;
	} else if (!strcmp(uri, "pvelab://plan/latest") && h->latest_plan && h->runs &&
		   (v = pl_serve_plan_get(h->runs, h->latest_plan)) != NULL) {
		json_t *plan = json_incref(json_object_get(v, "plan"));

		json_object_set_new(plan, "plan_id", json_string(h->latest_plan));
		json_decref(v);
		v = plan;
		r = 0;
	} else if (!strncmp(uri, PL_MCP_GUEST_URI, strlen(PL_MCP_GUEST_URI)) &&
		   uri[strlen(PL_MCP_GUEST_URI)]) {
		r = pl_view_describe(h->s, uri + strlen(PL_MCP_GUEST_URI), false,
				     h->live_by_id ? *h->live_by_id : NULL, &v, NULL, errmsg);
		if (r == PL_ENOENT)
			return PL_RPC_NOT_FOUND;
	} else {
		free(*errmsg);
		*errmsg = pl_asprintf("Resource not found: '%.200s'", uri);
		return PL_RPC_NOT_FOUND;
	}
	if (r != 0)
		return PL_RPC_INTERNAL;
	*text = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(v);
	return 0;
}

int
pl_mcp_resources_read(struct pl_mcp_sess *ss, const json_t *params, json_t **res, char **errmsg)
{
	const char *uri = pl_json_str(params, "uri"), *mime;
	char *text = NULL;
	int r;

	if (uri == NULL) {
		*errmsg = pl_strdup("resources/read needs params.uri (a string)");
		return PL_RPC_INVALID_PARAMS;
	}
	if ((r = resource_text(ss, uri, &text, &mime, errmsg)) != 0)
		return r;
	*res = json_pack("{s:[{s:s,s:s,s:s}]}", "contents", "uri", uri, "mimeType", mime, "text",
			 text);
	free(text);
	return 0;
}

#define MAX_SUBS 256

int
pl_mcp_subscribe(struct pl_mcp_sess *ss, const json_t *params, bool on, json_t **res, char **errmsg)
{
	const char *uri = pl_json_str(params, "uri"), *mime;
	char *text = NULL, sha[65];
	int r;

	if (uri == NULL) {
		*errmsg = pl_strdup("needs params.uri (a string)");
		return PL_RPC_INVALID_PARAMS;
	}
	if (!on) {
		json_object_del(ss->subs, uri);
		*res = json_object();
		return 0;
	}
	if (json_object_size(ss->subs) >= MAX_SUBS && !json_object_get(ss->subs, uri)) {
		*errmsg = pl_asprintf("at most %d subscriptions in one session", MAX_SUBS);
		return PL_RPC_INVALID_PARAMS;
	}
	if ((r = resource_text(ss, uri, &text, &mime, errmsg)) != 0)
		return r;
	pl_sha256_hex(text, strlen(text), sha);
	free(text);
	json_object_set_new(ss->subs, uri, json_string(sha));
	*res = json_object();
	return 0;
}

/* Tell each session of the subscribed resources whose content changed. */
void
pl_mcp_poll(evutil_socket_t fd, short what, void *arg)
{
	struct pl_mcp_host *h = arg;

	for (struct pl_mcp_sess *ss = h->sessions; ss; ss = ss->next) {
		const char *uri, *mime;
		json_t *old, *changed = json_array();
		size_t i;

		json_object_foreach(ss->subs, uri, old) {
			char *text = NULL, *err = NULL, sha[65];

			if (resource_text(ss, uri, &text, &mime, &err) == 0)
				pl_sha256_hex(text, strlen(text), sha);
			else
				snprintf(sha, sizeof(sha), "gone");
			if (strcmp(sha, json_string_value(old)) != 0) {
				json_string_set(old, sha);
				json_array_append_new(changed, json_string(uri));
			}
			free(text);
			free(err);
		}
		json_array_foreach(changed, i, old)
			pl_mcp_notify(ss->m, "notifications/resources/updated",
				      json_pack("{s:O}", "uri", old));
		json_decref(changed);
	}
}

/* ---- prompts --------------------------------------------------------- */

json_t *
pl_mcp_prompts_list(void)
{
	return json_pack(
		"{s:[{s:s,s:s,s:s,s:[{s:s,s:s,s:b}]},{s:s,s:s,s:s,s:[{s:s,s:s,s:b}]},"
		"{s:s,s:s,s:s,s:[{s:s,s:s,s:b}]}]}",
		"prompts", "name", "what-changed", "title", "What changed lately", "description",
		"what changed in the homelab in the last hours (default 24)", "arguments", "name",
		"hours", "description", "how many hours back (default 24)", "required", 0, "name",
		"why-not-running", "title", "Why is a guest not running", "description",
		"diagnose a guest that is not running, from its state and tasks", "arguments",
		"name", "guest", "description", "the guest: its name or vmid", "required", 1,
		"name", "plan-change", "title", "Plan a change safely", "description",
		"make a change through validate, plan and an approved apply", "arguments", "name",
		"change", "description", "the change wanted, in words", "required", 1);
}

static json_t *
prompt_msg(char *text)
{
	json_t *r = json_pack("{s:[{s:s,s:{s:s,s:s}}]}", "messages", "role", "user", "content",
			      "type", "text", "text", text);

	free(text);
	return r;
}

int
pl_mcp_prompts_get(struct pl_mcp_sess *ss, const json_t *params, json_t **res, char **errmsg)
{
	const char *name = pl_json_str(params, "name");
	const json_t *args = json_object_get(params, "arguments");
	json_t *v = NULL;
	char *text;
	int r;

	if (name && !strcmp(name, "what-changed")) {
		const char *hs = pl_json_str(args, "hours");
		long long hours = 24;
		json_t *recent = json_array(), *run;
		size_t i;

		if (hs && pl_str_to_ll(hs, 1, 24 * 365, &hours) != 0) {
			json_decref(recent);
			*errmsg = pl_strdup("hours is a number of hours from 1 to 8760");
			return PL_RPC_INVALID_PARAMS;
		}
		if ((r = pl_runs_list(ss->h->s->state, NULL, 200, &v, errmsg)) != 0) {
			json_decref(recent);
			return PL_RPC_INTERNAL;
		}
		json_array_foreach(v, i, run)
			if (pl_json_num(run, "started", 0) >= (double)time(NULL) - hours * 3600.0)
				json_array_append(recent, run);
		text = pl_json_compact(recent);
		*res = prompt_msg(pl_asprintf(
			"What changed in my Proxmox VE homelab in the last %lld hours? These are "
			"pvelab's runs (syncs, applies, rollbacks) since then, newest first:\n%s\n"
			"Summarise what changed and who changed it. For a guest's details call the "
			"history tool with its name; the list tool shows where each guest is now.",
			hours, text));
		free(text);
		json_decref(recent);
		json_decref(v);
		return 0;
	}
	if (name && !strcmp(name, "why-not-running")) {
		const char *guest = pl_json_str(args, "guest");

		if (guest == NULL) {
			*errmsg = pl_strdup("why-not-running needs the argument guest");
			return PL_RPC_INVALID_PARAMS;
		}
		r = pl_view_describe(ss->h->s, guest, false,
				     ss->h->live_by_id ? *ss->h->live_by_id : NULL, &v, NULL,
				     errmsg);
		if (r != 0)
			return r == PL_ENOENT ? PL_RPC_INVALID_PARAMS : PL_RPC_INTERNAL;
		text = pl_json_compact(v);
		*res = prompt_msg(pl_asprintf(
			"Why is the guest '%.100s' not running? Its config, state and recent tasks "
			"as pvelab last saw them:\n%s\nLook at the failed tasks, locks, its node's "
			"status (the status tool) and its history (the history tool); say what is "
			"wrong and what to do. Do not start it without asking me.",
			guest, text));
		free(text);
		json_decref(v);
		return 0;
	}
	if (name && !strcmp(name, "plan-change")) {
		const char *change = pl_json_str(args, "change");

		if (change == NULL) {
			*errmsg = pl_strdup("plan-change needs the argument change");
			return PL_RPC_INVALID_PARAMS;
		}
		*res = prompt_msg(pl_asprintf(
			"I want this change in my homelab: %.2000s\nDo it safely with pvelab: "
			"propose the edit to the declared config (the resource pvelab://config), "
			"call validate, then plan, and show me the plan: every change, its steps "
			"and "
			"its way back. Call apply with the plan's plan_id only after I say yes; "
			"never "
			"destroy or roll back anything I did not name.",
			change));
		return 0;
	}
	*errmsg =
		pl_asprintf("Unknown prompt '%.100s' (prompts/list lists them)", name ? name : "");
	return PL_RPC_INVALID_PARAMS;
}
