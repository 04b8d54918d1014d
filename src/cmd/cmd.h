/*
 * The command table: every subcommand is one struct pl_cmd in its own file
 * under src/cmd/, listed once in commands.def. The dispatcher, help, shell
 * completion and the command-line tests all read the same table.
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
	const char *cluster;     /* --cluster NAME (of the config's clusters:), or NULL */
};

/* One option of a command; arrays end with an entry whose name is NULL. */
struct pl_opt {
	const char *name;  /* long name, without "--" */
	int short_name;    /* single letter, or 0 */
	const char *arg;   /* metavariable for options taking a value; NULL for flags */
	const char *help;
};

/* The MCP server lists its tools from this table (cmd/mcp_tools.c). */
#define PL_CMD_HIDDEN 0x1    /* not listed by help */
#define PL_CMD_MCP_READ 0x2  /* to offer to MCP clients as a read-only tool */
#define PL_CMD_MCP_WRITE 0x4 /* to offer to MCP clients only when writes are enabled */

struct pl_cmd {
	const char *name;
	const char *summary; /* one line, lower case, no period */
	const char *usage;   /* what follows the name, e.g. "[--live] GUEST" */
	const char *help;    /* optional paragraph(s) for `help COMMAND` */
	const struct pl_opt *opts;
	/* How many positional arguments pl_args_parse accepts; max_args
	 * PL_ARGS_MANY for no limit. Zero for both: none. */
	int min_args, max_args;
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

/* The environment variables pvelab reads, for help and the docs test;
 * ends with a NULL name. */
struct pl_env_var {
	const char *name;
	const char *help;
};
extern const struct pl_env_var pl_env_vars[];

/* Look a command up by name; NULL if there is none. */
const struct pl_cmd *pl_cmd_find(const char *name);
/* The closest command name to a mistyped one, or NULL. */
const char *pl_cmd_suggest(const char *name);
/* Print `help COMMAND` text for cmd to f. */
void pl_cmd_print_help(const struct pl_cmd *cmd, FILE *f);

/* Option iteration over a command's argv, like getopt_long but table-driven.
 * Global options are accepted anywhere and applied to ctx; positionals are
 * collected in pos[]. */
#define PL_ARGS_MAXOPTS 32 /* options a command may have */
#define PL_ARGS_MANY (-1)  /* max_args: no limit */

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
	bool pos_in_argv;  /* pl_args_parse moved pos[] into argv: nothing to free */
	/* pl_args_parse: how often each option of cmd->opts was given, and its
	 * last value */
	unsigned char seen[PL_ARGS_MAXOPTS];
	const char *val[PL_ARGS_MAXOPTS];
};

#define PL_ARGS_END (-1)   /* no more options */
#define PL_ARGS_HELP (-2)  /* --help was given and printed */
#define PL_ARGS_ERROR (-3) /* a usage error was printed */

/* The whole prologue of a command: parse argv against cmd's options and its
 * positional counts. Returns 0 (options in a->seen/val, positionals in
 * a->pos, valid for as long as argv, nothing to release) or PL_ARGS_HELP /
 * PL_ARGS_ERROR, already printed: return pl_args_exit(r). */
int pl_args_parse(struct pl_args *a, const struct pl_cmd *cmd, struct pl_ctx *ctx, int argc,
		  char **argv);
/* Whether option idx of cmd->opts was given (a flag's binding). */
bool pl_args_has(const struct pl_args *a, int idx);
/* Option idx's value, or dflt when it was not given. */
const char *pl_args_str(const struct pl_args *a, int idx, const char *dflt);
/* Option idx's value as an integer in [min,max] into *out (left alone when
 * not given); 0, or PL_ARGS_ERROR after printing a usage error. */
int pl_args_num(struct pl_args *a, int idx, long long min, long long max, long long *out);
/* Lower-level iteration, for callers that need option order. */
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

/* Apply -v/-q to the log level (wherever on the line they were given). */
void pl_ctx_apply_log(const struct pl_ctx *ctx);
/* Print the command list (pvelab help) to f. */
void pl_cmd_print_overview(FILE *f);
/* Whether success lines should be printed: text output and not -q. */
bool pl_chatty(const struct pl_ctx *ctx);

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
