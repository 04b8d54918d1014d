/*
 * Recording a sync: one write transaction per sync, a guest's change found by
 * the SHA-256 of its canonical durable JSON, a history row per new, changed
 * or gone guest, the nodes, storages, bridges and tasks replaced; and the
 * tasks act commands remember.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/access.h"
#include "core/apischema.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "state/internal.h"

#include <time.h>

/* Keys of a guest that are not volatile counters: what history tracks. In
 * sorted order, as the canonical text of a guest writes them. */
static const char *const durable_keys[] = {
	PL_SNAP_CONFIG, "hastate", "lock", "name", "node", "pool", "status", "tags", "template", "type",
	"vmid",
};
/* What the live part leaves out: the durable keys, and the inventory's mark of
 * a guest it could not read. All but the last for a guest kept as last read:
 * its live part carries the state the cluster gives now ("unknown" on an
 * offline node), laid over the kept one. */
static const char *const not_live[] = {
	PL_SNAP_CONFIG, "hastate", "lock", "name", "node", "pool", "tags", "template", "type",
	"vmid", PL_SNAP_UNREAD, "status",
};

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
add_history(struct pl_state *s, struct pl_stmt *st, long long vmid, const char *kind,
	    const json_t *sig, long long run, double ts, char **errmsg)
{
	char key[32];

	snprintf(key, sizeof(key), "%lld", vmid);
	pl_stmt_bind_text(st, 1, key);
	pl_stmt_bind_int64(st, 2, vmid);
	pl_stmt_bind_text(st, 3, kind);
	pl_stmt_bind_static(st, 4, json_string_value(json_array_get(sig, 0)), 64);
	if (run > 0)
		pl_stmt_bind_int64(st, 5, run);
	else
		pl_stmt_bind_null(st, 5);
	pl_stmt_bind_double(st, 6, ts);
	pl_stmt_bind_static(st, 7, json_string_value(json_array_get(sig, 1)),
			    json_string_length(json_array_get(sig, 1)));
	return pl_state_step_done(s, st, errmsg);
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
	struct pl_stmt *up, *hist, *live;
	json_t *known;   /* vmid -> sha256 of the guests this sync has not seen yet */
	json_t *changes; /* [{vmid,name,kind}] */
	struct pl_state_counts cnt;
	/* PostgreSQL: [[guest, sig], ...] held until the end, so that no
	 * transaction stays open while the cluster answers; the session's
	 * "sync" advisory lock (one sync writer at a time) is held meanwhile */
	json_t *deferred;
	long long run;
	double ts;
	bool dry_run;
	bool wait;     /* for the write lock */
	bool counters; /* rewrite an unchanged guest's counters (the CLI's sync) */
	int err; /* the first failed guest write; the sync will roll back */
	char *errmsg;
};

