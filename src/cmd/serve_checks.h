/*
 * The checks module of pvelab serve: the declared checks on their schedule,
 * the cluster's own checks from the background refresh, state changes in the
 * store and on the event stream, alerts, and /api/v1/checks.
 */
#ifndef PL_CMD_SERVE_CHECKS_H
#define PL_CMD_SERVE_CHECKS_H

#include "core/common.h"
#include "serve/serve.h"

struct event;
struct pl_session;
struct pl_serve_refresh;
struct pl_check_sched;
struct pl_alerts;
struct pl_checks_bread;

struct pl_serve_checks {
	struct pl_serve_module module; /* register this with pl_serve_add */
	struct pl_session *s;
	struct pl_serve_refresh *refresh;
	struct pl_serve *sv;
	struct pl_check_sched *sched;
	struct pl_alerts *alerts;
	json_t *cl_opts; /* checks.cluster's settings */
	json_t *cluster; /* the cluster checks' last results */
	json_t *causes;  /* guest -> the cluster check that explains its failures */
	json_t *pending; /* changes not yet written to the store */
	struct event *flush_ev, *cluster_ev;
	double cluster_seen; /* the resource list the cluster checks last read */
	json_t *silences;    /* pvelab silence's, as last read from the store */
	long long busy_run;  /* an apply, rollback or destroy running, as last read */
	double silences_at;  /* when those were read */
	/* the newest-backup checks' read (serve_checks_backups.c) */
	struct pl_checks_bread *breads; /* storages asked, not answered */
	json_t *bvolumes;               /* their archives so far */
	char *berrors;                  /* the storages that failed, and why */
	bool bstarting, backups_failed;
	double backups_seen; /* the sync whose resource list they last read */
};

/* Schedule s's checks on s->base and read its alerts: section (a notifier it
 * cannot use is an error naming it). refresh gives the cluster's resource
 * list; sv gets the "check" and "alert" events. */
int pl_serve_checks_init(struct pl_serve_checks *c, struct pl_session *s,
			 struct pl_serve_refresh *refresh, struct pl_serve *sv, char **errmsg);
void pl_serve_checks_release(struct pl_serve_checks *c);

/* Read every backup storage's content after a new full sync and feed the
 * newest-backup checks (checks.cluster.backup_days; nothing when 0);
 * _stop drops a read in flight. */
void pl_serve_checks_backups(struct pl_serve_checks *c);
void pl_serve_checks_backups_stop(struct pl_serve_checks *c);

struct pl_expo;
/* The checks' series of /metrics (serve_checks_metrics.c), from the
 * scheduler's states in memory: arg is the pl_serve_checks. */
void pl_serve_checks_metrics(struct pl_expo *e, void *arg);

#endif
