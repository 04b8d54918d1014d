/*
 * PVE::JSONSchema's value checks over the embedded API schema (see
 * apischema.h): types, named formats, property strings, enumerations, ranges,
 * lengths and patterns (Perl regexes translated to POSIX ERE).
 */
#include "core/common.h"
#include "core/apischema.h"

#include <arpa/inet.h>
#include <regex.h>

#include "core/buf.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"

#define DIGITS "0123456789"
#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" DIGITS

/* A minimum or maximum of a definition: a number or a numeric string. */
static const json_t *
limit_of(const json_t *def, const char *key)
{
	const json_t *v = json_object_get(def, key);

	return json_is_number(v) || json_is_string(v) ? v : NULL;
}

void
pl_api_param_init(struct pl_api_param *p, const char *name, const json_t *def)
{
	size_t n = strlen(name);
	const json_t *fmt, *items = json_object_get(def, "items");

	memset(p, 0, sizeof(*p));
	p->optional = pl_json_bool(def, "optional", false);
	p->description = pl_json_str(def, "description");
	/* a list's checks are its items' ("map" of /cluster/mapping/pci) */
	if (!strcmp(pl_json_str_or(def, "type", ""), "array") && json_is_object(items)) {
		p->array = true;
		def = items;
	}
	fmt = json_object_get(def, "format");
	if (n > 3 && !strcmp(name + n - 3, "[n]")) {
		p->name = pl_strndup(name, n - 3);
		p->indexed = true;
	} else {
		p->name = pl_strdup(name);
	}
	p->type = pl_json_str_or(def, "type", "string");
	if (json_is_object(fmt))
		p->pfmt = pl_pfmt_from_json(p->name, fmt, NULL);
	else if (json_is_string(fmt))
		p->named = pl_pfmt_get(json_string_value(fmt));
	p->format = json_string_value(fmt);
	if (json_is_array(json_object_get(def, "enum")))
		p->enumv = json_object_get(def, "enum");
	p->pattern = pl_json_str(def, "pattern");
	p->minimum = limit_of(def, "minimum");
	p->maximum = limit_of(def, "maximum");
	p->minlen = pl_json_int(def, "minLength", -1);
	p->maxlen = pl_json_int(def, "maxLength", -1);
}

void
pl_api_param_release(struct pl_api_param *p)
{
	free(p->name);
	pl_pfmt_free(p->pfmt);
	if (p->regex) {
		regfree(p->regex);
		free(p->regex);
	}
}

char *
pl_api_value_text(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return pl_strdup(json_string_value(v));
	case JSON_INTEGER:
		return pl_asprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL:
		return pl_asprintf("%.17g", json_real_value(v));
	case JSON_TRUE:
		return pl_strdup("1");
	case JSON_FALSE:
		return pl_strdup("0");
	case JSON_NULL:
		return pl_strdup("");
	default:
		return NULL;
	}
}

/* Perl regex (as PVE writes them) to POSIX ERE; NULL when a construct has no
 * equivalent (then the pattern is not checked). */
