/*
 * Differential libFuzzer harness for pl_json_loadb (yajl building jansson
 * values): whatever the input, it must agree with jansson's json_loadb: both
 * fail, or both give the same value with the same key order. The first byte
 * picks the flags. The value is also written indented by pl_json_write_pretty,
 * which must give json_dumps's JSON_INDENT(2) text byte for byte.
 */
#include "core/common.h"
#include "core/buf.h"
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

		char *dump = json_dumps(want, JSON_INDENT(2) | JSON_ENCODE_ANY);
		struct pl_buf pretty;

		if (strcmp(a, b) != 0)
			__builtin_trap();
		pl_buf_init(&pretty, 0);
		if (dump && (pl_json_write_pretty(&pretty, want) != 0 || strcmp(dump, pretty.data)))
			__builtin_trap();
		pl_buf_release(&pretty);
		free(dump);
		free(a);
		free(b);
	}
	json_decref(want);
	json_decref(got);
	return 0;
}
