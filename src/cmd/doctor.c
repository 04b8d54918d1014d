/*
 * `pvelab doctor`: what the configured token may do, read from its effective
 * permissions (GET /access/permissions), against what pvelab's commands need;
 * each missing privilege named with its path and the `pveum acl modify` line
 * that grants it.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/json.h"
#include "pve/client.h"
#include "pve/resp.h"

/* What pvelab's commands need, on the top-level paths PVE always lists. */
static const struct need {
	const char *what, *path, *priv;
} needs[] = {
	{ "sync: read the guests", "/vms", "VM.Audit" },
	{ "sync: read the nodes", "/nodes", "Sys.Audit" },
	{ "sync: read the storages", "/storage", "Datastore.Audit" },
	{ "start/stop/shutdown guests", "/vms", "VM.PowerMgmt" },
	{ "apply: create guests", "/vms", "VM.Allocate" },
	{ "apply: change guest configs", "/vms", "VM.Config.Options" },
	{ "apply: disks", "/storage", "Datastore.AllocateSpace" },
	{ "snapshots", "/vms", "VM.Snapshot" },
	{ "backups", "/vms", "VM.Backup" },
	{ "pools", "/pool", "Pool.Allocate" },
	{ "bridges, node network", "/nodes", "Sys.Modify" },
};

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	json_t *perms = NULL, *out = NULL, *v;
	char *err = NULL, *tok = NULL;
	int r, rc = PL_EXIT_ERROR, missing = 0, partial;
	size_t i;

	if ((r = pl_args_parse(&a, &pl_cmd_doctor, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	out = json_array();
	if (pl_session_open(&s, ctx, PL_NEED_API, &err) != 0 ||
	    pl_pve_call(s.pve, "GET", "/access/permissions", NULL, &perms, &err) != 0) {
		pl_error("doctor: cannot read the token's permissions: %s", err);
		goto out;
	}
	tok = pl_pve_token_id(s.pve);
	/* paths below the top level where the token has something (pools, guests) */
	partial = 0;
	{
		const char *k;

		json_object_foreach(perms, k, v)
			if (!strncmp(k, "/vms/", 5) || !strncmp(k, "/pool/", 6))
				partial++;
	}
	for (i = 0; i < PL_ARRAY_LEN(needs); i++) {
		const struct need *n = &needs[i];
		bool ok = json_object_get(json_object_get(perms, n->path), n->priv) != NULL;
		char *fix = ok ? NULL :
				 pl_asprintf("pveum acl modify %s %s '%s' --roles %s", n->path,
					     tok ? "--tokens" : "--users", tok ? tok : "USER@REALM",
					     pl_pve_role_for(n->priv));

		missing += !ok;
		json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:b,s:s?}", "check", n->what,
						     "path", n->path, "privilege", n->priv, "ok",
						     ok, "fix", fix));
		free(fix);
	}
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_pack("{s:s?,s:O,s:i,s:o}", "token", tok, "permissions", perms,
					"missing", missing, "checks", out));
		out = NULL;
	} else {
		printf("token: %s\n", tok ? tok : "(password login)");
		json_array_foreach(out, i, v) {
			bool ok = json_is_true(json_object_get(v, "ok"));

			printf("%s%-7s%s %-28s %s on %s%s%s\n",
			       pl_color(ctx, ok ? PL_C_GREEN : PL_C_YELLOW), ok ? "ok" : "missing",
			       pl_color(ctx, PL_C_RESET), pl_json_str(v, "check"),
			       pl_json_str(v, "privilege"), pl_json_str(v, "path"), ok ? "" : ": ",
			       ok ? "" : pl_json_str(v, "fix"));
		}
		if (missing && partial)
			printf("the token has privileges on %d pool or guest path%s: what it "
			       "cannot see there is kept as last synced, not deleted "
			       "(docs/cluster.md)\n",
			       partial, partial == 1 ? "" : "s");
	}
	rc = missing ? PL_EXIT_ERROR : PL_EXIT_OK;
out:
	json_decref(out);
	json_decref(perms);
	free(tok);
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_doctor = {
	.name = "doctor",
	.summary = "say what the API token may do and which privileges pvelab lacks",
	.usage = "",
	.help = "Reads the token's effective permissions (GET /access/permissions) and checks\n"
		"them against what pvelab's commands need on /vms, /nodes, /storage and /pool.\n"
		"Each missing privilege is named with its path and the 'pveum acl modify' line\n"
		"(smallest built-in role holding it) that grants it. Exit status 1 when\n"
		"anything is missing.",
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
