/*
 * Property-string codec (see propstr.h). The rules follow pve-common's
 * parse_property_string/print_property_string: split on ',', "key=value" or a
 * bare default-key value, keyAlias keys ("virtio=MAC"), aliases, booleans
 * normalised to 1/0, then each value checked against its key's schema.
 */
#include "core/common.h"
#include "core/propstr.h"
#include "core/buf.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/json.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>

/* ---- formats ---------------------------------------------------------- */

static char *
dup_or_null(const char *s)
{
	return s ? pl_strdup(s) : NULL;
}

static char *
default_text(const json_t *v)
{
	if (json_is_string(v))
		return pl_strdup(json_string_value(v));
	if (json_is_integer(v))
		return pl_asprintf("%lld", (long long)json_integer_value(v));
	if (json_is_real(v))
		return pl_asprintf("%g", json_real_value(v));
	if (json_is_boolean(v))
		return pl_strdup(json_is_true(v) ? "1" : "0");
	return NULL;
}

struct pl_pfmt *
pl_pfmt_from_json(const char *name, const json_t *fmt, char **errmsg)
{
	struct pl_pfmt *f;
	const char *k;
	json_t *v;
	size_t i = 0;

	if (!json_is_object(fmt)) {
		pl_seterr(errmsg, PL_EINVAL, "format '%s' is not an object", name);
		return NULL;
	}
	f = pl_calloc(1, sizeof(*f));
	f->name = pl_strdup(name);
	f->nkeys = json_object_size(fmt);
	f->keys = pl_calloc(f->nkeys, sizeof(*f->keys));
	json_object_foreach((json_t *)fmt, k, v) {
		struct pl_pkey *key = &f->keys[i++];
		const char *type = pl_json_str(v, "type");

		key->name = pl_strdup(k);
		key->alias = dup_or_null(pl_json_str(v, "alias"));
		key->key_alias = dup_or_null(pl_json_str(v, "keyAlias"));
		key->format = json_is_string(json_object_get(v, "format"))
				      ? pl_strdup(pl_json_str(v, "format"))
				      : NULL;
		key->dflt = default_text(json_object_get(v, "default"));
		if (json_is_array(json_object_get(v, "enum")))
			key->enums = json_incref(json_object_get(v, "enum"));
		key->optional = pl_json_bool(v, "optional", false);
		key->default_key = pl_json_bool(v, "default_key", false);
		if (json_is_number(json_object_get(v, "minimum"))) {
			key->has_min = true;
			key->min = json_number_value(json_object_get(v, "minimum"));
		}
		if (json_is_number(json_object_get(v, "maximum"))) {
			key->has_max = true;
			key->max = json_number_value(json_object_get(v, "maximum"));
		}
		if (type == NULL || !strcmp(type, "string"))
			key->type = PL_PT_STRING;
		else if (!strcmp(type, "integer"))
			key->type = PL_PT_INT;
		else if (!strcmp(type, "number"))
			key->type = PL_PT_NUM;
		else if (!strcmp(type, "boolean"))
			key->type = PL_PT_BOOL;
		if (key->key_alias)
			f->model_mac = true;
	}
	/* The default key is resolved after all keys exist (the order of the
	 * schema's object is not meaningful). */
	for (i = 0; i < f->nkeys; i++)
		if (f->keys[i].default_key)
			f->dkey = &f->keys[i];
	return f;
}

void
pl_pfmt_free(struct pl_pfmt *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->nkeys; i++) {
		struct pl_pkey *k = &f->keys[i];

		free(k->name);
		free(k->alias);
		free(k->key_alias);
		free(k->format);
		free(k->dflt);
		json_decref(k->enums);
	}
	free(f->keys);
	free(f->name);
	free(f);
}

/* The built-in formats, compiled on first use from the embedded data. */
static struct {
	json_t *data;
	struct pl_pfmt **fmts;
	const char **names;
	size_t n;
} builtin;

static void
builtin_load(void)
{
	size_t len, cap = 0;
	const char *text = pl_embed_get("pve-formats.json", &len);
	json_t *formats, *named, *v;
	const char *k;

	if (builtin.data)
		return;
	builtin.data = pl_json_parse(text, len, NULL);
	if (builtin.data == NULL)
		pl_die("embedded pve-formats.json does not parse");
	formats = json_object_get(builtin.data, "formats");
	named = json_object_get(builtin.data, "named");
	cap = json_object_size(formats) + json_object_size(named);
	builtin.fmts = pl_calloc(cap, sizeof(*builtin.fmts));
	builtin.names = pl_calloc(cap + 1, sizeof(*builtin.names));
	json_object_foreach(named, k, v) {
		builtin.names[builtin.n] = k;
		builtin.fmts[builtin.n++] = pl_pfmt_from_json(k, v, NULL);
	}
	json_object_foreach(formats, k, v) {
		const char *ref = pl_json_str(v, "$named");

		if (ref)
			v = json_object_get(named, ref);
		builtin.names[builtin.n] = k;
		builtin.fmts[builtin.n++] = pl_pfmt_from_json(k, v, NULL);
	}
}

