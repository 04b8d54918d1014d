/* Unit tests for core/json: the fast writer matches json_dumps byte for byte,
 * the threaded list parse matches json_loadb. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

static void
same_as_jansson(const json_t *v)
{
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	char *want_sorted = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	char *got = pl_json_compact(v), *got_sorted = pl_json_canonical(v);

	assert_non_null(want);
	assert_string_equal(got, want);
	assert_string_equal(got_sorted, want_sorted);
	free(want);
	free(want_sorted);
	free(got);
	free(got_sorted);
}

static void
test_scalars(void **state)
{
	static const double reals[] = {0.0,  -0.0,         1.0,       0.1418, 1e5,
	                               1e-5, 123456789e20, -2.5e-300, 1e300,  3.14159,
	                               1e16, 1e17,         0.1 + 0.2};
	static const json_int_t ints[] = {0, 1, -1, 42, 9007199254740993LL, INT64_MIN, INT64_MAX};

	for (size_t i = 0; i < PL_ARRAY_LEN(reals); i++) {
		json_t *r = json_real(reals[i]);

		same_as_jansson(r);
		json_decref(r);
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(ints); i++) {
		json_t *n = json_integer(ints[i]);

		same_as_jansson(n);
		json_decref(n);
	}
	json_t *t = json_pack("[b,b,n]", 1, 0);
	same_as_jansson(t);
	json_decref(t);
}

static void
test_strings(void **state)
{
	static const char *const strs[] = {
	    "",
	    "plain",
	    "quote\" backslash\\ slash/",
	    "\b\f\n\r\t\x01\x1f\x7f end",
	    "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80",
	    "virtio=BC:24:11:07:6A:5E,bridge=vmbr0",
	};

	for (size_t i = 0; i < PL_ARRAY_LEN(strs); i++) {
		json_t *s = json_string(strs[i]);

		assert_non_null(s);
		same_as_jansson(s);
		json_decref(s);
	}
	json_t *nul = json_stringn("a\0b", 3);
	same_as_jansson(nul);
	json_decref(nul);
}

static void
test_containers(void **state)
{
	json_t *v = json_loads("{\"vmid\":100,\"name\":\"vm100\",\"cpu\":0.1418,\"config\":"
	                       "{\"scsi0\":\"local-lvm:vm-100-disk-0,size=32G\",\"cores\":2,"
	                       "\"boot\":\"order=scsi0;net0\",\"b\":[],\"a\":{},\"ab\":null,"
	                       "\"aa\":[1,\"x\",{\"z\":1,\"y\":[true,false]}]},\"z\":\"\",\"\":1}",
	                       0, NULL);
	struct pl_buf b;

	assert_non_null(v);
	same_as_jansson(v);
	/* Appending keeps what the buffer held; an over-cap value appends nothing. */
	pl_buf_init(&b, 16);
	assert_int_equal(pl_buf_addstr(&b, "x="), 0);
	assert_int_equal(pl_json_write(&b, json_object_get(v, "vmid"), true), 0);
	assert_string_equal(b.data, "x=100");
	assert_int_equal(pl_json_write(&b, v, true), PL_ETOOBIG);
	assert_string_equal(b.data, "x=100");
	pl_buf_release(&b);
	json_decref(v);
}

static void
same_parse(const char *text, int threads)
{
	json_t *whole = json_loadb(text, strlen(text), JSON_DECODE_ANY, NULL);
	json_t *split = pl_json_load_list(text, strlen(text), threads);

	if (whole == NULL)
		assert_null(split);
	else
		assert_true(json_equal(whole, split));
	json_decref(whole);
	json_decref(split);
}

/* A list parsed in pieces on several threads equals jansson's whole parse;
 * what is not a {"data":[...]} document, or not JSON, behaves as jansson. */
