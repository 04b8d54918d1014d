/* Unit tests for config/: schema walk, defaults, normalisation, located
 * errors, suggestions and consistency checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/json.h"
#include "core/propstr.h"

static struct pl_config *
load(const char *text, struct pl_diags *d)
{
	struct pl_config *c = NULL;

	pl_diags_init(d);
	pl_config_load_string("t.yaml", text, strlen(text), &c, d);
	if (c)
		pl_config_check(c, d);
	return c;
}

static bool
has_diag(const struct pl_diags *d, int line, const char *needle)
{
	for (size_t i = 0; i < d->n; i++) {
		char *s = pl_diag_line(&d->items[i]);
		bool hit = (line == 0 || d->items[i].line == line) && strstr(s, needle);

		free(s);
		if (hit)
			return true;
	}
	return false;
}

static void
test_valid_with_defaults(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("defaults:\n  memory: 2G\n  node: pve\n"
				   "guests:\n  - name: a\n    disks: [{size: 32}]\n"
				   "  - name: b\n    memory: 512M\n    onboot: yes\n",
				   &d);
	const json_t *g0, *g1;

	assert_non_null(c);
	assert_int_equal(d.nerrors, 0);
	g0 = json_array_get(pl_config_guests(c), 0);
	g1 = json_array_get(pl_config_guests(c), 1);
	assert_int_equal(pl_json_int(g0, "memory", 0), 2048);
	assert_string_equal(pl_json_str(g0, "node"), "pve");
	assert_string_equal(pl_json_str(g0, "type"), "vm");
	assert_string_equal(pl_json_str(g0, "state"), "running");
	assert_string_equal(pl_json_str(json_array_get(json_object_get(g0, "disks"), 0), "size"), "32G");
	assert_string_equal(pl_json_str(json_array_get(json_object_get(g0, "disks"), 0), "bus"), "scsi");
	assert_int_equal(pl_json_int(g1, "memory", 0), 512);
	assert_true(json_is_true(json_object_get(g1, "onboot")));
	pl_config_free(c);
	pl_diags_release(&d);
}

static void
test_errors_located(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("guests:\n"
				   "  - name: a\n"
				   "    cors: 2\n"
				   "    type: qemu\n"
				   "  - vmid: 5\n",
				   &d);

	assert_int_equal(d.nerrors, 4);
	assert_true(has_diag(&d, 3, "t.yaml:3:5: error: guests[0].cors: unknown key (did you mean 'cores'?)"));
	assert_true(has_diag(&d, 4, "'qemu' is not one of vm|lxc"));
	assert_true(has_diag(&d, 5, "missing required key 'name'"));
	assert_true(has_diag(&d, 5, "5 is out of range"));
	pl_config_free(c);
	pl_diags_release(&d);
}

static void
test_merge_keys_and_ranges(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("conventions:\n  categories:\n    mcp: {vmids: 200-209}\n"
				   "x: &small {cores: 1}\n"
				   "guests:\n  - <<: *small\n    name: a\n    vmid: 300\n    category: mcp\n",
				   &d);

	/* top-level x is unknown; vmid 300 outside 200-209 */
	assert_true(has_diag(&d, 4, "x: unknown key"));
	assert_true(has_diag(&d, 0, "vmid 300 is outside category 'mcp' (200-209)"));
	assert_int_equal(d.nerrors, 2);
	pl_config_free(c);
	pl_diags_release(&d);
}

static void
test_yaml_syntax_error(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("guests:\n  - name: a\n   bad: [\n", &d);

	assert_null(c);
	assert_int_equal(d.nerrors, 1);
	assert_string_equal(d.items[0].file, "t.yaml");
	assert_int_equal(d.items[0].line, 3);
	pl_diags_release(&d);
}

static int
teardown(void **state)
{
	pl_pfmt_cleanup();
	return 0;
}

static void
test_project(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("project: lab-2_x\nguests: []\n", &d);
	char *p;

	assert_int_equal(d.nerrors, 0);
	assert_string_equal(pl_config_project(c), "lab-2_x");
	pl_config_free(c);
	pl_diags_release(&d);
	c = load("guests: []\n", &d); /* t.yaml */
	assert_string_equal(pl_config_project(c), "t");
	pl_config_free(c);
	pl_diags_release(&d);
	c = load("project: -bad\n", &d);
	assert_true(has_diag(&d, 1, "t.yaml:1:1: error: project: '-bad' is not a project name"));
	pl_config_free(c);
	pl_diags_release(&d);
	c = load("project: abcdefghijabcdefghijabcdefghijabc\n", &d); /* 33 */
	assert_int_equal(d.nerrors, 1);
	pl_config_free(c);
	pl_diags_release(&d);
	/* defaults: the file's name, or pvelab.yaml's directory, made valid */
	p = pl_config_default_project("/x/y/Home Lab.yml");
	assert_string_equal(p, "home-lab");
	free(p);
	p = pl_config_default_project("/srv/My_Lab!/pvelab.yaml");
	assert_string_equal(p, "my_lab");
	free(p);
	assert_null(pl_config_default_project("/x/___.yaml"));
	assert_true(pl_config_project_valid("a"));
	assert_false(pl_config_project_valid("A"));
	assert_false(pl_config_project_valid(""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_with_defaults),
		cmocka_unit_test(test_errors_located),
		cmocka_unit_test(test_merge_keys_and_ranges),
		cmocka_unit_test(test_yaml_syntax_error),
		cmocka_unit_test(test_project),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
