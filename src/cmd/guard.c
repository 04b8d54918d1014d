/*
 * The guard around runs that change guests (see guard.h): the lock is named
 * by the cluster's normalised endpoints (PVELAB_URL or cluster.endpoints,
 * sorted, so the order of failover does not matter), and lives in the state
 * store next to the runs.
 */
#include "core/common.h"
#include "cmd/guard.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/str.h"
#include "core/json.h"
#include "core/log.h"
#include "plan/runs.h"
#include "pve/client.h"

#include <event2/event.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "cluster https://a:8006,https://b:8006" */
static char *
lock_name(const struct pl_session *s)
{
	const char *url = getenv("PVELAB_URL");
	const json_t *cl = s->cfg ? pl_config_get(s->cfg, "/cluster") : NULL;
	char **eps = NULL, *r;
	size_t n = 0, i;
	struct pl_buf b;

	if (url && *url) {
		char *copy = pl_strdup(url), *p = copy, *comma;

		do {
			if ((comma = strchr(p, ',')) != NULL)
				*comma = '\0';
			if (*p) {
				eps = pl_realloc(eps, (n + 1) * sizeof(*eps));
				eps[n] = pl_pve_endpoint_norm(p, NULL);
				if (eps[n] == NULL)
					eps[n] = pl_strdup(p);
				n++;
			}
			p = comma + 1;
		} while (comma);
		free(copy);
	} else {
		const json_t *e;

		json_array_foreach(json_object_get(cl, "endpoints"), i, e) {
			eps = pl_realloc(eps, (n + 1) * sizeof(*eps));
			eps[n] = pl_pve_endpoint_norm(json_string_value(e), NULL);
			if (eps[n] == NULL)
				eps[n] = pl_strdup(json_string_value(e));
			n++;
		}
	}
	if (n > 1)
		qsort(eps, n, sizeof(*eps), cmp_str);
	pl_buf_init(&b, 0);
	pl_buf_addstr(&b, "cluster ");
	for (i = 0; i < n; i++) {
		pl_buf_addf(&b, "%s%s", i ? "," : "", eps[i]);
		free(eps[i]);
	}
	free(eps);
	r = pl_strdup(b.data);
	pl_buf_release(&b);
	return r;
}

int
pl_guard_take(struct pl_guard *g, struct pl_session *s, char **errmsg)
{
	json_t *stale = NULL;
	int r, reaped = 0;

	memset(g, 0, sizeof(*g));
	g->s = s;
	g->key = lock_name(s);
	if ((r = pl_runs_lock(s->state, g->key, &stale, errmsg)) != 0)
		return r;
	g->locked = true;
	if (stale) {
		time_t t = (time_t)pl_json_num(stale, "started", 0);
		char since[16];
		struct tm tm;

		localtime_r(&t, &tm);
		strftime(since, sizeof(since), "%H:%M:%S", &tm);
		pl_log_info("took over a stale apply lock (pid %lld on host %s, since %s%s%.0lld): "
			    "that process is gone", pl_json_int(stale, "pid", 0),
			    pl_json_str_or(stale, "host", "?"), since,
			    json_is_integer(json_object_get(stale, "run_id")) ? ", run " : "",
			    pl_json_int(stale, "run_id", 0));
		json_decref(stale);
	}
	/* the runs of a holder that died are interrupted, not running */
	if (pl_runs_reap(s->state, &reaped, NULL) == 0 && reaped)
		pl_log_info("recorded %d run%s whose process is gone as interrupted", reaped,
			    reaped == 1 ? "" : "s");
	return 0;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct pl_guard *g = arg;
	const char *name = sig == SIGTERM ? "terminated" : "interrupted";

	(void)what;
	if (g->signo && (g->over || g->stop >= 2)) {
		/* asked twice with nothing left to wait for: go now */
		signal((int)sig, SIG_DFL);
		raise((int)sig);
		return;
	}
	if (g->signo == 0)
		g->signo = (int)sig;
	if (g->over)
		fprintf(stderr, "\npvelab: %s: recording the run first (again to quit at once)\n", name);
	else if (g->stop == 0) {
		g->stop = 1; /* PL_APPLY_STOP */
		fprintf(stderr, "\npvelab: %s: starting nothing new; the changes in flight finish "
			"their current task (%s again to stop waiting; Proxmox goes on with the "
			"tasks)\n", name, sig == SIGTERM ? "SIGTERM" : "Ctrl-C");
	} else {
		g->stop = 2; /* PL_APPLY_ABANDON */
		fprintf(stderr, "\npvelab: no longer waiting for the tasks in flight\n");
	}
	fflush(stderr);
}

void
pl_guard_arm(struct pl_guard *g)
{
	static const int sigs[2] = { SIGINT, SIGTERM };

	for (int i = 0; i < 2; i++) {
		if (g->ev[i])
			continue;
		g->ev[i] = evsignal_new(g->s->base, sigs[i], on_signal, g);
		if (g->ev[i] && evsignal_add(g->ev[i], NULL) != 0) {
			event_free(g->ev[i]);
			g->ev[i] = NULL;
		}
	}
}

void
pl_guard_over(struct pl_guard *g)
{
	g->over = true;
}

static void
disarm(struct pl_guard *g)
{
	for (int i = 0; i < 2; i++) {
		if (g->ev[i])
			event_free(g->ev[i]);
		g->ev[i] = NULL;
	}
}

void
pl_guard_release(struct pl_guard *g)
{
	char *err = NULL;

	disarm(g);
	if (g->locked && pl_runs_unlock(g->s->state, g->key, &err) != 0) {
		pl_error("%s (the lock dies with this process anyway)", err);
		free(err);
	}
	g->locked = false;
	free(g->key);
	g->key = NULL;
}

int
pl_guard_exit(const struct pl_guard *g, int code)
{
	return g->signo ? 128 + g->signo : code;
}

/* Quote s for a POSIX shell when it needs it. */
static void
add_shell_word(struct pl_buf *b, const char *s)
{
	if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			   "_-./:=@%+,") == strlen(s)) {
		pl_buf_addstr(b, s);
		return;
	}
	pl_buf_addstr(b, "'");
	for (; *s; s++) {
		if (*s == '\'')
			pl_buf_addstr(b, "'\\''");
		else
			pl_buf_addf(b, "%c", *s);
	}
	pl_buf_addstr(b, "'");
}

char *
pl_cmd_shell_word(const char *s)
{
	struct pl_buf b;
	char *r;

	pl_buf_init(&b, 0);
	add_shell_word(&b, s);
	r = pl_strdup(b.data);
	pl_buf_release(&b);
	return r;
}

char *
pl_cmd_invocation(const struct pl_ctx *ctx)
{
	struct pl_buf b;
	char *r;

	pl_buf_init(&b, 0);
	pl_buf_addstr(&b, "pvelab");
	if (ctx->config_given) {
		pl_buf_addstr(&b, " -c ");
		add_shell_word(&b, ctx->config_path);
	}
	r = pl_strdup(b.data);
	pl_buf_release(&b);
	return r;
}
