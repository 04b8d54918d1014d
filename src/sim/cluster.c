/*
 * The simulated cluster: nodes, storages with their volumes, guests with
 * configs, pending changes and snapshots; disk allocation and MAC generation
 * the way PVE does them; the usage figures running guests show.
 */
#include "core/common.h"

#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <time.h>

#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/internal.h"

uint64_t
pl_sim_rand(struct pl_sim *s)
{
	/* splitmix64: small, fast and reproducible from --rng-seed */
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double
pl_sim_rand01(struct pl_sim *s)
{
	return (double)(pl_sim_rand(s) >> 11) / (double)(1ULL << 53);
}

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

struct pl_sim_node *
pl_sim_node_find(struct pl_sim *s, const char *name)
{
	int i = pl_sim_node_index(s, name);

	return i < 0 ? NULL : &s->nodes[i];
}

int
pl_sim_node_index(struct pl_sim *s, const char *name)
{
	for (size_t i = 0; i < s->nnodes; i++)
		if (!strcmp(s->nodes[i].name, name))
			return (int)i;
	return -1;
}

struct pl_sim_storage *
pl_sim_storage_find(struct pl_sim *s, const char *id)
{
	for (size_t i = 0; i < s->nstores; i++)
		if (!strcmp(s->stores[i].id, id))
			return &s->stores[i];
	return NULL;
}

bool
pl_sim_storage_on_node(const struct pl_sim_storage *st, const char *node)
{
	size_t i;
	json_t *v;

	if (!st->nodes)
		return true;
	json_array_foreach(st->nodes, i, v) {
		if (json_is_string(v) && !strcmp(json_string_value(v), node))
			return true;
	}
	return false;
}

/* --- guests --- */

static size_t
guest_pos(struct pl_sim *s, uint32_t vmid, bool *found)
{
	size_t lo = 0, hi = s->nguests;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->guests[mid]->vmid < vmid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < s->nguests && s->guests[lo]->vmid == vmid;
	return lo;
}

struct pl_sim_guest *
pl_sim_guest_find(struct pl_sim *s, uint32_t vmid)
{
	bool found;
	size_t i = guest_pos(s, vmid, &found);

	return found ? s->guests[i] : NULL;
}

struct pl_sim_guest *
pl_sim_guest_add(struct pl_sim *s, uint32_t vmid, bool lxc, int node)
{
	struct pl_sim_guest *g;
	bool found;
	size_t i = guest_pos(s, vmid, &found);

	if (found)
		return NULL;
	if (s->nguests == s->capguests) {
		s->capguests = s->capguests ? s->capguests * 2 : 64;
		s->guests = pl_realloc(s->guests, s->capguests * sizeof(*s->guests));
	}
	memmove(&s->guests[i + 1], &s->guests[i], (s->nguests - i) * sizeof(*s->guests));
	g = pl_calloc(1, sizeof(*g));
	g->vmid = vmid;
	g->lxc = lxc;
	g->node = node;
	g->conf = json_object();
	g->pending = json_object();
	g->pending_del = json_array();
	g->snaps = json_array();
	s->guests[i] = g;
	s->nguests++;
	s->dirty = true;
	return g;
}

static void
guest_free(struct pl_sim_guest *g)
{
	if (!g)
		return;
	json_decref(g->conf);
	json_decref(g->pending);
	json_decref(g->pending_del);
	json_decref(g->snaps);
	json_decref(g->agent);
	free(g->parent);
	free(g->res);
	pl_sim_blob_unref(g->confbody);
	free(g);
}

void
pl_sim_guest_remove(struct pl_sim *s, uint32_t vmid, bool purge_disks)
{
	bool found;
	size_t i = guest_pos(s, vmid, &found);
	struct pl_sim_guest *g;

	if (!found)
		return;
	g = s->guests[i];
	if (g->holder) {
		g->holder = NULL;
		pl_sim_lock_released(s, vmid); /* waiters now find it gone */
	}
	/* owned volumes (disks; other owned volumes only with purge) go away;
	 * backup archives stay, as on PVE (purge only drops the guest from jobs) */
	for (size_t k = 0; k < s->nstores; k++) {
		struct pl_sim_storage *st = &s->stores[k];

		for (size_t v = 0; v < st->nvols;) {
			struct pl_sim_volume *vol = &st->vols[v];
			bool disk = !strcmp(vol->content, "images") || !strcmp(vol->content, "rootdir");

			if (vol->vmid == vmid && (disk || (purge_disks && strcmp(vol->content, "backup")))) {
				pl_sim_volume_del(s, vol->volid, vol->node);
				continue;
			}
			v++;
		}
	}
	memmove(&s->guests[i], &s->guests[i + 1], (s->nguests - i - 1) * sizeof(*s->guests));
	s->nguests--;
	guest_free(g);
	s->dirty = true;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Hash an object's members in key order, as PVE hashes its sorted config file. */
static void
digest_obj(EVP_MD_CTX *ctx, const json_t *o, const char *prefix)
{
	size_t n = json_object_size(o), i = 0;
	const char **keys = pl_calloc(n ? n : 1, sizeof(*keys));
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v)
		keys[i++] = k;
	qsort(keys, n, sizeof(*keys), cmp_str);
	for (i = 0; i < n; i++) {
		v = json_object_get(o, keys[i]);
		EVP_DigestUpdate(ctx, prefix, strlen(prefix));
		EVP_DigestUpdate(ctx, keys[i], strlen(keys[i]));
		EVP_DigestUpdate(ctx, ": ", 2);
		if (json_is_string(v))
			EVP_DigestUpdate(ctx, json_string_value(v), json_string_length(v));
		EVP_DigestUpdate(ctx, "\n", 1);
	}
	free(keys);
}

void
pl_sim_guest_touch(struct pl_sim *s, struct pl_sim_guest *g)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
	digest_obj(ctx, g->conf, "");
	digest_obj(ctx, g->pending, "[PENDING]");
	EVP_DigestUpdate(ctx, g->lock, strlen(g->lock));
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < mdlen && i < 20; i++)
		snprintf(g->digest + 2 * i, 3, "%02x", md[i]);
	free(g->res);
	g->res = NULL;
	g->sized = false;
	s->dirty = true;
	s->gen++;
}

