/*
 * `pvelab export ansible`: the config's guests as an Ansible inventory and a
 * playbook that creates and configures the same guests with the Proxmox
 * modules of Debian 12's Ansible (community.general 6.6: proxmox_kvm for
 * VMs, proxmox for containers). The guests are built by the model the
 * planner uses (model/guest.c), so the playbook sends what `pvelab apply`
 * would; what a module cannot express is listed as a comment.
 */
#include "core/common.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/export.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/str.h"
#include "core/yaml.h"
#include "model/guest.h"

enum { O_OUT };
static const struct pl_opt opts[] = {
	{ "out", 0, "DIR",
	  "where to write (default: ansible/ for inventory.yml and playbook.yml, terraform/ "
	  "for main.tf)" },
	{ NULL, 0, NULL, NULL },
};

/* proxmox_kvm's parameters that take a Proxmox config key as it is. */
static const char *const kvm_plain[] = {
	"acpi",    "agent",  "args",       "balloon",   "bios",     "boot",      "cicustom",
	"citype",  "ciuser", "cores",      "cpu",       "cpulimit", "cpuunits",  "description",
	"hotplug", "kvm",    "keyboard",   "localtime", "machine",  "memory",    "name",
	"onboot",  "ostype", "protection", "scsihw",    "shares",   "sockets",   "startup",
	"tablet",  "tdf",    "vcpus",      "vga",       "watchdog", "hugepages",
};
/* Indexed keys and the dict parameter that holds them (net0 -> net). */
static const char *const kvm_dicts[] = { "net",      "scsi",    "virtio", "sata",     "ide",
					 "ipconfig", "hostpci", "serial", "parallel", "numa" };
/* proxmox (containers): Proxmox key -> parameter. */
static const struct {
	const char *key, *param;
} lxc_plain[] = {
	{ "hostname", "hostname" },
	{ "cores", "cores" },
	{ "cpulimit", "cpus" },
	{ "cpuunits", "cpuunits" },
	{ "memory", "memory" },
	{ "swap", "swap" },
	{ "rootfs", "disk" },
	{ "nameserver", "nameserver" },
	{ "searchdomain", "searchdomain" },
	{ "onboot", "onboot" },
	{ "description", "description" },
	{ "hookscript", "hookscript" },
	{ "unprivileged", "unprivileged" },
};

static bool
in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}

/* "net0" -> "net" when the prefix is one of dicts and the rest digits. */
static const char *
dict_of(const char *key, const char *const *dicts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(dicts[i]);
		const char *p = key + l;

		if (strncmp(key, dicts[i], l) || !*p)
			continue;
		while (*p >= '0' && *p <= '9')
			p++;
		if (!*p)
			return dicts[i];
	}
	return NULL;
}

/* A config value as the module takes it: integers stay numbers, "1"/"0"
 * flags of boolean parameters become booleans. */
static json_t *
value_of(const char *param, const json_t *v)
{
	static const char *const bools[] = { "onboot",     "acpi",   "kvm", "localtime",
					     "protection", "tablet", "tdf", "unprivileged" };

	if (json_is_string(v) && in_list(bools, PL_ARRAY_LEN(bools), param))
		return json_boolean(!strcmp(json_string_value(v), "1"));
	return json_incref((json_t *)v);
}

/* "a;b" -> ["a", "b"] */
static json_t *
tag_list(const char *tags)
{
	json_t *a = json_array();
	char *t = pl_strdup(tags), *save = NULL;

	for (char *p = strtok_r(t, ";, ", &save); p; p = strtok_r(NULL, ";, ", &save))
		json_array_append_new(a, json_string(p));
	free(t);
	return a;
}

