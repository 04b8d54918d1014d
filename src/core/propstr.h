/*
 * The Proxmox property-string codec: "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0",
 * "local-lvm:vm-100-disk-0,size=32G", "ip=dhcp". Driven by the format objects
 * of the official schema (data/pve-formats.json), never by hand-written
 * per-format code: parse into ordered key/value pairs, validate each value
 * against its key's schema, format back canonically, compare semantically.
 */
#ifndef PL_CORE_PROPSTR_H
#define PL_CORE_PROPSTR_H

#include "core/common.h"

#include <jansson.h>

struct pl_buf;

enum pl_ptype { PL_PT_STRING, PL_PT_INT, PL_PT_NUM, PL_PT_BOOL };

/* One key of a format, compiled from the schema. */
struct pl_pkey {
	char *name;
	enum pl_ptype type;
	char *alias;     /* this key is another name for `alias` */
	char *key_alias; /* a value-less model key: "virtio=MAC" sets key_alias=virtio, alias=MAC */
	char *format;    /* the schema's value format ("mac-addr", "disk-size", ...) or NULL */
	char *dflt;      /* the schema default as text, or NULL */
	json_t *enums;   /* array of allowed strings, or NULL */
	double min, max;
	bool has_min, has_max;
	bool optional;
	bool default_key; /* may be written without "key=" in first position */
};

struct pl_pfmt {
	char *name;
	struct pl_pkey *keys;
	size_t nkeys;
	const struct pl_pkey *dkey;  /* the default key, or NULL */
	bool model_mac;              /* has keyAlias keys: written "<model>=<mac>" first */
};

struct pl_prop {
	char *key;
	char *value;
};

/* A parsed property string: pairs in input order, aliases resolved. */
struct pl_propstr {
	struct pl_prop *items;
	size_t n, cap;
};

/* A built-in format by name: "qemu.net", "qemu.scsi", "lxc.rootfs",
 * "lxc.mp", or a named schema format ("pve-qm-ipconfig"); NULL if unknown.
 * The result lives until pl_pfmt_cleanup(). */
const struct pl_pfmt *pl_pfmt_get(const char *name);
/* Names of all built-in formats (NULL-terminated, borrowed). */
const char *const *pl_pfmt_names(void);
/* Compile a format object taken from the schema (caller frees with pl_pfmt_free). */
struct pl_pfmt *pl_pfmt_from_json(const char *name, const json_t *fmt, char **errmsg);
void pl_pfmt_free(struct pl_pfmt *f);
/* Drop the cached built-in formats (for leak-checked tests). */
void pl_pfmt_cleanup(void);
/* The key named (after alias resolution), or NULL. */
const struct pl_pkey *pl_pfmt_key(const struct pl_pfmt *f, const char *name);

void pl_propstr_init(struct pl_propstr *p);
void pl_propstr_release(struct pl_propstr *p);
/* Parse s with format f into p (which must be initialised and is reset).
 * Errors name the key and the reason: "tag: value must be at most 4094". */
int pl_propstr_parse(const struct pl_pfmt *f, const char *s, struct pl_propstr *p,
		     char **errmsg);
/* Value of key, or NULL. */
const char *pl_propstr_get(const struct pl_propstr *p, const char *key);
/* Set (replace or append) key to value. */
void pl_propstr_set(struct pl_propstr *p, const char *key, const char *value);
/* Remove key; returns whether it was there. */
bool pl_propstr_del(struct pl_propstr *p, const char *key);
/* Canonical text: default key (or "<model>=<mac>") first, the rest sorted;
 * booleans as 1/0, sizes in PVE's largest exact unit. */
int pl_propstr_format(const struct pl_pfmt *f, const struct pl_propstr *p, struct pl_buf *out);
/* Semantic equality: key order, size units, boolean spellings, MAC case and
 * values equal to the schema default do not matter. If they differ and
 * diff_key is given, it receives the first differing key (borrowed). */
bool pl_propstr_equal(const struct pl_pfmt *f, const struct pl_propstr *a,
		      const struct pl_propstr *b, const char **diff_key);
/* Parse + format: canonical text of s (caller frees), or NULL with *errmsg. */
char *pl_propstr_canonical(const struct pl_pfmt *f, const char *s, char **errmsg);
/* Convenience: parse both strings and compare. Unparseable strings compare
 * by text. */
bool pl_propstr_equal_str(const struct pl_pfmt *f, const char *a, const char *b);
/* Parse a PVE size ("32G", "512M", "1.5T", "1024") into bytes. */
int pl_size_parse(const char *s, unsigned long long *bytes);
/* Format bytes in PVE's largest exact unit ("32G") into out. */
void pl_size_format(unsigned long long bytes, char *out, size_t outlen);
/* Normalise a boolean spelling to "1"/"0"; NULL if it is not a boolean. */
const char *pl_bool_norm(const char *s);

#endif
