/*
 * `pvelab console`: an interactive shell over the command table, on libedit —
 * tab completion of commands, their options and guest names (from the state
 * store), history kept in $XDG_STATE_HOME/pvelab/history, `-o` and `-c`
 * switchable inside, Ctrl-C stopping the running command (an apply stops
 * scheduling, as on the command line) without leaving, Ctrl-D leaving. The
 * commands that read or change the cluster run inside the console on one API
 * connection and one open store (see in_process); those that serve or watch
 * run as their own pvelab process. Piped input runs line by line and stops at
 * the first failure unless --keep-going.
 */
#include "core/common.h"

#include <errno.h>
#include <event2/event.h>
#include <histedit.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/guard.h"
#include "config/config.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "pve/client.h"
#include "state/state.h"

/* The commands run inside the console, sharing its connection and store:
 * those that read, the single-step writes, and the executor's (apply,
 * destroy, rollback) with import, adopt, sync, backup, snapshot-policy,
 * deploy and verify. Ctrl-C fails a command's requests (a task already
 * started goes on in Proxmox, as when the command line's process is stopped;
 * a deploy's SSH command and health wait end too, cmd/guestx.h), except while
 * apply, destroy or rollback has its guard armed: the guard takes it as on
 * the command line (stop scheduling, then stop waiting), and a third one
 * fails what is still open instead of ending the process. The commands that
 * serve, watch or run until stopped run as their own process. */
static const char *const in_process[] = {
	"status",          "list",    "describe", "history", "snapshots",     "backups",
	"validate",        "plan",    "doctor",   "help",    "version",       "propstr",
	"start",           "stop",    "shutdown", "reboot",  "suspend",       "resume",
	"snapshot",        "token",   "silence",  "export",  "config_schema", "sync",
	"apply",           "destroy", "rollback", "import",  "adopt",         "backup",
	"snapshot_policy", "deploy",  "verify",
};

enum { O_KEEP };
static const struct pl_opt opts[] = {
	{ "keep-going", 0, NULL, "piped input: run every line even after one fails" },
	{ NULL, 0, NULL, NULL },
};

struct console {
	struct pl_ctx *ctx;
	char *config;   /* -c inside the console (NULL: as started) */
	bool json;      /* -o json inside the console */
	json_t *guests; /* names for completion, read when the console starts and after
			 * each command */
	json_t *values; /* option values for completion: {"NODE": [...], "TAG", "STORAGE",
			 * "BRIDGE"} */
	char prompt[200];
	struct event *sigint; /* Ctrl-C, watched for the whole session */
	bool running;         /* a command runs inside the console */
	bool interrupted;     /* Ctrl-C while it ran */
	bool stray;           /* Ctrl-C while none ran (at the prompt, between lines) */
};

/* Add the distinct values of key in list to set (an array). */
static void
collect(json_t *set, const json_t *list, const char *key, const char *seps)
{
	const json_t *x, *have;
	size_t i, j;

	json_array_foreach(list, i, x) {
		char *v = pl_strdup(pl_json_str_or(x, key, "")), *save = NULL;

		for (char *p = strtok_r(v, seps, &save); p; p = strtok_r(NULL, seps, &save)) {
			bool dup = false;

			json_array_foreach(set, j, have)
				dup |= !strcmp(json_string_value(have), p);
			if (!dup)
				json_array_append_new(set, json_string(p));
		}
		free(v);
	}
}

/* Nodes, tags, storages and bridges as last synced, for option values. */
static void
load_values(struct console *c, struct pl_state *st)
{
	json_t *list = NULL;

	json_decref(c->values);
	c->values = json_pack("{s:[],s:[],s:[],s:[]}", "NODE", "TAG", "STORAGE", "BRIDGE");
	if (pl_state_nodes(st, &list, NULL) == 0)
		collect(json_object_get(c->values, "NODE"), list, "node", "");
	json_decref(list);
	list = NULL;
	if (pl_state_guest_summaries(st, NULL, &list, NULL) == 0)
		collect(json_object_get(c->values, "TAG"), list, "tags", ";, ");
	json_decref(list);
	list = NULL;
	if (pl_state_storages(st, &list, NULL) == 0)
		collect(json_object_get(c->values, "STORAGE"), list, "storage", "");
	json_decref(list);
	list = NULL;
	if (pl_state_bridges(st, &list, NULL) == 0)
		collect(json_object_get(c->values, "BRIDGE"), list, "iface", "");
	json_decref(list);
}

