/*
 * The desired Proxmox config of a declared guest, and per-key comparison
 * with a live config: values PVE generates (MACs, volume names, its own
 * defaults, key order, size units) never show up as changes, and each real
 * change is classified by how it reaches a running guest.
 */
#include "core/common.h"
#include "model/guest.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"

#include <ctype.h>
#include <math.h>

/* ---- small helpers ------------------------------------------------------ */

char *
pl_model_value_text(const json_t *v)
{
	if (json_is_string(v))
		return pl_strdup(json_string_value(v));
	if (json_is_integer(v))
		return pl_asprintf("%lld", (long long)json_integer_value(v));
	if (json_is_real(v)) {
		double d = json_real_value(v);

		if (d == floor(d) && fabs(d) < 1e15)
			return pl_asprintf("%lld", (long long)d);
		return pl_asprintf("%g", d);
	}
	if (json_is_boolean(v))
		return pl_strdup(json_is_true(v) ? "1" : "0");
	return NULL;
}

bool
pl_model_is_managed(const json_t *live)
{
	return pl_model_owner(live, NULL) != PL_OWNER_NONE;
}

char *
pl_model_project_tag(const char *project)
{
	return pl_asprintf("%s-%s", PL_MODEL_MANAGED_TAG, project);
}

/* The live guest's tags: the resource list's, else its config's. */
static const char *
live_tags(const json_t *live)
{
	const char *t = pl_json_str(live, "tags");

	return t ? t : pl_json_str_or(json_object_get(live, "config"), "tags", "");
}

