/*
 * SQLite store: opening with WAL and migrations, recording a sync as one
 * transaction with change detection by hash, and the reads the commands need.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "state/migrations.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

struct pl_state {
	sqlite3 *db;
	char *path;
};

#define WAL_MAX_PAGES "10000" /* wal_autocheckpoint: about 40 MB */

/* Keys of a guest that are not volatile counters: what history tracks. In
 * sorted order, as the canonical text of a guest writes them. */
static const char *const durable_keys[] = {
	"config", "hastate", "lock", "name", "node", "pool", "status", "tags", "template", "type",
	"vmid",
};
/* What the live part leaves out: the durable keys, and the inventory's mark of
 * a guest it could not read. All but the last for a guest kept as last read:
 * its live part carries the state the cluster gives now ("unknown" on an
 * offline node), laid over the kept one. */
static const char *const not_live[] = {
	"config", "hastate", "lock", "name", "node", "pool", "tags", "template", "type",
	"vmid", "_unread", "status",
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
dberr(struct pl_state *s, char **errmsg, const char *what)
{
	return pl_seterr(errmsg, PL_EDB, "state database '%s': %s: %s", s->path, what,
			 sqlite3_errmsg(s->db));
}

static int
exec(struct pl_state *s, const char *sql, char **errmsg)
{
	char *e = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &e) != SQLITE_OK) {
		pl_seterr(errmsg, PL_EDB, "state database '%s': %s", s->path, e ? e : "error");
		sqlite3_free(e);
		return PL_EDB;
	}
	return 0;
}

int
pl_state_latest_version(void)
{
	return pl_state_migration_count();
}

int
pl_state_version(struct pl_state *s)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

struct sqlite3 *
pl_state_db(struct pl_state *s)
{
	return s->db;
}

static int
migrate(struct pl_state *s, char **errmsg)
{
	int v = pl_state_version(s), latest = pl_state_migration_count();
	int r;

	if (v > latest)
		return pl_seterr(errmsg, PL_EDB, "state database '%s' has schema version %d, newer "
				 "than this pvelab knows (%d); upgrade pvelab", s->path, v, latest);
	for (int n = v + 1; n <= latest; n++) {
		char *sql;

		if ((r = exec(s, "BEGIN IMMEDIATE", errmsg)) != 0)
			return r;
		sql = pl_asprintf("%s; PRAGMA user_version = %d;", pl_state_migration(n), n);
		r = exec(s, sql, errmsg);
		free(sql);
		if (r != 0) {
			exec(s, "ROLLBACK", NULL);
			return pl_preferr(errmsg, r, "migration %d", n);
		}
		if ((r = exec(s, "COMMIT", errmsg)) != 0)
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
	sqlite3_busy_timeout(s->db, 10000);
	sqlite3_extended_result_codes(s->db, 1);
	/* Checkpoints are not a command's last act (see pl_state_checkpoint_start). */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	*out = s;
	return 0;
fail:
	pl_state_close(s);
	return r;
}

int
pl_state_open(const char *path, struct pl_state **out, char **errmsg)
{
	char *dir = pl_path_dirname(path);
	struct pl_state *s = NULL;
	int r;

	*out = NULL;
	r = pl_mkdir_p(dir, 0700, errmsg);
	free(dir);
	if (r != 0)
		return r;
	if ((r = open_common(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s, errmsg)) != 0)
		return r;
	chmod(path, 0600);
	if ((r = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
		      "PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=" WAL_MAX_PAGES ";",
		      errmsg)) != 0 ||
	    (r = migrate(s, errmsg)) != 0) {
		pl_state_close(s);
		return r;
	}
	*out = s;
	return 0;
}

