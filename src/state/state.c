/*
 * The store itself: where it lives, opening it (a SQLite file in WAL mode, or
 * a PostgreSQL database), migrations, read-only opening, checkpoints, and the
 * helpers the other files of the layer share (statements are db.c's). Recording a sync is in sync.c, the reads in query.c, runs and the
 * apply lock in runs.c, discovered hosts in discovered.c.
 */
#include "core/common.h"

#include <unistd.h>
#include "state/state.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/log.h"
#include "state/internal.h"
#include "state/migrations.h"

#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#define WAL_MAX_PAGES "10000" /* wal_autocheckpoint: about 40 MB */

double
pl_state_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* PostgreSQL's last message, its first line. */
static const char *
pg_message(struct pl_state *s, char *buf, size_t n)
{
	const char *m = PQerrorMessage(s->pg);

	if (!strncmp(m, "ERROR:  ", 8))
		m += 8;
	snprintf(buf, n, "%.*s", (int)strcspn(m, "\n"), m);
	return buf;
}

int
pl_state_dberr(struct pl_state *s, char **errmsg, const char *what)
{
	char buf[512];

	return pl_seterr(errmsg, PL_EDB, "state database '%s': %s: %s", s->path, what,
			 s->pg ? pg_message(s, buf, sizeof(buf)) : sqlite3_errmsg(s->db));
}

bool
pl_state_in_transaction(struct pl_state *s)
{
	if (s && s->pg)
		return PQtransactionStatus(s->pg) != PQTRANS_IDLE;
	return s && s->db && !sqlite3_get_autocommit(s->db);
}

int
pl_state_exec(struct pl_state *s, const char *sql, char **errmsg)
{
	char *e = NULL;

	if (s->pg) {
		PGresult *res;
		ExecStatusType t;

		if (pl_state_pg_alive(s, errmsg) != 0)
			return PL_EDB;
		res = PQexec(s->pg, sql);
		t = PQresultStatus(res);

		PQclear(res);
		if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK)
			return 0;
		return pl_state_dberr(s, errmsg, "exec");
	}

	if (sqlite3_exec(s->db, sql, NULL, NULL, &e) != SQLITE_OK) {
		pl_seterr(errmsg, PL_EDB, "state database '%s': %s", s->path, e ? e : "error");
		sqlite3_free(e);
		return PL_EDB;
	}
	return 0;
}

/* The default beside a config in dir: dir/.pvelab/state.db, except for the
 * per-user config (~/.config/pvelab), whose state is per-user state
 * ($XDG_STATE_HOME/pvelab/state.db) unless a database beside it exists. */
static char *
xdg_state_path(const char *dir)
{
	char *beside = pl_asprintf("%s/.pvelab/state.db", dir);
	char *conf = pl_xdg_dir("XDG_CONFIG_HOME", ".config");
	char *mine = conf ? pl_path_join(conf, "pvelab") : NULL;
	char *st = NULL;

	if (mine && !strcmp(dir, mine) && access(beside, F_OK) != 0 &&
	    (st = pl_xdg_dir("XDG_STATE_HOME", ".local/state")) != NULL) {
		free(beside);
		beside = pl_path_join(st, "pvelab/state.db");
	}
	free(st);
	free(mine);
	free(conf);
	return beside;
}

bool
pl_state_is_pg(const char *where)
{
	size_t k;

	if (where == NULL)
		return false;
	if (!strncmp(where, "postgres://", 11) || !strncmp(where, "postgresql://", 13))
		return true;
	/* a libpq key=value string: it begins with a keyword and '=' */
	k = strspn(where, "abcdefghijklmnopqrstuvwxyz_");
	return k > 0 && where[k + strspn(where + k, " ")] == '=';
}

/* The SQLite file a config in dir keeps its state in when nothing says
 * otherwise. */
static char *
default_path(const char *dir)
{
	if (!strcmp(dir, PL_CONFIG_SYSTEM_DIR))
		return pl_strdup(PL_STATE_SYSTEM_DIR "/state.db");
	return xdg_state_path(dir);
}

char *
pl_state_path(const char *given, const char *config_state, const char *config_path)
{
	const char *env = getenv("PVELAB_STATE");
	char *dir, *r;

	if (given && *given)
		return pl_strdup(given);
	if (env && *env)
		return pl_strdup(env);
	dir = pl_path_dirname(config_path ? config_path : "pvelab.yaml");
	if (config_state && *config_state)
		r = config_state[0] == '/' || pl_state_is_pg(config_state) ?
			    pl_strdup(config_state) :
			    pl_path_join(dir, config_state);
	else
		r = default_path(dir);
	free(dir);
	return r;
}