uint32_t
pl_sim_nextid(struct pl_sim *s)
{
	uint32_t id = 100;

	for (size_t i = 0; i < s->nguests; i++) {
		if (s->guests[i]->vmid > id)
			break;
		if (s->guests[i]->vmid == id)
			id++;
	}
	return id;
}

/* --- volumes --- */

static void
index_key(char *out, size_t len, const char *volid, int node)
{
	snprintf(out, len, "%s\x1f%d", volid, node);
}

void
pl_sim_storage_reindex(struct pl_sim_storage *st)
{
	char key[512];

	if (!st->index)
		st->index = json_object();
	json_object_clear(st->index);
	for (size_t i = 0; i < st->nvols; i++) {
		index_key(key, sizeof(key), st->vols[i].volid, st->vols[i].node);
		json_object_set_new(st->index, key, json_integer((json_int_t)i));
	}
}

struct pl_sim_volume *
pl_sim_volume_add(struct pl_sim_storage *st, const char *volid, const char *content,
		  const char *format, uint64_t size, uint32_t vmid, int node)
{
	struct pl_sim_volume *v;
	char key[512];

	if (st->nvols == st->capvols) {
		st->capvols = st->capvols ? st->capvols * 2 : 16;
		st->vols = pl_realloc(st->vols, st->capvols * sizeof(*st->vols));
	}
	v = &st->vols[st->nvols++];
	v->volid = pl_strdup(volid);
	v->content = pl_strdup(content);
	v->format = pl_strdup(format ? format : "raw");
	v->size = size;
	v->vmid = vmid;
	v->ctime = time(NULL);
	v->node = st->shared ? -1 : node;
	v->conf = NULL;
	if (!st->index)
		st->index = json_object();
	index_key(key, sizeof(key), volid, v->node);
	json_object_set_new(st->index, key, json_integer((json_int_t)(st->nvols - 1)));
	return v;
}

static struct pl_sim_volume *
storage_vol(struct pl_sim_storage *st, const char *volid, int node)
{
	char key[512];
	json_t *i;

	if (node < 0 && !st->shared) {
		for (size_t k = 0; k < st->nvols; k++)
			if (!strcmp(st->vols[k].volid, volid))
				return &st->vols[k];
		return NULL;
	}
	index_key(key, sizeof(key), volid, st->shared ? -1 : node);
	i = json_object_get(st->index, key);
	if (!i || (size_t)json_integer_value(i) >= st->nvols)
		return NULL;
	return &st->vols[json_integer_value(i)];
}