int
pl_state_open_ro(const char *path, struct pl_state **out, char **errmsg)
{
	struct stat sb;
	struct pl_state *s = NULL;
	int r;

	*out = NULL;
	if (stat(path, &sb) != 0)
		return pl_seterr(errmsg, PL_ENOENT, "no state at '%s' yet (run 'pvelab sync' "
				 "first, or use --live)", path);
	/* Read-write open so that WAL recovery can run after a crash; nothing is written. */
	if ((r = open_common(path, SQLITE_OPEN_READWRITE, &s, errmsg)) != 0)
		return r;
	if (pl_state_version(s) < pl_state_migration_count()) {
		if ((r = migrate(s, errmsg)) != 0) {
			pl_state_close(s);
			return r;
		}
	}
	*out = s;
	return 0;
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
	bool some = stat(wal, &sb) == 0 && sb.st_size > 0;

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
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

/* The canonical text of a guest's durable part, written straight from the
 * guest: what pl_json_canonical gives for an object of its non-null durable
 * keys, with vmid and template as integers (old nodes send strings). */
static int
durable_text(const json_t *guest, struct pl_buf *b)
{
	bool first = true;

	pl_buf_addch(b, '{');
	for (size_t i = 0; i < PL_ARRAY_LEN(durable_keys); i++) {
		const char *k = durable_keys[i];
		json_t *v = json_object_get(guest, k), *n = NULL;

		if (v == NULL || json_is_null(v))
			continue;
		if (!json_is_integer(v) && (!strcmp(k, "vmid") || !strcmp(k, "template")))
			v = n = json_integer(pl_json_int(guest, k, 0));
		if (!first)
			pl_buf_addch(b, ',');
		pl_buf_addch(b, '"');
		pl_buf_addstr(b, k);
		pl_buf_add(b, "\":", 2);
		if (pl_json_write(b, v, true) != 0) {
			json_decref(n);
			return PL_ETOOBIG;
		}
		json_decref(n);
		first = false;
	}
	return pl_buf_addch(b, '}');
}

json_t *
pl_state_guest_sig(const json_t *guest)
{
	struct pl_buf text;
	char sha[65];
	json_t *sig;

	pl_buf_init(&text, 0);
	if (durable_text(guest, &text) != 0) {
		pl_buf_release(&text);
		return NULL;
	}
	pl_sha256_hex(text.data, text.len, sha);
	sig = json_array();
	json_array_append_new(sig, json_stringn_nocheck(sha, 64));
	json_array_append_new(sig, json_stringn_nocheck(text.data, text.len));
	pl_buf_release(&text);
	return sig;
}

static int
prep(struct pl_state *s, const char *sql, sqlite3_stmt **st, char **errmsg)
{
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
		return dberr(s, errmsg, "prepare");
	return 0;
}

static int
step_done(struct pl_state *s, sqlite3_stmt *st, char **errmsg)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return dberr(s, errmsg, "write");
	return 0;
}

static void
bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static int
add_history(struct pl_state *s, sqlite3_stmt *st, long long vmid, const char *kind,
	    const json_t *sig, long long run, double ts, char **errmsg)
{
	char key[32];

	snprintf(key, sizeof(key), "%lld", vmid);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, vmid);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, json_string_value(json_array_get(sig, 0)), 64, SQLITE_STATIC);
	if (run > 0)
		sqlite3_bind_int64(st, 5, run);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_double(st, 6, ts);
	sqlite3_bind_text(st, 7, json_string_value(json_array_get(sig, 1)),
			  (int)json_string_length(json_array_get(sig, 1)), SQLITE_STATIC);
	return step_done(s, st, errmsg);
}

static void
note_change(json_t *changes, long long vmid, const char *name, const char *kind)
{
	if (changes)
		json_array_append_new(changes, json_pack("{s:I,s:s?,s:s}", "vmid", (json_int_t)vmid,
							 "name", name, "kind", kind));
}

#define ST_HIST "INSERT INTO history(guest,vmid,kind,sha256,run_id,ts,json) VALUES (?,?,?,?,?,?,?)"

struct pl_state_sync {
	struct pl_state *s;
	sqlite3_stmt *up, *hist, *live;
	json_t *known;   /* vmid -> sha256 of the guests this sync has not seen yet */
	json_t *changes; /* [{vmid,name,kind}] */
	struct pl_state_counts cnt;
	long long run;
	double ts;
	bool dry_run;
	int err; /* the first failed guest write; the sync will roll back */
	char *errmsg;
};

