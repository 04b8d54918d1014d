/*
 * jansson helpers tolerant of Proxmox's loose typing, and canonical hashing.
 */
#include "core/common.h"
#include "core/json.h"
#include "core/buf.h"
#include "core/err.h"

#include <errno.h>
#include <openssl/evp.h>

json_t *
pl_json_parse(const char *data, size_t len, char **errmsg)
{
	json_error_t e;
	json_t *v = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

	if (v == NULL)
		pl_seterr(errmsg, PL_EPARSE, "line %d col %d: %s", e.line, e.column, e.text);
	return v;
}

const char *
pl_json_str(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *
pl_json_str_or(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = pl_json_str(obj, key);

	return s ? s : dflt;
}

long long
pl_json_int(const json_t *obj, const char *key, long long dflt)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	char *end;
	long long n;

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	if (json_is_true(v))
		return 1;
	if (json_is_false(v))
		return 0;
	if (!json_is_string(v))
		return dflt;
	s = json_string_value(v);
	errno = 0;
	n = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno)
		return dflt;
	return n;
}

double
pl_json_num(const json_t *obj, const char *key, double dflt)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	char *end;
	double d;

	if (json_is_number(v))
		return json_number_value(v);
	if (!json_is_string(v))
		return dflt;
	s = json_string_value(v);
	d = strtod(s, &end);
	return (end == s || *end != '\0') ? dflt : d;
}

bool
pl_json_bool(const json_t *obj, const char *key, bool dflt)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_boolean(v))
		return json_is_true(v);
	if (json_is_integer(v))
		return json_integer_value(v) != 0;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
		    !strcasecmp(s, "on"))
			return true;
		if (!strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
		    !strcasecmp(s, "off") || !strcmp(s, ""))
			return false;
	}
	return dflt;
}

char *
pl_json_canonical(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (s == NULL)
		pl_die("out of memory");
	return s;
}

void
pl_json_sha256(const json_t *v, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *s = pl_json_canonical(v);

	EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
	free(s);
}

static int
buf_dump_cb(const char *p, size_t n, void *data)
{
	return pl_buf_add(data, p, n) ? -1 : 0;
}

int
pl_json_buf_add(struct pl_buf *b, const json_t *v, size_t flags)
{
	if (json_dump_callback(v, buf_dump_cb, b, flags | JSON_ENCODE_ANY) != 0)
		return PL_ETOOBIG;
	return 0;
}