char *
pl_state_local_dir(const char *where, const char *config_path)
{
	char *dir, *file, *r;

	if (where && *where && !pl_state_is_pg(where))
		return pl_path_dirname(where);
	/* PostgreSQL: where the SQLite file would be */
	dir = pl_path_dirname(config_path ? config_path : "pvelab.yaml");
	file = default_path(dir);
	r = pl_path_dirname(file);
	free(file);
	free(dir);
	return r;
}

int
pl_state_latest_version(void)
{
	return pl_state_migration_count();
}

/* PostgreSQL's schema version (0: none yet), or -1. */
static int
pg_version(struct pl_state *s)
{
	PGresult *res = PQexec(s->pg, "SELECT to_regclass('pvelab_schema') IS NULL");
	int v = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		v = !strcmp(PQgetvalue(res, 0, 0), "t") ? 0 : -2;
	PQclear(res);
	if (v != -2)
		return v;
	res = PQexec(s->pg, "SELECT max(version) FROM pvelab_schema");
	v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ?
		    (int)strtol(PQgetvalue(res, 0, 0), NULL, 10) :
		    -1;
	PQclear(res);
	return v;
}

int
pl_state_version(struct pl_state *s)
{
	sqlite3_stmt *st;
	int v = -1;

	if (s->pg)
		return pg_version(s);

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

unsigned long long
pl_state_changes(struct pl_state *s)
{
	sqlite3_stmt *st;
	unsigned long long v = 0;

	if (s->pg) /* never 0: it can tell */
		return (unsigned long long)pl_state_generation(s) + 1;
	/* data_version moves with other connections' commits, total_changes
	 * with this one's */
	if (sqlite3_prepare_v2(s->db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = (unsigned long long)sqlite3_column_int64(st, 0) << 40;
	sqlite3_finalize(st);
	return v ^ (unsigned long long)sqlite3_total_changes64(s->db) ^ 1;
}

/* The same migrations on PostgreSQL, each in a transaction that holds the
 * store's write lock (two processes migrating a new database at once), with
 * the version in table pvelab_schema. */
static int
pg_migrate(struct pl_state *s, char **errmsg)
{
	int latest = pl_state_migration_count(), v, r;

	for (;;) {
		char *sql, *text;

		if ((r = pl_state_begin(s, true, errmsg)) != 0)
			return r;
		if ((r = pl_state_exec(s,
				       "CREATE TABLE IF NOT EXISTS pvelab_schema (version "
				       "INTEGER NOT NULL)",
				       errmsg)) != 0)
			goto fail;
		if ((v = pg_version(s)) < 0) {
			r = pl_state_dberr(s, errmsg, "read the schema version");
			goto fail;
		}
		if (v > latest) {
			r = pl_seterr(errmsg, PL_EDB,
				      "state database '%s' has schema version %d, newer "
				      "than this pvelab knows (%d); upgrade pvelab",
				      s->path, v, latest);
			goto fail;
		}
		if (v == latest) /* nothing changed: no NOTIFY */
			return pl_state_exec(s, "COMMIT", errmsg);
		text = pl_state_migration_pg(v + 1);
		sql = pl_asprintf("%s; DELETE FROM pvelab_schema; INSERT INTO pvelab_schema "
				  "VALUES (%d)",
				  text, v + 1);
		r = pl_state_exec(s, sql, errmsg);
		free(sql);
		free(text);
		if (r != 0) {
			pl_preferr(errmsg, r, "migration %d", v + 1);
			goto fail;
		}
		if ((r = pl_state_commit(s, errmsg)) != 0)
			return r;
	}
fail:
	pl_state_rollback(s);
	return r;
}

static int
migrate(struct pl_state *s, char **errmsg)
{
	int v = pl_state_version(s), latest = pl_state_migration_count();
	int r;

	if (s->pg)
		return pg_migrate(s, errmsg);

	if (v > latest)
		return pl_seterr(errmsg, PL_EDB,
				 "state database '%s' has schema version %d, newer "
				 "than this pvelab knows (%d); upgrade pvelab",
				 s->path, v, latest);
	for (int n = v + 1; n <= latest; n++) {
		char *sql;

		if ((r = pl_state_begin(s, true, errmsg)) != 0)
			return r;
		sql = pl_asprintf("%s; PRAGMA user_version = %d;", pl_state_migration(n), n);
		r = pl_state_exec(s, sql, errmsg);
		free(sql);
		if (r != 0) {
			pl_state_rollback(s);
			return pl_preferr(errmsg, r, "migration %d", n);
		}
		if ((r = pl_state_commit(s, errmsg)) != 0)
			return r;
	}
	return 0;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Before SQLite's first use: no allocation statistics (a global mutex taken
 * on every malloc inside SQLite). Too late, if something else used SQLite
 * first, is harmless. */
static void
sqlite_setup(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int
open_common(const char *path, int flags, struct pl_state **out, char **errmsg)
{
	struct pl_state *s = pl_calloc(1, sizeof(*s));
	int r;

	s->path = pl_strdup(path);
	pthread_once(&once, sqlite_setup);
	/* A connection is only ever used by one thread at a time. */
	if (sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		r = pl_seterr(errmsg, PL_EDB, "cannot open state database '%s': %s", path,
			      s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, PL_STATE_BUSY_MS);
	sqlite3_extended_result_codes(s->db, 1);
	/* Checkpoints are not a command's last act (see pl_state_checkpoint_start). */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	*out = s;
	return 0;
fail:
	pl_state_close(s);
	return r;
}

static void
pg_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message; /* NOTICEs ("relation already exists, skipping") */
}

/* The connection string as shown: user, host, port and database, never
 * the password. */
static char *
pg_display(const char *conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL), *o;
	const char *user = "", *host = "", *port = "", *db = "", *schema = NULL;
	char *r;

	for (o = opts; o && o->keyword; o++) {
		const char *v = o->val ? o->val : "";

		if (!strcmp(o->keyword, "options"))
			schema = strstr(v, "-csearch_path=");
		else if (!strcmp(o->keyword, "user"))
			user = v;
		else if (!strcmp(o->keyword, "host"))
			host = v;
		else if (!strcmp(o->keyword, "port"))
			port = v;
		else if (!strcmp(o->keyword, "dbname"))
			db = v;
	}
	if (schema) /* -csearch_path="NAME" */
		schema += strlen("-csearch_path=") + (schema[14] == '"');
	r = pl_asprintf("postgresql://%s%s%s%s%s/%s%s%.*s%s", user, *user ? "@" : "", host,
			*port ? ":" : "", port, db, schema ? " (schema " : "",
			schema ? (int)strcspn(schema, "\" ") : 0, schema ? schema : "",
			schema ? ")" : "");
	PQconninfoFree(opts);
	return r;
}

/* v into b as the inside of a libpq '...' value. */
static void
add_conn_value(struct pl_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\'' || *v == '\\')
			pl_buf_addch(b, '\\');
		pl_buf_addch(b, *v);
	}
}

char *
pl_state_pg_schema(const char *conninfo, const char *schema)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL), *o;
	struct pl_buf b;

	if (opts == NULL) /* pg_open will say what is wrong with it */
		return pl_strdup(conninfo);
	pl_buf_init(&b, 0);
	for (o = opts; o->keyword; o++) {
		if (o->val == NULL || !strcmp(o->keyword, "options"))
			continue;
		pl_buf_addf(&b, "%s%s='", b.len ? " " : "", o->keyword);
		add_conn_value(&b, o->val);
		pl_buf_addch(&b, '\'');
	}
	pl_buf_addf(&b, " options='-csearch_path=\"%s\"", schema);
	for (o = opts; o->keyword; o++) /* the string's own options after it */
		if (o->val && *o->val && !strcmp(o->keyword, "options")) {
			pl_buf_addch(&b, ' ');
			add_conn_value(&b, o->val);
		}
	pl_buf_addch(&b, '\'');
	PQconninfoFree(opts);
	return pl_buf_detach(&b, NULL);
}