enum pl_model_owner
pl_model_owner(const json_t *live, char **project)
{
	char *tags = pl_model_tags_norm(live_tags(live)), *save = NULL;
	enum pl_model_owner o = PL_OWNER_NONE;
	size_t n = strlen(PL_MODEL_MANAGED_TAG);

	if (project)
		*project = NULL;
	for (char *t = strtok_r(tags, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
		if (!strcmp(t, PL_MODEL_MANAGED_TAG) && o == PL_OWNER_NONE)
			o = PL_OWNER_LEGACY;
		else if (!strncmp(t, PL_MODEL_MANAGED_TAG "-", n + 1) && t[n + 1] && o != PL_OWNER_PROJECT) {
			o = PL_OWNER_PROJECT;
			if (project)
				*project = pl_strdup(t + n + 1);
		}
	}
	free(tags);
	return o;
}

bool
pl_model_owned_by(const json_t *live, const char *project)
{
	char *p = NULL;
	bool yes = pl_model_owner(live, &p) == PL_OWNER_PROJECT && !strcmp(p, project);

	free(p);
	return yes;
}

bool
pl_model_tag_is_owner(const char *tag)
{
	size_t n = strlen(PL_MODEL_MANAGED_TAG);

	return !strncmp(tag, PL_MODEL_MANAGED_TAG, n) && (tag[n] == '\0' || tag[n] == '-');
}

char *
pl_model_tags_owned(const char *tags, const char *project)
{
	char *norm = pl_model_tags_norm(tags), *save = NULL, *r;
	struct pl_buf b;

	pl_buf_init(&b, 0);
	pl_buf_addf(&b, "%s;%s-%s", PL_MODEL_MANAGED_TAG, PL_MODEL_MANAGED_TAG, project);
	for (char *t = strtok_r(norm, ";", &save); t; t = strtok_r(NULL, ";", &save))
		if (!pl_model_tag_is_owner(t))
			pl_buf_addf(&b, ";%s", t);
	r = pl_model_tags_norm(b.data);
	pl_buf_release(&b);
	free(norm);
	return r;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *
pl_model_tags_norm(const char *tags)
{
	char *copy = pl_strdup(tags ? tags : ""), *save = NULL;
	char *items[256];
	size_t n = 0;
	struct pl_buf out;

	for (char *t = strtok_r(copy, "; ,", &save); t && n < 256; t = strtok_r(NULL, "; ,", &save)) {
		for (char *c = t; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		items[n++] = t;
	}
	qsort(items, n, sizeof(*items), cmp_str);
	pl_buf_init(&out, 0);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(items[i], items[i - 1]))
			pl_buf_addf(&out, "%s%s", out.len ? ";" : "", items[i]);
	free(copy);
	return pl_buf_detach(&out, NULL);
}

/* "net12" -> "net"; "rootfs" stays. */
static void
key_base(const char *key, char *out, size_t outlen)
{
	size_t n = strlen(key);

	while (n && isdigit((unsigned char)key[n - 1]))
		n--;
	snprintf(out, outlen, "%.*s", (int)n, key);
}

static const struct pl_pfmt *
key_format(bool lxc, const char *key)
{
	char base[32], name[48];
	const struct pl_pfmt *f;

	/* single keys keep their digit in the format name (qemu.efidisk0) */
	snprintf(name, sizeof(name), "%s.%s", lxc ? "lxc" : "qemu", key);
	if ((f = pl_pfmt_get(name)) != NULL)
		return f;
	key_base(key, base, sizeof(base));
	snprintf(name, sizeof(name), "%s.%s", lxc ? "lxc" : "qemu", base);
	return pl_pfmt_get(name);
}

static bool
is_disk_key(bool lxc, const char *key)
{
	char base[32];

	key_base(key, base, sizeof(base));
	if (lxc)
		return !strcmp(base, "rootfs") || !strcmp(base, "mp");
	return !strcmp(base, "scsi") || !strcmp(base, "virtio") || !strcmp(base, "sata") ||
	       !strcmp(base, "ide") || !strcmp(base, "efidisk") || !strcmp(base, "tpmstate");
}

bool
pl_model_key_ignored(const char *key)
{
	static const char *const keys[] = { "digest", "meta", "vmgenid", "lock", "smbios1", "vmstate",
					    "parent", "snaptime", "pending", "unused", "template",
					    "lxc", "runningmachine", "runningcpu", "arch", NULL };
	char base[32];

	key_base(key, base, sizeof(base));
	for (size_t i = 0; keys[i]; i++)
		if (!strcmp(key, keys[i]) || !strcmp(base, keys[i]))
			return true;
	return false;
}

int
pl_model_create_check(bool lxc, const json_t *config, json_t **needs, char **errmsg)
{
	const char *k;
	json_t *v;
	int r = 0;

	*needs = json_object();
	json_object_foreach((json_t *)config, k, v) {
		const struct pl_pfmt *f = json_is_string(v) ? key_format(lxc, k) : NULL;
		struct pl_propstr p;
		const char *vol, *colon;
		char *err = NULL;

		if (f == NULL)
			continue;
		pl_propstr_init(&p);
		if (pl_propstr_parse(f, json_string_value(v), &p, &err) != 0) {
			pl_seterr(errmsg, PL_EINVAL, "%s: %s", k, err ? err : "invalid");
			free(err);
			pl_propstr_release(&p);
			r = PL_EINVAL;
			break;
		}
		vol = pl_propstr_get(&p, lxc ? "volume" : "file");
		if (is_disk_key(lxc, k) && vol && (colon = strchr(vol, ':')) != NULL && colon > vol &&
		    !pl_str_startswith(pl_propstr_get(&p, "media") ? pl_propstr_get(&p, "media") : "",
				       "cdrom")) {
			char *sid = pl_strndup(vol, (size_t)(colon - vol));

			json_object_set_new(*needs, sid, json_string(lxc ? "rootdir" : "images"));
			free(sid);
		}
		pl_propstr_release(&p);
	}
	if (r != 0) {
		json_decref(*needs);
		*needs = NULL;
	}
	return r;
}

bool
pl_model_key_collection(bool lxc, const char *key)
{
	char base[32];

	if (!isdigit((unsigned char)key[strlen(key) ? strlen(key) - 1 : 0]))
		return false;
	key_base(key, base, sizeof(base));
	if (lxc)
		return !strcmp(base, "net") || !strcmp(base, "mp");
	return !strcmp(base, "net") || !strcmp(base, "ipconfig") || !strcmp(base, "hostpci");
}

static void
set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

static void
set_bool(json_t *o, const char *k, const json_t *v)
{
	if (json_is_boolean(v))
		json_object_set_new(o, k, json_string(json_is_true(v) ? "1" : "0"));
}

static void
set_int(json_t *o, const char *k, const json_t *v)
{
	if (json_is_integer(v))
		json_object_set_new(o, k, json_integer(json_integer_value(v)));
}

/* Append ",key=value" for each option of a free options mapping. */
static void
add_options(struct pl_buf *b, const json_t *opts)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)opts, k, v) {
		char *t = pl_model_value_text(v);

		if (t)
			pl_buf_addf(b, ",%s=%s", k, t);
		free(t);
	}
}

/* "32G" -> "32" (GiB, as the create syntax STORAGE:SIZE wants), "512M" -> "0.5". */
static void
size_gib(const char *size, char *out, size_t outlen)
{
	unsigned long long bytes = 0;

	pl_size_parse(size, &bytes);
	if (bytes % (1ULL << 30) == 0)
		snprintf(out, outlen, "%llu", bytes >> 30);
	else
		snprintf(out, outlen, "%.4g", (double)bytes / (double)(1ULL << 30));
}

/* Put a property string in canonical form when the codec knows the key. */
static void
set_propstr(json_t *o, bool lxc, const char *key, const char *text)
{
	const struct pl_pfmt *f = key_format(lxc, key);
	char *c = f ? pl_propstr_canonical(f, text, NULL) : NULL;

	json_object_set_new(o, key, json_string(c ? c : text));
	free(c);
}

/* ---- desired config ----------------------------------------------------- */

