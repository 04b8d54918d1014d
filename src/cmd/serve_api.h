/*
 * The /api/v1 module of pvelab serve: its route table and what its handlers
 * share (the session: state store, config, API client).
 */
#ifndef PL_CMD_SERVE_API_H
#define PL_CMD_SERVE_API_H

#include "core/common.h"
#include "serve/serve.h"

#include "state/state.h"

struct event;
struct pl_session;
struct pl_cmd_sync_job;
struct pl_serve_runs;

/* The background refresh (serve_refresh.c). */
struct pl_serve_refresh {
	struct pl_session *s;
	const char *cluster; /* its name (borrowed) when serve watches several, else NULL */
	char *tag;           /* "NAME: " before its log lines, or "" */
	struct pl_serve *sv;                 /* where its events go */
	long status_interval, sync_interval; /* seconds */
	struct event *status_ev, *sync_ev;
	bool status_busy;
	struct status_read *status_read; /* the resource list being read, on its thread */
	bool stopping;      /* a drain: no more reads, the running sync may finish */
	json_t *live;       /* the last resource list: counters live here, not in the store */
	json_t *live_by_id; /* vmid (text) -> its guest's entry in live */
	json_t *keys;       /* vmid -> what of each guest the store records, as last seen */
	double status_ok_at, status_error_at;
	char *status_error;
	int status_failures;
	size_t status_guests;        /* in the last list */
	struct pl_cmd_sync_job *job; /* the full sync running, if any */
	bool sync_again;             /* one more asked for while it ran */
	int held;                    /* syncs wait while a run writes the store */
	long long sync_seq, sync_run;
	double sync_started, sync_finished, sync_ok_at;
	struct pl_state_counts sync_counts;
	char *sync_error;
	int sync_failures;
	/* after a sync, what follows it, one step per turn of the loop */
	struct event *post_ev;
	int post_step;
	size_t post_done;   /* guests keyed, then changes told as events, so far */
	size_t post_unread; /* guests the sync could not read */
	json_t *post_snap, *post_changes;
	json_t *post_keys;     /* the next keys, as far as made */
	struct event *drop_ev; /* lists let go of, freed a batch per turn */
	json_t *drop;          /* [list, ...] */
	/* told after each sync that succeeded, with its snapshot (borrowed) */
	void (*on_sync)(const json_t *snap, void *arg);
	void *on_sync_arg;
};

/* Start refreshing s's cluster on s->base (nothing when s has no API client);
 * cluster names it (its events and log lines) when serve watches several. */
void pl_serve_refresh_init(struct pl_serve_refresh *f, struct pl_session *s, const char *cluster,
			   struct pl_serve *sv, long status_interval, long sync_interval);
/* Ask for a full sync now (after the running one); returns its number. */
long long pl_serve_refresh_sync(struct pl_serve_refresh *f);
/* Hold the full syncs (one asked for meanwhile starts at the release): a
 * sync keeps a write transaction open on the server's store while it reads
 * the cluster, and an apply's record must not join it. Counted. */
void pl_serve_refresh_hold(struct pl_serve_refresh *f, bool on);
/* Whether a full sync is running. */
bool pl_serve_refresh_syncing(const struct pl_serve_refresh *f);
/* New intervals (a reload): from the next read on. */
void pl_serve_refresh_set_intervals(struct pl_serve_refresh *f, long status_interval,
				    long sync_interval);
/* Stop reading (a drain): a sync running goes on to its end. */
void pl_serve_refresh_stop(struct pl_serve_refresh *f);
/* What GET /api/v1/sync shows: ages, last errors, the last sync's run. */
json_t *pl_serve_refresh_info(const struct pl_serve_refresh *f);
void pl_serve_refresh_release(struct pl_serve_refresh *f);

/* One cluster serve watches: its session (store, API client) and refresh. */
struct pl_serve_cluster {
	const char *name; /* NULL when serve watches one */
	struct pl_session *s;
	struct pl_serve_refresh *refresh;
	struct pl_serve_runs *runs; /* its runs engine (several clusters; NULL with one) */
};

/* Power actions asked through the API, the newest PL_SERVE_ACTIONS kept. */
#define PL_SERVE_ACTIONS 256

struct pl_serve_api {
	struct pl_serve_module module; /* register this with pl_serve_add */
	struct pl_session *s;          /* the (first) cluster's, which the other modules use */
	struct pl_serve_refresh *refresh;
	const struct pl_serve_cluster *cl; /* every cluster, in the config's order */
	size_t ncl;
	struct pl_serve_cluster one;       /* cl when serve watches one */
	json_t *actions[PL_SERVE_ACTIONS]; /* by id % PL_SERVE_ACTIONS */
	long long action_seq;
};

/* An action on a guest asked through the API (a power action, a snapshot),
 * kept for GET /api/v1/actions/{id}: recorded running, its id returned
 * (*copy, optional: a new reference to the record, for the 202 answer).
 * cluster (NULL with one) says whose guest it is; its end syncs that store. */
long long pl_serve_api_action_new(struct pl_serve_api *api, const char *cluster, const char *action,
				  long long vmid, const char *name, json_t **copy);
/* Its end: result as pl_act_cb gives it ("ok"...); tells the event stream,
 * and syncs the store when it changed something. */
void pl_serve_api_action_end(struct pl_serve_api *api, long long id, const json_t *result);

void pl_serve_api_init(struct pl_serve_api *api, struct pl_session *s,
		       struct pl_serve_refresh *refresh);
/* Several clusters (cl borrowed, cl[0] the one of init): the reads cover
 * them all, each row or object saying whose, and ?cluster=NAME chooses one. */
void pl_serve_api_set_clusters(struct pl_serve_api *api, const struct pl_serve_cluster *cl,
			       size_t n);
/* "home, lab": the clusters serve watches (caller frees). */
char *pl_serve_api_cluster_list(const struct pl_serve_api *api);
/* The cluster a write works on, want its name (?cluster= or a body field,
 * may be NULL): its index into api->cl; -1 once it answered 400, an unknown
 * name or none when serve watches several (what, "a plan", names the write). */
int pl_serve_api_cluster_of(struct pl_serve_req *req, const struct pl_serve_api *api,
			    const char *want, const char *what);
/* The cluster, of those ?cluster= covers, whose store has GUEST: its index
 * into *at and the stored guest into *stored (the caller's). false once it
 * answered: in none (404), in two (400, ?cluster= chooses). */
bool pl_serve_api_find_guest(struct pl_serve_req *req, struct pl_serve_api *api, const char *guest,
			     size_t *at, json_t **stored);
void pl_serve_api_release(struct pl_serve_api *api);

#endif
