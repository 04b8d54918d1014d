/*
 * The metrics module of pvelab serve: /metrics and prometheus-pve-exporter's
 * /pve?target=…, answered from the server's in-memory picture of the cluster
 * (the refresh's resource list plus the few cluster-wide reads kept here),
 * never waiting on the cluster.
 */
#ifndef PL_CMD_SERVE_METRICS_H
#define PL_CMD_SERVE_METRICS_H

#include "core/common.h"
#include "serve/expo.h"
#include "serve/serve.h"

#include <jansson.h>
#include <pthread.h>

struct event;
struct pl_session;
struct pl_serve_refresh;
struct pl_planning_refresh;

/* What prometheus-pve-exporter's collectors read, as the API answered it
 * (every member borrowed; NULL when not read). */
struct pl_metrics_pve_in {
	const json_t *status;        /* GET /cluster/status */
	const json_t *resources;     /* GET /cluster/resources (every type) */
	const json_t *version;       /* GET /version */
	const json_t *not_backed_up; /* GET /cluster/backup-info/not-backed-up */
	const json_t *qdevice;       /* GET /cluster/config/qdevice (NULL: failed) */
	/* node name -> {"subscription": {...}, "replication": [...]} */
	const json_t *nodes;
	/* [{vmid, type, node, onboot}] of the guests whose config has onboot */
	const json_t *onboot;
	/* resources as read by pl_metrics_index_new (NULL: read here) */
	const struct pl_metrics_index *index;
	/* the families of a gzip answer as last compressed, PL_METRICS_SEGS of
	 * them, kept and spliced in while unchanged (NULL: none kept) */
	struct pl_expo_seg *segs;
	/* changes whenever status, version, not_backed_up, qdevice, nodes or
	 * onboot is another answer: the small cluster-wide families and the
	 * node collectors' are kept while it holds (0: they are written) */
	unsigned long long gen;
};
#define PL_METRICS_SEGS 23

/* The resource list read once into what the collectors need (it holds a
 * reference to resources): a server makes it once per refresh. */
struct pl_metrics_index;
struct pl_metrics_index *pl_metrics_index_new(const json_t *resources);
/* Another reference to ix (each is given back with pl_metrics_index_free). */
struct pl_metrics_index *pl_metrics_index_ref(struct pl_metrics_index *ix);
void pl_metrics_index_free(struct pl_metrics_index *ix);
/* The guests of the list in its order: *i a cursor from 0; false past the end. */
bool pl_metrics_index_guest(const struct pl_metrics_index *ix, size_t *i, const char **id,
			    long long *vmid);
/* Whether ix was made from this list. */
bool pl_metrics_index_of(const struct pl_metrics_index *ix, const json_t *resources);

struct pl_metrics_pve_opts {
	bool cluster;     /* the cluster collectors (cluster=1) */
	bool node;        /* the node collectors (node=1) */
	const char *only; /* the node collectors for this node only (NULL: every node) */
	bool deprecated;  /* pve_network_transmit_bytes & co. (the exporter's gauges) */
	bool config;      /* pve_onboot_status (the exporter's config collector) */
};

/* Write the series prometheus-pve-exporter v3.x writes for these answers:
 * the same names, types, labels and label values (serve_metrics_pve.c). */
void pl_metrics_pve(struct pl_expo *e, const struct pl_metrics_pve_in *in,
		    const struct pl_metrics_pve_opts *o);
/* Where the writing of an answer stands: its next part, how far into it. */
struct pl_metrics_cursor {
	int part;
	size_t at;
};
/* The same in parts, for an answer sent as its client reads: write the part
 * at c (one family, or ~1 MB of a bigger one when no segment is kept) and
 * move c on; false once all is written. in->index must be set. */
bool pl_metrics_pve_next(struct pl_expo *e, const struct pl_metrics_pve_in *in,
			 const struct pl_metrics_pve_opts *o, struct pl_metrics_cursor *c);

/* The onboot list of pl_metrics_pve_in from guests ([{vmid, type, node,
 * config}], as a sync's snapshot holds them); new reference. */
json_t *pl_metrics_onboot(const json_t *guests);

/* Python's str() of a JSON scalar, as the exporter turns values into labels
 * (1 -> "1", true -> "True", null -> "None"); writes into buf (size given). */
const char *pl_metrics_pystr(const json_t *v, char *buf, size_t size);

