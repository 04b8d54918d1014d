/*
 * The reverse of guest.c: a live guest as a pvelab.yaml guest, for `pvelab
 * import`. Settings pvelab has keys for become those keys; anything it cannot
 * express exactly goes under `config:` verbatim, so the round trip is exact.
 */
#include "core/common.h"
#include "model/guest.h"
#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"

#include <ctype.h>
#include <limits.h>

static json_t *
bool_of(const char *v)
{
	const char *b = v ? pl_bool_norm(v) : NULL;

	return b ? json_boolean(b[0] == '1') : NULL;
}

static json_t *
int_of(const char *v)
{
	long long n;

	return v && pl_str_to_ll(v, LLONG_MIN, LLONG_MAX, &n) == 0 ? json_integer(n) : NULL;
}

/* Take key out of the raw map into the guest under name, converted. */
static void
take(json_t *raw, json_t *g, const char *key, const char *name, json_t *(*conv)(const char *))
{
	const char *v = pl_json_str(raw, key);
	json_t *x;

	if (v == NULL)
		return;
	x = conv ? conv(v) : json_string(v);
	if (x == NULL)
		return; /* stays raw */
	json_object_set_new(g, name, x);
	json_object_del(raw, key);
}

static const struct pl_pfmt *
fmt(bool lxc, const char *base)
{
	char name[48];

	snprintf(name, sizeof(name), "%s.%s", lxc ? "lxc" : "qemu", base);
	return pl_pfmt_get(name);
}

/* Move the parsed keys listed (prop -> yaml) into obj; false if p has others. */
static bool
map_props(const struct pl_propstr *p, json_t *obj, const char *const *pairs, const char *const *bools,
	  const char *const *ints)
{
	for (size_t i = 0; i < p->n; i++) {
		const char *k = p->items[i].key, *v = p->items[i].value;
		const char *to = NULL;

		for (size_t j = 0; pairs[j]; j += 2)
			if (!strcmp(pairs[j], k))
				to = pairs[j + 1];
		if (to == NULL)
			return false;
		if (!*to)
			continue; /* known, implied */
		bool is_bool = false, is_int = false;

		for (size_t j = 0; bools && bools[j]; j++)
			is_bool |= !strcmp(bools[j], k);
		for (size_t j = 0; ints && ints[j]; j++)
			is_int |= !strcmp(ints[j], k);
		json_object_set_new(obj, to, is_bool ? bool_of(v) : is_int ? int_of(v) : json_string(v));
		if (json_is_null(json_object_get(obj, to)) || json_object_get(obj, to) == NULL)
			return false;
	}
	return true;
}

/* netN for N = 0..: true if all could be expressed as `networks`. */
static bool
import_networks(json_t *raw, json_t *g, bool lxc)
{
	static const char *const vm_pairs[] = { "model", "model", "macaddr", "mac", "bridge", "bridge",
						"tag", "vlan", "firewall", "firewall", "mtu", "mtu",
						"rate", "rate", NULL };
	static const char *const ct_pairs[] = { "name", "name", "hwaddr", "mac", "bridge", "bridge",
						"tag", "vlan", "firewall", "firewall", "mtu", "mtu",
						"rate", "rate", "ip", "ip", "gw", "gw", "ip6", "ip6",
						"gw6", "gw6", "type", "", NULL };
	static const char *const bools[] = { "firewall", NULL };
	static const char *const ints[] = { "tag", "mtu", NULL };
	json_t *nets = json_array();
	char key[32];
	int n = 0;

	for (;; n++) {
		snprintf(key, sizeof(key), "net%d", n);
		if (!pl_json_str(raw, key))
			break;
	}
	for (int i = 0; i < n; i++) {
		struct pl_propstr p;
		json_t *net = json_object();
		bool ok;

		snprintf(key, sizeof(key), "net%d", i);
		pl_propstr_init(&p);
		ok = pl_propstr_parse(fmt(lxc, "net"), pl_json_str(raw, key), &p, NULL) == 0 &&
		     map_props(&p, net, lxc ? ct_pairs : vm_pairs, bools, ints);
		pl_propstr_release(&p);
		if (ok && json_object_get(net, "rate"))
			json_object_set_new(net, "rate", json_real(strtod(pl_json_str(net, "rate"), NULL)));
		if (ok && !lxc && !strcmp(pl_json_str_or(net, "model", ""), "virtio"))
			json_object_del(net, "model");
		if (ok && lxc) {
			char dflt[16];

			snprintf(dflt, sizeof(dflt), "eth%d", i);
			if (!strcmp(pl_json_str_or(net, "name", ""), dflt))
				json_object_del(net, "name");
		}
		if (!ok) {
			json_decref(net);
			json_decref(nets);
			return false;
		}
		json_array_append_new(nets, net);
	}
	/* cloud-init addresses belong to the interfaces (VMs) */
	for (int i = 0; !lxc && i < 32; i++) {
		struct pl_propstr p;
		json_t *net = json_array_get(nets, (size_t)i);

		snprintf(key, sizeof(key), "ipconfig%d", i);
		if (!pl_json_str(raw, key))
			continue;
		if (net == NULL) {
			json_decref(nets);
			return false;
		}
		pl_propstr_init(&p);
		if (pl_propstr_parse(fmt(false, "ipconfig"), pl_json_str(raw, key), &p, NULL) == 0) {
			for (size_t k = 0; k < p.n; k++)
				json_object_set_new(net, p.items[k].key, json_string(p.items[k].value));
		}
		pl_propstr_release(&p);
	}
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "net%d", i);
		json_object_del(raw, key);
		snprintf(key, sizeof(key), "ipconfig%d", i);
		json_object_del(raw, key);
	}
	if (n)
		json_object_set_new(g, "networks", nets);
	else
		json_decref(nets);
	return true;
}