struct pl_sim_volume *
pl_sim_volume_find(struct pl_sim *s, const char *volid, int node, struct pl_sim_storage **st_out)
{
	const char *colon = strchr(volid, ':');
	struct pl_sim_storage *st;
	char sid[128];

	if (!colon || (size_t)(colon - volid) >= sizeof(sid))
		return NULL;
	memcpy(sid, volid, (size_t)(colon - volid));
	sid[colon - volid] = 0;
	if ((st = pl_sim_storage_find(s, sid)) == NULL)
		return NULL;
	if (st_out)
		*st_out = st;
	return storage_vol(st, volid, node);
}

void
pl_sim_volume_del(struct pl_sim *s, const char *volid, int node)
{
	struct pl_sim_storage *st = NULL;
	struct pl_sim_volume *v = pl_sim_volume_find(s, volid, node, &st);
	char key[512];
	size_t i;

	if (!v)
		return;
	i = (size_t)(v - st->vols);
	index_key(key, sizeof(key), v->volid, v->node);
	json_object_del(st->index, key);
	free(v->volid);
	free(v->content);
	free(v->format);
	json_decref(v->conf);
	/* the last volume takes the hole: O(1) and the index stays right */
	if (i != st->nvols - 1) {
		st->vols[i] = st->vols[st->nvols - 1];
		index_key(key, sizeof(key), st->vols[i].volid, st->vols[i].node);
		json_object_set_new(st->index, key, json_integer((json_int_t)i));
	}
	st->nvols--;
	s->dirty = true;
}

uint64_t
pl_sim_storage_used(const struct pl_sim_storage *st, int node)
{
	uint64_t used = 0;

	for (size_t i = 0; i < st->nvols; i++)
		if (st->vols[i].node == -1 || st->vols[i].node == node)
			used += st->vols[i].size;
	return used;
}

static bool
is_disk_key(bool lxc, const char *key)
{
	static const char *const q[] = { "scsi", "sata", "ide", "virtio", "efidisk", "tpmstate",
					 "unused" };

	if (lxc)
		return !strcmp(key, "rootfs") || (key[0] == 'm' && key[1] == 'p' &&
						  strspn(key + 2, "0123456789") == strlen(key + 2) &&
						  key[2]) ||
		       (pl_str_startswith(key, "unused"));
	for (size_t i = 0; i < PL_ARRAY_LEN(q); i++) {
		size_t n = strlen(q[i]);

		if (!strncmp(key, q[i], n) && key[n] && strspn(key + n, "0123456789") == strlen(key + n))
			return true;
	}
	return false;
}

static const struct pl_pfmt *
disk_fmt(bool lxc, const char *key)
{
	char name[32];
	size_t n = strcspn(key, "0123456789");

	if (lxc) {
		if (!strcmp(key, "rootfs"))
			return pl_pfmt_get("lxc.rootfs");
		if (pl_str_startswith(key, "unused"))
			return pl_pfmt_get("lxc.unused");
		return pl_pfmt_get("lxc.mp");
	}
	snprintf(name, sizeof(name), "qemu.%.*s", (int)n, key);
	if (!strcmp(name, "qemu.efidisk") || !strcmp(name, "qemu.tpmstate"))
		snprintf(name, sizeof(name), "qemu.%s", key);
	return pl_pfmt_get(name);
}

/* The next free disk number of a guest on a storage. */
static int
next_disk_num(struct pl_sim_storage *st, struct pl_sim_guest *g, int node)
{
	char name[160];

	for (int n = 0;; n++) {
		bool used = false;

		for (int k = 0; k < 3 && !used; k++) {
			if (k == 2)
				snprintf(name, sizeof(name), "%s:%u/vm-%u-disk-%d.qcow2", st->id, g->vmid,
					 g->vmid, n);
			else
				snprintf(name, sizeof(name), "%s:%s-%u-disk-%d", st->id,
					 k ? "subvol" : "vm", g->vmid, n);
			used = storage_vol(st, name, node) != NULL;
		}
		/* base- volumes of templates count too */
		snprintf(name, sizeof(name), "%s:base-%u-disk-%d", st->id, g->vmid, n);
		used = used || storage_vol(st, name, node) != NULL;
		if (!used)
			return n;
	}
}

/* Storages whose volumes take space as they are written (thin LVM, files,
 * network shares): an allocation there never fails for want of space, as
 * on PVE (a thin pool is over-committed with a warning). */
static bool
thin_storage(const struct pl_sim_storage *st)
{
	return strcmp(st->type, "lvm") != 0 && strcmp(st->type, "zfspool") != 0;
}

