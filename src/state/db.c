/*
 * The statement layer under every query of the store: prepare, bind, step
 * and read columns the same way on SQLite and on PostgreSQL (libpq), and the
 * write transaction with its one-writer lock on each.
 */
#include "core/common.h"
#include "core/err.h"
#include "core/log.h"
#include "state/internal.h"

#include <errno.h>
#include <time.h>

/* The advisory lock class of the store's write lock (pg_advisory_xact_lock's
 * first key: "pvel"); the second key is 0, or in a cluster's own schema of
 * a database several share, that schema's hash (each cluster its writer). */
#define PG_LOCK_CLASS "1886807404"
/* A named lock's key text: its name, after its schema's outside public. */
#define PG_LOCK_NAME                                                                               \
	"CASE current_schema() WHEN 'public' THEN ?1 ELSE current_schema() || '/' || ?1 END"
#define PG_LOCK_SCHEMA                                                                             \
	"CASE current_schema() WHEN 'public' THEN 0 ELSE hashtext(current_schema()) END"

struct pl_stmt {
	struct pl_state *s;
	sqlite3_stmt *lite; /* SQLite */
	/* PostgreSQL: the prepared statement's name, its parameters (text,
	 * owned) and the result being read */
	char name[24];
	int nparam;
	char **val;
	int *len;
	PGresult *res;
	int row, nrow;
	long long changes;
};

/* SQLite's placeholders (?, ?N) as PostgreSQL's ($N), outside quoted text;
 * *n gets the highest number. */
static char *
pg_placeholders(const char *sql, int *n)
{
	size_t size = strlen(sql) * 4 + 1;
	char *out = pl_malloc(size), *o = out;
	char quote = 0;

	*n = 0;
	for (const char *p = sql; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
			*o++ = *p;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
			*o++ = *p;
		} else if (*p == '?') {
			int k;

			if (p[1] >= '0' && p[1] <= '9') {
				k = (int)strtol(p + 1, (char **)&p, 10);
				p--;
			} else {
				k = *n + 1;
			}
			if (k > *n)
				*n = k;
			o += snprintf(o, size - (size_t)(o - out), "$%d", k);
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

int
pl_state_prep(struct pl_state *s, const char *sql, struct pl_stmt **out, char **errmsg)
{
	struct pl_stmt *st = pl_calloc(1, sizeof(*st));
	json_t *known;

	*out = NULL;
	st->s = s;
	if (!pl_state_pg(s)) {
		if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->lite,
				       NULL) != SQLITE_OK) {
			free(st);
			return pl_state_dberr(s, errmsg, "prepare");
		}
		*out = st;
		return 0;
	}
	/* one named statement per SQL text and session, as SQLite keeps its own
	 * (the store's SQL texts are a fixed set: values are always parameters) */
	if (pl_state_pg_alive(s, errmsg) != 0) {
		free(st);
		return PL_EDB;
	}
	if ((known = json_object_get(s->prepared, sql)) != NULL) {
		snprintf(st->name, sizeof(st->name), "pl%lld",
			 (long long)json_integer_value(json_array_get(known, 0)));
		st->nparam = (int)json_integer_value(json_array_get(known, 1));
	} else {
		char *text = pg_placeholders(sql, &st->nparam);
		PGresult *res;
		bool ok;

		snprintf(st->name, sizeof(st->name), "pl%lld", s->nprepared);
		res = PQprepare(s->pg, st->name, text, st->nparam, NULL);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		free(text);
		if (!ok) {
			free(st);
			return pl_state_dberr(s, errmsg, "prepare");
		}
		json_object_set_new(s->prepared, sql,
				    json_pack("[I,i]", (json_int_t)s->nprepared++, st->nparam));
	}
	st->val = pl_calloc((size_t)st->nparam + 1, sizeof(*st->val));
	st->len = pl_calloc((size_t)st->nparam + 1, sizeof(*st->len));
	*out = st;
	return 0;
}

/* Parameter i (1-based) of a PostgreSQL statement takes text v (n bytes). */
static void
pg_bind(struct pl_stmt *st, int i, const char *v, size_t n)
{
	if (i < 1 || i > st->nparam)
		return;
	free(st->val[i - 1]);
	st->val[i - 1] = v ? pl_strndup(v, n) : NULL;
	st->len[i - 1] = (int)n;
}

