/*
 * The series prometheus-pve-exporter v3.x writes (its cluster collectors:
 * status, version, node, cluster, resources, backup-info, qdevice; its node
 * collectors: config, replication, subscription), computed from the same API
 * answers with the same names, types, labels and label values, one pass over
 * the answers per family. Semantics read from the exporter's
 * src/pve_exporter/collector/{cluster,node}.py (Apache-2.0); no code copied.
 */
#include "core/common.h"
#include "cmd/serve_metrics.h"
#include "core/err.h"
#include "core/json.h"

#include <math.h>
#include <time.h>

const char *
pl_metrics_pystr(const json_t *v, char *buf, size_t size)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
		snprintf(buf, size, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v)) {
		double d = json_real_value(v);

		/* repr(): the shortest text that reads back, ".0" on whole numbers */
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(buf, size, "%.*g", prec, d);
			if (strtod(buf, NULL) == d)
				break;
		}
		if (isfinite(d) && !strpbrk(buf, ".e") && strlen(buf) + 3 <= size)
			memcpy(buf + strlen(buf), ".0", 3);
	} else if (json_is_true(v))
		snprintf(buf, size, "True");
	else if (json_is_false(v))
		snprintf(buf, size, "False");
	else
		snprintf(buf, size, "None");
	return buf;
}

/* A resource's number as the exporter's float() reads it: numbers, booleans,
 * numeric strings; false for anything else (the sample is left out). */
static bool
number(const json_t *v, double *out)
{
	char *end;

	if (json_is_number(v)) {
		*out = json_number_value(v);
		return true;
	}
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return true;
	}
	if (json_is_string(v) && *json_string_value(v)) {
		*out = strtod(json_string_value(v), &end);
		return *end == '\0';
	}
	return false;
}

static bool
is_type(const json_t *e, const char *type)
{
	const char *t = pl_json_str(e, "type");

	return t && !strcmp(t, type);
}

static void
sample1(struct pl_expo *e, const char *id, double v)
{
	const char *kv[] = { "id", id };

	pl_expo_sample(e, "", kv, 1, v);
}

/* --- the resource list, read once per refresh --- */

enum {
	K_MAXDISK,
	K_DISK,
	K_MAXMEM,
	K_MEM,
	K_NETOUT,
	K_NETIN,
	K_DISKWRITE,
	K_DISKREAD,
	K_CPU,
	K_MAXCPU,
	K_UPTIME,
	K_SHARED,
	K_COUNT
};
static const char *const number_keys[K_COUNT] = {
	"maxdisk",   "disk",     "maxmem", "mem",    "netout", "netin",
	"diskwrite", "diskread", "cpu",    "maxcpu", "uptime", "shared",
};
enum { R_OTHER, R_QEMU, R_LXC, R_NODE, R_STORAGE };

static const char *const guest_ha_states[] = {
	"stopped",  "request_stop", "request_start", "request_start_balance",
	"started",  "fence",        "recovery",      "migrate",
	"relocate", "freeze",       "error",
};
static const char *const node_ha_states[] = { "online", "maintenance", "unknown", "fence", "gone" };
static const char *const lock_states[] = {
	"backup",   "clone",           "create",    "migrate",    "rollback",
	"snapshot", "snapshot-delete", "suspended", "suspending",
};

/* One resource as the collectors read it. */
struct res {
	const char *id;
	long long vmid;
	unsigned char kind, up;    /* R_*; running (guests) or available (storages) */
	unsigned short has;        /* a bit per K_* it carries */
	signed char hastate, lock; /* the index of its state in the lists above, or -1 */
	double v[K_COUNT];
	/* guests: node, name, type, template, tags; storages: node, storage,
	 * plugintype, content (sorted) */
	const char *lab[5];
	/* its label sets as samples write them, in the index's text: {id="…"
	 * (open, for a tail to end), and the info family's whole set */
	uint32_t id_at, id_len, info_at, info_len;
};

struct pl_metrics_index {
	int refs;          /* the server's, and one per answer being written */
	json_t *resources; /* held: the strings are its */
	struct res *r;
	size_t n;
	char **owned; /* label texts made here */
	size_t nowned;
	struct pl_buf text;             /* the label sets, made once (struct res' *_at) */
	uint64_t hash[PL_METRICS_SEGS]; /* what each kept family shows (family_hash), made once */
};

/* --- families kept compressed while they do not change (in->segs) --- */

enum { SEG_UP = 16, SEG_HA, SEG_LOCK, SEG_GUEST_INFO, SEG_STORAGE_INFO, SEG_CLUSTER, SEG_NODE };
_Static_assert(SEG_NODE + 1 == PL_METRICS_SEGS, "one kept segment per family or part");

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t
fnv_str(uint64_t h, const char *s)
{
	return fnv(h, s, strlen(s) + 1); /* the NUL parts one string from the next */
}

/* Start segment i of a family whose inputs hash to h: true when the kept
 * one was spliced in (write nothing). */
static bool
seg_reused(struct pl_expo *e, const struct pl_metrics_pve_in *in, int i, uint64_t h)
{
	if (in->segs == NULL)
		return false;
	if (pl_expo_seg_reuse(e, &in->segs[i], h))
		return true;
	pl_expo_seg_begin(e);
	return false;
}

static void
seg_done(struct pl_expo *e, const struct pl_metrics_pve_in *in, int i, uint64_t h)
{
	if (in->segs)
		pl_expo_seg_end(e, &in->segs[i], h);
}

