/* Unit tests for core/buf: growth, the hard cap, formatting, consume/detach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"

static void
test_add_and_cap(void **state)
{
	struct pl_buf b;

	pl_buf_init(&b, 8);
	assert_string_equal(b.data, "");
	assert_int_equal(pl_buf_addstr(&b, "abcd"), 0);
	assert_int_equal(pl_buf_addf(&b, "%d", 123), 0);
	assert_string_equal(b.data, "abcd123");
	assert_int_equal(pl_buf_addstr(&b, "xy"), PL_ETOOBIG);
	assert_string_equal(b.data, "abcd123"); /* nothing appended */
	assert_int_equal(pl_buf_addch(&b, 'z'), 0);
	assert_int_equal(b.len, 8);
	pl_buf_consume(&b, 3);
	assert_string_equal(b.data, "d123z");
	pl_buf_truncate(&b, 2);
	assert_string_equal(b.data, "d1");
	pl_buf_release(&b);
	assert_int_equal(b.len, 0);
}

static void
test_grow_large_and_detach(void **state)
{
	struct pl_buf b;
	size_t len;
	char *s;

	pl_buf_init(&b, 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(pl_buf_addf(&b, "%04d", i % 10000), 0);
	assert_int_equal(b.len, 40000);
	assert_memory_equal(b.data + 39996, "9999", 4);
	s = pl_buf_detach(&b, &len);
	assert_int_equal(len, 40000);
	assert_int_equal(b.len, 0);
	free(s);
	s = pl_buf_detach(&b, &len); /* empty buffer still gives a string */
	assert_string_equal(s, "");
	free(s);
}

static void
test_overflow_guard(void **state)
{
	struct pl_buf b;

	pl_buf_init(&b, 16);
	assert_int_equal(pl_buf_add(&b, "x", SIZE_MAX), PL_ETOOBIG);
	assert_int_equal(pl_buf_grow(&b, SIZE_MAX - 1), PL_ETOOBIG);
	pl_buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_cap),
		cmocka_unit_test(test_grow_large_and_detach),
		cmocka_unit_test(test_overflow_guard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
