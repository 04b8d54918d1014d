/*
 * `pvelab validate`: load pvelab.yaml, check it against the declared schema
 * and its own consistency, and print every problem at once as
 * file:line:col: level: key: message.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "config/config.h"

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_config *cfg = NULL;
	struct pl_diags d;
	struct pl_args a;
	int r;

	pl_args_init(&a, &pl_cmd_validate, ctx, argc, argv);
	r = pl_args_next(&a);
	if (r != PL_ARGS_END) {
		pl_args_release(&a);
		return pl_args_exit(r);
	}
	if (a.npos > 1) {
		pl_args_release(&a);
		return pl_usage_error(&pl_cmd_validate, "takes at most one file");
	}
	const char *path = a.npos ? a.pos[0] : ctx->config_path;

	pl_diags_init(&d);
	pl_config_load(path, &cfg, &d);
	if (cfg)
		pl_config_check(cfg, &d);
	pl_diags_sort(&d);
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_pack("{s:s,s:b,s:i,s:i,s:o}", "file", path, "valid",
					d.nerrors == 0, "errors", (int)d.nerrors, "warnings",
					(int)d.nwarnings, "diagnostics", pl_diags_json(&d)));
	} else {
		for (size_t i = 0; i < d.n; i++) {
			char *line = pl_diag_line(&d.items[i]);

			fprintf(stderr, "%s\n", line);
			free(line);
		}
		if (d.nerrors == 0 && ctx->verbosity >= 0)
			printf("%s: valid (%zu guests%s%zu warnings)\n", path,
			       cfg ? json_array_size(pl_config_guests(cfg)) : 0, ", ",
			       d.nwarnings);
		else if (d.nerrors)
			fprintf(stderr, "%s: %zu error%s, %zu warning%s\n", path, d.nerrors,
				d.nerrors == 1 ? "" : "s", d.nwarnings, d.nwarnings == 1 ? "" : "s");
	}
	r = d.nerrors ? PL_EXIT_ERROR : PL_EXIT_OK;
	pl_diags_release(&d);
	pl_config_free(cfg);
	pl_args_release(&a);
	return r;
}

const struct pl_cmd pl_cmd_validate = {
	.name = "validate",
	.summary = "check pvelab.yaml and report every problem with file:line:col",
	.usage = "[FILE]",
	.help = "Checks types, ranges and unknown keys against the declared schema (see\n"
		"docs/config.md), then duplicate names, vmids, IPs, MACs and host ports, vmids\n"
		"outside their category's range, and settings Proxmox would refuse.",
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
