/*
 * Reading the store: the guests as last seen (their counters laid over their
 * durable part), nodes, storages, bridges, history, tasks and the last run;
 * and the power state an act command (start, stop...) leaves a guest in.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "state/internal.h"

/* Step st to its end, appending row(st) for each row (a NULL row is left
 * out); finalizes st. */
static int
collect(struct pl_state *s, struct pl_stmt *st, json_t *(*row)(struct pl_stmt *), json_t **out,
	char **errmsg)
{
	json_t *arr = json_array(), *v;
	int rc;

	*out = NULL;
	while ((rc = pl_stmt_step(st)) == PL_DB_ROW)
		if ((v = row(st)) != NULL)
			json_array_append_new(arr, v);
	pl_stmt_finalize(st);
	if (rc != PL_DB_DONE) {
		json_decref(arr);
		return pl_state_dberr(s, errmsg, "query");
	}
	*out = arr;
	return 0;
}

/* Column i parsed as JSON, or NULL. */
static json_t *
column_json(struct pl_stmt *st, int i, size_t flags)
{
	const char *t = pl_stmt_text(st, i);

	return t ? pl_json_loadb(t, (size_t)pl_stmt_bytes(st, i), flags) : NULL;
}

static json_t *
row_json(struct pl_stmt *st)
{
	return column_json(st, 0, JSON_DECODE_ANY);
}

/* Run sql with nbind int64 binds: each row's column 0 parsed as JSON. */
static int
query_json(struct pl_state *s, const char *sql, const long long *bind, int nbind, json_t **out,
	   char **errmsg)
{
	struct pl_stmt *st;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s, sql, &st, errmsg)) != 0)
		return r;
	for (int i = 0; i < nbind; i++)
		pl_stmt_bind_int64(st, i + 1, bind[i]);
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
row_guest(struct pl_stmt *st)
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

/* A row of (id, kind, sha256, run_id, ts, json) as {id,kind,sha256,run,ts,state}. */
static json_t *
row_history(struct pl_stmt *st)
{
	json_t *state = column_json(st, 5, JSON_DECODE_ANY);

	return json_pack("{s:I,s:s,s:s,s:o,s:f,s:o}", "id", (json_int_t)pl_stmt_int64(st, 0),
			 "kind", pl_stmt_text(st, 1), "sha256", pl_stmt_text(st, 2), "run",
			 pl_stmt_null(st, 3) ? json_null() : json_integer(pl_stmt_int64(st, 3)),
			 "ts", pl_stmt_double(st, 4), "state", state ? state : json_null());
}

int
pl_state_guests(struct pl_state *s, json_t **out, char **errmsg)
{
	return pl_state_guests_where(s, NULL, out, errmsg);
}

/* "SELECT cols FROM guests", only the guests f selects, by vmid. */
static int
prep_filtered(struct pl_state *s, const char *cols, const struct pl_state_filter *f,
	      struct pl_stmt **st, char **errmsg)
{
	const char *val[3] = { f ? f->type : NULL, f ? f->node : NULL, f ? f->status : NULL };
	char *sql = pl_asprintf("SELECT %s FROM guests WHERE 1 = 1%s%s%s ORDER BY vmid", cols,
				val[0] ? " AND type = ?" : "", val[1] ? " AND node = ?" : "",
				val[2] ? " AND status = ?" : "");
	int r, n = 0;

	r = pl_state_prep(s, sql, st, errmsg);
	free(sql);
	if (r != 0)
		return r;
	for (int i = 0; i < 3; i++)
		if (val[i])
			pl_stmt_bind_text(*st, ++n, val[i]);
	return 0;
}

int
pl_state_guests_where(struct pl_state *s, const struct pl_state_filter *f, json_t **out,
		      char **errmsg)
{
	struct pl_stmt *st;
	int r;

	*out = NULL;
	if ((r = prep_filtered(s, "json, live", f, &st, errmsg)) != 0)
		return r;
	return collect(s, st, row_guest, out, errmsg);
}

