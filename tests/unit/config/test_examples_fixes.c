/* Unit tests for config/ behaviour the seed examples rely on: `defaults:`
 * overriding schema defaults, x-* anchor keys, hostname checks, host ports
 * unique per guest, and the efidisk/tpm keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/json.h"

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
has_diag(const struct pl_diags *d, const char *needle)
{
	for (size_t i = 0; i < d->n; i++) {
		char *s = pl_diag_line(&d->items[i]);
		bool hit = strstr(s, needle) != NULL;

		free(s);
		if (hit)
			return true;
	}
	return false;
}

static void
test_defaults_override_schema_defaults(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("defaults:\n  type: lxc\n  state: stopped\n"
				   "  ostemplate: local:vztmpl/x.tar.zst\n"
				   "  clone: {template: t, full: false}\n"
				   "  features: {nesting: true}\n"
				   "guests:\n  - name: a\n"
				   "  - name: b\n    type: vm\n    state: running\n"
				   "    ostemplate: ~\n",
				   &d);
	const json_t *a, *b;

	(void)state;
	assert_non_null(c);
	a = json_array_get(pl_config_guests(c), 0);
	b = json_array_get(pl_config_guests(c), 1);
	/* a writes nothing: every default applies, including type and state */
	assert_string_equal(pl_json_str(a, "type"), "lxc");
	assert_string_equal(pl_json_str(a, "state"), "stopped");
	assert_true(json_is_true(json_object_get(json_object_get(a, "features"), "nesting")));
	/* b's own values win */
	assert_string_equal(pl_json_str(b, "type"), "vm");
	assert_string_equal(pl_json_str(b, "state"), "running");
	pl_config_free(c);
	pl_diags_release(&d);
}

static void
test_defaults_fill_unwritten_subkeys(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("defaults:\n  clone: {template: t, full: false}\n"
				   "guests:\n  - name: a\n    clone: {template: u}\n",
				   &d);
	const json_t *clone;

	(void)state;
	assert_int_equal(d.nerrors, 0);
	clone = json_object_get(json_array_get(pl_config_guests(c), 0), "clone");
	assert_string_equal(pl_json_str(clone, "template"), "u");
	assert_true(json_is_false(json_object_get(clone, "full")));
	pl_config_free(c);
	pl_diags_release(&d);
}

static void
test_merged_keys_beat_defaults(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("x-base: &base\n  type: lxc\n  cores: 3\n"
				   "defaults:\n  type: vm\n  cores: 1\n  memory: 2G\n"
				   "guests:\n  - name: a\n    vmid: 100\n    <<: *base\n",
				   &d);
	const json_t *a;

	(void)state;
	assert_int_equal(d.nerrors, 0);
	a = json_array_get(pl_config_guests(c), 0);
	/* keys brought in by a merge key count as written by the guest */
	assert_string_equal(pl_json_str(a, "type"), "lxc");
	assert_int_equal(pl_json_int(a, "cores", 0), 3);
	assert_int_equal(pl_json_int(a, "memory", 0), 2048);
	pl_config_free(c);
	pl_diags_release(&d);
}

static void
test_x_keys_hold_anchors(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("x-base: &base\n  memory: 1G\n"
				   "guests:\n  - name: a\n    <<: *base\n",
				   &d);

	(void)state;
	assert_int_equal(d.nerrors, 0);
	assert_null(pl_config_get(c, "/x-base"));
	assert_int_equal(pl_json_int(json_array_get(pl_config_guests(c), 0), "memory", 0), 1024);
	pl_config_free(c);
	pl_diags_release(&d);
	/* only at the top level */
	c = load("guests:\n  - name: a\n    x-note: 1\n", &d);
	assert_true(has_diag(&d, "guests[0].x-note: unknown key"));
	pl_config_free(c);
	pl_diags_release(&d);
}

static void
test_hostnames(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("guests:\n"
				   "  - name: immich_backup\n    type: lxc\n    vmid: 117\n"
				   "  - name: -bad\n"
				   "  - name: ok-1.lan\n"
				   "  - name: a..b\n",
				   &d);

	(void)state;
	assert_int_equal(d.nerrors, 3);
	assert_true(has_diag(&d, "t.yaml:2:5: error: guests[0].name: 'immich_backup' is not a "
				 "valid container hostname (did you mean 'immich-backup'?)"));
	assert_true(has_diag(&d, "guests[1].name: '-bad' is not a valid VM name"));
	assert_true(has_diag(&d, "guests[3].name: 'a..b' is not a valid VM name"));
	pl_config_free(c);
	pl_diags_release(&d);
}

static void
test_host_ports_unique_per_guest(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("guests:\n"
				   "  - name: a\n    services:\n"
				   "      - {name: x, port: 7001, host_port: 7001}\n"
				   "  - name: b\n    services:\n"
				   "      - {name: x, port: 7001, host_port: 7001}\n"
				   "      - {name: y, port: 7002, host_port: 7001}\n",
				   &d);

	(void)state;
	assert_int_equal(d.nerrors, 1);
	assert_true(has_diag(&d, "t.yaml:8:31: error: guests[1].services[1].host_port: duplicate "
				 "host port '7001' (first used at line 7)"));
	pl_config_free(c);
	pl_diags_release(&d);
}

static void
test_efidisk_tpm(void **state)
{
	struct pl_diags d;
	struct pl_config *c = load("guests:\n"
				   "  - name: w\n    bios: ovmf\n"
				   "    efidisk: {storage: local-lvm}\n"
				   "    tpm: {storage: local-lvm}\n"
				   "  - name: c\n    type: lxc\n    vmid: 101\n"
				   "    tpm: {storage: local-lvm}\n",
				   &d);
	const json_t *w;

	(void)state;
	assert_int_equal(d.nerrors, 1);
	assert_true(has_diag(&d, "guests[1].tpm: only for VMs"));
	w = json_array_get(pl_config_guests(c), 0);
	assert_string_equal(pl_json_str(json_object_get(w, "efidisk"), "efitype"), "4m");
	assert_string_equal(pl_json_str(json_object_get(w, "tpm"), "version"), "v2.0");
	pl_config_free(c);
	pl_diags_release(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_override_schema_defaults),
		cmocka_unit_test(test_defaults_fill_unwritten_subkeys),
		cmocka_unit_test(test_merged_keys_beat_defaults),
		cmocka_unit_test(test_x_keys_hold_anchors),
		cmocka_unit_test(test_hostnames),
		cmocka_unit_test(test_host_ports_unique_per_guest),
		cmocka_unit_test(test_efidisk_tpm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