void
pl_stmt_bind_textn(struct pl_stmt *st, int i, const char *v, size_t n)
{
	if (st->lite)
		sqlite3_bind_text(st->lite, i, v, v ? (int)n : 0, SQLITE_TRANSIENT);
	else
		pg_bind(st, i, v, n);
}

void
pl_stmt_bind_static(struct pl_stmt *st, int i, const char *v, size_t n)
{
	if (st->lite)
		sqlite3_bind_text(st->lite, i, v, (int)n, SQLITE_STATIC);
	else
		pg_bind(st, i, v, n);
}

void
pl_stmt_bind_text(struct pl_stmt *st, int i, const char *v)
{
	if (v == NULL)
		pl_stmt_bind_null(st, i);
	else
		pl_stmt_bind_textn(st, i, v, strlen(v));
}

void
pl_stmt_bind_int64(struct pl_stmt *st, int i, long long v)
{
	char b[24];

	if (st->lite) {
		sqlite3_bind_int64(st->lite, i, v);
		return;
	}
	pg_bind(st, i, b, (size_t)snprintf(b, sizeof(b), "%lld", v));
}

void
pl_stmt_bind_double(struct pl_stmt *st, int i, double v)
{
	char b[40];

	if (st->lite) {
		sqlite3_bind_double(st->lite, i, v);
		return;
	}
	pg_bind(st, i, b, (size_t)snprintf(b, sizeof(b), "%.17g", v));
}

void
pl_stmt_bind_null(struct pl_stmt *st, int i)
{
	if (st->lite)
		sqlite3_bind_null(st->lite, i);
	else
		pg_bind(st, i, NULL, 0);
}

/* A PostgreSQL error as the step's code: lock waits are PL_DB_BUSY. */
static int
pg_code(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (state == NULL)
		return 1;
	if (!strncmp(state, "23", 2))
		return PL_DB_CONSTRAINT;
	if (!strcmp(state, "55P03") || !strcmp(state, "40001") || !strcmp(state, "40P01"))
		return PL_DB_BUSY;
	return 1;
}

/* A write outside a transaction (its own, committed now) tells the
 * listeners (pl_state_generation); one inside tells them at its commit. */
static void
pg_wrote(struct pl_stmt *st)
{
	const char *tag = PQcmdStatus(st->res);
	PGresult *res;

	if (PQtransactionStatus(st->s->pg) != PQTRANS_IDLE ||
	    strtoll(PQcmdTuples(st->res), NULL, 10) == 0 ||
	    (strncmp(tag, "INSERT", 6) && strncmp(tag, "UPDATE", 6) && strncmp(tag, "DELETE", 6)))
		return;
	res = PQexec(st->s->pg, "NOTIFY " PL_STATE_CHANNEL);
	PQclear(res);
}

int
pl_stmt_step(struct pl_stmt *st)
{
	int rc;

	if (st->lite) {
		rc = sqlite3_step(st->lite);
		if (rc == SQLITE_DONE)
			st->changes = sqlite3_changes64(st->s->db);
		return rc == SQLITE_ROW ? PL_DB_ROW : rc == SQLITE_DONE ? PL_DB_DONE : rc & 0xff;
	}
	if (st->res)
		return ++st->row < st->nrow ? PL_DB_ROW : PL_DB_DONE;
	st->res = PQexecPrepared(st->s->pg, st->name, st->nparam, (const char *const *)st->val,
				 st->len, NULL, 0);
	st->row = 0;
	st->nrow = 0;
	switch (PQresultStatus(st->res)) {
	case PGRES_TUPLES_OK:
		st->nrow = PQntuples(st->res);
		st->changes = 0;
		pg_wrote(st);
		return st->nrow > 0 ? PL_DB_ROW : PL_DB_DONE;
	case PGRES_COMMAND_OK:
		st->changes = strtoll(PQcmdTuples(st->res), NULL, 10);
		pg_wrote(st);
		return PL_DB_DONE;
	default:
		return pg_code(st->res);
	}
}

