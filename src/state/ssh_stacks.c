/*
 * What pvelab learned inside guests: SSH host keys trusted on first use, and
 * the stacks as last deployed (the baseline the plan compares with).
 */
#include "core/common.h"
#include "state/state.h"
#include "core/err.h"
#include "state/internal.h"

int
pl_state_ssh_trust(void *state, const char *host, int port, const char *keytype,
		   const char *fingerprint, char **errmsg)
{
	struct pl_state *s = state;
	struct pl_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s,
			       "SELECT keytype, fingerprint FROM ssh_known_hosts "
			       "WHERE host = ? AND port = ?",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, host);
	pl_stmt_bind_int64(st, 2, port);
	r = pl_stmt_step(st);
	if (r == PL_DB_ROW) {
		const char *type0 = pl_stmt_text(st, 0);
		const char *fp0 = pl_stmt_text(st, 1);

		if (strcmp(type0, keytype) != 0 || strcmp(fp0, fingerprint) != 0) {
			r = pl_seterr(errmsg, PL_EPERM,
				      "ssh %s:%d: host key changed: recorded %s %s, presented %s "
				      "%s: refused (if the host was rebuilt on purpose: pvelab ssh "
				      "forget %s%s%s:%d)",
				      host, port, type0, fp0, keytype, fingerprint,
				      strchr(host, ':') ? "[" : "", host,
				      strchr(host, ':') ? "]" : "", port);
			pl_stmt_finalize(st);
			return r;
		}
		pl_stmt_finalize(st);
		if ((r = pl_state_prep(s,
				       "UPDATE ssh_known_hosts SET last_seen = ? "
				       "WHERE host = ? AND port = ?",
				       &st, errmsg)) != 0)
			return r;
		pl_stmt_bind_double(st, 1, pl_state_now());
		pl_stmt_bind_text(st, 2, host);
		pl_stmt_bind_int64(st, 3, port);
		r = pl_state_step_done(s, st, errmsg);
		pl_stmt_finalize(st);
		return r;
	}
	pl_stmt_finalize(st);
	if (r != PL_DB_DONE)
		return pl_state_dberr(s, errmsg, "read ssh host keys");
	if ((r = pl_state_prep(s,
			       "INSERT INTO ssh_known_hosts(host,port,keytype,fingerprint,"
			       "first_seen,last_seen) VALUES (?,?,?,?,?,?)",
			       &st, errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, host);
	pl_stmt_bind_int64(st, 2, port);
	pl_stmt_bind_text(st, 3, keytype);
	pl_stmt_bind_text(st, 4, fingerprint);
	pl_stmt_bind_double(st, 5, pl_state_now());
	pl_stmt_bind_double(st, 6, pl_state_now());
	r = pl_state_step_done(s, st, errmsg);
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_ssh_hosts(struct pl_state *s, json_t **out, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT host, port, keytype, fingerprint, first_seen, last_seen "
			       "FROM ssh_known_hosts ORDER BY host, port",
			       &st, errmsg)) != 0)
		return r;
	*out = json_array();
	while ((r = pl_stmt_step(st)) == PL_DB_ROW)
		json_array_append_new(
			*out,
			json_pack("{s:s,s:I,s:s,s:s,s:f,s:f}", "host", pl_stmt_text(st, 0), "port",
				  (json_int_t)pl_stmt_int64(st, 1), "keytype", pl_stmt_text(st, 2),
				  "fingerprint", pl_stmt_text(st, 3), "first_seen",
				  pl_stmt_double(st, 4), "last_seen", pl_stmt_double(st, 5)));
	r = r == PL_DB_DONE ? 0 : pl_state_dberr(s, errmsg, "read ssh host keys");
	pl_stmt_finalize(st);
	if (r != 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}

int
pl_state_ssh_forget(struct pl_state *s, const char *host, int port, char **errmsg)
{
	struct pl_stmt *st = NULL;
	long long changed;
	int r;

	if ((r = pl_state_prep(s, "DELETE FROM ssh_known_hosts WHERE host = ? AND port = ?", &st,
			       errmsg)) != 0)
		return r;
	pl_stmt_bind_text(st, 1, host);
	pl_stmt_bind_int64(st, 2, port);
	r = pl_state_step_done(s, st, errmsg);
	changed = pl_stmt_changes(st);
	pl_stmt_finalize(st);
	if (r != 0)
		return r;
	if (changed == 0)
		return pl_seterr(errmsg, PL_ENOENT, "no ssh host key recorded for %s:%d", host,
				 port);
	return 0;
}

int
pl_state_stack_record(struct pl_state *s, long long vmid, const char *stack, const char *sha256,
		      const json_t *files, char **errmsg)
{
	struct pl_stmt *st = NULL;
	char *text = json_dumps(files, JSON_COMPACT | JSON_SORT_KEYS);
	int r;

	if ((r = pl_state_prep(s,
			       "INSERT INTO stack_deploys(vmid,stack,sha256,files,deployed) "
			       "VALUES (?,?,?,?,?) ON CONFLICT (vmid, stack) DO UPDATE SET "
			       "sha256 = excluded.sha256, files = excluded.files, "
			       "deployed = excluded.deployed",
			       &st, errmsg)) == 0) {
		pl_stmt_bind_int64(st, 1, vmid);
		pl_stmt_bind_text(st, 2, stack);
		pl_stmt_bind_text(st, 3, sha256);
		pl_stmt_bind_text(st, 4, text ? text : "{}");
		pl_stmt_bind_double(st, 5, pl_state_now());
		r = pl_state_step_done(s, st, errmsg);
		pl_stmt_finalize(st);
	}
	free(text);
	return r;
}

int
pl_state_stack_forget(struct pl_state *s, long long vmid, const char *stack, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	if ((r = pl_state_prep(s, "DELETE FROM stack_deploys WHERE vmid = ? AND stack = ?", &st,
			       errmsg)) != 0)
		return r;
	pl_stmt_bind_int64(st, 1, vmid);
	pl_stmt_bind_text(st, 2, stack);
	r = pl_state_step_done(s, st, errmsg);
	pl_stmt_finalize(st);
	return r;
}

int
pl_state_stacks(struct pl_state *s, json_t **out, char **errmsg)
{
	struct pl_stmt *st = NULL;
	int r;

	*out = NULL;
	if ((r = pl_state_prep(s,
			       "SELECT vmid, stack, sha256, files, deployed FROM stack_deploys "
			       "ORDER BY vmid, stack",
			       &st, errmsg)) != 0)
		return r;
	*out = json_array();
	while ((r = pl_stmt_step(st)) == PL_DB_ROW) {
		json_t *files = json_loads(pl_stmt_text(st, 3), 0, NULL);

		json_array_append_new(*out,
				      json_pack("{s:I,s:s,s:s,s:o,s:f}", "vmid",
						(json_int_t)pl_stmt_int64(st, 0), "stack",
						pl_stmt_text(st, 1), "sha256", pl_stmt_text(st, 2),
						"files", files ? files : json_object(), "deployed",
						pl_stmt_double(st, 4)));
	}
	r = r == PL_DB_DONE ? 0 : pl_state_dberr(s, errmsg, "read stack deploys");
	pl_stmt_finalize(st);
	if (r != 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}
