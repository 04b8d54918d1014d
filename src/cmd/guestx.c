/*
 * The guest transports of cmd/guestx.h: the QEMU guest agent through the
 * Proxmox API, or SSH.
 */
#include "core/common.h"
#include "cmd/guestx.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "core/ssh.h"
#include "core/str.h"
#include "pve/client.h"
#include "state/state.h"

#include <event2/event.h>
#include <time.h>
#include <unistd.h>

/* How one guest is reached: the agent through the API, or an SSH session. */

void
pl_gx_res_release(struct pl_gx_res *x)
{
	free(x->out);
	free(x->err);
	memset(x, 0, sizeof *x);
}

static char *
argv_shell(const json_t *argv)
{
	struct pl_buf b;
	size_t i;
	json_t *v;

	pl_buf_init(&b, 0);
	json_array_foreach(argv, i, v) {
		char *q = pl_ssh_quote(json_string_value(v));

		pl_buf_addf(&b, "%s%s", i ? " " : "", q);
		free(q);
	}
	return pl_buf_detach(&b, NULL);
}

long long
pl_gx_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
pl_gx_stopped(struct pl_session *s)
{
	if (s->base)
		event_base_loop(s->base, EVLOOP_NONBLOCK);
	return pl_pve_interrupted(s->pve);
}

static bool
ssh_stop(void *arg)
{
	return pl_gx_stopped(arg);
}

/* Run argv through the agent (input, when not NULL, as its stdin): exec,
 * then exec-status until it exited or timeout_ms passed. */
static int
agent_run(struct pl_gx *x, const json_t *argv, const char *input, size_t inlen, int timeout_ms,
	  struct pl_gx_res *res, char **errmsg)
{
	char *path = pl_asprintf("/nodes/%s/qemu/%lld/agent/exec", x->node, x->vmid);
	json_t *params = json_pack("{s:O}", "command", argv), *data = NULL;
	long long deadline = pl_gx_mono_ms() + timeout_ms;
	json_int_t pid;
	int wait = 20, r;

	if (input)
		json_object_set_new(params, "input-data", json_stringn(input, inlen));
	r = pl_pve_call(x->s->pve, "POST", path, params, &data, errmsg);
	json_decref(params);
	free(path);
	if (r)
		return r;
	pid = json_integer_value(json_object_get(data, "pid"));
	json_decref(data);
	path = pl_asprintf("/nodes/%s/qemu/%lld/agent/exec-status", x->node, x->vmid);
	params = json_pack("{s:I}", "pid", pid);
	for (;;) {
		data = NULL;
		if ((r = pl_pve_call(x->s->pve, "GET", path, params, &data, errmsg)) != 0)
			break;
		if (json_is_true(json_object_get(data, "exited")) ||
		    json_integer_value(json_object_get(data, "exited")) == 1) {
			res->code = (int)json_integer_value(json_object_get(data, "exitcode"));
			res->out = pl_strdup(pl_json_str_or(data, "out-data", ""));
			res->err = pl_strdup(pl_json_str_or(data, "err-data", ""));
			json_decref(data);
			break;
		}
		json_decref(data);
		if (pl_gx_mono_ms() >= deadline) {
			r = pl_seterr(errmsg, PL_ETIMEOUT,
				      "guest %lld: the command did not end within %d ms", x->vmid,
				      timeout_ms);
			break;
		}
		usleep((useconds_t)wait * 1000);
		wait = wait < 1000 ? wait * 2 : 1000;
	}
	json_decref(params);
	free(path);
	return r;
}