static char *
regex_translate(const char *re, bool *icase)
{
	struct pl_buf b, br;
	bool inbr = false, neg = false, dash = false;
	size_t i = 0;

	pl_buf_init(&b, 4096);
	pl_buf_init(&br, 1024);
	pl_buf_addstr(&b, "^(");
	while (re[i]) {
		char c = re[i];

		if (!inbr && !strncmp(re + i, "(?^i:", 5)) {
			*icase = true;
			pl_buf_addch(&b, '(');
			i += 5;
			continue;
		}
		if (!inbr && (!strncmp(re + i, "(?^:", 4))) {
			pl_buf_addch(&b, '(');
			i += 4;
			continue;
		}
		if (!inbr && !strncmp(re + i, "(?:", 3)) {
			pl_buf_addch(&b, '(');
			i += 3;
			continue;
		}
		if (!inbr && c == '(' && re[i + 1] == '?')
			goto bad;
		if (!inbr && c == '[') {
			inbr = true;
			neg = false;
			dash = false;
			pl_buf_reset(&br);
			i++;
			if (re[i] == '^') {
				neg = true;
				i++;
			}
			if (re[i] == ']') {
				pl_buf_addch(&br, ']');
				i++;
			}
			continue;
		}
		if (inbr && c == ']') {
			pl_buf_addch(&b, '[');
			if (neg)
				pl_buf_addch(&b, '^');
			pl_buf_addstr(&b, br.data);
			if (dash)
				pl_buf_addch(&b, '-');
			pl_buf_addch(&b, ']');
			inbr = false;
			i++;
			continue;
		}
		if (c == '\\') {
			char e = re[i + 1];

			if (!e)
				goto bad;
			i += 2;
			if (inbr) {
				switch (e) {
				case 'd': pl_buf_addstr(&br, "0-9"); break;
				case 'w': pl_buf_addstr(&br, "A-Za-z0-9_"); break;
				case 's': pl_buf_addstr(&br, "[:space:]"); break;
				case '-': dash = true; break;
				case 'x': case '0': case 'S': case 'W': case 'D': goto bad;
				default: pl_buf_addch(&br, e); break;
				}
			} else {
				switch (e) {
				case 'd': pl_buf_addstr(&b, "[0-9]"); break;
				case 'w': pl_buf_addstr(&b, "[A-Za-z0-9_]"); break;
				case 's': pl_buf_addstr(&b, "[[:space:]]"); break;
				case 'S': pl_buf_addstr(&b, "[^[:space:]]"); break;
				case '-': case '_': case '/': case ':': case '=': pl_buf_addch(&b, e); break;
				case 'x': case '0': case 'D': case 'W': case 'b': case 'B': goto bad;
				default:
					pl_buf_addch(&b, '\\');
					pl_buf_addch(&b, e);
					break;
				}
			}
			continue;
		}
		if (inbr) {
			if (c == '-' && (br.len == 0 || re[i + 1] == ']'))
				dash = true;
			else
				pl_buf_addch(&br, c);
		} else {
			pl_buf_addch(&b, c);
		}
		i++;
	}
	if (inbr)
		goto bad;
	pl_buf_addstr(&b, ")$");
	pl_buf_release(&br);
	return pl_buf_detach(&b, NULL);
bad:
	pl_buf_release(&b);
	pl_buf_release(&br);
	return NULL;
}

static bool
pattern_ok(struct pl_api_param *p, const char *value)
{
	if (!p->regex && !p->regex_bad) {
		bool icase = false;
		char *ere = regex_translate(p->pattern, &icase);
		regex_t *re = pl_malloc(sizeof(*re));

		if (!ere || regcomp(re, ere, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0))) {
			if (ere)
				regfree(re);
			free(re);
			p->regex_bad = true;
		} else {
			p->regex = re;
		}
		free(ere);
	}
	if (p->regex_bad)
		return true;
	return regexec(p->regex, value, 0, NULL, 0) == 0;
}

static bool
match_re(const char *re_text, const char *value)
{
	/* The patterns are a handful of literals checked on every request:
	 * compile each once (regcomp was a quarter of the simulator's time). */
	static struct {
		const char *text;
		regex_t re;
		bool bad;
	} cache[16];
	static size_t n;
	regex_t tmp;
	bool ok;

	for (size_t i = 0; i < n; i++)
		if (cache[i].text == re_text || !strcmp(cache[i].text, re_text))
			return cache[i].bad || regexec(&cache[i].re, value, 0, NULL, 0) == 0;
	if (n < PL_ARRAY_LEN(cache)) {
		cache[n].text = re_text;
		cache[n].bad = regcomp(&cache[n].re, re_text, REG_EXTENDED | REG_NOSUB) != 0;
		n++;
		return cache[n - 1].bad || regexec(&cache[n - 1].re, value, 0, NULL, 0) == 0;
	}
	if (regcomp(&tmp, re_text, REG_EXTENDED | REG_NOSUB))
		return true;
	ok = regexec(&tmp, value, 0, NULL, 0) == 0;
	regfree(&tmp);
	return ok;
}

