/*
 * `pvelab export`'s formats: the Ansible writer is in export.c, the
 * Terraform one (bpg/proxmox) in export_tf.c.
 */
#ifndef PL_CMD_EXPORT_H
#define PL_CMD_EXPORT_H

#include "core/common.h"

struct pl_buf;
struct pl_config;
struct pl_model_guest;

/* HCL for the n guests (their models, ownership tags set) and the config's
 * bridges, appended to out. */
int pl_export_terraform(const struct pl_config *cfg, struct pl_model_guest *models, size_t n,
			struct pl_buf *out);

#endif
