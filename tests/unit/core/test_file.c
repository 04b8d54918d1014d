/* Unit tests for core/file: atomic writes never follow a planted symlink and
 * leave no temporary file behind; reads respect the cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/pl-test-file-XXXXXX";

static size_t
entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The old temporary name (PATH.tmp.PID) planted as a symlink to another file
 * must not be written through or chmod-ed. */
static void
test_write_atomic_ignores_planted_symlink(void **state)
{
	char *target = pl_path_join(dir, "state.json"), *victim = pl_path_join(dir, "victim");
	char *planted = pl_asprintf("%s.tmp.%ld", target, (long)getpid());
	struct pl_buf b;
	struct stat st;
	FILE *f = fopen(victim, "w");

	(void)state;
	fputs("keep", f);
	fclose(f);
	chmod(victim, 0600);
	assert_int_equal(symlink(victim, planted), 0);
	assert_int_equal(pl_file_write_atomic(target, "new", 3, 0644, NULL), 0);
	pl_buf_init(&b, 0);
	assert_int_equal(pl_file_read(victim, &b, NULL), 0);
	assert_string_equal(b.data, "keep");
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	pl_buf_reset(&b);
	assert_int_equal(pl_file_read(target, &b, NULL), 0);
	assert_string_equal(b.data, "new");
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* the target, the victim, the planted link: no temporary left */
	assert_int_equal(entries(), 3);
	pl_buf_release(&b);
	unlink(planted);
	unlink(victim);
	unlink(target);
	free(planted);
	free(victim);
	free(target);
}

static void
test_write_atomic_mode_and_failure(void **state)
{
	char *target = pl_path_join(dir, "plan.json"), *err = NULL;
	char *missing = pl_path_join(dir, "no/such/dir/x");
	struct stat st;

	(void)state;
	assert_int_equal(pl_file_write_atomic(target, "{}", 2, 0600, NULL), 0);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(pl_file_write_atomic(missing, "{}", 2, 0600, &err), PL_EIO);
	assert_non_null(strstr(err, "cannot create a temporary file beside"));
	free(err);
	assert_int_equal(entries(), 1);
	unlink(target);
	free(target);
	free(missing);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_atomic_ignores_planted_symlink),
		cmocka_unit_test(test_write_atomic_mode_and_failure),
	};
	int r;

	if (mkdtemp(dir) == NULL)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return r;
}
