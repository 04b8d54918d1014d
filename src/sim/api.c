/*
 * API handlers, part one: the handler table bound to the schema, request
 * helpers, and the cluster-wide calls (/version, the cluster lists, /nodes, node
 * status, tasks, access). Guests are in api_guest.c (with api_power.c,
 * api_snapshot.c, api_clone.c, api_agent.c), pools in api_pool.c, storage and
 * network in api_storage.c.
 */
#include "core/common.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

/* --- helpers --- */

void
pl_sim_ok(struct pl_sim_req *r, json_t *data)
{
	json_decref(r->data);
	r->data = data;
	r->status = 200;
}

void
pl_sim_fail(struct pl_sim_req *r, int status, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(r->reason);
	r->reason = pl_strdup(buf);
	r->status = status;
}

void
pl_sim_param_fail(struct pl_sim_req *r, const char *param, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!r->errors)
		r->errors = json_object();
	json_object_set_new(r->errors, param, json_string(buf));
	pl_sim_fail(r, 400, "Parameter verification failed.");
}

const char *
pl_sim_p(const struct pl_sim_req *r, const char *name)
{
	return pl_json_str(r->params, name);
}

bool
pl_sim_pbool(const struct pl_sim_req *r, const char *name, bool dflt)
{
	const char *v = pl_sim_p(r, name);
	const char *n = v ? pl_bool_norm(v) : NULL;

	return n ? n[0] == '1' : dflt;
}

long long
pl_sim_pint(const struct pl_sim_req *r, const char *name, long long dflt)
{
	const char *v = pl_sim_p(r, name);
	long long ll;

	if (!v || pl_str_to_ll(v, LLONG_MIN, LLONG_MAX, &ll) != 0)
		return dflt;
	return ll;
}

int
pl_sim_req_node(struct pl_sim_req *r)
{
	const char *name = pl_sim_p(r, "node");
	int i = name ? pl_sim_node_index(r->sim, name) : -1;

	if (i < 0) {
		pl_sim_fail(
			r, 500,
			"hostname lookup '%s' failed - failed to get address info for: %s: Name "
			"or service not known",
			name ? name : "", name ? name : "");
		return -1;
	}
	if (!r->sim->nodes[i].online) {
		pl_sim_fail(r, 595, "Connection refused");
		return -1;
	}
	return i;
}

void
pl_sim_ok_task(struct pl_sim_req *r, struct pl_sim_task *t)
{
	pl_sim_ok(r, json_string(t->upid));
}

/* --- /version, /cluster --- */

static void
h_version(struct pl_sim_req *r)
{
	bool v8 = !strcmp(r->sim->schema->version, "8.4");

	pl_sim_ok(r, json_pack("{s:s,s:s,s:s,s:s}", "version", v8 ? "8.4.1" : "9.1.1", "release",
			       v8 ? "8.4" : "9.1", "repoid", v8 ? "2a5fa54a" : "42b8ab7c",
			       "console", "xtermjs"));
}

static void
h_cluster_status(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	json_t *a = json_array();
	int online = 0;

	for (size_t i = 0; i < s->nnodes; i++)
		online += s->nodes[i].online;
	json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "type", "cluster", "id",
					   "cluster", "name", s->clustername, "nodes",
					   (int)s->nnodes, "quorate", online * 2 > (int)s->nnodes,
					   "version", (int)s->nnodes + 1));
	for (size_t i = 0; i < s->nnodes; i++) {
		char id[160];

		snprintf(id, sizeof(id), "node/%s", s->nodes[i].name);
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:s}", "type",
						   "node", "id", id, "name", s->nodes[i].name, "ip",
						   s->nodes[i].ip, "online", s->nodes[i].online,
						   "local", i == 0, "nodeid", (int)i + 1, "level",
						   ""));
	}
	pl_sim_ok(r, a);
}

/* The nextidrace fault: a stopped VM on the first node takes vmid, as
 * another client's create between nextid's answer and pvelab's would. */
static void
race_for(struct pl_sim *s, uint32_t vmid)
{
	struct pl_sim_guest *g = pl_sim_guest_add(s, vmid, false, 0);
	char name[32];

	if (g == NULL)
		return;
	snprintf(name, sizeof(name), "raced-%u", vmid);
	json_object_set_new(g->conf, "name", json_string(name));
	json_object_set_new(g->conf, "memory", json_string("512"));
	pl_sim_guest_touch(s, g);
}

static void
h_nextid(struct pl_sim_req *r)
{
	const char *want = pl_sim_p(r, "vmid");
	char buf[32];

	if (want) {
		long long v = pl_sim_pint(r, "vmid", 0);

		if (pl_sim_guest_find(r->sim, (uint32_t)v)) {
			pl_sim_param_fail(r, "vmid", "VM %lld already exists", v);
			return;
		}
		snprintf(buf, sizeof(buf), "%lld", v);
	} else {
		uint32_t id = pl_sim_nextid(r->sim);

		snprintf(buf, sizeof(buf), "%u", id);
		/* nextid reserves nothing: another client may take the id first */
		if (r->sim->faults.nextidrace > 0 &&
		    pl_sim_rand01(r->sim) < r->sim->faults.nextidrace)
			race_for(r->sim, id);
	}
	pl_sim_ok(r, json_string(buf)); /* a string, as PVE sends it */
}

