/*
 * The checks a config declares, resolved into one JSON spec each: a guest's
 * services (type from `check:` or the protocol, address from `host:` or the
 * guest's first static IPv4) and `checks.targets`, with `checks:` defaults.
 */
#include "core/common.h"
#include "check/check.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

/* A check's key, else `checks.<key>`, else the built-in default. */
static long long
setting(const struct pl_config *c, const json_t *probe, const char *key, long long dflt)
{
	char ptr[64];
	const json_t *v = json_object_get(probe, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	snprintf(ptr, sizeof(ptr), "/checks/%s", key);
	v = pl_config_get(c, ptr);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* The type a service is checked with when `check:` does not say. */
static const char *
type_of(const json_t *svc)
{
	const char *t = pl_json_str(svc, "check"), *proto = pl_json_str_or(svc, "protocol", "tcp");

	if (t)
		return t;
	if (!strcmp(proto, "http") || !strcmp(proto, "https") || !strcmp(proto, "tcp"))
		return proto;
	return "none";
}

/* The guest's first static IPv4 address (without its prefix), or NULL. */
static char *
guest_address(const json_t *g)
{
	const json_t *n;
	size_t i;

	json_array_foreach(json_object_get(g, "networks"), i, n) {
		const char *ip = pl_json_str(n, "ip");
		const char *slash;

		if (!ip || !strcmp(ip, "dhcp"))
			continue;
		slash = strchr(ip, '/');
		return slash ? pl_strndup(ip, (size_t)(slash - ip)) : pl_strdup(ip);
	}
	return NULL;
}

static int
default_port(const char *type)
{
	if (!strcmp(type, "http"))
		return 80;
	if (!strcmp(type, "https") || !strcmp(type, "tls"))
		return 443;
	if (!strcmp(type, "dns"))
		return 53;
	return 0;
}

static const char *const copied[] = { "method",     "expect_status", "body_regex", "json_path",
				      "json_value", "headers",       "ca_file",    "pin_sha256",
				      "verify_at",  "banner",        "dns_name",   "dns_type",
				      "dns_answer" };

/* One resolved spec from a service or target (probe), its address and port. */
static json_t *
resolve(const struct pl_config *c, const char *name, const char *guest, const json_t *probe,
	const char *type, const char *host, long long port)
{
	json_t *s = json_pack("{s:s,s:s}", "name", name, "type", type);
	const char *path = pl_json_str_or(probe, "path", "/");

	if (guest)
		json_object_set_new(s, "guest", json_string(guest));
	if (port <= 0)
		port = default_port(type);
	if (host)
		json_object_set_new(s, "host", json_string(host));
	if (port > 0)
		json_object_set_new(s, "port", json_integer(port));
	json_object_set_new(s, "interval",
			    json_integer(setting(c, probe, "interval", PL_CHECK_INTERVAL)));
	json_object_set_new(s, "timeout",
			    json_integer(setting(c, probe, "timeout", PL_CHECK_TIMEOUT)));
	json_object_set_new(s, "retries",
			    json_integer(setting(c, probe, "retries", PL_CHECK_RETRIES)));
	if (setting(c, probe, "retry_interval", 0) > 0)
		json_object_set_new(s, "retry_interval",
				    json_integer(setting(c, probe, "retry_interval", 0)));
	for (size_t i = 0; i < PL_ARRAY_LEN(copied); i++) {
		json_t *v = json_object_get(probe, copied[i]);

		if (v)
			json_object_set(s, copied[i], v);
	}
	json_object_set_new(s, "follow_redirects",
			    json_boolean(pl_json_bool(probe, "follow_redirects", false)));
	json_object_set_new(s, "verify", json_boolean(pl_json_bool(probe, "verify", true)));
	json_object_set_new(s, "warn_days",
			    json_integer(pl_json_int(probe, "warn_days", PL_CHECK_WARN_DAYS)));
	json_object_set_new(s, "fail_days",
			    json_integer(pl_json_int(probe, "fail_days", PL_CHECK_FAIL_DAYS)));
	if (host && (!strcmp(type, "http") || !strcmp(type, "https"))) {
		bool v6 = strchr(host, ':') != NULL;

		json_object_set_new(s, "url",
				    json_sprintf("%s://%s%s%s:%lld%s%s", type, v6 ? "[" : "", host,
						 v6 ? "]" : "", port, path[0] == '/' ? "" : "/",
						 path));
	}
	if (!strcmp(type, "none"))
		json_object_set_new(s, "skip", json_string("check: none"));
	else if (!host)
		json_object_set_new(s, "skip", json_string("no address to probe (set host:)"));
	else if (!strcmp(type, "dns") && !pl_json_str(probe, "dns_name"))
		json_object_set_new(s, "skip", json_string("no dns_name to resolve"));
	return s;
}

json_t *
pl_check_specs(const struct pl_config *c)
{
	json_t *out = json_array();
	const json_t *g, *svc, *t;
	size_t i, j;

	json_array_foreach(pl_config_guests(c), i, g) {
		const char *gname = pl_json_str_or(g, "name", "?");
		char *addr = guest_address(g);

		json_array_foreach(json_object_get(g, "services"), j, svc) {
			char *name = pl_asprintf("%s/%s", gname, pl_json_str_or(svc, "name", "?"));
			const char *host = pl_json_str(svc, "host");
			long long port = pl_json_int(svc, "host_port", pl_json_int(svc, "port", 0));

			json_array_append_new(out, resolve(c, name, gname, svc, type_of(svc),
							   host ? host : addr, port));
			free(name);
		}
		free(addr);
	}
	json_array_foreach(pl_config_get(c, "/checks/targets"), i, t) {
		const char *type = pl_json_str_or(t, "check", "tcp");

		json_array_append_new(out,
				      resolve(c, pl_json_str_or(t, "name", "?"), NULL, t, type,
					      pl_json_str(t, "host"), pl_json_int(t, "port", 0)));
	}
	return out;
}

json_t *
pl_check_cluster_opts(const struct pl_config *c)
{
	const json_t *cl = c ? pl_config_get(c, "/checks/cluster") : NULL;

	return json_pack("{s:b,s:b,s:I,s:I,s:I}", "node_offline",
			 pl_json_bool(cl, "node_offline", true), "guest_state",
			 pl_json_bool(cl, "guest_state", true), "storage_percent",
			 (json_int_t)pl_json_int(cl, "storage_percent", 90), "cert_days",
			 (json_int_t)pl_json_int(cl, "cert_days", 14), "backup_days",
			 (json_int_t)pl_json_int(cl, "backup_days", 0));
}

void
pl_check_cert_specs(json_t *specs, const json_t *cl_opts, const char *urls)
{
	long long days = pl_json_int(cl_opts, "cert_days", 14);
	char *copy, *p, *save = NULL;

	if (!urls || days <= 0)
		return;
	copy = pl_strdup(urls);
	for (p = strtok_r(copy, ", ", &save); p; p = strtok_r(NULL, ", ", &save)) {
		const char *h = pl_str_startswith(p, "https://") ? p + 8 : p;
		const char *colon = strrchr(h, ':');
		char *host = colon ? pl_strndup(h, (size_t)(colon - h)) : pl_strdup(h);
		long long port = colon ? strtoll(colon + 1, NULL, 10) : 8006;
		char *name = pl_asprintf("api-cert:%s", p);

		json_array_append_new(
			specs, json_pack("{s:s,s:s,s:s,s:I,s:b,s:I,s:I,s:I,s:I}", "name", name,
					 "type", "tls", "host", host, "port", (json_int_t)port,
					 "verify", 0, "warn_days", (json_int_t)days, "fail_days",
					 (json_int_t)0, "timeout", (json_int_t)PL_CHECK_TIMEOUT,
					 "retries", (json_int_t)0));
		free(host);
		free(name);
	}
	free(copy);
}

void
pl_check_mark_cause(json_t *spec, const json_t *cluster, const json_t *causes)
{
	const char *g = pl_json_str(spec, "guest");
	const char *cause = g ? pl_json_str(causes, g) : NULL;
	const json_t *c;
	size_t j;

	if (!cause || pl_json_str(spec, "skip"))
		return;
	json_array_foreach(cluster, j, c) {
		if (strcmp(pl_json_str_or(c, "name", ""), cause) != 0)
			continue;
		if (!strcmp(pl_json_str_or(c, "status", ""), PL_CHECK_UP)) {
			json_object_set_new(spec, "skip", json_string("guest is declared stopped"));
		} else {
			json_object_set_new(spec, "caused_by", json_string(cause));
			json_object_set_new(
				spec, "cause",
				json_sprintf("not probed: %s", pl_json_str_or(c, "error", cause)));
		}
	}
}

void
pl_check_mark_causes(json_t *specs, const json_t *cluster, const json_t *causes)
{
	json_t *s;
	size_t i;

	json_array_foreach(specs, i, s)
		pl_check_mark_cause(s, cluster, causes);
}
