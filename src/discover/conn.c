/*
 * One port's conversation in the discovery scanner: the connection's life
 * (non-blocking connect, UDP probe, deadline), TLS facts, and the protocol
 * exchanges (banner, SSH, HTTP(S), PVE, RDP, VNC, IPMI) that fill the port's
 * evidence. No credentials, ever.
 */
#include "core/common.h"
#include "discover/discover.h"
#include "discover/proto.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "discover/scanner.h"

/* ---- helpers ---- */

double
pl_disc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

json_t *
pl_disc_evidence(struct conn *c)
{
	struct host *h = &c->s->hosts[c->h];

	if (h->ev == NULL)
		h->ev = pl_calloc(c->s->o->nports, sizeof(json_t *));
	if (h->ev[c->p] == NULL)
		h->ev[c->p] = json_object();
	return h->ev[c->p];
}

static void
ev_set(struct conn *c, const char *key, json_t *v)
{
	if (v)
		json_object_set_new(pl_disc_evidence(c), key, v);
}

static void
ev_set_str(struct conn *c, const char *key, const char *v)
{
	if (v)
		ev_set(c, key, pl_disc_json_text(v, strlen(v)));
}

/* Merge the members of obj (stolen) into the port's pl_disc_evidence. */
static void
ev_merge(struct conn *c, json_t *obj)
{
	json_object_update(pl_disc_evidence(c), obj);
	json_decref(obj);
}

static void
ev_note(struct conn *c, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	json_t *notes = json_object_get(pl_disc_evidence(c), "notes");

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (notes == NULL) {
		notes = json_array();
		json_object_set_new(pl_disc_evidence(c), "notes", notes);
	}
	json_array_append_new(notes, pl_disc_json_text(buf, strlen(buf)));
}

static int
port_of(struct conn *c)
{
	return c->s->o->ports[c->p].port;
}

static enum proto
proto_for(const struct pl_disc_port *p)
{
	if (p->udp)
		return PR_IPMI;
	switch (p->port) {
	case 22:
		return PR_SSH;
	case 80:
	case 8080:
		return PR_HTTP;
	case 443:
	case 8443:
		return PR_HTTPS;
	case 8006:
	case 8007:
		return PR_PVE;
	case 3389:
		return PR_RDP;
	default:
		if (p->port >= 5900 && p->port <= 5909)
			return PR_VNC;
		return PR_BANNER;
	}
}

/* ---- connection life ---- */

void
pl_disc_conn_free(struct conn *c)
{
	if (c->wev)
		event_free(c->wev);
	if (c->timer)
		event_free(c->timer);
	if (c->bev)
		bufferevent_free(c->bev); /* closes fd (and frees the SSL) */
	else if (c->fd >= 0)
		close(c->fd);
	pl_buf_release(&c->in);
	free(c);
}

void
pl_disc_conn_finish(struct conn *c)
{
	struct scan *s = c->s;

	if (!c->followup)
		s->finished++;
	pl_disc_conn_free(c);
	s->inflight--;
	event_active(s->pump_ev, 0, 0);
}

struct conn *
pl_disc_conn_new(struct scan *s, size_t h, size_t p)
{
	struct conn *c = pl_calloc(1, sizeof(*c));

	c->s = s;
	c->h = h;
	c->p = p;
	c->fd = -1;
	c->proto = proto_for(&s->o->ports[p]);
	if (c->proto == PR_PVE)
		c->path = "/api2/json/version";
	else if (c->proto == PR_HTTP || c->proto == PR_HTTPS)
		c->path = "/redfish/v1/";
	pl_buf_init(&c->in, MAX_IN);
	return c;
}

static void
queue_followup(struct conn *from, const char *path)
{
	struct conn *c = pl_disc_conn_new(from->s, from->h, from->p);
	struct scan *s = from->s;

	c->proto = from->proto;
	c->path = path;
	c->followup = true;
	if (s->fq_tail)
		s->fq_tail->next = c;
	else
		s->fq_head = c;
	s->fq_tail = c;
}

/* ---- TLS facts ---- */

static json_t *
x509_name_json(X509_NAME *n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long len;
	json_t *j;

	X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	len = BIO_get_mem_data(b, &p);
	j = pl_disc_json_text(p, (size_t)(len > 0 ? len : 0));
	BIO_free(b);
	return j;
}

