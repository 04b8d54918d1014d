/*
 * Host facts: what a Proxmox node's files, sysfs and kernel messages say
 * about passthrough readiness, gathered through a host reader into one JSON
 * object that the checks (check.c) and the planner (plan.c) judge.
 */
#include "core/common.h"
#include "host/host.h"
#include "host/reader.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

#define SMALL_MAX ((size_t)256 << 10)

/* Read path into a new string, NULL when missing or unreadable. */
static char *
slurp(struct pl_host_reader *r, const char *path, size_t max)
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
	if (pl_host_read(r, path, max, &b, NULL) != 0) {
		pl_buf_release(&b);
		return NULL;
	}
	return pl_buf_detach(&b, NULL);
}

/* Read a one-line sysfs value, trimmed. */
static char *
sysval(struct pl_host_reader *r, const char *dir, const char *name)
{
	char *path = pl_asprintf("%s/%s", dir, name), *v = slurp(r, path, 4096);

	free(path);
	if (v)
		v[strcspn(v, "\r\n")] = '\0';
	return v;
}

static const char *
basename_of(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* Call fn for each line of text with its 1-based number; line is writable
 * and without its newline. */
static void
each_line(char *text, void (*fn)(char *line, int no, void *arg), void *arg)
{
	int no = 1;

	for (char *p = text, *nl; p && *p; p = nl, no++) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		fn(p, no, arg);
	}
}

static void
cpu_line(char *line, int no, void *arg)
{
	json_t *cpu = arg;
	char *colon = strchr(line, ':');
	const char *v;

	if (colon == NULL || json_object_get(cpu, "done"))
		return;
	v = colon + 1 + strspn(colon + 1, " \t");
	if (pl_str_startswith(line, "vendor_id"))
		json_object_set_new(cpu, "vendor",
				    json_string(!strcmp(v, "GenuineIntel") ? "intel" :
						!strcmp(v, "AuthenticAMD") ? "amd" :
									     "other"));
	else if (pl_str_startswith(line, "model name"))
		json_object_set_new(cpu, "model", pl_json_string_lossy(v));
	else if (pl_str_startswith(line, "flags")) {
		char *f = pl_asprintf(" %s ", v);

		json_object_set_new(cpu, "virt",
				    json_string(strstr(f, " vmx ") ? "vmx" :
						strstr(f, " svm ") ? "svm" :
								     ""));
		free(f);
		json_object_set_new(cpu, "done", json_true()); /* the first CPU is enough */
	}
}

static json_t *
cpu_facts(struct pl_host_reader *r)
{
	json_t *cpu = json_object();
	char *text = slurp(r, "/proc/cpuinfo", PL_HOST_READ_MAX);

	json_object_set_new(cpu, "vendor", json_string("unknown"));
	if (text)
		each_line(text, cpu_line, cpu);
	json_object_del(cpu, "done");
	json_object_set_new(cpu, "read", json_boolean(text != NULL));
	free(text);
	return cpu;
}

/* Lines of a file as [{line, text}] without comments or blanks. */
struct lines_arg {
	json_t *out;
};

static void
keep_line(char *line, int no, void *arg)
{
	const char *t = line + strspn(line, " \t");

	if (*t == '\0' || *t == '#')
		return;
	json_array_append_new(
		arg, json_pack("{s:i,s:o}", "line", no, "text", pl_json_string_lossy(line)));
}

static json_t *
file_lines(struct pl_host_reader *r, const char *path)
{
	char *text = slurp(r, path, SMALL_MAX);
	json_t *lines;

	if (text == NULL)
		return json_null();
	lines = json_array();
	each_line(text, keep_line, lines);
	free(text);
	return lines;
}

/* The GRUB_CMDLINE_LINUX_DEFAULT line of /etc/default/grub. */
static void
grub_line(char *line, int no, void *arg)
{
	json_t *bl = arg;

	if (pl_str_startswith(line, "GRUB_CMDLINE_LINUX_DEFAULT="))
		json_object_set_new(
			bl, "line",
			json_pack("{s:i,s:o}", "no", no, "text", pl_json_string_lossy(line)));
}

