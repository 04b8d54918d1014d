/*
 * `pvelab sync [--dry-run]`: read the whole cluster (one resource list, then
 * configs and node details in parallel) and record it in the state store as
 * one transaction; prints what changed since the last sync.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/snapshot.h"
#include "plan/runs.h"
#include "pve/client.h"
#include "pve/inventory.h"
#include "state/state.h"

#include <event2/event.h>
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "dry-run", 'n', NULL, "show what would change without writing the state" },
	{ NULL, 0, NULL, NULL },
};

/* One sync being recorded: its write transaction, the guests fetched but not
 * yet written, and the progress bar. */
struct sync_run {
	bool on;  /* show the progress bar */
	int last; /* the percentage shown last */
	struct pl_state *state;
	bool dry_run;
	bool counters;              /* write unchanged guests' counters (pl_state_sync_counters) */
	struct pl_state_ckpt *ckpt; /* the last run's WAL, copied meanwhile */
	struct pl_state_sync *rec;  /* the write transaction, from the first guest on */
	int err;                    /* its begin failed */
	char *errmsg;
	double locked_since; /* another writer held the store's lock since (monotonic s) */
	pthread_mutex_t lock;
	json_t *ready; /* guest, signature, guest, signature...: fetched, not yet recorded */
};

static double
mono_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The write transaction begins with the first guest to record, once the
 * checkpoint that ran during the resource list is done. It never waits for
 * another writer's lock (the loop would stall): while one holds it, the
 * guests wait in memory and the next batch, or the end, tries again. */
static bool
recording(struct sync_run *b)
{
	if (b->rec == NULL && b->err == 0) {
		char *msg = NULL;
		int r;

		pl_state_checkpoint_wait(b->ckpt);
		b->ckpt = NULL;
		r = pl_state_sync_try_begin(b->state, b->dry_run, &b->rec, &msg);
		if (r == PL_ECONFLICT) {
			if (b->locked_since == 0) {
				b->locked_since = mono_s();
				pl_log_info("sync: %s: recording waits for it", msg);
			}
			free(msg);
			return false;
		}
		b->err = r;
		b->errmsg = msg;
		if (b->rec)
			pl_state_sync_counters(b->rec, b->counters);
	}
	return b->rec != NULL;
}

#define BATCH 64 /* guests: the main thread records them as soon as they are in */

/* On a fetching thread: hash the guest there, leave the writing to the main
 * one, and wake it when a batch is ready, so that it does not fall behind. */
static bool
on_guest(json_t *guest, void *arg)
{
	struct sync_run *b = arg;
	json_t *sig = pl_state_guest_sig(guest);
	bool full;

	pthread_mutex_lock(&b->lock);
	json_array_append(b->ready, guest);
	json_array_append_new(b->ready, sig ? sig : json_null()); /* NULL: too big */
	full = json_array_size(b->ready) == 2 * BATCH;
	pthread_mutex_unlock(&b->lock);
	return full;
}

/* On the main thread, while the others fetch: record what has arrived.
 * The transaction's begin reads every guest's hash (milliseconds at 10,000
 * guests): what arrived meanwhile waits for the next call, unless all is
 * due now, so that a server's loop spends one turn on each. */
static void
record_ready(struct sync_run *b, bool all)
{
	bool began = b->rec == NULL;
	json_t *batch;

	if (!recording(b))
		return; /* later (the lock), or never (an error job_done reports) */
	if (began && !all)
		return;
	pthread_mutex_lock(&b->lock);
	batch = b->ready;
	b->ready = json_array();
	pthread_mutex_unlock(&b->lock);
	for (size_t i = 0; i + 1 < json_array_size(batch); i += 2)
		pl_state_sync_guest(b->rec, json_array_get(batch, i), json_array_get(batch, i + 1));
	json_decref(batch);
}