const struct pl_pfmt *
pl_pfmt_get(const char *name)
{
	builtin_load();
	for (size_t i = 0; i < builtin.n; i++)
		if (!strcmp(builtin.names[i], name))
			return builtin.fmts[i];
	return NULL;
}

const char *const *
pl_pfmt_names(void)
{
	builtin_load();
	return builtin.names;
}

void
pl_pfmt_cleanup(void)
{
	for (size_t i = 0; i < builtin.n; i++)
		pl_pfmt_free(builtin.fmts[i]);
	free(builtin.fmts);
	free(builtin.names);
	json_decref(builtin.data);
	memset(&builtin, 0, sizeof(builtin));
}

static const struct pl_pkey *
raw_key(const struct pl_pfmt *f, const char *name, size_t len)
{
	for (size_t i = 0; i < f->nkeys; i++)
		if (strlen(f->keys[i].name) == len && !memcmp(f->keys[i].name, name, len))
			return &f->keys[i];
	return NULL;
}

const struct pl_pkey *
pl_pfmt_key(const struct pl_pfmt *f, const char *name)
{
	const struct pl_pkey *k = raw_key(f, name, strlen(name));

	if (k && k->alias)
		k = raw_key(f, k->alias, strlen(k->alias));
	return k;
}

/* ---- pairs ------------------------------------------------------------ */

void
pl_propstr_init(struct pl_propstr *p)
{
	memset(p, 0, sizeof(*p));
}

void
pl_propstr_release(struct pl_propstr *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->items[i].key);
		free(p->items[i].value);
	}
	free(p->items);
	pl_propstr_init(p);
}

static struct pl_prop *
find(const struct pl_propstr *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->items[i].key, key))
			return &p->items[i];
	return NULL;
}

const char *
pl_propstr_get(const struct pl_propstr *p, const char *key)
{
	struct pl_prop *it = find(p, key);

	return it ? it->value : NULL;
}

void
pl_propstr_set(struct pl_propstr *p, const char *key, const char *value)
{
	struct pl_prop *it = find(p, key);

	if (it) {
		free(it->value);
		it->value = pl_strdup(value);
		return;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->items = pl_realloc(p->items, p->cap * sizeof(*p->items));
	}
	p->items[p->n].key = pl_strdup(key);
	p->items[p->n].value = pl_strdup(value);
	p->n++;
}

bool
pl_propstr_del(struct pl_propstr *p, const char *key)
{
	struct pl_prop *it = find(p, key);
	size_t i;

	if (it == NULL)
		return false;
	i = (size_t)(it - p->items);
	free(it->key);
	free(it->value);
	memmove(&p->items[i], &p->items[i + 1], (p->n - i - 1) * sizeof(*p->items));
	p->n--;
	return true;
}

/* ---- value checks ----------------------------------------------------- */

const char *
pl_bool_norm(const char *s)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (size_t i = 0; i < PL_ARRAY_LEN(yes); i++)
		if (!strcasecmp(s, yes[i]))
			return "1";
	for (size_t i = 0; i < PL_ARRAY_LEN(no); i++)
		if (!strcasecmp(s, no[i]))
			return "0";
	return NULL;
}

int
pl_size_parse(const char *s, unsigned long long *bytes)
{
	char *end;
	double v;
	unsigned long long mult = 1;

	if (!isdigit((unsigned char)*s))
		return PL_EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s)
		return PL_EINVAL;
	switch (*end) {
	case 'T': mult <<= 10; /* fall through */
	case 'G': mult <<= 10; /* fall through */
	case 'M': mult <<= 10; /* fall through */
	case 'K': mult <<= 10; end++; break;
	case '\0': break;
	default: return PL_EINVAL;
	}
	if (*end != '\0' || v * (double)mult > 1.8e19)
		return PL_EINVAL;
	*bytes = (unsigned long long)llround(v * (double)mult);
	return 0;
}

void
pl_size_format(unsigned long long bytes, char *out, size_t outlen)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (u < 3 && bytes && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(out, outlen, "%llu", bytes);
	else
		snprintf(out, outlen, "%llu%c", bytes, units[u]);
}

