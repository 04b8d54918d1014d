/*
 * `pvelab mcp`: an MCP server on stdin/stdout for an AI assistant that
 * starts pvelab itself. One JSON-RPC message per line; stdout carries
 * nothing else (logs go to stderr, even with -v). Read-only unless
 * --allow-write.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/mcp_tools.h"
#include "core/buf.h"
#include "config/config.h"
#include "core/log.h"
#include "serve/runs.h"
#include "serve/serve.h"
#include "state/state.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

/* The longest message read: a line beyond it is answered with an error and skipped. */
#define MAX_LINE ((size_t)4 << 20)

static const struct pl_opt opts[] = {
	{ "allow-write", 0, NULL,
	  "offer the tools that change the cluster (power, snapshot, backup, sync, apply of a "
	  "plan_id, rollback, destroy with confirm)" },
	{ NULL, 0, NULL, NULL },
};

struct stdio {
	struct pl_mcp_host h;
	struct pl_mcp_sess *ss;
	struct event *in;
	struct pl_buf line;
	bool skipping; /* the rest of a line too long to read */
	bool closing;
	bool file; /* stdin is a file (or /dev/null): read it without polling */
	struct event_base *base;
	struct follow *fw; /* each cluster's store following its changes */
	size_t nfw;
};

/* A cluster's store following the changes its runs engine made, as pvelab
 * serve's does: one sync at a time, one more when asked meanwhile. */
struct follow {
	struct stdio *io;
	struct pl_session *s;
	struct pl_cmd_sync_job *sync;
	bool sync_again;
};

/* A cluster after the first of several: its context (--cluster), session
 * and runs engine. */
struct other {
	struct pl_ctx ctx;
	struct pl_session s;
	struct pl_serve_runs *runs;
};

static bool
syncing(const struct stdio *io)
{
	for (size_t i = 0; i < io->nfw; i++)
		if (io->fw[i].sync)
			return true;
	return false;
}

static void
on_send(const char *text, size_t len, void *ctx, bool final, void *arg)
{
	struct stdio *io = arg;

	/* one message per line: compact JSON has no newline in it */
	if (fwrite(text, 1, len, stdout) != len || fputc('\n', stdout) == EOF ||
	    fflush(stdout) != 0) {
		pl_log_error("mcp: cannot write to stdout (%s): stopping", strerror(errno));
		event_base_loopexit(io->base, NULL);
	}
}

static void
on_idle(void *arg)
{
	struct stdio *io = arg;

	if (io->closing && io->h.njobs == 0 && io->h.rjobs == NULL && !syncing(io))
		event_base_loopexit(io->base, NULL);
}

/* stdin closed: cancel what runs (Ctrl-C to each command), stop once they end. */
static void
closing(struct stdio *io)
{
	io->closing = true;
	event_del(io->in);
	pl_mcp_sess_free(io->ss);
	io->ss = NULL;
	if (io->h.njobs == 0 && io->h.rjobs == NULL && !syncing(io))
		event_base_loopexit(io->base, NULL);
	else /* the commands interrupted, the store's sync after a change */
		event_base_loopexit(io->base, &(struct timeval){ 10, 0 });
}