static void
desired_common(const json_t *g, json_t *cfg, bool lxc)
{
	const json_t *startup = json_object_get(g, "startup");
	const json_t *tags = json_object_get(g, "tags");
	struct pl_buf b;
	const json_t *t;
	size_t i;
	char *norm;

	set_int(cfg, "cores", json_object_get(g, "cores"));
	set_int(cfg, "memory", json_object_get(g, "memory"));
	set_bool(cfg, "onboot", json_object_get(g, "onboot"));
	set_str(cfg, "description", pl_json_str(g, "description"));
	set_str(cfg, "ostype", pl_json_str(g, "ostype"));
	if (json_is_number(json_object_get(g, "cpulimit")))
		json_object_set_new(cfg, "cpulimit", json_real(pl_json_num(g, "cpulimit", 0)));
	pl_buf_init(&b, 0);
	if (json_is_object(startup)) {
		if (json_object_get(startup, "order"))
			pl_buf_addf(&b, "order=%lld", pl_json_int(startup, "order", 0));
		if (json_object_get(startup, "up"))
			pl_buf_addf(&b, "%sup=%lld", b.len ? "," : "", pl_json_int(startup, "up", 0));
		if (json_object_get(startup, "down"))
			pl_buf_addf(&b, "%sdown=%lld", b.len ? "," : "", pl_json_int(startup, "down", 0));
		if (b.len)
			set_propstr(cfg, lxc, "startup", b.data);
	}
	pl_buf_reset(&b);
	pl_buf_addstr(&b, PL_MODEL_MANAGED_TAG);
	json_array_foreach(tags, i, t)
		if (json_is_string(t))
			pl_buf_addf(&b, ";%s", json_string_value(t));
	norm = pl_model_tags_norm(b.data);
	json_object_set_new(cfg, "tags", json_string(norm));
	free(norm);
	pl_buf_release(&b);
}

/* Record which parts of a disk pvelab filled in (storage, size) for a create. */
static void
mark_default(json_t *dflt, const char *key, const json_t *disk)
{
	bool st = !json_object_get(disk, "storage"), sz = !json_object_get(disk, "size");

	if (st || sz)
		json_object_set_new(dflt, key, json_string(st && sz ? "storage,size" : st ? "storage" : "size"));
}

