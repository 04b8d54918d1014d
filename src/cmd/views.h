/*
 * The answers of the read commands as JSON, one function per question: the
 * CLI prints them (-o json) or renders them as text, and pvelab serve's REST
 * API sends them, so both give the same JSON from the same code.
 */
#ifndef PL_CMD_VIEWS_H
#define PL_CMD_VIEWS_H

#include "core/common.h"

#include <jansson.h>

struct pl_session;
struct pl_state;

/* `status`: {"nodes":[...],"guests":{"total","qemu":{},"lxc":{}},"last_sync"}. */
int pl_view_status(struct pl_state *st, json_t **out, char **errmsg);

/* `list`'s filters and order; NULL fields select every guest. type is "vm",
 * "qemu", "lxc" or "ct"; sort vmid (NULL), name, node, status, mem or cpu. */
struct pl_view_list {
	const char *type, *node, *status, *tag, *sort;
};
/* Check f: PL_EINVAL with *field ("type", "sort") and *errmsg when a value is
 * not one of the choices. */
int pl_view_list_check(const struct pl_view_list *f, const char **field, char **errmsg);
/* live (may be NULL): vmid (as text) -> the guest's entry in the resource
 * list as last read. Its counters (cpu, mem, uptime, traffic...) replace
 * those the store kept, for the keys the answer has: a server that keeps them
 * in memory answers with them, the CLI passes NULL. */
void pl_view_overlay(json_t *guest, const json_t *live);

/* `list`: the guests f selects, in its order (f checked first). */
int pl_view_list(struct pl_state *st, const struct pl_view_list *f, const json_t *live,
		 json_t **out, char **errmsg);

/* `describe GUEST`: the guest as last synced with its recent tasks; with
 * snapshots, also its snapshots read from its node when the API is set up
 * (*snap_err, optional, says why not). PL_ENOENT for an unknown guest. */
int pl_view_describe(struct pl_session *s, const char *guest, bool snapshots, const json_t *live,
		     json_t **out, char **snap_err, char **errmsg);

/* `history GUEST`: [{id,kind,sha256,run,ts,changes,state}], oldest first
 * (deleted guests too, by name or vmid). PL_ENOENT when there is none. */
int pl_view_history(struct pl_state *st, const char *guest, json_t **out, char **errmsg);

/* The history of every guest, newest first, a page at a time (the query's
 * texts, each optional): guest (vmid, name, or a key such as storage:local),
 * node, kind, since (Unix seconds), before (a row id: the page after one
 * whose "next" it was), limit (1-500, default 50). Out: {items: [{id, guest,
 * vmid, name, node, type, kind, sha256, run, ts, changes}], next}; next is the
 * id to pass as before for the older page, null at the end. A bad filter:
 * PL_EINVAL with *field naming it; an unknown guest: PL_ENOENT. */
struct pl_view_timeline {
	const char *guest, *node, *kind, *since, *before, *limit;
};
int pl_view_timeline(struct pl_state *st, const struct pl_view_timeline *q, json_t **out,
		     const char **field, char **errmsg);

#endif
