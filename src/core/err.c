/*
 * Error codes and their messages, the caller-freed detail message helpers,
 * and the aborting allocation wrappers.
 */
#include "core/common.h"
#include "core/err.h"

const char *
pl_strerror(int err)
{
	switch (err) {
	case PL_OK: return "success";
	case PL_ENOMEM: return "out of memory";
	case PL_EINVAL: return "invalid value";
	case PL_EIO: return "input/output error";
	case PL_ENOENT: return "not found";
	case PL_EPARSE: return "malformed input";
	case PL_ETOOBIG: return "too large";
	case PL_EPERM: return "permission denied";
	case PL_EAUTH: return "authentication failed";
	case PL_ECONNECT: return "cannot connect";
	case PL_ETLS: return "TLS error";
	case PL_ETIMEOUT: return "timed out";
	case PL_EHTTP: return "HTTP error";
	case PL_ECONFLICT: return "conflict";
	case PL_EUSAGE: return "usage error";
	case PL_EDB: return "state database error";
	case PL_ETASK: return "task failed";
	case PL_ECANCEL: return "cancelled";
	}
	return "unknown error";
}

static char *vfmt(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static char *
vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;

	if (vasprintf(&s, fmt, ap) < 0)
		pl_die("out of memory");
	return s;
}

int
pl_seterr(char **errmsg, int err, const char *fmt, ...)
{
	va_list ap;

	if (errmsg == NULL)
		return err;
	va_start(ap, fmt);
	free(*errmsg);
	*errmsg = vfmt(fmt, ap);
	va_end(ap);
	return err;
}

int
pl_preferr(char **errmsg, int err, const char *fmt, ...)
{
	va_list ap;
	char *prefix, *joined;

	if (errmsg == NULL)
		return err;
	va_start(ap, fmt);
	prefix = vfmt(fmt, ap);
	va_end(ap);
	joined = pl_asprintf("%s: %s", prefix, *errmsg ? *errmsg : pl_strerror(err));
	free(prefix);
	free(*errmsg);
	*errmsg = joined;
	return err;
}

_Noreturn void
pl_die(const char *fmt, ...)
{
	va_list ap;

	fputs("pvelab: fatal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void *
pl_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		pl_die("out of memory");
	return p;
}

void *
pl_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		pl_die("out of memory");
	return p;
}

void *
pl_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		pl_die("out of memory");
	return p;
}

char *
pl_strdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		pl_die("out of memory");
	return d;
}

char *
pl_strndup(const char *s, size_t n)
{
	char *d = strndup(s, n);

	if (d == NULL)
		pl_die("out of memory");
	return d;
}

char *
pl_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = vfmt(fmt, ap);
	va_end(ap);
	return s;
}

void
pl_free_secret(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}
