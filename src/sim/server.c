/*
 * The simulator's HTTP(S) front: evhttp with bufferevent_openssl, PVE's
 * authentication (tickets + CSRF, API tokens), the wire shapes (envelope,
 * reason phrase, error bodies, headers), held replies and fault injection.
 */
#include "core/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <time.h>
#include <zlib.h>

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/x509.h"
#include "sim/internal.h"

#define PL_SIM_TICKET_LIFETIME (2 * 3600)
#define PL_SIM_TIMEOUT_HOLD_MS 120000
#define PL_SIM_TLS_RECORD 16384 /* the most plaintext one TLS record carries */
#define PL_SIM_WRITE_NOW 15000  /* below bufferevent_openssl's write frame */

struct pl_sim_pending {
	struct pl_sim_pending *next;
	struct pl_sim *sim;
	struct evhttp_request *req;
	int status;
	char *reason;
	struct evbuffer *body;
	struct event *ev;
	bool reset; /* close the connection instead of answering */
};

/* --- replies --- */

/* The HTTP date of this second ("Sun, 22 Nov 2026 04:54:08 GMT"), formatted
 * once per second. */
static const char *
http_date(struct pl_sim *s)
{
	time_t now = time(NULL);

	if (now != s->date_t) {
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		s->date_t = now;
	}
	return s->date;
}

static void
add_std_headers(struct pl_sim *s, struct evhttp_request *req, bool json)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Server", "pve-api-daemon/3.0");
	evhttp_add_header(h, "Cache-Control", "max-age=0");
	evhttp_add_header(h, "Pragma", "no-cache");
	evhttp_add_header(h, "Expires", http_date(s));
	if (json)
		evhttp_add_header(h, "Content-Type", "application/json;charset=UTF-8");
}

/* Send the reply now: the Date header as evhttp would add it (without
 * formatting it again), and a reply that fits one TLS record joined into one
 * buffer chain, since bufferevent_openssl passes each chain to SSL_write on
 * its own: headers and body would be two records in two write(2)s.
 *
 * bufferevent_openssl on a socket writes only when the socket reports it is
 * writable, a loop turn later: two epoll_ctl and a wakeup per request. A
 * reply this small is written here instead, and the bufferevent told its
 * output drained, which is how evhttp learns the reply is out. Anything not
 * written stays for the bufferevent, which retries it whole: the length is
 * below its write frame. Telling it may finish the request and free the
 * connection, so the bufferevent is held. */
static void
send_now(struct pl_sim *s, struct evhttp_request *req, int status, const char *reason,
	 struct evbuffer *body)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct evbuffer *out;
	unsigned char *data;
	size_t len;
	int n;

	evhttp_add_header(evhttp_request_get_output_headers(req), "Date", http_date(s));
	evhttp_send_reply(req, status, reason, body);
	if (!bev)
		return;
	out = bufferevent_get_output(bev);
	len = evbuffer_get_length(out);
	if (len > PL_SIM_TLS_RECORD)
		return;
	data = evbuffer_pullup(out, -1);
	if (ssl == NULL || len == 0 || len > PL_SIM_WRITE_NOW)
		return;
	ERR_clear_error();
	if ((n = SSL_write(ssl, data, (int)len)) <= 0)
		return;
	evbuffer_drain(out, (size_t)n);
	bufferevent_incref(bev);
	bufferevent_trigger(bev, EV_WRITE, 0);
	bufferevent_decref(bev);
}