char *
pl_sim_disk_alloc(struct pl_sim *s, struct pl_sim_guest *g, const char *key, const char *value,
		  char **err, bool *nospace)
{
	const struct pl_pfmt *f;
	struct pl_propstr p;
	struct pl_sim_storage *st;
	const char *file, *colon;
	char sid[128], *out = NULL;
	struct pl_buf b;

	if (!is_disk_key(g->lxc, key) || (f = disk_fmt(g->lxc, key)) == NULL)
		return pl_strdup(value);
	pl_propstr_init(&p);
	pl_buf_init(&b, 0);
	if (pl_propstr_parse(f, value, &p, NULL) != 0) {
		out = pl_strdup(value);
		goto out;
	}
	file = pl_propstr_get(&p, g->lxc ? "volume" : "file");
	if (!g->lxc && file && pl_str_endswith(file, ":cloudinit") &&
	    (size_t)(strlen(file) - strlen(":cloudinit")) < sizeof(sid)) {
		/* "local-lvm:cloudinit" -> local-lvm:vm-100-cloudinit,media=cdrom */
		char volid[256];

		snprintf(sid, sizeof(sid), "%.*s", (int)(strlen(file) - strlen(":cloudinit")), file);
		if ((st = pl_sim_storage_find(s, sid)) == NULL) {
			pl_seterr(err, PL_ENOENT, "storage '%s' does not exist", sid);
			goto out;
		}
		snprintf(volid, sizeof(volid), "%s:vm-%u-cloudinit", sid, g->vmid);
		if (!pl_sim_volume_find(s, volid, g->node, NULL))
			pl_sim_volume_add(st, volid, "images", "raw", 4ULL << 20, g->vmid, g->node);
		pl_propstr_set(&p, "file", volid);
		pl_propstr_set(&p, "media", "cdrom");
		pl_propstr_format(f, &p, &b);
		out = pl_buf_detach(&b, NULL);
		goto out;
	}
	if (!file || !(colon = strchr(file, ':')) || (size_t)(colon - file) >= sizeof(sid) ||
	    pl_str_startswith(pl_propstr_get(&p, "media") ? pl_propstr_get(&p, "media") : "",
			      "cdrom")) {
		out = pl_strdup(value);
		goto out;
	}
	memcpy(sid, file, (size_t)(colon - file));
	sid[colon - file] = 0;
	if ((st = pl_sim_storage_find(s, sid)) == NULL) {
		pl_seterr(err, PL_ENOENT, "storage '%s' does not exist", sid);
		goto out;
	}
	{
		unsigned long long gb;
		double d;
		char *end;

		const char *imp = pl_propstr_get(&p, "import-from");
		uint64_t imp_size = 0;

		d = strtod(colon + 1, &end);
		if (imp) {
			/* create_disks: "<storage>:0,import-from=<volume>" is a new
			 * volume of the source's size, and import-from is not kept */
			struct pl_sim_volume *src = pl_sim_volume_find(s, imp, g->node, NULL);

			if (end == colon + 1 || *end != 0 || d != 0) {
				pl_seterr(
					err, PL_EINVAL,
					"%s: 'import-from' requires special syntax - use <storage "
					"ID>:0,import-from=<source>",
					key);
				goto out;
			}
			if (!src ||
			    (strcmp(src->content, "images") && strcmp(src->content, "import"))) {
				pl_seterr(err, PL_ENOENT,
					  "cannot import from '%s' - volume '%s' does "
					  "not exist",
					  imp, imp);
				goto out;
			}
			imp_size = src->size;
			d = 1;
			pl_propstr_del(&p, "import-from");
		}
		if (end != colon + 1 && *end == 0 && d > 0) {
			/* "local-lvm:32": allocate a new volume of 32 GiB */
			bool subvol = g->lxc && (!strcmp(st->type, "dir") || !strcmp(st->type, "zfspool") ||
						 !strcmp(st->type, "nfs") || !strcmp(st->type, "cifs"));
			bool file_based = !strcmp(st->type, "dir") || !strcmp(st->type, "nfs") ||
					  !strcmp(st->type, "cifs");
			char volid[256], sz[32];
			int n;

			if (!strstr(st->content, g->lxc ? "rootdir" : "images")) {
				pl_seterr(err, PL_EINVAL,
					  "storage '%s' does not support content-type '%s'", sid,
					  g->lxc ? "rootdir" : "images");
				goto out;
			}
			gb = imp_size ? imp_size :
					(unsigned long long)(d * 1024.0 * 1024.0 * 1024.0);
			/* EFI vars and TPM state have fixed sizes whatever was asked */
			if (!strcmp(key, "efidisk0"))
				gb = pl_propstr_get(&p, "efitype") &&
						     !strcmp(pl_propstr_get(&p, "efitype"), "2m")
					     ? 128ULL << 10
					     : 4ULL << 20;
			else if (!strcmp(key, "tpmstate0"))
				gb = 4ULL << 20;
			n = next_disk_num(st, g, g->node);
			if (!thin_storage(st) && st->total &&
			    pl_sim_storage_used(st, g->node) + gb > st->total) {
				/* thick LVM and ZFS reserve the whole size when they
				 * allocate (the storage plugins' alloc_image) */
				if (nospace)
					*nospace = true;
				if (!strcmp(st->type, "zfspool"))
					pl_seterr(
						err, PL_EINVAL,
						"zfs error: cannot create '%s/vm-%u-disk-%d': out "
						"of space",
						st->path ? st->path : st->id, g->vmid, n);
				else
					pl_seterr(
						err, PL_EINVAL,
						"lvcreate '%s/vm-%u-disk-%d' error:   Volume group "
						"\"%s\" has insufficient free space (%llu "
						"extents): "
						"%llu required.",
						st->id, g->vmid, n, st->id,
						(unsigned long long)((st->total -
								      pl_sim_storage_used(
									      st, g->node)) >>
								     22),
						gb >> 22);
				goto out;
			}
			if (file_based && !g->lxc)
				snprintf(volid, sizeof(volid), "%s:%u/vm-%u-disk-%d.qcow2", sid, g->vmid,
					 g->vmid, n);
			else
				snprintf(volid, sizeof(volid), "%s:%s-%u-disk-%d", sid,
					 subvol ? "subvol" : "vm", g->vmid, n);
			pl_sim_volume_add(st, volid, g->lxc ? "rootdir" : "images",
					  subvol ? "subvol" : (file_based ? "qcow2" : "raw"), gb,
					  g->vmid, g->node);
			pl_propstr_set(&p, g->lxc ? "volume" : "file", volid);
			pl_size_format(gb, sz, sizeof(sz));
			pl_propstr_set(&p, "size", sz);
			pl_propstr_format(f, &p, &b);
			out = pl_buf_detach(&b, NULL);
			goto out;
		}
	}
	/* a reference to an existing volume: make sure the storage knows it */
	if (!pl_sim_volume_find(s, file, g->node, NULL)) {
		unsigned long long bytes = 0;
		const char *size = pl_propstr_get(&p, "size");

		if (size)
			pl_size_parse(size, &bytes);
		if (!bytes)
			bytes = 8ULL << 30;
		pl_sim_volume_add(st, file, g->lxc ? "rootdir" : "images", "raw", bytes, g->vmid,
				  g->node);
	}
	out = pl_strdup(value);
out:
	pl_propstr_release(&p);
	pl_buf_release(&b);
	return out;
}

