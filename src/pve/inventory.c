/*
 * The sync fan-out: the online nodes from /cluster/resources?type=node, then
 * worker threads, each with its own event loop and client (a share of the
 * concurrency), take the next request from a shared counter as each answer
 * arrives: first each node's status and bridges, the task list and the
 * storages, then every guest's config -- each requested as soon as its entry
 * of /cluster/resources?type=vm has been read, while the rest of that list is
 * still arriving. The main thread reads the list, then reports progress.
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
#include "core/snapshot.h"
#include "pve/client.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_SHARDS 4 /* pl_pve_threads() at most */
#define PER_SHARD 64 /* a worker more for each this many guests listed */
#define BLOCK 4096   /* guests per block of the wanted list */
#define MAX_BLOCKS 4096
#define TICK_US 1000 /* how soon an idle worker looks for guests listed since */

struct inv {
	json_t *snap;
	const json_t *nodes; /* the online nodes: two requests each, taken first */
	const char **names;  /* their names, read before any answer touches them */
	json_t *offline;     /* the names of the nodes listed offline */
	/* The guests whose configs are wanted, in blocks that never move: the
	 * main thread writes entry k, then publishes k + 1; workers read below. */
	json_t **todo[MAX_BLOCKS];
	atomic_size_t published;
	atomic_bool listed;  /* the list is complete: nothing more is published */
	atomic_bool stop;    /* it failed: take nothing more */
	atomic_size_t next;  /* the next request a worker takes */
	atomic_size_t done;
	pl_pve_guest_filter filter;
	void *farg;
	pthread_mutex_t lock; /* err, errmsg, shards_left, snap's bridges, tasks, storages */
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
	struct event *tick; /* while the list arrives: feed the idle slots */
	int idle;           /* request slots with nothing to do yet */
	int k;
};

struct item {
	struct inv *inv;
	struct shard *shard; /* the worker that sent it */
	json_t *target;      /* guest or node object (borrowed from snap) */
	const char *node;    /* the node's name, for bridges */
	int kind;            /* 0 config, 1 node status, 2 bridges, 3 tasks, 4 storages */
};

static bool take_next(struct shard *sh);

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
	json_object_set_new(guest, PL_SNAP_UNREAD, json_string(why));
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
				json_object_set(it->target, PL_SNAP_CONFIG, res->data);
			else
				json_object_set_new(it->target, PL_SNAP_CONFIG, json_object());
			hand_on(v, it->target);
			break;
		case 1:
			json_object_set(it->target, PL_SNAP_DETAIL, res->data);
			break;
		case 2:
			pthread_mutex_lock(&v->lock);
			json_array_foreach(res->data, i, o) {
				json_t *b = json_deep_copy(o);

				json_object_set_new(b, "node", json_string(it->node));
				json_array_append_new(json_object_get(v->snap, PL_SNAP_BRIDGES), b);
			}
			pthread_mutex_unlock(&v->lock);
			break;
		case 3:
			pthread_mutex_lock(&v->lock);
			if (json_is_array(res->data))
				json_object_set(v->snap, PL_SNAP_TASKS, res->data);
			pthread_mutex_unlock(&v->lock);
			break;
		case 4:
			pthread_mutex_lock(&v->lock);
			json_array_foreach(res->data, i, o)
				if (!strcmp(pl_json_str_or(o, "type", ""), "storage"))
					json_array_append(json_object_get(v->snap, PL_SNAP_STORAGES), o);
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
	if (!take_next(it->shard))
		it->shard->idle++;
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
 * the task list, the storages, then the guests' configs as they are listed. */
static size_t
requests_total(const struct inv *v)
{
	return 2 * json_array_size(v->nodes) + 2 +
	       atomic_load_explicit(&v->published, memory_order_acquire);
}

/* Queue the next request nobody has taken; false when there is none yet. */
static bool
take_next(struct shard *sh)
{
	struct inv *v = sh->inv;
	size_t nn = 2 * json_array_size(v->nodes), i = atomic_load(&v->next);
	const char *name;
	json_t *o;
	char *path = NULL;

	do {
		if (atomic_load(&v->stop) || i >= requests_total(v))
			return false;
	} while (!atomic_compare_exchange_weak(&v->next, &i, i + 1));
	name = i < nn ? v->names[i / 2] : NULL;
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
	} else if (i == nn + 1) {
		json_t *p = json_pack("{s:s}", "type", "storage");

		queue(sh, NULL, NULL, 4, "/cluster/resources", p);
		json_decref(p);
	} else {
		i -= nn + 2;
		o = v->todo[i / BLOCK][i % BLOCK];
		path = pl_asprintf("/nodes/%s/%s/%lld/config", pl_json_str_or(o, "node", ""),
				   pl_json_str(o, "type"), pl_json_int(o, "vmid", 0));
		queue(sh, o, NULL, 0, path, NULL);
	}
	free(path);
	return true;
}

