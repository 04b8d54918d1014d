/*
 * API tokens of pvelab serve: name, role, expiry and revocation, found by the
 * SHA-256 of the secret. The secret itself never reaches the store.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/err.h"
#include "state/internal.h"

static json_t *
real_or_null(struct pl_stmt *st, int col)
{
	if (pl_stmt_null(st, col))
		return json_null();
	return json_real(pl_stmt_double(st, col));
}

int
pl_state_token_add(struct pl_state *s, const char *name, const char *role, const char *sha256,
		   double expires, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s,
			       "INSERT INTO api_tokens(name,role,sha256,created,expires) "
			       "VALUES (?,?,?,?,?)",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, name);
	pl_stmt_bind_text(st, 2, role);
	pl_stmt_bind_text(st, 3, sha256);
	pl_stmt_bind_double(st, 4, pl_state_now());
	if (expires > 0)
		pl_stmt_bind_double(st, 5, expires);
	else
		pl_stmt_bind_null(st, 5);
	r = pl_stmt_step(st);
	if (r == PL_DB_CONSTRAINT && pl_stmt_pkey_clash(st))
		r = pl_seterr(errmsg, PL_ECONFLICT,
			      "a token named '%s' exists already (pvelab "
			      "token list shows them; choose another name)",
			      name);
	else if (r != PL_DB_DONE)
		r = pl_state_dberr(s, errmsg, "add token");
	else
		r = 0;
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_tokens(struct pl_state *s, json_t **out, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT name, role, created, expires, revoked FROM api_tokens "
			       "ORDER BY name",
			       &st, errmsg)) != 0)
		return r;
	*out = json_array();
	while ((r = pl_stmt_step(st)) == PL_DB_ROW)
		json_array_append_new(
			*out,
			json_pack("{s:s,s:s,s:f,s:o,s:o}", "name", pl_stmt_text(st, 0), "role",
				  pl_stmt_text(st, 1), "created", pl_stmt_double(st, 2), "expires",
				  real_or_null(st, 3), "revoked", real_or_null(st, 4)));
	r = r == PL_DB_DONE ? 0 : pl_state_dberr(s, errmsg, "read tokens");
	pl_stmt_finalize(st);
	if (r != 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}

int
pl_state_token_revoke(struct pl_state *s, const char *name, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s,
			       "UPDATE api_tokens SET revoked = ? WHERE name = ? AND "
			       "revoked IS NULL",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_double(st, 1, pl_state_now());
	pl_stmt_bind_text(st, 2, name);
	if ((r = pl_state_step_done(s, st, errmsg)) == 0 && pl_stmt_changes(st) == 0)
		r = pl_seterr(errmsg, PL_ENOENT,
			      "no token named '%s' to revoke (pvelab token "
			      "list shows them)",
			      name);
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_token_find(struct pl_state *s, const char *sha256, json_t **out, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT name, role, expires, revoked FROM api_tokens WHERE "
			       "sha256 = ?",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, sha256);
	r = pl_stmt_step(st);
	if (r == PL_DB_ROW) {
		*out = json_pack("{s:s,s:s,s:o,s:o}", "name", pl_stmt_text(st, 0), "role",
				 pl_stmt_text(st, 1), "expires", real_or_null(st, 2), "revoked",
				 real_or_null(st, 3));
		r = 0;
	} else if (r == PL_DB_DONE) {
		r = PL_ENOENT;
	} else {
		r = pl_state_dberr(s, errmsg, "find token");
	}
	pl_stmt_finalize(st);
	return r;
}
