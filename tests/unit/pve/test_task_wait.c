/* Unit tests for the client's task waits (pve/client): a wait is a state
 * machine on the client's loop whose callback never runs inside the call
 * that started it, even when the task id is malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "pve/client.h"

#include <event2/event.h>

struct seen {
	int calls, err;
	char msg[256];
};

static void
on_task(int err, const char *exitstatus, const char *errmsg, void *arg)
{
	struct seen *s = arg;

	(void)exitstatus;
	s->calls++;
	s->err = err;
	snprintf(s->msg, sizeof(s->msg), "%s", errmsg ? errmsg : "");
}

static void
test_malformed_upid_fails_from_the_loop(void **state)
{
	const char *ep[1] = { "https://127.0.0.1:1" }; /* never asked */
	struct pl_pve_opts o = { .endpoints = ep, .n_endpoints = 1, .token = "u@pam!t=s" };
	struct event_base *base = event_base_new();
	struct pl_pve *c = NULL;
	struct seen s = { 0 };
	char *err = NULL;

	(void)state;
	assert_int_equal(pl_pve_new(base, &o, &c, &err), 0);
	pl_pve_task_wait(c, "not-a-upid", 0, on_task, &s);
	assert_int_equal(s.calls, 0); /* not inside the call */
	assert_int_equal(pl_pve_pending(c), 1);
	event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.err, PL_EPARSE);
	assert_string_equal(s.msg, "'not-a-upid' is not a task id (UPID)");
	assert_int_equal(pl_pve_pending(c), 0);
	/* a wait dropped with its client never calls back */
	pl_pve_task_wait(c, "also bad", 0, on_task, &s);
	pl_pve_free(c);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(s.calls, 1);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malformed_upid_fails_from_the_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
