/*
 * What the metrics of pvelab serve read from the cluster besides the
 * refresh's resource list, on the server's loop: the cluster-wide answers
 * prometheus-pve-exporter reads on every scrape (status, version,
 * not-backed-up, qdevice, each online node's subscription and replication),
 * once per status interval; after each full sync, onboot from its configs,
 * snapshots (only the guests whose config names a parent), backup archives,
 * node certificates and the plan. A read that fails keeps its last answer.
 */
#include "core/common.h"
#include "cmd/serve_metrics.h"
#include "cmd/connect.h"
#include "cmd/planning.h"
#include "cmd/serve_api.h"
#include "serve/serve.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/snapshot.h"
#include "plan/plan.h"
#include "pve/client.h"

#include <event2/event.h>
#include <time.h>

double
pl_metrics_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double
now_s(void)
{
	return pl_metrics_now();
}

/* --- the cluster-wide reads, every status interval --- */

struct read {
	struct read *prev, *next; /* in m->inflight */
	struct pl_serve_metrics *m;
	int what; /* READ_* */
	char node[64];
	long long vmid;
	char type[8];
};

enum {
	READ_STATUS,
	READ_VERSION,
	READ_NOT_BACKED_UP,
	READ_QDEVICE,
	READ_SUBSCRIPTION,
	READ_REPLICATION,
	READ_SNAPSHOTS,
	READ_BACKUPS,
	READ_CERTS,
};

static void ask(struct pl_serve_metrics *m, int what, const char *node, const char *path);

/* Take a read off the list of those in flight. */
static void
unlink_read(struct read *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		q->m->inflight = q->next;
	if (q->next)
		q->next->prev = q->prev;
}
static void slow_done(struct pl_serve_metrics *m);

static void
swap(json_t **dst, json_t *src)
{
	json_decref(*dst);
	*dst = src;
}

/* swap() for an answer the small families are written from, counted in
 * m->gen: their kept parts are then made again (pl_metrics_pve_in.gen). */
static void
swap_picture(struct pl_serve_metrics *m, json_t **dst, json_t *src)
{
	swap(dst, src);
	m->gen++;
}

static void
reads_done(struct pl_serve_metrics *m)
{
	/* without the node list, no node was asked: the last answers stay */
	if (m->status_failed)
		json_decref(m->next_nodes);
	else
		swap_picture(m, &m->nodes, m->next_nodes);
	m->next_nodes = NULL;
	m->reads_at = now_s();
}

static json_t *
node_slot(json_t *nodes, const char *node)
{
	json_t *n = json_object_get(nodes, node);

	if (n == NULL) {
		n = json_object();
		json_object_set_new(nodes, node, n);
	}
	return n;
}

/* A node's guest's snapshots: the times of all but "current". */
static json_t *
snaptimes(const json_t *list)
{
	json_t *t = json_array();
	const json_t *s;
	size_t i;

	json_array_foreach(list, i, s)
		if (strcmp(pl_json_str_or(s, "name", ""), "current") &&
		    json_is_integer(json_object_get(s, "snaptime")))
			json_array_append_new(t, json_integer(pl_json_int(s, "snaptime", 0)));
	return t;
}

