/*
 * `pvelab version`: the version; with -v also the git commit and the versions
 * of the libraries linked in.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "core/version.h"

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	json_t *info;
	int r;

	if ((r = pl_args_parse(&a, &pl_cmd_version, ctx, argc, argv)) != 0)
		return pl_args_exit(r);

	info = pl_version_info();
	if (ctx->output == PL_OUT_JSON)
		return pl_print_json(info);
	printf("pvelab %s\n", json_string_value(json_object_get(info, "version")));
	if (ctx->verbosity > 0) {
		const char *k;
		json_t *v;

		printf("commit %s\n", json_string_value(json_object_get(info, "commit")));
		json_object_foreach(json_object_get(info, "libraries"), k, v)
			printf("%-10s %s\n", k, json_string_value(v));
	}
	json_decref(info);
	return PL_EXIT_OK;
}

const struct pl_cmd pl_cmd_version = {
	.name = "version",
	.summary = "print the version (with -v: commit and library versions)",
	.usage = "",
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