/* Open the write transaction, write the run row, read what the store knows. */
static int
write_begin(struct pl_state_sync *y, char **errmsg)
{
	struct pl_state *s = y->s;
	struct pl_stmt *st = NULL;
	int r;

	/* With foreign keys on, SQLite opens a statement journal for every insert
	 * they could abort: a tenth of a large sync. The rows written here refer
	 * only to the run row written first, so the checks are off until the end. */
	if (!pl_state_pg(s) && (r = pl_state_exec(s, "PRAGMA foreign_keys=OFF", errmsg)) != 0)
		return r;
	if ((r = pl_state_begin(s, y->wait || y->deferred, errmsg)) != 0)
		return r;
	if ((r = pl_state_prep(s, "INSERT INTO runs(kind,started) VALUES ('sync', ?) RETURNING id",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_double(st, 1, y->ts);
	r = pl_state_step_id(s, st, &y->run, errmsg);
	pl_stmt_finalize(st);
	if (r != 0)
		return r;
	if ((r = pl_state_prep(s, "INSERT INTO guests(vmid,type,node,name,status,tags,template,sha256,"
		      "json,live,run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(vmid) DO UPDATE "
		      "SET type=excluded.type, node=excluded.node, name=excluded.name, "
		      "status=excluded.status, tags=excluded.tags, template=excluded.template, "
		      "sha256=excluded.sha256, json=excluded.json, live=excluded.live, "
		      "run_id=excluded.run_id", &y->up, errmsg)) != 0 ||
	    (r = pl_state_prep(s, "UPDATE guests SET status = ?, live = ?, run_id = ? WHERE vmid = ?",
		      &y->live, errmsg)) != 0 ||
	    (r = pl_state_prep(s, ST_HIST, &y->hist, errmsg)) != 0 ||
	    (r = pl_state_prep(s, "SELECT vmid, sha256 FROM guests", &st, errmsg)) != 0)
		return r;
	while ((r = pl_stmt_step(st)) == PL_DB_ROW) {
		char key[32];
		int n = snprintf(key, sizeof(key), "%lld", (long long)pl_stmt_int64(st, 0));

		/* digits: no UTF-8 check needed (10,000 rows, one loop turn) */
		json_object_setn_new_nocheck(
			y->known, key, (size_t)n,
			json_stringn(pl_stmt_text(st, 1), pl_stmt_bytes(st, 1)));
	}
	pl_stmt_finalize(st);
	return r == PL_DB_DONE ? 0 : pl_state_dberr(s, errmsg, "read guests");
}

/* PostgreSQL: take the one-sync-writer lock, a session advisory lock that
 * holds no transaction (waiting for it as a write waits for SQLite's). */
static int
pg_sync_lock(struct pl_state_sync *y, char **errmsg)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	int got;

	for (int tries = 0; (got = pl_state_pg_lock(y->s, "sync", true, errmsg)) == 0 && y->wait &&
			    tries < PL_STATE_BUSY_S * 10;
	     tries++)
		nanosleep(&pause, NULL);
	if (got < 0)
		return -got;
	if (got == 0)
		return pl_seterr(errmsg, PL_ECONFLICT,
				 "state database '%s' is being written by another process (a sync)",
				 y->s->path);
	y->deferred = json_array();
	return 0;
}

static int
sync_begin(struct pl_state *s, bool dry_run, bool wait, struct pl_state_sync **out, char **errmsg)
{
	struct pl_state_sync *y = pl_calloc(1, sizeof(*y));
	int r = 0;

	*out = NULL;
	y->s = s;
	y->dry_run = dry_run;
	y->wait = wait;
	y->counters = true;
	y->ts = pl_state_now();
	y->known = json_object();
	y->changes = json_array();
	if (pl_state_pg(s))
		r = pg_sync_lock(y, errmsg);
	else
		r = write_begin(y, errmsg);
	if (r != 0) {
		pl_state_sync_abort(y);
		return r;
	}
	*out = y;
	return 0;
}

int
pl_state_sync_begin(struct pl_state *s, bool dry_run, struct pl_state_sync **out, char **errmsg)
{
	return sync_begin(s, dry_run, true, out, errmsg);
}

int
pl_state_sync_try_begin(struct pl_state *s, bool dry_run, struct pl_state_sync **out, char **errmsg)
{
	return sync_begin(s, dry_run, false, out, errmsg);
}

void
pl_state_sync_counters(struct pl_state_sync *y, bool write)
{
	y->counters = write;
}

void
pl_state_sync_abort(struct pl_state_sync *y)
{
	if (y == NULL)
		return;
	pl_stmt_finalize(y->up);
	pl_stmt_finalize(y->hist);
	pl_stmt_finalize(y->live);
	pl_state_rollback(y->s);
	if (y->deferred)
		pl_state_pg_lock(y->s, "sync", false, NULL);
	if (!pl_state_pg(y->s))
		pl_state_exec(y->s, "PRAGMA foreign_keys=ON", NULL);
	json_decref(y->deferred);
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

	pl_stmt_bind_text(y->live, 1, pl_json_str(g, "status"));
	pl_stmt_bind_text(y->live, 2, text);
	pl_stmt_bind_int64(y->live, 3, y->run);
	pl_stmt_bind_int64(y->live, 4, vmid);
	free(text);
	return pl_state_step_done(y->s, y->live, errmsg);
}

static int
guest_put(struct pl_state_sync *y, json_t *g, long long vmid, const char *type,
	  const json_t *sig, char **errmsg)
{
	struct pl_stmt *up = y->up;
	const json_t *durable = json_array_get(sig, 1);
	char *text = live_text(g);

	pl_stmt_bind_int64(up, 1, vmid);
	pl_stmt_bind_text(up, 2, type);
	pl_stmt_bind_text(up, 3, pl_json_str_or(g, "node", ""));
	pl_stmt_bind_text(up, 4, pl_json_str(g, "name"));
	pl_stmt_bind_text(up, 5, pl_json_str(g, "status"));
	pl_stmt_bind_text(up, 6, pl_json_str(g, "tags"));
	pl_stmt_bind_int64(up, 7, (int)pl_json_int(g, "template", 0));
	pl_stmt_bind_static(up, 8, json_string_value(json_array_get(sig, 0)), 64);
	pl_stmt_bind_static(up, 9, json_string_value(durable), json_string_length(durable));
	pl_stmt_bind_text(up, 10, text);
	pl_stmt_bind_int64(up, 11, y->run);
	free(text);
	return pl_state_step_done(y->s, up, errmsg);
}

static void sync_guest(struct pl_state_sync *y, json_t *g, const json_t *sig);

void
pl_state_sync_guest(struct pl_state_sync *y, json_t *g, const json_t *sig)
{
	if (y->deferred)
		json_array_append_new(y->deferred, json_pack("[O,O]", g, sig ? sig : json_null()));
	else
		sync_guest(y, g, sig);
}

static void
sync_guest(struct pl_state_sync *y, json_t *g, const json_t *sig)
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
	if (json_object_get(g, PL_SNAP_UNREAD)) {
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
	/* never a password in the store (the inventory masks them already) */
	if (pl_api_mask_secrets(json_object_get(g, PL_SNAP_CONFIG)) > 0)
		sig = NULL;
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
	} else if (y->counters) {
		r = guest_live(y, g, vmid, false, &y->errmsg);
	} else {
		r = 0; /* nothing the store keeps has changed: nothing written */
	}
	y->err = r;
	json_decref(own);
}

/* What this sync has not seen is gone: a history row each, and the row goes;
 * but a guest the token cannot see (perms) is only out of view: its row stays
 * as last synced, with a note (PL_SNAP_UNSEEN) in its live part. */
static int
record_gone(struct pl_state_sync *y, const json_t *perms, char **errmsg)
{
	struct pl_state *s = y->s;
	struct pl_stmt *one = NULL, *del = NULL;
	const char *k;
	json_t *v;
	int r;

	if ((r = pl_state_prep(s, "SELECT json FROM guests WHERE vmid = ?", &one, errmsg)) != 0 ||
	    (r = pl_state_prep(s, "DELETE FROM guests WHERE vmid = ?", &del, errmsg)) != 0)
		goto out;
	json_object_foreach(y->known, k, v) {
		long long vmid = strtoll(k, NULL, 10);
		const char *js;
		json_t *last = NULL, *sig;

		pl_stmt_bind_int64(one, 1, vmid);
		if (pl_stmt_step(one) == PL_DB_ROW && (js = pl_stmt_text(one, 0)))
			last = json_loads(js, 0, NULL);
		pl_stmt_reset(one);
		if (!pl_access_sees_vm(perms, vmid, pl_json_str(last, "pool"))) {
			json_t *note =
				json_pack("{s:o}", PL_SNAP_UNSEEN,
					  json_sprintf("not visible to the token (no VM.Audit on "
						       "/vms/%lld)",
						       vmid));
			char *text = json_dumps(note, JSON_COMPACT);

			pl_stmt_bind_text(y->live, 1, pl_json_str(last, "status"));
			pl_stmt_bind_text(y->live, 2, text);
			pl_stmt_bind_int64(y->live, 3, y->run);
			pl_stmt_bind_int64(y->live, 4, vmid);
			free(text);
			json_decref(note);
			json_decref(last);
			y->cnt.unseen++;
			if ((r = pl_state_step_done(s, y->live, errmsg)) != 0)
				goto out;
			continue;
		}
		sig = pl_state_guest_sig(last);
		y->cnt.removed++;
		note_change(y->changes, vmid, pl_json_str(last, "name"), "deleted");
		r = add_history(s, y->hist, vmid, "deleted", sig, y->run, y->ts, errmsg);
		json_decref(sig);
		json_decref(last);
		if (r != 0)
			goto out;
		pl_stmt_bind_int64(del, 1, vmid);
		if ((r = pl_state_step_done(s, del, errmsg)) != 0)
			goto out;
	}
out:
	pl_stmt_finalize(one);
	pl_stmt_finalize(del);
	return r;
}

/* Prepare the statement the format makes. */
static int prepf(struct pl_state *s, struct pl_stmt **st, char **errmsg, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int
prepf(struct pl_state *s, struct pl_stmt **st, char **errmsg, const char *fmt, ...)
{
	va_list ap;
	char *sql;
	int r;

	va_start(ap, fmt);
	if (vasprintf(&sql, fmt, ap) < 0)
		pl_die("out of memory");
	va_end(ap);
	r = pl_state_prep(s, sql, st, errmsg);
	free(sql);
	return r;
}

/* Make a whole table hold the array of objects (key columns k1, and k2 but
 * for nodes, whose second column is its status): a row whose JSON is the same
 * is left alone, so an unchanged refresh rewrites nothing here. */
static int
replace_table(struct pl_state *s, const char *table, const char *k1, const char *k2,
	      const json_t *arr, long long run, char **errmsg)
{
	bool nodes = !strcmp(table, "nodes");
	struct pl_stmt *st = NULL, *del = NULL;
	json_t *had = json_object(), *o, *v;
	const char *key;
	size_t i;
	int r;

	if ((r = nodes ? prepf(s, &st, errmsg, "SELECT node, '', json FROM nodes") :
			 prepf(s, &st, errmsg, "SELECT %s, %s, json FROM %s", k1, k2, table)) != 0)
		goto out;
	while ((r = pl_stmt_step(st)) == PL_DB_ROW) {
		char *k = pl_asprintf("%s\x1f%s", pl_stmt_text(st, 0), pl_stmt_text(st, 1));

		json_object_set_new(had, k, json_string(pl_stmt_text(st, 2)));
		free(k);
	}
	pl_stmt_finalize(st);
	st = NULL;
	if (r != PL_DB_DONE) {
		r = pl_state_dberr(s, errmsg, "read a table");
		goto out;
	}
	/* the run is a parameter: one statement text for every sync, which
	 * PostgreSQL keeps prepared for the session */
	if ((r = nodes ? pl_state_prep(
				 s,
				 "INSERT INTO nodes(node,status,json,run_id) VALUES (?,?,?,?) "
				 "ON CONFLICT(node) DO UPDATE SET status=excluded.status, "
				 "json=excluded.json, run_id=excluded.run_id",
				 &st, errmsg) :
			 prepf(s, &st, errmsg,
			       "INSERT INTO %s(%s,%s,json) VALUES (?,?,?) ON CONFLICT(%s,%s) "
			       "DO UPDATE SET json=excluded.json",
			       table, k1, k2, k1, k2)) != 0)
		goto out;
	json_array_foreach(arr, i, o) {
		const char *a = pl_json_str(o, k1), *b = k2 ? pl_json_str(o, k2) : NULL;
		char *text, *k;
		bool same;

		if (a == NULL || (k2 && b == NULL && !nodes))
			continue;
		text = pl_json_compact(o);
		k = pl_asprintf("%s\x1f%s", a, nodes ? "" : b);
		same = (v = json_object_get(had, k)) && !strcmp(json_string_value(v), text);
		json_object_del(had, k);
		free(k);
		if (same) {
			free(text);
			continue;
		}
		pl_stmt_bind_text(st, 1, a);
		pl_stmt_bind_text(st, 2, b);
		pl_stmt_bind_text(st, 3, text);
		if (nodes)
			pl_stmt_bind_int64(st, 4, run);
		free(text);
		if ((r = pl_state_step_done(s, st, errmsg)) != 0)
			goto out;
	}
	/* what the array no longer has goes */
	if ((r = nodes ? prepf(s, &del, errmsg,
			       "DELETE FROM nodes WHERE node = ?1 AND CAST(?2 AS TEXT) = ''") :
			 prepf(s, &del, errmsg, "DELETE FROM %s WHERE %s = ?1 AND %s = ?2", table,
			       k1, k2)) != 0)
		goto out;
	json_object_foreach(had, key, v) {
		const char *sep = strchr(key, '\x1f');

		pl_stmt_bind_textn(del, 1, key, (int)(sep - key));
		pl_stmt_bind_text(del, 2, sep + 1);
		if ((r = pl_state_step_done(s, del, errmsg)) != 0)
			goto out;
	}
out:
	pl_stmt_finalize(st);
	pl_stmt_finalize(del);
	json_decref(had);
	return r;
}

static int
task_put(struct pl_state *s, struct pl_stmt *st, const char *upid, const json_t *t, char **errmsg)
{
	char *text = pl_json_compact(t);
	const char *id = pl_json_str(t, "id");
	long long vmid = pl_json_int(t, "vmid", id ? strtoll(id, NULL, 10) : 0);
	int r;

	pl_stmt_bind_text(st, 1, upid);
	pl_stmt_bind_text(st, 2, pl_json_str(t, "node"));
	pl_stmt_bind_text(st, 3, pl_json_str(t, "type"));
	if (vmid > 0)
		pl_stmt_bind_int64(st, 4, vmid);
	else
		pl_stmt_bind_null(st, 4);
	pl_stmt_bind_text(st, 5, pl_json_str(t, "user"));
	pl_stmt_bind_int64(st, 6, pl_json_int(t, "starttime", 0));
	pl_stmt_bind_int64(st, 7, pl_json_int(t, "endtime", 0));
	pl_stmt_bind_text(st, 8, pl_json_str(t, "status"));
	pl_stmt_bind_text(st, 9, text);
	free(text);
	r = pl_state_step_done(s, st, errmsg);
	return r;
}

#define ST_TASK                                                                                    \
	"INSERT INTO tasks(upid,node,type,vmid,\"user\",starttime,endtime,status,json) "           \
	"VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(upid) DO UPDATE SET "                              \
	"endtime=excluded.endtime, status=excluded.status, json=excluded.json "                    \
	"WHERE tasks.json IS DISTINCT FROM excluded.json"

int
pl_state_sync_end(struct pl_state_sync *y, const json_t *snap, struct pl_state_counts *counts,
		  json_t **changes, long long *run_id, char **errmsg)
{
	struct pl_state *s = y->s;
	struct pl_stmt *st = NULL;
	char *sum;
	json_t *t;
	size_t i;
	int r;

	if (y->deferred) {
		json_t *e;

		char *msg = NULL;

		if ((r = write_begin(y, errmsg)) != 0)
			goto fail;
		/* the guests' writes in flight together, not one round trip each */
		pl_state_pipeline(s, true, NULL);
		json_array_foreach(y->deferred, i, e)
			sync_guest(y, json_array_get(e, 0), json_array_get(e, 1));
		if ((r = pl_state_pipeline(s, false, &msg)) != 0 && y->err == 0) {
			y->err = r;
			y->errmsg = msg;
			msg = NULL;
		}
		free(msg);
	}
	if (y->err) {
		r = pl_seterr(errmsg, y->err, "%s", y->errmsg);
		goto fail;
	}
	if ((r = record_gone(y, json_object_get(snap, PL_SNAP_PERMS), errmsg)) != 0 ||
	    (r = pl_state_sync_day2(s, snap, y->run, y->ts, errmsg)) != 0 ||
	    (r = replace_table(s, "nodes", "node", "status", json_object_get(snap, PL_SNAP_NODES),
			       y->run, errmsg)) != 0 ||
	    (r = replace_table(s, "storages", "node", "storage",
			       json_object_get(snap, PL_SNAP_STORAGES), y->run, errmsg)) != 0 ||
	    (r = replace_table(s, "bridges", "node", "iface",
			       json_object_get(snap, PL_SNAP_BRIDGES), y->run, errmsg)) != 0 ||
	    (r = pl_state_prep(s, ST_TASK, &st, errmsg)) != 0)
		goto fail;
	json_array_foreach(json_object_get(snap, PL_SNAP_TASKS), i, t) {
		const char *upid = pl_json_str(t, "upid");

		if (upid && (r = task_put(s, st, upid, t, errmsg)) != 0)
			goto fail;
	}
	pl_stmt_finalize(st);
	st = NULL;
	sum = pl_asprintf("{\"added\":%d,\"changed\":%d,\"removed\":%d,\"unchanged\":%d}",
			  y->cnt.added, y->cnt.changed, y->cnt.removed, y->cnt.unchanged);
	if ((r = pl_state_prep(s, "UPDATE runs SET finished = ?, status = 'ok', summary = ? WHERE id = ?",
		      &st, errmsg)) == 0) {
		pl_stmt_bind_double(st, 1, pl_state_now());
		pl_stmt_bind_text(st, 2, sum);
		pl_stmt_bind_int64(st, 3, y->run);
		r = pl_state_step_done(s, st, errmsg);
	}
	free(sum);
	pl_stmt_finalize(st);
	st = NULL;
	if (r != 0 || (r = y->dry_run ? pl_state_exec(s, "ROLLBACK", errmsg) :
					pl_state_commit(s, errmsg)) != 0)
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
	pl_stmt_finalize(st);
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
	json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, g)
		pl_state_sync_guest(y, g, NULL);
	return pl_state_sync_end(y, snap, counts, changes, run_id, errmsg);
}

int
pl_state_task_put(struct pl_state *s, const char *upid, const json_t *info, char **errmsg)
{
	struct pl_stmt *st;
	int r;

	if ((r = pl_state_prep(s, ST_TASK, &st, errmsg)) != 0)
		return r;
	r = task_put(s, st, upid, info, errmsg);
	pl_stmt_finalize(st);
	return r;
}
