/*
 * The /api/v1 module of pvelab serve: its route table and what its handlers
 * share (the session: state store, config, API client).
 */
#ifndef PL_CMD_SERVE_API_H
#define PL_CMD_SERVE_API_H

#include "core/common.h"
#include "serve/serve.h"

struct pl_session;

struct pl_serve_api {
	struct pl_serve_module module; /* register this with pl_serve_add */
	struct pl_session *s;
};

void pl_serve_api_init(struct pl_serve_api *api, struct pl_session *s);

#endif
