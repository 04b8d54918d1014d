/*
 * Copying a whole store into another (pvelab state migrate): SQLite to
 * PostgreSQL and back, table by table in batches of their own transactions,
 * so that a copy cut short resumes where it stood; then the row counts and a
 * hash chain over the history compared on both sides.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/err.h"
#include "core/json.h"
#include "state/internal.h"

#include <openssl/evp.h>

#define BATCH 2000 /* rows per transaction */

/* Every table in the order its references need, with its key. The apply
 * lock is not copied: it belongs to a process of the old store. Tables
 * whose rows are only ever added resume after the copy's highest id. */
static const struct {
	const char *name, *key;
	bool append_only;
} tables[] = {
	{ "runs", "id", false },
	{ "nodes", "node", false },
	{ "guests", "vmid", false },
	{ "storages", "node, storage", false },
	{ "bridges", "node, iface", false },
	{ "tasks", "upid", false },
	{ "history", "id", true },
	{ "discovered_hosts", "address", false },
	{ "api_tokens", "name", false },
	{ "check_events", "id", true },
	{ "check_silences", "id", false },
	{ "ssh_known_hosts", "host, port", false },
	{ "stack_deploys", "vmid, stack", false },
	{ "storage_owners", "storage", false },
};

/* The INSERT that upserts a row of table with the columns of st. */
static char *
upsert_sql(struct pl_stmt *st, const char *table, const char *key)
{
	char *cols = pl_strdup(""), *vals = pl_strdup(""), *set = pl_strdup(""), *t, *sql;
	int n = pl_stmt_ncols(st);

	for (int i = 0; i < n; i++) {
		const char *c = pl_stmt_name(st, i);
		bool keycol = strstr(key, c) != NULL;

		t = pl_asprintf("%s%s\"%s\"", cols, i ? "," : "", c);
		free(cols);
		cols = t;
		t = pl_asprintf("%s%s?", vals, i ? "," : "");
		free(vals);
		vals = t;
		if (!keycol) {
			t = pl_asprintf("%s%s\"%s\"=excluded.\"%s\"", set, *set ? "," : "", c, c);
			free(set);
			set = t;
		}
	}
	sql = *set ? pl_asprintf("INSERT INTO %s(%s) VALUES (%s) ON CONFLICT(%s) DO UPDATE SET %s",
				 table, cols, vals, key, set) :
		     pl_asprintf("INSERT INTO %s(%s) VALUES (%s) ON CONFLICT(%s) DO NOTHING", table,
				 cols, vals, key);
	free(cols);
	free(vals);
	free(set);
	return sql;
}

static long long
scalar(struct pl_state *s, const char *sql)
{
	struct pl_stmt *st;
	long long v = -1;

	if (pl_state_prep(s, sql, &st, NULL) != 0)
		return -1;
	if (pl_stmt_step(st) == PL_DB_ROW)
		v = pl_stmt_int64(st, 0);
	pl_stmt_finalize(st);
	return v;
}

/* Copy one table; *n gets the rows written. */
static int
copy_table(struct pl_state *from, struct pl_state *to, int t, long long *n, char **errmsg)
{
	struct pl_stmt *rd = NULL, *wr = NULL;
	long long after = -1;
	char *sql;
	int r = 0, rc, batch = 0;

	*n = 0;
	if (tables[t].append_only) {
		sql = pl_asprintf("SELECT coalesce(max(id), 0) FROM %s", tables[t].name);
		after = scalar(to, sql);
		free(sql);
	}
	sql = pl_asprintf("SELECT * FROM %s WHERE %s ORDER BY %s", tables[t].name,
			  after >= 0 ? "id > ?" : "1 = 1", tables[t].key);
	r = pl_state_prep(from, sql, &rd, errmsg);
	free(sql);
	if (r != 0)
		return r;
	if (after >= 0)
		pl_stmt_bind_int64(rd, 1, after);
	while ((rc = pl_stmt_step(rd)) == PL_DB_ROW) {
		if (wr == NULL) {
			sql = upsert_sql(rd, tables[t].name, tables[t].key);
			r = pl_state_prep(to, sql, &wr, errmsg);
			free(sql);
			if (r != 0)
				goto out;
		}
		if (batch == 0 && (r = pl_state_begin(to, true, errmsg)) != 0)
			goto out;
		for (int i = 0; i < pl_stmt_ncols(rd); i++) {
			switch (pl_stmt_kind(rd, i)) {
			case 'n':
				pl_stmt_bind_null(wr, i + 1);
				break;
			case 'i':
				pl_stmt_bind_int64(wr, i + 1, pl_stmt_int64(rd, i));
				break;
			case 'd':
				pl_stmt_bind_double(wr, i + 1, pl_stmt_double(rd, i));
				break;
			default:
				pl_stmt_bind_textn(wr, i + 1, pl_stmt_text(rd, i),
						   pl_stmt_bytes(rd, i));
			}
		}
		if ((r = pl_state_step_done(to, wr, errmsg)) != 0)
			goto out;
		(*n)++;
		if (++batch == BATCH) {
			if ((r = pl_state_commit(to, errmsg)) != 0)
				goto out;
			batch = 0;
		}
	}
	if (rc != PL_DB_DONE) {
		r = pl_state_dberr(from, errmsg, "read");
		goto out;
	}
	if (batch)
		r = pl_state_commit(to, errmsg);
out:
	if (r != 0)
		pl_state_rollback(to);
	pl_stmt_finalize(rd);
	pl_stmt_finalize(wr);
	return r;
}

