/*
 * The storages each project owns (migration 11): storage.cfg has no comment
 * for a [pvelab:<project>] marker, so the store keeps which project's apply
 * created a storage or whose import adopted it; destroy removes only those.
 */
#include "core/common.h"
#include "state/state.h"
#include "core/err.h"
#include "state/internal.h"

int
pl_state_storage_own(struct pl_state *s, const char *storage, const char *project, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s,
			       "INSERT INTO storage_owners(storage,project,since) VALUES (?,?,?) "
			       "ON CONFLICT (storage) DO UPDATE SET project = excluded.project, "
			       "since = excluded.since",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, storage);
	pl_stmt_bind_text(st, 2, project);
	pl_stmt_bind_double(st, 3, pl_state_now());
	r = pl_state_step_done(s, st, errmsg);
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_storage_disown(struct pl_state *s, const char *storage, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s, "DELETE FROM storage_owners WHERE storage = ?", &st, errmsg)) !=
	    0)
		return r;
	pl_stmt_bind_text(st, 1, storage);
	r = pl_state_step_done(s, st, errmsg);
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_storage_owners(struct pl_state *s, json_t **out, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s, "SELECT storage, project FROM storage_owners", &st, errmsg)) != 0)
		return r;
	*out = json_object();
	while ((r = pl_stmt_step(st)) == PL_DB_ROW)
		json_object_set_new(*out, pl_stmt_text(st, 0), json_string(pl_stmt_text(st, 1)));
	r = r == PL_DB_DONE ? 0 : pl_state_dberr(s, errmsg, "read storage owners");
	pl_stmt_finalize(st);
	if (r != 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}
