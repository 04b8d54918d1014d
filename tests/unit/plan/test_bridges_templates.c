/* Unit tests for the planner's bridge updates and template downloads, and
 * the API schema's config-key checks that validate uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/apischema.h"
#include "core/json.h"
#include "core/propstr.h"
#include "plan/plan.h"

static const char *SNAP =
	"{\"nodes\":[{\"node\":\"pve\",\"status\":\"online\",\"maxmem\":100,\"mem\":10},"
	"{\"node\":\"pve2\",\"status\":\"online\",\"maxmem\":100,\"mem\":50}],"
	"\"storages\":[{\"storage\":\"local\",\"node\":\"pve\",\"shared\":0},"
	"{\"storage\":\"local\",\"node\":\"pve2\",\"shared\":0}],"
	"\"bridges\":[{\"iface\":\"vmbr1\",\"node\":\"pve\",\"cidr\":\"10.0.0.1/24\",\"comments\":\"lab\\n\","
	"\"bridge_ports\":\"eno2\",\"autostart\":1}],"
	"\"templates\":{\"pve\":{\"local\":[\"local:vztmpl/a.tar.zst\"]},\"pve2\":{\"local\":[]}},"
	"\"aplinfo\":{\"pve\":[\"a.tar.zst\",\"b.tar.zst\"],\"pve2\":[\"a.tar.zst\",\"b.tar.zst\"]},"
	"\"guests\":[]}";

static json_t *
build(const char *cfgtext, const char *snaptext)
{
	struct pl_plan_opts o = { 0 };
	struct pl_config *c = NULL;
	struct pl_diags d;
	json_t *snap = json_loads(snaptext, 0, NULL), *plan = NULL;
	char *err = NULL;

	pl_diags_init(&d);
	assert_int_equal(pl_config_load_string("t.yaml", cfgtext, strlen(cfgtext), &c, &d), 0);
	assert_non_null(snap);
	assert_int_equal(pl_plan_build(c, snap, &o, &plan, &err), 0);
	pl_config_free(c);
	pl_diags_release(&d);
	json_decref(snap);
	return plan;
}

static void
test_bridge_same_is_no_change(void **state)
{
	/* the trailing newline PVE keeps on comments and an unwritten autostart
	 * default are no difference */
	json_t *plan = build("bridges:\n  - {name: vmbr1, node: pve, cidr: 10.0.0.1/24, comment: lab, ports: eno2}\n", SNAP);

	assert_int_equal(json_array_size(json_object_get(plan, "changes")), 0);
	json_decref(plan);
}

static void
test_bridge_update_keeps_unset_keys(void **state)
{
	json_t *plan = build("bridges:\n  - {name: vmbr1, node: pve, cidr: 10.0.1.1/24, autostart: false}\n", SNAP);
	const json_t *c = json_array_get(json_object_get(plan, "changes"), 0);
	const json_t *b = json_object_get(c, "bridge");

	assert_int_equal(json_array_size(json_object_get(plan, "changes")), 1);
	assert_string_equal(pl_json_str(c, "action"), "bridge");
	assert_string_equal(pl_json_str(c, "class"), "update");
	assert_true(json_is_true(json_object_get(c, "update")));
	assert_int_equal(json_array_size(json_object_get(c, "diffs")), 2); /* cidr, autostart */
	assert_string_equal(pl_json_str(b, "cidr"), "10.0.1.1/24");
	assert_string_equal(pl_json_str(b, "ports"), "eno2");  /* live, sent again */
	assert_string_equal(pl_json_str(b, "comment"), "lab"); /* without the newline */
	assert_int_equal(pl_json_int(json_object_get(plan, "summary"), "bridge", 0), 1);
	json_decref(plan);
}

static void
test_template_changes(void **state)
{
	json_t *plan = build("guests:\n"
			     "  - {name: c1, type: lxc, node: pve, ostemplate: 'local:vztmpl/a.tar.zst'}\n"
			     "  - {name: c2, type: lxc, node: pve2, ostemplate: 'local:vztmpl/a.tar.zst'}\n"
			     "  - {name: c3, type: lxc, node: pve2, ostemplate: 'local:vztmpl/a.tar.zst'}\n"
			     "  - {name: c4, type: lxc, node: pve2, ostemplate: 'local:vztmpl/zz.tar.zst'}\n"
			     "templates:\n  - {template: b.tar.zst}\n",
			     SNAP);
	const json_t *ch = json_object_get(plan, "changes"), *c;
	size_t i, downloads = 0;

	/* a on pve2 once, b on both nodes; zz is nowhere: blocked */
	json_array_foreach(ch, i, c) {
		if (strcmp(pl_json_str(c, "action"), "template"))
			continue;
		assert_true(i < 3); /* listed first */
		downloads++;
	}
	assert_int_equal(downloads, 3);
	assert_string_equal(pl_json_str(json_array_get(ch, 0), "volid"), "local:vztmpl/a.tar.zst");
	assert_string_equal(pl_json_str(json_array_get(ch, 0), "node"), "pve2");
	json_array_foreach(ch, i, c) {
		if (!strcmp(pl_json_str(c, "guest"), "c1"))
			assert_null(json_object_get(c, "depends_on"));
		if (!strcmp(pl_json_str(c, "guest"), "c2") || !strcmp(pl_json_str(c, "guest"), "c3"))
			assert_string_equal(json_string_value(json_array_get(json_object_get(c, "depends_on"), 0)),
					    "template|pve2|local:vztmpl/a.tar.zst");
	}
	assert_int_equal(pl_json_int(json_object_get(plan, "summary"), "template", 0), 3);
	assert_int_equal(json_array_size(json_object_get(plan, "blocked")), 1);
	json_decref(plan);
}

static void
test_no_template_knowledge_no_change(void **state)
{
	/* without content lists (an old snapshot) nothing is guessed */
	json_t *plan = build("guests:\n  - {name: c1, type: lxc, node: pve, ostemplate: 'local:vztmpl/x.tar.zst'}\n",
			     "{\"nodes\":[{\"node\":\"pve\",\"status\":\"online\"}],\"bridges\":[],\"guests\":[]}");

	assert_int_equal(json_array_size(json_object_get(plan, "changes")), 1);
	assert_int_equal(json_array_size(json_object_get(plan, "blocked")), 0);
	json_decref(plan);
}

static void
test_config_param_checks(void **state)
{
	const struct pl_api_param *p = pl_api_config_param(false, "net3");
	char *e, *fix;

	assert_non_null(p);
	assert_null(pl_api_check_value(p, "virtio,bridge=vmbr0"));
	e = pl_api_check_value(p, "virtio,bridge=vmbr0,tag=5000");
	assert_non_null(e);
	free(e);
	assert_null(pl_api_config_param(false, "digest")); /* steers the request */
	assert_null(pl_api_config_param(true, "numa"));   /* a VM key */
	assert_non_null(pl_api_config_param(true, "mp0"));
	fix = pl_api_config_suggest(false, "ballon");
	assert_string_equal(fix, "balloon");
	free(fix);
}

static int
teardown(void **state)
{
	pl_api_cleanup();
	pl_pfmt_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bridge_same_is_no_change),
		cmocka_unit_test(test_bridge_update_keeps_unset_keys),
		cmocka_unit_test(test_template_changes),
		cmocka_unit_test(test_no_template_knowledge_no_change),
		cmocka_unit_test(test_config_param_checks),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