/* efidisk0 "local-lvm:1,efitype=4m,pre-enrolled-keys=1" -> proxmox_kvm's dict. */
static json_t *
efidisk(const char *v)
{
	json_t *o = json_object();
	char *s = pl_strdup(v), *save = NULL;
	bool first = true;

	for (char *p = strtok_r(s, ",", &save); p; p = strtok_r(NULL, ",", &save), first = false) {
		char *eq = strchr(p, '=');

		if (first && !eq && strchr(p, ':'))
			json_object_set_new(o, "storage", json_stringn(p, strcspn(p, ":")));
		else if (eq && !strncmp(p, "efitype=", 8))
			json_object_set_new(o, "efitype", json_string(eq + 1));
		else if (eq && !strncmp(p, "pre-enrolled-keys=", 18))
			json_object_set_new(o, "pre_enrolled_keys",
					    json_boolean(!strcmp(eq + 1, "1")));
		else if (eq && !strncmp(p, "format=", 7))
			json_object_set_new(o, "format", json_string(eq + 1));
	}
	free(s);
	return o;
}

/* Add "key=value" to the comment list of what the module cannot take. */
static void
left_out(json_t *skipped, const char *key, const json_t *v)
{
	char *text = pl_model_value_text(v);

	json_array_append_new(skipped, json_sprintf("%s=%s", key, text ? text : ""));
	free(text);
}

static json_t *
kvm_task(const struct pl_model_guest *m, json_t *skipped)
{
	json_t *args = json_pack("{s:s}", "name", m->name), *v;
	const json_t *clone = json_object_get(m->create, "clone");
	const char *k, *d;

	if (m->vmid)
		json_object_set_new(args, "vmid", json_integer(m->vmid));
	if (m->node)
		json_object_set_new(args, "node", json_string(m->node));
	if (pl_json_str(m->create, "pool"))
		json_object_set_new(args, "pool", json_string(pl_json_str(m->create, "pool")));
	json_object_foreach(m->config, k, v) {
		if (in_list(kvm_plain, PL_ARRAY_LEN(kvm_plain), k)) {
			json_object_set_new(args, k, value_of(k, v));
		} else if ((d = dict_of(k, kvm_dicts, PL_ARRAY_LEN(kvm_dicts))) != NULL) {
			json_t *dict = json_object_get(args, d);

			if (!dict) {
				dict = json_object();
				json_object_set_new(args, d, dict);
			}
			json_object_set(dict, k, v);
		} else if (!strcmp(k, "tags") && json_is_string(v)) {
			json_object_set_new(args, "tags", tag_list(json_string_value(v)));
		} else if (!strcmp(k, "nameserver") && json_is_string(v)) {
			json_object_set_new(args, "nameservers", tag_list(json_string_value(v)));
		} else if (!strcmp(k, "searchdomain") && json_is_string(v)) {
			json_object_set_new(args, "searchdomains", tag_list(json_string_value(v)));
		} else if (!strcmp(k, "sshkeys") && json_is_string(v)) {
			json_object_set(args, "sshkeys", v);
		} else if (!strcmp(k, "efidisk0") && json_is_string(v)) {
			json_object_set_new(args, "efidisk0", efidisk(json_string_value(v)));
		} else {
			left_out(skipped, k, v);
		}
	}
	if (clone) {
		/* the module clones, then applies nothing else: a second task with
		 * update: true configures the clone */
		json_object_set_new(args, "clone",
				    json_string(pl_json_str_or(clone, "template", "")));
		json_object_set_new(args, "full", json_boolean(pl_json_bool(clone, "full", true)));
		if (pl_json_str(clone, "storage"))
			json_object_set_new(args, "storage",
					    json_string(pl_json_str(clone, "storage")));
		if (m->vmid) {
			json_object_set_new(args, "newid", json_integer(m->vmid));
			json_object_del(args, "vmid");
		}
	}
	json_object_set_new(args, "state", json_string("present"));
	return args;
}

