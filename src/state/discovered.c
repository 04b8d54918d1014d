/*
 * Hosts found by discovery in the discovered_hosts table (migration 6):
 * first and last seen, present or vanished, one transaction per scan.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/err.h"
#include "core/json.h"
#include "state/internal.h"

#include <time.h>

int
pl_state_discovered_save(struct pl_state *s, const json_t *hosts, pl_state_covers_fn covers,
			 void *arg, json_t **news, json_t **vanished, char **errmsg)
{
	struct pl_stmt *sel = NULL, *up = NULL, *gone = NULL;
	json_t *before = json_object(), *seen = json_object(), *rec, *v;
	long long now = (long long)time(NULL);
	const char *k;
	size_t i;
	int r, rc;

	*news = json_array();
	*vanished = json_array();
	if ((r = pl_state_begin(s, true, errmsg)) != 0)
		goto out;
	if ((r = pl_state_prep(s, "SELECT address, kind, present FROM discovered_hosts", &sel,
			       errmsg)) != 0 ||
	    (r = pl_state_prep(s, "INSERT INTO discovered_hosts(address, kind, first_seen, "
			       "last_seen, present, record) VALUES(?1, ?2, ?3, ?3, 1, ?4) "
			       "ON CONFLICT(address) DO UPDATE SET kind = excluded.kind, "
			       "last_seen = excluded.last_seen, present = 1, "
			       "record = excluded.record", &up, errmsg)) != 0 ||
	    (r = pl_state_prep(s, "UPDATE discovered_hosts SET present = 0 WHERE address = ?1",
			       &gone, errmsg)) != 0)
		goto out;
	while ((rc = pl_stmt_step(sel)) == PL_DB_ROW)
		json_object_set_new(before, pl_stmt_text(sel, 0),
				    json_pack("{s:s,s:b}", "kind", pl_stmt_text(sel, 1), "present",
					      pl_stmt_int64(sel, 2)));
	if (rc != PL_DB_DONE) {
		r = pl_state_dberr(s, errmsg, "read discovered hosts");
		goto out;
	}
	json_array_foreach(hosts, i, rec) {
		const char *addr = pl_json_str(rec, "address");
		const char *kind = pl_json_str_or(rec, "kind", "unknown");
		json_t *old;
		char *text;

		if (addr == NULL)
			continue;
		json_object_set_new(seen, addr, json_true());
		old = json_object_get(before, addr);
		if (old == NULL || !json_is_true(json_object_get(old, "present")))
			json_array_append_new(*news, json_pack("{s:s,s:s}", "address", addr, "kind",
							       kind));
		text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
		pl_stmt_bind_text(up, 1, addr);
		pl_stmt_bind_text(up, 2, kind);
		pl_stmt_bind_int64(up, 3, now);
		pl_stmt_bind_text(up, 4, text);
		free(text);
		if ((r = pl_state_step_done(s, up, errmsg)) != 0)
			goto out;
	}
	/* vanished: present before, inside what this scan covered, not seen now */
	json_object_foreach(before, k, v) {
		if (!json_is_true(json_object_get(v, "present")) || json_object_get(seen, k) ||
		    !covers(k, arg))
			continue;
		json_array_append_new(*vanished,
				      json_pack("{s:s,s:s}", "address", k, "kind",
						pl_json_str_or(v, "kind", "unknown")));
		pl_stmt_bind_text(gone, 1, k);
		if ((r = pl_state_step_done(s, gone, errmsg)) != 0)
			goto out;
	}
	r = pl_state_commit(s, errmsg);
out:
	pl_stmt_finalize(sel);
	pl_stmt_finalize(up);
	pl_stmt_finalize(gone);
	if (r != 0) {
		pl_state_rollback(s);
		json_decref(*news);
		json_decref(*vanished);
		*news = *vanished = NULL;
	}
	json_decref(before);
	json_decref(seen);
	return r;
}

static json_t *
host_row(struct pl_stmt *st)
{
	const char *rec = pl_stmt_text(st, 5);

	return json_pack("{s:s,s:s,s:I,s:I,s:b,s:o?}", "address", pl_stmt_text(st, 0), "kind",
			 pl_stmt_text(st, 1), "first_seen", (json_int_t)pl_stmt_int64(st, 2),
			 "last_seen", (json_int_t)pl_stmt_int64(st, 3), "present",
			 pl_stmt_int64(st, 4) != 0, "record",
			 rec ? pl_json_loadb(rec, strlen(rec), 0) : json_null());
}

int
pl_state_discovered(struct pl_state *s, json_t **out, char **errmsg)
{
	struct pl_stmt *st;
	int r, rc;

	*out = NULL;
	if ((r = pl_state_prep(s, "SELECT address, kind, first_seen, last_seen, present, record "
			       "FROM discovered_hosts ORDER BY address", &st, errmsg)) != 0)
		return r;
	*out = json_array();
	while ((rc = pl_stmt_step(st)) == PL_DB_ROW)
		json_array_append_new(*out, host_row(st));
	pl_stmt_finalize(st);
	if (rc != PL_DB_DONE) {
		json_decref(*out);
		*out = NULL;
		return pl_state_dberr(s, errmsg, "read discovered hosts");
	}
	return 0;
}
