/*
 * Host plans: the `hosts:` entry of a node turned into file edits - the
 * boot loader's kernel parameters, vfio-pci's device ids and the host
 * drivers' blacklist, the package repositories (.list and deb822 .sources),
 * NAT post-up lines of a bridge, chrony's servers. Each edit keeps the rest
 * of the file as it is, so a second plan of an applied node is empty.
 */
#include "core/common.h"
#include "host/host.h"
#include "host/reader.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

#include <arpa/inet.h>

struct plan {
	struct pl_host_reader *r;
	const json_t *facts;
	json_t *files; /* path -> {before, after, why, commands, reboot} */
	json_t *order; /* paths in the order first touched */
};

/* The file's working copy, read on first use. */
static json_t *
file(struct plan *p, const char *path)
{
	json_t *f = json_object_get(p->files, path);
	struct pl_buf b;

	if (f)
		return f;
	pl_buf_init(&b, 0);
	if (pl_host_read(p->r, path, PL_HOST_READ_MAX, &b, NULL) == 0)
		f = json_pack("{s:o,s:o}", "before", pl_json_string_lossy(b.data), "after",
			      pl_json_string_lossy(b.data));
	else
		f = json_pack("{s:n,s:s}", "before", "after", "");
	pl_buf_release(&b);
	json_object_set_new(f, "why", json_array());
	json_object_set_new(f, "commands", json_array());
	json_object_set_new(f, "reboot", json_false());
	json_object_set_new(p->files, path, f);
	json_array_append_new(p->order, json_string(path));
	return f;
}

static const char *
text_of(json_t *f)
{
	return json_string_value(json_object_get(f, "after"));
}

static void
set_text(json_t *f, const char *why, const char *cmd, bool reboot, struct pl_buf *text)
{
	const json_t *c;
	size_t i;
	bool have = false;

	if (!strcmp(text->data, text_of(f)))
		return;
	json_object_set_new(f, "after", pl_json_string_lossy(text->data));
	json_array_foreach(json_object_get(f, "why"), i, c)
		have |= !strcmp(json_string_value(c), why);
	if (!have)
		json_array_append_new(json_object_get(f, "why"), json_string(why));
	have = false;
	json_array_foreach(json_object_get(f, "commands"), i, c)
		have |= cmd && !strcmp(json_string_value(c), cmd);
	if (cmd && !have)
		json_array_append_new(json_object_get(f, "commands"), json_string(cmd));
	if (reboot)
		json_object_set_new(f, "reboot", json_true());
}

/* Lines of text as a JSON array of strings (the last newline ends a line). */
static json_t *
lines_of(const char *text)
{
	json_t *a = json_array();
	const char *p = text, *nl;

	while (*p) {
		nl = strchr(p, '\n');
		json_array_append_new(a, json_stringn(p, nl ? (size_t)(nl - p) : strlen(p)));
		p = nl ? nl + 1 : p + strlen(p);
	}
	return a;
}

static void
join(const json_t *lines, struct pl_buf *out)
{
	const json_t *l;
	size_t i;

	pl_buf_reset(out);
	json_array_foreach(lines, i, l)
		pl_buf_addf(out, "%s\n", json_string_value(l));
}

static const char *
trimmed(const json_t *l)
{
	const char *s = json_string_value(l);

	return s + strspn(s, " \t");
}

/* --- iommu: kernel parameters in the boot loader's file --- */

