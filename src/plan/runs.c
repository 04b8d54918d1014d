/*
 * Run records for apply/destroy/rollback and the one-apply-per-cluster lock
 * (see runs.h): the state store keeps them (pl_state_run_*, pl_state_lock_*);
 * this file says which process this is and whether another one still lives.
 * A process is its pid, host name and start time (/proc/PID/stat field 22),
 * so that a pid reused after a crash is not mistaken for the process that died.
 */
#include "core/common.h"
#include "plan/runs.h"
#include "core/err.h"
#include "core/json.h"
#include "state/state.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Start time of process pid in clock ticks after boot; 0 when unknown. */
static long long
proc_start(long pid)
{
	char path[64], buf[1024], *p;
	long long v = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the name (field 2) may hold spaces and parentheses: count after the last ')' */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p + 1, "%lld", &v) != 1)
		v = 0;
	return v;
}

static const char *
host_name(void)
{
	static char name[256];

	if (name[0] == '\0' && gethostname(name, sizeof(name) - 1) != 0)
		snprintf(name, sizeof(name), "localhost");
	return name;
}

/* Is the process (pid, host, start) still there? Another host's cannot be
 * checked from here: it counts as alive. */
static bool
holder_alive(long long pid, const char *host, long long pstart)
{
	long long now_start;

	if (host == NULL || strcmp(host, host_name()) != 0)
		return true;
	if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
		return false;
	now_start = proc_start((long)pid);
	return now_start == 0 || pstart == 0 || now_start == pstart;
}

static bool
alive(const struct pl_state_proc *p, void *arg)
{
	PL_UNUSED(arg);
	return holder_alive(p->pid, p->host, p->start);
}

/* This process. */
static struct pl_state_proc
self(void)
{
	struct pl_state_proc p = { (long long)getpid(), host_name(), proc_start((long)getpid()) };

	return p;
}

int
pl_runs_reap(struct pl_state *s, int *n, char **errmsg)
{
	return pl_state_runs_reap(s, alive, NULL, n, errmsg);
}

int
pl_runs_begin(struct pl_state *s, const char *kind, long long *id, char **errmsg)
{
	struct pl_state_proc me = self();

	return pl_state_run_begin(s, kind, &me, id, errmsg);
}

const char *
pl_runs_via(void)
{
	static char via[201];
	const char *env = getenv(PL_RUNS_VIA_ENV);
	size_t i;

	if (env == NULL || *env == '\0')
		return NULL;
	for (i = 0; env[i] && i + 1 < sizeof(via); i++)
		via[i] = (unsigned char)env[i] < 0x20 || env[i] == 0x7f ? '?' : env[i];
	via[i] = '\0';
	return via;
}

/* result with "via" when this process writes for someone (new reference). */
static json_t *
with_via(const json_t *result)
{
	const char *via = pl_runs_via();
	json_t *r;

	if (via == NULL || !json_is_object(result))
		return json_incref((json_t *)result);
	r = json_copy((json_t *)result);
	json_object_set_new(r, "via", json_string(via));
	return r;
}

int
pl_runs_update(struct pl_state *s, long long id, const json_t *result, char **errmsg)
{
	json_t *r = with_via(result);
	int e = pl_state_run_update(s, id, r, errmsg);

	json_decref(r);
	return e;
}

int
pl_runs_set_project(struct pl_state *s, long long id, const char *project, char **errmsg)
{
	return pl_state_run_set_project(s, id, project, errmsg);
}

int
pl_runs_finish(struct pl_state *s, long long id, const char *status, const json_t *result,
	       char **errmsg)
{
	json_t *r = with_via(result);
	int e = pl_state_run_finish(s, id, status, r, errmsg);

	json_decref(r);
	return e;
}

int
pl_runs_get(struct pl_state *s, long long id, json_t **run, char **errmsg)
{
	return pl_state_run_get(s, id, alive, NULL, run, errmsg);
}

int
pl_runs_list(struct pl_state *s, const char *kind, int limit, json_t **runs, char **errmsg)
{
	return pl_state_runs(s, kind, limit, alive, NULL, runs, errmsg);
}

