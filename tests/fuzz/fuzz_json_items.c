/*
 * Differential libFuzzer harness for pl_json_items (a {"data":[...]} answer
 * read as it arrives): fed in chunks whose size the first byte picks, it
 * never accepts a text pl_json_loadb refuses nor gives another value (but
 * for \u escapes of lone surrogates, see json.c), and it hands on exactly the
 * objects of the list, in order, once each.
 */
#include "core/common.h"
#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
collect(json_t *item, void *arg)
{
	json_array_append(arg, item);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 1;
	json_t *seen, *whole, *got, *list, *objs, *v;
	struct pl_json_items *r;
	size_t chunk, len, i;

	if (size < 1)
		return 0;
	chunk = 1 + data[0] % 64;
	len = size - 1;
	seen = json_array();
	r = pl_json_items_new(collect, seen);
	for (size_t off = 0; off < len; off += chunk)
		if (pl_json_items_feed(r, text + off, len - off < chunk ? len - off : chunk) != 0)
			break;
	got = pl_json_items_end(r);
	whole = pl_json_loadb(text, len, 0);
	if (got && (whole == NULL || !json_equal(whole, got)) && !memmem(text, len, "\\u", 2))
		__builtin_trap();
	if (got) {
		list = json_object_get(got, "data");
		objs = json_array();
		json_array_foreach(json_is_array(list) ? list : NULL, i, v)
			if (json_is_object(v))
				json_array_append(objs, v);
		if (!json_equal(objs, seen))
			__builtin_trap();
		json_decref(objs);
	}
	json_decref(whole);
	json_decref(got);
	json_decref(seen);
	return 0;
}
