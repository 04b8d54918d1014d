/*
 * Host checks: judge the facts of facts.c for PCI/GPU passthrough and say,
 * for each finding, the evidence and the exact fix (file and line, commands,
 * whether update-initramfs and a reboot are needed).
 */
#include "core/common.h"
#include "host/host.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/pci.h"
#include "core/str.h"

/* Drivers that take a GPU or its audio function for the host. */
static const char *const host_drivers[] = { "nouveau", "nvidia",        "nvidiafb",
					    "amdgpu",  "radeon",        "i915",
					    "xe",      "snd_hda_intel", NULL };

const char *
pl_host_iommu_params(const char *vendor)
{
	/* AMD's IOMMU is on by default; amd_iommu=on is not a kernel option. */
	return vendor && !strcmp(vendor, "amd") ? "iommu=pt" : "intel_iommu=on iommu=pt";
}

static bool
has_param(const char *cmdline, const char *param)
{
	size_t len = strlen(param);

	for (const char *p = cmdline; p && (p = strstr(p, param)) != NULL; p += len)
		if ((p == cmdline || p[-1] == ' ' || p[-1] == '"') &&
		    (p[len] == '\0' || p[len] == ' ' || p[len] == '"' || p[len] == '\n'))
			return true;
	return false;
}

char *
pl_host_cmdline_add(const char *line, const char *params, bool grub)
{
	struct pl_buf add;
	char *copy = pl_strdup(params), *out = NULL;
	const char *end;

	pl_buf_init(&add, 0);
	for (char *tok = copy, *sp; tok && *tok; tok = sp) {
		if ((sp = strchr(tok, ' ')) != NULL)
			*sp++ = '\0';
		if (!has_param(line, tok))
			pl_buf_addf(&add, " %s", tok);
	}
	free(copy);
	if (add.len == 0)
		goto out;
	if (!grub) {
		size_t len = strlen(line);

		while (len && (line[len - 1] == ' ' || line[len - 1] == '\n'))
			len--;
		out = len ? pl_asprintf("%.*s%s", (int)len, line, add.data) :
			    pl_strdup(add.data + 1);
		goto out;
	}
	end = strrchr(line, '"');
	if (end == NULL || end == strchr(line, '"'))
		out = pl_asprintf("GRUB_CMDLINE_LINUX_DEFAULT=\"%s\"", add.data + 1);
	else
		out = pl_asprintf("%.*s%s%s", (int)(end - line), line,
				  end[-1] == '"' ? add.data + 1 : add.data, end);
out:
	pl_buf_release(&add);
	return out;
}

static json_t *
finding(json_t *list, const char *id, const char *subject, const char *status, const char *title)
{
	json_t *f = json_pack("{s:s,s:s,s:s,s:o,s:[]}", "id", id, "subject", subject, "status",
			      status, "title", pl_json_string_lossy(title), "evidence");

	json_array_append_new(list, f);
	return f;
}

