/*
 * OpenSSH public key lines ("ssh-ed25519 AAAA... comment"): the check Proxmox
 * VE runs (ssh-keygen -l) on the keys a guest is given, so that pvelab
 * validate and the simulator refuse what PVE refuses.
 */
#ifndef PL_CORE_SSHKEY_H
#define PL_CORE_SSHKEY_H

#include "core/common.h"

/* Whether line is one OpenSSH public key: a known key type, then base64 of
 * a key blob that names the same type, then an optional comment. */
bool pl_sshkey_valid(const char *line);
/* Whether every non-blank line of text (keys one per line, as PVE's
 * ssh-public-keys and sshkeys take them) is a valid key. */
bool pl_sshkey_lines_valid(const char *text);

#endif
