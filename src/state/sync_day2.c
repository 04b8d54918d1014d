/*
 * History of the cluster's storages, backup jobs, pools and PCI mappings:
 * each sync that read their lists adds a row when one appeared
 * ("discovered"), changed ("updated") or went ("deleted"), keyed
 * "storage:ID", "backup-job:ID", "pool:ID", "pci-mapping:ID" with vmid 0, beside the guests' rows. Secrets a list may carry
 * (a PBS fingerprint) are masked before anything is stored. What no sync
 * reads (the firewall's scopes, "firewall:...") gets its rows from the runs
 * that change it: the state each change saw before and left after.
 */
#include "core/common.h"
#include "state/internal.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "core/str.h"

static const char *const kinds[][3] = {
	/* snapshot key, history prefix, id key */
	{ PL_SNAP_STORECFG, "storage:", "storage" },
	{ PL_SNAP_JOBS, "backup-job:", "id" },
	{ PL_SNAP_POOLS, "pool:", "poolid" },
	{ PL_SNAP_PCIMAPS, "pci-mapping:", "id" },
};

/* Never stored, whatever the API answers: pve-storage's sensitive
 * properties, and the fingerprint a storage is pinned with. */
static const char *const masked[] = { "password", "encryption-key", "master-pubkey", "keyring",
				      "fingerprint" };

#define ST_LAST                                                                                    \
	"SELECT guest, sha256, kind FROM history WHERE id IN (SELECT max(id) FROM "                \
	"history WHERE vmid = 0 AND guest LIKE ? GROUP BY guest)"
#define ST_ADD "INSERT INTO history(guest,vmid,kind,sha256,run_id,ts,json) VALUES (?,0,?,?,?,?,?)"

static int
add(struct pl_state *s, struct pl_stmt *st, const char *key, const char *kind, const char *sha,
    const char *json, long long run, double ts, char **errmsg)
{
	pl_stmt_bind_text(st, 1, key);
	pl_stmt_bind_text(st, 2, kind);
	pl_stmt_bind_text(st, 3, sha);
	if (run > 0)
		pl_stmt_bind_int64(st, 4, run);
	else
		pl_stmt_bind_null(st, 4);
	pl_stmt_bind_double(st, 5, ts);
	pl_stmt_bind_text(st, 6, json);
	return pl_state_step_done(s, st, errmsg);
}

/* The last row of each key with this prefix: key -> [sha, kind]. */
static int
last_rows(struct pl_state *s, const char *prefix, json_t *last, char **errmsg)
{
	struct pl_stmt *st;
	char *like = pl_asprintf("%s%%", prefix);
	int r, rc;

	if ((r = pl_state_prep(s, ST_LAST, &st, errmsg)) != 0)
		goto out;
	pl_stmt_bind_text(st, 1, like);
	while ((rc = pl_stmt_step(st)) == PL_DB_ROW)
		json_object_set_new(last, pl_stmt_text(st, 0),
				    json_pack("[s,s]", pl_stmt_text(st, 1), pl_stmt_text(st, 2)));
	if (rc != PL_DB_DONE)
		r = pl_state_dberr(s, errmsg, "reading history");
	pl_stmt_finalize(st);
out:
	free(like);
	return r;
}

int
pl_state_sync_day2(struct pl_state *s, const json_t *snap, long long run, double ts, char **errmsg)
{
	struct pl_stmt *st = NULL;
	json_t *last = json_object();
	int r = 0;

	for (size_t k = 0; k < PL_ARRAY_LEN(kinds) && r == 0; k++) {
		const json_t *list = json_object_get(snap, kinds[k][0]), *e;
		json_t *seen = json_object(), *v;
		const char *key;
		size_t i;

		if (!json_is_array(list)) { /* not read: nothing is known of them */
			json_decref(seen);
			continue;
		}
		json_object_clear(last);
		if ((r = last_rows(s, kinds[k][1], last, errmsg)) != 0 ||
		    (r = pl_state_prep(s, ST_ADD, &st, errmsg)) != 0) {
			json_decref(seen);
			break;
		}
		json_array_foreach(list, i, e) {
			json_t *o = json_deep_copy(e);
			char *k2 = pl_asprintf("%s%s", kinds[k][1],
					       pl_json_str_or(e, kinds[k][2], "?"));
			const json_t *prev = json_object_get(last, k2);
			char sha[65], *text;

			json_object_del(o, "digest"); /* the whole file's, not this object's */
			for (size_t m = 0; m < PL_ARRAY_LEN(masked); m++)
				if (json_object_get(o, masked[m]))
					json_object_set_new(o, masked[m],
							    json_string("**********"));
			text = pl_json_canonical(o);
			pl_sha256_hex(text, strlen(text), sha);
			json_object_set_new(seen, k2, json_true());
			if (prev == NULL ||
			    !strcmp(json_string_value(json_array_get(prev, 1)), "deleted"))
				r = add(s, st, k2, "discovered", sha, text, run, ts, errmsg);
			else if (strcmp(json_string_value(json_array_get(prev, 0)), sha))
				r = add(s, st, k2, "updated", sha, text, run, ts, errmsg);
			free(text);
			free(k2);
			json_decref(o);
			if (r != 0)
				break;
		}
		json_object_foreach(last, key, v)
			if (r == 0 && !json_object_get(seen, key) &&
			    strcmp(json_string_value(json_array_get(v, 1)), "deleted"))
				r = add(s, st, key, "deleted",
					json_string_value(json_array_get(v, 0)), "null", run, ts,
					errmsg);
		json_decref(seen);
		pl_stmt_finalize(st);
		st = NULL;
	}
	json_decref(last);
	return r;
}

