/*
 * `pvelab validate`: load pvelab.yaml, check it against the declared schema
 * and its own consistency, and print every problem at once as
 * file:line:col: level: key: message.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/err.h"
#include "plan/check.h"
#include "plan/templates.h"
#include "state/state.h"


static const struct pl_opt opts[] = {
	{ "live", 0, NULL, "sync the cluster first and check references against it" },
	{ "offline", 0, NULL, "do not check references against the state database" },
	{ NULL, 0, NULL, NULL },
};

enum { O_LIVE, O_OFFLINE };

/* The cluster as the state store last saw it (after a sync with --live), or
 * NULL when there is none yet: validate also works before the first sync. */
static json_t *
cluster_of(struct pl_ctx *ctx, const struct pl_config *cfg, bool live, struct pl_diags *d)
{
	struct pl_session s;
	json_t *c = NULL, *nodes = NULL, *storages = NULL, *bridges = NULL, *guests = NULL;
	char *err = NULL;
	int r = pl_session_read(&s, ctx, live, &err);

	if (r != 0) {
		if (live || r != PL_ENOENT)
			pl_diags_add(d, live ? PL_DIAG_ERROR : PL_DIAG_WARNING, NULL, 0, 0, NULL,
				     "cannot check against the cluster: %s", err);
		free(err);
		pl_session_close(&s);
		return NULL;
	}
	if (pl_state_nodes(s.state, &nodes, NULL) == 0 && pl_state_storages(s.state, &storages, NULL) == 0 &&
	    pl_state_bridges(s.state, &bridges, NULL) == 0 && pl_state_guests(s.state, &guests, NULL) == 0 &&
	    json_array_size(nodes) > 0)
		c = json_pack("{s:O,s:O,s:O,s:O}", "nodes", nodes, "storages", storages, "bridges", bridges,
			      "guests", guests);
	/* which templates are on which node, and what aplinfo offers: only
	 * the cluster can say (a handful of calls) */
	if (c && live)
		pl_templates_fetch(s.pve, cfg, c, true);
	json_decref(nodes);
	json_decref(storages);
	json_decref(bridges);
	json_decref(guests);
	pl_session_close(&s);
	return c;
}

/* Check cfg's references against each cluster it covers (--cluster's, or
 * every one), each cluster's part of the config against its own state;
 * whether one could be checked. */
