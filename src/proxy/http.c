/*
 * The proxy's parsers of untrusted bytes: the TLS SNI extension, the Host
 * header of a request head, and Location rewriting in a response head. Pure
 * functions over (pointer, length), fuzzed by tests/fuzz/fuzz_proxy.c.
 */
#include "core/common.h"
#include "proxy/proxy.h"
#include "core/buf.h"
#include "core/err.h"

#include <ctype.h>

/* A DNS name or IP literal we are willing to route on and put in a cert. */
static bool
name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':')
			return false;
	}
	return s[0] != '.' && s[0] != '-';
}

static int
copy_name(const char *s, size_t n, char *out, size_t outsz)
{
	if (!name_ok(s, n) || n >= outsz)
		return PL_EPARSE;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
	return 0;
}

int
pl_proxy_sni_parse(const uint8_t *p, size_t len, char *out, size_t outsz)
{
	size_t list, i;

	if (len < 2)
		return PL_EPARSE;
	list = (size_t)p[0] << 8 | p[1];
	if (list + 2 != len)
		return PL_EPARSE;
	for (i = 2; i + 3 <= len;) {
		unsigned type = p[i];
		size_t n = (size_t)p[i + 1] << 8 | p[i + 2];

		i += 3;
		if (n > len - i)
			return PL_EPARSE;
		if (type == 0) /* host_name */
			return copy_name((const char *)p + i, n, out, outsz);
		i += n;
	}
	return PL_ENOENT;
}

size_t
pl_proxy_http_head_end(const char *p, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
			return i + 4;
	return 0;
}

bool
pl_proxy_http_is_request(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < 16 && isupper((unsigned char)p[i]); i++)
		;
	return i >= 3 && i < len && p[i] == ' ';
}

/* Next line of a head: [*pos, eol) without CR; advances *pos past the LF.
 * False at the end. */
static bool
next_line(const char *p, size_t len, size_t *pos, size_t *lstart, size_t *llen)
{
	size_t s = *pos, e;

	if (s >= len)
		return false;
	for (e = s; e < len && p[e] != '\n'; e++)
		;
	*lstart = s;
	*llen = e - s;
	if (*llen > 0 && p[s + *llen - 1] == '\r')
		(*llen)--;
	*pos = e < len ? e + 1 : e;
	return true;
}

/* If the line is "name: value", the offset and length of the value. */
static bool
header_value(const char *line, size_t n, const char *name, size_t *voff, size_t *vlen)
{
	size_t k = strlen(name), s, e;

	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return false;
	for (s = k + 1; s < n && (line[s] == ' ' || line[s] == '\t'); s++)
		;
	for (e = n; e > s && (line[e - 1] == ' ' || line[e - 1] == '\t'); e--)
		;
	*voff = s;
	*vlen = e - s;
	return true;
}

int
pl_proxy_http_host(const char *head, size_t len, char *out, size_t outsz)
{
	size_t pos = 0, ls, ll, vo, vl;
	bool first = true;

	while (next_line(head, len, &pos, &ls, &ll)) {
		const char *line = head + ls;

		if (ll == 0)
			break;
		if (first) {
			first = false;
			continue;
		}
		if (header_value(line, ll, "host", &vo, &vl)) {
			const char *v = line + vo;
			size_t n = vl;

			if (n > 0 && v[0] == '[') { /* [v6]:port */
				const char *rb = memchr(v, ']', n);

				if (rb == NULL)
					return PL_EPARSE;
				return copy_name(v + 1, (size_t)(rb - v - 1), out, outsz);
			}
			for (size_t i = 0; i < n; i++)
				if (v[i] == ':') {
					n = i;
					break;
				}
			return copy_name(v, n, out, outsz);
		}
	}
	return PL_ENOENT;
}

/* Does value start with origin, followed by the end, '/', '?' or '#'? */
static bool
origin_match(const char *v, size_t n, const char *origin)
{
	size_t k = strlen(origin);

	if (k == 0 || n < k || strncasecmp(v, origin, k) != 0)
		return false;
	return n == k || v[k] == '/' || v[k] == '?' || v[k] == '#';
}

static long long
parse_len(const char *v, size_t n)
{
	long long x = 0;

	if (n == 0 || n > 15)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)v[i]))
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	return x;
}

int
pl_proxy_http_rewrite(const char *head, size_t len, const char *const *from, const char *to,
                      struct pl_buf *out, struct pl_proxy_resp *info)
{
	size_t pos = 0, ls, ll, vo, vl, done = 0;
	int r;

	memset(info, 0, sizeof(*info));
	info->content_length = -1;
	if (len < 12 || memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ' ||
	    !isdigit((unsigned char)head[9]) || !isdigit((unsigned char)head[10]) ||
	    !isdigit((unsigned char)head[11]))
		return PL_EPARSE;
	info->status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
	next_line(head, len, &pos, &ls, &ll);
	while (next_line(head, len, &pos, &ls, &ll)) {
		const char *line = head + ls;

		if (ll == 0)
			break;
		if (header_value(line, ll, "content-length", &vo, &vl)) {
			info->content_length = parse_len(line + vo, vl);
			if (info->content_length < 0)
				info->chunked = true; /* unknown framing: treat as opaque */
		} else if (header_value(line, ll, "transfer-encoding", &vo, &vl)) {
			info->chunked = true;
		} else if (to && from && header_value(line, ll, "location", &vo, &vl)) {
			for (size_t i = 0; from[i]; i++) {
				if (!origin_match(line + vo, vl, from[i]))
					continue;
				/* everything up to the value, the new origin, the rest */
				if ((r = pl_buf_add(out, head + done, ls + vo - done)) != 0 ||
				    (r = pl_buf_addstr(out, to)) != 0)
					return r;
				done = ls + vo + strlen(from[i]);
				info->rewritten++;
				break;
			}
		}
	}
	return pl_buf_add(out, head + done, len - done);
}
