/*
 * YAML (via libfyaml) to jansson, keeping where every value came from so that
 * config errors can say file:line:col. Anchors, aliases and merge keys (<<)
 * are resolved; plain scalars are typed by the YAML 1.2 core schema.
 */
#ifndef PL_CORE_YAML_H
#define PL_CORE_YAML_H

#include "core/common.h"

#include <jansson.h>

/* Parse a YAML file into a JSON value. If marks is not NULL it receives an
 * object mapping JSON pointers ("/guests/0/name") to [line, col] (1-based):
 * for a mapping member, where its key is written; for a sequence item, where
 * the item starts. Errors: "FILE:LINE:COL: reason". */
json_t *pl_yaml_load_file(const char *path, json_t **marks, char **errmsg);
/* The same for text in memory; name is used in messages. */
json_t *pl_yaml_load_string(const char *name, const char *text, size_t len, json_t **marks,
			    char **errmsg);
/* Look up a pointer's mark; false if unknown. Falls back to the nearest
 * parent that has one. */
bool pl_yaml_mark(const json_t *marks, const char *pointer, int *line, int *col);
struct pl_buf;
/* Append v as block-style YAML (strings double-quoted when they need it),
 * indented by indent spaces. Loading the text gives v back. */
int pl_yaml_emit(const json_t *v, int indent, struct pl_buf *out);
/* The same for Ansible: a string Jinja would template ("{{", "{%", "{#") is
 * tagged !unsafe, so text from a config or a cluster stays text. */
int pl_yaml_emit_ansible(const json_t *v, int indent, struct pl_buf *out);

/* Escape a key for use in a JSON pointer ("~" -> "~0", "/" -> "~1"); caller frees. */
char *pl_yaml_ptr_escape(const char *key);

#endif
