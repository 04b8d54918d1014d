/*
 * The one declared schema of pvelab.yaml: every key is one row (path, type,
 * default, choices, help). The loader, `pvelab validate`, docs/config.md
 * (`pvelab config-schema`) and unknown-key suggestions all read it.
 * Guest keys are declared once and used for guests, defaults and profiles.
 */
#include "core/common.h"
#include "config/config.h"
#include "core/err.h"

#define END                                                                                        \
	{                                                                                          \
		NULL, 0, NULL, NULL, NULL, false                                                   \
	}

/* The tables keep one row per line, however long, so that a row reads (and
 * diffs) as one key: clang-format would fold them. */
/* clang-format off */

/* Keys of one guest, relative to the guest (also the keys of `defaults:`). */
static const struct pl_config_key guest_keys[] = {
	{ "/name", PL_CT_STRING, NULL, NULL, "guest name (VM name or CT hostname); unique", true },
	{ "/type", PL_CT_ENUM, "vm", "vm|lxc", "QEMU virtual machine or LXC container", false },
	{ "/vmid", PL_CT_INT, NULL, "100..999999999", "VMID; allocated from the category's range when absent", false },
	{ "/node", PL_CT_STRING, NULL, NULL, "node the guest lives on", false },
	{ "/category", PL_CT_STRING, NULL, NULL, "a category of conventions.categories (VMID/port ranges)", false },
	{ "/tags", PL_CT_LIST, NULL, NULL, "Proxmox tags", false },
	{ "/tags/*", PL_CT_STRING, NULL, NULL, "a tag", false },
	{ "/pool", PL_CT_STRING, NULL, NULL, "resource pool (under pools:, or one the cluster has): a new guest is made in it, an existing one of this project moves to it", false },
	{ "/description", PL_CT_STRING, NULL, NULL, "notes shown in the Proxmox UI", false },
	{ "/onboot", PL_CT_BOOL, NULL, NULL, "start when the node boots", false },
	{ "/startup", PL_CT_MAP, NULL, NULL, "boot order and delays", false },
	{ "/startup/order", PL_CT_INT, NULL, "0..65535", "start order (lower first)", false },
	{ "/startup/up", PL_CT_INT, NULL, "0..65535", "seconds to wait after starting", false },
	{ "/startup/down", PL_CT_INT, NULL, "0..65535", "seconds to wait for shutdown", false },
	{ "/state", PL_CT_ENUM, "running", "running|stopped", "desired power state", false },
	{ "/cores", PL_CT_INT, NULL, "1..8192", "CPU cores (per socket for VMs)", false },
	{ "/sockets", PL_CT_INT, NULL, "1..16", "CPU sockets (VMs)", false },
	{ "/cpu", PL_CT_STRING, NULL, NULL, "CPU type (VMs), e.g. host or x86-64-v2-AES", false },
	{ "/cpulimit", PL_CT_NUM, NULL, NULL, "CPU limit in cores", false },
	{ "/memory", PL_CT_MIB, NULL, NULL, "memory: 2048 (MiB), 2G, 512M", false },
	{ "/balloon", PL_CT_MIB, NULL, NULL, "minimum balloon memory (VMs); 0 disables ballooning", false },
	{ "/swap", PL_CT_MIB, NULL, NULL, "swap (containers)", false },
	{ "/ostype", PL_CT_STRING, NULL, NULL, "guest OS type (l26, win11, debian, ...)", false },
	{ "/bios", PL_CT_ENUM, NULL, "seabios|ovmf", "firmware (VMs)", false },
	{ "/machine", PL_CT_STRING, NULL, NULL, "machine type (VMs), e.g. q35", false },
	{ "/scsihw", PL_CT_STRING, NULL, NULL, "SCSI controller (VMs), e.g. virtio-scsi-single", false },
	{ "/agent", PL_CT_BOOL, NULL, NULL, "QEMU guest agent enabled (VMs)", false },
	{ "/efidisk", PL_CT_MAP, NULL, NULL, "EFI vars disk (VMs with bios: ovmf), efidisk0", false },
	{ "/efidisk/storage", PL_CT_STRING, NULL, NULL, "storage to allocate on", true },
	{ "/efidisk/efitype", PL_CT_ENUM, "4m", "2m|4m", "OVMF vars size (4m for Secure Boot)", false },
	{ "/efidisk/pre_enrolled_keys", PL_CT_BOOL, NULL, NULL, "Secure Boot with Microsoft's keys enrolled", false },
	{ "/tpm", PL_CT_MAP, NULL, NULL, "TPM state disk (VMs), tpmstate0, e.g. for Windows 11", false },
	{ "/tpm/storage", PL_CT_STRING, NULL, NULL, "storage to allocate on", true },
	{ "/tpm/version", PL_CT_ENUM, "v2.0", "v1.2|v2.0", "TPM version", false },
	{ "/disks", PL_CT_LIST, NULL, NULL, "VM disks, in bus order", false },
	{ "/disks/*", PL_CT_MAP, NULL, NULL, "a disk", false },
	{ "/disks/*/storage", PL_CT_STRING, NULL, NULL, "storage to allocate on", false },
	{ "/disks/*/size", PL_CT_SIZE, NULL, NULL, "size: 32G, 512M (a bare number is GiB)", true },
	{ "/disks/*/bus", PL_CT_ENUM, "scsi", "scsi|virtio|sata|ide", "bus", false },
	{ "/disks/*/index", PL_CT_INT, NULL, "0..30", "bus index (default: next free)", false },
	{ "/disks/*/options", PL_CT_DICT, NULL, NULL, "more drive options (iothread, discard, ssd, cache, ...)", false },
	{ "/disks/*/options/*", PL_CT_SCALAR, NULL, NULL, "a drive option", false },
	{ "/networks", PL_CT_LIST, NULL, NULL, "network interfaces, net0 first", false },
	{ "/networks/*", PL_CT_MAP, NULL, NULL, "an interface", false },
	{ "/networks/*/bridge", PL_CT_STRING, "vmbr0", NULL, "bridge", false },
	{ "/networks/*/vlan", PL_CT_INT, NULL, "1..4094", "VLAN tag", false },
	{ "/networks/*/firewall", PL_CT_BOOL, NULL, NULL, "Proxmox firewall on this interface", false },
	{ "/networks/*/mac", PL_CT_STRING, NULL, NULL, "MAC address (generated when absent)", false },
	{ "/networks/*/model", PL_CT_ENUM, NULL, "virtio|e1000|e1000e|rtl8139|vmxnet3", "NIC model (VMs, default virtio)", false },
	{ "/networks/*/name", PL_CT_STRING, NULL, NULL, "interface name inside a container (default eth<N>)", false },
	{ "/networks/*/ip", PL_CT_STRING, NULL, NULL, "IPv4: CIDR (10.0.0.5/24) or dhcp", false },
	{ "/networks/*/gw", PL_CT_STRING, NULL, NULL, "IPv4 gateway", false },
	{ "/networks/*/ip6", PL_CT_STRING, NULL, NULL, "IPv6: CIDR, auto or dhcp", false },
	{ "/networks/*/gw6", PL_CT_STRING, NULL, NULL, "IPv6 gateway", false },
	{ "/networks/*/mtu", PL_CT_INT, NULL, "1..65520", "MTU", false },
	{ "/networks/*/rate", PL_CT_NUM, NULL, NULL, "rate limit in MB/s", false },
	{ "/cloudinit", PL_CT_MAP, NULL, NULL, "cloud-init (VMs)", false },
	{ "/cloudinit/user", PL_CT_STRING, NULL, NULL, "default user", false },
	{ "/cloudinit/password_env", PL_CT_STRING, NULL, NULL, "environment variable holding the password (never in YAML); validate, plan and apply refuse when it is not set", false },
	{ "/cloudinit/ssh_keys", PL_CT_LIST, NULL, NULL, "authorized SSH public keys", false },
	{ "/cloudinit/ssh_keys/*", PL_CT_STRING, NULL, NULL, "a public key (OpenSSH format)", false },
	{ "/cloudinit/dns", PL_CT_MAP, NULL, NULL, "DNS settings", false },
	{ "/cloudinit/dns/servers", PL_CT_LIST, NULL, NULL, "name servers", false },
	{ "/cloudinit/dns/servers/*", PL_CT_STRING, NULL, NULL, "a name server", false },
	{ "/cloudinit/dns/domain", PL_CT_STRING, NULL, NULL, "search domain", false },
	{ "/cloudinit/upgrade", PL_CT_BOOL, NULL, NULL, "upgrade packages on first boot", false },
	{ "/clone", PL_CT_MAP, NULL, NULL, "create by cloning a template (VMs)", false },
	{ "/clone/template", PL_CT_STRING, NULL, NULL, "template name or VMID", true },
	{ "/clone/full", PL_CT_BOOL, "true", NULL, "full clone (false: linked clone)", false },
	{ "/clone/storage", PL_CT_STRING, NULL, NULL, "target storage of a full clone", false },
	{ "/ostemplate", PL_CT_STRING, NULL, NULL, "container template volume, e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", false },
	{ "/unprivileged", PL_CT_BOOL, NULL, NULL, "unprivileged container", false },
	{ "/rootfs", PL_CT_MAP, NULL, NULL, "container root filesystem", false },
	{ "/rootfs/storage", PL_CT_STRING, NULL, NULL, "storage", false },
	{ "/rootfs/size", PL_CT_SIZE, NULL, NULL, "size (a bare number is GiB)", false },
	{ "/rootfs/options", PL_CT_DICT, NULL, NULL, "more rootfs options", false },
	{ "/rootfs/options/*", PL_CT_SCALAR, NULL, NULL, "a rootfs option", false },
	{ "/mounts", PL_CT_LIST, NULL, NULL, "container mount points, mp0 first", false },
	{ "/mounts/*", PL_CT_MAP, NULL, NULL, "a mount point", false },
	{ "/mounts/*/path", PL_CT_STRING, NULL, NULL, "path inside the container", true },
	{ "/mounts/*/volume", PL_CT_STRING, NULL, NULL, "host directory (bind mount) or existing volume", false },
	{ "/mounts/*/storage", PL_CT_STRING, NULL, NULL, "storage for a new volume", false },
	{ "/mounts/*/size", PL_CT_SIZE, NULL, NULL, "size of a new volume", false },
	{ "/mounts/*/backup", PL_CT_BOOL, NULL, NULL, "include in backups", false },
	{ "/mounts/*/ro", PL_CT_BOOL, NULL, NULL, "read-only", false },
	{ "/mounts/*/options", PL_CT_DICT, NULL, NULL, "more mount options", false },
	{ "/mounts/*/options/*", PL_CT_SCALAR, NULL, NULL, "a mount option", false },
	{ "/ssh_keys", PL_CT_LIST, NULL, NULL, "SSH public keys for root in a container, installed when it is created (PVE's ssh-public-keys; PVE keeps no record of them, so a later change reaches only new or replaced containers; VMs take cloudinit.ssh_keys)", false },
	{ "/ssh_keys/*", PL_CT_STRING, NULL, NULL, "a public key (OpenSSH format)", false },
	{ "/features", PL_CT_MAP, NULL, NULL, "container features", false },
	{ "/features/nesting", PL_CT_BOOL, NULL, NULL, "allow nesting (Docker in LXC)", false },
	{ "/features/keyctl", PL_CT_BOOL, NULL, NULL, "allow keyctl()", false },
	{ "/features/fuse", PL_CT_BOOL, NULL, NULL, "allow FUSE mounts", false },
	{ "/features/mknod", PL_CT_BOOL, NULL, NULL, "allow mknod()", false },
	{ "/features/mount", PL_CT_STRING, NULL, NULL, "allowed filesystem types (nfs;cifs)", false },
	{ "/hostpci", PL_CT_LIST, NULL, NULL, "PCI passthrough (VMs), hostpci0 first", false },
	{ "/hostpci/*", PL_CT_MAP, NULL, NULL, "a passed-through device", false },
	{ "/hostpci/*/host", PL_CT_STRING, NULL, NULL, "host PCI id (0000:01:00 or 01:00.0)", false },
	{ "/hostpci/*/mapping", PL_CT_STRING, NULL, NULL, "cluster resource mapping instead of host", false },
	{ "/hostpci/*/pcie", PL_CT_BOOL, NULL, NULL, "PCIe port (q35 only)", false },
	{ "/hostpci/*/x_vga", PL_CT_BOOL, NULL, NULL, "primary GPU", false },
	{ "/hostpci/*/rombar", PL_CT_BOOL, NULL, NULL, "expose the ROM BAR", false },
	{ "/hostpci/*/romfile", PL_CT_STRING, NULL, NULL, "ROM file", false },
	{ "/services", PL_CT_LIST, NULL, NULL, "services the guest offers: validate checks their host ports, and pvelab check probes each (check:, docs/checks.md)", false },
	{ "/services/*", PL_CT_MAP, NULL, NULL, "a service", false },
	{ "/services/*/name", PL_CT_STRING, NULL, NULL, "service name", true },
	{ "/services/*/port", PL_CT_INT, NULL, "1..65535", "port", true },
	{ "/services/*/protocol", PL_CT_ENUM, "tcp", "tcp|udp|http|https", "protocol", false },
	{ "/services/*/path", PL_CT_STRING, NULL, NULL, "HTTP path to check (default /)", false },
	{ "/services/*/host_port", PL_CT_INT, NULL, "1..65535", "port the guest publishes on its own address, e.g. by Docker (unique per guest)", false },
	{ "/firewall", PL_CT_MAP, NULL, NULL, "the guest's firewall (its interfaces need firewall: true for it to act; docs/firewall.md)", false },
	{ "/firewall/options", PL_CT_MAP, NULL, NULL, "options: only the keys given are managed; applied after the rules", false },
	{ "/firewall/options/enable", PL_CT_BOOL, NULL, NULL, "the guest's firewall is on", false },
	{ "/firewall/options/policy_in", PL_CT_ENUM, NULL, "ACCEPT|DROP|REJECT", "what incoming traffic no rule matches gets (PVE: DROP)", false },
	{ "/firewall/options/policy_out", PL_CT_ENUM, NULL, "ACCEPT|DROP|REJECT", "what outgoing traffic no rule matches gets (PVE: ACCEPT)", false },
	{ "/firewall/options/dhcp", PL_CT_BOOL, NULL, NULL, "allow DHCP", false },
	{ "/firewall/options/ipfilter", PL_CT_BOOL, NULL, NULL, "only the interfaces' own addresses (ipfilter-net<N> sets)", false },
	{ "/firewall/options/macfilter", PL_CT_BOOL, NULL, NULL, "only the interfaces' own MAC addresses (PVE: on)", false },
	{ "/firewall/options/ndp", PL_CT_BOOL, NULL, NULL, "allow IPv6 neighbor discovery (PVE: on)", false },
	{ "/firewall/options/radv", PL_CT_BOOL, NULL, NULL, "allow IPv6 router advertisements from the guest", false },
	{ "/firewall/options/log_level_in", PL_CT_ENUM, NULL, "emerg|alert|crit|err|warning|notice|info|debug|nolog", "log level of incoming traffic", false },
	{ "/firewall/options/log_level_out", PL_CT_ENUM, NULL, "emerg|alert|crit|err|warning|notice|info|debug|nolog", "log level of outgoing traffic", false },
	{ "/firewall/rules", PL_CT_LIST, NULL, NULL, "the guest's rules, in order: the whole list (rules not here are deleted)", false },
	{ "/firewall/rules/*", PL_CT_MAP, NULL, NULL, "a rule", false },
	{ "/config", PL_CT_DICT, NULL, NULL, "raw Proxmox settings passed through as-is (what pvelab has no key for), checked against the Proxmox VE API schema", false },
	{ "/config/*", PL_CT_SCALAR, NULL, NULL, "a Proxmox config key and value", false },
	END,
};

