/*
 * What a notice of pvelab serve's alerts says (notice.c), apart from how it
 * travels (alerts.c): one check's notice as each kind of notifier gets it,
 * and the one grouped notice a group window's notices become.
 */
#ifndef PL_CHECK_NOTICE_H
#define PL_CHECK_NOTICE_H

#include "core/common.h"

#include <jansson.h>

struct pl_buf;

enum pl_notice_type {
	PL_NOTICE_NTFY,
	PL_NOTICE_WEBHOOK,
	PL_NOTICE_EMAIL,
	PL_NOTICE_ALERTMANAGER,
};

/* Seconds between two posts of a firing alert to Alertmanager, and its
 * endsAt ahead: Alertmanager resolves it if pvelab stops. */
#define PL_NOTICE_AM_RESEND 60
#define PL_NOTICE_AM_ENDS (4 * PL_NOTICE_AM_RESEND)

/* "critical" for down, "warning" for warning, else NULL. */
const char *pl_notice_severity(const char *status);
/* One check's notice of event (firing, resolved, repeat, refresh) at
 * status (the one resolved, for resolved), prev the status notified before
 * (or NULL), since its start: {"state","event","status","previous"?,"since",
 * "title","message","doc" (the webhook's JSON)} (new). */
json_t *pl_notice_item(const json_t *state, const char *event, const char *status, const char *prev,
		       double since);
/* Its body for a notifier of type with config cfg, into b. */
void pl_notice_body(struct pl_buf *b, enum pl_notice_type type, const json_t *cfg,
		    const json_t *item);
/* The one body of several items (not for Alertmanager) into b: a title with
 * counts, a line per check. Returns [{"check","event"}] of them (new). */
json_t *pl_notice_group(struct pl_buf *b, enum pl_notice_type type, const json_t *cfg,
			const json_t *items);

#endif
