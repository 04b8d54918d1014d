/*
 * Transport for the Proxmox API: one curl multi handle driven by libevent
 * (socket and timer callbacks), a FIFO of requests with bounded concurrency,
 * auth headers, TLS pinning, retries with jittered backoff and endpoint failover.
 */
#include "core/common.h"
#include "pve/client.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/x509.h"
#include "pve/resp.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define TICKET_RENEW_S (110 * 60) /* tickets live 2 h; renew 10 min early */

struct req {
	struct pl_pve *c;
	struct req *next;          /* queue link */
	struct req *aprev, *anext; /* all live requests */
	char *method;
	char *path;
	char *form; /* urlencoded params */
	bool idempotent;
	bool is_login;
	bool relogged; /* already retried after a fresh login */
	pl_pve_cb cb;
	void *arg;
	int attempt;   /* retries done */
	int ep_tries;  /* endpoints tried for connection failures */
	size_t ep;     /* endpoint this attempt went to */
	CURL *easy;
	struct curl_slist *hdrs;
	struct pl_buf body;
	char reason[256];
	char errbuf[CURL_ERROR_SIZE];
	bool too_big;
	bool timed_out;         /* past the deadline while the body came */
	size_t streamed_len;    /* bytes handed to on_body: held to max_body too */
	struct timespec deadline; /* this attempt's end, checked as bytes arrive */
	struct event retry_ev;
	bool retry_armed;
	pl_pve_body_cb on_body; /* a 200 answer's body goes here as it arrives */
	bool streamed;          /* ...and some of it has: no retry, no parse */
	struct timespec t0;     /* when it was asked, for the observer */
};

struct sock {
	struct event ev;
	struct pl_pve *c;
	curl_socket_t fd;
	short kind; /* the events asked for, to skip needless epoll changes */
};

struct pl_pve {
	struct event_base *base;
	CURLM *multi;
	struct event timer;
	char **eps;
	size_t n_eps;
	size_t ep; /* current endpoint */
	char *token_hdr; /* "Authorization: PVEAPIToken=..." (secret) */
	struct curl_slist *token_hdrs; /* the headers of every token request */
	struct curl_slist *token_write_hdrs; /* token_hdrs, and no Expect: on writes */
	char *username;
	char *password; /* secret */
	char *ticket;   /* secret */
	char *csrf_hdr; /* secret */
	time_t ticket_at;
	bool login_pending;
	char fingerprint[96];
	bool pinned;
	char *ca_file;
	long timeout_ms;
	int concurrency;
	int retries;
	long retry_base_ms;
	size_t max_body;
	bool plain; /* no Accept-Encoding (pl_pve_opts.plain) */
	struct req *qhead, *qtail; /* waiting to be sent */
	struct req *all;           /* every live request, for pl_pve_free */
	struct tw *tasks;          /* task waits in progress */
	int inflight;
	bool added; /* a transfer was added since curl last ran */
	size_t pending; /* requests not yet completed + tasks waited on */
	unsigned long sent;
	unsigned long handshakes, resumed; /* TLS connections made; of them resumed */
	/* What the TLS verify callback saw on the latest handshake. */
	char seen_fp[96];
	char seen_err[128];
	bool pin_mismatch;
	CURL *pool[64];
	size_t npool;
	struct pl_pve *parent; /* of a clone: gets its request count when freed */
	pl_pve_observe_fn obs; /* told of every finished request (a clone's too) */
	void *obs_arg;
	bool interrupted;     /* pl_pve_interrupt: everything fails until pl_pve_resume */
	atomic_bool stop_asked; /* the same, for its clones' threads to read */
	struct event fail_ev; /* fails what was asked while interrupted, from the loop */
	bool fail_armed;
};

struct tw {
	struct pl_pve *c;
	struct tw *next;
	char *upid;
	char node[64];
	long timeout_ms;
	struct timespec t0;
	int polls;
	struct event ev;
	bool armed;
	pl_pve_task_cb cb;
	void *arg;
	char *exitstatus;
	bool bad; /* not a UPID: fails from the loop, never inside pl_pve_task_wait */
};

static int ssl_idx = -1;  /* SSL_CTX -> its client */
static int conn_idx = -1; /* SSL -> counted already */
static void tw_free(struct tw *t);

static void pump(struct pl_pve *c);
static void start(struct req *q);

static double
rnd01(void)
{
	uint32_t v;

	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = (uint32_t)rand();
	return (double)v / 4294967296.0;
}

char *
pl_pve_endpoint_norm(const char *in, char **errmsg)
{
	const char *h = in;
	size_t n;
	char *host, *r;

	if (in == NULL || *in == '\0') {
		pl_seterr(errmsg, PL_EINVAL, "empty endpoint");
		return NULL;
	}
	if (strncasecmp(h, "https://", 8) == 0)
		h += 8;
	else if (strstr(h, "://")) {
		pl_seterr(errmsg, PL_EINVAL, "endpoint '%s' must use https://", in);
		return NULL;
	}
	n = strcspn(h, "/?#");
	if (n == 0) {
		pl_seterr(errmsg, PL_EINVAL, "endpoint '%s' has no host", in);
		return NULL;
	}
	host = pl_strndup(h, n);
	/* host, host:port, [v6], [v6]:port */
	if (host[0] == '[') {
		char *e = strchr(host, ']');

		if (e == NULL || (e[1] != '\0' && e[1] != ':')) {
			pl_seterr(errmsg, PL_EINVAL, "endpoint '%s' is not a valid URL", in);
			free(host);
			return NULL;
		}
		r = e[1] == ':' ? pl_asprintf("https://%s", host) :
				  pl_asprintf("https://%s:8006", host);
	} else if (strchr(host, ':')) {
		r = pl_asprintf("https://%s", host);
	} else {
		r = pl_asprintf("https://%s:8006", host);
	}
	free(host);
	return r;
}

/* ---- libevent <-> curl glue ---- */

static void check_done(struct pl_pve *c);

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pl_pve *c = arg;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

/* curl asks for a timer: never act from inside this callback, schedule it. */
static int
curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct pl_pve *c = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(&c->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(&c->timer, &tv);
	return 0;
}

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pl_pve *c = arg;
	int action = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;

	curl_multi_socket_action(c->multi, fd, action, &running);
	check_done(c);
}

