/*
 * `pvelab state migrate --to DEST`: copy the whole state store (the one the
 * config, state: or PVELAB_STATE names) into another, SQLite file or
 * PostgreSQL database, either way; resumable, verified by row counts and the
 * history's hash chain (docs/team-setup.md).
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/err.h"
#include "core/json.h"
#include "state/state.h"

static const struct pl_opt opts[] = {
	{ "to", 't', "STATE",
	  "where to copy it: postgresql://... (libpq's URI or key=value) or a "
	  "SQLite file" },
	{ NULL, 0, NULL, NULL },
};

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_state *to = NULL;
	struct pl_args a;
	const char *dest;
	json_t *rep = NULL, *t;
	const char *name;
	char *err = NULL;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_state, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if (strcmp(a.pos[0], "migrate"))
		return pl_usage_error(&pl_cmd_state,
				      "unknown action '%s' (state migrate --to STATE)", a.pos[0]);
	if ((dest = pl_args_str(&a, 0, NULL)) == NULL || !*dest)
		return pl_usage_error(&pl_cmd_state, "state migrate needs --to STATE");
	if (pl_session_open(&s, ctx, PL_NEED_STATE, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (!strcmp(dest, s.state_path)) {
		pl_error("state migrate: --to names the store it copies from ('%s')", dest);
		goto out;
	}
	if (pl_state_open(dest, &to, &err) != 0 || pl_state_copy(s.state, to, &rep, &err) != 0) {
		pl_error("state migrate: %s", err);
		goto out;
	}
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_incref(rep));
	} else {
		json_object_foreach(json_object_get(rep, "tables"), name, t)
			if (pl_chatty(ctx))
				printf("%-17s %7lld rows (%lld copied now)\n", name,
				       pl_json_int(t, "target", 0), pl_json_int(t, "copied", 0));
		printf("copied to %s: row counts and the history's hash chain (%.16s) match\n",
		       pl_state_is_postgres(to) ? "PostgreSQL" : "SQLite",
		       pl_json_str_or(rep, "history_chain", "?"));
	}
	rc = PL_EXIT_OK;
out:
	json_decref(rep);
	pl_state_close(to);
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_state = {
	.name = "state",
	.summary = "copy the state store to PostgreSQL or to a SQLite file",
	.usage = "migrate --to STATE",
	.help = "Copies everything the store holds (runs, guests, history, tasks, discovered\n"
		"hosts, API tokens, check events and silences; not a running apply's lock)\n"
		"from the store in use into STATE, table by table in transactions of 2,000\n"
		"rows: run it again after an interruption and it goes on where it stood.\n"
		"Then it compares every table's row count and a hash chain over the whole\n"
		"history on both sides. Point state: (or PVELAB_STATE) at STATE afterwards.\n"
		"A password belongs in ~/.pgpass or PGPASSFILE. docs/team-setup.md.",
	.opts = opts,
	.min_args = 1,
	.max_args = 1,
	.run = run,
};
