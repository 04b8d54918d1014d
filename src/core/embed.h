/*
 * Data files built into the binary (data/ JSON files, generated from the official
 * Proxmox schema by scripts/gen-schema), so pvelab runs from any directory.
 */
#ifndef PL_CORE_EMBED_H
#define PL_CORE_EMBED_H

#include "core/common.h"

/* Contents of an embedded file by name ("pve-formats.json"), NUL-terminated,
 * or NULL when there is none. */
const char *pl_embed_get(const char *name, size_t *len);

#endif
