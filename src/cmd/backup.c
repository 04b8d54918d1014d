/*
 * `pvelab backup GUEST...`: a vzdump backup of each guest now, waited for,
 * through the apply executor's backup steps (the storage chosen and the new
 * archive found as before a destroy), so it retries locks the same way.
 */
#include "core/common.h"
#include "cmd/act.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/json.h"
#include "plan/apply.h"
#include "pve/client.h"

static const struct pl_opt opts[] = {
	{ "storage", 's', "NAME",
	  "storage with content 'backup' (default: backup.storage, else 'local' or the first on "
	  "the guest's node)" },
	{ "mode", 'm', "MODE", "snapshot (default), suspend or stop" },
	{ "compress", 0, "ALGO", "zstd (default), gzip, lzo or 0" },
	{ "timeout", 0, "SECS", "give up waiting for each backup after SECS (default 3600)" },
	{ "jobs", 'j', "N", "backups at once (default 1)" },
	{ NULL, 0, NULL, NULL },
};

enum { O_STORAGE, O_MODE, O_COMPRESS, O_TIMEOUT, O_JOBS };

static bool
one_of(const char *v, const char *const *ok)
{
	for (; *ok; ok++)
		if (!strcmp(v, *ok))
			return true;
	return false;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	static const char *const modes[] = { "snapshot", "suspend", "stop", NULL };
	static const char *const algos[] = { "zstd", "gzip", "lzo", "0", "1", NULL };
	struct pl_apply_opts ao = { 0 };
	struct pl_session s;
	struct pl_args a;
	const char *mode, *compress;
	long long timeout = 3600, jobs = 1, run_id;
	json_t *res = NULL, *plan = NULL, *result = NULL;
	const json_t *c;
	char *err = NULL;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_backup, ctx, argc, argv)) != 0 ||
	    (r = pl_args_num(&a, O_TIMEOUT, 1, 7 * 86400, &timeout)) != 0 ||
	    (r = pl_args_num(&a, O_JOBS, 1, 64, &jobs)) != 0)
		return pl_args_exit(r);
	mode = pl_args_str(&a, O_MODE, "snapshot");
	compress = pl_args_str(&a, O_COMPRESS, "zstd");
	if (!one_of(mode, modes))
		return pl_usage_error(&pl_cmd_backup,
				      "--mode '%s' is not snapshot, suspend or stop", mode);
	if (!one_of(compress, algos))
		return pl_usage_error(&pl_cmd_backup, "--compress '%s' is not zstd, gzip, lzo or 0",
				      compress);
	if (pl_session_open(&s, ctx, PL_NEED_API, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (pl_session_live_guests(&s, &res, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	plan = json_pack("{s:i,s:[]}", "version", 1, "changes");
	for (int k = 0; k < a.npos; k++) {
		const json_t *g = pl_guest_lookup(res, a.pos[k], &err);

		if (g == NULL) {
			pl_error("%s", err);
			goto out;
		}
		json_array_append_new(json_object_get(plan, "changes"),
				      json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s}", "action", "backup",
						"guest", pl_json_str_or(g, "name", a.pos[k]),
						"vmid", (json_int_t)pl_json_int(g, "vmid", 0),
						"node", pl_json_str_or(g, "node", ""), "type",
						pl_json_str_or(g, "type", "qemu"), "mode", mode,
						"compress", compress));
	}
	ao.jobs = (int)jobs;
	ao.task_timeout_ms = (long)timeout * 1000;
	ao.backup_storage = pl_args_str(
		&a, O_STORAGE,
		s.cfg ? json_string_value(pl_config_get(s.cfg, "/backup/storage")) : NULL);
	run_id = pl_act_run_begin(&s, "backup");
	r = pl_apply_run(s.base, s.pve, plan, &ao, &result);
	pl_act_run_end(&s, run_id, r == 0, json_incref(result));
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_incref(result));
	} else {
		json_array_foreach(json_object_get(result, "changes"), i, c) {
			if (pl_json_str(c, "backup") &&
			    !strcmp(pl_json_str_or(c, "status", ""), "ok")) {
				if (pl_chatty(ctx))
					printf("%s (%lld): backed up to %s\n",
					       pl_json_str_or(c, "guest", "?"),
					       pl_json_int(c, "vmid", 0), pl_json_str(c, "backup"));
			} else {
				pl_error("backup of '%s' (%lld) failed: %s",
					 pl_json_str_or(c, "guest", "?"), pl_json_int(c, "vmid", 0),
					 pl_json_str_or(c, "error", "not started"));
			}
		}
	}
	rc = r == 0 ? PL_EXIT_OK : PL_EXIT_ERROR;
out:
	json_decref(res);
	json_decref(plan);
	json_decref(result);
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_backup = {
	.name = "backup",
	.summary = "back a guest up now with vzdump and wait for it",
	.usage =
		"[--storage NAME] [--mode MODE] [--compress ALGO] [--timeout SECS] [-j N] GUEST...",
	.help = "Runs vzdump on the guest's node (mode snapshot unless --mode says otherwise,\n"
		"zstd) to --storage, else backup.storage of pvelab.yaml, else 'local' or the\n"
		"first storage with content 'backup' there; waits for the task and prints the\n"
		"new archive's volume id. Nothing is pruned: the storage's prune-backups\n"
		"setting is not applied (remove=0). pvelab backups lists each guest's newest.",
	.opts = opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