static void
reset_conn(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

	if (fd >= 0) {
		struct linger lg = { 1, 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		shutdown(fd, SHUT_RDWR);
	}
	evhttp_send_reply(req, 500, "connection reset", NULL);
}

static void
pending_send(struct pl_sim_pending *p)
{
	if (p->reset)
		reset_conn(p->req);
	else
		send_now(p->sim, p->req, p->status, p->reason, p->body);
}

static void
pending_free(struct pl_sim_pending *p)
{
	if (p->ev)
		event_free(p->ev);
	if (p->body)
		evbuffer_free(p->body);
	free(p->reason);
	free(p);
}

static void
pending_unlink(struct pl_sim *s, struct pl_sim_pending *p)
{
	for (struct pl_sim_pending **pp = &s->held; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

static void
pending_fire(evutil_socket_t fd, short what, void *arg)
{
	struct pl_sim_pending *p = arg;

	(void)fd;
	(void)what;
	pending_unlink(p->sim, p);
	pending_send(p);
	pending_free(p);
}

/* Send now or after delay_ms; takes body. */
static void
reply(struct pl_sim *s, struct evhttp_request *req, int status, const char *reason,
      struct evbuffer *body, int delay_ms, bool reset)
{
	struct pl_sim_pending *p;
	struct timeval tv;
	char clean[256];
	size_t n = 0;

	/* the reason phrase is the first line of the message */
	for (const char *c = reason; *c && *c != '\n' && n < sizeof(clean) - 1; c++)
		clean[n++] = (*c == '\r') ? ' ' : *c;
	clean[n] = 0;
	if (delay_ms <= 0 && !reset) {
		send_now(s, req, status, clean, body);
		if (body)
			evbuffer_free(body);
		return;
	}
	p = pl_calloc(1, sizeof(*p));
	p->sim = s;
	p->req = req;
	p->status = status;
	p->reason = pl_strdup(clean);
	p->body = body;
	p->reset = reset;
	p->ev = evtimer_new(s->base, pending_fire, p);
	tv.tv_sec = delay_ms / 1000;
	tv.tv_usec = (delay_ms % 1000) * 1000;
	evtimer_add(p->ev, &tv);
	p->next = s->held;
	s->held = p;
}

static void
reply_json(struct pl_sim *s, struct evhttp_request *req, int status, const char *msg,
	   json_t *errors, int delay_ms)
{
	struct evbuffer *b = evbuffer_new();
	json_t *o = json_object();
	char *text;

	json_object_set_new(o, "data", json_null());
	if (errors)
		json_object_set(o, "errors", errors);
	if (msg && status != 200) {
		char *m = pl_str_endswith(msg, "\n") ? pl_strdup(msg) : pl_asprintf("%s\n", msg);

		json_object_set_new(o, "message", json_string(m));
		free(m);
	}
	text = json_dumps(o, JSON_COMPACT);
	evbuffer_add(b, text, strlen(text));
	free(text);
	json_decref(o);
	add_std_headers(s, req, true);
	reply(s, req, status, msg ? msg : "OK", b, delay_ms, false);
}

/* 401 from the auth handler: reason phrase only, empty body, delayed. */
static void
reply_401(struct pl_sim *s, struct evhttp_request *req, const char *msg)
{
	add_std_headers(s, req, false);
	reply(s, req, 401, msg, NULL, s->opts.auth_delay_ms, false);
}

/* --- tickets, CSRF, tokens --- */

static void
hmac_b64(struct pl_sim *s, const char *data, char out[64])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char b64[96];
	int n;

	HMAC(EVP_sha256(), s->key, sizeof(s->key), (const unsigned char *)data, strlen(data), md,
	     &mdlen);
	n = EVP_EncodeBlock(b64, md, (int)mdlen);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	if (n > 63)
		n = 63;
	memcpy(out, b64, (size_t)n);
	out[n] = 0;
}

static char *
ticket_new(struct pl_sim *s, const char *user)
{
	char sig[64], *plain, *t;

	plain = pl_asprintf("PVE:%s:%08X", user, (unsigned)time(NULL));
	hmac_b64(s, plain, sig);
	t = pl_asprintf("%s::%s", plain, sig);
	free(plain);
	return t;
}

static char *
csrf_new(struct pl_sim *s, const char *user, unsigned ts)
{
	char sig[64], *plain, *t;

	plain = pl_asprintf("%08X:%s", ts, user);
	hmac_b64(s, plain, sig);
	t = pl_asprintf("%08X:%s", ts, sig);
	free(plain);
	return t;
}

/* The user of a valid ticket (caller frees), or NULL. */
static char *
ticket_check(struct pl_sim *s, const char *ticket)
{
	const char *sep = strstr(ticket, "::");
	char *plain, sig[64], *user = NULL;
	unsigned ts = 0;
	const char *colon;

	if (!pl_str_startswith(ticket, "PVE:") || !sep)
		return NULL;
	plain = pl_strndup(ticket, (size_t)(sep - ticket));
	hmac_b64(s, plain, sig);
	colon = strrchr(plain, ':');
	if (strcmp(sig, sep + 2) == 0 && colon && sscanf(colon + 1, "%8X", &ts) == 1 &&
	    (long long)time(NULL) - (long long)ts < PL_SIM_TICKET_LIFETIME &&
	    (long long)ts - (long long)time(NULL) < 300)
		user = pl_strndup(plain + 4, (size_t)(colon - plain - 4));
	free(plain);
	return user;
}

static bool
csrf_check(struct pl_sim *s, const char *user, const char *token)
{
	unsigned ts;
	char *want;
	bool ok;

	if (!token || sscanf(token, "%8X:", &ts) != 1)
		return false;
	if ((long long)time(NULL) - (long long)ts > PL_SIM_TICKET_LIFETIME)
		return false;
	want = csrf_new(s, user, ts);
	ok = strcmp(want, token) == 0;
	free(want);
	return ok;
}

/* Value of NAME in a cookie/authorization header: (?:^|\s)NAME(?:=| )([^;]*) */
static char *
auth_value(const char *hdr, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = hdr; (p = strstr(p, name)) != NULL; p++) {
		if ((p == hdr || isspace((unsigned char)p[-1]) || p[-1] == ';') &&
		    (p[n] == '=' || p[n] == ' ')) {
			const char *v = p + n + 1;
			size_t len = strcspn(v, ";");
			char *raw = pl_strndup(v, len), *out = evhttp_uridecode(raw, 0, NULL);

			free(raw);
			if (!out)
				return NULL;
			raw = pl_strdup(out);
			free(out);
			return raw;
		}
	}
	return NULL;
}

/* Whether an API token value is "ID=SECRET". */
static bool
token_is(const char *value, const char *id, const char *secret)
{
	size_t n = strlen(id);

	return !strncmp(value, id, n) && value[n] == '=' && !strcmp(value + n + 1, secret);
}

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
		else {
			r = pl_seterr(errmsg, PL_EINVAL,
				      "unknown fault '%s' (known: error, timeout, reset, latency, "
				      "lockwait, noanswer, truncate)",
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

static const char *
perm_text(const struct pl_sim_method *m, const json_t *params, char *buf, size_t len)
{
	const json_t *check = json_object_get(m->def, "check");
	const char *path = json_string_value(json_array_get(check, 1));
	const json_t *privs = json_array_get(check, 2);
	struct pl_buf b;

	if (!json_is_array(check) || !path ||
	    !json_is_string(json_array_get(check, 0)) ||
	    strcmp(json_string_value(json_array_get(check, 0)), "perm") != 0) {
		snprintf(buf, len, "Permission check failed");
		return buf;
	}
	pl_buf_init(&b, 4096);
	for (const char *p = path; *p; p++) {
		if (*p == '{') {
			const char *e = strchr(p, '}');
			char name[64];

			if (e && (size_t)(e - p - 1) < sizeof(name)) {
				memcpy(name, p + 1, (size_t)(e - p - 1));
				name[e - p - 1] = 0;
				pl_buf_addstr(&b, pl_json_str_or(params, name, ""));
				p = e;
				continue;
			}
		}
		pl_buf_addch(&b, *p);
	}
	if (json_is_array(privs)) {
		size_t i;
		json_t *v;

		pl_buf_addstr(&b, ", ");
		json_array_foreach(privs, i, v) {
			if (i)
				pl_buf_addstr(&b, " | ");
			if (json_is_string(v))
				pl_buf_addstr(&b, json_string_value(v));
		}
	}
	snprintf(buf, len, "Permission check failed (%s)", b.data);
	pl_buf_release(&b);
	return buf;
}

static bool
public_call(enum pl_sim_meth m, const char *path)
{
	return (!strcmp(path, "/access/ticket") && (m == PL_SIM_GET || m == PL_SIM_POST)) ||
	       (!strcmp(path, "/access/domains") && m == PL_SIM_GET);
}

static void
handle_ticket(struct pl_sim *s, struct evhttp_request *req, json_t *params)
{
	const char *user = pl_json_str(params, "username");
	const char *pw = pl_json_str(params, "password");
	const char *realm = pl_json_str(params, "realm");
	char *full = NULL, *tuser = NULL, *ticket, *csrf;
	json_t *o;
	struct evbuffer *b;
	char *text;

	if (user && realm && !strchr(user, '@'))
		full = pl_asprintf("%s@%s", user, realm);
	else
		full = pl_strdup(user ? user : "");
	if (pw && pl_str_startswith(pw, "PVE:"))
		tuser = ticket_check(s, pw);
	if (strcmp(full, "root@pam") != 0 ||
	    !(pw && ((tuser && !strcmp(tuser, full)) || !strcmp(pw, s->password)))) {
		free(full);
		free(tuser);
		add_std_headers(s, req, true);
		b = evbuffer_new();
		evbuffer_add_printf(b, "{\"data\":null,\"message\":\"authentication failure\\n\"}");
		reply(s, req, 401, "authentication failure", b, s->opts.auth_delay_ms, false);
		return;
	}
	ticket = ticket_new(s, full);
	csrf = csrf_new(s, full, (unsigned)time(NULL));
	o = json_pack("{s:{s:s,s:s,s:s,s:s,s:{s:{s:i},s:{s:i},s:{s:i},s:{s:i},s:{s:i}}}}", "data",
		      "username", full, "ticket", ticket, "CSRFPreventionToken", csrf,
		      "clustername", s->clustername, "cap", "vms", "VM.Allocate", 1, "storage",
		      "Datastore.Allocate", 1, "nodes", "Sys.Modify", 1, "access",
		      "User.Modify", 1, "dc", "Sys.Audit", 1);
	text = json_dumps(o, JSON_COMPACT);
	b = evbuffer_new();
	evbuffer_add(b, text, strlen(text));
	add_std_headers(s, req, true);
	reply(s, req, 200, "OK", b, 0, false);
	free(text);
	json_decref(o);
	free(ticket);
	free(csrf);
	free(full);
	free(tuser);
}

/* gzip as PVE's server does for bodies over 1 KiB when the client accepts it. */
static struct pl_sim_blob *
gzip_data(const char *data, size_t len)
{
	z_stream z;
	struct pl_sim_blob *bl;
	size_t cap;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	cap = deflateBound(&z, (uLong)len);
	bl = pl_malloc(sizeof(*bl) + cap);
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)bl->data;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(bl);
		return NULL;
	}
	bl->refs = 1;
	bl->len = z.total_out;
	bl->gz = NULL;
	deflateEnd(&z);
	return bl;
}

static bool
accepts_gzip(struct evhttp_request *req)
{
	const char *ae = evhttp_find_header(evhttp_request_get_input_headers(req),
					    "Accept-Encoding");

	return ae && strstr(ae, "gzip");
}

static void
blob_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	pl_sim_blob_unref(arg);
}