/* Keys of one firewall rule, relative to the rule (cluster, group, node and guest rules). */
static const struct pl_config_key fw_rule_keys[] = {
	{ "/type", PL_CT_ENUM, "in", "in|out|group", "direction, or group: the rule is the security group named by action", false },
	{ "/action", PL_CT_STRING, NULL, NULL, "ACCEPT, DROP or REJECT; for type group the security group's name", true },
	{ "/macro", PL_CT_STRING, NULL, NULL, "a PVE firewall macro (SSH, HTTPS, DNS, ...; pvelab validate knows them)", false },
	{ "/proto", PL_CT_STRING, NULL, NULL, "protocol (tcp, udp, icmp, ... or a number)", false },
	{ "/source", PL_CT_STRING, NULL, NULL, "source: addresses, CIDRs, ranges, an alias or +ipset (lists with commas)", false },
	{ "/dest", PL_CT_STRING, NULL, NULL, "destination, as source", false },
	{ "/dport", PL_CT_SCALAR, NULL, NULL, "destination ports: 443, '80,443', '8000:8010' or service names (needs proto)", false },
	{ "/sport", PL_CT_SCALAR, NULL, NULL, "source ports, as dport", false },
	{ "/icmp_type", PL_CT_STRING, NULL, NULL, "ICMP type (proto icmp or icmpv6)", false },
	{ "/iface", PL_CT_STRING, NULL, NULL, "interface (net0 on a guest)", false },
	{ "/log", PL_CT_ENUM, NULL, "emerg|alert|crit|err|warning|notice|info|debug|nolog", "log level of the rule", false },
	{ "/comment", PL_CT_STRING, NULL, NULL, "comment", false },
	{ "/enable", PL_CT_BOOL, "true", NULL, "the rule is active (PVE disables a new rule unless told: pvelab enables it unless enable: false)", false },
	END,
};