static json_t *
lxc_task(const struct pl_model_guest *m, json_t *skipped)
{
	json_t *args = json_object(), *v, *feats = NULL;
	const char *k, *d;
	static const char *const dicts[] = { "net", "mp" };

	if (m->vmid)
		json_object_set_new(args, "vmid", json_integer(m->vmid));
	if (m->node)
		json_object_set_new(args, "node", json_string(m->node));
	json_object_set_new(args, "hostname", json_string(m->name));
	if (pl_json_str(m->create, "ostemplate"))
		json_object_set_new(args, "ostemplate",
				    json_string(pl_json_str(m->create, "ostemplate")));
	if (pl_json_str(m->create, "pool"))
		json_object_set_new(args, "pool", json_string(pl_json_str(m->create, "pool")));
	if (pl_json_str(m->create, "ssh-public-keys"))
		json_object_set_new(args, "pubkey",
				    json_string(pl_json_str(m->create, "ssh-public-keys")));
	json_object_foreach(m->config, k, v) {
		size_t i;

		for (i = 0; i < PL_ARRAY_LEN(lxc_plain); i++)
			if (!strcmp(lxc_plain[i].key, k))
				break;
		if (i < PL_ARRAY_LEN(lxc_plain)) {
			json_object_set_new(args, lxc_plain[i].param,
					    value_of(lxc_plain[i].param, v));
		} else if ((d = dict_of(k, dicts, PL_ARRAY_LEN(dicts))) != NULL) {
			const char *param = !strcmp(d, "net") ? "netif" : "mounts";
			json_t *dict = json_object_get(args, param);

			if (!dict) {
				dict = json_object();
				json_object_set_new(args, param, dict);
			}
			json_object_set(dict, k, v);
		} else if (!strcmp(k, "tags") && json_is_string(v)) {
			json_object_set_new(args, "tags", tag_list(json_string_value(v)));
		} else if (!strcmp(k, "features") && json_is_string(v)) {
			feats = json_array();
			char *f = pl_strdup(json_string_value(v)), *save = NULL;

			for (char *p = strtok_r(f, ",", &save); p; p = strtok_r(NULL, ",", &save))
				json_array_append_new(feats, json_string(p));
			free(f);
			json_object_set_new(args, "features", feats);
		} else if (strcmp(k, "hostname") != 0) {
			left_out(skipped, k, v);
		}
	}
	json_object_set_new(args, "state", json_string("present"));
	return args;
}

/* A clone's disks come from its template: proxmox_disk grows each to its
 * declared size and sets its options, right after the clone. */
static void
clone_disks(const struct pl_model_guest *m, json_t *tasks, const char *when, json_t *skipped)
{
	static const char *const buses[] = { "scsi", "virtio", "sata", "ide" };
	static const char *const str_opts[] = { "discard", "cache", "aio" };
	static const char *const bool_opts[] = { "iothread", "ssd", "backup", "replicate" };
	const char *k;
	json_t *v;

	json_object_foreach(m->config, k, v) {
		const char *val = json_string_value(v), *colon;
		json_t *grow, *set;
		char *copy, *save = NULL;
		bool first = true;

		if (!dict_of(k, buses, PL_ARRAY_LEN(buses)) || !val || strstr(val, "cloudinit") ||
		    strstr(val, "media=cdrom") || !(colon = strchr(val, ':')))
			continue;
		grow = json_pack("{s:s,s:s,s:o,s:s}", "name", m->name, "disk", k, "size",
				 json_sprintf("%.*sG", (int)strcspn(colon + 1, ","), colon + 1),
				 "state", "resized");
		set = json_pack("{s:s,s:s,s:s,s:s}", "name", m->name, "disk", k, "create",
				"disabled", "state", "present");
		copy = pl_strdup(val);
		for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(p, '=');

			if (first || !eq) {
				first = false;
				continue;
			}
			*eq = '\0';
			if (in_list(str_opts, PL_ARRAY_LEN(str_opts), p))
				json_object_set_new(set, p, json_string(eq + 1));
			else if (in_list(bool_opts, PL_ARRAY_LEN(bool_opts), p))
				json_object_set_new(set, p, json_boolean(!strcmp(eq + 1, "1")));
			else
				json_array_append_new(skipped,
						      json_sprintf("%s: %s=%s", k, p, eq + 1));
		}
		free(copy);
		json_array_append_new(tasks, json_pack("{s:o,s:o,s:s}", "name",
						       json_sprintf("%s: %s size", m->name, k),
						       "community.general.proxmox_disk", grow,
						       "when", when));
		if (json_object_size(set) > 4)
			json_array_append_new(tasks,
					      json_pack("{s:o,s:o,s:s}", "name",
							json_sprintf("%s: %s options", m->name, k),
							"community.general.proxmox_disk", set,
							"when", when));
		else
			json_decref(set);
	}
}