static void
progress(size_t done, size_t total, void *arg)
{
	struct sync_run *b = arg;
	int pct = total ? (int)(done * 100 / total) : 100;
	int w = 30, fill = pct * w / 100;

	record_ready(b, false);
	if (!b->on || pct == b->last)
		return;
	b->last = pct;
	fprintf(stderr, "\r  syncing [%.*s%*s] %3d%% %zu/%zu", fill,
		"##############################", w - fill, "", pct, done, total);
	if (done == total)
		fputs("\r\033[K", stderr);
	fflush(stderr);
}

/* Say which guests were not read, and why: nodes down ("pve3 (2)"), or
 * configs no longer where the resource list put them. */
static void
warn_unread(struct pl_ctx *ctx, const json_t *snap)
{
	json_t *per = json_object(), *g, *c;
	struct pl_buf down, gone;
	size_t i, ndown = 0, ngone = 0;
	const char *node;

	pl_buf_init(&down, 0);
	pl_buf_init(&gone, 0);
	json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, g) {
		const char *why = pl_json_str(g, PL_SNAP_UNREAD);

		if (why == NULL)
			continue;
		node = pl_json_str_or(g, "node", "?");
		if (strcmp(why, PL_PVE_UNREAD_GONE)) {
			ndown++;
			json_object_set_new(per, node, json_integer(pl_json_int(per, node, 0) + 1));
		} else if (ngone++ < 5) {
			pl_buf_addf(&gone, "%s%lld on %s", ngone > 1 ? ", " : "",
				    pl_json_int(g, "vmid", 0), node);
		}
	}
	json_object_foreach(per, node, c)
		pl_buf_addf(&down, "%s%s (%lld)", down.len ? ", " : "", node,
			    (long long)json_integer_value(c));
	if (ndown)
		pl_warn(ctx, "%zu guest%s not read, kept as last synced: node%s %s %s offline or "
			"not answering", ndown, ndown == 1 ? "" : "s",
			json_object_size(per) == 1 ? "" : "s", down.data,
			json_object_size(per) == 1 ? "is" : "are");
	if (ngone)
		pl_warn(ctx, "%zu guest%s not found where the resource list put %s (%s%s): migrated "
			"or deleted since? kept as last synced; the next sync settles %s", ngone,
			ngone == 1 ? "" : "s", ngone == 1 ? "it" : "them", gone.data,
			ngone > 5 ? ", ..." : "", ngone == 1 ? "it" : "them");
	pl_buf_release(&down);
	pl_buf_release(&gone);
	json_decref(per);
}

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A sync on the session's loop: the inventory, its guests recorded as they
 * arrive, and the end of the transaction when the last answer is in. */
struct pl_cmd_sync_job {
	struct sync_run b;
	struct pl_session *s;
	struct pl_pve_inv *inv;
	json_t *perms;     /* GET /access/permissions: what the token may see */
	bool asking_perms; /* that request is in flight */
	bool cancelled;    /* cancelled while it was: its answer frees the job */
	struct event *retry_ev; /* the store was locked at the end: try again */
	json_t *snap;           /* the inventory's, kept for that */
	size_t unread;
	pl_cmd_sync_cb cb;
	void *arg;
};

static void
job_free(struct pl_cmd_sync_job *j)
{
	free(j->b.errmsg);
	if (j->retry_ev)
		event_free(j->retry_ev);
	json_decref(j->snap);
	json_decref(j->b.ready);
	json_decref(j->perms);
	pthread_mutex_destroy(&j->b.lock);
	free(j);
}

static void job_done(int err, json_t *snap, size_t unread, const char *errmsg, void *arg);

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct pl_cmd_sync_job *j = arg;

	job_done(0, j->snap, j->unread, NULL, j);
}

/* All is read but another writer holds the store: try again in 100 ms, for
 * as long as a blocking write would have waited. Returns false when that
 * is over. */