static bool
is_mac(const char *s)
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &tail) != 6 || strlen(s) != 17)
		return false;
	return (v[0] & 1) == 0;
}

static bool
is_ip(const char *s, int family)
{
	unsigned char buf[16];

	if (family)
		return inet_pton(family, s, buf) == 1;
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool
is_cidr(const char *s, int family)
{
	const char *slash = strrchr(s, '/');
	char ip[64];
	long long bits;
	int fam;

	if (!slash || (size_t)(slash - s) >= sizeof(ip))
		return false;
	memcpy(ip, s, (size_t)(slash - s));
	ip[slash - s] = 0;
	if (is_ip(ip, AF_INET))
		fam = AF_INET;
	else if (is_ip(ip, AF_INET6))
		fam = AF_INET6;
	else
		return false;
	if (family && fam != family)
		return false;
	return pl_str_to_ll(slash + 1, 0, fam == AF_INET ? 32 : 128, &bits) == 0;
}

/* The formats every request's path variables have, checked by hand: a regex
 * match costs more than the rest of a simple GET. */
/* ^[1-9][0-9]{2,8}$ */
static bool
is_vmid(const char *v)
{
	size_t n = strlen(v);

	return n >= 3 && n <= 9 && v[0] != '0' && strspn(v, DIGITS) == n;
}

/* ^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$ */
static bool
is_node_name(const char *v)
{
	size_t n = strlen(v);

	return n > 0 && v[0] != '-' && v[n - 1] != '-' && strspn(v, ALNUM "-") == n;
}

/* Named string formats PVE registers with register_standard_format; the
 * texts are PVE's (PVE::JSONSchema). NULL when valid or not checked. */
static char *
check_named_format(const char *fmt, const char *v)
{
	if (!strcmp(fmt, "pve-vmid")) {
		if (!is_vmid(v))
			return pl_strdup("value does not look like a valid VM ID\n");
	} else if (!strcmp(fmt, "pve-node")) {
		if (!is_node_name(v))
			return pl_strdup("value does not look like a valid node name\n");
	} else if (!strcmp(fmt, "pve-storage-id")) {
		if (!match_re("^[a-z][a-z0-9._-]*[a-z0-9]$", v))
			return pl_asprintf("storage ID '%s' contains illegal characters\n", v);
	} else if (!strcmp(fmt, "pve-configid")) {
		if (!match_re("^[a-z][a-z0-9_-]+$", v))
			return pl_asprintf("invalid configuration ID '%s'\n", v);
	} else if (!strcmp(fmt, "pve-poolid")) {
		if (!match_re("^[A-Za-z0-9_-]+$", v))
			return pl_asprintf("invalid pool ID '%s'\n", v);
	} else if (!strcmp(fmt, "pve-iface")) {
		if (!match_re("^[a-zA-Z][a-zA-Z0-9_]{1,20}([:.][0-9]+)?$", v))
			return pl_asprintf("invalid network interface name '%s'\n", v);
	} else if (!strcmp(fmt, "mac-addr")) {
		if (!is_mac(v))
			return pl_strdup("value does not look like a valid unicast MAC address\n");
	} else if (!strcmp(fmt, "ipv4")) {
		if (!is_ip(v, AF_INET))
			return pl_strdup("value does not look like a valid IPv4 address\n");
	} else if (!strcmp(fmt, "ipv6")) {
		if (!is_ip(v, AF_INET6))
			return pl_strdup("value does not look like a valid IPv6 address\n");
	} else if (!strcmp(fmt, "ip")) {
		if (!is_ip(v, 0))
			return pl_strdup("value does not look like a valid IP address\n");
	} else if (!strcmp(fmt, "CIDRv4")) {
		if (!is_cidr(v, AF_INET))
			return pl_strdup("value does not look like a valid IPv4 network configuration\n");
	} else if (!strcmp(fmt, "CIDRv6")) {
		if (!is_cidr(v, AF_INET6))
			return pl_strdup("value does not look like a valid IPv6 network configuration\n");
	} else if (!strcmp(fmt, "CIDR")) {
		if (!is_cidr(v, 0))
			return pl_strdup("value does not look like a valid CIDR network\n");
	} else if (!strcmp(fmt, "disk-size")) {
		unsigned long long b;

		if (pl_size_parse(v, &b) != 0)
			return pl_asprintf("unable to parse size '%s'\n", v);
	} else if (!strcmp(fmt, "dns-name")) {
		/* pve_verify_dns_name: a VM's name, a container's hostname */
		if (!match_re("^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)\\.)*"
			      "([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$",
			      v))
			return pl_strdup("value does not look like a valid DNS name\n");
	} else if (!strcmp(fmt, "pve-volume-id")) {
		if (!strchr(v, ':'))
			return pl_asprintf("unable to parse volume ID '%s'\n", v);
	}
	return NULL;
}

/* ^[+-]?[0-9]+$ */
static bool
is_int(const char *v)
{
	if (*v == '+' || *v == '-')
		v++;
	return *v && strspn(v, DIGITS) == strlen(v);
}

static bool
is_number(const char *v)
{
	return match_re("^[+-]?[0-9]*\\.?[0-9]+([eE][+-]?[0-9]+)?$", v) ||
	       match_re("^[+-]?[0-9]+\\.$", v);
}

static char *
fmt_limit(const json_t *j)
{
	if (json_is_integer(j))
		return pl_asprintf("%" JSON_INTEGER_FORMAT, json_integer_value(j));
	if (json_is_real(j))
		return pl_asprintf("%g", json_real_value(j));
	if (json_is_string(j))
		return pl_strdup(json_string_value(j));
	return NULL;
}

char *
pl_api_check_value(const struct pl_api_param *cp, const char *v)
{
	/* the regex and format caches are filled lazily */
	struct pl_api_param *p = (struct pl_api_param *)cp;
	bool numeric = false;
	double num = 0;

	if (!strcmp(p->type, "boolean")) {
		static const char *const ok[] = { "1", "0", "true", "false", "yes", "no", "on",
						  "off" };

		for (size_t i = 0; i < PL_ARRAY_LEN(ok); i++)
			if (!strcasecmp(v, ok[i]))
				return NULL;
		return pl_asprintf("type check ('boolean') failed - got '%s'", v);
	}
	if (!strcmp(p->type, "integer")) {
		if (!is_int(v))
			return pl_asprintf("type check ('integer') failed - got '%s'", v);
		numeric = true;
		num = strtod(v, NULL);
	} else if (!strcmp(p->type, "number")) {
		if (!is_number(v))
			return pl_asprintf("type check ('number') failed - got '%s'", v);
		numeric = true;
		num = strtod(v, NULL);
	}
	if (p->format) {
		char *e;

		if ((e = check_named_format(p->format, v)) != NULL) {
			char *m = pl_asprintf("invalid format - %s", e);

			free(e);
			return m;
		}
		if (p->named) {
			struct pl_propstr ps;
			char *err = NULL;

			pl_propstr_init(&ps);
			if (pl_propstr_parse(p->named, v, &ps, &err) != 0) {
				char *m = pl_asprintf("invalid format - %s\n", err ? err : "format error");

				free(err);
				pl_propstr_release(&ps);
				return m;
			}
			pl_propstr_release(&ps);
		}
	} else if (p->pfmt) {
		struct pl_propstr ps;
		char *err = NULL;

		pl_propstr_init(&ps);
		if (pl_propstr_parse(p->pfmt, v, &ps, &err) != 0) {
			char *m = pl_asprintf("invalid format - %s\n", err ? err : "format error");

			free(err);
			pl_propstr_release(&ps);
			return m;
		}
		pl_propstr_release(&ps);
	}
	if (p->enumv) {
		size_t i;
		json_t *e;
		struct pl_buf list;
		char *m;

		json_array_foreach(p->enumv, i, e) {
			if (json_is_string(e) && !strcmp(json_string_value(e), v))
				return NULL;
		}
		pl_buf_init(&list, 0);
		json_array_foreach(p->enumv, i, e) {
			if (i)
				pl_buf_addstr(&list, ", ");
			if (json_is_string(e))
				pl_buf_addstr(&list, json_string_value(e));
		}
		m = pl_asprintf("value '%s' does not have a value in the enumeration '%s'", v,
				list.data);
		pl_buf_release(&list);
		return m;
	}
	if (numeric) {
		const json_t *mn = p->minimum, *mx = p->maximum;
		double lim;

		if (mn) {
			lim = json_is_number(mn) ? json_number_value(mn)
						 : strtod(json_string_value(mn), NULL);
			if (num < lim) {
				char *l = fmt_limit(mn), *m;

				m = pl_asprintf("value must have a minimum value of %s", l);
				free(l);
				return m;
			}
		}
		if (mx) {
			lim = json_is_number(mx) ? json_number_value(mx)
						 : strtod(json_string_value(mx), NULL);
			if (num > lim) {
				char *l = fmt_limit(mx), *m;

				m = pl_asprintf("value must have a maximum value of %s", l);
				free(l);
				return m;
			}
		}
	} else {
		if (p->maxlen >= 0 && (long long)strlen(v) > p->maxlen)
			return pl_asprintf("value may only be %lld characters long", p->maxlen);
		if (p->minlen >= 0 && (long long)strlen(v) < p->minlen)
			return pl_asprintf("value must be at least %lld characters long", p->minlen);
	}
	if (p->pattern && !pattern_ok(p, v))
		return pl_strdup("value does not match the regex pattern");
	return NULL;
}

const struct pl_api_param *
pl_api_param_lookup(const struct pl_api_param *params, const json_t *index, const char *name)
{
	const json_t *at = json_object_get(index, name);
	long long best = at ? json_integer_value(at) : -1;
	size_t n = strlen(name);
	char key[128];

	if (best >= 0 && params[best].indexed)
		best = -1; /* "net[n]" itself is no parameter name */
	/* "net0" is the schema's "net[n]"; of all the names that fit, the
	 * schema's first counts */
	for (size_t base = n; base > 1 && strchr(DIGITS, name[base - 1]); base--) {
		if (base + 2 >= sizeof(key))
			continue;
		memcpy(key, name, base - 1);
		memcpy(key + base - 1, "[n]", 4);
		at = json_object_get(index, key);
		if (at && (best < 0 || json_integer_value(at) < best))
			best = json_integer_value(at);
	}
	return best < 0 ? NULL : &params[best];
}

/* The config keys of PUT .../{qemu,lxc}/{vmid}/config, compiled once. */
static struct {
	json_t *doc;
	struct pl_api_param *params[2]; /* only name and indexed until asked for */
	const json_t **defs[2];
	bool *ready[2];
	size_t n[2];
	json_t *index[2];
	bool loaded;
} cfgschema;

/* Parameters of the config PUT that steer the request rather than set a key. */
static bool
control_param(const char *name)
{
	static const char *const ctl[] = { "node", "vmid", "digest", "delete", "revert",
					   "skiplock", "force", "background_delay", NULL };

	for (size_t i = 0; ctl[i]; i++)
		if (!strcmp(ctl[i], name))
			return true;
	return false;
}

/* Where the JSON object or array at p ends (the offset just past it),
 * skipping strings with their escapes; 0 when it does not end. */
static size_t
json_extent(const char *p, size_t len)
{
	int depth = 0;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (c == '"') {
			for (i++; i < len && p[i] != '"'; i++)
				if (p[i] == '\\')
					i++;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && --depth == 0) {
			return i + 1;
		}
	}
	return 0;
}

