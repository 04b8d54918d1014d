/*
 * `pvelab export terraform`: the config's guests and bridges as HCL for the
 * bpg/proxmox provider (proxmox_virtual_environment_vm, _container and
 * _network_linux_bridge, attribute names from its docs/resources), with the
 * provider block, variables for the endpoint and token, and Terraform 1.5
 * import blocks (bpg's ids: node/vmid, node:iface) so that `terraform plan`
 * adopts what exists. Built from the planner's model, as the Ansible export.
 */
#include "core/common.h"

#include "cmd/export.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "model/guest.h"

/* A property string "first,k=v,..." as {"": first, k: v}. */
static json_t *
props(const char *s)
{
	json_t *o = json_object();
	char *copy = pl_strdup(s ? s : ""), *save = NULL;
	bool first = true;

	for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(p, '=');

		if (first && !eq)
			json_object_set_new(o, "", json_string(p));
		else if (eq) {
			*eq = '\0';
			json_object_set_new(o, p, json_string(eq + 1));
		}
		first = false;
	}
	free(copy);
	return o;
}

/* An HCL string literal: quotes, backslashes and control bytes escaped, and
 * "${" / "%{" (template sequences) doubled so the text stays text. */
static void
hcl_str(struct pl_buf *b, const char *s)
{
	pl_buf_addch(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			pl_buf_addf(b, "\\%c", c);
		else if (c == '\n')
			pl_buf_addstr(b, "\\n");
		else if (c == '\t')
			pl_buf_addstr(b, "\\t");
		else if (c < 0x20 || c == 0x7f)
			pl_buf_addf(b, "\\u%04x", c);
		else if ((c == '$' || c == '%') && s[1] == '{')
			pl_buf_addf(b, "%c%c", c, c);
		else
			pl_buf_addch(b, (char)c);
	}
	pl_buf_addch(b, '"');
}

static void
attr_str(struct pl_buf *b, int ind, const char *k, const char *v)
{
	if (!v)
		return;
	pl_buf_addf(b, "%*s%s = ", ind, "", k);
	hcl_str(b, v);
	pl_buf_addch(b, '\n');
}