/* Which cluster the commands reach: the host of PVELAB_URL's or the config's
 * first endpoint (what the user wrote), "?" when none is set. Caller frees. */
static char *
endpoint_host(struct console *c)
{
	struct pl_ctx ctx = *c->ctx;
	struct pl_session s;
	const char *url = getenv("PVELAB_URL"), *from;
	char *host = NULL, *err = NULL;

	if (c->config) {
		ctx.config_path = c->config;
		ctx.config_given = true;
	}
	if ((url == NULL || *url == '\0') && pl_session_open(&s, &ctx, 0, &err) == 0 && s.cfg) {
		const json_t *eps = pl_config_get(s.cfg, "/cluster/endpoints");

		if (json_string_value(json_array_get(eps, 0)))
			host = pl_strdup(json_string_value(json_array_get(eps, 0)));
		pl_session_close(&s);
	} else if (url && *url) {
		host = pl_strdup(url);
	}
	free(err);
	if (host == NULL)
		return pl_strdup("?");
	from = strstr(host, "://") ? strstr(host, "://") + 3 : host;
	memmove(host, from, strlen(from) + 1);
	host[strcspn(host, ",/ ")] = '\0';
	if (strlen(host) > 60)
		host[60] = '\0';
	for (char *p = host; *p; p++) /* a prompt shows no control bytes */
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return host;
}

/* The guests' names in the state store (nothing when there is none). */
static void
load_guests(struct console *c)
{
	struct pl_ctx ctx = *c->ctx;
	struct pl_session s;
	char *err = NULL;
	json_t *names = NULL, *last = NULL;
	long long age = -1;
	char *where = endpoint_host(c);

	if (c->config) {
		ctx.config_path = c->config;
		ctx.config_given = true;
	}
	json_decref(c->guests);
	c->guests = json_array();
	/* the session's store, kept open for the commands that run inside */
	if (pl_session_open(&s, &ctx, PL_NEED_STATE_RO, &err) == 0) {
		if (pl_state_guest_names(s.state, &names, NULL) == 0) {
			json_decref(c->guests);
			c->guests = names;
		}
		load_values(c, s.state);
		if (pl_state_last_run(s.state, "sync", &last, NULL) == 0 && last)
			age = (long long)time(NULL) - pl_json_int(last, "finished", time(NULL));
	}
	pl_session_close(&s);
	if (age >= 0)
		snprintf(c->prompt, sizeof(c->prompt),
			 "pvelab %s (%zu guests, synced %lld%s ago)> ", where,
			 json_array_size(c->guests), age < 120 ? age : age / 60,
			 age < 120 ? " s" : " min");
	else
		snprintf(c->prompt, sizeof(c->prompt), "pvelab %s (not synced)> ", where);
	free(where);
	json_decref(last);
	free(err);
}

static char *
prompt_of(EditLine *el)
{
	struct console *c;

	el_get(el, EL_CLIENTDATA, &c);
	return c->prompt;
}

static const struct pl_cmd *
find_cmd(const char *name)
{
	for (size_t i = 0; pl_commands[i]; i++)
		if (!strcmp(pl_commands[i]->name, name) ||
		    (!strcmp(pl_commands[i]->name, "snapshot_policy") &&
		     !strcmp(name, "snapshot-policy")))
			return pl_commands[i];
	return NULL;
}

static const char *
cmd_word(const struct pl_cmd *cmd)
{
	return !strcmp(cmd->name, "snapshot_policy") ? "snapshot-policy" :
	       !strcmp(cmd->name, "config_schema")   ? "config-schema" :
						       cmd->name;
}

