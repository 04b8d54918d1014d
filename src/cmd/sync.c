/*
 * `pvelab sync [--dry-run]`: read the whole cluster (one resource list, then
 * configs and node details in parallel) and record it in the state store as
 * one transaction; prints what changed since the last sync.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
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

struct bar {
	bool on;
	int last;
	json_t *sigs; /* vmid -> pl_state_guest_sig, computed while the other answers arrive */
	pthread_mutex_t lock; /* sigs, written from the fetching threads */
};

static void
on_guest(json_t *guest, void *arg)
{
	struct bar *b = arg;
	json_t *sig = pl_state_guest_sig(guest);
	char key[32];

	snprintf(key, sizeof(key), "%lld", pl_json_int(guest, "vmid", 0));
	pthread_mutex_lock(&b->lock);
	json_object_set_new(b->sigs, key, sig);
	pthread_mutex_unlock(&b->lock);
}

static void
progress(size_t done, size_t total, void *arg)
{
	struct bar *b = arg;
	int pct = total ? (int)(done * 100 / total) : 100;
	int w = 30, fill = pct * w / 100;

	if (!b->on || pct == b->last)
		return;
	b->last = pct;
	fprintf(stderr, "\r  syncing [%.*s%*s] %3d%% %zu/%zu", fill,
		"##############################", w - fill, "", pct, done, total);
	if (done == total)
		fputs("\r\033[K", stderr);
	fflush(stderr);
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
	struct bar b = { .on = show_progress, .last = -1, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct timespec t0, t1, t2;
	double c0, c1, c2;
	json_t *snap = NULL;
	int r;

	if ((r = pl_session_api(s, errmsg)) != 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	c0 = cpu_s();
	b.sigs = json_object();
	r = pl_pve_inventory(s->pve, progress, on_guest, &b, &snap, errmsg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	c1 = cpu_s();
	if (b.on && b.last >= 0 && b.last < 100)
		fputs("\r\033[K", stderr);
	if (r != 0) {
		json_decref(b.sigs);
		return r;
	}
	r = pl_state_record_sync_hashed(s->state, snap, b.sigs, dry_run, cnt, changes, NULL,
					errmsg);
	json_decref(b.sigs);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	c2 = cpu_s();
	pl_log_info("sync: fetched in %.3f s (%lu requests, %.3f s CPU), recorded in %.3f s "
		    "(%.3f s CPU)",
		    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		    pl_pve_requests_sent(s->pve), c1 - c0,
		    (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) / 1e9,
		    c2 - c1);
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

	pl_args_init(&a, &pl_cmd_sync, ctx, argc, argv);
	while ((r = pl_args_next(&a)) >= 0)
		dry = true;
	if (r != PL_ARGS_END) {
		pl_args_release(&a);
		return pl_args_exit(r);
	}
	if (a.npos > 0) {
		pl_args_release(&a);
		return pl_usage_error(&pl_cmd_sync, "takes no arguments");
	}
	pl_args_release(&a);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pl_session_open(&s, ctx, PL_NEED_STATE | PL_NEED_API, &err) != 0 ||
	    pl_cmd_sync_now(&s, dry, ctx->tty && isatty(STDERR_FILENO) && ctx->verbosity >= 0,
			    &cnt, &changes, &snap, &err) != 0) {
		pl_error("sync failed: %s", err);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	size_t ng = json_array_size(json_object_get(snap, "guests"));
	size_t nn = json_array_size(json_object_get(snap, "nodes"));

	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_pack("{s:i,s:i,s:i,s:i,s:I,s:I,s:b,s:f,s:I,s:O}", "added",
					cnt.added, "changed", cnt.changed, "removed", cnt.removed,
					"unchanged", cnt.unchanged, "guests", (json_int_t)ng, "nodes",
					(json_int_t)nn, "dry_run", dry, "seconds", secs, "requests",
					(json_int_t)pl_pve_requests_sent(s.pve), "changes", changes));
	} else {
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
		printf("%s+%d new ~%d changed -%d gone%s (%zu guests on %zu nodes in %.2f s)%s\n",
		       dry ? "would record: " : "", cnt.added, cnt.changed, cnt.removed, "", ng, nn,
		       secs, dry ? "; nothing written (--dry-run)" : "");
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
	.help = "Reads /cluster/resources once, then every guest's config, node status and\n"
		"bridges in parallel, and records them in the state database (PVELAB_STATE,\n"
		"state:, or .pvelab/state.db beside the config) as one transaction. Prints\n"
		"'+N new ~N changed -N gone'. Volatile counters (cpu, memory, uptime, traffic)\n"
		"never count as changes.",
	.opts = opts,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