/* The last row of key: *sha (caller frees) and whether there is one. */
static int
last_of(struct pl_state *s, const char *key, char **sha, char **errmsg)
{
	struct pl_stmt *st;
	int r, rc;

	*sha = NULL;
	if ((r = pl_state_prep(
		     s,
		     "SELECT sha256 FROM history WHERE vmid = 0 AND guest = ? ORDER BY id "
		     "DESC LIMIT 1",
		     &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, key);
	if ((rc = pl_stmt_step(st)) == PL_DB_ROW)
		*sha = pl_strdup(pl_stmt_text(st, 0));
	else if (rc != PL_DB_DONE)
		r = pl_state_dberr(s, errmsg, "reading history");
	pl_stmt_finalize(st);
	return r;
}

/* Whether run already has a row of key. */
static int
has_run_row(struct pl_state *s, const char *key, long long run, bool *has, char **errmsg)
{
	struct pl_stmt *st;
	int r, rc;

	if ((r = pl_state_prep(s,
			       "SELECT 1 FROM history WHERE vmid = 0 AND guest = ? AND run_id = ?",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, key);
	pl_stmt_bind_int64(st, 2, run);
	rc = pl_stmt_step(st);
	*has = rc == PL_DB_ROW;
	if (rc != PL_DB_ROW && rc != PL_DB_DONE)
		r = pl_state_dberr(s, errmsg, "reading history");
	pl_stmt_finalize(st);
	return r;
}

/* One change's rows: the state it found, when history does not end
 * there (changed outside pvelab, or never seen: no run), then the state
 * it left (this run), when that differs. Once per run and key. */
static int
run_rows(struct pl_state *s, struct pl_stmt *st, const json_t *h, long long run, double ts,
	 char **errmsg)
{
	const char *key = pl_json_str(h, "key");
	char *btext = NULL, *atext = NULL, *last = NULL, bsha[65], asha[65];
	bool has = false;
	int r;

	if (key == NULL || !json_is_object(json_object_get(h, "before")) ||
	    !json_is_object(json_object_get(h, "after")))
		return 0;
	if ((r = has_run_row(s, key, run, &has, errmsg)) != 0 || has ||
	    (r = last_of(s, key, &last, errmsg)) != 0)
		goto out;
	btext = pl_json_canonical(json_object_get(h, "before"));
	atext = pl_json_canonical(json_object_get(h, "after"));
	pl_sha256_hex(btext, strlen(btext), bsha);
	pl_sha256_hex(atext, strlen(atext), asha);
	if ((last == NULL || strcmp(last, bsha)) &&
	    (r = add(s, st, key, last ? "updated" : "discovered", bsha, btext, 0, ts - 0.001,
		     errmsg)) != 0)
		goto out;
	if (strcmp(asha, bsha))
		r = add(s, st, key, "updated", asha, atext, run, ts, errmsg);
out:
	free(last);
	free(btext);
	free(atext);
	return r;
}

int
pl_state_run_history(struct pl_state *s, long long run, const json_t *result, char **errmsg)
{
	struct pl_stmt *st = NULL;
	const json_t *c;
	double ts = pl_state_now();
	size_t i;
	int r = 0;

	json_array_foreach(json_object_get(result, "changes"), i, c) {
		if (!json_is_object(json_object_get(c, "history")))
			continue;
		if (st == NULL && (r = pl_state_prep(s, ST_ADD, &st, errmsg)) != 0)
			break;
		if ((r = run_rows(s, st, json_object_get(c, "history"), run, ts, errmsg)) != 0)
			break;
	}
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_history_key(struct pl_state *s, const char *key, json_t **out, char **errmsg)
{
	struct pl_stmt *st;
	json_t *a = json_array();
	int r, rc;

	*out = NULL;
	if ((r = pl_state_prep(
		     s,
		     "SELECT id, kind, sha256, run_id, ts, json FROM history WHERE vmid = 0 "
		     "AND guest = ? ORDER BY id",
		     &st, errmsg)) != 0) {
		json_decref(a);
		return r;
	}
	pl_stmt_bind_text(st, 1, key);
	while ((rc = pl_stmt_step(st)) == PL_DB_ROW) {
		const char *text = pl_stmt_text(st, 5);
		json_t *state = pl_json_loadb(text, strlen(text), 0);

		json_array_append_new(
			a, json_pack("{s:I,s:s,s:s,s:o,s:f,s:o}", "id",
				     (json_int_t)pl_stmt_int64(st, 0), "kind", pl_stmt_text(st, 1),
				     "sha256", pl_stmt_text(st, 2), "run",
				     pl_stmt_null(st, 3) ? json_null() :
							   json_integer(pl_stmt_int64(st, 3)),
				     "ts", pl_stmt_double(st, 4), "state",
				     state ? state : json_null()));
	}
	if (rc != PL_DB_DONE) {
		r = pl_state_dberr(s, errmsg, "reading history");
		pl_stmt_finalize(st);
		json_decref(a);
		return r;
	}
	pl_stmt_finalize(st);
	*out = a;
	return 0;
}