/* The entries of the schema's "paths" list whose path is one of tmpl, each
 * parsed alone: parsing the whole half-megabyte schema would cost a validate
 * more than all its other checks. */
static json_t *
schema_paths(const char *data, size_t len, const char *const *tmpl, size_t ntmpl)
{
	const char *at = memmem(data, len, "\"paths\":[", 9);
	json_t *out = json_array();
	size_t off, n;

	if (at == NULL)
		return out;
	for (off = (size_t)(at - data) + 9; off < len; off += n) {
		while (off < len && strchr(", \t\r\n", data[off]))
			off++;
		if (off >= len || data[off] != '{' || (n = json_extent(data + off, len - off)) == 0)
			break;
		for (size_t t = 0; t < ntmpl; t++) {
			char *needle = pl_asprintf("\"path\":\"%s\"", tmpl[t]);
			json_t *e;

			if (memmem(data + off, n, needle, strlen(needle)) &&
			    (e = pl_json_parse(data + off, n, NULL)) != NULL)
				json_array_append_new(out, e);
			free(needle);
		}
	}
	return out;
}

static void
config_schema_load(void)
{
	static const char *const tmpl[2] = { "/nodes/{node}/qemu/{vmid}/config",
					     "/nodes/{node}/lxc/{vmid}/config" };
	const char *data = NULL;
	size_t len = 0, i;
	const json_t *pe;

	cfgschema.loaded = true;
	if ((data = pl_embed_get("pve-schema-9.1.json", &len)) == NULL)
		return;
	cfgschema.doc = schema_paths(data, len, tmpl, 2);
	json_array_foreach(cfgschema.doc, i, pe) {
		for (int t = 0; t < 2; t++) {
			const json_t *params;
			const char *k;
			json_t *v;
			size_t n = 0;

			if (strcmp(pl_json_str_or(pe, "path", ""), tmpl[t]) != 0)
				continue;
			params = json_object_get(json_object_get(json_object_get(pe, "methods"), "PUT"),
						 "params");
			cfgschema.params[t] = pl_calloc(json_object_size(params) + 1,
							sizeof(*cfgschema.params[t]));
			cfgschema.defs[t] = pl_calloc(json_object_size(params) + 1, sizeof(*cfgschema.defs[t]));
			cfgschema.ready[t] = pl_calloc(json_object_size(params) + 1, sizeof(*cfgschema.ready[t]));
			cfgschema.index[t] = json_object();
			/* compiling every format costs more than a validate: a
			 * parameter is compiled when a config key asks for it */
			json_object_foreach((json_t *)params, k, v) {
				size_t kl = strlen(k);
				struct pl_api_param *p = &cfgschema.params[t][n];

				if (control_param(k))
					continue;
				json_object_set_new(cfgschema.index[t], k, json_integer((json_int_t)n));
				p->indexed = kl > 3 && !strcmp(k + kl - 3, "[n]");
				p->name = p->indexed ? pl_strndup(k, kl - 3) : pl_strdup(k);
				cfgschema.defs[t][n++] = v;
			}
			cfgschema.n[t] = n;
		}
	}
}