static void
on_read(const struct pl_pve_result *res, void *arg)
{
	struct read *q = arg;
	struct pl_serve_metrics *m = q->m;
	bool slow = q->what >= READ_SNAPSHOTS;
	json_t *d = res->err ? NULL : res->data;
	const json_t *x;
	size_t i;

	if (res->err && q->what != READ_QDEVICE) {
		char key[32];

		if (slow)
			m->slow_errors++;
		else
			m->read_errors++;
		pl_log_debug("metrics: %s", res->errmsg ? res->errmsg : pl_strerror(res->err));
		/* a read that failed keeps its last answer */
		snprintf(key, sizeof(key), "%lld", q->vmid);
		if (q->what == READ_STATUS)
			m->status_failed = true;
		else if (q->what == READ_SUBSCRIPTION || q->what == READ_REPLICATION)
			d = json_object_get(json_object_get(m->nodes, q->node),
					    q->what == READ_SUBSCRIPTION ? "subscription" :
									   "replication");
		else if (q->what == READ_SNAPSHOTS)
			d = json_object_get(m->snapshots, key);
		else if (q->what == READ_CERTS)
			d = json_object_get(m->certs, q->node);
		else if (q->what == READ_BACKUPS)
			m->backups_failed = true;
	}
	switch (q->what) {
	case READ_STATUS:
		if (json_is_array(d)) {
			swap_picture(m, &m->status, json_incref(d));
			/* each online node's subscription and replication jobs */
			json_array_foreach(d, i, x) {
				char *path;
				const char *node = pl_json_str(x, "name");

				if (strcmp(pl_json_str_or(x, "type", ""), "node") ||
				    pl_json_int(x, "online", 0) != 1 || node == NULL)
					continue;
				path = pl_asprintf("/nodes/%s/subscription", node);
				ask(m, READ_SUBSCRIPTION, node, path);
				free(path);
				path = pl_asprintf("/nodes/%s/replication", node);
				ask(m, READ_REPLICATION, node, path);
				free(path);
			}
		}
		break;
	case READ_VERSION:
		if (json_is_object(d))
			swap_picture(m, &m->version, json_incref(d));
		break;
	case READ_NOT_BACKED_UP:
		if (json_is_array(d))
			swap_picture(m, &m->not_backed_up, json_incref(d));
		break;
	case READ_QDEVICE:
		/* a cluster without one answers an error: no series, as the exporter */
		swap_picture(m, &m->qdevice, json_is_object(d) ? json_incref(d) : NULL);
		break;
	case READ_SUBSCRIPTION:
		if (json_is_object(d))
			json_object_set(node_slot(m->next_nodes, q->node), "subscription", d);
		break;
	case READ_REPLICATION:
		if (json_is_array(d))
			json_object_set(node_slot(m->next_nodes, q->node), "replication", d);
		break;
	case READ_SNAPSHOTS:
		if (json_is_array(d)) {
			char key[32];

			snprintf(key, sizeof(key), "%lld", q->vmid);
			/* an answer, or the times kept from the last one */
			json_object_set_new(m->next_snapshots, key,
					    res->err ? json_incref(d) : snaptimes(d));
		}
		break;
	case READ_BACKUPS:
		json_array_foreach(d, i, x) {
			char key[32];
			json_t *list;

			if (!json_is_integer(json_object_get(x, "vmid")))
				continue;
			snprintf(key, sizeof(key), "%lld", pl_json_int(x, "vmid", 0));
			if ((list = json_object_get(m->next_backups, key)) == NULL) {
				list = json_array();
				json_object_set_new(m->next_backups, key, list);
			}
			json_array_append_new(list, json_integer(pl_json_int(x, "ctime", 0)));
		}
		break;
	case READ_CERTS:
		if (json_is_array(d))
			json_object_set(m->next_certs, q->node, d);
		break;
	}
	unlink_read(q);
	if (slow) {
		if (--m->slow_busy == 0)
			slow_done(m);
	} else if (--m->busy == 0) {
		reads_done(m);
	}
	free(q);
}

static void
ask(struct pl_serve_metrics *m, int what, const char *node, const char *path)
{
	struct read *q = pl_calloc(1, sizeof(*q));

	q->next = m->inflight;
	if (q->next)
		q->next->prev = q;
	m->inflight = q;
	q->m = m;
	q->what = what;
	snprintf(q->node, sizeof(q->node), "%s", node ? node : "");
	if (what >= READ_SNAPSHOTS)
		m->slow_busy++;
	else
		m->busy++;
	pl_pve_request(m->s->pve, "GET", path, NULL, on_read, q);
}

