/*
 * The SSH client of core/ssh.h on libssh: one session per connection, host
 * key handed to the caller before authentication, commands on their own
 * channel read under one deadline, files moved as a command's stdin (no SFTP
 * subsystem needed, so busybox and dropbear guests work too).
 */
#include "core/common.h"
#include "core/ssh.h"
#include "core/err.h"

#include <errno.h>
#include <libssh/libssh.h>
#include <sys/stat.h>
#include <time.h>

#define SSH_DEFAULT_TIMEOUT_MS 10000
#define SSH_RUN_TIMEOUT_MS 60000
#define SSH_MAX_OUT ((size_t)1 << 20)

struct pl_ssh {
	ssh_session ss;
	char *peer;
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
pl_ssh_peer(const struct pl_ssh *s)
{
	return s->peer;
}

char *
pl_ssh_quote(const char *path)
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
	pl_buf_addch(&b, '\'');
	for (const char *p = path; *p; p++)
		if (*p == '\'')
			pl_buf_addstr(&b, "'\\''");
		else
			pl_buf_addch(&b, *p);
	pl_buf_addch(&b, '\'');
	return pl_buf_detach(&b, NULL);
}

/* The server's key: type and SHA-256 fingerprint, then the caller's verdict. */
static int
check_hostkey(struct pl_ssh *s, const struct pl_ssh_opts *o, int port, char **errmsg)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL;
	int r;

	if (ssh_get_server_publickey(s->ss, &key) != SSH_OK ||
	    ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0 ||
	    !(fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen))) {
		r = pl_seterr(errmsg, PL_EIO, "ssh %s: cannot read the host key: %s", s->peer,
			      ssh_get_error(s->ss));
		goto out;
	}
	if (!o->check_hostkey)
		r = pl_seterr(errmsg, PL_EPERM, "ssh %s: no host key check given: refused",
			      s->peer);
	else
		r = o->check_hostkey(o->check_ctx, o->host, port,
				     ssh_key_type_to_char(ssh_key_type(key)), fp, errmsg);
out:
	ssh_string_free_char(fp);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	return r;
}

static int
authenticate(struct pl_ssh *s, const char *identity, char **errmsg)
{
	ssh_key priv = NULL;
	struct stat st;
	int rc;

	if (!identity) {
		rc = ssh_userauth_publickey_auto(s->ss, NULL, NULL);
		if (rc == SSH_AUTH_SUCCESS)
			return 0;
		return pl_seterr(errmsg, PL_EAUTH,
				 "ssh %s: no key was accepted (tried ssh-agent and ~/.ssh/id_*; "
				 "give the key file with identity:)",
				 s->peer);
	}
	if (stat(identity, &st) != 0)
		return pl_seterr(errmsg, PL_ENOENT, "ssh key file %s: %s", identity,
				 strerror(errno));
	if (st.st_mode & 077)
		return pl_seterr(errmsg, PL_EPERM,
				 "ssh key file %s is readable by others (mode %03o): chmod 600 it",
				 identity, (unsigned)(st.st_mode & 0777));
	if (ssh_pki_import_privkey_file(identity, NULL, NULL, NULL, &priv) != SSH_OK)
		return pl_seterr(errmsg, PL_EAUTH,
				 "ssh key file %s: not a private key pvelab can read "
				 "(a key with a passphrase belongs in ssh-agent)",
				 identity);
	rc = ssh_userauth_publickey(s->ss, NULL, priv);
	ssh_key_free(priv);
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	return pl_seterr(errmsg, PL_EAUTH, "ssh %s: the key %s was not accepted", s->peer,
			 identity);
}

