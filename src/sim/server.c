/*
 * The simulator's HTTP(S) front: evhttp with bufferevent_openssl, request
 * parsing, authentication and routing of each call, calls waiting for a
 * guest's lock file, and fault injection. Replies are in reply.c, tickets
 * and tokens in auth.c.
 */
#include "core/common.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/x509.h"
#include "sim/internal.h"

#define PL_SIM_TIMEOUT_HOLD_MS 120000

/* --- parameters --- */

static void
param_add(json_t *params, const char *k, const char *v)
{
	json_t *old = json_object_get(params, k);

	if (!old) {
		json_object_set_new(params, k, json_string(v));
	} else if (json_is_array(old)) {
		json_array_append_new(old, json_string(v));
	} else {
		json_t *a = json_array();

		json_array_append(a, old);
		json_array_append_new(a, json_string(v));
		json_object_set_new(params, k, a);
	}
}

static int
parse_form(const char *q, json_t *params)
{
	struct evkeyvalq kv;
	struct evkeyval *e;

	TAILQ_INIT(&kv);
	if (evhttp_parse_query_str(q, &kv) != 0) {
		evhttp_clear_headers(&kv);
		return -1;
	}
	TAILQ_FOREACH(e, &kv, next)
		param_add(params, e->key, e->value);
	evhttp_clear_headers(&kv);
	return 0;
}

static int
parse_body(struct evhttp_request *req, json_t *params)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	size_t len = evbuffer_get_length(in);
	char *body;
	int r = 0;

	if (len == 0)
		return 0;
	body = pl_malloc(len + 1);
	evbuffer_remove(in, body, len);
	body[len] = 0;
	if (ct && pl_str_startswith(ct, "application/json")) {
		json_t *j = pl_json_parse(body, len, NULL);
		const char *k;
		json_t *v;

		if (!json_is_object(j)) {
			r = -1;
		} else {
			json_object_foreach(j, k, v) {
				char *t = pl_api_value_text(v);

				if (t) {
					param_add(params, k, t);
					free(t);
				} else if (json_is_array(v)) {
					size_t i;
					json_t *x;

					json_array_foreach(v, i, x) {
						char *tx = pl_api_value_text(x);

						if (tx)
							param_add(params, k, tx);
						free(tx);
					}
				}
			}
		}
		json_decref(j);
	} else {
		r = parse_form(body, params);
	}
	free(body);
	return r;
}

/* --- faults --- */

static int
faults_parse(const char *spec, struct pl_sim_faults *f, char **errmsg)
{
	char *dup, *save = NULL, *item;
	int r = 0;

	memset(f, 0, sizeof(*f));
	if (!spec || !*spec)
		return 0;
	dup = pl_strdup(spec);
	for (item = strtok_r(dup, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		double v;
		char *end;

		if (!eq) {
			r = pl_seterr(errmsg, PL_EINVAL, "fault '%s' needs a value (e.g. error=0.05)",
				      item);
			break;
		}
		*eq = 0;
		v = strtod(eq + 1, &end);
		if (end == eq + 1) {
			r = pl_seterr(errmsg, PL_EINVAL, "fault '%s' has a bad value '%s'", item, eq + 1);
			break;
		}
		if (!strcmp(item, "latency")) {
			if (*end && strcmp(end, "ms") && strcmp(end, "s")) {
				r = pl_seterr(errmsg, PL_EINVAL, "latency '%s' wants ms or s", eq + 1);
				break;
			}
			f->latency_ms = (int)(!strcmp(end, "s") ? v * 1000 : v);
			continue;
		}
		if (*end || v < 0 || v > 1) {
			r = pl_seterr(errmsg, PL_EINVAL,
				      "fault '%s' wants a probability between 0 and 1, got '%s'", item,
				      eq + 1);
			break;
		}
		if (!strcmp(item, "error"))
			f->error = v;
		else if (!strcmp(item, "timeout"))
			f->timeout = v;
		else if (!strcmp(item, "reset"))
			f->reset = v;
		else if (!strcmp(item, "lockwait"))
			f->lockwait = v;
		else if (!strcmp(item, "noanswer"))
			f->noanswer = v;
		else if (!strcmp(item, "truncate"))
			f->truncate = v;
		else if (!strcmp(item, "nextidrace"))
			f->nextidrace = v;
		else {
			r = pl_seterr(errmsg, PL_EINVAL,
				      "unknown fault '%s' (known: error, timeout, reset, latency, "
				      "lockwait, noanswer, truncate, nextidrace)",
				      item);
			break;
		}
	}
	free(dup);
	return r;
}

int
pl_sim_faults_check(const char *spec, char **errmsg)
{
	struct pl_sim_faults f;

	return faults_parse(spec, &f, errmsg);
}

/* --- the request handler --- */

static bool
public_call(enum pl_sim_meth m, const char *path)
{
	return (!strcmp(path, "/access/ticket") && (m == PL_SIM_GET || m == PL_SIM_POST)) ||
	       (!strcmp(path, "/access/domains") && m == PL_SIM_GET);
}

static void
req_release(struct pl_sim_req *r)
{
	json_decref(r->data);
	json_decref(r->errors);
	json_decref(r->top);
	free(r->reason);
	pl_buf_release(&r->raw);
	pl_sim_blob_unref(r->blob);
}

struct pl_sim_waiter {
	struct pl_sim_waiter *next;
	struct pl_sim *sim;
	struct evhttp_request *req;
	const struct pl_sim_method *m;
	char *path;
	json_t *params;
	char *user;
	int delay;
	uint32_t vmid;
	char *reason; /* the lock timeout message */
	struct event *ev;
};

static void
waiter_free(struct pl_sim_waiter *w)
{
	if (w->ev)
		event_free(w->ev);
	free(w->path);
	json_decref(w->params);
	free(w->user);
	free(w->reason);
	free(w);
}

static void
waiter_unlink(struct pl_sim *s, struct pl_sim_waiter *w)
{
	for (struct pl_sim_waiter **pp = &s->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			return;
		}
}

static void
waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pl_sim_waiter *w = arg;

	(void)fd;
	(void)what;
	waiter_unlink(w->sim, w);
	pl_sim_reply_json(w->sim, w->req, 500, w->reason, NULL, w->delay);
	waiter_free(w);
}