static void
desired_vm(const json_t *g, json_t *cfg, json_t *create, json_t *dflt)
{
	const json_t *n, *disk, *dev, *ci = json_object_get(g, "cloudinit");
	int next_index[4] = { 0, 0, 0, 0 };
	static const char *const buses[] = { "scsi", "virtio", "sata", "ide" };
	struct pl_buf b;
	size_t i;
	char key[32];

	set_str(cfg, "name", pl_json_str(g, "name"));
	set_int(cfg, "sockets", json_object_get(g, "sockets"));
	set_str(cfg, "cpu", pl_json_str(g, "cpu"));
	set_int(cfg, "balloon", json_object_get(g, "balloon"));
	set_str(cfg, "bios", pl_json_str(g, "bios"));
	set_str(cfg, "machine", pl_json_str(g, "machine"));
	set_str(cfg, "scsihw", pl_json_str(g, "scsihw"));
	if (json_is_boolean(json_object_get(g, "agent")))
		set_propstr(cfg, false, "agent", json_is_true(json_object_get(g, "agent")) ? "1" : "0");
	pl_buf_init(&b, 0);
	json_array_foreach(json_object_get(g, "networks"), i, n) {
		pl_buf_reset(&b);
		pl_buf_addstr(&b, pl_json_str_or(n, "model", "virtio"));
		if (pl_json_str(n, "mac"))
			pl_buf_addf(&b, "=%s", pl_json_str(n, "mac"));
		pl_buf_addf(&b, ",bridge=%s", pl_json_str_or(n, "bridge", "vmbr0"));
		if (json_object_get(n, "vlan"))
			pl_buf_addf(&b, ",tag=%lld", pl_json_int(n, "vlan", 0));
		if (json_is_boolean(json_object_get(n, "firewall")))
			pl_buf_addf(&b, ",firewall=%d", json_is_true(json_object_get(n, "firewall")));
		if (json_object_get(n, "mtu"))
			pl_buf_addf(&b, ",mtu=%lld", pl_json_int(n, "mtu", 0));
		if (json_object_get(n, "rate"))
			pl_buf_addf(&b, ",rate=%g", pl_json_num(n, "rate", 0));
		snprintf(key, sizeof(key), "net%zu", i);
		set_propstr(cfg, false, key, b.data);
		/* cloud-init address of this interface */
		pl_buf_reset(&b);
		for (const char *const *k = (const char *const[]){ "ip", "gw", "ip6", "gw6", NULL }; *k; k++)
			if (pl_json_str(n, *k))
				pl_buf_addf(&b, "%s%s=%s", b.len ? "," : "", *k, pl_json_str(n, *k));
		if (b.len) {
			snprintf(key, sizeof(key), "ipconfig%zu", i);
			set_propstr(cfg, false, key, b.data);
		}
	}
	json_array_foreach(json_object_get(g, "disks"), i, disk) {
		const char *bus = pl_json_str_or(disk, "bus", "scsi");
		size_t bi = 0;
		long long idx;
		char gib[32];

		while (bi < 3 && strcmp(buses[bi], bus))
			bi++;
		idx = pl_json_int(disk, "index", next_index[bi]);
		next_index[bi] = (int)idx + 1;
		size_gib(pl_json_str_or(disk, "size", "8G"), gib, sizeof(gib));
		pl_buf_reset(&b);
		pl_buf_addf(&b, "%s:%s", pl_json_str_or(disk, "storage", "local-lvm"), gib);
		add_options(&b, json_object_get(disk, "options"));
		snprintf(key, sizeof(key), "%s%lld", bus, idx);
		set_propstr(cfg, false, key, b.data);
		mark_default(dflt, key, disk);
	}
	/* EFI vars and TPM state: PVE sizes these volumes itself (the 1 is a
	 * placeholder), so compare_disk never compares their sizes. */
	if (json_is_object(json_object_get(g, "efidisk"))) {
		const json_t *e = json_object_get(g, "efidisk");

		pl_buf_reset(&b);
		pl_buf_addf(&b, "%s:1,efitype=%s", pl_json_str_or(e, "storage", "local-lvm"),
			    pl_json_str_or(e, "efitype", "4m"));
		if (json_is_boolean(json_object_get(e, "pre_enrolled_keys")))
			pl_buf_addf(&b, ",pre-enrolled-keys=%d",
				    json_is_true(json_object_get(e, "pre_enrolled_keys")));
		set_propstr(cfg, false, "efidisk0", b.data);
	}
	if (json_is_object(json_object_get(g, "tpm"))) {
		const json_t *t = json_object_get(g, "tpm");

		pl_buf_reset(&b);
		pl_buf_addf(&b, "%s:1,version=%s", pl_json_str_or(t, "storage", "local-lvm"),
			    pl_json_str_or(t, "version", "v2.0"));
		set_propstr(cfg, false, "tpmstate0", b.data);
	}
	json_array_foreach(json_object_get(g, "hostpci"), i, dev) {
		pl_buf_reset(&b);
		if (pl_json_str(dev, "mapping"))
			pl_buf_addf(&b, "mapping=%s", pl_json_str(dev, "mapping"));
		else
			pl_buf_addf(&b, "host=%s", pl_json_str_or(dev, "host", ""));
		if (json_is_boolean(json_object_get(dev, "pcie")))
			pl_buf_addf(&b, ",pcie=%d", json_is_true(json_object_get(dev, "pcie")));
		if (json_is_boolean(json_object_get(dev, "x_vga")))
			pl_buf_addf(&b, ",x-vga=%d", json_is_true(json_object_get(dev, "x_vga")));
		if (json_is_boolean(json_object_get(dev, "rombar")))
			pl_buf_addf(&b, ",rombar=%d", json_is_true(json_object_get(dev, "rombar")));
		if (pl_json_str(dev, "romfile"))
			pl_buf_addf(&b, ",romfile=%s", pl_json_str(dev, "romfile"));
		snprintf(key, sizeof(key), "hostpci%zu", i);
		set_propstr(cfg, false, key, b.data);
	}
	if (json_is_object(ci)) {
		const json_t *dns = json_object_get(ci, "dns"), *k;

		set_str(cfg, "ciuser", pl_json_str(ci, "user"));
		set_bool(cfg, "ciupgrade", json_object_get(ci, "upgrade"));
		if (json_array_size(json_object_get(ci, "ssh_keys"))) {
			pl_buf_reset(&b);
			json_array_foreach(json_object_get(ci, "ssh_keys"), i, k)
				pl_buf_addf(&b, "%s%s", i ? "\n" : "", json_string_value(k));
			set_str(cfg, "sshkeys", b.data); /* the client URL-encodes it */
		}
		if (json_array_size(json_object_get(dns, "servers"))) {
			pl_buf_reset(&b);
			json_array_foreach(json_object_get(dns, "servers"), i, k)
				pl_buf_addf(&b, "%s%s", i ? " " : "", json_string_value(k));
			set_str(cfg, "nameserver", b.data);
		}
		set_str(cfg, "searchdomain", pl_json_str(dns, "domain"));
		set_str(create, "password_env", pl_json_str(ci, "password_env"));
	}
	if (json_is_object(json_object_get(g, "clone")))
		json_object_set(create, "clone", json_object_get(g, "clone"));
	pl_buf_release(&b);
}