/* A pool member's VMID (numbers, or strings from a seed). */
uint32_t
pl_sim_member_vmid(const json_t *mem)
{
	return json_is_string(mem) ? (uint32_t)strtoul(json_string_value(mem), NULL, 10) :
				     (uint32_t)json_integer_value(mem);
}

const char *
pl_sim_guest_pool(struct pl_sim *s, uint32_t vmid)
{
	const char *k;
	json_t *pv;

	json_object_foreach(s->pools, k, pv) {
		size_t i;
		json_t *mem;

		json_array_foreach(json_object_get(pv, "members"), i, mem)
			if (pl_sim_member_vmid(mem) == vmid)
				return k;
	}
	return NULL;
}

/* Static part of a guest's /cluster/resources entry, cached until it changes.
 * On an offline node it is all there is: PVE takes name, sizes and state from
 * the node's RRD data, which pmxcfs drops 5 minutes after the node's last
 * update; lock, tags and pool come from the cluster-wide config. */
static void
res_static(struct pl_sim *s, struct pl_sim_guest *g)
{
	struct pl_buf b;
	struct pl_sim_usage u;
	const char *name = pl_json_str(g->conf, g->lxc ? "hostname" : "name");
	const char *tags = pl_json_str(g->conf, "tags");
	char *ename = NULL, *etags = NULL;
	json_t *j;

	pl_sim_guest_usage(s, g, 0, &u);
	pl_buf_init(&b, 0);
	pl_buf_addf(&b, "{\"id\":\"%s/%u\",\"type\":\"%s\",\"vmid\":%u,\"node\":\"%s\"",
		    g->lxc ? "lxc" : "qemu", g->vmid, g->lxc ? "lxc" : "qemu", g->vmid,
		    s->nodes[g->node].name);
	if (s->nodes[g->node].online) {
		/* the name vmstatus reports, also for a guest without one */
		j = name ? json_string(name) : json_sprintf(g->lxc ? "CT%u" : "VM %u", g->vmid);
		ename = json_dumps(j, JSON_ENCODE_ANY);
		json_decref(j);
		pl_buf_addf(&b,
			    ",\"name\":%s,\"maxcpu\":%d,\"maxmem\":%llu,\"maxdisk\":%llu,"
			    "\"template\":%d",
			    ename, u.cpus, (unsigned long long)u.maxmem,
			    (unsigned long long)u.maxdisk,
			    pl_json_bool(g->conf, "template", false));
	}
	if (tags) {
		j = json_string(tags);
		etags = json_dumps(j, JSON_ENCODE_ANY);
		json_decref(j);
		pl_buf_addf(&b, ",\"tags\":%s", etags);
	}
	if (g->lock[0])
		pl_buf_addf(&b, ",\"lock\":\"%s\"", g->lock);
	if (pl_sim_ha_state(s, g))
		pl_buf_addf(&b, ",\"hastate\":\"%s\"", pl_sim_ha_state(s, g));
	if (pl_sim_guest_pool(s, g->vmid))
		pl_buf_addf(&b, ",\"pool\":\"%s\"", pl_sim_guest_pool(s, g->vmid));
	free(ename);
	free(etags);
	free(g->res);
	g->reslen = b.len;
	g->res = pl_buf_detach(&b, NULL);
}