static bool
retry_later(struct pl_cmd_sync_job *j, json_t *snap, size_t unread)
{
	struct timeval tv = { 0, 100000 };

	if (mono_s() - j->b.locked_since > PL_STATE_BUSY_S)
		return false;
	if (j->snap != snap) {
		json_decref(j->snap);
		j->snap = json_incref(snap);
	}
	j->unread = unread;
	if (j->retry_ev == NULL)
		j->retry_ev = evtimer_new(pl_pve_base(j->s->pve), on_retry, j);
	evtimer_add(j->retry_ev, &tv);
	return true;
}

static void
job_done(int err, json_t *snap, size_t unread, const char *errmsg, void *arg)
{
	struct pl_cmd_sync_job *j = arg;
	struct sync_run *b = &j->b;
	struct pl_state_counts cnt = { 0 };
	json_t *changes = NULL;
	long long run = 0;
	char *msg = NULL;
	int r = err;

	j->inv = NULL;
	if (b->on && b->last >= 0 && b->last < 100)
		fputs("\r\033[K", stderr);
	if (r == 0) {
		record_ready(b, true);
		if (!recording(b) && b->err == 0 && retry_later(j, snap, unread))
			return;
		/* a guest gone from the list while out of the token's view is not
		 * deleted (state/sync.c record_gone) */
		if (j->perms)
			json_object_set(snap, PL_SNAP_PERMS, j->perms);
		if (recording(b))
			r = pl_state_sync_end(b->rec, snap, &cnt, &changes, &run, &msg);
		else if (b->err)
			r = pl_seterr(&msg, b->err, "%s",
				      b->errmsg ? b->errmsg : pl_strerror(b->err));
		else
			r = pl_seterr(&msg, PL_ECONFLICT,
				      "the state database stayed locked by another writer for "
				      "%d s: this sync is not recorded",
				      PL_STATE_BUSY_S);
		b->rec = NULL;
	} else {
		pl_state_sync_abort(b->rec);
		b->rec = NULL;
		msg = pl_strdup(errmsg ? errmsg : pl_strerror(r));
	}
	pl_state_checkpoint_wait(b->ckpt);
	b->ckpt = NULL;
	json_object_del(snap, PL_SNAP_PERMS);
	j->cb(r, &cnt, changes, r == 0 ? snap : NULL, run, unread, msg, j->arg);
	json_decref(changes);
	free(msg);
	job_free(j);
}

/* The token's permissions are in (or could not be read): the inventory. */
static void
on_perms(const struct pl_pve_result *res, void *arg)
{
	struct pl_cmd_sync_job *j = arg;
	/* a server's sync (its counters live in memory, not in the store) reads
	 * behind the server's loop */
	struct pl_pve_inventory_opts o = { .progress = progress,
					   .on_guest = on_guest,
					   .partial = true,
					   .background = !j->b.counters,
					   .arg = &j->b };

	j->asking_perms = false;
	if (j->cancelled) {
		job_free(j);
		return;
	}
	if (res->err)
		pl_log_info("sync: the token's permissions not read (%s): every guest counts as "
			    "visible",
			    res->errmsg ? res->errmsg : pl_strerror(res->err));
	else
		j->perms = json_incref(res->data);
	j->b.ckpt = pl_state_checkpoint_start(j->s->state);
	j->inv = pl_pve_inventory_start(j->s->pve, &o, job_done, j);
}

struct pl_cmd_sync_job *
pl_cmd_sync_start(struct pl_session *s, bool dry_run, bool show_progress, bool counters,
		  pl_cmd_sync_cb cb, void *arg, char **errmsg)
{
	struct pl_cmd_sync_job *j;

	if (pl_session_api(s, errmsg) != 0)
		return NULL;
	j = pl_calloc(1, sizeof(*j));
	j->b.on = show_progress;
	j->b.last = -1;
	j->b.dry_run = dry_run;
	j->b.counters = counters;
	pthread_mutex_init(&j->b.lock, NULL);
	j->s = s;
	j->cb = cb;
	j->arg = arg;
	j->b.state = s->state;
	j->b.ready = json_array();
	/* what the token may see, first */
	j->asking_perms = true;
	pl_pve_request(s->pve, "GET", "/access/permissions", NULL, on_perms, j);
	return j;
}