/* Offer word if it starts with prefix; the common part of all offers so far
 * goes in *common, their count in *n. */
static void
offer(const char *word, const char *prefix, char **common, int *n, json_t *all)
{
	size_t i = 0;

	if (strncmp(word, prefix, strlen(prefix)) != 0)
		return;
	json_array_append_new(all, json_string(word));
	if ((*n)++ == 0) {
		*common = pl_strdup(word);
		return;
	}
	while ((*common)[i] && (*common)[i] == word[i])
		i++;
	(*common)[i] = '\0';
}

/* When the word before the one being completed is an option of cmd (or a
 * global one) that takes a node, tag, storage or bridge: which ("NODE"...). */
static const char *
value_kind(const char *cmdname, const char *line, const char *word)
{
	const struct pl_cmd *cmd = find_cmd(cmdname ? cmdname : "");
	static const char *const kinds[] = { "NODE", "TAG", "STORAGE", "BRIDGE" };
	size_t len = (size_t)(word - line);
	const char *prev, *end;

	while (len && line[len - 1] == ' ')
		len--;
	end = line + len;
	for (prev = end; prev > line && prev[-1] != ' '; prev--)
		;
	if (end - prev < 3 || strncmp(prev, "--", 2) != 0 || !cmd)
		return NULL;
	for (const struct pl_opt *o = cmd->opts; o && o->name; o++) {
		if (strlen(o->name) != (size_t)(end - prev - 2) ||
		    strncmp(o->name, prev + 2, (size_t)(end - prev - 2)) || !o->arg)
			continue;
		for (size_t i = 0; i < PL_ARRAY_LEN(kinds); i++)
			if (!strcmp(o->arg, kinds[i]) ||
			    (!strcmp(o->name, "storage") && !strcmp(kinds[i], "STORAGE")))
				return kinds[i];
	}
	return NULL;
}

/* Tab: complete the word under the cursor — a command, an option of the
 * command (or a global one), or a guest name. */
static unsigned char
complete(EditLine *el, int ch)
{
	const LineInfo *li = el_line(el);
	struct console *c;
	char *line = pl_strndup(li->buffer, (size_t)(li->cursor - li->buffer)), *save = NULL;
	const char *word = strrchr(line, ' ') ? strrchr(line, ' ') + 1 : line;
	char *first = NULL, *common = NULL;
	json_t *all = json_array(), *v;
	bool at_command = strchr(line, ' ') == NULL;
	const char *kind;
	int n = 0;
	size_t i;

	(void)ch;
	el_get(el, EL_CLIENTDATA, &c);
	if (!at_command) {
		char *copy = pl_strdup(line);

		first = pl_strdup(strtok_r(copy, " ", &save) ? copy : "");
		free(copy);
	}
	if (at_command) {
		for (i = 0; pl_commands[i]; i++)
			if (!(pl_commands[i]->flags & PL_CMD_HIDDEN))
				offer(cmd_word(pl_commands[i]), word, &common, &n, all);
		offer("exit", word, &common, &n, all);
	} else if (word[0] == '-') {
		const struct pl_cmd *cmd = find_cmd(first);

		for (const struct pl_opt *o = cmd ? cmd->opts : NULL; o && o->name; o++) {
			char *w = pl_asprintf("--%s", o->name);

			offer(w, word, &common, &n, all);
			free(w);
		}
		for (const struct pl_opt *o = pl_global_opts; o->name; o++) {
			char *w = pl_asprintf("--%s", o->name);

			offer(w, word, &common, &n, all);
			free(w);
		}
	} else if ((kind = value_kind(first, line, word)) != NULL) {
		json_array_foreach(json_object_get(c->values, kind), i, v)
			offer(json_string_value(v), word, &common, &n, all);
	} else {
		json_array_foreach(c->guests, i, v)
			if (pl_json_str(v, "name"))
				offer(pl_json_str(v, "name"), word, &common, &n, all);
	}
	if (n == 1) {
		el_insertstr(el, common + strlen(word));
		el_insertstr(el, " ");
	} else if (n > 1 && strlen(common) > strlen(word)) {
		el_insertstr(el, common + strlen(word));
	} else if (n > 1) {
		putchar('\n');
		json_array_foreach(all, i, v)
			printf("%s%s", i ? "  " : "", json_string_value(v));
		putchar('\n');
	}
	free(common);
	free(first);
	free(line); /* word points into it */
	json_decref(all);
	return n > 1 ? CC_REDISPLAY : CC_REFRESH;
}