static void
desired_ct(const json_t *g, json_t *cfg, json_t *create, json_t *dflt)
{
	const json_t *n, *mp, *rootfs = json_object_get(g, "rootfs");
	const json_t *feat = json_object_get(g, "features");
	struct pl_buf b;
	size_t i;
	char key[32], gib[32];

	set_str(cfg, "hostname", pl_json_str(g, "name"));
	set_int(cfg, "swap", json_object_get(g, "swap"));
	set_bool(cfg, "unprivileged", json_object_get(g, "unprivileged"));
	pl_buf_init(&b, 0);
	if (json_is_object(feat)) {
		const char *k;
		json_t *v;

		json_object_foreach((json_t *)feat, k, v) {
			char *t = pl_model_value_text(v);

			pl_buf_addf(&b, "%s%s=%s", b.len ? "," : "", k, t ? t : "");
			free(t);
		}
		if (b.len)
			set_propstr(cfg, true, "features", b.data);
	}
	json_array_foreach(json_object_get(g, "networks"), i, n) {
		pl_buf_reset(&b);
		if (pl_json_str(n, "name"))
			pl_buf_addf(&b, "name=%s", pl_json_str(n, "name"));
		else
			pl_buf_addf(&b, "name=eth%zu", i);
		pl_buf_addf(&b, ",bridge=%s", pl_json_str_or(n, "bridge", "vmbr0"));
		if (pl_json_str(n, "mac"))
			pl_buf_addf(&b, ",hwaddr=%s", pl_json_str(n, "mac"));
		if (json_object_get(n, "vlan"))
			pl_buf_addf(&b, ",tag=%lld", pl_json_int(n, "vlan", 0));
		if (json_is_boolean(json_object_get(n, "firewall")))
			pl_buf_addf(&b, ",firewall=%d", json_is_true(json_object_get(n, "firewall")));
		for (const char *const *k = (const char *const[]){ "ip", "gw", "ip6", "gw6", NULL }; *k; k++)
			if (pl_json_str(n, *k))
				pl_buf_addf(&b, ",%s=%s", *k, pl_json_str(n, *k));
		if (json_object_get(n, "mtu"))
			pl_buf_addf(&b, ",mtu=%lld", pl_json_int(n, "mtu", 0));
		if (json_object_get(n, "rate"))
			pl_buf_addf(&b, ",rate=%g", pl_json_num(n, "rate", 0));
		snprintf(key, sizeof(key), "net%zu", i);
		set_propstr(cfg, true, key, b.data);
	}
	pl_buf_reset(&b);
	size_gib(json_is_object(rootfs) ? pl_json_str_or(rootfs, "size", "8G") : "8G", gib, sizeof(gib));
	pl_buf_addf(&b, "%s:%s", json_is_object(rootfs) ? pl_json_str_or(rootfs, "storage", "local-lvm")
						 : "local-lvm", gib);
	add_options(&b, json_object_get(rootfs, "options"));
	set_propstr(cfg, true, "rootfs", b.data);
	/* defaults make a create possible; they are never compared with a live guest */
	if (!json_is_object(rootfs))
		json_object_set_new(dflt, "rootfs", json_string("all"));
	else
		mark_default(dflt, "rootfs", rootfs);
	json_array_foreach(json_object_get(g, "mounts"), i, mp) {
		pl_buf_reset(&b);
		if (pl_json_str(mp, "volume")) {
			pl_buf_addstr(&b, pl_json_str(mp, "volume"));
		} else {
			size_gib(pl_json_str_or(mp, "size", "8G"), gib, sizeof(gib));
			pl_buf_addf(&b, "%s:%s", pl_json_str_or(mp, "storage", "local-lvm"), gib);
		}
		pl_buf_addf(&b, ",mp=%s", pl_json_str_or(mp, "path", "/mnt"));
		if (json_is_boolean(json_object_get(mp, "backup")))
			pl_buf_addf(&b, ",backup=%d", json_is_true(json_object_get(mp, "backup")));
		if (json_is_boolean(json_object_get(mp, "ro")))
			pl_buf_addf(&b, ",ro=%d", json_is_true(json_object_get(mp, "ro")));
		add_options(&b, json_object_get(mp, "options"));
		snprintf(key, sizeof(key), "mp%zu", i);
		set_propstr(cfg, true, key, b.data);
		if (!pl_json_str(mp, "volume"))
			mark_default(dflt, key, mp);
	}
	if (json_is_object(json_object_get(g, "cloudinit"))) {
		const json_t *dns = json_object_get(json_object_get(g, "cloudinit"), "dns");

		set_str(cfg, "searchdomain", pl_json_str(dns, "domain"));
	}
	set_str(create, "ostemplate", pl_json_str(g, "ostemplate"));
	pl_buf_release(&b);
}

/* Cloud-init settings need a cloud-init drive: ide2, where PVE puts it,
 * unless the config already has one somewhere. */
static void
add_cloudinit_drive(const json_t *g, json_t *cfg)
{
	const char *k;
	json_t *v;
	char *vol;

	if (!json_is_object(json_object_get(g, "cloudinit")) && !json_object_get(cfg, "ipconfig0"))
		return;
	json_object_foreach(cfg, k, v)
		if (is_disk_key(false, k) && json_is_string(v) && strstr(json_string_value(v), "cloudinit"))
			return;
	if (json_object_get(cfg, "ide2"))
		return;
	vol = pl_asprintf("%s:cloudinit",
			  pl_json_str_or(json_array_get(json_object_get(g, "disks"), 0), "storage", "local-lvm"));
	json_object_set_new(cfg, "ide2", json_string(vol));
	free(vol);
}

