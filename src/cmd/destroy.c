/*
 * `pvelab destroy [GUEST...]`: remove guests of this config's project: the
 * named ones, or every one of them pvelab.yaml declares. Unmanaged guests,
 * other projects' and legacy (pre-project) ones are refused.
 * Asks on a terminal unless --yes; without a terminal it needs --yes. Each
 * guest is backed up first (unless --no-backup), so rollback can restore it.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/guard.h"
#include "cmd/planning.h"
#include "config/config.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "model/guest.h"
#include "plan/apply.h"
#include "plan/day2.h"
#include "plan/runs.h"
#include "state/state.h"

#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "yes", 'y', NULL, "do not ask for confirmation" },
	{ "jobs", 'j', "N", "guests destroyed at once (default 4)" },
	{ "no-backup", 0, NULL, "destroy without a vzdump backup first" },
	{ NULL, 0, NULL, NULL },
};

static json_t *
delete_change(const json_t *live)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s,s:b}", "action", "delete", "guest",
			 pl_json_str_or(live, "name", ""), "type", pl_json_str_or(live, "type", "qemu"),
			 "vmid", (json_int_t)pl_json_int(live, "vmid", 0), "node", pl_json_str(live, "node"),
			 "class", "delete", "running", !strcmp(pl_json_str_or(live, "status", ""), "running"));
}

/* Is a live guest one of the config's guests (by vmid, else by name)? */
static bool
declared(const struct pl_config *cfg, const json_t *live)
{
	const json_t *g;
	size_t i;

	json_array_foreach(pl_config_guests(cfg), i, g) {
		if (json_object_get(g, "vmid") ? pl_json_int(g, "vmid", 0) == pl_json_int(live, "vmid", -1)
					       : !strcmp(pl_json_str_or(g, "name", ""), pl_json_str_or(live, "name", "")))
			return true;
	}
	return false;
}

/* Whether GUEST (live) belongs to project; else say whose it is, and the way out. */
static bool
owned(const json_t *live, const char *project, const char *guest)
{
	char *owner = NULL;
	bool ok = false;

	switch (pl_model_owner(live, &owner)) {
	case PL_OWNER_NONE:
		pl_error("refusing to destroy %lld '%s': pvelab does not manage it (no '%s' tag)",
			 pl_json_int(live, "vmid", 0), pl_json_str_or(live, "name", ""), PL_MODEL_MANAGED_TAG);
		break;
	case PL_OWNER_LEGACY:
		pl_error("refusing to destroy %lld '%s': it was made by pvelab before projects (pvelab "
			 "adopt %s claims it for project '%s')", pl_json_int(live, "vmid", 0),
			 pl_json_str_or(live, "name", ""), guest, project ? project : "?");
		break;
	case PL_OWNER_PROJECT:
		if (project && !strcmp(owner, project)) {
			ok = true;
			break;
		}
		pl_error("refusing to destroy %lld '%s': it is managed by project '%s', not '%s' (use "
			 "that project's config, or pvelab adopt %s --from %s first)",
			 pl_json_int(live, "vmid", 0), pl_json_str_or(live, "name", ""), owner,
			 project ? project : "?", guest, owner);
		break;
	}
	free(owner);
	return ok;
}

struct owner {
	struct pl_session *s;
	const char *project;
};