static int
curl_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct pl_pve *c = userp;
	struct sock *sk = socketp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (sk) {
			event_del(&sk->ev);
			free(sk);
			curl_multi_assign(c->multi, s, NULL);
		}
		return 0;
	}
	kind = (short)(EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
		       (what & CURL_POLL_OUT ? EV_WRITE : 0));
	if (sk == NULL) {
		sk = pl_calloc(1, sizeof(*sk));
		sk->c = c;
		sk->fd = s;
		curl_multi_assign(c->multi, s, sk);
	} else {
		if (sk->kind == kind)
			return 0;
		event_del(&sk->ev);
	}
	sk->kind = kind;
	event_assign(&sk->ev, c->base, s, kind, sock_cb, c);
	event_add(&sk->ev, NULL);
	return 0;
}

/* ---- TLS: record the leaf fingerprint; enforce the pin ---- */

static int
verify_cb(int preverify_ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	SSL_CTX *sctx = ssl ? SSL_get_SSL_CTX(ssl) : NULL;
	struct pl_pve *c = sctx ? SSL_CTX_get_ex_data(sctx, ssl_idx) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);

	if (c == NULL || leaf == NULL)
		return preverify_ok;
	pl_x509_fingerprint(leaf, c->seen_fp);
	if (!c->pinned) {
		if (!preverify_ok)
			snprintf(c->seen_err, sizeof(c->seen_err), "%s",
				 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
		return preverify_ok;
	}
	/* Pinned: the chain does not matter, only the leaf's hash does. */
	if (strcmp(c->seen_fp, c->fingerprint) != 0) {
		c->pin_mismatch = true;
		return 0;
	}
	return 1;
}

/* Count each connection's handshake once: in TLS 1.3 a ticket that arrives
 * later reports a handshake done again. */
static void
info_cb(const SSL *ssl, int where, int ret)
{
	SSL *s = (SSL *)ssl;
	struct pl_pve *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ssl_idx);

	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_DONE) || c == NULL || SSL_get_ex_data(s, conn_idx))
		return;
	SSL_set_ex_data(s, conn_idx, c);
	c->handshakes++;
	if (SSL_session_reused(s))
		c->resumed++;
}

static CURLcode
sslctx_cb(CURL *e, void *sslctx, void *parm)
{
	struct pl_pve *c = parm;
	SSL_CTX *ctx = sslctx;

	SSL_CTX_set_ex_data(ctx, ssl_idx, c);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	SSL_CTX_set_info_callback(ctx, info_cb);
	return CURLE_OK;
}

/* ---- requests ---- */

static void
form_add(struct pl_buf *b, CURL *esc, const char *k, const json_t *v)
{
	char num[64];
	const char *s;
	char *ek, *ev;

	if (json_is_string(v))
		s = json_string_value(v);
	else if (json_is_integer(v))
		s = (snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v)), num);
	else if (json_is_real(v))
		s = (snprintf(num, sizeof(num), "%.17g", json_real_value(v)), num);
	else if (json_is_boolean(v))
		s = json_is_true(v) ? "1" : "0";
	else
		return;
	ek = curl_easy_escape(esc, k, 0);
	ev = curl_easy_escape(esc, s, 0);
	pl_buf_addf(b, "%s%s=%s", b->len ? "&" : "", ek, ev);
	curl_free(ek);
	curl_free(ev);
}

static char *
form_encode(CURL *esc, const json_t *params)
{
	struct pl_buf b;
	const char *k;
	json_t *v;

	pl_buf_init(&b, 0);
	json_object_foreach((json_t *)params, k, v) {
		if (json_is_array(v)) {
			size_t i;
			json_t *e;

			json_array_foreach(v, i, e)
				form_add(&b, esc, k, e);
		} else {
			form_add(&b, esc, k, v);
		}
	}
	return pl_buf_detach(&b, NULL);
}

/* A pooled handle must not keep pointers into a freed request. */
static void
unpoint(CURL *e)
{
	curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
}

static void
req_free(struct req *q)
{
	struct pl_pve *c = q->c;

	if (q->retry_armed)
		event_del(&q->retry_ev);
	if (q->easy) {
		curl_multi_remove_handle(c->multi, q->easy);
		if (c->npool < PL_ARRAY_LEN(c->pool)) {
			unpoint(q->easy);
			c->pool[c->npool++] = q->easy;
		} else {
			curl_easy_cleanup(q->easy);
		}
	}
	curl_slist_free_all(q->hdrs);
	pl_buf_release(&q->body);
	free(q->method);
	free(q->path);
	if (q->form && q->is_login)
		explicit_bzero(q->form, strlen(q->form));
	free(q->form);
	if (q->aprev)
		q->aprev->anext = q->anext;
	else
		c->all = q->anext;
	if (q->anext)
		q->anext->aprev = q->aprev;
	free(q);
}

static void
enqueue(struct pl_pve *c, struct req *q, bool front)
{
	q->next = NULL;
	if (front) {
		q->next = c->qhead;
		c->qhead = q;
		if (c->qtail == NULL)
			c->qtail = q;
	} else {
		if (c->qtail)
			c->qtail->next = q;
		else
			c->qhead = q;
		c->qtail = q;
	}
}

static struct req *
req_new(struct pl_pve *c, const char *method, const char *path, const json_t *params, pl_pve_cb cb,
	void *arg)
{
	struct req *q = pl_calloc(1, sizeof(*q));

	q->c = c;
	if (c->obs)
		clock_gettime(CLOCK_MONOTONIC, &q->t0);
	q->method = pl_strdup(method);
	q->path = pl_strdup(path);
	q->idempotent = !strcmp(method, "GET");
	q->cb = cb;
	q->arg = arg;
	pl_buf_init(&q->body, c->max_body);
	q->anext = c->all;
	if (c->all)
		c->all->aprev = q;
	c->all = q;
	if (params && json_object_size(params) > 0) {
		CURL *esc = c->npool ? c->pool[c->npool - 1] : NULL;
		CURL *tmp = esc ? NULL : curl_easy_init();

		q->form = form_encode(esc ? esc : tmp, params);
		if (tmp)
			curl_easy_cleanup(tmp);
	}
	return q;
}

static void
complete(struct req *q, const struct pl_pve_result *res)
{
	struct pl_pve *c = q->c;

	c->pending--;
	if (c->obs) {
		struct timespec t1;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		c->obs(q->method, q->path, res->status, res->err, pl_elapsed_s(&q->t0, &t1),
		       c->obs_arg);
	}
	if (q->cb)
		q->cb(res, q->arg);
	req_free(q);
}

