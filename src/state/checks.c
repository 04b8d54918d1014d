/*
 * Health checks' state changes in the store (pvelab serve): appended as they
 * happen, read newest first, at most PL_STATE_CHECK_KEEP kept per check;
 * and the silences pvelab silence sets, which serve reads.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/err.h"
#include "core/json.h"
#include "state/internal.h"

int
pl_state_check_event_add(struct pl_state *s, const json_t *ev, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	char *text = pl_json_compact(ev);
	const char *name = pl_json_str_or(ev, "name", "");
	int r;

	if ((r = pl_state_prep(s,
			       "INSERT INTO check_events(name,ts,status_from,status_to,json) "
			       "VALUES (?,?,?,?,?)",
			       &st, errmsg)) != 0)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 2, pl_json_num(ev, "ts", pl_state_now()));
	pl_state_bind_text(st, 3, pl_json_str(ev, "from"));
	sqlite3_bind_text(st, 4, pl_json_str_or(ev, "to", "unknown"), -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 5, text, -1, SQLITE_TRANSIENT);
	if ((r = pl_state_step_done(s, st, errmsg)) != 0)
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	if ((r = pl_state_prep(s,
			       "DELETE FROM check_events WHERE name = ?1 AND id <= (SELECT id "
			       "FROM check_events WHERE name = ?1 ORDER BY id DESC LIMIT 1 "
			       "OFFSET ?2)",
			       &st, errmsg)) != 0)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 2, PL_STATE_CHECK_KEEP);
	r = pl_state_step_done(s, st, errmsg);
out:
	sqlite3_finalize(st);
	free(text);
	return r;
}

int
pl_state_check_events(struct pl_state *s, const char *name, int limit, json_t **out, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       name ? "SELECT id, json FROM check_events WHERE name = ? ORDER "
				      "BY id DESC LIMIT ?" :
				      "SELECT id, json FROM check_events ORDER BY id DESC LIMIT ?",
			       &st, errmsg)) != 0)
		return r;
	if (name)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, name ? 2 : 1, limit);
	*out = json_array();
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *text = (const char *)sqlite3_column_text(st, 1);
		json_t *ev = pl_json_loadb(text, strlen(text), 0);

		if (!json_is_object(ev)) {
			json_decref(ev);
			continue;
		}
		json_object_set_new(ev, "id", json_integer(sqlite3_column_int64(st, 0)));
		json_array_append_new(*out, ev);
	}
	r = r == SQLITE_DONE ? 0 : pl_state_dberr(s, errmsg, "read check events");
	sqlite3_finalize(st);
	if (r != 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}

int
pl_state_silence_add(struct pl_state *s, const char *pattern, double until, const char *reason,
		     long long *id, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s,
			       "INSERT INTO check_silences(pattern,created,until,reason) "
			       "VALUES (?,?,?,?)",
			       &st, errmsg)) != 0)
		return r;
	sqlite3_bind_text(st, 1, pattern, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 2, pl_state_now());
	sqlite3_bind_double(st, 3, until);
	pl_state_bind_text(st, 4, reason);
	if ((r = pl_state_step_done(s, st, errmsg)) == 0)
		*id = sqlite3_last_insert_rowid(s->db);
	sqlite3_finalize(st);
	return r;
}

int
pl_state_silences(struct pl_state *s, double now, json_t **out, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT id, pattern, created, until, reason FROM check_silences "
			       "WHERE until > ? ORDER BY id DESC",
			       &st, errmsg)) != 0)
		return r;
	sqlite3_bind_double(st, 1, now);
	*out = json_array();
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(*out,
				      json_pack("{s:I,s:s,s:f,s:f,s:s?}", "id",
						(json_int_t)sqlite3_column_int64(st, 0), "pattern",
						(const char *)sqlite3_column_text(st, 1), "created",
						sqlite3_column_double(st, 2), "until",
						sqlite3_column_double(st, 3), "reason",
						(const char *)sqlite3_column_text(st, 4)));
	r = r == SQLITE_DONE ? 0 : pl_state_dberr(s, errmsg, "read silences");
	sqlite3_finalize(st);
	if (r != 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}

int
pl_state_silence_end(struct pl_state *s, long long id, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	double now = pl_state_now();
	int r;

	if ((r = pl_state_prep(s, "UPDATE check_silences SET until = ? WHERE id = ? AND until > ?",
			       &st, errmsg)) != 0)
		return r;
	sqlite3_bind_double(st, 1, now);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_double(st, 3, now);
	if ((r = pl_state_step_done(s, st, errmsg)) == 0 && sqlite3_changes(s->db) == 0)
		r = pl_seterr(errmsg, PL_ENOENT,
			      "no silence %lld holds (pvelab silence lists them)", id);
	sqlite3_finalize(st);
	return r;
}