char *
pl_sim_net_fill(struct pl_sim *s, struct pl_sim_guest *g, const char *key, const char *value)
{
	const struct pl_pfmt *f = pl_pfmt_get(g->lxc ? "lxc.net" : "qemu.net");
	const char *mkey = g->lxc ? "hwaddr" : "macaddr";
	struct pl_propstr p;
	struct pl_buf b;
	char *out;

	if (!f || strncmp(key, "net", 3) || !key[3] || strspn(key + 3, "0123456789") != strlen(key + 3))
		return pl_strdup(value);
	/* already has one ("virtio=BC:..", "hwaddr=BC:.."): no need to parse */
	if (g->lxc ? strstr(value, "hwaddr=") != NULL
		   : (strcspn(value, "=") < strcspn(value, ",") && strchr(value, ':') &&
		      strchr(value, ':') < value + strcspn(value, ",")))
		return pl_strdup(value);
	pl_propstr_init(&p);
	pl_buf_init(&b, 0);
	if (pl_propstr_parse(f, value, &p, NULL) != 0 || pl_propstr_get(&p, mkey)) {
		pl_propstr_release(&p);
		pl_buf_release(&b);
		return pl_strdup(value);
	}
	{
		uint64_t r = pl_sim_rand(s);
		char mac[18];

		/* PVE's default OUI prefix BC:24:11 */
		snprintf(mac, sizeof(mac), "BC:24:11:%02X:%02X:%02X", (unsigned)(r & 0xff),
			 (unsigned)((r >> 8) & 0xff), (unsigned)((r >> 16) & 0xff));
		pl_propstr_set(&p, mkey, mac);
	}
	pl_propstr_format(f, &p, &b);
	out = pl_buf_detach(&b, NULL);
	pl_propstr_release(&p);
	return out;
}

