/* Unit tests for pl_file_read_secret: the mode check on the opened file,
 * newline stripping, a missing file, the size cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "core/file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/pvelab-secret-XXXXXX";

static char *
put(const char *name, const char *data, size_t len, mode_t mode)
{
	char *path = pl_asprintf("%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void
test_reads_and_strips_newlines(void **state)
{
	char *path = put("ok", "s3cret\r\n\n", 9, 0600), *secret = NULL, *err = NULL;

	assert_int_equal(pl_file_read_secret(path, &secret, &err), 0);
	assert_string_equal(secret, "s3cret");
	assert_null(err);
	pl_free_secret(secret);
	free(path);
}

static void
test_refuses_group_readable(void **state)
{
	char *path = put("open", "x\n", 2, 0640), *secret = NULL, *err = NULL;
	char *want = pl_asprintf("secret file '%s' is accessible by group or others (mode 0640; "
				 "run: chmod 600 '%s')",
				 path, path);

	assert_int_equal(pl_file_read_secret(path, &secret, &err), PL_EPERM);
	assert_null(secret);
	assert_string_equal(err, want);
	free(want);
	free(err);
	free(path);
}

static void
test_missing_and_too_big(void **state)
{
	char *path = pl_asprintf("%s/none", dir), *secret = NULL, *err = NULL;
	char *big = calloc(1, (1 << 16) + 1);

	assert_int_equal(pl_file_read_secret(path, &secret, &err), PL_ENOENT);
	assert_null(secret);
	assert_non_null(strstr(err, "cannot read secret file"));
	free(err);
	err = NULL;
	free(path);
	memset(big, 'a', 1 << 16);
	path = put("big", big, (1 << 16) + 1, 0600);
	assert_int_equal(pl_file_read_secret(path, &secret, &err), PL_ETOOBIG);
	assert_null(secret);
	free(err);
	err = NULL;
	free(path);
	/* exactly the cap is fine */
	path = put("cap", big, 1 << 16, 0600);
	assert_int_equal(pl_file_read_secret(path, &secret, &err), 0);
	assert_int_equal(strlen(secret), 1 << 16);
	pl_free_secret(secret);
	free(path);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_and_strips_newlines),
		cmocka_unit_test(test_refuses_group_readable),
		cmocka_unit_test(test_missing_and_too_big),
	};
	int r;

	assert_non_null(mkdtemp(dir));
	r = cmocka_run_group_tests(tests, NULL, NULL);
	{
		char *cmd = pl_asprintf("rm -rf '%s'", dir);

		if (system(cmd) != 0)
			r = 1;
		free(cmd);
	}
	return r;
}