static int
state_index(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (!strcmp(s, list[i]))
			return (int)i;
	return -1;
}

/* A label's text as the exporter's str() makes it: the JSON string itself,
 * or a text kept in the index. */
static const char *
label_text(struct pl_metrics_index *ix, const json_t *v)
{
	char buf[64];
	const char *t;

	if (v == NULL)
		return "";
	if (json_is_string(v))
		return json_string_value(v);
	t = pl_metrics_pystr(v, buf, sizeof(buf));
	if (!strcmp(t, "0"))
		return "0";
	if (!strcmp(t, "1"))
		return "1";
	ix->owned = pl_realloc(ix->owned, (ix->nowned + 1) * sizeof(*ix->owned));
	return ix->owned[ix->nowned++] = pl_strdup(t);
}

static void sorted_csv(const char *in, char *out, size_t size);

/* What a family of the resource list shows, hashed: its resources' ids and
 * the fields it writes. */
static uint64_t
family_hash(const struct pl_metrics_index *ix, int seg)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < ix->n; i++) {
		const struct res *r = &ix->r[i];

		if (seg < K_COUNT) {
			if (!(r->has & (1u << seg)))
				continue;
			h = fnv(h, &r->v[seg], sizeof(r->v[seg]));
		} else if (seg == SEG_UP) {
			h = fnv(h, &r->kind, 2); /* kind and up */
		} else if (seg == SEG_HA || seg == SEG_LOCK) {
			h = fnv(h, &r->kind, 1);
			h = fnv(h, seg == SEG_HA ? &r->hastate : &r->lock, 1);
		} else if (seg == SEG_GUEST_INFO || seg == SEG_STORAGE_INFO) {
			bool guest = r->kind == R_QEMU || r->kind == R_LXC;

			if (seg == SEG_GUEST_INFO ? !guest : r->kind != R_STORAGE)
				continue;
			for (size_t j = 0; j < 5; j++)
				h = fnv_str(h, r->lab[j] ? r->lab[j] : "");
		}
		h = fnv_str(h, r->id);
	}
	return h;
}

/* A resource's label sets, rendered once per list into ix->text: what every
 * scrape then copies as it is. */
static void
prerender(struct pl_metrics_index *ix, struct res *r)
{
	static const char *const guest_keys[] = {
		"id", "node", "name", "type", "template", "tags"
	};
	static const char *const storage_keys[] = { "id", "node", "storage", "plugintype",
						    "content" };
	const char *const *keys = r->kind == R_STORAGE ? storage_keys : guest_keys;
	size_t n = r->kind == R_STORAGE ? 5 : 6, at = ix->text.len;
	const char *kv[12];

	kv[0] = "id";
	kv[1] = r->id;
	pl_expo_labels(&ix->text, kv, 1, true);
	r->id_at = (uint32_t)at;
	r->id_len = (uint32_t)(ix->text.len - at);
	if (r->kind != R_QEMU && r->kind != R_LXC && r->kind != R_STORAGE)
		return;
	for (size_t j = 1; j < n; j++) {
		kv[2 * j] = keys[j];
		kv[2 * j + 1] = r->lab[j - 1];
	}
	at = ix->text.len;
	pl_expo_labels(&ix->text, kv, n, false);
	r->info_at = (uint32_t)at;
	r->info_len = (uint32_t)(ix->text.len - at);
}

/* Its sample of the current family: {id="…"} then the value. */
static void
sample_id(struct pl_expo *e, const struct pl_metrics_index *ix, const struct res *r, double v)
{
	pl_expo_sample_pre(e, ix->text.data + r->id_at, r->id_len, "}", 1, v);
}