static int
plan_iommu(struct plan *p, char **errmsg)
{
	const json_t *bl = json_object_get(p->facts, "bootloader");
	const char *path = pl_json_str(bl, "file"), *vendor;
	bool grub = !strcmp(pl_json_str(bl, "kind"), "grub");
	json_t *f = file(p, path), *lines;
	struct pl_buf out;
	size_t i, at = (size_t)-1;
	char *nl;

	if (json_is_null(json_object_get(f, "before")) && grub)
		return pl_seterr(errmsg, PL_ENOENT,
				 "iommu: the node boots with GRUB but has no /etc/default/grub");
	vendor = pl_json_str(json_object_get(p->facts, "cpu"), "vendor");
	lines = lines_of(text_of(f));
	for (i = 0; i < json_array_size(lines); i++)
		if (grub ? pl_str_startswith(json_string_value(json_array_get(lines, i)),
					     "GRUB_CMDLINE_LINUX_DEFAULT=") :
			   i == 0) {
			at = i;
			break;
		}
	if (at == (size_t)-1) {
		nl = pl_host_cmdline_add(grub ? "GRUB_CMDLINE_LINUX_DEFAULT=\"\"" : "",
					 pl_host_iommu_params(vendor), grub);
		json_array_append_new(lines, json_string(nl));
	} else if ((nl = pl_host_cmdline_add(json_string_value(json_array_get(lines, at)),
					     pl_host_iommu_params(vendor), grub)) != NULL)
		json_array_set_new(lines, at, json_string(nl));
	free(nl);
	pl_buf_init(&out, 0);
	join(lines, &out);
	set_text(f, "iommu: the IOMMU kernel parameters",
		 grub ? "update-grub" : "proxmox-boot-tool refresh", true, &out);
	pl_buf_release(&out);
	json_decref(lines);
	return 0;
}

/* --- vfio: ids, softdeps, blacklist, modules --- */

static bool
is_id(const char *s)
{
	unsigned v, d;
	char end;

	return strlen(s) == 9 && sscanf(s, "%4x:%4x%c", &v, &d, &end) == 2;
}

static void
add_unique(json_t *a, const char *s)
{
	const json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		if (!strcmp(json_string_value(v), s))
			return;
	json_array_append_new(a, json_string(s));
}

/* The host drivers a device of vendor (and class) may be taken by. */
static void
vendor_drivers(const char *vendor, const char *cls, json_t *into)
{
	if (pl_str_startswith(cls, "0403")) {
		add_unique(into, "snd_hda_intel");
		return;
	}
	if (!pl_str_startswith(cls, "03"))
		return;
	if (!strcmp(vendor, "10de")) {
		add_unique(into, "nouveau");
		add_unique(into, "nvidia");
		add_unique(into, "nvidiafb");
	} else if (!strcmp(vendor, "1002")) {
		add_unique(into, "amdgpu");
		add_unique(into, "radeon");
	} else if (!strcmp(vendor, "8086")) {
		add_unique(into, "i915");
		add_unique(into, "xe");
	}
}

/* Whether some modprobe.d line of the plan's files (or the node's) says it. */
static const char *
modprobe_file_with(struct plan *p, const char *needle, size_t *line_at)
{
	const json_t *l;
	size_t i;

	json_array_foreach(json_object_get(p->facts, "modprobe"), i, l)
		if (strstr(pl_json_str(l, "text"), needle)) {
			if (line_at)
				*line_at = (size_t)pl_json_int(l, "line", 1) - 1;
			return pl_json_str(l, "file");
		}
	return NULL;
}

static bool
line_present(const char *text, const char *line)
{
	json_t *lines = lines_of(text), *l;
	bool found = false;
	size_t i;

	json_array_foreach(lines, i, l)
		found |= !strcmp(trimmed(l), line);
	json_decref(lines);
	return found;
}

static void
ensure_line(struct plan *p, const char *path, const char *line, const char *why)
{
	json_t *f = file(p, path);
	struct pl_buf out;

	if (line_present(text_of(f), line))
		return;
	pl_buf_init(&out, 0);
	pl_buf_addstr(&out, text_of(f));
	if (out.len && out.data[out.len - 1] != '\n')
		pl_buf_addch(&out, '\n');
	pl_buf_addf(&out, "%s\n", line);
	set_text(f, why, "update-initramfs -u -k all", true, &out);
	pl_buf_release(&out);
}