json_t *
pl_sim_typed(const struct pl_sim_method *m, const json_t *obj)
{
	json_t *o = json_object();
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v) {
		const struct pl_api_param *p = m ? pl_sim_param_find(m, k) : NULL;
		const char *t = p ? p->type : "string";
		const char *sv = json_string_value(v);
		long long ll;

		if (!sv) {
			json_object_set(o, k, v);
			continue;
		}
		if ((!strcmp(t, "integer") || !strcmp(t, "boolean")) &&
		    pl_str_to_ll(pl_bool_norm(sv) && !strcmp(t, "boolean") ? pl_bool_norm(sv) : sv,
				 LLONG_MIN, LLONG_MAX, &ll) == 0)
			json_object_set_new(o, k, json_integer(ll));
		else if (!strcmp(t, "number") && *sv && strspn(sv, "0123456789.-") == strlen(sv))
			json_object_set_new(o, k, json_real(strtod(sv, NULL)));
		else
			json_object_set_new(o, k, json_string(sv));
	}
	return o;
}

json_t *
pl_sim_conf_json(struct pl_sim *s, const struct pl_sim_guest *g, const json_t *conf)
{
	return pl_sim_typed(g->lxc ? s->lxc_conf_m : s->qemu_conf_m, conf);
}

/* --- usage figures --- */

static uint64_t
conf_u64(const json_t *conf, const char *key, uint64_t dflt)
{
	const char *v = pl_json_str(conf, key);
	long long ll;

	if (!v || pl_str_to_ll(v, 0, LLONG_MAX, &ll) != 0)
		return dflt;
	return (uint64_t)ll;
}

static uint64_t
disk_size(const char *v)
{
	const char *sz = v ? strstr(v, "size=") : NULL;
	unsigned long long b = 0;

	if (sz) {
		char tmp[32];
		size_t n = strcspn(sz + 5, ",");

		if (n < sizeof(tmp)) {
			memcpy(tmp, sz + 5, n);
			tmp[n] = 0;
			pl_size_parse(tmp, &b);
		}
	}
	return b;
}

static bool
drive_is_cdrom(const char *v)
{
	return strstr(v, "media=cdrom") != NULL || !strncmp(v, "cdrom", 5);
}

/* PVE::QemuServer::Drive::valid_drive_names_for_boot's order. */
static const struct {
	const char *bus;
	int n;
} boot_buses[] = { { "ide", 4 }, { "scsi", 31 }, { "virtio", 16 }, { "sata", 6 } };

/* resolve_first_disk: the first disk (or CD-ROM) in drive-name order. */
static bool
first_drive(const json_t *conf, bool cdrom, char *out, size_t outlen)
{
	for (size_t b = 0; b < PL_ARRAY_LEN(boot_buses); b++)
		for (int i = 0; i < boot_buses[b].n; i++) {
			char key[16];
			const char *v;

			snprintf(key, sizeof(key), "%s%d", boot_buses[b].bus, i);
			if ((v = pl_json_str(conf, key)) != NULL && drive_is_cdrom(v) == cdrom) {
				snprintf(out, outlen, "%s", key);
				return true;
			}
		}
	return false;
}

char *
pl_sim_default_boot(const json_t *conf)
{
	char disk[16] = "", cd[16] = "", net[16] = "";
	struct pl_buf b;

	first_drive(conf, false, disk, sizeof(disk));
	first_drive(conf, true, cd, sizeof(cd));
	for (int i = 0; i < 32 && !net[0]; i++) {
		snprintf(net, sizeof(net), "net%d", i);
		if (!json_object_get(conf, net))
			net[0] = 0;
	}
	if (!disk[0] && !cd[0] && !net[0])
		return NULL;
	pl_buf_init(&b, 0);
	pl_buf_addf(&b, "order=%s%s%s%s%s", disk, disk[0] && (cd[0] || net[0]) ? ";" : "", cd,
		    cd[0] && net[0] ? ";" : "", net);
	return pl_buf_detach(&b, NULL);
}

