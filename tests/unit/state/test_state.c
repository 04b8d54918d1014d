/* Unit tests for state/: migrations, change detection by hash (volatile
 * counters ignored), history rows, deletions, dry runs, task rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "core/json.h"
#include "plan/runs.h"
#include "pve/inventory.h"
#include "state/migrations.h"
#include "state/state.h"
#include "state/internal.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/pl-state-XXXXXX";
static char *path;

static int
setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return -1;
	path = pl_asprintf("%s/sub/state.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	char *cmd = pl_asprintf("rm -rf '%s'", dir);
	int r = system(cmd);

	free(cmd);
	free(path);
	return r == 0 ? 0 : -1;
}

static json_t *
snap(int n, int memory_of_100, double cpu)
{
	json_t *s = json_pack("{s:[{s:s,s:s}],s:[],s:[{s:s,s:s}],s:[{s:s,s:s}],s:[]}", "nodes",
			      "node", "pve1", "status", "online", "guests", "storages", "node",
			      "pve1", "storage", "local", "bridges", "node", "pve1", "iface", "vmbr0",
			      "tasks");
	json_t *g = json_object_get(s, "guests");

	for (int i = 0; i < n; i++) {
		int vmid = 100 + i;

		json_array_append_new(g, json_pack(
			"{s:i,s:s,s:s,s:s,s:s,s:f,s:i,s:i,s:{s:s,s:i,s:s}}", "vmid", vmid, "type",
			i % 2 ? "lxc" : "qemu", "node", "pve1", "name", "g", "status", "running",
			"cpu", cpu, "uptime", (int)(cpu * 1000), "netin", (int)(cpu * 77), "config",
			"name", "g", "memory", vmid == 100 ? memory_of_100 : 512, "net0",
			"virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr0"));
	}
	return s;
}

static void
test_open_migrate_reopen(void **state)
{
	struct pl_state *s;
	char *err = NULL;

	assert_int_equal(pl_state_open_ro(path, &s, &err), PL_ENOENT);
	assert_non_null(strstr(err, "pvelab sync"));
	free(err);
	err = NULL;
	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_int_equal(pl_state_version(s), pl_state_latest_version());
	assert_true(pl_state_latest_version() >= 1);
	{
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st,
						    NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
	}
	pl_state_close(s);
	assert_int_equal(pl_state_open_ro(path, &s, &err), 0);
	assert_int_equal(pl_state_version(s), pl_state_latest_version());
	pl_state_close(s);
	/* A database from a newer pvelab is refused, not downgraded. */
	{
		sqlite3 *db;

		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), 0);
		sqlite3_close(db);
		assert_int_equal(pl_state_open(path, &s, &err), PL_EDB);
		assert_non_null(strstr(err, "newer"));
		free(err);
		err = NULL;
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		{
			char *sql = pl_asprintf("PRAGMA user_version = %d", pl_state_latest_version());

			assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), 0);
			free(sql);
		}
		sqlite3_close(db);
	}
}

/* A version-2 store keeps its history through migration 3, whose kind check
 * still refuses unknown kinds without a temporary index per insert. */
static void
remove_db(void)
{
	static const char *const ext[] = { "", "-wal", "-shm" };

	for (size_t i = 0; i < PL_ARRAY_LEN(ext); i++) {
		char *p = pl_asprintf("%s%s", path, ext[i]);

		unlink(p);
		free(p);
	}
}

