/*
 * Differential libFuzzer harness for pl_json_load_list: whatever the input,
 * the threaded parse must agree with jansson's json_loadb on the whole text
 * (both fail, or both succeed with equal values). The first byte picks the
 * number of pieces.
 */
#include "core/common.h"
#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *whole, *split;
	int threads;

	if (size < 1)
		return 0;
	threads = 1 + data[0] % 8;
	whole = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
	split = pl_json_load_list((const char *)data + 1, size - 1, threads);
	if ((whole == NULL) != (split == NULL) || (whole && !json_equal(whole, split)))
		__builtin_trap();
	json_decref(whole);
	json_decref(split);
	return 0;
}
