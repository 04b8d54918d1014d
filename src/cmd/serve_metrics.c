/*
 * The metrics module of pvelab serve: GET /metrics (the cluster's series as
 * prometheus-pve-exporter names them, plus pvelab_* series an exporter cannot
 * compute) and GET /pve?target=… (the exporter's own path and query), both
 * answered from memory (what keeps it: serve_metrics_reads.c; the exporter's
 * series: serve_metrics_pve.c). Also the API calls' latency by path.
 */
#include "core/common.h"
#include "cmd/serve_metrics.h"
#include "cmd/connect.h"
#include "cmd/serve_api.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/version.h"
#include "pve/client.h"
#include "state/state.h"

#include <event2/event.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* An answer is at most this big, compressed or not (a 10,000-guest
 * exposition is ~20 MB of text). */
#define MAX_ANSWER ((size_t)256 << 20)

static const double bucket_le[PL_METRICS_BUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
						      0.5,   1,    2.5,   5,    10,  30 };
/* The same as le labels, floats as OpenMetrics wants them (and text accepts). */
static const char *const bucket_text[PL_METRICS_BUCKETS] = { "0.005", "0.01", "0.025", "0.05",
							     "0.1",   "0.25", "0.5",   "1.0",
							     "2.5",   "5.0",  "10.0",  "30.0" };

static double
now_s(void)
{
	return pl_metrics_now();
}

/* --- API calls by path template --- */

/* The segment after these names a thing, not a collection. */
static const char *const named_after[][2] = {
	{ "nodes", "{node}" },      { "qemu", "{vmid}" },     { "lxc", "{vmid}" },
	{ "storage", "{storage}" }, { "tasks", "{upid}" },    { "snapshot", "{snapname}" },
	{ "content", "{volume}" },  { "pools", "{poolid}" },  { "replication", "{id}" },
	{ "backup", "{id}" },       { "rules", "{pos}" },     { "groups", "{group}" },
	{ "ipset", "{name}" },      { "aliases", "{name}" },  { "users", "{userid}" },
	{ "token", "{tokenid}" },   { "resources", "{sid}" }, { "network", "{iface}" },
};

void
pl_metrics_path_template(const char *path, char *out, size_t size)
{
	const char *p = path, *prev = NULL;
	size_t prevlen = 0, o = 0;

	out[0] = '\0';
	while (*p && *p != '?' && o + 1 < size) {
		const char *seg, *put;
		size_t len, n;

		if (*p == '/')
			p++;
		seg = p;
		while (*p && *p != '/' && *p != '?')
			p++;
		len = (size_t)(p - seg);
		put = NULL;
		for (size_t i = 0; prev && i < PL_ARRAY_LEN(named_after); i++)
			if (strlen(named_after[i][0]) == prevlen &&
			    !memcmp(prev, named_after[i][0], prevlen))
				put = named_after[i][1];
		n = put ? strlen(put) : len;
		if (o + 1 + n >= size)
			break;
		out[o++] = '/';
		memcpy(out + o, put ? put : seg, n);
		o += n;
		out[o] = '\0';
		prev = seg;
		prevlen = len;
		if (len == 0)
			break;
	}
}

/* The API calls of the process: static, because the sync's worker threads
 * may still finish a call after the module is gone. */
static struct pl_metrics_api api_calls = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void
on_api_call(const char *method, const char *path, long status, int err, double seconds, void *arg)
{
	struct pl_metrics_api *a = arg;
	char tpl[96];
	size_t i;

	pl_metrics_path_template(path, tpl, sizeof(tpl));
	pthread_mutex_lock(&a->mu);
	for (i = 0; i < a->n; i++)
		if (!strcmp(a->calls[i].path, tpl) && !strcmp(a->calls[i].method, method))
			break;
	if (i == a->n) {
		if (a->n == PL_METRICS_PATHS) /* bounded: the rest counts as "other" */
			i = PL_METRICS_PATHS - 1, snprintf(tpl, sizeof(tpl), "other");
		else
			a->n++;
		snprintf(a->calls[i].method, sizeof(a->calls[i].method), "%s", method);
		snprintf(a->calls[i].path, sizeof(a->calls[i].path), "%s", tpl);
	}
	a->calls[i].count++;
	a->calls[i].sum += seconds;
	if (err || status >= 400 || status == 0)
		a->calls[i].errors++;
	for (size_t b = 0; b < PL_METRICS_BUCKETS; b++)
		if (seconds <= bucket_le[b])
			a->calls[i].buckets[b]++;
	pthread_mutex_unlock(&a->mu);
}

