/*
 * What to scan: CIDR ranges, addresses and host names become a sorted, duplicate-free address
 * list (more than a /16 only when forced); port lists like "22,80,8000-8010,623/udp".
 */
#include "core/common.h"
#include "discover/discover.h"
#include "core/err.h"
#include "core/str.h"

#include <arpa/inet.h>
#include <netdb.h>

void
pl_disc_targets_init(struct pl_disc_targets *t)
{
	memset(t, 0, sizeof(*t));
}

void
pl_disc_targets_release(struct pl_disc_targets *t)
{
	free(t->addrs);
	free(t->ranges);
	memset(t, 0, sizeof(*t));
}

void
pl_disc_addr_str(const struct pl_disc_addr *a, char *out, size_t outlen)
{
	if (inet_ntop(a->family, a->family == AF_INET ? (const void *)&a->u.v4
						       : (const void *)&a->u.v6,
		      out, (socklen_t)outlen) == NULL)
		snprintf(out, outlen, "?");
}

static int
addr_cmp(const void *pa, const void *pb)
{
	const struct pl_disc_addr *a = pa, *b = pb;

	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	if (a->family == AF_INET) {
		uint32_t x = ntohl(a->u.v4.s_addr), y = ntohl(b->u.v4.s_addr);

		return x < y ? -1 : x > y;
	}
	return memcmp(&a->u.v6, &b->u.v6, sizeof(a->u.v6));
}

static void
push(struct pl_disc_targets *t, const struct pl_disc_addr *a)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->addrs = pl_realloc(t->addrs, t->cap * sizeof(*t->addrs));
	}
	t->addrs[t->n++] = *a;
}

static void
sort_unique(struct pl_disc_targets *t)
{
	size_t o = 0;

	qsort(t->addrs, t->n, sizeof(*t->addrs), addr_cmp);
	for (size_t i = 0; i < t->n; i++)
		if (o == 0 || addr_cmp(&t->addrs[o - 1], &t->addrs[i]) != 0)
			t->addrs[o++] = t->addrs[i];
	t->n = o;
}

static void
add_range(struct pl_disc_targets *t, const struct pl_disc_addr *net, int prefix)
{
	t->ranges = pl_realloc(t->ranges, (t->nranges + 1) * sizeof(*t->ranges));
	t->ranges[t->nranges].net = *net;
	t->ranges[t->nranges].prefix = prefix;
	t->nranges++;
}

static bool
parse_addr(const char *s, struct pl_disc_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->u.v4) == 1) {
		a->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, &a->u.v6) == 1) {
		a->family = AF_INET6;
		return true;
	}
	return false;
}

