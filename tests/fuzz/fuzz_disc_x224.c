/* libFuzzer harness for discovery's X.224 Connection Confirm (RDP) parser. */
#include "core/common.h"
#include "discover/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *o = NULL;

	if (pl_disc_x224_parse(data, size, &o) == PL_DISC_DONE && o == NULL)
		abort();
	json_decref(o);
	o = NULL;
	pl_disc_rmcp_pong(data, size, &o);
	json_decref(o);
	return 0;
}
