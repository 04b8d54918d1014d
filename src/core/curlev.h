/*
 * libcurl's multi interface driven by a libevent loop: the glue (socket and
 * timer callbacks) that every front-end making outbound requests on the loop
 * would otherwise repeat. Transfers are easy handles the caller prepares.
 */
#ifndef PL_CORE_CURLEV_H
#define PL_CORE_CURLEV_H

#include "core/common.h"

#include <curl/curl.h>

struct event_base;
struct pl_curlev;

/* Called on the loop when a transfer ends: its handle (still in the multi:
 * remove it with pl_curlev_remove before cleanup) and curl's result. */
typedef void (*pl_curlev_done_cb)(CURL *e, CURLcode rc, void *arg);

/* A multi handle on base; done gets every finished transfer. */
struct pl_curlev *pl_curlev_new(struct event_base *base, pl_curlev_done_cb done, void *arg);
void pl_curlev_free(struct pl_curlev *c);
/* Start e (the caller's; CURLOPT_PRIVATE is free for its own use). */
void pl_curlev_add(struct pl_curlev *c, CURL *e);
/* Stop e and take it out of the multi; the caller cleans it up. */
void pl_curlev_remove(struct pl_curlev *c, CURL *e);

#endif