int
pl_runs_storage_done(struct pl_state *s, const char *project, const json_t *entry, char **errmsg)
{
	const char *id = pl_json_str_or(entry, "guest", "");
	const char *cls = pl_json_str_or(entry, "class", "");

	if (strcmp(pl_json_str_or(entry, "action", ""), "storage") != 0 ||
	    strcmp(pl_json_str_or(entry, "status", ""), "ok") != 0)
		return 0;
	if (!strcmp(cls, "create") && project)
		return pl_state_storage_own(s, id, project, errmsg);
	if (!strcmp(cls, "delete"))
		return pl_state_storage_disown(s, id, errmsg);
	return 0;
}

int
pl_runs_newest(struct pl_state *s, long long *id, const char **kind, char **errmsg)
{
	return pl_state_run_newest_change(s, id, kind, errmsg);
}

int
pl_runs_lock(struct pl_state *s, const char *name, json_t **stale, char **errmsg)
{
	struct pl_state_proc me = self();

	return pl_state_lock_take(s, name, &me, alive, NULL, stale, errmsg);
}

int
pl_runs_unlock(struct pl_state *s, const char *name, char **errmsg)
{
	struct pl_state_proc me = self();

	return pl_state_lock_release(s, name, &me, errmsg);
}

/* ---- the way back of a run -------------------------------------------- */

/* A deleted or replaced guest comes back from the backup the run took of it
 * before the destroy; a replacement the run created is destroyed first. */
static void
restore_change(json_t *changes, json_t *notes, long long id, const json_t *c)
{
	bool replace = !strcmp(pl_json_str_or(c, "action", ""), "replace");
	const char *backup = pl_json_str(c, "backup");
	json_t *r;

	if (!json_is_true(json_object_get(c, "destroyed"))) {
		if (replace && json_is_true(json_object_get(c, "created")))
			json_array_append_new(
				notes,
				json_sprintf("run %lld created %s (%lld) but kept the guest it "
					     "replaces; pvelab destroy %lld removes the new one",
					     id, pl_json_str_or(c, "guest", "?"),
					     pl_json_int(c, "vmid", 0), pl_json_int(c, "vmid", 0)));
		return;
	}
	if (backup == NULL) {
		json_array_append_new(
			notes,
			json_sprintf("run %lld destroyed %s (%lld) without a backup%s: it cannot "
				     "be restored",
				     id, pl_json_str_or(c, "guest", "?"),
				     pl_json_int(c, replace ? "old_vmid" : "vmid", 0),
				     json_is_true(json_object_get(c, "no_backup")) ?
					     " (--no-backup)" :
					     ""));
		return;
	}
	r = json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s,s:s?,s:b}", "action", "restore", "guest",
		      pl_json_str_or(c, "guest", ""), "type",
		      pl_json_str_or(c, replace ? "from_type" : "type", "qemu"), "vmid",
		      (json_int_t)pl_json_int(c, replace ? "old_vmid" : "vmid", 0), "node",
		      pl_json_str(c, replace ? "old_node" : "node"), "archive", backup,
		      "backup_storage", pl_json_str(c, "backup_storage"), "running",
		      json_is_true(json_object_get(c, "was_running")));
	if (replace && json_is_true(json_object_get(c, "created"))) {
		json_object_set_new(r, "old_vmid", json_integer(pl_json_int(c, "vmid", 0)));
		json_object_set_new(r, "from_type", json_string(pl_json_str_or(c, "type", "qemu")));
		json_object_set_new(r, "old_node", json_string(pl_json_str_or(c, "node", "")));
	}
	json_array_append_new(changes, r);
}

/* A changed guest whose way back was a backup (it could not be
 * snapshotted) comes back from that archive, restored over it where it is
 * now (force=1): its state now is backed up first. */
static void
overwrite_change(json_t *changes, const json_t *c)
{
	json_t *r = json_pack(
		"{s:s,s:s,s:s,s:I,s:s?,s:s,s:s?,s:b,s:b}", "action", "restore", "guest",
		pl_json_str_or(c, "guest", ""), "type", pl_json_str_or(c, "type", "qemu"), "vmid",
		(json_int_t)pl_json_int(c, "vmid", 0), "node", pl_json_str(c, "node"), "archive",
		pl_json_str(c, "backup"), "backup_storage", pl_json_str(c, "backup_storage"),
		"running", json_is_true(json_object_get(c, "was_running")), "overwrite", 1);

	json_array_append_new(changes, r);
}

