/*
 * Capped reads, atomic writes and secret-file checks (see file.h).
 */
#include "core/common.h"
#include "core/file.h"
#include "core/buf.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int
pl_file_read(const char *path, struct pl_buf *b, char **errmsg)
{
	char chunk[65536];
	ssize_t n;
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return pl_seterr(errmsg, errno == ENOENT ? PL_ENOENT : PL_EIO,
				 "cannot open '%s': %s", path, strerror(errno));
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = pl_seterr(errmsg, PL_EIO, "cannot read '%s': %s", path, strerror(errno));
			goto out;
		}
		if (pl_buf_add(b, chunk, (size_t)n) != 0) {
			r = pl_seterr(errmsg, PL_ETOOBIG, "'%s' is larger than %zu bytes", path,
				      b->max);
			goto out;
		}
	}
out:
	close(fd);
	explicit_bzero(chunk, sizeof(chunk)); /* the file may be a secret */
	return r;
}

int
pl_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		     char **errmsg)
{
	/* A fresh name made with O_EXCL beside the target: a name known in
	 * advance could be a symlink planted to make us write elsewhere. */
	char *tmp = pl_asprintf("%s.tmp.XXXXXX", path);
	char *dir = pl_path_dirname(path);
	const char *p = data;
	int fd, dfd, r = 0;

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = pl_seterr(errmsg, PL_EIO, "cannot create a temporary file beside '%s': %s", path,
			      strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) != 0)
		r = pl_seterr(errmsg, PL_EIO, "cannot chmod '%s': %s", tmp, strerror(errno));
	while (r == 0 && len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = pl_seterr(errmsg, PL_EIO, "cannot write '%s': %s", tmp,
				      strerror(errno));
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (r == 0 && fsync(fd) != 0)
		r = pl_seterr(errmsg, PL_EIO, "cannot sync '%s': %s", tmp, strerror(errno));
	close(fd);
	if (r == 0 && rename(tmp, path) != 0)
		r = pl_seterr(errmsg, PL_EIO, "cannot rename '%s' to '%s': %s", tmp, path,
			      strerror(errno));
	if (r != 0)
		unlink(tmp);
	/* the rename itself survives a crash once the directory is synced */
	if (r == 0 && (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
out:
	free(tmp);
	free(dir);
	return r;
}

int
pl_file_read_secret(const char *path, char **secret, char **errmsg)
{
	struct pl_buf b;
	struct stat st;
	char chunk[4096];
	ssize_t n;
	int fd, r = 0;

	*secret = NULL;
	/* The mode is checked on the file that was opened (fstat), not on
	 * whatever the path named a moment before (stat, then open). */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return pl_seterr(errmsg, errno == ENOENT ? PL_ENOENT : PL_EIO,
				 "cannot read secret file '%s': %s", path, strerror(errno));
	pl_buf_init(&b, 1 << 16);
	if (fstat(fd, &st) != 0) {
		r = pl_seterr(errmsg, PL_EIO, "cannot read secret file '%s': %s", path,
			      strerror(errno));
		goto out;
	}
	if (st.st_mode & 077) {
		r = pl_seterr(errmsg, PL_EPERM,
			      "secret file '%s' is accessible by group or others (mode %04o; "
			      "run: chmod 600 '%s')",
			      path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	/* A buffer sized for the file: no growing realloc leaves a copy of the
	 * secret behind; the chunk read through is wiped too. */
	if (st.st_size > 0 && (size_t)st.st_size <= b.max)
		pl_buf_grow(&b, (size_t)st.st_size);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = pl_seterr(errmsg, PL_EIO, "cannot read '%s': %s", path,
				      strerror(errno));
			goto out;
		}
		if (pl_buf_add(&b, chunk, (size_t)n) != 0) {
			r = pl_seterr(errmsg, PL_ETOOBIG, "'%s' is larger than %zu bytes", path,
				      b.max);
			goto out;
		}
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	*secret = pl_buf_detach(&b, NULL);
out:
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	if (r != 0) {
		explicit_bzero(b.data, b.len);
		pl_buf_release(&b);
	}
	return r;
}

int
pl_mkdir_p(const char *path, mode_t mode, char **errmsg)
{
	char *p = pl_strdup(path);
	int r = 0;

	for (char *s = p + 1;; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			r = pl_seterr(errmsg, PL_EIO, "cannot create directory '%s': %s", p,
				      strerror(errno));
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return r;
}

char *
pl_path_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return pl_strdup(".");
	if (slash == path)
		return pl_strdup("/");
	return pl_strndup(path, (size_t)(slash - path));
}

char *
pl_path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir);

	if (n && dir[n - 1] == '/')
		return pl_asprintf("%s%s", dir, name);
	return pl_asprintf("%s/%s", dir, name);
}

char *
pl_xdg_dir(const char *var, const char *fallback)
{
	const char *v = getenv(var), *home = getenv("HOME");

	if (v && v[0] == '/') /* the spec: a relative value is ignored */
		return pl_strdup(v);
	if (home && home[0] == '/')
		return pl_path_join(home, fallback);
	return NULL;
}