int
pl_state_history_chain(struct pl_state *s, char out[65], char **errmsg)
{
	struct pl_stmt *st;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_MD_CTX *c;
	int r, rc;

	if ((r = pl_state_prep(s,
			       "SELECT id, guest, vmid, kind, sha256, run_id, ts, json "
			       "FROM history ORDER BY id",
			       &st, errmsg)) != 0)
		return r;
	if ((c = EVP_MD_CTX_new()) == NULL || !EVP_DigestInit_ex(c, EVP_sha256(), NULL))
		pl_die("out of memory");
	while ((rc = pl_stmt_step(st)) == PL_DB_ROW) {
		char head[256];
		int k = snprintf(head, sizeof(head), "%lld|%lld|%lld|%.17g|", pl_stmt_int64(st, 0),
				 pl_stmt_int64(st, 2), pl_stmt_int64(st, 5), pl_stmt_double(st, 6));

		EVP_DigestUpdate(c, head, (size_t)k);
		for (int i = 0; i < 8; i++) {
			if (i == 1 || i == 3 || i == 4 || i == 7) {
				EVP_DigestUpdate(c, pl_stmt_text(st, i) ? pl_stmt_text(st, i) : "",
						 pl_stmt_bytes(st, i));
				EVP_DigestUpdate(c, "\x1f", 1);
			}
		}
	}
	pl_stmt_finalize(st);
	EVP_DigestFinal_ex(c, md, &len);
	EVP_MD_CTX_free(c);
	if (rc != PL_DB_DONE)
		return pl_state_dberr(s, errmsg, "read history");
	for (unsigned int i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* After rows with their own ids went in, PostgreSQL's identity columns go on
 * from the highest. */
static int
pg_identities(struct pl_state *to, char **errmsg)
{
	static const char *const ids[] = { "runs", "history", "check_events", "check_silences" };

	for (size_t i = 0; i < PL_ARRAY_LEN(ids); i++) {
		char *sql = pl_asprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), "
					"coalesce(max(id), 0) + 1, false) FROM %s",
					ids[i], ids[i]);
		int r = pl_state_exec(to, sql, errmsg);

		free(sql);
		if (r != 0)
			return r;
	}
	return 0;
}

int
pl_state_copy(struct pl_state *from, struct pl_state *to, json_t **report, char **errmsg)
{
	char a[65], b[65];
	json_t *t = json_object();
	int r = 0;

	*report = NULL;
	if (pl_state_version(from) != pl_state_version(to)) {
		json_decref(t);
		return pl_seterr(errmsg, PL_EDB,
				 "state databases '%s' and '%s' have schema "
				 "versions %d and %d",
				 from->path, to->path, pl_state_version(from),
				 pl_state_version(to));
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(tables) && r == 0; i++) {
		long long n, na, nb;
		char *sql;

		if ((r = copy_table(from, to, (int)i, &n, errmsg)) != 0) {
			pl_preferr(errmsg, r, "table %s (run the same command again to resume)",
				   tables[i].name);
			break;
		}
		sql = pl_asprintf("SELECT count(*) FROM %s", tables[i].name);
		na = scalar(from, sql);
		nb = scalar(to, sql);
		free(sql);
		json_object_set_new(t, tables[i].name,
				    json_pack("{s:I,s:I,s:I}", "copied", (json_int_t)n, "source",
					      (json_int_t)na, "target", (json_int_t)nb));
		if (na != nb)
			r = pl_seterr(errmsg, PL_EDB, "table %s: %lld rows in '%s', %lld in '%s'",
				      tables[i].name, na, from->path, nb, to->path);
	}
	if (r == 0 && pl_state_pg(to))
		r = pg_identities(to, errmsg);
	if (r == 0 && (r = pl_state_history_chain(from, a, errmsg)) == 0 &&
	    (r = pl_state_history_chain(to, b, errmsg)) == 0 && strcmp(a, b))
		r = pl_seterr(errmsg, PL_EDB,
			      "the history's hash chain differs: %.16s in '%s', "
			      "%.16s in '%s'",
			      a, from->path, b, to->path);
	if (r != 0) {
		json_decref(t);
		return r;
	}
	*report = json_pack("{s:o,s:s}", "tables", t, "history_chain", a);
	return 0;
}
