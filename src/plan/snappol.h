/*
 * Snapshot policies and snapshot retention: which guests a policy selects,
 * which snapshots are whose (cv4pve-autosnap's names, so that both tools can
 * share a cluster), which ones a retention deletes, and a run on the caller's
 * event loop that takes each policy's snapshot and prunes. Only snapshots of
 * the policy's own label are ever deleted, and apply's pvelab-pre-RUN
 * snapshots only by their own retention (apply_snapshots.keep).
 */
#ifndef PL_PLAN_SNAPPOL_H
#define PL_PLAN_SNAPPOL_H

#include "core/common.h"

#include <jansson.h>
#include <time.h>

struct event_base;
struct pl_pve;

/* What cv4pve-autosnap writes as the description of its snapshots, and
 * what marks one as a policy's (with its name). */
#define PL_SNAPPOL_DESCRIPTION "cv4pve-autosnap"

/* The snapshot name cv4pve-autosnap gives label at t: "auto<label>" and
 * t's local time as yyMMddHHmmss. 0, or PL_EINVAL when it does not fit. */
int pl_snappol_name(const char *label, time_t t, char *out, size_t outlen);
/* Whether snap (an entry of GET .../snapshot) is one of label's: named
 * auto<label> and 12 digits, and described as cv4pve-autosnap describes its
 * own ("cv4pve-autosnap", or "eve4pve-autosnap" of its old name; line
 * breaks aside). A snapshot someone named so by hand has another
 * description and is never taken for one. */
bool pl_snappol_is_label(const json_t *snap, const char *label);
/* The run a pvelab-pre-RUN snapshot belongs to, or 0 for any other name. */
long long pl_snappol_apply_run(const char *name);
/* The names of label's snapshots among snaps beyond the newest keep, oldest
 * first: what a run of the policy deletes. New reference. */
json_t *pl_snappol_prune_list(const json_t *snaps, const char *label, long long keep);
/* The names of pvelab-pre-RUN snapshots among snaps beyond the keep of the
 * newest runs, oldest first. New reference. */
json_t *pl_snappol_apply_prune_list(const json_t *snaps, long long keep);
/*
 * The guests (entries of /cluster/resources, type qemu or lxc) policy
 * selects: those named in "guests" (name or vmid), those carrying one of
 * "tags", those in one of "pools", less those in "exclude"; each once, by
 * vmid. Names of "guests" that match none are appended to *missing (an
 * array, when missing is not NULL). New reference.
 */
json_t *pl_snappol_select(const json_t *policy, const json_t *resources, json_t *missing);

struct pl_snappol_opts {
	time_t now;           /* names the snapshots taken (0: the time at start) */
	long task_timeout_ms; /* per task (0: 10 min) */
	int jobs;             /* guests worked on at once (0: 4) */
	/* each guest's outcome as it is known (borrowed for the call) */
	void (*progress)(const json_t *entry, void *arg);
	void *arg;
};

/* Called once, from the loop, when the run ends; result is borrowed. */
typedef void (*pl_snappol_done_cb)(int r, json_t *result, void *arg);
struct pl_snappol;

/*
 * Run policies (an array of snapshot_policies entries: label, keep, vmstate,
 * guests, tags, pools, exclude) on base: read the guests, then for each one
 * selected (by each policy, in order) ask PVE whether its volumes can be
 * snapshotted, take auto<label><time> (described as cv4pve-autosnap does)
 * unless a snapshot of that name is there, and delete that label's oldest
 * beyond keep. A guest whose storage cannot snapshot is "unsupported" and
 * keeps what it has. result:
 * {"time":T,"ok":N,"failed":N,"unsupported":N,"skipped":N,"missing":[names],
 *  "guests":[{"guest","vmid","node","type","label","status","snapshot",
 *  "taken":bool,"pruned":[names],"kept":N,"error"}]}, status one of "ok",
 * "failed", "unsupported", "skipped" (a template). r is 0 when no guest
 * failed, none was unsupported and every named guest exists, else PL_ETASK.
 * o is copied; what it points to must live until cb.
 */
struct pl_snappol *pl_snappol_start(struct event_base *base, struct pl_pve *c,
				    const json_t *policies, const struct pl_snappol_opts *o,
				    pl_snappol_done_cb cb, void *arg);
/*
 * Apply's retention on base: guests is an array of {"guest","vmid","node",
 * "type"}; each keeps its newest keep pvelab-pre-RUN snapshots and the older
 * are deleted. result and r as pl_snappol_start's (label "apply").
 */
struct pl_snappol *pl_snappol_prune_apply_start(struct event_base *base, struct pl_pve *c,
						const json_t *guests, long long keep,
						const struct pl_snappol_opts *o,
						pl_snappol_done_cb cb, void *arg);
/* pl_snappol_start and pl_snappol_prune_apply_start with base's loop run
 * until they end (for the CLI); *result is a new reference. */
int pl_snappol_run(struct event_base *base, struct pl_pve *c, const json_t *policies,
		   const struct pl_snappol_opts *o, json_t **result);
int pl_snappol_prune_apply(struct event_base *base, struct pl_pve *c, const json_t *guests,
			   long long keep, const struct pl_snappol_opts *o, json_t **result);

#endif
