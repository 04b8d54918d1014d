/*
 * File helpers: capped reads, atomic writes (temp file + fsync + rename), and
 * reading secrets only from files no one else can read.
 */
#ifndef PL_CORE_FILE_H
#define PL_CORE_FILE_H

#include "core/common.h"

#include <sys/types.h>

struct pl_buf;

/* Append the whole file to b (b's cap applies). */
int pl_file_read(const char *path, struct pl_buf *b, char **errmsg);
/* Write data to path atomically with the given mode. */
int pl_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 char **errmsg);
/* Read a secret: refuses files readable or writable by group or others. Trailing
 * newlines are stripped. Caller frees with pl_free_secret(). */
int pl_file_read_secret(const char *path, char **secret, char **errmsg);
/* mkdir -p with mode for the directories it creates. */
int pl_mkdir_p(const char *path, mode_t mode, char **errmsg);
/* Directory part of a path (caller frees); "." when there is none. */
char *pl_path_dirname(const char *path);
/* Join a directory and a name (caller frees). */
char *pl_path_join(const char *dir, const char *name);
/* Where an installed pvelab's system-wide config and state live. */
#define PL_CONFIG_SYSTEM_DIR "/etc/pvelab"
#define PL_STATE_SYSTEM_DIR "/var/lib/pvelab"
/* An XDG base directory (XDG Base Directory spec): $var when set to an
 * absolute path, else $HOME/fallback ("XDG_CONFIG_HOME", ".config"); NULL
 * without a HOME. Caller frees. */
char *pl_xdg_dir(const char *var, const char *fallback);

#endif
