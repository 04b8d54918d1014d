/* Unit tests for check/alerts.c and check/sched.c: what is notified as a
 * check's state moves (once per change, held back while flapping or when
 * another check explains it, routed by severity and name), the refusals of
 * a notifier config, and the scheduler's flap count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "check/alerts.h"
#include "check/check.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"

#include <event2/event.h>
#include <stdlib.h>

static struct pl_config *
load(const char *text)
{
	struct pl_config *c = NULL;
	struct pl_diags d;

	pl_diags_init(&d);
	assert_int_equal(pl_config_load_string("t.yaml", text, strlen(text), &c, &d), 0);
	pl_diags_release(&d);
	return c;
}

static void
collect(const json_t *ev, void *arg)
{
	json_array_append_new(arg, json_deep_copy(ev));
}

/* Notices waiting at the only notifier (its port is closed: none is sent
 * while the loop does not run). */
static long long
queued(const struct pl_alerts *a)
{
	json_t *info = pl_alerts_info(a);
	long long n =
		pl_json_int(json_array_get(json_object_get(info, "notifiers"), 0), "queued", -1);

	json_decref(info);
	return n;
}

static size_t
firing(const struct pl_alerts *a)
{
	json_t *info = pl_alerts_info(a);
	size_t n = json_array_size(json_object_get(info, "firing"));

	json_decref(info);
	return n;
}

static void
update(struct pl_alerts *a, const char *name, const char *status, bool flapping, const char *cause)
{
	json_t *st = json_pack("{s:s,s:s,s:f,s:b,s:{s:s}}", "name", name, "status", status, "since",
			       1.0, "flapping", flapping, "last", "status", status);

	if (cause)
		json_object_set_new(json_object_get(st, "last"), "caused_by", json_string(cause));
	pl_alerts_update(a, st);
	json_decref(st);
}

static void
test_once_per_change_and_holds(void **state)
{
	struct pl_config *c;
	struct event_base *base = event_base_new();
	struct pl_alerts *a = NULL;
	json_t *evs = json_array();
	char *err = NULL;

	PL_UNUSED(state);
	c = load("alerts:\n  group_wait: 0\n  notifiers:\n"
		 "    - {name: hook, type: webhook, url: 'http://127.0.0.1:1/', timeout: 1}\n"
		 "  routes:\n    - {notifiers: [hook], checks: ['w*', svc], severities: "
		 "[critical]}\n");
	assert_int_equal(pl_alerts_new(base, c, collect, evs, &a, &err), 0);
	assert_non_null(a);
	update(a, "web", "up", false, NULL); /* the first up: no news */
	assert_int_equal(queued(a), 0);
	update(a, "web", "down", false, NULL);
	assert_int_equal(queued(a), 1);
	assert_int_equal(firing(a), 1);
	update(a, "web", "down", false, NULL); /* still down: nothing new */
	assert_int_equal(queued(a), 1);
	update(a, "web", "up", true, NULL); /* up, but flapping: held */
	assert_int_equal(queued(a), 1);
	assert_int_equal(firing(a), 1);
	assert_string_equal(pl_json_str(json_array_get(evs, 0), "state"), "held");
	assert_string_equal(pl_json_str(json_array_get(evs, 0), "reason"), "the check is flapping");
	update(a, "web", "up", false, NULL); /* settled: the resolved notice */
	assert_int_equal(queued(a), 2);
	assert_int_equal(firing(a), 0);
	/* explained by its guest: held, and nothing fires */
	update(a, "svc", "down", false, "guest:nas");
	assert_int_equal(queued(a), 2);
	assert_int_equal(firing(a), 0);
	assert_string_equal(pl_json_str(json_array_get(evs, 1), "reason"), "guest:nas");
	update(a, "svc", "up", false, NULL);
	assert_int_equal(queued(a), 2);
	/* routes: a warning is not critical; another name does not match */
	update(a, "warm", "warning", false, NULL);
	update(a, "other", "down", false, NULL);
	assert_int_equal(queued(a), 2);
	pl_alerts_free(a);
	pl_config_free(c);
	json_decref(evs);
	event_base_free(base);
}

static char *
hold_all_but_web(const json_t *st, void *arg)
{
	PL_UNUSED(arg);
	return strcmp(pl_json_str_or(st, "name", ""), "web") ? pl_strdup("silence 7") : NULL;
}

