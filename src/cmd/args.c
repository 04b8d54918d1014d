/*
 * Table-driven option parsing for subcommands, shared output helpers, and the
 * global options every command accepts (-c, -o, -v, -q, --no-color).
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"

const struct pl_opt pl_global_opts[] = {
	{ "config", 'c', "FILE",
	  "config file (default: $PVELAB_CONFIG, else pvelab.yaml in the first of ., "
	  "~/.config/pvelab and /etc/pvelab that has one)" },
	{ "output", 'o', "FORMAT", "output format: text or json" },
	{ "verbose", 'v', NULL, "more detail (repeat for more)" },
	{ "quiet", 'q', NULL, "only errors" },
	{ "no-color", 0, NULL, "no ANSI colours (also NO_COLOR=1)" },
	{ "cluster", 0, "NAME",
	  "the cluster of the config's clusters: to work on (reads cover all of them "
	  "without it; changes need it when there are several)" },
	{ "help", 'h', NULL, "show help for the command (before it: the command list)" },
	{ NULL, 0, NULL, NULL },
};

const struct pl_env_var pl_env_vars[] = {
	{ "PVELAB_CONFIG", "the config file when -c is not given" },
	{ "PVELAB_URL", "API endpoint(s), comma-separated (cluster.endpoints)" },
	{ "PVELAB_TOKEN", "USER@REALM!TOKENID=SECRET (cluster.token_id and its secret)" },
	{ "PVELAB_USER", "user@realm to log in with a password instead of a token" },
	{ "PVELAB_PASSWORD", "that user's password" },
	{ "PVELAB_FINGERPRINT", "SHA-256 of the node's certificate (cluster.fingerprint)" },
	{ "PVELAB_CA_FILE", "CA bundle to verify the node with (cluster.ca_file)" },
	{ "PVELAB_TIMEOUT", "seconds per API request, 1-3600 (cluster.timeout)" },
	{ "PVELAB_CONCURRENCY", "API requests in flight, 1-256 (cluster.concurrency)" },
	{ "PVELAB_STATE", "the state database file (state)" },
	{ "PVELAB_SSH_HOSTS",
	  "GUEST=HOST[:PORT],...: reach these guests over SSH there (a port forward, NAT); "
	  "* for every other guest" },
	{ "PVELAB_LOG", "json: log lines as JSON objects" },
	{ "PVELAB_VIA", "who asked for the writes, in the runs' via (pvelab mcp sets it)" },
	{ "PVELAB_SIM_PASSWORD", "pvelab sim: root@pam's password (default: random)" },
	{ "PVELAB_SIM_TOKEN", "pvelab sim: the secret of root@pam!pvelab (default: random)" },
	{ "NO_COLOR", "any value: no ANSI colours" },
	{ NULL, NULL },
};

enum { G_CONFIG, G_OUTPUT, G_VERBOSE, G_QUIET, G_NOCOLOR, G_CLUSTER, G_HELP };

void
pl_args_init(struct pl_args *a, const struct pl_cmd *cmd, struct pl_ctx *ctx, int argc,
	     char **argv)
{
	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	a->ctx = ctx;
	a->argc = argc;
	a->argv = argv;
	a->i = 1;
	a->pos = pl_calloc((size_t)argc + 1, sizeof(char *));
}

void
pl_args_release(struct pl_args *a)
{
	if (!a->pos_in_argv)
		free(a->pos);
	a->pos = NULL;
	a->pos_in_argv = false;
}

/* The positionals a usage line names outside brackets, after the options
 * ("[--timeout SECS] GUEST..." -> "GUEST..."), into out. */
static void
required_names(const char *usage, char *out, size_t outlen)
{
	int depth = 0;
	bool after_opt = false;

	out[0] = '\0';
	for (const char *p = usage ? usage : ""; *p;) {
		size_t n = strcspn(p, " ");
		bool word = depth == 0 && p[0] != '[' && p[0] != '-' && p[0] != '|' && !after_opt;

		after_opt = depth == 0 && p[0] == '-' && p[n - 1] != ']';
		for (size_t i = 0; i < n; i++)
			depth += p[i] == '[' ? 1 : p[i] == ']' ? -1 : 0;
		if (word && strlen(out) + n + 2 < outlen)
			snprintf(out + strlen(out), outlen - strlen(out), "%s%.*s", *out ? " " : "",
				 (int)n, p);
		p += n;
		p += strspn(p, " ");
	}
}

/* Too few or too many positionals; the usage line names them. */
static void
count_error(const struct pl_args *a)
{
	const struct pl_cmd *cmd = a->cmd;
	char names[128];

	required_names(cmd->usage, names, sizeof(names));
	if (a->npos < cmd->min_args)
		pl_usage_error(cmd, "missing %s", *names ? names : "arguments");
	else if (cmd->max_args == 0)
		pl_usage_error(cmd, "unexpected argument '%.60s' (it takes none)",
			       a->pos[cmd->max_args]);
	else
		pl_usage_error(cmd, "unexpected argument '%.60s' (it takes at most %d)",
			       a->pos[cmd->max_args], cmd->max_args);
}