static void
test_load_list(void **state)
{
	struct pl_buf b;
	static const char *const odd[] = {
	    "{\"data\":[1,,2,3,4,5,6,7,8,9]}",
	    "{\"data\":[1,2,3,4,5,6,7,8,9,]}",
	    "{\"data\":[,1,2,3,4,5,6,7,8,9]}",
	    "{\"data\":[1,2,3,4,5,6,7,8,9]",
	    "{\"data\":[1,2,3,4,5,6,7,8,9]}x",
	    "{\"data\":[1,2,3,4,5,6,7,8,9],\"n\":1}",
	    "{\"data\":{\"a\":[1,2]}}",
	    "[1,2,3,4,5,6,7,8,9]",
	    "{\"data\":[1 2,3,4,5,6,7,8,9]}",
	    "{\"data\":[\"a,b\",\"c]\",\"d\\\"\",4,5,6,7,8,9]}",
	    "{\"data\":[]}",
	    " {\"data\" : [ 1 , 2 , 3 , 4 , 5 , 6 ] } ",
	    "",
	    "{\"data\":[\"\\u0000\",1,2,3,4,5,6,7]}",
	};

	pl_buf_init(&b, 0);
	pl_buf_addstr(&b, "{\"data\":[");
	for (int i = 0; i < 3000; i++)
		pl_buf_addf(&b,
		            "%s{\"id\":\"qemu/%d\",\"name\":\"a,b]}{\\\"%d\",\"n\":[%d,{\"x\":[]}],"
		            "\"cpu\":0.%d}",
		            i ? "," : "", i, i, i, i);
	pl_buf_addstr(&b, "]}");
	for (int t = 1; t <= 5; t++)
		same_parse(b.data, t);
	pl_buf_release(&b);
	for (size_t i = 0; i < PL_ARRAY_LEN(odd); i++)
		for (int t = 2; t <= 4; t++)
			same_parse(odd[i], t);
}

struct items_seen {
	json_t *items; /* what on_item was given, in order */
};

static void
on_item(json_t *item, void *arg)
{
	struct items_seen *seen = arg;

	json_array_append(seen->items, item);
}

/* TEXT read CHUNK bytes at a time: the document pl_json_loadb reads (or NULL
 * where it fails, or where the reader refuses more than it), and each object
 * of its list handed on once, in order. */
static void
same_items(const char *text, size_t chunk, bool refused)
{
	struct items_seen seen = { json_array() };
	struct pl_json_items *r = pl_json_items_new(on_item, &seen);
	size_t len = strlen(text);
	json_t *want = pl_json_loadb(text, len, 0), *got, *list, *objs, *v;
	int fed = 0;
	size_t i;

	for (size_t off = 0; off < len && fed == 0; off += chunk)
		fed = pl_json_items_feed(r, text + off, len - off < chunk ? len - off : chunk);
	got = pl_json_items_end(r);
	if (want == NULL || refused) {
		assert_null(got);
	} else {
		assert_non_null(got);
		assert_true(json_equal(want, got));
		/* the objects of the list, in order, and nothing else */
		list = json_object_get(want, "data");
		objs = json_array();
		json_array_foreach(json_is_array(list) ? list : NULL, i, v)
			if (json_is_object(v))
				json_array_append(objs, v);
		assert_true(json_equal(objs, seen.items));
		json_decref(objs);
	}
	json_decref(want);
	json_decref(got);
	json_decref(seen.items);
}

/* A list read as it arrives, in chunks of any size, gives the document
 * pl_json_loadb gives, and hands on each object of the list once. */
static void
test_items(void **state)
{
	struct pl_buf b;
	static const char *const odd[] = {
	    "{\"data\":[{\"a\":1},{\"b\":[{\"c\":2}]},3,\"x\",{}]}",
	    "{\"n\":{\"data\":[{\"a\":1}]},\"data\":[{\"b\":2}]}",
	    "{\"data\":{\"a\":{\"b\":1}}}",
	    "{\"data\":[{\"a\":1}]}x",
	    "{\"data\":[{\"a\":1}]}  \n",
	    "{\"data\":[{\"a\":1},]}",
	    "{\"data\":[{\"a\":1}",
	    "{\"data\":[{\"name\":\"caf\xc3\xa9\",\"k\\u00e9y\":\"\\u00e9\"}]}",
	    "{\"data\":[{\"bad\":\"\xff\"}]}",
	    "{\"data\":[]}",
	    "[{\"a\":1}]",
	    "",
	    "{\"data\":1,\"data\":[{\"b\":2}]}",
	    "{\"data\":[{\"a\":1}],\"x\":{\"data\":2}}",
	    "{\"data\":[{\"a\":\"\v\"}]}",
	};
	/* what the reader refuses though jansson reads it */
	static const char *const refused[] = {
	    "{\"data\":[{\"a\":1}],\"data\":[{\"b\":2}]}",
	    "{\"data\":[{\"a\":1}]\f}",
	    "{\"data\":[{\"a\":\"\\u0000\"}]}",
	};

	(void)state;
	pl_buf_init(&b, 0);
	pl_buf_addstr(&b, "{\"data\":[");
	for (int i = 0; i < 500; i++)
		pl_buf_addf(&b, "%s{\"id\":\"qemu/%d\",\"name\":\"vm%d\",\"cpu\":0.%d,\"tags\":[%d]}",
			    i ? "," : "", i, i, i, i);
	pl_buf_addstr(&b, "]}");
	for (size_t chunk = 1; chunk <= 4096; chunk *= 4)
		same_items(b.data, chunk, false);
	pl_buf_release(&b);
	for (size_t i = 0; i < PL_ARRAY_LEN(odd); i++)
		for (size_t chunk = 1; chunk <= 64; chunk *= 2)
			same_items(odd[i], chunk, false);
	for (size_t i = 0; i < PL_ARRAY_LEN(refused); i++)
		for (size_t chunk = 1; chunk <= 64; chunk *= 2)
			same_items(refused[i], chunk, true);
}

