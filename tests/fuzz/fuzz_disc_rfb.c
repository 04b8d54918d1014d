/* libFuzzer harness for discovery's RFB (VNC) greeting and security-type parsers. */
#include "core/common.h"
#include "discover/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int major = 0, minor = 0;
	json_t *o = NULL;

	if (size == 0)
		return 0;
	pl_disc_rfb_version((const char *)data + 1, size - 1, &major, &minor);
	/* the first byte picks the protocol minor the security part is read as */
	if (pl_disc_rfb_security(data + 1, size - 1, data[0] % 9, &o) == PL_DISC_DONE && o == NULL)
		abort();
	json_decref(o);
	return 0;
}