/* Keys of one health check (docs/checks.md), relative to a guest's service or
 * an entry of checks.targets: the type and its options. */
static const struct pl_config_key probe_keys[] = {
	{ "/check", PL_CT_ENUM, NULL, "http|https|tcp|tls|dns|ping|none", "how pvelab check probes it (default from protocol: http, https, tcp; udp: none)", false },
	{ "/host", PL_CT_STRING, NULL, NULL, "address to probe (default: the guest's first static IPv4)", false },
	{ "/interval", PL_CT_INT, NULL, "1..86400", "seconds between probes (default checks.interval)", false },
	{ "/timeout", PL_CT_INT, NULL, "1..300", "seconds one probe may take (default checks.timeout)", false },
	{ "/retries", PL_CT_INT, NULL, "0..100", "failed probes in a row tolerated before it is down (default checks.retries)", false },
	{ "/method", PL_CT_ENUM, NULL, "GET|HEAD|POST|PUT|OPTIONS", "HTTP method (default GET)", false },
	{ "/expect_status", PL_CT_LIST, NULL, NULL, "HTTP statuses that are up (default 200..399)", false },
	{ "/expect_status/*", PL_CT_INT, NULL, "100..599", "a status", false },
	{ "/body_regex", PL_CT_STRING, NULL, NULL, "extended regex the body's first 64 KiB must match", false },
	{ "/json_path", PL_CT_STRING, NULL, NULL, "a value in a JSON body ($.a.b[0]) that must equal json_value", false },
	{ "/json_value", PL_CT_SCALAR, NULL, NULL, "what json_path must hold", false },
	{ "/headers", PL_CT_DICT, NULL, NULL, "request headers", false },
	{ "/headers/*", PL_CT_STRING, NULL, NULL, "a header's value", false },
	{ "/follow_redirects", PL_CT_BOOL, NULL, NULL, "follow redirects, at most 5 (default false)", false },
	{ "/verify", PL_CT_BOOL, NULL, NULL, "verify the certificate chain and the host name (https, tls; default true)", false },
	{ "/ca_file", PL_CT_STRING, NULL, NULL, "CA bundle to verify with instead of the system's", false },
	{ "/pin_sha256", PL_CT_STRING, NULL, NULL, "pinned SHA-256 of the server's public key (base64, as curl's --pinnedpubkey sha256//)", false },
	{ "/warn_days", PL_CT_INT, NULL, "0..3650", "warning when the certificate expires within this many days (https, tls; default 14)", false },
	{ "/fail_days", PL_CT_INT, NULL, "0..3650", "down when it expires within this many days (default 0: once expired)", false },
	{ "/banner", PL_CT_STRING, NULL, NULL, "extended regex the first bytes a TCP server sends must match", false },
	{ "/dns_name", PL_CT_STRING, NULL, NULL, "name to resolve (dns; the host is the name server)", false },
	{ "/dns_type", PL_CT_ENUM, NULL, "A|AAAA", "record type (dns; default A)", false },
	{ "/dns_answer", PL_CT_STRING, NULL, NULL, "an address the answer must contain (dns)", false },
	END,
};