struct pl_metrics_index *
pl_metrics_index_new(const json_t *resources)
{
	struct pl_metrics_index *ix = pl_calloc(1, sizeof(*ix));
	const json_t *x;
	size_t i;

	ix->refs = 1;
	ix->resources = json_incref((json_t *)resources);
	/* uint32_t offsets: a list's labels stay far below 4 GiB */
	pl_buf_init(&ix->text, (size_t)1 << 31);
	ix->r = pl_calloc(json_array_size(resources) + 1, sizeof(*ix->r));
	json_array_foreach(resources, i, x) {
		struct res *r = &ix->r[ix->n];
		const char *key, *type = pl_json_str_or(x, "type", "");
		json_t *v;

		if (!json_is_object(x))
			continue;
		ix->n++;
		r->id = pl_json_str_or(x, "id", "");
		r->vmid = pl_json_int(x, "vmid", 0);
		r->kind = !strcmp(type, "qemu")    ? R_QEMU :
			  !strcmp(type, "lxc")     ? R_LXC :
			  !strcmp(type, "node")    ? R_NODE :
			  !strcmp(type, "storage") ? R_STORAGE :
						     R_OTHER;
		/* one walk over its keys, no lookup per family */
		json_object_foreach((json_t *)x, key, v)
			for (int k = 0; k < K_COUNT; k++)
				if (key[0] == number_keys[k][0] && !strcmp(key, number_keys[k])) {
					if (number(v, &r->v[k]))
						r->has |= (unsigned short)(1u << k);
					break;
				}
		r->up = !strcmp(pl_json_str_or(x, "status", ""),
				r->kind == R_STORAGE ? "available" : "running");
		r->hastate =
			(signed char)(r->kind == R_NODE ?
					      state_index(pl_json_str(x, "hastate"), node_ha_states,
							  PL_ARRAY_LEN(node_ha_states)) :
					      state_index(pl_json_str(x, "hastate"),
							  guest_ha_states,
							  PL_ARRAY_LEN(guest_ha_states)));
		r->lock = (signed char)state_index(pl_json_str(x, "lock"), lock_states,
						   PL_ARRAY_LEN(lock_states));
		if (r->kind == R_QEMU || r->kind == R_LXC) {
			static const char *const keys[] = { "node", "name", "type", "template",
							    "tags" };

			for (size_t j = 0; j < 5; j++)
				r->lab[j] = label_text(ix, json_object_get(x, keys[j]));
		} else if (r->kind == R_STORAGE) {
			static const char *const keys[] = { "node", "storage", "plugintype" };
			char sorted[512];

			for (size_t j = 0; j < 3; j++)
				r->lab[j] = label_text(ix, json_object_get(x, keys[j]));
			sorted_csv(label_text(ix, json_object_get(x, "content")), sorted,
				   sizeof(sorted));
			ix->owned = pl_realloc(ix->owned, (ix->nowned + 1) * sizeof(*ix->owned));
			r->lab[3] = ix->owned[ix->nowned++] = pl_strdup(sorted);
		}
		prerender(ix, r);
	}
	/* what each kept family shows, once per list: a scrape compares */
	for (int k = 0; k < K_COUNT; k++)
		ix->hash[k] = family_hash(ix, k);
	for (int k = SEG_UP; k <= SEG_STORAGE_INFO; k++)
		ix->hash[k] = family_hash(ix, k);
	return ix;
}

bool
pl_metrics_index_guest(const struct pl_metrics_index *ix, size_t *i, const char **id,
		       long long *vmid)
{
	for (; *i < ix->n; (*i)++)
		if (ix->r[*i].kind == R_QEMU || ix->r[*i].kind == R_LXC) {
			*id = ix->r[*i].id;
			*vmid = ix->r[(*i)++].vmid;
			return true;
		}
	return false;
}

bool
pl_metrics_index_of(const struct pl_metrics_index *ix, const json_t *resources)
{
	return ix->resources == resources;
}

struct pl_metrics_index *
pl_metrics_index_ref(struct pl_metrics_index *ix)
{
	ix->refs++;
	return ix;
}

void
pl_metrics_index_free(struct pl_metrics_index *ix)
{
	if (ix == NULL || --ix->refs > 0)
		return;
	for (size_t i = 0; i < ix->nowned; i++)
		free(ix->owned[i]);
	free(ix->owned);
	free(ix->r);
	pl_buf_release(&ix->text);
	json_decref(ix->resources);
	free(ix);
}

/* pve_up: nodes (online), the cluster (quorate), guests (running) and
 * storages (available). */
static void
collect_status(struct pl_expo *e, const struct pl_metrics_pve_in *in,
	       const struct pl_metrics_index *ix)
{
	const json_t *x;
	size_t i;
	char id[160];
	uint64_t h = 0xcbf29ce484222325ULL;

	if (in->segs) {
		char *text = json_dumps(in->status, JSON_COMPACT);

		h = fnv_str(h, text ? text : "");
		free(text);
		h = fnv(h, &ix->hash[SEG_UP], sizeof(h));
	}
	if (seg_reused(e, in, SEG_UP, h))
		return;
	pl_expo_family(e, "pve_up", PL_EXPO_GAUGE, "Node/VM/CT-Status is online/running");
	json_array_foreach(in->status, i, x) {
		double v = 0;

		if (is_type(x, "node")) {
			number(json_object_get(x, "online"), &v);
			sample1(e, pl_json_str_or(x, "id", ""), v);
		} else if (is_type(x, "cluster")) {
			number(json_object_get(x, "quorate"), &v);
			snprintf(id, sizeof(id), "cluster/%s", pl_json_str_or(x, "name", ""));
			sample1(e, id, v);
		}
	}
	for (i = 0; i < ix->n; i++)
		if (ix->r[i].kind == R_QEMU || ix->r[i].kind == R_LXC)
			sample_id(e, ix, &ix->r[i], ix->r[i].up);
	for (i = 0; i < ix->n; i++)
		if (ix->r[i].kind == R_STORAGE)
			sample_id(e, ix, &ix->r[i], ix->r[i].up);
	seg_done(e, in, SEG_UP, h);
}

static void
collect_version(struct pl_expo *e, const struct pl_metrics_pve_in *in)
{
	static const char *const keys[] = { "release", "repoid", "version" };
	const char *kv[6];
	char bufs[3][64];
	const char *k;
	json_t *v;
	size_t n = 0;

	if (!json_is_object(in->version))
		return;
	/* the labels in the answer's order, as the exporter keeps it */
	json_object_foreach((json_t *)in->version, k, v)
		for (size_t j = 0; j < PL_ARRAY_LEN(keys); j++)
			if (!strcmp(k, keys[j]) && n < 3) {
				kv[2 * n] = keys[j];
				kv[2 * n + 1] = pl_metrics_pystr(v, bufs[n], sizeof(bufs[n]));
				n++;
			}
	if (n == 0)
		return; /* the exporter fails on an empty answer */
	pl_expo_family(e, "pve_version_info", PL_EXPO_GAUGE, "Proxmox VE version info");
	pl_expo_sample(e, "", kv, n, 1);
}