int
pl_disc_targets_add(struct pl_disc_targets *t, const char *spec, bool force, char **errmsg)
{
	const char *slash = strchr(spec, '/');
	struct pl_disc_addr a;
	size_t limit = force ? PL_DISC_MAX_HOSTS : PL_DISC_MAX_HOSTS_UNFORCED;

	if (slash) {
		char host[INET6_ADDRSTRLEN + 1];
		long long prefix;
		uint32_t base, count;

		if ((size_t)(slash - spec) >= sizeof(host))
			return pl_seterr(errmsg, PL_EINVAL, "invalid range '%s'", spec);
		memcpy(host, spec, (size_t)(slash - spec));
		host[slash - spec] = '\0';
		if (!parse_addr(host, &a))
			return pl_seterr(errmsg, PL_EINVAL,
					 "invalid range '%s' (expected ADDRESS/PREFIX, like 192.168.1.0/24)",
					 spec);
		if (a.family != AF_INET) {
			if (pl_str_to_ll(slash + 1, 0, 128, &prefix) != 0 || prefix < 112)
				return pl_seterr(errmsg, PL_EINVAL,
						 "invalid range '%s' (IPv6 ranges must be /112 or smaller)",
						 spec);
			count = 1u << (128 - prefix);
			if (t->n + count > limit)
				goto too_big;
			add_range(t, &a, (int)prefix);
			for (uint32_t i = 0; i < count; i++) {
				struct pl_disc_addr b = a;
				uint32_t low = ((uint32_t)a.u.v6.s6_addr[14] << 8 | a.u.v6.s6_addr[15]);

				low = (low & ~(count - 1)) + i;
				b.u.v6.s6_addr[14] = (uint8_t)(low >> 8);
				b.u.v6.s6_addr[15] = (uint8_t)low;
				push(t, &b);
			}
			sort_unique(t);
			return 0;
		}
		if (pl_str_to_ll(slash + 1, 0, 32, &prefix) != 0)
			return pl_seterr(errmsg, PL_EINVAL,
					 "invalid prefix length in '%s' (0 to 32)", spec);
		if (prefix < 10 || (size_t)1 << (32 - prefix) > limit - t->n) {
			if (prefix < 10 || (size_t)1 << (32 - prefix) > PL_DISC_MAX_HOSTS)
				return pl_seterr(errmsg, PL_ETOOBIG,
						 "range '%s' is too large to scan (at most %u addresses)",
						 spec, PL_DISC_MAX_HOSTS);
			goto too_big;
		}
		count = (uint32_t)1 << (32 - prefix);
		base = ntohl(a.u.v4.s_addr) & (prefix ? ~(uint32_t)0 << (32 - prefix) : 0);
		a.u.v4.s_addr = htonl(base);
		add_range(t, &a, (int)prefix);
		for (uint32_t i = 0; i < count; i++) {
			struct pl_disc_addr b = a;

			b.u.v4.s_addr = htonl(base + i);
			push(t, &b);
		}
		sort_unique(t);
		return 0;
	}
	if (!parse_addr(spec, &a)) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
		int e;

		/* before the event loop starts, so blocking here is harmless */
		if ((e = getaddrinfo(spec, NULL, &hints, &res)) != 0)
			return pl_seterr(errmsg, PL_ENOENT, "cannot resolve '%s': %s", spec,
					 gai_strerror(e));
		for (ai = res; ai; ai = ai->ai_next)
			if (ai->ai_family == AF_INET)
				break;
		if (ai == NULL)
			ai = res;
		memset(&a, 0, sizeof(a));
		a.family = (sa_family_t)ai->ai_family;
		if (ai->ai_family == AF_INET)
			a.u.v4 = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		else
			a.u.v6 = ((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		freeaddrinfo(res);
	}
	if (t->n + 1 > limit)
		goto too_big;
	add_range(t, &a, a.family == AF_INET ? 32 : 128);
	push(t, &a);
	sort_unique(t);
	return 0;
too_big:
	return pl_seterr(errmsg, PL_ETOOBIG,
			 "refusing to scan more than a /16 (65536 addresses) at '%s' (add --force if you mean it)",
			 spec);
}

static bool
in_range(const struct pl_disc_range *r, const struct pl_disc_addr *a)
{
	if (r->net.family != a->family)
		return false;
	if (a->family == AF_INET) {
		uint32_t mask = r->prefix ? ~(uint32_t)0 << (32 - r->prefix) : 0;

		return (ntohl(a->u.v4.s_addr) & mask) == (ntohl(r->net.u.v4.s_addr) & mask);
	}
	for (int bit = 0; bit < r->prefix; bit++) {
		int byte = bit / 8, sh = 7 - bit % 8;

		if (((a->u.v6.s6_addr[byte] >> sh) & 1) != ((r->net.u.v6.s6_addr[byte] >> sh) & 1))
			return false;
	}
	return true;
}

bool
pl_disc_targets_cover(const struct pl_disc_targets *t, const char *addr)
{
	struct pl_disc_addr a;

	if (!parse_addr(addr, &a))
		return false;
	for (size_t i = 0; i < t->nranges; i++)
		if (in_range(&t->ranges[i], &a))
			return true;
	return false;
}

int
pl_disc_ports_parse(const char *s, struct pl_disc_port **ports, size_t *n, char **errmsg)
{
	struct pl_disc_port *v = NULL;
	size_t nv = 0, cv = 0;
	const char *p = s;
	unsigned char *seen = pl_calloc(2 * 65536 / 8, 1);

	*ports = NULL;
	*n = 0;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char item[32], *dash, *proto;
		long long lo, hi;
		bool udp = false;

		if (len == 0 || len >= sizeof(item))
			goto bad;
		memcpy(item, p, len);
		item[len] = '\0';
		if ((proto = strchr(item, '/')) != NULL) {
			*proto++ = '\0';
			if (!strcmp(proto, "udp"))
				udp = true;
			else if (strcmp(proto, "tcp"))
				goto bad;
		}
		if ((dash = strchr(item, '-')) != NULL)
			*dash++ = '\0';
		if (pl_str_to_ll(item, 1, 65535, &lo) != 0)
			goto bad;
		hi = lo;
		if (dash && (pl_str_to_ll(dash, lo, 65535, &hi) != 0))
			goto bad;
		for (long long port = lo; port <= hi; port++) {
			size_t bit = (size_t)port + (udp ? 65536 : 0);

			if (seen[bit / 8] & (1u << (bit % 8)))
				continue;
			seen[bit / 8] |= (unsigned char)(1u << (bit % 8));
			if (nv == cv) {
				cv = cv ? cv * 2 : 16;
				v = pl_realloc(v, cv * sizeof(*v));
			}
			v[nv].port = (uint16_t)port;
			v[nv].udp = udp;
			nv++;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	free(seen);
	seen = NULL;
	if (nv == 0)
		goto bad;
	*ports = v;
	*n = nv;
	return 0;
bad:
	free(seen);
	free(v);
	return pl_seterr(errmsg, PL_EINVAL,
			 "invalid port list '%s' (expected e.g. 22,80,8000-8010,623/udp)", s);
}