/* Append an unsigned decimal; snprintf dominated the 10,000-guest listing. */
static void
put_u64(struct pl_buf *b, const char *key, uint64_t v)
{
	char tmp[48];
	size_t n = sizeof(tmp), kl = strlen(key);

	do {
		tmp[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	pl_buf_add(b, key, kl);
	pl_buf_add(b, tmp + n, sizeof(tmp) - n);
}

static void
res_guest(struct pl_sim *s, struct pl_sim_guest *g, int64_t now, struct pl_buf *b)
{
	struct pl_sim_usage u;
	uint64_t milli;

	if (!g->res)
		res_static(s, g);
	pl_buf_add(b, g->res, g->reslen);
	if (!s->nodes[g->node].online) {
		pl_buf_addstr(b, ",\"status\":\"unknown\"}");
		return;
	}
	pl_sim_guest_usage(s, g, now, &u);
	pl_buf_addstr(b, g->status == PL_SIM_STOPPED ? ",\"status\":\"stopped\"" :
						       ",\"status\":\"running\"");
	/* cpu with four decimals, as an integer pair */
	milli = (uint64_t)(u.cpu * 10000.0 + 0.5);
	put_u64(b, ",\"cpu\":", milli / 10000);
	{
		char frac[6] = { '.', 0, 0, 0, 0, 0 };
		uint64_t f = milli % 10000;

		for (int i = 4; i >= 1; i--) {
			frac[i] = (char)('0' + f % 10);
			f /= 10;
		}
		pl_buf_add(b, frac, 5);
	}
	put_u64(b, ",\"mem\":", u.mem);
	if (strcmp(s->schema->version, "8.4") != 0) /* 9.x: from the pve-vm-9.0 RRD */
		put_u64(b, ",\"memhost\":", pl_sim_memhost(g, &u));
	put_u64(b, ",\"disk\":", u.disk);
	put_u64(b, ",\"netin\":", u.netin);
	put_u64(b, ",\"netout\":", u.netout);
	put_u64(b, ",\"diskread\":", u.diskread);
	put_u64(b, ",\"diskwrite\":", u.diskwrite);
	put_u64(b, ",\"uptime\":", (uint64_t)u.uptime);
	pl_buf_addch(b, '}');
}

/* API2Tools::extract_node_stats with exclude_stats: a caller without
 * Sys.Audit on /nodes/NODE gets a node's entry without its figures (who
 * NULL: every caller sees them). */
static void
node_stats_for(struct pl_sim *s, const char *who, int i, json_t *o)
{
	static const char *const figures[] = { "uptime", "cpu",    "mem",    "disk",
					       "maxcpu", "maxmem", "maxdisk" };
	char path[160];

	snprintf(path, sizeof(path), "/nodes/%s", s->nodes[i].name);
	if (!who || !pl_sim_access_filtered(s, who) || pl_sim_access_can(s, who, path, "Sys.Audit"))
		return;
	for (size_t k = 0; k < PL_ARRAY_LEN(figures); k++)
		json_object_del(o, figures[k]);
}

/* A guest's entry for a caller who may not audit its pool: without "pool"
 * (Cluster.pm resources deletes it). */
static void
res_guest_for(struct pl_sim *s, struct pl_sim_guest *g, int64_t now, struct pl_buf *b,
	      const char *who)
{
	const char *pool = who ? pl_sim_guest_pool(s, g->vmid) : NULL;
	char path[300];
	struct pl_buf one;
	json_t *o;

	if (pool)
		snprintf(path, sizeof(path), "/pool/%s", pool);
	if (!pool || pl_sim_access_can(s, who, path, "Pool.Audit")) {
		res_guest(s, g, now, b);
		return;
	}
	pl_buf_init(&one, 0);
	res_guest(s, g, now, &one);
	o = json_loadb(one.data, one.len, 0, NULL);
	json_object_del(o, "pool");
	pl_json_write(b, o, false);
	json_decref(o);
	pl_buf_release(&one);
}

/* A node's entry in /nodes and /cluster/resources. An offline node has no
 * figures: PVE reads them from its RRD data, gone 5 minutes after it went. */
static json_t *
node_entry_u(struct pl_sim *s, int i, const struct pl_sim_usage *u)
{
	char id[160];

	snprintf(id, sizeof(id), "node/%s", s->nodes[i].name);
	if (!s->nodes[i].online)
		return json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", id, "type", "node", "node",
				 s->nodes[i].name, "status", "offline", "ssl_fingerprint",
				 s->fingerprint);
	return json_pack("{s:s,s:s,s:s,s:s,s:f,s:i,s:I,s:I,s:I,s:I,s:I,s:s,s:s}", "id", id, "type",
			 "node", "node", s->nodes[i].name, "status", "online", "cpu", u->cpu,
			 "maxcpu", u->cpus, "mem", (json_int_t)u->mem, "maxmem",
			 (json_int_t)u->maxmem, "disk", (json_int_t)u->disk, "maxdisk",
			 (json_int_t)u->maxdisk, "uptime", (json_int_t)u->uptime, "level", "",
			 "ssl_fingerprint", s->fingerprint);
}

json_t *
pl_sim_node_entry(struct pl_sim *s, int i, int64_t now)
{
	struct pl_sim_usage u;

	pl_sim_node_usage(s, i, now, &u);
	return node_entry_u(s, i, &u);
}

static json_t *
storage_entry(struct pl_sim *s, struct pl_sim_storage *st, int node, bool res)
{
	uint64_t used = pl_sim_storage_used(st, node);
	json_t *o;

	if (used > st->total)
		used = st->total;
	o = json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:I}", "storage", st->id, "type", st->type,
		      "content", st->content, "shared", st->shared, "total", (json_int_t)st->total,
		      "used", (json_int_t)used, "avail", (json_int_t)(st->total - used));
	if (res) {
		char id[300];

		snprintf(id, sizeof(id), "storage/%s/%s", s->nodes[node].name, st->id);
		json_object_set_new(o, "id", json_string(id));
		json_object_set_new(o, "node", json_string(s->nodes[node].name));
		json_object_set_new(o, "plugintype", json_string(st->type));
		if (s->nodes[node].online) {
			json_object_set_new(o, "status", json_string("available"));
			json_object_set_new(o, "maxdisk", json_integer((json_int_t)st->total));
			json_object_set_new(o, "disk", json_integer((json_int_t)used));
		} else {
			json_object_set_new(o, "status", json_string("unknown"));
		}
		json_object_del(o, "total");
		json_object_del(o, "used");
		json_object_del(o, "avail");
		json_object_set_new(o, "type", json_string("storage"));
	} else {
		json_object_set_new(o, "active", json_integer(1));
		json_object_set_new(o, "enabled", json_integer(1));
		json_object_set_new(o, "used_fraction",
				    json_real(st->total ? (double)used / (double)st->total : 0));
	}
	return o;
}

json_t *
pl_sim_storage_entry(struct pl_sim *s, struct pl_sim_storage *st, int node)
{
	return storage_entry(s, st, node, false);
}