static void
record_tls(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	X509 *cert;
	json_t *t = json_object();

	json_object_set_new(t, "version", json_string(SSL_get_version(ssl)));
	json_object_set_new(t, "cipher", json_string(SSL_get_cipher_name(ssl)));
	if ((cert = SSL_get1_peer_certificate(ssl)) != NULL) {
		const ASN1_TIME *na = X509_get0_notAfter(cert);
		struct tm tm;

		json_object_set_new(t, "subject", x509_name_json(X509_get_subject_name(cert)));
		json_object_set_new(t, "issuer", x509_name_json(X509_get_issuer_name(cert)));
		if (na && ASN1_TIME_to_tm(na, &tm) == 1) {
			char buf[32];

			strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
			json_object_set_new(t, "not_after", json_string(buf));
			json_object_set_new(t, "expired",
					    json_boolean(X509_cmp_current_time(na) < 0));
		}
		/* issuer = subject and signed by its own key (X509_check_issued
		 * would also demand keyCertSign, which many leaf certs lack) */
		json_object_set_new(t, "self_signed",
				    json_boolean(!X509_NAME_cmp(X509_get_subject_name(cert),
								X509_get_issuer_name(cert)) &&
						 X509_verify(cert, X509_get0_pubkey(cert)) == 1));
		X509_free(cert);
	}
	ev_set(c, "tls", t);
}

/* Name the web service on this port from everything seen so far. */
static void
name_web_service(struct conn *c)
{
	json_t *e = pl_disc_evidence(c);
	const char *server = pl_json_str(e, "server");
	const char *title = pl_json_str(e, "title");
	const json_t *api = json_object_get(e, "api");
	const char *api_server = pl_json_str(api, "server");
	const json_t *tls = json_object_get(e, "tls");
	const char *subject = pl_json_str(tls, "subject");
	const char *svc;
	int port = port_of(c);

	if (json_object_get(e, "redfish"))
		svc = "redfish";
	else if ((server && pl_str_startswith(server, "pve-api-daemon")) ||
		 (api_server && pl_str_startswith(api_server, "pve-api-daemon")) ||
		 (title && strstr(title, "Proxmox Virtual Environment")))
		svc = "proxmox";
	else if ((server && strcasestr(server, "proxmox-backup")) ||
		 (api_server && strcasestr(api_server, "proxmox-backup")) ||
		 (title && strstr(title, "Proxmox Backup Server")))
		svc = "pbs";
	else if (api && pl_json_int(api, "status", 0) == 401 &&
		 json_is_true(json_object_get(api, "proxmox_envelope")))
		svc = port == 8007 ? "pbs" : "proxmox";
	else if (subject && port == 8006 && strstr(subject, "Proxmox Virtual Environment"))
		svc = "proxmox"; /* the default pve-ssl.pem; the API may still be answering */
	else if (subject && port == 8007 && strstr(subject, "Proxmox Backup Server"))
		svc = "pbs";
	else
		svc = c->proto == PR_HTTP ? "http" : "https";
	ev_set_str(c, "service", svc);
}

/* ---- protocol handlers ---- */

static void
send_http(struct conn *c)
{
	char host[INET6_ADDRSTRLEN + 2];
	char addr[INET6_ADDRSTRLEN];
	struct evbuffer *out = bufferevent_get_output(c->bev);

	pl_disc_addr_str(&c->s->hosts[c->h].addr, addr, sizeof(addr));
	if (c->s->hosts[c->h].addr.family == AF_INET6)
		snprintf(host, sizeof(host), "[%s]", addr);
	else
		snprintf(host, sizeof(host), "%s", addr);
	evbuffer_add_printf(out,
			    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: pvelab-discover/" PL_VERSION
			    "\r\nAccept: application/json, text/html;q=0.9, */*;q=0.5\r\n"
			    "Connection: close\r\n\r\n",
			    c->path, host);
}

static void
begin_exchange(struct conn *c)
{
	unsigned char buf[32];
	size_t n;

	switch (c->proto) {
	case PR_HTTP:
	case PR_HTTPS:
	case PR_PVE:
		send_http(c);
		break;
	case PR_RDP:
		n = pl_disc_x224_request(buf, sizeof(buf));
		bufferevent_write(c->bev, buf, n);
		break;
	default:
		break; /* the server speaks first */
	}
}