static void evidence(json_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
evidence(json_t *f, const char *fmt, ...)
{
	va_list ap;
	struct pl_buf b;

	pl_buf_init(&b, 0);
	va_start(ap, fmt);
	pl_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	json_array_append_new(json_object_get(f, "evidence"), pl_json_string_lossy(b.data));
	pl_buf_release(&b);
}

/* fix: file (or NULL), line (0: a new line), the change, commands (NULL
 * terminated), whether update-initramfs and a reboot are needed. */
static void
fix(json_t *f, const char *file, long long line, const char *change, const char *const *commands,
    bool initramfs, bool reboot)
{
	json_t *fx = json_pack("{s:o,s:b,s:b,s:[]}", "change", pl_json_string_lossy(change),
			       "initramfs", initramfs, "reboot", reboot, "commands");

	if (file) {
		json_object_set_new(fx, "file", json_string(file));
		if (line > 0)
			json_object_set_new(fx, "line", json_integer(line));
	}
	for (size_t i = 0; commands && commands[i]; i++)
		json_array_append_new(json_object_get(fx, "commands"), json_string(commands[i]));
	json_object_set_new(f, "fix", fx);
}

static const char *
bl_refresh(const json_t *facts)
{
	const char *kind = pl_json_str(json_object_get(facts, "bootloader"), "kind");

	return kind && !strcmp(kind, "systemd-boot") ? "proxmox-boot-tool refresh" : "update-grub";
}

static void
check_cpu(const json_t *facts, json_t *out)
{
	const json_t *cpu = json_object_get(facts, "cpu");
	const char *virt = pl_json_str(cpu, "virt"), *vendor = pl_json_str(cpu, "vendor");
	json_t *f;

	if (!json_is_true(json_object_get(cpu, "read"))) {
		f = finding(out, "cpu-virt", "cpu", "warn", "/proc/cpuinfo could not be read");
		return;
	}
	if (virt && *virt) {
		f = finding(out, "cpu-virt", "cpu", "pass",
			    "the CPU offers hardware virtualisation");
		evidence(f, "/proc/cpuinfo: %s, flag %s", pl_json_str_or(cpu, "model", vendor),
			 virt);
		return;
	}
	f = finding(out, "cpu-virt", "cpu", "fail",
		    "the CPU shows no vmx/svm flag: virtualisation is off in the firmware");
	evidence(f, "/proc/cpuinfo: %s, neither vmx nor svm", pl_json_str_or(cpu, "model", vendor));
	fix(f, NULL, 0,
	    !strcmp(vendor, "amd") ? "enable SVM Mode in the firmware setup" :
				     "enable Intel Virtualization Technology (VT-x) in the "
				     "firmware setup",
	    NULL, false, true);
}

static void
check_bootloader(const json_t *facts, json_t *out)
{
	const json_t *bl = json_object_get(facts, "bootloader");
	const char *kind = pl_json_str(bl, "kind"), *file = pl_json_str(bl, "file");
	json_t *f = finding(out, "boot-loader", "boot",
			    json_is_true(json_object_get(bl, "exists")) ? "pass" : "warn", "");
	char *title = pl_asprintf("the node boots with %s: kernel parameters go in %s",
				  !strcmp(kind, "grub") ? "GRUB" : "systemd-boot", file);

	json_object_set_new(f, "title", json_string(title));
	free(title);
	if (json_object_get(bl, "status"))
		evidence(f, "proxmox-boot-tool status: %s",
			 strstr(pl_json_str(bl, "status"), "configured with:") ?
				 strstr(pl_json_str(bl, "status"), "configured with:") :
				 pl_json_str(bl, "status"));
	else
		evidence(f, "no saved output of proxmox-boot-tool status: assuming GRUB");
	if (!json_is_true(json_object_get(bl, "exists")))
		evidence(f, "%s does not exist", file);
}

static void
check_iommu(const json_t *facts, json_t *out, bool *active)
{
	const json_t *io = json_object_get(facts, "iommu"),
		     *bl = json_object_get(facts, "bootloader");
	const char *vendor = pl_json_str(json_object_get(facts, "cpu"), "vendor");
	const char *cmdline = pl_json_str(json_object_get(facts, "kernel"), "cmdline");
	const char *params = pl_host_iommu_params(vendor), *file = pl_json_str(bl, "file");
	const json_t *line = json_object_get(bl, "line"), *m;
	bool grub = !strcmp(pl_json_str(bl, "kind"), "grub");
	char *newline = NULL, *running_add;
	const char *cmds[] = { bl_refresh(facts), NULL };
	size_t i, nunits = json_array_size(json_object_get(io, "units"));
	json_int_t groups = json_integer_value(json_object_get(io, "groups"));
	json_t *f;

	*active = nunits > 0 && groups > 0;
	if (line)
		newline = pl_host_cmdline_add(pl_json_str(line, "text"), params, grub);
	else
		newline = pl_host_cmdline_add(grub ? "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"" : "",
					      params, grub);
	running_add = pl_host_cmdline_add(cmdline ? cmdline : "", params, false);
	if (*active) {
		f = finding(out, "iommu", "iommu", "pass", "the IOMMU is on");
		evidence(f, "/sys/class/iommu: %zu unit(s); /sys/kernel/iommu_groups: %lld groups",
			 nunits, (long long)groups);
	} else {
		f = finding(out, "iommu", "iommu", "fail",
			    groups ? "the IOMMU is off: no /sys/class/iommu unit" :
				     "the IOMMU is off: /sys/kernel/iommu_groups is empty");
		evidence(f, "/proc/cmdline: %s", cmdline ? cmdline : "(not read)");
		if (running_add && strcmp(vendor, "amd"))
			fix(f, file, line ? pl_json_int(line, "no", 0) : 0,
			    newline ? newline : pl_json_str(line, "text"), cmds, false, true);
		else
			fix(f, NULL, 0,
			    !strcmp(vendor, "amd") ?
				    "the kernel asks for the IOMMU: enable IOMMU "
				    "(AMD-Vi) in the firmware setup" :
				    "the kernel asks for the IOMMU: enable VT-d in "
				    "the firmware setup",
			    NULL, false, true);
	}
	json_array_foreach(json_object_get(io, "messages"), i, m)
		if (i < 4 && (strstr(json_string_value(m), "IOMMU") ||
			      strstr(json_string_value(m), "AMD-Vi")))
			evidence(f, "kernel: %s", json_string_value(m));
	/* The boot loader's file and the running command line agree? */
	if (line && newline == NULL && running_add) {
		f = finding(out, "kernel-params", "boot", "warn",
			    "the IOMMU parameters are in the boot loader but not in the running "
			    "kernel: a reboot is pending");
		evidence(f, "%s:%lld: %s", file, pl_json_int(line, "no", 0),
			 pl_json_str(line, "text"));
		evidence(f, "/proc/cmdline: %s", cmdline ? cmdline : "(not read)");
		fix(f, NULL, 0, "reboot the node", cmds, false, true);
	} else if (newline && !running_add) {
		f = finding(out, "kernel-params", "boot", "warn",
			    "the running kernel has the IOMMU parameters but the boot loader's "
			    "file does not: the next kernel update loses them");
		evidence(f, "/proc/cmdline: %s", cmdline);
		fix(f, file, line ? pl_json_int(line, "no", 0) : 0, newline, cmds, false, false);
	} else if (newline == NULL && running_add == NULL) {
		f = finding(out, "kernel-params", "boot", "pass",
			    "the kernel command line has the IOMMU parameters");
		evidence(f, "/proc/cmdline: %s", cmdline);
	}
	free(newline);
	free(running_add);
}

static bool
modprobe_has(const json_t *facts, const char *needle, const json_t **where)
{
	const json_t *l;
	size_t i;

	json_array_foreach(json_object_get(facts, "modprobe"), i, l)
		if (strstr(pl_json_str(l, "text"), needle)) {
			if (where)
				*where = l;
			return true;
		}
	return false;
}

static void
check_remapping(const json_t *facts, json_t *out)
{
	const json_t *io = json_object_get(facts, "iommu"), *unsafe = NULL;
	const char *remap = pl_json_str(io, "remapping");
	json_t *f;

	if (!strcmp(remap, "enabled")) {
		f = finding(out, "interrupt-remapping", "iommu", "pass",
			    "interrupt remapping is on");
		evidence(f, "kernel: %s", pl_json_str(io, "remapping_evidence"));
		return;
	}
	if (modprobe_has(facts, "allow_unsafe_interrupts=1", &unsafe)) {
		f = finding(out, "interrupt-remapping", "iommu", "warn",
			    "no interrupt remapping: passthrough runs with unsafe interrupts");
		evidence(f, "%s:%lld: %s", pl_json_str(unsafe, "file"),
			 pl_json_int(unsafe, "line", 0), pl_json_str(unsafe, "text"));
		return;
	}
	if (!json_is_true(json_object_get(io, "dmesg_read"))) {
		f = finding(out, "interrupt-remapping", "iommu", "warn",
			    "the kernel messages could not be read: interrupt remapping unknown");
		return;
	}
	f = finding(out, "interrupt-remapping", "iommu", "fail",
		    "interrupt remapping is off: VMs with passthrough devices will not start");
	evidence(f, "kernel: %s",
		 pl_json_str_or(io, "remapping_evidence", "no 'remapping enabled' message"));
	fix(f, "/etc/modprobe.d/iommu_unsafe_interrupts.conf", 0,
	    "options vfio_iommu_type1 allow_unsafe_interrupts=1 (or turn on x2APIC / interrupt "
	    "remapping in the firmware, which is safer)",
	    (const char *const[]){ "update-initramfs -u -k all", NULL }, true, true);
}

/* Kernels since 6.2 have vfio_virqfd built into vfio. */
static bool
needs_virqfd(const json_t *facts)
{
	const char *rel = pl_json_str(json_object_get(facts, "kernel"), "release");
	int major = 0, minor = 0;

	if (rel == NULL || sscanf(rel, "%d.%d", &major, &minor) != 2)
		return false;
	return major < 6 || (major == 6 && minor < 2);
}

static void
check_modules(const json_t *facts, json_t *out)
{
	static const char *const want[] = { "vfio", "vfio_iommu_type1", "vfio_pci", "vfio_virqfd" };
	struct pl_buf missing;
	const json_t *l;
	size_t i, k;
	json_t *f;

	pl_buf_init(&missing, 0);
	for (k = 0; k < PL_ARRAY_LEN(want); k++) {
		bool found = false;

		if (k == 3 && !needs_virqfd(facts))
			continue;
		json_array_foreach(json_object_get(facts, "modules"), i, l) {
			char name[64];

			if (sscanf(pl_json_str(l, "text"), " %63s", name) == 1) {
				for (char *p = name; *p; p++)
					if (*p == '-')
						*p = '_';
				if (!strcmp(name, want[k]))
					found = true;
			}
		}
		if (!found)
			pl_buf_addf(&missing, "%s%s", missing.len ? " " : "", want[k]);
	}
	if (missing.len == 0) {
		f = finding(out, "vfio-modules", "vfio", "pass", "the vfio modules load at boot");
		json_array_foreach(json_object_get(facts, "modules"), i, l)
			if (strstr(pl_json_str(l, "text"), "vfio"))
				evidence(f, "%s:%lld: %s", pl_json_str(l, "file"),
					 pl_json_int(l, "line", 0), pl_json_str(l, "text"));
	} else {
		char *change = pl_asprintf("add the lines: %s", missing.data);

		f = finding(out, "vfio-modules", "vfio", "warn",
			    "the vfio modules are not loaded at boot: a host driver may take the "
			    "card first");
		evidence(f, "missing from /etc/modules and /etc/modules-load.d: %s", missing.data);
		fix(f, "/etc/modules", 0, change,
		    (const char *const[]){ "update-initramfs -u -k all", NULL }, true, true);
		free(change);
	}
	pl_buf_release(&missing);
}

bool
pl_host_same_slot(const char *a, const char *b)
{
	size_t la, lb;

	const char *c;

	if ((c = strchr(a, ':')) != NULL && strchr(c + 1, ':'))
		a = c + 1;
	if ((c = strchr(b, ':')) != NULL && strchr(c + 1, ':'))
		b = c + 1;
	la = strcspn(a, ".");
	lb = strcspn(b, ".");
	return la == lb && !strncmp(a, b, la);
}

static const char *
class_name(const char *cls)
{
	static const struct {
		const char *prefix, *name;
	} names[] = { { "0300", "VGA compatible controller" },
		      { "0302", "3D controller" },
		      { "0380", "Display controller" },
		      { "0403", "Audio device" },
		      { "0c03", "USB controller" },
		      { "0106", "SATA controller" },
		      { "0604", "PCI bridge" },
		      { "0600", "Host bridge" },
		      { "0200", "Ethernet controller" },
		      { "0280", "Network controller" },
		      { "0c80", "Serial bus controller" },
		      { "0108", "NVMe controller" } };

	for (size_t i = 0; i < PL_ARRAY_LEN(names); i++)
		if (pl_str_startswith(cls, names[i].prefix))
			return names[i].name;
	return "device";
}

/* The vendor:device ids of every function in slot, comma-separated. */
static void
slot_ids(const json_t *facts, const char *slot, struct pl_buf *ids)
{
	const json_t *d;
	size_t i;

	json_array_foreach(json_object_get(facts, "pci"), i, d)
		if (pl_host_same_slot(pl_json_str(d, "addr"), slot))
			pl_buf_addf(ids, "%s%s:%s", ids->len ? "," : "", pl_json_str(d, "vendor"),
				    pl_json_str(d, "device"));
}

/* Whether an ids= line names every id of the comma-separated ids. */
static bool
ids_cover(const json_t *idsline, const char *ids)
{
	char *copy = pl_strdup(ids);
	bool all = true;

	for (char *tok = copy, *c; tok; tok = c) {
		if ((c = strchr(tok, ',')) != NULL)
			*c++ = '\0';
		all &= strcasestr(pl_json_str(idsline, "text"), tok) != NULL;
	}
	free(copy);
	return all;
}

/* Whether the GPU at addr is meant for passthrough. */
static bool
gpu_wanted(const json_t *facts, const json_t *want, const json_t *gpu)
{
	const json_t *devs = json_object_get(json_object_get(want, "vfio"), "devices"), *v;
	const char *addr = pl_json_str(gpu, "addr");
	char id[16];
	size_t i;

	snprintf(id, sizeof(id), "%s:%s", pl_json_str(gpu, "vendor"), pl_json_str(gpu, "device"));
	if (devs) {
		json_array_foreach(devs, i, v)
			if (json_is_string(v) && (pl_host_same_slot(json_string_value(v), addr) ||
						  !strcasecmp(json_string_value(v), id)))
				return true;
		return false;
	}
	if (!json_is_true(json_object_get(gpu, "boot_vga")))
		return true;
	return modprobe_has(facts, id, NULL) ||
	       !strcmp(pl_json_str_or(gpu, "driver", ""), "vfio-pci");
}

static void
check_gpu(const json_t *facts, const json_t *gpu, bool iommu_on, json_t *out)
{
	const char *addr = pl_json_str(gpu, "addr"), *group = pl_json_str(gpu, "group");
	const json_t *d, *idsline = NULL;
	struct pl_buf ids, held, others;
	char id[16];
	size_t i;
	json_t *f;

	pl_buf_init(&ids, 0);
	pl_buf_init(&held, 0);
	pl_buf_init(&others, 0);
	slot_ids(facts, addr, &ids);
	snprintf(id, sizeof(id), "%s:%s", pl_json_str(gpu, "vendor"), pl_json_str(gpu, "device"));

	/* Its IOMMU group holds its own functions and bridges only. */
	if (iommu_on && group == NULL) {
		f = finding(out, "gpu-group", addr, "fail", "the GPU is in no IOMMU group");
	} else if (iommu_on) {
		json_array_foreach(json_object_get(facts, "pci"), i, d) {
			const char *g = pl_json_str(d, "group");

			if (g == NULL || strcmp(g, group) ||
			    pl_host_same_slot(pl_json_str(d, "addr"), addr) ||
			    pl_str_startswith(pl_json_str(d, "class"), "0604"))
				continue;
			pl_buf_addf(&others, "%s%s %s [%s:%s]%s%s", others.len ? "; " : "",
				    pl_json_str(d, "addr"), class_name(pl_json_str(d, "class")),
				    pl_json_str(d, "vendor"), pl_json_str(d, "device"),
				    json_object_get(d, "driver") ? " driver " : "",
				    pl_json_str_or(d, "driver", ""));
		}
		if (others.len) {
			char *title = pl_asprintf("IOMMU group %s also holds other devices: all of "
						  "them would go to the VM with the GPU",
						  group);

			f = finding(out, "gpu-group", addr, "fail", title);
			free(title);
			evidence(f, "/sys/kernel/iommu_groups/%s: %s", group, others.data);
			fix(f, NULL, 0,
			    "move the card to a slot wired to the CPU (its own group), update the "
			    "firmware, or - giving up isolation between these devices - add "
			    "pcie_acs_override=downstream,multifunction to the kernel command line",
			    NULL, false, true);
		} else {
			f = finding(out, "gpu-group", addr, "pass",
				    "the GPU's IOMMU group holds only the card's own functions");
			evidence(f, "/sys/kernel/iommu_groups/%s: %s", group, ids.data);
		}
	}

	/* options vfio-pci ids= names every function, the audio one too. */
	json_array_foreach(json_object_get(facts, "modprobe"), i, d) {
		const char *t = pl_json_str(d, "text");

		if ((strstr(t, "vfio-pci") || strstr(t, "vfio_pci")) && strstr(t, "ids=") &&
		    strcasestr(t, id))
			idsline = d;
	}
	/* Which driver holds each function. */
	json_array_foreach(json_object_get(facts, "pci"), i, d) {
		const char *drv = pl_json_str(d, "driver");

		if (!pl_host_same_slot(pl_json_str(d, "addr"), addr))
			continue;
		for (size_t k = 0; drv && host_drivers[k]; k++)
			if (!strcmp(drv, host_drivers[k]))
				pl_buf_addf(&held, "%s%s %s [%s:%s] is held by %s",
					    held.len ? "; " : "", pl_json_str(d, "addr"),
					    class_name(pl_json_str(d, "class")),
					    pl_json_str(d, "vendor"), pl_json_str(d, "device"),
					    drv);
	}
	if (held.len && idsline && ids_cover(idsline, ids.data) &&
	    modprobe_has(facts, "pre: vfio-pci", NULL)) {
		f = finding(out, "gpu-driver", addr, "warn",
			    "a host driver holds the card until the next boot: vfio-pci is set "
			    "to claim it");
		evidence(f, "%s", held.data);
		evidence(f, "%s:%lld: %s", pl_json_str(idsline, "file"),
			 pl_json_int(idsline, "line", 0), pl_json_str(idsline, "text"));
		fix(f, NULL, 0, "reboot the node (after update-initramfs, if not run yet)",
		    (const char *const[]){ "update-initramfs -u -k all", NULL }, true, true);
	} else if (held.len) {
		const char *hostdrv = pl_json_str(gpu, "driver");
		char *change;

		if (hostdrv == NULL || !strcmp(hostdrv, "vfio-pci"))
			hostdrv = "snd_hda_intel";
		change = pl_asprintf("add the lines: options vfio-pci ids=%s / softdep %s pre: "
				     "vfio-pci (or blacklist %s when the host needs no such card)",
				     ids.data, hostdrv, hostdrv);
		f = finding(out, "gpu-driver", addr, "fail",
			    "a host driver holds the card: vfio-pci must claim it at boot");
		evidence(f, "%s", held.data);
		fix(f, "/etc/modprobe.d/vfio.conf", 0, change,
		    (const char *const[]){ "update-initramfs -u -k all", NULL }, true, true);
		free(change);
	} else {
		f = finding(out, "gpu-driver", addr, "pass",
			    "no host driver holds the card's functions");
		json_array_foreach(json_object_get(facts, "pci"), i, d)
			if (pl_host_same_slot(pl_json_str(d, "addr"), addr))
				evidence(f, "%s [%s:%s]: %s", pl_json_str(d, "addr"),
					 pl_json_str(d, "vendor"), pl_json_str(d, "device"),
					 pl_json_str_or(d, "driver", "no driver"));
	}

	if (idsline) {
		struct pl_buf lack;
		char *copy = pl_strdup(ids.data);

		pl_buf_init(&lack, 0);
		for (char *tok = copy, *c; tok; tok = c) {
			if ((c = strchr(tok, ',')) != NULL)
				*c++ = '\0';
			if (!strcasestr(pl_json_str(idsline, "text"), tok))
				pl_buf_addf(&lack, "%s%s", lack.len ? "," : "", tok);
		}
		if (lack.len) {
			char *change =
				pl_asprintf("%s,%s", pl_json_str(idsline, "text"), lack.data);

			f = finding(out, "gpu-ids", addr, "warn",
				    "options vfio-pci ids= lacks some of the card's functions (its "
				    "audio): the host keeps them");
			evidence(f, "%s:%lld: %s", pl_json_str(idsline, "file"),
				 pl_json_int(idsline, "line", 0), pl_json_str(idsline, "text"));
			evidence(f, "the card's functions: %s", ids.data);
			fix(f, pl_json_str(idsline, "file"), pl_json_int(idsline, "line", 0),
			    change, (const char *const[]){ "update-initramfs -u -k all", NULL },
			    true, true);
			free(change);
		} else {
			f = finding(out, "gpu-ids", addr, "pass",
				    "options vfio-pci ids= names all the card's functions");
			evidence(f, "%s:%lld: %s", pl_json_str(idsline, "file"),
				 pl_json_int(idsline, "line", 0), pl_json_str(idsline, "text"));
		}
		pl_buf_release(&lack);
		free(copy);
	}
	pl_buf_release(&ids);
	pl_buf_release(&held);
	pl_buf_release(&others);
}

/* One hostpci entry of a VM: the device (or mapping) exists, all its
 * functions go along, and the VM has the machine type and firmware it needs.
 * Each problem is a finding of its own; none is one pass. */
static void
check_hostpci(const json_t *facts, const json_t *want, const json_t *vm, const json_t *hp,
	      json_t *out)
{
	char mapped[256];
	const char *value = pl_json_str(hp, "value"), *machine = pl_json_str(vm, "machine");
	const char *bios = pl_json_str(vm, "bios"), *file = pl_json_str(vm, "file");
	const char *hostname = pl_json_str(facts, "hostname"), *key = pl_json_str(hp, "key");
	char *subject = pl_asprintf("vm %s %s", pl_json_str(vm, "vmid"), key);
	char *copy = pl_strdup(value), *host = NULL, *mapping = NULL, *src;
	bool pcie = false, gpu = false;
	size_t i, before = json_array_size(out);
	const json_t *d, *m;
	json_t *f;

	src = pl_asprintf("%s: %s: %s", file, key, value);
	for (char *tok = copy, *c; tok; tok = c) {
		if ((c = strchr(tok, ',')) != NULL)
			*c++ = '\0';
		if (pl_str_startswith(tok, "host="))
			host = tok + 5;
		else if (pl_str_startswith(tok, "mapping="))
			mapping = tok + 8;
		else if (!strcmp(tok, "pcie=1"))
			pcie = true;
		else if (strchr(tok, '=') == NULL && tok == copy)
			host = tok;
	}
	if (mapping) {
		const json_t *found = NULL;
		char node[256];

		/* the cluster's, else the one the config declares */
		json_array_foreach(json_object_get(facts, "mappings"), i, m)
			if (!strcmp(pl_json_str_or(m, "name", ""), mapping))
				found = m;
		json_array_foreach(found ? NULL : json_object_get(want, "pci_mappings"), i, m)
			if (!strcmp(pl_json_str_or(m, "name", ""), mapping))
				found = m;
		json_array_foreach(json_object_get(found, "map"), i, m) {
			const char *s = json_string_value(m);

			if (host == NULL && s &&
			    (!hostname || !pl_pci_prop(s, "node", node, sizeof(node)) ||
			     !strcmp(node, hostname)) &&
			    pl_pci_prop(s, "path", mapped, sizeof(mapped)))
				host = mapped;
			else if (host == NULL && json_is_object(m) &&
				 (!hostname || !strcmp(pl_json_str_or(m, "node", ""), hostname)) &&
				 pl_json_str(m, "path")) {
				snprintf(mapped, sizeof(mapped), "%s", pl_json_str(m, "path"));
				host = mapped;
			}
		}
		if (host == NULL) {
			f = finding(out, "vm-mapping", subject, "fail",
				    found ? "the PCI mapping it uses has no device on this node" :
					    "the PCI mapping it uses does not exist");
			evidence(f, "%s", src);
			fix(f, "/etc/pve/mapping/pci.cfg", 0,
			    "map the device (Datacenter > Resource Mappings, or pci_mappings: "
			    "under "
			    "hosts: in pvelab.yaml)",
			    NULL, false, false);
		}
	}
	if (host) {
		char addr[32];
		size_t hl = strcspn(host, ",; ");
		bool whole = memchr(host, '.', hl) == NULL, other_passed = false;
		int funcs = 0;
		const json_t *h2;

		snprintf(addr, sizeof(addr), "%.*s", (int)(hl < 20 ? hl : 20), host);
		json_array_foreach(json_object_get(facts, "pci"), i, d)
			if (pl_host_same_slot(pl_json_str(d, "addr"), addr)) {
				funcs++;
				gpu |= pl_str_startswith(pl_json_str(d, "class"), "03");
			}
		json_array_foreach(json_object_get(vm, "hostpci"), i, h2)
			if (h2 != hp && pl_host_same_slot(pl_json_str(h2, "value"), addr))
				other_passed = true;
		if (funcs == 0) {
			f = finding(out, "vm-device", subject, "fail",
				    "no such PCI device on this node");
			evidence(f, "%s", src);
		} else if (!whole && funcs > 1 && !other_passed) {
			char *change = pl_asprintf("%s: %.*s%s", key, (int)strcspn(addr, "."), addr,
						   value + strcspn(value, ","));

			f = finding(out, "vm-functions", subject, "warn",
				    "only one function of a multi-function card is passed: its "
				    "audio stays on the host");
			evidence(f, "%s", src);
			fix(f, file, 0, change, NULL, false, false);
			free(change);
		}
	}
	if (pcie && (machine == NULL || !strstr(machine, "q35"))) {
		f = finding(out, "vm-machine", subject, "fail",
			    "pcie=1 needs the q35 machine type");
		evidence(f, "%s: machine: %s", file, machine ? machine : "i440fx (the default)");
		fix(f, file, 0, "machine: q35", NULL, false, false);
	}
	if (gpu && (bios == NULL || strcmp(bios, "ovmf"))) {
		f = finding(out, "vm-bios", subject, "warn",
			    "a GPU passed to a SeaBIOS VM: use OVMF (UEFI) with an EFI disk");
		evidence(f, "%s: bios: %s", file, bios ? bios : "seabios (the default)");
		fix(f, file, 0, "bios: ovmf (and add an efidisk0)", NULL, false, false);
	}
	if (json_array_size(out) == before) {
		f = finding(out, "vm-hostpci", subject, "pass",
			    gpu ? "the GPU is passed whole, to a q35/OVMF VM" :
				  "the device is passed");
		evidence(f, "%s", src);
		if (mapping)
			evidence(f, "mapping %s: %s", mapping, host);
	}
	free(src);
	free(copy);
	free(subject);
}

/* One node entry of a PCI mapping against the node's devices, as PVE's
 * Mapping/PCI.pm assert_valid checks it at VM start: each path's device
 * exists with the mapping's id and subsystem-id, the first path's IOMMU group
 * is the mapping's; a property sysfs has and the mapping lacks fails too. */
static void
check_map_entry(const json_t *facts, const char *name, const char *entry, bool declared,
		json_t *out)
{
	char path[256], want_id[32], want_grp[16], want_sub[32], *subject;
	bool has_grp = pl_pci_prop(entry, "iommugroup", want_grp, sizeof(want_grp));
	bool has_sub = pl_pci_prop(entry, "subsystem-id", want_sub, sizeof(want_sub));
	const char *where = declared ? "pci_mappings: in pvelab.yaml" : "/etc/pve/mapping/pci.cfg";
	json_t *problems = json_array(), *f;
	const json_t *first = NULL; /* the first path's device: what the entry should say */
	size_t idx = 0;

	if (!pl_pci_prop(entry, "path", path, sizeof(path)))
		path[0] = '\0';
	if (!pl_pci_prop(entry, "id", want_id, sizeof(want_id)))
		want_id[0] = '\0';
	subject = pl_asprintf("mapping %s", name);
	for (char *p = path, *semi; p && *p; p = semi, idx++) {
		char addr[sizeof(path) + 2], have[32];
		const json_t *dev = NULL, *d;
		size_t i;

		if ((semi = strchr(p, ';')) != NULL)
			*semi++ = '\0';
		/* the whole device: its function 0 */
		snprintf(addr, sizeof(addr), "%s%s", p, strchr(p, '.') ? "" : ".0");
		json_array_foreach(json_object_get(facts, "pci"), i, d)
			if (!strcasecmp(pl_json_str_or(d, "addr", ""), addr))
				dev = d;
		if (dev == NULL) {
			json_array_append_new(problems,
					      json_sprintf("pci device '%s' not found", addr));
			continue;
		}
		if (idx == 0)
			first = dev;
		snprintf(have, sizeof(have), "%s:%s", pl_json_str_or(dev, "vendor", ""),
			 pl_json_str_or(dev, "device", ""));
		if (strcasecmp(have, want_id))
			json_array_append_new(problems,
					      json_sprintf("%s is %s, the mapping says id=%s", addr,
							   have, want_id));
		if (idx == 0 && pl_json_str(dev, "group") && !has_grp)
			json_array_append_new(problems,
					      json_sprintf("iommugroup is missing: %s is in IOMMU "
							   "group %s",
							   addr, pl_json_str(dev, "group")));
		else if (idx == 0 && has_grp && strcmp(want_grp, pl_json_str_or(dev, "group", "?")))
			json_array_append_new(
				problems, json_sprintf("%s is in IOMMU group %s, the mapping says "
						       "iommugroup=%s",
						       addr, pl_json_str_or(dev, "group", "(none)"),
						       want_grp));
		if (pl_json_str(dev, "subsystem") && !has_sub)
			json_array_append_new(problems,
					      json_sprintf("subsystem-id is missing: %s has %s",
							   addr, pl_json_str(dev, "subsystem")));
		else if (has_sub && pl_json_str(dev, "subsystem") &&
			 strcasecmp(want_sub, pl_json_str(dev, "subsystem")))
			json_array_append_new(problems,
					      json_sprintf("%s has subsystem %s, the mapping says "
							   "subsystem-id=%s",
							   addr, pl_json_str(dev, "subsystem"),
							   want_sub));
	}
	if (json_array_size(problems) == 0) {
		f = finding(out, "pci-mapping", subject, "pass",
			    "the mapping names this node's device as it is");
		evidence(f, "%s: %s", where, entry);
	} else {
		const json_t *p;
		size_t i;
		char node[256], *change, *grp, *sub;

		if (!pl_pci_prop(entry, "node", node, sizeof(node)))
			node[0] = '\0';
		pl_pci_prop(entry, "path", path, sizeof(path)); /* the loop cut it */
		grp = first && pl_json_str(first, "group") ?
			      pl_asprintf(declared ? ", iommugroup: %s" : ",iommugroup=%s",
					  pl_json_str(first, "group")) :
			      pl_strdup("");
		sub = first && pl_json_str(first, "subsystem") ?
			      pl_asprintf(declared ? ", subsystem_id: \"%s\"" : ",subsystem-id=%s",
					  pl_json_str(first, "subsystem")) :
			      pl_strdup("");
		if (first == NULL)
			change = pl_asprintf("map '%s' to a device this node has (pvelab host "
					     "check --facts lists them)",
					     name);
		else if (declared)
			change = pl_asprintf("pci_mappings: %s, map: { node: %s, path: \"%s\", "
					     "id: \"%s:%s\"%s%s }",
					     name, node, path, pl_json_str_or(first, "vendor", ""),
					     pl_json_str_or(first, "device", ""), grp, sub);
		else
			change = pl_asprintf("%s: map id=%s:%s%s,node=%s,path=%s%s (pvesh set "
					     "/cluster/mapping/pci/%s --map ..., or Datacenter > "
					     "Resource Mappings)",
					     name, pl_json_str_or(first, "vendor", ""),
					     pl_json_str_or(first, "device", ""), grp, node, path,
					     sub, name);
		free(grp);
		free(sub);

		f = finding(out, "pci-mapping", subject, "fail",
			    "the mapping does not match the node's hardware: PVE refuses to start "
			    "VMs that pass it ('PCI device mapping invalid')");
		evidence(f, "%s: %s", where, entry);
		json_array_foreach(problems, i, p)
			evidence(f, "%s", json_string_value(p));
		fix(f, declared ? "pvelab.yaml" : "/etc/pve/mapping/pci.cfg", 0, change, NULL,
		    false, false);
		free(change);
	}
	json_decref(problems);
	free(subject);
}

/* Every PCI mapping with an entry for this node: the cluster's (pci.cfg)
 * and those the config declares (want's pci_mappings), declared ones
 * before they exist too. */
static void
check_mappings(const json_t *facts, const json_t *want, json_t *out)
{
	const char *host = pl_json_str(facts, "hostname");
	const json_t *m, *e;
	size_t i, k;
	char node[256];

	json_array_foreach(json_object_get(facts, "mappings"), i, m)
		json_array_foreach(json_object_get(m, "map"), k, e)
			if (host && pl_pci_prop(json_string_value(e), "node", node, sizeof(node)) &&
			    !strcmp(node, host))
				check_map_entry(facts, pl_json_str_or(m, "name", "?"),
						json_string_value(e), false, out);
	json_array_foreach(json_object_get(want, "pci_mappings"), i, m)
		json_array_foreach(json_object_get(m, "map"), k, e) {
			char *text;

			if (!host || strcmp(pl_json_str_or(e, "node", ""), host))
				continue;
			text = pl_pci_map_entry(e); /* as pci.cfg would hold it */
			check_map_entry(facts, pl_json_str_or(m, "name", "?"), text, true, out);
			free(text);
		}
}

json_t *
pl_host_check(const json_t *facts, const json_t *want)
{
	json_t *out = json_array();
	const json_t *d, *vm, *hp;
	bool iommu_on, any_gpu = false;
	size_t i, k;

	check_cpu(facts, out);
	check_bootloader(facts, out);
	check_iommu(facts, out, &iommu_on);
	if (iommu_on)
		check_remapping(facts, out);
	json_array_foreach(json_object_get(facts, "pci"), i, d)
		if (pl_str_startswith(pl_json_str(d, "class"), "03") &&
		    gpu_wanted(facts, want, d) && pl_str_endswith(pl_json_str(d, "addr"), ".0")) {
			if (!any_gpu)
				check_modules(facts, out);
			any_gpu = true;
			check_gpu(facts, d, iommu_on, out);
		}
	check_mappings(facts, want, out);
	json_array_foreach(json_object_get(facts, "vms"), i, vm)
		json_array_foreach(json_object_get(vm, "hostpci"), k, hp)
			check_hostpci(facts, want, vm, hp, out);
	return out;
}