static void
collect_nodes(struct pl_expo *e, const struct pl_metrics_pve_in *in)
{
	static const char *const keys[] = { "id", "level", "name", "nodeid" };
	const json_t *x;
	bool any = false;
	size_t i;

	json_array_foreach(in->status, i, x) {
		const char *kv[8];
		char bufs[4][64];

		if (!is_type(x, "node"))
			continue;
		if (!any)
			pl_expo_family(e, "pve_node_info", PL_EXPO_GAUGE, "Node info");
		any = true;
		for (size_t j = 0; j < 4; j++) {
			const json_t *v = json_object_get(x, keys[j]);

			kv[2 * j] = keys[j];
			kv[2 * j + 1] = v ? pl_metrics_pystr(v, bufs[j], sizeof(bufs[j])) : "";
		}
		pl_expo_sample(e, "", kv, 4, 1);
	}
}

/* Whether s can name a label: [a-zA-Z_][a-zA-Z0-9_]*, not __reserved. */
static bool
label_name(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9') || !strncmp(s, "__", 2))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* pve_cluster_info: every key of the cluster entry but type and name, id
 * made "cluster/<name>". */
static void
collect_cluster(struct pl_expo *e, const struct pl_metrics_pve_in *in)
{
	const json_t *x;
	bool any = false;
	size_t i;

	json_array_foreach(in->status, i, x) {
		const char *kv[32], *k;
		char bufs[16][64], id[160];
		size_t n = 0;
		json_t *v;

		if (!is_type(x, "cluster"))
			continue;
		if (!any)
			pl_expo_family(e, "pve_cluster_info", PL_EXPO_GAUGE, "Cluster info");
		any = true;
		snprintf(id, sizeof(id), "cluster/%s", pl_json_str_or(x, "name", ""));
		json_object_foreach((json_t *)x, k, v) {
			/* a key no label can be named after would spoil the answer */
			if (!strcmp(k, "type") || !strcmp(k, "name") || n == 16 || !label_name(k))
				continue;
			kv[2 * n] = k;
			kv[2 * n + 1] = !strcmp(k, "id") ? id : pl_metrics_pystr(v, bufs[n], 64);
			n++;
		}
		pl_expo_sample(e, "", kv, n, 1);
	}
}

static const json_t *
cluster_entry(const struct pl_metrics_pve_in *in)
{
	const json_t *x;
	size_t i;

	json_array_foreach(in->status, i, x)
		if (is_type(x, "cluster"))
			return x;
	return NULL;
}

static void
collect_qdevice(struct pl_expo *e, const struct pl_metrics_pve_in *in)
{
	static const char *const map[][2] = {
		{ "Model", "model" },           { "Algorithm", "algorithm" },
		{ "QNetd host", "qnetd_host" }, { "Tie-breaker", "tie_breaker" },
		{ "State", "state" },
	};
	const json_t *c = cluster_entry(in);
	const char *kv[12];
	char id[160], bufs[5][64];

	if (c == NULL || !json_object_size(in->qdevice))
		return;
	snprintf(id, sizeof(id), "cluster/%s", pl_json_str_or(c, "name", ""));
	pl_expo_family(e, "pve_qdevice_up", PL_EXPO_GAUGE,
		       "Proxmox VE QDevice is connected (1) or not (0)");
	sample1(e, id, !strcmp(pl_json_str_or(in->qdevice, "State", ""), "Connected"));
	kv[0] = "id";
	kv[1] = id;
	for (size_t j = 0; j < PL_ARRAY_LEN(map); j++) {
		const json_t *v = json_object_get(in->qdevice, map[j][0]);

		kv[2 + 2 * j] = map[j][1];
		kv[3 + 2 * j] = v ? pl_metrics_pystr(v, bufs[j], sizeof(bufs[j])) : "";
	}
	pl_expo_family(e, "pve_qdevice_info", PL_EXPO_GAUGE,
		       "Proxmox VE QDevice info (1 if configured)");
	pl_expo_sample(e, "", kv, 6, 1);
}

/* One number of every resource that has it (whatever its type). */
struct resource_family {
	int key; /* K_* */
	const char *name, *help;
	bool counter, deprecated;
};

static const struct resource_family families[] = {
	{ K_MAXDISK, "pve_disk_size_bytes",
	  "Storage size in bytes (for type 'storage'), root image size for VMs (for types 'qemu' "
	  "and 'lxc').",
	  false, false },
	{ K_DISK, "pve_disk_usage_bytes",
	  "Used disk space in bytes (for type 'storage'), used root image space for VMs (for "
	  "types 'qemu' and 'lxc').",
	  false, false },
	{ K_MAXMEM, "pve_memory_size_bytes",
	  "Number of available memory in bytes (for types 'node', 'qemu' and 'lxc').", false,
	  false },
	{ K_MEM, "pve_memory_usage_bytes",
	  "Used memory in bytes (for types 'node', 'qemu' and 'lxc').", false, false },
	{ K_NETOUT, "pve_network_transmit_bytes",
	  "The amount of traffic in bytes that was sent from the guest over the network since it "
	  "was started. (for types 'qemu' and 'lxc') DEPRECATED: Use "
	  "pve_network_transmit_bytes_total instead.",
	  false, true },
	{ K_NETIN, "pve_network_receive_bytes",
	  "The amount of traffic in bytes that was sent to the guest over the network since it was "
	  "started. (for types 'qemu' and 'lxc') DEPRECATED: Use pve_network_receive_bytes_total "
	  "instead.",
	  false, true },
	{ K_DISKWRITE, "pve_disk_write_bytes",
	  "The amount of bytes the guest wrote to its block devices since the guest was started. "
	  "This info is not available for all storage types. (for types 'qemu' and 'lxc') "
	  "DEPRECATED: Use pve_disk_written_bytes_total instead.",
	  false, true },
	{ K_DISKREAD, "pve_disk_read_bytes",
	  "The amount of bytes the guest read from its block devices since the guest was started. "
	  "This info is not available for all storage types. (for types 'qemu' and 'lxc') "
	  "DEPRECATED: Use pve_disk_read_bytes_total instead.",
	  false, true },
	{ K_CPU, "pve_cpu_usage_ratio", "CPU utilization (for types 'node', 'qemu' and 'lxc').",
	  false, false },
	{ K_MAXCPU, "pve_cpu_usage_limit",
	  "Number of available CPUs (for types 'node', 'qemu' and 'lxc').", false, false },
	{ K_UPTIME, "pve_uptime_seconds",
	  "Uptime of node or virtual guest in seconds (for types 'node', 'qemu' and 'lxc').", false,
	  false },
	{ K_SHARED, "pve_storage_shared",
	  "Whether or not the storage is shared among cluster nodes", false, false },
	{ K_NETOUT, "pve_network_transmit_bytes_total",
	  "The amount of traffic in bytes that was sent from the guest over the network since it "
	  "was started. (for types 'qemu' and 'lxc')",
	  true, false },
	{ K_NETIN, "pve_network_receive_bytes_total",
	  "The amount of traffic in bytes that was sent to the guest over the network since it was "
	  "started. (for types 'qemu' and 'lxc')",
	  true, false },
	{ K_DISKWRITE, "pve_disk_written_bytes_total",
	  "The amount of bytes the guest wrote to its block devices since the guest was started. "
	  "This info is not available for all storage types. (for types 'qemu' and 'lxc')",
	  true, false },
	{ K_DISKREAD, "pve_disk_read_bytes_total",
	  "The amount of bytes the guest read from its block devices since the guest was started. "
	  "This info is not available for all storage types. (for types 'qemu' and 'lxc')",
	  true, false },
};

/* A one-hot family: for each resource of the kinds it covers, one sample
 * per state, 1 for the state it is in. */
/* The tails ,state="…"} of a one-hot family's states, into out (size given:
 * the states are short names of ours); their lengths into len. */
static void
state_tails(const char *const *states, size_t n, char (*out)[32], size_t *len)
{
	for (size_t st = 0; st < n; st++)
		len[st] = (size_t)snprintf(out[st], sizeof(out[st]), ",state=\"%s\"}", states[st]);
}

static void
one_hot(struct pl_expo *e, const struct pl_metrics_index *ix, bool ha, size_t from, size_t to)
{
	char guest[PL_ARRAY_LEN(guest_ha_states)][32], node[PL_ARRAY_LEN(node_ha_states)][32];
	char lock[PL_ARRAY_LEN(lock_states)][32];
	size_t guest_len[PL_ARRAY_LEN(guest_ha_states)], node_len[PL_ARRAY_LEN(node_ha_states)];
	size_t lock_len[PL_ARRAY_LEN(lock_states)];

	state_tails(guest_ha_states, PL_ARRAY_LEN(guest_ha_states), guest, guest_len);
	state_tails(node_ha_states, PL_ARRAY_LEN(node_ha_states), node, node_len);
	state_tails(lock_states, PL_ARRAY_LEN(lock_states), lock, lock_len);
	for (size_t i = from; i < to; i++) {
		const struct res *r = &ix->r[i];
		char(*tails)[32] = lock;
		const size_t *lens = lock_len;
		size_t n = PL_ARRAY_LEN(lock_states);
		int have = ha ? r->hastate : r->lock;

		if (ha && r->kind == R_NODE) {
			tails = node;
			lens = node_len;
			n = PL_ARRAY_LEN(node_ha_states);
		} else if (ha && (r->kind == R_QEMU || r->kind == R_LXC)) {
			tails = guest;
			lens = guest_len;
			n = PL_ARRAY_LEN(guest_ha_states);
		} else if (ha || (r->kind != R_QEMU && r->kind != R_LXC)) {
			continue;
		}
		for (size_t st = 0; st < n; st++)
			pl_expo_sample_pre(e, ix->text.data + r->id_at, r->id_len, tails[st],
					   lens[st], have == (int)st);
	}
}

/* "images,rootdir" -> "images,rootdir", sorted as Python sorts strings
 * (bytewise: UTF-8 code point order). */
static void
sorted_csv(const char *in, char *out, size_t size)
{
	const char *parts[64];
	size_t lens[64], n = 0, o = 0;
	const char *p = in;

	for (;;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);

		if (n < PL_ARRAY_LEN(parts)) {
			parts[n] = p;
			lens[n++] = len;
		}
		if (!c)
			break;
		p = c + 1;
	}
	for (size_t i = 1; i < n; i++) /* insertion sort: a handful of items */
		for (size_t j = i; j > 0; j--) {
			size_t m = lens[j - 1] < lens[j] ? lens[j - 1] : lens[j];
			int c = memcmp(parts[j - 1], parts[j], m);

			if (c < 0 || (c == 0 && lens[j - 1] <= lens[j]))
				break;
			const char *tp = parts[j];
			size_t tl = lens[j];

			parts[j] = parts[j - 1];
			lens[j] = lens[j - 1];
			parts[j - 1] = tp;
			lens[j - 1] = tl;
		}
	for (size_t i = 0; i < n && o + 1 < size; i++) {
		size_t len = lens[i] < size - o - 1 ? lens[i] : size - o - 1;

		if (i && o + 1 < size)
			out[o++] = ',';
		len = len < size - o - 1 ? len : size - o - 1;
		memcpy(out + o, parts[i], len);
		o += len;
	}
	out[o] = '\0';
}