int
pl_ssh_connect(const struct pl_ssh_opts *o, struct pl_ssh **out, char **errmsg)
{
	struct pl_ssh *s;
	unsigned int port = o->port > 0 ? (unsigned)o->port : 22;
	int ms = o->timeout_ms > 0 ? o->timeout_ms : SSH_DEFAULT_TIMEOUT_MS;
	long sec = ms / 1000, usec = (long)(ms % 1000) * 1000;
	bool no = false;
	char *user = NULL;
	int r;

	*out = NULL;
	s = pl_calloc(1, sizeof *s);
	if (!(s->ss = ssh_new())) {
		free(s);
		return pl_seterr(errmsg, PL_ENOMEM, "ssh: cannot start a session");
	}
	if (ssh_options_set(s->ss, SSH_OPTIONS_HOST, o->host) != SSH_OK ||
	    ssh_options_set(s->ss, SSH_OPTIONS_PORT, &port) != SSH_OK ||
	    (o->user && ssh_options_set(s->ss, SSH_OPTIONS_USER, o->user) != SSH_OK)) {
		r = pl_seterr(errmsg, PL_EINVAL, "ssh %s: %s", o->host, ssh_get_error(s->ss));
		goto fail;
	}
	ssh_options_set(s->ss, SSH_OPTIONS_TIMEOUT, &sec);
	ssh_options_set(s->ss, SSH_OPTIONS_TIMEOUT_USEC, &usec);
	ssh_options_set(s->ss, SSH_OPTIONS_PROCESS_CONFIG, &no);
	ssh_options_set(s->ss, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
	ssh_options_set(s->ss, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
	ssh_options_get(s->ss, SSH_OPTIONS_USER, &user);
	s->peer = pl_asprintf("%s@%s:%u", user ? user : "?", o->host, port);
	ssh_string_free_char(user);

	if (ssh_connect(s->ss) != SSH_OK) {
		const char *e = ssh_get_error(s->ss);
		r = pl_seterr(errmsg, strstr(e, "imeout") ? PL_ETIMEOUT : PL_ECONNECT,
			      "ssh %s: %s (timeout %d ms)", s->peer, e, ms);
		goto fail;
	}
	if ((r = check_hostkey(s, o, (int)port, errmsg)) != 0 ||
	    (r = authenticate(s, o->identity, errmsg)) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	pl_ssh_free(s);
	return r;
}

void
pl_ssh_free(struct pl_ssh *s)
{
	if (!s)
		return;
	if (ssh_is_connected(s->ss))
		ssh_disconnect(s->ss);
	ssh_free(s->ss);
	free(s->peer);
	free(s);
}

void
pl_ssh_result_release(struct pl_ssh_result *r)
{
	pl_buf_release(&r->out);
	pl_buf_release(&r->err);
}

/* Keep what fits under the cap, note the rest, pass all of it on. */
static void
keep(const struct pl_ssh_cmd *c, struct pl_ssh_result *r, int stream, const char *p, size_t n)
{
	struct pl_buf *b = stream == 1 ? &r->out : &r->err;
	bool *cut = stream == 1 ? &r->out_cut : &r->err_cut;
	size_t room = b->max - b->len;

	if (c->on_output)
		c->on_output(c->ctx, stream, p, n);
	if (n > room) {
		*cut = true;
		n = room;
	}
	if (n)
		pl_buf_add(b, p, n);
}

static int
run_channel(struct pl_ssh *s, ssh_channel ch, const struct pl_ssh_cmd *c, struct pl_ssh_result *r,
	    long long deadline, char **errmsg)
{
	char tmp[16384];
	const char *in = c->in;
	size_t left = c->in ? c->in_len : 0;
	int n;

	if (ssh_channel_open_session(ch) != SSH_OK ||
	    ssh_channel_request_exec(ch, c->cmd) != SSH_OK)
		return pl_seterr(errmsg, PL_EIO, "ssh %s: cannot start a command: %s", s->peer,
				 ssh_get_error(s->ss));
	while (left > 0) {
		n = ssh_channel_write(ch, in, (uint32_t)(left > sizeof tmp ? sizeof tmp : left));
		if (n == SSH_ERROR)
			return pl_seterr(errmsg, PL_EIO, "ssh %s: writing the command's input: %s",
					 s->peer, ssh_get_error(s->ss));
		in += n;
		left -= (size_t)n;
		if (now_ms() >= deadline)
			return PL_ETIMEOUT;
	}
	ssh_channel_send_eof(ch);
	for (;;) {
		long long wait = deadline - now_ms();

		if (wait <= 0)
			return PL_ETIMEOUT;
		if (c->stop && c->stop(c->stop_ctx))
			return pl_seterr(errmsg, PL_ECANCEL, "ssh %s: interrupted", s->peer);
		n = ssh_channel_read_timeout(ch, tmp, sizeof tmp, 0,
					     (int)(wait < 200 ? wait : 200));
		if (n == SSH_ERROR)
			break;
		if (n > 0)
			keep(c, r, 1, tmp, (size_t)n);
		while ((n = ssh_channel_read_nonblocking(ch, tmp, sizeof tmp, 1)) > 0)
			keep(c, r, 2, tmp, (size_t)n);
		if (n == SSH_ERROR)
			break;
		if (ssh_channel_is_eof(ch) && ssh_channel_poll(ch, 0) <= 0 &&
		    ssh_channel_poll(ch, 1) <= 0)
			break;
	}
	if (n == SSH_ERROR || ssh_channel_poll(ch, 0) == SSH_ERROR)
		return pl_seterr(errmsg, PL_EIO, "ssh %s: connection lost: %s", s->peer,
				 ssh_get_error(s->ss));
	r->status = ssh_channel_get_exit_status(ch);
	return 0;
}

int
pl_ssh_run(struct pl_ssh *s, const struct pl_ssh_cmd *c, struct pl_ssh_result *r, char **errmsg)
{
	int ms = c->timeout_ms > 0 ? c->timeout_ms : SSH_RUN_TIMEOUT_MS;
	ssh_channel ch;
	int rc;

	memset(r, 0, sizeof *r);
	r->status = -1;
	pl_buf_init(&r->out, c->max_out ? c->max_out : SSH_MAX_OUT);
	pl_buf_init(&r->err, c->max_out ? c->max_out : SSH_MAX_OUT);
	if (!(ch = ssh_channel_new(s->ss)))
		return pl_seterr(errmsg, PL_EIO, "ssh %s: %s", s->peer, ssh_get_error(s->ss));
	rc = run_channel(s, ch, c, r, now_ms() + ms, errmsg);
	if (rc == PL_ETIMEOUT) {
		ssh_channel_request_send_signal(ch, "KILL");
		pl_seterr(errmsg, rc, "ssh %s: the command did not end within %d ms (sent KILL)",
			  s->peer, ms);
	}
	ssh_channel_close(ch);
	ssh_channel_free(ch);
	return rc;
}

/* The first line of what a failed helper command wrote, for its message. */
static const char *
first_line(struct pl_ssh_result *r)
{
	char *nl = strchr(r->err.data, '\n');

	if (nl)
		*nl = '\0';
	return r->err.len ? r->err.data : "no message";
}

int
pl_ssh_write_file(struct pl_ssh *s, const char *path, const void *data, size_t len, mode_t mode,
		  int timeout_ms, char **errmsg)
{
	char *q = pl_ssh_quote(path), *script, *cmd;
	struct pl_ssh_result res;
	struct pl_ssh_cmd c = {
		.in = data, .in_len = len, .timeout_ms = timeout_ms, .max_out = 4096
	};
	int r;

	/* mktemp beside the target keeps the rename on one file system; the
	 * trap removes the temporary file when any step fails. */
	script = pl_asprintf("set -e; p=%s; mkdir -p -- \"$(dirname -- \"$p\")\"; "
			     "t=$(mktemp \"$p.pvelab.XXXXXX\"); trap 'rm -f -- \"$t\"' EXIT; "
			     "cat > \"$t\"; chmod %04o \"$t\"; mv -f -- \"$t\" \"$p\"; trap - EXIT",
			     q, (unsigned)(mode & 07777));
	cmd = pl_ssh_quote(script);
	free(script);
	c.cmd = script = pl_asprintf("sh -c %s", cmd);
	r = pl_ssh_run(s, &c, &res, errmsg);
	if (r == 0 && res.status != 0)
		r = pl_seterr(errmsg, PL_EIO, "ssh %s: cannot write %s: %s", s->peer, path,
			      first_line(&res));
	pl_ssh_result_release(&res);
	free(script);
	free(cmd);
	free(q);
	return r;
}

int
pl_ssh_read_file(struct pl_ssh *s, const char *path, size_t max, struct pl_buf *out, int timeout_ms,
		 char **errmsg)
{
	char *q = pl_ssh_quote(path), *script = NULL, *cmd;
	struct pl_ssh_result res;
	struct pl_ssh_cmd c = { .timeout_ms = timeout_ms, .max_out = max + 1 };
	int r;

	pl_buf_reset(out);
	script = pl_asprintf("p=%s; [ -e \"$p\" ] || exit 3; head -c %zu -- \"$p\"", q, max + 1);
	cmd = pl_ssh_quote(script);
	free(script);
	c.cmd = script = pl_asprintf("sh -c %s", cmd);
	r = pl_ssh_run(s, &c, &res, errmsg);
	if (r != 0)
		;
	else if (res.status == 3)
		r = pl_seterr(errmsg, PL_ENOENT, "ssh %s: %s does not exist", s->peer, path);
	else if (res.status != 0)
		r = pl_seterr(errmsg, PL_EIO, "ssh %s: cannot read %s: %s", s->peer, path,
			      first_line(&res));
	else if (res.out.len > max)
		r = pl_seterr(errmsg, PL_ETOOBIG, "ssh %s: %s is over %zu bytes", s->peer, path,
			      max);
	else if (pl_buf_add(out, res.out.data, res.out.len) != 0)
		r = pl_seterr(errmsg, PL_ETOOBIG, "ssh %s: %s is over the buffer's cap", s->peer,
			      path);
	pl_ssh_result_release(&res);
	free(script);
	free(cmd);
	free(q);
	return r;
}