/* The API's calls by method and path template, with a latency histogram:
 * fed from the client's threads, read on the loop. */
#define PL_METRICS_BUCKETS 12
#define PL_METRICS_PATHS 256
struct pl_metrics_api {
	pthread_mutex_t mu;
	size_t n;
	struct {
		char method[8];
		char path[96];
		unsigned long long count, errors, buckets[PL_METRICS_BUCKETS];
		double sum;
	} calls[PL_METRICS_PATHS];
};
/* /nodes/pve1/qemu/100/config -> /nodes/{node}/qemu/{vmid}/config. */
void pl_metrics_path_template(const char *path, char *out, size_t size);

struct read;
struct pl_metrics_answer;

struct pl_serve_metrics {
	struct pl_serve_module module; /* register this with pl_serve_add */
	struct pl_serve_route routes[3];
	struct pl_session *s;
	struct pl_serve_refresh *refresh;
	int auth; /* PL_METRICS_AUTH_* */
	bool deprecated, config;
	struct event *ev;      /* the cluster-wide reads, every status interval */
	int busy, slow_busy;   /* requests in flight: those, and the reads after a sync */
	struct read *inflight; /* the reads asked and not answered (serve_metrics_reads.c) */
	/* the picture: the answers as last read (gen counts their changes) */
	json_t *status, *version, *not_backed_up, *qdevice, *nodes, *onboot;
	unsigned long long gen;
	json_t *next_nodes; /* the nodes' answers of the round in flight */
	json_t *snapshots;  /* "vmid" -> [snaptime...] of its snapshots */
	json_t *backups;    /* "vmid" -> [ctime...] of its backup archives */
	json_t *certs;      /* node -> [{filename, notafter}] */
	json_t *next_snapshots, *next_backups, *next_certs;
	json_t *drift;   /* the last plan's changes ([{id, class}]); NULL: no plan */
	json_t *pending; /* the last plan's pending-until-reboot guests */
	double plan_at, reads_at, slow_at;
	int read_errors, slow_errors;
	bool status_failed, backups_failed; /* in the round in flight */
	char *plan_error;                   /* why the last plan could not be made (NULL: it was) */
	struct pl_planning_refresh *planning;
	/* the process's one (the sync's threads may outlive the module) */
	struct pl_metrics_api *api;
	struct pl_metrics_index *index; /* of the refresh's resource list, as last seen */
	unsigned long long indexes;     /* indexes made so far */
	/* the families of gzip answers, compressed, by format and query; made
	 * again as soon as the picture changes, while scrapes use them */
	struct {
		char key[192];
		double used; /* when a scrape last asked for it (0: free) */
		struct pl_expo_seg segs[PL_METRICS_SEGS];
		int fmt; /* the query, to make them again (o.only points to only) */
		struct pl_metrics_pve_opts o;
		char only[128];
		unsigned long long made_index, made_gen; /* the picture they show */
		bool asked; /* by a scrape, since they were last made ahead */
	} cache[4];
	unsigned long long segs_made[2]; /* by scrapes, ahead of them */
	struct event *warm_tick, *warm_ev;
	struct pl_metrics_answer *warm;    /* the one being made ahead, a family a turn */
	struct pl_metrics_answer *answers; /* being sent (serve_metrics.c) */
	double render_s;   /* how long the last answer took */
	unsigned long long scrapes;
	/* another module's series, written after pvelab's own (NULL: none) */
	void (*more)(struct pl_expo *e, void *arg);
	void *more_arg;
};

enum { PL_METRICS_AUTH_NONE, PL_METRICS_AUTH_BEARER, PL_METRICS_AUTH_TLS };

/* The reads that keep the picture (serve_metrics_reads.c): started after the
 * refresh (they hook its syncs), stopped before the module is released. */
void pl_metrics_reads_start(struct pl_serve_metrics *m);
void pl_metrics_reads_stop(struct pl_serve_metrics *m);
/* Unix time, with fractions. */
double pl_metrics_now(void);

/* Set up the module from the session's serve.metrics config; *errmsg on a bad one. */
int pl_serve_metrics_init(struct pl_serve_metrics *m, struct pl_session *s,
			  struct pl_serve_refresh *refresh, char **errmsg);
/* Start its reads (after the refresh has started). */
void pl_serve_metrics_start(struct pl_serve_metrics *m);
void pl_serve_metrics_release(struct pl_serve_metrics *m);

#endif