/* A store opened to write whose search_path names a schema that does not
 * exist yet (a cluster's, in a database several clusters share): made. */
static int
pg_make_schema(struct pl_state *s, char **errmsg)
{
	PGresult *res = PQexec(s->pg, "SELECT current_schema() IS NULL, format('CREATE SCHEMA IF "
				      "NOT EXISTS %I', trim(both '\"' from split_part("
				      "current_setting('search_path'), ',', 1)))");
	int r = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		r = pl_state_dberr(s, errmsg, "read the search_path");
	else if (!strcmp(PQgetvalue(res, 0, 0), "t"))
		r = pl_state_exec(s, PQgetvalue(res, 0, 1), errmsg);
	PQclear(res);
	return r;
}

char *
pl_state_display(const char *where)
{
	return pl_state_is_pg(where) ? pg_display(where) : pl_strdup(where);
}

bool
pl_state_is_postgres(const struct pl_state *s)
{
	return s->pg != NULL;
}

bool
pl_state_has_password(const char *where)
{
	PQconninfoOption *opts, *o;
	bool has = false;

	if (!pl_state_is_pg(where) || (opts = PQconninfoParse(where, NULL)) == NULL)
		return false;
	for (o = opts; o->keyword; o++)
		if (!strcmp(o->keyword, "password") && o->val && *o->val)
			has = true;
	PQconninfoFree(opts);
	return has;
}