/* --- the answer --- */

static void
gauge1(struct pl_expo *e, const char *name, const char *help, double v)
{
	pl_expo_family(e, name, PL_EXPO_GAUGE, help);
	pl_expo_sample(e, "", NULL, 0, v);
}

static void
sample_kv(struct pl_expo *e, const char *k1, const char *v1, const char *k2, const char *v2,
	  double v)
{
	const char *kv[] = { k1, v1, k2, v2 };

	pl_expo_sample(e, "", kv, k2 ? 2 : 1, v);
}

/* The store's size (its file and WAL, or its PostgreSQL tables); 0 when it
 * cannot be read. */
static double
db_size(struct pl_state *s)
{
	long long n = 0;

	if (s && pl_state_size(s, &n, NULL) != 0)
		n = 0;
	return (double)n;
}

/* Resident memory from /proc/self/statm (pages). */
static double
rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long size = 0, res = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (double)res * (double)sysconf(_SC_PAGESIZE);
}

static void
write_refresh(struct pl_expo *e, const struct pl_serve_metrics *m, double now)
{
	const struct pl_serve_refresh *f = m->refresh;
	const char *kinds[] = { "status", "sync", "cluster_reads", "guest_reads" };
	double at[] = { f->status_ok_at, f->sync_ok_at, m->reads_at, m->slow_at };
	int fails[] = { f->status_failures, f->sync_failures, m->read_errors, m->slow_errors };

	pl_expo_family(e, "pvelab_refresh_age_seconds", PL_EXPO_GAUGE,
		       "Seconds since the in-memory picture was last read from the cluster, by "
		       "kind (status: the resource list; sync: the full sync; cluster_reads: "
		       "status, version, backups, subscriptions; guest_reads: snapshots, backup "
		       "archives, certificates)");
	for (size_t k = 0; k < 4; k++)
		if (at[k] > 0)
			sample_kv(e, "kind", kinds[k], NULL, NULL, now - at[k]);
	pl_expo_family(e, "pvelab_refresh_failures", PL_EXPO_GAUGE,
		       "Failures of the last read (status, sync: in a row; the others: calls of "
		       "the last round)");
	for (size_t k = 0; k < 4; k++)
		sample_kv(e, "kind", kinds[k], NULL, NULL, fails[k]);
	pl_expo_family(e, "pvelab_refresh_up", PL_EXPO_GAUGE,
		       "Whether the last read of this kind succeeded");
	sample_kv(e, "kind", "status", NULL, NULL, f->status_ok_at > 0 && !f->status_failures);
	sample_kv(e, "kind", "sync", NULL, NULL, f->sync_ok_at > 0 && !f->sync_failures);
	if (f->sync_finished > 0 && f->sync_started > 0 && f->sync_finished >= f->sync_started)
		gauge1(e, "pvelab_sync_duration_seconds", "Duration of the last full sync",
		       f->sync_finished - f->sync_started);
	pl_expo_family(e, "pvelab_sync_runs_total", PL_EXPO_COUNTER,
		       "Full syncs started since pvelab serve started");
	pl_expo_sample(e, "", NULL, 0, (double)f->sync_seq);
}

static void
write_api(struct pl_expo *e, struct pl_serve_metrics *m)
{
	struct pl_metrics_api *a = m->api;

	pthread_mutex_lock(&a->mu);
	pl_expo_family(e, "pvelab_api_request_duration_seconds", PL_EXPO_HISTOGRAM,
		       "Proxmox VE API calls made by pvelab, by method and path template");
	for (size_t i = 0; i < a->n; i++) {
		const char *kv[6] = { "method", a->calls[i].method, "path", a->calls[i].path, "le",
				      NULL };

		for (size_t b = 0; b < PL_METRICS_BUCKETS; b++) {
			kv[5] = bucket_text[b];
			pl_expo_sample(e, "_bucket", kv, 3, (double)a->calls[i].buckets[b]);
		}
		kv[5] = "+Inf";
		pl_expo_sample(e, "_bucket", kv, 3, (double)a->calls[i].count);
		pl_expo_sample(e, "_sum", kv, 2, a->calls[i].sum);
		pl_expo_sample(e, "_count", kv, 2, (double)a->calls[i].count);
	}
	pl_expo_family(e, "pvelab_api_request_errors_total", PL_EXPO_COUNTER,
		       "Proxmox VE API calls that failed (no answer, or an HTTP error)");
	for (size_t i = 0; i < a->n; i++)
		sample_kv(e, "method", a->calls[i].method, "path", a->calls[i].path,
			  (double)a->calls[i].errors);
	pthread_mutex_unlock(&a->mu);
}