void
pl_cmd_sync_cancel(struct pl_cmd_sync_job *j)
{
	if (j == NULL)
		return;
	if (j->asking_perms) { /* on_perms frees it */
		j->cancelled = true;
		return;
	}
	if (j->inv)
		pl_pve_inventory_cancel(j->inv);
	pl_state_sync_abort(j->b.rec);
	pl_state_checkpoint_wait(j->b.ckpt);
	job_free(j);
}

/* pl_cmd_sync_now's wait for its job. */
struct sync_wait {
	bool done;
	int err;
	struct pl_state_counts cnt;
	json_t *changes, *snap;
	size_t unread;
	long long run;
	char *msg;
	struct timespec at; /* when it ended */
};

static void
waited(int err, const struct pl_state_counts *cnt, json_t *changes, json_t *snap, long long run_id,
       size_t unread, const char *errmsg, void *arg)
{
	struct sync_wait *w = arg;

	w->done = true;
	w->err = err;
	w->cnt = *cnt;
	w->changes = json_incref(changes);
	w->snap = json_incref(snap);
	w->unread = unread;
	w->run = run_id;
	w->msg = errmsg ? pl_strdup(errmsg) : NULL;
	clock_gettime(CLOCK_MONOTONIC, &w->at);
}

/* A sync run for someone (plan/runs.h: pl_runs_via) says who in its summary. */
static void
sync_via(struct pl_state *st, long long id)
{
	json_t *run = NULL;

	if (pl_runs_via() && st && id && pl_runs_get(st, id, &run, NULL) == 0 &&
	    json_is_object(json_object_get(run, "result")))
		pl_runs_update(st, id, json_object_get(run, "result"), NULL);
	json_decref(run);
}

/* The end of a sync job its caller waited for (started at t0, with c0 s
 * of CPU used then): the run says who asked for it, the warnings, the log
 * line; the results as pl_cmd_sync_now gives them. */
static int
sync_end(struct pl_session *s, struct sync_wait *w, bool dry_run, const struct timespec *t0,
	 double c0, struct pl_state_counts *cnt, json_t **changes, json_t **snap_out, char **errmsg)
{
	unsigned long hs, resumed;
	int r = w->err;

	if (r == 0 && !dry_run)
		sync_via(s->state, w->run);
	if (r == 0 && w->cnt.unseen > 0)
		pl_warn(s->ctx,
			"%d guest%s outside the token's view (no VM.Audit on its /vms/ID or "
			"pool): kept as last synced, not deleted",
			w->cnt.unseen, w->cnt.unseen == 1 ? "" : "s");
	if (r == 0 && w->unread > 0)
		warn_unread(s->ctx, w->snap);
	pl_pve_tls_counts(s->pve, &hs, &resumed);
	pl_log_info("sync: fetched and recorded in %.3f s (%lu requests on %lu TLS connections, "
		    "%lu of them "
		    "resumed; %.3f s CPU)",
		    pl_elapsed_s(t0, &w->at), pl_pve_requests_sent(s->pve), hs, resumed,
		    cpu_s() - c0);
	if (r != 0)
		pl_seterr(errmsg, r, "%s", w->msg);
	else if (cnt)
		*cnt = w->cnt;
	if (changes && r == 0)
		*changes = w->changes;
	else
		json_decref(w->changes);
	if (snap_out && r == 0)
		*snap_out = w->snap;
	else
		json_decref(w->snap);
	free(w->msg);
	return r;
}

int
pl_cmd_sync_now(struct pl_session *s, bool dry_run, bool show_progress, struct pl_state_counts *cnt,
		json_t **changes, json_t **snap_out, char **errmsg)
{
	struct sync_wait w = { 0 };
	struct timespec t0;
	double c0;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	c0 = cpu_s();
	if ((r = pl_session_api(s, errmsg)) != 0)
		return r;
	pl_cmd_sync_start(s, dry_run, show_progress, true, waited, &w, errmsg);
	while (!w.done)
		if (event_base_loop(pl_pve_base(s->pve), EVLOOP_ONCE) != 0)
			break;
	if (!w.done)
		pl_die("the sync stalled: the event loop has nothing left to wait for");
	return sync_end(s, &w, dry_run, &t0, c0, cnt, changes, snap_out, errmsg);
}

