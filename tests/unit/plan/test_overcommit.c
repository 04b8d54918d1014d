/* Unit tests for validate's over-commitment warning (plan/check.c): a
 * config guest counts once even where it replaces or restates a live guest,
 * stopped guests, templates and offline nodes do not count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/json.h"
#include "plan/check.h"

/* pve: 8 GiB, running a 2 GiB guest (100, "web") and a 4 GiB template;
 * pve2: offline. */
static const char *SNAP =
	"{\"nodes\":[{\"node\":\"pve\",\"status\":\"online\",\"maxmem\":8589934592},"
	"{\"node\":\"pve2\",\"status\":\"offline\",\"maxmem\":0}],"
	"\"storages\":[],\"bridges\":[{\"iface\":\"vmbr0\",\"node\":\"pve\"}],"
	"\"guests\":[{\"vmid\":100,\"name\":\"web\",\"node\":\"pve\",\"type\":\"lxc\","
	"\"status\":\"running\",\"maxmem\":2147483648},"
	"{\"vmid\":9000,\"name\":\"tmpl\",\"node\":\"pve\",\"type\":\"qemu\",\"template\":1,"
	"\"status\":\"stopped\",\"maxmem\":4294967296}]}";

/* The over-commitment warnings validate gives for cfgtext against SNAP. */
static size_t
warnings(const char *cfgtext, char *first, size_t len)
{
	struct pl_config *c = NULL;
	struct pl_diags d;
	json_t *snap = json_loads(SNAP, 0, NULL);
	size_t n = 0;

	assert_non_null(snap);
	pl_diags_init(&d);
	assert_int_equal(pl_config_load_string("t.yaml", cfgtext, strlen(cfgtext), &c, &d), 0);
	pl_plan_check_cluster(c, snap, &d);
	first[0] = '\0';
	for (size_t i = 0; i < d.n; i++) {
		char *line = pl_diag_line(&d.items[i]);

		if (strstr(line, "GiB of memory")) {
			if (n++ == 0)
				snprintf(first, len, "%s", line);
		}
		free(line);
	}
	pl_diags_release(&d);
	pl_config_free(c);
	json_decref(snap);
	return n;
}

static void
test_counts_each_guest_once(void **state)
{
	char w[512];

	(void)state;
	/* web restated at 7 GiB: 7, not 2 + 7 */
	assert_int_equal(warnings("guests:\n  - {name: web, type: lxc, vmid: 100, memory: 7G}\n", w,
				  sizeof(w)),
			 0);
	/* 2 GiB live + 7 GiB new */
	assert_int_equal(warnings("guests:\n  - {name: db, type: lxc, node: pve, memory: 7G,\n"
				  "      ostemplate: 'local:vztmpl/a.tar.zst'}\n",
				  w, sizeof(w)),
			 1);
	assert_non_null(strstr(w, "running guests on node 'pve' need 9.00 GiB of memory, more than "
				  "its 8.00 GiB (1 of this config's guests take 7.00 GiB of it;"));
	/* the same guest stopped, and web stopped through the config: nothing */
	assert_int_equal(
		warnings("guests:\n  - {name: db, type: lxc, node: pve, memory: 7G, state: "
			 "stopped,\n      ostemplate: 'local:vztmpl/a.tar.zst'}\n",
			 w, sizeof(w)),
		0);
	assert_int_equal(warnings("guests:\n  - {name: web, type: lxc, vmid: 100, state: stopped}\n"
				  "  - {name: db, type: lxc, node: pve, memory: 7G,\n"
				  "      ostemplate: 'local:vztmpl/a.tar.zst'}\n",
				  w, sizeof(w)),
			 0);
	/* no node and one online node of 8 GiB (pve2 is offline) */
	assert_int_equal(warnings("guests:\n  - {name: a, memory: 4G}\n  - {name: b, memory: 3G}\n",
				  w, sizeof(w)),
			 1);
	assert_non_null(strstr(w,
			       "running guests need 9.00 GiB of memory, more than the 8.00 GiB "
			       "of all online nodes together (2 of this config's guests, 7.00 GiB "
			       "of them on no node yet)"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_each_guest_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
