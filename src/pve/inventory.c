/*
 * The sync fan-out: one /cluster/resources call names every node, guest and
 * storage; then worker threads, each with its own event loop and client (a
 * share of the concurrency), take the next request from a shared counter as
 * each answer arrives: first each node's status and bridges and the task
 * list, then every guest's config. The main thread reports progress.
 * A sync reads what it can: a guest whose config cannot be read now (its
 * node offline or not answering, or the config gone from the node the list
 * named) is handed on without config, marked "_unread" with the reason.
 * Parsing and hashing thousands of answers is CPU work: spread over cores it
 * no longer bounds how fast a large cluster can be read.
 */
#include "core/common.h"
#include "pve/inventory.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "pve/client.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_SHARDS 4 /* pl_pve_threads() at most */
#define PER_SHARD 64 /* fewer requests than this per thread: fewer threads */

struct inv {
	json_t *snap;
	const json_t *nodes; /* the online nodes: two requests each, taken first */
	const char **names;  /* their names, read before any answer touches them */
	const json_t *todo;  /* the guests whose configs are wanted */
	atomic_size_t next;  /* the next request a worker takes */
	atomic_size_t done;
	size_t total;
	pthread_mutex_t lock; /* err, errmsg, shards_left, snap's bridges and tasks */
	pthread_cond_t finished; /* a worker finished, or wake was set */
	bool wake;               /* a pl_pve_guest_cb asked for progress */
	int shards_left;
	int err;
	char *errmsg;
	pl_pve_guest_cb on_guest;
	void *parg;
	bool partial; /* guests not read are marked, not an error (a sync) */
	atomic_size_t unread;
};

/* One worker: guests taken from the shared list as its requests finish, so
 * that all workers finish together; fetched on its own loop and client. */
struct shard {
	struct inv *inv;
	pthread_t thread;
	struct event_base *base;
	struct pl_pve *c;
	int k;
};

struct item {
	struct inv *inv;
	struct shard *shard; /* the worker that sent it */
	json_t *target;      /* guest or node object (borrowed from snap) */
	const char *node;    /* the node's name, for bridges */
	int kind;            /* 0 config, 1 node status, 2 bridges, 3 tasks */
};

static void take_next(struct shard *sh);

/* Give the caller a guest that is done with, and wake its thread if asked. */
static void
hand_on(struct inv *v, json_t *guest)
{
	if (v->on_guest && v->on_guest(guest, v->parg)) {
		pthread_mutex_lock(&v->lock);
		v->wake = true;
		pthread_cond_signal(&v->finished);
		pthread_mutex_unlock(&v->lock);
	}
}

/* A guest whose config cannot be read now: marked, and handed on as if read. */
static void
unread(struct inv *v, json_t *guest, const char *why)
{
	json_object_set_new(guest, "_unread", json_string(why));
	atomic_fetch_add(&v->unread, 1);
	hand_on(v, guest);
}

static void
fail(struct inv *v, const struct pl_pve_result *res)
{
	pthread_mutex_lock(&v->lock);
	if (v->err == 0) {
		v->err = res->err;
		v->errmsg = pl_strdup(res->errmsg ? res->errmsg : pl_strerror(res->err));
	}
	pthread_mutex_unlock(&v->lock);
}

/* Runs on the worker that sent the request. A config or a node status touches
 * only its own guest or node object; bridges and tasks go into the shared
 * snapshot under the lock. */