const struct pl_api_param *
pl_api_config_param(bool lxc, const char *key)
{
	const struct pl_api_param *p;
	size_t i;

	if (!cfgschema.loaded)
		config_schema_load();
	if (cfgschema.params[lxc] == NULL ||
	    (p = pl_api_param_lookup(cfgschema.params[lxc], cfgschema.index[lxc], key)) == NULL)
		return NULL;
	i = (size_t)(p - cfgschema.params[lxc]);
	if (!cfgschema.ready[lxc][i]) {
		struct pl_api_param *w = &cfgschema.params[lxc][i];
		char *schema_name = pl_asprintf("%s%s", w->name, w->indexed ? "[n]" : "");

		pl_api_param_release(w);
		pl_api_param_init(w, schema_name, cfgschema.defs[lxc][i]);
		cfgschema.ready[lxc][i] = true;
		free(schema_name);
	}
	return p;
}

char *
pl_api_param_expects(const struct pl_api_param *p)
{
	struct pl_buf b;
	size_t i;
	json_t *e;

	pl_buf_init(&b, 4096);
	if (p->enumv) {
		pl_buf_addstr(&b, "one of: ");
		json_array_foreach(p->enumv, i, e)
			pl_buf_addf(&b, "%s%s", i ? ", " : "", json_string_value(e) ? json_string_value(e) : "?");
	} else if (!strcmp(p->type, "boolean")) {
		pl_buf_addstr(&b, "a boolean (0 or 1)");
	} else if (!strcmp(p->type, "integer") || !strcmp(p->type, "number")) {
		char *lo = p->minimum ? fmt_limit(p->minimum) : NULL, *hi = p->maximum ? fmt_limit(p->maximum) : NULL;

		pl_buf_addf(&b, "%s", !strcmp(p->type, "integer") ? "an integer" : "a number");
		if (lo && hi)
			pl_buf_addf(&b, " from %s to %s", lo, hi);
		else if (lo)
			pl_buf_addf(&b, " of at least %s", lo);
		else if (hi)
			pl_buf_addf(&b, " of at most %s", hi);
		free(lo);
		free(hi);
	} else if (p->pfmt || p->named) {
		if (p->named)
			pl_buf_addf(&b, "a '%s' property string", p->format);
		else
			pl_buf_addf(&b, "a '%s%s' property string", p->name, p->indexed ? "N" : "");
	} else if (p->format) {
		pl_buf_addf(&b, "a string of format '%s'", p->format);
	} else {
		pl_buf_addstr(&b, "a string");
		if (p->maxlen >= 0)
			pl_buf_addf(&b, " of at most %lld characters", p->maxlen);
	}
	return pl_buf_detach(&b, NULL);
}

