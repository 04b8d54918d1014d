/*
 * The SSH backend of the host reader: the node's files and commands over
 * core/ssh.c (host key checked by the caller's function, trust on first use
 * in the state store). With a remote root (--root DIR) it reads a saved tree
 * on the far side, as the directory backend does here.
 */
#include "core/common.h"
#include "host/reader.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/ssh.h"

#define SSH_TIMEOUT_MS 30000

struct ssh_impl {
	struct pl_ssh *s;
	char *root; /* "" for the node's own / */
};

static bool
path_ok(const char *path)
{
	if (path[0] != '/')
		return false;
	for (const char *p = path; *p; p++)
		if (p[0] == '/' && p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))
			return false;
	return true;
}

static char *
full(struct ssh_impl *d, const char *path)
{
	return pl_asprintf("%s%s", d->root, path);
}

/* Run script with sh; its stdout into out (capped); 0 only on status 0,
 * PL_ENOENT on status 3. */
static int
sh(struct ssh_impl *d, const char *script, size_t max, int timeout_ms, struct pl_buf *out,
   char **errmsg)
{
	char *q = pl_ssh_quote(script), *cmd = pl_asprintf("sh -c %s", q);
	struct pl_ssh_cmd c = { .cmd = cmd, .timeout_ms = timeout_ms, .max_out = max + 1 };
	struct pl_ssh_result res;
	int r = pl_ssh_run(d->s, &c, &res, errmsg);

	if (r != 0)
		;
	else if (res.status == 3)
		r = pl_seterr(errmsg, PL_ENOENT, "ssh %s: not found", pl_ssh_peer(d->s));
	else if (res.status != 0)
		r = pl_seterr(errmsg, PL_EIO, "ssh %s: '%s' failed (status %d): %.200s",
			      pl_ssh_peer(d->s), script, res.status, res.err.data);
	else if (res.out.len > max || pl_buf_add(out, res.out.data, res.out.len) != 0)
		r = pl_seterr(errmsg, PL_ETOOBIG, "ssh %s: more than %zu bytes",
			      pl_ssh_peer(d->s), max);
	pl_ssh_result_release(&res);
	free(cmd);
	free(q);
	return r;
}

