/*
 * An SSH client for work inside guests and hosts (libssh): connect with a
 * deadline, check the host key through the caller (trust on first use lives
 * in the state store: pl_state_ssh_trust), authenticate with a key file or
 * ssh-agent only, run a command with bounded output and a deadline, write a
 * file atomically and read one with a size cap. Every call blocks its thread
 * until done or its deadline: call it from a worker thread, never an event
 * loop. One connection is used by one thread at a time.
 */
#ifndef PL_CORE_SSH_H
#define PL_CORE_SSH_H

#include "core/common.h"
#include "core/buf.h"

#include <sys/types.h>

struct pl_ssh;

/* Decides whether the server's host key is trusted: 0 to go on, else a
 * negative PL_E* code and a message (the connection is refused with it).
 * keytype is libssh's name ("ssh-ed25519"), fingerprint "SHA256:<base64>"
 * as ssh-keygen -l prints it. */
typedef int (*pl_ssh_hostkey_fn)(void *ctx, const char *host, int port, const char *keytype,
				 const char *fingerprint, char **errmsg);

struct pl_ssh_opts {
	const char *host;
	int port;                        /* 0: 22 */
	const char *user;                /* NULL: the current user */
	const char *identity;            /* private key file (no passphrase); NULL: ssh-agent
				 * ($SSH_AUTH_SOCK), then ~/.ssh/id_ed25519, id_ecdsa, id_rsa */
	int timeout_ms;                  /* TCP connect, key exchange and authentication; 0: 10 s */
	pl_ssh_hostkey_fn check_hostkey; /* NULL refuses every host */
	void *check_ctx;
};

/* Connect, check the host key, authenticate. Never reads ~/.ssh/config or
 * ~/.ssh/known_hosts: what is trusted is what check_hostkey says. Never asks
 * for or sends a password. */
int pl_ssh_connect(const struct pl_ssh_opts *o, struct pl_ssh **out, char **errmsg);
/* Disconnect and free. Accepts NULL. */
void pl_ssh_free(struct pl_ssh *s);
/* "user@host:port", for messages (borrowed). */
const char *pl_ssh_peer(const struct pl_ssh *s);

/* Called with output as it arrives (stream 1 stdout, 2 stderr), also past
 * the cap that bounds what the result keeps. */
typedef void (*pl_ssh_output_fn)(void *ctx, int stream, const char *p, size_t n);

struct pl_ssh_result {
	int status; /* the command's exit status; -1 when it sent none (killed by a signal) */
	struct pl_buf out, err; /* what it wrote, at most max_out bytes each */
	bool out_cut, err_cut;  /* there was more than max_out */
};

struct pl_ssh_cmd {
	const char *cmd; /* run by the remote user's shell */
	const void *in;  /* stdin (then EOF); NULL: none */
	size_t in_len;
	int timeout_ms;             /* whole run; 0: 60 s. On expiry the command is sent KILL */
	size_t max_out;             /* bytes kept of each stream; 0: 1 MiB */
	pl_ssh_output_fn on_output; /* optional */
	void *ctx;
	/* optional: asked between reads (at least every 200 ms); true ends the
	 * run with PL_ECANCEL ("interrupted") */
	bool (*stop)(void *stop_ctx);
	void *stop_ctx;
};

/* Run one command. 0 once it ended, whatever its status (r->status says);
 * PL_ETIMEOUT past the deadline, PL_EIO when the connection broke. r is
 * initialised here; release it with pl_ssh_result_release in every case. */
int pl_ssh_run(struct pl_ssh *s, const struct pl_ssh_cmd *c, struct pl_ssh_result *r,
	       char **errmsg);
void pl_ssh_result_release(struct pl_ssh_result *r);

/* Write path in the remote system atomically: a temporary file beside it,
 * given mode, then renamed over it; missing parent directories are made
 * (0755). Only a shell with mktemp, chmod and mv is needed (no SFTP). */
int pl_ssh_write_file(struct pl_ssh *s, const char *path, const void *data, size_t len, mode_t mode,
		      int timeout_ms, char **errmsg);
/* Read a remote file into out (reset first): PL_ENOENT when it does not
 * exist, PL_ETOOBIG when it is over max bytes (no more is transferred). */
int pl_ssh_read_file(struct pl_ssh *s, const char *path, size_t max, struct pl_buf *out,
		     int timeout_ms, char **errmsg);

/* path quoted for a POSIX shell ('...' with ' as '\''). Caller frees. */
char *pl_ssh_quote(const char *path);

#endif
