/*
 * Health checks (docs/checks.md): the checks a config declares, resolved into
 * one JSON spec each (spec.c), the cluster's own checks from one
 * /cluster/resources answer (cluster.c), and the engine that probes them
 * concurrently on the caller's event_base (engine.c): no thread, no loop.
 */
#ifndef PL_CHECK_CHECK_H
#define PL_CHECK_CHECK_H

#include "core/common.h"

#include <jansson.h>

struct event_base;
struct pl_config;
struct pl_diags;
struct pl_buf;

/* Most bytes of an HTTP body, TCP banner or DNS answer a check keeps and
 * matches: a bigger answer is cut there, never buffered whole. */
#define PL_CHECK_READ_MAX ((size_t)64 << 10)

/* Built-in defaults, used when neither the check nor `checks:` set a key. */
#define PL_CHECK_INTERVAL 60
#define PL_CHECK_TIMEOUT 10
#define PL_CHECK_RETRIES 0
#define PL_CHECK_CONCURRENCY 64
#define PL_CHECK_WARN_DAYS 14
#define PL_CHECK_FAIL_DAYS 0

/* Result statuses, best first; a run's worst decides the exit code. */
#define PL_CHECK_UP "up"
#define PL_CHECK_WARNING "warning"
#define PL_CHECK_DOWN "down"
#define PL_CHECK_SKIPPED "skipped"

/* The probe checks of c, one resolved spec each (a new array): service
 * checks of every guest (GUEST/SERVICE; type from `check:`, else from the
 * protocol; host from `host:`, else the guest's first static IPv4), then
 * `checks.targets`. A service that cannot be probed (no address, UDP) is a
 * spec with "skip" set to the reason. */
json_t *pl_check_specs(const struct pl_config *c);

/* The cluster checks' settings from `checks.cluster` (a new object:
 * node_offline, guest_state, storage_percent, cert_days, backup_days). */
json_t *pl_check_cluster_opts(const struct pl_config *c);

/* What one probe saw, for pl_check_classify. */
struct pl_check_obs {
	const char *error; /* transport failure (refused, timeout...), or NULL */
	long code;         /* HTTP status, 0 if none */
	const char *data;  /* body, banner or DNS answers (comma separated) */
	size_t len;
	long long not_after; /* peer certificate's expiry (Unix time), 0 if none */
	long long now;
	double latency_ms;
};

/* Decide a spec's result from what its probe saw: result gets "status",
 * "error" (why not up), "code", "tls_expiry", "tls_days_left". */
void pl_check_classify(const json_t *spec, const struct pl_check_obs *o, json_t *result);

/* Cluster checks from a /cluster/resources answer (every type) and the
 * config's guests: node offline, guest not in its declared state, storage
 * above its threshold. Returns a new array of results; *causes (new object)
 * maps a guest name to the check that explains its service checks failing
 * (its node offline, or it not running). */
json_t *pl_check_cluster(const struct pl_config *c, const json_t *opts, const json_t *resources,
			 json_t **causes);

/* One TLS spec per API endpoint of urls (PVELAB_URL's comma-separated
 * list): its certificate's expiry only, a warning within cl_opts' cert_days
 * (the connection's trust is the client's pin, not this check's). */
void pl_check_cert_specs(json_t *specs, const json_t *cl_opts, const char *urls);

/* Mark a service check whose guest's state explains it (causes as
 * pl_check_cluster gives them, cluster its results): "skip" when the guest
 * is declared stopped and is, else "caused_by" and "cause" (down, not
 * probed). pl_check_mark_causes does it to each spec of an array. */
void pl_check_mark_cause(json_t *spec, const json_t *cluster, const json_t *causes);
void pl_check_mark_causes(json_t *specs, const json_t *cluster, const json_t *causes);

/* The newest-backup check of each declared guest the cluster has, from
 * pl_backups_newest's list (plan/backups.h): a warning when its newest
 * archive is older than days, or when it has none. A new array. */
json_t *pl_check_backups(const struct pl_config *c, const json_t *newest, long long days);

/* DNS for the types evdns does not resolve (dns.c). Most bytes of a query
 * and of an answer read (no EDNS is asked for: 512 is the protocol's UDP
 * size; more is accepted). */
#define PL_CHECK_DNS_MAX 512
#define PL_CHECK_DNS_READ 4096
/* A record type's number ("MX" -> 15; A, AAAA, CNAME, MX, NS, PTR, SOA, SRV,
 * TXT, CAA), 0 for another. */