static bool
is_mac(const char *s)
{
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return s[17] == '\0';
}

static bool
is_ip(int af, const char *s, bool cidr)
{
	char addr[64];
	unsigned char tmp[16];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	long long bits;

	if ((slash != NULL) != cidr || n == 0 || n >= sizeof(addr))
		return false;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(af, addr, tmp) != 1)
		return false;
	if (!cidr)
		return true;
	char *end;

	errno = 0;
	bits = strtoll(slash + 1, &end, 10);
	return !errno && end != slash + 1 && *end == '\0' && bits >= 0 &&
	       bits <= (af == AF_INET ? 32 : 128);
}

/* Check a value against the schema's named value formats we know; NULL if fine. */
static const char *
check_format(const char *format, const char *v)
{
	unsigned long long sz;

	if (format == NULL)
		return NULL;
	if (!strcmp(format, "mac-addr"))
		return is_mac(v) ? NULL : "invalid format - value does not look like a valid MAC address";
	if (!strcmp(format, "disk-size"))
		return pl_size_parse(v, &sz) == 0 ? NULL : "invalid format - unable to parse size";
	if (!strcmp(format, "ipv4"))
		return is_ip(AF_INET, v, false) ? NULL : "invalid format - value does not look like a valid IPv4 address";
	if (!strcmp(format, "ipv6"))
		return is_ip(AF_INET6, v, false) ? NULL : "invalid format - value does not look like a valid IPv6 address";
	if (!strcmp(format, "pve-ipv4-config"))
		return (!strcmp(v, "dhcp") || !strcmp(v, "manual") || is_ip(AF_INET, v, true))
			       ? NULL
			       : "invalid format - value does not look like a valid IPv4 network configuration";
	if (!strcmp(format, "pve-ipv6-config"))
		return (!strcmp(v, "dhcp") || !strcmp(v, "auto") || !strcmp(v, "manual") ||
			is_ip(AF_INET6, v, true))
			       ? NULL
			       : "invalid format - value does not look like a valid IPv6 network configuration";
	return NULL;
}

/* Validate one value; on error write "key: reason" into errmsg. */
static int
check_value(const struct pl_pkey *k, const char *v, char **errmsg)
{
	const char *why;
	char *end;
	double num;

	switch (k->type) {
	case PL_PT_BOOL:
		if (pl_bool_norm(v) == NULL)
			return pl_seterr(errmsg, PL_EPARSE, "%s: type check ('boolean') failed - got '%s'",
					 k->name, v);
		return 0;
	case PL_PT_INT:
	case PL_PT_NUM:
		errno = 0;
		num = strtod(v, &end);
		if (errno || end == v || *end != '\0' ||
		    (k->type == PL_PT_INT && strspn(v + (*v == '-'), "0123456789") != strlen(v + (*v == '-'))))
			return pl_seterr(errmsg, PL_EPARSE, "%s: type check ('%s') failed - got '%s'",
					 k->name, k->type == PL_PT_INT ? "integer" : "number", v);
		if (k->has_min && num < k->min)
			return pl_seterr(errmsg, PL_EPARSE, "%s: value must have a minimum value of %g",
					 k->name, k->min);
		if (k->has_max && num > k->max)
			return pl_seterr(errmsg, PL_EPARSE, "%s: value must have a maximum value of %g",
					 k->name, k->max);
		return 0;
	case PL_PT_STRING:
		break;
	}
	if (k->enums) {
		size_t i;
		json_t *e;
		struct pl_buf list;

		json_array_foreach(k->enums, i, e)
			if (json_is_string(e) && !strcmp(json_string_value(e), v))
				return 0;
		pl_buf_init(&list, 4096);
		json_array_foreach(k->enums, i, e)
			pl_buf_addf(&list, "%s%s", i ? ", " : "", json_string_value(e));
		pl_seterr(errmsg, PL_EPARSE,
			  "%s: value '%s' does not have a value in the enumeration '%s'", k->name, v,
			  list.data);
		pl_buf_release(&list);
		return PL_EPARSE;
	}
	if ((why = check_format(k->format, v)) != NULL)
		return pl_seterr(errmsg, PL_EPARSE, "%s: %s", k->name, why);
	return 0;
}

/* ---- parse ------------------------------------------------------------ */