int
pl_state_sync_begin(struct pl_state *s, bool dry_run, struct pl_state_sync **out, char **errmsg)
{
	struct pl_state_sync *y = pl_calloc(1, sizeof(*y));
	sqlite3_stmt *st = NULL;
	int r;

	*out = NULL;
	y->s = s;
	y->dry_run = dry_run;
	y->ts = now_s();
	y->known = json_object();
	y->changes = json_array();
	/* With foreign keys on, SQLite opens a statement journal for every insert
	 * they could abort: a tenth of a large sync. The rows written here refer
	 * only to the run row written first, so the checks are off until the end. */
	if ((r = exec(s, "PRAGMA foreign_keys=OFF; BEGIN IMMEDIATE", errmsg)) != 0) {
		pl_state_sync_abort(y);
		return r;
	}
	if ((r = prep(s, "INSERT INTO runs(kind,started) VALUES ('sync', ?)", &st, errmsg)) != 0)
		goto fail;
	sqlite3_bind_double(st, 1, y->ts);
	r = step_done(s, st, errmsg);
	sqlite3_finalize(st);
	if (r != 0)
		goto fail;
	y->run = sqlite3_last_insert_rowid(s->db);
	if ((r = prep(s, "INSERT INTO guests(vmid,type,node,name,status,tags,template,sha256,"
		      "json,live,run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(vmid) DO UPDATE "
		      "SET type=excluded.type, node=excluded.node, name=excluded.name, "
		      "status=excluded.status, tags=excluded.tags, template=excluded.template, "
		      "sha256=excluded.sha256, json=excluded.json, live=excluded.live, "
		      "run_id=excluded.run_id", &y->up, errmsg)) != 0 ||
	    (r = prep(s, "UPDATE guests SET status = ?, live = ?, run_id = ? WHERE vmid = ?",
		      &y->live, errmsg)) != 0 ||
	    (r = prep(s, ST_HIST, &y->hist, errmsg)) != 0 ||
	    (r = prep(s, "SELECT vmid, sha256 FROM guests", &st, errmsg)) != 0)
		goto fail;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		char key[32];

		snprintf(key, sizeof(key), "%lld", (long long)sqlite3_column_int64(st, 0));
		json_object_set_new(y->known, key,
				    json_string((const char *)sqlite3_column_text(st, 1)));
	}
	sqlite3_finalize(st);
	if (r != SQLITE_DONE) {
		r = dberr(s, errmsg, "read guests");
		goto fail;
	}
	*out = y;
	return 0;
fail:
	pl_state_sync_abort(y);
	return r;
}

void
pl_state_sync_abort(struct pl_state_sync *y)
{
	if (y == NULL)
		return;
	sqlite3_finalize(y->up);
	sqlite3_finalize(y->hist);
	sqlite3_finalize(y->live);
	if (sqlite3_get_autocommit(y->s->db) == 0)
		exec(y->s, "ROLLBACK", NULL);
	exec(y->s, "PRAGMA foreign_keys=ON", NULL);
	json_decref(y->known);
	json_decref(y->changes);
	free(y->errmsg);
	free(y);
}

/* A guest's row keeps its durable JSON (json, what history hashes) apart from
 * what moves on every sync (live: the rest of the resource entry, the counters,
 * which overlay the durable part when read). */
static char *
live_text(const json_t *g)
{
	return pl_json_compact_without(g, not_live, PL_ARRAY_LEN(not_live));
}

/* Unchanged: only the counters move (and the state column, which a guest
 * kept unread while its node was down had set to the cluster's word). Kept
 * unread: the counters and the state the cluster gives now. */
