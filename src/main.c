/*
 * pvelab's entry point: the options before the command (the global ones,
 * --help and --version), then dispatch through the command table
 * (src/cmd/commands.def).
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "core/log.h"

#include <signal.h>
#include <unistd.h>

/* What may stand before a command besides the global options. */
static const struct pl_opt top_opts[] = {
	{ "version", 'V', NULL, "print the version and exit" },
	{ NULL, 0, NULL, NULL },
};

enum { T_VERSION };

/* The line before the command, parsed as a command with no run function
 * (which pl_usage_error and --help recognise). */
static const struct pl_cmd top = {
	.name = "pvelab",
	.summary = "Proxmox VE homelab as code",
	.usage = "[global options] COMMAND [options] [args]",
	.opts = top_opts,
};

int
main(int argc, char **argv)
{
	struct pl_ctx ctx = {
		.config_path = "pvelab.yaml",
		.output = PL_OUT_TEXT,
	};
	const struct pl_cmd *cmd;
	const char *nc = getenv("NO_COLOR");
	char *default_config = NULL;
	struct pl_args a;
	int i, r;

	signal(SIGPIPE, SIG_IGN);
	ctx.tty = isatty(STDOUT_FILENO);
	ctx.color = ctx.tty && !(nc && *nc) && isatty(STDERR_FILENO);
	/* PVELAB_LOG=json: log lines as JSON objects, for log shippers */
	if (getenv("PVELAB_LOG") && !strcmp(getenv("PVELAB_LOG"), "json"))
		pl_log_set_json(true);

	/* The options before the command: where it starts, skipping the values
	 * of -c, -o and --cluster given as separate words. */
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--"))
			break;
		if ((!strcmp(o, "-c") || !strcmp(o, "--config") || !strcmp(o, "-o") ||
		     !strcmp(o, "--output") || !strcmp(o, "--cluster")) &&
		    i + 1 < argc)
			i++;
	}
	/* `pvelab -h sync` is `pvelab sync -h` */
	for (int k = 1; k < i && i < argc && (cmd = pl_cmd_find(argv[i])) != NULL; k++)
		if (!strcmp(argv[k], "-h") || !strcmp(argv[k], "--help")) {
			pl_cmd_print_help(cmd, stdout);
			return PL_EXIT_OK;
		}
	if ((r = pl_args_parse(&a, &top, &ctx, i, argv)) != 0)
		return pl_args_exit(r);
	if (pl_args_has(&a, T_VERSION)) {
		cmd = pl_cmd_find("version");
		return cmd->run(&ctx, 1, (char *[]){ (char *)"version", NULL });
	}
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc) { /* as git: the command list, and a usage error */
		pl_cmd_print_overview(stderr);
		return PL_EXIT_USAGE;
	}
	if ((cmd = pl_cmd_find(argv[i])) == NULL) {
		const char *s = pl_cmd_suggest(argv[i]);

		if (s)
			fprintf(stderr, "pvelab: unknown command '%.60s' (did you mean '%s'?)\n",
				argv[i], s);
		else
			fprintf(stderr, "pvelab: unknown command '%.60s' (see pvelab help)\n",
				argv[i]);
		return PL_EXIT_USAGE;
	}
	if (!ctx.config_given) /* ./pvelab.yaml, the per-user and the system config */
		ctx.config_path = default_config = pl_config_default_path();
	r = cmd->run(&ctx, argc - i, argv + i);
	free(default_config);
	return r;
}
