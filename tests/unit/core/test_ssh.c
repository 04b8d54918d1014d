/* Unit tests for core/ssh.c and state/ssh_stacks.c's trust on first use,
 * against real OpenSSH servers this test starts on loopback (own host keys,
 * a throwaway user key, StrictModes off): commands, caps, deadlines, atomic
 * writes with modes, capped reads, a changed host key, an unreachable host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "core/file.h"
#include "core/ssh.h"
#include "state/state.h"

#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/pl-ssh-XXXXXX";
static struct pl_state *store;
static pid_t sshd1 = -1, sshd2 = -1;
static int port1, port2;
static char key[512];
static char fp1[256];

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int r;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	r = system(cmd);
	free(cmd);
	return r;
}

/* A listening socket on a free loopback port (the caller closes it). */
static int
listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &n) != 0)
		abort();
	*port = ntohs(a.sin_port);
	return fd;
}

/* Whether something answers with an SSH banner on port. */
static bool
greets(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char b[4] = "";
	bool ok;

	ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && read(fd, b, 4) == 4 &&
	     !memcmp(b, "SSH-", 4);
	close(fd);
	return ok;
}

static pid_t
start_sshd(const char *hostkey, int *port)
{
	char *cfg = pl_asprintf("%s/sshd_%s.conf", dir, hostkey), *log;
	long long deadline;
	pid_t pid;
	int fd = listener(port);

	close(fd);
	sh("printf 'Port %d\\nListenAddress 127.0.0.1\\nHostKey %s/%s\\n"
	   "AuthorizedKeysFile %s/authorized_keys\\nStrictModes no\\nUsePAM no\\n"
	   "PasswordAuthentication no\\nKbdInteractiveAuthentication no\\n"
	   "PidFile none\\nLogLevel ERROR\\n' > %s",
	   *port, dir, hostkey, dir, cfg);
	log = pl_asprintf("%s/sshd_%s.log", dir, hostkey);
	mkdir("/run/sshd", 0755);
	if ((pid = fork()) == 0) {
		freopen(log, "w", stderr);
		execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", cfg, (char *)NULL);
		_exit(127);
	}
	free(cfg);
	free(log);
	for (deadline = now_ms() + 10000; now_ms() < deadline; usleep(20000))
		if (greets(*port))
			return pid;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return -1;
}

static int
setup(void **state)
{
	char *db;

	if (access("/usr/sbin/sshd", X_OK) != 0 || !mkdtemp(dir))
		return -1;
	if (sh("cd %s && ssh-keygen -q -t ed25519 -N '' -f host1 && "
	       "ssh-keygen -q -t ed25519 -N '' -f host2 && ssh-keygen -q -t ed25519 -N '' -f user "
	       "&& "
	       "cp user.pub authorized_keys",
	       dir) != 0)
		return -1;
	snprintf(key, sizeof key, "%s/user", dir);
	db = pl_asprintf("%s/state.db", dir);
	if (pl_state_open(db, &store, NULL) != 0)
		return -1;
	free(db);
	sshd1 = start_sshd("host1", &port1);
	sshd2 = start_sshd("host2", &port2);
	return sshd1 > 0 && sshd2 > 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	for (int i = 0; i < 2; i++) {
		pid_t p = i ? sshd2 : sshd1;

		if (p > 0) {
			kill(p, SIGTERM);
			waitpid(p, NULL, 0);
		}
	}
	pl_state_close(store);
	return sh("rm -rf '%s'", dir) == 0 ? 0 : -1;
}

/* pl_state_ssh_trust, noting the fingerprint it was shown. */
static int
trust(void *ctx, const char *host, int port, const char *type, const char *fp, char **errmsg)
{
	snprintf(fp1, sizeof fp1, "%s", fp);
	return pl_state_ssh_trust(store, host, port, type, fp, errmsg);
}

static struct pl_ssh *
connect_to(int port)
{
	struct pl_ssh_opts o = { .host = "127.0.0.1",
				 .port = port,
				 .identity = key,
				 .timeout_ms = 5000,
				 .check_hostkey = trust };
	struct pl_ssh *s = NULL;
	char *err = NULL;
	int r = pl_ssh_connect(&o, &s, &err);

	if (r != 0)
		fprintf(stderr, "connect: %s\n", err);
	assert_int_equal(r, 0);
	free(err);
	return s;
}

static void
test_run(void **state)
{
	struct pl_ssh *s = connect_to(port1);
	struct pl_ssh_result res;
	struct pl_ssh_cmd c = { .cmd = "echo out; echo err >&2; exit 7" };

	assert_int_equal(pl_ssh_run(s, &c, &res, NULL), 0);
	assert_int_equal(res.status, 7);
	assert_string_equal(res.out.data, "out\n");
	assert_string_equal(res.err.data, "err\n");
	pl_ssh_result_release(&res);

	c = (struct pl_ssh_cmd){ .cmd = "tr a-z A-Z", .in = "hello", .in_len = 5 };
	assert_int_equal(pl_ssh_run(s, &c, &res, NULL), 0);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out.data, "HELLO");
	pl_ssh_result_release(&res);

	/* Output past the cap is counted out, not kept. */
	c = (struct pl_ssh_cmd){ .cmd = "head -c 200000 /dev/zero | tr '\\0' x", .max_out = 1000 };
	assert_int_equal(pl_ssh_run(s, &c, &res, NULL), 0);
	assert_int_equal(res.out.len, 1000);
	assert_true(res.out_cut);
	assert_false(res.err_cut);
	pl_ssh_result_release(&res);
	pl_ssh_free(s);
}