void
pl_api_cleanup(void)
{
	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; i < cfgschema.n[t]; i++)
			pl_api_param_release(&cfgschema.params[t][i]);
		free(cfgschema.params[t]);
		free(cfgschema.defs[t]);
		free(cfgschema.ready[t]);
		json_decref(cfgschema.index[t]);
	}
	json_decref(cfgschema.doc);
	memset(&cfgschema, 0, sizeof(cfgschema));
}

char *
pl_api_config_suggest(bool lxc, const char *key)
{
	const char **names;
	const char *s;
	char *out = NULL;
	size_t n;

	if (!cfgschema.loaded)
		config_schema_load();
	if ((n = cfgschema.n[lxc]) == 0)
		return NULL;
	names = pl_calloc(n, sizeof(*names));
	char **owned = pl_calloc(n, sizeof(*owned));

	for (size_t i = 0; i < n; i++) {
		const struct pl_api_param *p = &cfgschema.params[lxc][i];

		if (p->indexed) /* "net[n]" is written "net0" */
			names[i] = owned[i] = pl_asprintf("%s0", p->name);
		else
			names[i] = p->name;
	}
	s = pl_str_suggest(key, names, n);
	if (s)
		out = pl_strdup(s);
	for (size_t i = 0; i < n; i++)
		free(owned[i]);
	free(owned);
	free(names);
	return out;
}