/* "local-lvm:vm-100-disk-0,size=32G,..." as {storage,size,options}; NULL when
 * it is not a plain storage volume (a CD-ROM, a cloud-init drive...). */
static json_t *
import_volume(const struct pl_pfmt *f, const char *text, const char *volkey)
{
	struct pl_propstr p;
	json_t *d = NULL, *opts;
	const char *vol, *size;

	pl_propstr_init(&p);
	if (pl_propstr_parse(f, text, &p, NULL) != 0)
		goto out;
	vol = pl_propstr_get(&p, volkey);
	size = pl_propstr_get(&p, "size");
	if (vol == NULL || size == NULL || vol[0] == '/' || strchr(vol, ':') == NULL ||
	    strstr(vol, "cloudinit") || (pl_propstr_get(&p, "media") && strcmp(pl_propstr_get(&p, "media"), "disk")))
		goto out;
	d = json_pack("{s:s%,s:s}", "storage", vol, strcspn(vol, ":"), "size", size);
	opts = json_object();
	for (size_t i = 0; i < p.n; i++) {
		const char *k = p.items[i].key;

		if (strcmp(k, volkey) && strcmp(k, "size") && strcmp(k, "mp"))
			json_object_set_new(opts, k, json_string(p.items[i].value));
	}
	if (json_object_size(opts))
		json_object_set_new(d, "options", opts);
	else
		json_decref(opts);
out:
	pl_propstr_release(&p);
	return d;
}

static void
import_disks(json_t *raw, json_t *g)
{
	static const char *const buses[] = { "scsi", "virtio", "sata", "ide" };
	json_t *disks = json_array();

	for (size_t b = 0; b < 4; b++) {
		for (int i = 0; i < 31; i++) {
			char key[32];
			json_t *d;

			snprintf(key, sizeof(key), "%s%d", buses[b], i);
			if (!pl_json_str(raw, key))
				continue;
			d = import_volume(fmt(false, buses[b]), pl_json_str(raw, key), "file");
			if (d == NULL)
				continue;
			json_object_set_new(d, "bus", json_string(buses[b]));
			json_object_set_new(d, "index", json_integer(i));
			json_array_append_new(disks, d);
			json_object_del(raw, key);
		}
	}
	if (json_array_size(disks))
		json_object_set_new(g, "disks", disks);
	else
		json_decref(disks);
}