static void
fail_queue(struct pl_pve *c, const struct pl_pve_result *res)
{
	struct req *q;

	while ((q = c->qhead) != NULL) {
		c->qhead = q->next;
		if (c->qhead == NULL)
			c->qtail = NULL;
		complete(q, res);
	}
}

static void
login_done(const struct pl_pve_result *res, void *arg)
{
	struct pl_pve *c = arg;
	const char *t, *csrf;

	c->login_pending = false;
	if (res->err == 0 && (t = pl_json_str(res->data, "ticket")) &&
	    (csrf = pl_json_str(res->data, "CSRFPreventionToken"))) {
		pl_free_secret(c->ticket);
		pl_free_secret(c->csrf_hdr);
		c->ticket = pl_strdup(t);
		c->csrf_hdr = pl_asprintf("CSRFPreventionToken: %s", csrf);
		c->ticket_at = time(NULL);
		pump(c);
		return;
	}
	if (res->err == 0) {
		struct pl_pve_result bad = *res;

		bad.err = PL_EAUTH;
		bad.errmsg = "login answer has no ticket";
		fail_queue(c, &bad);
		return;
	}
	fail_queue(c, res);
}

/* Append s percent-encoded as curl_easy_escape does (all but A-Z a-z 0-9
 * - . _ ~); out has room for 3 * strlen(s). Returns the end. */
static char *
form_escape(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			*out++ = (char)*p;
		} else {
			*out++ = '%';
			*out++ = hex[*p >> 4];
			*out++ = hex[*p & 15];
		}
	}
	return out;
}

/* The login form, escaped straight into one allocation of the largest size
 * it can need, so that the secret (the password, or the ticket that renews
 * itself) leaves no copy behind: no JSON string, no buffer grown by realloc,
 * no escaped copy inside curl. req_free wipes the form. */
static char *
login_form(struct pl_pve *c)
{
	const char *secret = c->ticket ? c->ticket : c->password;
	char *form = pl_malloc(sizeof("username=&password=") + 3 * strlen(c->username) +
			       3 * strlen(secret));
	char *p = form;

	memcpy(p, "username=", 9);
	p = form_escape(p + 9, c->username);
	memcpy(p, "&password=", 10);
	p = form_escape(p + 10, secret);
	*p = '\0';
	return form;
}

static void
start_login(struct pl_pve *c)
{
	struct req *q = req_new(c, "POST", "/access/ticket", NULL, login_done, c);

	q->form = login_form(c);
	q->is_login = true;
	q->idempotent = true; /* logging in twice is harmless */
	c->login_pending = true;
	c->pending++;
	start(q);
}

static void
pump(struct pl_pve *c)
{
	struct req *q;

	if (c->interrupted) {
		if (!c->fail_armed && (c->qhead || c->tasks)) {
			c->fail_armed = true;
			event_active(&c->fail_ev, EV_TIMEOUT, 0);
		}
		return;
	}
	if (c->username && !c->login_pending &&
	    (c->ticket == NULL || time(NULL) - c->ticket_at >= TICKET_RENEW_S) && c->qhead) {
		start_login(c);
		return;
	}
	if (c->login_pending) {
		/* Only the login itself may go (it is re-queued at the front on failover). */
		if ((q = c->qhead) != NULL && q->is_login) {
			c->qhead = q->next;
			if (c->qhead == NULL)
				c->qtail = NULL;
			start(q);
		}
		return;
	}
	while (c->inflight < c->concurrency && (q = c->qhead) != NULL) {
		c->qhead = q->next;
		if (c->qhead == NULL)
			c->qtail = NULL;
		start(q);
	}
}

static size_t
write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct req *q = arg;
	struct timespec now;

	/* curl checks its timeout between reads only: a gzip bomb decompresses
	 * for long inside one. The deadline holds while the bytes come. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (now.tv_sec > q->deadline.tv_sec ||
	    (now.tv_sec == q->deadline.tv_sec && now.tv_nsec > q->deadline.tv_nsec)) {
		q->timed_out = true;
		return 0;
	}
	if (q->on_body) {
		long status = 0;

		curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200) {
			/* Decompressed bytes count against the cap, streamed or not. */
			if (size * n > q->c->max_body - q->streamed_len) {
				q->too_big = true;
				return 0;
			}
			q->streamed_len += size * n;
			q->streamed = true;
			return q->on_body(p, size * n, q->arg) == 0 ? size * n : 0;
		}
	}
	if (pl_buf_add(&q->body, p, size * n) != 0) {
		q->too_big = true;
		return 0;
	}
	return size * n;
}

static size_t
header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct req *q = arg;
	size_t len = size * n;

	/* "HTTP/1.1 500 Reason phrase\r\n": keep the reason (PVE's message). */
	if (len > 5 && !memcmp(p, "HTTP/", 5)) {
		const char *s = memchr(p, ' ', len);
		const char *end = p + len;

		q->reason[0] = '\0';
		if (s && (s = memchr(s + 1, ' ', (size_t)(end - s - 1))) != NULL) {
			size_t rl = (size_t)(end - s - 1);

			while (rl > 0 && (s[rl] == '\r' || s[rl] == '\n'))
				rl--;
			if (rl >= sizeof(q->reason))
				rl = sizeof(q->reason) - 1;
			memcpy(q->reason, s + 1, rl);
			q->reason[rl] = '\0';
			while (rl > 0 && (q->reason[rl - 1] == '\r' || q->reason[rl - 1] == '\n'))
				q->reason[--rl] = '\0';
		}
	}
	return len;
}

/* Whether a proxy variable curl would honour is set. */
static bool
proxy_in_env(void)
{
	static const char *const names[] = { "http_proxy", "https_proxy", "HTTPS_PROXY",
					     "all_proxy", "ALL_PROXY" };

	for (size_t i = 0; i < PL_ARRAY_LEN(names); i++) {
		const char *v = getenv(names[i]);

		if (v && *v)
			return true;
	}
	return false;
}