/* A VM's maxdisk is its boot disk's size (PVE::QemuServer::vmstatus,
 * Drive::bootdisk_size): the first drive of `boot`'s order that is not a
 * CD-ROM, or the legacy `bootdisk`; 0 without either. A seeded VM with
 * neither counts as created through the API, which sets the default order
 * (get_default_bootdevices). A container's is its rootfs. */
static uint64_t
guest_maxdisk(const struct pl_sim_guest *g)
{
	const char *boot, *p;
	char *dflt = NULL;
	uint64_t size = 0;

	if (g->lxc)
		return disk_size(pl_json_str(g->conf, "rootfs"));
	boot = pl_json_str(g->conf, "boot");
	if (!boot && pl_json_str(g->conf, "bootdisk")) {
		const char *v = pl_json_str(g->conf, pl_json_str(g->conf, "bootdisk"));

		return v && !drive_is_cdrom(v) ? disk_size(v) : 0;
	}
	if (!boot)
		boot = dflt = pl_sim_default_boot(g->conf);
	if (boot && (p = strstr(boot, "order=")) != NULL) {
		p += strlen("order=");
		while (*p && *p != ',') {
			size_t l = strcspn(p, ";,");
			char key[24];
			const char *v;

			snprintf(key, sizeof(key), "%.*s", (int)(l < sizeof(key) ? l : 0), p);
			if ((v = pl_json_str(g->conf, key)) != NULL &&
			    strncmp(key, "net", 3) != 0 && !drive_is_cdrom(v) &&
			    strncmp(v, "none", 4) != 0) {
				size = disk_size(v);
				break;
			}
			p += l;
			p += *p == ';';
		}
	}
	free(dflt);
	return size;
}

static void
guest_sizes(struct pl_sim_guest *g)
{
	int sockets = (int)conf_u64(g->conf, "sockets", 1);

	g->cpus = (int)conf_u64(g->conf, "cores", 1) * (g->lxc ? 1 : sockets);
	g->maxmem = conf_u64(g->conf, "memory", 512) << 20;
	g->maxdisk = guest_maxdisk(g);
	g->sized = true;
}

void
pl_sim_guest_usage(struct pl_sim *s, const struct pl_sim_guest *g, int64_t now,
		   struct pl_sim_usage *u)
{
	uint64_t h = mix(g->vmid * 2654435761ULL + 17);
	double base = 0.02 + (double)(h % 1000) / 1000.0 * 0.25;
	double phase = (double)((h >> 10) % 628) / 100.0;

	if (!g->sized) /* a cache of values derived from the config */
		guest_sizes((struct pl_sim_guest *)g);
	memset(u, 0, sizeof(*u));
	u->cpus = g->cpus;
	u->maxmem = g->maxmem;
	u->maxdisk = g->maxdisk;
	if (g->status == PL_SIM_STOPPED)
		return;
	u->uptime = now - g->started;
	if (u->uptime < 0)
		u->uptime = 0;
	u->cpu = g->status == PL_SIM_PAUSED
			 ? 0
			 : base * (0.75 + 0.25 * sin((double)now / 37.0 + phase)) / (u->cpus ? 1 : 1);
	u->mem = (uint64_t)((double)u->maxmem *
			    (0.25 + 0.3 * (double)((h >> 20) % 100) / 100.0 +
			     0.05 * sin((double)now / 53.0 + phase)));
	u->disk = g->lxc ? u->maxdisk / 4 + (h % 1024) * 1024 * 1024 % (u->maxdisk / 2 + 1) : 0;
	u->netin = (uint64_t)u->uptime * (2000 + (h >> 30) % 50000);
	u->netout = (uint64_t)u->uptime * (1000 + (h >> 34) % 20000);
	u->diskread = (uint64_t)u->uptime * (4000 + (h >> 38) % 100000);
	u->diskwrite = (uint64_t)u->uptime * (3000 + (h >> 42) % 80000);
	(void)s;
}