static int
guest_live(struct pl_state_sync *y, json_t *g, long long vmid, bool unread, char **errmsg)
{
	char *text = unread ? pl_json_compact_without(g, not_live, PL_ARRAY_LEN(not_live) - 1)
			    : live_text(g);

	bind_text_or_null(y->live, 1, pl_json_str(g, "status"));
	sqlite3_bind_text(y->live, 2, text, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(y->live, 3, y->run);
	sqlite3_bind_int64(y->live, 4, vmid);
	free(text);
	return step_done(y->s, y->live, errmsg);
}

static int
guest_put(struct pl_state_sync *y, json_t *g, long long vmid, const char *type,
	  const json_t *sig, char **errmsg)
{
	sqlite3_stmt *up = y->up;
	const json_t *durable = json_array_get(sig, 1);
	char *text = live_text(g);

	sqlite3_bind_int64(up, 1, vmid);
	sqlite3_bind_text(up, 2, type, -1, SQLITE_TRANSIENT);
	bind_text_or_null(up, 3, pl_json_str_or(g, "node", ""));
	bind_text_or_null(up, 4, pl_json_str(g, "name"));
	bind_text_or_null(up, 5, pl_json_str(g, "status"));
	bind_text_or_null(up, 6, pl_json_str(g, "tags"));
	sqlite3_bind_int(up, 7, (int)pl_json_int(g, "template", 0));
	sqlite3_bind_text(up, 8, json_string_value(json_array_get(sig, 0)), 64, SQLITE_STATIC);
	sqlite3_bind_text(up, 9, json_string_value(durable), (int)json_string_length(durable),
			  SQLITE_STATIC);
	sqlite3_bind_text(up, 10, text, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(up, 11, y->run);
	free(text);
	return step_done(y->s, up, errmsg);
}

void
pl_state_sync_guest(struct pl_state_sync *y, json_t *g, const json_t *sig)
{
	long long vmid = pl_json_int(g, "vmid", -1);
	const char *type = pl_json_str(g, "type"), *sha, *kind = NULL;
	json_t *own = NULL, *old;
	char key[32];
	int r;

	if (y->err || vmid < 0 || type == NULL || (strcmp(type, "qemu") && strcmp(type, "lxc")))
		return;
	snprintf(key, sizeof(key), "%lld", vmid);
	old = json_object_get(y->known, key);
	if (json_object_get(g, "_unread")) {
		/* Its config could not be read: the guest stays as recorded, with
		 * the state the cluster gives now (a new one is recorded from its
		 * resource entry). */
		y->cnt.unread++;
		if (old) {
			json_object_del(y->known, key);
			y->err = guest_live(y, g, vmid, true, &y->errmsg);
			return;
		}
	}
	if (json_array_size(sig) != 2 && (sig = own = pl_state_guest_sig(g)) == NULL) {
		y->err = pl_seterr(&y->errmsg, PL_ETOOBIG, "guest %lld's JSON is larger than %zu "
				   "bytes", vmid, (size_t)PL_BUF_DEFAULT_MAX);
		return;
	}
	sha = json_string_value(json_array_get(sig, 0));
	if (old == NULL) {
		kind = "discovered";
		y->cnt.added++;
	} else if (strcmp(json_string_value(old), sha) != 0) {
		kind = "updated";
		y->cnt.changed++;
	} else {
		y->cnt.unchanged++;
	}
	json_object_del(y->known, key);
	if (kind) {
		note_change(y->changes, vmid, pl_json_str(g, "name"), kind);
		if ((r = add_history(y->s, y->hist, vmid, kind, sig, y->run, y->ts, &y->errmsg)) == 0)
			r = guest_put(y, g, vmid, type, sig, &y->errmsg);
	} else {
		r = guest_live(y, g, vmid, false, &y->errmsg);
	}
	y->err = r;
	json_decref(own);
}

/* What this sync has not seen is gone: a history row each, and the row goes. */
static int
record_gone(struct pl_state_sync *y, char **errmsg)
{
	struct pl_state *s = y->s;
	sqlite3_stmt *one = NULL, *del = NULL;
	const char *k;
	json_t *v;
	int r;

	if ((r = prep(s, "SELECT json FROM guests WHERE vmid = ?", &one, errmsg)) != 0 ||
	    (r = prep(s, "DELETE FROM guests WHERE vmid = ?", &del, errmsg)) != 0)
		goto out;
	json_object_foreach(y->known, k, v) {
		long long vmid = strtoll(k, NULL, 10);
		const char *js;
		json_t *last = NULL, *sig;

		sqlite3_bind_int64(one, 1, vmid);
		if (sqlite3_step(one) == SQLITE_ROW && (js = (const char *)sqlite3_column_text(one, 0)))
			last = json_loads(js, 0, NULL);
		sqlite3_reset(one);
		sig = pl_state_guest_sig(last);
		y->cnt.removed++;
		note_change(y->changes, vmid, pl_json_str(last, "name"), "deleted");
		r = add_history(s, y->hist, vmid, "deleted", sig, y->run, y->ts, errmsg);
		json_decref(sig);
		json_decref(last);
		if (r != 0)
			goto out;
		sqlite3_bind_int64(del, 1, vmid);
		if ((r = step_done(s, del, errmsg)) != 0)
			goto out;
	}
out:
	sqlite3_finalize(one);
	sqlite3_finalize(del);
	return r;
}

/* Replace a whole table from an array of objects: key columns come from keys. */
static int
replace_table(struct pl_state *s, const char *table, const char *k1, const char *k2,
	      const json_t *arr, long long run, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	char *sql;
	json_t *o;
	size_t i;
	int r;

	sql = pl_asprintf("DELETE FROM %s", table);
	r = exec(s, sql, errmsg);
	free(sql);
	if (r != 0)
		return r;
	if (!strcmp(table, "nodes"))
		sql = pl_asprintf("INSERT OR REPLACE INTO nodes(node,status,json,run_id) "
				  "VALUES (?,?,?,%lld)", run);
	else
		sql = pl_asprintf("INSERT OR REPLACE INTO %s(%s,%s,json) VALUES (?,?,?)", table, k1,
				  k2);
	r = prep(s, sql, &st, errmsg);
	free(sql);
	if (r != 0)
		return r;
	json_array_foreach(arr, i, o) {
		const char *a = pl_json_str(o, k1), *b = k2 ? pl_json_str(o, k2) : NULL;
		char *text;

		if (a == NULL || (k2 && b == NULL && strcmp(table, "nodes")))
			continue;
		text = pl_json_compact(o);
		sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
		bind_text_or_null(st, 2, b);
		sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
		free(text);
		if ((r = step_done(s, st, errmsg)) != 0)
			break;
	}
	sqlite3_finalize(st);
	return r;
}

static int
task_put(struct pl_state *s, sqlite3_stmt *st, const char *upid, const json_t *t, char **errmsg)
{
	char *text = pl_json_compact(t);
	const char *id = pl_json_str(t, "id");
	long long vmid = pl_json_int(t, "vmid", id ? strtoll(id, NULL, 10) : 0);
	int r;

	sqlite3_bind_text(st, 1, upid, -1, SQLITE_TRANSIENT);
	bind_text_or_null(st, 2, pl_json_str(t, "node"));
	bind_text_or_null(st, 3, pl_json_str(t, "type"));
	if (vmid > 0)
		sqlite3_bind_int64(st, 4, vmid);
	else
		sqlite3_bind_null(st, 4);
	bind_text_or_null(st, 5, pl_json_str(t, "user"));
	sqlite3_bind_int64(st, 6, pl_json_int(t, "starttime", 0));
	sqlite3_bind_int64(st, 7, pl_json_int(t, "endtime", 0));
	bind_text_or_null(st, 8, pl_json_str(t, "status"));
	sqlite3_bind_text(st, 9, text, -1, SQLITE_TRANSIENT);
	free(text);
	r = step_done(s, st, errmsg);
	return r;
}

#define ST_TASK                                                                         \
	"INSERT INTO tasks(upid,node,type,vmid,user,starttime,endtime,status,json) "       \
	"VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(upid) DO UPDATE SET "                      \
	"endtime=excluded.endtime, status=excluded.status, json=excluded.json"

int
pl_state_sync_end(struct pl_state_sync *y, const json_t *snap, struct pl_state_counts *counts,
		  json_t **changes, long long *run_id, char **errmsg)
{
	struct pl_state *s = y->s;
	sqlite3_stmt *st = NULL;
	char *sum;
	json_t *t;
	size_t i;
	int r;

	if (y->err) {
		r = pl_seterr(errmsg, y->err, "%s", y->errmsg);
		goto fail;
	}
	if ((r = record_gone(y, errmsg)) != 0 ||
	    (r = replace_table(s, "nodes", "node", "status", json_object_get(snap, "nodes"),
			       y->run, errmsg)) != 0 ||
	    (r = replace_table(s, "storages", "node", "storage",
			       json_object_get(snap, "storages"), y->run, errmsg)) != 0 ||
	    (r = replace_table(s, "bridges", "node", "iface", json_object_get(snap, "bridges"),
			       y->run, errmsg)) != 0 ||
	    (r = prep(s, ST_TASK, &st, errmsg)) != 0)
		goto fail;
	json_array_foreach(json_object_get(snap, "tasks"), i, t) {
		const char *upid = pl_json_str(t, "upid");

		if (upid && (r = task_put(s, st, upid, t, errmsg)) != 0)
			goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	sum = pl_asprintf("{\"added\":%d,\"changed\":%d,\"removed\":%d,\"unchanged\":%d}",
			  y->cnt.added, y->cnt.changed, y->cnt.removed, y->cnt.unchanged);
	if ((r = prep(s, "UPDATE runs SET finished = ?, status = 'ok', summary = ? WHERE id = ?",
		      &st, errmsg)) == 0) {
		sqlite3_bind_double(st, 1, now_s());
		sqlite3_bind_text(st, 2, sum, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, y->run);
		r = step_done(s, st, errmsg);
	}
	free(sum);
	sqlite3_finalize(st);
	st = NULL;
	if (r != 0 || (r = exec(s, y->dry_run ? "ROLLBACK" : "COMMIT", errmsg)) != 0)
		goto fail;
	if (counts)
		*counts = y->cnt;
	if (run_id)
		*run_id = y->dry_run ? 0 : y->run;
	if (changes) {
		*changes = y->changes;
		y->changes = NULL;
	}
	pl_state_sync_abort(y); /* nothing left to roll back: only frees */
	return 0;
fail:
	sqlite3_finalize(st);
	pl_state_sync_abort(y);
	return r;
}

int
pl_state_record_sync(struct pl_state *s, const json_t *snap, bool dry_run,
		     struct pl_state_counts *counts, json_t **changes, long long *run_id,
		     char **errmsg)
{
	struct pl_state_sync *y;
	json_t *g;
	size_t i;
	int r;

	if ((r = pl_state_sync_begin(s, dry_run, &y, errmsg)) != 0)
		return r;
	json_array_foreach(json_object_get(snap, "guests"), i, g)
		pl_state_sync_guest(y, g, NULL);
	return pl_state_sync_end(y, snap, counts, changes, run_id, errmsg);
}

/* Step st to its end, appending row(st) for each row (a NULL row is left
 * out); finalizes st. */
static int
collect(struct pl_state *s, sqlite3_stmt *st, json_t *(*row)(sqlite3_stmt *), json_t **out,
	char **errmsg)
{
	json_t *arr = json_array(), *v;
	int rc;

	*out = NULL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((v = row(st)) != NULL)
			json_array_append_new(arr, v);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return dberr(s, errmsg, "query");
	}
	*out = arr;
	return 0;
}

/* Column i parsed as JSON, or NULL. */
static json_t *
column_json(sqlite3_stmt *st, int i, size_t flags)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	return t ? pl_json_loadb(t, (size_t)sqlite3_column_bytes(st, i), flags) : NULL;
}

static json_t *
row_json(sqlite3_stmt *st)
{
	return column_json(st, 0, JSON_DECODE_ANY);
}

/* Run sql with nbind int64 binds: each row's column 0 parsed as JSON. */
static int
query_json(struct pl_state *s, const char *sql, const long long *bind, int nbind, json_t **out,
	   char **errmsg)
{
	sqlite3_stmt *st;

	*out = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return dberr(s, errmsg, "query");
	for (int i = 0; i < nbind; i++)
		sqlite3_bind_int64(st, i + 1, bind[i]);
	return collect(s, st, row_json, out, errmsg);
}

/* RFC 7396 merge patch, as SQLite's json_patch: a null removes the key, an
 * object merges into the object under the same key. */
static void
merge_patch(json_t *target, const json_t *patch)
{
	const char *k;
	json_t *v, *t;

	json_object_foreach((json_t *)patch, k, v) {
		if (json_is_null(v)) {
			json_object_del(target, k);
		} else if (json_is_object(v)) {
			if (!json_is_object(t = json_object_get(target, k))) {
				t = json_object();
				json_object_set_new(target, k, t);
			}
			merge_patch(t, v);
		} else {
			json_object_set(target, k, v);
		}
	}
}

/* A row of (json, live): the stored guest with its latest counters laid
 * over it. */
static json_t *
row_guest(sqlite3_stmt *st)
{
	json_t *g = column_json(st, 0, 0), *live = column_json(st, 1, 0);

	if (!json_is_object(g)) {
		json_decref(g);
		g = NULL;
	} else if (json_is_object(live)) {
		merge_patch(g, live);
	}
	json_decref(live);
	return g;
}

int
pl_state_guests(struct pl_state *s, json_t **out, char **errmsg)
{
	return pl_state_guests_where(s, NULL, out, errmsg);
}

/* "SELECT cols FROM guests", only the guests f selects, by vmid. */
static int
prep_filtered(struct pl_state *s, const char *cols, const struct pl_state_filter *f,
	      sqlite3_stmt **st, char **errmsg)
{
	const char *val[3] = { f ? f->type : NULL, f ? f->node : NULL, f ? f->status : NULL };
	char *sql = pl_asprintf("SELECT %s FROM guests WHERE 1%s%s%s ORDER BY vmid", cols,
				val[0] ? " AND type = ?" : "", val[1] ? " AND node = ?" : "",
				val[2] ? " AND status = ?" : "");
	int rc, n = 0;

	rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return dberr(s, errmsg, "query");
	for (int i = 0; i < 3; i++)
		if (val[i])
			sqlite3_bind_text(*st, ++n, val[i], -1, SQLITE_STATIC);
	return 0;
}

int
pl_state_guests_where(struct pl_state *s, const struct pl_state_filter *f, json_t **out,
		      char **errmsg)
{
	sqlite3_stmt *st;
	int r;

	*out = NULL;
	if ((r = prep_filtered(s, "json, live", f, &st, errmsg)) != 0)
		return r;
	return collect(s, st, row_guest, out, errmsg);
}

#define TEXT(st, i) ((const char *)sqlite3_column_text(st, i))

/* A counter, absent when the cluster gave none (a guest of an offline node). */
static json_t *
counter(sqlite3_stmt *st, int i, bool real)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	return real ? json_real(sqlite3_column_double(st, i))
		    : json_integer((json_int_t)sqlite3_column_int64(st, i));
}