static int
plan_vfio(struct plan *p, const json_t *vfio, char **errmsg)
{
	const json_t *devs = json_object_get(vfio, "devices"), *v, *d;
	json_t *ids = json_array(), *drivers = json_array(), *slots = json_array();
	const char *conf, *rel;
	struct pl_buf line, out;
	size_t i, k, at = 0;
	int rc = 0;

	json_array_foreach(devs, i, v) {
		const char *want = json_string_value(v);
		bool found = false;

		json_array_foreach(json_object_get(p->facts, "pci"), k, d) {
			char id[16];

			snprintf(id, sizeof(id), "%s:%s", pl_json_str(d, "vendor"),
				 pl_json_str(d, "device"));
			if (is_id(want) ? !strcasecmp(want, id) :
					  pl_host_same_slot(want, pl_json_str(d, "addr"))) {
				add_unique(slots, pl_json_str(d, "addr"));
				found = true;
			}
		}
		if (!found) {
			rc = pl_seterr(errmsg, PL_ENOENT,
				       "vfio: devices: '%s' is no PCI device of this node (%s)",
				       want, pl_json_str(p->facts, "where"));
			goto out;
		}
	}
	/* every function of each slot: the GPU's audio goes along */
	json_array_foreach(json_object_get(p->facts, "pci"), k, d) {
		const json_t *s;
		size_t j;
		char id[16];

		json_array_foreach(slots, j, s)
			if (pl_host_same_slot(json_string_value(s), pl_json_str(d, "addr"))) {
				snprintf(id, sizeof(id), "%s:%s", pl_json_str(d, "vendor"),
					 pl_json_str(d, "device"));
				add_unique(ids, id);
				vendor_drivers(pl_json_str(d, "vendor"), pl_json_str(d, "class"),
					       drivers);
				break;
			}
	}
	pl_buf_init(&line, 0);
	pl_buf_init(&out, 0);
	pl_buf_addstr(&line, "options vfio-pci ids=");
	json_array_foreach(ids, i, v)
		pl_buf_addf(&line, "%s%s", i ? "," : "", json_string_value(v));
	/* one ids line: edit the one the node has, else add vfio.conf's */
	if ((conf = modprobe_file_with(p, "vfio-pci ids=", &at)) == NULL)
		conf = modprobe_file_with(p, "vfio_pci ids=", &at);
	if (conf) {
		json_t *f = file(p, conf), *lines = lines_of(text_of(f));

		if (strcmp(json_string_value(json_array_get(lines, at)), line.data)) {
			json_array_set_new(lines, at, json_string(line.data));
			join(lines, &out);
			set_text(f, "vfio: the device ids vfio-pci claims",
				 "update-initramfs -u -k all", true, &out);
		}
		json_decref(lines);
	} else {
		conf = "/etc/modprobe.d/vfio.conf";
		ensure_line(p, conf, line.data, "vfio: the device ids vfio-pci claims");
	}
	json_array_foreach(drivers, i, v) {
		pl_buf_reset(&line);
		pl_buf_addf(&line, "softdep %s pre: vfio-pci", json_string_value(v));
		if (modprobe_file_with(p, line.data, NULL) == NULL)
			ensure_line(p, conf, line.data,
				    "vfio: vfio-pci loads before the host drivers");
	}
	if (json_is_true(json_object_get(vfio, "blacklist_host_drivers")))
		json_array_foreach(drivers, i, v) {
			const char *drv = json_string_value(v);
			bool used = false;

			/* never a driver another device of the node runs on (the
			 * host's own GPU, the onboard audio) */
			json_array_foreach(json_object_get(p->facts, "pci"), k, d) {
				const json_t *s;
				size_t j;
				bool target = false;

				json_array_foreach(slots, j, s)
					target |= pl_host_same_slot(json_string_value(s),
							    pl_json_str(d, "addr"));
				used |= !target && !strcmp(pl_json_str_or(d, "driver", ""), drv);
			}
			if (used || !strcmp(drv, "snd_hda_intel"))
				continue;
			pl_buf_reset(&line);
			pl_buf_addf(&line, "blacklist %s", drv);
			if (modprobe_file_with(p, line.data, NULL) == NULL)
				ensure_line(p, "/etc/modprobe.d/blacklist.conf", line.data,
					    "vfio: the host drivers of the devices blacklisted");
		}
	/* the vfio modules in the initramfs */
	rel = pl_json_str(json_object_get(p->facts, "kernel"), "release");
	{
		static const char *const mods[] = { "vfio", "vfio_iommu_type1", "vfio_pci",
						    "vfio_virqfd" };
		int major = 0, minor = 0;
		bool virqfd = rel && sscanf(rel, "%d.%d", &major, &minor) == 2 &&
			      (major < 6 || (major == 6 && minor < 2));

		for (i = 0; i < PL_ARRAY_LEN(mods) - !virqfd; i++) {
			bool have = false;

			json_array_foreach(json_object_get(p->facts, "modules"), k, d)
				have |= !strcmp(trimmed(json_object_get(d, "text")), mods[i]);
			if (!have)
				ensure_line(p, "/etc/modules", mods[i],
					    "vfio: the vfio modules load at boot");
		}
	}
	pl_buf_release(&line);
	pl_buf_release(&out);
out:
	json_decref(ids);
	json_decref(drivers);
	json_decref(slots);
	return rc;
}