static void
message(struct stdio *io, char *data, size_t len)
{
	if (len && data[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	pl_mcp_handle(io->ss->m, data, len, NULL);
}

/* A line over MAX_LINE: answered once, the rest of it skipped. */
static void
too_big(struct stdio *io)
{
	char err[160];

	snprintf(err, sizeof(err),
		 "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
		 "\"Invalid Request: a message is at most %zu bytes\"}}",
		 MAX_LINE);
	on_send(err, strlen(err), NULL, true, io);
	pl_buf_reset(&io->line);
	io->skipping = true;
}

static void
on_stdin(evutil_socket_t fd, short what, void *arg)
{
	struct stdio *io = arg;
	char chunk[65536];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	size_t from = 0;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (io->line.len && !io->skipping)
			message(io, io->line.data, io->line.len);
		closing(io);
		return;
	}
	for (size_t i = 0; i < (size_t)n; i++) {
		if (chunk[i] != '\n')
			continue;
		if (io->skipping)
			io->skipping = false;
		else if (pl_buf_add(&io->line, chunk + from, i - from) != 0)
			too_big(io), io->skipping = false;
		else
			message(io, io->line.data, io->line.len);
		pl_buf_reset(&io->line);
		from = i + 1;
	}
	if (!io->skipping && pl_buf_add(&io->line, chunk + from, (size_t)n - from) != 0)
		too_big(io);
	if (io->file && !io->closing) /* the next chunk after what this one started */
		event_active(io->in, EV_READ, 0);
}

static void on_idle(void *arg);
static void on_changed(void *arg);

static void
on_synced(int err, const struct pl_state_counts *cnt, json_t *changes, json_t *snap,
	  long long run_id, size_t unread, const char *errmsg, void *arg)
{
	struct follow *f = arg;

	f->sync = NULL;
	if (err)
		pl_log_warn("mcp: sync after a change failed: %s", errmsg ? errmsg : "?");
	if (f->sync_again) {
		f->sync_again = false;
		on_changed(f);
	}
	if (f->sync == NULL)
		on_idle(f->io);
}

static void
on_changed(void *arg)
{
	struct follow *f = arg;
	char *err = NULL;

	if (f->sync) {
		f->sync_again = true;
		return;
	}
	f->sync = pl_cmd_sync_start(f->s, false, false, false, on_synced, f, &err);
	if (f->sync == NULL)
		pl_log_warn("mcp: cannot sync after a change: %s", err ? err : "?");
	free(err);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct stdio io;
	struct pl_args a;
	struct event *sigint = NULL, *sigterm = NULL;
	struct pl_serve_runs *runs = NULL;
	struct pl_mcp_cluster *mcl = NULL;
	struct other *O = NULL; /* the clusters after the first */
	struct pl_ctx first;
	struct stat st;
	bool host = false;
	char *err = NULL, *shown, **cls = NULL;
	size_t ncl = 0;
	int r, rc = PL_EXIT_ERROR;

	memset(&s, 0, sizeof(s));
	memset(&io, 0, sizeof(io));
	if ((r = pl_args_parse(&a, &pl_cmd_mcp, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	pl_ctx_apply_log(ctx);
	pl_log_set_stream(stderr);
	/* several clusters and no --cluster: the first is this session's, the
	 * tools name the one they work on (cluster) */
	ncl = pl_cmd_clusters(ctx, &cls);
	first = *ctx;
	if (ncl > 1)
		first.cluster = cls[0];
	if (pl_session_open(&s, &first, PL_NEED_STATE, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (s.base == NULL && (s.base = event_base_new()) == NULL) {
		pl_error("cannot create an event loop");
		goto out;
	}
	io.base = s.base;
	io.nfw = ncl;
	io.fw = pl_calloc(ncl, sizeof(*io.fw));
	io.fw[0] = (struct follow){ &io, &s, NULL, false };
	/* plan, apply, rollback and snapshots go through the runs engine, as on
	 * pvelab serve; without a cluster only the store is read */
	if (((getenv("PVELAB_URL") && *getenv("PVELAB_URL")) ||
	     (s.cfg && pl_config_get(s.cfg, "/cluster"))) &&
	    pl_session_api(&s, &err) != 0) {
		pl_error("mcp: %s", err);
		goto out;
	}
	if (s.pve)
		runs = pl_serve_runs_new(&s, NULL, on_changed, &io.fw[0]);
	if (ncl > 1) {
		mcl = pl_calloc(ncl, sizeof(*mcl));
		O = pl_calloc(ncl - 1, sizeof(*O));
		mcl[0] = (struct pl_mcp_cluster){ cls[0], &s, runs };
	}
	for (size_t i = 1; i < ncl; i++) {
		struct other *o = &O[i - 1];

		o->ctx = *ctx;
		o->ctx.cluster = cls[i];
		if (pl_session_open_on(&o->s, &o->ctx, s.base, &err) != 0) {
			pl_error("mcp: cluster '%s': %s", cls[i], err);
			goto out;
		}
		io.fw[i] = (struct follow){ &io, &o->s, NULL, false };
		o->runs = pl_serve_runs_new(&o->s, NULL, on_changed, &io.fw[i]);
		mcl[i] = (struct pl_mcp_cluster){ cls[i], &o->s, o->runs };
	}
	if (pl_mcp_host_init(&io.h, &s, runs, &err) != 0) {
		pl_error("mcp: %s", err);
		goto out;
	}
	host = true;
	if (ncl > 1)
		pl_mcp_host_set_clusters(&io.h, mcl, ncl);
	io.h.on_idle = on_idle;
	io.h.idle_arg = &io;
	pl_buf_init(&io.line, MAX_LINE);
	io.ss = pl_mcp_sess_new(&io.h, pl_args_has(&a, 0) ? PL_ROLE_ADMIN : PL_ROLE_VIEWER, on_send,
				&io);
	/* epoll cannot wait on a file: one is read chunk by chunk between events */
	io.file =
		fstat(0, &st) == 0 && (S_ISREG(st.st_mode) || (S_ISCHR(st.st_mode) && !isatty(0)));
	if (io.file) {
		io.in = event_new(s.base, 0, 0, on_stdin, &io);
		event_active(io.in, EV_READ, 0);
	} else {
		evutil_make_socket_nonblocking(0);
		io.in = event_new(s.base, 0, EV_READ | EV_PERSIST, on_stdin, &io);
		if (event_add(io.in, NULL) != 0) {
			pl_error("mcp: cannot wait on stdin (start pvelab mcp from an MCP client)");
			goto out;
		}
	}
	sigint = evsignal_new(s.base, SIGINT, on_signal, s.base);
	sigterm = evsignal_new(s.base, SIGTERM, on_signal, s.base);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	shown = ncl > 1 ? pl_config_cluster_list(s.cfg) : pl_state_display(s.state_path);
	pl_log_info("mcp: serving on stdio (%s), %s %s",
		    pl_args_has(&a, 0) ? "writes allowed" : "read-only",
		    ncl > 1 ? "clusters" : "state", shown);
	free(shown);
	event_base_dispatch(s.base);
	rc = PL_EXIT_OK;
out:
	pl_mcp_sess_free(io.ss);
	for (size_t i = 0; i < io.nfw; i++)
		if (io.fw[i].sync)
			pl_cmd_sync_cancel(io.fw[i].sync);
	if (host)
		pl_mcp_host_release(&io.h);
	pl_serve_runs_free(runs);
	for (size_t i = 1; O && i < ncl; i++) {
		pl_serve_runs_free(O[i - 1].runs);
		pl_session_close(&O[i - 1].s);
	}
	free(O);
	free(mcl);
	free(io.fw);
	if (io.in)
		event_free(io.in);
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	pl_buf_release(&io.line);
	free(err);
	pl_session_close(&s);
	pl_cmd_clusters_free(cls, ncl);
	return rc;
}

const struct pl_cmd pl_cmd_mcp = {
	.name = "mcp",
	.summary = "serve MCP (Model Context Protocol) on stdin/stdout for an AI assistant",
	.usage = "[--allow-write]",
	.help = "Tools are the read commands (status, list, describe, history, snapshots,\n"
		"backups, doctor, check, validate, plan, version, config-schema), answering\n"
		"their -o json as structuredContent, and discovered (the hosts pvelab\n"
		"discover --save remembered). With --allow-write also the power\n"
		"commands, snapshot, snapshot-delete, snapshot-rollback (the guest repeated in\n"
		"confirm), backup, sync, apply (of a plan_id the plan tool returned; a stale\n"
		"plan is refused), rollback and destroy (its guests repeated in confirm).\n"
		"Resources: pvelab://cluster, pvelab://config, pvelab://plan/latest,\n"
		"pvelab://guest/NAME, with subscriptions. With several clusters (clusters:)\n"
		"each tool takes cluster, as --cluster. pvelab serve offers the same at /mcp\n"
		"(docs/mcp.md).",
	.opts = opts,
	.run = run,
};