int
pl_propstr_parse(const struct pl_pfmt *f, const char *s, struct pl_propstr *p, char **errmsg)
{
	const char *part = s;
	int r = 0;

	pl_propstr_release(p);
	while (r == 0 && part) {
		const char *comma = strchr(part, ',');
		size_t n = comma ? (size_t)(comma - part) : strlen(part);
		const char *eq = memchr(part, '=', n);
		char *value = NULL;

		if (strspn(part, " \t") >= n) { /* empty part: PVE skips it */
			part = comma ? comma + 1 : NULL;
			continue;
		}
		if (eq && eq > part && eq + 1 < part + n) {
			const struct pl_pkey *k = raw_key(f, part, (size_t)(eq - part));
			char *kname = pl_strndup(part, (size_t)(eq - part));

			value = pl_strndup(eq + 1, (size_t)(part + n - eq - 1));
			if (k && k->alias) {
				if (k->key_alias) {
					if (find(p, k->key_alias)) {
						r = pl_seterr(errmsg, PL_EPARSE,
							      "%s: key alias '%s' is already defined",
							      kname, k->key_alias);
						goto next;
					}
					pl_propstr_set(p, k->key_alias, kname);
				}
				k = raw_key(f, k->alias, strlen(k->alias));
			}
			if (k == NULL) {
				r = pl_seterr(errmsg, PL_EPARSE,
					      "%s: invalid key in comma-separated list property", kname);
			} else if (find(p, k->name)) {
				r = pl_seterr(errmsg, PL_EPARSE,
					      "%s: duplicate key in comma-separated list property",
					      k->name);
			} else if ((r = check_value(k, value, errmsg)) == 0) {
				const char *b = k->type == PL_PT_BOOL ? pl_bool_norm(value) : NULL;

				pl_propstr_set(p, k->name, b ? b : value);
			}
		next:
			free(kname);
		} else if (eq == NULL) {
			value = pl_strndup(part, n);
			if (f->dkey == NULL)
				r = pl_seterr(errmsg, PL_EPARSE,
					      "'%s': value without key, but schema does not define a default key",
					      value);
			else if (find(p, f->dkey->name))
				r = pl_seterr(errmsg, PL_EPARSE,
					      "%s: duplicate key in comma-separated list property",
					      f->dkey->name);
			else if ((r = check_value(f->dkey, value, errmsg)) == 0) {
				const char *b = f->dkey->type == PL_PT_BOOL ? pl_bool_norm(value) : NULL;

				pl_propstr_set(p, f->dkey->name, b ? b : value);
			}
		} else {
			char *bad = pl_strndup(part, n);

			r = pl_seterr(errmsg, PL_EPARSE,
				      "'%s': missing key or value in comma-separated list property",
				      bad);
			free(bad);
		}
		free(value);
		part = comma ? comma + 1 : NULL;
	}
	/* Required keys (the default key is not "required" if it has no value
	 * only when the schema marks it optional). */
	for (size_t i = 0; r == 0 && i < f->nkeys; i++) {
		const struct pl_pkey *k = &f->keys[i];

		if (!k->optional && !k->alias && !k->key_alias && !find(p, k->name) && !k->dflt)
			r = pl_seterr(errmsg, PL_EPARSE,
				      "%s: property is missing and it is not optional", k->name);
	}
	if (r != 0)
		pl_propstr_release(p);
	return r;
}

/* ---- format and compare ----------------------------------------------- */

/* The canonical text of one value into out (a small stack buffer) or the
 * value itself. */
static const char *
canon_value(const struct pl_pkey *k, const char *v, char *tmp, size_t tmplen)
{
	unsigned long long sz;

	if (k == NULL)
		return v;
	if (k->type == PL_PT_BOOL) {
		const char *b = pl_bool_norm(v);

		return b ? b : v;
	}
	if (k->format && !strcmp(k->format, "disk-size") && pl_size_parse(v, &sz) == 0) {
		pl_size_format(sz, tmp, tmplen);
		return tmp;
	}
	if (k->type == PL_PT_INT || k->type == PL_PT_NUM) {
		char *end;
		double d = strtod(v, &end);

		if (end != v && *end == '\0') {
			snprintf(tmp, tmplen, "%.15g", d);
			return tmp;
		}
	}
	return v;
}

