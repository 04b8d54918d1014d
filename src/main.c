/*
 * pvelab's entry point: global options, then dispatch through the command
 * table (src/cmd/table.c).
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "core/log.h"

#include <signal.h>
#include <unistd.h>

static int
usage_top(void)
{
	fputs("usage: pvelab [global options] COMMAND [options] [args] (see pvelab help)\n",
	      stderr);
	return PL_EXIT_USAGE;
}

int
main(int argc, char **argv)
{
	struct pl_ctx ctx = {
		.config_path = "pvelab.yaml",
		.output = PL_OUT_TEXT,
	};
	const struct pl_cmd *cmd;
	const char *nc = getenv("NO_COLOR");
	int i;

	signal(SIGPIPE, SIG_IGN);
	ctx.tty = isatty(STDOUT_FILENO);
	ctx.color = ctx.tty && !(nc && *nc) && isatty(STDERR_FILENO);

	/* Global options before the command, parsed with the help command's
	 * parser so that they behave exactly as they do after it. */
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "-c") || !strcmp(o, "--config") || !strcmp(o, "-o") ||
		    !strcmp(o, "--output")) {
			if (i + 1 >= argc)
				return usage_top();
			i++;
		}
	}
	if (i > 1) {
		struct pl_args a;
		int r;

		/* argv[0..i) holds only global options: parse them as if they were
		 * the help command's, which has no options of its own. */
		pl_args_init(&a, pl_cmd_find("help"), &ctx, i, argv);
		while ((r = pl_args_next(&a)) >= 0)
			;
		pl_args_release(&a);
		if (r == PL_ARGS_HELP)
			return PL_EXIT_OK;
		if (r != PL_ARGS_END)
			return PL_EXIT_USAGE;
	}
	/* PVELAB_LOG=json: log lines as JSON objects, for log shippers */
	if (getenv("PVELAB_LOG") && !strcmp(getenv("PVELAB_LOG"), "json"))
		pl_log_set_json(true);
	if (ctx.verbosity > 0)
		pl_log_set_level(ctx.verbosity > 1 ? PL_LOG_DEBUG : PL_LOG_INFO);
	else if (ctx.verbosity < 0)
		pl_log_set_level(PL_LOG_ERROR);

	if (i >= argc) {
		cmd = pl_cmd_find("help");
		return cmd->run(&ctx, 1, (char *[]){ (char *)"help", NULL });
	}
	if ((cmd = pl_cmd_find(argv[i])) == NULL) {
		const char *s = pl_cmd_suggest(argv[i]);

		if (s)
			fprintf(stderr, "pvelab: unknown command '%s' (did you mean '%s'?)\n",
				argv[i], s);
		else
			fprintf(stderr, "pvelab: unknown command '%s' (see pvelab help)\n",
				argv[i]);
		return PL_EXIT_USAGE;
	}
	return cmd->run(&ctx, argc - i, argv + i);
}