static void
item_cb(const struct pl_pve_result *res, void *arg)
{
	struct item *it = arg;
	struct inv *v = it->inv;
	size_t i;
	json_t *o;

	if (res->err == 0) {
		switch (it->kind) {
		case 0:
			if (json_is_object(res->data))
				json_object_set(it->target, "config", res->data);
			else
				json_object_set_new(it->target, "config", json_object());
			hand_on(v, it->target);
			break;
		case 1:
			json_object_set(it->target, "detail", res->data);
			break;
		case 2:
			pthread_mutex_lock(&v->lock);
			json_array_foreach(res->data, i, o) {
				json_t *b = json_deep_copy(o);

				json_object_set_new(b, "node", json_string(it->node));
				json_array_append_new(json_object_get(v->snap, "bridges"), b);
			}
			pthread_mutex_unlock(&v->lock);
			break;
		case 3:
			pthread_mutex_lock(&v->lock);
			if (json_is_array(res->data))
				json_object_set(v->snap, "tasks", res->data);
			pthread_mutex_unlock(&v->lock);
			break;
		}
	} else if (it->kind == 0 && res->status == 500 && res->message &&
		   strstr(res->message, "does not exist") && v->partial) {
		/* Deleted since the resource list, or migrated off the node it
		 * named: the next list will tell. */
		unread(v, it->target, PL_PVE_UNREAD_GONE);
	} else if (it->kind == 0 && res->status == 595 && v->partial) {
		/* Its node did not answer the proxied call. */
		unread(v, it->target, PL_PVE_UNREAD_NO_ANSWER);
	} else if (it->kind == 3 || (it->kind != 0 && res->status == 595)) {
		/* Optional parts: the task list, details of an unreachable node. */
	} else {
		fail(v, res);
	}
	atomic_fetch_add(&v->done, 1);
	take_next(it->shard);
	free(it);
}

static void
queue(struct shard *sh, json_t *target, const char *node, int kind, const char *path,
      const json_t *params)
{
	struct item *it = pl_calloc(1, sizeof(*it));

	it->inv = sh->inv;
	it->shard = sh;
	it->target = target;
	it->node = node;
	it->kind = kind;
	pl_pve_request(sh->c, "GET", path, params, item_cb, it);
}

/* Requests in the order workers take them: each node's status and bridges,
 * the task list, then the guests' configs. */
static size_t
requests_total(const struct inv *v)
{
	return 2 * json_array_size(v->nodes) + 1 + json_array_size(v->todo);
}

/* Queue the next request nobody has taken. */
static void
take_next(struct shard *sh)
{
	struct inv *v = sh->inv;
	size_t i = atomic_fetch_add(&v->next, 1), nn = 2 * json_array_size(v->nodes);
	const char *name = i < nn ? v->names[i / 2] : NULL;
	json_t *o;
	char *path = NULL;

	if (i < nn && i % 2 == 0) {
		path = pl_asprintf("/nodes/%s/status", name);
		queue(sh, json_array_get(v->nodes, i / 2), name, 1, path, NULL);
	} else if (i < nn) {
		json_t *p = json_pack("{s:s}", "type", "any_bridge");

		path = pl_asprintf("/nodes/%s/network", name);
		queue(sh, NULL, name, 2, path, p);
		json_decref(p);
	} else if (i == nn) {
		queue(sh, NULL, NULL, 3, "/cluster/tasks", NULL);
	} else if (i - nn - 1 < json_array_size(v->todo)) {
		o = json_array_get(v->todo, i - nn - 1);
		path = pl_asprintf("/nodes/%s/%s/%lld/config", pl_json_str_or(o, "node", ""),
				   pl_json_str(o, "type"), pl_json_int(o, "vmid", 0));
		queue(sh, o, NULL, 0, path, NULL);
	}
	free(path);
}