static const struct pl_config_key top_keys[] = {
	{ "/project", PL_CT_STRING, NULL, NULL, "this config's name ([a-z0-9][a-z0-9_-]*, at most 32): its guests carry the tags pvelab and pvelab-<project>, and its plans only ever delete guests of this project (default: the file's name without extension, or for pvelab.yaml its directory's name)", false },
	{ "/safety", PL_CT_MAP, NULL, NULL, "limits on what one apply may destroy", false },
	{ "/safety/max_deletes", PL_CT_INT, NULL, "0..1000000", "most guests one apply deletes even with --allow-delete (default: no limit; without --allow-delete it deletes none)", false },
	{ "/cluster", PL_CT_MAP, NULL, NULL, "how to reach the Proxmox VE API", false },
	{ "/cluster/endpoints", PL_CT_LIST, NULL, NULL, "API URLs, tried in order (one per node for failover)", false },
	{ "/cluster/endpoints/*", PL_CT_STRING, NULL, NULL, "https://HOST:8006", false },
	{ "/cluster/token_id", PL_CT_STRING, NULL, NULL, "API token id USER@REALM!TOKENID", false },
	{ "/cluster/token_secret_file", PL_CT_STRING, NULL, NULL, "file with the token secret (mode 0600)", false },
	{ "/cluster/token_secret_env", PL_CT_STRING, NULL, NULL, "environment variable with the token secret", false },
	{ "/cluster/fingerprint", PL_CT_STRING, NULL, NULL, "SHA-256 fingerprint of the node certificate (AA:BB:...)", false },
	{ "/cluster/ca_file", PL_CT_STRING, NULL, NULL, "CA bundle that signed the node certificates", false },
	{ "/cluster/timeout", PL_CT_INT, "30", "1..3600", "seconds per request", false },
	{ "/cluster/concurrency", PL_CT_INT, "16", "1..256", "requests in flight", false },
	{ "/state", PL_CT_STRING, NULL, NULL, "state database (default .pvelab/state.db beside this file)", false },
	{ "/conventions", PL_CT_MAP, NULL, NULL, "homelab conventions", false },
	{ "/conventions/categories", PL_CT_DICT, NULL, NULL, "guest categories by name", false },
	{ "/conventions/categories/*", PL_CT_MAP, NULL, NULL, "a category", false },
	{ "/conventions/categories/*/vmids", PL_CT_RANGE, NULL, NULL, "VMID range, e.g. 200-209", false },
	{ "/conventions/categories/*/ports", PL_CT_RANGE, NULL, NULL, "host port range, e.g. 7001-7010", false },
	{ "/conventions/categories/*/description", PL_CT_STRING, NULL, NULL, "what the category is for", false },
	{ "/profiles", PL_CT_DICT, NULL, NULL, "named selections of guests (plan/apply --profile)", false },
	{ "/profiles/*", PL_CT_LIST, NULL, NULL, "categories or guest names", false },
	{ "/profiles/*/*", PL_CT_STRING, NULL, NULL, "a category or guest name", false },
	{ "/bridges", PL_CT_LIST, NULL, NULL, "Linux bridges pvelab creates, and updates when a key set here differs", false },
	{ "/bridges/*", PL_CT_MAP, NULL, NULL, "a bridge", false },
	{ "/bridges/*/name", PL_CT_STRING, NULL, NULL, "bridge name, e.g. vmbr1", true },
	{ "/bridges/*/node", PL_CT_STRING, NULL, NULL, "node (default: every node)", false },
	{ "/bridges/*/cidr", PL_CT_STRING, NULL, NULL, "host address on the bridge", false },
	{ "/bridges/*/gateway", PL_CT_STRING, NULL, NULL, "gateway", false },
	{ "/bridges/*/ports", PL_CT_STRING, NULL, NULL, "bridge ports (physical NICs), empty for an internal bridge", false },
	{ "/bridges/*/vlan_aware", PL_CT_BOOL, NULL, NULL, "VLAN aware", false },
	{ "/bridges/*/comment", PL_CT_STRING, NULL, NULL, "comment", false },
	{ "/bridges/*/autostart", PL_CT_BOOL, "true", NULL, "bring up at boot (an existing bridge's only changes when written here)", false },
	{ "/backup", PL_CT_MAP, NULL, NULL, "backups apply takes before it deletes or replaces a guest", false },
	{ "/backup/storage", PL_CT_STRING, NULL, NULL, "storage with content 'backup' on the guest's node (default: 'local' if it holds backups, else the first that does)", false },
	{ "/apply_snapshots", PL_CT_MAP, NULL, NULL, "retention of the pvelab-pre-RUN snapshots apply takes of each guest before changing it (docs/day2.md)", false },
	{ "/apply_snapshots/keep", PL_CT_INT, NULL, "1..1000", "after an apply that succeeded, each guest it snapshotted keeps its newest N pvelab-pre-RUN snapshots and the older ones are deleted (default: all are kept); rollback RUN needs the run's snapshot", false },
	{ "/snapshot_policies", PL_CT_LIST, NULL, NULL, "labelled snapshot retention, named as cv4pve-autosnap names them (pvelab snapshot-policy run; docs/day2.md)", false },
	{ "/snapshot_policies/*", PL_CT_MAP, NULL, NULL, "a policy: the guests it selects get a snapshot auto<label><yyMMddHHmmss> (local time) per run and keep the newest keep of that label", false },
	{ "/snapshot_policies/*/label", PL_CT_STRING, NULL, NULL, "label, as cv4pve-autosnap's --label (hourly, daily, ...): letters, digits, '_' and '-', at most 24; unique", true },
	{ "/snapshot_policies/*/keep", PL_CT_INT, NULL, "1..100", "snapshots of this label each guest keeps (the newest); only this label's are ever deleted", true },
	{ "/snapshot_policies/*/schedule", PL_CT_STRING, NULL, NULL, "when it runs, as a PVE calendar event (daily, 'mon..fri 02:30', '*:0/15'), checked by validate and shown by snapshot-policy list; run it from cron at that time (pvelab runs no schedule itself yet)", false },
	{ "/snapshot_policies/*/vmstate", PL_CT_BOOL, "false", NULL, "include the RAM of running VMs (containers have none)", false },
	{ "/snapshot_policies/*/guests", PL_CT_LIST, NULL, NULL, "guests it selects, by name or vmid", false },
	{ "/snapshot_policies/*/guests/*", PL_CT_SCALAR, NULL, NULL, "a guest name or vmid", false },
	{ "/snapshot_policies/*/tags", PL_CT_LIST, NULL, NULL, "it selects every guest with one of these Proxmox tags", false },
	{ "/snapshot_policies/*/tags/*", PL_CT_STRING, NULL, NULL, "a tag", false },
	{ "/snapshot_policies/*/pools", PL_CT_LIST, NULL, NULL, "it selects every guest in one of these resource pools", false },
	{ "/snapshot_policies/*/pools/*", PL_CT_STRING, NULL, NULL, "a pool", false },
	{ "/snapshot_policies/*/exclude", PL_CT_LIST, NULL, NULL, "guests it never selects, by name or vmid", false },
	{ "/snapshot_policies/*/exclude/*", PL_CT_SCALAR, NULL, NULL, "a guest name or vmid", false },
	{ "/firewall", PL_CT_MAP, NULL, NULL, "the Proxmox firewall: cluster options, aliases, IP sets, security groups, cluster and node rules (guests have their own firewall:; docs/firewall.md)", false },
	{ "/firewall/options", PL_CT_DICT, NULL, NULL, "cluster.fw options (enable, policy_in, policy_out, ebtables, log_ratelimit, ...): only the keys given are managed; applied after the rules", false },
	{ "/firewall/options/*", PL_CT_SCALAR, NULL, NULL, "an option and its value", false },
	{ "/firewall/aliases", PL_CT_DICT, NULL, NULL, "IP aliases by name (rules use them as source/dest); aliases not named here are left alone", false },
	{ "/firewall/aliases/*", PL_CT_MAP, NULL, NULL, "an alias", false },
	{ "/firewall/aliases/*/cidr", PL_CT_STRING, NULL, NULL, "address or network", true },
	{ "/firewall/aliases/*/comment", PL_CT_STRING, NULL, NULL, "comment", false },
	{ "/firewall/ipsets", PL_CT_DICT, NULL, NULL, "IP sets by name (rules use them as +name); the entries of a set named here are exactly its entries", false },
	{ "/firewall/ipsets/*", PL_CT_MAP, NULL, NULL, "an IP set", false },
	{ "/firewall/ipsets/*/comment", PL_CT_STRING, NULL, NULL, "comment", false },
	{ "/firewall/ipsets/*/entries", PL_CT_LIST, NULL, NULL, "addresses, networks or aliases", false },
	{ "/firewall/ipsets/*/entries/*", PL_CT_STRING, NULL, NULL, "an entry; !CIDR for an exception (nomatch)", false },
	{ "/firewall/groups", PL_CT_DICT, NULL, NULL, "security groups by name (a rule of type group uses one); the rules of a group named here are exactly its rules", false },
	{ "/firewall/groups/*", PL_CT_MAP, NULL, NULL, "a security group", false },
	{ "/firewall/groups/*/comment", PL_CT_STRING, NULL, NULL, "comment", false },
	{ "/firewall/groups/*/rules", PL_CT_LIST, NULL, NULL, "its rules, in order", false },
	{ "/firewall/groups/*/rules/*", PL_CT_MAP, NULL, NULL, "a rule", false },
	{ "/firewall/rules", PL_CT_LIST, NULL, NULL, "the datacenter's rules, in order: the whole list (rules not here are deleted)", false },
	{ "/firewall/rules/*", PL_CT_MAP, NULL, NULL, "a rule", false },
	{ "/firewall/host", PL_CT_MAP, NULL, NULL, "the host firewall of every online node that firewall.nodes does not name", false },
	{ "/firewall/host/options", PL_CT_DICT, NULL, NULL, "host.fw options (enable, nftables, log_level_in, ...): only the keys given are managed", false },
	{ "/firewall/host/options/*", PL_CT_SCALAR, NULL, NULL, "an option and its value", false },
	{ "/firewall/host/rules", PL_CT_LIST, NULL, NULL, "each node's rules, in order: the whole list", false },
	{ "/firewall/host/rules/*", PL_CT_MAP, NULL, NULL, "a rule", false },
	{ "/firewall/nodes", PL_CT_DICT, NULL, NULL, "host firewalls by node name (a named node that is not in the cluster blocks the plan)", false },
	{ "/firewall/nodes/*", PL_CT_MAP, NULL, NULL, "a node's firewall", false },
	{ "/firewall/nodes/*/options", PL_CT_DICT, NULL, NULL, "host.fw options (enable, nftables, log_level_in, ...): only the keys given are managed", false },
	{ "/firewall/nodes/*/options/*", PL_CT_SCALAR, NULL, NULL, "an option and its value", false },
	{ "/firewall/nodes/*/rules", PL_CT_LIST, NULL, NULL, "the node's rules, in order: the whole list", false },
	{ "/firewall/nodes/*/rules/*", PL_CT_MAP, NULL, NULL, "a rule", false },
	{ "/backups", PL_CT_LIST, NULL, NULL, "scheduled vzdump backup jobs (/cluster/backup), planned and applied like guests (docs/day2.md)", false },
	{ "/backups/*", PL_CT_MAP, NULL, NULL, "a backup job", false },
	{ "/backups/*/id", PL_CT_STRING, NULL, NULL, "job id (letters, digits, '-' and '_', a letter first); unique", true },
	{ "/backups/*/schedule", PL_CT_STRING, NULL, NULL, "when it runs: a PVE calendar event ('daily', 'mon..fri 02:30'), checked by validate", true },
	{ "/backups/*/storage", PL_CT_STRING, NULL, NULL, "storage the archives go to (content 'backup')", true },
	{ "/backups/*/mode", PL_CT_ENUM, NULL, "snapshot|suspend|stop", "how a running guest is read (PVE's default: snapshot)", false },
	{ "/backups/*/compress", PL_CT_ENUM, NULL, "0|1|gzip|lzo|zstd", "compression (PVE's default: 0, none; zstd is what most want)", false },
	{ "/backups/*/node", PL_CT_STRING, NULL, NULL, "run only on this node (default: every node, each backing up its own guests)", false },
	{ "/backups/*/all", PL_CT_BOOL, NULL, NULL, "every guest of the cluster (less exclude)", false },
	{ "/backups/*/guests", PL_CT_LIST, NULL, NULL, "guests it backs up, by name or vmid", false },
	{ "/backups/*/guests/*", PL_CT_SCALAR, NULL, NULL, "a guest name or vmid", false },
	{ "/backups/*/tags", PL_CT_LIST, NULL, NULL, "every guest with one of these tags, resolved to vmids when planning (PVE jobs have no tag selection: a guest tagged later joins at the next apply)", false },
	{ "/backups/*/tags/*", PL_CT_STRING, NULL, NULL, "a tag", false },
	{ "/backups/*/pool", PL_CT_STRING, NULL, NULL, "every guest of this resource pool (PVE's own pool selection: guests joining later are included)", false },
	{ "/backups/*/exclude", PL_CT_LIST, NULL, NULL, "guests never backed up by it (with all or pool), by name or vmid", false },
	{ "/backups/*/exclude/*", PL_CT_SCALAR, NULL, NULL, "a guest name or vmid", false },
	{ "/backups/*/keep", PL_CT_MAP, NULL, NULL, "retention (prune-backups); absent: the storage's own", false },
	{ "/backups/*/keep/last", PL_CT_INT, NULL, "0..1000000", "keep the newest N", false },
	{ "/backups/*/keep/hourly", PL_CT_INT, NULL, "0..1000000", "keep one per hour for N hours", false },
	{ "/backups/*/keep/daily", PL_CT_INT, NULL, "0..1000000", "keep one per day for N days", false },
	{ "/backups/*/keep/weekly", PL_CT_INT, NULL, "0..1000000", "keep one per week for N weeks", false },
	{ "/backups/*/keep/monthly", PL_CT_INT, NULL, "0..1000000", "keep one per month for N months", false },
	{ "/backups/*/keep/yearly", PL_CT_INT, NULL, "0..1000000", "keep one per year for N years", false },
	{ "/backups/*/keep/all", PL_CT_BOOL, NULL, NULL, "keep every backup (no pruning)", false },
	{ "/backups/*/notes_template", PL_CT_STRING, NULL, NULL, "notes of each archive, with {{guestname}}, {{vmid}}, {{node}}, {{cluster}}", false },
	{ "/backups/*/notification_mode", PL_CT_ENUM, NULL, "auto|legacy-sendmail|notification-system", "how the job reports", false },
	{ "/backups/*/enabled", PL_CT_BOOL, "true", NULL, "the job runs on its schedule", false },
	{ "/backups/*/comment", PL_CT_STRING, NULL, NULL, "comment; pvelab appends its marker [pvelab:<project>]", false },
	{ "/storages", PL_CT_LIST, NULL, NULL, "storages of the cluster (/storage, storage.cfg): dir, nfs, cifs, lvmthin, zfspool, pbs (docs/day2.md)", false },
	{ "/storages/*", PL_CT_MAP, NULL, NULL, "a storage", false },
	{ "/storages/*/name", PL_CT_STRING, NULL, NULL, "storage id; unique", true },
	{ "/storages/*/type", PL_CT_ENUM, NULL, "dir|nfs|cifs|lvmthin|zfspool|pbs", "storage type (fixed once made)", true },
	{ "/storages/*/content", PL_CT_LIST, NULL, NULL, "content types (backup, images, rootdir, iso, vztmpl, snippets, import)", false },
	{ "/storages/*/content/*", PL_CT_STRING, NULL, NULL, "a content type", false },
	{ "/storages/*/nodes", PL_CT_LIST, NULL, NULL, "nodes that have it (default: all)", false },
	{ "/storages/*/nodes/*", PL_CT_STRING, NULL, NULL, "a node", false },
	{ "/storages/*/shared", PL_CT_BOOL, NULL, NULL, "the same storage on every node (dir only; nfs, cifs and pbs are shared)", false },
	{ "/storages/*/disable", PL_CT_BOOL, NULL, NULL, "disabled", false },
	{ "/storages/*/path", PL_CT_STRING, NULL, NULL, "directory (dir) or mount point (nfs, cifs)", false },
	{ "/storages/*/server", PL_CT_STRING, NULL, NULL, "server (nfs, cifs, pbs)", false },
	{ "/storages/*/export", PL_CT_STRING, NULL, NULL, "NFS export", false },
	{ "/storages/*/share", PL_CT_STRING, NULL, NULL, "CIFS share", false },
	{ "/storages/*/username", PL_CT_STRING, NULL, NULL, "user (cifs; pbs as user@realm or a token)", false },
	{ "/storages/*/password_file", PL_CT_STRING, NULL, NULL, "file holding the password (cifs, pbs); read by apply when it sends it, never printed nor stored; not compared (PVE never shows it)", false },
	{ "/storages/*/datastore", PL_CT_STRING, NULL, NULL, "PBS datastore", false },
	{ "/storages/*/namespace", PL_CT_STRING, NULL, NULL, "PBS namespace", false },
	{ "/storages/*/fingerprint_file", PL_CT_STRING, NULL, NULL, "file holding the PBS server's certificate fingerprint; sent on create, never printed nor stored", false },
	{ "/storages/*/vgname", PL_CT_STRING, NULL, NULL, "LVM volume group (lvmthin)", false },
	{ "/storages/*/thinpool", PL_CT_STRING, NULL, NULL, "LVM thin pool (lvmthin)", false },
	{ "/storages/*/pool", PL_CT_STRING, NULL, NULL, "ZFS pool (zfspool)", false },
	{ "/storages/*/keep", PL_CT_MAP, NULL, NULL, "backup retention (prune-backups) of the storage; keys as backups' keep", false },
	{ "/storages/*/keep/last", PL_CT_INT, NULL, "0..1000000", "keep the newest N", false },
	{ "/storages/*/keep/hourly", PL_CT_INT, NULL, "0..1000000", "one per hour for N hours", false },
	{ "/storages/*/keep/daily", PL_CT_INT, NULL, "0..1000000", "one per day for N days", false },
	{ "/storages/*/keep/weekly", PL_CT_INT, NULL, "0..1000000", "one per week for N weeks", false },
	{ "/storages/*/keep/monthly", PL_CT_INT, NULL, "0..1000000", "one per month for N months", false },
	{ "/storages/*/keep/yearly", PL_CT_INT, NULL, "0..1000000", "one per year for N years", false },
	{ "/storages/*/keep/all", PL_CT_BOOL, NULL, NULL, "keep every backup", false },
	{ "/storages/*/options", PL_CT_DICT, NULL, NULL, "more storage options, as storage.cfg names them (mkdir, sparse, blocksize, smbversion, ...)", false },
	{ "/storages/*/options/*", PL_CT_SCALAR, NULL, NULL, "an option", false },
	{ "/storages/*/state", PL_CT_ENUM, "present", "present|absent", "absent: remove it from storage.cfg (data stays); refused while a guest uses it", false },
	{ "/pools", PL_CT_LIST, NULL, NULL, "resource pools (/pools); guests join one with their pool key", false },
	{ "/pools/*", PL_CT_MAP, NULL, NULL, "a pool", false },
	{ "/pools/*/name", PL_CT_STRING, NULL, NULL, "pool id; unique", true },
	{ "/pools/*/comment", PL_CT_STRING, NULL, NULL, "comment; pvelab appends its marker [pvelab:<project>]", false },
	{ "/templates", PL_CT_LIST, NULL, NULL, "LXC templates to download when missing (aplinfo), whether a guest uses them or not", false },
	{ "/templates/*", PL_CT_MAP, NULL, NULL, "a template", false },
	{ "/templates/*/storage", PL_CT_STRING, "local", NULL, "storage for templates", false },
	{ "/templates/*/template", PL_CT_STRING, NULL, NULL, "appliance name, e.g. debian-12-standard_12.7-1_amd64.tar.zst", true },
	{ "/templates/*/node", PL_CT_STRING, NULL, NULL, "node (default: every online node with the storage)", false },
	{ "/serve", PL_CT_MAP, NULL, NULL, "pvelab serve: the REST API (docs/serve.md)", false },
	{ "/serve/listen", PL_CT_LIST, NULL, NULL, "addresses to listen on, ADDR:PORT (default 127.0.0.1:8080); plain HTTP only on loopback, HTTPS elsewhere", false },
	{ "/serve/listen/*", PL_CT_STRING, NULL, NULL, "an address", false },
	{ "/serve/tls_cert", PL_CT_STRING, NULL, NULL, "certificate (PEM) for HTTPS (default: one issued by pvelab's local CA)", false },
	{ "/serve/tls_key", PL_CT_STRING, NULL, NULL, "its private key (PEM, mode 0600)", false },
	{ "/serve/max_header_bytes", PL_CT_INT, "16384", "1024..1048576", "bytes of request line and headers; more is refused", false },
	{ "/serve/max_body_bytes", PL_CT_INT, "1048576", "1024..67108864", "bytes of a request body; more is refused (413)", false },
	{ "/serve/request_timeout", PL_CT_INT, "30", "1..3600", "seconds a client may take to send a request, or stay idle between two", false },
	{ "/serve/max_connections", PL_CT_INT, "256", "1..100000", "client connections open at once", false },
	{ "/serve/event_ring", PL_CT_INT, "1024", "16..1000000", "events kept for clients that reconnect with Last-Event-ID; an older one gets a reset event", false },
	{ "/serve/status_interval", PL_CT_INT, "10", "1..3600", "seconds between two reads of the cluster's resource list (kept in memory; a guest whose state changed is synced at once)", false },
	{ "/serve/sync_interval", PL_CT_INT, "300", "10..86400", "seconds between two full syncs into the state store", false },
	{ "/serve/max_connections_per_client", PL_CT_INT, "32", "1..10000", "connections open at once from one address", false },
	{ "/serve/stream_buffer", PL_CT_INT, "65536", "4096..16777216", "bytes an event stream may have unsent; a client that reads slower waits for them, one that stops reading is closed after request_timeout", false },
	{ "/serve/drain_timeout", PL_CT_INT, "10", "1..3600", "seconds SIGTERM lets requests in flight and a running sync finish before stopping", false },
	{ "/checks", PL_CT_MAP, NULL, NULL, "health checks: defaults, the cluster's own checks, and targets outside the guests (docs/checks.md)", false },
	{ "/checks/interval", PL_CT_INT, "60", "1..86400", "seconds between probes of a check that sets none", false },
	{ "/checks/timeout", PL_CT_INT, "10", "1..300", "seconds a probe may take when its check sets none", false },
	{ "/checks/retries", PL_CT_INT, "0", "0..100", "failed probes in a row tolerated before a check is down", false },
	{ "/checks/concurrency", PL_CT_INT, "64", "1..10000", "probes in flight at once", false },
	{ "/checks/cluster", PL_CT_MAP, NULL, NULL, "the built-in checks of the cluster (need the API)", false },
	{ "/checks/cluster/node_offline", PL_CT_BOOL, "true", NULL, "a node that is not online is down", false },
	{ "/checks/cluster/guest_state", PL_CT_BOOL, "true", NULL, "a declared guest not in its declared state is down; its service checks are marked as caused by it", false },
	{ "/checks/cluster/storage_percent", PL_CT_INT, "90", "1..100", "a storage fuller than this is a warning (full: down)", false },
	{ "/checks/cluster/backup_days", PL_CT_INT, "0", "0..3650", "a warning when a declared guest's newest backup is older than this many days, or it has none (0: no check)", false },
	{ "/checks/cluster/cert_days", PL_CT_INT, "14", "0..3650", "warning when an API endpoint's certificate expires within this many days (0: no check)", false },
	{ "/checks/targets", PL_CT_LIST, NULL, NULL, "checks of things that are not guests' services (a BMC, a router, a web site)", false },
	{ "/checks/targets/*", PL_CT_MAP, NULL, NULL, "a check: the keys of a service's check, and", false },
	{ "/checks/targets/*/name", PL_CT_STRING, NULL, NULL, "check name; unique", true },
	{ "/checks/targets/*/port", PL_CT_INT, NULL, "1..65535", "port (default from the type: 80, 443, 53)", false },
	{ "/checks/targets/*/path", PL_CT_STRING, NULL, NULL, "HTTP path (default /)", false },
	{ "/proxy", PL_CT_MAP, NULL, NULL, "time-shift TLS proxy for old management controllers", false },
	{ "/proxy/listen", PL_CT_STRING, "127.0.0.1:8090", NULL, "shared listener (SNI/Host routing)", false },
	{ "/proxy/name", PL_CT_STRING, NULL, NULL, "certificate name for clients that send no SNI (default: the local address)", false },
	{ "/proxy/grace", PL_CT_INT, "10", "0..3600", "seconds open connections get to finish on shutdown", false },
	{ "/proxy/max_connections", PL_CT_INT, "512", "1..100000", "client connections open at once; more are closed at once", false },
	{ "/proxy/idle_timeout", PL_CT_INT, "300", "1..86400", "seconds a connection may move no byte before it is closed", false },
	{ "/proxy/handshake_timeout", PL_CT_INT, "30", "1..300", "seconds a client gets from connecting to a complete first request", false },
	{ "/proxy/targets", PL_CT_LIST, NULL, NULL, "upstream controllers", false },
	{ "/proxy/targets/*", PL_CT_MAP, NULL, NULL, "a target", false },
	{ "/proxy/targets/*/name", PL_CT_STRING, NULL, NULL, "target name", true },
	{ "/proxy/targets/*/upstream", PL_CT_STRING, NULL, NULL, "https://HOST[:PORT]", true },
	{ "/proxy/targets/*/listen", PL_CT_STRING, NULL, NULL, "own listener ADDR:PORT (else routed on proxy.listen)", false },
	{ "/proxy/targets/*/hostnames", PL_CT_LIST, NULL, NULL, "names routed to this target and put in its certificate", false },
	{ "/proxy/targets/*/hostnames/*", PL_CT_STRING, NULL, NULL, "a host name or IP", false },
	{ "/proxy/targets/*/ca_file", PL_CT_STRING, NULL, NULL, "the controller's CA or self-signed certificate", false },
	{ "/proxy/targets/*/verify_at", PL_CT_STRING, NULL, NULL, "verify the chain as of this date (YYYY-MM-DD)", false },
	{ "/proxy/targets/*/pin_sha256", PL_CT_STRING, NULL, NULL, "pinned certificate fingerprint", false },
	{ "/proxy/targets/*/ignore_time", PL_CT_BOOL, "false", NULL, "check chain and name but not dates", false },
	{ "/proxy/targets/*/insecure", PL_CT_BOOL, "false", NULL, "no verification at all (loud warning)", false },
	{ "/proxy/targets/*/min_tls", PL_CT_ENUM, "1.2", "1.0|1.1|1.2|1.3", "oldest TLS version to speak upstream", false },
	{ "/proxy/targets/*/ciphers", PL_CT_STRING, NULL, NULL, "OpenSSL cipher list for the upstream side", false },
	{ "/proxy/targets/*/weak_keys", PL_CT_BOOL, "false", NULL, "accept small keys and MD5/SHA-1 signatures in the controller's chain (loud warning)", false },
	{ "/proxy/targets/*/rewrite_location", PL_CT_BOOL, "true", NULL, "rewrite Location: headers that point upstream", false },
	END,
};
/* clang-format on */