/* A pool's entry, with its running members' figures summed as
 * PVE::API2::Cluster resources does: cpu weighted by maxcpu, the longest
 * uptime. */
static json_t *
pool_entry(struct pl_sim *s, const char *name, const json_t *pool, int64_t now)
{
	json_t *o = json_pack("{s:o,s:s,s:s}", "id", json_sprintf("/pool/%s", name), "type", "pool",
			      "pool", name);
	double cpu = 0;
	int maxcpu = 0;
	uint64_t mem = 0, maxmem = 0;
	int64_t uptime = 0;
	size_t i;
	json_t *m;

	json_array_foreach(json_object_get(pool, "members"), i, m) {
		struct pl_sim_guest *g = pl_sim_guest_find(s, pl_sim_member_vmid(m));
		struct pl_sim_usage u;

		if (!g || !s->nodes[g->node].online)
			continue;
		pl_sim_guest_usage(s, g, now, &u);
		if (!u.uptime)
			continue;
		uptime = u.uptime > uptime ? u.uptime : uptime;
		mem += u.mem;
		maxmem += u.maxmem;
		cpu = (cpu * maxcpu + u.cpu * u.cpus) / (maxcpu + u.cpus ? maxcpu + u.cpus : 1);
		maxcpu += u.cpus;
	}
	if (uptime)
		json_object_update_new(o, json_pack("{s:I,s:I,s:I,s:f,s:i}", "uptime",
						    (json_int_t)uptime, "mem", (json_int_t)mem,
						    "maxmem", (json_int_t)maxmem, "cpu", cpu,
						    "maxcpu", maxcpu));
	return o;
}

/* Pve-manager's API2::Cluster resources: a caller sees a guest with VM.Audit
 * on /vms/ID, a storage with Datastore.Audit on /storage/ID, a pool with
 * Pool.Audit on /pool/ID; who NULL: everything. */
static bool
res_visible(struct pl_sim *s, const char *who, const char *kind, const char *id)
{
	char path[300];

	if (!who)
		return true;
	snprintf(path, sizeof(path), "/%s/%s", kind, id);
	return pl_sim_access_can(s, who, path,
				 !strcmp(kind, "vms")     ? "VM.Audit" :
				 !strcmp(kind, "storage") ? "Datastore.Audit" :
							    "Pool.Audit");
}

bool
pl_sim_vm_visible(struct pl_sim *s, const char *who, uint32_t vmid)
{
	char id[16];

	snprintf(id, sizeof(id), "%u", vmid);
	return res_visible(s, who, "vms", id);
}

static void
resources_build(struct pl_sim *s, const char *type, int64_t now, struct pl_buf *b, const char *who)
{
	bool first = true;

	pl_buf_addstr(b, "{\"data\":[");
	if (!type || !strcmp(type, "vm")) {
		for (size_t i = 0; i < s->nguests; i++) {
			if (!pl_sim_vm_visible(s, who, s->guests[i]->vmid))
				continue;
			if (!first)
				pl_buf_addch(b, ',');
			first = false;
			res_guest_for(s, s->guests[i], now, b, who);
		}
	}
	if (!type || !strcmp(type, "node")) {
		struct pl_sim_usage *u = pl_calloc(s->nnodes, sizeof(*u));

		pl_sim_nodes_usage(s, now, u);
		for (size_t i = 0; i < s->nnodes; i++) {
			json_t *o = node_entry_u(s, (int)i, &u[i]);

			json_object_del(o, "ssl_fingerprint");
			json_object_set_new(o, "cgroup-mode", json_integer(2));
			node_stats_for(s, who, (int)i, o);
			if (pl_sim_ha_node_state(s, (int)i))
				json_object_set_new(o, "hastate",
						    json_string(pl_sim_ha_node_state(s, (int)i)));
			if (!first)
				pl_buf_addch(b, ',');
			first = false;
			pl_json_write(b, o, false);
			json_decref(o);
		}
		free(u);
	}
	if (!type || !strcmp(type, "storage")) {
		for (size_t i = 0; i < s->nnodes; i++) {
			for (size_t k = 0; k < s->nstores; k++) {
				json_t *o;

				if (!pl_sim_storage_on_node(&s->stores[k], s->nodes[i].name) ||
				    !res_visible(s, who, "storage", s->stores[k].id))
					continue;
				o = storage_entry(s, &s->stores[k], (int)i, true);
				if (!first)
					pl_buf_addch(b, ',');
				first = false;
				pl_json_write(b, o, false);
				json_decref(o);
			}
		}
	}
	if (!type || !strcmp(type, "pool")) {
		const char *k;
		json_t *v;

		json_object_foreach(s->pools, k, v) {
			json_t *o;

			if (!res_visible(s, who, "pool", k))
				continue;
			o = pool_entry(s, k, v, now);

			if (!first)
				pl_buf_addch(b, ',');
			first = false;
			pl_json_write(b, o, false);
			json_decref(o);
		}
	}
	pl_buf_addstr(b, "]}");
}

/* As on PVE, where pvestatd refreshes them every 10 s, the figures (cpu,
 * memory, uptime, traffic) move in 10-second steps; states and configs follow
 * the model at once. So the answer is built once per (type, 10 s, model
 * generation), and so is its gzip. */