static void
test_deadline(void **state)
{
	struct pl_ssh *s = connect_to(port1);
	struct pl_ssh_result res;
	struct pl_ssh_cmd c = { .cmd = "sleep 30", .timeout_ms = 500 };
	long long t0 = now_ms();
	char *err = NULL;

	assert_int_equal(pl_ssh_run(s, &c, &res, &err), PL_ETIMEOUT);
	assert_true(now_ms() - t0 < 5000);
	assert_non_null(strstr(err, "did not end within 500 ms"));
	pl_ssh_result_release(&res);
	free(err);
	/* The connection still serves the next command. */
	c = (struct pl_ssh_cmd){ .cmd = "true" };
	assert_int_equal(pl_ssh_run(s, &c, &res, NULL), 0);
	assert_int_equal(res.status, 0);
	pl_ssh_result_release(&res);
	pl_ssh_free(s);
}

static void
test_files(void **state)
{
	struct pl_ssh *s = connect_to(port1);
	char *path = pl_asprintf("%s/deep/er/it's $HOME.txt", dir), *err = NULL, *parent;
	const char text[] = "a'b\"c\n$HOME `x`\n";
	struct pl_buf b;
	struct stat st;
	struct dirent *e;
	DIR *d;
	int n = 0;

	pl_buf_init(&b, 0);
	assert_int_equal(pl_ssh_write_file(s, path, text, sizeof text - 1, 0640, 0, NULL), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(pl_file_read(path, &b, NULL), 0);
	assert_string_equal(b.data, text);
	/* Overwritten in place, mode changed, no temporary file left beside it. */
	assert_int_equal(pl_ssh_write_file(s, path, "new", 3, 0600, 0, NULL), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	parent = pl_path_dirname(path);
	d = opendir(parent);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	free(parent);
	assert_int_equal(n, 1);

	assert_int_equal(pl_ssh_read_file(s, path, 3, &b, 0, NULL), 0);
	assert_string_equal(b.data, "new");
	assert_int_equal(pl_ssh_read_file(s, path, 2, &b, 0, &err), PL_ETOOBIG);
	free(err);
	err = NULL;
	free(path);
	path = pl_asprintf("%s/missing", dir);
	assert_int_equal(pl_ssh_read_file(s, path, 100, &b, 0, &err), PL_ENOENT);
	free(err);
	free(path);
	pl_buf_release(&b);
	pl_ssh_free(s);
}

/* A host key other than the one trusted on first use is refused, naming the
 * host and both fingerprints; the store keeps the first. */
static void
test_changed_hostkey(void **state)
{
	struct pl_ssh *s = connect_to(port1);
	struct pl_ssh_opts o = { .host = "127.0.0.1",
				 .port = port2,
				 .identity = key,
				 .timeout_ms = 5000,
				 .check_hostkey = trust };
	char first[256], *err = NULL;

	snprintf(first, sizeof first, "%s", fp1);
	pl_ssh_free(s);
	/* Record port 1's key as the one first seen on port 2. */
	assert_int_equal(pl_state_ssh_trust(store, "127.0.0.1", port2, "ssh-ed25519", first, NULL),
			 0);
	s = NULL;
	assert_int_equal(pl_ssh_connect(&o, &s, &err), PL_EPERM);
	assert_null(s);
	assert_non_null(strstr(err, "host key changed"));
	assert_non_null(strstr(err, first));
	assert_non_null(strstr(err, fp1));
	assert_string_not_equal(first, fp1);
	assert_non_null(strstr(err, "127.0.0.1:"));
	free(err);
	/* Forgotten on purpose, the new key is trusted. */
	assert_int_equal(pl_state_ssh_forget(store, "127.0.0.1", port2, NULL), 0);
	s = connect_to(port2);
	pl_ssh_free(s);
}

static void
test_key_file_mode(void **state)
{
	char *loose = pl_asprintf("%s/loose", dir), *err = NULL;
	struct pl_ssh_opts o = { .host = "127.0.0.1",
				 .port = port1,
				 .identity = loose,
				 .timeout_ms = 5000,
				 .check_hostkey = trust };
	struct pl_ssh *s = NULL;

	sh("cp %s %s && chmod 644 %s", key, loose, loose);
	assert_int_equal(pl_ssh_connect(&o, &s, &err), PL_EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	free(err);
	free(loose);
}

/* A port that accepts TCP but never speaks fails within its timeout; a
 * closed port at once. */
static void
test_unreachable(void **state)
{
	int port, fd = listener(&port);
	struct pl_ssh_opts o = { .host = "127.0.0.1",
				 .port = port,
				 .identity = key,
				 .timeout_ms = 700,
				 .check_hostkey = trust };
	struct pl_ssh *s = NULL;
	long long t0 = now_ms();
	char *err = NULL;
	int r = pl_ssh_connect(&o, &s, &err);

	assert_true(r == PL_ETIMEOUT || r == PL_ECONNECT);
	assert_true(now_ms() - t0 < 5000);
	assert_non_null(strstr(err, "timeout 700 ms"));
	free(err);
	err = NULL;
	close(fd);
	assert_int_equal(pl_ssh_connect(&o, &s, &err), PL_ECONNECT);
	free(err);
}

static void
test_quote(void **state)
{
	char *q = pl_ssh_quote("a'b c");

	assert_string_equal(q, "'a'\\''b c'");
	free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote),           cmocka_unit_test(test_run),
		cmocka_unit_test(test_deadline),        cmocka_unit_test(test_files),
		cmocka_unit_test(test_changed_hostkey), cmocka_unit_test(test_key_file_mode),
		cmocka_unit_test(test_unreachable),
	};

	if (access("/usr/sbin/sshd", X_OK) != 0) {
		printf("skipped: no /usr/sbin/sshd (openssh-server)\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