/* A handle with the options that never change between requests. */
static CURL *
new_easy(struct pl_pve *c)
{
	CURL *e = curl_easy_init();
	bool ctx_ok;

	if (e == NULL)
		pl_die("curl_easy_init failed");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 10000 ? c->timeout_ms : 10000L);
	if (!c->plain) /* curl formats the header on every request */
		curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "pvelab/" PL_VERSION);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	ctx_ok = curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, sslctx_cb) == CURLE_OK &&
		 curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, c) == CURLE_OK;
	if (!proxy_in_env()) {
		/* Else curl reads five proxy variables from the environment per request. */
		curl_easy_setopt(e, CURLOPT_PROXY, "");
		curl_easy_setopt(e, CURLOPT_NOPROXY, "");
	}
	if (c->pinned && ctx_ok) {
		/* Only the callback checks the pin: without it curl verifies as usual
		 * (and refuses a self-signed node) rather than check nothing. */
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
		if (c->ca_file)
			curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	}
	return e;
}

static void
start(struct req *q)
{
	struct pl_pve *c = q->c;
	char *url;
	CURL *e;

	e = c->npool ? c->pool[--c->npool] : new_easy(c);
	q->easy = e;
	q->ep = c->ep;
	pl_buf_reset(&q->body);
	q->too_big = q->timed_out = false;
	q->streamed_len = 0;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &q->deadline);
	q->deadline.tv_sec += c->timeout_ms / 1000;
	q->deadline.tv_nsec += (c->timeout_ms % 1000) * 1000000L;
	if (q->deadline.tv_nsec >= 1000000000L) {
		q->deadline.tv_sec++;
		q->deadline.tv_nsec -= 1000000000L;
	}
	q->reason[0] = q->errbuf[0] = '\0';
	curl_slist_free_all(q->hdrs);
	q->hdrs = NULL;

	if (!strcmp(q->method, "GET") && q->form)
		url = pl_asprintf("%s/api2/json%s?%s", c->eps[q->ep], q->path, q->form);
	else
		url = pl_asprintf("%s/api2/json%s", c->eps[q->ep], q->path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	free(url);
	/* Pooled handles keep the options new_easy() set; these change per request. */
	curl_easy_setopt(e, CURLOPT_PRIVATE, q);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
	curl_easy_setopt(e, CURLOPT_COOKIE, NULL);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
	if (strcmp(q->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
		if (strcmp(q->method, "DELETE") == 0 && q->form) {
			/* DELETE carries its parameters in the query. */
			char *u = pl_asprintf("%s/api2/json%s?%s", c->eps[q->ep], q->path, q->form);

			curl_easy_setopt(e, CURLOPT_URL, u);
			free(u);
		} else {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->form ? q->form : "");
		}
	}
	if (c->token_hdrs) {
		/* Token auth: the same headers on every request. curl writes each
		 * custom header through its printf, so a GET carries only this one. */
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, strcmp(q->method, "GET") == 0
								? c->token_hdrs
								: c->token_write_hdrs);
		goto add;
	}
	/* No "Expect: 100-continue" before a form body: PVE does not answer it. */
	q->hdrs = curl_slist_append(q->hdrs, "Expect:");
	if (c->ticket && !q->is_login) {
		char *ck = pl_asprintf("PVEAuthCookie=%s", c->ticket);

		curl_easy_setopt(e, CURLOPT_COOKIE, ck);
		pl_free_secret(ck);
		if (strcmp(q->method, "GET") != 0)
			q->hdrs = curl_slist_append(q->hdrs, c->csrf_hdr);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->hdrs);
add:
	c->inflight++;
	c->sent++;
	pl_log(PL_LOG_TRACE, "pve: %s %s%s", q->method, c->eps[q->ep], q->path);
	if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
		pl_die("curl_multi_add_handle failed");
	c->added = true;
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct req *q = arg;

	q->retry_armed = false;
	enqueue(q->c, q, true);
	pump(q->c);
}

static void
schedule_retry(struct req *q, long delay_ms)
{
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	evtimer_assign(&q->retry_ev, q->c->base, retry_cb, q);
	q->retry_armed = true;
	evtimer_add(&q->retry_ev, &tv);
}

static bool
conn_failure(CURLcode cc)
{
	return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
	       cc == CURLE_COULDNT_RESOLVE_PROXY;
}

static bool
transient(CURLcode cc)
{
	return cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING ||
	       cc == CURLE_PARTIAL_FILE || cc == CURLE_OPERATION_TIMEDOUT ||
	       cc == CURLE_HTTP2 || cc == CURLE_HTTP2_STREAM || cc == CURLE_SSL_CONNECT_ERROR;
}

/* Returns true when the request was re-queued. */
static bool
maybe_retry(struct req *q, CURLcode cc, long status, const char *msg)
{
	struct pl_pve *c = q->c;
	bool again = false;

	if (cc != CURLE_OK && conn_failure(cc)) {
		/* Never sent: safe for every method. Try the next endpoint. */
		if (c->n_eps > 1 && q->ep_tries + 1 < (int)c->n_eps) {
			if (q->ep == c->ep) {
				c->ep = (c->ep + 1) % c->n_eps;
				pl_log_info("pve: %s unreachable, failing over to %s", c->eps[q->ep],
					    c->eps[c->ep]);
			}
			q->ep_tries++;
			enqueue(c, q, true);
			return true;
		}
		return false;
	}
	if (!q->idempotent || q->attempt >= c->retries)
		return false;
	if (cc != CURLE_OK)
		again = transient(cc) && !c->pin_mismatch;
	else if (status == 502 || status == 503 || status == 504 || status == 595 || status == 596)
		again = true; /* proxy errors, node-to-node timeouts */
	else if (status >= 500 && msg && strstr(msg, "got timeout"))
		again = true; /* lock or cfs timeouts: "can't lock file ... - got timeout" */
	else if (status == 500 && !(msg && (strstr(msg, "does not exist") ||
					     strstr(msg, "not implemented") || strstr(msg, "no such"))))
		again = true; /* a GET that failed on the server side may well pass again */
	if (!again)
		return false;
	q->attempt++;
	schedule_retry(q, pl_pve_backoff_ms(q->attempt, c->retry_base_ms, 2000, rnd01()));
	return true;
}