/* Handle a complete HTTP response. */
static void
http_response(struct conn *c, struct pl_disc_http *r)
{
	bool root = !strcmp(c->path, "/");

	if (c->proto == PR_PVE && !root) {
		json_t *api = json_object();

		json_object_set_new(api, "path", json_string(c->path));
		json_object_set_new(api, "status", json_integer(r->status));
		if (r->reason && *r->reason)
			json_object_set_new(api, "reason", json_string(r->reason));
		if (r->server)
			json_object_set_new(api, "server", json_string(r->server));
		if (r->content_type)
			json_object_set_new(api, "content_type", json_string(r->content_type));
		{
			/* both Proxmox API servers wrap every answer, errors too, in {"data": ...} */
			json_t *body =
				r->body_len ? pl_json_parse(r->body, r->body_len, NULL) : NULL;

			if (json_is_object(body) && json_object_get(body, "data"))
				json_object_set_new(api, "proxmox_envelope", json_true());
			json_decref(body);
		}
		ev_set(c, "api", api);
		name_web_service(c);
		return;
	}
	if (!root) {
		/* /redfish/v1/: a service root is open to anyone by the standard */
		json_t *rf = NULL;

		if (r->status == 200 && pl_disc_redfish_parse(r->body, r->body_len, &rf) == 0) {
			ev_set(c, "redfish", rf);
			ev_set(c, "status", json_integer(r->status));
			ev_set_str(c, "server", r->server);
			name_web_service(c);
			return;
		}
		ev_set(c, "redfish_status", json_integer(r->status));
		queue_followup(c, "/");
		return;
	}
	ev_set(c, "status", json_integer(r->status));
	ev_set_str(c, "server", r->server);
	ev_set_str(c, "location", r->location);
	ev_set_str(c, "www_authenticate", r->www_authenticate);
	if (r->body_len) {
		char *title = pl_disc_html_title(r->body, r->body_len);

		ev_set_str(c, "title", title);
		free(title);
	}
	name_web_service(c);
}

/* Feed what has been read; eof means no more will come. Returns true when
 * the conversation is over. */
static bool
feed(struct conn *c, bool eof)
{
	const char *d = c->in.data;
	size_t n = c->in.len;
	json_t *o = NULL;
	int r;

	switch (c->proto) {
	case PR_BANNER:
		if (n >= 4 && !memcmp(d, "SSH-", 4)) {
			c->proto = PR_SSH;
			return feed(c, eof);
		}
		if (n >= 4 && !memcmp(d, "RFB ", 4)) {
			c->proto = PR_VNC;
			return feed(c, eof);
		}
		if (n >= 4 && !memcmp(d, "HTTP", 4))
			ev_set_str(c, "service", "http");
		if (memchr(d, '\n', n) || n >= 256 || eof) {
			size_t l = 0;

			while (l < n && l < 256 && d[l] != '\r' && d[l] != '\n')
				l++;
			if (l)
				ev_set(c, "banner", pl_disc_json_text(d, l));
			return true;
		}
		return false;
	case PR_SSH:
		r = pl_disc_ssh_parse(d, n, &o);
		if (r == PL_DISC_DONE) {
			ev_set_str(c, "service", "ssh");
			ev_merge(c, o);
			return true;
		}
		if (r == PL_DISC_MORE && !eof)
			return false;
		if (n)
			ev_set(c, "banner", pl_disc_json_text(d, n > 128 ? 128 : n));
		ev_note(c, n ? "not an SSH identification" : "closed without an SSH banner");
		return true;
	case PR_VNC:
		if (!c->rfb_versioned) {
			int major = 0, minor = 0;
			char reply[13];

			r = pl_disc_rfb_version(d, n, &major, &minor);
			if (r == PL_DISC_MORE && !eof)
				return false;
			if (r != PL_DISC_DONE) {
				if (n)
					ev_set(c, "banner", pl_disc_json_text(d, n > 64 ? 64 : n));
				ev_note(c, n ? "not an RFB greeting" :
					       "closed without an RFB greeting");
				return true;
			}
			ev_set_str(c, "service", "vnc");
			ev_set(c, "rfb_version", json_sprintf("%d.%d", major, minor));
			/* answer with the highest version both speak: 3.8, 3.7 or 3.3 */
			c->rfb_minor = major > 3 || minor >= 8 ? 8 : minor >= 7 ? 7 : 3;
			snprintf(reply, sizeof(reply), "RFB 003.%03d\n", c->rfb_minor);
			bufferevent_write(c->bev, reply, 12);
			pl_buf_consume(&c->in, 12);
			c->rfb_versioned = true;
			return feed(c, eof);
		}
		r = pl_disc_rfb_security((const unsigned char *)d, n, c->rfb_minor, &o);
		if (r == PL_DISC_DONE) {
			ev_merge(c, o);
			return true;
		}
		if (!eof)
			return false;
		ev_note(c, "no security types received");
		return true;
	case PR_RDP:
		r = pl_disc_x224_parse((const unsigned char *)d, n, &o);
		if (r == PL_DISC_DONE) {
			ev_set_str(c, "service", "rdp");
			ev_merge(c, o);
			return true;
		}
		if (r == PL_DISC_MORE && !eof)
			return false;
		ev_note(c,
			n ? "not an X.224 connection confirm" : "closed without an X.224 confirm");
		return true;
	case PR_HTTP:
	case PR_HTTPS:
	case PR_PVE: {
		struct pl_disc_http resp;

		if (n == 0 && eof) {
			ev_note(c, "closed without an HTTP response to %s", c->path);
			if (c->proto != PR_PVE && strcmp(c->path, "/"))
				queue_followup(c, "/");
			return true;
		}
		r = pl_disc_http_parse(d, n, eof, MAX_BODY, &resp);
		if (r == PL_DISC_MORE)
			return false;
		if (r != PL_DISC_DONE) {
			ev_set(c, "banner", pl_disc_json_text(d, n > 64 ? 64 : n));
			ev_note(c, "not HTTP");
			return true;
		}
		http_response(c, &resp);
		pl_disc_http_release(&resp);
		return true;
	}
	case PR_IPMI:
		return true;
	}
	return true;
}