/* The playbook's tasks for one guest: create (and, for a clone, configure),
 * then start it when it is to run. */
static void
guest_tasks(const struct pl_model_guest *m, json_t *tasks, struct pl_buf *notes)
{
	const char *mod = m->lxc ? "community.general.proxmox" : "community.general.proxmox_kvm";
	json_t *skipped = json_array(), *args, *v;
	size_t i;

	args = m->lxc ? lxc_task(m, skipped) : kvm_task(m, skipped);
	if (json_object_get(args, "clone")) {
		static const char *const clone_keys[] = { "name",  "newid", "node",    "pool",
							  "clone", "full",  "storage", "state" };
		json_t *conf = json_deep_copy(args), *v2;
		const char *k;
		void *tmp;

		json_object_foreach_safe(args, tmp, k, v2)
			if (!in_list(clone_keys, PL_ARRAY_LEN(clone_keys), k))
				json_object_del(args, k);

		json_object_del(conf, "clone");
		json_object_del(conf, "full");
		json_object_del(conf, "storage");
		json_object_del(conf, "newid");
		if (m->vmid)
			json_object_set_new(conf, "vmid", json_integer(m->vmid));
		/* disks of a clone come from its template: resizing them is
		 * community.general.proxmox_disk's (not in community.general 6.6) */
		json_object_del(conf, "scsi");
		json_object_del(conf, "virtio");
		json_object_del(conf, "sata");
		json_object_del(conf, "ide");
		json_object_set_new(conf, "update", json_true());
		/* configured once, right after the clone: update: true reports a
		 * change on every run */
		size_t at = json_array_size(tasks);

		json_array_append_new(tasks,
				      json_pack("{s:o,s:O,s:o}", "name",
						json_sprintf("%s: clone %s", m->name,
							     pl_json_str_or(args, "clone", "")),
						mod, args, "register",
						json_sprintf("pvelab_clone_%zu", at)));
		char *when = pl_asprintf("pvelab_clone_%zu is changed", at);

		json_array_append_new(tasks, json_pack("{s:o,s:o,s:s}", "name",
						       json_sprintf("%s: configure", m->name), mod,
						       conf, "when", when));
		clone_disks(m, tasks, when, skipped);
		free(when);
	} else {
		json_array_append_new(tasks,
				      json_pack("{s:o,s:O}", "name",
						json_sprintf("%s: create", m->name), mod, args));
	}
	if (m->running) {
		json_t *start = json_pack("{s:s}", "state", "started");

		json_object_set_new(start, m->lxc ? "hostname" : "name", json_string(m->name));
		if (m->vmid)
			json_object_set_new(start, "vmid", json_integer(m->vmid));
		if (m->node)
			json_object_set_new(start, "node", json_string(m->node));
		json_array_append_new(tasks,
				      json_pack("{s:o,s:o}", "name",
						json_sprintf("%s: running", m->name), mod, start));
	}
	json_array_foreach(skipped, i, v)
		pl_buf_addf(notes, "#   %s: %s\n", m->name, json_string_value(v));
	json_decref(skipped);
	json_decref(args);
}

/* Put host in the group prefix+label (made a valid Ansible group name). */
static void
join(json_t *groups, const char *prefix, const char *label, const char *host)
{
	char grp[160];
	json_t *hosts;

	snprintf(grp, sizeof(grp), "%s%s", prefix, label);
	for (char *c = grp; *c; c++)
		if (!(*c >= 'a' && *c <= 'z') && !(*c >= '0' && *c <= '9'))
			*c = '_';
	if (!(hosts = json_object_get(groups, grp))) {
		hosts = json_object();
		json_object_set_new(groups, grp, hosts);
	}
	json_object_set_new(hosts, host, json_object());
}

/* The inventory: hosts by guest name, grouped by node, type, tag and
 * category, with ansible_host from the first declared address. */