int
pl_model_guest_from_config(const json_t *guest, struct pl_model_guest *out, char **errmsg)
{
	const char *raw_key;
	json_t *raw_val;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(guest) || pl_json_str(guest, "name") == NULL)
		return pl_seterr(errmsg, PL_EINVAL, "a guest needs a name");
	out->name = pl_strdup(pl_json_str(guest, "name"));
	out->lxc = !strcmp(pl_json_str_or(guest, "type", "vm"), "lxc");
	out->vmid = pl_json_int(guest, "vmid", 0);
	out->node = pl_json_str(guest, "node") ? pl_strdup(pl_json_str(guest, "node")) : NULL;
	out->category = pl_json_str(guest, "category") ? pl_strdup(pl_json_str(guest, "category")) : NULL;
	out->running = strcmp(pl_json_str_or(guest, "state", "running"), "stopped") != 0;
	out->config = json_object();
	out->create = json_object();
	out->defaults = json_object();
	desired_common(guest, out->config, out->lxc);
	if (out->lxc)
		desired_ct(guest, out->config, out->create, out->defaults);
	else
		desired_vm(guest, out->config, out->create, out->defaults);
	set_str(out->create, "pool", pl_json_str(guest, "pool"));
	/* raw settings last: they are the escape hatch and win */
	json_object_foreach((json_t *)json_object_get(guest, "config"), raw_key, raw_val) {
		char *t = pl_model_value_text(raw_val);

		json_object_del(out->defaults, raw_key);
		if (t && key_format(out->lxc, raw_key))
			set_propstr(out->config, out->lxc, raw_key, t);
		else if (t)
			json_object_set_new(out->config, raw_key, json_string(t));
		free(t);
	}
	if (!out->lxc && !json_object_get(out->config, "ide2")) {
		add_cloudinit_drive(guest, out->config);
		if (json_object_get(out->config, "ide2")) /* its storage is pvelab's choice */
			json_object_set_new(out->defaults, "ide2", json_string("storage"));
	}
	return 0;
}

void
pl_model_guest_release(struct pl_model_guest *g)
{
	free(g->name);
	free(g->node);
	free(g->category);
	json_decref(g->config);
	json_decref(g->create);
	json_decref(g->defaults);
	memset(g, 0, sizeof(*g));
}

/* ---- classification ------------------------------------------------------ */

const char *
pl_change_class_name(enum pl_change_class c)
{
	switch (c) {
	case PL_CHANGE_NONE: return "none";
	case PL_CHANGE_LIVE: return "live";
	case PL_CHANGE_REBOOT: return "reboot";
	case PL_CHANGE_RESTART: return "restart";
	case PL_CHANGE_REPLACE: return "replace";
	}
	return "?";
}

static bool
in_list(const char *word, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (!strcmp(word, list[i]))
			return true;
	return false;
}

static bool
hotplug_has(const char *hotplug, const char *what)
{
	char *copy, *save = NULL;
	bool found = false;

	if (hotplug == NULL)
		hotplug = "network,disk,usb";
	if (!strcmp(hotplug, "1"))
		hotplug = "network,disk,usb";
	if (!strcmp(hotplug, "0"))
		return false;
	copy = pl_strdup(hotplug);
	for (char *t = strtok_r(copy, ",", &save); t && !found; t = strtok_r(NULL, ",", &save))
		found = !strcmp(t, what);
	free(copy);
	return found;
}

/* How changing key reaches a running guest (disk size changes are separate). */
static enum pl_change_class
classify(bool lxc, const char *key, const char *hotplug, bool adding)
{
	static const char *const config_only[] = { "name", "description", "tags", "onboot",
						   "startup", "protection", NULL };
	static const char *const ct_live[] = { "memory", "swap", "cores", "cpulimit",
					       "cpuunits", "net", NULL };
	static const char *const replace[] = { "unprivileged", NULL };
	char base[32];

	key_base(key, base, sizeof(base));
	if (in_list(base, config_only))
		return PL_CHANGE_LIVE;
	if (lxc) {
		if (in_list(base, replace))
			return PL_CHANGE_REPLACE;
		return in_list(base, ct_live) ? PL_CHANGE_LIVE : PL_CHANGE_REBOOT;
	}
	if (!strcmp(base, "balloon"))
		return PL_CHANGE_LIVE;
	if (!strcmp(base, "net"))
		return hotplug_has(hotplug, "network") ? PL_CHANGE_LIVE : PL_CHANGE_REBOOT;
	if (is_disk_key(false, key))
		return adding && hotplug_has(hotplug, "disk") ? PL_CHANGE_LIVE : PL_CHANGE_REBOOT;
	if (!strcmp(base, "memory"))
		return hotplug_has(hotplug, "memory") ? PL_CHANGE_LIVE : PL_CHANGE_REBOOT;
	if (!strcmp(base, "cores") || !strcmp(base, "sockets") || !strcmp(base, "vcpus"))
		return hotplug_has(hotplug, "cpu") ? PL_CHANGE_LIVE : PL_CHANGE_REBOOT;
	if (!strcmp(base, "usb"))
		return hotplug_has(hotplug, "usb") ? PL_CHANGE_LIVE : PL_CHANGE_REBOOT;
	/* PCI devices are assigned when QEMU starts: a guest-side reboot is not enough. */
	if (!strcmp(base, "hostpci") || !strcmp(base, "machine") || !strcmp(base, "bios"))
		return PL_CHANGE_RESTART;
	return PL_CHANGE_REBOOT;
}