int
pl_args_parse(struct pl_args *a, const struct pl_cmd *cmd, struct pl_ctx *ctx, int argc,
	      char **argv)
{
	int r;

	pl_args_init(a, cmd, ctx, argc, argv);
	while ((r = pl_args_next(a)) >= 0) {
		if (r >= PL_ARGS_MAXOPTS)
			pl_die("command '%s' has more than %d options", cmd->name,
			       PL_ARGS_MAXOPTS);
		if (a->seen[r] < 255)
			a->seen[r]++;
		a->val[r] = a->value;
	}
	/* the positionals move to argv[1..]: they outlive the parser, so no
	 * command can read them after a release */
	for (int i = 0; i < a->npos; i++)
		argv[1 + i] = a->pos[i];
	free(a->pos);
	a->pos = argv + 1;
	a->pos_in_argv = true;
	if (r != PL_ARGS_END)
		return r;
	if (a->npos < cmd->min_args || (cmd->max_args != PL_ARGS_MANY && a->npos > cmd->max_args)) {
		count_error(a);
		return PL_ARGS_ERROR;
	}
	return 0;
}

bool
pl_args_has(const struct pl_args *a, int idx)
{
	return idx >= 0 && idx < PL_ARGS_MAXOPTS && a->seen[idx] > 0;
}

const char *
pl_args_str(const struct pl_args *a, int idx, const char *dflt)
{
	return pl_args_has(a, idx) && a->val[idx] ? a->val[idx] : dflt;
}

int
pl_args_num(struct pl_args *a, int idx, long long min, long long max, long long *out)
{
	if (!pl_args_has(a, idx))
		return 0;
	a->value = a->val[idx];
	return pl_args_int(a, min, max, out);
}

int
pl_args_exit(int r)
{
	return r == PL_ARGS_HELP ? PL_EXIT_OK : PL_EXIT_USAGE;
}

int
pl_usage_error(const struct pl_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	if (cmd && cmd->run == NULL) { /* the options before the command (main.c) */
		fputs("pvelab: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputs(" (usage: pvelab [global options] COMMAND [options] [args]; see pvelab help)\n",
		      stderr);
		return PL_EXIT_USAGE;
	}
	fprintf(stderr, "pvelab: %s: ", cmd ? cmd->name : "usage");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, " (usage: pvelab %s %s; see pvelab help %s)\n", cmd->name,
			cmd->usage ? cmd->usage : "", cmd->name);
	else
		fputc('\n', stderr);
	return PL_EXIT_USAGE;
}

/* Apply a global option; returns 0, PL_ARGS_HELP or PL_ARGS_ERROR. */
static int
apply_global(struct pl_args *a, int g, const char *value)
{
	struct pl_ctx *ctx = a->ctx;

	switch (g) {
	case G_CONFIG:
		ctx->config_path = value;
		ctx->config_given = true;
		break;
	case G_OUTPUT:
		if (!strcmp(value, "json"))
			ctx->output = PL_OUT_JSON;
		else if (!strcmp(value, "text"))
			ctx->output = PL_OUT_TEXT;
		else {
			pl_usage_error(a->cmd, "unknown output format '%s' (use text or json)",
				       value);
			return PL_ARGS_ERROR;
		}
		break;
	case G_VERBOSE:
		ctx->verbosity++;
		pl_ctx_apply_log(ctx);
		break;
	case G_QUIET:
		ctx->verbosity = -1;
		pl_ctx_apply_log(ctx);
		break;
	case G_NOCOLOR:
		ctx->color = false;
		break;
	case G_CLUSTER:
		ctx->cluster = value;
		break;
	case G_HELP:
		if (a->cmd->run == NULL) /* pvelab --help: the command list */
			pl_cmd_print_overview(stdout);
		else
			pl_cmd_print_help(a->cmd, stdout);
		return PL_ARGS_HELP;
	}
	return 0;
}

/* Find a long option in a table; -1 if absent. */
static int
find_long(const struct pl_opt *opts, const char *name, size_t len)
{
	for (int i = 0; opts && opts[i].name; i++)
		if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
			return i;
	return -1;
}

static int
find_short(const struct pl_opt *opts, int c)
{
	for (int i = 0; opts && opts[i].name; i++)
		if (opts[i].short_name == c)
			return i;
	return -1;
}

static void
suggest_option(const struct pl_args *a, const char *name)
{
	const char *cands[128];
	size_t n = 0;
	const char *s;

	for (int i = 0; a->cmd->opts && a->cmd->opts[i].name && n < 100; i++)
		cands[n++] = a->cmd->opts[i].name;
	for (int i = 0; pl_global_opts[i].name && n < 128; i++)
		cands[n++] = pl_global_opts[i].name;
	s = n ? pl_str_suggest(name, cands, n) : NULL;
	if (s)
		pl_usage_error(a->cmd, "unknown option '--%s' (did you mean '--%s'?)", name, s);
	else
		pl_usage_error(a->cmd, "unknown option '--%s'", name);
}