bool
pl_api_secret_key(const char *key)
{
	size_t n = strlen(key), m = strlen("password");

	return n >= m && !strcmp(key + n - m, "password");
}

static size_t
mask_member(json_t *o, const char *member)
{
	json_t *v = json_object_get(o, member);

	if (v == NULL || json_is_null(v) ||
	    (json_is_string(v) &&
	     !strncmp(json_string_value(v), PL_API_SECRET_MASK, strlen(PL_API_SECRET_MASK))))
		return 0;
	json_object_set_new(o, member, json_string(PL_API_SECRET_MASK));
	return 1;
}

size_t
pl_api_mask_secrets(json_t *conf)
{
	size_t n = 0, i;
	const char *k;
	json_t *v;

	if (json_is_array(conf)) {
		json_array_foreach(conf, i, v) {
			if (json_is_object(v) && json_is_string(json_object_get(v, "key")) &&
			    pl_api_secret_key(json_string_value(json_object_get(v, "key"))))
				n += mask_member(v, "value") + mask_member(v, "pending");
		}
		return n;
	}
	json_object_foreach(conf, k, v) {
		if (pl_api_secret_key(k))
			n += mask_member(conf, k);
	}
	return n;
}

char *
pl_api_check_format(const char *fmt, const char *v)
{
	return check_named_format(fmt, v);
}