static const struct {
	const char *prefix;
	const struct pl_config_key *keys;
	bool keep_required;
} parts[] = {
	{ "", top_keys, true },
	{ "/guests/*", guest_keys, true },
	{ "/defaults", guest_keys, false },
	{ "/guests/*/firewall/rules/*", fw_rule_keys, true },
	{ "/defaults/firewall/rules/*", fw_rule_keys, false },
	{ "/firewall/rules/*", fw_rule_keys, true },
	{ "/firewall/groups/*/rules/*", fw_rule_keys, true },
	{ "/firewall/nodes/*/rules/*", fw_rule_keys, true },
	{ "/firewall/host/rules/*", fw_rule_keys, true },
	{ "/guests/*/services/*", probe_keys, true },
	{ "/defaults/services/*", probe_keys, false },
	{ "/checks/targets/*", probe_keys, true },
};

const struct pl_config_key *
pl_config_schema(void)
{
	static struct pl_config_key *rows;
	static char **paths;
	size_t n = 3, i = 0, p = 0;

	if (rows)
		return rows;
	for (size_t k = 0; k < PL_ARRAY_LEN(parts); k++)
		for (const struct pl_config_key *r = parts[k].keys; r->path; r++)
			n++;
	rows = pl_calloc(n + 1, sizeof(*rows));
	paths = pl_calloc(n + 1, sizeof(*paths));
	rows[i++] = (struct pl_config_key){
		"/guests", PL_CT_LIST, NULL, NULL, "the guests this homelab should have", false
	};
	rows[i++] = (struct pl_config_key){ "/guests/*", PL_CT_MAP, NULL, NULL, "a guest", false };
	rows[i++] = (struct pl_config_key){
		"/defaults", PL_CT_MAP, NULL, NULL, "settings every guest gets unless it sets them",
		false
	};
	for (size_t k = 0; k < PL_ARRAY_LEN(parts); k++) {
		for (const struct pl_config_key *r = parts[k].keys; r->path; r++) {
			rows[i] = *r;
			paths[p] = pl_asprintf("%s%s", parts[k].prefix, r->path);
			rows[i].path = paths[p++];
			if (!parts[k].keep_required)
				rows[i].required = false;
			i++;
		}
	}
	return rows;
}

const char *
pl_ctype_name(enum pl_ctype t)
{
	switch (t) {
	case PL_CT_MAP:
		return "mapping";
	case PL_CT_DICT:
		return "mapping";
	case PL_CT_LIST:
		return "list";
	case PL_CT_STRING:
		return "string";
	case PL_CT_INT:
		return "integer";
	case PL_CT_NUM:
		return "number";
	case PL_CT_BOOL:
		return "boolean";
	case PL_CT_ENUM:
		return "one of";
	case PL_CT_SIZE:
		return "size";
	case PL_CT_MIB:
		return "memory size";
	case PL_CT_RANGE:
		return "range";
	case PL_CT_SCALAR:
		return "scalar";
	}
	return "value";
}
