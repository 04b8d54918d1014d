/*
 * The sync fan-out: the online nodes from /cluster/resources?type=node, then
 * worker threads, each with its own event loop and client (a share of the
 * concurrency), take the next request from a shared counter as each answer
 * arrives: first each node's status and bridges, the task list and the
 * storages, then every guest's config -- each requested as soon as its entry
 * of /cluster/resources?type=vm has been read, while the rest of that list is
 * still arriving. A server's first worker reads that list (megabytes of
 * JSON: tens of milliseconds of CPU its loop must not spend); a command's
 * own loop reads it itself (read there, a console's Ctrl-C reached the
 * workers only now and then: test_752). The caller's loop reports
 * progress, and the workers hand their end
 * back to it through a pipe, so nothing here ever waits on that loop
 * (pl_pve_inventory_start).
 * A sync reads what it can: a guest whose config cannot be read now (its
 * node offline or not answering, or the config gone from the node the list
 * named) is handed on without config, marked "_unread" with the reason.
 * Parsing and hashing thousands of answers is CPU work: spread over cores it
 * no longer bounds how fast a large cluster can be read.
 */
#include "core/common.h"
#include "pve/inventory.h"
#include "core/apischema.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "core/log.h"
#include "core/str.h"
#include "pve/apart.h"
#include "pve/client.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define MAX_SHARDS 4 /* pl_pve_threads() at most */
#define PER_SHARD 64 /* a worker more for each this many guests listed */
#define BLOCK 4096   /* guests per block of the wanted list */
#define MAX_BLOCKS 4096
#define TICK_US 1000 /* how soon an idle worker looks for guests listed since */

struct item;

/* One worker: guests taken from the shared list as its requests finish, so
 * that all workers finish together; fetched on its own loop and client. */
struct shard {
	struct pl_pve_inv *inv;
	pthread_t thread;
	struct event_base *base;
	struct pl_pve *c;
	struct event *tick; /* feed the idle slots while the list arrives; see a cancel */
	bool slow;          /* the list is complete: the tick only looks for a cancel */
	bool interrupted;   /* its client is, as the caller's was */
	int idle;           /* request slots with nothing to do yet */
	int k;
	struct item *live;  /* its requests in flight (freed here when cancelled) */
};

/* The guest list as it arrives, read on the first worker's thread; done is
 * under the inventory's lock, the rest is the caller's after the join. */
struct listing {
	struct pl_pve_inv *v;
	struct shard *shards;
	int nshards, started;
	struct pl_json_items *items;
	json_t *guests; /* the snapshot's */
	bool done, bad, unreadable;
	int err;
	char *errmsg;
};

struct pl_pve_inv {
	json_t *snap;
	const json_t *nodes; /* the online nodes: two requests each, taken first */
	const char **names;  /* their names, read before any answer touches them */
	json_t *offline;     /* the names of the nodes listed offline */
	/* The guests whose configs are wanted, in blocks that never move: the
	 * caller's thread writes entry k, then publishes k + 1; workers read below. */
	json_t **todo[MAX_BLOCKS];
	atomic_size_t published;
	atomic_bool listed;  /* the list is complete: nothing more is published */
	atomic_bool stop;    /* it failed, or was cancelled: take nothing more */
	atomic_bool cancel;  /* workers: drop what is in flight and end */
	atomic_size_t next;  /* the next request a worker takes */
	atomic_size_t done;
	pl_pve_guest_filter filter;
	void *farg;
	pthread_mutex_t lock; /* err, errmsg, shards_left, wake, snap's bridges, tasks, storages */
	bool wake;            /* a pl_pve_guest_cb asked for progress */
	int shards_left;
	int err;
	char *errmsg;
	pl_pve_guest_cb on_guest;
	void *parg;
	bool partial; /* guests not read are marked, not an error (a sync) */
	bool background;
	atomic_size_t unread;
	/* the caller's side: all on its loop's thread */
	struct pl_pve *c;
	pl_pve_progress_cb progress;
	pl_pve_inventory_cb cb;
	void *cb_arg;
	struct shard shards[MAX_SHARDS];
	int n;               /* workers made (clients and loops) */
	struct listing l;
	json_t *online;
	int pipe[2];         /* workers -> the caller's loop: "look at me" */
	struct event *wake_ev, *progress_ev;
	bool on_c;           /* a request on c holds this as its argument */
	bool cancelled, ended;
	struct timespec t0, t1;
	struct pl_pve_inv *next_orphan;
};

