/* Unit tests for discover targets and ports: CIDR expansion, the /16 guard,
 * range coverage for --save, port lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "discover/discover.h"

static void
test_cidr(void **state)
{
	struct pl_disc_targets t;
	char *err = NULL;
	char a[64];

	pl_disc_targets_init(&t);
	assert_int_equal(pl_disc_targets_add(&t, "192.168.1.77/29", false, &err), 0);
	assert_int_equal(t.n, 8);
	pl_disc_addr_str(&t.addrs[0], a, sizeof(a));
	assert_string_equal(a, "192.168.1.72");
	pl_disc_addr_str(&t.addrs[7], a, sizeof(a));
	assert_string_equal(a, "192.168.1.79");
	/* duplicates collapse, order is by address */
	assert_int_equal(pl_disc_targets_add(&t, "192.168.1.73", false, &err), 0);
	assert_int_equal(pl_disc_targets_add(&t, "10.0.0.1", false, &err), 0);
	assert_int_equal(t.n, 9);
	pl_disc_addr_str(&t.addrs[0], a, sizeof(a));
	assert_string_equal(a, "10.0.0.1");
	assert_true(pl_disc_targets_cover(&t, "192.168.1.79"));
	assert_false(pl_disc_targets_cover(&t, "192.168.1.80"));
	assert_true(pl_disc_targets_cover(&t, "10.0.0.1"));
	assert_false(pl_disc_targets_cover(&t, "10.0.0.2"));
	assert_int_equal(pl_disc_targets_add(&t, "::1", false, &err), 0);
	assert_true(pl_disc_targets_cover(&t, "::1"));
	assert_int_equal(pl_disc_targets_add(&t, "1.2.3.4/33", false, &err), PL_EINVAL);
	assert_non_null(strstr(err, "1.2.3.4/33"));
	pl_disc_targets_release(&t);
	free(err);
}

static void
test_slash16_guard(void **state)
{
	struct pl_disc_targets t;
	char *err = NULL;

	pl_disc_targets_init(&t);
	assert_int_equal(pl_disc_targets_add(&t, "10.1.0.0/16", false, &err), 0);
	assert_int_equal(t.n, 65536);
	assert_int_equal(pl_disc_targets_add(&t, "10.2.0.1", false, &err), PL_ETOOBIG);
	assert_non_null(strstr(err, "--force"));
	assert_int_equal(pl_disc_targets_add(&t, "10.2.0.1", true, &err), 0);
	assert_int_equal(pl_disc_targets_add(&t, "10.0.0.0/8", true, &err), PL_ETOOBIG);
	pl_disc_targets_release(&t);
	free(err);
}

static void
test_ports(void **state)
{
	struct pl_disc_port *p;
	size_t n;
	char *err = NULL;

	assert_int_equal(pl_disc_ports_parse("22,80,8000-8002,623/udp,22/tcp", &p, &n, &err), 0);
	assert_int_equal(n, 6);
	assert_int_equal(p[2].port, 8000);
	assert_int_equal(p[4].port, 8002);
	assert_true(p[5].udp);
	free(p);
	assert_int_equal(pl_disc_ports_parse("1-65535", &p, &n, &err), 0);
	assert_int_equal(n, 65535);
	free(p);
	assert_int_equal(pl_disc_ports_parse("0", &p, &n, &err), PL_EINVAL);
	assert_int_equal(pl_disc_ports_parse("22,", &p, &n, &err), 0);
	free(p);
	assert_int_equal(pl_disc_ports_parse("9-8", &p, &n, &err), PL_EINVAL);
	assert_int_equal(pl_disc_ports_parse("22/sctp", &p, &n, &err), PL_EINVAL);
	assert_int_equal(pl_disc_ports_parse("", &p, &n, &err), PL_EINVAL);
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_slash16_guard),
		cmocka_unit_test(test_ports),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
