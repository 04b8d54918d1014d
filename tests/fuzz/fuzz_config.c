/*
 * libFuzzer harness for pvelab.yaml: the YAML loader, the schema walk with
 * defaults and merge keys, the cross-object checks, and the desired model of
 * every guest that loads -- all of which see whatever a user's file holds.
 * Run with LSAN_OPTIONS=suppressions=tests/lsan.supp (libfyaml's own leak).
 */
#include "core/common.h"
#include "config/config.h"
#include "core/diag.h"
#include "model/guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_config *c = NULL;
	struct pl_diags d;
	const json_t *g;
	size_t i;

	pl_diags_init(&d);
	pl_config_load_string("fuzz.yaml", (const char *)data, size, &c, &d);
	if (c) /* as `pvelab validate` does, even when loading found errors */
		pl_config_check(c, &d);
	if (c && d.nerrors == 0) { /* what plan builds from a valid config */
		json_array_foreach(pl_config_guests(c), i, g) {
			struct pl_model_guest m;

			if (pl_model_guest_from_config(g, &m, NULL) == 0)
				pl_model_guest_release(&m);
		}
	}
	for (size_t k = 0; k < d.n; k++)
		free(pl_diag_line(&d.items[k]));
	pl_config_free(c);
	pl_diags_release(&d);
	return 0;
}