#define STATUS_PERIOD_S 10
static void
h_resources(struct pl_sim_req *r)
{
	static const char *const types[] = { NULL, "vm", "node", "storage", "pool" };
	struct pl_sim *s = r->sim;
	const char *type = pl_sim_p(r, "type");
	int64_t now = time(NULL);
	size_t slot = 0;

	now -= now % STATUS_PERIOD_S;

	for (size_t i = 1; i < PL_ARRAY_LEN(types); i++)
		if (type && !strcmp(type, types[i]))
			slot = i;
	if (type && slot == 0) {
		resources_build(s, type, now, &r->raw, NULL); /* sdn and friends: empty */
		return;
	}
	if (pl_sim_access_filtered(s, r->user)) { /* per caller: not cached */
		resources_build(s, types[slot], now, &r->raw, r->user);
		return;
	}
	if (!s->rescache[slot].body || s->rescache[slot].t != now ||
	    s->rescache[slot].gen != s->gen) {
		struct pl_buf b;

		pl_buf_init(&b, 0);
		resources_build(s, types[slot], now, &b, NULL);
		pl_sim_blob_unref(s->rescache[slot].body);
		s->rescache[slot].body = pl_sim_blob_from_buf(&b);
		pl_buf_release(&b);
		s->rescache[slot].t = now;
		s->rescache[slot].gen = s->gen;
	}
	r->blob = pl_sim_blob_ref(s->rescache[slot].body);
}

struct pl_sim_blob *
pl_sim_blob_from_buf(struct pl_buf *b)
{
	struct pl_sim_blob *bl = pl_malloc(sizeof(*bl) + b->len + 1);

	bl->refs = 1;
	bl->len = b->len;
	bl->gz = NULL;
	memcpy(bl->data, b->data, b->len + 1);
	pl_buf_reset(b);
	return bl;
}

struct pl_sim_blob *
pl_sim_blob_from_data(json_t *data, const json_t *top)
{
	json_t *o = json_object();
	struct pl_sim_blob *bl;
	struct pl_buf b;

	json_object_set(o, "data", data ? data : json_null());
	if (top)
		json_object_update(o, (json_t *)top);
	pl_buf_init(&b, 0);
	pl_json_write(&b, o, false);
	bl = pl_sim_blob_from_buf(&b);
	pl_buf_release(&b);
	json_decref(o);
	return bl;
}

struct pl_sim_blob *
pl_sim_blob_ref(struct pl_sim_blob *bl)
{
	bl->refs++;
	return bl;
}

void
pl_sim_blob_unref(struct pl_sim_blob *bl)
{
	if (bl && --bl->refs == 0) {
		pl_sim_blob_unref(bl->gz);
		free(bl);
	}
}

static void
h_cluster_tasks(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	json_t *a = json_array();
	size_t n = 0;

	for (size_t i = s->ntasks; i-- > 0 && n < 2000; n++) {
		json_t *o = pl_sim_task_json(s->tasks[i]);

		if (!s->tasks[i]->running)
			json_object_set_new(o, "status", json_string(s->tasks[i]->exitstatus));
		else
			json_object_del(o, "status");
		json_array_append_new(a, o);
	}
	pl_sim_ok(r, a);
}

/* --- nodes --- */

static void
h_nodes(struct pl_sim_req *r)
{
	json_t *a = json_array();
	struct pl_sim_usage *u = pl_calloc(r->sim->nnodes, sizeof(*u));

	pl_sim_nodes_usage(r->sim, time(NULL), u);
	for (size_t i = 0; i < r->sim->nnodes; i++) {
		/* id and type too, which the schema does not list: PVE builds
		 * both answers with API2Tools::extract_node_stats */
		json_t *o = node_entry_u(r->sim, (int)i, &u[i]);

		node_stats_for(r->sim, r->user, (int)i, o);
		json_array_append_new(a, o);
	}
	free(u);
	pl_sim_ok(r, a);
}

static void
h_node_status(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	struct pl_sim_usage u;
	int n = pl_sim_req_node(r);
	bool v8 = !strcmp(s->schema->version, "8.4");
	const char *kver = v8 ? "6.8.12-9-pve" : "6.17.2-1-pve";
	char load[3][16];

	if (n < 0)
		return;
	pl_sim_node_usage(s, n, time(NULL), &u);
	for (int i = 0; i < 3; i++)
		snprintf(load[i], sizeof(load[i]), "%.2f", u.cpu * u.cpus * (1.0 - 0.1 * i));
	pl_sim_ok(
		r,
		json_pack("{s:f,s:f,s:I,s:[s,s,s],s:s,s:s,s:{s:i,s:i,s:i,s:s,s:s,s:s,s:s,s:s},"
			  "s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I},"
			  "s:{s:I},s:{s:s,s:i},s:{s:s,s:s,s:s,s:s},s:f,s:f}",
			  "cpu", u.cpu, "wait", 0.001, "uptime", (json_int_t)u.uptime, "loadavg",
			  load[0], load[1], load[2], "kversion",
			  v8 ? "Linux 6.8.12-9-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9" :
			       "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1",
			  "pveversion",
			  v8 ? "pve-manager/8.4.1/2a5fa54a8503f96d" : "pve-manager/9.1.1/42b8ab7c",
			  "cpuinfo", "cpus", u.cpus, "sockets", 1, "cores", u.cpus, "model",
			  "pvelab simulated CPU", "mhz", "3000.000", "hvm", "1", "flags",
			  "fpu vme de pse tsc msr pae mce cx8 apic sep", "user_hz", "100", "memory",
			  "total", (json_int_t)u.maxmem, "used", (json_int_t)u.mem, "free",
			  (json_int_t)(u.maxmem - u.mem), "available",
			  (json_int_t)(u.maxmem - u.mem), "swap", "total", (json_int_t)(8LL << 30),
			  "used", (json_int_t)0, "free", (json_int_t)(8LL << 30), "rootfs", "total",
			  (json_int_t)u.maxdisk, "used", (json_int_t)u.disk, "avail",
			  (json_int_t)(u.maxdisk - u.disk), "free",
			  (json_int_t)(u.maxdisk - u.disk), "ksm", "shared", (json_int_t)0,
			  "boot-info", "mode", "efi", "secureboot", 0, "current-kernel", "sysname",
			  "Linux", "release", kver, "version", "#1 SMP PREEMPT_DYNAMIC", "machine",
			  "x86_64", "idle", 0.0, "wait", 0.001));
}

