/*
 * String utilities (see str.h).
 */
#include "core/common.h"
#include "core/str.h"
#include "core/err.h"

#include <ctype.h>
#include <errno.h>

int
pl_str_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char row[256];

	if (la > 254 || lb > 254)
		return 255;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned char)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned char diag = row[0];

		row[0] = (unsigned char)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned char up = row[j];
			int cost = a[i - 1] == b[j - 1] ? 0 : 1;
			int best = diag + cost;

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = (unsigned char)(best > 255 ? 255 : best);
			diag = up;
		}
	}
	return row[lb];
}

const char *
pl_str_suggest(const char *word, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	int best_d = 1000;
	int limit = (int)strlen(word) / 3 + 1;

	if (limit > 3)
		limit = 3;
	for (size_t i = 0; n ? i < n : candidates[i] != NULL; i++) {
		int d = pl_str_distance(word, candidates[i]);

		/* A prefix of a candidate ("stat" for "status") is a good guess too. */
		if (d > limit && strlen(word) >= 3 && pl_str_startswith(candidates[i], word))
			d = limit;
		if (d < best_d) {
			best_d = d;
			best = candidates[i];
		}
	}
	return best_d <= limit ? best : NULL;
}

int
pl_str_to_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return PL_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return PL_EINVAL;
	*out = v;
	return 0;
}

bool
pl_str_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool
pl_str_endswith(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

char *
pl_str_url_decode(const char *s)
{
	char *out = pl_malloc(strlen(s) + 1), *o = out;

	for (; *s; s++) {
		if (*s == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
			char hex[3] = { s[1], s[2], 0 };

			*o++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

char *
pl_str_url_encode(const char *s)
{
	char *out = pl_malloc(strlen(s) * 3 + 1), *o = out;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			*o++ = (char)*p;
		} else {
			snprintf(o, 4, "%%%02X", *p);
			o += 3;
		}
	}
	*o = '\0';
	return out;
}

long long
pl_str_duration(const char *s)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || end == s || n <= 0 || n > 100000 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (*end) {
	case 'd':
		return n * 86400;
	case 'h':
		return n * 3600;
	case 'm':
		return n * 60;
	case 's':
		return n;
	default:
		return -1;
	}
}
