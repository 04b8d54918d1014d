/*
 * Run records for apply/destroy/rollback and the one-apply-per-cluster lock
 * (see runs.h), on the state store's SQLite handle. Each write is its own
 * transaction. A run or lock names its process by pid, host name and the
 * process's start time (/proc/PID/stat field 22), so that a pid reused after
 * a crash is not mistaken for the process that died.
 */
#include "core/common.h"
#include "plan/runs.h"
#include "core/err.h"
#include "core/json.h"
#include "state/state.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
db_error(sqlite3 *db, char **errmsg)
{
	return pl_seterr(errmsg, PL_EDB, "state database: %s", sqlite3_errmsg(db));
}

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
is_self(long long pid, const char *host, long long pstart)
{
	return pid == (long long)getpid() && host && !strcmp(host, host_name()) &&
	       pstart == proc_start((long)getpid());
}

/* A dead run's result: the changes it was carrying out ("running") were
 * interrupted where they stood. NULL when there is none. */
static char *
reaped_summary(const char *text)
{
	json_t *res = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	json_t *c;
	long long cut = 0;
	size_t i;
	char *out;

	if (!json_is_object(res)) {
		json_decref(res);
		return NULL;
	}
	json_array_foreach(json_object_get(res, "changes"), i, c) {
		if (!strcmp(pl_json_str_or(c, "status", ""), "running")) {
			json_object_set_new(c, "status", json_string("interrupted"));
			cut++;
		}
	}
	json_object_set_new(res, "interrupted", json_integer(pl_json_int(res, "interrupted", 0) + cut));
	json_object_set_new(res, "stopped", json_true());
	out = pl_json_canonical(res);
	json_decref(res);
	return out;
}