/* Run a call's handler; a call that must wait for a lock file is parked
 * (w is reused when it is a retry) until the lock is free or time runs out. */
static void
run_call(struct pl_sim *s, struct evhttp_request *req, const struct pl_sim_method *m,
	 const char *path, json_t *params, const char *user, int delay, struct pl_sim_waiter *w)
{
	struct pl_sim_req r;

	memset(&r, 0, sizeof(r));
	pl_buf_init(&r.raw, 0);
	r.sim = s;
	r.m = m;
	r.path = path;
	r.params = params;
	r.user = user ? user : "root@pam";
	r.status = 200;
	pl_sim_api_call(&r);
	if (r.status == PL_SIM_WAIT) {
		if (!w) {
			struct timeval tv;

			w = pl_calloc(1, sizeof(*w));
			w->sim = s;
			w->req = req;
			w->m = m;
			w->path = pl_strdup(path);
			w->params = json_incref(params);
			w->user = pl_strdup(r.user);
			w->delay = delay;
			w->ev = evtimer_new(s->base, waiter_timeout, w);
			tv.tv_sec = s->opts.lock_wait_ms / 1000;
			tv.tv_usec = (s->opts.lock_wait_ms % 1000) * 1000;
			evtimer_add(w->ev, &tv);
		}
		free(w->reason);
		w->reason = pl_strdup(r.reason ? r.reason : "got timeout");
		w->vmid = r.wait_vmid;
		w->next = s->waiters;
		s->waiters = w;
		req_release(&r);
		return;
	}
	if (m->meth != PL_SIM_GET)
		s->gen++;
	pl_sim_send_result(s, req, &r, delay);
	req_release(&r);
	if (w)
		waiter_free(w);
}