/* ---- comparison ----------------------------------------------------------- */

static void
rstrip(char *s)
{
	size_t n = strlen(s);

	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* Compare two scalar texts the way Proxmox means them. */
static bool
scalar_equal(const char *key, const char *a, const char *b)
{
	static const char *const bools[] = { "onboot", "protection", "unprivileged", "template",
					     "ciupgrade", "tablet", "acpi", "kvm", "numa", NULL };
	char *x, *y, *end1, *end2;
	bool eq;

	if (in_list(key, bools) && pl_bool_norm(a) && pl_bool_norm(b))
		return !strcmp(pl_bool_norm(a), pl_bool_norm(b));
	if (!strcmp(key, "tags")) {
		x = pl_model_tags_norm(a);
		y = pl_model_tags_norm(b);
	} else if (!strcmp(key, "sshkeys")) {
		x = pl_str_url_decode(a);
		y = pl_str_url_decode(b);
	} else {
		double da = strtod(a, &end1), db = strtod(b, &end2);

		if (*a && *b && *end1 == '\0' && *end2 == '\0')
			return da == db;
		x = pl_strdup(a);
		y = pl_strdup(b);
	}
	rstrip(x);
	rstrip(y);
	eq = !strcmp(x, y);
	free(x);
	free(y);
	return eq;
}

/* "local-lvm:32" is a new volume of 32 GiB on local-lvm. */
static bool
new_volume(const char *vol, char *storage, size_t slen, unsigned long long *bytes)
{
	const char *colon = strchr(vol, ':');
	char *end;
	double gib;

	if (colon == NULL || colon == vol)
		return false;
	gib = strtod(colon + 1, &end);
	if (end == colon + 1 || *end != '\0' || gib <= 0)
		return false;
	snprintf(storage, slen, "%.*s", (int)(colon - vol), vol);
	*bytes = (unsigned long long)llround(gib * (double)(1ULL << 30));
	return true;
}

static void
format_into(const struct pl_pfmt *f, const struct pl_propstr *p, char **out)
{
	struct pl_buf b;

	pl_buf_init(&b, 1 << 20);
	pl_propstr_format(f, p, &b);
	*out = pl_buf_detach(&b, NULL);
}

/* Disks and mount points: compare storage, size and options, never the
 * volume name PVE allocated. */
static void
compare_disk(bool lxc, const char *key, const struct pl_pfmt *f, struct pl_propstr *want,
	     struct pl_propstr *have, bool running, const char *hotplug, struct pl_model_cmp *out)
{
	const char *vkey = f->dkey ? f->dkey->name : "file";
	const char *wvol = pl_propstr_get(want, vkey), *hvol = pl_propstr_get(have, vkey);
	char storage[128], hsize[32], wsize[32];
	unsigned long long wbytes = 0, hbytes = 0;
	const char *diff = NULL;
	bool fresh = wvol && new_volume(wvol, storage, sizeof(storage), &wbytes);

	/* import-from only says where a new disk's data came from; PVE drops it */
	pl_propstr_del(want, "import-from");
	pl_propstr_del(have, "import-from");

	if (wvol && hvol && pl_str_endswith(wvol, ":cloudinit")) {
		/* "local-lvm:cloudinit" becomes "local-lvm:vm-101-cloudinit,media=cdrom" */
		size_t n = strlen(wvol) - strlen("cloudinit");

		out->equal = !strncmp(wvol, hvol, n) && strstr(hvol + n, "cloudinit") != NULL;
		if (!out->equal) {
			out->cls = PL_CHANGE_REBOOT;
			out->value = pl_strdup(wvol);
			out->note = pl_strdup("cloud-init drive moves");
		}
		return;
	}
	if (!fresh) { /* an existing volume or a bind mount: compare it whole, size aside */
		pl_propstr_del(want, "size");
		pl_propstr_del(have, "size");
		if (pl_propstr_equal(f, want, have, &diff)) {
			out->equal = true;
			return;
		}
		out->cls = running ? classify(lxc, key, hotplug, false) : PL_CHANGE_LIVE;
		format_into(f, want, &out->value);
		out->note = pl_asprintf("%s changes", diff ? diff : "volume");
		return;
	}
	if (hvol == NULL || strncmp(hvol, storage, strlen(storage)) || hvol[strlen(storage)] != ':') {
		out->cls = PL_CHANGE_REPLACE;
		out->note = pl_asprintf("moves to storage '%s'", storage);
		format_into(f, want, &out->value);
		return;
	}
	if (pl_propstr_get(have, "size"))
		pl_size_parse(pl_propstr_get(have, "size"), &hbytes);
	if (!lxc && (pl_str_startswith(key, "efidisk") || pl_str_startswith(key, "tpmstate")))
		hbytes = 0; /* sized by PVE (efitype, TPM version): never resized */
	pl_size_format(wbytes, wsize, sizeof(wsize));
	pl_size_format(hbytes, hsize, sizeof(hsize));
	/* options other than the volume and size */
	pl_propstr_set(want, vkey, hvol);
	pl_propstr_del(want, "size");
	pl_propstr_del(have, "size");
	if (!pl_propstr_equal(f, want, have, &diff)) {
		out->cls = running ? classify(lxc, key, hotplug, false) : PL_CHANGE_LIVE;
		if (hbytes)
			pl_propstr_set(want, "size", hsize);
		format_into(f, want, &out->value);
		out->note = pl_asprintf("option '%s' changes", diff ? diff : "?");
	}
	if (hbytes && wbytes > hbytes) {
		char *old = out->note;

		out->resize = true;
		if (out->cls < PL_CHANGE_LIVE)
			out->cls = PL_CHANGE_LIVE; /* disks grow online */
		out->note = pl_asprintf("%s%sresize %s -> %s", old ? old : "", old ? ", " : "",
					hsize, wsize);
		out->size = pl_strdup(wsize);
		free(old);
	} else if (hbytes && wbytes < hbytes) {
		free(out->note);
		out->note = pl_asprintf("cannot shrink %s from %s to %s: Proxmox only grows disks",
					key, hsize, wsize);
		out->blocked = true;
		out->cls = PL_CHANGE_REPLACE;
	}
	out->equal = out->cls == PL_CHANGE_NONE;
}

void
pl_model_compare(bool lxc, const char *key, const char *desired, const char *actual, bool running,
		 const char *hotplug, struct pl_model_cmp *out)
{
	const struct pl_pfmt *f = key_format(lxc, key);
	struct pl_propstr want, have;
	const char *diff = NULL;

	memset(out, 0, sizeof(*out));
	if (desired == NULL && actual == NULL) {
		out->equal = true;
		return;
	}
	if (desired == NULL) { /* a collection member that has left the config */
		out->cls = running ? classify(lxc, key, hotplug, false) : PL_CHANGE_LIVE;
		out->note = pl_strdup("removed");
		return;
	}
	if (actual == NULL) {
		out->cls = running ? classify(lxc, key, hotplug, true) : PL_CHANGE_LIVE;
		out->value = pl_strdup(desired);
		return;
	}
	if (f == NULL) {
		if (scalar_equal(key, desired, actual)) {
			out->equal = true;
			return;
		}
		out->cls = running ? classify(lxc, key, hotplug, false) : PL_CHANGE_LIVE;
		if (lxc && !strcmp(key, "unprivileged"))
			out->cls = PL_CHANGE_REPLACE;
		out->value = pl_strdup(desired);
		return;
	}
	pl_propstr_init(&want);
	pl_propstr_init(&have);
	if (pl_propstr_parse(f, desired, &want, NULL) != 0 ||
	    pl_propstr_parse(f, actual, &have, NULL) != 0) {
		/* unparseable on either side: fall back to text */
		out->equal = !strcmp(desired, actual);
		if (!out->equal) {
			out->cls = running ? classify(lxc, key, hotplug, false) : PL_CHANGE_LIVE;
			out->value = pl_strdup(desired);
		}
		goto out;
	}
	if (is_disk_key(lxc, key)) {
		compare_disk(lxc, key, f, &want, &have, running, hotplug, out);
		goto out;
	}
	/* Generated values the config did not ask for: keep them (the MAC must
	 * survive an update) and do not compare them. */
	for (const char *const *gen = (const char *const[]){ "macaddr", "hwaddr", "type", NULL }; *gen; gen++) {
		if (pl_pfmt_key(f, *gen) && !pl_propstr_get(&want, *gen) && pl_propstr_get(&have, *gen))
			pl_propstr_set(&want, *gen, pl_propstr_get(&have, *gen));
	}
	if (pl_propstr_equal(f, &want, &have, &diff)) {
		out->equal = true;
		goto out;
	}
	out->cls = running ? classify(lxc, key, hotplug, false) : PL_CHANGE_LIVE;
	format_into(f, &want, &out->value);
	/* the value itself changes ("memory: 2048 -> 4096"): no note naming
	 * its inner name ('current', 'cputype'); else the option that does */
	if (!(diff && f->dkey && !strcmp(diff, f->dkey->name)))
		out->note = pl_asprintf("option '%s' changes", diff ? diff : "?");
out:
	pl_propstr_release(&want);
	pl_propstr_release(&have);
}

void
pl_model_cmp_release(struct pl_model_cmp *c)
{
	free(c->value);
	free(c->note);
	free(c->size);
	memset(c, 0, sizeof(*c));
}
