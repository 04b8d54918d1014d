/*
 * The directory backend of the host reader: a saved tree (--root DIR) or this
 * host itself (--local, root "/"). Paths resolve inside the root, symlinks
 * included (openat2 RESOLVE_IN_ROOT), so a tree someone sent cannot make
 * pvelab read outside it.
 */
#include "core/common.h"
#include "host/reader.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *const pl_host_commands[] = {
	"proxmox-boot-tool status",
	"dmesg",
	"update-grub",
	"proxmox-boot-tool refresh",
	"update-initramfs -u -k all",
	"apt-get update",
	"ifreload -a",
	"systemctl restart chrony",
	"sshd -t",
	"systemctl reload ssh",
	NULL,
};

struct dir_impl {
	int rootfd;
	char *root;
	bool live;
};

bool
pl_host_path_ok(const char *path)
{
	if (path[0] != '/')
		return false;
	for (const char *p = path; *p; p++)
		if (p[0] == '/' && p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))
			return false;
	return true;
}

static int
open_in(struct dir_impl *d, const char *path, int flags, char **errmsg)
{
	struct open_how how = { .flags = (unsigned long long)(flags | O_CLOEXEC),
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	const char *rel = path + strspn(path, "/");
	int fd;

	if (!pl_host_path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path inside the host",
				 path);
	fd = (int)syscall(SYS_openat2, d->rootfd, *rel ? rel : ".", &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		fd = openat(d->rootfd, *rel ? rel : ".", flags | O_CLOEXEC);
	if (fd < 0)
		return pl_seterr(errmsg, errno == ENOENT || errno == ENOTDIR ? PL_ENOENT : PL_EIO,
				 "cannot open '%s' in %s: %s", path, d->root, strerror(errno));
	return fd;
}

static int
dir_read(void *impl, const char *path, size_t max, struct pl_buf *out, char **errmsg)
{
	char chunk[8192];
	size_t got = 0;
	ssize_t n;
	int fd = open_in(impl, path, O_RDONLY, errmsg), r = 0;

	if (fd < 0)
		return fd;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = pl_seterr(errmsg, PL_EIO, "cannot read '%s': %s", path,
				      strerror(errno));
			break;
		}
		if (got + (size_t)n > max || pl_buf_add(out, chunk, (size_t)n) != 0) {
			r = pl_seterr(errmsg, PL_ETOOBIG, "'%s' is larger than %zu bytes", path,
				      max);
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	return r;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
dir_list(void *impl, const char *path, char ***names, size_t *n, char **errmsg)
{
	int fd = open_in(impl, path, O_RDONLY | O_DIRECTORY, errmsg);
	size_t cap = 0;
	struct dirent *e;
	DIR *dir;

	*names = NULL;
	*n = 0;
	if (fd < 0)
		return fd;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return pl_seterr(errmsg, PL_EIO, "cannot list '%s': %s", path, strerror(errno));
	}
	while ((e = readdir(dir)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (*n == 4096) /* no real host directory we read holds more */
			break;
		if (*n == cap) {
			cap = cap ? 2 * cap : 32;
			*names = pl_realloc(*names, cap * sizeof(**names));
		}
		(*names)[(*n)++] = pl_strdup(e->d_name);
	}
	closedir(dir);
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_names);
	return 0;
}

static int
dir_readlink(void *impl, const char *path, char **target, char **errmsg)
{
	struct dir_impl *d = impl;
	char *parent = pl_path_dirname(path), buf[4096];
	const char *base = strrchr(path, '/') + 1;
	int fd = open_in(d, parent, O_PATH | O_DIRECTORY, errmsg);
	ssize_t len;

	free(parent);
	if (fd < 0)
		return fd;
	len = readlinkat(fd, base, buf, sizeof(buf) - 1);
	close(fd);
	if (len < 0)
		return pl_seterr(errmsg, errno == ENOENT ? PL_ENOENT : PL_EIO,
				 "cannot read the link '%s': %s", path, strerror(errno));
	buf[len] = '\0';
	*target = pl_strdup(buf);
	return 0;
}

/* Run argv with no shell, stdout into out (capped), for at most 10 seconds
 * (strict: 10 minutes, and exiting non-zero is an error). */
static int
run_live(char *const argv[], bool strict, struct pl_buf *out, char **errmsg)
{
	posix_spawn_file_actions_t fa;
	struct timespec t0, now;
	char chunk[8192];
	int p[2], r, status;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return pl_seterr(errmsg, PL_EIO, "cannot make a pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (r != 0) {
		close(p[0]);
		return pl_seterr(errmsg, PL_ENOENT, "cannot run %s: %s", argv[0], strerror(r));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = 0;
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = 10000 -
		       ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0) {
			r = pl_seterr(errmsg, PL_ETIMEOUT, "%s did not finish in time", argv[0]);
			break;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			r = pl_seterr(errmsg, PL_EIO, "poll: %s", strerror(errno));
			break;
		}
		if ((n = read(p[0], chunk, sizeof(chunk))) == 0)
			break;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			r = pl_seterr(errmsg, PL_EIO, "reading %s: %s", argv[0], strerror(errno));
			break;
		}
		if (out->len + (size_t)n > PL_HOST_READ_MAX || pl_buf_add(out, chunk, (size_t)n)) {
			r = pl_seterr(errmsg, PL_ETOOBIG, "%s printed more than %zu bytes", argv[0],
				      PL_HOST_READ_MAX);
			break;
		}
	}
	close(p[0]);
	if (r != 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == 0 && strict && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		r = pl_seterr(errmsg, PL_EIO, "%s failed (exit status %d)", argv[0],
			      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return r;
}

static int
dir_run(void *impl, const char *cmd, struct pl_buf *out, char **errmsg)
{
	struct dir_impl *d = impl;
	char *saved, *copy, *argv[8];
	size_t i, n = 0;
	int r;

	for (i = 0; pl_host_commands[i]; i++)
		if (!strcmp(pl_host_commands[i], cmd))
			break;
	if (pl_host_commands[i] == NULL)
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not a command pvelab runs", cmd);
	if (!d->live && i >= PL_HOST_FIRST_CHANGE)
		return pl_seterr(errmsg, PL_EPERM, "'%s' changes the node: not run on a saved tree",
				 cmd);
	if (!d->live) {
		saved = pl_asprintf("/.pvelab-cmd/%s", cmd);
		for (char *p = saved; *p; p++)
			if (*p == ' ')
				*p = '-';
		r = dir_read(d, saved, PL_HOST_READ_MAX, out, errmsg);
		free(saved);
		return r;
	}
	copy = pl_strdup(cmd);
	for (char *tok = copy, *sp; tok && n < PL_ARRAY_LEN(argv) - 1; tok = sp) {
		if ((sp = strchr(tok, ' ')) != NULL)
			*sp++ = '\0';
		argv[n++] = tok;
	}
	argv[n] = NULL;
	r = run_live(argv, i >= PL_HOST_FIRST_CHANGE, out, errmsg);
	free(copy);
	return r;
}

static int
dir_write(void *impl, const char *path, const void *data, size_t len, mode_t mode,
	  const char *backup_suffix, char **errmsg)
{
	struct dir_impl *d = impl;
	struct pl_buf old;
	struct stat st;
	char *full, *bak = NULL;
	int r;

	if (!pl_host_path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path inside the host",
				 path);
	full = strcmp(d->root, "/") ? pl_asprintf("%s%s", d->root, path) : pl_strdup(path);
	pl_buf_init(&old, PL_HOST_READ_MAX);
	if (lstat(full, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			r = pl_seterr(errmsg, PL_EPERM, "'%s' is not a regular file: not replaced",
				      full);
			goto out;
		}
		mode = st.st_mode & 07777;
		if ((r = dir_read(d, path, PL_HOST_READ_MAX, &old, errmsg)) != 0)
			goto out;
		bak = pl_asprintf("%s%s", full, backup_suffix);
		if ((r = pl_file_write_atomic(bak, old.data, old.len, mode, errmsg)) != 0)
			goto out;
	} else {
		char *dir = pl_path_dirname(full);

		r = pl_mkdir_p(dir, 0755, errmsg);
		free(dir);
		if (r != 0)
			goto out;
	}
	r = pl_file_write_atomic(full, data, len, mode, errmsg);
out:
	pl_buf_release(&old);
	free(bak);
	free(full);
	return r;
}

static void
dir_free(void *impl)
{
	struct dir_impl *d = impl;

	if (d == NULL)
		return;
	if (d->rootfd >= 0)
		close(d->rootfd);
	free(d->root);
	free(d);
}

static const struct pl_host_reader_ops dir_ops = {
	.read = dir_read,
	.list = dir_list,
	.readlink = dir_readlink,
	.run = dir_run,
	.write = dir_write,
	.free = dir_free,
};

int
pl_host_reader_dir(struct pl_host_reader *r, const char *root, bool live, char **errmsg)
{
	struct dir_impl *d = pl_calloc(1, sizeof(*d));
	size_t len = strlen(root);

	while (len > 1 && root[len - 1] == '/')
		len--;
	d->root = pl_strndup(root, len);
	d->live = live;
	d->rootfd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->rootfd < 0) {
		int e = errno;

		dir_free(d);
		return pl_seterr(errmsg, e == ENOENT ? PL_ENOENT : PL_EIO,
				 "cannot open the host tree '%s': %s", root, strerror(e));
	}
	r->ops = &dir_ops;
	r->impl = d;
	r->runs = live;
	r->where =
		strcmp(d->root, "/") ? pl_asprintf("--root %s", d->root) : pl_strdup("this host");
	return 0;
}

void
pl_host_reader_release(struct pl_host_reader *r)
{
	if (r == NULL || r->ops == NULL)
		return;
	r->ops->free(r->impl);
	free(r->where);
	memset(r, 0, sizeof(*r));
}

void
pl_host_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int
pl_host_read(struct pl_host_reader *r, const char *path, size_t max, struct pl_buf *out,
	     char **errmsg)
{
	return r->ops->read(r->impl, path, max, out, errmsg);
}

int
pl_host_list(struct pl_host_reader *r, const char *path, char ***names, size_t *n, char **errmsg)
{
	return r->ops->list(r->impl, path, names, n, errmsg);
}

int
pl_host_readlink(struct pl_host_reader *r, const char *path, char **target, char **errmsg)
{
	return r->ops->readlink(r->impl, path, target, errmsg);
}

int
pl_host_run(struct pl_host_reader *r, const char *cmd, struct pl_buf *out, char **errmsg)
{
	return r->ops->run(r->impl, cmd, out, errmsg);
}