/* The resource list's family f (families[]). */
static void
resource_family(struct pl_expo *e, const struct pl_metrics_pve_in *in,
		const struct pl_metrics_index *ix, size_t f)
{
	uint64_t h = in->segs ? ix->hash[families[f].key] : 0;

	/* a family's segment: the counters' after the gauges' */
	if (seg_reused(e, in, (int)f, h))
		return;
	pl_expo_family(e, families[f].name, families[f].counter ? PL_EXPO_COUNTER : PL_EXPO_GAUGE,
		       families[f].help);
	for (size_t i = 0; i < ix->n; i++)
		if (ix->r[i].has & (1u << families[f].key))
			sample_id(e, ix, &ix->r[i], ix->r[i].v[families[f].key]);
	seg_done(e, in, (int)f, h);
}

/* Resources of a one-hot family written per part of an uncompressed answer
 * (~1 MB of text): pve_ha_state is 5 MB at 10,000 guests. */
#define ONE_HOT_PART 2048

/* pve_ha_state or pve_lock_state, from resource c->at: all of it when its
 * segment is kept, else ONE_HOT_PART resources. Returns whether it is done. */
static bool
one_hot_family(struct pl_expo *e, const struct pl_metrics_pve_in *in,
	       const struct pl_metrics_index *ix, bool ha, struct pl_metrics_cursor *c)
{
	int seg = ha ? SEG_HA : SEG_LOCK;
	uint64_t h = ix->hash[seg];
	size_t to = ix->n;

	if (in->segs) {
		if (seg_reused(e, in, seg, h))
			return true;
	} else if (ix->n - c->at > ONE_HOT_PART) {
		to = c->at + ONE_HOT_PART;
	}
	if (c->at == 0) {
		if (ha)
			pl_expo_family(e, "pve_ha_state", PL_EXPO_GAUGE,
				       "HA service status (for HA managed VMs).");
		else
			pl_expo_family(e, "pve_lock_state", PL_EXPO_GAUGE,
				       "The guest's current config lock (for types 'qemu' and "
				       "'lxc')");
	}
	one_hot(e, ix, ha, c->at, to);
	seg_done(e, in, seg, h);
	c->at = to;
	return to == ix->n;
}