static bool
check_clusters(struct pl_ctx *ctx, struct pl_config *cfg, bool live, struct pl_diags *d)
{
	const json_t *all = pl_config_clusters(cfg);
	char **cls = NULL;
	size_t n = pl_cmd_clusters(ctx, &cls);
	bool checked = false;

	for (size_t i = 0; i < n; i++) {
		struct pl_ctx one = *ctx;
		struct pl_config *view = cfg;
		struct pl_diags ignored; /* cfg's own, reported already */
		const char *name = cls[i] ? cls[i] : ctx->cluster;
		char *err = NULL;
		json_t *cluster;

		if (all && name == NULL) /* its only one */
			name = json_object_iter_key(json_object_iter((json_t *)all));
		one.cluster = name;
		if (all) {
			pl_diags_init(&ignored);
			pl_config_load(pl_config_path(cfg), &view, &ignored);
			pl_diags_release(&ignored);
			if (view == NULL || pl_config_select_cluster(view, name, &err) != 0) {
				pl_diags_add(d, PL_DIAG_ERROR, NULL, 0, 0, NULL, "%s",
					     err ? err : "the config changed while it was read");
				free(err);
				pl_config_free(view);
				continue;
			}
		}
		size_t before = d->n;

		if ((cluster = cluster_of(&one, view, live, d)) != NULL)
			pl_plan_check_cluster(view, cluster, d);
		for (size_t k = before; all && k < d->n; k++) { /* which cluster said so */
			char *m = pl_asprintf("cluster '%s': %s", name, d->items[k].msg);

			free(d->items[k].msg);
			d->items[k].msg = m;
		}
		checked |= cluster != NULL;
		json_decref(cluster);
		if (view != cfg)
			pl_config_free(view);
	}
	pl_cmd_clusters_free(cls, n);
	return checked;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_config *cfg = NULL;
	struct pl_diags d;
	struct pl_args a;
	int r;

	bool live = false, offline = false, checked = false;

	if ((r = pl_args_parse(&a, &pl_cmd_validate, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	live = pl_args_has(&a, O_LIVE);
	offline = pl_args_has(&a, O_OFFLINE);
	const char *path = a.npos ? a.pos[0] : ctx->config_path;

	pl_diags_init(&d);
	pl_config_load(path, &cfg, &d);
	if (cfg)
		pl_config_check(cfg, &d);
	if (cfg && d.nerrors == 0 && !offline) {
		ctx->config_path = path;
		checked = check_clusters(ctx, cfg, live, &d);
	}
	pl_diags_sort(&d);
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_pack("{s:s,s:s?,s:b,s:i,s:i,s:o}", "file", path, "project",
					cfg ? pl_config_project(cfg) : NULL, "valid", d.nerrors == 0,
					"errors", (int)d.nerrors, "warnings", (int)d.nwarnings,
					"diagnostics", pl_diags_json(&d)));
	} else {
		for (size_t i = 0; i < d.n; i++) {
			char *line = pl_diag_line(&d.items[i]);

			fprintf(stderr, "%s\n", line);
			free(line);
		}
		if (d.nerrors == 0 && ctx->verbosity >= 0)
			printf("%s: valid (%zu guest%s, project '%s', %zu warning%s%s)\n", path,
			       cfg ? json_array_size(pl_config_guests(cfg)) : 0,
			       cfg && json_array_size(pl_config_guests(cfg)) == 1 ? "" : "s",
			       cfg ? pl_config_project(cfg) : "?", d.nwarnings,
			       d.nwarnings == 1 ? "" : "s",
			       checked ? "; checked against the cluster" : "");
		else if (d.nerrors && !(cfg == NULL && d.n == 1)) /* not after "cannot open" */
			fprintf(stderr, "%s: %zu error%s, %zu warning%s\n", path, d.nerrors,
				d.nerrors == 1 ? "" : "s", d.nwarnings, d.nwarnings == 1 ? "" : "s");
	}
	r = d.nerrors ? PL_EXIT_ERROR : PL_EXIT_OK;
	pl_diags_release(&d);
	pl_config_free(cfg);
	return r;
}

const struct pl_cmd pl_cmd_validate = {
	.name = "validate",
	.summary = "check pvelab.yaml and report every problem with file:line:col",
	.usage = "[FILE] [--live | --offline]",
	.help = "Checks types, ranges and unknown keys against the declared schema (see\n"
		"docs/config.md), then duplicate names, vmids, IPs and MACs, a host port a guest\n"
		"publishes twice, vmids outside their category's range, raw config: keys and\n"
		"values against the official\n"
		"Proxmox VE API schema, and secrets' environment variables (password_env) that\n"
		"are not set. When a state database exists (pvelab sync), or with --live, also\n"
		"nodes, storages, bridges and clone templates that do not exist, storages without\n"
		"the content type a volume needs (images, rootdir, vztmpl, iso) or not on the\n"
		"guest's node, containers declared by vmid that do not exist, guests larger\n"
		"than their node, and nodes whose running guests (this config's where they will\n"
		"run, and the others there) need more memory than the node has (warnings).\n"
		"Only --live asks the cluster which LXC templates are\n"
		"on its storages or downloadable (aplinfo).\n"
		"It names the config's project (project:, by default the file's name, or the\n"
		"directory's for pvelab.yaml): the tag pvelab-<project> marks its guests.",
	.opts = opts,
	.max_args = 1,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
