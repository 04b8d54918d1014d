/*
 * Ownership of guests for the front-ends that change it (adopt, import): the
 * project a command acts for, and tagging a live guest with it.
 */
#ifndef PL_CMD_OWNER_H
#define PL_CMD_OWNER_H

#include "core/common.h"

#include <jansson.h>

struct pl_session;

/* Set live's tags to its own plus "pvelab" and "pvelab-<project>", without any
 * other project's tag (PUT .../config). */
int pl_owner_tag(struct pl_session *s, const json_t *live, const char *project, char **errmsg);
/* The project of the session's config, or the one a config at its path would
 * have (caller frees); NULL with *errmsg when none can be named. */
char *pl_owner_project(const struct pl_session *s, char **errmsg);

#endif
