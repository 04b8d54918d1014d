/* Unit tests for config/: schema walk, defaults, normalisation, located
 * errors, suggestions and consistency checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/err.h"
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

/* clusters: narrowed to one: its entry is cluster:, only its objects stay
 * (defaults: may name the cluster), and a message about a kept object still
 * points at its line. */
static void
test_select_cluster(void **state)
{
	static const char text[] = "clusters:\n"
				   "  home: {endpoints: ['https://h:8006'], state: h.db}\n"
				   "  lab: {endpoints: ['https://l:8006']}\n"
				   "defaults: {cluster: lab}\n"
				   "guests:\n"
				   "  - {name: web, cluster: home}\n"
				   "  - {name: web}\n"
				   "  - {name: db, memory: 512}\n"
				   "bridges:\n"
				   "  - {name: vmbr1, cluster: home}\n"
				   "profiles: {p: [db, web]}\n";
	struct pl_diags d;
	struct pl_config *c = load(text, &d);
	const json_t *g;
	char *err = NULL;
	int line = 0, col = 0;

	(void)state;
	assert_int_equal(d.nerrors, 0); /* web twice, in two clusters */
	assert_int_equal(pl_config_select_cluster(c, "office", &err), PL_ENOENT);
	assert_non_null(strstr(err, "unknown cluster 'office' (clusters in t.yaml: home, lab)"));
	free(err);
	assert_int_equal(pl_config_select_cluster(c, "lab", NULL), 0);
	assert_int_equal(pl_config_select_cluster(c, "lab", NULL), 0); /* again: the same */
	assert_int_equal(pl_config_select_cluster(c, "home", NULL), PL_EINVAL);
	assert_string_equal(pl_config_cluster(c), "lab");
	assert_null(pl_config_cluster_state(c));
	assert_string_equal(json_string_value(pl_config_get(c, "/cluster/endpoints/0")),
			    "https://l:8006");
	g = pl_config_guests(c);
	assert_int_equal(json_array_size(g), 2);
	assert_string_equal(pl_json_str(json_array_get(g, 1), "name"), "db");
	assert_null(json_object_get(json_array_get(g, 0), "cluster"));
	assert_int_equal(json_array_size(pl_config_get(c, "/guests")), 2);
	assert_int_equal(json_array_size(pl_config_get(c, "/bridges")), 0);
	assert_int_equal(json_array_size(pl_config_get(c, "/profiles/p")), 2);
	assert_true(pl_config_where(c, "/guests/1/memory", &line, &col));
	assert_int_equal(line, 8);
	/* a message names the key as the file has it */
	pl_config_diag(c, &d, PL_DIAG_ERROR, "/guests/1/memory", "too much");
	assert_true(has_diag(&d, 8, "guests[2].memory: too much"));
	pl_config_free(c);
	pl_diags_release(&d);

	c = load(text, &d);
	assert_int_equal(pl_config_select_cluster(c, "home", NULL), 0);
	assert_string_equal(pl_config_cluster_state(c), "h.db");
	assert_int_equal(json_array_size(pl_config_guests(c)), 1);
	assert_int_equal(json_array_size(pl_config_get(c, "/bridges")), 1);
	/* db is lab's only: not a member of home's p */
	assert_int_equal(json_array_size(pl_config_get(c, "/profiles/p")), 1);
	assert_string_equal(json_string_value(pl_config_get(c, "/profiles/p/0")), "web");
	assert_true(pl_config_where(c, "/bridges/0/name", &line, &col));
	assert_int_equal(line, 10);
	pl_config_free(c);
	pl_diags_release(&d);

	/* an unknown name, at its place; a missing one; both sections */
	c = load("clusters: {a: {}, b: {}}\nguests:\n  - {name: x, cluster: c}\n  - {name: y}\n",
		 &d);
	assert_true(has_diag(&d, 3, "guests[0].cluster: unknown cluster 'c' (clusters: a, b)"));
	assert_true(has_diag(&d, 4, "cluster: missing (this config has several clusters: a, b)"));
	pl_config_free(c);
	pl_diags_release(&d);
	c = load("cluster: {}\nclusters: {a: {}}\n", &d);
	assert_true(has_diag(&d, 1, "cluster: and clusters: are both set"));
	pl_config_free(c);
	pl_diags_release(&d);
	c = load("clusters: {Bad: {}}\n", &d);
	assert_true(has_diag(&d, 0, "'Bad' is not a cluster name"));
	pl_config_free(c);
	pl_diags_release(&d);
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
		cmocka_unit_test(test_select_cluster),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
