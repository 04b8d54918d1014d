/*
 * What the files of the state layer share and nothing above it sees: the
 * store's handle and the small helpers every query uses.
 */
#ifndef PL_STATE_INTERNAL_H
#define PL_STATE_INTERNAL_H

#include "core/common.h"
#include "state/state.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#define PL_STATE_BUSY_MS (PL_STATE_BUSY_S * 1000)

struct pl_state {
	sqlite3 *db;      /* the SQLite engine, or */
	PGconn *pg;       /* the PostgreSQL one */
	json_t *prepared; /* PostgreSQL: SQL text -> name of its prepared statement */
	int piped;        /* PostgreSQL: writes sent in pipeline mode, not yet answered */
	bool pipe;        /* in pipeline mode */
	char *path;       /* a file, or the connection string without its password */
	bool ro;          /* opened read-only: nothing is ever written */
	/* pl_state_generation (SQLite): its statement and what it last saw */
	sqlite3_stmt *data_version_st;
	long long data_version, own_changes, generation;
	long long data_version_read; /* CLOCK_MONOTONIC_COARSE ms of its last read */
	bool listening; /* PostgreSQL: LISTEN PL_STATE_CHANNEL sent */
	/* PostgreSQL: statements prepared in this process (their names are
	 * never reused, across reconnections too); the session-level advisory
	 * locks held, and those lost with a broken connection (name -> true);
	 * when to try connecting again, and the wait after that */
	long long nprepared;
	json_t *held, *lost;
	double retry_at, backoff;
};

/* The PostgreSQL channel every commit that wrote notifies
 * (pl_state_generation's signal). */
#define PL_STATE_CHANNEL "pvelab_state"

/*
 * One statement API over both engines (db.c). SQL is written once, in what
 * both accept, with SQLite's placeholders (? and ?N), which the PostgreSQL
 * engine turns into $N; where the dialects differ, pl_state_sql picks.
 */
#define PL_DB_ROW 100  /* a row is there to read */
#define PL_DB_DONE 101 /* the statement ran to its end */
#define PL_DB_BUSY 5   /* another writer holds the lock */
#define PL_DB_CONSTRAINT 19
struct pl_stmt;
/* Is the store PostgreSQL? */
static inline bool
pl_state_pg(const struct pl_state *s)
{
	return s->pg != NULL;
}
/* The statement for this engine. */
static inline const char *
pl_state_sql(const struct pl_state *s, const char *sqlite, const char *pg)
{
	return s->pg ? pg : sqlite;
}
/* Step: PL_DB_ROW, PL_DB_DONE, or an error (PL_DB_BUSY, PL_DB_CONSTRAINT or
 * another nonzero code; pl_state_dberr says what). */
int pl_stmt_step(struct pl_stmt *st);
/* Back to before the first step; the bindings stay. */
void pl_stmt_reset(struct pl_stmt *st);
void pl_stmt_finalize(struct pl_stmt *st);
/* Bindings (1-based); text is copied, NULL binds NULL. */
void pl_stmt_bind_text(struct pl_stmt *st, int i, const char *v);
void pl_stmt_bind_textn(struct pl_stmt *st, int i, const char *v, size_t n);
/* The same for text that stays as it is until the next step (not copied on
 * SQLite: a sync's hashes and JSON). */
void pl_stmt_bind_static(struct pl_stmt *st, int i, const char *v, size_t n);
void pl_stmt_bind_int64(struct pl_stmt *st, int i, long long v);
void pl_stmt_bind_double(struct pl_stmt *st, int i, double v);
void pl_stmt_bind_null(struct pl_stmt *st, int i);
/* Columns (0-based) of the current row. */
bool pl_stmt_null(struct pl_stmt *st, int i);
const char *pl_stmt_text(struct pl_stmt *st, int i);
size_t pl_stmt_bytes(struct pl_stmt *st, int i);
long long pl_stmt_int64(struct pl_stmt *st, int i);
double pl_stmt_double(struct pl_stmt *st, int i);
/* The last step failed on the primary key (not another constraint). */
bool pl_stmt_pkey_clash(struct pl_stmt *st);
/* The current row's columns: how many, the name of one, and the kind of its
 * value: 'n' NULL, 'i' integer, 'd' floating point, 't' text. */
int pl_stmt_ncols(struct pl_stmt *st);
const char *pl_stmt_name(struct pl_stmt *st, int i);
char pl_stmt_kind(struct pl_stmt *st, int i);
/* Rows the last step of a write changed. */
long long pl_stmt_changes(struct pl_stmt *st);
/* Begin a write transaction: on SQLite BEGIN IMMEDIATE, on PostgreSQL BEGIN
 * and the store's write lock (a transaction-scoped advisory lock), so that
 * both engines have one writer at a time. wait: up to PL_STATE_BUSY_S, else
 * PL_ECONFLICT at once while another writer holds it. */
int pl_state_begin(struct pl_state *s, bool wait, char **errmsg);
/* PostgreSQL's session-level advisory lock of this name, which the server
 * releases when the holder's connection ends (its process died): take
 * (1 taken, 0 held by another session) or release; a negative error. */
int pl_state_pg_lock(struct pl_state *s, const char *name, bool take, char **errmsg);
/* PostgreSQL: connect again when the connection broke (PQstatus
 * CONNECTION_BAD; a server restart, a dropped link), at most every backoff
 * (0.5 s doubling to 30 s). The new session has the settings, but no
 * prepared statement, LISTEN or advisory lock of the old one: locks held are
 * never taken again here, they are lost (pl_state_lock_lost). 0 when the
 * connection is up; a no-op on SQLite. */
int pl_state_pg_alive(struct pl_state *s, char **errmsg);
/* PostgreSQL: from on to off, pl_state_step_done sends its write without
 * waiting for the answer (libpq's pipeline mode), and off collects the
 * answers: the first error, if any, is returned. No read in between. A
 * no-op on SQLite. */
int pl_state_pipeline(struct pl_state *s, bool on, char **errmsg);
int pl_state_commit(struct pl_state *s, char **errmsg);
void pl_state_rollback(struct pl_state *s);

/* Seconds since the epoch, with fractions. */
double pl_state_now(void);
/* "state database 'PATH': WHAT: <sqlite's message>", as PL_EDB. */
int pl_state_dberr(struct pl_state *s, char **errmsg, const char *what);
/* Run SQL text (several statements) outside any statement cache. */
int pl_state_exec(struct pl_state *s, const char *sql, char **errmsg);
/* Prepare one statement (kept prepared: SQLite's PERSISTENT, a named
 * statement of the PostgreSQL session). */
int pl_state_prep(struct pl_state *s, const char *sql, struct pl_stmt **st, char **errmsg);
/* Step a write to its end, then reset and clear the statement. */
int pl_state_step_done(struct pl_state *s, struct pl_stmt *st, char **errmsg);
/* Step an INSERT ... RETURNING id: *id gets it; then reset and clear. */
int pl_state_step_id(struct pl_state *s, struct pl_stmt *st, long long *id, char **errmsg);
/* History rows of the storages, backup jobs and pools a snapshot lists
 * (sync_day2.c), inside the sync's transaction. */
int pl_state_sync_day2(struct pl_state *s, const json_t *snap, long long run, double ts,
		       char **errmsg);

/* History rows of the scopes a run's result changed (its changes'
 * "history": {"key","before","after"}), once per run and key. */
int pl_state_run_history(struct pl_state *s, long long run, const json_t *result, char **errmsg);

#endif