int pl_check_dns_type(const char *name);
/* The query for name (an IPv4 address for PTR: its in-addr.arpa name) into
 * out (PL_CHECK_DNS_MAX bytes); PL_EINVAL when name cannot be one. */
int pl_check_dns_query(const char *name, int qtype, uint16_t id, uint8_t *out, size_t *len);
/* The records of type qtype in answer m (to query id), one line of text each
 * into out ("10 mx.example.org" for MX; "PRIO WEIGHT PORT TARGET" for SRV;
 * "MNAME RNAME SERIAL" for SOA; TXT's strings joined; CAA "FLAGS TAG
 * VALUE"). PL_ENOENT for an error code or no record, PL_EPARSE for
 * anything malformed; the message says which. */
int pl_check_dns_parse(const uint8_t *m, size_t len, uint16_t id, int qtype, struct pl_buf *out,
		       char **errmsg);

/* The worst status of results: 0 all up (or skipped), 1 one is down,
 * 2 warnings only. */
int pl_check_exit_code(const json_t *results);

/* ---- the engine ---- */

struct pl_check_run;
/* Called on the loop for each result as it is decided (borrowed). */
typedef void (*pl_check_each_cb)(const json_t *result, void *arg);
/* Called once on the loop at the end: results (borrowed) in specs' order. */
typedef void (*pl_check_done_cb)(json_t *results, void *arg);

/* Probe every spec (array of resolved specs; a spec with "skip" is reported
 * skipped, one with "caused_by" down and not probed), at most concurrency
 * at once, each retried up to its retries before it is down. Returns at once;
 * each and done run later on base. NULL each: none. */
struct pl_check_run *pl_check_start(struct event_base *base, const json_t *specs,
				    size_t concurrency, pl_check_each_cb each,
				    pl_check_done_cb done, void *arg);
/* Stop: no more callbacks, everything in flight dropped. Only before done. */
void pl_check_cancel(struct pl_check_run *r);

/* ---- the scheduler (pvelab serve; sched.c) ---- */

/* Results kept in memory per check (GET /api/v1/checks/{name}). */
#define PL_CHECK_RECENT 20

struct pl_check_sched;

struct pl_check_sched_opts {
	size_t concurrency; /* probes in flight at once (0: PL_CHECK_CONCURRENCY) */
	long flap_window;   /* seconds over which state changes are counted */
	int flap_threshold; /* that many changes in the window: flapping (0: never) */
	/* Before a probe: the owner may mark the spec (a copy) "caused_by" and
	 * "cause" (down, not probed) or "skip" from what it knows. May be NULL. */
	void (*prepare)(json_t *spec, void *arg);
	/* After each result: the check's state (borrowed) and, when the result
	 * confirmed a change, the change (borrowed; else NULL). */
	void (*result)(const json_t *state, const json_t *change, void *arg);
	void *arg;
};

/* A scheduler on base: every check added is probed at a random moment of
 * its first interval, then every interval (retry_interval while it fails
 * short of its retries), never twice at once (a probe still running when the
 * next is due skips that one: "overlaps"), at most concurrency at once. A
 * check is down after retries+1 down results in a row; any other status
 * holds at its first result. */
struct pl_check_sched *pl_check_sched_new(struct event_base *base,
					  const struct pl_check_sched_opts *o);
void pl_check_sched_free(struct pl_check_sched *s);
/* Schedule a resolved spec (copied). A name already there is replaced. */
void pl_check_sched_add(struct pl_check_sched *s, const json_t *spec);
/* A result decided elsewhere (the cluster's checks) through the same state
 * machine, as a check without a schedule of its own. */
void pl_check_sched_feed(struct pl_check_sched *s, const json_t *result);
/* Every check's state, by name (a new array): name, type, guest, target,
 * status ("pending" before its first result), since, last (result), fails,
 * probes, changes, flaps, flapping, overlaps, lag_ms, interval, retries. */
json_t *pl_check_sched_list(const struct pl_check_sched *s);
/* One check's state with "results": its last PL_CHECK_RECENT results,
 * newest first (a new object), or NULL. */
json_t *pl_check_sched_get(const struct pl_check_sched *s, const char *name);
/* The checks' states in the order they were added, without a copy (the
 * metrics read them on each scrape): n of them, i-th borrowed. */
size_t pl_check_sched_count(const struct pl_check_sched *s);
const json_t *pl_check_sched_state(const struct pl_check_sched *s, size_t i);

#endif
