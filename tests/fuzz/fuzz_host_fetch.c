/* libFuzzer harness for the parser of what a node sends back for the SSH
 * host reader's prefetch (host/fetch.c); the marker is fixed so that the
 * fuzzer can find it. */
#include "core/common.h"
#include "host/reader.h"

#define MARKER "@@pvelab-000000000000000000000000"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *cache = pl_host_fetch_parse((const char *)data, size, MARKER), *e;
	const char *path;

	/* what the reader relies on: absolute paths, one of four kinds, file
	 * data within the cap, a list of names */
	json_object_foreach(cache, path, e) {
		const char *t = json_string_value(json_object_get(e, "t"));

		if (!pl_host_path_ok(path) || t == NULL || strlen(t) != 1 || !strchr("FLDN", *t))
			abort();
		if (*t == 'F' && json_string_length(json_object_get(e, "data")) > PL_HOST_READ_MAX)
			abort();
		if (*t == 'D' && !json_is_array(json_object_get(e, "names")))
			abort();
		if (*t == 'L' && !json_is_string(json_object_get(e, "target")))
			abort();
	}
	json_decref(cache);
	return 0;
}