void
pl_sim_lock_released(struct pl_sim *s, uint32_t vmid)
{
	struct pl_sim_waiter *ready = NULL, **tail = &ready, **pp = &s->waiters;

	/* take this guest's waiters out (the list is newest first: reverse) */
	while (*pp) {
		struct pl_sim_waiter *w = *pp;

		if (w->vmid == vmid) {
			*pp = w->next;
			w->next = ready;
			ready = w;
		} else {
			pp = &w->next;
		}
	}
	(void)tail;
	while (ready) {
		struct pl_sim_waiter *w = ready;

		ready = w->next;
		w->next = NULL;
		run_call(s, w->req, w->m, w->path, w->params, w->user, w->delay, w);
	}
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct pl_sim *s = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *rawpath = evhttp_uri_get_path(uri);
	const char *query = evhttp_uri_get_query(uri);
	struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct pl_sim_path *sp;
	const struct pl_sim_method *m;
	json_t *params = json_object(), *vars = NULL, *errors = NULL;
	char *path = NULL, *user = NULL, msg[512];
	const char *k;
	json_t *v;
	enum pl_sim_meth meth;
	bool token = false;
	int delay = s->faults.latency_ms;
	struct pl_sim_req r;

	memset(&r, 0, sizeof(r));
	pl_buf_init(&r.raw, 0);
	switch (cmd) {
	case EVHTTP_REQ_GET: meth = PL_SIM_GET; break;
	case EVHTTP_REQ_POST: meth = PL_SIM_POST; break;
	case EVHTTP_REQ_PUT: meth = PL_SIM_PUT; break;
	case EVHTTP_REQ_DELETE: meth = PL_SIM_DELETE; break;
	default:
		pl_sim_reply_json(s, req, 501, "Method not implemented", NULL, 0);
		goto out;
	}
	if (!rawpath || !pl_str_startswith(rawpath, "/api2/json")) {
		pl_sim_reply_json(s, req, 501, "no such uri", NULL, 0);
		goto out;
	}
	{
		char *dec = evhttp_uridecode(rawpath + strlen("/api2/json"), 0, NULL);

		path = pl_strdup(dec && *dec ? dec : "/");
		free(dec);
		/* collapse "//" as PVE's path split does */
		for (char *p = path; *p; p++)
			while (p[0] == '/' && p[1] == '/')
				memmove(p, p + 1, strlen(p));
		if (strlen(path) > 1 && path[strlen(path) - 1] == '/')
			path[strlen(path) - 1] = 0;
	}
	/* authentication, before anything of the request is parsed */
	if (!public_call(meth, path)) {
		const char *cookie = evhttp_find_header(ih, "Cookie");
		const char *authz = evhttp_find_header(ih, "Authorization");
		char *ticket = cookie ? pl_sim_auth_value(cookie, "PVEAuthCookie") : NULL;

		if (!ticket && authz)
			ticket = pl_sim_auth_value(authz, "PVEAuthCookie");
		if (ticket) {
			user = pl_sim_ticket_check(s, ticket);
			free(ticket);
			if (!user) {
				pl_sim_reply_401(s, req, "Authentication failed!");
				goto out;
			}
			if (meth != PL_SIM_GET &&
			    !pl_sim_csrf_check(s, user,
					       evhttp_find_header(ih, "CSRFPreventionToken"))) {
				pl_sim_reply_401(s, req, "Permission denied - invalid csrf token");
				goto out;
			}
		} else if (authz && (ticket = pl_sim_auth_value(authz, "PVEAPIToken")) != NULL) {
			user = pl_sim_access_token_auth(s, ticket);
			token = true;
			pl_free_secret(ticket);
			if (!user) {
				pl_sim_reply_401(s, req, "Authentication failed!");
				goto out;
			}
		} else {
			pl_sim_reply_401(s, req, "No ticket");
			goto out;
		}
	}

	if ((query && parse_form(query, params) != 0) || parse_body(req, params) != 0) {
		pl_sim_reply_json(s, req, 400, "Parameter verification failed.", NULL, 0);
		goto out;
	}

	/* routing */
	sp = pl_sim_route(s->schema, path, &vars);
	m = sp ? sp->methods[meth] : NULL;
	if (!m) {
		snprintf(msg, sizeof(msg), "Method '%s %s' not implemented", pl_sim_meth_name(meth),
			 path);
		pl_sim_reply_json(s, req, 501, msg, NULL, 0);
		goto out;
	}
	if (token && !m->allowtoken) {
		snprintf(msg, sizeof(msg),
			 "Permission check failed (URI '%s' not available with API token, need "
			 "proper ticket.)",
			 path);
		pl_sim_reply_json(s, req, 403, msg, NULL, delay);
		goto out;
	}
	json_object_foreach(vars, k, v)
		json_object_set(params, k, v);
	errors = json_object();
	if (pl_sim_validate(m, params, errors) > 0) {
		pl_sim_reply_json(s, req, 400, "Parameter verification failed.", errors, delay);
		goto out;
	}
	if (user) { /* RPCEnvironment::check_api2_permissions */
		char *denied = pl_sim_access_check(s,
						   json_object_get(m->def, "permissions") ?
							   json_object_get(m->def, "permissions") :
							   m->def,
						   user, params);

		if (denied) {
			pl_sim_reply_json(s, req, 403, denied, NULL, delay);
			free(denied);
			goto out;
		}
	}
	if (!strcmp(path, "/access/ticket") && meth == PL_SIM_POST) {
		pl_sim_login(s, req, params);
		goto out;
	}

	/* faults (not on the login itself) */
	if (s->faults.reset > 0 && pl_sim_rand01(s) < s->faults.reset) {
		pl_sim_reply(s, req, 500, "reset", NULL, 0, true);
		goto out;
	}
	if (s->faults.timeout > 0 && pl_sim_rand01(s) < s->faults.timeout) {
		pl_sim_std_headers(s, req, true);
		pl_sim_reply(s, req, 596, "Connection timed out", NULL, PL_SIM_TIMEOUT_HOLD_MS,
			     true);
		goto out;
	}
	if (s->faults.error > 0 && pl_sim_rand01(s) < s->faults.error) {
		pl_sim_reply_json(s, req, 500, "simulated failure (pvelab sim --faults)", NULL,
				  delay);
		goto out;
	}
	if (s->faults.noanswer > 0 && !strncmp(path, "/nodes/", 7) &&
	    pl_sim_rand01(s) < s->faults.noanswer) {
		pl_sim_reply_json(s, req, 595, "No route to host", NULL, delay);
		goto out;
	}

	run_call(s, req, m, path, params, user, delay, NULL);
out:
	req_release(&r);
	json_decref(params);
	json_decref(vars);
	json_decref(errors);
	free(path);
	free(user);
}