static void
finish_curl_error(struct req *q, CURLcode cc, struct pl_pve_result *res, char **msg)
{
	struct pl_pve *c = q->c;
	const char *url = c->eps[q->ep];
	const char *detail = q->errbuf[0] ? q->errbuf : curl_easy_strerror(cc);

	if (q->timed_out) {
		res->err = PL_ETIMEOUT;
		*msg = pl_asprintf("'%s %s' on '%s' timed out after %ld ms (is the node "
				   "overloaded? raise cluster.timeout)", q->method, q->path, url,
				   c->timeout_ms);
	} else if (q->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		res->err = PL_ETOOBIG;
		*msg = pl_asprintf("answer to '%s %s' from '%s' is larger than %zu bytes", q->method,
				   q->path, url, c->max_body);
	} else if (c->pinned && c->pin_mismatch &&
		   (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_PEER_FAILED_VERIFICATION)) {
		res->err = PL_ETLS;
		*msg = pl_asprintf("certificate fingerprint mismatch for '%s': expected %s, got %s "
				   "(if the node's certificate was renewed, pin the new one: "
				   "PVELAB_FINGERPRINT=%s or cluster.fingerprint)",
				   url, c->fingerprint, c->seen_fp, c->seen_fp);
	} else if (cc == CURLE_PEER_FAILED_VERIFICATION) {
		res->err = PL_ETLS;
		if (c->seen_fp[0])
			*msg = pl_asprintf("certificate of '%s' is not trusted (%s); its SHA-256 "
					   "fingerprint is %s (pin it: PVELAB_FINGERPRINT=%s or "
					   "cluster.fingerprint, or give cluster.ca_file)",
					   url, c->seen_err[0] ? c->seen_err : detail, c->seen_fp,
					   c->seen_fp);
		else
			*msg = pl_asprintf("certificate of '%s' is not trusted: %s (pin it with "
					   "PVELAB_FINGERPRINT or cluster.fingerprint, or give "
					   "cluster.ca_file)", url, detail);
	} else if (conn_failure(cc)) {
		res->err = PL_ECONNECT;
		if (c->n_eps > 1)
			*msg = pl_asprintf("cannot reach any of %zu endpoints (last '%s': %s) (are "
					   "the nodes up? are the ports right?)", c->n_eps, url, detail);
		else
			*msg = pl_asprintf("cannot reach '%s': %s (is the node up? is the port "
					   "right?)", url, detail);
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		res->err = PL_ETIMEOUT;
		*msg = pl_asprintf("'%s %s' on '%s' timed out after %ld ms (is the node "
				   "overloaded? raise cluster.timeout)", q->method, q->path, url,
				   c->timeout_ms);
	} else if (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_SSL_CACERT_BADFILE) {
		res->err = PL_ETLS;
		*msg = pl_asprintf("TLS handshake with '%s' failed: %s", url, detail);
	} else {
		res->err = PL_EIO;
		*msg = pl_asprintf("'%s %s' on '%s' failed: %s", q->method, q->path, url, detail);
	}
}

char *
pl_pve_token_id(const struct pl_pve *c)
{
	const char *tok = c->token_hdr ? strchr(c->token_hdr, '=') : NULL;

	return tok ? pl_strndup(tok + 1, strcspn(tok + 1, "=")) : NULL;
}

static void
finish_http_error(struct req *q, struct pl_pve_resp *r, struct pl_pve_result *res, char **msg,
		  char *lock, size_t locklen)
{
	struct pl_pve *c = q->c;
	const char *url = c->eps[q->ep];
	char path[256], priv[128];
	char *text = pl_pve_resp_errtext(r);

	if (r->status == 401) {
		if (q->is_login)
			*msg = pl_asprintf("login as '%s' at '%s' failed: %s (check the user name "
					   "and password)", c->username, url, text);
		else if (c->token_hdr)
			*msg = pl_asprintf("authentication failed at '%s': %s (check the API token: "
					   "PVELAB_TOKEN=USER@REALM!TOKENID=SECRET, or cluster.token_id "
					   "and its secret)", url, text);
		else
			*msg = pl_asprintf("authentication failed at '%s': %s (the ticket was "
					   "refused; log in again)", url, text);
	} else if (r->status == 403) {
		/* who is in use (a token without its secret), for the pveum line */
		const char *tok = c->token_hdr ? strchr(c->token_hdr, '=') : NULL;
		int toklen = tok ? (int)strcspn(tok + 1, "=") : 0;
		const char *who = tok ? "token" : "user", *flag = tok ? "--tokens" : "--users";
		const char *id = tok ? tok + 1 : c->username ? c->username : "USER@REALM";

		if (pl_pve_perm_parse(r->message, path, sizeof(path), priv, sizeof(priv)))
			*msg = pl_asprintf("permission denied for '%s %s': missing privilege '%s' "
					   "on '%s' (grant a role with %s on %s to the %s, e.g. "
					   "pveum acl modify %s %s '%.*s' --roles "
					   "%s; docs/cluster.md lists what pvelab needs)",
					   q->method, q->path, priv, path, priv, path, who, path,
					   flag, tok ? toklen : (int)strlen(id), id,
					   pl_pve_role_for(priv));
		else
			*msg = pl_asprintf("permission denied for '%s %s': %s (give the token's "
					   "user a role on that path; privilege-separated tokens need "
					   "their own ACL entries)", q->method, q->path, text);
	} else if (pl_pve_lock_parse(r->message, lock, locklen)) {
		res->err = PL_ECONFLICT;
		res->lock = lock;
		*msg = pl_asprintf("'%s %s' refused: %s (the guest is locked by '%s'; wait for "
				   "that operation to finish, or clear a stale lock with "
				   "'qm unlock'/'pct unlock' on the node)", q->method, q->path, text,
				   lock);
	} else if (r->status == 595) {
		/* PVE's proxy could not reach the node the path names. */
		*msg = pl_asprintf("'%s %s' failed: %s (HTTP 595 from '%s': the node it is for "
				   "did not answer; is it up?)", q->method, q->path, text, url);
	} else {
		*msg = pl_asprintf("'%s %s' failed: %s (HTTP %ld from '%s')", q->method, q->path,
				   text, r->status, url);
	}
	free(text);
}