/* Print what a sync of one cluster did (cluster: its name when the config
 * has several) or, for -o json with several, collect it into all. */
static void
report(struct pl_ctx *ctx, const char *cluster, bool dry, json_t *all, const struct pl_pve *pve,
       const struct pl_state_counts *cnt, json_t *changes, json_t *snap, double secs)
{
	size_t ng = json_array_size(json_object_get(snap, PL_SNAP_GUESTS));
	size_t nn = json_array_size(json_object_get(snap, PL_SNAP_NODES));

	if (ctx->output == PL_OUT_JSON) {
		json_t *res = json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:b,s:f,s:I,s:O}", "added",
					cnt->added, "changed", cnt->changed, "removed",
					cnt->removed, "unchanged", cnt->unchanged, "unread",
					cnt->unread, "guests", (json_int_t)ng, "nodes",
					(json_int_t)nn, "dry_run", dry, "seconds", secs, "requests",
					(json_int_t)pl_pve_requests_sent(pve), "changes", changes);
		if (cluster)
			json_object_set_new(res, "cluster", json_string(cluster));
		if (all)
			json_array_append_new(all, res);
		else
			pl_print_json(res);
	} else if (ctx->verbosity >= 0) { /* -q: only errors */
		if (dry || ctx->verbosity > 0) {
			size_t i;
			json_t *c;

			json_array_foreach(changes, i, c) {
				const char *k = pl_json_str(c, "kind");

				if (i == 50 && json_array_size(changes) > 60) {
					printf("  ... and %zu more\n", json_array_size(changes) - 50);
					break;
				}
				char sign = !strcmp(k, "deleted") ? '-' : !strcmp(k, "updated") ? '~' : '+';
				printf("  %c %lld %s\n", sign, pl_json_int(c, "vmid", 0),
				       pl_json_str_or(c, "name", ""));
			}
		}
		printf("%s%s%s+%d new ~%d changed -%d gone%s (%zu guest%s on %zu node%s in %.2f "
		       "s)%s\n",
		       cluster ? cluster : "", cluster ? ": " : "", dry ? "would record: " : "",
		       cnt->added, cnt->changed, cnt->removed, "", ng, ng == 1 ? "" : "s", nn,
		       nn == 1 ? "" : "s", secs, dry ? "; nothing written (--dry-run)" : "");
	}
}

/* A sync's changes and snapshot, let go of: the process ends now, and
 * freeing 10,000 guests value by value is work for nothing (a tenth of a
 * large sync). Inside the console it goes on. */
static void
let_go(json_t *changes, json_t *snap)
{
	if (pl_session_kept_base()) {
		json_decref(changes);
		json_decref(snap);
	} else {
		pl_json_keep_until_exit(changes);
		pl_json_keep_until_exit(snap);
	}
}

/* Sync the one cluster (the config's only one, --cluster's, or none). */
static int
sync_one(struct pl_ctx *ctx, bool dry)
{
	struct pl_session s;
	struct pl_state_counts cnt = { 0 };
	struct timespec t0, t1;
	json_t *changes = NULL, *snap = NULL;
	char *err = NULL;
	int rc = PL_EXIT_ERROR;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pl_session_open(&s, ctx, PL_NEED_STATE | PL_NEED_API, &err) != 0 ||
	    pl_cmd_sync_now(&s, dry, ctx->tty && isatty(STDERR_FILENO) && ctx->verbosity >= 0, &cnt,
			    &changes, &snap, &err) != 0) {
		pl_error("sync failed: %s", err);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	report(ctx, NULL, dry, NULL, s.pve, &cnt, changes, snap, pl_elapsed_s(&t0, &t1));
	rc = PL_EXIT_OK;
out:
	let_go(changes, snap);
	free(err);
	pl_session_close(&s);
	return rc;
}

