/*
 * `pvelab host`: a Proxmox node's own setup as facts, checks with exact
 * fixes, and declared settings planned and applied as file edits. Everything
 * is read and written through a host reader (host/reader.h).
 */
#ifndef PL_HOST_HOST_H
#define PL_HOST_HOST_H

#include "core/common.h"

#include <jansson.h>

struct pl_host_reader;

/* Collect the node's facts (CPU, kernel command line, boot loader, IOMMU,
 * PCI devices with groups and drivers, modules, modprobe options, VM
 * passthrough entries, PCI mappings) into *facts, a new object. Missing
 * files are facts too; only an unreadable tree is an error. */
int pl_host_facts(struct pl_host_reader *r, json_t **facts, char **errmsg);

/* Judge facts: an array of findings {id, subject, status pass|warn|fail,
 * title, evidence[], fix{file, line, change, commands[], reboot,
 * initramfs}}, new reference. want (optional, a hosts: entry) names the
 * devices meant for passthrough; its "pci_mappings" (the config's, as
 * declared) are checked against the node beside those of pci.cfg, and VMs'
 * "mapping=NAME" resolve through either. */
json_t *pl_host_check(const json_t *facts, const json_t *want);

/* The kernel parameters that turn the IOMMU on for a CPU vendor ("intel",
 * "amd"), as a space-separated string (static). */
const char *pl_host_iommu_params(const char *vendor);

/* Whether two PCI addresses name the same slot: "0000:01:00.0",
 * "0000:01:00", "01:00.0" and "01:00" do. */
bool pl_host_same_slot(const char *a, const char *b);

/* The boot loader line (GRUB_CMDLINE_LINUX_DEFAULT="..." when grub, else
 * /etc/kernel/cmdline's one line) with the parameters of params it lacks
 * added (caller frees); NULL when it already has them all. */
char *pl_host_cmdline_add(const char *line, const char *params, bool grub);

struct pl_host_reader;

/* The file edits that bring the node to want (a hosts: entry): *edits is a
 * new array of {file, before (null for a new file), after, why[],
 * commands[], reboot}, empty when the node is as declared. A declaration
 * that cannot be met (a device the node lacks, a bridge without an address)
 * is an error naming it. */
int pl_host_plan(struct pl_host_reader *r, const json_t *facts, const json_t *want, json_t **edits,
		 char **errmsg);
/* A unified diff (3 lines of context) of before (NULL: empty) to after, with
 * "--- path" / "+++ path" heads; caller frees. */
char *pl_host_diff(const char *path, const char *before, const char *after);

#endif