static void
h_node_index(struct pl_sim_req *r)
{
	static const char *const kids[] = { "qemu",   "lxc",     "storage", "network", "tasks",
					    "status", "aplinfo", "vzdump",  "rrddata", "version" };
	json_t *a = json_array();

	if (pl_sim_req_node(r) < 0) {
		json_decref(a);
		return;
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(kids); i++)
		json_array_append_new(a, json_pack("{s:s}", "name", kids[i]));
	pl_sim_ok(r, a);
}

static void
h_node_version(struct pl_sim_req *r)
{
	if (pl_sim_req_node(r) < 0)
		return;
	h_version(r);
}

/* One timeframe of PVE's round-robin data (PVE::RRD::create_rrd_data):
 * seconds per point and points. PVE 9 keeps finer archives (pve-*-9.0 files);
 * 8.x answers from the pve2 ones. */
struct rrd_frame {
	const char *name;
	int step, count;
};

static const struct rrd_frame rrd_pve9[] = {
	{ "hour", 60, 60 },      { "day", 60, 1440 },     { "week", 1800, 336 },
	{ "month", 1800, 1440 }, { "year", 21600, 1440 }, { "decade", 604800, 570 },
};
static const struct rrd_frame rrd_pve8[] = {
	{ "hour", 60, 70 },     { "day", 1800, 70 },    { "week", 10800, 70 },
	{ "month", 43200, 70 }, { "year", 604800, 70 }, { "decade", 604800, 70 },
};

/* A rate that moves around its mean over the day (k: which counter). */
static double
rrd_rate(uint64_t total, int64_t uptime, int64_t t, int k)
{
	double mean = uptime > 0 ? (double)total / (double)uptime : 0;

	return mean * (0.6 + 0.4 * sin((double)t / (1700.0 + 300.0 * k) + k));
}

json_t *
pl_sim_rrd(struct pl_sim *s, const struct pl_sim_guest *g, int node, const char *timeframe)
{
	bool v9 = strcmp(s->schema->version, "8.4") != 0;
	const struct rrd_frame *tf = v9 ? rrd_pve9 : rrd_pve8, *f = &tf[0];
	int64_t now = time(NULL);
	json_t *a = json_array();

	for (size_t i = 0; i < PL_ARRAY_LEN(rrd_pve9); i++)
		if (timeframe && !strcmp(timeframe, tf[i].name))
			f = &tf[i];
	for (int i = f->count - 1; i >= 0; i--) {
		int64_t t = (now / f->step - i) * f->step;
		struct pl_sim_usage u;
		json_t *o;

		if (g)
			pl_sim_guest_usage(s, g, t, &u);
		else
			pl_sim_node_usage(s, node, t, &u);
		if (g) { /* pve-vm-9.0 / pve2.3-vm: maxcpu cpu maxmem mem maxdisk disk netin ... */
			o = json_pack("{s:I,s:f,s:i,s:I,s:I,s:I,s:I}", "time", (json_int_t)t, "cpu",
				      u.cpu, "maxcpu", u.cpus, "mem", (json_int_t)u.mem, "maxmem",
				      (json_int_t)u.maxmem, "disk", (json_int_t)u.disk, "maxdisk",
				      (json_int_t)u.maxdisk);
			if (u.uptime > 0) {
				json_object_set_new(o, "netin",
						    json_real(rrd_rate(u.netin, u.uptime, t, 0)));
				json_object_set_new(o, "netout",
						    json_real(rrd_rate(u.netout, u.uptime, t, 1)));
				json_object_set_new(
					o, "diskread",
					json_real(rrd_rate(u.diskread, u.uptime, t, 2)));
				json_object_set_new(
					o, "diskwrite",
					json_real(rrd_rate(u.diskwrite, u.uptime, t, 3)));
				if (v9) {
					json_object_set_new(
						o, "memhost",
						json_integer((json_int_t)(u.mem / 10 * 11)));
					json_object_set_new(o, "pressurecpusome",
							    json_real(u.cpu * 0.05));
					json_object_set_new(o, "pressurememorysome", json_real(0));
					json_object_set_new(o, "pressureiosome",
							    json_real(u.cpu * 0.02));
				}
			}
		} else { /* pve-node-9.0 / pve2-node: the node's own names */
			o = json_pack("{s:I,s:f,s:i,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I}", "time",
				      (json_int_t)t, "cpu", u.cpu, "maxcpu", u.cpus, "iowait",
				      u.cpu * 0.04, "loadavg", u.cpu * u.cpus, "memtotal",
				      (json_int_t)u.maxmem, "memused", (json_int_t)u.mem,
				      "swaptotal", (json_int_t)(8ULL << 30), "swapused",
				      (json_int_t)0, "roottotal", (json_int_t)u.maxdisk, "rootused",
				      (json_int_t)u.disk);
			json_object_set_new(o, "netin",
					    json_real(rrd_rate(u.netin, u.uptime, t, 0)));
			json_object_set_new(o, "netout",
					    json_real(rrd_rate(u.netout, u.uptime, t, 1)));
			if (v9) {
				json_object_set_new(o, "memavailable",
						    json_integer((json_int_t)(u.maxmem - u.mem)));
				json_object_set_new(o, "arcsize", json_integer(0));
				json_object_set_new(o, "pressurecpusome", json_real(u.cpu * 0.05));
				json_object_set_new(o, "pressureiosome", json_real(u.cpu * 0.02));
				json_object_set_new(o, "pressureiofull", json_real(u.cpu * 0.01));
				json_object_set_new(o, "pressurememorysome", json_real(0));
				json_object_set_new(o, "pressurememoryfull", json_real(0));
			}
		}
		json_array_append_new(a, o);
	}
	return a;
}

