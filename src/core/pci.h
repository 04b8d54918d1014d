/*
 * PCI addresses and ids as Proxmox writes them in hostpci entries and PCI
 * resource mappings (pve-guest-common's Mapping/PCI.pm): the checks the
 * config, the simulator and `pvelab host` share.
 */
#ifndef PL_CORE_PCI_H
#define PL_CORE_PCI_H

#include "core/common.h"

#include <jansson.h>

/* Whether s is a mapping's path: "0000:01:00" or "0000:01:00.0", lower-case
 * hex, several separated by ';' (Mapping/PCI.pm's $PCI_RE). */
bool pl_pci_path_ok(const char *s);
/* Whether s is "vendor:device", four hex digits each ("10de:2184"). */
bool pl_pci_id_ok(const char *s);
/* A pci_mappings: map entry ({node, path, id, iommugroup, subsystem_id,
 * description}) as PVE's property string, map_fmt's keys in order
 * ("id=10de:2184,iommugroup=2,node=pve,path=0000:01:00"); caller frees. */
char *pl_pci_map_entry(const json_t *m);
/* The value of key in a property string ("id=10de:2184,node=pve,..."),
 * copied into out (size n); false when absent. */
bool pl_pci_prop(const char *ps, const char *key, char *out, size_t n);

#endif
