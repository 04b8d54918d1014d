/*
 * Proxy configuration: targets from CLI flags or the `proxy:` section of
 * pvelab.yaml, their validation, the state directory and the pins file that
 * `pvelab proxy trust` writes (pvelab never rewrites the user's YAML).
 */
#include "core/common.h"
#include "proxy/proxy.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/str.h"
#include "core/x509.h"
#include "core/diag.h"
#include "config/config.h"

#include <ctype.h>
#include <openssl/ssl.h>

int
pl_proxy_parse_url(const char *url, char **host, int *port, char **errmsg)
{
	const char *p = url, *h, *e;
	long long v = 443;

	*host = NULL;
	if (strncasecmp(p, "https://", 8) == 0)
		p += 8;
	else if (strstr(p, "://"))
		return pl_seterr(errmsg, PL_EINVAL,
		                 "upstream '%s' is not https:// (the proxy speaks TLS upstream)",
		                 url);
	if (*p == '[') {
		h = p + 1;
		if ((e = strchr(h, ']')) == NULL)
			goto bad;
		p = e + 1;
	} else {
		h = p;
		for (e = p; *e && *e != ':' && *e != '/'; e++)
			;
		p = e;
	}
	if (e == h)
		goto bad;
	if (*p == ':') {
		char tmp[8];
		size_t n = strcspn(p + 1, "/");

		if (n == 0 || n >= sizeof(tmp))
			goto bad;
		memcpy(tmp, p + 1, n);
		tmp[n] = '\0';
		if (pl_str_to_ll(tmp, 1, 65535, &v) != 0)
			goto bad;
		p += 1 + n;
	}
	if (*p && strcmp(p, "/") != 0)
		goto bad;
	*host = pl_strndup(h, (size_t)(e - h));
	*port = (int)v;
	return 0;
bad:
	return pl_seterr(errmsg, PL_EINVAL,
	                 "invalid upstream URL '%s' (expected https://HOST[:PORT])", url);
}

int
pl_proxy_parse_date(const char *s, time_t *out, char **errmsg)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end && (*end == 'T' || *end == ' '))
		end = strptime(end + 1, "%H:%M:%S", &tm);
	if (end && *end == 'Z')
		end++;
	if (end == NULL || *end != '\0' || tm.tm_year < 70)
		return pl_seterr(errmsg, PL_EINVAL,
		                 "invalid date '%s' (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)",
		                 s);
	*out = timegm(&tm);
	return 0;
}

int
pl_proxy_parse_tls_version(const char *s, int *out, char **errmsg)
{
	static const struct {
		const char *name;
		int v;
	} v[] = {{"1.0", TLS1_VERSION},
	         {"1.1", TLS1_1_VERSION},
	         {"1.2", TLS1_2_VERSION},
	         {"1.3", TLS1_3_VERSION}};

	for (size_t i = 0; i < PL_ARRAY_LEN(v); i++)
		if (!strcmp(s, v[i].name)) {
			*out = v[i].v;
			return 0;
		}
	return pl_seterr(errmsg, PL_EINVAL, "invalid TLS version '%s' (1.0, 1.1, 1.2 or 1.3)", s);
}

struct pl_proxy_target *
pl_proxy_target_new(void)
{
	struct pl_proxy_target *t = pl_calloc(1, sizeof(*t));

	t->port = 443;
	t->min_tls = TLS1_2_VERSION;
	t->rewrite_location = true;
	t->hostnames = pl_calloc(1, sizeof(char *));
	return t;
}

void
pl_proxy_target_free(struct pl_proxy_target *t)
{
	if (t == NULL)
		return;
	free(t->name);
	free(t->host);
	free(t->listen);
	for (size_t i = 0; t->hostnames && t->hostnames[i]; i++)
		free(t->hostnames[i]);
	free(t->hostnames);
	free(t->ca_file);
	free(t->ciphers);
	free(t);
}

