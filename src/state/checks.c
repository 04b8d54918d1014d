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
	struct pl_stmt *st = NULL;
	char *text = pl_json_compact(ev);
	const char *name = pl_json_str_or(ev, "name", "");
	bool own = !pl_state_in_transaction(s);
	int r;

	/* the server's loop calls this: it never waits for another writer */
	if (own && (r = pl_state_begin(s, false, errmsg)) != 0)
		goto out;
	if ((r = pl_state_prep(s,
			       "INSERT INTO check_events(name,ts,status_from,status_to,json) "
			       "VALUES (?,?,?,?,?)",
			       &st, errmsg)) != 0)
		goto out;
	pl_stmt_bind_text(st, 1, name);
	pl_stmt_bind_double(st, 2, pl_json_num(ev, "ts", pl_state_now()));
	pl_stmt_bind_text(st, 3, pl_json_str(ev, "from"));
	pl_stmt_bind_text(st, 4, pl_json_str_or(ev, "to", "unknown"));
	pl_stmt_bind_text(st, 5, text);
	if ((r = pl_state_step_done(s, st, errmsg)) != 0)
		goto out;
	pl_stmt_finalize(st);
	st = NULL;
	if ((r = pl_state_prep(s,
			       "DELETE FROM check_events WHERE name = ?1 AND id <= (SELECT id "
			       "FROM check_events WHERE name = ?1 ORDER BY id DESC LIMIT 1 "
			       "OFFSET ?2)",
			       &st, errmsg)) != 0)
		goto out;
	pl_stmt_bind_text(st, 1, name);
	pl_stmt_bind_int64(st, 2, PL_STATE_CHECK_KEEP);
	r = pl_state_step_done(s, st, errmsg);
	pl_stmt_finalize(st);
	st = NULL;
	if (own && r == 0)
		r = pl_state_commit(s, errmsg);
out:
	pl_stmt_finalize(st);
	if (own && r != 0)
		pl_state_rollback(s);
	free(text);
	return r;
}

int
pl_state_check_events(struct pl_state *s, const char *name, int limit, json_t **out, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       name ? "SELECT id, json FROM check_events WHERE name = ? ORDER "
				      "BY id DESC LIMIT ?" :
				      "SELECT id, json FROM check_events ORDER BY id DESC LIMIT ?",
			       &st, errmsg)) != 0)
		return r;
	if (name)
		pl_stmt_bind_text(st, 1, name);
	pl_stmt_bind_int64(st, name ? 2 : 1, limit);
	*out = json_array();
	while ((r = pl_stmt_step(st)) == PL_DB_ROW) {
		const char *text = pl_stmt_text(st, 1);
		json_t *ev = pl_json_loadb(text, strlen(text), 0);

		if (!json_is_object(ev)) {
			json_decref(ev);
			continue;
		}
		json_object_set_new(ev, "id", json_integer(pl_stmt_int64(st, 0)));
		json_array_append_new(*out, ev);
	}
	r = r == PL_DB_DONE ? 0 : pl_state_dberr(s, errmsg, "read check events");
	pl_stmt_finalize(st);
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
	struct pl_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s,
			       "INSERT INTO check_silences(pattern,created,until,reason) "
			       "VALUES (?,?,?,?) RETURNING id",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, pattern);
	pl_stmt_bind_double(st, 2, pl_state_now());
	pl_stmt_bind_double(st, 3, until);
	pl_stmt_bind_text(st, 4, reason);
	r = pl_state_step_id(s, st, id, errmsg);
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_silences(struct pl_state *s, double now, json_t **out, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT id, pattern, created, until, reason FROM check_silences "
			       "WHERE until > ? ORDER BY id DESC",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_double(st, 1, now);
	*out = json_array();
	while ((r = pl_stmt_step(st)) == PL_DB_ROW)
		json_array_append_new(
			*out,
			json_pack("{s:I,s:s,s:f,s:f,s:s?}", "id", (json_int_t)pl_stmt_int64(st, 0),
				  "pattern", pl_stmt_text(st, 1), "created", pl_stmt_double(st, 2),
				  "until", pl_stmt_double(st, 3), "reason", pl_stmt_text(st, 4)));
	r = r == PL_DB_DONE ? 0 : pl_state_dberr(s, errmsg, "read silences");
	pl_stmt_finalize(st);
	if (r != 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}

int
pl_state_silence_end(struct pl_state *s, long long id, char **errmsg)
{
	struct pl_stmt *st = NULL;
	double now = pl_state_now();
	int r;

	if ((r = pl_state_prep(s, "UPDATE check_silences SET until = ? WHERE id = ? AND until > ?",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_double(st, 1, now);
	pl_stmt_bind_int64(st, 2, id);
	pl_stmt_bind_double(st, 3, now);
	if ((r = pl_state_step_done(s, st, errmsg)) == 0 && pl_stmt_changes(st) == 0)
		r = pl_seterr(errmsg, PL_ENOENT,
			      "no silence %lld holds (pvelab silence lists them)", id);
	pl_stmt_finalize(st);
	return r;
}