void
pl_stmt_reset(struct pl_stmt *st)
{
	if (st->lite) {
		sqlite3_reset(st->lite);
		return;
	}
	PQclear(st->res);
	st->res = NULL;
}

/* Reset and unbind. */
static void
stmt_clear(struct pl_stmt *st)
{
	pl_stmt_reset(st);
	if (st->lite) {
		sqlite3_clear_bindings(st->lite);
		return;
	}
	for (int i = 0; i < st->nparam; i++) {
		free(st->val[i]);
		st->val[i] = NULL;
	}
}

void
pl_stmt_finalize(struct pl_stmt *st)
{
	if (st == NULL)
		return;
	if (st->lite) {
		sqlite3_finalize(st->lite);
	} else {
		stmt_clear(st);
		free(st->val);
		free(st->len);
	}
	free(st);
}

#define PIPE_BATCH 256 /* writes in flight: their answers fit the socket's buffer */

/* Collect the answers of the writes in flight: the first error, as PL_EDB. */
static int
pipe_drain(struct pl_state *s, char **errmsg)
{
	PGresult *res;
	int r = 0;

	if (s->piped == 0)
		return 0;
	if (PQpipelineSync(s->pg) != 1)
		return pl_state_dberr(s, errmsg, "write");
	for (;;) {
		ExecStatusType t;

		if ((res = PQgetResult(s->pg)) == NULL) {
			if (PQstatus(s->pg) != CONNECTION_OK)
				return r ? r : pl_state_dberr(s, errmsg, "write");
			continue; /* the end of one write's answer */
		}
		t = PQresultStatus(res);
		if (t == PGRES_FATAL_ERROR && r == 0) {
			const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

			r = pl_seterr(errmsg, PL_EDB, "state database '%s': write: %s", s->path,
				      m ? m : "error");
		}
		PQclear(res);
		if (t == PGRES_PIPELINE_SYNC)
			break;
	}
	s->piped = 0;
	return r;
}

int
pl_state_pipeline(struct pl_state *s, bool on, char **errmsg)
{
	int r;

	if (!pl_state_pg(s) || on == s->pipe)
		return 0;
	if (on) {
		if (PQenterPipelineMode(s->pg) != 1)
			return pl_state_dberr(s, errmsg, "pipeline");
		s->pipe = true;
		return 0;
	}
	r = pipe_drain(s, errmsg);
	PQexitPipelineMode(s->pg);
	s->pipe = false;
	return r;
}

int
pl_state_step_done(struct pl_state *s, struct pl_stmt *st, char **errmsg)
{
	int rc, r = 0;

	if (s->pipe) {
		if (PQsendQueryPrepared(s->pg, st->name, st->nparam, (const char *const *)st->val,
					st->len, NULL, 0) != 1)
			r = pl_state_dberr(s, errmsg, "write");
		else if (++s->piped >= PIPE_BATCH)
			r = pipe_drain(s, errmsg);
		stmt_clear(st);
		return r;
	}
	rc = pl_stmt_step(st);
	if (rc != PL_DB_DONE && rc != PL_DB_ROW)
		r = pl_state_dberr(s, errmsg, "write");
	stmt_clear(st);
	return r;
}

int
pl_state_step_id(struct pl_state *s, struct pl_stmt *st, long long *id, char **errmsg)
{
	int r = 0;

	if (pl_stmt_step(st) == PL_DB_ROW)
		*id = pl_stmt_int64(st, 0);
	else
		r = pl_state_dberr(s, errmsg, "write");
	stmt_clear(st);
	return r;
}

/* The current row of a PostgreSQL result has column i. */
static bool
pg_has(const struct pl_stmt *st, int i)
{
	return st->res && st->row < st->nrow && i >= 0 && i < PQnfields(st->res);
}

bool
pl_stmt_null(struct pl_stmt *st, int i)
{
	if (st->lite)
		return sqlite3_column_type(st->lite, i) == SQLITE_NULL;
	return !pg_has(st, i) || PQgetisnull(st->res, st->row, i);
}

const char *
pl_stmt_text(struct pl_stmt *st, int i)
{
	if (st->lite)
		return (const char *)sqlite3_column_text(st->lite, i);
	return pl_stmt_null(st, i) ? NULL : PQgetvalue(st->res, st->row, i);
}