/* A storage destroy removed has no owner any more (the store's record). */
static void
on_record(const json_t *change, const json_t *result, void *arg)
{
	struct owner *o = arg;
	char *err = NULL;

	(void)result;
	if (pl_runs_storage_done(o->s->state, o->project, change, &err) != 0) {
		pl_warn(o->s->ctx, "%s", err);
		free(err);
	}
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_apply_opts ao = { .jobs = 4, .allow_delete = true, .max_deletes = -1 };
	struct pl_guard guard = { 0 };
	struct pl_session s;
	struct owner own;
	struct pl_args a;
	bool yes = false;
	long long jobs = 4, run_id = 0;
	json_t *snap = NULL, *plan = NULL, *changes, *result = NULL, *owned_list = NULL;
	const json_t *live;
	char *err = NULL, *project = NULL;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_destroy, ctx, argc, argv)) != 0 ||
	    (r = pl_args_num(&a, 1, 1, 64, &jobs)) != 0)
		return pl_args_exit(r);
	yes = pl_args_has(&a, 0);
	ao.jobs = (int)jobs;
	ao.no_backup = pl_args_has(&a, 2);
	if (pl_session_open(&s, ctx, PL_NEED_API | PL_NEED_STATE, &err) != 0 ||
	    pl_guard_take(&guard, &s, &err) != 0 ||
	    pl_cmd_sync_now(&s, false, false, NULL, NULL, &snap, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	/* the project: the config's, or the one a config at -c's path would have */
	project = s.cfg ? pl_strdup(pl_config_project(s.cfg)) : pl_config_default_project(ctx->config_path);
	plan = json_pack("{s:i,s:[]}", "version", 1, "changes");
	changes = json_object_get(plan, "changes");
	if (a.npos) {
		for (int k = 0; k < a.npos; k++) {
			if ((live = pl_guest_lookup(json_object_get(snap, PL_SNAP_GUESTS), a.pos[k], &err)) == NULL) {
				pl_error("%s", err);
				goto out;
			}
			if (!owned(live, project, a.pos[k]))
				goto out;
			json_array_append_new(changes, delete_change(live));
		}
	} else {
		if (s.cfg == NULL) {
			pl_error("no config file '%s': name the guests to destroy", ctx->config_path);
			goto out;
		}
		json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, live)
			if (pl_model_owned_by(live, project) && declared(s.cfg, live))
				json_array_append_new(changes, delete_change(live));
		/* and the storages, backup jobs and pools it declares and owns (day2.c) */
		json_t *owners = NULL, *kept, *more;

		if (pl_state_storage_owners(s.state, &owners, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
		kept = json_array();
		more = pl_day2_destroy(s.cfg, snap, project, owners, kept);
		json_decref(owners);

		json_array_extend(changes, more);
		json_array_foreach(kept, i, live)
			pl_error("keeping %s: %s", pl_json_str_or(live, "guest", "?"),
				 pl_json_str_or(live, "reason", "?"));
		json_decref(more);
		json_decref(kept);
	}
	if (json_array_size(changes) == 0) {
		printf("Nothing to destroy.\n");
		rc = PL_EXIT_OK;
		goto out;
	}
	if (ctx->output != PL_OUT_JSON) {
		json_array_foreach(changes, i, live)
			if (pl_day2_action(pl_json_str(live, "action")))
				printf("  %s-   destroy%s %s (%s)\n", pl_color(ctx, PL_C_RED),
				       pl_color(ctx, PL_C_RESET), pl_json_str(live, "guest"),
				       pl_json_str_or(live, "what", "?"));
			else
				printf("  %s-   destroy%s %s (%s %lld on %s)\n",
				       pl_color(ctx, PL_C_RED), pl_color(ctx, PL_C_RESET),
				       pl_json_str(live, "guest"), pl_json_str(live, "type"),
				       pl_json_int(live, "vmid", 0),
				       pl_json_str_or(live, "node", "?"));
	}
	if (!yes) {
		if (!isatty(STDIN_FILENO)) {
			pl_error("refusing to destroy without --yes when not on a terminal");
			rc = PL_EXIT_USAGE;
			goto out;
		}
		if (!pl_confirm("Destroy these guests and their disks?")) {
			pl_error("destroy cancelled; nothing was done");
			goto out;
		}
	}
	if (s.cfg)
		ao.backup_storage = json_string_value(pl_config_get(s.cfg, "/backup/storage"));
	if (pl_runs_begin(s.state, "destroy", &run_id, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	pl_runs_set_project(s.state, run_id, project, NULL);
	fflush(stdout);
	ao.stop = &guard.stop;
	own = (struct owner){ &s, project };
	ao.record = on_record;
	ao.arg = &own;
	owned_list = pl_apply_owned(snap, project);
	ao.owned = owned_list;
	pl_guard_arm(&guard);
	r = pl_apply_run(s.base, s.pve, plan, &ao, &result);
	pl_guard_over(&guard);
	json_object_set_new(result, "run", json_integer(run_id));
	json_object_set_new(result, "no_backup", json_boolean(ao.no_backup));
	pl_runs_finish(s.state, run_id, json_is_true(json_object_get(result, "stopped")) ? "interrupted"
				       : r == 0 ? "ok" : "failed", result, NULL);
	if (guard.stop < PL_APPLY_ABANDON)
		pl_cmd_sync_now(&s, false, false, NULL, NULL, NULL, NULL);
	if (ctx->output == PL_OUT_JSON)
		pl_print_json(json_incref(result));
	else if (ctx->verbosity >= 0 || pl_json_int(result, "failed", 0))
		printf("Destroyed %lld guest%s%s (run %lld%s).\n", pl_json_int(result, "ok", 0),
		       pl_json_int(result, "ok", 0) == 1 ? "" : "s",
		       pl_json_int(result, "failed", 0) ? ", some failed: see above" : "", run_id,
		       ao.no_backup ? "" : "; pvelab rollback RUN restores them from their backups");
	json_array_foreach(json_object_get(result, "changes"), i, live)
		if (pl_json_str(live, "error"))
			pl_error("%s: %s", pl_json_str(live, "guest"), pl_json_str(live, "error"));
	rc = pl_guard_exit(&guard, r == 0 ? PL_EXIT_OK : PL_EXIT_ERROR);
out:
	pl_guard_release(&guard);
	free(err);
	free(project);
	json_decref(snap);
	json_decref(owned_list);
	json_decref(plan);
	json_decref(result);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_destroy = {
	.name = "destroy",
	.summary = "destroy guests of this project (named, or all that pvelab.yaml declares)",
	.usage = "[GUEST...] [-j N] [--yes] [--no-backup]",
	.help = "Only guests tagged with this config's project (pvelab-<project>) are destroyed;\n"
		"unmanaged guests, other projects' and those made before projects are refused\n"
		"(pvelab adopt moves a guest to this project). Not limited by safety.max_deletes.\n"
		"Each guest is backed up with vzdump before it is destroyed (backup.storage,\n"
		"else 'local' or another storage with content 'backup' on its node; none: the\n"
		"guest is not destroyed) unless --no-backup; pvelab rollback RUN restores them.\n"
		"Without GUEST it also removes the backup jobs and pools the config declares and\n"
		"this project manages ([pvelab:<project>] in their comment), and the storages it\n"
		"declares that this project created or imported (pvelab's store records them)\n"
		"and no other guest uses (their data stays); others are kept, each with why.",
	.opts = opts,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