/* Handle option number idx of table opts (global or not) with its value. */
static int
take(struct pl_args *a, const struct pl_opt *opt, const char *inline_value, const char *shown)
{
	a->value = NULL;
	if (opt->arg == NULL) {
		if (inline_value) {
			pl_usage_error(a->cmd, "option '%s' takes no value", shown);
			return PL_ARGS_ERROR;
		}
		return 0;
	}
	if (inline_value) {
		a->value = inline_value;
		return 0;
	}
	if (a->i >= a->argc) {
		pl_usage_error(a->cmd, "option '%s' needs a value (%s)", shown, opt->arg);
		return PL_ARGS_ERROR;
	}
	a->value = a->argv[a->i++];
	return 0;
}

int
pl_args_next(struct pl_args *a)
{
	const struct pl_opt *opts = a->cmd->opts;
	char shown[64];
	int idx, r;

	for (;;) {
		if (a->shorts && *a->shorts) {
			int c = (unsigned char)*a->shorts++;
			const char *rest = *a->shorts ? a->shorts : NULL;
			bool global = false;
			const struct pl_opt *opt;

			snprintf(shown, sizeof(shown), "-%c", c);
			if ((idx = find_short(opts, c)) < 0) {
				if ((idx = find_short(pl_global_opts, c)) < 0) {
					pl_usage_error(a->cmd, "unknown option '-%c'", c);
					return PL_ARGS_ERROR;
				}
				global = true;
			}
			opt = global ? &pl_global_opts[idx] : &opts[idx];
			if (opt->arg) { /* the rest of the cluster is the value */
				a->shorts = NULL;
				if ((r = take(a, opt, rest, shown)) != 0)
					return r;
			} else if ((r = take(a, opt, NULL, shown)) != 0) {
				return r;
			}
			if (!global)
				return idx;
			if ((r = apply_global(a, idx, a->value)) != 0)
				return r;
			continue;
		}
		a->shorts = NULL;
		if (a->i >= a->argc)
			return PL_ARGS_END;

		char *arg = a->argv[a->i++];

		if (a->dashdash || arg[0] != '-' || arg[1] == '\0') {
			a->pos[a->npos++] = arg;
			continue;
		}
		if (!strcmp(arg, "--")) {
			a->dashdash = true;
			continue;
		}
		if (arg[1] != '-') {
			a->shorts = arg + 1;
			continue;
		}

		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);

		snprintf(shown, sizeof(shown), "--%.*s", (int)(len > 50 ? 50 : len), name);
		if ((idx = find_long(opts, name, len)) >= 0) {
			if ((r = take(a, &opts[idx], eq ? eq + 1 : NULL, shown)) != 0)
				return r;
			return idx;
		}
		if ((idx = find_long(pl_global_opts, name, len)) >= 0) {
			if ((r = take(a, &pl_global_opts[idx], eq ? eq + 1 : NULL, shown)) != 0)
				return r;
			if ((r = apply_global(a, idx, a->value)) != 0)
				return r;
			continue;
		}
		char *nm = pl_strndup(name, len);

		suggest_option(a, nm);
		free(nm);
		return PL_ARGS_ERROR;
	}
}

int
pl_args_int(struct pl_args *a, long long min, long long max, long long *out)
{
	if (pl_str_to_ll(a->value, min, max, out) != 0) {
		pl_usage_error(a->cmd, "'%s' is not a number from %lld to %lld", a->value, min,
			       max);
		return PL_ARGS_ERROR;
	}
	return 0;
}

void
pl_ctx_apply_log(const struct pl_ctx *ctx)
{
	if (ctx->verbosity > 0)
		pl_log_set_level(ctx->verbosity > 1 ? PL_LOG_DEBUG : PL_LOG_INFO);
	else
		pl_log_set_level(ctx->verbosity < 0 ? PL_LOG_ERROR : PL_LOG_WARN);
}

bool
pl_chatty(const struct pl_ctx *ctx)
{
	return ctx->output != PL_OUT_JSON && ctx->verbosity >= 0;
}

int
pl_error(const char *fmt, ...)
{
	va_list ap;

	fputs("pvelab: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return PL_EXIT_ERROR;
}

void
pl_warn(const struct pl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	if (ctx && ctx->verbosity < 0)
		return;
	fputs("pvelab: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Indented as jansson would, by the faster writer (a sync's 10,000 changes:
 * 12 ms -> 4.5 ms); jansson streams what is larger than the buffer's cap. */
int
pl_print_json(json_t *v)
{
	struct pl_buf b;
	int r;

	pl_buf_init(&b, 0);
	if (pl_json_write_pretty(&b, v) == 0)
		r = fwrite(b.data, 1, b.len, stdout) == b.len ? 0 : -1;
	else
		r = json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	pl_buf_release(&b);
	fputc('\n', stdout);
	json_decref(v);
	return r == 0 ? PL_EXIT_OK : PL_EXIT_ERROR;
}

const char *
pl_color(const struct pl_ctx *ctx, const char *code)
{
	static char esc[4][16];
	static int slot;
	char *s;

	if (!ctx->color)
		return "";
	s = esc[slot++ % 4];
	snprintf(s, sizeof(esc[0]), "\033[%sm", code);
	return s;
}