static void attr_raw(struct pl_buf *b, int ind, const char *k, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
attr_raw(struct pl_buf *b, int ind, const char *k, const char *fmt, ...)
{
	va_list ap;

	pl_buf_addf(b, "%*s%s = ", ind, "", k);
	va_start(ap, fmt);
	pl_buf_vaddf(b, fmt, ap);
	va_end(ap);
	pl_buf_addch(b, '\n');
}

static void
attr_bool(struct pl_buf *b, int ind, const char *k, const char *v)
{
	if (v)
		attr_raw(b, ind, k, "%s", strcmp(v, "0") ? "true" : "false");
}

static void
attr_num(struct pl_buf *b, int ind, const char *k, const json_t *v)
{
	if (json_is_integer(v))
		attr_raw(b, ind, k, "%lld", (long long)json_integer_value(v));
	else if (json_is_string(v) && *json_string_value(v) &&
		 strspn(json_string_value(v), "0123456789") == strlen(json_string_value(v)))
		attr_raw(b, ind, k, "%s", json_string_value(v));
}

static void
attr_list(struct pl_buf *b, int ind, const char *k, const char *items, const char *seps)
{
	char *copy = pl_strdup(items), *save = NULL;
	size_t n = 0;

	pl_buf_addf(b, "%*s%s = [", ind, "", k);
	for (char *p = strtok_r(copy, seps, &save); p; p = strtok_r(NULL, seps, &save)) {
		pl_buf_addstr(b, n++ ? ", " : "");
		hcl_str(b, p);
	}
	pl_buf_addstr(b, "]\n");
	free(copy);
}

/* A Terraform resource name: the guest's name with what HCL refuses made _. */
static char *
tf_name(const char *name)
{
	char *n = pl_asprintf("%s%s", (*name >= '0' && *name <= '9') ? "g_" : "", name);

	for (char *c = n; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
			*c = '_';
	return n;
}

/* "local-lvm:32" -> storage and size (GB). */
static void
volume(const char *first, char **storage, char **size)
{
	const char *colon = first ? strchr(first, ':') : NULL;

	*storage = colon ? pl_strndup(first, (size_t)(colon - first)) : NULL;
	*size = colon ? pl_strdup(colon + 1) : NULL;
}

static void
startup(struct pl_buf *b, const char *v)
{
	json_t *p = props(v);

	pl_buf_addstr(b, "  startup {\n");
	if (pl_json_str(p, ""))
		attr_num(b, 4, "order", json_object_get(p, ""));
	attr_num(b, 4, "order", json_object_get(p, "order"));
	attr_num(b, 4, "up_delay", json_object_get(p, "up"));
	attr_num(b, 4, "down_delay", json_object_get(p, "down"));
	pl_buf_addstr(b, "  }\n");
	json_decref(p);
}

static bool
is_disk(const char *k, const char *const *buses, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(buses[i]);

		if (!strncmp(k, buses[i], l) && k[l] &&
		    strspn(k + l, "0123456789") == strlen(k + l))
			return true;
	}
	return false;
}

static void
vm_disk(struct pl_buf *b, const char *key, const char *value, bool clone)
{
	json_t *p = props(value);
	char *storage, *size;
	static const char *const bools[] = { "iothread", "ssd", "backup", "replicate" };
	static const char *const strs[] = { "discard", "cache", "aio" };

	volume(pl_json_str(p, ""), &storage, &size);
	pl_buf_addstr(b, "  disk {\n");
	attr_str(b, 4, "interface", key);
	attr_str(b, 4, "datastore_id", storage);
	if (size && strspn(size, "0123456789") == strlen(size))
		attr_raw(b, 4, "size", "%s", size);
	for (size_t i = 0; i < PL_ARRAY_LEN(bools); i++)
		attr_bool(b, 4, bools[i], pl_json_str(p, bools[i]));
	for (size_t i = 0; i < PL_ARRAY_LEN(strs); i++)
		attr_str(b, 4, strs[i], pl_json_str(p, strs[i]));
	if (!clone)
		attr_str(b, 4, "import_from", pl_json_str(p, "import-from"));
	pl_buf_addstr(b, "  }\n");
	free(storage);
	free(size);
	json_decref(p);
}

static void
ip_config(struct pl_buf *b, int ind, const json_t *p)
{
	const char *ip = pl_json_str(p, "ip"), *ip6 = pl_json_str(p, "ip6");

	if (!ip && !ip6)
		return;
	pl_buf_addf(b, "%*sip_config {\n", ind, "");
	if (ip) {
		pl_buf_addf(b, "%*sipv4 {\n", ind + 2, "");
		attr_str(b, ind + 4, "address", ip);
		attr_str(b, ind + 4, "gateway", pl_json_str(p, "gw"));
		pl_buf_addf(b, "%*s}\n", ind + 2, "");
	}
	if (ip6) {
		pl_buf_addf(b, "%*sipv6 {\n", ind + 2, "");
		attr_str(b, ind + 4, "address", ip6);
		attr_str(b, ind + 4, "gateway", pl_json_str(p, "gw6"));
		pl_buf_addf(b, "%*s}\n", ind + 2, "");
	}
	pl_buf_addf(b, "%*s}\n", ind, "");
}

/* A guest resource's opening and the attributes both kinds have; returns
 * its Terraform name (caller frees). */
static char *
guest_head(struct pl_buf *b, const char *type, const struct pl_model_guest *m, const char *onboot)
{
	const json_t *c = m->config;
	char *name = tf_name(m->name);

	pl_buf_addf(b, "resource \"%s\" \"%s\" {\n", type, name);
	if (!strcmp(type, "proxmox_virtual_environment_vm"))
		attr_str(b, 2, "name", m->name);
	if (m->node)
		attr_str(b, 2, "node_name", m->node);
	else
		attr_raw(b, 2, "node_name", "var.pve_node");
	if (m->vmid)
		attr_raw(b, 2, "vm_id", "%lld", m->vmid);
	attr_str(b, 2, "description", pl_json_str(c, "description"));
	if (pl_json_str(c, "tags"))
		attr_list(b, 2, "tags", pl_json_str(c, "tags"), ";, ");
	attr_bool(b, 2, onboot, pl_json_str(c, "onboot"));
	attr_raw(b, 2, "started", "%s", m->running ? "true" : "false");
	attr_str(b, 2, "pool_id", pl_json_str(m->create, "pool"));
	if (pl_json_str(c, "startup"))
		startup(b, pl_json_str(c, "startup"));
	return name;
}

/* A guest resource's end, and the import block that adopts it (bpg's id
 * node/vmid) when both are known. */
static void
guest_tail(struct pl_buf *b, const char *type, const char *name, const struct pl_model_guest *m)
{
	pl_buf_addstr(b, "}\n\n");
	if (m->vmid && m->node)
		pl_buf_addf(b, "import {\n  to = %s.%s\n  id = \"%s/%lld\"\n}\n\n", type, name,
			    m->node, m->vmid);
}

/* initialization.dns from nameserver and searchdomain. */
static void
dns(struct pl_buf *b, const json_t *c)
{
	if (!pl_json_str(c, "nameserver") && !pl_json_str(c, "searchdomain"))
		return;
	pl_buf_addstr(b, "    dns {\n");
	attr_str(b, 6, "domain", pl_json_str(c, "searchdomain"));
	if (pl_json_str(c, "nameserver"))
		attr_list(b, 6, "servers", pl_json_str(c, "nameserver"), " ,;");
	pl_buf_addstr(b, "    }\n");
}

/* Keys the VM resource below writes; any other is listed as left out. */
static const char *const vm_done[] = {
	"name",      "description", "tags",    "onboot",     "bios",         "machine",
	"scsihw",    "startup",     "cores",   "sockets",    "cpu",          "cpulimit",
	"cpuunits",  "memory",      "balloon", "agent",      "ostype",       "efidisk0",
	"tpmstate0", "ciuser",      "sshkeys", "nameserver", "searchdomain", "ciupgrade",
};

static bool
in(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}

static void
vm_resource(struct pl_buf *b, const struct pl_model_guest *m, json_t *left)
{
	static const char *const buses[] = { "scsi", "virtio", "sata", "ide" };
	const json_t *c = m->config, *clone = json_object_get(m->create, "clone"), *v;
	char *name;
	const char *k, *cloudinit = NULL;
	json_t *p;

	name = guest_head(b, "proxmox_virtual_environment_vm", m, "on_boot");
	attr_str(b, 2, "bios", pl_json_str(c, "bios"));
	attr_str(b, 2, "machine", pl_json_str(c, "machine"));
	attr_str(b, 2, "scsi_hardware", pl_json_str(c, "scsihw"));
	if (clone) {
		pl_buf_addstr(b, "  clone {\n");
		attr_raw(b, 4, "vm_id", "var.template_vm_id[\"%s\"]",
			 pl_json_str_or(clone, "template", ""));
		attr_raw(b, 4, "full", "%s", pl_json_bool(clone, "full", true) ? "true" : "false");
		attr_str(b, 4, "datastore_id", pl_json_str(clone, "storage"));
		pl_buf_addstr(b, "  }\n");
	}
	pl_buf_addstr(b, "  cpu {\n");
	attr_num(b, 4, "cores", json_object_get(c, "cores"));
	attr_num(b, 4, "sockets", json_object_get(c, "sockets"));
	attr_str(b, 4, "type", pl_json_str(c, "cpu"));
	attr_num(b, 4, "limit", json_object_get(c, "cpulimit"));
	attr_num(b, 4, "units", json_object_get(c, "cpuunits"));
	pl_buf_addstr(b, "  }\n");
	pl_buf_addstr(b, "  memory {\n");
	attr_num(b, 4, "dedicated", json_object_get(c, "memory"));
	attr_num(b, 4, "floating", json_object_get(c, "balloon"));
	pl_buf_addstr(b, "  }\n");
	if (json_object_get(c, "agent")) {
		p = props(pl_json_str_or(c, "agent", "0"));
		pl_buf_addstr(b, "  agent {\n");
		attr_bool(b, 4, "enabled",
			  pl_json_str(p, "") ? pl_json_str(p, "") : pl_json_str(p, "enabled"));
		pl_buf_addstr(b, "  }\n");
		json_decref(p);
	}
	if (pl_json_str(c, "ostype")) {
		pl_buf_addstr(b, "  operating_system {\n");
		attr_str(b, 4, "type", pl_json_str(c, "ostype"));
		pl_buf_addstr(b, "  }\n");
	}
	if (pl_json_str(c, "efidisk0")) {
		char *storage, *size;

		p = props(pl_json_str(c, "efidisk0"));
		volume(pl_json_str(p, ""), &storage, &size);
		pl_buf_addstr(b, "  efi_disk {\n");
		attr_str(b, 4, "datastore_id", storage);
		attr_str(b, 4, "type", pl_json_str(p, "efitype"));
		attr_bool(b, 4, "pre_enrolled_keys", pl_json_str(p, "pre-enrolled-keys"));
		pl_buf_addstr(b, "  }\n");
		free(storage);
		free(size);
		json_decref(p);
	}
	if (pl_json_str(c, "tpmstate0")) {
		char *storage, *size;

		p = props(pl_json_str(c, "tpmstate0"));
		volume(pl_json_str(p, ""), &storage, &size);
		pl_buf_addstr(b, "  tpm_state {\n");
		attr_str(b, 4, "datastore_id", storage);
		attr_str(b, 4, "version", pl_json_str(p, "version"));
		pl_buf_addstr(b, "  }\n");
		free(storage);
		free(size);
		json_decref(p);
	}
	json_object_foreach((json_t *)c, k, v) {
		const char *val = json_string_value(v);

		if (!val)
			continue;
		if (is_disk(k, buses, PL_ARRAY_LEN(buses))) {
			if (strstr(val, "cloudinit"))
				cloudinit = k;
			else if (!strstr(val, "media=cdrom"))
				vm_disk(b, k, val, clone != NULL);
			else
				json_array_append_new(left, json_sprintf("%s=%s", k, val));
		} else if (!strncmp(k, "net", 3) && is_disk(k, (const char *const[]){ "net" }, 1)) {
			const char *first;

			p = props(val);
			first = pl_json_str_or(p, "", "virtio");
			pl_buf_addstr(b, "  network_device {\n");
			attr_str(b, 4, "bridge", pl_json_str(p, "bridge"));
			{
				char *model = pl_strndup(first, strcspn(first, "="));

				attr_str(b, 4, "model", model);
				if (strchr(first, '='))
					attr_str(b, 4, "mac_address", strchr(first, '=') + 1);
				free(model);
			}
			attr_bool(b, 4, "firewall", pl_json_str(p, "firewall"));
			attr_num(b, 4, "vlan_id", json_object_get(p, "tag"));
			attr_num(b, 4, "mtu", json_object_get(p, "mtu"));
			pl_buf_addstr(b, "  }\n");
			json_decref(p);
		} else if (is_disk(k, (const char *const[]){ "hostpci" }, 1)) {
			p = props(val);
			pl_buf_addstr(b, "  hostpci {\n");
			attr_str(b, 4, "device", k);
			if (pl_json_str(p, "mapping"))
				attr_str(b, 4, "mapping", pl_json_str(p, "mapping"));
			else
				attr_str(b, 4, "id",
					 pl_json_str(p, "host") ? pl_json_str(p, "host") :
								  pl_json_str(p, ""));
			attr_bool(b, 4, "pcie", pl_json_str(p, "pcie"));
			attr_bool(b, 4, "xvga", pl_json_str(p, "x-vga"));
			attr_bool(b, 4, "rombar", pl_json_str(p, "rombar"));
			pl_buf_addstr(b, "  }\n");
			json_decref(p);
		} else if (!is_disk(k, (const char *const[]){ "ipconfig" }, 1) &&
			   !in(vm_done, PL_ARRAY_LEN(vm_done), k)) {
			json_array_append_new(left, json_sprintf("%s=%s", k, val));
		}
	}
	if (cloudinit || pl_json_str(c, "ipconfig0") || pl_json_str(c, "ciuser")) {
		pl_buf_addstr(b, "  initialization {\n");
		if (cloudinit) {
			char *storage, *size;

			volume(pl_json_str_or(c, cloudinit, ""), &storage, &size);
			attr_str(b, 4, "datastore_id", storage);
			attr_str(b, 4, "interface", cloudinit);
			free(storage);
			free(size);
		}
		dns(b, c);
		for (int i = 0; i < 32; i++) {
			char key[16];

			snprintf(key, sizeof(key), "ipconfig%d", i);
			if (!pl_json_str(c, key))
				continue;
			p = props(pl_json_str(c, key));
			ip_config(b, 4, p);
			json_decref(p);
		}
		if (pl_json_str(c, "ciuser") || pl_json_str(c, "sshkeys")) {
			pl_buf_addstr(b, "    user_account {\n");
			attr_str(b, 6, "username", pl_json_str(c, "ciuser"));
			if (pl_json_str(c, "sshkeys"))
				attr_list(b, 6, "keys", pl_json_str(c, "sshkeys"), "\n");
			pl_buf_addstr(b, "    }\n");
		}
		attr_bool(b, 4, "upgrade", pl_json_str(c, "ciupgrade"));
		pl_buf_addstr(b, "  }\n");
	}
	guest_tail(b, "proxmox_virtual_environment_vm", name, m);
	free(name);
}

/* Keys the container resource below writes. */
static const char *const ct_done[] = {
	"hostname", "description", "tags",         "onboot", "unprivileged", "startup",
	"cores",    "cpulimit",    "cpuunits",     "memory", "swap",         "rootfs",
	"features", "nameserver",  "searchdomain", "ostype",
};

static void
ct_resource(struct pl_buf *b, const struct pl_model_guest *m, json_t *left)
{
	const json_t *c = m->config, *v;
	char *name;
	const char *k;
	json_t *p;

	name = guest_head(b, "proxmox_virtual_environment_container", m, "start_on_boot");
	attr_bool(b, 2, "unprivileged", pl_json_str(c, "unprivileged"));
	pl_buf_addstr(b, "  cpu {\n");
	attr_num(b, 4, "cores", json_object_get(c, "cores"));
	attr_num(b, 4, "limit", json_object_get(c, "cpulimit"));
	attr_num(b, 4, "units", json_object_get(c, "cpuunits"));
	pl_buf_addstr(b, "  }\n");
	pl_buf_addstr(b, "  memory {\n");
	attr_num(b, 4, "dedicated", json_object_get(c, "memory"));
	attr_num(b, 4, "swap", json_object_get(c, "swap"));
	pl_buf_addstr(b, "  }\n");
	pl_buf_addstr(b, "  operating_system {\n");
	attr_str(b, 4, "template_file_id", pl_json_str_or(m->create, "ostemplate", ""));
	attr_str(b, 4, "type", pl_json_str(c, "ostype"));
	pl_buf_addstr(b, "  }\n");
	if (pl_json_str(c, "rootfs")) {
		char *storage, *size;

		p = props(pl_json_str(c, "rootfs"));
		volume(pl_json_str(p, ""), &storage, &size);
		pl_buf_addstr(b, "  disk {\n");
		attr_str(b, 4, "datastore_id", storage);
		if (size && strspn(size, "0123456789") == strlen(size))
			attr_raw(b, 4, "size", "%s", size);
		pl_buf_addstr(b, "  }\n");
		free(storage);
		free(size);
		json_decref(p);
	}
	if (pl_json_str(c, "features")) {
		p = props(pl_json_str(c, "features"));
		pl_buf_addstr(b, "  features {\n");
		json_object_foreach(p, k, v)
			if (in((const char *const[]){ "nesting", "keyctl", "fuse", "mknod" }, 4, k))
				attr_bool(b, 4, k, json_string_value(v));
		pl_buf_addstr(b, "  }\n");
		json_decref(p);
	}
	pl_buf_addstr(b, "  initialization {\n");
	attr_str(b, 4, "hostname", pl_json_str_or(c, "hostname", m->name));
	dns(b, c);
	json_object_foreach((json_t *)c, k, v)
		if (is_disk(k, (const char *const[]){ "net" }, 1)) {
			p = props(json_string_value(v));
			ip_config(b, 4, p);
			json_decref(p);
		}
	if (pl_json_str(m->create, "ssh-public-keys")) {
		pl_buf_addstr(b, "    user_account {\n");
		attr_list(b, 6, "keys", pl_json_str(m->create, "ssh-public-keys"), "\n");
		pl_buf_addstr(b, "    }\n");
	}
	pl_buf_addstr(b, "  }\n");
	json_object_foreach((json_t *)c, k, v) {
		const char *val = json_string_value(v);

		if (!val)
			continue;
		if (is_disk(k, (const char *const[]){ "net" }, 1)) {
			p = props(val);
			pl_buf_addstr(b, "  network_interface {\n");
			attr_str(b, 4, "name", pl_json_str_or(p, "name", "eth0"));
			attr_str(b, 4, "bridge", pl_json_str(p, "bridge"));
			attr_bool(b, 4, "firewall", pl_json_str(p, "firewall"));
			attr_num(b, 4, "vlan_id", json_object_get(p, "tag"));
			attr_str(b, 4, "mac_address", pl_json_str(p, "hwaddr"));
			attr_num(b, 4, "mtu", json_object_get(p, "mtu"));
			pl_buf_addstr(b, "  }\n");
			json_decref(p);
		} else if (is_disk(k, (const char *const[]){ "mp" }, 1)) {
			char *storage, *size;

			p = props(val);
			volume(pl_json_str(p, ""), &storage, &size);
			pl_buf_addstr(b, "  mount_point {\n");
			/* a volume (storage:size) or a host path bind-mounted */
			attr_str(b, 4, "volume", storage ? storage : pl_json_str(p, ""));
			if (size)
				attr_raw(b, 4, "size", "\"%sG\"", size);
			attr_str(b, 4, "path", pl_json_str(p, "mp"));
			attr_bool(b, 4, "backup", pl_json_str(p, "backup"));
			attr_bool(b, 4, "read_only", pl_json_str(p, "ro"));
			pl_buf_addstr(b, "  }\n");
			free(storage);
			free(size);
			json_decref(p);
		} else if (!in(ct_done, PL_ARRAY_LEN(ct_done), k)) {
			json_array_append_new(left, json_sprintf("%s=%s", k, val));
		}
	}
	guest_tail(b, "proxmox_virtual_environment_container", name, m);
	free(name);
}

static void
bridge_resource(struct pl_buf *b, const json_t *br)
{
	const char *node = pl_json_str(br, "node"), *iface = pl_json_str_or(br, "name", "");
	char *name = pl_asprintf("%s_%s", node ? node : "all", iface), *tf = tf_name(name);
	const json_t *ports = json_object_get(br, "ports");

	pl_buf_addf(b, "resource \"proxmox_virtual_environment_network_linux_bridge\" \"%s\" {\n",
		    tf);
	if (node)
		attr_str(b, 2, "node_name", node);
	else
		attr_raw(b, 2, "node_name", "var.pve_node");
	attr_str(b, 2, "name", iface);
	attr_str(b, 2, "address", pl_json_str(br, "cidr"));
	attr_str(b, 2, "gateway", pl_json_str(br, "gateway"));
	attr_str(b, 2, "comment", pl_json_str(br, "comment"));
	if (json_is_boolean(json_object_get(br, "vlan_aware")))
		attr_raw(b, 2, "vlan_aware", "%s",
			 json_is_true(json_object_get(br, "vlan_aware")) ? "true" : "false");
	if (json_is_boolean(json_object_get(br, "autostart")))
		attr_raw(b, 2, "autostart", "%s",
			 json_is_true(json_object_get(br, "autostart")) ? "true" : "false");
	if (json_is_string(ports))
		attr_list(b, 2, "ports", json_string_value(ports), " ,");
	else if (json_is_array(ports)) {
		size_t i;
		json_t *p;

		pl_buf_addstr(b, "  ports = [");
		json_array_foreach(ports, i, p) {
			pl_buf_addstr(b, i ? ", " : "");
			hcl_str(b, json_string_value(p) ? json_string_value(p) : "");
		}
		pl_buf_addstr(b, "]\n");
	}
	pl_buf_addstr(b, "}\n\n");
	if (node)
		pl_buf_addf(b,
			    "import {\n  to = proxmox_virtual_environment_network_linux_bridge.%s\n"
			    "  id = \"%s:%s\"\n}\n\n",
			    tf, node, iface);
	free(name);
	free(tf);
}

int
pl_export_terraform(const struct pl_config *cfg, struct pl_model_guest *models, size_t n,
		    struct pl_buf *out)
{
	json_t *left = json_array(), *v, *templates = json_object();
	const json_t *br;
	size_t i, j;
	struct pl_buf body;

	pl_buf_init(&body, 0);
	for (i = 0; i < n; i++) {
		json_t *mine = json_array();
		const json_t *clone = json_object_get(models[i].create, "clone");

		if (clone && pl_json_str(clone, "template"))
			json_object_set_new(templates, pl_json_str(clone, "template"), json_true());
		if (models[i].lxc)
			ct_resource(&body, &models[i], mine);
		else
			vm_resource(&body, &models[i], mine);
		json_array_foreach(mine, j, v)
			json_array_append_new(
				left, json_sprintf("%s: %s", models[i].name, json_string_value(v)));
		json_decref(mine);
	}
	json_array_foreach(pl_config_get(cfg, "/bridges"), i, br)
		bridge_resource(&body, br);
	pl_buf_addf(out,
		    "# Written by pvelab export terraform from %s (project %s): the same guests\n"
		    "# and bridges for the bpg/proxmox provider; terraform plan adopts the ones\n"
		    "# that exist through the import blocks (Terraform 1.5+).\n",
		    pl_config_path(cfg), pl_config_project(cfg));
	if (json_array_size(left)) {
		pl_buf_addstr(out, "# Not expressed here (pvelab apply sets them):\n");
		json_array_foreach(left, i, v)
			pl_buf_addf(out, "#   %s\n", json_string_value(v));
	}
	pl_buf_addstr(out,
		      "\nterraform {\n  required_version = \">= 1.5.0\"\n"
		      "  required_providers {\n    proxmox = {\n"
		      "      source  = \"bpg/proxmox\"\n      version = \">= 0.70.0\"\n"
		      "    }\n  }\n}\n\n"
		      "variable \"pve_endpoint\" {\n  type = string\n}\n\n"
		      "variable \"pve_api_token\" {\n  type      = string\n"
		      "  sensitive = true\n}\n\n"
		      "variable \"pve_insecure\" {\n  type    = bool\n  default = false\n}\n\n"
		      "variable \"pve_node\" {\n  type        = string\n  default     = null\n"
		      "  description = \"the node for guests the config places on none\"\n}\n\n");
	if (json_object_size(templates)) {
		const char *k;

		pl_buf_addstr(out, "variable \"template_vm_id\" {\n  type        = map(number)\n"
				   "  description = \"the vmid of each clone template, by name:");
		json_object_foreach(templates, k, v)
			pl_buf_addf(out, " %s", k);
		pl_buf_addstr(out, "\"\n}\n\n");
	}
	pl_buf_addstr(out,
		      "provider \"proxmox\" {\n  endpoint  = var.pve_endpoint\n"
		      "  api_token = var.pve_api_token\n  insecure  = var.pve_insecure\n}\n\n");
	pl_buf_add(out, body.data, body.len);
	pl_buf_release(&body);
	json_decref(left);
	json_decref(templates);
	return out->len >= out->max ? PL_ETOOBIG : 0;
}