static json_t *
bootloader_facts(struct pl_host_reader *r)
{
	json_t *bl = json_object();
	struct pl_buf out;
	const char *kind = "grub", *file = "/etc/default/grub";
	char *text;

	pl_buf_init(&out, 0);
	if (pl_host_run(r, "proxmox-boot-tool status", &out, NULL) == 0) {
		json_object_set_new(bl, "status", pl_json_string_lossy(out.data));
		if (strstr(out.data, "configured with: uefi")) {
			kind = "systemd-boot";
			file = "/etc/kernel/cmdline";
		}
		json_object_set_new(bl, "efi",
				    json_boolean(strstr(out.data, "booted with uefi") != NULL));
	}
	pl_buf_release(&out);
	json_object_set_new(bl, "kind", json_string(kind));
	json_object_set_new(bl, "file", json_string(file));
	text = slurp(r, file, SMALL_MAX);
	json_object_set_new(bl, "exists", json_boolean(text != NULL));
	if (text && !strcmp(kind, "grub"))
		each_line(text, grub_line, bl);
	else if (text) {
		text[strcspn(text, "\n")] = '\0';
		json_object_set_new(
			bl, "line",
			json_pack("{s:i,s:o}", "no", 1, "text", pl_json_string_lossy(text)));
	}
	free(text);
	return bl;
}

static bool
dmesg_interesting(const char *l)
{
	static const char *const keys[] = { "DMAR",      "AMD-Vi", "IOMMU", "iommu",
					    "remapping", "vfio",   "x2apic" };

	for (size_t i = 0; i < PL_ARRAY_LEN(keys); i++)
		if (strstr(l, keys[i]))
			return true;
	return false;
}

static void
dmesg_line(char *line, int no, void *arg)
{
	json_t *iommu = arg;
	const char *remap = NULL;

	if (!dmesg_interesting(line))
		return;
	if (json_array_size(json_object_get(iommu, "messages")) < 64)
		json_array_append_new(json_object_get(iommu, "messages"),
				      pl_json_string_lossy(line));
	if (strstr(line, "Enabled IRQ remapping") || strstr(line, "Interrupt remapping enabled"))
		remap = "enabled";
	else if (strstr(line, "IRQ remapping was disabled") ||
		 strstr(line, "Not enabling interrupt remapping") ||
		 strstr(line, "Failed to enable irq remapping"))
		remap = "disabled";
	if (remap) {
		json_object_set_new(iommu, "remapping", json_string(remap));
		json_object_set_new(iommu, "remapping_evidence", pl_json_string_lossy(line));
	}
}

static json_t *
iommu_facts(struct pl_host_reader *r)
{
	json_t *iommu = json_pack("{s:[],s:s}", "messages", "remapping", "unknown");
	struct pl_buf out;
	char **names;
	size_t n;

	if (pl_host_list(r, "/sys/class/iommu", &names, &n, NULL) == 0) {
		json_t *units = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(units, pl_json_string_lossy(names[i]));
		json_object_set_new(iommu, "units", units);
		pl_host_names_free(names, n);
	} else
		json_object_set_new(iommu, "units", json_array());
	if (pl_host_list(r, "/sys/kernel/iommu_groups", &names, &n, NULL) == 0) {
		json_object_set_new(iommu, "groups", json_integer((json_int_t)n));
		pl_host_names_free(names, n);
	} else
		json_object_set_new(iommu, "groups", json_integer(0));
	pl_buf_init(&out, 0);
	json_object_set_new(iommu, "dmesg_read",
			    json_boolean(pl_host_run(r, "dmesg", &out, NULL) == 0));
	each_line(out.data, dmesg_line, iommu);
	pl_buf_release(&out);
	return iommu;
}

