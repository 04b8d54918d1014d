/*
 * Alerts of pvelab serve (docs/checks.md, "Alerts"): the config's alerts:
 * section (notifiers and routes), the decision of what to notify as check
 * states change, and delivery to ntfy, webhooks, e-mail and Alertmanager on
 * the caller's loop, each notifier with its own queue, retried with backoff.
 */
#ifndef PL_CHECK_ALERTS_H
#define PL_CHECK_ALERTS_H

#include "core/common.h"

#include <jansson.h>

struct event_base;
struct pl_config;
struct pl_alerts;

/* Told of each notice's fate: ev {"check","event" (firing, resolved,
 * repeat), "notifier", "state" (sent, failed, dropped, held), "error"?,
 * "reason"?} (borrowed). */
typedef void (*pl_alerts_event_cb)(const json_t *ev, void *arg);

/* The notifiers and routes of c's alerts: section, their secrets read now
 * (from files or the environment: never from the YAML). Fails on a notifier
 * it cannot use, naming it and the key. *out is NULL (and 0 returned) when
 * there is no notifier. */
int pl_alerts_new(struct event_base *base, const struct pl_config *c, pl_alerts_event_cb cb,
		  void *arg, struct pl_alerts **out, char **errmsg);
void pl_alerts_free(struct pl_alerts *a);
/* Asked before a notice: why the check's notices are held now (a new
 * string: "silence 3 (nginx upgrade)"), or NULL. */
typedef char *(*pl_alerts_hold_fn)(const json_t *state, void *arg);
void pl_alerts_set_hold(struct pl_alerts *a, pl_alerts_hold_fn fn, void *arg);
/* A check's state after a result (the scheduler's): notify what changed
 * since the last notice of this check. A failure explained by another check
 * ("caused_by" in its last result), a flapping check, one in a maintenance
 * window (alerts.maintenance) or held by the hold function is held back;
 * what still holds once the hold ends is notified then. */
void pl_alerts_update(struct pl_alerts *a, const json_t *state);
/* Notifiers with their counters (no secret, URLs without path or query)
 * and the checks firing: {"notifiers":[...],"firing":[...]} (new). */
json_t *pl_alerts_info(const struct pl_alerts *a);

#endif
