/*
 * Helpers over jansson for the shapes Proxmox sends: numbers that arrive as
 * strings on older versions, "" for absent values, canonical dumps for hashing.
 */
#ifndef PL_CORE_JSON_H
#define PL_CORE_JSON_H

#include <jansson.h>

#include "core/common.h"

struct pl_buf;

/* Parse len bytes; on error sets *errmsg to "line L col C: reason". */
json_t *pl_json_parse(const char *data, size_t len, char **errmsg);
/* json_loadb(data, len, flags, NULL), several times faster (yajl reads the
 * text); flags: 0, JSON_DECODE_ANY, JSON_ALLOW_NUL. */
json_t *pl_json_loadb(const char *data, size_t len, size_t flags);

/* Parse like json_loadb (JSON_DECODE_ANY), with the elements of a
 * {"data":[...]} list split among threads threads: for the large lists of
 * the Proxmox API. NULL when it is not JSON. */
json_t *pl_json_load_list(const char *data, size_t len, int threads);

/* Reading a {"data":[...]} answer as it arrives: on_item gets each object of
 * the list (borrowed: the document holds it) as soon as it is complete. feed
 * returns -1 once the text cannot be JSON; end (which frees r) gives the
 * whole document, or NULL when it was not one. */
struct pl_json_items;
/* The longest string, key or bare token pl_json_items_feed reads (1 MiB). */
#define PL_JSON_MAX_TOKEN ((size_t)1 << 20)
typedef void (*pl_json_item_cb)(json_t *item, void *arg);
struct pl_json_items *pl_json_items_new(pl_json_item_cb on_item, void *arg);
int pl_json_items_feed(struct pl_json_items *r, const char *data, size_t len);
json_t *pl_json_items_end(struct pl_json_items *r);

/* Borrowed string member, or NULL when absent, null or not a string. */
const char *pl_json_str(const json_t *obj, const char *key);
/* A JSON string of s (NULL: ""); bytes that are not valid UTF-8 become '?'. */
json_t *pl_json_string_lossy(const char *s);
/* String member or dflt. */
const char *pl_json_str_or(const json_t *obj, const char *key, const char *dflt);
/* The first object of list whose string member key is value (nocase:
 * compared as strcasecmp does), or NULL. */
const json_t *pl_json_find(const json_t *list, const char *key, const char *value, bool nocase);
/* Integer member, accepting "123" strings and reals; dflt when absent or unparseable. */
long long pl_json_int(const json_t *obj, const char *key, long long dflt);
/* Real member, accepting integers and numeric strings. */
double pl_json_num(const json_t *obj, const char *key, double dflt);
/* Boolean member, accepting 0/1, "0"/"1", true/false. */
bool pl_json_bool(const json_t *obj, const char *key, bool dflt);
/* The values of object obj as an array sorted by their integer member key
 * (pl_json_int), smallest first. New reference. */
json_t *pl_json_values_sorted(const json_t *obj, const char *key);

/* Compact JSON with sorted keys: the canonical form used for hashes and diffs. Caller frees. */
char *pl_json_canonical(const json_t *v);
/* Compact JSON in jansson's key order (as json_dumps with JSON_COMPACT). Caller frees. */
char *pl_json_compact(const json_t *v);
/* pl_json_compact of an object without the members named in skip. Caller frees. */
char *pl_json_compact_without(const json_t *obj, const char *const *skip, size_t nskip);
/* Append v as compact JSON, keys sorted when sorted (the canonical form);
 * PL_ETOOBIG and nothing appended if the buffer's cap would be exceeded. */
int pl_json_write(struct pl_buf *b, const json_t *v, bool sorted);
/* Append v as json_dumps with JSON_INDENT(2) | JSON_ENCODE_ANY would write it;
 * PL_ETOOBIG and nothing appended if the buffer's cap would be exceeded. */
int pl_json_write_pretty(struct pl_buf *b, const json_t *v);
/* Lower-case hex SHA-256 of the canonical form into out[65]. */
void pl_json_sha256(const json_t *v, char out[65]);
/* Lower-case hex SHA-256 of len bytes into out[65]. */
void pl_sha256_hex(const void *data, size_t len, char out[65]);

/* Take v (a reference) and never free it: for commands about to exit with a
 * large value in hand. Still reachable, so leak checkers stay quiet. */
void pl_json_keep_until_exit(json_t *v);

#endif