static void
test_maintenance_and_hold(void **state)
{
	struct pl_config *c;
	struct event_base *base = event_base_new();
	struct pl_alerts *a = NULL;
	json_t *evs = json_array();
	char *err = NULL;

	PL_UNUSED(state);
	/* a window that opened within the hour, for the checks of guest web */
	c = load("alerts:\n  group_wait: 0\n  notifiers:\n"
		 "    - {name: hook, type: webhook, url: 'http://127.0.0.1:1/', timeout: 1}\n"
		 "  maintenance:\n"
		 "    - {name: nightly, schedule: '*:0/1', duration: 3600, checks: ['web/*']}\n");
	assert_int_equal(pl_alerts_new(base, c, collect, evs, &a, &err), 0);
	update(a, "web/http", "down", false, NULL);
	assert_int_equal(queued(a), 0);
	assert_string_equal(pl_json_str(json_array_get(evs, 0), "reason"),
			    "maintenance window 'nightly'");
	update(a, "web/http", "down", false, NULL); /* told once */
	assert_int_equal(json_array_size(evs), 1);
	update(a, "db", "down", false, NULL);
	assert_int_equal(queued(a), 1);
	pl_alerts_set_hold(a, hold_all_but_web, NULL);
	update(a, "dns", "down", false, NULL);
	assert_int_equal(queued(a), 1);
	assert_string_equal(pl_json_str(json_array_get(evs, 1), "reason"), "silence 7");
	update(a, "web", "down", false, NULL);
	assert_int_equal(queued(a), 2);
	pl_alerts_free(a);
	pl_config_free(c);
	json_decref(evs);
	event_base_free(base);
}

static void
refused(const char *yaml, const char *want)
{
	struct pl_config *c = load(yaml);
	struct event_base *base = event_base_new();
	struct pl_alerts *a = NULL;
	char *err = NULL;

	assert_int_not_equal(pl_alerts_new(base, c, NULL, NULL, &a, &err), 0);
	assert_null(a);
	assert_non_null(strstr(err, want));
	free(err);
	pl_config_free(c);
	event_base_free(base);
}

static void
test_refusals(void **state)
{
	PL_UNUSED(state);
	refused("alerts:\n  notifiers:\n    - {name: n, type: ntfy, url: 'ftp://x/t'}\n",
		"alerts.notifiers 'n': url is http(s)://");
	refused("alerts:\n  notifiers:\n    - {name: m, type: email, url: 'http://x'}\n",
		"url is smtp://HOST[:PORT] or smtps://");
	refused("alerts:\n  notifiers:\n    - {name: m, type: email, url: 'smtp://x', from: a@b}\n",
		"type email needs from and to");
	refused("alerts:\n  notifiers:\n    - {name: n, type: ntfy, url: 'http://x/t', token_file: "
		"/nonexistent/pvelab-token}\n",
		"alerts.notifiers 'n': token_file");
	refused("alerts:\n  notifiers:\n    - {name: n, type: ntfy, url: 'http://x/t'}\n"
		"    - {name: n, type: webhook, url: 'http://y/'}\n",
		"two are named 'n'");
	refused("alerts:\n  notifiers:\n    - {name: h, type: webhook, url: 'http://x/',"
		" headers: {X-A: \"a\\r\\nX-Injected: 1\"}}\n",
		"alerts.notifiers 'h': headers holds a line break");
	refused("alerts:\n  notifiers:\n    - {name: n, type: ntfy, url: 'http://x/t',"
		" click: \"https://x/\\nTags: y\"}\n",
		"alerts.notifiers 'n': click holds a line break");
	refused("alerts:\n  notifiers:\n    - {name: n, type: ntfy, url: 'http://x/t'}\n"
		"  routes:\n    - {notifiers: [nn]}\n",
		"alerts.routes[0]: no notifier named 'nn'");
}

static void
on_result(const json_t *st, const json_t *change, void *arg)
{
	json_t *out = arg;

	json_object_set_new(out, "state", json_deep_copy(st));
	if (change)
		json_array_append_new(json_object_get(out, "changes"), json_deep_copy(change));
}

static void
test_sched_flaps(void **state)
{
	struct event_base *base = event_base_new();
	json_t *out = json_pack("{s:[]}", "changes");
	struct pl_check_sched *s =
		pl_check_sched_new(base, &(struct pl_check_sched_opts){ .flap_window = 3600,
									.flap_threshold = 3,
									.result = on_result,
									.arg = out });
	static const char *const seq[] = { "up", "up", "down", "down", "up" };
	json_t *one;

	PL_UNUSED(state);
	for (size_t i = 0; i < PL_ARRAY_LEN(seq); i++) {
		json_t *r = json_pack("{s:s,s:s,s:s}", "name", "node:pve", "type", "node", "status",
				      seq[i]);

		pl_check_sched_feed(s, r);
		json_decref(r);
	}
	/* pending->up, up->down, down->up: three changes, flapping at the third */
	assert_int_equal(json_array_size(json_object_get(out, "changes")), 3);
	assert_true(json_is_null(json_object_get(json_array_get(json_object_get(out, "changes"), 0),
						 "from")) ||
		    !json_object_get(json_array_get(json_object_get(out, "changes"), 0), "from"));
	assert_int_equal(pl_json_int(json_object_get(out, "state"), "flaps", 0), 3);
	assert_true(pl_json_bool(json_object_get(out, "state"), "flapping", false));
	one = pl_check_sched_get(s, "node:pve");
	assert_int_equal(json_array_size(json_object_get(one, "results")), 5);
	assert_string_equal(
		pl_json_str(json_array_get(json_object_get(one, "results"), 0), "status"), "up");
	assert_null(pl_check_sched_get(s, "nosuch"));
	json_decref(one);
	pl_check_sched_free(s);
	json_decref(out);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once_per_change_and_holds),
		cmocka_unit_test(test_maintenance_and_hold),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_sched_flaps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