static int
ssh_read(void *impl, const char *path, size_t max, struct pl_buf *out, char **errmsg)
{
	struct ssh_impl *d = impl;
	struct pl_buf b;
	char *p;
	int r;

	if (!path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path", path);
	p = full(d, path);
	pl_buf_init(&b, max + 1);
	r = pl_ssh_read_file(d->s, p, max, &b, SSH_TIMEOUT_MS, errmsg);
	if (r == 0 && pl_buf_add(out, b.data, b.len) != 0)
		r = pl_seterr(errmsg, PL_ETOOBIG, "'%s' is too large", path);
	pl_buf_release(&b);
	free(p);
	return r;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
ssh_list(void *impl, const char *path, char ***names, size_t *n, char **errmsg)
{
	struct ssh_impl *d = impl;
	char *p, *q, *script;
	struct pl_buf out;
	size_t cap = 0;
	int r;

	*names = NULL;
	*n = 0;
	if (!path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path", path);
	p = full(d, path);
	q = pl_ssh_quote(*p ? p : "/");
	script = pl_asprintf("cd -- %s 2>/dev/null || exit 3; LC_ALL=C ls -1A", q);
	pl_buf_init(&out, 0);
	r = sh(d, script, PL_HOST_READ_MAX, SSH_TIMEOUT_MS, &out, errmsg);
	for (char *s = out.data, *nl; r == 0 && *s && *n < 4096; s = nl) {
		if ((nl = strchr(s, '\n')) != NULL)
			*nl++ = '\0';
		else
			nl = s + strlen(s);
		if (*n == cap)
			*names = pl_realloc(*names, (cap = cap ? 2 * cap : 32) * sizeof(**names));
		(*names)[(*n)++] = pl_strdup(s);
	}
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_names);
	pl_buf_release(&out);
	free(script), free(q), free(p);
	return r;
}

static int
ssh_readlink(void *impl, const char *path, char **target, char **errmsg)
{
	struct ssh_impl *d = impl;
	char *p, *q, *script;
	struct pl_buf out;
	int r;

	if (!path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path", path);
	p = full(d, path);
	q = pl_ssh_quote(p);
	script = pl_asprintf("readlink -- %s || exit 3", q);
	pl_buf_init(&out, 0);
	if ((r = sh(d, script, 4096, SSH_TIMEOUT_MS, &out, errmsg)) == 0) {
		out.data[strcspn(out.data, "\n")] = '\0';
		*target = pl_strdup(out.data);
	}
	pl_buf_release(&out);
	free(script), free(q), free(p);
	return r;
}

static int
ssh_runcmd(void *impl, const char *cmd, struct pl_buf *out, char **errmsg)
{
	struct ssh_impl *d = impl;
	char *saved;
	size_t i;
	int r;

	for (i = 0; pl_host_commands[i]; i++)
		if (!strcmp(pl_host_commands[i], cmd))
			break;
	if (pl_host_commands[i] == NULL)
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not a command pvelab runs", cmd);
	if (*d->root) {
		if (i >= PL_HOST_FIRST_CHANGE)
			return pl_seterr(errmsg, PL_EPERM,
					 "'%s' changes the node: not run on a saved tree", cmd);
		saved = pl_asprintf("/.pvelab-cmd/%s", cmd);
		for (char *p = saved; *p; p++)
			if (*p == ' ')
				*p = '-';
		r = ssh_read(d, saved, PL_HOST_READ_MAX, out, errmsg);
		free(saved);
		return r;
	}
	if (i < PL_HOST_FIRST_CHANGE) {
		/* a read: its output counts whatever its status */
		struct pl_ssh_cmd c = { .cmd = cmd, .timeout_ms = SSH_TIMEOUT_MS,
					.max_out = PL_HOST_READ_MAX };
		struct pl_ssh_result res;

		if ((r = pl_ssh_run(d->s, &c, &res, errmsg)) == 0 &&
		    pl_buf_add(out, res.out.data, res.out.len) != 0)
			r = pl_seterr(errmsg, PL_ETOOBIG, "%s: too much output", cmd);
		pl_ssh_result_release(&res);
		return r;
	}
	return sh(d, cmd, PL_HOST_READ_MAX, 600000, out, errmsg);
}

static int
ssh_write(void *impl, const char *path, const void *data, size_t len, mode_t mode,
	  const char *backup_suffix, char **errmsg)
{
	struct ssh_impl *d = impl;
	char *p, *q, *qb, *bak, *script;
	struct pl_buf out;
	int r;

	if (!path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path", path);
	p = full(d, path);
	bak = pl_asprintf("%s%s", p, backup_suffix);
	q = pl_ssh_quote(p);
	qb = pl_ssh_quote(bak);
	/* keep the old file (and its mode) beside it; refuse anything but a
	 * regular file */
	script = pl_asprintf("p=%s; if [ -L \"$p\" ] || { [ -e \"$p\" ] && [ ! -f \"$p\" ]; }; "
			     "then echo 'not a regular file' >&2; exit 1; fi; "
			     "if [ -e \"$p\" ]; then cp -p -- \"$p\" %s; fi",
			     q, qb);
	pl_buf_init(&out, 0);
	r = sh(d, script, 4096, SSH_TIMEOUT_MS, &out, errmsg);
	if (r == 0)
		r = pl_ssh_write_file(d->s, p, data, len, mode, SSH_TIMEOUT_MS, errmsg);
	pl_buf_release(&out);
	free(script), free(qb), free(q), free(bak), free(p);
	return r;
}

static void
ssh_free(void *impl)
{
	struct ssh_impl *d = impl;

	if (d == NULL)
		return;
	pl_ssh_free(d->s);
	free(d->root);
	free(d);
}

static const struct pl_host_reader_ops ssh_ops = {
	.read = ssh_read,
	.list = ssh_list,
	.readlink = ssh_readlink,
	.run = ssh_runcmd,
	.write = ssh_write,
	.free = ssh_free,
};

int
pl_host_reader_ssh(struct pl_host_reader *r, const struct pl_ssh_opts *o, const char *root,
		   char **errmsg)
{
	struct ssh_impl *d = pl_calloc(1, sizeof(*d));
	size_t len = root ? strlen(root) : 0;
	int rc;

	while (len && root[len - 1] == '/')
		len--;
	d->root = pl_strndup(root ? root : "", len);
	if ((rc = pl_ssh_connect(o, &d->s, errmsg)) != 0) {
		ssh_free(d);
		return rc;
	}
	r->ops = &ssh_ops;
	r->impl = d;
	r->runs = *d->root == '\0';
	r->where = *d->root ? pl_asprintf("ssh %s, --root %s", pl_ssh_peer(d->s), d->root)
			    : pl_asprintf("ssh %s", pl_ssh_peer(d->s));
	return 0;
}