static json_t *
inventory(const json_t *guests, const struct pl_model_guest *models, size_t n)
{
	json_t *hosts = json_object(), *groups = json_object(), *g;
	size_t i, j;

	for (i = 0; i < n; i++) {
		const struct pl_model_guest *m = &models[i];
		json_t *vars = json_object(), *net;
		const char *tags = pl_json_str(m->config, "tags");

		g = json_array_get(guests, i);
		json_array_foreach(json_object_get(g, "networks"), j, net) {
			const char *ip = pl_json_str(net, "ip");

			if (ip && strcmp(ip, "dhcp") && !json_object_get(vars, "ansible_host")) {
				json_object_set_new(vars, "ansible_host",
						    json_stringn(ip, strcspn(ip, "/")));
			}
		}
		if (m->vmid)
			json_object_set_new(vars, "pve_vmid", json_integer(m->vmid));
		if (m->node)
			json_object_set_new(vars, "pve_node", json_string(m->node));
		json_object_set_new(vars, "pve_type", json_string(m->lxc ? "lxc" : "qemu"));
		json_object_set_new(hosts, m->name, vars);
		join(groups, "type_", m->lxc ? "lxc" : "qemu", m->name);
		if (m->node)
			join(groups, "node_", m->node, m->name);
		if (m->category)
			join(groups, "category_", m->category, m->name);
		if (tags) {
			json_t *tl = tag_list(tags), *t;

			json_array_foreach(tl, j, t)
				join(groups, "tag_", json_string_value(t), m->name);
			json_decref(tl);
		}
	}
	{
		json_t *children = json_object(), *gh;
		const char *k;

		json_object_foreach(groups, k, gh)
			json_object_set_new(children, k, json_pack("{s:O}", "hosts", gh));
		json_decref(groups);
		return json_pack("{s:{s:o,s:o}}", "all", "hosts", hosts, "children", children);
	}
}

/* Write path (mode 0644) unless it exists. */
static int
write_new(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ssize_t w;

	if (fd < 0) {
		pl_error("export: %s: %s%s", path, strerror(errno),
			 errno == EEXIST ? " (remove it or choose --out)" : "");
		return -1;
	}
	w = write(fd, text, len);
	if (close(fd) != 0 || w != (ssize_t)len) {
		pl_error("export: %s: cannot write it", path);
		return -1;
	}
	return 0;
}

/* The chosen guests of cfg (all when names is empty) and their models, with
 * the tags that make them this project's (as the planner adds). */
static int
models_of(const struct pl_config *cfg, char **names, int nnames, json_t **chosen,
	  struct pl_model_guest **models, size_t *n)
{
	const json_t *g;
	char *err = NULL;
	size_t i;

	*chosen = json_array();
	*n = 0;
	json_array_foreach(pl_config_guests(cfg), i, g) {
		bool want = nnames == 0;

		for (int j = 0; j < nnames; j++)
			want |= !strcmp(names[j], pl_json_str_or(g, "name", ""));
		if (want)
			json_array_append(*chosen, (json_t *)g);
	}
	*models = pl_calloc(json_array_size(*chosen) + 1, sizeof(**models));
	for (int j = 0; j < nnames; j++)
		if (!pl_json_find(*chosen, "name", names[j], false)) {
			pl_error("export: no guest '%s' in %s", names[j], pl_config_path(cfg));
			return PL_EXIT_ERROR;
		}
	json_array_foreach(*chosen, i, g) {
		struct pl_model_guest *m = &(*models)[*n];
		char *ptag, *tags, *norm;

		if (pl_model_guest_from_config(g, m, &err) != 0) {
			pl_error("export: %s: %s", pl_json_str_or(g, "name", "?"), err);
			free(err);
			return PL_EXIT_ERROR;
		}
		(*n)++;
		ptag = pl_model_project_tag(pl_config_project(cfg));
		tags = pl_asprintf("%s;%s", pl_json_str_or(m->config, "tags", ""), ptag);
		norm = pl_model_tags_norm(tags);
		json_object_set_new(m->config, "tags", json_string(norm));
		free(norm);
		free(tags);
		free(ptag);
	}
	return PL_EXIT_OK;
}