static void
finish(struct req *q, CURLcode cc)
{
	struct pl_pve *c = q->c;
	struct pl_pve_result res = { 0 };
	struct pl_pve_resp r = { 0 };
	char lock[64] = "";
	char *msg = NULL;
	long status = 0;

	c->inflight--;
	if (cc == CURLE_OK)
		curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(c->multi, q->easy);
	if (q->streamed) {
		/* Its consumer has what came: a break is an error, never a retry. */
		res.status = status;
		res.url = c->eps[q->ep];
		if (cc != CURLE_OK)
			finish_curl_error(q, cc, &res, &msg);
		res.errmsg = msg;
		complete(q, &res);
		free(msg);
		pump(c);
		return;
	}
	if (cc == CURLE_OK) {
		res.err = pl_pve_resp_parse(status, q->reason, q->body.data, q->body.len, &r);
		if (status == 401 && c->username && !q->is_login && !q->relogged && c->ticket) {
			/* The ticket expired or the node restarted: log in again, once. */
			pl_free_secret(c->ticket);
			c->ticket = NULL;
			q->relogged = true;
			enqueue(c, q, true);
			pl_pve_resp_release(&r);
			goto requeued;
		}
		if (res.err != 0 && maybe_retry(q, CURLE_OK, status, r.message)) {
			pl_pve_resp_release(&r);
			goto requeued;
		}
	} else if (maybe_retry(q, cc, 0, NULL)) {
		goto requeued;
	}
	res.status = status;
	res.url = c->eps[q->ep];
	if (cc != CURLE_OK) {
		finish_curl_error(q, cc, &res, &msg);
	} else if (res.err == PL_EPARSE) {
		msg = pl_asprintf("'%s %s' on '%s': unreadable answer (%s)", q->method, q->path,
				  res.url, r.message);
	} else if (res.err != 0) {
		finish_http_error(q, &r, &res, &msg, lock, sizeof(lock));
		res.message = r.message;
		res.errors = r.errors;
	} else {
		res.data = r.data;
	}
	res.errmsg = msg;
	c->pin_mismatch = false;
	complete(q, &res);
	free(msg);
	pl_pve_resp_release(&r);
	pump(c);
	return;
requeued:
	c->pin_mismatch = false;
	/* The easy handle goes back to the pool; a retry takes a fresh one. */
	if (c->npool < PL_ARRAY_LEN(c->pool)) {
		unpoint(q->easy);
		c->pool[c->npool++] = q->easy;
	} else {
		curl_easy_cleanup(q->easy);
	}
	q->easy = NULL;
	pump(c);
}

static void
check_done(struct pl_pve *c)
{
	CURLMsg *m;
	int left, running;

	for (;;) {
		while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
			struct req *q = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
			finish(q, m->data.result);
		}
		/* The requests those answers let start: curl would send them from
		 * its timer, a loop turn later, after dropping the idle connection's
		 * event; sent now, the connection keeps it (a changelist base folds
		 * the removal and the re-add). */
		if (!c->added)
			return;
		c->added = false;
		curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

/* ---- interruption ---- */

static const struct pl_pve_result interrupted_res = {
	.err = PL_ECANCEL,
	.errmsg = "interrupted",
};

static void tw_done(struct tw *t, int err, const char *exitstatus, const char *msg);

/* Fail the queue and the task waits not waiting on a request (those that
 * are fail with it). A callback may ask for more: the loop runs again. */
static void
fail_pending(struct pl_pve *c)
{
	for (;;) {
		struct tw *t;

		fail_queue(c, &interrupted_res);
		for (t = c->tasks; t && !t->armed; t = t->next)
			;
		if (t == NULL && c->qhead == NULL)
			return;
		if (t)
			tw_done(t, PL_ECANCEL, NULL, "interrupted");
	}
}

static void
fail_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pl_pve *c = arg;

	(void)fd;
	(void)what;
	c->fail_armed = false;
	if (c->interrupted)
		fail_pending(c);
}

void
pl_pve_interrupt(struct pl_pve *c)
{
	struct req *q;

	c->interrupted = true;
	atomic_store(&c->stop_asked, true);
	/* In flight or waiting to retry: their transfers end here (curl closes
	 * a connection whose answer did not finish). */
	for (;;) {
		for (q = c->all; q && !q->easy && !q->retry_armed; q = q->anext)
			;
		if (q == NULL)
			break;
		if (q->easy)
			c->inflight--;
		complete(q, &interrupted_res);
	}
	c->login_pending = false;
	fail_pending(c);
}

void
pl_pve_resume(struct pl_pve *c)
{
	c->interrupted = false;
	atomic_store(&c->stop_asked, false);
}

bool
pl_pve_interrupted(const struct pl_pve *c)
{
	return c && c->interrupted;
}

bool
pl_pve_parent_interrupted(const struct pl_pve *c)
{
	return c->parent && atomic_load(&c->parent->stop_asked);
}

/* ---- public API ---- */

/* A process that holds a token or password never leaves a core: it would
 * carry copies of the secret (curl's header buffers among them). */
static void
no_core_dumps(void)
{
	struct rlimit none = {0, 0};

	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int
pl_pve_tls_backend_check(const char *ssl_version, char **errmsg)
{
	/* The pin is checked in an OpenSSL context callback; another backend
	 * would skip it with verification off. */
	if (ssl_version == NULL || strncmp(ssl_version, "OpenSSL/", 8) != 0)
		return pl_seterr(errmsg, PL_ETLS, "cannot enforce a fingerprint pin: libcurl uses "
				 "'%s', not OpenSSL (install libcurl4-openssl-dev and rebuild, or "
				 "trust the node with cluster.ca_file)",
				 ssl_version ? ssl_version : "no TLS library");
	return 0;
}

int
pl_pve_new(struct event_base *base, const struct pl_pve_opts *o, struct pl_pve **out,
	   char **errmsg)
{
	static bool curl_ready;
	struct pl_pve *c;
	int r;

	*out = NULL;
	if (o->n_endpoints == 0)
		return pl_seterr(errmsg, PL_EINVAL, "no endpoint given (set PVELAB_URL or "
				 "cluster.endpoints)");
	if (!o->token && !(o->username && o->password))
		return pl_seterr(errmsg, PL_EINVAL, "no credentials given (set PVELAB_TOKEN or "
				 "cluster.token_id with a token secret)");
	if (o->token && (!strchr(o->token, '@') || !strchr(o->token, '!') ||
			 !strchr(o->token, '=')))
		return pl_seterr(errmsg, PL_EINVAL, "API token is not of the form "
				 "USER@REALM!TOKENID=SECRET");
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			return pl_seterr(errmsg, PL_EIO, "cannot initialise libcurl");
		curl_ready = true;
	}
	if (ssl_idx < 0)
		ssl_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (conn_idx < 0)
		conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	no_core_dumps();
	c = pl_calloc(1, sizeof(*c));
	c->base = base;
	if (o->fingerprint && *o->fingerprint) {
		if (pl_x509_fingerprint_norm(o->fingerprint, c->fingerprint) != 0) {
			r = pl_seterr(errmsg, PL_EINVAL, "fingerprint '%s' is not a SHA-256 "
				      "fingerprint (32 hex bytes, AA:BB:...)", o->fingerprint);
			goto fail;
		}
		c->pinned = true;
		if ((r = pl_pve_tls_backend_check(curl_version_info(CURLVERSION_NOW)->ssl_version,
						  errmsg)) != 0)
			goto fail;
	}
	c->eps = pl_calloc(o->n_endpoints, sizeof(*c->eps));
	for (size_t i = 0; i < o->n_endpoints; i++) {
		if ((c->eps[i] = pl_pve_endpoint_norm(o->endpoints[i], errmsg)) == NULL) {
			r = PL_EINVAL;
			goto fail;
		}
		c->n_eps++;
	}
	if (o->token) {
		c->token_hdr = pl_asprintf("Authorization: PVEAPIToken=%s", o->token);
		c->token_hdrs = curl_slist_append(NULL, c->token_hdr);
		c->token_write_hdrs = curl_slist_append(NULL, "Expect:");
		c->token_write_hdrs = curl_slist_append(c->token_write_hdrs, c->token_hdr);
	} else {
		c->username = pl_strdup(o->username);
		c->password = pl_strdup(o->password);
	}
	c->ca_file = o->ca_file ? pl_strdup(o->ca_file) : NULL;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	c->concurrency = o->concurrency > 0 ? o->concurrency : 16;
	c->retries = o->retries >= 0 ? o->retries : 4;
	c->retry_base_ms = o->retry_base_ms > 0 ? o->retry_base_ms : 100;
	c->max_body = o->max_body ? o->max_body : PL_BUF_DEFAULT_MAX;
	c->plain = o->plain;
	if ((c->multi = curl_multi_init()) == NULL) {
		r = pl_seterr(errmsg, PL_EIO, "cannot create a curl multi handle");
		goto fail;
	}
	evtimer_assign(&c->timer, base, timer_cb, c);
	evtimer_assign(&c->fail_ev, base, fail_cb, c);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->concurrency);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c->concurrency);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->concurrency);
	*out = c;
	return 0;