/* Connect to PostgreSQL: a libpq URI or key=value string, its password from
 * PGPASSFILE or ~/.pgpass (or the string itself). */
static int
pg_open(const char *conninfo, struct pl_state **out, char **errmsg)
{
	const char *keys[] = { "application_name", "connect_timeout", "dbname", NULL };
	const char *vals[] = { "pvelab", "10", conninfo, NULL };
	struct pl_state *s = pl_calloc(1, sizeof(*s));
	char *e = NULL;
	PQconninfoOption *opts;
	int r;

	if ((opts = PQconninfoParse(conninfo, &e)) == NULL) {
		r = pl_seterr(errmsg, PL_EINVAL, "state: not a PostgreSQL connection string (%.*s)",
			      e ? (int)strcspn(e, "\n") : 5, e ? e : "error");
		PQfreemem(e);
		free(s);
		return r;
	}
	PQconninfoFree(opts);
	s->path = pg_display(conninfo);
	s->prepared = json_object();
	s->held = json_object();
	s->lost = json_object();
	s->pg = PQconnectdbParams(keys, vals, 1);
	if (s->pg == NULL || PQstatus(s->pg) != CONNECTION_OK) {
		char buf[512];

		r = pl_seterr(errmsg, PL_EDB, "cannot open state database '%s': %s", s->path,
			      s->pg ? pg_message(s, buf, sizeof(buf)) : "out of memory");
		pl_state_close(s);
		return r;
	}
	PQsetNoticeProcessor(s->pg, pg_quiet, NULL);
	/* a writer waits for another as long as SQLite's busy timeout */
	if ((r = pl_state_exec(s, "SET lock_timeout = '" PL_STATE_BUSY_S_TEXT "s'", errmsg)) != 0) {
		pl_state_close(s);
		return r;
	}
	*out = s;
	return 0;
}

int
pl_state_open(const char *path, struct pl_state **out, char **errmsg)
{
	char *dir;
	struct pl_state *s = NULL;
	int r;

	*out = NULL;
	if (pl_state_is_pg(path)) {
		if ((r = pg_open(path, &s, errmsg)) != 0)
			return r;
		if ((r = pg_make_schema(s, errmsg)) != 0 || (r = migrate(s, errmsg)) != 0) {
			pl_state_close(s);
			return r;
		}
		*out = s;
		return 0;
	}
	dir = pl_path_dirname(path);
	r = pl_mkdir_p(dir, 0700, errmsg);
	free(dir);
	if (r != 0)
		return r;
	if ((r = open_common(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s, errmsg)) != 0)
		return r;
	chmod(path, 0600);
	if ((r = pl_state_exec(s,
			       "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
			       "PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=" WAL_MAX_PAGES
			       ";",
			       errmsg)) != 0 ||
	    (r = migrate(s, errmsg)) != 0) {
		pl_state_close(s);
		return r;
	}
	*out = s;
	return 0;
}

int
pl_state_open_existing(const char *path, struct pl_state **out, char **errmsg)
{
	struct stat sb;

	struct pl_state *s = NULL;
	int r, v;

	*out = NULL;
	if (!pl_state_is_pg(path)) {
		if (stat(path, &sb) != 0)
			return pl_seterr(errmsg, PL_ENOENT, "no state at '%s' yet", path);
		return pl_state_open(path, out, errmsg);
	}
	/* a database without pvelab's schema is no store yet: none is made */
	if ((r = pg_open(path, &s, errmsg)) != 0)
		return r;
	if ((v = pg_version(s)) <= 0)
		r = v == 0 ? pl_seterr(errmsg, PL_ENOENT, "no state in '%s' yet", s->path) :
			     pl_state_dberr(s, errmsg, "read the schema version");
	else
		r = migrate(s, errmsg);
	if (r != 0) {
		pl_state_close(s);
		return r;
	}
	*out = s;
	return 0;
}

