/*
 * Pure parsing of what a Proxmox VE node sends back: the {"data":...} envelope
 * and its error shapes, UPIDs, permission messages, lock messages, and the
 * jittered backoff schedule. No I/O here, so all of it is unit- and fuzz-tested.
 */
#ifndef PL_PVE_RESP_H
#define PL_PVE_RESP_H

#include "core/common.h"

#include <jansson.h>

/* A parsed response. data/errors point into body (borrowed); message is owned. */
struct pl_pve_resp {
	long status;      /* HTTP status */
	json_t *body;     /* whole parsed body, or NULL (empty or not JSON) */
	json_t *data;     /* body["data"], borrowed; NULL when absent */
	json_t *errors;   /* body["errors"] (per-parameter messages), borrowed, or NULL */
	char *message;    /* error text: body "message", else the reason phrase; NULL on 2xx */
};

/* Parse status, reason phrase (may be NULL) and body into r. Returns 0 for a
 * 2xx with a JSON envelope, PL_EPARSE for an unreadable 2xx body, else the
 * PL_E* matching the status (401 PL_EAUTH, 403 PL_EPERM, other PL_EHTTP). */
int pl_pve_resp_parse(long status, const char *reason, const char *body, size_t len,
		      struct pl_pve_resp *r);
/* Free what r owns; r may be re-used. */
void pl_pve_resp_release(struct pl_pve_resp *r);
/* One line describing r's error: message plus "param: why" pairs (caller frees). */
char *pl_pve_resp_errtext(const struct pl_pve_resp *r);

/* The fields of a UPID "UPID:node:pid:pstart:starttime:type:id:user:". */
struct pl_pve_upid {
	char node[64];
	unsigned long pid, pstart;
	long long starttime;
	char type[64];
	char id[128];
	char user[128];
};

/* Parse a UPID; PL_EPARSE when it is not one. */
int pl_pve_upid_parse(const char *s, struct pl_pve_upid *u);

/* From "Permission check failed (/vms/100, VM.PowerMgmt)" extract the path and
 * privilege; false when the message does not name them. */
bool pl_pve_perm_parse(const char *msg, char *path, size_t pathlen, char *priv, size_t privlen);
/* The smallest built-in role holding priv (of "A|B", A), for a pveum hint. */
const char *pl_pve_role_for(const char *priv);
/* From "VM 100 is locked (backup)" / "CT is locked (snapshot)" extract the lock. */
bool pl_pve_lock_parse(const char *msg, char *lock, size_t locklen);

/* Delay before retry attempt n (1-based): full jitter over min(cap, base*2^(n-1)),
 * never below base/2. rnd is a uniform random value in [0,1). */
long pl_pve_backoff_ms(int attempt, long base_ms, long cap_ms, double rnd);

#endif