static void
target_add_hostname(struct pl_proxy_target *t, const char *name)
{
	size_t n = 0;

	while (t->hostnames[n])
		n++;
	t->hostnames = pl_realloc(t->hostnames, (n + 2) * sizeof(char *));
	t->hostnames[n] = pl_strdup(name);
	for (char *p = t->hostnames[n]; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	t->hostnames[n + 1] = NULL;
}

struct pl_proxy_config *
pl_proxy_config_new(const char *state_dir)
{
	struct pl_proxy_config *c = pl_calloc(1, sizeof(*c));

	c->listen = pl_strdup(PL_PROXY_DEFAULT_LISTEN);
	c->state_dir = pl_strdup(state_dir);
	c->grace = 10;
	c->max_conns = PL_PROXY_MAX_CONNS;
	c->idle_timeout = PL_PROXY_IDLE_TIMEOUT;
	c->handshake_timeout = PL_PROXY_HANDSHAKE_TIMEOUT;
	return c;
}

void
pl_proxy_config_add(struct pl_proxy_config *c, struct pl_proxy_target *t)
{
	c->targets = pl_realloc(c->targets, (c->ntargets + 1) * sizeof(*c->targets));
	c->targets[c->ntargets++] = t;
}

void
pl_proxy_config_free(struct pl_proxy_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->ntargets; i++)
		pl_proxy_target_free(c->targets[i]);
	free(c->targets);
	free(c->listen);
	free(c->name);
	free(c->state_dir);
	free(c->config_path);
	free(c);
}

static char *
resolve_path(const char *basedir, const char *p)
{
	if (p[0] == '/' || basedir == NULL)
		return pl_strdup(p);
	return pl_path_join(basedir, p);
}

static int
target_from_json(const json_t *o, size_t idx, const char *basedir, struct pl_proxy_target **out,
                 char **errmsg)
{
	struct pl_proxy_target *t = pl_proxy_target_new();
	const char *s;
	const json_t *hn;
	int r;

	*out = NULL;
	if (!json_is_object(o)) {
		r = pl_seterr(errmsg, PL_EINVAL, "proxy.targets[%zu] must be a mapping", idx);
		goto out;
	}
	if ((s = pl_json_str(o, "upstream")) == NULL) {
		r = pl_seterr(errmsg, PL_EINVAL, "proxy.targets[%zu] has no 'upstream' URL", idx);
		goto out;
	}
	if ((r = pl_proxy_parse_url(s, &t->host, &t->port, errmsg)) != 0)
		goto out;
	if ((s = pl_json_str(o, "name")) != NULL)
		t->name = pl_strdup(s);
	else
		t->name = pl_asprintf("%s:%d", t->host, t->port);
	if ((s = pl_json_str(o, "listen")) != NULL)
		t->listen = pl_strdup(s);
	if ((hn = json_object_get(o, "hostnames")) != NULL) {
		size_t i;
		const json_t *v;

		if (!json_is_array(hn)) {
			r = pl_seterr(errmsg, PL_EINVAL,
			              "proxy.targets[%zu].hostnames must be a list", idx);
			goto out;
		}
		json_array_foreach(hn, i, v) if (json_is_string(v))
		    target_add_hostname(t, json_string_value(v));
	}
	if ((s = pl_json_str(o, "ca_file")) != NULL)
		t->ca_file = resolve_path(basedir, s);
	if ((s = pl_json_str(o, "verify_at")) != NULL) {
		if ((r = pl_proxy_parse_date(s, &t->verify_at, errmsg)) != 0)
			goto out;
		t->has_verify_at = true;
	}
	if ((s = pl_json_str(o, "pin_sha256")) != NULL &&
	    pl_x509_fingerprint_norm(s, t->pin) != 0) {
		r = pl_seterr(errmsg, PL_EINVAL,
		              "proxy.targets[%zu].pin_sha256 '%s' is not a SHA-256 fingerprint",
		              idx, s);
		goto out;
	}
	t->ignore_time = pl_json_bool(o, "ignore_time", false);
	t->insecure = pl_json_bool(o, "insecure", false);
	t->weak_keys = pl_json_bool(o, "weak_keys", false);
	t->rewrite_location = pl_json_bool(o, "rewrite_location", true);
	if ((s = pl_json_str(o, "min_tls")) != NULL &&
	    (r = pl_proxy_parse_tls_version(s, &t->min_tls, errmsg)) != 0)
		goto out;
	if (json_is_real(json_object_get(o, "min_tls"))) {
		char tmp[16];

		snprintf(tmp, sizeof(tmp), "%.1f", json_real_value(json_object_get(o, "min_tls")));
		if ((r = pl_proxy_parse_tls_version(tmp, &t->min_tls, errmsg)) != 0)
			goto out;
	}
	if ((s = pl_json_str(o, "ciphers")) != NULL)
		t->ciphers = pl_strdup(s);
	*out = t;
	t = NULL;
	r = 0;
out:
	pl_proxy_target_free(t);
	return r;
}