/* pve_guest_info or pve_storage_info: their label sets, made once. */
static void
info_family(struct pl_expo *e, const struct pl_metrics_pve_in *in,
	    const struct pl_metrics_index *ix, bool guests)
{
	int seg = guests ? SEG_GUEST_INFO : SEG_STORAGE_INFO;
	uint64_t h = ix->hash[seg];

	if (seg_reused(e, in, seg, h))
		return;
	if (guests)
		pl_expo_family(e, "pve_guest_info", PL_EXPO_GAUGE, "VM/CT info");
	else
		pl_expo_family(e, "pve_storage_info", PL_EXPO_GAUGE, "Storage info");
	for (size_t i = 0; i < ix->n; i++) {
		bool guest = ix->r[i].kind == R_QEMU || ix->r[i].kind == R_LXC;

		if (guests ? guest : ix->r[i].kind == R_STORAGE)
			pl_expo_sample_pre(e, ix->text.data + ix->r[i].info_at, ix->r[i].info_len,
					   "", 0, 1);
	}
	seg_done(e, in, seg, h);
}

/* pve_not_backed_up_*: the cluster named after the status' first entry. */
static void
collect_backup_info(struct pl_expo *e, const struct pl_metrics_pve_in *in)
{
	const json_t *x;
	char id[160];
	size_t i;

	if (!json_is_array(in->not_backed_up))
		return;
	snprintf(id, sizeof(id), "cluster/%s",
		 pl_json_str_or(json_array_get(in->status, 0), "name", ""));
	pl_expo_family(e, "pve_not_backed_up_total", PL_EXPO_GAUGE,
		       "Total number of guests not covered by any backup job.");
	sample1(e, id, (double)json_array_size(in->not_backed_up));
	pl_expo_family(e, "pve_not_backed_up_info", PL_EXPO_GAUGE,
		       "Present if guest is not covered by any backup job.");
	json_array_foreach(in->not_backed_up, i, x) {
		char gid[64];

		snprintf(gid, sizeof(gid), "%s/%lld", pl_json_str_or(x, "type", ""),
			 pl_json_int(x, "vmid", 0));
		sample1(e, gid, 1);
	}
}

static bool
node_wanted(const struct pl_metrics_pve_opts *o, const char *node)
{
	return o->only == NULL || (node && !strcmp(o->only, node));
}

