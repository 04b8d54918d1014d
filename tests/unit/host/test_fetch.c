/* Unit tests for host/fetch.c, the parser of the SSH reader's prefetch
 * answer: a real answer (made from a fixture tree by the prefetch's own
 * shell loop, in the fuzz corpus) read record by record, and each kind of
 * malformed answer refused whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "host/reader.h"

#define MARKER "@@pvelab-000000000000000000000000"

static json_t *
parse_corpus(const char *name)
{
	char *path = pl_asprintf("%s/tests/fuzz/corpus/host_fetch/%s", PL_TEST_SRCDIR, name);
	struct pl_buf b;
	json_t *cache;

	pl_buf_init(&b, 0);
	assert_int_equal(pl_file_read(path, &b, NULL), 0);
	cache = pl_host_fetch_parse(b.data, b.len, MARKER);
	pl_buf_release(&b);
	free(path);
	return cache;
}

static json_t *
parse(const char *s)
{
	return pl_host_fetch_parse(s, strlen(s), MARKER);
}

static void
test_real_answer(void **state)
{
	json_t *c = parse_corpus("intel-nvidia-grub"), *e;

	(void)state;
	assert_non_null(c);
	e = json_object_get(c, "/proc/cmdline");
	assert_string_equal(pl_json_str(e, "t"), "F");
	assert_non_null(strstr(pl_json_str(e, "data"), "intel_iommu=on"));
	/* the echo's newline is not the file's */
	e = json_object_get(c, "/sys/bus/pci/devices/0000:01:00.0/vendor");
	assert_string_equal(pl_json_str(e, "data"), "0x10de\n");
	e = json_object_get(c, "/sys/bus/pci/devices/0000:01:00.0/driver");
	assert_string_equal(pl_json_str(e, "t"), "L");
	assert_string_equal(pl_json_str(e, "target"), "../../../../bus/pci/drivers/vfio-pci");
	e = json_object_get(c, "/etc/kernel/cmdline");
	assert_string_equal(pl_json_str(e, "t"), "N");
	/* ". " is the root */
	e = json_object_get(c, "/");
	assert_string_equal(pl_json_str(e, "t"), "D");
	assert_true(json_array_size(json_object_get(e, "names")) >= 3);
	e = json_object_get(c, "/sys/kernel/iommu_groups");
	assert_string_equal(pl_json_str(e, "t"), "D");
	json_decref(c);
}

static void
test_bytes_kept(void **state)
{
	static const char in[] = "F /proc/cpuinfo\nflags\t: vmx\0 svm\n\n" MARKER "\n"
				 "D /./etc/modprobe.d\nvfio.conf\n\nblacklist.conf\n" MARKER "\n"
				 "E " MARKER "\n";
	json_t *c = pl_host_fetch_parse(in, sizeof(in) - 1, MARKER), *e;

	(void)state;
	assert_non_null(c);
	e = json_object_get(json_object_get(c, "/proc/cpuinfo"), "data");
	assert_int_equal(json_string_length(e), 17);
	assert_memory_equal(json_string_value(e), "flags\t: vmx\0 svm\n", 17);
	e = json_object_get(json_object_get(c, "/etc/modprobe.d"), "names");
	assert_int_equal(json_array_size(e), 2);
	assert_string_equal(json_string_value(json_array_get(e, 1)), "blacklist.conf");
	json_decref(c);
}

static void
test_refused_whole(void **state)
{
	(void)state;
	assert_null(parse_corpus("cut-short"));
	assert_null(parse_corpus("file-unterminated"));
	assert_null(parse_corpus("file-with-marker-line"));
	assert_null(parse_corpus("unknown-kind"));
	assert_null(parse_corpus("dotdot-path"));
	assert_null(parse_corpus("relative-path"));
	assert_null(parse_corpus("link-without-target"));
	assert_null(parse(""));
	assert_null(parse("E " MARKER));       /* no newline */
	assert_null(parse("xE " MARKER "\n")); /* the end line not at a line start */
	assert_null(parse("E @@pvelab-1\n"));  /* another marker */
	/* a NUL in a record line */
	static const char nul[] = "N /a\0b\nE " MARKER "\n";

	assert_null(pl_host_fetch_parse(nul, sizeof(nul) - 1, MARKER));
}

static void
test_empty_and_over_cap(void **state)
{
	json_t *c = parse("E " MARKER "\n");
	struct pl_buf b;

	(void)state;
	assert_non_null(c);
	assert_int_equal(json_object_size(c), 0);
	json_decref(c);
	/* a file over the cap is left out (read on demand, which says so) */
	pl_buf_init(&b, 0);
	assert_int_equal(pl_buf_add(&b, "F /big\n", 7), 0);
	for (size_t i = 0; i <= PL_HOST_READ_MAX; i += 4096) {
		char blk[4096];

		memset(blk, 'x', sizeof(blk));
		assert_int_equal(pl_buf_add(&b, blk, sizeof(blk)), 0);
	}
	assert_int_equal(pl_buf_add(&b, "\n" MARKER "\nN /small\nE " MARKER "\n",
				    strlen("\n" MARKER "\nN /small\nE " MARKER "\n")),
			 0);
	c = pl_host_fetch_parse(b.data, b.len, MARKER);
	assert_non_null(c);
	assert_null(json_object_get(c, "/big"));
	assert_non_null(json_object_get(c, "/small"));
	json_decref(c);
	pl_buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_answer),
		cmocka_unit_test(test_bytes_kept),
		cmocka_unit_test(test_refused_whole),
		cmocka_unit_test(test_empty_and_over_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