/* The schema version, or a negative SQLite result code when it cannot be read. */
static int
read_version(struct pl_state *s)
{
	sqlite3_stmt *st;
	int rc, v;

	if ((rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL)) != SQLITE_OK)
		return -rc;
	rc = sqlite3_step(st);
	v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -rc;
	sqlite3_finalize(st);
	return v;
}

int
pl_state_open_ro(const char *path, struct pl_state **out, char **errmsg)
{
	struct stat sb;
	struct pl_state *s = NULL;
	int r, v;

	*out = NULL;
	if (pl_state_is_pg(path)) {
		if ((r = pg_open(path, &s, errmsg)) != 0)
			return r;
		s->ro = true;
		if ((r = pl_state_exec(s, "SET default_transaction_read_only = on", errmsg)) != 0)
			goto fail;
	} else if (stat(path, &sb) != 0) {
		return pl_seterr(errmsg, PL_ENOENT,
				 "no state at '%s' yet (run 'pvelab sync' "
				 "first, or use --live)",
				 path);
	} else if ((r = open_common(path, SQLITE_OPEN_READONLY, &s, errmsg)) != 0) {
		/* Read-only: a read never writes and never migrates. On a read-only
		 * mount SQLite keeps the WAL index in memory when the WAL is empty. */
		return r;
	}
	s->ro = true;
	if ((v = s->pg ? pg_version(s) : read_version(s)) < 0) {
		r = pl_state_dberr(s, errmsg, "read");
		goto fail;
	}
	if (v == 0) {
		r = pl_seterr(errmsg, PL_ENOENT,
			      "no state in '%s' yet (run 'pvelab sync' first, "
			      "or use --live)",
			      s->path);
		goto fail;
	}
	if (v > pl_state_migration_count()) {
		r = pl_seterr(errmsg, PL_EDB,
			      "state database '%s' has schema version %d, newer "
			      "than this pvelab knows (%d); upgrade pvelab",
			      s->path, v, pl_state_migration_count());
		goto fail;
	}
	if (v < pl_state_migration_count()) {
		r = pl_seterr(errmsg, PL_EDB,
			      "state database '%s' has schema version %d, older "
			      "than this pvelab's (%d) (run 'pvelab sync' to upgrade it; reading "
			      "never does)",
			      s->path, v, pl_state_migration_count());
		goto fail;
	}
	*out = s;
	return 0;
fail:
	pl_state_close(s);
	return r;
}

/*
 * Checkpoints. Copying a sync's pages from the WAL into the database costs
 * two fsyncs and 35-50 ms for 10,000 guests, all after the last answer
 * arrived. So a commit leaves its pages in the WAL and closing never
 * checkpoints; the next sync copies them on a thread of its own while it
 * waits for /cluster/resources, and begins writing only when that is done, so
 * that SQLite starts the WAL over. A store only other commands write to
 * checkpoints at a commit that finds over WAL_MAX_PAGES pages in the WAL,
 * which bounds it at about 40 MB.
 */
struct pl_state_ckpt {
	pthread_t thread;
	char *path;
};

static void *
ckpt_run(void *arg)
{
	struct pl_state_ckpt *k = arg;
	struct pl_state *s;
	int log = 0, done = 0, rc;

	if (open_common(k->path, SQLITE_OPEN_READWRITE, &s, NULL) != 0)
		return NULL;
	/* A read first: a connection opens the WAL with its first transaction. */
	pl_state_version(s);
	rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
	if (rc != SQLITE_OK)
		pl_log_debug("state: checkpoint: %s", sqlite3_errmsg(s->db));
	else
		pl_log_debug("state: checkpointed %d of %d WAL pages", done, log);
	pl_state_close(s);
	return NULL;
}

struct pl_state_ckpt *
pl_state_checkpoint_start(struct pl_state *s)
{
	struct pl_state_ckpt *k;
	char *wal = pl_asprintf("%s-wal", s->path);
	struct stat sb;
	bool some = !s->ro && !s->pg && stat(wal, &sb) == 0 && sb.st_size > 0;

	free(wal);
	if (!some)
		return NULL;
	k = pl_calloc(1, sizeof(*k));
	k->path = pl_strdup(s->path);
	if (pthread_create(&k->thread, NULL, ckpt_run, k) != 0) {
		ckpt_run(k);
		free(k->path);
		free(k);
		return NULL;
	}
	return k;
}