size_t
pl_stmt_bytes(struct pl_stmt *st, int i)
{
	if (st->lite)
		return (size_t)sqlite3_column_bytes(st->lite, i);
	return pl_stmt_null(st, i) ? 0 : (size_t)PQgetlength(st->res, st->row, i);
}

long long
pl_stmt_int64(struct pl_stmt *st, int i)
{
	const char *t;

	if (st->lite)
		return sqlite3_column_int64(st->lite, i);
	if ((t = pl_stmt_text(st, i)) == NULL)
		return 0;
	/* a boolean reads as 1 or 0, a number with a fraction as its integer part */
	if (!strcmp(t, "t"))
		return 1;
	return strpbrk(t, ".eE") ? (long long)strtod(t, NULL) : strtoll(t, NULL, 10);
}

double
pl_stmt_double(struct pl_stmt *st, int i)
{
	const char *t;

	if (st->lite)
		return sqlite3_column_double(st->lite, i);
	return (t = pl_stmt_text(st, i)) ? strtod(t, NULL) : 0;
}

int
pl_stmt_ncols(struct pl_stmt *st)
{
	if (st->lite)
		return sqlite3_column_count(st->lite);
	return st->res ? PQnfields(st->res) : 0;
}

const char *
pl_stmt_name(struct pl_stmt *st, int i)
{
	if (st->lite)
		return sqlite3_column_name(st->lite, i);
	return st->res ? PQfname(st->res, i) : NULL;
}

char
pl_stmt_kind(struct pl_stmt *st, int i)
{
	if (st->lite) {
		switch (sqlite3_column_type(st->lite, i)) {
		case SQLITE_NULL:
			return 'n';
		case SQLITE_INTEGER:
			return 'i';
		case SQLITE_FLOAT:
			return 'd';
		default:
			return 't';
		}
	}
	if (pl_stmt_null(st, i))
		return 'n';
	switch (PQftype(st->res, i)) {
	case 20: /* int8 */
	case 21: /* int2 */
	case 23: /* int4 */
		return 'i';
	case 700: /* float4 */
	case 701: /* float8 */
		return 'd';
	default:
		return 't';
	}
}

bool
pl_stmt_pkey_clash(struct pl_stmt *st)
{
	const char *c;

	if (st->lite)
		return sqlite3_extended_errcode(st->s->db) == SQLITE_CONSTRAINT_PRIMARYKEY;
	c = st->res ? PQresultErrorField(st->res, PG_DIAG_CONSTRAINT_NAME) : NULL;
	return c && strlen(c) > 5 && !strcmp(c + strlen(c) - 5, "_pkey");
}

long long
pl_stmt_changes(struct pl_stmt *st)
{
	return st->changes;
}

int
pl_state_begin(struct pl_state *s, bool wait, char **errmsg)
{
	bool busy;
	int r;

	if (pl_state_pg(s)) {
		PGresult *res;
		bool got;

		if ((r = pl_state_exec(s, "BEGIN", errmsg)) != 0)
			return r;
		res = PQexec(s->pg, wait ? "SELECT pg_advisory_xact_lock(" PG_LOCK_CLASS
					   ", " PG_LOCK_SCHEMA ")" :
					   "SELECT pg_try_advisory_xact_lock(" PG_LOCK_CLASS
					   ", " PG_LOCK_SCHEMA ")");
		got = PQresultStatus(res) == PGRES_TUPLES_OK &&
		      (wait || !strcmp(PQgetvalue(res, 0, 0), "t"));
		busy = !got &&
		       (PQresultStatus(res) == PGRES_TUPLES_OK || pg_code(res) == PL_DB_BUSY);
		r = got ? 0 : busy ? PL_ECONFLICT : pl_state_dberr(s, errmsg, "begin");
		PQclear(res);
		if (r == 0)
			return 0;
		pl_state_exec(s, "ROLLBACK", NULL);
		if (r != PL_ECONFLICT)
			return r;
		return pl_seterr(errmsg, PL_ECONFLICT,
				 "state database '%s' is being written by another process",
				 s->path);
	}
	if (!wait)
		sqlite3_busy_timeout(s->db, 0);
	r = pl_state_exec(s, "BEGIN IMMEDIATE", wait ? errmsg : NULL);
	busy = (sqlite3_extended_errcode(s->db) & 0xff) == SQLITE_BUSY;
	if (!wait) {
		sqlite3_busy_timeout(s->db, PL_STATE_BUSY_MS);
		if (r != 0)
			r = busy ? pl_seterr(errmsg, PL_ECONFLICT,
					     "state database '%s' is being written by another "
					     "process",
					     s->path) :
				   pl_state_dberr(s, errmsg, "begin");
	}
	return r;
}

