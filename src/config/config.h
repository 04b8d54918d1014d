/*
 * pvelab.yaml: loading, validation against the one declared schema table
 * (schema.c), defaults, and the semantic checks `pvelab validate` reports.
 * Every problem is reported at once, located as file:line:col with its key.
 */
#ifndef PL_CONFIG_CONFIG_H
#define PL_CONFIG_CONFIG_H

#include "core/common.h"
#include "core/diag.h"

#include <jansson.h>

enum pl_ctype {
	PL_CT_MAP,    /* mapping whose keys are the declared children */
	PL_CT_DICT,   /* mapping with free keys, described by "<path>/ANY" */
	PL_CT_LIST,   /* sequence, items described by "<path>/ANY" */
	PL_CT_STRING,
	PL_CT_INT,    /* choices "MIN..MAX" bound it */
	PL_CT_NUM,
	PL_CT_BOOL,   /* true/false, yes/no, on/off, 1/0 */
	PL_CT_ENUM,   /* one of choices "a|b|c" */
	PL_CT_SIZE,   /* disk size: "32G", "512M", a bare number is GiB; stored as "32G" */
	PL_CT_MIB,    /* memory: "4G", "512M" or a bare number of MiB; stored as MiB */
	PL_CT_RANGE,  /* "200-209"; stored as [200, 209] */
	PL_CT_SCALAR, /* any string, number or boolean (raw Proxmox settings) */
};

/* One row of the schema. Paths are JSON pointers with "*" for list items and
 * free mapping keys: "/guests/ * /disks/ * /size" (without the spaces). */
struct pl_config_key {
	const char *path;
	enum pl_ctype type;
	const char *dflt;    /* default as YAML text, or NULL */
	const char *choices; /* ENUM: "a|b"; INT: "MIN..MAX"; else NULL */
	const char *help;
	bool required;
};

/* The schema: all rows, NULL-path terminated (schema.c). */
extern const struct pl_config_key *pl_config_schema(void);
/* Name of a type for messages and docs ("integer", "size", ...). */
const char *pl_ctype_name(enum pl_ctype t);

struct pl_config;

/* Load and validate path. Returns 0 when there are no errors; diagnostics
 * (errors and warnings) are appended to d. *out is set whenever the file
 * parsed, even with errors, so callers can still report. */
int pl_config_load(const char *path, struct pl_config **out, struct pl_diags *d);
/* The config when -c does not name one: $PVELAB_CONFIG, else the first file
 * that exists of ./pvelab.yaml, $XDG_CONFIG_HOME/pvelab/pvelab.yaml
 * (~/.config/pvelab/pvelab.yaml) and /etc/pvelab/pvelab.yaml, else
 * "pvelab.yaml" (for the messages that say it is missing). Caller frees. */
char *pl_config_default_path(void);
/* Validate YAML text in memory (name is used in messages). */
int pl_config_load_string(const char *name, const char *text, size_t len,
			  struct pl_config **out, struct pl_diags *d);
void pl_config_free(struct pl_config *c);

/* The validated document (defaults filled in) at a JSON pointer, or NULL. */
const json_t *pl_config_get(const struct pl_config *c, const char *pointer);
/* Guests with `defaults:` applied (a borrowed array of objects). */
const json_t *pl_config_guests(const struct pl_config *c);
/* The file the config came from. */
const char *pl_config_path(const struct pl_config *c);
/* The config's project (`project:`, else pl_config_default_project of its
 * path): its guests carry the tags pvelab and pvelab-<project>. */
const char *pl_config_project(const struct pl_config *c);
/* The project a config at path is when it sets no `project:`: the file's
 * name without extension, or for pvelab.yaml (pvelab.*) its directory's
 * name, made into a valid project name; NULL when nothing usable remains. */
char *pl_config_default_project(const char *path);
/* Whether s is a project name: [a-z0-9][a-z0-9_-]{0,31}. */
bool pl_config_project_valid(const char *s);
/* Is the key at pointer written in the file (not a default)? */
bool pl_config_written(const struct pl_config *c, const char *pointer);
/* Where a pointer is written in the file (or its closest written parent). */
bool pl_config_where(const struct pl_config *c, const char *pointer, int *line, int *col);
/* Add a diagnostic located at pointer. */
void pl_config_diag(const struct pl_config *c, struct pl_diags *d, enum pl_diag_level level,
		    const char *pointer, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Several clusters (clusters.c). The `clusters:` mapping, or NULL when the
 * config has none (one cluster: `cluster:` or the environment). */
const json_t *pl_config_clusters(const struct pl_config *c);
/* Its names, comma-separated, for messages (caller frees). */
char *pl_config_cluster_list(const struct pl_config *c);
/* Narrow c to cluster name: its entry becomes `cluster:`, the objects of the
 * other clusters are dropped (their marks follow the ones kept). 0, or
 * PL_ENOENT with *errmsg naming the choices. */
int pl_config_select_cluster(struct pl_config *c, const char *name, char **errmsg);
/* The cluster c was narrowed to, or NULL. */
const char *pl_config_cluster(const struct pl_config *c);
/* That cluster's own `state:`, or NULL. */
const char *pl_config_cluster_state(const struct pl_config *c);

/* Cross-object checks that need no cluster: duplicate names, vmids, IPs,
 * MACs (and host ports within one guest), names Proxmox would reject, vmids
 * outside their category's range, unknown categories and profile members. */
void pl_config_check(const struct pl_config *c, struct pl_diags *d);

/* The checks of the day-2 sections (check_day2.c): snapshot policies'
 * labels, selections and schedules. Called by pl_config_check. */
void pl_config_check_day2(const struct pl_config *c, struct pl_diags *d);
/* The firewall's (check_fw.c): macros, actions, ports, and the security
 * groups, IP sets and aliases rules name, against the config's own. */
void pl_config_check_firewall(const struct pl_config *c, struct pl_diags *d);
/* The checks of storages:, backups: and pools: (check_storage.c). */
void pl_config_check_storage(const struct pl_config *c, struct pl_diags *d);
/* The health checks' (check_checks.c): target names and addresses, dns
 * names, regexes, json_value without json_path. */
void pl_config_check_checks(const struct pl_config *c, struct pl_diags *d);
/* Whether label can name cv4pve-autosnap style snapshots auto<label><12
 * digits>: PVE's snapshot names are [A-Za-z][A-Za-z0-9_-]*, at most 40. */
bool pl_config_snap_label_valid(const char *label);

#endif