struct item {
	struct pl_pve_inv *inv;
	struct shard *shard; /* the worker that sent it */
	struct item *prev, *next; /* the shard's live items */
	json_t *target;      /* guest or node object (borrowed from snap) */
	const char *node;    /* the node's name, for bridges */
	int kind;            /* 0 config, 1 node status, 2 bridges, 3 tasks, 4 storages,
			      * 5.. the day-2 lists (day2_reads) */
};

/* The cluster-wide configuration lists beside the guests (kind 5 + index):
 * optional, as the task list is; a list not read is absent from the snapshot. */
static const char *const day2_reads[][2] = {
	{ "/storage", PL_SNAP_STORECFG },
	{ "/cluster/backup", PL_SNAP_JOBS },
	{ "/pools", PL_SNAP_POOLS },
	{ "/cluster/mapping/pci", PL_SNAP_PCIMAPS },
};

/* Cancelled inventories waiting for an answer already on its way on the
 * caller's client: kept reachable, as apply keeps its abandoned runs. */
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pl_pve_inv *orphans;

/* Wake the caller's loop (any thread); a full pipe is awake already. */
static void
poke(struct pl_pve_inv *v)
{
	ssize_t n = write(v->pipe[1], "", 1);

	(void)n;
}

static bool take_next(struct shard *sh);
static int on_list_body(const char *p, size_t n, void *arg);
static void on_list_done(const struct pl_pve_result *res, void *arg);

/* Give the caller a guest that is done with, and wake its thread if asked. */
static void
hand_on(struct pl_pve_inv *v, json_t *guest)
{
	if (v->on_guest && v->on_guest(guest, v->parg)) {
		pthread_mutex_lock(&v->lock);
		v->wake = true;
		pthread_mutex_unlock(&v->lock);
		poke(v);
	}
}

/* A guest whose config cannot be read now: marked, and handed on as if read. */
static void
unread(struct pl_pve_inv *v, json_t *guest, const char *why)
{
	json_object_set_new(guest, PL_SNAP_UNREAD, json_string(why));
	atomic_fetch_add(&v->unread, 1);
	hand_on(v, guest);
}

static void
fail(struct pl_pve_inv *v, const struct pl_pve_result *res)
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
	struct pl_pve_inv *v = it->inv;
	size_t i;
	json_t *o;

	if (res->err == 0) {
		switch (it->kind) {
		case 0:
			/* a password never goes further, whatever the node sent */
			if (json_is_object(res->data)) {
				pl_api_mask_secrets(res->data);
				json_object_set(it->target, PL_SNAP_CONFIG, res->data);
			} else
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
		default:
			pthread_mutex_lock(&v->lock);
			if (json_is_array(res->data))
				json_object_set(v->snap, day2_reads[it->kind - 5][1], res->data);
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
	} else if (it->kind == 3 || it->kind >= 5 || (it->kind != 0 && res->status == 595)) {
		/* Optional parts: the task list, details of an unreachable node. */
	} else {
		fail(v, res);
	}
	atomic_fetch_add(&v->done, 1);
	if (it->prev)
		it->prev->next = it->next;
	else
		it->shard->live = it->next;
	if (it->next)
		it->next->prev = it->prev;
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
	it->next = sh->live;
	if (sh->live)
		sh->live->prev = it;
	sh->live = it;
	pl_pve_request(sh->c, "GET", path, params, item_cb, it);
}

/* Requests in the order workers take them: each node's status and bridges,
 * the task list, the storages, then the guests' configs as they are listed. */
static size_t
requests_total(const struct pl_pve_inv *v)
{
	return 2 * json_array_size(v->nodes) + 2 + PL_ARRAY_LEN(day2_reads) +
	       atomic_load_explicit(&v->published, memory_order_acquire);
}