static void
send_result(struct pl_sim *s, struct evhttp_request *req, struct pl_sim_req *r, int delay)
{
	struct evbuffer *b;
	struct pl_sim_blob *bl;

	if (r->status != 200) {
		reply_json(s, req, r->status, r->reason ? r->reason : "internal error", r->errors,
			   delay + r->delay_ms);
		return;
	}
	b = evbuffer_new();
	add_std_headers(s, req, true);
	if (r->raw.len) {
		evbuffer_add(b, r->raw.data, r->raw.len);
		reply(s, req, 200, "OK", b, delay, false);
		return;
	}
	if (!r->blob)
		r->blob = pl_sim_blob_from_data(r->data, r->top);
	bl = r->blob;
	if (bl->len > 1024 && accepts_gzip(req)) {
		if (!bl->gz)
			bl->gz = gzip_data(bl->data, bl->len);
		if (bl->gz) {
			bl = bl->gz;
			evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Encoding",
					  "gzip");
		}
	}
	if (r->blob->len > 4096 && s->faults.truncate > 0 &&
	    pl_sim_rand01(s) < s->faults.truncate) {
		/* The answer breaks off: its whole length announced, half of it
		 * sent, the connection closed (a proxy restarting, a cable). */
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		char cl[32];

		snprintf(cl, sizeof(cl), "%zu", bl->len);
		evhttp_remove_header(h, "Connection");
		evhttp_add_header(h, "Connection", "close");
		evhttp_add_header(h, "Content-Length", cl);
		evbuffer_add_reference(b, bl->data, bl->len / 2, blob_cleanup, pl_sim_blob_ref(bl));
		reply(s, req, 200, "OK", b, delay, false);
		return;
	}
	evbuffer_add_reference(b, bl->data, bl->len, blob_cleanup, pl_sim_blob_ref(bl));
	reply(s, req, 200, "OK", b, delay, false);
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
	bool readonly;
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
	reply_json(w->sim, w->req, 500, w->reason, NULL, w->delay);
	waiter_free(w);
}

