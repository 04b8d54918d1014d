/*
 * Checks of the health checks a config declares (`checks.targets` and the
 * services' check keys) that need no network: names unique, an address for a
 * target, a name to resolve for dns, regexes that compile, options that fit
 * the type.
 */
#include "core/common.h"
#include "config/config.h"
#include "core/calendar.h"
#include "core/json.h"

#include <regex.h>
#include <time.h>

static void
check_regex(const struct pl_config *c, struct pl_diags *d, const json_t *probe, const char *key,
	    const char *ptr)
{
	const char *re = pl_json_str(probe, key);
	char at[256];
	regex_t rx;

	if (!re)
		return;
	if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0) {
		snprintf(at, sizeof(at), "%s/%s", ptr, key);
		pl_config_diag(c, d, PL_DIAG_ERROR, at,
			       "'%s' is not an extended regular expression", re);
		return;
	}
	regfree(&rx);
}

/* The keys every probe shares: its type's needs and its regexes. */
static void
check_probe(const struct pl_config *c, struct pl_diags *d, const json_t *probe, const char *type,
	    const char *ptr)
{
	char at[256];

	check_regex(c, d, probe, "body_regex", ptr);
	check_regex(c, d, probe, "banner", ptr);
	if (!strcmp(type, "dns") && !pl_json_str(probe, "dns_name")) {
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
			       "a dns check needs dns_name (the name to resolve)");
	}
	if (pl_json_str(probe, "verify_at")) {
		struct tm tm = { 0 };
		const char *v = pl_json_str(probe, "verify_at");
		const char *end = strptime(v, "%Y-%m-%d", &tm);

		snprintf(at, sizeof(at), "%s/verify_at", ptr);
		if (!end || *end)
			pl_config_diag(c, d, PL_DIAG_ERROR, at, "'%s' is not a day (YYYY-MM-DD)",
				       v);
		else if (!pl_json_bool(probe, "verify", true))
			pl_config_diag(c, d, PL_DIAG_ERROR, at,
				       "verify_at verifies the chain as of that day; verify: false "
				       "verifies nothing (choose one)");
	}
	if (json_object_get(probe, "json_value") && !pl_json_str(probe, "json_path")) {
		snprintf(at, sizeof(at), "%s/json_value", ptr);
		pl_config_diag(c, d, PL_DIAG_ERROR, at, "json_value needs json_path");
	}
}

/* alerts: notifier names unique and known to the routes, windows' schedules. */
static void
check_alerts(const struct pl_config *c, struct pl_diags *d)
{
	json_t *names = json_object();
	const json_t *x, *n;
	char ptr[128];
	size_t i, j;

	json_array_foreach(pl_config_get(c, "/alerts/notifiers"), i, x) {
		const char *name = pl_json_str_or(x, "name", "");

		snprintf(ptr, sizeof(ptr), "/alerts/notifiers/%zu/name", i);
		if (json_object_get(names, name))
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "duplicate notifier name '%s'",
				       name);
		json_object_set_new(names, name, json_true());
	}
	json_array_foreach(pl_config_get(c, "/alerts/routes"), i, x) {
		json_array_foreach(json_object_get(x, "notifiers"), j, n) {
			if (json_string_value(n) && json_object_get(names, json_string_value(n)))
				continue;
			snprintf(ptr, sizeof(ptr), "/alerts/routes/%zu/notifiers/%zu", i, j);
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "no notifier named '%s'",
				       json_string_value(n) ? json_string_value(n) : "?");
		}
	}
	json_array_foreach(pl_config_get(c, "/alerts/maintenance"), i, x) {
		char *err = NULL;

		snprintf(ptr, sizeof(ptr), "/alerts/maintenance/%zu/schedule", i);
		if (pl_calendar_parse(pl_json_str_or(x, "schedule", ""), NULL, &err) != 0)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "%s", err);
		free(err);
	}
	json_decref(names);
}

void
pl_config_check_checks(const struct pl_config *c, struct pl_diags *d)
{
	json_t *seen = json_object();
	const json_t *t, *g, *svc;
	char ptr[128];
	size_t i, j;

	json_array_foreach(pl_config_get(c, "/checks/targets"), i, t) {
		const char *name = pl_json_str_or(t, "name", "");

		snprintf(ptr, sizeof(ptr), "/checks/targets/%zu", i);
		if (json_object_get(seen, name))
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "duplicate check name '%s'", name);
		json_object_set_new(seen, name, json_true());
		if (!pl_json_str(t, "host"))
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "check '%s' has no host: to probe",
				       name);
		check_probe(c, d, t, pl_json_str_or(t, "check", "tcp"), ptr);
	}
	json_array_foreach(pl_config_get(c, "/guests"), i, g) {
		json_array_foreach(json_object_get(g, "services"), j, svc) {
			snprintf(ptr, sizeof(ptr), "/guests/%zu/services/%zu", i, j);
			check_probe(c, d, svc, pl_json_str_or(svc, "check", ""), ptr);
		}
	}
	json_decref(seen);
	check_alerts(c, d);
}