static void
import_ct_storage(json_t *raw, json_t *g)
{
	json_t *mounts = json_array(), *d;
	char key[32];
	int n = 0;

	if (pl_json_str(raw, "rootfs") &&
	    (d = import_volume(fmt(true, "rootfs"), pl_json_str(raw, "rootfs"), "volume")) != NULL) {
		json_object_set_new(g, "rootfs", d);
		json_object_del(raw, "rootfs");
	}
	for (;; n++) {
		snprintf(key, sizeof(key), "mp%d", n);
		if (!pl_json_str(raw, key))
			break;
	}
	for (int i = 0; i < n; i++) {
		struct pl_propstr p;
		json_t *m = json_object(), *opts = json_object();
		bool ok;

		snprintf(key, sizeof(key), "mp%d", i);
		pl_propstr_init(&p);
		ok = pl_propstr_parse(fmt(true, "mp"), pl_json_str(raw, key), &p, NULL) == 0;
		for (size_t k = 0; ok && k < p.n; k++) {
			const char *pk = p.items[k].key, *pv = p.items[k].value;

			if (!strcmp(pk, "volume")) {
				if (pv[0] == '/')
					json_object_set_new(m, "volume", json_string(pv));
				else if (strchr(pv, ':') && pl_propstr_get(&p, "size"))
					json_object_set_new(m, "storage", json_stringn(pv, strcspn(pv, ":")));
				else
					json_object_set_new(m, "volume", json_string(pv));
			} else if (!strcmp(pk, "mp")) {
				json_object_set_new(m, "path", json_string(pv));
			} else if (!strcmp(pk, "size")) {
				if (json_object_get(m, "storage") || pv)
					json_object_set_new(m, "size", json_string(pv));
			} else if (!strcmp(pk, "backup") || !strcmp(pk, "ro")) {
				json_object_set_new(m, pk, bool_of(pv));
			} else {
				json_object_set_new(opts, pk, json_string(pv));
			}
		}
		pl_propstr_release(&p);
		if (json_object_get(m, "volume"))
			json_object_del(m, "size"); /* an existing volume keeps its size */
		if (json_object_size(opts))
			json_object_set_new(m, "options", opts);
		else
			json_decref(opts);
		if (!ok) {
			json_decref(m);
			json_decref(mounts);
			return;
		}
		json_array_append_new(mounts, m);
	}
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "mp%d", i);
		json_object_del(raw, key);
	}
	if (n)
		json_object_set_new(g, "mounts", mounts);
	else
		json_decref(mounts);
}

static void
import_hostpci(json_t *raw, json_t *g)
{
	static const char *const pairs[] = { "host", "host", "mapping", "mapping", "pcie", "pcie",
					     "x-vga", "x_vga", "rombar", "rombar", "romfile", "romfile",
					     NULL };
	static const char *const bools[] = { "pcie", "x-vga", "rombar", NULL };
	json_t *list = json_array();
	char key[32];
	int n = 0;

	for (;; n++) {
		snprintf(key, sizeof(key), "hostpci%d", n);
		if (!pl_json_str(raw, key))
			break;
	}
	for (int i = 0; i < n; i++) {
		struct pl_propstr p;
		json_t *dev = json_object();
		bool ok;

		snprintf(key, sizeof(key), "hostpci%d", i);
		pl_propstr_init(&p);
		ok = pl_propstr_parse(fmt(false, "hostpci"), pl_json_str(raw, key), &p, NULL) == 0 &&
		     map_props(&p, dev, pairs, bools, NULL);
		pl_propstr_release(&p);
		if (!ok) {
			json_decref(dev);
			json_decref(list);
			return;
		}
		json_array_append_new(list, dev);
	}
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "hostpci%d", i);
		json_object_del(raw, key);
	}
	if (n)
		json_object_set_new(g, "hostpci", list);
	else
		json_decref(list);
}

static void
import_cloudinit(json_t *raw, json_t *g)
{
	json_t *ci = json_object(), *dns = json_object();

	take(raw, ci, "ciuser", "user", NULL);
	take(raw, ci, "ciupgrade", "upgrade", bool_of);
	if (pl_json_str(raw, "sshkeys")) {
		char *keys = pl_str_url_decode(pl_json_str(raw, "sshkeys")), *save = NULL;
		json_t *list = json_array();

		for (char *k = strtok_r(keys, "\n", &save); k; k = strtok_r(NULL, "\n", &save))
			if (*k)
				json_array_append_new(list, json_string(k));
		json_object_set_new(ci, "ssh_keys", list);
		json_object_del(raw, "sshkeys");
		free(keys);
	}
	if (pl_json_str(raw, "nameserver")) {
		char *ns = pl_strdup(pl_json_str(raw, "nameserver")), *save = NULL;
		json_t *list = json_array();

		for (char *k = strtok_r(ns, " ", &save); k; k = strtok_r(NULL, " ", &save))
			json_array_append_new(list, json_string(k));
		json_object_set_new(dns, "servers", list);
		json_object_del(raw, "nameserver");
		free(ns);
	}
	take(raw, dns, "searchdomain", "domain", NULL);
	if (json_object_size(dns))
		json_object_set_new(ci, "dns", dns);
	else
		json_decref(dns);
	if (json_object_size(ci))
		json_object_set_new(g, "cloudinit", ci);
	else
		json_decref(ci);
}