static int
export_ansible(struct pl_ctx *ctx, const struct pl_config *cfg, const json_t *chosen,
	       struct pl_model_guest *models, size_t n, const char *dir)
{
	json_t *tasks = json_array(), *play, *inv;
	struct pl_buf book, notes, invtext;
	char *p1 = NULL, *p2 = NULL;
	size_t i;
	int rc = PL_EXIT_ERROR;

	pl_buf_init(&book, 0);
	pl_buf_init(&notes, 0);
	pl_buf_init(&invtext, 0);
	for (i = 0; i < n; i++)
		guest_tasks(&models[i], tasks, &notes);
	play = json_pack("[{s:s,s:s,s:b,s:{s:o,s:o,s:o},s:o}]", "name", "guests", "hosts",
			 "localhost", "gather_facts", 0, "module_defaults",
			 "community.general.proxmox_kvm", json_object(),
			 "community.general.proxmox", json_object(),
			 "community.general.proxmox_disk", json_object(), "tasks", tasks);
	tasks = NULL;
	json_object_set_new(json_array_get(play, 0), "name",
			    json_sprintf("guests of pvelab project %s", pl_config_project(cfg)));
	pl_buf_addf(
		&book,
		"# Written by pvelab export ansible from %s (project %s): creates and\n"
		"# configures the same guests as pvelab apply, with community.general 6.6.\n"
		"# Run: ansible-playbook -i inventory.yml playbook.yml -e pve_api_host=HOST \\\n"
		"#   -e pve_api_user=USER@REALM -e pve_api_token_id=NAME \\\n"
		"#   -e pve_api_token_secret=SECRET [-e pve_validate_certs=false] \\\n"
		"#   [-e pve_node=NODE: for guests the config places on no node]\n"
		"# Pools a guest joins must exist first (pveum pool add NAME).\n",
		pl_config_path(cfg), pl_config_project(cfg));
	if (notes.len)
		pl_buf_addf(&book,
			    "# Not expressible with these modules (set by pvelab apply):\n%s",
			    notes.data);
	pl_yaml_emit_ansible(play, 0, &book);
	json_decref(play);
	/* the connection, for both modules: templated, so written by hand */
	{
		static const char *const mods[] = { "community.general.proxmox_kvm",
						    "community.general.proxmox",
						    "community.general.proxmox_disk" };
		static const char auth[] =
			"      api_host: \"{{ pve_api_host }}\"\n"
			"      api_user: \"{{ pve_api_user }}\"\n"
			"      api_token_id: \"{{ pve_api_token_id }}\"\n"
			"      api_token_secret: \"{{ pve_api_token_secret }}\"\n"
			"      validate_certs: \"{{ pve_validate_certs | default(true) }}\"\n";
		/* proxmox_disk finds the VM by name: it takes no node */
		static const char node[] = "      node: \"{{ pve_node | default(omit) }}\"\n"
					   "      timeout: 120\n";

		for (size_t m = 0; m < PL_ARRAY_LEN(mods); m++) {
			char *at, *key = pl_asprintf("    %s: {}\n", mods[m]);
			struct pl_buf fixed;

			at = strstr(book.data, key);
			if (at) {
				pl_buf_init(&fixed, 0);
				pl_buf_add(&fixed, book.data, (size_t)(at - book.data));
				pl_buf_addf(&fixed, "    %s:\n%s%s", mods[m], auth,
					    m < 2 ? node : "");
				pl_buf_addstr(&fixed, at + strlen(key));
				pl_buf_release(&book);
				book = fixed;
			}
			free(key);
		}
	}
	inv = inventory(chosen, models, n);
	pl_buf_addf(&invtext, "# Written by pvelab export ansible from %s (project %s)\n",
		    pl_config_path(cfg), pl_config_project(cfg));
	pl_yaml_emit_ansible(inv, 0, &invtext);
	json_decref(inv);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		pl_error("export: cannot make %s: %s", dir, strerror(errno));
		goto out;
	}
	p1 = pl_asprintf("%s/inventory.yml", dir);
	p2 = pl_asprintf("%s/playbook.yml", dir);
	if (write_new(p1, invtext.data, invtext.len) != 0 ||
	    write_new(p2, book.data, book.len) != 0)
		goto out;
	if (ctx->verbosity >= 0)
		printf("wrote %s and %s (%zu guest%s)\n", p1, p2, n, n == 1 ? "" : "s");
	rc = PL_EXIT_OK;