/* Run argv in the guest: agent exec, then exec-status until it exited. */
int
pl_gx_run(struct pl_gx *x, const json_t *argv, int timeout_ms, struct pl_gx_res *res, char **errmsg)
{
	int r;

	memset(res, 0, sizeof *res);
	if (x->ssh) {
		char *cmd = argv_shell(argv);
		struct pl_ssh_result sr;
		struct pl_ssh_cmd c = { .cmd = cmd,
					.timeout_ms = timeout_ms,
					.on_output = x->on_output,
					.ctx = x->out_ctx,
					.stop = ssh_stop,
					.stop_ctx = x->s };

		r = pl_ssh_run(x->ssh, &c, &sr, errmsg);
		res->code = sr.status;
		res->out = pl_strdup(sr.out.data);
		res->err = pl_strdup(sr.err.data);
		pl_ssh_result_release(&sr);
		free(cmd);
		return r;
	}
	r = agent_run(x, argv, NULL, 0, timeout_ms, res, errmsg);
	if (r == 0 && x->on_output) {
		x->on_output(x->out_ctx, 1, res->out, strlen(res->out));
		x->on_output(x->out_ctx, 2, res->err, strlen(res->err));
	}
	return r;
}

/* Run argv and call a non-zero exit an error naming the command. */
int
pl_gx_must(struct pl_gx *x, const json_t *argv, char **errmsg)
{
	struct pl_gx_res res;
	int r = pl_gx_run(x, argv, 60000, &res, errmsg);

	if (r == 0 && res.code != 0)
		r = pl_seterr(errmsg, PL_EIO, "guest %lld: %s exited %d: %.200s", x->vmid,
			      json_string_value(json_array_get(argv, 0)), res.code, res.err);
	pl_gx_res_release(&res);
	return r;
}

#define AGENT_WRITE_MAX 61440 /* file-write's content, qemu-server's maxLength */

/* How much of p (len bytes) goes in one agent call: at most
 * AGENT_WRITE_MAX bytes, never half a UTF-8 character (PVE counts
 * characters; bytes are never fewer). */