void
pl_sim_node_usage(struct pl_sim *s, int node, int64_t now, struct pl_sim_usage *u)
{
	const struct pl_sim_node *n = &s->nodes[node];
	double cpu = 0;
	uint64_t mem = 1ULL << 31; /* the host itself */

	memset(u, 0, sizeof(*u));
	u->cpus = n->cpus;
	u->maxmem = n->maxmem;
	u->maxdisk = n->maxdisk;
	u->disk = n->maxdisk / 5;
	if (!n->online)
		return;
	for (size_t i = 0; i < s->nguests; i++) {
		const struct pl_sim_guest *g = s->guests[i];
		struct pl_sim_usage gu;

		if (g->node != node || g->status == PL_SIM_STOPPED)
			continue;
		pl_sim_guest_usage(s, g, now, &gu);
		cpu += gu.cpu * gu.cpus;
		mem += gu.mem;
		u->netin += gu.netin;
		u->netout += gu.netout;
	}
	u->cpu = n->cpus ? fmin(1.0, 0.01 + cpu / n->cpus) : 0;
	u->mem = mem > n->maxmem ? n->maxmem : mem;
	u->uptime = now - n->boot;
}

void
pl_sim_nodes_usage(struct pl_sim *s, int64_t now, struct pl_sim_usage *u)
{
	double *cpu = pl_calloc(s->nnodes ? s->nnodes : 1, sizeof(*cpu));

	for (size_t i = 0; i < s->nnodes; i++) {
		memset(&u[i], 0, sizeof(u[i]));
		u[i].mem = 1ULL << 31;
	}
	for (size_t i = 0; i < s->nguests; i++) {
		const struct pl_sim_guest *g = s->guests[i];
		struct pl_sim_usage gu;

		if (g->status == PL_SIM_STOPPED || !s->nodes[g->node].online)
			continue;
		pl_sim_guest_usage(s, g, now, &gu);
		cpu[g->node] += gu.cpu * gu.cpus;
		u[g->node].mem += gu.mem;
		u[g->node].netin += gu.netin;
		u[g->node].netout += gu.netout;
	}
	for (size_t i = 0; i < s->nnodes; i++) {
		const struct pl_sim_node *n = &s->nodes[i];

		u[i].cpus = n->cpus;
		u[i].maxmem = n->maxmem;
		u[i].maxdisk = n->maxdisk;
		u[i].disk = n->maxdisk / 5;
		if (!n->online) {
			u[i].mem = 0;
			continue;
		}
		u[i].cpu = n->cpus ? fmin(1.0, 0.01 + cpu[i] / n->cpus) : 0;
		if (u[i].mem > n->maxmem)
			u[i].mem = n->maxmem;
		u[i].uptime = now - n->boot;
	}
	free(cpu);
}

void
pl_sim_sha1_hex(const void *data, size_t len, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha1(), NULL);
	for (unsigned int i = 0; i < mdlen && i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[40] = 0;
}

void
pl_sim_sha1_json(const json_t *v, char out[41])
{
	char *c = pl_json_canonical(v);

	pl_sim_sha1_hex(c, strlen(c), out);
	free(c);
}

char *
pl_sim_list_without(const char *list, const char *item)
{
	char *dup = pl_strdup(list ? list : ""), *save = NULL, *tok, *out;
	struct pl_buf b;

	pl_buf_init(&b, 0);
	for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save)) {
		if (!strcmp(tok, item))
			continue;
		if (b.len)
			pl_buf_addch(&b, ',');
		pl_buf_addstr(&b, tok);
	}
	free(dup);
	out = pl_buf_detach(&b, NULL);
	return out ? out : pl_strdup("");
}

void
pl_sim_storage_release(struct pl_sim_storage *st)
{
	for (size_t v = 0; v < st->nvols; v++) {
		free(st->vols[v].volid);
		free(st->vols[v].content);
		free(st->vols[v].format);
		json_decref(st->vols[v].conf);
	}
	free(st->vols);
	json_decref(st->index);
	free(st->id);
	free(st->type);
	free(st->content);
	free(st->path);
	json_decref(st->nodes);
	json_decref(st->cfg);
	memset(st, 0, sizeof(*st));
}

void
pl_sim_model_free(struct pl_sim *s)
{
	for (size_t i = 0; i < s->nguests; i++)
		guest_free(s->guests[i]);
	free(s->guests);
	s->guests = NULL;
	s->nguests = s->capguests = 0;
	for (size_t i = 0; i < s->nnodes; i++) {
		free(s->nodes[i].name);
		free(s->nodes[i].ip);
		json_decref(s->nodes[i].ifaces);
		json_decref(s->nodes[i].pending);
	}
	free(s->nodes);
	s->nodes = NULL;
	s->nnodes = 0;
	for (size_t i = 0; i < s->nstores; i++)
		pl_sim_storage_release(&s->stores[i]);
	free(s->stores);
	s->stores = NULL;
	s->nstores = 0;
}