/* One cluster of a sync over several: its session and its job. */
struct cluster_sync {
	struct pl_ctx ctx;
	struct pl_session s;
	struct sync_wait w;
	struct timespec t0;
	double c0;
	char *err; /* it could not start */
};

/* Sync several clusters at once on one loop: one that is slow or does not
 * answer holds up none of the others' records. Each is reported when all
 * have ended, in the config's order (no progress bar: they would mix); one
 * that failed does not stop the others, and the exit code says one failed. */
static int
sync_all(struct pl_ctx *ctx, char **cls, size_t ncl, bool dry, json_t *all)
{
	struct event_base *base = event_base_new();
	struct cluster_sync *c = pl_calloc(ncl, sizeof(*c));
	int rc = PL_EXIT_OK;
	bool waiting;

	if (base == NULL)
		pl_die("cannot create an event loop");
	for (size_t i = 0; i < ncl; i++) {
		c[i].ctx = *ctx;
		c[i].ctx.cluster = cls[i];
		clock_gettime(CLOCK_MONOTONIC, &c[i].t0);
		c[i].c0 = cpu_s();
		if (pl_session_open_on(&c[i].s, &c[i].ctx, base, &c[i].err) == 0)
			pl_cmd_sync_start(&c[i].s, dry, false, true, waited, &c[i].w, &c[i].err);
	}
	do {
		waiting = false;
		for (size_t i = 0; i < ncl; i++)
			waiting |= c[i].err == NULL && !c[i].w.done;
	} while (waiting && event_base_loop(base, EVLOOP_ONCE) == 0);
	for (size_t i = 0; i < ncl; i++) {
		struct pl_state_counts cnt = { 0 };
		json_t *changes = NULL, *snap = NULL;

		if (c[i].err == NULL && !c[i].w.done)
			pl_die("the sync stalled: the event loop has nothing left to wait for");
		if (c[i].err == NULL && sync_end(&c[i].s, &c[i].w, dry, &c[i].t0, c[i].c0, &cnt,
						 &changes, &snap, &c[i].err) == 0) {
			report(ctx, cls[i], dry, all, c[i].s.pve, &cnt, changes, snap,
			       pl_elapsed_s(&c[i].t0, &c[i].w.at));
		} else {
			pl_error("sync of cluster '%s' failed: %s", cls[i], c[i].err);
			rc = PL_EXIT_ERROR;
		}
		let_go(changes, snap);
	}
	for (size_t i = 0; i < ncl; i++) {
		pl_session_close(&c[i].s);
		free(c[i].err);
	}
	free(c);
	event_base_free(base);
	return rc;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	json_t *all = NULL;
	char **cls = NULL;
	size_t ncl;
	int r, rc;

	if ((r = pl_args_parse(&a, &pl_cmd_sync, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	ncl = pl_cmd_clusters(ctx, &cls);
	if (ncl > 1 && ctx->output == PL_OUT_JSON)
		all = json_array();
	rc = ncl > 1 ? sync_all(ctx, cls, ncl, pl_args_has(&a, 0), all) :
		       sync_one(ctx, pl_args_has(&a, 0));
	if (all)
		pl_print_json(all);
	pl_cmd_clusters_free(cls, ncl);
	return rc;
}

const struct pl_cmd pl_cmd_sync = {
	.name = "sync",
	.summary = "read the whole cluster into the local state and record what changed",
	.usage = "[--dry-run]",
	.help = "Reads the cluster's resource list (nodes, then guests as the list arrives),\n"
		"every guest's config, node status and bridges in parallel, and records them\n"
		"in the state database (PVELAB_STATE, state:, or .pvelab/state.db beside the\n"
		"config) as one transaction. Prints '+N new ~N changed -N gone'. Volatile\n"
		"counters (cpu, memory, uptime, traffic) never count as changes.",
	.opts = opts,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
