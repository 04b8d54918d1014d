/*
 * Run records (sync, apply, destroy, rollback, adopt) and the
 * one-apply-per-cluster lock, in the runs and apply_lock tables. Each write is
 * a transaction of its own. A run or a lock names its process (see struct
 * pl_state_proc); whether that process still lives is the caller's answer.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/err.h"
#include "core/json.h"
#include "state/internal.h"

#include <stdio.h>
#include <time.h>

static bool
same_proc(const struct pl_state_proc *a, long long pid, const char *host, long long start)
{
	return a->pid == pid && host && a->host && !strcmp(a->host, host) && a->start == start;
}

/* A dead run's result: the changes it was carrying out ("running") were
 * interrupted where they stood. NULL when there is none. */
static json_t *
interrupted_result(const char *text)
{
	json_t *res = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	json_t *c;
	long long cut = 0;
	size_t i;

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
	return res;
}

/* Is the run of this row (pid, host, pstart at 1..3) one whose process is
 * gone? Runs of a pvelab before pid was recorded stay as they are. */
static bool
row_dead(struct pl_stmt *st, int col, pl_state_alive_fn alive, void *arg)
{
	struct pl_state_proc p;

	if (alive == NULL || pl_stmt_null(st, col))
		return false;
	p.pid = pl_stmt_int64(st, col);
	p.host = pl_stmt_text(st, col + 1);
	p.start = pl_stmt_int64(st, col + 2);
	return !alive(&p, arg);
}

int
pl_state_runs_reap(struct pl_state *s, pl_state_alive_fn alive, void *arg, int *n, char **errmsg)
{
	struct pl_stmt *st = NULL, *up = NULL;
	int r = 0, count = 0, rc;

	if (n)
		*n = 0;
	if (s->ro)
		return pl_seterr(errmsg, PL_EDB, "state database '%s' is open read-only", s->path);
	if ((r = pl_state_prep(s, "SELECT id,pid,host,pstart,summary FROM runs "
			       "WHERE status='running'", &st, errmsg)) != 0)
		return r;
	while ((rc = pl_stmt_step(st)) == PL_DB_ROW) {
		json_t *res;
		char *sum;

		if (!row_dead(st, 1, alive, arg))
			continue;
		if (up == NULL && (r = pl_state_prep(s, "UPDATE runs SET status='interrupted', "
						     "summary=coalesce(?2, summary) "
						     "WHERE id=?1 AND status='running'", &up,
						     errmsg)) != 0)
			break;
		res = interrupted_result(pl_stmt_text(st, 4));
		sum = res ? pl_json_canonical(res) : NULL;
		pl_stmt_bind_int64(up, 1, pl_stmt_int64(st, 0));
		pl_stmt_bind_text(up, 2, sum);
		r = pl_state_step_done(s, up, errmsg);
		/* what the run changed before it died is history too */
		if (r == 0 && res)
			r = pl_state_run_history(s, pl_stmt_int64(st, 0), res, errmsg);
		json_decref(res);
		free(sum);
		if (r != 0)
			break;
		count++;
	}
	if (r == 0 && rc != PL_DB_DONE)
		r = pl_state_dberr(s, errmsg, "read runs");
	pl_stmt_finalize(st);
	pl_stmt_finalize(up);
	if (n)
		*n = count;
	return r;
}