/* --- repositories --- */

static const char *
suite_of(struct plan *p)
{
	struct pl_buf b;
	static char suite[32];
	const char *c;

	pl_buf_init(&b, 0);
	snprintf(suite, sizeof(suite), "bookworm");
	if (pl_host_read(p->r, "/etc/os-release", 65536, &b, NULL) == 0 &&
	    (c = strstr(b.data, "VERSION_CODENAME=")) != NULL)
		snprintf(suite, sizeof(suite), "%.*s", (int)strcspn(c + 17, "\n\""), c + 17);
	pl_buf_release(&b);
	return suite;
}

/* In a one-line-style file: comment out (enable false) or uncomment (true)
 * the deb lines that contain needle; whether one is enabled afterwards. */
static bool
list_set(json_t *lines, const char *needle, bool enable)
{
	bool any = false;
	json_t *l;
	size_t i;

	json_array_foreach(lines, i, l) {
		const char *t = trimmed(l), *deb = t;
		bool commented = *t == '#';

		if (commented)
			deb = t + 1 + strspn(t + 1, " \t");
		if (!pl_str_startswith(deb, "deb ") && !pl_str_startswith(deb, "deb-src "))
			continue;
		if (!strstr(deb, needle))
			continue;
		if (enable && commented)
			json_array_set_new(lines, i, json_string(deb));
		else if (!enable && !commented) {
			char *c = pl_asprintf("# %s", json_string_value(l));

			json_array_set_new(lines, i, json_string(c));
			free(c);
		}
		any |= enable;
	}
	return any;
}

/* In a deb822 file: set Enabled: on the stanzas with a line that contains
 * needle; whether one is enabled afterwards. */
static bool
sources_set(json_t *lines, const char *needle, bool enable)
{
	size_t i = 0, n;
	bool any = false;

	while (i < (n = json_array_size(lines))) {
		size_t start = i, end, enabled_at = (size_t)-1;
		bool match = false;

		while (i < n && *trimmed(json_array_get(lines, i)) == '\0')
			i++;
		start = i;
		while (i < n && *trimmed(json_array_get(lines, i)) != '\0')
			i++;
		end = i;
		for (size_t k = start; k < end; k++) {
			const char *t = trimmed(json_array_get(lines, k));

			if (!pl_str_startswith(t, "Enabled:") && strstr(t, needle))
				match = true;
			if (pl_str_startswith(t, "Enabled:"))
				enabled_at = k;
		}
		if (!match)
			continue;
		if (enable) {
			if (enabled_at != (size_t)-1)
				json_array_remove(lines, enabled_at), i--;
			any = true;
		} else if (enabled_at != (size_t)-1)
			json_array_set_new(lines, enabled_at, json_string("Enabled: false"));
		else {
			json_array_insert_new(lines, end, json_string("Enabled: false"));
			i++;
		}
	}
	return any;
}