static void *
shard_run(void *arg)
{
	struct shard *sh = arg;
	struct inv *v = sh->inv;

	/* Twice its connections: each answer takes the next guest, and a
	 * connection that frees up always finds a request waiting. */
	for (int i = 0; i < 2 * pl_pve_concurrency(sh->c); i++)
		take_next(sh);
	pl_pve_run(sh->c);
	pl_log_debug("inventory: worker %d done", sh->k);
	pthread_mutex_lock(&v->lock);
	v->shards_left--;
	pthread_cond_signal(&v->finished);
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

static int
shard_count(size_t requests)
{
	size_t n = (size_t)pl_pve_threads();

	if (n > MAX_SHARDS)
		n = MAX_SHARDS;
	if (n > (requests + PER_SHARD - 1) / PER_SHARD)
		n = (requests + PER_SHARD - 1) / PER_SHARD;
	return n < 1 ? 1 : (int)n;
}

/* Wait for the workers, reporting progress every 50 ms and when asked. */
static void
wait_shards(struct inv *v, pl_pve_progress_cb progress, void *arg)
{
	pthread_mutex_lock(&v->lock);
	while (v->shards_left > 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000 * 1000;
		if (ts.tv_nsec >= 1000 * 1000 * 1000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000 * 1000 * 1000;
		}
		if (!v->wake)
			pthread_cond_timedwait(&v->finished, &v->lock, &ts);
		v->wake = false;
		if (progress && v->shards_left > 0) {
			pthread_mutex_unlock(&v->lock);
			progress(atomic_load(&v->done), v->total, arg);
			pthread_mutex_lock(&v->lock);
		}
	}
	pthread_mutex_unlock(&v->lock);
	if (progress)
		progress(atomic_load(&v->done), v->total, arg);
}

static int inventory(struct pl_pve *c, pl_pve_guest_filter filter, void *farg,
		     pl_pve_progress_cb progress, pl_pve_guest_cb on_guest, void *arg,
		     size_t *unread, json_t **snap, char **errmsg);

int
pl_pve_inventory(struct pl_pve *c, pl_pve_progress_cb progress, pl_pve_guest_cb on_guest,
		 void *arg, size_t *unread, json_t **snap, char **errmsg)
{
	return inventory(c, NULL, NULL, progress, on_guest, arg, unread, snap, errmsg);
}

int
pl_pve_inventory_some(struct pl_pve *c, pl_pve_guest_filter filter, void *farg,
		      pl_pve_progress_cb progress, void *arg, json_t **snap, char **errmsg)
{
	return inventory(c, filter, farg, progress, NULL, arg, NULL, snap, errmsg);
}

static int
inventory(struct pl_pve *c, pl_pve_guest_filter filter, void *farg, pl_pve_progress_cb progress,
	  pl_pve_guest_cb on_guest, void *arg, size_t *unread_out, json_t **snap,
	  char **errmsg)
{
	struct inv v = { .on_guest = on_guest, .parg = arg, .partial = unread_out != NULL };
	struct shard shards[MAX_SHARDS] = { 0 };
	struct timespec t0, t1, t2;
	json_t *res = NULL, *nodes, *guests, *storages, *todo, *online, *offline, *o;
	size_t i, wanted = 0;
	int n = 0, started = 0, r;

	*snap = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((r = pl_pve_call(c, "GET", "/cluster/resources", NULL, &res, errmsg)) != 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!json_is_array(res)) {
		json_decref(res);
		return pl_seterr(errmsg, PL_EPARSE, "/cluster/resources did not return a list");
	}
	v.snap = json_pack("{s:[],s:[],s:[],s:[],s:[]}", "nodes", "guests", "storages", "bridges",
			   "tasks");
	nodes = json_object_get(v.snap, "nodes");
	guests = json_object_get(v.snap, "guests");
	storages = json_object_get(v.snap, "storages");
	json_array_foreach(res, i, o) {
		const char *t = pl_json_str(o, "type");

		if (t == NULL)
			continue;
		if (!strcmp(t, "node"))
			json_array_append(nodes, o);
		else if (!strcmp(t, "qemu") || !strcmp(t, "lxc"))
			json_array_append(guests, o);
		else if (!strcmp(t, "storage"))
			json_array_append(storages, o);
	}
	json_decref(res);
	pthread_mutex_init(&v.lock, NULL);
	pthread_cond_init(&v.finished, NULL);
	online = json_array();
	offline = json_object();
	json_array_foreach(nodes, i, o) {
		if (pl_json_str(o, "node") == NULL)
			continue;
		if (!strcmp(pl_json_str_or(o, "status", "online"), "online"))
			json_array_append(online, o);
		else
			json_object_set_new(offline, pl_json_str(o, "node"), json_true());
	}
	v.nodes = online;
	todo = json_array();
	json_array_foreach(guests, i, o) {
		/* vmid arrives as a string on old nodes: store it as a number. */
		if (!json_is_integer(json_object_get(o, "vmid")))
			json_object_set_new(o, "vmid", json_integer(pl_json_int(o, "vmid", 0)));
		if (filter && !filter(o, farg))
			continue;
		/* A sync does not ask an offline node: PVE's proxy to it can take
		 * its whole timeout to fail. */
		if (v.partial && json_object_get(offline, pl_json_str_or(o, "node", "")))
			unread(&v, o, PL_PVE_UNREAD_OFFLINE);
		else
			json_array_append(todo, o);
	}
	json_decref(offline);
	wanted = json_array_size(todo);
	v.todo = todo;
	v.names = pl_calloc(json_array_size(online) + 1, sizeof(*v.names));
	json_array_foreach(online, i, o)
		v.names[i] = pl_json_str(o, "node");
	v.total = requests_total(&v);
	n = shard_count(v.total);
	for (int k = 0; k < n; k++) {
		shards[k].inv = &v;
		shards[k].k = k;
		struct event_config *cfg = event_config_new();

		/* epoll changes batched per loop turn: a connection's event removed
		 * and added back in one turn costs no system call. */
		event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		shards[k].base = event_base_new_with_config(cfg);
		event_config_free(cfg);
		if (shards[k].base == NULL)
			pl_die("cannot create an event loop");
		if ((r = pl_pve_clone(c, shards[k].base, n, &shards[k].c, errmsg)) != 0)
			goto out;
	}
	v.shards_left = n;
	clock_gettime(CLOCK_MONOTONIC, &t2);
	pl_log_debug("inventory: /cluster/resources (%zu entries) in %.3f s, sorted in %.3f s; "
		     "%zu configs on %d threads", json_array_size(guests) + json_array_size(nodes) +
		     json_array_size(storages), pl_elapsed_s(&t0, &t1), pl_elapsed_s(&t1, &t2),
		     wanted, n);
	for (; started < n; started++)
		if (pthread_create(&shards[started].thread, NULL, shard_run, &shards[started]) != 0)
			pl_die("cannot start a thread");
	wait_shards(&v, progress, arg);
	r = 0;
out:
	for (int k = 0; k < started; k++)
		pthread_join(shards[k].thread, NULL);
	for (int k = 0; k < n; k++) {
		pl_pve_free(shards[k].c);
		if (shards[k].base)
			event_base_free(shards[k].base);
	}
	json_decref(todo);
	json_decref(online);
	free(v.names);
	pthread_cond_destroy(&v.finished);
	pthread_mutex_destroy(&v.lock);
	if (r == 0 && v.err)
		r = pl_seterr(errmsg, v.err, "%s", v.errmsg);
	if (unread_out)
		*unread_out = atomic_load(&v.unread);
	free(v.errmsg);
	if (r != 0) {
		json_decref(v.snap);
		return r;
	}
	*snap = v.snap;
	return 0;
}

const json_t *
pl_pve_find_guest(const json_t *resources, const char *guest, bool *ambiguous)
{
	const json_t *found = NULL;
	long long vmid = -1;
	size_t i;
	json_t *o;

	*ambiguous = false;
	pl_str_to_ll(guest, 1, 999999999, &vmid);
	json_array_foreach(resources, i, o) {
		const char *t = pl_json_str(o, "type");

		if (t == NULL || (strcmp(t, "qemu") && strcmp(t, "lxc")))
			continue;
		if (vmid > 0 && pl_json_int(o, "vmid", -1) == vmid)
			return o;
		if (vmid < 0 && pl_json_str(o, "name") && !strcmp(pl_json_str(o, "name"), guest)) {
			if (found) {
				*ambiguous = true;
				return NULL;
			}
			found = o;
		}
	}
	return found;
}
