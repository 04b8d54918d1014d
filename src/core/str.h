/*
 * Small string utilities: edit distance for "did you mean" suggestions,
 * strict integer parsing, prefix tests.
 */
#ifndef PL_CORE_STR_H
#define PL_CORE_STR_H

#include "core/common.h"

/* Levenshtein distance between a and b (capped at 255). */
int pl_str_distance(const char *a, const char *b);
/* The candidate closest to word, or NULL if none is close enough to suggest.
 * candidates is NULL-terminated, or n > 0 entries long when n is given. */
const char *pl_str_suggest(const char *word, const char *const *candidates, size_t n);
/* Parse a whole string as a base-10 integer within [min,max]; 0 or PL_EINVAL. */
int pl_str_to_ll(const char *s, long long min, long long max, long long *out);
/* Percent-decode / percent-encode (all but unreserved characters); caller frees. */
char *pl_str_url_decode(const char *s);
char *pl_str_url_encode(const char *s);
bool pl_str_startswith(const char *s, const char *prefix);
/* "90d", "12h", "30m", "45s" (1 to 100000 of a unit) -> seconds; -1 when
 * malformed. */
long long pl_str_duration(const char *s);
bool pl_str_endswith(const char *s, const char *suffix);

#endif
