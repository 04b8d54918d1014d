/*
 * `pvelab help [COMMAND]`: the command list and per-command help, both read
 * from the command table.
 */
#include "core/common.h"
#include "cmd/cmd.h"

static void
print_opts(const struct pl_opt *opts, FILE *f)
{
	for (int i = 0; opts && opts[i].name; i++) {
		char left[64];

		if (opts[i].short_name)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", opts[i].short_name,
				 opts[i].name, opts[i].arg ? " " : "",
				 opts[i].arg ? opts[i].arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", opts[i].name,
				 opts[i].arg ? " " : "", opts[i].arg ? opts[i].arg : "");
		fprintf(f, "  %-28s %s\n", left, opts[i].help);
	}
}

void
pl_cmd_print_help(const struct pl_cmd *cmd, FILE *f)
{
	fprintf(f, "usage: pvelab %s%s%s\n\n%s\n", cmd->name, cmd->usage ? " " : "",
		cmd->usage ? cmd->usage : "", cmd->summary);
	if (cmd->help)
		fprintf(f, "\n%s\n", cmd->help);
	if (cmd->opts && cmd->opts[0].name) {
		fputs("\noptions:\n", f);
		print_opts(cmd->opts, f);
	}
	fputs("\nglobal options:\n", f);
	print_opts(pl_global_opts, f);
}

void
pl_cmd_print_overview(FILE *f)
{
	fputs("usage: pvelab [global options] COMMAND [options] [args]\n\n"
	      "Proxmox VE homelab as code: plan, apply, watch and serve a homelab described "
	      "in one YAML file.\n\ncommands:\n",
	      f);
	for (size_t i = 0; pl_commands[i]; i++)
		if (!(pl_commands[i]->flags & PL_CMD_HIDDEN))
			fprintf(f, "  %-14s %s\n", pl_commands[i]->name, pl_commands[i]->summary);
	fputs("\nglobal options (before or after the command):\n", f);
	print_opts(pl_global_opts, f);
	fputs("  -V, --version                print the version (before the command)\n", f);
	fputs("\nenvironment (each overrides the config key it names):\n", f);
	for (size_t i = 0; pl_env_vars[i].name; i++)
		fprintf(f, "  %-20s %s\n", pl_env_vars[i].name, pl_env_vars[i].help);
	fputs("\n'pvelab help COMMAND' shows a command's options.\n", f);
}

static json_t *
opts_json(const struct pl_opt *o)
{
	json_t *opts = json_array();

	for (int i = 0; o && o[i].name; i++) {
		json_t *j = json_pack("{s:s,s:s?,s:s}", "name", o[i].name, "arg", o[i].arg, "help",
				      o[i].help);

		if (o[i].short_name)
			json_object_set_new(j, "short", json_sprintf("%c", o[i].short_name));
		json_array_append_new(opts, j);
	}
	return opts;
}

/* One command as the table has it: what `help -o json` lists, and what
 * tests/e2e/test_015_cli_promises.py drives every command with. */
static json_t *
cmd_json(const struct pl_cmd *cmd)
{
	return json_pack("{s:s,s:s,s:s,s:o,s:i,s:i}", "name", cmd->name, "summary",
			 cmd->summary, "usage", cmd->usage ? cmd->usage : "", "options",
			 opts_json(cmd->opts), "min_args", cmd->min_args, "max_args",
			 cmd->max_args);
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	const struct pl_cmd *cmd;
	int r;

	if ((r = pl_args_parse(&a, &pl_cmd_help, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if (a.npos == 0) {
		if (ctx->output == PL_OUT_JSON) {
			json_t *all = json_array();

			for (size_t i = 0; pl_commands[i]; i++)
				if (!(pl_commands[i]->flags & PL_CMD_HIDDEN))
					json_array_append_new(all, cmd_json(pl_commands[i]));
			r = pl_print_json(all);
		} else {
			pl_cmd_print_overview(stdout);
			r = PL_EXIT_OK;
		}
	} else if ((cmd = pl_cmd_find(a.pos[0])) != NULL) {
		if (ctx->output == PL_OUT_JSON)
			r = pl_print_json(cmd_json(cmd));
		else {
			pl_cmd_print_help(cmd, stdout);
			r = PL_EXIT_OK;
		}
	} else {
		const char *s = pl_cmd_suggest(a.pos[0]);

		if (s)
			pl_error("no command '%s' (did you mean '%s'?)", a.pos[0], s);
		else
			pl_error("no command '%s' (see pvelab help)", a.pos[0]);
		r = PL_EXIT_USAGE;
	}
	return r;
}

const struct pl_cmd pl_cmd_help = {
	.name = "help",
	.summary = "list the commands, or show one command's options",
	.usage = "[COMMAND]",
	.max_args = 1,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