static void
on_interrupt(evutil_socket_t sig, short what, void *arg)
{
	struct console *c = arg;

	(void)sig;
	(void)what;
	if (!c->running) {
		c->stray = true;
		return;
	}
	c->interrupted = true;
	/* an armed guard (apply, destroy, rollback) takes it as on the command line */
	if (pl_session_kept_pve() && !pl_guard_armed())
		pl_pve_interrupt(pl_session_kept_pve());
}

static bool
runs_inside(const struct pl_cmd *cmd)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(in_process); i++)
		if (!strcmp(cmd->name, in_process[i]))
			return true;
	return false;
}

/* Run cmd inside the console on the kept session; its exit status (130
 * when Ctrl-C stopped it, as a shell reports SIGINT). */
static int
run_inside(struct console *c, const struct pl_cmd *cmd, int argc, const char **argv)
{
	struct pl_ctx ctx = *c->ctx;
	enum pl_log_level level = pl_log_get_level();
	char **args = pl_calloc((size_t)argc + 1, sizeof(*args));
	struct pl_pve *pve;
	int r;

	if (c->config) {
		ctx.config_path = c->config;
		ctx.config_given = true;
	}
	ctx.output = c->json ? PL_OUT_JSON : PL_OUT_TEXT;
	for (int i = 0; i < argc; i++)
		args[i] = pl_strdup(argv[i]);
	c->interrupted = false;
	c->running = true;
	r = cmd->run(&ctx, argc, args);
	c->running = false;
	fflush(stdout);
	pl_log_set_level(level);
	if ((pve = pl_session_kept_pve()) != NULL) {
		pl_pve_resume(pve);
		/* A request still pending belongs to a command that is gone: its
		 * callback must never run, so the connection goes with it. */
		if (pl_pve_pending(pve) > 0)
			pl_session_keep_drop_api();
	}
	for (int i = 0; i < argc; i++)
		free(args[i]);
	free(args);
	return c->interrupted ? 130 : r;
}

/* Run one command line as a pvelab process; its exit status. */
static int
run_line(struct console *c, int argc, const char **argv)
{
	const char **args = pl_calloc((size_t)argc + 6, sizeof(*args));
	struct sigaction ign = { .sa_handler = SIG_IGN }, oldint, oldquit;
	int n = 0, status = 0;
	pid_t pid;

	args[n++] = "pvelab";
	if (c->config) {
		args[n++] = "-c";
		args[n++] = c->config;
	} else if (c->ctx->config_given) {
		args[n++] = "-c";
		args[n++] = c->ctx->config_path;
	}
	if (c->json) {
		args[n++] = "-o";
		args[n++] = "json";
	}
	for (int i = 0; i < argc; i++)
		args[n++] = argv[i];
	fflush(stdout);
	/* Ctrl-C goes to the command (same process group), not to the console */
	sigaction(SIGINT, &ign, &oldint);
	sigaction(SIGQUIT, &ign, &oldquit);
	pid = fork();
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		execv("/proc/self/exe", (char *const *)args);
		fprintf(stderr, "pvelab: console: cannot run a command: %s\n", strerror(errno));
		_exit(127);
	}
	if (pid < 0) {
		pl_error("console: cannot start a command: %s", strerror(errno));
		status = PL_EXIT_ERROR;
	} else {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
	sigaction(SIGINT, &oldint, NULL);
	sigaction(SIGQUIT, &oldquit, NULL);
	free(args);
	return status;
}

