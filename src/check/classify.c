/*
 * Deciding a result: what one probe saw (an error, an HTTP status, a body,
 * a certificate's expiry, DNS answers) against what its spec expects, and
 * the cluster's own checks from one /cluster/resources answer. No I/O here,
 * so that the rules are unit tested on their own.
 */
#include "core/common.h"
#include "check/check.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"

#include <regex.h>

/* Does the regex match the first n bytes of data? -1: the regex is invalid. */
static int
matches(const char *re, const char *data, size_t n)
{
	regex_t rx;
	char *s;
	int r;

	if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
		return -1;
	s = pl_strndup(data ? data : "", data ? n : 0);
	r = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	free(s);
	return r;
}

/* The value at a simple JSON path ($.a.b[0].c, or a.b.0.c), borrowed. */
static const json_t *
json_at(const json_t *v, const char *path)
{
	const char *p = path;

	if (p[0] == '$')
		p++;
	while (v && *p) {
		char key[256];
		size_t n = 0;

		if (*p == '.') {
			p++;
			continue;
		}
		if (*p == '[') {
			long long idx = strtoll(p + 1, NULL, 10);

			p = strchr(p, ']');
			if (!p)
				return NULL;
			p++;
			v = json_is_array(v) ? json_array_get(v, (size_t)idx) : NULL;
			continue;
		}
		while (*p && *p != '.' && *p != '[' && n < sizeof(key) - 1)
			key[n++] = *p++;
		key[n] = '\0';
		if (json_is_array(v) && key[0] >= '0' && key[0] <= '9')
			v = json_array_get(v, (size_t)strtoll(key, NULL, 10));
		else
			v = json_object_get(v, key);
	}
	return v;
}

/* A scalar as the text a YAML author would write for it. */
static char *
scalar_text(const json_t *v)
{
	if (json_is_string(v))
		return pl_strdup(json_string_value(v));
	if (json_is_true(v))
		return pl_strdup("true");
	if (json_is_false(v))
		return pl_strdup("false");
	if (json_is_null(v))
		return pl_strdup("null");
	if (json_is_integer(v))
		return pl_asprintf("%lld", (long long)json_integer_value(v));
	if (json_is_real(v))
		return pl_asprintf("%g", json_real_value(v));
	return pl_json_compact(v);
}

static bool
status_expected(const json_t *spec, long code)
{
	const json_t *list = json_object_get(spec, "expect_status"), *v;
	size_t i;

	if (json_array_size(list) == 0)
		return code >= 200 && code < 400;
	json_array_foreach(list, i, v)
		if (json_integer_value(v) == code)
			return true;
	return false;
}

static void
set(json_t *result, const char *status, char *error)
{
	json_object_set_new(result, "status", json_string(status));
	if (error)
		json_object_set_new(result, "error", json_string(error));
	free(error);
}

/* The HTTP body's own rules: regex, then JSON path; NULL when they hold. */
static char *
body_problem(const json_t *spec, const struct pl_check_obs *o)
{
	const char *re = pl_json_str(spec, "body_regex"), *jp = pl_json_str(spec, "json_path");
	size_t n = o->len < PL_CHECK_READ_MAX ? o->len : PL_CHECK_READ_MAX;

	if (re) {
		int m = matches(re, o->data, n);

		if (m < 0)
			return pl_asprintf("invalid body_regex '%s'", re);
		if (!m)
			return pl_asprintf("body does not match '%s'", re);
	}
	if (jp) {
		json_t *doc = json_loadb(o->data ? o->data : "", n, 0, NULL);
		const json_t *at = doc ? json_at(doc, jp) : NULL;
		char *want = scalar_text(json_object_get(spec, "json_value"));
		char *got = at ? scalar_text(at) : NULL;
		char *msg = NULL;

		if (!doc)
			msg = pl_strdup("body is not JSON");
		else if (!at)
			msg = pl_asprintf("no '%s' in the body", jp);
		else if (json_object_get(spec, "json_value") && strcmp(got, want) != 0)
			msg = pl_asprintf("'%s' is '%s', not '%s'", jp, got, want);
		free(want);
		free(got);
		json_decref(doc);
		return msg;
	}
	return NULL;
}