static int
plan_repositories(struct plan *p, const char *which)
{
	bool nosub = !strcmp(which, "no-subscription"), deb822 = false, have = false;
	const char *on = nosub ? "pve-no-subscription" : "pve-enterprise";
	const char *off = nosub ? "enterprise.proxmox.com" : "pve-no-subscription";
	const char *suite = suite_of(p);
	struct pl_buf out, path;
	char **names = NULL;
	size_t n = 0, i;

	pl_buf_init(&out, 0);
	pl_buf_init(&path, 0);
	pl_host_list(p->r, "/etc/apt/sources.list.d", &names, &n, NULL);
	for (i = 0; i <= n; i++) {
		bool sources;
		json_t *f, *lines;

		pl_buf_reset(&path);
		if (i == n)
			pl_buf_addstr(&path, "/etc/apt/sources.list");
		else
			pl_buf_addf(&path, "/etc/apt/sources.list.d/%s", names[i]);
		sources = pl_str_endswith(path.data, ".sources");
		if (!sources && !pl_str_endswith(path.data, ".list"))
			continue;
		f = file(p, path.data);
		if (json_is_null(json_object_get(f, "before")))
			continue;
		lines = lines_of(text_of(f));
		if (sources) {
			deb822 |= strstr(text_of(f), "proxmox.com") != NULL;
			/* Ceph's enterprise repository goes with PVE's */
			sources_set(lines, off, false);
			have |= sources_set(lines, on, true);
		} else {
			list_set(lines, off, false);
			have |= list_set(lines, on, true);
		}
		join(lines, &out);
		set_text(f,
			 nosub ? "repositories: no-subscription, the enterprise one disabled" :
				 "repositories: enterprise, no-subscription disabled",
			 "apt-get update", false, &out);
		json_decref(lines);
		/* a file nothing changes is no edit */
		if (!strcmp(text_of(f), json_string_value(json_object_get(f, "before")))) {
			json_object_del(p->files, path.data);
			json_array_remove(p->order, json_array_size(p->order) - 1);
		}
	}
	pl_host_names_free(names, n);
	if (!have) {
		const char *base = nosub ? "http://download.proxmox.com/debian/pve" :
					   "https://enterprise.proxmox.com/debian/pve";
		json_t *f;

		pl_buf_reset(&path);
		pl_buf_reset(&out);
		if (deb822 || !strcmp(suite, "trixie")) {
			pl_buf_addf(&path, "/etc/apt/sources.list.d/%s.sources",
				    nosub ? "proxmox" : "pve-enterprise");
			pl_buf_addf(&out,
				    "Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\n"
				    "Signed-By: /usr/share/keyrings/proxmox-archive-keyring.gpg\n",
				    base, suite, on);
		} else {
			pl_buf_addf(&path, "/etc/apt/sources.list.d/%s.list", on);
			pl_buf_addf(&out, "deb %s %s %s\n", base, suite, on);
		}
		f = file(p, path.data);
		set_text(f,
			 nosub ? "repositories: the no-subscription repository" :
				 "repositories: the enterprise repository",
			 "apt-get update", false, &out);
	}
	pl_buf_release(&out);
	pl_buf_release(&path);
	return 0;
}

/* --- nat: a bridge masqueraded through another --- */

static int
subnet_of(const char *cidr, char *out, size_t len)
{
	char ip[64];
	unsigned prefix;
	struct in_addr a;
	const char *slash = strchr(cidr, '/');

	if (slash == NULL || (size_t)(slash - cidr) >= sizeof(ip) ||
	    sscanf(slash + 1, "%u", &prefix) != 1 || prefix > 32)
		return -1;
	snprintf(ip, sizeof(ip), "%.*s", (int)(slash - cidr), cidr);
	if (inet_pton(AF_INET, ip, &a) != 1)
		return -1;
	a.s_addr &= prefix ? htonl(0xffffffffu << (32 - prefix)) : 0;
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	snprintf(out, len, "%.15s/%u", ip, prefix);
	return 0;
}