static void
collect_onboot(struct pl_expo *e, const struct pl_metrics_pve_in *in,
	       const struct pl_metrics_pve_opts *o)
{
	const json_t *x;
	size_t i;

	pl_expo_family(e, "pve_onboot_status", PL_EXPO_GAUGE, "Proxmox vm config onboot value");
	/* the exporter lists qemu guests, then containers */
	for (int pass = 0; pass < 2; pass++)
		json_array_foreach(in->onboot, i, x) {
			const char *type = pl_json_str_or(x, "type", "");
			const char *node = pl_json_str_or(x, "node", "");
			const char *kv[6];
			char id[64];
			double v;

			if (strcmp(type, pass ? "lxc" : "qemu") || !node_wanted(o, node) ||
			    !number(json_object_get(x, "onboot"), &v))
				continue;
			snprintf(id, sizeof(id), "%s/%lld", type, pl_json_int(x, "vmid", 0));
			kv[0] = "id";
			kv[1] = id;
			kv[2] = "node";
			kv[3] = node;
			kv[4] = "type";
			kv[5] = type;
			pl_expo_sample(e, "", kv, 3, v);
		}
}

static void
collect_replication(struct pl_expo *e, const struct pl_metrics_pve_in *in,
		    const struct pl_metrics_pve_opts *o)
{
	static const char *const keys[][3] = {
		{ "duration", "pve_replication_duration_seconds",
		  "Proxmox vm replication duration" },
		{ "last_sync", "pve_replication_last_sync_timestamp_seconds",
		  "Proxmox vm replication last_sync" },
		{ "last_try", "pve_replication_last_try_timestamp_seconds",
		  "Proxmox vm replication last_try" },
		{ "next_sync", "pve_replication_next_sync_timestamp_seconds",
		  "Proxmox vm replication next_sync" },
		{ "fail_count", "pve_replication_failed_syncs",
		  "Proxmox vm replication fail_count" },
	};
	const char *node;
	const json_t *n, *job;
	size_t i;

	for (size_t k = 0; k < PL_ARRAY_LEN(keys); k++) {
		pl_expo_family(e, keys[k][1], PL_EXPO_GAUGE, keys[k][2]);
		json_object_foreach((json_t *)in->nodes, node, n) {
			if (!node_wanted(o, node))
				continue;
			json_array_foreach(json_object_get(n, "replication"), i, job) {
				char buf[64];
				double v;

				if (number(json_object_get(job, keys[k][0]), &v))
					sample1(e,
						pl_metrics_pystr(json_object_get(job, "id"), buf,
								 sizeof(buf)),
						v);
			}
		}
	}
	pl_expo_family(e, "pve_replication_info", PL_EXPO_GAUGE, "Proxmox vm replication info");
	json_object_foreach((json_t *)in->nodes, node, n) {
		if (!node_wanted(o, node))
			continue;
		json_array_foreach(json_object_get(n, "replication"), i, job) {
			char id[64], type[64], src[96], dst[96], guest[96], vt[32], g[32];
			const char *kv[10];

			snprintf(src, sizeof(src), "node/%s", pl_json_str_or(job, "source", ""));
			snprintf(dst, sizeof(dst), "node/%s", pl_json_str_or(job, "target", ""));
			snprintf(guest, sizeof(guest), "%s/%s",
				 pl_metrics_pystr(json_object_get(job, "vmtype"), vt, sizeof(vt)),
				 pl_metrics_pystr(json_object_get(job, "guest"), g, sizeof(g)));
			kv[0] = "id";
			kv[1] = pl_metrics_pystr(json_object_get(job, "id"), id, sizeof(id));
			kv[2] = "type";
			kv[3] = pl_metrics_pystr(json_object_get(job, "type"), type, sizeof(type));
			kv[4] = "source";
			kv[5] = src;
			kv[6] = "target";
			kv[7] = dst;
			kv[8] = "guest";
			kv[9] = guest;
			pl_expo_sample(e, "", kv, 5, 1);
		}
	}
}

static void
collect_subscription(struct pl_expo *e, const struct pl_metrics_pve_in *in,
		     const struct pl_metrics_pve_opts *o)
{
	static const char *const statuses[] = { "new",     "notfound", "active",
						"invalid", "expired",  "suspended" };
	const char *node;
	const json_t *n;

	pl_expo_family(e, "pve_subscription_info", PL_EXPO_GAUGE,
		       "Proxmox VE subscription info (1 if present)");
	json_object_foreach((json_t *)in->nodes, node, n) {
		const json_t *sub = json_object_get(n, "subscription");
		const json_t *lv = json_object_get(sub, "level");
		const char *kv[4];
		char id[96], buf[64];

		if (!node_wanted(o, node) || !json_is_object(sub))
			continue;
		snprintf(id, sizeof(id), "node/%s", node);
		kv[0] = "id";
		kv[1] = id;
		kv[2] = "level";
		kv[3] = lv ? pl_metrics_pystr(lv, buf, sizeof(buf)) : "unknown";
		pl_expo_sample(e, "", kv, 2, 1);
	}
	pl_expo_family(e, "pve_subscription_status", PL_EXPO_GAUGE,
		       "Proxmox VE subscription status (1 if matches status)");
	json_object_foreach((json_t *)in->nodes, node, n) {
		const json_t *sub = json_object_get(n, "subscription");
		const char *st = pl_json_str_or(sub, "status", "unknown"), *kv[4];
		char id[96];

		if (!node_wanted(o, node) || !json_is_object(sub))
			continue;
		snprintf(id, sizeof(id), "node/%s", node);
		kv[0] = "id";
		kv[1] = id;
		kv[2] = "status";
		for (size_t s = 0; s < PL_ARRAY_LEN(statuses); s++) {
			kv[3] = statuses[s];
			pl_expo_sample(e, "", kv, 2, !strcmp(st, statuses[s]));
		}
	}
	pl_expo_family(e, "pve_subscription_next_due_timestamp_seconds", PL_EXPO_GAUGE,
		       "Subscription next due date as Unix timestamp");
	json_object_foreach((json_t *)in->nodes, node, n) {
		const char *due = pl_json_str(json_object_get(n, "subscription"), "nextduedate");
		struct tm tm = { 0 };
		char id[96];
		const char *end;

		if (!node_wanted(o, node) || !due || !*due)
			continue;
		end = strptime(due, "%Y-%m-%d", &tm);
		if (end == NULL || *end)
			continue;
		snprintf(id, sizeof(id), "node/%s", node);
		/* midnight UTC (the exporter takes its host's time zone) */
		sample1(e, id, (double)timegm(&tm));
	}
}

