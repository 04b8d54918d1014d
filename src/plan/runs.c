/*
 * Run records for apply/destroy/rollback (see runs.h), on the state store's
 * SQLite handle. Each write is its own transaction.
 */
#include "core/common.h"
#include "plan/runs.h"
#include "core/err.h"
#include "core/json.h"
#include "state/state.h"

#include <sqlite3.h>
#include <time.h>

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

int
pl_runs_begin(struct pl_state *s, const char *kind, long long *id, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st;
	int r = 0;

	if (sqlite3_prepare_v2(db, "INSERT INTO runs(kind,started,status) VALUES (?,?,'running')",
			       -1, &st, NULL) != SQLITE_OK)
		return db_error(db, errmsg);
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, now());
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_error(db, errmsg);
	else
		*id = sqlite3_last_insert_rowid(db);
	sqlite3_finalize(st);
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

	return json_pack("{s:I,s:s,s:f,s:o,s:s,s:o,s:s?}", "id", (json_int_t)sqlite3_column_int64(st, 0),
			 "kind", (const char *)sqlite3_column_text(st, 1), "started",
			 sqlite3_column_double(st, 2), "finished",
			 sqlite3_column_type(st, 3) == SQLITE_NULL ? json_null()
								   : json_real(sqlite3_column_double(st, 3)),
			 "status", (const char *)sqlite3_column_text(st, 4), "result",
			 res ? res : json_null(), "project", (const char *)sqlite3_column_text(st, 6));
}

int
pl_runs_get(struct pl_state *s, long long id, json_t **run, char **errmsg)
{
	sqlite3 *db = pl_state_db(s);
	sqlite3_stmt *st;
	int r;

	*run = NULL;
	if (sqlite3_prepare_v2(db, "SELECT id,kind,started,finished,status,summary,project FROM runs WHERE id=?",
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
	if (sqlite3_prepare_v2(db,
			       "SELECT id,kind,started,finished,status,summary,project FROM runs "
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