static json_t *
pci_facts(struct pl_host_reader *r)
{
	json_t *devs = json_array();
	char **names;
	size_t n;

	if (pl_host_list(r, "/sys/bus/pci/devices", &names, &n, NULL) != 0)
		return devs;
	for (size_t i = 0; i < n; i++) {
		char *dir = pl_asprintf("/sys/bus/pci/devices/%s", names[i]), *link;
		char *vendor = sysval(r, dir, "vendor"), *device = sysval(r, dir, "device");
		char *cls = sysval(r, dir, "class"), *bootvga = sysval(r, dir, "boot_vga");
		json_t *d = json_pack("{s:o}", "addr", pl_json_string_lossy(names[i]));

		json_object_set_new(d, "vendor",
				    pl_json_string_lossy(vendor && pl_str_startswith(vendor, "0x") ?
								 vendor + 2 :
							 vendor ? vendor :
								  ""));
		json_object_set_new(d, "device",
				    pl_json_string_lossy(device && pl_str_startswith(device, "0x") ?
								 device + 2 :
							 device ? device :
								  ""));
		json_object_set_new(d, "class",
				    pl_json_string_lossy(cls && pl_str_startswith(cls, "0x") ?
								 cls + 2 :
							 cls ? cls :
							       ""));
		json_object_set_new(d, "boot_vga", json_boolean(bootvga && !strcmp(bootvga, "1")));
		free(bootvga), free(vendor), free(device);
		/* what a PCI mapping must name as subsystem-id (Mapping/PCI.pm) */
		vendor = sysval(r, dir, "subsystem_vendor");
		device = sysval(r, dir, "subsystem_device");
		if (vendor && device)
			json_object_set_new(
				d, "subsystem",
				json_sprintf("%s:%s", vendor + 2 * pl_str_startswith(vendor, "0x"),
					     device + 2 * pl_str_startswith(device, "0x")));
		free(vendor), free(device), free(cls);
		link = pl_asprintf("%s/driver", dir);
		vendor = NULL;
		if (pl_host_readlink(r, link, &vendor, NULL) == 0)
			json_object_set_new(d, "driver", pl_json_string_lossy(basename_of(vendor)));
		free(vendor), free(link);
		link = pl_asprintf("%s/iommu_group", dir);
		vendor = NULL;
		if (pl_host_readlink(r, link, &vendor, NULL) == 0)
			json_object_set_new(d, "group", pl_json_string_lossy(basename_of(vendor)));
		free(vendor), free(link), free(dir);
		json_array_append_new(devs, d);
	}
	pl_host_names_free(names, n);
	return devs;
}

/* Every non-comment line of the files in dir ending in suffix, as
 * [{file, line, text}]. */
static void
dir_lines(struct pl_host_reader *r, const char *dir, const char *suffix, json_t *into)
{
	char **names;
	size_t n;

	if (pl_host_list(r, dir, &names, &n, NULL) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char *path;
		json_t *lines, *l;
		size_t k;

		if (!pl_str_endswith(names[i], suffix))
			continue;
		path = pl_asprintf("%s/%s", dir, names[i]);
		lines = file_lines(r, path);
		json_array_foreach(lines, k, l)
			json_array_append_new(into, json_pack("{s:s,s:O,s:O}", "file", path, "line",
							      json_object_get(l, "line"), "text",
							      json_object_get(l, "text")));
		json_decref(lines);
		free(path);
	}
	pl_host_names_free(names, n);
}

static json_t *
module_facts(struct pl_host_reader *r)
{
	json_t *mods = json_array(), *lines = file_lines(r, "/etc/modules"), *l;
	size_t i;

	json_array_foreach(lines, i, l)
		json_array_append_new(mods, json_pack("{s:s,s:O,s:O}", "file", "/etc/modules",
						      "line", json_object_get(l, "line"), "text",
						      json_object_get(l, "text")));
	json_decref(lines);
	dir_lines(r, "/etc/modules-load.d", ".conf", mods);
	return mods;
}

/* A VM's config as on the node: the keys before its first [snapshot]. */
static void
vm_line(char *line, int no, void *arg)
{
	json_t *vm = arg;
	char *colon;

	if (json_object_get(vm, "_end"))
		return;
	if (line[0] == '[') {
		json_object_set_new(vm, "_end", json_true());
		return;
	}
	if (line[0] == '#' || (colon = strchr(line, ':')) == NULL)
		return;
	*colon = '\0';
	const char *v = colon + 1 + strspn(colon + 1, " ");
	if (!strcmp(line, "name") || !strcmp(line, "machine") || !strcmp(line, "bios"))
		json_object_set_new(vm, line, pl_json_string_lossy(v));
	else if (pl_str_startswith(line, "hostpci"))
		json_array_append_new(
			json_object_get(vm, "hostpci"),
			json_pack("{s:s,s:o}", "key", line, "value", pl_json_string_lossy(v)));
}