/* Move what arrived into c->in and feed it; finishes c when the talk is over. */
static void
drain(struct conn *c, bool eof)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	bool full = false;

	while (evbuffer_get_length(in) > 0) {
		char tmp[16384];
		int k = evbuffer_remove(in, tmp, sizeof(tmp));

		if (k <= 0)
			break;
		if (pl_buf_add(&c->in, tmp, (size_t)k) != 0) {
			full = true;
			break;
		}
	}
	if (feed(c, full || eof))
		pl_disc_conn_finish(c);
	else if (eof)
		pl_disc_conn_finish(c);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	PL_UNUSED(bev);
	drain(arg, false);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* only TLS bufferevents report this: the handshake is done */
		c->handshaken = true;
		record_tls(c);
		if (c->proto != PR_HTTP)
			name_web_service(c);
		begin_exchange(c);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && (c->proto == PR_HTTPS || c->proto == PR_PVE) &&
	    !c->handshaken) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		char buf[256];

		if (e) {
			ERR_error_string_n(e, buf, sizeof(buf));
			ev_note(c, "TLS handshake failed: %s", buf);
		} else {
			ev_note(c, "TLS handshake failed: %s",
				evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		}
		pl_disc_conn_finish(c);
		return;
	}
	/* EOF or error: whatever we have is all there will be */
	drain(c, true);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int ms = c->s->o->timeout_ms;

	PL_UNUSED(fd);
	PL_UNUSED(what);
	if ((c->proto == PR_HTTPS || c->proto == PR_PVE) && !c->handshaken) {
		ev_note(c, "no TLS handshake within %d ms", ms);
		pl_disc_conn_finish(c);
		return;
	}
	if (c->in.len == 0) {
		if (c->path)
			ev_note(c, "GET %s: no answer within %d ms%s", c->path, ms,
				c->proto == PR_PVE && strcmp(c->path, "/") ?
					" (Proxmox delays unauthenticated answers by 3 s)" :
					"");
		else
			ev_note(c, "open, no answer within %d ms", ms);
		if ((c->proto == PR_HTTP || c->proto == PR_HTTPS) && strcmp(c->path, "/"))
			queue_followup(c, "/");
		pl_disc_conn_finish(c);
		return;
	}
	feed(c, true);
	pl_disc_conn_finish(c);
}