/* Ages of the newest and oldest of a list of unix times. */
static bool
newest_oldest(const json_t *times, double *newest, double *oldest)
{
	const json_t *t;
	size_t i;

	*newest = -INFINITY;
	*oldest = INFINITY;
	json_array_foreach(times, i, t) {
		double v = (double)json_integer_value(t);

		*newest = v > *newest ? v : *newest;
		*oldest = v < *oldest ? v : *oldest;
	}
	return json_array_size(times) > 0;
}

static void
write_guests(struct pl_expo *e, const struct pl_serve_metrics *m, double now)
{
	const json_t *x;
	size_t i;

	if (m->snapshots) {
		bool none = json_object_size(m->snapshots) == 0;
		const char *id;
		long long vmid;

		pl_expo_family(e, "pvelab_guest_snapshots", PL_EXPO_GAUGE,
			       "Snapshots a guest has (read after each sync)");
		for (i = 0; pl_metrics_index_guest(m->index, &i, &id, &vmid);) {
			char key[32];

			if (!none)
				snprintf(key, sizeof(key), "%lld", vmid);
			sample_kv(
				e, "id", id, NULL, NULL,
				none ? 0 :
				       (double)json_array_size(json_object_get(m->snapshots, key)));
		}
		for (int which = 0; which < 2; which++) {
			const char *k;
			json_t *times;

			pl_expo_family(e,
				       which ? "pvelab_guest_snapshot_oldest_age_seconds" :
					       "pvelab_guest_snapshot_newest_age_seconds",
				       PL_EXPO_GAUGE,
				       which ? "Age of a guest's oldest snapshot" :
					       "Age of a guest's newest snapshot");
			json_object_foreach(m->snapshots, k, times) {
				const json_t *lg = json_object_get(m->refresh->live_by_id, k);
				double newest, oldest;

				if (lg && newest_oldest(times, &newest, &oldest))
					sample_kv(e, "id", pl_json_str_or(lg, "id", ""), NULL, NULL,
						  now - (which ? oldest : newest));
			}
		}
	}
	if (m->backups) {
		const char *k;
		json_t *times;

		pl_expo_family(e, "pvelab_guest_backups", PL_EXPO_GAUGE,
			       "Backup archives of a guest on the cluster's storages");
		json_object_foreach(m->backups, k, times) {
			const json_t *lg = json_object_get(m->refresh->live_by_id, k);

			if (lg)
				sample_kv(e, "id", pl_json_str_or(lg, "id", ""), NULL, NULL,
					  (double)json_array_size(times));
		}
		pl_expo_family(e, "pvelab_guest_backup_newest_age_seconds", PL_EXPO_GAUGE,
			       "Age of a guest's newest backup archive (from storage content; a "
			       "guest with none has no sample)");
		json_object_foreach(m->backups, k, times) {
			const json_t *lg = json_object_get(m->refresh->live_by_id, k);
			double newest, oldest;

			if (lg && newest_oldest(times, &newest, &oldest))
				sample_kv(e, "id", pl_json_str_or(lg, "id", ""), NULL, NULL,
					  now - newest);
		}
	}
	if (m->certs) {
		const char *node;
		json_t *list;

		pl_expo_family(e, "pvelab_node_certificate_expiry_timestamp_seconds", PL_EXPO_GAUGE,
			       "When a node's certificate expires (notafter of "
			       "/nodes/{node}/certificates/info)");
		json_object_foreach(m->certs, node, list) {
			char id[96];

			snprintf(id, sizeof(id), "node/%s", node);
			json_array_foreach(list, i, x)
				if (json_is_integer(json_object_get(x, "notafter")))
					sample_kv(e, "id", id, "filename",
						  pl_json_str_or(x, "filename", ""),
						  (double)pl_json_int(x, "notafter", 0));
		}
	}
	if (m->drift || m->plan_error)
		gauge1(e, "pvelab_plan_up",
		       "Whether the last plan could be made (else the drift shown is the plan's "
		       "before; the log says why)",
		       m->plan_error == NULL);
	if (m->drift) {
		pl_expo_family(e, "pvelab_guest_drift", PL_EXPO_GAUGE,
			       "A change the last plan holds for a declared guest (1 per change; "
			       "class: what applying it does)");
		json_array_foreach(m->drift, i, x) {
			const char *kv[] = { "id",     pl_json_str_or(x, "id", ""),
					     "guest",  pl_json_str_or(x, "guest", ""),
					     "action", pl_json_str_or(x, "action", ""),
					     "class",  pl_json_str_or(x, "class", "") };

			pl_expo_sample(e, "", kv, 4, 1);
		}
		gauge1(e, "pvelab_plan_changes", "Changes the last plan holds",
		       (double)json_array_size(m->drift));
		gauge1(e, "pvelab_plan_age_seconds", "Seconds since the last plan",
		       now - m->plan_at);
		pl_expo_family(e, "pvelab_guest_pending_reboot_keys", PL_EXPO_GAUGE,
			       "Config keys an earlier apply left pending until the guest reboots");
		json_array_foreach(m->pending, i, x) {
			const json_t *lg;
			char key[32];

			snprintf(key, sizeof(key), "%lld", pl_json_int(x, "vmid", 0));
			lg = json_object_get(m->refresh->live_by_id, key);
			sample_kv(e, "id", lg ? pl_json_str_or(lg, "id", "") : key, "guest",
				  pl_json_str_or(x, "guest", ""),
				  (double)pl_json_int(x, "keys", 0));
		}
	}
}