json_t *
pl_model_guest_to_yaml(const json_t *live)
{
	bool lxc = !strcmp(pl_json_str_or(live, "type", "qemu"), "lxc");
	const json_t *cfg = json_object_get(live, "config");
	json_t *raw = json_object(), *g, *tags;
	const char *k;
	json_t *v;

	/* every config value as text, minus what PVE maintains itself */
	json_object_foreach((json_t *)cfg, k, v) {
		char *t = pl_model_value_text(v);

		if (t && !pl_model_key_ignored(k))
			json_object_set_new(raw, k, json_string(t));
		free(t);
	}
	g = json_pack("{s:s,s:s,s:I,s:s?}", "name",
		      pl_json_str_or(raw, lxc ? "hostname" : "name", pl_json_str_or(live, "name", "")),
		      "type", lxc ? "lxc" : "vm", "vmid", (json_int_t)pl_json_int(live, "vmid", 0),
		      "node", pl_json_str(live, "node"));
	json_object_del(raw, lxc ? "hostname" : "name");
	take(raw, g, "cores", "cores", int_of);
	take(raw, g, "memory", "memory", int_of);
	take(raw, g, "onboot", "onboot", bool_of);
	take(raw, g, "description", "description", NULL);
	take(raw, g, "ostype", "ostype", NULL);
	if (pl_json_str(raw, "tags")) {
		char *norm = pl_model_tags_norm(pl_json_str(raw, "tags")), *save = NULL;

		tags = json_array();
		for (char *t = strtok_r(norm, ";", &save); t; t = strtok_r(NULL, ";", &save))
			if (!pl_model_tag_is_owner(t))
				json_array_append_new(tags, json_string(t));
		if (json_array_size(tags))
			json_object_set_new(g, "tags", tags);
		else
			json_decref(tags);
		json_object_del(raw, "tags");
		free(norm);
	}
	if (pl_json_str(raw, "startup")) {
		struct pl_propstr p;
		json_t *st = json_object();

		pl_propstr_init(&p);
		if (pl_propstr_parse(fmt(lxc, "startup"), pl_json_str(raw, "startup"), &p, NULL) == 0 &&
		    map_props(&p, st, (const char *const[]){ "order", "order", "up", "up", "down", "down", NULL },
			      NULL, (const char *const[]){ "order", "up", "down", NULL })) {
			json_object_set_new(g, "startup", st);
			json_object_del(raw, "startup");
		} else {
			json_decref(st);
		}
		pl_propstr_release(&p);
	}
	import_networks(raw, g, lxc);
	if (lxc) {
		take(raw, g, "swap", "swap", int_of);
		take(raw, g, "unprivileged", "unprivileged", bool_of);
		if (pl_json_str(raw, "features")) {
			struct pl_propstr p;
			json_t *f = json_object();
			static const char *const pairs[] = { "nesting", "nesting", "keyctl", "keyctl", "fuse",
							     "fuse", "mknod", "mknod", "mount", "mount", NULL };

			pl_propstr_init(&p);
			if (pl_propstr_parse(fmt(true, "features"), pl_json_str(raw, "features"), &p, NULL) == 0 &&
			    map_props(&p, f, pairs, (const char *const[]){ "nesting", "keyctl", "fuse", "mknod", NULL }, NULL)) {
				json_object_set_new(g, "features", f);
				json_object_del(raw, "features");
			} else {
				json_decref(f);
			}
			pl_propstr_release(&p);
		}
		import_ct_storage(raw, g);
	} else {
		take(raw, g, "sockets", "sockets", int_of);
		take(raw, g, "cpu", "cpu", NULL);
		take(raw, g, "balloon", "balloon", int_of);
		take(raw, g, "bios", "bios", NULL);
		take(raw, g, "machine", "machine", NULL);
		take(raw, g, "scsihw", "scsihw", NULL);
		if (pl_json_str(raw, "agent") && pl_bool_norm(pl_json_str(raw, "agent")))
			take(raw, g, "agent", "agent", bool_of);
		import_disks(raw, g);
		import_hostpci(raw, g);
		import_cloudinit(raw, g);
	}
	json_object_set_new(g, "state", json_string(!strcmp(pl_json_str_or(live, "status", ""), "running")
							   ? "running" : "stopped"));
	if (json_object_size(raw))
		json_object_set_new(g, "config", raw);
	else
		json_decref(raw);
	return g;
}
