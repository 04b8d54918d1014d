/*
 * The checks' series on pvelab serve's /metrics (docs/metrics.md, "Checks"):
 * named after blackbox_exporter's probe_* where it has one, labelled by
 * check, type, guest and target, read from the scheduler's states in memory
 * on each scrape (no store read), and the notifiers' counters.
 */
#include "core/common.h"
#include "check/alerts.h"
#include "check/check.h"
#include "cmd/serve_checks.h"
#include "core/json.h"
#include "core/str.h"
#include "serve/expo.h"

/* The guest a check is about: a service check's, or NAME of the cluster's
 * guest:NAME and backup:NAME checks ("" for none). */
static const char *
guest_of(const json_t *st)
{
	const char *name = pl_json_str_or(st, "name", "");

	if (pl_json_str(st, "guest"))
		return pl_json_str(st, "guest");
	if (pl_str_startswith(name, "guest:"))
		return name + 6;
	if (pl_str_startswith(name, "backup:"))
		return name + 7;
	return "";
}

/* One sample of a check's family, with its four labels. */
static void
sample(struct pl_expo *e, const json_t *st, double v)
{
	const char *kv[] = { "check",  pl_json_str_or(st, "name", ""),
			     "type",   pl_json_str_or(st, "type", ""),
			     "guest",  guest_of(st),
			     "target", pl_json_str_or(st, "target", "") };

	pl_expo_sample(e, "", kv, 4, v);
}

/* Whether the check has a result that says up or down (not pending, not
 * skipped: those have no pvelab_check_up). */
static bool
decided(const json_t *st)
{
	const char *s = pl_json_str_or(st, "status", "pending");

	return !strcmp(s, PL_CHECK_UP) || !strcmp(s, PL_CHECK_WARNING) || !strcmp(s, PL_CHECK_DOWN);
}

/* A number of the check's last result, if it has one. */
static bool
last_num(const json_t *st, const char *key, double *v)
{
	const json_t *x = json_object_get(json_object_get(st, "last"), key);

	if (!json_is_number(x))
		return false;
	*v = json_number_value(x);
	return true;
}

static void
write_alerts(struct pl_expo *e, const struct pl_alerts *a)
{
	static const char *const states[] = { "sent", "failed", "dropped" };
	json_t *info = pl_alerts_info(a);
	const json_t *ns = json_object_get(info, "notifiers"), *n;
	size_t i;

	if (json_array_size(ns) == 0)
		goto out;
	pl_expo_family(e, "pvelab_alert_notices_total", PL_EXPO_COUNTER,
		       "Notices by notifier and fate (sent; failed: a try that failed and is "
		       "retried; dropped: given up on)");
	json_array_foreach(ns, i, n)
		for (size_t k = 0; k < PL_ARRAY_LEN(states); k++) {
			const char *kv[] = { "notifier", pl_json_str_or(n, "name", ""),
					     "type",     pl_json_str_or(n, "type", ""),
					     "state",    states[k] };

			pl_expo_sample(e, "", kv, 3, (double)pl_json_int(n, states[k], 0));
		}
	pl_expo_family(e, "pvelab_alert_queue_length", PL_EXPO_GAUGE,
		       "Notices waiting for a notifier (one that is down keeps them)");
	json_array_foreach(ns, i, n) {
		const char *kv[] = { "notifier", pl_json_str_or(n, "name", ""), "type",
				     pl_json_str_or(n, "type", "") };

		pl_expo_sample(e, "", kv, 2, (double)pl_json_int(n, "queued", 0));
	}
	pl_expo_family(e, "pvelab_alerts_firing", PL_EXPO_GAUGE,
		       "Checks whose last notice said down or warning");
	pl_expo_sample(e, "", NULL, 0, (double)json_array_size(json_object_get(info, "firing")));
out:
	json_decref(info);
}

void
pl_serve_checks_metrics(struct pl_expo *e, void *arg)
{
	const struct pl_serve_checks *c = arg;
	size_t n = pl_check_sched_count(c->sched), i;
	const json_t *st;
	double v;

	if (n == 0)
		return;
	pl_expo_family(e, "pvelab_check_up", PL_EXPO_GAUGE,
		       "Whether the check's confirmed state is up (1: up or warning, 0: down after "
		       "its retries); none while pending or skipped (blackbox_exporter's "
		       "probe_success)");
	for (i = 0; i < n; i++)
		if (decided(st = pl_check_sched_state(c->sched, i)))
			sample(e, st, strcmp(pl_json_str_or(st, "status", ""), PL_CHECK_DOWN) != 0);
	pl_expo_family(e, "pvelab_check_warning", PL_EXPO_GAUGE,
		       "Whether the check's state is warning (a certificate near its expiry, a "
		       "storage above its threshold, an old backup)");
	for (i = 0; i < n; i++)
		if (decided(st = pl_check_sched_state(c->sched, i)))
			sample(e, st, !strcmp(pl_json_str_or(st, "status", ""), PL_CHECK_WARNING));
	pl_expo_family(e, "pvelab_check_duration_seconds", PL_EXPO_GAUGE,
		       "How long the check's last probe took (blackbox_exporter's "
		       "probe_duration_seconds)");
	for (i = 0; i < n; i++)
		if (last_num(st = pl_check_sched_state(c->sched, i), "latency_ms", &v))
			sample(e, st, v / 1e3);
	pl_expo_family(e, "pvelab_check_tls_expiry_seconds", PL_EXPO_GAUGE,
		       "Unix time the certificate the last probe saw expires (blackbox_exporter's "
		       "probe_ssl_earliest_cert_expiry)");
	for (i = 0; i < n; i++)
		if (last_num(st = pl_check_sched_state(c->sched, i), "tls_expiry", &v))
			sample(e, st, v);
	pl_expo_family(e, "pvelab_check_http_status_code", PL_EXPO_GAUGE,
		       "HTTP status of the check's last answer (blackbox_exporter's "
		       "probe_http_status_code)");
	for (i = 0; i < n; i++)
		if (last_num(st = pl_check_sched_state(c->sched, i), "code", &v))
			sample(e, st, v);
	pl_expo_family(e, "pvelab_check_probes_total", PL_EXPO_COUNTER,
		       "Results taken since pvelab serve started");
	for (i = 0; i < n; i++) {
		st = pl_check_sched_state(c->sched, i);
		sample(e, st, (double)pl_json_int(st, "probes", 0));
	}
	pl_expo_family(e, "pvelab_check_state_changes_total", PL_EXPO_COUNTER,
		       "Confirmed state changes since pvelab serve started (the first result "
		       "counts as one)");
	for (i = 0; i < n; i++) {
		st = pl_check_sched_state(c->sched, i);
		sample(e, st, (double)pl_json_int(st, "changes", 0));
	}
	pl_expo_family(e, "pvelab_check_flapping", PL_EXPO_GAUGE,
		       "Whether the check changed state alerts.flap_threshold times within "
		       "alerts.flap_window (its notices wait)");
	for (i = 0; i < n; i++)
		if (decided(st = pl_check_sched_state(c->sched, i)))
			sample(e, st, json_is_true(json_object_get(st, "flapping")));
	write_alerts(e, c->alerts);
}