/* Give the idle slots what has been listed since; true when one took any. */
static bool
refill(struct shard *sh)
{
	bool took = false;

	while (sh->idle > 0 && take_next(sh)) {
		sh->idle--;
		took = true;
	}
	return took;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct shard *sh = arg;

	(void)fd;
	(void)what;
	refill(sh);
	if (atomic_load(&sh->inv->listed))
		event_del(sh->tick);
}

static void *
shard_run(void *arg)
{
	struct shard *sh = arg;
	struct inv *v = sh->inv;
	struct timeval tv = { 0, TICK_US };

	/* Twice its connections: each answer takes the next request, and a
	 * connection that frees up always finds one waiting. */
	for (int i = 0; i < 2 * pl_pve_concurrency(sh->c); i++)
		if (!take_next(sh))
			sh->idle++;
	sh->tick = event_new(sh->base, -1, EV_PERSIST, tick_cb, sh);
	event_add(sh->tick, &tv);
	do {
		while (pl_pve_pending(sh->c) > 0 || !atomic_load(&v->listed))
			if (event_base_loop(sh->base, EVLOOP_ONCE) != 0)
				break;
	} while (refill(sh)); /* what was listed after the last tick */
	event_free(sh->tick);
	pl_log_debug("inventory: worker %d done", sh->k);
	pthread_mutex_lock(&v->lock);
	v->shards_left--;
	pthread_cond_signal(&v->finished);
	pthread_mutex_unlock(&v->lock);
	return NULL;
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
			progress(atomic_load(&v->done), requests_total(v), arg);
			pthread_mutex_lock(&v->lock);
		}
	}
	pthread_mutex_unlock(&v->lock);
	if (progress)
		progress(atomic_load(&v->done), requests_total(v), arg);
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

/* The guest list as it arrives, read on the main thread. */
struct listing {
	struct inv *v;
	struct shard *shards;
	int nshards, started;
	struct pl_json_items *items;
	json_t *guests; /* the snapshot's */
	bool done, bad, unreadable;
	int err;
	char *errmsg;
};

static void
start_shard(struct listing *l)
{
	struct shard *sh = &l->shards[l->started];

	pthread_mutex_lock(&l->v->lock);
	l->v->shards_left++;
	pthread_mutex_unlock(&l->v->lock);
	if (pthread_create(&sh->thread, NULL, shard_run, sh) != 0)
		pl_die("cannot start a thread");
	l->started++;
}

/* An entry of /cluster/resources?type=vm: recorded, and its config wanted
 * at once (a worker more for every PER_SHARD guests). */
static void
on_entry(json_t *o, void *arg)
{
	struct listing *l = arg;
	struct inv *v = l->v;
	const char *t = pl_json_str(o, "type");
	size_t k;

	if (t == NULL || (strcmp(t, "qemu") && strcmp(t, "lxc")))
		return;
	/* vmid arrives as a string on old nodes: store it as a number. */
	if (!json_is_integer(json_object_get(o, "vmid")))
		json_object_set_new(o, "vmid", json_integer(pl_json_int(o, "vmid", 0)));
	json_array_append(l->guests, o);
	if (v->filter && !v->filter(o, v->farg))
		return;
	/* A sync does not ask an offline node: PVE's proxy to it can take its
	 * whole timeout to fail. */
	if (v->partial && json_object_get(v->offline, pl_json_str_or(o, "node", ""))) {
		unread(v, o, PL_PVE_UNREAD_OFFLINE);
		return;
	}
	k = atomic_load_explicit(&v->published, memory_order_relaxed);
	if (k / BLOCK >= MAX_BLOCKS) {
		l->bad = true;
		return;
	}
	if (k % BLOCK == 0)
		v->todo[k / BLOCK] = pl_calloc(BLOCK, sizeof(json_t *));
	v->todo[k / BLOCK][k % BLOCK] = o;
	atomic_store_explicit(&v->published, k + 1, memory_order_release);
	if (l->started < l->nshards && k + 1 >= (size_t)l->started * PER_SHARD)
		start_shard(l);
}

static int
on_list_body(const char *p, size_t n, void *arg)
{
	struct listing *l = arg;

	if (pl_json_items_feed(l->items, p, n) != 0)
		l->unreadable = true;
	return l->unreadable || l->bad ? -1 : 0;
}

