/*
 * DNS for the record types evdns does not resolve (CNAME, MX, NS, PTR, SOA,
 * SRV, TXT, CAA): the query a dns check sends over UDP and a bounded parser
 * of the server's answer (every length and pointer checked, compression
 * loops cut), which renders each record as one line of text.
 */
#include "core/common.h"
#include "check/check.h"
#include "core/buf.h"
#include "core/err.h"

#include <arpa/inet.h>

static const struct {
	const char *name;
	int type;
} types[] = {
	{ "A", 1 },   { "NS", 2 },   { "CNAME", 5 }, { "SOA", 6 },  { "PTR", 12 },
	{ "MX", 15 }, { "TXT", 16 }, { "AAAA", 28 }, { "SRV", 33 }, { "CAA", 257 },
};

int
pl_check_dns_type(const char *name)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(types); i++)
		if (!strcasecmp(types[i].name, name))
			return types[i].type;
	return 0;
}

int
pl_check_dns_query(const char *name, int qtype, uint16_t id, uint8_t *out, size_t *len)
{
	size_t n = 12;
	const char *p = name;
	char rev[32];
	struct in_addr a;

	/* PTR of an IPv4 address: its in-addr.arpa name */
	if (qtype == 12 && inet_pton(AF_INET, name, &a) == 1) {
		const uint8_t *b = (const uint8_t *)&a;

		snprintf(rev, sizeof(rev), "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
		p = rev;
	}
	memset(out, 0, 12);
	out[0] = (uint8_t)(id >> 8);
	out[1] = (uint8_t)id;
	out[2] = 0x01; /* recursion desired */
	out[5] = 1;    /* one question */
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (l == 0 || l > 63 || n + 1 + l + 5 > PL_CHECK_DNS_MAX)
			return PL_EINVAL;
		out[n++] = (uint8_t)l;
		memcpy(out + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	if (n == 12)
		return PL_EINVAL;
	out[n++] = 0;
	out[n++] = (uint8_t)(qtype >> 8);
	out[n++] = (uint8_t)qtype;
	out[n++] = 0;
	out[n++] = 1; /* class IN */
	*len = n;
	return 0;
}

static unsigned
u16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static unsigned long
u32(const uint8_t *p)
{
	return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 |
	       p[3];
}

/* Read the name at *off into b (dotted; NULL b: skip it). *off moves past
 * it where it sits (not where pointers led). false on anything malformed. */
static bool
read_name(const uint8_t *m, size_t len, size_t *off, struct pl_buf *b)
{
	size_t at = *off, total = 0;
	bool jumped = false;
	int jumps = 0;

	for (;;) {
		unsigned l;

		if (at >= len)
			return false;
		l = m[at];
		if ((l & 0xc0) == 0xc0) {
			if (at + 1 >= len || ++jumps > 16)
				return false;
			if (!jumped)
				*off = at + 2;
			jumped = true;
			at = (size_t)(l & 0x3f) << 8 | m[at + 1];
			continue;
		}
		if (l & 0xc0)
			return false;
		if (l == 0) {
			if (!jumped)
				*off = at + 1;
			if (b && total == 0)
				pl_buf_addch(b, '.');
			return true;
		}
		if (at + 1 + l > len || (total += l + 1) > 255)
			return false;
		if (b) {
			if (total > l + 1)
				pl_buf_addch(b, '.');
			for (unsigned i = 0; i < l; i++) {
				uint8_t c = m[at + 1 + i];

				pl_buf_addch(b, c > 0x20 && c < 0x7f ? (char)c : '?');
			}
		}
		at += 1 + l;
	}
}

/* Printable text of a character-string's bytes. */
static void
add_text(struct pl_buf *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pl_buf_addch(b, p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?');
}

/* One record's data as text: false when it is malformed. */
static bool
render(const uint8_t *m, size_t len, size_t off, size_t rdlen, int type, struct pl_buf *b)
{
	size_t end = off + rdlen, at = off;

	switch (type) {
	case 2:
	case 5:
	case 12:
		return read_name(m, len, &at, b) && at <= end;
	case 15:
		if (rdlen < 3)
			return false;
		pl_buf_addf(b, "%u ", u16(m + off));
		at = off + 2;
		return read_name(m, len, &at, b) && at <= end;
	case 33:
		if (rdlen < 7)
			return false;
		pl_buf_addf(b, "%u %u %u ", u16(m + off), u16(m + off + 2), u16(m + off + 4));
		at = off + 6;
		return read_name(m, len, &at, b) && at <= end;
	case 6:
		if (!read_name(m, len, &at, b))
			return false;
		pl_buf_addch(b, ' ');
		if (!read_name(m, len, &at, b) || at + 20 > end)
			return false;
		pl_buf_addf(b, " %lu", u32(m + at));
		return true;
	case 16:
		while (at < end) {
			size_t l = m[at];

			if (at + 1 + l > end)
				return false;
			add_text(b, m + at + 1, l);
			at += 1 + l;
		}
		return true;
	case 257: {
		size_t tl;

		if (rdlen < 2 || (tl = m[off + 1]) + 2 > rdlen)
			return false;
		pl_buf_addf(b, "%u ", m[off]);
		add_text(b, m + off + 2, tl);
		pl_buf_addch(b, ' ');
		add_text(b, m + off + 2 + tl, rdlen - 2 - tl);
		return true;
	}
	default:
		return false;
	}
}

int
pl_check_dns_parse(const uint8_t *m, size_t len, uint16_t id, int qtype, struct pl_buf *out,
		   char **errmsg)
{
	static const char *const rcodes[] = { "NOERROR",  "FORMERR", "SERVFAIL",
					      "NXDOMAIN", "NOTIMP",  "REFUSED" };
	unsigned qd, an, rcode, found = 0;
	size_t off = 12;

	if (len < 12 || u16(m) != id || !(m[2] & 0x80))
		return pl_seterr(errmsg, PL_EPARSE, "DNS: not an answer to the query");
	rcode = m[3] & 0x0f;
	if (rcode)
		return pl_seterr(errmsg, PL_ENOENT, "DNS: %s",
				 rcode < PL_ARRAY_LEN(rcodes) ? rcodes[rcode] : "error");
	qd = u16(m + 4);
	an = u16(m + 6);
	for (unsigned i = 0; i < qd; i++) {
		if (!read_name(m, len, &off, NULL) || off + 4 > len)
			return pl_seterr(errmsg, PL_EPARSE, "DNS: malformed question");
		off += 4;
	}
	for (unsigned i = 0; i < an; i++) {
		unsigned type, rdlen;

		if (!read_name(m, len, &off, NULL) || off + 10 > len)
			return pl_seterr(errmsg, PL_EPARSE, "DNS: malformed answer %u", i + 1);
		type = u16(m + off);
		rdlen = u16(m + off + 8);
		off += 10;
		if (off + rdlen > len)
			return pl_seterr(errmsg, PL_EPARSE, "DNS: answer %u runs past the end",
					 i + 1);
		/* a CNAME on the way to the type asked for is not an answer */
		if ((int)type == qtype) {
			size_t mark = out->len;

			if (found)
				pl_buf_addch(out, '\n');
			if (!render(m, len, off, rdlen, qtype, out)) {
				pl_buf_truncate(out, mark);
				return pl_seterr(errmsg, PL_EPARSE, "DNS: malformed record %u",
						 i + 1);
			}
			found++;
		}
		off += rdlen;
	}
	if (!found)
		return pl_seterr(errmsg, PL_ENOENT, "DNS: no answer");
	return 0;
}
