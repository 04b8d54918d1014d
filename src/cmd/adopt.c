/*
 * `pvelab adopt GUEST...`: make existing guests this config's project's: tag
 * them pvelab and pvelab-<project> (keeping the user's other tags). Legacy
 * pvelab guests (made before projects) and unmanaged ones are adopted as they
 * are; taking a guest from another project needs --from naming that project.
 * Migration to projects is always this explicit command, never automatic.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/owner.h"
#include "cmd/planning.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "model/guest.h"
#include "plan/runs.h"
#include "pve/client.h"

#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "from", 0, "PROJECT", "take the guests from this project (needed for another project's)" },
	{ "yes", 'y', NULL, "do not ask for confirmation" },
	{ NULL, 0, NULL, NULL },
};

enum { O_FROM, O_YES };

int
pl_owner_tag(struct pl_session *s, const json_t *live, const char *project, char **errmsg)
{
	const char *tags = pl_json_str(json_object_get(live, "config"), "tags");
	char *norm = pl_model_tags_owned(tags ? tags : pl_json_str_or(live, "tags", ""), project);
	char *path = pl_asprintf("/nodes/%s/%s/%lld/config", pl_json_str_or(live, "node", ""),
				 pl_json_str_or(live, "type", "qemu"), pl_json_int(live, "vmid", 0));
	json_t *params = json_pack("{s:s}", "tags", norm), *data = NULL;
	int r = pl_pve_call(s->pve, "PUT", path, params, &data, errmsg);

	json_decref(params);
	json_decref(data);
	free(path);
	free(norm);
	return r;
}

char *
pl_owner_project(const struct pl_session *s, char **errmsg)
{
	char *p;

	if (s->cfg)
		return pl_strdup(pl_config_project(s->cfg));
	p = pl_config_default_project(s->ctx->config_path);
	if (p == NULL)
		pl_seterr(errmsg, PL_EINVAL, "cannot name a project from '%s' (write a config with "
			  "project: NAME, or pass -c FILE)", s->ctx->config_path);
	return p;
}

/* Whose live is now ("unmanaged", "pvelab before projects", "project 'x'"; caller
 * frees), "" when it is already this project's, or NULL with the refusal printed. */
