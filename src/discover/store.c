/*
 * Discovered hosts in the SQLite state database: table discovered_hosts (created
 * here, so the state layer's migrations need not know about discovery), first and
 * last seen, one transaction per scan.
 */
#include "core/common.h"
#include "discover/discover.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"

#include <sqlite3.h>
#include <time.h>

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS discovered_hosts("
	" address TEXT PRIMARY KEY,"
	" kind TEXT NOT NULL,"
	" first_seen INTEGER NOT NULL," /* unix seconds */
	" last_seen INTEGER NOT NULL,"
	" present INTEGER NOT NULL DEFAULT 1," /* 0 once a scan of its range missed it */
	" record TEXT NOT NULL)";              /* the host record as JSON */

static int
db_err(sqlite3 *db, char **errmsg, const char *what, const char *path)
{
	return pl_seterr(errmsg, PL_EDB, "cannot %s state database '%s': %s", what, path,
			 db ? sqlite3_errmsg(db) : "out of memory");
}

static bool
has_open_port(const json_t *rec)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(rec, "evidence"), i, e)
		if (!strcmp(pl_json_str_or(e, "state", ""), "open"))
			return true;
	return false;
}

int
pl_disc_store_save(const char *path, const json_t *records, const struct pl_disc_targets *t,
		   json_t **news, json_t **vanished, char **errmsg)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *sel = NULL, *up = NULL, *gone = NULL;
	json_t *before = json_object(), *seen = json_object(), *rec;
	char *dir = pl_path_dirname(path);
	long long now = (long long)time(NULL);
	const char *k;
	json_t *v;
	size_t i;
	int r;

	*news = json_array();
	*vanished = json_array();
	if ((r = pl_mkdir_p(dir, 0700, errmsg)) != 0)
		goto out;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		r = db_err(db, errmsg, "open", path);
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		r = db_err(db, errmsg, "prepare", path);
		goto out;
	}
	if (sqlite3_prepare_v2(db, "SELECT address, kind, present FROM discovered_hosts", -1, &sel,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO discovered_hosts(address, kind, first_seen, last_seen,"
			       " present, record) VALUES(?1, ?2, ?3, ?3, 1, ?4)"
			       " ON CONFLICT(address) DO UPDATE SET kind = excluded.kind,"
			       " last_seen = excluded.last_seen, present = 1, record = excluded.record",
			       -1, &up, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "UPDATE discovered_hosts SET present = 0 WHERE address = ?1", -1,
			       &gone, NULL) != SQLITE_OK) {
		r = db_err(db, errmsg, "query", path);
		goto rollback;
	}
	while ((r = sqlite3_step(sel)) == SQLITE_ROW)
		json_object_set_new(before, (const char *)sqlite3_column_text(sel, 0),
				    json_pack("{s:s,s:b}", "kind",
					      (const char *)sqlite3_column_text(sel, 1), "present",
					      sqlite3_column_int(sel, 2)));
	if (r != SQLITE_DONE) {
		r = db_err(db, errmsg, "read", path);
		goto rollback;
	}
	json_array_foreach(records, i, rec) {
		const char *addr = pl_json_str(rec, "address");
		const char *kind = pl_json_str_or(rec, "kind", "unknown");
		json_t *old;
		char *text;

		if (addr == NULL || !has_open_port(rec))
			continue;
		json_object_set_new(seen, addr, json_true());
		old = json_object_get(before, addr);
		if (old == NULL || !json_is_true(json_object_get(old, "present")))
			json_array_append_new(*news, json_pack("{s:s,s:s}", "address", addr, "kind", kind));
		text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
		sqlite3_reset(up);
		sqlite3_bind_text(up, 1, addr, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(up, 2, kind, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(up, 3, now);
		sqlite3_bind_text(up, 4, text, -1, SQLITE_TRANSIENT);
		r = sqlite3_step(up);
		free(text);
		if (r != SQLITE_DONE) {
			r = db_err(db, errmsg, "write", path);
			goto rollback;
		}
	}
	/* vanished: present before, inside what this scan covered, not seen now */
	json_object_foreach(before, k, v) {
		if (!json_is_true(json_object_get(v, "present")) || json_object_get(seen, k) ||
		    !pl_disc_targets_cover(t, k))
			continue;
		json_array_append_new(*vanished,
				      json_pack("{s:s,s:s}", "address", k, "kind",
						pl_json_str_or(v, "kind", "unknown")));
		sqlite3_reset(gone);
		sqlite3_bind_text(gone, 1, k, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(gone) != SQLITE_DONE) {
			r = db_err(db, errmsg, "write", path);
			goto rollback;
		}
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		r = db_err(db, errmsg, "commit to", path);
		goto rollback;
	}
	r = 0;
	goto out;
rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(up);
	sqlite3_finalize(gone);
	sqlite3_close(db);
	json_decref(before);
	json_decref(seen);
	free(dir);
	if (r != 0) {
		json_decref(*news);
		json_decref(*vanished);
		*news = *vanished = NULL;
	}
	return r;
}