void
pl_check_classify(const json_t *spec, const struct pl_check_obs *o, json_t *result)
{
	const char *type = pl_json_str_or(spec, "type", "tcp");
	bool web = !strcmp(type, "http") || !strcmp(type, "https");
	size_t n = o->len < PL_CHECK_READ_MAX ? o->len : PL_CHECK_READ_MAX;
	char *problem = NULL;

	json_object_set_new(result, "latency_ms",
			    json_real((double)(long long)(o->latency_ms * 1000) / 1000));
	if (o->code)
		json_object_set_new(result, "code", json_integer(o->code));
	if (o->not_after) {
		long long left = o->not_after - o->now;

		json_object_set_new(result, "tls_expiry", json_integer(o->not_after));
		json_object_set_new(result, "tls_days_left",
				    json_integer(left / 86400 - (left < 0)));
	}
	if (o->error) {
		set(result, PL_CHECK_DOWN, pl_strdup(o->error));
		return;
	}
	if (web && !status_expected(spec, o->code)) {
		set(result, PL_CHECK_DOWN, pl_asprintf("HTTP status %ld", o->code));
		return;
	}
	if (web && (problem = body_problem(spec, o)) != NULL) {
		set(result, PL_CHECK_DOWN, problem);
		return;
	}
	if (!strcmp(type, "tcp") && pl_json_str(spec, "banner")) {
		int m = matches(pl_json_str(spec, "banner"), o->data, n);

		if (m <= 0) {
			set(result, PL_CHECK_DOWN,
			    m < 0 ? pl_strdup("invalid banner regex") :
				    pl_asprintf("banner does not match '%s'",
						pl_json_str(spec, "banner")));
			return;
		}
	}
	if (!strcmp(type, "dns") && !o->error) {
		/* the records, one a line; dns_answer must be one of them whole */
		const char *want = pl_json_str(spec, "dns_answer");
		json_t *answers = json_array();
		bool ok = false;
		char *all = NULL;

		for (size_t at = 0; at < n;) {
			const char *nl = memchr(o->data + at, '\n', n - at);
			size_t len = nl ? (size_t)(nl - (o->data + at)) : n - at;
			json_t *line = json_stringn(o->data + at, len);

			if (line) {
				ok |= want && !strcmp(json_string_value(line), want);
				json_array_append_new(answers, line);
			}
			at += len + 1;
		}
		if (want && !ok) {
			for (size_t i = 0; i < json_array_size(answers); i++) {
				char *more =
					pl_asprintf("%s%s%s", all ? all : "", all ? ", " : "",
						    json_string_value(json_array_get(answers, i)));

				free(all);
				all = more;
			}
			set(result, PL_CHECK_DOWN,
			    pl_asprintf("answer '%s' lacks '%s'", all ? all : "", want));
			free(all);
			json_object_set_new(result, "answers", answers);
			return;
		}
		json_object_set_new(result, "answers", answers);
	}
	/* verify_at: the certificate is known to be out of date, on purpose */
	if (o->not_after && (!strcmp(type, "tls") || !strcmp(type, "https")) &&
	    !pl_json_str(spec, "verify_at")) {
		long long left = o->not_after - o->now;
		long long fail = pl_json_int(spec, "fail_days", PL_CHECK_FAIL_DAYS);
		long long warn = pl_json_int(spec, "warn_days", PL_CHECK_WARN_DAYS);

		if (left <= fail * 86400) {
			set(result, PL_CHECK_DOWN,
			    left <= 0 ?
				    pl_strdup("certificate expired") :
				    pl_asprintf("certificate expires in %lld days", left / 86400));
			return;
		}
		if (left <= warn * 86400) {
			set(result, PL_CHECK_WARNING,
			    pl_asprintf("certificate expires in %lld days", left / 86400));
			return;
		}
	}
	set(result, PL_CHECK_UP, NULL);
}

int
pl_check_exit_code(const json_t *results)
{
	const json_t *r;
	size_t i;
	int rc = 0;

	json_array_foreach(results, i, r) {
		const char *st = pl_json_str_or(r, "status", "");

		if (!strcmp(st, PL_CHECK_DOWN))
			return 1;
		if (!strcmp(st, PL_CHECK_WARNING))
			rc = 2;
	}
	return rc;
}

/* ---- the cluster's own checks ---- */

static json_t *
cluster_result(const char *name, const char *type, const char *status, char *error)
{
	json_t *r = json_pack("{s:s,s:s,s:s}", "name", name, "type", type, "status", status);

	if (error)
		json_object_set_new(r, "error", json_string(error));
	free(error);
	return r;
}