/* pl_json_loadb gives json_loadb's value, in the same key order, or fails
 * where it fails, under each flag it takes. */
static void
same_load(const char *text, size_t len)
{
	static const size_t flags[] = { 0, JSON_DECODE_ANY, JSON_ALLOW_NUL,
					JSON_DECODE_ANY | JSON_ALLOW_NUL };

	for (size_t f = 0; f < PL_ARRAY_LEN(flags); f++) {
		json_t *want = json_loadb(text, len, flags[f], NULL);
		json_t *got = pl_json_loadb(text, len, flags[f]);

		if (want == NULL) {
			assert_null(got);
			continue;
		}
		assert_non_null(got);
		char *a = pl_json_compact(want), *b = pl_json_compact(got);

		assert_string_equal(a, b);
		free(a);
		free(b);
		json_decref(want);
		json_decref(got);
	}
}

static void
test_loadb(void **state)
{
	static const char *const texts[] = {
	    "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\"}",
	    "[0,-0,1,-1,9223372036854775807,-9223372036854775808]",
	    "[9223372036854775808]",
	    "[999999999999999999,-999999999999999999,1000000000000000000]",
	    "[9999999999999999999]",
	    "[-9223372036854775807,9223372036854775806,18446744073709551616]",
	    "[-9223372036854775809]",
	    "[0.5,-0.0,1e5,1E+5,2.5e-3,0.1276,1.7976931348623157e308]",
	    "[1e400]",
	    "[-1e400]",
	    "[1e-400]",
	    "[01]",
	    "[1.]",
	    "[.5]",
	    "[-]",
	    "[1e]",
	    "[\"tab\\there\\n\\\"q\\\" \\/ \\\\\"]",
	    "[\"\\u00e9\\ud83d\\ude00\"]",
	    "[\"\\ud83d\"]",
	    "[\"a\\u0000b\"]",
	    "{\"a\\u0000\":1}",
	    "[\"\xc3\xa9\"]",
	    "[\"\xc0\x80\"]",
	    "[\"\xed\xa0\x80\"]",
	    "[\"\xff\"]",
	    "{\"\xc0\x80\":1}",
	    "[\"a\tb\"]",
	    "[1,\v2]",
	    "[1,\f2]",
	    " \t\r\n[1] \n",
	    "[1] x",
	    "[1][2]",
	    "{\"a\":1,\"b\":2,\"a\":3}",
	    "{\"a\":1,}",
	    "[1,]",
	    "{\"a\"}",
	    "{1:2}",
	    "1",
	    "\"s\"",
	    "null",
	    "",
	    "   ",
	    "[/* c */1]",
	    "[nul]",
	    "[\"unterminated]",
	    " {} \"d:[y}]} ] } ", /* found by fuzz_json_load: yajl let it pass */
	    "{} [",
	    "{\"data\":[{\"id\":\"qemu/100\",\"cpu\":0.0843,\"tags\":\"a;b\"}]}",
	};
	struct pl_buf b;

	for (size_t i = 0; i < PL_ARRAY_LEN(texts); i++)
		same_load(texts[i], strlen(texts[i]));
	same_load("[1,\0 2]", 6);
	same_load("{\"a\":[1,1\0]}", 12); /* found by fuzz_json_load: jansson skips NULs */
	/* jansson's depth limit: a value inside 2047 arrays parses, inside 2048 not. */
	for (int depth = 2047; depth <= 2048; depth++) {
		pl_buf_init(&b, 0);
		for (int i = 0; i < depth; i++)
			pl_buf_addstr(&b, "[");
		pl_buf_addstr(&b, "1");
		for (int i = 0; i < depth; i++)
			pl_buf_addstr(&b, "]");
		same_load(b.data, b.len);
		pl_buf_release(&b);
	}
}

/* An object without some members: the others in jansson's order, as
 * pl_json_compact writes them. */