/* Queue the next request nobody has taken; false when there is none yet. */
static bool
take_next(struct shard *sh)
{
	struct pl_pve_inv *v = sh->inv;
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
	} else if (i < nn + 2 + PL_ARRAY_LEN(day2_reads)) {
		queue(sh, NULL, NULL, 5 + (int)(i - nn - 2), day2_reads[i - nn - 2][0], NULL);
	} else {
		i -= nn + 2 + PL_ARRAY_LEN(day2_reads);
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
	struct timeval slow = { 0, 20 * 1000 };

	(void)fd;
	(void)what;
	if (atomic_load(&sh->inv->cancel)) {
		event_base_loopbreak(sh->base);
		return;
	}
	if (!sh->interrupted && pl_pve_parent_interrupted(sh->c)) {
		/* the caller's client was interrupted (the console's Ctrl-C): so
		 * is this worker's, on its own thread; its requests fail now */
		sh->interrupted = true;
		atomic_store(&sh->inv->stop, true);
		pl_pve_interrupt(sh->c);
		return;
	}
	refill(sh);
	if (atomic_load(&sh->inv->listed) && !sh->slow) {
		sh->slow = true;
		event_del(sh->tick);
		event_add(sh->tick, &slow);
	}
}

static void *
shard_run(void *arg)
{
	struct shard *sh = arg;
	struct pl_pve_inv *v = sh->inv;
	struct timeval tv = { 0, TICK_US };

	if (v->background)
		pl_pve_thread_background();
	if (sh->k == 0 && v->background) {
		json_t *q = json_pack("{s:s}", "type", "vm");

		pl_pve_request_stream(sh->c, "GET", "/cluster/resources", q, on_list_body,
				      on_list_done, &v->l);
		json_decref(q);
	}
	/* Twice its connections: each answer takes the next request, and a
	 * connection that frees up always finds one waiting. */
	for (int i = 0; i < 2 * pl_pve_concurrency(sh->c); i++)
		if (!take_next(sh))
			sh->idle++;
	sh->tick = event_new(sh->base, -1, EV_PERSIST, tick_cb, sh);
	event_add(sh->tick, &tv);
	do {
		while ((pl_pve_pending(sh->c) > 0 || !atomic_load(&v->listed)) &&
		       !atomic_load(&v->cancel))
			if (event_base_loop(sh->base, EVLOOP_ONCE) != 0)
				break;
	} while (!atomic_load(&v->cancel) && refill(sh)); /* what was listed after the last tick */
	event_free(sh->tick);
	pl_log_debug("inventory: worker %d done", sh->k);
	pthread_mutex_lock(&v->lock);
	v->shards_left--;
	pthread_mutex_unlock(&v->lock);
	poke(v);
	return NULL;
}

static void
start_shard(struct listing *l)
{
	/* counted before it runs: the first worker reads the count */
	struct shard *sh = &l->shards[l->started++];

	pthread_mutex_lock(&l->v->lock);
	l->v->shards_left++;
	pthread_mutex_unlock(&l->v->lock);
	if (pthread_create(&sh->thread, NULL, shard_run, sh) != 0)
		pl_die("cannot start a thread");
}

/* An entry of /cluster/resources?type=vm: recorded, and its config wanted
 * at once (a worker more for every PER_SHARD guests). */
static void
on_entry(json_t *o, void *arg)
{
	struct listing *l = arg;
	struct pl_pve_inv *v = l->v;
	const char *t = pl_json_str(o, "type");
	size_t k;

	if (atomic_load(&v->cancel) || t == NULL || (strcmp(t, "qemu") && strcmp(t, "lxc")))
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

	if (atomic_load(&l->v->cancel))
		return -1; /* break the transfer off: its end comes sooner */
	if (pl_json_items_feed(l->items, p, n) != 0)
		l->unreadable = true;
	return l->unreadable || l->bad ? -1 : 0;
}

static void
on_progress_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pl_pve_inv *v = arg;

	(void)fd;
	(void)what;
	if (!v->cancelled && v->progress)
		v->progress(atomic_load(&v->done), requests_total(v), v->parg);
}

/* On the thread that read it (a server's first worker, else the caller's):
 * the list is in (or broke off). */