static size_t
agent_part(const char *p, size_t len)
{
	size_t n = len < AGENT_WRITE_MAX ? len : AGENT_WRITE_MAX;

	while (n < len && n > 1 && ((unsigned char)p[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* Append n bytes to path in the guest: dd with them as exec's input-data. */
static int
agent_append(struct pl_gx *x, const char *path, const char *p, size_t n, char **errmsg)
{
	char *of = pl_asprintf("of=%s", path);
	json_t *argv =
		json_pack("[s,s,s,s,s]", "dd", of, "oflag=append", "conv=notrunc", "status=none");
	struct pl_gx_res res = { 0 };
	int r = agent_run(x, argv, p, n, 60000, &res, errmsg);

	if (r == 0 && res.code != 0)
		r = pl_seterr(errmsg, PL_EIO, "guest %lld: dd (appending to %s) exited %d: %.200s",
			      x->vmid, path, res.code, res.err);
	pl_gx_res_release(&res);
	json_decref(argv);
	free(of);
	return r;
}

/* Write path atomically: a temporary file beside it, its mode, then mv. */
int
pl_gx_write(struct pl_gx *x, const char *path, const char *data, size_t len, unsigned mode,
	    char **errmsg)
{
	char *tmp, *dir, *m, *call;
	json_t *argv, *params, *out = NULL;
	size_t n;
	int r;

	if (x->ssh)
		return pl_ssh_write_file(x->ssh, path, data, len, mode, 60000, errmsg);
	dir = pl_strndup(path, (size_t)(strrchr(path, '/') - path));
	argv = json_pack("[s,s,s]", "mkdir", "-p", dir[0] ? dir : "/");
	r = pl_gx_must(x, argv, errmsg);
	json_decref(argv);
	free(dir);
	if (r)
		return r;
	tmp = pl_asprintf("%s.pvelab-tmp", path);
	call = pl_asprintf("/nodes/%s/qemu/%lld/agent/file-write", x->node, x->vmid);
	/* file-write takes at most 60 KiB (qemu-server's Agent.pm: content's
	 * maxLength 61440) and opens the file with "wb": the first part creates
	 * it, the rest is appended by dd from exec's input-data (64 KiB) */
	n = agent_part(data, len);
	params = json_pack("{s:s,s:s%}", "file", tmp, "content", data, n);
	r = pl_pve_call(x->s->pve, "POST", call, params, &out, errmsg);
	json_decref(params);
	json_decref(out);
	for (size_t off = n; r == 0 && off < len; off += n) {
		n = agent_part(data + off, len - off);
		r = agent_append(x, tmp, data + off, n, errmsg);
	}
	free(call);
	m = pl_asprintf("%04o", mode);
	if (r == 0) {
		argv = json_pack("[s,s,s]", "chmod", m, tmp);
		r = pl_gx_must(x, argv, errmsg);
		json_decref(argv);
	}
	if (r == 0) {
		argv = json_pack("[s,s,s,s]", "mv", "-f", tmp, path);
		r = pl_gx_must(x, argv, errmsg);
		json_decref(argv);
	}
	free(m);
	free(tmp);
	return r;
}

/* The API call of a task (snapshot, rollback), waited for. */
struct task_wait {
	bool done;
	int err;
	char *msg;
};

static void
task_done(int err, const char *exitstatus, const char *errmsg, void *arg)
{
	struct task_wait *w = arg;

	w->done = true;
	w->err = err;
	if (errmsg)
		w->msg = pl_strdup(errmsg);
}

int
pl_gx_task(struct pl_gx *x, const char *method, const char *suffix, const json_t *params,
	   char **errmsg)
{
	char *path = pl_asprintf("/nodes/%s/%s/%lld/%s", x->node, x->lxc ? "lxc" : "qemu", x->vmid,
				 suffix);
	json_t *data = NULL;
	struct task_wait w = { 0 };
	int r = pl_pve_call(x->s->pve, method, path, params, &data, errmsg);

	free(path);
	if (r)
		return r;
	if (json_is_string(data)) {
		pl_pve_task_wait(x->s->pve, json_string_value(data), 600000, task_done, &w);
		pl_pve_run(x->s->pve);
		if (w.err)
			r = pl_seterr(errmsg, w.err, "%s", w.msg ? w.msg : "the task failed");
	}
	free(w.msg);
	json_decref(data);
	return r;
}

/* compose ps's services: JSON lines (one object a line) or one array,
 * as docker compose prints either by version. New reference. */
static json_t *
ps_services(const char *ps)
{
	json_t *all = json_array();
	const char *p = ps;

	while (*p) {
		size_t n = strcspn(p, "\n");
		json_t *o = json_loadb(p, n, JSON_DECODE_ANY, NULL);

		if (json_is_array(o))
			json_array_extend(all, o);
		else if (json_is_object(o))
			json_array_append(all, o);
		json_decref(o);
		p += n + (p[n] == '\n');
	}
	return all;
}

int
pl_gx_services_health(const char *ps, char **why)
{
	json_t *all = ps_services(ps), *v;
	int state = PL_GX_UP;
	size_t i;

	if (json_array_size(all) == 0) {
		*why = pl_strdup("compose ps lists no service");
		state = PL_GX_DOWN;
	}
	json_array_foreach(all, i, v) {
		const char *health = pl_json_str_or(v, "Health", "");

		if (strcmp(pl_json_str_or(v, "State", ""), "running") ||
		    !strcmp(health, "unhealthy")) {
			free(*why);
			*why = pl_asprintf(
				"service %s is %s%s%s", pl_json_str_or(v, "Service", "?"),
				pl_json_str_or(v, "State", "?"), *health ? ", " : "", health);
			state = PL_GX_DOWN;
			break;
		}
		if (!strcmp(health, "starting") && state == PL_GX_UP) {
			free(*why);
			*why = pl_asprintf("service %s is still starting (its healthcheck has not "
					   "passed yet)",
					   pl_json_str_or(v, "Service", "?"));
			state = PL_GX_STARTING;
		}
	}
	json_decref(all);
	return state;
}

/* Every service of the project running. */
int
pl_gx_services_down(const char *ps, char **why)
{
	json_t *all = ps_services(ps), *v;
	size_t i;
	int bad = 0;

	json_array_foreach(all, i, v) {
		const char *state = pl_json_str_or(v, "State", "");
		const char *health = pl_json_str_or(v, "Health", "");

		if (strcmp(state, "running") != 0 || !strcmp(health, "unhealthy")) {
			if (!bad++)
				*why = pl_asprintf("service %s is %s%s%s",
						   pl_json_str_or(v, "Service", "?"), state,
						   *health ? ", " : "", health);
		}
	}
	if (json_array_size(all) == 0 && !bad) {
		*why = pl_strdup("compose ps lists no service");
		bad = 1;
	}
	json_decref(all);
	return bad;
}

/* Where PVELAB_SSH_HOSTS sends guest name: "GUEST=HOST[:PORT]" pairs,
 * comma-separated, "*" for every guest not named (a port forward, a NAT or
 * jump host's port; a test's sshd). 0 with *host (the caller's) and *port
 * (0: as configured) when it names the guest, 1 when it does not, PL_EINVAL
 * naming a malformed pair. */
static int
ssh_route(const char *name, char **host, int *port, char **errmsg)
{
	const char *env = getenv("PVELAB_SSH_HOSTS"), *p, *use = NULL;
	char *v, *h, *pt = NULL;
	size_t uselen = 0;
	long long num = 0;
	int r = 0;

	*host = NULL;
	*port = 0;
	for (p = env; p && *p;) {
		size_t n = strcspn(p, ","), k = strcspn(p, "=");

		if (k >= n || k == 0 || k + 1 == n)
			return pl_seterr(errmsg, PL_EINVAL,
					 "PVELAB_SSH_HOSTS: '%.*s' is not GUEST=HOST[:PORT]",
					 (int)(n > 80 ? 80 : n), p);
		if ((k == strlen(name) && !strncmp(p, name, k)) ||
		    (use == NULL && k == 1 && *p == '*')) {
			use = p + k + 1;
			uselen = n - k - 1;
		}
		p += n + (p[n] == ',');
	}
	if (use == NULL)
		return 1;
	v = pl_strndup(use, uselen);
	h = v;
	if (*v == '[') { /* [v6] or [v6]:port */
		char *close = strchr(v, ']');

		h = v + 1;
		if (close == NULL || (close[1] && close[1] != ':'))
			h = NULL;
		else
			pt = close[1] ? close + 2 : NULL;
		if (close)
			*close = '\0';
	} else if ((pt = strchr(v, ':')) != NULL && strchr(pt + 1, ':') == NULL) {
		*pt++ = '\0'; /* host:port (more colons: a bare IPv6 address) */
	} else {
		pt = NULL;
	}
	if (h == NULL || *h == '\0' || (pt && pl_str_to_ll(pt, 1, 65535, &num) != 0)) {
		r = pl_seterr(errmsg, PL_EINVAL,
			      "PVELAB_SSH_HOSTS: '%.*s' for guest %s is not HOST[:PORT]",
			      (int)(uselen > 80 ? 80 : uselen), use, name);
	} else {
		*host = pl_strdup(h);
		*port = (int)num;
	}
	free(v);
	return r;
}

/* The guest's SSH session, with the config's ssh: and stack_defaults.ssh
 * (PVELAB_SSH_HOSTS over both for where it is). */
int
pl_gx_ssh_open(struct pl_session *s, const json_t *gcfg, struct pl_ssh **out, char **errmsg)
{
	const json_t *ssh = json_object_get(gcfg, "ssh"),
		     *d = pl_config_get(s->cfg, "/stack_defaults/ssh");
	const char *host = pl_json_str(ssh, "host");
	char *h = NULL, *idpath = NULL, *route = NULL;
	int route_port = 0;
	const char *id = pl_json_str(ssh, "identity") ? pl_json_str(ssh, "identity") :
							pl_json_str(d, "identity");
	struct pl_ssh_opts o = { 0 };
	size_t i;
	json_t *n;
	int r;

	if ((r = ssh_route(pl_json_str_or(gcfg, "name", "?"), &route, &route_port, errmsg)) < 0)
		return r;
	if (route)
		host = route;
	if (!host)
		json_array_foreach(json_object_get(gcfg, "networks"), i, n) {
			const char *ip = pl_json_str(n, "ip");

			if (ip && strcmp(ip, "dhcp") != 0) {
				host = h = pl_strndup(ip, strcspn(ip, "/"));
				break;
			}
		}
	if (!host)
		return pl_seterr(
			errmsg, PL_EINVAL,
			"guest %s: no address to reach it over SSH (set ssh.host, or give it "
			"a static networks[].ip)",
			pl_json_str_or(gcfg, "name", "?"));
	if (id && id[0] != '/') {
		char *dir = pl_path_dirname(pl_config_path(s->cfg));

		id = idpath = pl_path_join(dir, id);
		free(dir);
	}
	o.host = host;
	o.port = (int)(json_integer_value(json_object_get(ssh, "port")) ?
			       json_integer_value(json_object_get(ssh, "port")) :
			       json_integer_value(json_object_get(d, "port")));
	if (route_port)
		o.port = route_port;
	o.user = pl_json_str(ssh, "user") ? pl_json_str(ssh, "user") : pl_json_str(d, "user");
	o.identity = id;
	o.timeout_ms = (int)json_integer_value(json_object_get(d, "timeout")) * 1000;
	o.check_hostkey = pl_state_ssh_trust;
	o.check_ctx = s->state;
	r = pl_ssh_connect(&o, out, errmsg);
	free(h);
	free(idpath);
	free(route);
	return r;
}

/* Whether a failure to reach the guest may pass while it boots (never a
 * refused host key or key file). */
static bool
transient(int r)
{
	return r == PL_ECONNECT || r == PL_ETIMEOUT || r == PL_EHTTP || r == PL_EIO;
}

int
pl_gx_open(struct pl_session *s, const json_t *gcfg, const json_t *g, const char *transport,
	   int wait_ms, struct pl_gx *x, const char **chosen, char **errmsg)
{
	long long deadline = pl_gx_mono_ms() + wait_ms;
	int r, pause = 500;

	const char *type = pl_json_str_or(g, "type", "");

	memset(x, 0, sizeof *x);
	x->s = s;
	x->node = pl_json_str(g, "node");
	x->vmid = json_integer_value(json_object_get(g, "vmid"));
	x->lxc = !strcmp(type, "lxc") || json_is_true(json_object_get(g, "lxc"));
	if (!transport || !strcmp(transport, "auto"))
		transport =
			!x->lxc && json_is_true(json_object_get(gcfg, "agent")) ? "agent" : "ssh";
	*chosen = transport;
	if (!strcmp(transport, "agent") && x->lxc)
		return pl_seterr(errmsg, PL_EINVAL,
				 "a container has no QEMU guest agent: use transport: ssh");
	if (strcmp(pl_json_str_or(g, "status", ""), "running") != 0)
		return pl_seterr(errmsg, PL_ECONFLICT, "the guest is %s, not running",
				 pl_json_str_or(g, "status", "?"));
	/* a guest just made boots: wait until the agent answers or SSH accepts */
	for (;;) {
		if (!strcmp(transport, "ssh")) {
			r = pl_gx_ssh_open(s, gcfg, &x->ssh, errmsg);
		} else {
			char *path =
				pl_asprintf("/nodes/%s/qemu/%lld/agent/ping", x->node, x->vmid);
			json_t *data = NULL;

			r = pl_pve_call(s->pve, "POST", path, NULL, &data, errmsg);
			json_decref(data);
			free(path);
		}
		if (r == 0 || !transient(r) || pl_gx_mono_ms() + pause >= deadline)
			return r;
		if (pl_gx_stopped(s))
			return pl_seterr(errmsg, PL_ECANCEL, "interrupted");
		usleep((useconds_t)pause * 1000);
		pause = pause < 5000 ? pause * 2 : 5000;
	}
}

void
pl_gx_close(struct pl_gx *x)
{
	pl_ssh_free(x->ssh);
	x->ssh = NULL;
}
