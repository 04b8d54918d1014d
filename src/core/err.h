/*
 * One error convention for all of pvelab: fallible functions return 0 or a
 * negative PL_E* code; detail for the user goes into an optional, caller-freed
 * message (char **errmsg), set with pl_seterr().
 */
#ifndef PL_CORE_ERR_H
#define PL_CORE_ERR_H

enum pl_err {
	PL_OK = 0,
	PL_ENOMEM = -1,    /* out of memory */
	PL_EINVAL = -2,    /* invalid argument or value */
	PL_EIO = -3,       /* I/O error */
	PL_ENOENT = -4,    /* not found */
	PL_EPARSE = -5,    /* malformed input */
	PL_ETOOBIG = -6,   /* over a size cap */
	PL_EPERM = -7,     /* permission denied / unsafe permissions */
	PL_EAUTH = -8,     /* authentication failed */
	PL_ECONNECT = -9,  /* cannot reach a peer */
	PL_ETLS = -10,     /* TLS or certificate failure */
	PL_ETIMEOUT = -11, /* timed out */
	PL_EHTTP = -12,    /* HTTP error status from a peer */
	PL_ECONFLICT = -13,/* conflicting state (locked, exists, changed) */
	PL_EUSAGE = -14,   /* command-line usage error */
	PL_EDB = -15,      /* state database error */
	PL_ETASK = -16,    /* a Proxmox task ended in error */
	PL_ECANCEL = -17,  /* cancelled */
};

/* Static text for an error code; never NULL. */
const char *pl_strerror(int err);

/* If errmsg is not NULL, replace *errmsg with a formatted message. Returns err. */
int pl_seterr(char **errmsg, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "<prefix>: <old>". Returns err. */
int pl_preferr(char **errmsg, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Abort with a message: for programmer errors and out-of-memory only. */
_Noreturn void pl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation wrappers that abort on out-of-memory. */
void *pl_malloc(size_t n);
void *pl_calloc(size_t n, size_t size);
void *pl_realloc(void *p, size_t n);
char *pl_strdup(const char *s);
char *pl_strndup(const char *s, size_t n);
char *pl_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Overwrite then free a secret string. Accepts NULL. */
void pl_free_secret(char *s);

#endif
