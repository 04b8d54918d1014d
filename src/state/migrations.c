/*
 * The numbered schema migrations of the state store. Migration N brings
 * PRAGMA user_version from N-1 to N; never edit one that has shipped, add one.
 * Every table of the store is created here, and only src/state/ reads or
 * writes them. PostgreSQL runs the same text with its types (pl_state_pg_ddl)
 * but where pg_only says otherwise.
 */
#include "core/common.h"
#include "state/migrations.h"
#include "core/err.h"

static const char *const migrations[] = {
	/* 1: the cluster as last seen, runs and history. */
	"CREATE TABLE runs ("
	"  id INTEGER PRIMARY KEY,"
	"  kind TEXT NOT NULL,"
	"  started REAL NOT NULL,"
	"  finished REAL,"
	"  status TEXT NOT NULL DEFAULT 'running',"
	"  summary TEXT);"
	"CREATE TABLE nodes ("
	"  node TEXT PRIMARY KEY,"
	"  status TEXT,"
	"  json TEXT NOT NULL,"
	"  run_id INTEGER REFERENCES runs(id));"
	"CREATE TABLE guests ("
	"  vmid INTEGER PRIMARY KEY,"
	"  type TEXT NOT NULL CHECK (type IN ('qemu','lxc')),"
	"  node TEXT NOT NULL,"
	"  name TEXT,"
	"  status TEXT,"
	"  tags TEXT,"
	"  template INTEGER NOT NULL DEFAULT 0,"
	"  sha256 TEXT NOT NULL,"
	"  json TEXT NOT NULL,"
	"  run_id INTEGER REFERENCES runs(id));"
	"CREATE INDEX guests_name ON guests(name);"
	"CREATE TABLE storages ("
	"  node TEXT NOT NULL,"
	"  storage TEXT NOT NULL,"
	"  json TEXT NOT NULL,"
	"  PRIMARY KEY (node, storage));"
	"CREATE TABLE bridges ("
	"  node TEXT NOT NULL,"
	"  iface TEXT NOT NULL,"
	"  json TEXT NOT NULL,"
	"  PRIMARY KEY (node, iface));"
	"CREATE TABLE tasks ("
	"  upid TEXT PRIMARY KEY,"
	"  node TEXT,"
	"  type TEXT,"
	"  vmid INTEGER,"
	"  user TEXT,"
	"  starttime INTEGER,"
	"  endtime INTEGER,"
	"  status TEXT,"
	"  json TEXT NOT NULL);"
	"CREATE INDEX tasks_vmid ON tasks(vmid, starttime);"
	"CREATE TABLE history ("
	"  id INTEGER PRIMARY KEY,"
	"  guest TEXT NOT NULL,"
	"  vmid INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('discovered','created','updated','deleted')),"
	"  sha256 TEXT NOT NULL,"
	"  run_id INTEGER REFERENCES runs(id),"
	"  ts REAL NOT NULL,"
	"  json TEXT NOT NULL);"
	"CREATE INDEX history_vmid ON history(vmid, id);",
	/* 2: a guest's volatile counters apart, so an unchanged guest costs a
	 * small update instead of a rewrite of its whole config. */
	"ALTER TABLE guests ADD COLUMN live TEXT;",
	/* 3: history's kind check spelled with ORs: SQLite evaluates an IN list of
	 * four by building a temporary index, on every insert. */
	"CREATE TABLE history_new ("
	"  id INTEGER PRIMARY KEY,"
	"  guest TEXT NOT NULL,"
	"  vmid INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind = 'discovered' OR kind = 'created' OR"
	"                            kind = 'updated' OR kind = 'deleted'),"
	"  sha256 TEXT NOT NULL,"
	"  run_id INTEGER REFERENCES runs(id),"
	"  ts REAL NOT NULL,"
	"  json TEXT NOT NULL);"
	"INSERT INTO history_new SELECT id, guest, vmid, kind, sha256, run_id, ts, json "
	"FROM history;"
	"DROP TABLE history;"
	"ALTER TABLE history_new RENAME TO history;"
	"CREATE INDEX history_vmid ON history(vmid, id);",
	/* 4: the project (config) a run belongs to: guests are owned per project. */
	"ALTER TABLE runs ADD COLUMN project TEXT;",
	/* 5: who runs a run (pid, host, process start time: a pid reused after a
	 * crash is not the same process), and the one-apply-per-cluster lock
	 * (plan/runs.c), which dies with its holder. */
	"ALTER TABLE runs ADD COLUMN pid INTEGER;"
	"ALTER TABLE runs ADD COLUMN host TEXT;"
	"ALTER TABLE runs ADD COLUMN pstart INTEGER;"
	"CREATE TABLE apply_lock ("
	"  name TEXT PRIMARY KEY,"
	"  pid INTEGER NOT NULL,"
	"  host TEXT NOT NULL,"
	"  pstart INTEGER NOT NULL,"
	"  started REAL NOT NULL,"
	"  run_id INTEGER);",
	/* 6: hosts found by discovery (discover --save). Before this migration
	 * discover created the table itself, with this schema: a store that has
	 * it keeps its rows. */
	"CREATE TABLE IF NOT EXISTS discovered_hosts ("
	"  address TEXT PRIMARY KEY,"
	"  kind TEXT NOT NULL,"
	"  first_seen INTEGER NOT NULL," /* unix seconds */
	"  last_seen INTEGER NOT NULL,"
	"  present INTEGER NOT NULL DEFAULT 1," /* 0 once a scan of its range missed it */
	"  record TEXT NOT NULL);",             /* the host record as JSON */
	/* 7: API tokens of pvelab serve: a SHA-256 of the secret, never the
	 * secret; a revoked token keeps its row (and its name) for the record. */
	"CREATE TABLE api_tokens ("
	"  name TEXT PRIMARY KEY,"
	"  role TEXT NOT NULL CHECK (role = 'viewer' OR role = 'operator' OR role = 'admin'),"
	"  sha256 TEXT NOT NULL UNIQUE,"
	"  created REAL NOT NULL,"
	"  expires REAL," /* unix seconds; NULL: never */
	"  revoked REAL);",
	/* 8: health checks' state changes (pvelab serve), with the result that
	 * made each one: the evidence (status code, error, latency, expiry); */
	"CREATE TABLE check_events ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  ts REAL NOT NULL,"
	"  status_from TEXT,"
	"  status_to TEXT NOT NULL,"
	"  json TEXT NOT NULL);"
	"CREATE INDEX check_events_name ON check_events(name, id);"
	/* and silences (pvelab silence): notices of the checks a pattern
	 * matches are held until a time. */
	"CREATE TABLE check_silences ("
	"  id INTEGER PRIMARY KEY,"
	"  pattern TEXT NOT NULL,"
	"  created REAL NOT NULL,"
	"  until REAL NOT NULL,"
	"  reason TEXT);",
	/* 9: SSH host keys trusted on first use (state/ssh.c: one key per host
	 * and port; another one presented later is refused), and the stacks
	 * as last deployed in each guest (their hash, and per file its hash and,
	 * for files that hold no secret, its text for the plan's diff). */
	"CREATE TABLE ssh_known_hosts ("
	"  host TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  keytype TEXT NOT NULL,"
	"  fingerprint TEXT NOT NULL," /* SHA256:<base64> */
	"  first_seen REAL NOT NULL,"
	"  last_seen REAL NOT NULL,"
	"  PRIMARY KEY (host, port));"
	"CREATE TABLE stack_deploys ("
	"  vmid INTEGER NOT NULL,"
	"  stack TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  files TEXT NOT NULL," /* JSON {"path": {"sha256", "mode", "text"?}} */
	"  deployed REAL NOT NULL,"
	"  PRIMARY KEY (vmid, stack));",
	/* 10: the guests' counts by type, state and whether the last sync
	 * missed them (pl_state_guest_counts, the cluster's answer) read from
	 * an index instead of parsing every row's live JSON: 75 ms for 10,000
	 * guests, 1 ms with it. The expression is the query's, to the letter. */
	"CREATE INDEX guests_counts ON guests(type, status, "
	"json_extract(live, '$._unseen') IS NOT NULL);",
	/* 11: the storages each project owns (storage_owners.c): storage.cfg
	 * has no comment to carry a [pvelab:<project>] marker, so the project
	 * whose apply created a storage, or whose import adopted it, is kept
	 * here, and destroy removes only those. One owner per storage. */
	"CREATE TABLE storage_owners ("
	"  storage TEXT NOT NULL,"
	"  project TEXT NOT NULL,"
	"  since REAL NOT NULL,"
	"  PRIMARY KEY (storage));",
};