static json_t *
row_summary(sqlite3_stmt *st)
{
	return json_pack("{s:I,s:s?,s:s?,s:s?,s:s?,s:s?,s:b,s:s?,s:o?,s:o?,s:o?,s:o?,s:o?}",
			 "vmid", (json_int_t)sqlite3_column_int64(st, 0), "name", TEXT(st, 1),
			 "node", TEXT(st, 2), "type", TEXT(st, 3), "status", TEXT(st, 4), "tags",
			 TEXT(st, 5), "template", sqlite3_column_int(st, 6) != 0, "lock",
			 TEXT(st, 7), "cpu", counter(st, 8, true), "maxcpu", counter(st, 9, false),
			 "mem", counter(st, 10, false), "maxmem", counter(st, 11, false), "maxdisk",
			 counter(st, 12, false));
}

static json_t *
row_name(sqlite3_stmt *st)
{
	return json_pack("{s:I,s:s?}", "vmid", (json_int_t)sqlite3_column_int64(st, 0), "name",
			 TEXT(st, 1));
}

#undef TEXT

int
pl_state_guest_summaries(struct pl_state *s, const struct pl_state_filter *f, json_t **out,
			 char **errmsg)
{
	sqlite3_stmt *st;
	int r;

	*out = NULL;
	if ((r = prep_filtered(s,
			       "vmid, name, node, type, status, tags, template, "
			       "json_extract(json, '$.lock'), json_extract(live, '$.cpu'), "
			       "json_extract(live, '$.maxcpu'), json_extract(live, '$.mem'), "
			       "json_extract(live, '$.maxmem'), json_extract(live, '$.maxdisk')",
			       f, &st, errmsg)) != 0)
		return r;
	return collect(s, st, row_summary, out, errmsg);
}