/* --- TLS and listening --- */

static struct bufferevent *
ssl_bevcb(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);

	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

static int
tls_setup(struct pl_sim *s, const char *host, char **errmsg)
{
	EVP_PKEY *key = pl_x509_new_key();
	const char *sans[] = { host, "localhost", "127.0.0.1", NULL };
	X509 *cert;
	SSL_CTX *ctx;

	if (!key)
		return pl_seterr(errmsg, PL_ETLS, "cannot generate a TLS key");
	cert = pl_x509_issue(key, s->nnodes ? s->nodes[0].name : "pve", sans, 3650, false, NULL,
			     NULL, errmsg);
	if (!cert) {
		EVP_PKEY_free(key);
		return PL_ETLS;
	}
	pl_x509_fingerprint(cert, s->fingerprint);
	ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (!ctx || SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
		SSL_CTX_free(ctx);
		X509_free(cert);
		EVP_PKEY_free(key);
		return pl_seterr(errmsg, PL_ETLS, "cannot set up TLS");
	}
	X509_free(cert);
	EVP_PKEY_free(key);
	s->ssl_ctx = ctx;
	evhttp_set_bevcb(s->http, ssl_bevcb, ctx);
	return 0;
}

int
pl_sim_server_start(struct pl_sim *s, char **errmsg)
{
	const char *listen = s->opts.listen;
	const char *colon = strrchr(listen, ':');
	char host[256];
	long long port;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd;
	int r;

	if (!colon || (size_t)(colon - listen) >= sizeof(host) ||
	    pl_str_to_ll(colon + 1, 0, 65535, &port) != 0)
		return pl_seterr(errmsg, PL_EUSAGE, "bad --listen '%s' (want HOST:PORT)", listen);
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	s->http = evhttp_new(s->base);
	evhttp_set_timeout(s->http, 60);
	evhttp_set_max_body_size(s->http, 16 << 20);
	evhttp_set_max_headers_size(s->http, 64 << 10); /* an unauthenticated client's flood */
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						    EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(s->http, on_request, s);
	if (!s->opts.no_tls && (r = tls_setup(s, host, errmsg)) != 0)
		return r;
	s->sock = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port);
	if (!s->sock)
		return pl_seterr(errmsg, PL_ECONNECT, "cannot listen on '%s' (in use? bad address?)",
				 listen);
	fd = evhttp_bound_socket_get_fd(s->sock);
	{
		/* accepted sockets inherit it: no Nagle + delayed-ACK 40 ms stalls
		 * between a TLS record with the headers and one with the body */
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	snprintf(s->url, sizeof(s->url), "%s://%s%s%s:%lld", s->opts.no_tls ? "http" : "https",
		 strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
	return faults_parse(s->opts.faults, &s->faults, errmsg);
}

void
pl_sim_server_stop(struct pl_sim *s)
{
	/* answer whatever is held back, then close everything */
	while (s->waiters) {
		struct pl_sim_waiter *w = s->waiters;

		s->waiters = w->next;
		pl_sim_reply_json(s, w->req, 500, w->reason, NULL, 0);
		waiter_free(w);
	}
	pl_sim_held_flush(s);
	if (s->http)
		evhttp_free(s->http);
	s->http = NULL;
	if (s->ssl_ctx)
		SSL_CTX_free(s->ssl_ctx);
	s->ssl_ctx = NULL;
	for (size_t i = 0; i < PL_ARRAY_LEN(s->rescache); i++) {
		pl_sim_blob_unref(s->rescache[i].body);
		s->rescache[i].body = NULL;
	}
}