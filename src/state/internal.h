/*
 * What the files of the state layer share and nothing above it sees: the
 * store's handle and the small helpers every query uses.
 */
#ifndef PL_STATE_INTERNAL_H
#define PL_STATE_INTERNAL_H

#include "core/common.h"
#include "state/state.h"

#include <jansson.h>
#include <sqlite3.h>

#define PL_STATE_BUSY_MS (PL_STATE_BUSY_S * 1000)

struct pl_state {
	sqlite3 *db;
	char *path;
	bool ro; /* opened read-only: nothing is ever written */
	/* pl_state_generation: its statement and what it last saw */
	sqlite3_stmt *data_version_st;
	long long data_version, own_changes, generation;
};

/* Seconds since the epoch, with fractions. */
double pl_state_now(void);
/* "state database 'PATH': WHAT: <sqlite's message>", as PL_EDB. */
int pl_state_dberr(struct pl_state *s, char **errmsg, const char *what);
/* Run SQL text (several statements) outside any statement cache. */
int pl_state_exec(struct pl_state *s, const char *sql, char **errmsg);
/* Prepare one statement (kept prepared: SQLITE_PREPARE_PERSISTENT). */
int pl_state_prep(struct pl_state *s, const char *sql, sqlite3_stmt **st, char **errmsg);
/* Step a write to its end, then reset and clear the statement. */
int pl_state_step_done(struct pl_state *s, sqlite3_stmt *st, char **errmsg);
/* Bind v, or NULL when v is NULL. */
void pl_state_bind_text(sqlite3_stmt *st, int i, const char *v);
/* History rows of the storages, backup jobs and pools a snapshot lists
 * (sync_day2.c), inside the sync's transaction. */
int pl_state_sync_day2(struct pl_state *s, const json_t *snap, long long run, double ts,
		       char **errmsg);

/* History rows of the scopes a run's result changed (its changes'
 * "history": {"key","before","after"}), once per run and key. */
int pl_state_run_history(struct pl_state *s, long long run, const json_t *result, char **errmsg);

#endif