int
pl_runs_reap(struct pl_state *s, int *n, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st, *up = NULL;
	int r = 0, count = 0;

	if (n)
		*n = 0;
	if (sqlite3_prepare_v2(db, "SELECT id,pid,host,pstart,summary FROM runs WHERE status='running'",
			       -1, &st, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *host = (const char *)sqlite3_column_text(st, 2);

		/* runs of a pvelab before pid was recorded stay as they are */
		if (sqlite3_column_type(st, 1) == SQLITE_NULL ||
		    holder_alive(sqlite3_column_int64(st, 1), host, sqlite3_column_int64(st, 3)))
			continue;
		if (up == NULL && sqlite3_prepare_v2(db, "UPDATE runs SET status='interrupted', "
						     "summary=coalesce(?2, summary) "
						     "WHERE id=?1 AND status='running'", -1, &up,
						     NULL) != SQLITE_OK) {
			r = db_error(db, errmsg);
			break;
		}
		char *sum = reaped_summary((const char *)sqlite3_column_text(st, 4));

		sqlite3_bind_int64(up, 1, sqlite3_column_int64(st, 0));
		if (sum)
			sqlite3_bind_text(up, 2, sum, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(up, 2);
		free(sum);
		if (sqlite3_step(up) != SQLITE_DONE) {
			r = db_error(db, errmsg);
			break;
		}
		sqlite3_reset(up);
		count++;
	}
	sqlite3_finalize(st);
	sqlite3_finalize(up);
	if (n)
		*n = count;
	return r;
}

int
pl_runs_begin(struct pl_state *s, const char *kind, long long *id, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st;
	int r = 0;

	if (sqlite3_prepare_v2(db, "INSERT INTO runs(kind,started,status,pid,host,pstart) "
			       "VALUES (?,?,'running',?,?,?)", -1, &st, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, now());
	sqlite3_bind_int64(st, 3, (long long)getpid());
	sqlite3_bind_text(st, 4, host_name(), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, proc_start((long)getpid()));
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_error(db, errmsg);
	else
		*id = sqlite3_last_insert_rowid(db);
	sqlite3_finalize(st);
	if (r != 0)
		return r;
	/* the lock this process holds, if any, names its run */
	if (sqlite3_prepare_v2(db, "UPDATE apply_lock SET run_id=? WHERE pid=? AND host=? AND pstart=?",
			       -1, &st, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	sqlite3_bind_int64(st, 1, *id);
	sqlite3_bind_int64(st, 2, (long long)getpid());
	sqlite3_bind_text(st, 3, host_name(), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, proc_start((long)getpid()));
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_error(db, errmsg);
	sqlite3_finalize(st);
	return r;
}

int
pl_runs_update(struct pl_state *s, long long id, const json_t *result, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	char *text = pl_json_canonical(result ? result : json_null());
	sqlite3_stmt *st;
	int r = 0;

	if (sqlite3_prepare_v2(db, "UPDATE runs SET summary=? WHERE id=?", -1, &st, NULL) != SQLITE_OK) {
		free(text);
		return db_error(db, errmsg);
	}
	sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_error(db, errmsg);
	sqlite3_finalize(st);
	free(text);
	return r;
}

int
pl_runs_set_project(struct pl_state *s, long long id, const char *project, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st;
	int r = 0;

	if (sqlite3_prepare_v2(db, "UPDATE runs SET project=? WHERE id=?", -1, &st, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_error(db, errmsg);
	sqlite3_finalize(st);
	return r;
}

int
pl_runs_finish(struct pl_state *s, long long id, const char *status, const json_t *result,
	       char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	char *text = pl_json_canonical(result ? result : json_null());
	sqlite3_stmt *st;
	int r = 0;

	if (sqlite3_prepare_v2(db, "UPDATE runs SET finished=?, status=?, summary=? WHERE id=?", -1,
			       &st, NULL) != SQLITE_OK) {
		free(text);
		return db_error(db, errmsg);
	}
	sqlite3_bind_double(st, 1, now());
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_error(db, errmsg);
	sqlite3_finalize(st);
	free(text);
	return r;
}

static json_t *
row(sqlite3_stmt *st)
{
	const char *summary = (const char *)sqlite3_column_text(st, 5);
	json_t *res = summary ? json_loads(summary, JSON_DECODE_ANY, NULL) : NULL;
	json_t *o;

	o = json_pack("{s:I,s:s,s:f,s:o,s:s,s:o,s:s?}", "id", (json_int_t)sqlite3_column_int64(st, 0),
		      "kind", (const char *)sqlite3_column_text(st, 1), "started",
		      sqlite3_column_double(st, 2), "finished",
		      sqlite3_column_type(st, 3) == SQLITE_NULL ? json_null()
							       : json_real(sqlite3_column_double(st, 3)),
		      "status", (const char *)sqlite3_column_text(st, 4), "result",
		      res ? res : json_null(), "project", (const char *)sqlite3_column_text(st, 6));
	if (sqlite3_column_type(st, 7) != SQLITE_NULL)
		json_object_set_new(o, "pid", json_integer(sqlite3_column_int64(st, 7)));
	if (sqlite3_column_type(st, 8) != SQLITE_NULL)
		json_object_set_new(o, "host", json_string((const char *)sqlite3_column_text(st, 8)));
	return o;
}

int
pl_runs_get(struct pl_state *s, long long id, json_t **run, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st;
	int r;

	*run = NULL;
	pl_runs_reap(s, NULL, NULL); /* best effort: a busy store shows the run as it was */
	if (sqlite3_prepare_v2(db, "SELECT id,kind,started,finished,status,summary,project,pid,host FROM runs WHERE id=?",
			       -1, &st, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	sqlite3_bind_int64(st, 1, id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*run = row(st);
		r = 0;
	} else if (r == SQLITE_DONE) {
		r = pl_seterr(errmsg, PL_ENOENT, "no run %lld in the state database", id);
	} else {
		r = db_error(db, errmsg);
	}
	sqlite3_finalize(st);
	return r;
}

int
pl_runs_list(struct pl_state *s, const char *kind, int limit, json_t **runs, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st;
	int r;

	*runs = json_array();
	pl_runs_reap(s, NULL, NULL); /* best effort: a busy store shows the runs as they were */
	if (sqlite3_prepare_v2(db,
			       "SELECT id,kind,started,finished,status,summary,project,pid,host FROM runs "
			       "WHERE ?1 IS NULL OR kind=?1 ORDER BY id DESC LIMIT ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	if (kind)
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit);
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(*runs, row(st));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : db_error(db, errmsg);
}

int
pl_runs_newest(struct pl_state *s, long long *id, const char **kind, char **errmsg)
{
	static const char *const kinds[] = { "apply", "destroy", "rollback" };
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st;
	int r;

	*id = 0;
	if (kind)
		*kind = kinds[0];
	if (sqlite3_prepare_v2(db, "SELECT id,kind FROM runs WHERE kind IN ('apply','destroy','rollback') "
			       "ORDER BY id DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		for (size_t i = 0; kind && i < PL_ARRAY_LEN(kinds); i++)
			if (!strcmp((const char *)sqlite3_column_text(st, 1), kinds[i]))
				*kind = kinds[i];
	}
	sqlite3_finalize(st);
	return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : db_error(db, errmsg);
}

/* The lock's holder in words, for the refusal. */
static int
busy_error(sqlite3_stmt *st, char **errmsg)
{
	time_t t = (time_t)sqlite3_column_double(st, 3);
	char since[16], run[40] = "";
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(since, sizeof(since), "%H:%M:%S", &tm);
	if (sqlite3_column_type(st, 4) != SQLITE_NULL)
		snprintf(run, sizeof(run), "run %lld, ", (long long)sqlite3_column_int64(st, 4));
	return pl_seterr(errmsg, PL_ECONFLICT,
			 "another apply is running (%spid %lld on host %s, since %s); wait for it "
			 "or stop it", run, (long long)sqlite3_column_int64(st, 0),
			 (const char *)sqlite3_column_text(st, 1), since);
}

int
pl_runs_lock(struct pl_state *s, const char *name, json_t **stale, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st = NULL;
	long long pid = (long long)getpid(), pstart = proc_start((long)getpid());
	int r = 0, step;

	if (stale)
		*stale = NULL;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	if (sqlite3_prepare_v2(db, "SELECT pid,host,pstart,started,run_id FROM apply_lock WHERE name=?",
			       -1, &st, NULL) != SQLITE_OK) {
		r = db_error(db, errmsg);
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		long long hpid = sqlite3_column_int64(st, 0), hstart = sqlite3_column_int64(st, 2);
		const char *host = (const char *)sqlite3_column_text(st, 1);

		if (!is_self(hpid, host, hstart) && holder_alive(hpid, host, hstart)) {
			r = busy_error(st, errmsg);
			goto out;
		}
		if (stale && !is_self(hpid, host, hstart))
			*stale = json_pack("{s:I,s:s,s:f,s:o}", "pid", (json_int_t)hpid, "host",
					   host ? host : "?", "started", sqlite3_column_double(st, 3),
					   "run_id", sqlite3_column_type(st, 4) == SQLITE_NULL
							     ? json_null()
							     : json_integer(sqlite3_column_int64(st, 4)));
	} else if (step != SQLITE_DONE) {
		r = db_error(db, errmsg);
		goto out;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO apply_lock(name,pid,host,pstart,started,run_id) "
			       "VALUES (?,?,?,?,?,NULL)", -1, &st, NULL) != SQLITE_OK) {
		st = NULL;
		r = db_error(db, errmsg);
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, pid);
	sqlite3_bind_text(st, 3, host_name(), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, pstart);
	sqlite3_bind_double(st, 5, now());
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_error(db, errmsg);
out:
	sqlite3_finalize(st);
	if (r == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		r = db_error(db, errmsg);
	if (r != 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		if (stale) {
			json_decref(*stale);
			*stale = NULL;
		}
	}
	return r;
}

int
pl_runs_unlock(struct pl_state *s, const char *name, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st;
	int r = 0;

	if (sqlite3_prepare_v2(db, "DELETE FROM apply_lock WHERE name=? AND pid=? AND host=? AND pstart=?",
			       -1, &st, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (long long)getpid());
	sqlite3_bind_text(st, 3, host_name(), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, proc_start((long)getpid()));
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_error(db, errmsg);
	sqlite3_finalize(st);
	return r;
}