static void
on_list_done(const struct pl_pve_result *res, void *arg)
{
	struct listing *l = arg;
	struct pl_pve_inv *v = l->v;
	json_t *doc = pl_json_items_end(l->items);
	struct timespec t2;

	l->items = NULL;
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
	if (l->err)
		atomic_store(&v->stop, true);
	atomic_store(&v->listed, true);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	pl_log_debug("inventory: nodes in %.3f s; %zu guests listed in %.3f s (%zu configs "
		     "wanted, %d of %d threads)", pl_elapsed_s(&v->t0, &v->t1),
		     json_array_size(l->guests), pl_elapsed_s(&v->t1, &t2),
		     atomic_load(&v->published), l->started, v->n);
	if (!v->background)
		v->on_c = false; /* the caller's own thread: its end may come now */
	pthread_mutex_lock(&v->lock);
	l->done = true;
	pthread_mutex_unlock(&v->lock);
	poke(v); /* the caller's progress starts */
}

static void
orphan_link(struct pl_pve_inv *v, bool add)
{
	struct pl_pve_inv **pp;

	pthread_mutex_lock(&orphans_lock);
	if (add) {
		v->next_orphan = orphans;
		orphans = v;
	} else {
		for (pp = &orphans; *pp; pp = &(*pp)->next_orphan)
			if (*pp == v) {
				*pp = v->next_orphan;
				break;
			}
	}
	pthread_mutex_unlock(&orphans_lock);
}

/* Everything has answered (or been dropped): workers joined and freed, the
 * caller told, unless it cancelled. */
static void
end(struct pl_pve_inv *v)
{
	pl_pve_inventory_cb cb = v->cancelled ? NULL : v->cb;
	size_t unread = atomic_load(&v->unread);
	char *msg = NULL;
	int r = v->l.err;

	v->ended = true;
	for (int k = 0; k < v->l.started; k++)
		pthread_join(v->shards[k].thread, NULL);
	for (int k = 0; k < v->n; k++) {
		struct item *it, *nx;

		pl_pve_free(v->shards[k].c); /* drops a cancelled worker's requests */
		for (it = v->shards[k].live; it; it = nx) {
			nx = it->next;
			free(it);
		}
		if (v->shards[k].base)
			event_base_free(v->shards[k].base);
	}
	for (size_t b = 0; b < MAX_BLOCKS && v->todo[b]; b++)
		free(v->todo[b]);
	if (v->progress_ev)
		event_free(v->progress_ev);
	event_free(v->wake_ev);
	close(v->pipe[0]);
	close(v->pipe[1]);
	if (cb && v->progress && v->snap)
		v->progress(atomic_load(&v->done), requests_total(v), v->parg);
	if (r)
		msg = pl_strdup(v->l.errmsg);
	else if (v->err) {
		r = v->err;
		msg = pl_strdup(v->errmsg);
	}
	if (cb)
		cb(r, r ? NULL : v->snap, unread, msg, v->cb_arg);
	if (v->cancelled)
		orphan_link(v, false);
	free(msg);
	free(v->l.errmsg);
	if (v->l.items)
		json_decref(pl_json_items_end(v->l.items));
	json_decref(v->snap);
	json_decref(v->online);
	json_decref(v->offline);
	free(v->names);
	free(v->errmsg);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* End once the list is in (or never came) and every worker has ended. */
static void
maybe_end(struct pl_pve_inv *v)
{
	int left;

	if (v->ended || v->on_c)
		return;
	pthread_mutex_lock(&v->lock);
	left = v->shards_left;
	pthread_mutex_unlock(&v->lock);
	if (left == 0)
		end(v);
}

/* A worker ended, or a pl_pve_guest_cb asked for progress, or a cancel. */
static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct pl_pve_inv *v = arg;
	struct timeval every = { 0, 50 * 1000 };
	char junk[64];
	bool wake, listed;
	int left;

	(void)what;
	while (read(fd, junk, sizeof(junk)) > 0)
		;
	/* a batch asked for while the list arrives waits for its end, as the
	 * caller's work may (a sync's write begins after its checkpoint) */
	pthread_mutex_lock(&v->lock);
	listed = v->l.done;
	wake = v->wake && listed;
	if (wake)
		v->wake = false;
	left = v->shards_left;
	pthread_mutex_unlock(&v->lock);
	/* Progress every 50 ms once the list is in: the caller's own work on
	 * answers in hand (a sync's recording) starts then. */
	if (listed && v->progress_ev == NULL && !v->cancelled) {
		v->progress_ev = event_new(pl_pve_base(v->c), -1, EV_PERSIST, on_progress_tick, v);
		event_add(v->progress_ev, &every);
		wake = left > 0; /* a batch asked for meanwhile */
	}
	if (wake && left > 0 && !v->cancelled && v->progress)
		v->progress(atomic_load(&v->done), requests_total(v), v->parg);
	maybe_end(v);
}