static void
h_node_rrddata(struct pl_sim_req *r)
{
	int n = pl_sim_req_node(r);

	if (n < 0)
		return;
	pl_sim_ok(r, pl_sim_rrd(r->sim, NULL, n, pl_sim_p(r, "timeframe")));
}

/* --- tasks --- */

static void
h_tasks(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	int n = pl_sim_req_node(r);
	long long start = pl_sim_pint(r, "start", 0), limit = pl_sim_pint(r, "limit", 50);
	long long vmid = pl_sim_pint(r, "vmid", 0);
	const char *typefilter = pl_sim_p(r, "typefilter");
	const char *userfilter = pl_sim_p(r, "userfilter");
	const char *source = pl_sim_p(r, "source");
	bool errors = pl_sim_pbool(r, "errors", false);
	json_t *a;
	long long total = 0;

	if (n < 0)
		return;
	a = json_array();
	for (size_t i = s->ntasks; i-- > 0;) {
		struct pl_sim_task *t = s->tasks[i];
		json_t *o;

		if (t->node != n)
			continue;
		if (vmid && t->vmid != (uint32_t)vmid && strtoll(t->id, NULL, 10) != vmid)
			continue;
		if (typefilter && strcmp(t->type, typefilter))
			continue;
		if (userfilter && !strstr(t->user, userfilter))
			continue;
		/* PVE::API2::Tasks node_tasks: the default source "archive" is the
		 * index of ended tasks, "active" the running ones, "all" both */
		if ((!source || !strcmp(source, "archive")) ?
			    t->running :
			    !strcmp(source, "active") && !t->running)
			continue;
		if (errors && (t->running || !strcmp(t->exitstatus, "OK")))
			continue;
		total++;
		if (total <= start || (long long)json_array_size(a) >= limit)
			continue;
		o = pl_sim_task_json(t);
		json_object_set_new(o, "status",
				    json_string(t->running ? "RUNNING" : t->exitstatus));
		json_object_del(o, "exitstatus");
		json_array_append_new(a, o);
	}
	pl_sim_ok(r, a);
	r->top = json_pack("{s:I}", "total", (json_int_t)total);
}

static struct pl_sim_task *
req_task(struct pl_sim_req *r)
{
	const char *upid = pl_sim_p(r, "upid");
	struct pl_sim_task *t;
	int n = pl_sim_req_node(r);

	if (n < 0)
		return NULL;
	if (!upid || !pl_str_startswith(upid, "UPID:")) {
		pl_sim_param_fail(r, "upid", "unable to parse worker upid '%s'", upid ? upid : "");
		return NULL;
	}
	if ((t = pl_sim_task_find(r->sim, upid)) == NULL)
		pl_sim_fail(r, 500, "no such task");
	return t;
}

static void
h_task_status(struct pl_sim_req *r)
{
	struct pl_sim_task *t = req_task(r);

	if (t)
		pl_sim_ok(r, pl_sim_task_json(t));
}

/* Lines [start, start+limit) of a task log as {n, t} (n counts from 1). */
static json_t *
log_lines(const json_t *log, long long start, long long limit)
{
	json_t *a = json_array();

	for (long long i = start < 0 ? 0 : start;
	     i < (long long)json_array_size(log) && (long long)json_array_size(a) < limit; i++)
		json_array_append_new(a, json_pack("{s:I,s:O}", "n", (json_int_t)i + 1, "t",
						   json_array_get(log, (size_t)i)));
	return a;
}