json_t *
pl_metrics_onboot(const json_t *guests)
{
	json_t *out = json_array();
	const json_t *g;
	size_t i;

	json_array_foreach(guests, i, g) {
		const json_t *ob = json_object_get(json_object_get(g, "config"), "onboot");

		if (ob)
			json_array_append_new(out, json_pack("{s:I,s:s,s:s,s:O}", "vmid",
							     (json_int_t)pl_json_int(g, "vmid", 0),
							     "type", pl_json_str_or(g, "type", ""),
							     "node", pl_json_str_or(g, "node", ""),
							     "onboot", ob));
	}
	return out;
}

/* The small cluster-wide families (nodes, cluster, version, backup info,
 * qdevice), or the node collectors' (subscription, onboot, replication):
 * kept while the answers they come from are the same ones (in->gen; the
 * node part's options are the cache's key). */
static void
small_part(struct pl_expo *e, const struct pl_metrics_pve_in *in,
	   const struct pl_metrics_pve_opts *o, bool node)
{
	struct pl_metrics_pve_in keep = *in;
	int seg = node ? SEG_NODE : SEG_CLUSTER;
	uint64_t h = fnv(0xcbf29ce484222325ULL, &in->gen, sizeof(in->gen));

	if (in->gen == 0)
		keep.segs = NULL;
	if (seg_reused(e, &keep, seg, h))
		return;
	if (node) {
		collect_subscription(e, in, o);
		if (o->config)
			collect_onboot(e, in, o);
		collect_replication(e, in, o);
	} else {
		collect_nodes(e, in);
		collect_cluster(e, in);
		collect_version(e, in);
		collect_backup_info(e, in);
		collect_qdevice(e, in);
	}
	seg_done(e, &keep, seg, h);
}

/* The parts of an answer, in order: one per kept family, then the small
 * cluster-wide families together, then the node collectors. */
enum {
	P_STATUS,
	P_RESOURCES,                                      /* families[] */
	P_HA = P_RESOURCES + (int)PL_ARRAY_LEN(families), /* one-hot, maybe in parts */
	P_LOCK,
	P_GUEST_INFO,
	P_STORAGE_INFO,
	P_CLUSTER, /* nodes, cluster, version, backup info, qdevice */
	P_NODE,    /* subscription, onboot, replication */
	P_END,
};

bool
pl_metrics_pve_next(struct pl_expo *e, const struct pl_metrics_pve_in *in,
		    const struct pl_metrics_pve_opts *o, struct pl_metrics_cursor *c)
{
	const struct pl_metrics_index *ix = in->index;
	int p = c->part;

	if (p < P_NODE && !o->cluster)
		p = P_NODE;
	if (p == P_NODE && !o->node)
		p = P_END;
	if (p == P_STATUS) {
		collect_status(e, in, ix);
	} else if (p < P_HA) {
		size_t f = (size_t)(p - P_RESOURCES);

		/* OpenMetrics allows one family per name: the deprecated gauges
		 * would share theirs with the counters (pve_network_transmit_bytes) */
		if (!families[f].deprecated || (o->deprecated && e->fmt == PL_EXPO_TEXT))
			resource_family(e, in, ix, f);
	} else if (p == P_HA || p == P_LOCK) {
		if (!one_hot_family(e, in, ix, p == P_HA, c)) {
			c->part = p;
			return true;
		}
		c->at = 0;
	} else if (p == P_GUEST_INFO || p == P_STORAGE_INFO) {
		info_family(e, in, ix, p == P_GUEST_INFO);
	} else if (p == P_CLUSTER || p == P_NODE) {
		small_part(e, in, o, p == P_NODE);
	}
	c->part = p < P_END ? p + 1 : P_END;
	return c->part < P_END;
}

void
pl_metrics_pve(struct pl_expo *e, const struct pl_metrics_pve_in *in,
	       const struct pl_metrics_pve_opts *o)
{
	struct pl_metrics_pve_in with = *in;
	struct pl_metrics_index *own = NULL;
	struct pl_metrics_cursor c = { 0, 0 };

	if (with.index == NULL)
		with.index = own = pl_metrics_index_new(in->resources);
	while (pl_metrics_pve_next(e, &with, o, &c))
		;
	pl_metrics_index_free(own);
}