json_t *
pl_check_cluster(const struct pl_config *c, const json_t *opts, const json_t *resources,
		 json_t **causes)
{
	json_t *out = json_array(), *offline = json_object(), *by_name = json_object();
	const json_t *res, *g;
	long long pct_max = pl_json_int(opts, "storage_percent", 90);
	size_t i;

	*causes = json_object();
	json_array_foreach(resources, i, res) {
		const char *type = pl_json_str_or(res, "type", ""),
			   *node = pl_json_str(res, "node");

		if (!strcmp(type, "node") && node) {
			const char *st = pl_json_str_or(res, "status", "unknown");
			char *name = pl_asprintf("node:%s", node);
			bool up = !strcmp(st, "online");

			if (!up)
				json_object_set_new(offline, node, json_string(name));
			if (pl_json_bool(opts, "node_offline", true))
				json_array_append_new(
					out, cluster_result(
						     name, "node", up ? PL_CHECK_UP : PL_CHECK_DOWN,
						     up ? NULL : pl_asprintf("node is %s", st)));
			free(name);
		} else if ((!strcmp(type, "qemu") || !strcmp(type, "lxc")) &&
			   pl_json_str(res, "name") && !pl_json_bool(res, "template", false)) {
			json_object_set(by_name, pl_json_str(res, "name"), (json_t *)res);
		} else if (!strcmp(type, "storage") && node && pct_max > 0) {
			long long used = pl_json_int(res, "disk", 0),
				  max = pl_json_int(res, "maxdisk", 0);
			char *name = pl_asprintf("storage:%s@%s",
						 pl_json_str_or(res, "storage", "?"), node);
			const char *st = PL_CHECK_UP;
			char *err = NULL;

			if (max > 0 && used >= max) {
				st = PL_CHECK_DOWN;
				err = pl_strdup("storage is full");
			} else if (max > 0 && used * 100 > pct_max * max) {
				st = PL_CHECK_WARNING;
				err = pl_asprintf("storage is %lld%% full (threshold %lld%%)",
						  used * 100 / max, pct_max);
			}
			if (json_object_get(offline, node) == NULL)
				json_array_append_new(out,
						      cluster_result(name, "storage", st, err));
			else
				free(err);
			free(name);
		}
	}
	json_array_foreach(c ? pl_config_guests(c) : NULL, i, g) {
		const char *gname = pl_json_str(g, "name"),
			   *want = pl_json_str_or(g, "state", "running");
		const json_t *have = gname ? json_object_get(by_name, gname) : NULL;
		const char *node = pl_json_str(have, "node"),
			   *st = pl_json_str_or(have, "status", "");
		const json_t *node_check = node ? json_object_get(offline, node) : NULL;
		char *name;

		if (!gname || !pl_json_bool(opts, "guest_state", true))
			continue;
		name = pl_asprintf("guest:%s", gname);
		if (node_check) {
			json_object_set(*causes, gname, (json_t *)node_check);
		} else if (!have) {
			json_array_append_new(out,
					      cluster_result(name, "guest", PL_CHECK_DOWN,
							     pl_strdup("guest does not exist")));
			json_object_set_new(*causes, gname, json_string(name));
		} else if (strcmp(st, want) != 0) {
			json_array_append_new(
				out,
				cluster_result(name, "guest", PL_CHECK_DOWN,
					       pl_asprintf("guest is %s, declared %s", st, want)));
			json_object_set_new(*causes, gname, json_string(name));
		} else {
			json_array_append_new(out,
					      cluster_result(name, "guest", PL_CHECK_UP, NULL));
			if (strcmp(want, "running") != 0)
				json_object_set_new(*causes, gname, json_string(name));
		}
		free(name);
	}
	json_decref(offline);
	json_decref(by_name);
	return out;
}

json_t *
pl_check_backups(const struct pl_config *c, const json_t *newest, long long days)
{
	json_t *out = json_array(), *by_name = json_object();
	const json_t *g;
	size_t i;

	json_array_foreach(newest, i, g)
		if (pl_json_str(g, "name"))
			json_object_set(by_name, pl_json_str(g, "name"), (json_t *)g);
	json_array_foreach(c ? pl_config_guests(c) : NULL, i, g) {
		const char *gname = pl_json_str(g, "name");
		const json_t *b = gname ? json_object_get(by_name, gname) : NULL;
		long long age = pl_json_int(b, "age", 0);
		char *name;
		json_t *r;

		if (!b)
			continue; /* not in the cluster: the guest check says so */
		name = pl_asprintf("backup:%s", gname);
		if (pl_json_int(b, "count", 0) == 0)
			r = cluster_result(name, "backup", PL_CHECK_WARNING,
					   pl_strdup("no backup"));
		else if (age > days * 86400)
			r = cluster_result(
				name, "backup", PL_CHECK_WARNING,
				pl_asprintf("newest backup is %lld days old (limit %lld)",
					    age / 86400, days));
		else
			r = cluster_result(name, "backup", PL_CHECK_UP, NULL);
		if (pl_json_str(b, "newest"))
			json_object_set(r, "target", json_object_get(b, "newest"));
		json_array_append_new(out, r);
		free(name);
	}
	json_decref(by_name);
	return out;
}