static void
write_pvelab(struct pl_expo *e, struct pl_serve_metrics *m)
{
	struct rusage ru;
	json_t *v = pl_version_info(), *runs = NULL;
	double now = now_s();
	char *err = NULL;

	pl_expo_family(e, "pvelab_build_info", PL_EXPO_GAUGE, "pvelab's version");
	sample_kv(e, "version", pl_json_str_or(v, "version", ""), NULL, NULL, 1);
	json_decref(v);
	write_refresh(e, m, now);
	write_api(e, m);
	write_guests(e, m, now);
	if (pl_state_runs(m->s->state, "apply", 1, NULL, NULL, &runs, &err) == 0 &&
	    json_array_size(runs)) {
		const json_t *r = json_array_get(runs, 0);
		const json_t *at = json_object_get(r, "finished");

		if (!json_is_number(at))
			at = json_object_get(r, "started");
		gauge1(e, "pvelab_last_apply_timestamp_seconds",
		       "When the last apply finished (or started, while it runs)",
		       json_number_value(at));
		pl_expo_family(e, "pvelab_last_apply_success", PL_EXPO_GAUGE,
			       "Whether the last apply succeeded (status: ok, failed, interrupted, "
			       "running)");
		sample_kv(e, "status", pl_json_str_or(r, "status", ""), NULL, NULL,
			  !strcmp(pl_json_str_or(r, "status", ""), "ok"));
	}
	json_decref(runs);
	free(err);
	gauge1(e, "pvelab_state_db_bytes",
	       "Size of the state store (SQLite file and its WAL, or PostgreSQL tables)",
	       db_size(m->s->state));
	gauge1(e, "pvelab_process_resident_memory_bytes", "Resident memory of pvelab serve",
	       rss_bytes());
	getrusage(RUSAGE_SELF, &ru);
	pl_expo_family(e, "pvelab_process_cpu_seconds_total", PL_EXPO_COUNTER,
		       "CPU time pvelab serve used (user and system)");
	pl_expo_sample(e, "", NULL, 0,
		       (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	if (m->scrapes > 1)
		gauge1(e, "pvelab_metrics_render_seconds",
		       "How long the previous metrics answer took to write, compress and send "
		       "(all but its last part, which is sent as its client reads)",
		       m->render_s);
	pl_expo_family(e, "pvelab_scrapes_total", PL_EXPO_COUNTER, "Metrics answers served");
	pl_expo_sample(e, "", NULL, 0, (double)m->scrapes);
	pl_expo_family(e, "pvelab_metrics_kept_families_made_total", PL_EXPO_COUNTER,
		       "Families of gzip answers compressed and kept for the scrapes after, by "
		       "when (scrape: while a scrape waited; ahead: as soon as the picture "
		       "changed)");
	sample_kv(e, "when", "scrape", NULL, NULL, (double)m->segs_made[0]);
	sample_kv(e, "when", "ahead", NULL, NULL, (double)m->segs_made[1]);
	if (m->more)
		m->more(e, m->more_arg);
}

/* The node the exporter's node collectors would read for target: the node
 * of that name or address, else the one pvelab's client talks to. */
static const char *
target_node(const struct pl_serve_metrics *m, const char *target)
{
	const json_t *x, *local = NULL;
	char host[256];
	size_t i;

	snprintf(host, sizeof(host), "%s", target ? target : "");
	if (host[0] == '[') { /* [v6]:port */
		char *end = strchr(host, ']');

		memmove(host, host + 1, strlen(host));
		if (end)
			*(end - 1) = '\0';
	} else if (strchr(host, ':') == strrchr(host, ':') && strchr(host, ':')) {
		*strchr(host, ':') = '\0';
	}
	json_array_foreach(m->status, i, x) {
		if (strcmp(pl_json_str_or(x, "type", ""), "node"))
			continue;
		if (!strcmp(pl_json_str_or(x, "name", ""), host) ||
		    !strcmp(pl_json_str_or(x, "ip", ""), host))
			return pl_json_str(x, "name");
		if (pl_json_int(x, "local", 0) == 1)
			local = x;
	}
	return local ? pl_json_str(local, "name") : "";
}

/* "0", "false", "" turn a collector group off, as the exporter reads them. */
static bool
flag(const char *v)
{
	return v == NULL || !(strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || *v == '\0');
}

static bool
authorised(struct pl_serve_req *req, const struct pl_serve_metrics *m)
{
	char who[128];

	if (m->auth != PL_METRICS_AUTH_TLS)
		return true; /* none, or the core checked the bearer token */
	if (pl_serve_peer_cert(req, who, sizeof(who)))
		return true;
	pl_serve_error(req, 401, "unauthorized", NULL,
		       "metrics need a TLS client certificate issued by serve.metrics.client_ca");
	return false;
}

/* --- an answer, sent in parts as its client reads --- */

/* A part is written once the connection has handed the one before to the
 * socket (the client is reading), so that at most a part (PART_BYTES, plus
 * one family or ~1 MB of one) is in memory however big the answer: ~19 MB
 * of text at 10,000 guests, ~1.5 MB gzipped. */
#define PART_BYTES ((size_t)512 << 10)

struct pl_metrics_answer {
	struct pl_serve_metrics *m;     /* NULL once the module is gone */
	struct pl_serve_req *req;       /* NULL once the client is gone or the answer ended */
	struct pl_metrics_answer *next; /* the module's answers in flight */
	int refs;                       /* the request's, and the part lent to the connection */
	bool exporter, wrote_tail;
	bool ahead;                  /* made ahead: no client, only its kept segments count */
	unsigned long long index_no; /* the index it shows (m->indexes then) */
	struct pl_expo e;
	struct pl_metrics_pve_in in; /* the picture it began with (references held) */
	struct pl_metrics_pve_opts o;
	struct pl_metrics_cursor at;
	char only[128];
	char key[192]; /* of its kept segments (gzip) */
	double t0;
};

static void
answer_unref(struct pl_metrics_answer *a)
{
	struct pl_metrics_answer **pp;

	if (--a->refs > 0)
		return;
	for (pp = a->m ? &a->m->answers : NULL; pp && *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	pl_expo_release(&a->e);
	json_decref((json_t *)a->in.status);
	json_decref((json_t *)a->in.resources);
	json_decref((json_t *)a->in.version);
	json_decref((json_t *)a->in.not_backed_up);
	json_decref((json_t *)a->in.qdevice);
	json_decref((json_t *)a->in.nodes);
	json_decref((json_t *)a->in.onboot);
	pl_metrics_index_free((struct pl_metrics_index *)a->in.index);
	free(a);
}

/* The kept segments of a gzip answer's query, found again before each part
 * (another query's answer may have taken the slot meanwhile: its families
 * are then written, not spliced; one made ahead then stops). */
static struct pl_expo_seg *
answer_segs(struct pl_metrics_answer *a)
{
	struct pl_serve_metrics *m = a->m;
	size_t slot = 0, i;

	if (!a->e.gzip || m == NULL)
		return NULL;
	for (i = 0; i < PL_ARRAY_LEN(m->cache); i++) {
		if (m->cache[i].used > 0 && !strcmp(m->cache[i].key, a->key))
			break;
		if (m->cache[i].used < m->cache[slot].used)
			slot = i; /* the least recently used goes */
	}
	if (i == PL_ARRAY_LEN(m->cache)) {
		if (a->ahead)
			return NULL;
		i = slot;
		for (size_t k = 0; k < PL_METRICS_SEGS; k++)
			pl_expo_seg_release(&m->cache[i].segs[k]);
		snprintf(m->cache[i].key, sizeof(m->cache[i].key), "%s", a->key);
		m->cache[i].fmt = (int)a->e.fmt;
		m->cache[i].o = a->o;
		snprintf(m->cache[i].only, sizeof(m->cache[i].only), "%s", a->only);
		if (a->o.only)
			m->cache[i].o.only = m->cache[i].only;
	}
	if (!a->ahead) {
		m->cache[i].used = now_s();
		m->cache[i].asked = true;
	}
	m->cache[i].made_index = a->index_no;
	m->cache[i].made_gen = a->in.gen;
	return m->cache[i].segs;
}

/* Write the answer's next part: parts of the pve_* series until PART_BYTES
 * are pending, then pvelab's own series and the end (wrote_tail). Returns 0
 * or the first error. */
static int
answer_write(struct pl_metrics_answer *a)
{
	size_t len = 0;

	while (!a->wrote_tail && (pl_expo_pending(&a->e, &len), len < PART_BYTES)) {
		a->in.segs = answer_segs(a);
		if (pl_metrics_pve_next(&a->e, &a->in, &a->o, &a->at))
			continue;
		if (a->exporter) {
			if (a->m && a->m->refresh->status_ok_at > 0)
				gauge1(&a->e, "pvelab_refresh_age_seconds",
				       "Seconds since the resource list these series come from "
				       "was read",
				       now_s() - a->m->refresh->status_ok_at);
		} else if (a->m) {
			a->m->segs_made[0] += a->e.segs_made;
			write_pvelab(&a->e, a->m);
		}
		a->wrote_tail = true;
		if (a->m)
			a->m->render_s = now_s() - a->t0;
		return pl_expo_end(&a->e);
	}
	return a->e.err;
}

static void answer_next(void *arg);

static void
part_released(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	answer_unref(arg);
}

/* Hand the pending bytes to the connection (lent: the buffer is written
 * again only once the client took them, when answer_next runs). */
static void
answer_send(struct pl_metrics_answer *a)
{
	size_t len;
	const char *data = pl_expo_pending(&a->e, &len);

	if (len == 0) {
		answer_next(a);
		return;
	}
	a->refs++;
	pl_serve_stream_write(a->req, data, len, part_released, answer_next, a);
}

/* The client took the last part: the next, or the end. */
static void
answer_next(void *arg)
{
	struct pl_metrics_answer *a = arg;
	int r = 0;

	if (a->req == NULL)
		return;
	if (!a->wrote_tail) {
		pl_expo_sent(&a->e);
		if (a->m == NULL || (r = answer_write(a)) != 0) {
			pl_log_warn("a metrics answer was cut: %s",
				    r ? pl_strerror(r) : "the server is stopping");
			pl_serve_stream_end(a->req, false);
			a->req = NULL;
			answer_unref(a);
			return;
		}
		answer_send(a);
		return;
	}
	pl_serve_stream_end(a->req, true);
	a->req = NULL;
	answer_unref(a);
}

static void
answer_gone(void *arg)
{
	struct pl_metrics_answer *a = arg;

	a->req = NULL;
	answer_unref(a);
}

/* The list is read once per refresh (the index holds it: a new list is
 * never at the old one's address). */
static void
index_update(struct pl_serve_metrics *m)
{
	if (m->index && pl_metrics_index_of(m->index, m->refresh->live))
		return;
	pl_metrics_index_free(m->index);
	m->index = pl_metrics_index_new(m->refresh->live);
	m->indexes++;
}

/* An answer of the picture as it is now, for the query o (o->only copied). */
static struct pl_metrics_answer *
answer_new(struct pl_serve_metrics *m, enum pl_expo_fmt fmt, bool gz,
	   const struct pl_metrics_pve_opts *o)
{
	struct pl_metrics_answer *a = pl_calloc(1, sizeof(*a));

	index_update(m);
	a->m = m;
	a->refs = 1;
	a->t0 = now_s();
	a->o = *o;
	if (o->only) {
		snprintf(a->only, sizeof(a->only), "%s", o->only);
		a->o.only = a->only;
	}
	a->index_no = m->indexes;
	a->in = (struct pl_metrics_pve_in){
		.status = json_incref(m->status),
		.resources = json_incref(m->refresh->live),
		.version = json_incref(m->version),
		.not_backed_up = json_incref(m->not_backed_up),
		.qdevice = json_incref(m->qdevice),
		.nodes = json_incref(m->nodes),
		.onboot = json_incref(m->onboot),
		.index = pl_metrics_index_ref(m->index),
		.gen = m->gen,
	};
	pl_expo_init(&a->e, fmt, gz, MAX_ANSWER);
	return a;
}

static void
scrape(struct pl_serve_req *req, struct pl_serve_metrics *m, bool exporter)
{
	enum pl_expo_fmt fmt = pl_expo_negotiate(pl_serve_header(req, "Accept"));
	bool gz = pl_expo_wants_gzip(pl_serve_header(req, "Accept-Encoding"));
	struct pl_metrics_pve_opts o = { true, true, NULL, m->deprecated, m->config };
	struct pl_metrics_answer *a;
	int r;

	if (!authorised(req, m))
		return;
	if (exporter) {
		o.cluster = flag(pl_serve_query(req, "cluster"));
		o.node = flag(pl_serve_query(req, "node"));
		o.only = target_node(m, pl_serve_query(req, "target"));
	}
	a = answer_new(m, fmt, gz, &o);
	a->exporter = exporter;
	snprintf(a->key, sizeof(a->key), "%d|%d|%d|%d|%d|%s", fmt, o.cluster, o.node, o.deprecated,
		 o.config, exporter ? a->only : "*");
	a->next = m->answers;
	m->answers = a;
	m->scrapes++;
	if ((r = answer_write(a)) != 0) {
		pl_serve_error(req, 500, "internal", NULL, "cannot write the metrics: %s",
			       pl_strerror(r));
		answer_unref(a);
		return;
	}
	if (gz)
		pl_serve_add_header(req, "Content-Encoding", "gzip");
	pl_serve_add_header(req, "Vary", "Accept, Accept-Encoding");
	a->req = req;
	pl_serve_stream_start(req, 200, pl_expo_content_type(fmt), answer_gone, a);
	answer_send(a);
}

/* --- kept families made ahead --- */

/* The next turn of the loop, after what the sockets have to say (a
 * timer: an event made active runs again before they are polled). */
static void
next_turn(struct event *ev)
{
	const struct timeval now = { 0, 0 };

	evtimer_add(ev, &now);
}

/* One family of the answer being made ahead per turn of the loop; what it
 * writes goes nowhere, its kept segments are what count. */
static void
warm_step(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_metrics *m = arg;
	struct pl_metrics_answer *a = m->warm;

	(void)fd;
	(void)what;
	pl_expo_sent(&a->e);
	a->in.segs = answer_segs(a);
	if (a->in.segs && a->e.err == 0 && pl_metrics_pve_next(&a->e, &a->in, &a->o, &a->at)) {
		next_turn(m->warm_ev);
		return;
	}
	m->segs_made[1] += a->e.segs_made;
	m->warm = NULL;
	answer_unref(a);
}

/* Every tick: when the picture changed, make the kept families of each
 * query scraped lately, so that the next scrape finds them made. A new
 * resource list (all of its families) only for a query a scrape asked for
 * since its last was made ahead: one scraped less often than the list
 * changes costs one at most per scrape. Other answers of the cluster reads
 * (two small parts), once their round is over, for any asked in the last
 * KEEP_WARM seconds. */
#define KEEP_WARM 300

static void
warm_check(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_metrics *m = arg;
	double now = now_s();

	(void)fd;
	(void)what;
	if (m->warm || m->refresh->live == NULL)
		return;
	for (size_t i = 0; i < PL_ARRAY_LEN(m->cache); i++)
		if (m->cache[i].used > 0 &&
		    (m->cache[i].asked || now - m->cache[i].used <= KEEP_WARM)) {
			index_update(m); /* not for a server nobody scrapes */
			break;
		}
	for (size_t i = 0; i < PL_ARRAY_LEN(m->cache); i++) {
		bool new_list = m->cache[i].made_index != m->indexes;
		struct pl_metrics_answer *a;

		if (m->cache[i].used == 0 ||
		    (!new_list && (m->cache[i].made_gen == m->gen || m->busy)) ||
		    (new_list ? !m->cache[i].asked : now - m->cache[i].used > KEEP_WARM))
			continue;
		if (new_list)
			m->cache[i].asked = false;
		a = answer_new(m, (enum pl_expo_fmt)m->cache[i].fmt, true, &m->cache[i].o);
		a->ahead = true;
		snprintf(a->key, sizeof(a->key), "%s", m->cache[i].key);
		m->warm = a;
		next_turn(m->warm_ev);
		return;
	}
}

static void
get_metrics(struct pl_serve_req *req, void *arg)
{
	scrape(req, arg, false);
}

static void
get_pve(struct pl_serve_req *req, void *arg)
{
	scrape(req, arg, true);
}

static const struct pl_serve_param pve_params[] = {
	{ "target", "the node whose node collectors answer (its name or address; default: the "
		    "one pvelab talks to)" },
	{ "cluster", "cluster collectors: 1 (default) or 0" },
	{ "node", "node collectors: 1 (default) or 0" },
	{ "module", "accepted and ignored (pvelab serves the one cluster it is configured for)" },
	{ NULL, NULL },
};

static const char metrics_schema[] =
	"{\"type\":\"string\",\"contentMediaType\":\"text/plain; version=0.0.4\","
	"\"description\":\"Prometheus text exposition 0.0.4, or OpenMetrics 1.0.0 when Accept "
	"prefers it (application/openmetrics-text; version=1.0.0); gzip when asked\"}";

int
pl_serve_metrics_init(struct pl_serve_metrics *m, struct pl_session *s,
		      struct pl_serve_refresh *refresh, char **errmsg)
{
	const json_t *c = s->cfg ? pl_config_get(s->cfg, "/serve/metrics") : NULL;
	const char *auth = pl_json_str_or(c, "auth", "bearer");
	int role;

	memset(m, 0, sizeof(*m));
	m->s = s;
	m->refresh = refresh;
	m->deprecated = !json_is_false(json_object_get(c, "deprecated_gauges"));
	m->config = !json_is_false(json_object_get(c, "config_collector"));
	m->api = &api_calls;
	if (!strcmp(auth, "none"))
		m->auth = PL_METRICS_AUTH_NONE;
	else if (!strcmp(auth, "bearer"))
		m->auth = PL_METRICS_AUTH_BEARER;
	else if (!strcmp(auth, "tls"))
		m->auth = PL_METRICS_AUTH_TLS;
	else {
		pl_seterr(errmsg, PL_EINVAL,
			  "serve.metrics.auth '%.40s' is not one of none, bearer, tls", auth);
		return PL_EINVAL;
	}
	if (m->auth == PL_METRICS_AUTH_TLS && !pl_json_str(c, "client_ca")) {
		pl_seterr(errmsg, PL_EINVAL,
			  "serve.metrics.auth 'tls' needs serve.metrics.client_ca (the CA that "
			  "issues the scrapers' certificates)");
		return PL_EINVAL;
	}
	role = m->auth == PL_METRICS_AUTH_BEARER ? PL_ROLE_VIEWER : PL_ROLE_PUBLIC;
	m->routes[0] = (struct pl_serve_route){
		"GET",
		"/metrics",
		role,
		200,
		"the cluster's metrics (prometheus-pve-exporter's series and pvelab_*)",
		metrics_schema,
		NULL,
		NULL,
		get_metrics,
		0,
	};
	m->routes[1] = (struct pl_serve_route){
		"GET",
		"/pve",
		role,
		200,
		"prometheus-pve-exporter's own path and query",
		metrics_schema,
		NULL,
		pve_params,
		get_pve,
		0,
	};
	m->module = (struct pl_serve_module){ "metrics", m->routes, m };
	if (s->pve)
		pl_pve_set_observer(s->pve, on_api_call, m->api);
	return 0;
}

void
pl_serve_metrics_start(struct pl_serve_metrics *m)
{
	const struct timeval tick = { 0, 100 * 1000 };

	pl_metrics_reads_start(m);
	m->warm_ev = evtimer_new(m->s->base, warm_step, m);
	m->warm_tick = event_new(m->s->base, -1, EV_PERSIST, warm_check, m);
	event_add(m->warm_tick, &tick);
}

void
pl_serve_metrics_release(struct pl_serve_metrics *m)
{
	if (m->s == NULL)
		return;
	if (m->s->pve)
		pl_pve_set_observer(m->s->pve, NULL, NULL);
	pl_metrics_reads_stop(m);
	if (m->warm_tick)
		event_free(m->warm_tick);
	if (m->warm_ev)
		event_free(m->warm_ev);
	if (m->warm)
		answer_unref(m->warm);
	pl_metrics_index_free(m->index);
	for (struct pl_metrics_answer *a = m->answers; a; a = a->next)
		a->m = NULL; /* each ends at its next part */
	m->answers = NULL;
	for (size_t i = 0; i < PL_ARRAY_LEN(m->cache); i++)
		for (size_t k = 0; k < PL_METRICS_SEGS; k++)
			pl_expo_seg_release(&m->cache[i].segs[k]);
	json_decref(m->status);
	json_decref(m->version);
	json_decref(m->not_backed_up);
	json_decref(m->qdevice);
	json_decref(m->nodes);
	json_decref(m->next_nodes);
	json_decref(m->onboot);
	json_decref(m->snapshots);
	json_decref(m->backups);
	json_decref(m->certs);
	json_decref(m->next_snapshots);
	json_decref(m->next_backups);
	json_decref(m->next_certs);
	json_decref(m->drift);
	json_decref(m->pending);
	free(m->plan_error);
}
