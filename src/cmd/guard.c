/*
 * The guard around runs that change guests (see guard.h): the lock is named
 * by the cluster's normalised endpoints (PVELAB_URL or cluster.endpoints,
 * sorted, so the order of failover does not matter), and lives in the state
 * store next to the runs. The host-wide lock file is flock(2)ed: the kernel
 * releases it when its holder dies, however it dies; it holds the holder's
 * pid, start and state database for the refusal. Other hosts are not seen.
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
#include "state/state.h"
#include "pve/client.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
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

/* $XDG_RUNTIME_DIR/pvelab, else /tmp/pvelab-UID: made 0700, and used only
 * when it is a directory of this user's (not a link another user planted). */
static char *
lock_dir(void)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char *dir = xdg && *xdg ? pl_asprintf("%s/pvelab", xdg)
				: pl_asprintf("/tmp/pvelab-%lu", (unsigned long)getuid());
	struct stat sb;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		goto bad;
	if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != getuid() ||
	    (sb.st_mode & 077))
		goto bad;
	return dir;
bad:
	pl_log_info("no lock file for this host in '%s': only the state database's lock serialises applies", dir);
	free(dir);
	return NULL;
}

/* The refusal from what the holder wrote into the lock file. */
static int
host_busy(int fd, char **errmsg)
{
	char text[1024], since[16] = "?";
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	json_t *h = NULL;
	int r;

	if (n > 0) {
		text[n] = '\0';
		h = json_loads(text, 0, NULL);
	}
	if (h && pl_json_num(h, "started", 0) > 0) {
		time_t t = (time_t)pl_json_num(h, "started", 0);
		struct tm tm;

		localtime_r(&t, &tm);
		strftime(since, sizeof(since), "%H:%M:%S", &tm);
	}
	r = pl_seterr(errmsg, PL_ECONFLICT,
		      "another apply is running (pid %lld on host %s, since %s, state database '%s'); "
		      "wait for it or stop it", pl_json_int(h, "pid", 0),
		      pl_json_str_or(h, "host", "?"), since, pl_json_str_or(h, "state", "?"));
	json_decref(h);
	return r;
}

/* Serialise the applies to one cluster on this host, whatever state database
 * they use. Where no lock file can be had, the store's lock is all there is. */
static int
host_lock(struct pl_guard *g, char **errmsg)
{
	char sha[65], host[256] = "?", *dir = lock_dir(), *path, *text, *shown;
	struct stat a, b;
	json_t *me;
	int fd = -1;

	if (dir == NULL)
		return 0;
	pl_sha256_hex(g->key, strlen(g->key), sha);
	path = pl_asprintf("%s/apply-%.16s.lock", dir, sha);
	free(dir);
	/* the holder unlinks the file when done: a lock taken on a file that is
	 * no longer the one at path is worth nothing, so try again */
	for (int tries = 0; tries < 5; tries++) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			pl_log_info("cannot open the lock file '%s': %s", path, strerror(errno));
			free(path);
			return 0;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			int r = errno == EWOULDBLOCK ? host_busy(fd, errmsg) : 0;

			close(fd);
			free(path);
			return r;
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		free(path);
		return 0;
	}
	gethostname(host, sizeof(host) - 1);
	shown = pl_state_display(g->s->state_path ? g->s->state_path : "?");
	me = json_pack("{s:I,s:s,s:f,s:s,s:s}", "pid", (json_int_t)getpid(), "host", host,
		       "started", (double)time(NULL), "state", shown, "cluster", g->key);
	free(shown);
	text = json_dumps(me, JSON_COMPACT);
	if (ftruncate(fd, 0) != 0 || pwrite(fd, text, strlen(text), 0) < 0)
		pl_log_info("cannot write the lock file: %s", strerror(errno));
	free(text);
	json_decref(me);
	g->fd = fd;
	g->fd_held = true;
	g->fd_path = path;
	return 0;
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
	if ((r = host_lock(g, errmsg)) != 0) {
		json_decref(stale);
		return r; /* pl_guard_release gives the store's lock back */
	}
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

/* Guards armed now: the console leaves a Ctrl-C to them. */
static int armed;

bool
pl_guard_armed(void)
{
	return armed > 0;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct pl_guard *g = arg;
	const char *name = sig == SIGTERM ? "terminated" : "interrupted";

	(void)what;
	if (g->signo && (g->over || g->stop >= 2) && g->s->base == pl_session_kept_base()) {
		/* inside the console, which must go on: every request and task
		 * wait of the command fails now, and it returns */
		fprintf(stderr, "\npvelab: stopping at once: every request still open fails\n");
		pl_pve_interrupt(g->s->pve);
		return;
	}
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

	if (!g->ev[0] && !g->ev[1])
		armed++;
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
	if (g->ev[0] || g->ev[1])
		armed--;
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
	if (g->fd_held) {
		unlink(g->fd_path); /* before the flock goes: see host_lock */
		close(g->fd);
	}
	g->fd_held = false;
	free(g->fd_path);
	g->fd_path = NULL;
	free(g->key);
	g->key = NULL;
}

bool
pl_guard_lost(struct pl_guard *g)
{
	if (!g->locked || g->stop >= 1 || !pl_state_lock_lost(g->s->state, g->key))
		return false;
	g->stop = 1; /* PL_APPLY_STOP */
	return true;
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
