/* Unit tests for model/guest with the keys the homeserver example needs:
 * EFI vars and TPM state disks (efidisk, tpm), and disks imported from an
 * image (import-from) -- desired configs and comparisons without phantom
 * diffs against what a real PVE reports after creating them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/json.h"
#include "model/guest.h"

static void
test_efidisk_tpm_desired(void **state)
{
	json_t *g = json_loads("{\"name\":\"win\",\"type\":\"vm\",\"bios\":\"ovmf\","
			       "\"efidisk\":{\"storage\":\"local-lvm\",\"efitype\":\"4m\","
			       "\"pre_enrolled_keys\":true},"
			       "\"tpm\":{\"storage\":\"local-lvm\",\"version\":\"v2.0\"}}",
			       0, NULL);
	struct pl_model_guest m;

	(void)state;
	assert_int_equal(pl_model_guest_from_config(g, &m, NULL), 0);
	assert_string_equal(pl_json_str(m.config, "efidisk0"),
			    "local-lvm:1,efitype=4m,pre-enrolled-keys=1");
	assert_string_equal(pl_json_str(m.config, "tpmstate0"), "local-lvm:1,version=v2.0");
	pl_model_guest_release(&m);
	json_decref(g);
}

static void
expect_equal(const char *key, const char *desired, const char *actual)
{
	struct pl_model_cmp c;

	pl_model_compare(false, key, desired, actual, true, NULL, &c);
	if (!c.equal)
		fail_msg("%s: '%s' vs '%s': %s", key, desired, actual, c.note ? c.note : "differs");
	pl_model_cmp_release(&c);
}

static void
test_efidisk_tpm_compare(void **state)
{
	struct pl_model_cmp c;

	(void)state;
	/* PVE sizes these itself: 528K or 4M for OVMF vars, 4M for a TPM */
	expect_equal("efidisk0", "local-lvm:1,efitype=4m,pre-enrolled-keys=1",
		     "local-lvm:vm-102-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M");
	expect_equal("tpmstate0", "local-lvm:1,version=v2.0",
		     "local-lvm:vm-102-disk-2,size=4M,version=v2.0");
	/* a real option change is still seen, and is no resize */
	pl_model_compare(false, "efidisk0", "local-lvm:1,efitype=4m,pre-enrolled-keys=1",
			 "local-lvm:vm-102-disk-1,efitype=4m,pre-enrolled-keys=0,size=4M", true,
			 NULL, &c);
	assert_false(c.equal);
	assert_false(c.resize);
	assert_false(c.blocked);
	pl_model_cmp_release(&c);
}

static void
test_import_from_compare(void **state)
{
	(void)state;
	/* PVE drops import-from once the image is imported */
	expect_equal("scsi0", "local-lvm:32,discard=on,import-from=local:import/haos.qcow2,ssd=1",
		     "local-lvm:vm-100-disk-0,discard=on,size=32G,ssd=1");
	/* and a simulator that keeps it is no different */
	expect_equal("scsi0", "local-lvm:32,discard=on,import-from=local:import/haos.qcow2,ssd=1",
		     "local-lvm:vm-100-disk-0,discard=on,import-from=local:import/haos.qcow2,"
		     "size=32G,ssd=1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_efidisk_tpm_desired),
		cmocka_unit_test(test_efidisk_tpm_compare),
		cmocka_unit_test(test_import_from_compare),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
