/* libFuzzer harness for discovery's SSH identification-line parser. */
#include "core/common.h"
#include "discover/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *o = NULL;

	if (pl_disc_ssh_parse((const char *)data, size, &o) == PL_DISC_DONE && o == NULL)
		abort();
	json_decref(o);
	return 0;
}