int
pl_state_guest(struct pl_state *s, long long vmid, json_t **out, char **errmsg)
{
	sqlite3_stmt *st;
	json_t *arr;
	int r;

	*out = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT json, live FROM guests WHERE vmid = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return dberr(s, errmsg, "query");
	sqlite3_bind_int64(st, 1, vmid);
	if ((r = collect(s, st, row_guest, &arr, errmsg)) != 0)
		return r;
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return pl_seterr(errmsg, PL_ENOENT, "no guest %lld", vmid);
	}
	*out = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return 0;
}

int
pl_state_guest_names(struct pl_state *s, json_t **out, char **errmsg)
{
	sqlite3_stmt *st;

	*out = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT vmid, name FROM guests ORDER BY vmid", -1, &st,
			       NULL) != SQLITE_OK)
		return dberr(s, errmsg, "query");
	return collect(s, st, row_name, out, errmsg);
}

int
pl_state_guest_counts(struct pl_state *s, json_t **out, char **errmsg)
{
	return query_json(s, "SELECT json_object('type', type, 'status', status, 'n', count(*)) "
			  "FROM guests GROUP BY type, status", NULL, 0, out, errmsg);
}

int
pl_state_nodes(struct pl_state *s, json_t **out, char **errmsg)
{
	return query_json(s, "SELECT json FROM nodes ORDER BY node", NULL, 0, out, errmsg);
}