static void
on_list_done(const struct pl_pve_result *res, void *arg)
{
	struct listing *l = arg;
	json_t *doc = pl_json_items_end(l->items);

	l->items = NULL;
	l->done = true;
	if (l->bad || l->unreadable ||
	    (res->err == 0 && !json_is_array(json_object_get(doc, "data")))) {
		l->err = PL_EPARSE;
		l->errmsg = pl_strdup(l->bad ? "/cluster/resources lists too many guests"
					     : "/cluster/resources did not return a list");
	} else if (res->err) {
		l->err = res->err;
		l->errmsg = pl_strdup(res->errmsg ? res->errmsg : pl_strerror(res->err));
	}
	json_decref(doc);
}

static int
inventory(struct pl_pve *c, pl_pve_guest_filter filter, void *farg, pl_pve_progress_cb progress,
	  pl_pve_guest_cb on_guest, void *arg, size_t *unread_out, json_t **snap,
	  char **errmsg)
{
	struct inv v = { .on_guest = on_guest, .parg = arg, .partial = unread_out != NULL,
			 .filter = filter, .farg = farg };
	struct shard shards[MAX_SHARDS] = { 0 };
	struct listing l = { .v = &v, .shards = shards };
	struct timespec t0, t1, t2;
	json_t *res = NULL, *nodes, *online, *q, *o;
	size_t i;
	int n = 0, r;

	*snap = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	q = json_pack("{s:s}", "type", "node");
	r = pl_pve_call(c, "GET", "/cluster/resources", q, &res, errmsg);
	json_decref(q);
	if (r != 0)
		return r;
	if (!json_is_array(res)) {
		json_decref(res);
		return pl_seterr(errmsg, PL_EPARSE, "/cluster/resources did not return a list");
	}
	v.snap = json_pack("{s:[],s:[],s:[],s:[],s:[]}", PL_SNAP_NODES, PL_SNAP_GUESTS,
			   PL_SNAP_STORAGES, PL_SNAP_BRIDGES, PL_SNAP_TASKS);
	nodes = json_object_get(v.snap, PL_SNAP_NODES);
	online = json_array();
	v.offline = json_object();
	json_array_foreach(res, i, o) {
		if (strcmp(pl_json_str_or(o, "type", ""), "node") || pl_json_str(o, "node") == NULL)
			continue;
		json_array_append(nodes, o);
		if (!strcmp(pl_json_str_or(o, "status", "online"), "online"))
			json_array_append(online, o);
		else
			json_object_set_new(v.offline, pl_json_str(o, "node"), json_true());
	}
	json_decref(res);
	pthread_mutex_init(&v.lock, NULL);
	pthread_cond_init(&v.finished, NULL);
	v.nodes = online;
	v.names = pl_calloc(json_array_size(online) + 1, sizeof(*v.names));
	json_array_foreach(online, i, o)
		v.names[i] = pl_json_str(o, "node");
	n = pl_pve_threads() < MAX_SHARDS ? pl_pve_threads() : MAX_SHARDS;
	for (int k = 0; k < n; k++) {
		struct event_config *cfg = event_config_new();

		shards[k].inv = &v;
		shards[k].k = k;
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
	l.nshards = n;
	l.guests = json_object_get(v.snap, PL_SNAP_GUESTS);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* The first worker starts on the nodes while the guest list arrives. */
	start_shard(&l);
	l.items = pl_json_items_new(on_entry, &l);
	q = json_pack("{s:s}", "type", "vm");
	pl_pve_request_stream(c, "GET", "/cluster/resources", q, on_list_body, on_list_done, &l);
	json_decref(q);
	while (!l.done)
		if (event_base_loop(pl_pve_base(c), EVLOOP_ONCE) != 0)
			break;
	if (!l.done)
		pl_die("the guest list stalled: the event loop has nothing left to wait for");
	if (l.err)
		atomic_store(&v.stop, true);
	atomic_store(&v.listed, true);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	pl_log_debug("inventory: nodes in %.3f s; %zu guests listed in %.3f s (%zu configs "
		     "wanted, %d of %d threads)", pl_elapsed_s(&t0, &t1),
		     json_array_size(l.guests), pl_elapsed_s(&t1, &t2),
		     atomic_load(&v.published), l.started, n);
	wait_shards(&v, progress, arg);
	r = l.err;
	if (r)
		pl_seterr(errmsg, r, "%s", l.errmsg);
out:
	for (int k = 0; k < l.started; k++)
		pthread_join(shards[k].thread, NULL);
	for (int k = 0; k < n; k++) {
		pl_pve_free(shards[k].c);
		if (shards[k].base)
			event_base_free(shards[k].base);
	}
	for (size_t b = 0; b < MAX_BLOCKS && v.todo[b]; b++)
		free(v.todo[b]);
	free(l.errmsg);
	json_decref(online);
	json_decref(v.offline);
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