static void
test_compact_without(void **state)
{
	static const char *const skip[] = { "name", "config", "absent" };
	json_t *v = json_pack("{s:i,s:s,s:f,s:{s:i},s:[i,i],s:n}", "vmid", 100, "name", "web",
			      "cpu", 0.25, "config", "memory", 512, "net", 1, 2, "lock");
	json_t *rest = json_pack("{s:i,s:f,s:[i,i],s:n}", "vmid", 100, "cpu", 0.25, "net", 1,
				 2, "lock");
	char *got = pl_json_compact_without(v, skip, PL_ARRAY_LEN(skip));
	char *want = pl_json_compact(rest);

	assert_string_equal(got, want);
	free(got);
	free(want);
	got = pl_json_compact_without(v, NULL, 0);
	want = pl_json_compact(v);
	assert_string_equal(got, want);
	free(got);
	free(want);
	json_decref(rest);
	json_decref(v);
}

/* The pretty form is byte for byte what jansson writes with JSON_INDENT(2). */
static void
test_pretty(void **state)
{
	static const char *const texts[] = {
	    "{}",
	    "[]",
	    "42",
	    "\"x\"",
	    "null",
	    "[true,false,null,-7,0.5,1e300,-0.0,\"\"]",
	    "{\"a\":{},\"b\":[],\"c\":[{}],\"d\":[[1,[2,{\"e\":[]}]]]}",
	    "{\"z\":1,\"a\":2,\"m\":{\"y\":\"tab\\tq\\\"/\\u0001\",\"x\":\"\\u00e9\\ud83d\\ude00\"}}",
	    ("{\"changes\":[{\"vmid\":100,\"name\":\"vm100\",\"kind\":\"discovered\"}],"
	     "\"seconds\":0.544680257,\"dry_run\":false}"),
	};

	(void)state;
	for (size_t i = 0; i < PL_ARRAY_LEN(texts); i++) {
		json_t *v = json_loads(texts[i], JSON_DECODE_ANY, NULL);
		char *want = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
		struct pl_buf b;

		assert_non_null(v);
		pl_buf_init(&b, 0);
		assert_int_equal(pl_json_write_pretty(&b, v), 0);
		assert_string_equal(b.data, want);
		pl_buf_release(&b);
		free(want);
		json_decref(v);
	}
}

static void
test_sha256(void **state)
{
	char out[65];
	json_t *v = json_pack("{s:i,s:s}", "b", 1, "a", "x");

	pl_sha256_hex("abc", 3, out);
	assert_string_equal(out,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* The hash is of the canonical text {"a":"x","b":1}. */
	pl_json_sha256(v, out);
	char want[65];
	pl_sha256_hex("{\"a\":\"x\",\"b\":1}", 15, want);
	assert_string_equal(out, want);
	json_decref(v);
}

/* A string, key or bare token over PL_JSON_MAX_TOKEN is refused as it
 * arrives, whatever the chunks; one at the cap passes. */
static void
test_items_token_cap(void **state)
{
	size_t n = PL_JSON_MAX_TOKEN;
	const char *heads[] = { "{\"data\":[{\"name\":\"", "{\"data\":[{\"", "{\"data\":[1" };

	(void)state;
	for (size_t h = 0; h < PL_ARRAY_LEN(heads); h++) {
		for (size_t extra = 0; extra < 2; extra++) {
			struct items_seen seen = { json_array() };
			struct pl_json_items *r = pl_json_items_new(on_item, &seen);
			size_t len = n + extra - (h == 2);
			char *fill = pl_malloc(len);
			int fed;

			memset(fill, h == 2 ? '1' : 'a', len);
			fed = pl_json_items_feed(r, heads[h], strlen(heads[h]));
			for (size_t off = 0; off < len && fed == 0; off += 4093)
				fed = pl_json_items_feed(r, fill + off, len - off < 4093 ? len - off : 4093);
			assert_int_equal(fed, extra ? -1 : 0);
			json_decref(pl_json_items_end(r));
			json_decref(seen.items);
			free(fill);
		}
	}
	/* escapes count, and an escaped quote does not end the string */
	{
		struct items_seen seen = { json_array() };
		struct pl_json_items *r = pl_json_items_new(on_item, &seen);
		const char *t = "{\"data\":[{\"a\":\"x\\\"y\"}]}";
		json_t *doc;

		assert_int_equal(pl_json_items_feed(r, t, strlen(t)), 0);
		doc = pl_json_items_end(r);
		assert_string_equal(json_string_value(json_object_get(
			json_array_get(json_object_get(doc, "data"), 0), "a")), "x\"y");
		json_decref(doc);
		json_decref(seen.items);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scalars),    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_containers), cmocka_unit_test(test_load_list),
	    cmocka_unit_test(test_items),      cmocka_unit_test(test_items_token_cap),
	    cmocka_unit_test(test_loadb),      cmocka_unit_test(test_compact_without),
	    cmocka_unit_test(test_sha256),     cmocka_unit_test(test_pretty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
