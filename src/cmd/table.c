/*
 * The one list of subcommands. Adding a command: write src/cmd/<name>.c that
 * defines `const struct pl_cmd pl_cmd_<name>`, and add a line to commands.def.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "core/str.h"

const struct pl_cmd *const pl_commands[] = {
#define PL_COMMAND(x) &pl_cmd_##x,
#include "cmd/commands.def"
#undef PL_COMMAND
	NULL,
};

const struct pl_cmd *
pl_cmd_find(const char *name)
{
	for (size_t i = 0; pl_commands[i]; i++)
		if (!strcmp(pl_commands[i]->name, name))
			return pl_commands[i];
	return NULL;
}

const char *
pl_cmd_suggest(const char *name)
{
	const char *names[PL_ARRAY_LEN(pl_commands)];
	size_t n = 0;

	for (size_t i = 0; pl_commands[i]; i++)
		if (!(pl_commands[i]->flags & PL_CMD_HIDDEN))
			names[n++] = pl_commands[i]->name;
	return n ? pl_str_suggest(name, names, n) : NULL;
}