int
pl_proxy_config_from_json(const json_t *proxy, const char *basedir, const char *state_dir,
                          struct pl_proxy_config **out, char **errmsg)
{
	struct pl_proxy_config *c = pl_proxy_config_new(state_dir);
	const json_t *targets, *v;
	const char *s;
	size_t i;
	int r;

	*out = NULL;
	if (!json_is_object(proxy)) {
		r = pl_seterr(errmsg, PL_EINVAL, "the config has no 'proxy:' section");
		goto out;
	}
	if ((s = pl_json_str(proxy, "listen")) != NULL) {
		free(c->listen);
		c->listen = pl_strdup(s);
	}
	if ((s = pl_json_str(proxy, "name")) != NULL)
		c->name = pl_strdup(s);
	c->grace = (int)pl_json_int(proxy, "grace", 10);
	c->max_conns = (int)pl_json_int(proxy, "max_connections", PL_PROXY_MAX_CONNS);
	c->idle_timeout = (int)pl_json_int(proxy, "idle_timeout", PL_PROXY_IDLE_TIMEOUT);
	c->handshake_timeout = (int)pl_json_int(proxy, "handshake_timeout",
	                                        PL_PROXY_HANDSHAKE_TIMEOUT);
	targets = json_object_get(proxy, "targets");
	json_array_foreach(targets, i, v)
	{
		struct pl_proxy_target *t;

		if ((r = target_from_json(v, i, basedir, &t, errmsg)) != 0)
			goto out;
		pl_proxy_config_add(c, t);
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	pl_proxy_config_free(c);
	return r;
}

/* The `proxy:` section through src/config/ (validated, defaults filled in). */
int
pl_proxy_config_load(const char *config_path, const char *state_dir, struct pl_proxy_config **out,
                     char **errmsg)
{
	struct pl_config *cfg = NULL;
	struct pl_diags d;
	char *base = NULL;
	int r;

	*out = NULL;
	pl_diags_init(&d);
	if (pl_config_load(config_path, &cfg, &d) != 0 || cfg == NULL) {
		char *first = NULL;

		pl_diags_sort(&d);
		for (size_t i = 0; i < d.n && first == NULL; i++)
			if (d.items[i].level == PL_DIAG_ERROR)
				first = pl_diag_line(&d.items[i]);
		r = pl_seterr(errmsg, PL_EPARSE, "%s%s", first ? first : "invalid config",
		              d.nerrors > 1 ? " (and more: run pvelab validate)" : "");
		free(first);
		goto out;
	}
	base = pl_path_dirname(config_path);
	r = pl_proxy_config_from_json(pl_config_get(cfg, "/proxy"), base, state_dir, out, errmsg);
	if (r == 0)
		(*out)->config_path = pl_strdup(config_path);
	else
		pl_preferr(errmsg, r, "%s", config_path);
out:
	free(base);
	pl_config_free(cfg);
	pl_diags_release(&d);
	return r;
}

int
pl_proxy_config_finish(struct pl_proxy_config *c, char **errmsg)
{
	if (c->ntargets == 0)
		return pl_seterr(errmsg, PL_EINVAL,
		                 "no proxy targets (give --upstream or a proxy.targets list)");
	for (size_t i = 0; i < c->ntargets; i++) {
		struct pl_proxy_target *t = c->targets[i];
		int modes = t->has_verify_at + (t->pin[0] != '\0') + t->ignore_time + t->insecure;
		char key[300];

		if (modes > 1)
			return pl_seterr(errmsg, PL_EINVAL,
			                 "target '%s': choose one of verify_at, pin_sha256, "
			                 "ignore_time and insecure",
			                 t->name);
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(c->targets[j]->name, t->name))
				return pl_seterr(errmsg, PL_EINVAL, "two targets are named '%s'",
				                 t->name);
			if (t->listen && c->targets[j]->listen &&
			    !strcmp(t->listen, c->targets[j]->listen))
				return pl_seterr(errmsg, PL_EINVAL,
				                 "targets '%s' and '%s' both listen on '%s'",
				                 c->targets[j]->name, t->name, t->listen);
		}
		if (modes == 0) {
			snprintf(key, sizeof(key), "%s:%d", t->host, t->port);
			if (pl_proxy_pin_lookup(c->state_dir, key, t->pin) == 0)
				t->pin_from_file = true;
		}
	}
	return 0;
}