static void
test_migrate_history_check(void **state)
{
	struct pl_state *s;
	sqlite3 *db;
	sqlite3_stmt *st;
	char *err = NULL;
	bool ephemeral = false;

	remove_db();
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	for (int n = 1; n <= 2; n++)
		assert_int_equal(sqlite3_exec(db, pl_state_migration(n), NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 2; INSERT INTO history"
					  "(guest,vmid,kind,sha256,ts,json) VALUES "
					  "('100',100,'created','ab',1.5,'{}')", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_true(pl_state_version(s) >= 3);
	db = s->db;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT kind, vmid FROM history", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "created");
	sqlite3_finalize(st);
	assert_int_not_equal(sqlite3_exec(db, "INSERT INTO history(guest,vmid,kind,sha256,ts,json) "
					  "VALUES ('1',1,'renamed','x',1,'{}')", NULL, NULL, NULL),
			     SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "EXPLAIN INSERT INTO history(guest,vmid,kind,"
					    "sha256,ts,json) VALUES ('1',1,'deleted','x',1,'{}')",
					    -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		ephemeral = ephemeral ||
			    !strcmp((const char *)sqlite3_column_text(st, 1), "OpenEphemeral");
	sqlite3_finalize(st);
	assert_false(ephemeral);
	pl_state_close(s);
	remove_db();
}

/* Where the local files go: the SQLite file's directory; for PostgreSQL
 * (whose URL is no directory), where the default file would be, and
 * $PVELAB_STATE plays no part. */
static void
test_local_dir(void **state)
{
	char *p;

	(void)state;
	setenv("PVELAB_STATE", "/env/s.db", 1);
	p = pl_state_local_dir("/var/x/s.db", "/lab/pvelab.yaml");
	assert_string_equal(p, "/var/x");
	free(p);
	p = pl_state_local_dir("postgresql://u@db.lan:5433/pvelab?sslmode=verify-full",
			       "/lab/pvelab.yaml");
	assert_string_equal(p, "/lab/.pvelab");
	free(p);
	p = pl_state_local_dir("host=/run/pg dbname=pvelab", "/etc/pvelab/pvelab.yaml");
	assert_string_equal(p, "/var/lib/pvelab");
	free(p);
	p = pl_state_local_dir(NULL, NULL);
	assert_string_equal(p, "./.pvelab");
	free(p);
	unsetenv("PVELAB_STATE");
	p = pl_state_display("postgresql://u:secret@db.lan:5433/pvelab?sslmode=verify-full");
	assert_string_equal(p, "postgresql://u@db.lan:5433/pvelab");
	free(p);
}

/* Where the store lives: the given path, then $PVELAB_STATE, then the
 * config's state: (relative to the config's directory), then beside it (or
 * where an installed pvelab keeps it). */
static void
test_state_path(void **state)
{
	char *p;

	unsetenv("PVELAB_STATE");
	p = pl_state_path(NULL, NULL, "/lab/pvelab.yaml");
	assert_string_equal(p, "/lab/.pvelab/state.db");
	free(p);
	p = pl_state_path(NULL, "db/s.db", "/lab/pvelab.yaml");
	assert_string_equal(p, "/lab/db/s.db");
	free(p);
	p = pl_state_path(NULL, "/var/s.db", "/lab/pvelab.yaml");
	assert_string_equal(p, "/var/s.db");
	free(p);
	p = pl_state_path(NULL, NULL, NULL);
	assert_string_equal(p, "./.pvelab/state.db");
	free(p);
	/* installed: the system config's state in /var/lib/pvelab (the unit's
	 * StateDirectory); the per-user config's in $XDG_STATE_HOME/pvelab */
	p = pl_state_path(NULL, NULL, "/etc/pvelab/pvelab.yaml");
	assert_string_equal(p, "/var/lib/pvelab/state.db");
	free(p);
	setenv("XDG_CONFIG_HOME", "/home/u/cfg", 1);
	setenv("XDG_STATE_HOME", "/home/u/st", 1);
	p = pl_state_path(NULL, NULL, "/home/u/cfg/pvelab/pvelab.yaml");
	assert_string_equal(p, "/home/u/st/pvelab/state.db");
	free(p);
	p = pl_state_path(NULL, "db/s.db", "/etc/pvelab/pvelab.yaml");
	assert_string_equal(p, "/etc/pvelab/db/s.db");
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("XDG_STATE_HOME");
	setenv("PVELAB_STATE", "/env/s.db", 1);
	p = pl_state_path(NULL, "db/s.db", "/lab/pvelab.yaml");
	assert_string_equal(p, "/env/s.db");
	free(p);
	p = pl_state_path("/flag/s.db", "db/s.db", "/lab/pvelab.yaml");
	assert_string_equal(p, "/flag/s.db");
	free(p);
	setenv("PVELAB_STATE", "", 1);
	p = pl_state_path(NULL, "db/s.db", "/lab/pvelab.yaml");
	assert_string_equal(p, "/lab/db/s.db");
	free(p);
	unsetenv("PVELAB_STATE");
}

static int
user_version(const char *file)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int v = -1;

	assert_int_equal(sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* A read never writes: an empty file stays empty, an old schema stays old
 * (with what to do), and a store in a read-only directory can be read. */
static void
test_open_ro_never_writes(void **state)
{
	struct pl_state *s = NULL;
	struct stat sb;
	char *err = NULL, *rodir, *ro;
	sqlite3 *db;
	FILE *f;

	remove_db();
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	assert_int_equal(pl_state_open_ro(path, &s, &err), PL_ENOENT);
	assert_non_null(strstr(err, "no state in"));
	free(err);
	err = NULL;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	remove_db();

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
	for (int n = 1; n <= 4; n++)
		assert_int_equal(sqlite3_exec(db, pl_state_migration(n), NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 4", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(pl_state_open_ro(path, &s, &err), PL_EDB);
	assert_non_null(strstr(err, "older"));
	assert_non_null(strstr(err, "pvelab sync"));
	free(err);
	err = NULL;
	assert_int_equal(user_version(path), 4);
	assert_int_equal(pl_state_open(path, &s, &err), 0);
	pl_state_close(s);
	assert_int_equal(user_version(path), pl_state_latest_version());

	/* a copy whose WAL index cannot be made beside it, as on a read-only
	 * mount (a directory where the -shm file would go: root cannot write
	 * there either) */
	rodir = pl_asprintf("%s/ro", dir);
	ro = pl_asprintf("%s/state.db", rodir);
	assert_int_equal(mkdir(rodir, 0700), 0);
	{
		char *cmd = pl_asprintf("cp '%s' '%s' && mkdir '%s-shm'", path, ro, ro);
		json_t *nodes = NULL;

		/* the writer's last changes sit in the WAL: copy them into the file */
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
					      NULL), SQLITE_OK);
		sqlite3_close(db);
		assert_int_equal(system(cmd), 0);
		free(cmd);
		assert_int_equal(pl_state_open_ro(ro, &s, &err), 0);
		assert_int_equal(pl_state_nodes(s, &nodes, &err), 0);
		assert_int_equal(json_array_size(nodes), 0);
		json_decref(nodes);
		pl_state_close(s);
	}
	free(ro);
	free(rodir);
	remove_db();
}

static bool
alive_none(const struct pl_state_proc *p, void *arg)
{
	(*(int *)arg)++;
	return false;
}

static bool
alive_all(const struct pl_state_proc *p, void *arg)
{
	return true;
}

/* Runs and the apply lock through pl_state_*: a run of a dead process reads
 * as interrupted without a write, and the reap records it. */
static void
test_runs_and_lock(void **state)
{
	struct pl_state_proc me = { 42, "here", 7 }, other = { 43, "here", 9 };
	struct pl_state *s;
	json_t *run = NULL, *runs = NULL, *stale = NULL, *res;
	long long id = 0, newest = -1;
	const char *kind = NULL;
	char *err = NULL;
	int asked = 0, n = -1;

	remove_db();
	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_int_equal(pl_state_lock_take(s, "c1", &me, alive_all, NULL, &stale, &err), 0);
	assert_null(stale);
	assert_int_equal(pl_state_lock_take(s, "c1", &other, alive_all, NULL, &stale, &err),
			 PL_ECONFLICT);
	assert_non_null(strstr(err, "another apply is running (pid 42 on host here"));
	free(err);
	err = NULL;
	assert_int_equal(pl_state_run_begin(s, "apply", &me, &id, &err), 0);
	assert_true(id > 0);
	assert_int_equal(pl_state_run_set_project(s, id, "lab", &err), 0);
	res = json_pack("{s:[{s:s},{s:s}]}", "changes", "status", "ok", "status", "running");
	assert_int_equal(pl_state_run_update(s, id, res, &err), 0);
	json_decref(res);
	/* the lock names the run; a dead holder's lock is taken over */
	assert_int_equal(pl_state_lock_take(s, "c1", &other, alive_none, &asked, &stale, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(stale, "run_id")), id);
	assert_int_equal(json_integer_value(json_object_get(stale, "pid")), 42);
	json_decref(stale);
	assert_int_equal(pl_state_lock_release(s, "c1", &me, &err), 0); /* not its lock: kept */
	assert_int_equal(pl_state_lock_take(s, "c1", &me, alive_all, NULL, NULL, &err),
			 PL_ECONFLICT);
	free(err);
	err = NULL;
	assert_int_equal(pl_state_lock_release(s, "c1", &other, &err), 0);
	assert_int_equal(pl_state_lock_take(s, "c1", &me, alive_all, NULL, NULL, &err), 0);

	assert_int_equal(pl_state_run_get(s, id, alive_all, NULL, &run, &err), 0);
	assert_string_equal(json_string_value(json_object_get(run, "status")), "running");
	assert_string_equal(json_string_value(json_object_get(run, "project")), "lab");
	json_decref(run);
	asked = 0;
	assert_int_equal(pl_state_run_get(s, id, alive_none, &asked, &run, &err), 0);
	assert_int_equal(asked, 1);
	assert_string_equal(json_string_value(json_object_get(run, "status")), "interrupted");
	res = json_object_get(run, "result");
	assert_int_equal(json_integer_value(json_object_get(res, "interrupted")), 1);
	assert_string_equal(pl_json_str(json_array_get(json_object_get(res, "changes"), 1),
					"status"), "interrupted");
	json_decref(run);
	/* reading wrote nothing */
	assert_int_equal(pl_state_runs(s, "apply", 10, NULL, NULL, &runs, &err), 0);
	assert_int_equal(json_array_size(runs), 1);
	assert_string_equal(pl_json_str(json_array_get(runs, 0), "status"), "running");
	json_decref(runs);
	assert_int_equal(pl_state_runs_reap(s, alive_none, &asked, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pl_state_run_get(s, id, NULL, NULL, &run, &err), 0);
	assert_string_equal(json_string_value(json_object_get(run, "status")), "interrupted");
	json_decref(run);
	assert_int_equal(pl_state_run_newest_change(s, &newest, &kind, &err), 0);
	assert_int_equal(newest, id);
	assert_string_equal(kind, "apply");
	assert_int_equal(pl_state_run_finish(s, id, "failed", NULL, &err), 0);
	assert_int_equal(pl_state_run_get(s, id, NULL, NULL, &run, &err), 0);
	assert_string_equal(json_string_value(json_object_get(run, "status")), "failed");
	assert_true(json_is_real(json_object_get(run, "finished")));
	json_decref(run);
	assert_int_equal(pl_state_run_get(s, id + 1, NULL, NULL, &run, &err), PL_ENOENT);
	free(err);
	pl_state_close(s);
	remove_db();
}

static bool
covers_20s(const char *address, void *arg)
{
	return !strncmp(address, "10.0.0.2", 8);
}

/* Discovered hosts: new, seen again, vanished only inside what was scanned. */
static void
test_discovered(void **state)
{
	struct pl_state *s;
	json_t *news, *gone, *all;
	json_t *scan1 = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "address", "10.0.0.20",
				  "kind", "linux-ssh", "address", "10.0.0.21", "kind", "idrac",
				  "address", "10.0.0.30", "kind", "pve");
	json_t *scan2 = json_pack("[{s:s,s:s}]", "address", "10.0.0.20", "kind", "linux-ssh");
	char *err = NULL;

	remove_db();
	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_int_equal(pl_state_discovered_save(s, scan1, covers_20s, NULL, &news, &gone, &err), 0);
	assert_int_equal(json_array_size(news), 3);
	assert_int_equal(json_array_size(gone), 0);
	json_decref(news);
	json_decref(gone);
	assert_int_equal(pl_state_discovered_save(s, scan2, covers_20s, NULL, &news, &gone, &err), 0);
	assert_int_equal(json_array_size(news), 0);
	assert_int_equal(json_array_size(gone), 1);
	assert_string_equal(pl_json_str(json_array_get(gone, 0), "address"), "10.0.0.21");
	json_decref(news);
	json_decref(gone);
	assert_int_equal(pl_state_discovered(s, &all, &err), 0);
	assert_int_equal(json_array_size(all), 3);
	assert_true(json_is_true(json_object_get(json_array_get(all, 0), "present")));
	assert_true(json_is_false(json_object_get(json_array_get(all, 1), "present")));
	assert_true(json_is_true(json_object_get(json_array_get(all, 2), "present")));
	assert_string_equal(pl_json_str(json_object_get(json_array_get(all, 2), "record"), "kind"),
			    "pve");
	json_decref(all);
	pl_state_close(s);
	json_decref(scan1);
	json_decref(scan2);
	remove_db();
}

static void
test_hash_ignores_volatile(void **state)
{
	json_t *a = json_pack("{s:i,s:s,s:s,s:f,s:i,s:{s:i}}", "vmid", 100, "type", "qemu",
			      "status", "running", "cpu", 0.5, "uptime", 10, "config", "memory", 512);
	json_t *b = json_pack("{s:s,s:s,s:s,s:f,s:i,s:i,s:{s:i}}", "vmid", "100", "status",
			      "running", "type", "qemu", "cpu", 0.9, "uptime", 99, "netin", 5,
			      "config", "memory", 512);
	json_t *c = json_pack("{s:i,s:s,s:s,s:{s:i}}", "vmid", 100, "type", "qemu", "status",
			      "stopped", "config", "memory", 512);
	json_t *sa = pl_state_guest_sig(a), *sb = pl_state_guest_sig(b), *sc = pl_state_guest_sig(c);
	const char *ha = json_string_value(json_array_get(sa, 0));
	const char *hb = json_string_value(json_array_get(sb, 0));
	const char *hc = json_string_value(json_array_get(sc, 0));
	char want[65];
	const char *text = json_string_value(json_array_get(sa, 1));

	assert_string_equal(ha, hb); /* counters and "100" vs 100 do not matter */
	assert_string_not_equal(ha, hc); /* the power state does */
	assert_int_equal(strlen(ha), 64);
	/* The hash is of the canonical durable text that comes with it. */
	assert_string_equal(text, "{\"config\":{\"memory\":512},\"status\":\"running\",\"type\":"
				  "\"qemu\",\"vmid\":100}");
	pl_sha256_hex(text, strlen(text), want);
	assert_string_equal(ha, want);
	json_decref(sa);
	json_decref(sb);
	json_decref(sc);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

/* The signature text is the canonical JSON of the durable keys that are not
 * null, vmid and template as integers: every key, nested config sorted too. */
static void
test_sig_text(void **state)
{
	json_t *g = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:n,s:s,s:s,s:s,s:s,s:f,s:i,"
			      "s:{s:s,s:i,s:[i,{s:i,s:i}]}}",
			      "vmid", "101", "type", "lxc", "node", "pve2", "name", "ct\"1",
			      "status", "stopped", "template", "1", "lock", "tags", "a;b",
			      "hastate", "started", "pool", "lab", "id", "lxc/101", "cpu", 0.25,
			      "maxmem", 1024, "config", "z", "x", "a", 1, "m", 1, "q", 2, "b", 3);
	json_t *d = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:O}", "vmid",
			      (json_int_t)101, "type", "lxc", "node", "pve2", "name", "ct\"1",
			      "status", "stopped", "template", (json_int_t)1, "tags", "a;b",
			      "hastate", "started", "pool", "lab", "config",
			      json_object_get(g, "config"));
	json_t *sig = pl_state_guest_sig(g);
	char *want = pl_json_canonical(d);

	assert_string_equal(json_string_value(json_array_get(sig, 1)), want);
	free(want);
	json_decref(sig);
	json_decref(d);
	json_decref(g);
}

static void
test_sync_history(void **state)
{
	struct pl_state *s;
	struct pl_state_counts cnt;
	json_t *sn, *changes, *hist, *guests, *nodes, *g;
	long long run;
	char *err = NULL;

	assert_int_equal(pl_state_open(path, &s, &err), 0);
	sn = snap(5, 512, 0.1);
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, &changes, &run, &err), 0);
	json_decref(sn);
	assert_int_equal(cnt.added, 5);
	assert_int_equal(json_array_size(changes), 5);
	assert_string_equal(pl_json_str(json_array_get(changes, 0), "kind"), "discovered");
	json_decref(changes);
	assert_int_equal(pl_state_history_count(s), 5);

	/* Same config, different counters: nothing changes, no history. */
	sn = snap(5, 512, 0.7);
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	json_decref(sn);
	assert_int_equal(cnt.added + cnt.changed + cnt.removed, 0);
	assert_int_equal(cnt.unchanged, 5);
	assert_int_equal(pl_state_history_count(s), 5);
	/* ... but the stored row has the new counters. */
	assert_int_equal(pl_state_guest(s, 100, &g, &err), 0);
	assert_true(pl_json_num(g, "cpu", 0) > 0.6);
	json_decref(g);

	/* A dry run sees the change and keeps nothing. */
	sn = snap(4, 1024, 0.7);
	assert_int_equal(pl_state_record_sync(s, sn, true, &cnt, NULL, NULL, &err), 0);
	assert_int_equal(cnt.changed, 1);
	assert_int_equal(cnt.removed, 1);
	assert_int_equal(pl_state_history_count(s), 5);
	/* For real now. */
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	json_decref(sn);
	assert_int_equal(cnt.changed, 1);
	assert_int_equal(cnt.removed, 1);
	assert_int_equal(pl_state_history_count(s), 7);
	assert_int_equal(pl_state_history(s, 100, &hist, &err), 0);
	assert_int_equal(json_array_size(hist), 2);
	assert_string_equal(pl_json_str(json_array_get(hist, 1), "kind"), "updated");
	assert_int_equal(pl_json_int(json_object_get(json_object_get(json_array_get(hist, 1),
								      "state"), "config"),
				     "memory", 0), 1024);
	json_decref(hist);
	assert_int_equal(pl_state_history(s, 104, &hist, &err), 0);
	assert_string_equal(pl_json_str(json_array_get(hist, 1), "kind"), "deleted");
	json_decref(hist);
	assert_int_equal(pl_state_guest(s, 104, &g, &err), PL_ENOENT);
	free(err);
	err = NULL;
	assert_int_equal(pl_state_guests(s, &guests, &err), 0);
	assert_int_equal(json_array_size(guests), 4);
	json_decref(guests);
	assert_int_equal(pl_state_nodes(s, &nodes, &err), 0);
	assert_int_equal(json_array_size(nodes), 1);
	json_decref(nodes);
	assert_int_equal(pl_state_last_run(s, "sync", &g, &err), 0);
	assert_int_equal(pl_json_int(json_object_get(g, "summary"), "changed", -1), 1);
	json_decref(g);
	pl_state_close(s);
}