static void
h_task_log(struct pl_sim_req *r)
{
	struct pl_sim_task *t = req_task(r);

	if (!t)
		return;
	pl_sim_ok(r, log_lines(t->log, pl_sim_pint(r, "start", 0), pl_sim_pint(r, "limit", 50)));
	r->top = json_pack("{s:I}", "total", (json_int_t)json_array_size(t->log));
}

static void
h_task_index(struct pl_sim_req *r)
{
	if (req_task(r))
		pl_sim_ok(r, json_pack("[{s:s},{s:s}]", "name", "log", "name", "status"));
}

static void
h_task_stop(struct pl_sim_req *r)
{
	struct pl_sim_task *t = req_task(r);

	if (!t)
		return;
	pl_sim_task_abort(t, "interrupted by signal");
	pl_sim_ok(r, json_null());
}

/* --- access --- */

static void
h_domains(struct pl_sim_req *r)
{
	pl_sim_ok(r, json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s}]", "realm", "pam", "type", "pam",
			       "comment", "Linux PAM standard authentication", "realm", "pve",
			       "type", "pve", "comment", "Proxmox VE authentication server"));
}

static void
h_ticket_get(struct pl_sim_req *r)
{
	pl_sim_ok(r, json_null());
}

/* --- the table --- */

static const struct {
	enum pl_sim_meth meth;
	const char *path;
	pl_sim_handler fn;
} table[] = {
	{ PL_SIM_GET, "/version", h_version },
	{ PL_SIM_GET, "/cluster/status", h_cluster_status },
	{ PL_SIM_GET, "/cluster/resources", h_resources },
	{ PL_SIM_GET, "/cluster/nextid", h_nextid },
	{ PL_SIM_GET, "/cluster/tasks", h_cluster_tasks },
	{ PL_SIM_GET, "/nodes", h_nodes },
	{ PL_SIM_GET, "/nodes/{node}", h_node_index },
	{ PL_SIM_GET, "/nodes/{node}/status", h_node_status },
	{ PL_SIM_GET, "/nodes/{node}/version", h_node_version },
	{ PL_SIM_GET, "/nodes/{node}/rrddata", h_node_rrddata },
	{ PL_SIM_GET, "/nodes/{node}/tasks", h_tasks },
	{ PL_SIM_GET, "/nodes/{node}/tasks/{upid}", h_task_index },
	{ PL_SIM_DELETE, "/nodes/{node}/tasks/{upid}", h_task_stop },
	{ PL_SIM_GET, "/nodes/{node}/tasks/{upid}/status", h_task_status },
	{ PL_SIM_GET, "/nodes/{node}/tasks/{upid}/log", h_task_log },
	{ PL_SIM_GET, "/access/domains", h_domains },
	{ PL_SIM_GET, "/access/ticket", h_ticket_get },
};

static void
bind_one(struct pl_sim *s, enum pl_sim_meth meth, const char *path, pl_sim_handler fn, bool lxc,
	 int op)
{
	struct pl_sim_path *p = pl_sim_schema_find(s->schema, path);
	struct pl_sim_method *m = p ? p->methods[meth] : NULL;

	if (!m) /* not in this PVE version */
		return;
	m->handler = fn;
	m->lxc = lxc;
	m->op = op;
}

void
pl_sim_api_bind(struct pl_sim *s)
{
	const struct pl_sim_route_def *defs[] = {
		pl_sim_guest_routes,        pl_sim_power_routes,    pl_sim_snapshot_routes,
		pl_sim_clone_routes,        pl_sim_agent_routes,    pl_sim_storage_routes,
		pl_sim_pool_routes,         pl_sim_storecfg_routes, pl_sim_ha_routes,
		pl_sim_harules_routes,      pl_sim_backup_routes,   pl_sim_firewall_routes,
		pl_sim_fwsets_routes,       pl_sim_feature_routes,  pl_sim_access_routes,
		pl_sim_access_admin_routes, pl_sim_nodetime_routes, pl_sim_guestexec_routes,
		pl_sim_mapping_routes,
	};

	for (size_t i = 0; i < PL_ARRAY_LEN(table); i++)
		bind_one(s, table[i].meth, table[i].path, table[i].fn, false, 0);
	for (size_t d = 0; d < PL_ARRAY_LEN(defs); d++)
		for (const struct pl_sim_route_def *e = defs[d]; e->path; e++)
			bind_one(s, e->meth, e->path, e->fn, e->lxc, e->op);
}

void
pl_sim_api_call(struct pl_sim_req *r)
{
	const struct pl_sim_method *m = r->m;

	if (m->handler) {
		r->lxc = m->lxc;
		r->op = m->op;
		m->handler(r);
		return;
	}
	if (m->meth != PL_SIM_GET) {
		pl_sim_fail(r, 501, "Method '%s %s' not implemented", pl_sim_meth_name(m->meth),
			    r->path);
		return;
	}
	/* a path the schema has but the simulator does not model: an empty answer
	 * of the declared type */
	if (!strcmp(m->returns, "array"))
		pl_sim_ok(r, json_array());
	else if (!strcmp(m->returns, "object"))
		pl_sim_ok(r, json_object());
	else
		pl_sim_ok(r, json_null());
}
