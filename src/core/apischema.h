/*
 * Checking values against parameter definitions of the official Proxmox VE
 * API schema (the embedded pve-schema-*.json), the way PVE::JSONSchema does and
 * with its error texts. The simulator validates request parameters with it;
 * `pvelab validate` checks raw `config:` keys and values with it.
 */
#ifndef PL_CORE_APISCHEMA_H
#define PL_CORE_APISCHEMA_H

#include "core/common.h"

#include <jansson.h>

struct pl_pfmt;

/* One parameter of an API method, compiled from its schema definition. */
struct pl_api_param {
	char *name;          /* "net" for the schema's "net[n]" */
	bool indexed;        /* matches name followed by digits */
	const char *type;    /* "string", "integer", "number", "boolean", ...; an
			      * array's: its items' */
	bool array;          /* a list (repeated keys): each item is checked */
	bool optional;
	struct pl_pfmt *pfmt; /* compiled inline property-string format, or NULL */
	const struct pl_pfmt *named; /* built-in named property-string format */
	void *regex;         /* compiled pattern (regex_t), or NULL */
	bool regex_bad;      /* the pattern could not be translated */
	/* its definition's checks, looked up once (NULL / -1 when absent; borrowed) */
	const char *format;  /* named format, "pve-vmid" */
	const json_t *enumv; /* array of allowed strings */
	const char *pattern;
	const json_t *minimum, *maximum; /* numbers or numeric strings */
	long long minlen, maxlen;
	const char *description; /* borrowed from the definition */
};

/* Compile the definition def of parameter name ("net[n]"); def must outlive p. */
void pl_api_param_init(struct pl_api_param *p, const char *name, const json_t *def);
void pl_api_param_release(struct pl_api_param *p);

/* Of params (index: schema names "net[n]" -> position), the definition that
 * applies to name ("net0" -> "net[n]"), or NULL. */
const struct pl_api_param *pl_api_param_lookup(const struct pl_api_param *params,
					       const json_t *index, const char *name);

/* Validate one value against one parameter definition; NULL when valid, else
 * PVE's message (caller frees). */
char *pl_api_check_value(const struct pl_api_param *p, const char *value);
/* NULL when v has the named format ("pve-configid", "pve-storage-id",
 * "pve-poolid", ...), else PVE's message for it (caller frees). */
char *pl_api_check_format(const char *fmt, const char *v);

/* Turn a JSON body / query value into the string PVE's parser would see
 * (true -> "1", numbers as text); NULL for objects and arrays. Caller frees. */
char *pl_api_value_text(const json_t *v);

/* The definition of a guest config key ("net0", "balloon") as the newest
 * embedded schema's PUT .../{qemu|lxc}/{vmid}/config declares it, or NULL when
 * the schema has no such key (or the key only steers the request: digest,
 * delete, revert, skiplock, force). lxc selects containers. The schema is
 * loaded on first use and kept until pl_api_cleanup(). */
const struct pl_api_param *pl_api_config_param(bool lxc, const char *key);
/* The config key closest to key (a typo's fix), or NULL; caller frees. */
char *pl_api_config_suggest(bool lxc, const char *key);
/* What a parameter expects, for messages: "an integer from 0 to 4",
 * "one of: host, kvm64", "a property string (pve-qm-net)"; caller frees. */
char *pl_api_param_expects(const struct pl_api_param *p);
/* What pvelab keeps and shows in place of a secret: PVE's own mask. */
#define PL_API_SECRET_MASK "**********"
/* Whether a config key holds a password: `cipassword`, `password` and any
 * other key ending in "password" (PVE answers '**********' for cipassword,
 * older releases and proxies may not). pvelab never stores or prints one. */
bool pl_api_secret_key(const char *key);
/* Mask the secret values of a guest config (an object), or of a /pending
 * answer (an array of {key, value, pending}); returns how many it masked. */
size_t pl_api_mask_secrets(json_t *conf);
/* Drop the loaded schema (for leak-checked tests). */
void pl_api_cleanup(void);

#endif
