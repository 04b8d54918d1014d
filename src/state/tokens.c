/*
 * API tokens of pvelab serve: name, role, expiry and revocation, found by the
 * SHA-256 of the secret. The secret itself never reaches the store.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/err.h"
#include "state/internal.h"

static json_t *
real_or_null(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	return json_real(sqlite3_column_double(st, col));
}

int
pl_state_token_add(struct pl_state *s, const char *name, const char *role, const char *sha256,
		   double expires, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s,
			       "INSERT INTO api_tokens(name,role,sha256,created,expires) "
			       "VALUES (?,?,?,?,?)",
			       &st, errmsg)) != 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, role, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, sha256, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 4, pl_state_now());
	if (expires > 0)
		sqlite3_bind_double(st, 5, expires);
	else
		sqlite3_bind_null(st, 5);
	r = sqlite3_step(st);
	if ((r & 0xff) == SQLITE_CONSTRAINT &&
	    sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
		r = pl_seterr(errmsg, PL_ECONFLICT,
			      "a token named '%s' exists already (pvelab "
			      "token list shows them; choose another name)",
			      name);
	else if (r != SQLITE_DONE)
		r = pl_state_dberr(s, errmsg, "add token");
	else
		r = 0;
	sqlite3_finalize(st);
	return r;
}

int
pl_state_tokens(struct pl_state *s, json_t **out, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT name, role, created, expires, revoked FROM api_tokens "
			       "ORDER BY name",
			       &st, errmsg)) != 0)
		return r;
	*out = json_array();
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(
			*out, json_pack("{s:s,s:s,s:f,s:o,s:o}", "name",
					(const char *)sqlite3_column_text(st, 0), "role",
					(const char *)sqlite3_column_text(st, 1), "created",
					sqlite3_column_double(st, 2), "expires",
					real_or_null(st, 3), "revoked", real_or_null(st, 4)));
	r = r == SQLITE_DONE ? 0 : pl_state_dberr(s, errmsg, "read tokens");
	sqlite3_finalize(st);
	if (r != 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}

int
pl_state_token_revoke(struct pl_state *s, const char *name, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s,
			       "UPDATE api_tokens SET revoked = ? WHERE name = ? AND "
			       "revoked IS NULL",
			       &st, errmsg)) != 0)
		return r;
	sqlite3_bind_double(st, 1, pl_state_now());
	sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
	if ((r = pl_state_step_done(s, st, errmsg)) == 0 && sqlite3_changes(s->db) == 0)
		r = pl_seterr(errmsg, PL_ENOENT,
			      "no token named '%s' to revoke (pvelab token "
			      "list shows them)",
			      name);
	sqlite3_finalize(st);
	return r;
}

int
pl_state_token_find(struct pl_state *s, const char *sha256, json_t **out, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT name, role, expires, revoked FROM api_tokens WHERE "
			       "sha256 = ?",
			       &st, errmsg)) != 0)
		return r;
	sqlite3_bind_text(st, 1, sha256, -1, SQLITE_TRANSIENT);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*out = json_pack("{s:s,s:s,s:o,s:o}", "name",
				 (const char *)sqlite3_column_text(st, 0), "role",
				 (const char *)sqlite3_column_text(st, 1), "expires",
				 real_or_null(st, 2), "revoked", real_or_null(st, 3));
		r = 0;
	} else if (r == SQLITE_DONE) {
		r = PL_ENOENT;
	} else {
		r = pl_state_dberr(s, errmsg, "find token");
	}
	sqlite3_finalize(st);
	return r;
}