/* Builtins: exit/quit, "set -o json|text", "set -c FILE". Returns -1 when
 * the line is not one, else its status. */
static int
builtin(struct console *c, int argc, const char **argv, bool *leave)
{
	if (!strcmp(argv[0], "exit") || !strcmp(argv[0], "quit")) {
		*leave = true;
		return 0;
	}
	if (strcmp(argv[0], "set") != 0)
		return -1;
	if (argc == 3 && !strcmp(argv[1], "-o") &&
	    (!strcmp(argv[2], "json") || !strcmp(argv[2], "text"))) {
		c->json = !strcmp(argv[2], "json");
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "-c")) {
		free(c->config);
		c->config = pl_strdup(argv[2]);
		return 0;
	}
	pl_error("console: set -o json|text, or set -c FILE");
	return PL_EXIT_USAGE;
}

static int
one_line(struct console *c, Tokenizer *tok, const char *line, bool *leave)
{
	const struct pl_cmd *cmd;
	const char **argv;
	int argc, r;

	tok_reset(tok);
	if (tok_str(tok, line, &argc, &argv) != 0) {
		pl_error("console: unbalanced quotes");
		return PL_EXIT_USAGE;
	}
	if (argc == 0 || argv[0][0] == '#')
		return 0;
	if ((r = builtin(c, argc, argv, leave)) >= 0)
		return r;
	cmd = find_cmd(argv[0]);
	if (cmd && runs_inside(cmd))
		r = run_inside(c, cmd, argc, argv);
	else
		r = run_line(c, argc, argv);
	load_guests(c);
	return r;
}

static char *
history_path(void)
{
	char *dir = pl_xdg_dir("XDG_STATE_HOME", ".local/state"), *p = NULL, *err = NULL;

	if (dir) {
		p = pl_asprintf("%s/pvelab", dir);
		if (pl_mkdir_p(p, 0700, &err) == 0) {
			char *f = pl_asprintf("%s/history", p);

			free(p);
			p = f;
		} else {
			pl_log_warn("console: no history kept: %s", err);
			free(p);
			p = NULL;
		}
	}
	free(err);
	free(dir);
	return p;
}

static int
interactive(struct console *c, Tokenizer *tok)
{
	EditLine *el = el_init("pvelab", stdin, stdout, stderr);
	History *h = history_init();
	HistEvent ev;
	char *hpath = history_path();
	bool leave = false;
	int count, last = 0;

	history(h, &ev, H_SETSIZE, 1000);
	history(h, &ev, H_SETUNIQUE, 1);
	if (hpath)
		history(h, &ev, H_LOAD, hpath);
	el_set(el, EL_CLIENTDATA, c);
	el_set(el, EL_PROMPT, prompt_of);
	el_set(el, EL_EDITOR, "emacs");
	el_set(el, EL_HIST, history, h);
	/* the wide call: libedit's narrow EL_ADDFN copies the name and help
	 * (wcsdup) and never frees them */
	el_wset(el, EL_ADDFN, L"pvelab-complete", L"complete a command, option or guest", complete);
	el_set(el, EL_BIND, "^I", "pvelab-complete", NULL);
	el_set(el, EL_SIGNAL, 1);
	printf("pvelab console: Tab completes, Ctrl-C stops the running command, Ctrl-D or "
	       "exit leaves\n");
	while (!leave) {
		const char *line = el_gets(el, &count);
		char *text;

		if (line == NULL && count < 0 && errno == EINTR) {
			/* Ctrl-C at the prompt ends the read (libedit passes the
			 * signal on): the line is dropped, as a shell does */
			putchar('\n');
			continue;
		}
		if (line == NULL) { /* Ctrl-D */
			putchar('\n');
			break;
		}
		if (count <= 0)
			continue;
		/* A Ctrl-C typed at the prompt (libedit passes it on) is not the
		 * next command's; one from now on is, when the loop next turns. */
		event_base_loop(pl_session_kept_base(), EVLOOP_NONBLOCK);
		c->stray = false;
		text = pl_strndup(line, strcspn(line, "\n"));
		for (size_t n = strlen(text); n && text[n - 1] == ' '; n--)
			text[n - 1] = '\0'; /* what completion left */
		if (*text) {
			history(h, &ev, H_ENTER, text);
			if (hpath)
				history(h, &ev, H_SAVE, hpath);
		}
		last = one_line(c, tok, text, &leave);
		free(text);
	}
	el_end(el);
	history_end(h);
	free(hpath);
	return last;
}