static void
on_reads_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pl_serve_metrics *m = arg;
	struct timeval tv = { m->refresh->status_interval, 0 };

	(void)fd;
	(void)what;
	evtimer_add(m->ev, &tv);
	if (m->busy || m->s->pve == NULL)
		return;
	m->read_errors = 0;
	m->status_failed = false;
	m->next_nodes = json_object();
	m->busy++; /* held until every read is asked */
	ask(m, READ_STATUS, NULL, "/cluster/status");
	ask(m, READ_VERSION, NULL, "/version");
	ask(m, READ_NOT_BACKED_UP, NULL, "/cluster/backup-info/not-backed-up");
	ask(m, READ_QDEVICE, NULL, "/cluster/config/qdevice");
	if (--m->busy == 0)
		reads_done(m);
}

/* --- after each sync: onboot, snapshots, backups, certificates, the plan --- */

static void
slow_done(struct pl_serve_metrics *m)
{
	swap(&m->snapshots, m->next_snapshots);
	/* a storage not read: which guests it holds is not known, the last
	 * answers stay */
	if (m->backups_failed && m->backups)
		json_decref(m->next_backups);
	else
		swap(&m->backups, m->next_backups);
	swap(&m->certs, m->next_certs);
	m->next_snapshots = m->next_backups = m->next_certs = NULL;
	m->slow_at = now_s();
}

static void
on_plan_refresh(int err, json_t *snap, const char *errmsg, void *arg)
{
	struct pl_serve_metrics *m = arg;
	struct pl_plan_opts o = { 0 };
	json_t *plan = NULL, *drift = json_array(), *pending = json_array();
	const json_t *c;
	char *msg = NULL;
	size_t i;

	m->planning = NULL;
	pl_serve_release(m->refresh->sv); /* held while the planning ran */
	free(m->plan_error);
	m->plan_error = NULL;
	if (err == 0)
		err = pl_plan_build(m->s->cfg, snap, &o, &plan, &msg);
	else
		msg = pl_strdup(errmsg ? errmsg : pl_strerror(err));
	if (err) {
		pl_log_warn("metrics: no plan: %s", msg ? msg : pl_strerror(err));
		m->plan_error = msg;
		json_decref(drift);
		json_decref(pending);
		pl_serve_emit(m->refresh->sv, "drift",
			      json_pack("{s:s}", "error", msg ? msg : "?"));
		return;
	}
	json_array_foreach(json_object_get(plan, "changes"), i, c) {
		char id[64];

		if (!json_is_integer(json_object_get(c, "vmid")))
			continue;
		snprintf(id, sizeof(id), "%s/%lld", pl_json_str_or(c, "type", "qemu"),
			 pl_json_int(c, "vmid", 0));
		json_array_append_new(drift, json_pack("{s:s,s:s,s:s,s:s}", "id", id, "guest",
						       pl_json_str_or(c, "guest", ""), "action",
						       pl_json_str_or(c, "action", ""), "class",
						       pl_json_str_or(c, "class", "")));
	}
	json_array_foreach(json_object_get(plan, "pending"), i, c)
		json_array_append_new(
			pending,
			json_pack("{s:I,s:s,s:I}", "vmid", (json_int_t)pl_json_int(c, "vmid", 0),
				  "guest", pl_json_str_or(c, "guest", ""), "keys",
				  (json_int_t)json_array_size(json_object_get(c, "keys"))));
	swap(&m->drift, drift);
	swap(&m->pending, pending);
	m->plan_at = now_s();
	/* the dashboard's overview follows it (GET /api/v1/drift) */
	pl_serve_emit(m->refresh->sv, "drift",
		      json_pack("{s:f,s:i}", "planned_at", m->plan_at, "changes",
				(int)json_array_size(m->drift)));
	json_decref(plan);
	free(msg);
}