int
pl_state_run_begin(struct pl_state *s, const char *kind, const struct pl_state_proc *self,
		   long long *id, char **errmsg)
{
	struct pl_stmt *st = NULL;
	/* a sync of this connection's is recording (a server's, between turns
	 * of its loop): the run joins its transaction, as the run's updates
	 * and check events do, where a BEGIN would fail */
	bool own = !pl_state_in_transaction(s);
	int r;

	if (own && (r = pl_state_begin(s, true, errmsg)) != 0)
		return r;
	if ((r = pl_state_prep(s,
			       "INSERT INTO runs(kind,started,status,pid,host,pstart) "
			       "VALUES (?,?,'running',?,?,?) RETURNING id",
			       &st, errmsg)) != 0)
		goto out;
	pl_stmt_bind_text(st, 1, kind);
	pl_stmt_bind_double(st, 2, pl_state_now());
	pl_stmt_bind_int64(st, 3, self->pid);
	pl_stmt_bind_text(st, 4, self->host);
	pl_stmt_bind_int64(st, 5, self->start);
	if ((r = pl_state_step_id(s, st, id, errmsg)) != 0)
		goto out;
	pl_stmt_finalize(st);
	/* the lock this process holds, if any, names its run */
	if ((r = pl_state_prep(s, "UPDATE apply_lock SET run_id=? WHERE pid=? AND host=? AND "
			       "pstart=?", &st, errmsg)) != 0)
		goto out;
	pl_stmt_bind_int64(st, 1, *id);
	pl_stmt_bind_int64(st, 2, self->pid);
	pl_stmt_bind_text(st, 3, self->host);
	pl_stmt_bind_int64(st, 4, self->start);
	r = pl_state_step_done(s, st, errmsg);
out:
	pl_stmt_finalize(st);
	if (!own)
		return r;
	if (r == 0 && (r = pl_state_commit(s, errmsg)) == 0)
		return 0;
	pl_state_rollback(s);
	return r;
}