/* Where PostgreSQL must differ: migration 3 rebuilt SQLite's history table
 * for its CHECK; PostgreSQL's table was made right by migration 1 (its
 * identity column would not follow rows copied in). Migration 10's index
 * is on an expression each engine spells its own way. */
static const char *
pg_only(int n)
{
	switch (n) {
	case 3:
		return "SELECT 1";
	case 10: /* the same index in PostgreSQL's JSON spelling */
		return "CREATE INDEX guests_counts ON guests(type, status, "
		       "(live::jsonb->'_unseen' IS NOT NULL))";
	default:
		return NULL;
	}
}

/* text with every from as to (new string). */
static char *
replace_all(const char *text, const char *from, const char *to)
{
	size_t nf = strlen(from), nt = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = text; (p = strstr(p, from)) != NULL; p += nf)
		n++;
	out = o = pl_malloc(strlen(text) + n * nt + 1);
	for (p = text; *p;) {
		if (!strncmp(p, from, nf)) {
			memcpy(o, to, nt);
			o += nt;
			p += nf;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

char *
pl_state_migration_pg(int n)
{
	static const char *const types[][2] = {
		{ "id INTEGER PRIMARY KEY",
		  "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" },
		{ " INTEGER", " BIGINT" },
		{ " REAL", " DOUBLE PRECISION" },
		{ "  user TEXT", "  \"user\" TEXT" },
	};
	const char *src = pg_only(n) ? pg_only(n) : pl_state_migration(n);
	char *out, *next;

	if (src == NULL)
		return NULL;
	out = pl_strdup(src);
	for (size_t i = 0; i < PL_ARRAY_LEN(types); i++) {
		next = replace_all(out, types[i][0], types[i][1]);
		free(out);
		out = next;
	}
	return out;
}

int
pl_state_migration_count(void)
{
	return (int)PL_ARRAY_LEN(migrations);
}

const char *
pl_state_migration(int n)
{
	if (n < 1 || n > (int)PL_ARRAY_LEN(migrations))
		return NULL;
	return migrations[n - 1];
}