static void
on_connected(struct conn *c)
{
	struct scan *s = c->s;
	struct host *h = &s->hosts[c->h];

	h->st[c->p] = P_OPEN;
	if (!h->open)
		s->up++;
	h->open = true;
	pl_disc_evidence(c);
	pl_disc_start_dns(s, h);
	c->timer = evtimer_new(s->base, timer_cb, c);
	evtimer_add(c->timer, &s->tv_timeout);
	if (c->proto == PR_HTTPS || c->proto == PR_PVE) {
		SSL *ssl = SSL_new(s->ssl);

		c->bev = bufferevent_openssl_socket_new(
			s->base, c->fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(s->base, c->fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL)
		pl_die("cannot create a bufferevent");
	c->fd = -1; /* owned by the bufferevent now */
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (c->proto == PR_PVE && !c->followup)
		queue_followup(c, "/"); /* the login page answers at once; the API waits 3 s */
	if (c->proto != PR_HTTPS && c->proto != PR_PVE)
		begin_exchange(c);
}

static void
set_state(struct conn *c, enum pstate st)
{
	struct host *h = &c->s->hosts[c->h];

	/* a follow-up's failure does not undo what the first connection saw */
	if (!c->followup)
		h->st[c->p] = (unsigned char)st;
}

static void
connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	if (what & EV_TIMEOUT) {
		set_state(c, P_FILTERED);
		pl_disc_conn_finish(c);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == 0) {
		event_free(c->wev);
		c->wev = NULL;
		on_connected(c);
		return;
	}
	set_state(c, err == ECONNREFUSED ? P_CLOSED : P_UNREACH);
	pl_disc_conn_finish(c);
}

static void
udp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	unsigned char buf[512];
	ssize_t k;
	json_t *o = NULL;

	if (what & EV_TIMEOUT) {
		set_state(c, P_NORESP);
		pl_disc_conn_finish(c);
		return;
	}
	k = recv(fd, buf, sizeof(buf), 0);
	if (k < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		set_state(c, errno == ECONNREFUSED ? P_CLOSED : P_UNREACH);
		pl_disc_conn_finish(c);
		return;
	}
	if (pl_disc_rmcp_pong(buf, (size_t)k, &o) == 0) {
		struct host *h = &c->s->hosts[c->h];

		h->st[c->p] = P_OPEN;
		if (!h->open)
			c->s->up++;
		h->open = true;
		ev_set_str(c, "service", "ipmi");
		ev_merge(c, o);
		pl_disc_start_dns(c->s, h);
		pl_disc_conn_finish(c);
	}
	/* anything else is not our answer: keep waiting until the deadline */
}

static void
fill_sockaddr(const struct pl_disc_addr *a, uint16_t port, struct sockaddr_storage *ss,
	      socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr = a->u.v4;
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = a->u.v6;
		*len = sizeof(*sin6);
	}
}

/* Start a connection; returns false if it must be retried later (no sockets
 * or ports left), in which case c is untouched. */
bool
pl_disc_conn_start(struct conn *c)
{
	struct scan *s = c->s;
	const struct pl_disc_port *p = &s->o->ports[c->p];
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;

	fill_sockaddr(&s->hosts[c->h].addr, p->port, &ss, &sl);
	fd = socket(ss.ss_family,
		    (p->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			return false;
		set_state(c, P_UNREACH);
		pl_disc_conn_free(c);
		return true;
	}
	s->inflight++;
	c->fd = fd;
	if (connect(fd, (struct sockaddr *)&ss, sl) == 0 || errno == EINPROGRESS) {
		if (p->udp) {
			unsigned char ping[16];
			size_t n = pl_disc_rmcp_ping(ping, sizeof(ping), (uint8_t)c->h);

			if (send(fd, ping, n, 0) < 0) {
				set_state(c, errno == ECONNREFUSED ? P_CLOSED : P_UNREACH);
				pl_disc_conn_finish(c);
				return true;
			}
			c->wev = event_new(s->base, fd, EV_READ | EV_PERSIST, udp_cb, c);
			event_add(c->wev, &s->tv_timeout);
			return true;
		}
		c->wev = event_new(s->base, fd, EV_WRITE, connect_cb, c);
		event_add(c->wev, &s->tv_timeout);
		return true;
	}
	if (errno == EAGAIN || errno == EADDRNOTAVAIL) {
		/* out of local ports: try again once some connections are gone */
		close(fd);
		c->fd = -1;
		s->inflight--;
		return false;
	}
	set_state(c, errno == ECONNREFUSED ? P_CLOSED : P_UNREACH);
	pl_disc_conn_finish(c);
	return true;
}