static int
plan_nat(struct plan *p, const json_t *nat, char **errmsg)
{
	const char *bridge = pl_json_str(nat, "bridge"), *via = pl_json_str(nat, "via");
	const char *addr = pl_json_str(nat, "address");
	json_t *f = file(p, "/etc/network/interfaces"), *lines = lines_of(text_of(f));
	size_t i, start = (size_t)-1, end, n = json_array_size(lines);
	struct pl_buf out, l;
	char subnet[64], *head = pl_asprintf("iface %s inet", bridge);
	int rc = 0;

	for (i = 0; i < n; i++)
		if (pl_str_startswith(trimmed(json_array_get(lines, i)), head))
			start = i;
	free(head);
	if (start != (size_t)-1 && addr == NULL)
		for (i = start + 1; i < n && *json_string_value(json_array_get(lines, i)) &&
				    strchr(" \t", *json_string_value(json_array_get(lines, i)));
		     i++)
			if (pl_str_startswith(trimmed(json_array_get(lines, i)), "address "))
				addr = trimmed(json_array_get(lines, i)) + 8;
	if (addr == NULL) {
		rc = pl_seterr(errmsg, PL_EINVAL,
			       "nat: %s has no address in /etc/network/interfaces: give nat's "
			       "address (e.g. 10.10.10.1/24)",
			       bridge);
		goto out;
	}
	if (subnet_of(addr, subnet, sizeof(subnet)) != 0) {
		rc = pl_seterr(errmsg, PL_EINVAL, "nat: '%s' is not an IPv4 address/prefix", addr);
		goto out;
	}
	if (start == (size_t)-1) {
		char *s;

		json_array_append_new(lines, json_string(""));
		s = pl_asprintf("auto %s", bridge);
		json_array_append_new(lines, json_string(s));
		free(s);
		s = pl_asprintf("iface %s inet static", bridge);
		json_array_append_new(lines, json_string(s));
		free(s);
		s = pl_asprintf("\taddress %s", addr);
		json_array_append_new(lines, json_string(s));
		free(s);
		json_array_append_new(lines, json_string("\tbridge-ports none"));
		json_array_append_new(lines, json_string("\tbridge-stp off"));
		json_array_append_new(lines, json_string("\tbridge-fd 0"));
		start = json_array_size(lines) - 5;
	}
	/* the stanza's end: the last indented line after its iface line */
	for (end = start + 1; end < json_array_size(lines); end++) {
		const char *s = json_string_value(json_array_get(lines, end));

		if (*s != ' ' && *s != '\t')
			break;
	}
	pl_buf_init(&l, 0);
	{
		const char *want[4];
		char *w[4];

		w[0] = pl_asprintf("post-up   echo 1 > /proc/sys/net/ipv4/ip_forward");
		w[1] = pl_asprintf("post-up   iptables -t nat -A POSTROUTING -s '%s' -o %s -j "
				   "MASQUERADE",
				   subnet, via);
		w[2] = pl_asprintf("post-down iptables -t nat -D POSTROUTING -s '%s' -o %s -j "
				   "MASQUERADE",
				   subnet, via);
		w[3] = NULL;
		for (int k = 0; k < 3; k++) {
			bool have = false;

			want[k] = w[k];
			for (i = start + 1; i < end; i++)
				have |= !strcmp(trimmed(json_array_get(lines, i)), want[k]);
			if (!have) {
				pl_buf_reset(&l);
				pl_buf_addf(&l, "\t%s", want[k]);
				json_array_insert_new(lines, end++, json_string(l.data));
			}
			free(w[k]);
		}
	}
	pl_buf_init(&out, 0);
	join(lines, &out);
	pl_buf_reset(&l);
	pl_buf_addf(&l, "nat: %s masqueraded through %s", bridge, via);
	set_text(f, l.data, "ifreload -a", false, &out);
	pl_buf_release(&out);
	pl_buf_release(&l);
out:
	json_decref(lines);
	return rc;
}

/* --- ntp: chrony's servers --- */

static void
plan_ntp(struct plan *p, const json_t *servers)
{
	json_t *f = file(p, "/etc/chrony/chrony.conf"), *lines = lines_of(text_of(f)), *v;
	size_t i, at = (size_t)-1;
	struct pl_buf out;

	for (i = 0; i < json_array_size(lines);) {
		const char *t = trimmed(json_array_get(lines, i));

		if (pl_str_startswith(t, "pool ") || pl_str_startswith(t, "server ")) {
			if (at == (size_t)-1)
				at = i;
			json_array_remove(lines, i);
		} else
			i++;
	}
	if (at == (size_t)-1)
		at = json_array_size(lines);
	json_array_foreach(servers, i, v) {
		char *s = pl_asprintf("server %s iburst", json_string_value(v));

		json_array_insert_new(lines, at + i, json_string(s));
		free(s);
	}
	pl_buf_init(&out, 0);
	join(lines, &out);
	set_text(f, "ntp: chrony's time servers", "systemctl restart chrony", false, &out);
	pl_buf_release(&out);
	json_decref(lines);
}

/* --- ssh: sshd hardening in a drop-in file --- */

#define SSHD_DROPIN "/etc/ssh/sshd_config.d/pvelab.conf"

/* PasswordAuthentication and PermitRootLogin in a file of their own, which
 * Debian's sshd_config includes before its own lines (the first value sshd
 * reads wins). Keys only is refused while root has no key: the plan would
 * lock the operator out (PVE keeps root's keys in /etc/pve/priv/
 * authorized_keys, which /root/.ssh/authorized_keys links to). */
