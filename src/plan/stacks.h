/*
 * Docker compose stacks inside guests (docs/stacks.md): each guest's
 * `stacks:` rendered into the files deploy writes (compose files, .env,
 * secret env files, extra files) with a hash per file and per stack, and
 * compared with what the state store recorded at the last deploy:
 * create / update (which files, a diff of the files without secrets) /
 * unchanged. The content of a secret never leaves the rendered stack: the
 * plan and the store get its hash only.
 */
#ifndef PL_PLAN_STACKS_H
#define PL_PLAN_STACKS_H

#include "core/common.h"

#include <jansson.h>

struct pl_config;

/* Every stack of the guests the config declares (only those named in
 * guests, by name, when guests is not NULL), rendered:
 * [{"guest","vmid"?,"type","name","directory","profiles":[],"transport",
 *   "up","ps","down" (argv arrays: docker compose -p NAME --project-directory
 *   DIR -f FILE... --env-file FILE... --profile P... VERB...),
 *   "sha256","files":[{"path","mode","secret","sha256","_data"}]}]
 * where "_data" is the file's content (secrets too: strip it with
 * pl_stacks_public before any output). profile, when not NULL, replaces
 * every stack's profiles. Errors name the config key and the file. */
int pl_stacks_render(const struct pl_config *cfg, const json_t *guests, const char *profile,
		     json_t **out, char **errmsg);
/* A rendered stack without file contents (new reference): what a plan shows
 * and what the store records ("text" kept for files without secrets, for
 * the next diff). */
json_t *pl_stacks_public(const json_t *stack, bool keep_text);
/* Compare rendered stacks with the store's records (pl_state_stacks):
 * [{"guest","vmid","name","action":"create|update|unchanged","files":[
 *   {"path","change":"create|update|delete","secret","sha256"?,"diff"?}]}]
 * (new reference): a created stack lists every file; a file's new sha256
 * and diff only when it holds no secret. A stack is matched by vmid and
 * name. */
json_t *pl_stacks_compare(const json_t *rendered, const json_t *recorded);
/* "-old\n+new\n" lines of a line diff of a and b, at most max_lines lines
 * (then a "... N more" line). Caller frees. */
char *pl_stacks_diff(const char *a, const char *b, int max_lines);

#endif