static void
fail_early(struct pl_pve_inv *v, int err, const char *msg)
{
	v->l.err = err;
	v->l.errmsg = pl_strdup(msg ? msg : pl_strerror(err));
	maybe_end(v);
}

/* The nodes are in: make the workers, start the first on the guest list and
 * the nodes. */
static void
on_nodes(const struct pl_pve_result *res, void *arg)
{
	struct pl_pve_inv *v = arg;
	json_t *nodes, *o;
	char *errmsg = NULL;
	size_t i;
	int n;

	v->on_c = false;
	if (v->cancelled) {
		maybe_end(v);
		return;
	}
	if (res->err) {
		fail_early(v, res->err, res->errmsg);
		return;
	}
	if (!json_is_array(res->data)) {
		fail_early(v, PL_EPARSE, "/cluster/resources did not return a list");
		return;
	}
	v->snap = json_pack("{s:[],s:[],s:[],s:[],s:[]}", PL_SNAP_NODES, PL_SNAP_GUESTS,
			    PL_SNAP_STORAGES, PL_SNAP_BRIDGES, PL_SNAP_TASKS);
	nodes = json_object_get(v->snap, PL_SNAP_NODES);
	v->online = json_array();
	v->offline = json_object();
	json_array_foreach(res->data, i, o) {
		if (strcmp(pl_json_str_or(o, "type", ""), "node") || pl_json_str(o, "node") == NULL)
			continue;
		json_array_append(nodes, o);
		if (!strcmp(pl_json_str_or(o, "status", "online"), "online"))
			json_array_append(v->online, o);
		else
			json_object_set_new(v->offline, pl_json_str(o, "node"), json_true());
	}
	v->nodes = v->online;
	v->names = pl_calloc(json_array_size(v->online) + 1, sizeof(*v->names));
	json_array_foreach(v->online, i, o)
		v->names[i] = pl_json_str(o, "node");
	n = pl_pve_threads() < MAX_SHARDS ? pl_pve_threads() : MAX_SHARDS;
	for (int k = 0; k < n; k++) {
		struct event_config *cfg = event_config_new();
		struct shard *sh = &v->shards[k];
		int r;

		sh->inv = v;
		sh->k = k;
		/* epoll changes batched per loop turn: a connection's event removed
		 * and added back in one turn costs no system call. */
		event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		sh->base = event_base_new_with_config(cfg);
		event_config_free(cfg);
		if (sh->base == NULL)
			pl_die("cannot create an event loop");
		v->n = k + 1;
		if ((r = pl_pve_clone(v->c, sh->base, n, &sh->c, &errmsg)) != 0) {
			fail_early(v, r, errmsg);
			free(errmsg);
			return;
		}
		if (k == 0 && v->background) /* it reads the guest list: gzip, as c */
			pl_pve_compressed(sh->c);
	}
	v->l.nshards = n;
	v->l.guests = json_object_get(v->snap, PL_SNAP_GUESTS);
	clock_gettime(CLOCK_MONOTONIC, &v->t1);
	v->l.items = pl_json_items_new(on_entry, &v->l);
	start_shard(&v->l); /* a server's first worker reads the guest list */
	if (!v->background) {
		/* a command's own loop reads it: it has nothing else to do */
		json_t *q = json_pack("{s:s}", "type", "vm");

		v->on_c = true;
		pl_pve_request_stream(v->c, "GET", "/cluster/resources", q, on_list_body,
				      on_list_done, &v->l);
		json_decref(q);
	}
}

