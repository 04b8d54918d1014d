"""A real PostgreSQL 15 for the tests: initdb in a temporary directory owned
by an unprivileged user (nobody when the tests run as root), listening only on
a Unix socket in that directory, stopped and removed afterwards.

PVELAB_TEST_PG=1 makes conftest start one per pytest process and run every
pvelab command whose PVELAB_STATE names a file against a database of its own
instead (one database per file path), so the same e2e tests prove both
engines."""
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time

PGBIN = "/usr/lib/postgresql/15/bin"
ROLE = "pvelab"


def available():
    return os.path.exists(os.path.join(PGBIN, "postgres"))


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pvelab-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("nobody")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._as(["initdb", "-D", self.data, "-U", ROLE, "-A", "trust", "--no-sync",
                  "-E", "UTF8", "--locale=C"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = ''\nunix_socket_directories = '%s'\n"
                    "fsync = off\nmax_connections = 200\nlog_min_messages = fatal\n" % self.dir)
        # the superuser role without a password; pvuser (a test's) with one
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all pvuser scram-sha-256\nlocal all all trust\n")
        self._as(["pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                  "-t", "60", "start"])
        self.dbs = {}

    def _as(self, argv):
        def drop():
            if self.user:
                os.setgid(self.user.pw_gid)
                os.setuid(self.user.pw_uid)
        subprocess.run([os.path.join(PGBIN, argv[0]), *argv[1:]], check=True,
                       capture_output=True, preexec_fn=drop, cwd=self.dir, timeout=120)

    def conninfo(self, db="postgres", user=ROLE):
        return f"host={self.dir} dbname={db} user={user}"

    def url(self, db="postgres", user=ROLE):
        return f"postgresql:///{db}?host={self.dir}&user={user}"

    def psql(self, sql, db="postgres"):
        """Run SQL through psql as the superuser role; returns its output."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", self.dir, "-U", ROLE, "-d", db, "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return r.stdout.strip()

    def createdb(self, name):
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def db_for(self, path):
        """The database that stands for the SQLite file path (made once)."""
        key = os.path.abspath(str(path))
        if key not in self.dbs:
            name = "t_" + hashlib.sha256(key.encode()).hexdigest()[:16]
            self.dbs[key] = self.createdb(name)
        return self.dbs[key]

    def shown(self, path):
        """How pvelab names the database that stands for path (no password)."""
        db = self.db_for(path).split("///", 1)[1].split("?", 1)[0]
        return f"postgresql://{ROLE}@{self.dir}/{db}"

    def stop(self):
        try:
            self._as(["pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(cond, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
