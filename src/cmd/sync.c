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
#include "pve/client.h"
#include "pve/inventory.h"
#include "state/state.h"

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
	struct pl_state_ckpt *ckpt; /* the last run's WAL, copied meanwhile */
	struct pl_state_sync *rec;  /* the write transaction, from the first guest on */
	int err;                    /* its begin failed */
	char *errmsg;
	pthread_mutex_t lock;
	json_t *ready; /* guest, signature, guest, signature...: fetched, not yet recorded */
};

/* The write transaction begins with the first guest to record, once the
 * checkpoint that ran during the resource list is done. */
static bool
recording(struct sync_run *b)
{
	if (b->rec == NULL && b->err == 0) {
		pl_state_checkpoint_wait(b->ckpt);
		b->ckpt = NULL;
		b->err = pl_state_sync_begin(b->state, b->dry_run, &b->rec, &b->errmsg);
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

/* On the main thread, while the others fetch: record what has arrived. */
static void
record_ready(struct sync_run *b)
{
	json_t *batch;

	pthread_mutex_lock(&b->lock);
	batch = b->ready;
	b->ready = json_array();
	pthread_mutex_unlock(&b->lock);
	for (size_t i = 0; i + 1 < json_array_size(batch) && recording(b); i += 2)
		pl_state_sync_guest(b->rec, json_array_get(batch, i), json_array_get(batch, i + 1));
	json_decref(batch);
}

static void
progress(size_t done, size_t total, void *arg)
{
	struct sync_run *b = arg;
	int pct = total ? (int)(done * 100 / total) : 100;
	int w = 30, fill = pct * w / 100;

	record_ready(b);
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

int
pl_cmd_sync_now(struct pl_session *s, bool dry_run, bool show_progress,
		struct pl_state_counts *cnt, json_t **changes, json_t **snap_out, char **errmsg)
{
	struct sync_run b = { .on = show_progress,
			      .last = -1,
			      .dry_run = dry_run,
			      .lock = PTHREAD_MUTEX_INITIALIZER };
	struct timespec t0, t1, t2;
	double c0, c1, c2;
	unsigned long hs, resumed;
	size_t unread = 0;
	json_t *snap = NULL, *perms = NULL;
	char *perr = NULL;
	int r;

	if ((r = pl_session_api(s, errmsg)) != 0)
		return r;
	/* what the token may see, first: a guest that leaves the list while out
	 * of its view is not deleted (state/sync.c record_gone) */
	if (pl_pve_call(s->pve, "GET", "/access/permissions", NULL, &perms, &perr) != 0) {
		pl_log_info("sync: the token's permissions not read (%s): every guest counts as "
			    "visible",
			    perr);
		free(perr);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	c0 = cpu_s();
	b.state = s->state;
	b.ckpt = pl_state_checkpoint_start(s->state);
	b.ready = json_array();
	r = pl_pve_inventory(s->pve, progress, on_guest, &b, &unread, &snap, errmsg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	c1 = cpu_s();
	if (b.on && b.last >= 0 && b.last < 100)
		fputs("\r\033[K", stderr);
	if (r == 0) {
		record_ready(&b);
		if (perms)
			json_object_set(snap, PL_SNAP_PERMS, perms);
		if (recording(&b))
			r = pl_state_sync_end(b.rec, snap, cnt, changes, NULL, errmsg);
		json_object_del(snap, PL_SNAP_PERMS);
		if (r == 0 && cnt && cnt->unseen > 0)
			pl_warn(s->ctx,
				"%d guest%s outside the token's view (no VM.Audit on its "
				"/vms/ID or pool): kept as last synced, not deleted",
				cnt->unseen, cnt->unseen == 1 ? "" : "s");
		else
			r = pl_seterr(errmsg, b.err, "%s", b.errmsg ? b.errmsg : pl_strerror(b.err));
	} else {
		pl_state_sync_abort(b.rec);
	}
	json_decref(perms);
	pl_state_checkpoint_wait(b.ckpt);
	if (r == 0 && unread > 0)
		warn_unread(s->ctx, snap);
	free(b.errmsg);
	json_decref(b.ready);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	c2 = cpu_s();
	pl_pve_tls_counts(s->pve, &hs, &resumed);
	pl_log_info("sync: fetched (and recorded on the way) in %.3f s (%lu requests on %lu TLS "
		    "connections, %lu of them resumed; %.3f s CPU), finished in %.3f s (%.3f s CPU)",
		    pl_elapsed_s(&t0, &t1), pl_pve_requests_sent(s->pve), hs, resumed, c1 - c0,
		    pl_elapsed_s(&t1, &t2), c2 - c1);
	if (snap_out && r == 0)
		*snap_out = snap;
	else
		json_decref(snap);
	return r;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_state_counts cnt = { 0 };
	struct pl_args a;
	struct timespec t0, t1;
	json_t *changes = NULL, *snap = NULL;
	char *err = NULL;
	bool dry = false;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_sync, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	dry = pl_args_has(&a, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pl_session_open(&s, ctx, PL_NEED_STATE | PL_NEED_API, &err) != 0 ||
	    pl_cmd_sync_now(&s, dry, ctx->tty && isatty(STDERR_FILENO) && ctx->verbosity >= 0,
			    &cnt, &changes, &snap, &err) != 0) {
		pl_error("sync failed: %s", err);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = pl_elapsed_s(&t0, &t1);
	size_t ng = json_array_size(json_object_get(snap, PL_SNAP_GUESTS));
	size_t nn = json_array_size(json_object_get(snap, PL_SNAP_NODES));

	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:b,s:f,s:I,s:O}", "added",
					cnt.added, "changed", cnt.changed, "removed", cnt.removed,
					"unchanged", cnt.unchanged, "unread", cnt.unread,
					"guests", (json_int_t)ng, "nodes",
					(json_int_t)nn, "dry_run", dry, "seconds", secs, "requests",
					(json_int_t)pl_pve_requests_sent(s.pve), "changes", changes));
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
		printf("%s+%d new ~%d changed -%d gone%s (%zu guest%s on %zu node%s in %.2f s)%s\n",
		       dry ? "would record: " : "", cnt.added, cnt.changed, cnt.removed, "", ng,
		       ng == 1 ? "" : "s", nn, nn == 1 ? "" : "s", secs,
		       dry ? "; nothing written (--dry-run)" : "");
	}
	rc = PL_EXIT_OK;
out:
	/* The process ends now: freeing 10,000 guests value by value is work for
	 * nothing (a tenth of a large sync). */
	pl_json_keep_until_exit(changes);
	pl_json_keep_until_exit(snap);
	free(err);
	pl_session_close(&s);
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