static struct pl_pve_inv *
inventory_start(struct pl_pve *c, const struct pl_pve_inventory_opts *o, pl_pve_inventory_cb cb,
		void *arg)
{
	struct pl_pve_inv *v = pl_calloc(1, sizeof(*v));
	json_t *q;

	v->c = c;
	v->filter = o->filter;
	v->farg = o->farg;
	v->progress = o->progress;
	v->on_guest = o->on_guest;
	v->parg = o->arg;
	v->partial = o->partial;
	v->background = o->background;
	v->cb = cb;
	v->cb_arg = arg;
	v->l.v = v;
	v->l.shards = v->shards;
	pthread_mutex_init(&v->lock, NULL);
	if (pipe2(v->pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		pl_die("cannot make a pipe: %s", strerror(errno));
	v->wake_ev = event_new(pl_pve_base(c), v->pipe[0], EV_READ | EV_PERSIST, on_wake, v);
	event_add(v->wake_ev, NULL);
	clock_gettime(CLOCK_MONOTONIC, &v->t0);
	q = json_pack("{s:s}", "type", "node");
	v->on_c = true;
	pl_pve_request(c, "GET", "/cluster/resources", q, on_nodes, v);
	json_decref(q);
	return v;
}

struct pl_pve_inv *
pl_pve_inventory_start(struct pl_pve *c, const struct pl_pve_inventory_opts *o,
		       pl_pve_inventory_cb cb, void *arg)
{
	return inventory_start(c, o, cb, arg);
}

void
pl_pve_inventory_cancel(struct pl_pve_inv *v)
{
	if (v == NULL || v->cancelled || v->ended)
		return;
	v->cancelled = true;
	atomic_store(&v->stop, true);
	atomic_store(&v->cancel, true);
	atomic_store(&v->listed, true);
	orphan_link(v, true);
	poke(v); /* the end comes from the loop, never inside this call */
}

struct inv_wait {
	bool done;
	int err;
	json_t *snap;
	size_t unread;
	char *msg;
};

static void
inv_waited(int err, json_t *snap, size_t unread, const char *errmsg, void *arg)
{
	struct inv_wait *w = arg;

	w->done = true;
	w->err = err;
	w->snap = json_incref(snap);
	w->unread = unread;
	w->msg = err ? pl_strdup(errmsg ? errmsg : pl_strerror(err)) : NULL;
}

/* The blocking form: the caller's loop run until the callback. */
static int
inventory_wait(struct pl_pve *c, const struct pl_pve_inventory_opts *o, size_t *unread,
	       json_t **snap, char **errmsg)
{
	struct inv_wait w = { 0 };

	*snap = NULL;
	inventory_start(c, o, inv_waited, &w);
	while (!w.done)
		if (event_base_loop(pl_pve_base(c), EVLOOP_ONCE) != 0)
			break;
	if (!w.done) /* the pipe's event is always there: a programmer error */
		pl_die("the inventory stalled: the event loop has nothing left to wait for");
	if (unread)
		*unread = w.unread;
	if (w.err) {
		pl_seterr(errmsg, w.err, "%s", w.msg);
		free(w.msg);
		return w.err;
	}
	*snap = w.snap;
	return 0;
}

int
pl_pve_inventory(struct pl_pve *c, pl_pve_progress_cb progress, pl_pve_guest_cb on_guest,
		 void *arg, size_t *unread, json_t **snap, char **errmsg)
{
	struct pl_pve_inventory_opts o = { .progress = progress, .on_guest = on_guest, .arg = arg,
					   .partial = unread != NULL };

	return inventory_wait(c, &o, unread, snap, errmsg);
}

int
pl_pve_inventory_some(struct pl_pve *c, pl_pve_guest_filter filter, void *farg,
		      pl_pve_progress_cb progress, void *arg, json_t **snap, char **errmsg)
{
	struct pl_pve_inventory_opts o = { .filter = filter, .farg = farg, .progress = progress,
					   .arg = arg };

	return inventory_wait(c, &o, NULL, snap, errmsg);
}