void
pl_state_checkpoint_wait(struct pl_state_ckpt *k)
{
	if (k == NULL)
		return;
	pthread_join(k->thread, NULL);
	free(k->path);
	free(k);
}

void
pl_state_close(struct pl_state *s)
{
	if (s == NULL)
		return;
	sqlite3_finalize(s->data_version_st);
	PQfinish(s->pg);
	json_decref(s->prepared);
	json_decref(s->held);
	json_decref(s->lost);
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

/* PostgreSQL's: every commit that wrote notifies PL_STATE_CHANNEL (db.c),
 * and this connection listens from its first call on. Reading what the
 * server sent costs no round trip. A broken connection cannot tell: each
 * call is a change. */
static long long
pg_generation(struct pl_state *s)
{
	PGnotify *n;
	bool changed = false;

	if (PQstatus(s->pg) == CONNECTION_BAD && pl_state_pg_alive(s, NULL) != 0)
		return ++s->generation;
	if (PQtransactionStatus(s->pg) != PQTRANS_IDLE)
		return s->generation;
	if (!s->listening) {
		if (pl_state_exec(s, "LISTEN " PL_STATE_CHANNEL, NULL) != 0)
			return ++s->generation;
		s->listening = true;
		changed = true; /* what came before is unknown */
	}
	if (PQconsumeInput(s->pg) != 1)
		return ++s->generation;
	while ((n = PQnotifies(s->pg)) != NULL) {
		PQfreemem(n);
		changed = true;
	}
	if (changed)
		s->generation++;
	return s->generation;
}

int
pl_state_size(struct pl_state *s, long long *bytes, char **errmsg)
{
	struct pl_stmt *st;
	struct stat sb;
	char *wal;
	int r;

	*bytes = 0;
	if (!pl_state_pg(s)) {
		wal = pl_asprintf("%s-wal", s->path);
		if (stat(s->path, &sb) == 0)
			*bytes += sb.st_size;
		if (stat(wal, &sb) == 0)
			*bytes += sb.st_size;
		free(wal);
		return 0;
	}
	/* the tables of the schema pvelab's are in, with their indexes and TOAST */
	if ((r = pl_state_prep(s,
			       "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM "
			       "pg_class c WHERE c.relkind = 'r' AND c.relnamespace = (SELECT "
			       "relnamespace FROM pg_class WHERE oid = "
			       "to_regclass('pvelab_schema'))",
			       &st, errmsg)) != 0)
		return r;
	if (pl_stmt_step(st) == PL_DB_ROW)
		*bytes = pl_stmt_int64(st, 0);
	else
		r = pl_state_dberr(s, errmsg, "size");
	pl_stmt_finalize(st);
	return r;
}

long long
pl_state_generation(struct pl_state *s)
{
	long long dv = s->data_version, own, ms;
	struct timespec now;

	if (pl_state_pg(s))
		return pg_generation(s);
	/* a transaction of this connection's is open (a sync reading the
	 * cluster): what it wrote is not committed, the generation stays */
	if (!sqlite3_get_autocommit(s->db))
		return s->generation;
	own = sqlite3_total_changes64(s->db);
	/* other processes' commits are read at most once per tick of the
	 * coarse clock (1-4 ms): the read takes a shared lock (fcntl) on the
	 * file, and serve asks for every request; this connection's own
	 * changes are always seen */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	if (ms == s->data_version_read) {
		if (own != s->own_changes)
			s->generation++;
		s->own_changes = own;
		return s->generation;
	}
	s->data_version_read = ms;
	if (s->data_version_st == NULL)
		sqlite3_prepare_v3(s->db, "PRAGMA data_version", -1, SQLITE_PREPARE_PERSISTENT,
				   &s->data_version_st, NULL);
	if (s->data_version_st && sqlite3_step(s->data_version_st) == SQLITE_ROW)
		dv = sqlite3_column_int64(s->data_version_st, 0);
	else
		dv = s->data_version + 1; /* cannot tell: assume it changed */
	if (s->data_version_st)
		sqlite3_reset(s->data_version_st);
	if (dv != s->data_version || own != s->own_changes)
		s->generation++;
	s->data_version = dv;
	s->own_changes = own;
	return s->generation;
}