static json_t *
vm_facts(struct pl_host_reader *r)
{
	json_t *vms = json_array();
	char **names;
	size_t n;

	if (pl_host_list(r, "/etc/pve/qemu-server", &names, &n, NULL) != 0)
		return vms;
	for (size_t i = 0; i < n; i++) {
		char *path, *text;
		json_t *vm;

		if (!pl_str_endswith(names[i], ".conf"))
			continue;
		path = pl_asprintf("/etc/pve/qemu-server/%s", names[i]);
		text = slurp(r, path, SMALL_MAX);
		vm = json_pack("{s:o,s:s,s:[]}", "vmid", pl_json_string_lossy(names[i]), "file",
			       path, "hostpci");
		*strrchr(json_string_value(json_object_get(vm, "vmid")), '.') = '\0';
		if (text)
			each_line(text, vm_line, vm);
		json_object_del(vm, "_end");
		if (json_array_size(json_object_get(vm, "hostpci")))
			json_array_append(vms, vm);
		json_decref(vm);
		free(text), free(path);
	}
	pl_host_names_free(names, n);
	return vms;
}

/* /etc/pve/mapping/pci.cfg: "NAME" lines, then indented "map ..." lines. */
static void
mapping_line(char *line, int no, void *arg)
{
	json_t *maps = arg, *last = json_array_get(maps, json_array_size(maps) - 1);
	const char *t = line + strspn(line, " \t");

	if (*t == '\0' || *t == '#')
		return;
	if (t == line)
		json_array_append_new(
			maps, json_pack("{s:o,s:[]}", "name", pl_json_string_lossy(line), "map"));
	else if (last && pl_str_startswith(t, "map "))
		json_array_append_new(json_object_get(last, "map"), pl_json_string_lossy(t + 4));
}

static json_t *
mapping_facts(struct pl_host_reader *r)
{
	json_t *maps = json_array();
	char *text = slurp(r, "/etc/pve/mapping/pci.cfg", SMALL_MAX);

	if (text)
		each_line(text, mapping_line, maps);
	free(text);
	return maps;
}

int
pl_host_facts(struct pl_host_reader *r, json_t **facts, char **errmsg)
{
	char **names;
	size_t n;
	int rc;
	char *cmdline, *release, *hostname;
	json_t *f, *modprobe = json_array();

	/* The one read that must work: an empty or wrong tree says nothing. */
	if ((rc = pl_host_list(r, "/", &names, &n, errmsg)) != 0)
		return rc;
	pl_host_names_free(names, n);
	if (n == 0)
		return pl_seterr(errmsg, PL_ENOENT, "%s is empty: no host to check", r->where);
	cmdline = slurp(r, "/proc/cmdline", SMALL_MAX);
	release = slurp(r, "/proc/sys/kernel/osrelease", 4096);
	hostname = slurp(r, "/etc/hostname", 4096);
	if (cmdline)
		cmdline[strcspn(cmdline, "\n")] = '\0';
	if (release)
		release[strcspn(release, "\n")] = '\0';
	if (hostname)
		hostname[strcspn(hostname, "\n")] = '\0';
	dir_lines(r, "/etc/modprobe.d", ".conf", modprobe);
	f = json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "where", r->where,
		      "hostname", hostname ? pl_json_string_lossy(hostname) : json_null(), "cpu",
		      cpu_facts(r), "kernel",
		      json_pack("{s:o,s:o}", "release",
				release ? pl_json_string_lossy(release) : json_null(), "cmdline",
				cmdline ? pl_json_string_lossy(cmdline) : json_null()),
		      "bootloader", bootloader_facts(r), "iommu", iommu_facts(r), "pci",
		      pci_facts(r), "modules", module_facts(r), "modprobe", modprobe, "vms",
		      vm_facts(r), "mappings", mapping_facts(r));
	free(cmdline), free(release), free(hostname);
	*facts = f;
	return 0;
}
