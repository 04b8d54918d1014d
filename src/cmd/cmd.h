/*
 * The command table: every subcommand is one struct pl_cmd in its own file
 * under src/cmd/, listed once in commands.def (table.c builds the table from
 * it). The dispatcher, help and shell completion read the same table.
 */
#ifndef PL_CMD_CMD_H
#define PL_CMD_CMD_H

#include "core/common.h"
#include "core/err.h"

#include <jansson.h>

enum pl_output { PL_OUT_TEXT, PL_OUT_JSON };

/* Exit codes (DESIGN.md). */
#define PL_EXIT_OK 0
#define PL_EXIT_ERROR 1
#define PL_EXIT_CHANGES 2
#define PL_EXIT_USAGE 64

/* What every command gets: the global options. */
struct pl_ctx {
	const char *config_path; /* -c FILE, default ./pvelab.yaml */
	bool config_given;       /* -c was given explicitly */
	enum pl_output output;   /* -o text|json */
	int verbosity;           /* -q: -1, default 0, each -v: +1 */
	bool color;              /* TTY, no --no-color, no NO_COLOR */
	bool tty;                /* stdout is a terminal */
};

/* One option of a command; arrays end with an entry whose name is NULL. */
struct pl_opt {
	const char *name;  /* long name, without "--" */
	int short_name;    /* single letter, or 0 */
	const char *arg;   /* metavariable for options taking a value; NULL for flags */
	const char *help;
};

/* Nothing reads the two MCP flags yet: they mark each command for the MCP
 * server of issue 24, which will list its tools from this table. */
#define PL_CMD_HIDDEN 0x1    /* not listed by help */
#define PL_CMD_MCP_READ 0x2  /* to offer to MCP clients as a read-only tool */
#define PL_CMD_MCP_WRITE 0x4 /* to offer to MCP clients only when writes are enabled */

struct pl_cmd {
	const char *name;
	const char *summary; /* one line, lower case, no period */
	const char *usage;   /* what follows the name, e.g. "[--live] GUEST" */
	const char *help;    /* optional paragraph(s) for `help COMMAND` */
	const struct pl_opt *opts;
	/* argv[0] is the command name; returns a PL_EXIT_* code. */
	int (*run)(struct pl_ctx *ctx, int argc, char **argv);
	unsigned flags;
};

#define PL_COMMAND(x) extern const struct pl_cmd pl_cmd_##x;
#include "cmd/commands.def"
#undef PL_COMMAND

/* The table, NULL-terminated (table.c). */
extern const struct pl_cmd *const pl_commands[];
/* Global options, shared by help and the parser. */
extern const struct pl_opt pl_global_opts[];

/* Look a command up by name; NULL if there is none. */
const struct pl_cmd *pl_cmd_find(const char *name);
/* The closest command name to a mistyped one, or NULL. */
const char *pl_cmd_suggest(const char *name);
/* Print `help COMMAND` text for cmd to f. */
void pl_cmd_print_help(const struct pl_cmd *cmd, FILE *f);

/* Option iteration over a command's argv, like getopt_long but table-driven.
 * Global options are accepted anywhere and applied to ctx; positionals are
 * collected in pos[]. */
struct pl_args {
	const struct pl_cmd *cmd;
	struct pl_ctx *ctx;
	int argc;
	char **argv;
	int i;             /* next argv index */
	const char *value; /* the current option's value */
	const char *shorts; /* rest of a short-option cluster */
	char **pos;        /* positional arguments (borrowed from argv) */
	int npos;
	bool dashdash;
};

#define PL_ARGS_END (-1)   /* no more options */
#define PL_ARGS_HELP (-2)  /* --help was given and printed */
#define PL_ARGS_ERROR (-3) /* a usage error was printed */

void pl_args_init(struct pl_args *a, const struct pl_cmd *cmd, struct pl_ctx *ctx, int argc,
		  char **argv);
/* Index of the next option in cmd->opts, or one of PL_ARGS_*. */
int pl_args_next(struct pl_args *a);
void pl_args_release(struct pl_args *a);
/* Exit code for a non-option result of pl_args_next (HELP: 0, ERROR: 64). */
int pl_args_exit(int r);
/* Print "pvelab: NAME: message" plus a usage hint, return PL_EXIT_USAGE. */
int pl_usage_error(const struct pl_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Parse an option value as an integer in [min,max], or print a usage error. */
int pl_args_int(struct pl_args *a, long long min, long long max, long long *out);

/* Print "pvelab: message" on stderr; returns PL_EXIT_ERROR. */
int pl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a warning line on stderr (unless -q). */
void pl_warn(const struct pl_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a JSON value (pretty) on stdout and steal the reference. */
int pl_print_json(json_t *v);
/* ANSI colour helpers: the escape when ctx->color, else "". */
const char *pl_color(const struct pl_ctx *ctx, const char *code);
#define PL_C_RED "31"
#define PL_C_GREEN "32"
#define PL_C_YELLOW "33"
#define PL_C_BLUE "34"
#define PL_C_BOLD "1"
#define PL_C_DIM "2"
#define PL_C_RESET "0"

#endif
