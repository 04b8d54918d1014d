/*
 * What the files of config/ share and nobody else sees: the loaded config's
 * layout (config.c loads it, clusters.c narrows it to one cluster).
 */
#ifndef PL_CONFIG_INTERNAL_H
#define PL_CONFIG_INTERNAL_H

#include "config/config.h"

struct pl_config {
	char *path;
	json_t *root;   /* validated, normalised, defaults filled in */
	json_t *marks;  /* pointer -> [line, col] */
	json_t *guests; /* guests with defaults applied */
	char *project;  /* `project:` or the default from the file's name */
	char *cluster;  /* the one of clusters: pl_config_select_cluster kept */
	json_t *moved;  /* its sections' items: section -> [index in the file] */
};

/* clusters: and the declared objects' cluster: keys, checked at load. */
void pl_config_check_clusters(const struct pl_config *c, struct pl_diags *d);

/* pointer as the file has it: "/guests/1/x" of the cluster kept by
 * pl_config_select_cluster may be "/guests/2/x" in the file (caller frees). */
char *pl_config_file_pointer(const struct pl_config *c, const char *pointer);

#endif