/* Run a call's handler; a call that must wait for a lock file is parked
 * (w is reused when it is a retry) until the lock is free or time runs out. */
static void
run_call(struct pl_sim *s, struct evhttp_request *req, const struct pl_sim_method *m,
	 const char *path, json_t *params, const char *user, bool readonly, int delay,
	 struct pl_sim_waiter *w)
{
	struct pl_sim_req r;

	memset(&r, 0, sizeof(r));
	pl_buf_init(&r.raw, 0);
	r.sim = s;
	r.m = m;
	r.path = path;
	r.params = params;
	r.user = user ? user : "root@pam";
	r.readonly = readonly;
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
			w->readonly = readonly;
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
	send_result(s, req, &r, delay);
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
		run_call(s, w->req, w->m, w->path, w->params, w->user, w->readonly, w->delay, w);
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
	bool readonly = false, token = false;
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
		reply_json(s, req, 501, "Method not implemented", NULL, 0);
		goto out;
	}
	if (!rawpath || !pl_str_startswith(rawpath, "/api2/json")) {
		reply_json(s, req, 501, "no such uri", NULL, 0);
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
		char *ticket = cookie ? auth_value(cookie, "PVEAuthCookie") : NULL;

		if (!ticket && authz)
			ticket = auth_value(authz, "PVEAuthCookie");
		if (ticket) {
			user = ticket_check(s, ticket);
			free(ticket);
			if (!user) {
				reply_401(s, req, "Authentication failed!");
				goto out;
			}
			if (meth != PL_SIM_GET &&
			    !csrf_check(s, user, evhttp_find_header(ih, "CSRFPreventionToken"))) {
				reply_401(s, req, "Permission denied - invalid csrf token");
				goto out;
			}
		} else if (authz && (ticket = auth_value(authz, "PVEAPIToken")) != NULL) {
			if (token_is(ticket, "root@pam!pvelab", s->token_secret)) {
				user = pl_strdup("root@pam!pvelab");
			} else if (token_is(ticket, "audit@pve!ro", s->ro_secret)) {
				user = pl_strdup("audit@pve!ro");
				readonly = true;
			}
			token = true;
			pl_free_secret(ticket);
			if (!user) {
				reply_401(s, req, "Authentication failed!");
				goto out;
			}
		} else {
			reply_401(s, req, "No ticket");
			goto out;
		}
	}

	if ((query && parse_form(query, params) != 0) || parse_body(req, params) != 0) {
		reply_json(s, req, 400, "Parameter verification failed.", NULL, 0);
		goto out;
	}

	/* routing */
	sp = pl_sim_route(s->schema, path, &vars);
	m = sp ? sp->methods[meth] : NULL;
	if (!m) {
		snprintf(msg, sizeof(msg), "Method '%s %s' not implemented", pl_sim_meth_name(meth),
			 path);
		reply_json(s, req, 501, msg, NULL, 0);
		goto out;
	}
	if (token && !m->allowtoken) {
		snprintf(msg, sizeof(msg),
			 "Permission check failed (URI '%s' not available with API token, need "
			 "proper ticket.)",
			 path);
		reply_json(s, req, 403, msg, NULL, delay);
		goto out;
	}
	json_object_foreach(vars, k, v)
		json_object_set(params, k, v);
	errors = json_object();
	if (pl_sim_validate(m, params, errors) > 0) {
		reply_json(s, req, 400, "Parameter verification failed.", errors, delay);
		goto out;
	}
	if (readonly && meth != PL_SIM_GET) {
		reply_json(s, req, 403, perm_text(m, params, msg, sizeof(msg)), NULL, delay);
		goto out;
	}
	if (!strcmp(path, "/access/ticket") && meth == PL_SIM_POST) {
		handle_ticket(s, req, params);
		goto out;
	}

	/* faults (not on the login itself) */
	if (s->faults.reset > 0 && pl_sim_rand01(s) < s->faults.reset) {
		reply(s, req, 500, "reset", NULL, 0, true);
		goto out;
	}
	if (s->faults.timeout > 0 && pl_sim_rand01(s) < s->faults.timeout) {
		add_std_headers(s, req, true);
		reply(s, req, 596, "Connection timed out", NULL, PL_SIM_TIMEOUT_HOLD_MS, true);
		goto out;
	}
	if (s->faults.error > 0 && pl_sim_rand01(s) < s->faults.error) {
		reply_json(s, req, 500, "simulated failure (pvelab sim --faults)", NULL, delay);
		goto out;
	}
	if (s->faults.noanswer > 0 && !strncmp(path, "/nodes/", 7) &&
	    pl_sim_rand01(s) < s->faults.noanswer) {
		reply_json(s, req, 595, "No route to host", NULL, delay);
		goto out;
	}

	run_call(s, req, m, path, params, user, readonly, delay, NULL);
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
		reply_json(s, w->req, 500, w->reason, NULL, 0);
		waiter_free(w);
	}
	while (s->held) {
		struct pl_sim_pending *p = s->held;

		s->held = p->next;
		pending_send(p);
		pending_free(p);
	}
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
