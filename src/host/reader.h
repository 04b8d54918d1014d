/*
 * The host reader: how `pvelab host` sees a Proxmox node's files and commands.
 * One interface, several backends: a directory tree (--root DIR, or / for
 * --local) and, later, SSH. Facts and checks read only through it.
 */
#ifndef PL_HOST_READER_H
#define PL_HOST_READER_H

#include "core/common.h"

#include <jansson.h>
#include <sys/types.h>

struct pl_buf;

/* The most any one file or command output may hold. */
#define PL_HOST_READ_MAX ((size_t)4 << 20)

struct pl_host_reader_ops {
	/* Append the file at path (absolute, as on the node) to out, at most max
	 * bytes; PL_ENOENT when it does not exist. */
	int (*read)(void *impl, const char *path, size_t max, struct pl_buf *out, char **errmsg);
	/* The names in directory path, sorted, without . and ..: *names and each
	 * name are the caller's (pl_host_names_free); PL_ENOENT when missing. */
	int (*list)(void *impl, const char *path, char ***names, size_t *n, char **errmsg);
	/* The target of symlink path (caller frees); PL_ENOENT when missing. */
	int (*readlink)(void *impl, const char *path, char **target, char **errmsg);
	/* Run one of the known commands (pl_host_commands) and append its
	 * standard output to out; PL_ENOENT when it cannot be run or answered. */
	int (*run)(void *impl, const char *cmd, struct pl_buf *out, char **errmsg);
	/* Replace the file at path atomically with data, keeping the old one as
	 * path + backup_suffix when it existed; mode for a new file. */
	int (*write)(void *impl, const char *path, const void *data, size_t len, mode_t mode,
		     const char *backup_suffix, char **errmsg);
	void (*free)(void *impl);
};

struct pl_host_reader {
	const struct pl_host_reader_ops *ops;
	void *impl;
	char *where; /* for messages: "--root DIR", "this host", "ssh NODE" */
	bool runs;   /* commands are run on the node (not answered from a tree) */
};

/* A reader of the tree under root ("/" reads this host itself). Commands run
 * for real only when live; otherwise they are answered from root's
 * .pvelab-cmd/NAME files (NAME: the command with spaces as '-'). */
int pl_host_reader_dir(struct pl_host_reader *r, const char *root, bool live, char **errmsg);
/* A reader of a node over SSH (core/ssh.h; o->check_hostkey decides the
 * host key). With root, the saved tree under root on the far side, its
 * commands answered from root/.pvelab-cmd as the directory backend does. */
struct pl_ssh_opts;
int pl_host_reader_ssh(struct pl_host_reader *r, const struct pl_ssh_opts *o, const char *root,
		       char **errmsg);
void pl_host_reader_release(struct pl_host_reader *r);
void pl_host_names_free(char **names, size_t n);

/* The commands a reader may be asked to run, NULL-terminated: the first
 * ones read, from PL_HOST_FIRST_CHANGE on they change the node (a tree
 * reader refuses those). */
#define PL_HOST_FIRST_CHANGE 2
extern const char *const pl_host_commands[];

/* Whether path is absolute with no ".." component (what readers accept). */
bool pl_host_path_ok(const char *path);

/* The SSH reader's prefetch answer (data, len bytes from the node) as a
 * cache {path: {t: F, data} | {t: L, target} | {t: D, names} | {t: N}}, or
 * NULL unless every record is well-formed and the answer ends with
 * "E marker". Records: "F path", the bytes, "\n" marker "\n"; "D path",
 * one name a line, marker "\n"; "L path target"; "N path" (none). */
json_t *pl_host_fetch_parse(const char *data, size_t len, const char *marker);

/* Convenience wrappers over r->ops. */
int pl_host_read(struct pl_host_reader *r, const char *path, size_t max, struct pl_buf *out,
		 char **errmsg);
int pl_host_list(struct pl_host_reader *r, const char *path, char ***names, size_t *n,
		 char **errmsg);
int pl_host_readlink(struct pl_host_reader *r, const char *path, char **target, char **errmsg);
int pl_host_run(struct pl_host_reader *r, const char *cmd, struct pl_buf *out, char **errmsg);

#endif
