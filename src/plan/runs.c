/*
 * Run records for apply/destroy/rollback and the one-apply-per-cluster lock
 * (see runs.h): the state store keeps them (pl_state_run_*, pl_state_lock_*);
 * this file says which process this is and whether another one still lives.
 * A process is its pid, host name and start time (/proc/PID/stat field 22),
 * so that a pid reused after a crash is not mistaken for the process that died.
 */
#include "core/common.h"
#include "plan/runs.h"
#include "core/err.h"
#include "core/json.h"
#include "state/state.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

/* Start time of process pid in clock ticks after boot; 0 when unknown. */
static long long
proc_start(long pid)
{
	char path[64], buf[1024], *p;
	long long v = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the name (field 2) may hold spaces and parentheses: count after the last ')' */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p + 1, "%lld", &v) != 1)
		v = 0;
	return v;
}

static const char *
host_name(void)
{
	static char name[256];

	if (name[0] == '\0' && gethostname(name, sizeof(name) - 1) != 0)
		snprintf(name, sizeof(name), "localhost");
	return name;
}

/* Is the process (pid, host, start) still there? Another host's cannot be
 * checked from here: it counts as alive. */
static bool
holder_alive(long long pid, const char *host, long long pstart)
{
	long long now_start;

	if (host == NULL || strcmp(host, host_name()) != 0)
		return true;
	if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
		return false;
	now_start = proc_start((long)pid);
	return now_start == 0 || pstart == 0 || now_start == pstart;
}

static bool
alive(const struct pl_state_proc *p, void *arg)
{
	PL_UNUSED(arg);
	return holder_alive(p->pid, p->host, p->start);
}

/* This process. */
static struct pl_state_proc
self(void)
{
	struct pl_state_proc p = { (long long)getpid(), host_name(), proc_start((long)getpid()) };

	return p;
}

int
pl_runs_reap(struct pl_state *s, int *n, char **errmsg)
{
	return pl_state_runs_reap(s, alive, NULL, n, errmsg);
}

int
pl_runs_begin(struct pl_state *s, const char *kind, long long *id, char **errmsg)
{
	struct pl_state_proc me = self();

	return pl_state_run_begin(s, kind, &me, id, errmsg);
}

int
pl_runs_update(struct pl_state *s, long long id, const json_t *result, char **errmsg)
{
	return pl_state_run_update(s, id, result, errmsg);
}

int
pl_runs_set_project(struct pl_state *s, long long id, const char *project, char **errmsg)
{
	return pl_state_run_set_project(s, id, project, errmsg);
}

int
pl_runs_finish(struct pl_state *s, long long id, const char *status, const json_t *result,
	       char **errmsg)
{
	return pl_state_run_finish(s, id, status, result, errmsg);
}

int
pl_runs_get(struct pl_state *s, long long id, json_t **run, char **errmsg)
{
	return pl_state_run_get(s, id, alive, NULL, run, errmsg);
}

int
pl_runs_list(struct pl_state *s, const char *kind, int limit, json_t **runs, char **errmsg)
{
	return pl_state_runs(s, kind, limit, alive, NULL, runs, errmsg);
}

int
pl_runs_newest(struct pl_state *s, long long *id, const char **kind, char **errmsg)
{
	return pl_state_run_newest_change(s, id, kind, errmsg);
}

int
pl_runs_lock(struct pl_state *s, const char *name, json_t **stale, char **errmsg)
{
	struct pl_state_proc me = self();

	return pl_state_lock_take(s, name, &me, alive, NULL, stale, errmsg);
}

int
pl_runs_unlock(struct pl_state *s, const char *name, char **errmsg)
{
	struct pl_state_proc me = self();

	return pl_state_lock_release(s, name, &me, errmsg);
}