static int
piped(struct console *c, Tokenizer *tok, bool keep_going)
{
	char *line = NULL;
	size_t cap = 0;
	bool leave = false;
	int worst = 0, r;
	long no = 0;

	while (!leave && getline(&line, &cap, stdin) >= 0) {
		no++;
		line[strcspn(line, "\n")] = '\0';
		event_base_loop(pl_session_kept_base(), EVLOOP_NONBLOCK);
		if (c->stray) { /* Ctrl-C between two lines stops a script */
			worst = 130;
			break;
		}
		r = one_line(c, tok, line, &leave);
		if (r != 0 && r != 2 && !keep_going) { /* 2: plan's "changes" */
			pl_error("console: line %ld failed (exit %d): %s", no, r, line);
			worst = r;
			break;
		}
		if (r != 0 && r != 2)
			worst = r;
	}
	free(line);
	return worst;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	struct console c = { .ctx = ctx, .json = ctx->output == PL_OUT_JSON };
	Tokenizer *tok;
	int r;

	if ((r = pl_args_parse(&a, &pl_cmd_console, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	tok = tok_init(NULL);
	pl_session_keep_begin();
	/* Ctrl-C never stops the console itself: it stops the command running
	 * inside (through the loop) or the command's process (run_line) */
	c.sigint = evsignal_new(pl_session_kept_base(), SIGINT, on_interrupt, &c);
	if (c.sigint == NULL || evsignal_add(c.sigint, NULL) != 0)
		pl_die("console: cannot watch for Ctrl-C");
	load_guests(&c);
	r = isatty(STDIN_FILENO) ? interactive(&c, tok) : piped(&c, tok, pl_args_has(&a, O_KEEP));
	tok_end(tok);
	event_free(c.sigint);
	pl_session_keep_end();
	json_decref(c.guests);
	json_decref(c.values);
	free(c.config);
	pl_args_release(&a);
	return r;
}

const struct pl_cmd pl_cmd_console = {
	.name = "console",
	.summary = "an interactive shell over every command, with completion and history",
	.usage = "[--keep-going]",
	.help = "Runs pvelab commands typed at a prompt that shows how fresh the store is.\n"
		"Tab completes commands, their options and guest names; the history is kept\n"
		"in $XDG_STATE_HOME/pvelab/history. 'set -o json|text' and 'set -c FILE'\n"
		"change the output and the config for the next commands; Ctrl-C stops the\n"
		"running command (an apply stops scheduling new steps, as on the command\n"
		"line) and returns to the prompt; Ctrl-D or 'exit' leaves. With piped input\n"
		"each line is a command; the first that fails stops the console (its exit\n"
		"status is the console's) unless --keep-going. Every command\n"
		"that reads or changes the cluster (apply, destroy, rollback, import, adopt,\n"
		"sync, backup, snapshot-policy, deploy and verify among them) shares one API\n"
		"connection and one open store for the whole session; apply, destroy and\n"
		"rollback take Ctrl-C as on the command line (a third Ctrl-C fails what is\n"
		"still open and returns to the prompt); Ctrl-C during a deploy stops it where\n"
		"it waits (agent, SSH, healthchecks) and records its run as interrupted;\n"
		"Ctrl-C at the prompt drops the line. The others (serve, sim, proxy, mcp,\n"
		"check, discover, host, state, completion) run as their own pvelab process.",
	.opts = opts,
	.run = run,
};