fail:
	pl_pve_free(c);
	return r;
}

int
pl_pve_clone(const struct pl_pve *c, struct event_base *base, int shares, struct pl_pve **out,
	     char **errmsg)
{
	static const char token_prefix[] = "Authorization: PVEAPIToken=";
	struct pl_pve_opts o = {
		.endpoints = (const char *const *)c->eps,
		.n_endpoints = c->n_eps,
		.token = c->token_hdr ? c->token_hdr + strlen(token_prefix) : NULL,
		.username = c->username,
		.password = c->password,
		.fingerprint = c->pinned ? c->fingerprint : NULL,
		.ca_file = c->ca_file,
		.timeout_ms = c->timeout_ms,
		.concurrency = shares > 1 ? (c->concurrency + shares - 1) / shares : c->concurrency,
		.retries = c->retries,
		.retry_base_ms = c->retry_base_ms,
		.max_body = c->max_body,
		.plain = true,
	};
	int r;

	if ((r = pl_pve_new(base, &o, out, errmsg)) != 0)
		return r;
	/* Start where the parent is: its endpoint, its ticket while it is fresh. */
	(*out)->parent = (struct pl_pve *)c;
	(*out)->obs = c->obs;
	(*out)->obs_arg = c->obs_arg;
	(*out)->ep = c->ep;
	if (c->ticket) {
		(*out)->ticket = pl_strdup(c->ticket);
		(*out)->csrf_hdr = pl_strdup(c->csrf_hdr);
		(*out)->ticket_at = c->ticket_at;
	}
	return 0;
}

void
pl_pve_compressed(struct pl_pve *c)
{
	c->plain = false;
}

void
pl_pve_set_observer(struct pl_pve *c, pl_pve_observe_fn fn, void *arg)
{
	c->obs = fn;
	c->obs_arg = arg;
}

int
pl_pve_threads(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus;
}