int
pl_state_storages(struct pl_state *s, json_t **out, char **errmsg)
{
	return query_json(s, "SELECT json FROM storages ORDER BY node, storage", NULL, 0, out,
			  errmsg);
}

int
pl_state_bridges(struct pl_state *s, json_t **out, char **errmsg)
{
	return query_json(s, "SELECT json FROM bridges ORDER BY node, iface", NULL, 0, out, errmsg);
}

int
pl_state_history(struct pl_state *s, long long vmid, json_t **out, char **errmsg)
{
	return query_json(s,
			  "SELECT json_object('id', id, 'kind', kind, 'sha256', sha256, 'run', "
			  "run_id, 'ts', ts, 'state', json(json)) FROM history WHERE vmid = ? "
			  "ORDER BY id",
			  &vmid, 1, out, errmsg);
}

long long
pl_state_history_count(struct pl_state *s)
{
	sqlite3_stmt *st;
	long long n = -1;

	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM history", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

int
pl_state_tasks(struct pl_state *s, long long vmid, int limit, json_t **out, char **errmsg)
{
	long long b[2] = { vmid, limit > 0 ? limit : 1000000 };

	if (vmid < 0)
		return query_json(s, "SELECT json FROM tasks ORDER BY starttime DESC LIMIT ?", &b[1],
				  1, out, errmsg);
	return query_json(s, "SELECT json FROM tasks WHERE vmid = ? ORDER BY starttime DESC "
			  "LIMIT ?", b, 2, out, errmsg);
}

int
pl_state_task_put(struct pl_state *s, const char *upid, const json_t *info, char **errmsg)
{
	sqlite3_stmt *st;
	int r;

	if ((r = prep(s, ST_TASK, &st, errmsg)) != 0)
		return r;
	r = task_put(s, st, upid, info, errmsg);
	sqlite3_finalize(st);
	return r;
}

int
pl_state_last_run(struct pl_state *s, const char *kind, json_t **out, char **errmsg)
{
	sqlite3_stmt *st;
	json_t *arr;
	int r;

	*out = NULL;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT json_object('id', id, 'kind', kind, 'started', started, "
			       "'finished', finished, 'status', status, 'summary', json(summary)) "
			       "FROM runs WHERE kind = ? AND status = 'ok' ORDER BY id DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return dberr(s, errmsg, "query");
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
	arr = NULL;
	if (sqlite3_step(st) == SQLITE_ROW)
		arr = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	if (arr == NULL)
		return pl_seterr(errmsg, PL_ENOENT, "no %s run recorded", kind);
	*out = arr;
	r = 0;
	return r;
}

int
pl_state_history_add(struct pl_state *s, const json_t *guest, const char *kind, long long run_id,
		     char **errmsg)
{
	sqlite3_stmt *st;
	json_t *sig = pl_state_guest_sig(guest);
	int r;

	if (sig == NULL)
		return pl_seterr(errmsg, PL_ETOOBIG, "guest JSON larger than %zu bytes",
				 (size_t)PL_BUF_DEFAULT_MAX);
	if ((r = prep(s, ST_HIST, &st, errmsg)) == 0) {
		r = add_history(s, st, pl_json_int(guest, "vmid", 0), kind, sig, run_id, now_s(),
				errmsg);
		sqlite3_finalize(st);
	}
	json_decref(sig);
	return r;
}