#define TEXT(st, i) (pl_stmt_text(st, i))

/* A counter, absent when the cluster gave none (a guest of an offline node). */
static json_t *
counter(struct pl_stmt *st, int i, bool real)
{
	if (pl_stmt_null(st, i))
		return NULL;
	return real ? json_real(pl_stmt_double(st, i)) :
		      json_integer((json_int_t)pl_stmt_int64(st, i));
}

static json_t *
row_summary(struct pl_stmt *st)
{
	return json_pack("{s:I,s:s?,s:s?,s:s?,s:s?,s:s?,s:b,s:s?,s:o?,s:o?,s:o?,s:o?,s:o?,s:s*}",
			 "vmid", (json_int_t)pl_stmt_int64(st, 0), "name", TEXT(st, 1), "node",
			 TEXT(st, 2), "type", TEXT(st, 3), "status", TEXT(st, 4), "tags",
			 TEXT(st, 5), "template", pl_stmt_int64(st, 6) != 0, "lock", TEXT(st, 7),
			 "cpu", counter(st, 8, true), "maxcpu", counter(st, 9, false), "mem",
			 counter(st, 10, false), "maxmem", counter(st, 11, false), "maxdisk",
			 counter(st, 12, false), "_unseen", TEXT(st, 13));
}

static json_t *
row_name(struct pl_stmt *st)
{
	return json_pack("{s:I,s:s?}", "vmid", (json_int_t)pl_stmt_int64(st, 0), "name",
			 TEXT(st, 1));
}

#undef TEXT

int
pl_state_guest_summaries(struct pl_state *s, const struct pl_state_filter *f, json_t **out,
			 char **errmsg)
{
	struct pl_stmt *st;
	int r;

	*out = NULL;
	if ((r = prep_filtered(
		     s,
		     pl_state_sql(s,
				  "vmid, name, node, type, status, tags, template, "
				  "json_extract(json, '$.lock'), json_extract(live, '$.cpu'), "
				  "json_extract(live, '$.maxcpu'), json_extract(live, '$.mem'), "
				  "json_extract(live, '$.maxmem'), "
				  "json_extract(live, '$.maxdisk'), "
				  "json_extract(live, '$._unseen')",
				  "vmid, name, node, type, status, tags, template, "
				  "json::jsonb->>'lock', live::jsonb->>'cpu', "
				  "live::jsonb->>'maxcpu', live::jsonb->>'mem', "
				  "live::jsonb->>'maxmem', live::jsonb->>'maxdisk', "
				  "live::jsonb->>'_unseen'"),
		     f, &st, errmsg)) != 0)
		return r;
	return collect(s, st, row_summary, out, errmsg);
}

int
pl_state_guest(struct pl_state *s, long long vmid, json_t **out, char **errmsg)
{
	struct pl_stmt *st;
	json_t *arr;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s, "SELECT json, live FROM guests WHERE vmid = ?", &st, errmsg)) !=
	    0)
		return r;
	pl_stmt_bind_int64(st, 1, vmid);
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
	struct pl_stmt *st;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s, "SELECT vmid, name FROM guests ORDER BY vmid", &st, errmsg)) != 0)
		return r;
	return collect(s, st, row_name, out, errmsg);
}