void
pl_pve_free(struct pl_pve *c)
{
	struct req *q;

	if (c == NULL)
		return;
	if (c->parent) {
		c->parent->sent += c->sent;
		c->parent->handshakes += c->handshakes;
		c->parent->resumed += c->resumed;
	}
	while (c->tasks)
		tw_free(c->tasks);
	while ((q = c->all) != NULL)
		req_free(q);
	c->qhead = c->qtail = NULL;
	if (c->multi) {
		evtimer_del(&c->timer);
		event_del(&c->fail_ev);
	}
	for (size_t i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	for (size_t i = 0; i < c->n_eps; i++)
		free(c->eps[i]);
	free(c->eps);
	for (struct curl_slist *h = c->token_hdrs; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	for (struct curl_slist *h = c->token_write_hdrs; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(c->token_hdrs);
	curl_slist_free_all(c->token_write_hdrs);
	pl_free_secret(c->token_hdr);
	free(c->username);
	pl_free_secret(c->password);
	pl_free_secret(c->ticket);
	pl_free_secret(c->csrf_hdr);
	free(c->ca_file);
	free(c);
}

void
pl_pve_request(struct pl_pve *c, const char *method, const char *path, const json_t *params,
	       pl_pve_cb cb, void *arg)
{
	pl_pve_request_stream(c, method, path, params, NULL, cb, arg);
}

void
pl_pve_request_stream(struct pl_pve *c, const char *method, const char *path,
		      const json_t *params, pl_pve_body_cb on_body, pl_pve_cb cb, void *arg)
{
	struct req *q = req_new(c, method, path, params, cb, arg);

	q->on_body = on_body;
	c->pending++;
	enqueue(c, q, false);
	pump(c);
}

size_t
pl_pve_pending(const struct pl_pve *c)
{
	return c->pending;
}

struct event_base *
pl_pve_base(const struct pl_pve *c)
{
	return c->base;
}

int
pl_pve_concurrency(const struct pl_pve *c)
{
	return c->concurrency;
}

unsigned long
pl_pve_requests_sent(const struct pl_pve *c)
{
	return c->sent;
}

void
pl_pve_tls_counts(const struct pl_pve *c, unsigned long *handshakes, unsigned long *resumed)
{
	*handshakes = c->handshakes;
	*resumed = c->resumed;
}

void
pl_pve_run(struct pl_pve *c)
{
	/* 1 means nothing left to wait for: a stall, not a reason to spin. */
	while (c->pending > 0)
		if (event_base_loop(c->base, EVLOOP_ONCE) != 0)
			break;
}

struct call {
	bool done;
	int err;
	json_t *data;
	char *msg;
};

static void
call_cb(const struct pl_pve_result *res, void *arg)
{
	struct call *k = arg;

	k->done = true;
	k->err = res->err;
	if (res->err == 0)
		k->data = json_incref(res->data ? res->data : json_null());
	else
		k->msg = pl_strdup(res->errmsg ? res->errmsg : pl_strerror(res->err));
}

int
pl_pve_call(struct pl_pve *c, const char *method, const char *path, const json_t *params,
	    json_t **data, char **errmsg)
{
	struct call k = { 0 };

	pl_pve_request(c, method, path, params, call_cb, &k);
	while (!k.done)
		if (event_base_loop(c->base, EVLOOP_ONCE) != 0)
			break;
	if (!k.done) /* a programmer error: the callback would outlive k */
		pl_die("'%s %s' stalled: the event loop has nothing left to wait for", method,
		       path);
	if (k.err) {
		pl_seterr(errmsg, k.err, "%s", k.msg);
		free(k.msg);
		return k.err;
	}
	if (data)
		*data = k.data;
	else
		json_decref(k.data);
	return 0;
}

/* ---- task waiting ---- */

static void
tw_free(struct tw *t)
{
	struct tw **pp;

	for (pp = &t->c->tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	if (t->armed)
		event_del(&t->ev);
	free(t->upid);
	free(t->exitstatus);
	free(t);
}

static void
tw_done(struct tw *t, int err, const char *exitstatus, const char *msg)
{
	t->c->pending--;
	if (t->cb)
		t->cb(err, exitstatus, msg, t->arg);
	tw_free(t);
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static void tw_poll(struct tw *t);

static void
tw_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tw *t = arg;

	t->armed = false;
	if (t->bad) {
		char *msg = pl_asprintf("'%s' is not a task id (UPID)", t->upid);

		tw_done(t, PL_EPARSE, NULL, msg);
		free(msg);
		return;
	}
	tw_poll(t);
}

static void
tw_log_cb(const struct pl_pve_result *res, void *arg)
{
	struct tw *t = arg;
	struct pl_buf b;
	char *msg;
	size_t n, from;

	pl_buf_init(&b, 8192);
	pl_buf_addf(&b, "task %s failed: %s", t->upid, t->exitstatus);
	if (res->err == 0 && json_is_array(res->data) && (n = json_array_size(res->data)) > 0) {
		/* The last few lines before "TASK ERROR: ..." say why. */
		size_t last = n;
		const char *s = pl_json_str(json_array_get(res->data, n - 1), "t");

		if (s && pl_str_startswith(s, "TASK "))
			last--;
		from = last > 3 ? last - 3 : 0;
		if (from < last) {
			pl_buf_addstr(&b, " (log:");
			for (size_t i = from; i < last; i++)
				pl_buf_addf(&b, " %s%s",
					    pl_json_str_or(json_array_get(res->data, i), "t", ""),
					    i + 1 < last ? " |" : "");
			pl_buf_addch(&b, ')');
		}
	}
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] == '\n')
			b.data[i] = ' ';
	msg = pl_buf_detach(&b, NULL);
	tw_done(t, PL_ETASK, t->exitstatus, msg);
	free(msg);
}

static void
tw_status_cb(const struct pl_pve_result *res, void *arg)
{
	struct tw *t = arg;
	const char *st, *ex;
	long delay;

	if (res->err) {
		tw_done(t, res->err, NULL, res->errmsg);
		return;
	}
	st = pl_json_str(res->data, "status");
	if (st && !strcmp(st, "stopped")) {
		ex = pl_json_str_or(res->data, "exitstatus", "unknown");
		if (!strcmp(ex, "OK") || pl_str_startswith(ex, "WARNINGS")) {
			tw_done(t, 0, ex, NULL);
			return;
		}
		t->exitstatus = pl_strdup(ex);
		char *path = pl_asprintf("/nodes/%s/tasks/%s/log", t->node, t->upid);
		json_t *p = json_pack("{s:i,s:i}", "start", 0, "limit", 500);

		pl_pve_request(t->c, "GET", path, p, tw_log_cb, t);
		json_decref(p);
		free(path);
		return;
	}
	if (t->timeout_ms > 0 && ms_since(&t->t0) > t->timeout_ms) {
		char *msg = pl_asprintf("task %s still running after %ld s (it goes on on the "
					"node; see its log there)", t->upid, t->timeout_ms / 1000);

		tw_done(t, PL_ETIMEOUT, NULL, msg);
		free(msg);
		return;
	}
	/* A fifth of the time the task has run, from 50 ms to 1 s, +-10 %: a
	 * finished task is seen at most ~20 % late, a long one costs few polls
	 * (the doubling backoff of retries made 300 ms tasks look like 500). */
	t->polls++;
	delay = ms_since(&t->t0) / 5;
	delay = delay < 50 ? 50 : delay > 1000 ? 1000 : delay;
	delay = (long)((double)delay * (0.9 + 0.2 * rnd01()));
	struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
	evtimer_assign(&t->ev, t->c->base, tw_timer, t);
	t->armed = true;
	evtimer_add(&t->ev, &tv);
}

static void
tw_poll(struct tw *t)
{
	char *path = pl_asprintf("/nodes/%s/tasks/%s/status", t->node, t->upid);

	pl_pve_request(t->c, "GET", path, NULL, tw_status_cb, t);
	free(path);
}

void
pl_pve_task_wait(struct pl_pve *c, const char *upid, long timeout_ms, pl_pve_task_cb cb,
		 void *arg)
{
	struct pl_pve_upid u;
	struct tw *t;

	t = pl_calloc(1, sizeof(*t));
	t->c = c;
	t->upid = pl_strdup(upid ? upid : "");
	t->bad = pl_pve_upid_parse(t->upid, &u) != 0;
	if (!t->bad)
		snprintf(t->node, sizeof(t->node), "%s", u.node);
	t->timeout_ms = timeout_ms;
	t->cb = cb;
	t->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &t->t0);
	t->next = c->tasks;
	c->tasks = t;
	c->pending++;
	if (t->bad) {
		struct timeval now = { 0, 0 };

		evtimer_assign(&t->ev, c->base, tw_timer, t);
		t->armed = true;
		evtimer_add(&t->ev, &now);
		return;
	}
	tw_poll(t);
}