/* UPDATE runs SET <set> WHERE id=?: text (may be NULL) bound first. */
static int
run_set(struct pl_state *s, long long id, const char *set, const char *text, char **errmsg)
{
	char *sql = pl_asprintf("UPDATE runs SET %s WHERE id=?2", set);
	struct pl_stmt *st;
	int r = pl_state_prep(s, sql, &st, errmsg);

	free(sql);
	if (r != 0)
		return r;
	pl_stmt_bind_text(st, 1, text);
	pl_stmt_bind_int64(st, 2, id);
	r = pl_state_step_done(s, st, errmsg);
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_run_set_project(struct pl_state *s, long long id, const char *project, char **errmsg)
{
	return run_set(s, id, "project=?1", project, errmsg);
}

int
pl_state_run_update(struct pl_state *s, long long id, const json_t *result, char **errmsg)
{
	char *text = pl_json_canonical(result ? result : json_null());
	int r = run_set(s, id, "summary=?1", text, errmsg);

	free(text);
	return r;
}

int
pl_state_run_finish(struct pl_state *s, long long id, const char *status, const json_t *result,
		    char **errmsg)
{
	char *text = pl_json_canonical(result ? result : json_null());
	struct pl_stmt *st;
	int r;

	if ((r = pl_state_prep(s, "UPDATE runs SET finished=?, status=?, summary=? WHERE id=?", &st,
			       errmsg)) == 0) {
		pl_stmt_bind_double(st, 1, pl_state_now());
		pl_stmt_bind_text(st, 2, status);
		pl_stmt_bind_text(st, 3, text);
		pl_stmt_bind_int64(st, 4, id);
		r = pl_state_step_done(s, st, errmsg);
		pl_stmt_finalize(st);
	}
	free(text);
	return r != 0 ? r : pl_state_run_history(s, id, result, errmsg);
}

#define RUN_COLS "id,kind,started,finished,status,summary,project,pid,host,pstart"

/* A row of RUN_COLS as the run object; a running run whose process is gone
 * is shown as pl_state_runs_reap records it. */
static json_t *
run_row(struct pl_stmt *st, pl_state_alive_fn alive, void *arg)
{
	const char *summary = pl_stmt_text(st, 5);
	const char *status = pl_stmt_text(st, 4);
	json_t *res = NULL, *o;

	if (status && !strcmp(status, "running") && row_dead(st, 7, alive, arg)) {
		status = "interrupted";
		res = interrupted_result(summary);
	}
	if (res == NULL && summary)
		res = json_loads(summary, JSON_DECODE_ANY, NULL);
	o = json_pack("{s:I,s:s,s:f,s:o,s:s,s:o,s:s?}", "id", (json_int_t)pl_stmt_int64(st, 0),
		      "kind", pl_stmt_text(st, 1), "started", pl_stmt_double(st, 2), "finished",
		      pl_stmt_null(st, 3) ? json_null() : json_real(pl_stmt_double(st, 3)),
		      "status", status, "result", res ? res : json_null(), "project",
		      pl_stmt_text(st, 6));
	if (!pl_stmt_null(st, 7))
		json_object_set_new(o, "pid", json_integer(pl_stmt_int64(st, 7)));
	if (!pl_stmt_null(st, 8))
		json_object_set_new(o, "host", json_string(pl_stmt_text(st, 8)));
	return o;
}

int
pl_state_run_get(struct pl_state *s, long long id, pl_state_alive_fn alive, void *arg,
		 json_t **run, char **errmsg)
{
	struct pl_stmt *st;
	int r, rc;

	*run = NULL;
	if ((r = pl_state_prep(s, "SELECT " RUN_COLS " FROM runs WHERE id=?", &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_int64(st, 1, id);
	rc = pl_stmt_step(st);
	if (rc == PL_DB_ROW)
		*run = run_row(st, alive, arg);
	else if (rc == PL_DB_DONE)
		r = pl_seterr(errmsg, PL_ENOENT, "no run %lld in the state database", id);
	else
		r = pl_state_dberr(s, errmsg, "read runs");
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_runs(struct pl_state *s, const char *kind, int limit, pl_state_alive_fn alive,
	      void *arg, json_t **runs, char **errmsg)
{
	struct pl_stmt *st;
	int r, rc;

	*runs = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT " RUN_COLS
			       " FROM runs WHERE CAST(?1 AS TEXT) IS NULL OR kind=?1 "
			       "ORDER BY id DESC LIMIT ?2",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, kind);
	pl_stmt_bind_int64(st, 2, limit);
	*runs = json_array();
	while ((rc = pl_stmt_step(st)) == PL_DB_ROW)
		json_array_append_new(*runs, run_row(st, alive, arg));
	pl_stmt_finalize(st);
	if (rc != PL_DB_DONE) {
		json_decref(*runs);
		*runs = NULL;
		return pl_state_dberr(s, errmsg, "read runs");
	}
	return 0;
}

int
pl_state_run_newest_change(struct pl_state *s, long long *id, const char **kind, char **errmsg)
{
	static const char *const kinds[] = { "apply", "destroy", "rollback", "deploy" };
	struct pl_stmt *st;
	int r, rc;

	*id = 0;
	if (kind)
		*kind = kinds[0];
	if ((r = pl_state_prep(s,
			       "SELECT id,kind FROM runs WHERE kind IN "
			       "('apply','destroy','rollback','deploy') ORDER BY id DESC LIMIT 1",
			       &st, errmsg)) != 0)
		return r;
	rc = pl_stmt_step(st);
	if (rc == PL_DB_ROW) {
		*id = pl_stmt_int64(st, 0);
		for (size_t i = 0; kind && i < PL_ARRAY_LEN(kinds); i++)
			if (!strcmp(pl_stmt_text(st, 1), kinds[i]))
				*kind = kinds[i];
	}
	pl_stmt_finalize(st);
	return rc == PL_DB_ROW || rc == PL_DB_DONE ? 0 : pl_state_dberr(s, errmsg, "read runs");
}

/* The lock's holder in words, for the refusal. */
static int
busy_error(struct pl_stmt *st, char **errmsg)
{
	time_t t = (time_t)pl_stmt_double(st, 3);
	char since[16], run[40] = "";
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(since, sizeof(since), "%H:%M:%S", &tm);
	if (!pl_stmt_null(st, 4))
		snprintf(run, sizeof(run), "run %lld, ", (long long)pl_stmt_int64(st, 4));
	return pl_seterr(errmsg, PL_ECONFLICT,
			 "another apply is running (%spid %lld on host %s, since %s); wait for it "
			 "or stop it",
			 run, (long long)pl_stmt_int64(st, 0), pl_stmt_text(st, 1), since);
}

/* The lock's name and holder as parameters 1-4 (name, pid, host, pstart). */
static void
bind_holder(struct pl_stmt *st, const char *name, const struct pl_state_proc *self)
{
	pl_stmt_bind_text(st, 1, name);
	pl_stmt_bind_int64(st, 2, self->pid);
	pl_stmt_bind_text(st, 3, self->host);
	pl_stmt_bind_int64(st, 4, self->start);
}

int
pl_state_lock_take(struct pl_state *s, const char *name, const struct pl_state_proc *self,
		   pl_state_alive_fn alive, void *arg, json_t **stale, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r, step, got = -1;

	if (stale)
		*stale = NULL;
	/* On PostgreSQL the holder is whoever holds the advisory lock (it dies
	 * with the holder's connection, on any host); the row names it. */
	if (pl_state_pg(s) && (got = pl_state_pg_lock(s, name, true, errmsg)) < 0)
		return -got;
	if ((r = pl_state_begin(s, true, errmsg)) != 0)
		goto out;
	if ((r = pl_state_prep(s, "SELECT pid,host,pstart,started,run_id FROM apply_lock "
			       "WHERE name=?", &st, errmsg)) != 0)
		goto out;
	pl_stmt_bind_text(st, 1, name);
	step = pl_stmt_step(st);
	if (step == PL_DB_ROW) {
		struct pl_state_proc h = { pl_stmt_int64(st, 0), pl_stmt_text(st, 1),
					   pl_stmt_int64(st, 2) };
		bool self_holds = same_proc(self, h.pid, h.host, h.start);

		if (!self_holds && (got >= 0 ? got == 0 : alive(&h, arg))) {
			r = busy_error(st, errmsg);
			goto out;
		}
		if (stale && !self_holds)
			*stale = json_pack(
				"{s:I,s:s,s:f,s:o}", "pid", (json_int_t)h.pid, "host",
				h.host ? h.host : "?", "started", pl_stmt_double(st, 3), "run_id",
				pl_stmt_null(st, 4) ? json_null() :
						      json_integer(pl_stmt_int64(st, 4)));
	} else if (step != PL_DB_DONE) {
		r = pl_state_dberr(s, errmsg, "read the apply lock");
		goto out;
	} else if (got == 0) {
		r = pl_seterr(errmsg, PL_ECONFLICT,
			      "another apply is starting (it holds the lock and has not "
			      "recorded itself yet); wait for it");
		goto out;
	}
	pl_stmt_finalize(st);
	st = NULL;
	if ((r = pl_state_prep(s,
			       "INSERT INTO apply_lock(name,pid,host,pstart,started,run_id) "
			       "VALUES (?,?,?,?,?,NULL) ON CONFLICT(name) DO UPDATE SET "
			       "pid=excluded.pid, host=excluded.host, pstart=excluded.pstart, "
			       "started=excluded.started, run_id=NULL",
			       &st, errmsg)) != 0)
		goto out;
	bind_holder(st, name, self);
	pl_stmt_bind_double(st, 5, pl_state_now());
	r = pl_state_step_done(s, st, errmsg);
out:
	pl_stmt_finalize(st);
	if (r == 0 && (r = pl_state_commit(s, errmsg)) == 0)
		return 0;
	pl_state_rollback(s);
	if (got == 1)
		pl_state_pg_lock(s, name, false, NULL);
	if (stale) {
		json_decref(*stale);
		*stale = NULL;
	}
	return r;
}

int
pl_state_lock_release(struct pl_state *s, const char *name, const struct pl_state_proc *self,
		      char **errmsg)
{
	struct pl_stmt *st;
	int r;

	if ((r = pl_state_prep(s, "DELETE FROM apply_lock WHERE name=? AND pid=? AND host=? AND "
			       "pstart=?", &st, errmsg)) != 0)
		return r;
	bind_holder(st, name, self);
	r = pl_state_step_done(s, st, errmsg);
	pl_stmt_finalize(st);
	if (pl_state_pg(s))
		pl_state_pg_lock(s, name, false, NULL);
	return r;
}