out:
	pl_buf_release(&book);
	pl_buf_release(&notes);
	pl_buf_release(&invtext);
	json_decref(tasks);
	free(p1);
	free(p2);
	return rc;
}

static int
export_terraform(struct pl_ctx *ctx, const struct pl_config *cfg, struct pl_model_guest *models,
		 size_t n, const char *dir)
{
	struct pl_buf hcl;
	char *path = NULL;
	int rc = PL_EXIT_ERROR;

	pl_buf_init(&hcl, 0);
	if (pl_export_terraform(cfg, models, n, &hcl) != 0) {
		pl_error("export: the HCL is too large");
		goto out;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		pl_error("export: cannot make %s: %s", dir, strerror(errno));
		goto out;
	}
	path = pl_asprintf("%s/main.tf", dir);
	if (write_new(path, hcl.data, hcl.len) != 0)
		goto out;
	if (ctx->verbosity >= 0)
		printf("wrote %s (%zu guest%s)\n", path, n, n == 1 ? "" : "s");
	rc = PL_EXIT_OK;
out:
	pl_buf_release(&hcl);
	free(path);
	return rc;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	struct pl_config *cfg = NULL;
	struct pl_model_guest *models = NULL;
	json_t *chosen = NULL;
	size_t n = 0;
	struct pl_diags d;
	const char *path;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_export, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if (strcmp(a.pos[0], "ansible") != 0 && strcmp(a.pos[0], "terraform") != 0) {
		pl_error("export: unknown format '%s' (ansible or terraform)", a.pos[0]);
		pl_args_release(&a);
		return PL_EXIT_USAGE;
	}
	pl_diags_init(&d);
	path = ctx->config_path;
	if (pl_config_load(path, &cfg, &d) == 0 && cfg)
		pl_config_check(cfg, &d);
	if (!cfg || d.nerrors) {
		for (size_t i = 0; i < d.n; i++) {
			char *line = pl_diag_line(&d.items[i]);

			fprintf(stderr, "%s\n", line);
			free(line);
		}
		pl_error("export: %s is not valid (pvelab validate shows why)", path);
		goto out;
	}
	if (models_of(cfg, a.pos + 1, a.npos - 1, &chosen, &models, &n) != 0)
		goto out;
	if (!strcmp(a.pos[0], "ansible"))
		rc = export_ansible(ctx, cfg, chosen, models, n, pl_args_str(&a, O_OUT, "ansible"));
	else
		rc = export_terraform(ctx, cfg, models, n, pl_args_str(&a, O_OUT, "terraform"));
out:
	for (size_t i = 0; i < n; i++)
		pl_model_guest_release(&models[i]);
	free(models);
	json_decref(chosen);
	pl_config_free(cfg);
	pl_diags_release(&d);
	pl_args_release(&a);
	return rc;
}

const struct pl_cmd pl_cmd_export = {
	.name = "export",
	.summary = "write the config's guests as Ansible or Terraform (bpg/proxmox)",
	.usage = "ansible|terraform [GUEST...] [--out DIR]",
	.help = "ansible writes DIR/inventory.yml (the guests grouped by node, type, tag and\n"
		"category, ansible_host from their first declared address) and\n"
		"DIR/playbook.yml, which\n"
		"creates and configures the same guests with Debian 12's Ansible\n"
		"(community.general.proxmox_kvm and proxmox), idempotent on a second run.\n"
		"Reads only the config: no cluster is needed. What the modules cannot express\n"
		"is listed in a comment at the top of the playbook.\n"
		"\n"
		"terraform writes DIR/main.tf for the bpg/proxmox provider: a\n"
		"proxmox_virtual_environment_vm or _container per guest and a\n"
		"_network_linux_bridge per declared bridge, the provider block with variables\n"
		"for the endpoint and token, and Terraform 1.5 import blocks (node/vmid,\n"
		"node:iface) so that terraform plan adopts what exists. Existing files are\n"
		"never overwritten.",
	.opts = opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
};