/* Reading a guest lays its counters over its stored JSON exactly as SQLite's
 * json_patch (RFC 7396) does, and the filters select what they name. */
static void
test_read_overlay_and_filters(void **state)
{
	struct pl_state *s;
	sqlite3_stmt *st;
	json_t *sn, *guests, *names, *counts, *g;
	char *err = NULL;
	size_t i;

	assert_int_equal(pl_state_open(path, &s, &err), 0);
	sn = snap(6, 512, 0.3);
	json_object_set_new(json_array_get(json_object_get(sn, "guests"), 2), "status", json_string("stopped"));
	assert_int_equal(pl_state_record_sync(s, sn, false, NULL, NULL, NULL, &err), 0);
	json_decref(sn);
	/* A live part with a null and a nested object, as no sync writes one. */
	assert_int_equal(sqlite3_exec(s->db,
				      "UPDATE guests SET live = '{\"cpu\":0.5,\"name\":null,"
				      "\"config\":{\"memory\":64,\"net0\":null},\"ha\":{\"a\":{\"b\":null,\"c\":1}}}' "
				      "WHERE vmid = 101", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(pl_state_guests(s, &guests, &err), 0);
	assert_int_equal(json_array_size(guests), 6);
	assert_int_equal(sqlite3_prepare_v2(s->db,
					    "SELECT json_patch(json, coalesce(live, '{}')) FROM guests "
					    "ORDER BY vmid", -1, &st, NULL),
			 SQLITE_OK);
	for (i = 0; sqlite3_step(st) == SQLITE_ROW; i++) {
		json_t *want = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);

		assert_non_null(want);
		assert_true(json_equal(want, json_array_get(guests, i)));
		json_decref(want);
	}
	sqlite3_finalize(st);
	assert_int_equal(i, 6);
	g = json_array_get(guests, 1);
	assert_null(json_object_get(g, "name"));
	assert_int_equal(pl_json_int(json_object_get(g, "config"), "memory", 0), 64);
	assert_null(json_object_get(json_object_get(g, "config"), "net0"));
	json_decref(guests);

	assert_int_equal(pl_state_guests_where(s, &(struct pl_state_filter){ "qemu", NULL, NULL },
					       &guests, &err), 0);
	assert_int_equal(json_array_size(guests), 3);
	json_array_foreach(guests, i, g)
		assert_string_equal(pl_json_str(g, "type"), "qemu");
	json_decref(guests);
	assert_int_equal(pl_state_guests_where(s, &(struct pl_state_filter){ "qemu", "pve1",
									     "stopped" },
					       &guests, &err), 0);
	assert_int_equal(json_array_size(guests), 1);
	assert_int_equal(pl_json_int(json_array_get(guests, 0), "vmid", 0), 102);
	json_decref(guests);
	assert_int_equal(pl_state_guests_where(s, &(struct pl_state_filter){ NULL, "pve9", NULL },
					       &guests, &err), 0);
	assert_int_equal(json_array_size(guests), 0);
	json_decref(guests);

	/* The list's summaries agree with the full guests, field by field. */
	{
		json_t *sums, *full;
		static const char *const keys[] = { "vmid", "name", "node", "type", "status",
						    "tags", "lock", "cpu", "maxcpu", "mem",
						    "maxmem", "maxdisk" };

		assert_int_equal(pl_state_guest_summaries(s, &(struct pl_state_filter){ "lxc", NULL,
											NULL },
							  &sums, &err), 0);
		assert_int_equal(pl_state_guests_where(s, &(struct pl_state_filter){ "lxc", NULL,
										     NULL },
						       &full, &err), 0);
		assert_int_equal(json_array_size(sums), 3);
		assert_int_equal(json_array_size(full), 3);
		json_array_foreach(sums, i, g) {
			json_t *f = json_array_get(full, i);

			for (size_t k = 0; k < PL_ARRAY_LEN(keys); k++) {
				json_t *a = json_object_get(g, keys[k]), *b = json_object_get(f, keys[k]);

				if (b == NULL)
					assert_true(json_is_null(a) || json_integer_value(a) == 0 ||
						    json_real_value(a) == 0);
				else
					assert_true(json_equal(a, b));
			}
			assert_true(json_is_boolean(json_object_get(g, "template")));
		}
		json_decref(sums);
		json_decref(full);
	}

	assert_int_equal(pl_state_guest_names(s, &names, &err), 0);
	assert_int_equal(json_array_size(names), 6);
	assert_int_equal(pl_json_int(json_array_get(names, 0), "vmid", 0), 100);
	assert_string_equal(pl_json_str(json_array_get(names, 0), "name"), "g");
	json_decref(names);
	assert_int_equal(pl_state_guest_counts(s, &counts, &err), 0);
	{
		long long running = 0, stopped = 0;

		json_array_foreach(counts, i, g) {
			if (!strcmp(pl_json_str(g, "status"), "running"))
				running += pl_json_int(g, "n", 0);
			else if (!strcmp(pl_json_str(g, "status"), "stopped"))
				stopped += pl_json_int(g, "n", 0);
		}
		assert_int_equal(running, 5);
		assert_int_equal(stopped, 1);
	}
	json_decref(counts);
	pl_state_close(s);
}

/* Guests whose config was not read (pve/inventory.h): a known one stays as
 * recorded, with no history; a new one is recorded from its entry. */
/* How many guests pl_state_guest_counts counts in STATUS. */
static long long
count_of(const json_t *counts, const char *status)
{
	long long n = 0;
	size_t i;
	json_t *c;

	json_array_foreach(counts, i, c)
		if (!strcmp(pl_json_str_or(c, "status", ""), status))
			n += pl_json_int(c, "n", 0);
	return n;
}

static void
test_unread_guests(void **state)
{
	struct pl_state *s;
	struct pl_state_counts cnt;
	json_t *sn, *g, *guests, *got;
	char *err = NULL;
	long long rows;

	for (int i = 0; i < 3; i++) {
		char *f = pl_asprintf("%s%s", path, (const char *[]){ "", "-wal", "-shm" }[i]);

		unlink(f);
		free(f);
	}
	assert_int_equal(pl_state_open(path, &s, &err), 0);
	sn = snap(3, 512, 0.1);
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	json_decref(sn);
	rows = pl_state_history_count(s);

	sn = snap(3, 512, 0.1);
	guests = json_object_get(sn, "guests");
	json_object_del(json_array_get(guests, 0), "config");
	json_object_set_new(json_array_get(guests, 0), "_unread", json_string(PL_PVE_UNREAD_GONE));
	json_object_del(json_array_get(guests, 1), "config");
	json_object_set_new(json_array_get(guests, 1), "status", json_string("unknown"));
	json_object_set_new(json_array_get(guests, 1), "_unread",
			    json_string(PL_PVE_UNREAD_OFFLINE));
	g = json_deep_copy(json_array_get(guests, 0));
	json_object_set_new(g, "vmid", json_integer(105));
	json_array_append_new(guests, g);
	g = json_deep_copy(json_array_get(guests, 1));
	json_object_set_new(g, "vmid", json_integer(106));
	json_array_append_new(guests, g);
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	json_decref(sn);
	assert_int_equal(cnt.unread, 4);
	assert_int_equal(cnt.added, 2);   /* 105, 106 */
	assert_int_equal(cnt.changed, 0);
	assert_int_equal(cnt.removed, 0);
	assert_int_equal(cnt.unchanged, 1); /* 102 */
	assert_int_equal(pl_state_history_count(s), rows + 2);
	/* Kept as last read, with the state the cluster gives now. */
	for (long long v = 100; v <= 101; v++) {
		assert_int_equal(pl_state_guest(s, v, &got, &err), 0);
		assert_int_equal(pl_json_int(json_object_get(got, "config"), "memory", 0), 512);
		assert_string_equal(pl_json_str(got, "status"), v == 100 ? "running" : "unknown");
		assert_null(json_object_get(got, "_unread"));
		json_decref(got);
	}
	for (long long v = 105; v <= 106; v++) {
		assert_int_equal(pl_state_guest(s, v, &got, &err), 0);
		assert_null(json_object_get(got, "config"));
		assert_null(json_object_get(got, "_unread"));
		json_decref(got);
	}
	assert_int_equal(pl_state_guest_counts(s, &got, &err), 0);
	assert_int_equal(count_of(got, "unknown"), 2); /* 101, 106 */
	json_decref(got);

	/* Read again: the kept state is back, with no history row (but for
	 * 105 and 106, gone). */
	rows = pl_state_history_count(s);
	sn = snap(3, 512, 0.1);
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	json_decref(sn);
	assert_int_equal(cnt.changed, 0);
	assert_int_equal(cnt.removed, 2);
	assert_int_equal(pl_state_history_count(s), rows + 2);
	assert_int_equal(pl_state_guest(s, 101, &got, &err), 0);
	assert_string_equal(pl_json_str(got, "status"), "running");
	json_decref(got);
	assert_int_equal(pl_state_guest_counts(s, &got, &err), 0);
	assert_int_equal(count_of(got, "unknown"), 0);
	json_decref(got);
	pl_state_close(s);
}

static off_t
wal_size(void)
{
	char *p = pl_asprintf("%s-wal", path);
	struct stat sb;
	off_t n = stat(p, &sb) == 0 ? sb.st_size : -1;

	free(p);
	return n;
}

/* One sync of sn into the store, with or without the checkpoint before it. */
static void
sync_once(json_t *sn, int round, bool checkpoint)
{
	struct pl_state *s;
	char *err = NULL;

	assert_int_equal(pl_state_open(path, &s, &err), 0);
	if (checkpoint) {
		struct pl_state_ckpt *k = pl_state_checkpoint_start(s);

		assert_non_null(k);
		pl_state_checkpoint_wait(k);
	}
	json_object_set_new(json_array_get(json_object_get(sn, "guests"), 0), "cpu",
			    json_real(0.2 + round));
	assert_int_equal(pl_state_record_sync(s, sn, false, NULL, NULL, NULL, &err), 0);
	pl_state_close(s);
}

/* Commits and closes leave the WAL; a checkpoint run before the next write
 * copies it, so that the next sync starts the WAL over instead of growing it. */
static void
test_checkpoint(void **state)
{
	struct pl_state *s;
	json_t *sn = snap(300, 512, 0.1), *g;
	char *err = NULL;
	off_t first;
	int round = 0;

	remove_db();
	sync_once(sn, round++, false);
	first = wal_size();
	assert_true(first > 300 * 300);
	for (int i = 0; i < 6; i++, round++) {
		sync_once(sn, round, true);
		assert_true(wal_size() == first);
	}
	/* Without the checkpoint, syncs append to the WAL. */
	for (int i = 0; i < 6; i++, round++)
		sync_once(sn, round, false);
	assert_true(wal_size() > first);
	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_int_equal(pl_state_guest(s, 100, &g, &err), 0);
	assert_true(pl_json_num(g, "cpu", 0) > round - 1);
	json_decref(g);
	pl_state_close(s);
	json_decref(sn);
	remove_db();
}

/* Guests recorded one by one as they arrive, with signatures computed by the
 * caller: used as given, and what was not recorded is gone. */
static void
test_streamed_sync(void **state)
{
	struct pl_state *s;
	struct pl_state_sync *y;
	struct pl_state_counts cnt;
	json_t *sn = snap(4, 1024, 0.3), *g, *changes = NULL;
	char *err = NULL;
	size_t i;

	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	assert_int_equal(pl_state_sync_begin(s, true, &y, &err), 0);
	json_array_foreach(json_object_get(sn, "guests"), i, g) {
		json_t *sig = pl_state_guest_sig(g);

		if (i == 0) {
			json_decref(sig);
			continue; /* not seen: gone */
		}
		if (i == 1) {
			json_decref(sig);
			sig = json_pack("[s,s]", "0000000000000000000000000000000000000000000000000000000000000000", "{}");
		}
		pl_state_sync_guest(y, g, sig);
		json_decref(sig);
	}
	assert_int_equal(pl_state_sync_end(y, sn, &cnt, &changes, NULL, &err), 0);
	assert_int_equal(cnt.removed, 1);
	assert_int_equal(cnt.changed, 1); /* a different given hash is a change */
	assert_int_equal(cnt.unchanged, 2);
	assert_int_equal(json_array_size(changes), 2);
	json_decref(changes);
	/* That was a dry run: the store still has all four, unchanged. */
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	assert_int_equal(cnt.unchanged, 4);
	/* An abandoned sync leaves nothing behind and frees the write lock. */
	assert_int_equal(pl_state_sync_begin(s, false, &y, &err), 0);
	pl_state_sync_abort(y);
	/* Foreign keys, off while a sync writes, are on again. */
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(s->db, "PRAGMA foreign_keys", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	assert_int_equal(cnt.unchanged, 4);
	json_decref(sn);
	pl_state_close(s);
}

/* A refresh that keeps counters in memory writes no row of an unchanged
 * cluster; the tables it replaces still lose what is gone. */
static void
test_unchanged_sync_writes_nothing(void **state)
{
	struct pl_state *s;
	struct pl_state_sync *y;
	struct pl_state_counts cnt;
	json_t *sn = snap(6, 1024, 0.3), *g, *out;
	char *err = NULL;
	size_t i;
	int before, rows;

	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	/* the counters move; nothing the store keeps does */
	json_array_foreach(json_object_get(sn, "guests"), i, g)
		json_object_set_new(g, "cpu", json_real(0.9));
	before = sqlite3_total_changes(s->db);
	assert_int_equal(pl_state_sync_begin(s, false, &y, &err), 0);
	pl_state_sync_counters(y, false);
	json_array_foreach(json_object_get(sn, "guests"), i, g)
		pl_state_sync_guest(y, g, NULL);
	assert_int_equal(pl_state_sync_end(y, sn, &cnt, NULL, NULL, &err), 0);
	assert_int_equal(cnt.unchanged, 6);
	rows = sqlite3_total_changes(s->db) - before;
	assert_int_equal(rows, 2); /* the run row: inserted, then finished */
	/* the CLI's sync still writes each guest's counters */
	before = sqlite3_total_changes(s->db);
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	assert_true(sqlite3_total_changes(s->db) - before >= 6 + 2);
	/* a storage, a bridge and a node gone are gone from the store */
	json_array_clear(json_object_get(sn, "storages"));
	json_array_clear(json_object_get(sn, "bridges"));
	json_array_clear(json_object_get(sn, "nodes"));
	assert_int_equal(pl_state_record_sync(s, sn, false, &cnt, NULL, NULL, &err), 0);
	assert_int_equal(pl_state_storages(s, &out, &err), 0);
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
	assert_int_equal(pl_state_bridges(s, &out, &err), 0);
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
	assert_int_equal(pl_state_nodes(s, &out, &err), 0);
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
	json_decref(sn);
	pl_state_close(s);
}

static void
test_tasks(void **state)
{
	struct pl_state *s;
	json_t *t = json_pack("{s:s,s:s,s:s,s:i,s:s}", "node", "pve1", "type", "qmstart", "id",
			      "100", "starttime", 5, "status", "running"), *out;
	char *err = NULL;

	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_int_equal(pl_state_task_put(s, "UPID:pve1:00000001:00000002:00000005:qmstart:100:root@pam:", t, &err), 0);
	json_object_set_new(t, "status", json_string("OK"));
	assert_int_equal(pl_state_task_put(s, "UPID:pve1:00000001:00000002:00000005:qmstart:100:root@pam:", t, &err), 0);
	assert_int_equal(pl_state_tasks(s, 100, 10, &out, &err), 0);
	assert_int_equal(json_array_size(out), 1);
	assert_string_equal(pl_json_str(json_array_get(out, 0), "status"), "OK");
	json_decref(out);
	assert_int_equal(pl_state_tasks(s, 101, 10, &out, &err), 0);
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
	json_decref(t);
	pl_state_close(s);
}

/* The guests' counts (the cluster's answer) are read from migration 10's
 * index: the query pl_state_guest_counts runs, caught by a trace, is planned
 * on guests_counts. A query or index changed alone would walk every row's
 * JSON again (75 ms at 10,000 guests). */
static int
catch_sql(unsigned type, void *arg, void *p, void *x)
{
	char **sql = arg;
	char *text = sqlite3_expanded_sql(p);

	if (text && strstr(text, "FROM guests GROUP BY")) {
		free(*sql);
		*sql = pl_strdup(text);
	}
	sqlite3_free(text);
	return 0;
}

static int
plan_row(void *arg, int n, char **col, char **name)
{
	char **plan = arg;
	char *more = pl_asprintf("%s%s\n", *plan ? *plan : "", col[n - 1] ? col[n - 1] : "");

	free(*plan);
	*plan = more;
	return 0;
}

static void
test_guest_counts_use_their_index(void **state)
{
	struct pl_state *s;
	char *err = NULL, *sql = NULL, *plan = NULL, *explain;
	json_t *counts;

	assert_int_equal(pl_state_open(path, &s, &err), 0);
	sqlite3_trace_v2(s->db, SQLITE_TRACE_STMT, catch_sql, &sql);
	assert_int_equal(pl_state_guest_counts(s, &counts, &err), 0);
	json_decref(counts);
	sqlite3_trace_v2(s->db, 0, NULL, NULL);
	assert_non_null(sql);
	explain = pl_asprintf("EXPLAIN QUERY PLAN %s", sql);
	assert_int_equal(sqlite3_exec(s->db, explain, plan_row, &plan, NULL), SQLITE_OK);
	assert_non_null(plan);
	assert_non_null(strstr(plan, "USING INDEX guests_counts"));
	free(explain);
	free(plan);
	free(sql);
	pl_state_close(s);
}

/* Which project owns a storage: one owner each, recorded by the runs'
 * storage changes that succeeded and nothing else. */
static void
test_storage_owners(void **state)
{
	struct pl_state *s;
	json_t *owners, *e;
	char *err = NULL;

	(void)state;
	remove_db();
	assert_int_equal(pl_state_open(path, &s, &err), 0);
	assert_int_equal(pl_state_storage_owners(s, &owners, &err), 0);
	assert_int_equal(json_object_size(owners), 0);
	json_decref(owners);
	assert_int_equal(pl_state_storage_own(s, "nas", "lab", &err), 0);
	assert_int_equal(pl_state_storage_own(s, "nas", "other", &err), 0); /* replaced */
	e = json_pack("{s:s,s:s,s:s,s:s}", "action", "storage", "guest", "scratch", "class",
		      "create", "status", "ok");
	assert_int_equal(pl_runs_storage_done(s, "lab", e, &err), 0);
	json_object_set_new(e, "guest", json_string("failed"));
	json_object_set_new(e, "status", json_string("failed")); /* not made: not owned */
	assert_int_equal(pl_runs_storage_done(s, "lab", e, &err), 0);
	json_object_set_new(e, "action", json_string("pool")); /* a pool has its marker */
	json_object_set_new(e, "status", json_string("ok"));
	assert_int_equal(pl_runs_storage_done(s, "lab", e, &err), 0);
	assert_int_equal(pl_state_storage_owners(s, &owners, &err), 0);
	assert_int_equal(json_object_size(owners), 2);
	assert_string_equal(pl_json_str(owners, "nas"), "other");
	assert_string_equal(pl_json_str(owners, "scratch"), "lab");
	json_decref(owners);
	json_object_set_new(e, "action", json_string("storage"));
	json_object_set_new(e, "guest", json_string("scratch"));
	json_object_set_new(e, "class", json_string("delete"));
	assert_int_equal(pl_runs_storage_done(s, "lab", e, &err), 0);
	assert_int_equal(pl_state_storage_disown(s, "never-owned", &err), 0);
	assert_int_equal(pl_state_storage_owners(s, &owners, &err), 0);
	assert_int_equal(json_object_size(owners), 1);
	assert_null(json_object_get(owners, "scratch"));
	json_decref(owners);
	json_decref(e);
	pl_state_close(s);
	remove_db();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_migrate_reopen),
		cmocka_unit_test(test_migrate_history_check),
		cmocka_unit_test(test_state_path),
		cmocka_unit_test(test_local_dir),
		cmocka_unit_test(test_open_ro_never_writes),
		cmocka_unit_test(test_runs_and_lock),
		cmocka_unit_test(test_discovered),
		cmocka_unit_test(test_hash_ignores_volatile),
		cmocka_unit_test(test_sig_text),
		cmocka_unit_test(test_checkpoint),
		cmocka_unit_test(test_sync_history),
		cmocka_unit_test(test_read_overlay_and_filters),
		cmocka_unit_test(test_unread_guests),
		cmocka_unit_test(test_streamed_sync),
		cmocka_unit_test(test_tasks),
		cmocka_unit_test(test_unchanged_sync_writes_nothing),
		cmocka_unit_test(test_guest_counts_use_their_index),
		cmocka_unit_test(test_storage_owners),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
