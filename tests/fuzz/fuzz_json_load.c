/*
 * Differential libFuzzer harness for pl_json_loadb (yajl building jansson
 * values): whatever the input, it must agree with jansson's json_loadb: both
 * fail, or both give the same value with the same key order. The first byte
 * picks the flags.
 */
#include "core/common.h"
#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t flags[] = {0, JSON_DECODE_ANY, JSON_ALLOW_NUL,
	                               JSON_DECODE_ANY | JSON_ALLOW_NUL};
	json_t *want, *got;
	size_t f;

	if (size < 1)
		return 0;
	f = flags[data[0] % 4];
	want = json_loadb((const char *)data + 1, size - 1, f, NULL);
	got = pl_json_loadb((const char *)data + 1, size - 1, f);
	if ((want == NULL) != (got == NULL))
		__builtin_trap();
	if (want) {
		char *a = pl_json_compact(want), *b = pl_json_compact(got);

		if (strcmp(a, b) != 0)
			__builtin_trap();
		free(a);
		free(b);
	}
	json_decref(want);
	json_decref(got);
	return 0;
}