json_t *
pl_runs_rollback_plan(const json_t *run, json_t *notes)
{
	json_t *plan = json_pack("{s:i,s:[]}", "version", 1, "changes");
	json_t *changes = json_object_get(plan, "changes");
	long long id = pl_json_int(run, "id", 0);
	const json_t *c;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(run, "result"), "changes"), i, c) {
		const char *action = pl_json_str_or(c, "action", "");
		const char *st = pl_json_str_or(c, "status", "");

		/* a snapshot is named once taken (runs before issue 15 named it
		 * when asked for: their "skipped" changes took none) */
		if (pl_json_str(c, "snapshot") && strcmp(st, "skipped") &&
		    strcmp(st, "not started"))
			json_array_append_new(
				changes,
				json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s,s:b}", "action", "rollback",
					  "guest", pl_json_str_or(c, "guest", ""), "type",
					  pl_json_str_or(c, "type", "qemu"), "vmid",
					  (json_int_t)pl_json_int(c, "vmid", 0), "node",
					  pl_json_str(c, "node"), "snapshot",
					  pl_json_str(c, "snapshot"), "running",
					  json_is_true(json_object_get(c, "was_running"))));
		else if (!strcmp(action, "delete") || !strcmp(action, "replace"))
			restore_change(changes, notes, id, c);
		else if (!strcmp(action, "update") && pl_json_str(c, "backup") &&
			 strcmp(st, "not started"))
			overwrite_change(changes, c);
		else if (json_is_true(json_object_get(c, "created")) ||
			 (!strcmp(action, "create") && !strcmp(st, "ok")))
			json_array_append_new(
				notes,
				json_sprintf("run %lld created %s (%lld); pvelab destroy "
					     "%lld removes it",
					     id, pl_json_str_or(c, "guest", "?"),
					     pl_json_int(c, "vmid", 0), pl_json_int(c, "vmid", 0)));
	}
	/* the stacks it deployed (an apply's after its changes, or a deploy
	 * run's): their guest back to the run's snapshot, once per guest */
	json_array_foreach(json_object_get(json_object_get(run, "result"), "stacks"), i, c) {
		bool back = false;
		const json_t *d;
		size_t j;

		json_array_foreach(changes, j, d)
			back |= pl_json_int(d, "vmid", 0) == pl_json_int(c, "vmid", 0) &&
				pl_json_str(d, "snapshot");
		if (back)
			continue;
		if (pl_json_str(c, "snapshot"))
			json_array_append_new(changes,
					      json_pack("{s:s,s:s,s:s,s:I,s:s?,s:s,s:b}", "action",
							"rollback", "guest",
							pl_json_str_or(c, "guest", ""), "type",
							pl_json_str_or(c, "type", "qemu"), "vmid",
							(json_int_t)pl_json_int(c, "vmid", 0),
							"node", pl_json_str(c, "node"), "snapshot",
							pl_json_str(c, "snapshot"), "running", 1));
		else if (json_is_true(json_object_get(c, "ok")))
			json_array_append_new(
				notes,
				json_sprintf("run %lld created stack %s in %s without a snapshot "
					     "(a new stack): it stays; docker compose -p %s down "
					     "in the guest removes it",
					     id, pl_json_str_or(c, "name", "?"),
					     pl_json_str_or(c, "guest", "?"),
					     pl_json_str_or(c, "name", "?")));
	}
	return plan;
}

json_t *
pl_runs_rollback_owned(const json_t *plan)
{
	json_t *owned = json_object();
	const json_t *c;
	size_t i;

	json_array_foreach(json_object_get(plan, "changes"), i, c) {
		char key[32];

		snprintf(key, sizeof(key), "%lld", pl_json_int(c, "vmid", 0));
		json_object_set_new(owned, key, json_true());
		if (json_object_get(c, "old_vmid")) {
			snprintf(key, sizeof(key), "%lld", pl_json_int(c, "old_vmid", 0));
			json_object_set_new(owned, key, json_true());
		}
	}
	return owned;
}
