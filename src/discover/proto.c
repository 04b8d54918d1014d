/*
 * Discovery's wire parsers (SSH, RFB, X.224, RMCP, HTTP/1.x, HTML titles,
 * Redfish roots). All input is untrusted: bounds first, no allocation sized by a peer's claim.
 */
#include "core/common.h"
#include "discover/proto.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

#include <ctype.h>

json_t *
pl_disc_json_text(const char *s, size_t len)
{
	json_t *j;
	char *c;

	if ((j = json_stringn(s, len)) != NULL) {
		/* valid UTF-8, but control characters are noise in evidence */
		bool clean = true;

		for (size_t i = 0; i < len; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				clean = false;
		if (clean)
			return j;
		json_decref(j);
	}
	c = pl_malloc(len + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		c[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
	}
	c[len] = '\0';
	j = json_stringn(c, len);
	free(c);
	return j;
}

/* ---- SSH ---- */

static const char *
ssh_os_hint(const char *s)
{
	static const struct {
		const char *needle, *os;
	} hints[] = {
		{ "raspbian", "Raspbian" }, { "ubuntu", "Ubuntu" },  { "debian", "Debian" },
		{ "freebsd", "FreeBSD" },   { "openbsd", "OpenBSD" }, { "netbsd", "NetBSD" },
		{ "windows", "Windows" },   { "rosssh", "RouterOS" }, { "cisco", "Cisco" },
	};

	for (size_t i = 0; i < PL_ARRAY_LEN(hints); i++)
		if (strcasestr(s, hints[i].needle))
			return hints[i].os;
	return NULL;
}

int
pl_disc_ssh_parse(const char *data, size_t len, json_t **out)
{
	size_t start = 0;

	*out = NULL;
	while (start < len) {
		const char *nl = memchr(data + start, '\n', len - start);
		size_t end, ll;
		char line[512];
		char *proto, *soft, *comment, *p;
		json_t *o;

		if (nl == NULL) {
			/* RFC 4253: at most 255 bytes per line; allow slack */
			if (len - start > 1024)
				return PL_EPARSE;
			if (len - start >= 4 && memcmp(data + start, "SSH-", 4) != 0 &&
			    start + 8192 < len)
				return PL_EPARSE;
			return PL_DISC_MORE;
		}
		end = (size_t)(nl - data);
		ll = end - start;
		if (ll > 0 && data[end - 1] == '\r')
			ll--;
		if (ll < 4 || memcmp(data + start, "SSH-", 4) != 0) {
			start = end + 1;
			if (start > 8192)
				return PL_EPARSE;
			continue;
		}
		if (ll >= sizeof(line))
			ll = sizeof(line) - 1;
		for (size_t i = 0; i < ll; i++) {
			unsigned char ch = (unsigned char)data[start + i];

			line[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
		}
		line[ll] = '\0';
		o = json_object();
		json_object_set_new(o, "banner", json_string(line));
		proto = line + 4;
		if ((p = strchr(proto, '-')) == NULL) {
			json_decref(o);
			return PL_EPARSE;
		}
		*p = '\0';
		soft = p + 1;
		comment = strchr(soft, ' ');
		if (comment)
			*comment++ = '\0';
		json_object_set_new(o, "protocol", json_string(proto));
		json_object_set_new(o, "software", json_string(soft));
		if (comment && *comment)
			json_object_set_new(o, "comment", json_string(comment));
		{
			const char *os = ssh_os_hint(soft);

			if (os == NULL && comment)
				os = ssh_os_hint(comment);
			if (os)
				json_object_set_new(o, "os", json_string(os));
		}
		*out = o;
		return PL_DISC_DONE;
	}
	return PL_DISC_MORE;
}

/* ---- RFB ---- */

int
pl_disc_rfb_version(const char *data, size_t len, int *major, int *minor)
{
	int v[2] = { 0, 0 };

	if (len < 12) {
		/* fail early on what cannot become "RFB " */
		if (memcmp(data, "RFB ", len < 4 ? len : 4) != 0)
			return PL_EPARSE;
		return PL_DISC_MORE;
	}
	if (memcmp(data, "RFB ", 4) != 0 || data[7] != '.' || data[11] != '\n')
		return PL_EPARSE;
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 3; i++) {
			char c = data[4 + k * 4 + i];

			if (c < '0' || c > '9')
				return PL_EPARSE;
			v[k] = v[k] * 10 + (c - '0');
		}
	*major = v[0];
	*minor = v[1];
	return PL_DISC_DONE;
}

static const char *
rfb_sec_name(unsigned t)
{
	switch (t) {
	case 1: return "None";
	case 2: return "VNC Authentication";
	case 5: return "RA2";
	case 6: return "RA2ne";
	case 16: return "Tight";
	case 17: return "Ultra";
	case 18: return "TLS";
	case 19: return "VeNCrypt";
	case 20: return "SASL";
	case 21: return "MD5 hash";
	case 22: return "xvp";
	case 30: return "Apple Remote Desktop";
	default: return NULL;
	}
}

static json_t *
rfb_sec_json(unsigned t)
{
	const char *n = rfb_sec_name(t);

	return n ? json_string(n) : json_sprintf("type %u", t);
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A failure reason: u32 length then text, capped at 1 KiB. */
static int
rfb_reason(const unsigned char *data, size_t len, json_t *o)
{
	uint32_t rl;

	if (len < 4)
		return PL_DISC_MORE;
	rl = be32(data);
	if (rl > 1024)
		rl = 1024;
	if (len - 4 < rl)
		return PL_DISC_MORE;
	json_object_set_new(o, "reason", pl_disc_json_text((const char *)data + 4, rl));
	return PL_DISC_DONE;
}

int
pl_disc_rfb_security(const unsigned char *data, size_t len, int minor, json_t **out)
{
	json_t *o, *types;
	int r;

	*out = NULL;
	if (len < (minor >= 7 ? 1u : 4u))
		return PL_DISC_MORE;
	o = json_object();
	types = json_array();
	json_object_set_new(o, "security_types", types);
	if (minor >= 7) {
		size_t n = data[0];

		if (n == 0) {
			if ((r = rfb_reason(data + 1, len - 1, o)) != PL_DISC_DONE)
				goto more;
		} else {
			if (len < 1 + n)
				goto more;
			for (size_t i = 0; i < n; i++)
				json_array_append_new(types, rfb_sec_json(data[1 + i]));
		}
	} else {
		uint32_t t = be32(data);

		if (t == 0) {
			if ((r = rfb_reason(data + 4, len - 4, o)) != PL_DISC_DONE)
				goto more;
		} else {
			json_array_append_new(types, rfb_sec_json(t));
		}
	}
	*out = o;
	return PL_DISC_DONE;
more:
	json_decref(o);
	return PL_DISC_MORE;
}

/* ---- X.224 / RDP ---- */

size_t
pl_disc_x224_request(unsigned char *buf, size_t cap)
{
	static const unsigned char req[] = {
		0x03, 0x00, 0x00, 0x13,       /* TPKT v3, length 19 */
		0x0e, 0xe0, 0x00, 0x00, 0x00, /* X.224 CR: LI 14, code, dst-ref */
		0x00, 0x00,                   /* src-ref, class 0 */
		0x01, 0x00, 0x08, 0x00,       /* RDP_NEG_REQ, flags, length 8 */
		0x03, 0x00, 0x00, 0x00,       /* PROTOCOL_SSL | PROTOCOL_HYBRID */
	};

	if (cap < sizeof(req))
		return 0;
	memcpy(buf, req, sizeof(req));
	return sizeof(req);
}

static const char *
rdp_protocol_name(uint32_t p)
{
	switch (p) {
	case 0: return "rdp";
	case 1: return "ssl";
	case 2: return "hybrid";
	case 4: return "rdstls";
	case 8: return "hybrid_ex";
	case 16: return "rdsaad";
	default: return NULL;
	}
}

static const char *
rdp_failure_name(uint32_t c)
{
	switch (c) {
	case 1: return "SSL_REQUIRED_BY_SERVER";
	case 2: return "SSL_NOT_ALLOWED_BY_SERVER";
	case 3: return "SSL_CERT_NOT_ON_SERVER";
	case 4: return "INCONSISTENT_FLAGS";
	case 5: return "HYBRID_REQUIRED_BY_SERVER";
	case 6: return "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER";
	default: return NULL;
	}
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int
pl_disc_x224_parse(const unsigned char *data, size_t len, json_t **out)
{
	size_t tlen, li;
	json_t *o;

	*out = NULL;
	if (len >= 1 && data[0] != 0x03)
		return PL_EPARSE;
	if (len < 4)
		return PL_DISC_MORE;
	tlen = (size_t)data[2] << 8 | data[3];
	if (tlen < 11)
		return PL_EPARSE;
	if (len < tlen)
		return PL_DISC_MORE;
	li = data[4];
	if ((data[5] & 0xf0) != 0xd0 || li < 6 || 5 + li > tlen)
		return PL_EPARSE;
	o = json_object();
	if (li >= 6 + 8 && tlen >= 19) {
		const unsigned char *n = data + 11;
		uint32_t v = le32(n + 4);

		if (n[0] == 0x02) {
			const char *name = rdp_protocol_name(v);

			json_object_set_new(o, "selected_protocol",
					    name ? json_string(name) : json_sprintf("0x%x", v));
			json_object_set_new(o, "flags", json_integer(n[1]));
		} else if (n[0] == 0x03) {
			const char *name = rdp_failure_name(v);

			json_object_set_new(o, "failure",
					    name ? json_string(name) : json_sprintf("0x%x", v));
		} else {
			json_decref(o);
			return PL_EPARSE;
		}
	} else {
		/* an old server that ignores the negotiation request: standard RDP security */
		json_object_set_new(o, "selected_protocol", json_string("rdp"));
		json_object_set_new(o, "negotiation", json_false());
	}
	*out = o;
	return PL_DISC_DONE;
}

/* ---- RMCP (IPMI presence) ---- */

size_t
pl_disc_rmcp_ping(unsigned char *buf, size_t cap, uint8_t tag)
{
	const unsigned char ping[] = {
		0x06, 0x00, 0xff, 0x06, /* RMCP v1.0, no ACK, class ASF */
		0x00, 0x00, 0x11, 0xbe, /* ASF IANA enterprise number 4542 */
		0x80, tag, 0x00, 0x00,  /* Presence Ping, tag, reserved, no data */
	};

	if (cap < sizeof(ping))
		return 0;
	memcpy(buf, ping, sizeof(ping));
	return sizeof(ping);
}

int
pl_disc_rmcp_pong(const unsigned char *data, size_t len, json_t **out)
{
	json_t *o;

	*out = NULL;
	if (len < 12 || data[0] != 0x06 || (data[3] & 0x1f) != 0x06 || be32(data + 4) != 4542 ||
	    data[8] != 0x40)
		return PL_EPARSE;
	o = json_object();
	if (len >= 12 + 10 && data[11] >= 10) {
		json_object_set_new(o, "iana", json_integer(be32(data + 12)));
		json_object_set_new(o, "ipmi", json_boolean(data[20] & 0x80));
	}
	*out = o;
	return PL_DISC_DONE;
}

/* ---- HTTP ---- */

void
pl_disc_http_release(struct pl_disc_http *r)
{
	free(r->reason);
	free(r->server);
	free(r->content_type);
	free(r->location);
	free(r->www_authenticate);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static char *
trimdup(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (n > 512)
		n = 512;
	{
		char *d = pl_malloc(n + 1);

		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)s[i];

			d[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
		}
		d[n] = '\0';
		return d;
	}
}

/* Walk chunked framing in body[0..len): returns PL_DISC_DONE with the decoded
 * size (when out is given the bytes are copied, up to max), PL_DISC_MORE or
 * PL_EPARSE. */
static int
chunked_walk(const char *body, size_t len, char *out, size_t max, size_t *dlen, bool *capped)
{
	size_t pos = 0, total = 0;

	*capped = false;
	for (;;) {
		const char *nl = memchr(body + pos, '\n', len - pos);
		unsigned long long sz = 0;
		size_t i = pos;
		int digits = 0;

		if (nl == NULL)
			return len - pos > 1024 ? PL_EPARSE : PL_DISC_MORE;
		while (i < (size_t)(nl - body) && isxdigit((unsigned char)body[i])) {
			int c = tolower((unsigned char)body[i]);

			if (++digits > 12)
				return PL_EPARSE;
			sz = sz * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
			i++;
		}
		if (digits == 0)
			return PL_EPARSE;
		pos = (size_t)(nl - body) + 1;
		if (sz == 0) {
			*dlen = total;
			return PL_DISC_DONE;
		}
		if (total + sz > max) {
			/* enough for us: take what fits and stop */
			size_t take = max - total;

			if (len - pos < take)
				return PL_DISC_MORE;
			if (out)
				memcpy(out + total, body + pos, take);
			*dlen = max;
			*capped = true;
			return PL_DISC_DONE;
		}
		if (len - pos < sz + 1)
			return PL_DISC_MORE;
		if (out)
			memcpy(out + total, body + pos, (size_t)sz);
		total += (size_t)sz;
		pos += (size_t)sz;
		if (body[pos] == '\r')
			pos++;
		if (pos >= len)
			return PL_DISC_MORE;
		if (body[pos] != '\n')
			return PL_EPARSE;
		pos++;
	}
}

int
pl_disc_http_parse(const char *data, size_t len, bool eof, size_t max_body,
		   struct pl_disc_http *resp)
{
	const char *head_end, *p, *end, *body;
	size_t hl = 0, blen;
	long long clen = -1;
	bool chunked = false;
	int status = 0;

	memset(resp, 0, sizeof(*resp));
	if (len >= 5 && memcmp(data, "HTTP/", 5) != 0)
		return PL_EPARSE;
	if (len < 5 && memcmp(data, "HTTP/", len) != 0)
		return PL_EPARSE;
	head_end = memmem(data, len, "\r\n\r\n", 4);
	if (head_end)
		hl = 4;
	else if ((head_end = memmem(data, len, "\n\n", 2)) != NULL)
		hl = 2;
	if (head_end == NULL) {
		if (len > 65536 || eof)
			return PL_EPARSE;
		return PL_DISC_MORE;
	}
	/* status line: HTTP/1.x SP ddd [SP reason] */
	if ((size_t)(head_end - data) < 12 || data[5] != '1' || data[6] != '.' ||
	    !isdigit((unsigned char)data[7]) || data[8] != ' ')
		return PL_EPARSE;
	for (int i = 9; i < 12; i++) {
		if (!isdigit((unsigned char)data[i]))
			return PL_EPARSE;
		status = status * 10 + (data[i] - '0');
	}
	/* the status line may be the whole head: its newline is then the head's end */
	p = memchr(data, '\n', (size_t)(head_end - data) + hl);
	if (p == NULL || p < data + 12)
		return PL_EPARSE;
	resp->status = status;
	resp->reason = trimdup(data + 12, (size_t)(p - data) - 12);
	p++;
	end = head_end + 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *colon;
		size_t ll;

		if (nl == NULL)
			nl = end;
		ll = (size_t)(nl - p);
		colon = memchr(p, ':', ll);
		if (colon) {
			size_t nlen = (size_t)(colon - p);
			const char *v = colon + 1;
			size_t vlen = ll - nlen - 1;
			char **slot = NULL;

			if (nlen == 6 && !strncasecmp(p, "server", 6))
				slot = &resp->server;
			else if (nlen == 12 && !strncasecmp(p, "content-type", 12))
				slot = &resp->content_type;
			else if (nlen == 8 && !strncasecmp(p, "location", 8))
				slot = &resp->location;
			else if (nlen == 16 && !strncasecmp(p, "www-authenticate", 16))
				slot = &resp->www_authenticate;
			else if (nlen == 14 && !strncasecmp(p, "content-length", 14)) {
				char *t = trimdup(v, vlen);
				long long n;

				if (pl_str_to_ll(t, 0, (long long)1 << 40, &n) == 0)
					clen = n;
				free(t);
			} else if (nlen == 17 && !strncasecmp(p, "transfer-encoding", 17)) {
				char *t = trimdup(v, vlen);

				chunked = strcasestr(t, "chunked") != NULL;
				free(t);
			}
			if (slot && *slot == NULL)
				*slot = trimdup(v, vlen);
		}
		p = nl + 1;
	}
	body = head_end + hl;
	blen = len - (size_t)(body - data);
	if (status < 200 || status == 204 || status == 304) {
		resp->body = pl_strdup("");
		return PL_DISC_DONE;
	}
	if (chunked) {
		size_t dlen = 0;
		bool capped;
		int r = chunked_walk(body, blen, NULL, max_body, &dlen, &capped);

		if (r == PL_DISC_MORE && !eof)
			goto more;
		if (r == PL_EPARSE && !eof)
			goto bad;
		resp->body = pl_malloc(max_body + 1);
		dlen = 0;
		r = chunked_walk(body, blen, resp->body, max_body, &dlen, &capped);
		resp->body_len = dlen;
		resp->body[dlen] = '\0';
		resp->truncated = capped || r != PL_DISC_DONE;
		return PL_DISC_DONE;
	}
	if (clen >= 0) {
		size_t want = (size_t)clen;

		if (want > max_body) {
			want = max_body;
			resp->truncated = true;
		}
		if (blen < want) {
			if (!eof)
				goto more;
			want = blen;
			resp->truncated = true;
		}
		blen = want;
	} else {
		if (blen < max_body && !eof)
			goto more;
		if (blen > max_body) {
			blen = max_body;
			resp->truncated = true;
		}
	}
	resp->body = pl_malloc(blen + 1);
	memcpy(resp->body, body, blen);
	resp->body[blen] = '\0';
	resp->body_len = blen;
	return PL_DISC_DONE;
more:
	pl_disc_http_release(resp);
	return PL_DISC_MORE;
bad:
	pl_disc_http_release(resp);
	return PL_EPARSE;
}

/* ---- HTML title ---- */

char *
pl_disc_html_title(const char *html, size_t len)
{
	const char *p = html, *end = html + len, *t = NULL, *te = NULL;
	char *out;
	size_t o = 0;
	bool space = false;

	while (p + 6 < end) {
		const char *lt = memchr(p, '<', (size_t)(end - p));

		if (lt == NULL || lt + 6 >= end)
			return NULL;
		if (!strncasecmp(lt + 1, "title", 5) &&
		    (lt[6] == '>' || isspace((unsigned char)lt[6]))) {
			const char *gt = memchr(lt, '>', (size_t)(end - lt));

			if (gt == NULL)
				return NULL;
			t = gt + 1;
			break;
		}
		p = lt + 1;
	}
	if (t == NULL)
		return NULL;
	for (p = t; p + 7 < end + 1; p++) {
		if (*p == '<' && (size_t)(end - p) >= 7 && !strncasecmp(p, "</title", 7)) {
			te = p;
			break;
		}
	}
	if (te == NULL)
		te = end;
	if (te - t > 1024)
		te = t + 1024;
	out = pl_malloc((size_t)(te - t) + 1);
	for (p = t; p < te; p++) {
		char c = *p;

		if (c == '&') {
			static const struct {
				const char *ent;
				char c;
			} ents[] = { { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
				     { "&quot;", '"' }, { "&#39;", '\'' }, { "&apos;", '\'' } };
			bool done = false;

			for (size_t i = 0; i < PL_ARRAY_LEN(ents) && !done; i++) {
				size_t el = strlen(ents[i].ent);

				if ((size_t)(te - p) >= el && !strncmp(p, ents[i].ent, el)) {
					c = ents[i].c;
					p += el - 1;
					done = true;
				}
			}
			if (!done && te - p >= 4 && p[1] == '#' && isdigit((unsigned char)p[2])) {
				unsigned v = 0;
				const char *q = p + 2;

				while (q < te && isdigit((unsigned char)*q) && v < 1000)
					v = v * 10 + (unsigned)(*q++ - '0');
				if (q < te && *q == ';' && v >= 0x20 && v < 0x7f) {
					c = (char)v;
					p = q;
				}
			}
		}
		if (isspace((unsigned char)c)) {
			space = o > 0;
			continue;
		}
		if (space) {
			out[o++] = ' ';
			space = false;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	if (o == 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* ---- Redfish ---- */

/* Whether any "@odata.id" link below v (to a small depth) contains needle. */
static bool
link_contains(const json_t *v, const char *needle, int depth)
{
	const char *k;
	json_t *m;

	if (depth > 4 || !json_is_object(v))
		return false;
	json_object_foreach((json_t *)v, k, m) {
		if (!strcmp(k, "@odata.id") && json_is_string(m) &&
		    strstr(json_string_value(m), needle))
			return true;
		if (json_is_object(m) && link_contains(m, needle, depth + 1))
			return true;
	}
	return false;
}

static void
set_vendor(json_t *o, const char *vendor, const char *kind)
{
	if (!json_object_get(o, "vendor"))
		json_object_set_new(o, "vendor", json_string(vendor));
	if (strcmp(pl_json_str_or(o, "kind", "bmc"), "bmc") == 0)
		json_object_set_new(o, "kind", json_string(kind));
}

int
pl_disc_redfish_parse(const char *body, size_t len, json_t **out)
{
	json_t *root, *o, *hints, *oem;
	const char *ver, *id, *type, *vendor, *product, *s;

	*out = NULL;
	if ((root = pl_json_parse(body, len, NULL)) == NULL)
		return PL_EPARSE;
	if (!json_is_object(root))
		goto bad;
	ver = pl_json_str(root, "RedfishVersion");
	id = pl_json_str(root, "@odata.id");
	type = pl_json_str(root, "@odata.type");
	if (ver == NULL && !(id && pl_str_startswith(id, "/redfish/v1") && type &&
			     strstr(type, "ServiceRoot")))
		goto bad;
	o = json_object();
	hints = json_array();
	json_object_set_new(o, "kind", json_string("bmc"));
	if (ver)
		json_object_set_new(o, "redfish_version", pl_disc_json_text(ver, strlen(ver)));
	if (type) {
		const char *t = type[0] == '#' ? type + 1 : type;
		const char *dot2 = strchr(t, '.');

		dot2 = dot2 ? strchr(dot2 + 1, '.') : NULL;
		json_object_set_new(o, "service_root_type",
				    pl_disc_json_text(t, dot2 ? (size_t)(dot2 - t) : strlen(t)));
	}
	vendor = pl_json_str(root, "Vendor");
	product = pl_json_str(root, "Product");
	if (vendor) {
		json_array_append_new(hints, json_sprintf("Vendor %s", vendor));
		if (strcasestr(vendor, "dell"))
			set_vendor(o, "Dell", "idrac");
		else if (strcasestr(vendor, "hpe") || strcasestr(vendor, "hewlett"))
			set_vendor(o, "HPE", "ilo");
		else if (strcasestr(vendor, "supermicro"))
			set_vendor(o, "Supermicro", "bmc");
		else
			json_object_set_new(o, "vendor", pl_disc_json_text(vendor, strlen(vendor)));
	}
	oem = json_object_get(root, "Oem");
	if (json_is_object(oem)) {
		const char *k;
		json_t *m;

		json_object_foreach(oem, k, m) {
			json_array_append_new(hints, json_sprintf("Oem.%s", k));
			if (!strcmp(k, "Dell")) {
				set_vendor(o, "Dell", "idrac");
				if ((s = pl_json_str(m, "ServiceTag")) != NULL)
					json_object_set_new(o, "service_tag",
							    pl_disc_json_text(s, strlen(s)));
			} else if (!strcmp(k, "Hpe") || !strcmp(k, "Hp")) {
				set_vendor(o, "HPE", "ilo");
			} else if (!strcmp(k, "Supermicro")) {
				set_vendor(o, "Supermicro", "bmc");
			} else if (!json_object_get(o, "vendor")) {
				json_object_set_new(o, "vendor", pl_disc_json_text(k, strlen(k)));
			}
		}
	}
	if (product) {
		json_array_append_new(hints, json_sprintf("Product %s", product));
		json_object_set_new(o, "product", pl_disc_json_text(product, strlen(product)));
		if (strcasestr(product, "dell") || strcasestr(product, "idrac"))
			set_vendor(o, "Dell", "idrac");
		else if (strcasestr(product, "ilo"))
			set_vendor(o, "HPE", "ilo");
	}
	/* Old iDRAC firmware has no Vendor, Product or Oem in its root, but its
	 * links name the manager "iDRAC.Embedded.1" (a Dell-only name). */
	if (link_contains(root, "/iDRAC.Embedded.", 0)) {
		json_array_append_new(hints, json_string("link Managers/iDRAC.Embedded.1"));
		set_vendor(o, "Dell", "idrac");
	}
	if ((s = pl_json_str(root, "UUID")) != NULL)
		json_object_set_new(o, "uuid", pl_disc_json_text(s, strlen(s)));
	/* json_sprintf fails (NULL, silently dropped) on invalid UTF-8: that is fine */
	json_object_set_new(o, "hints", hints);
	json_decref(root);
	*out = o;
	return PL_DISC_DONE;
bad:
	json_decref(root);
	return PL_EPARSE;
}