static int
cmp_keys(const void *a, const void *b)
{
	const struct pl_prop *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

int
pl_propstr_format(const struct pl_pfmt *f, const struct pl_propstr *p, struct pl_buf *out)
{
	const struct pl_prop **sorted = pl_calloc(p->n, sizeof(*sorted));
	const char *model = NULL, *mac = NULL;
	char tmp[64];
	size_t ns = 0;
	bool sep = false;
	int r = 0;

	if (f->model_mac && f->dkey) {
		model = pl_propstr_get(p, f->dkey->name);
		for (size_t i = 0; model && i < f->nkeys; i++)
			if (f->keys[i].key_alias && !strcmp(f->keys[i].name, model))
				mac = pl_propstr_get(p, f->keys[i].alias);
	}
	if (model && mac) {
		r |= pl_buf_addf(out, "%s=%s", model, mac);
		sep = true;
	} else if (f->dkey && pl_propstr_get(p, f->dkey->name)) {
		r |= pl_buf_addstr(out, canon_value(f->dkey, pl_propstr_get(p, f->dkey->name), tmp,
						    sizeof(tmp)));
		sep = true;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct pl_prop *it = &p->items[i];
		const struct pl_pkey *k = pl_pfmt_key(f, it->key);

		if (f->dkey && !strcmp(it->key, f->dkey->name))
			continue;
		if (mac && k && k->format && !strcmp(k->format, "mac-addr"))
			continue;
		sorted[ns++] = it;
	}
	qsort(sorted, ns, sizeof(*sorted), cmp_keys);
	/* Required keys first (as PVE prints "name=eth0,..." and "...,mp=/data,..."), then the rest. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ns; i++) {
			const struct pl_pkey *k = pl_pfmt_key(f, sorted[i]->key);
			bool required = k && !k->optional;

			if (required != (pass == 0))
				continue;
			r |= pl_buf_addf(out, "%s%s=%s", sep ? "," : "", sorted[i]->key,
					 canon_value(k, sorted[i]->value, tmp, sizeof(tmp)));
			sep = true;
		}
	}
	free(sorted);
	return r ? PL_ETOOBIG : 0;
}

char *
pl_propstr_canonical(const struct pl_pfmt *f, const char *s, char **errmsg)
{
	struct pl_propstr p;
	struct pl_buf b;

	pl_propstr_init(&p);
	if (pl_propstr_parse(f, s, &p, errmsg) != 0)
		return NULL;
	pl_buf_init(&b, 1 << 20);
	pl_propstr_format(f, &p, &b);
	pl_propstr_release(&p);
	return pl_buf_detach(&b, NULL);
}

/* Normalised value of key in p, with absent keys taking the schema default. */
static const char *
norm_of(const struct pl_pfmt *f, const struct pl_propstr *p, const char *key, char *tmp,
	size_t tmplen)
{
	const struct pl_pkey *k = pl_pfmt_key(f, key);
	const char *v = pl_propstr_get(p, key);

	if (v == NULL)
		v = k ? k->dflt : NULL;
	/* Perl reads an unset boolean as false: "firewall=0" means "no firewall". */
	if (v == NULL && k && k->type == PL_PT_BOOL)
		v = "0";
	if (v == NULL)
		return NULL;
	v = canon_value(k, v, tmp, tmplen);
	if (k && k->format && !strcmp(k->format, "mac-addr") && is_mac(v)) {
		snprintf(tmp, tmplen, "%s", v);
		for (char *c = tmp; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		return tmp;
	}
	return v;
}

static bool
same_key(const struct pl_pfmt *f, const struct pl_propstr *a, const struct pl_propstr *b,
	 const char *key)
{
	char ta[128], tb[128];
	const char *va = norm_of(f, a, key, ta, sizeof(ta));
	const char *vb = norm_of(f, b, key, tb, sizeof(tb));

	if (va == NULL || vb == NULL)
		return va == vb;
	return strcmp(va, vb) == 0;
}

bool
pl_propstr_equal(const struct pl_pfmt *f, const struct pl_propstr *a, const struct pl_propstr *b,
		 const char **diff_key)
{
	const struct pl_propstr *sides[2] = { a, b };

	for (int s = 0; s < 2; s++)
		for (size_t i = 0; i < sides[s]->n; i++)
			if (!same_key(f, a, b, sides[s]->items[i].key)) {
				if (diff_key)
					*diff_key = sides[s]->items[i].key;
				return false;
			}
	return true;
}

bool
pl_propstr_equal_str(const struct pl_pfmt *f, const char *a, const char *b)
{
	struct pl_propstr pa, pb;
	bool eq;

	pl_propstr_init(&pa);
	pl_propstr_init(&pb);
	if (pl_propstr_parse(f, a, &pa, NULL) != 0 || pl_propstr_parse(f, b, &pb, NULL) != 0)
		eq = strcmp(a, b) == 0;
	else
		eq = pl_propstr_equal(f, &pa, &pb, NULL);
	pl_propstr_release(&pa);
	pl_propstr_release(&pb);
	return eq;
}