static char *
verdict(const json_t *live, const char *project, const char *from, const char *guest)
{
	char *owner = NULL, *what = NULL;

	switch (pl_model_owner(live, &owner)) {
	case PL_OWNER_NONE:
		what = pl_strdup("unmanaged");
		break;
	case PL_OWNER_LEGACY:
		what = pl_strdup("pvelab before projects");
		break;
	case PL_OWNER_PROJECT:
		if (!strcmp(owner, project))
			what = pl_strdup("");
		else if (from && !strcmp(owner, from))
			what = pl_asprintf("project '%s'", owner);
		else if (from)
			pl_error("%lld '%s' is managed by project '%s', not '%s' (pvelab adopt %s --from %s)",
				 pl_json_int(live, "vmid", 0), pl_json_str_or(live, "name", ""), owner, from,
				 guest, owner);
		else
			pl_error("refusing to take %lld '%s' from project '%s' (pvelab adopt %s --from %s "
				 "moves it to project '%s'; that project then no longer manages it)",
				 pl_json_int(live, "vmid", 0), pl_json_str_or(live, "name", ""), owner, guest,
				 owner, project);
		break;
	}
	free(owner);
	return what;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	const char *from = NULL;
	bool yes = false;
	long long run_id = 0;
	json_t *snap = NULL, *todo, *done;
	const json_t *live;
	char *err = NULL, *project = NULL;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_adopt, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	from = pl_args_str(&a, O_FROM, NULL);
	yes = pl_args_has(&a, O_YES);
	todo = json_array();
	done = json_array();
	if (pl_session_open(&s, ctx, PL_NEED_API | PL_NEED_STATE, &err) != 0 ||
	    (project = pl_owner_project(&s, &err)) == NULL ||
	    pl_cmd_sync_now(&s, false, false, NULL, NULL, &snap, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	/* every guest checked before any is changed */
	for (int k = 0; k < a.npos; k++) {
		char *what;

		if ((live = pl_guest_lookup(json_object_get(snap, PL_SNAP_GUESTS), a.pos[k], &err)) == NULL) {
			pl_error("%s", err);
			goto out;
		}
		if ((what = verdict(live, project, from, a.pos[k])) == NULL)
			goto out;
		if (*what == '\0') {
			if (ctx->output != PL_OUT_JSON && ctx->verbosity >= 0)
				printf("  %lld %s already belongs to project '%s'\n", pl_json_int(live, "vmid", 0),
				       pl_json_str_or(live, "name", ""), project);
			free(what);
			continue;
		}
		json_array_append(todo, (json_t *)live);
		if (ctx->output != PL_OUT_JSON)
			printf("  %s~   adopt%s   %s (%s %lld on %s): %s -> project '%s'\n",
			       pl_color(ctx, PL_C_YELLOW), pl_color(ctx, PL_C_RESET),
			       pl_json_str_or(live, "name", ""), pl_json_str_or(live, "type", "qemu"),
			       pl_json_int(live, "vmid", 0), pl_json_str_or(live, "node", "?"), what, project);
		free(what);
	}
	if (json_array_size(todo) && !yes) {
		if (!isatty(STDIN_FILENO)) {
			pl_error("refusing to adopt without --yes when not on a terminal");
			rc = PL_EXIT_USAGE;
			goto out;
		}
		if (!pl_confirm("Adopt these guests?")) {
			pl_error("adopt cancelled; nothing was done");
			goto out;
		}
	}
	if (json_array_size(todo) && pl_runs_begin(s.state, "adopt", &run_id, &err) == 0)
		pl_runs_set_project(s.state, run_id, project, NULL);
	free(err);
	err = NULL;
	r = 0;
	json_array_foreach(todo, i, live) {
		if ((r = pl_owner_tag(&s, live, project, &err)) != 0) {
			pl_error("cannot tag %lld '%s': %s", pl_json_int(live, "vmid", 0),
				 pl_json_str_or(live, "name", ""), err);
			break;
		}
		json_array_append_new(done, json_pack("{s:I,s:s,s:s,s:s?}", "vmid",
						      (json_int_t)pl_json_int(live, "vmid", 0), "name",
						      pl_json_str_or(live, "name", ""), "type",
						      pl_json_str_or(live, "type", "qemu"), "node",
						      pl_json_str(live, "node")));
	}
	if (run_id) {
		json_t *res = json_pack("{s:s,s:O}", "project", project, "adopted", done);

		pl_runs_finish(s.state, run_id, r == 0 ? "ok" : "failed", res, NULL);
		json_decref(res);
	}
	free(err);
	err = NULL;
	if (json_array_size(done) && pl_cmd_sync_now(&s, false, false, NULL, NULL, NULL, &err) != 0)
		pl_warn(ctx, "adopted, but the refresh afterwards failed: %s", err);
	if (ctx->output == PL_OUT_JSON)
		pl_print_json(json_pack("{s:s,s:O}", "project", project, "adopted", done));
	else if (json_array_size(done) && ctx->verbosity >= 0)
		printf("Adopted %zu guest%s for project '%s'. adopt does not change %s: a guest it "
		       "does not declare plans as a delete (pvelab import GUEST --out %s --merge "
		       "adds it).\n", json_array_size(done), json_array_size(done) == 1 ? "" : "s",
		       project, ctx->config_path, ctx->config_path);
	rc = r == 0 ? PL_EXIT_OK : PL_EXIT_ERROR;
out:
	free(err);
	free(project);
	json_decref(snap);
	json_decref(todo);
	json_decref(done);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_adopt = {
	.name = "adopt",
	.summary = "make existing guests this config's project's (tag pvelab-<project>)",
	.usage = "GUEST... [--from PROJECT] [--yes]",
	.help = "GUEST is a vmid or a name. Sets the guest's tags to include pvelab and\n"
		"pvelab-<project> (this config's project:), keeping its other tags. Guests\n"
		"made by pvelab before projects (tagged only pvelab) and unmanaged guests are\n"
		"adopted as they are; a guest of another project only with --from PROJECT\n"
		"naming it. Adopt does not add the guest to the config: a declared one plans\n"
		"as before, an undeclared one would be deleted by the next apply --allow-delete\n"
		"(pvelab import GUEST --out FILE --merge writes its YAML).\n"
		"Without a terminal it needs --yes.",
	.opts = opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