static int
plan_ssh(struct plan *p, const json_t *ssh, char **errmsg)
{
	const json_t *pw = json_object_get(ssh, "password_authentication");
	const char *root = pl_json_str(ssh, "permit_root_login");
	json_t *f, *cmds;
	struct pl_buf out;
	int rc = 0;

	/* read, not edited: neither file joins the plan */
	pl_buf_init(&out, 0);
	if (pl_host_read(p->r, "/etc/ssh/sshd_config", PL_HOST_READ_MAX, &out, NULL) == 0 &&
	    !strstr(out.data, "sshd_config.d/"))
		rc = pl_seterr(errmsg, PL_EINVAL,
			       "hosts: ssh: /etc/ssh/sshd_config does not include "
			       "sshd_config.d/*.conf, where pvelab writes (add 'Include "
			       "/etc/ssh/sshd_config.d/*.conf' at its top)");
	pl_buf_reset(&out);
	if (rc == 0 && json_is_false(pw) &&
	    (pl_host_read(p->r, "/root/.ssh/authorized_keys", PL_HOST_READ_MAX, &out, NULL) != 0 ||
	     (!strstr(out.data, "ssh-") && !strstr(out.data, "ecdsa-"))))
		rc = pl_seterr(errmsg, PL_EINVAL,
			       "hosts: ssh: password_authentication: false would lock root out: "
			       "/root/.ssh/authorized_keys holds no key (add yours first: "
			       "ssh-copy-id root@NODE)");
	pl_buf_release(&out);
	if (rc != 0)
		return rc;
	f = file(p, SSHD_DROPIN);
	pl_buf_init(&out, 0);
	pl_buf_addstr(&out, "# written by pvelab (hosts: ssh:)\n");
	if (json_is_boolean(pw))
		pl_buf_addf(&out, "PasswordAuthentication %s\nKbdInteractiveAuthentication %s\n",
			    json_is_true(pw) ? "yes" : "no", json_is_true(pw) ? "yes" : "no");
	if (root)
		pl_buf_addf(&out, "PermitRootLogin %s\n", root);
	set_text(f, "ssh: sshd hardening", "sshd -t", false, &out);
	/* checked, then reloaded (a reload keeps open sessions) */
	cmds = json_object_get(f, "commands");
	if (json_array_size(cmds) && strcmp(json_string_value(json_array_get(cmds, json_array_size(cmds) - 1)),
					    "systemctl reload ssh"))
		json_array_append_new(cmds, json_string("systemctl reload ssh"));
	pl_buf_release(&out);
	return 0;
}

int
pl_host_plan(struct pl_host_reader *r, const json_t *facts, const json_t *want, json_t **edits,
	     char **errmsg)
{
	struct plan p = { r, facts, json_object(), json_array() };
	const json_t *v, *path;
	size_t i;
	int rc = 0;

	*edits = NULL;
	if (json_is_true(json_object_get(want, "iommu")) && (rc = plan_iommu(&p, errmsg)) != 0)
		goto out;
	if ((v = json_object_get(want, "vfio")) && json_array_size(json_object_get(v, "devices")) &&
	    (rc = plan_vfio(&p, v, errmsg)) != 0)
		goto out;
	if (json_is_string(v = json_object_get(want, "repositories")))
		plan_repositories(&p, json_string_value(v));
	json_array_foreach(json_object_get(want, "nat"), i, v)
		if ((rc = plan_nat(&p, v, errmsg)) != 0)
			goto out;
	if (json_array_size(v = json_object_get(want, "ntp")))
		plan_ntp(&p, v);
	if (json_object_size(v = json_object_get(want, "ssh")) && (rc = plan_ssh(&p, v, errmsg)) != 0)
		goto out;
	*edits = json_array();
	json_array_foreach(p.order, i, path) {
		json_t *f = json_object_get(p.files, json_string_value(path));
		const json_t *before = json_object_get(f, "before");

		if (json_is_string(before) && !strcmp(json_string_value(before), text_of(f)))
			continue;
		json_object_set_new(f, "file", json_string(json_string_value(path)));
		json_array_append(*edits, f);
	}
out:
	json_decref(p.files);
	json_decref(p.order);
	return rc;
}