char *
pl_proxy_pins_path(const char *state_dir)
{
	return pl_path_join(state_dir, "pins.json");
}

/* A JSON object file of the state directory ({} when absent or broken). */
static json_t *
state_json_load(const char *state_dir, const char *name)
{
	char *path = pl_path_join(state_dir, name);
	struct pl_buf b;
	json_t *doc = NULL;

	pl_buf_init(&b, 1 << 20);
	if (pl_file_read(path, &b, NULL) == 0)
		doc = pl_json_parse(b.data, b.len, NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		doc = json_object();
	}
	pl_buf_release(&b);
	free(path);
	return doc;
}

json_t *
pl_proxy_seen_load(const char *state_dir)
{
	return state_json_load(state_dir, "seen.json");
}

int
pl_proxy_seen_record(const char *state_dir, const char *key, const char *fingerprint,
                     const char *subject, char **errmsg)
{
	json_t *doc;
	char *path, *text, now[32];
	time_t t = time(NULL);
	struct tm tm;
	int r;

	if ((r = pl_mkdir_p(state_dir, 0700, errmsg)) != 0)
		return r;
	doc = pl_proxy_seen_load(state_dir);
	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(doc, key, json_pack("{s:s,s:s,s:s}", "sha256", fingerprint, "subject",
	                                        subject, "first_verified", now));
	text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	path = pl_path_join(state_dir, "seen.json");
	r = pl_file_write_atomic(path, text, strlen(text), 0644, errmsg);
	free(text);
	free(path);
	json_decref(doc);
	return r;
}

static json_t *
pins_load(const char *state_dir)
{
	return state_json_load(state_dir, "pins.json");
}

int
pl_proxy_pin_lookup(const char *state_dir, const char *key, char out[96])
{
	json_t *doc = pins_load(state_dir);
	const char *fp = pl_json_str(json_object_get(doc, key), "sha256");
	int r = PL_ENOENT;

	if (fp && pl_x509_fingerprint_norm(fp, out) == 0)
		r = 0;
	json_decref(doc);
	return r;
}

int
pl_proxy_pin_record(const char *state_dir, const char *key, const char *fingerprint,
                    const char *subject, const char *not_after, char **errmsg)
{
	json_t *doc;
	char *path = NULL, *text = NULL;
	char now[32];
	time_t t = time(NULL);
	struct tm tm;
	int r;

	if ((r = pl_mkdir_p(state_dir, 0700, errmsg)) != 0)
		return r;
	doc = pins_load(state_dir);
	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(doc, key,
	                    json_pack("{s:s,s:s,s:s,s:s}", "sha256", fingerprint, "subject",
	                              subject, "not_after", not_after, "recorded", now));
	text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	path = pl_proxy_pins_path(state_dir);
	r = pl_file_write_atomic(path, text, strlen(text), 0644, errmsg);
	free(text);
	free(path);
	json_decref(doc);
	return r;
}