int
pl_state_guest_named(struct pl_state *s, const char *guest, json_t **out, char **errmsg)
{
	struct pl_stmt *st;
	long long vmid = -1;
	int r;

	*out = NULL;
	/* both indexed: the primary key and guests_name; a vmid compared as
	 * a number (PostgreSQL types the parameter by the column) */
	pl_str_to_ll(guest, 1, 999999999, &vmid);
	if ((r = pl_state_prep(s,
			       "SELECT vmid, name FROM guests WHERE vmid = ?1 OR name = ?2 "
			       "ORDER BY vmid",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_int64(st, 1, vmid);
	pl_stmt_bind_text(st, 2, guest);
	return collect(s, st, row_name, out, errmsg);
}

int
pl_state_guest_counts(struct pl_state *s, json_t **out, char **errmsg)
{
	return query_json(
		s,
		pl_state_sql(
			s,
			"SELECT json_object('type', type, 'status', status, 'n', count(*), "
			"'unseen', json_extract(live, '$._unseen') IS NOT NULL) FROM guests "
			"GROUP BY type, status, json_extract(live, '$._unseen') IS NOT NULL",
			"SELECT json_build_object('type', type, 'status', status, 'n', count(*), "
			"'unseen', (live::jsonb->'_unseen' IS NOT NULL)::int) FROM guests "
			"GROUP BY type, status, live::jsonb->'_unseen' IS NOT NULL"),
		NULL, 0, out, errmsg);
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
	struct pl_stmt *st;
	int r;

	/* built here, not by the engine's JSON functions: SQLite's renders a
	 * time with 15 digits, PostgreSQL's with all of them */
	*out = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT id, kind, sha256, run_id, ts, json FROM history "
			       "WHERE vmid = ? ORDER BY id",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_int64(st, 1, vmid);
	return collect(s, st, row_history, out, errmsg);
}

/* A row of the history page: (id, guest, vmid, kind, sha256, run_id, ts,
 * json, the json of the guest's row before). */
static json_t *
row_history_page(struct pl_stmt *st)
{
	json_t *state = column_json(st, 7, 0), *prev = column_json(st, 8, 0);

	return json_pack("{s:I,s:s,s:o,s:s,s:s,s:o,s:f,s:o,s:o}", "id",
			 (json_int_t)pl_stmt_int64(st, 0), "guest", pl_stmt_text(st, 1), "vmid",
			 pl_stmt_int64(st, 2) ? json_integer(pl_stmt_int64(st, 2)) : json_null(),
			 "kind", pl_stmt_text(st, 3), "sha256", pl_stmt_text(st, 4), "run",
			 pl_stmt_null(st, 5) ? json_null() : json_integer(pl_stmt_int64(st, 5)),
			 "ts", pl_stmt_double(st, 6), "state", state ? state : json_object(),
			 "prev", prev ? prev : json_null());
}

int
pl_state_history_page(struct pl_state *s, const struct pl_state_history_filter *f, json_t **out,
		      char **errmsg)
{
	struct pl_stmt *st;
	int r;

	*out = NULL;
	/* the row before of the same guest: through the (vmid, id) index */
	if ((r = pl_state_prep(
		     s,
		     pl_state_sql(
			     s,
			     "SELECT h.id, h.guest, h.vmid, h.kind, h.sha256, h.run_id, h.ts, "
			     "h.json, (SELECT p.json FROM history p WHERE p.vmid = h.vmid AND "
			     "p.guest = h.guest AND p.id < h.id ORDER BY p.id DESC LIMIT 1) "
			     "FROM history h WHERE (?1 = 0 OR h.id < ?1) AND (?2 = 0 OR h.vmid = "
			     "?2) AND (?3 IS NULL OR h.guest = ?3) AND (?4 IS NULL OR "
			     "json_extract(h.json, '$.node') = ?4) AND (?5 IS NULL OR h.kind = ?5) "
			     "AND h.ts >= ?6 ORDER BY h.id DESC LIMIT ?7",
			     "SELECT h.id, h.guest, h.vmid, h.kind, h.sha256, h.run_id, h.ts, "
			     "h.json, (SELECT p.json FROM history p WHERE p.vmid = h.vmid AND "
			     "p.guest = h.guest AND p.id < h.id ORDER BY p.id DESC LIMIT 1) "
			     "FROM history h WHERE ($1::bigint = 0 OR h.id < $1::bigint) AND "
			     "($2::bigint = 0 OR h.vmid = $2::bigint) AND ($3::text IS NULL OR "
			     "h.guest = $3::text) AND ($4::text IS NULL OR "
			     "h.json::jsonb->>'node' = $4::text) AND ($5::text IS NULL OR "
			     "h.kind = $5::text) AND h.ts >= $6::double precision "
			     "ORDER BY h.id DESC LIMIT $7::bigint"),
		     &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_int64(st, 1, f->before);
	pl_stmt_bind_int64(st, 2, f->vmid);
	pl_stmt_bind_text(st, 3, f->key);
	pl_stmt_bind_text(st, 4, f->node);
	pl_stmt_bind_text(st, 5, f->kind);
	pl_stmt_bind_double(st, 6, f->since);
	pl_stmt_bind_int64(st, 7, f->limit > 0 ? f->limit : 50);
	return collect(s, st, row_history_page, out, errmsg);
}

long long
pl_state_history_count(struct pl_state *s)
{
	struct pl_stmt *st;
	long long n = -1;

	if (pl_state_prep(s, "SELECT count(*) FROM history", &st, NULL) != 0)
		return -1;
	if (pl_stmt_step(st) == PL_DB_ROW)
		n = pl_stmt_int64(st, 0);
	pl_stmt_finalize(st);
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
pl_state_last_run(struct pl_state *s, const char *kind, json_t **out, char **errmsg)
{
	struct pl_stmt *st;
	json_t *arr;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(
		     s,
		     pl_state_sql(
			     s,
			     "SELECT json_object('id', id, 'kind', kind, 'started', started, "
			     "'finished', finished, 'status', status, 'summary', json(summary)) "
			     "FROM runs WHERE kind = ? AND status = 'ok' ORDER BY id DESC LIMIT 1",
			     "SELECT json_build_object('id', id, 'kind', kind, 'started', started, "
			     "'finished', finished, 'status', status, 'summary', summary::json) "
			     "FROM runs WHERE kind = ? AND status = 'ok' ORDER BY id DESC LIMIT 1"),
		     &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, kind);
	arr = NULL;
	if (pl_stmt_step(st) == PL_DB_ROW)
		arr = json_loads(pl_stmt_text(st, 0), 0, NULL);
	pl_stmt_finalize(st);
	if (arr == NULL)
		return pl_seterr(errmsg, PL_ENOENT, "no %s run recorded", kind);
	*out = arr;
	r = 0;
	return r;
}

int
pl_state_guest_set_status(struct pl_state *s, long long vmid, const char *status, char **errmsg)
{
	struct pl_stmt *st;
	int r;

	/* the sha256 stays the synced one: the next sync still records the
	 * change in the guest's history */
	if ((r = pl_state_prep(
		     s,
		     pl_state_sql(
			     s,
			     "UPDATE guests SET status = ?1, json = json_set(json, '$.status', "
			     "?1), live = CASE WHEN json_type(live, '$.status') IS NULL THEN "
			     "live ELSE json_set(live, '$.status', ?1) END WHERE vmid = ?2",
			     "UPDATE guests SET status = ?1, json = jsonb_set(json::jsonb, "
			     "'{status}', to_jsonb(?1::text))::text, live = CASE WHEN "
			     "live::jsonb->'status' IS NULL THEN live ELSE jsonb_set(live::jsonb, "
			     "'{status}', to_jsonb(?1::text))::text END WHERE vmid = ?2"),
		     &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, status);
	pl_stmt_bind_int64(st, 2, vmid);
	r = pl_state_step_done(s, st, errmsg);
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_history_vmids(struct pl_state *s, const char *name, json_t **out, char **errmsg)
{
	struct pl_stmt *st;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       pl_state_sql(s,
					    "SELECT DISTINCT vmid FROM history WHERE "
					    "json_extract(json, '$.name') = ? ORDER BY vmid",
					    "SELECT DISTINCT vmid FROM history WHERE "
					    "json::jsonb->>'name' = ? ORDER BY vmid"),
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, name);
	*out = json_array();
	while ((r = pl_stmt_step(st)) == PL_DB_ROW)
		json_array_append_new(*out, json_integer(pl_stmt_int64(st, 0)));
	pl_stmt_finalize(st);
	if (r != PL_DB_DONE) {
		json_decref(*out);
		*out = NULL;
		return pl_state_dberr(s, errmsg, "read history");
	}
	return 0;
}