int
pl_state_pg_alive(struct pl_state *s, char **errmsg)
{
	struct timespec ts;
	double now;
	const char *k;
	json_t *v;

	if (!pl_state_pg(s) || PQstatus(s->pg) != CONNECTION_BAD)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	if (now < s->retry_at)
		return pl_seterr(errmsg, PL_EDB,
				 "state database '%s': the connection was lost; connecting again "
				 "in %.1f s",
				 s->path, s->retry_at - now);
	PQreset(s->pg);
	if (PQstatus(s->pg) != CONNECTION_OK) {
		s->backoff = s->backoff > 0 ? s->backoff * 2 : 0.5;
		if (s->backoff > 30)
			s->backoff = 30;
		s->retry_at = now + s->backoff;
		return pl_state_dberr(s, errmsg, "connect again");
	}
	/* the session's settings, as pg_open and pl_state_open_ro made them */
	if (pl_state_exec(s, "SET lock_timeout = '" PL_STATE_BUSY_S_TEXT "s'", errmsg) != 0 ||
	    (s->ro && pl_state_exec(s, "SET default_transaction_read_only = on", errmsg) != 0))
		return PL_EDB;
	s->backoff = 0;
	s->retry_at = 0;
	json_object_clear(s->prepared);
	s->pipe = false;
	s->piped = 0;
	s->listening = false; /* the next pl_state_generation listens again: a change */
	json_object_foreach(s->held, k, v)
		json_object_set(s->lost, k, json_true());
	json_object_clear(s->held);
	pl_log_info("state: connected to '%s' again", s->path);
	return 0;
}

bool
pl_state_lock_lost(struct pl_state *s, const char *name)
{
	if (s == NULL || !pl_state_pg(s))
		return false;
	/* a broken connection's locks are gone already, on the server */
	return json_object_get(s->lost, name) != NULL ||
	       (PQstatus(s->pg) == CONNECTION_BAD && json_object_get(s->held, name) != NULL);
}

int
pl_state_pg_lock(struct pl_state *s, const char *name, bool take, char **errmsg)
{
	struct pl_stmt *st;
	int r, got;

	if ((r = pl_state_prep(s,
			       take ? "SELECT pg_try_advisory_lock(" PG_LOCK_CLASS
				      ", hashtext(" PG_LOCK_NAME "))" :
				      "SELECT pg_advisory_unlock(" PG_LOCK_CLASS
				      ", hashtext(" PG_LOCK_NAME "))",
			       &st, errmsg)) != 0)
		return -r;
	pl_stmt_bind_text(st, 1, name);
	got = pl_stmt_step(st) == PL_DB_ROW ? (int)pl_stmt_int64(st, 0) :
					      -pl_state_dberr(s, errmsg, "apply lock");
	pl_stmt_finalize(st);
	if (take && got == 1)
		json_object_set(s->held, name, json_true());
	if (!take) {
		json_object_del(s->held, name);
		json_object_del(s->lost, name);
	}
	return got;
}

int
pl_state_commit(struct pl_state *s, char **errmsg)
{
	/* the listeners hear of it once it is committed (NOTIFY is
	 * transactional), in the same round trip */
	if (pl_state_pg(s) && PQtransactionStatus(s->pg) == PQTRANS_INTRANS)
		return pl_state_exec(s, "NOTIFY " PL_STATE_CHANNEL "; COMMIT", errmsg);
	return pl_state_exec(s, "COMMIT", errmsg);
}

void
pl_state_rollback(struct pl_state *s)
{
	if (pl_state_in_transaction(s))
		pl_state_exec(s, "ROLLBACK", NULL);
}