static void
on_sync(const json_t *snap, void *arg)
{
	struct pl_serve_metrics *m = arg;
	json_t *backup_stores = json_object();
	const json_t *g, *st;
	size_t i;

	/* onboot from the configs the sync read: no call per guest */
	swap_picture(m, &m->onboot, pl_metrics_onboot(json_object_get(snap, PL_SNAP_GUESTS)));
	if (m->slow_busy || m->s->pve == NULL) {
		json_decref(backup_stores);
		return;
	}
	m->slow_errors = 0;
	m->backups_failed = false;
	m->next_snapshots = json_object();
	m->next_backups = json_object();
	m->next_certs = json_object();
	m->slow_busy++;
	/* snapshots: only the guests whose config names a parent have any */
	json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, g) {
		const json_t *cfg = json_object_get(g, PL_SNAP_CONFIG);
		struct read *q;
		char *path;

		if (!pl_json_str(cfg, "parent"))
			continue;
		path = pl_asprintf("/nodes/%s/%s/%lld/snapshot", pl_json_str_or(g, "node", ""),
				   pl_json_str_or(g, "type", "qemu"), pl_json_int(g, "vmid", 0));
		q = pl_calloc(1, sizeof(*q));
		q->m = m;
		q->what = READ_SNAPSHOTS;
		q->vmid = pl_json_int(g, "vmid", 0);
		m->slow_busy++;
		pl_pve_request(m->s->pve, "GET", path, NULL, on_read, q);
		free(path);
	}
	/* backups: each storage that holds them, a shared one once */
	json_array_foreach(json_object_get(snap, PL_SNAP_STORAGES), i, st) {
		const char *node = pl_json_str(st, "node"), *id = pl_json_str(st, "storage");
		const char *content = pl_json_str_or(st, "content", "");
		char key[160], *path;

		if (!node || !id || !strstr(content, "backup") ||
		    strcmp(pl_json_str_or(st, "status", "available"), "available"))
			continue;
		snprintf(key, sizeof(key), "%s/%s", pl_json_int(st, "shared", 0) ? "" : node, id);
		if (json_object_get(backup_stores, key))
			continue;
		json_object_set_new(backup_stores, key, json_true());
		path = pl_asprintf("/nodes/%s/storage/%s/content?content=backup", node, id);
		ask(m, READ_BACKUPS, node, path);
		free(path);
	}
	/* every online node's certificates */
	json_array_foreach(json_object_get(snap, PL_SNAP_NODES), i, g) {
		const char *node = pl_json_str(g, "node");
		char *path;

		if (!node || strcmp(pl_json_str_or(g, "status", ""), "online"))
			continue;
		path = pl_asprintf("/nodes/%s/certificates/info", node);
		ask(m, READ_CERTS, node, path);
		free(path);
	}
	json_decref(backup_stores);
	if (--m->slow_busy == 0)
		slow_done(m);
	/* the plan: what drifted from the config, on the same cadence */
	if (m->s->cfg && m->planning == NULL && json_array_size(pl_config_guests(m->s->cfg))) {
		m->planning = pl_planning_refresh_start(m->s, on_plan_refresh, m);
		/* a drain waits for it: its worker must not outlive the loop */
		if (m->planning)
			pl_serve_hold(m->refresh->sv);
	}
}

void
pl_metrics_reads_start(struct pl_serve_metrics *m)
{
	m->refresh->on_sync = on_sync;
	m->refresh->on_sync_arg = m;
	m->ev = evtimer_new(m->s->base, on_reads_timer, m);
	if (m->s->pve)
		event_active(m->ev, EV_TIMEOUT, 0);
}

void
pl_metrics_reads_stop(struct pl_serve_metrics *m)
{
	/* reads still in flight when the server stops: the API client drops
	 * their requests without calling back */
	while (m->inflight) {
		struct read *q = m->inflight;

		unlink_read(q);
		free(q);
	}
	pl_planning_refresh_cancel(m->planning);
	m->planning = NULL;
	if (m->ev)
		event_free(m->ev);
	m->ev = NULL;
}
