/*
 * Which LXC templates are where: the content lists of the storages that the
 * config's templates name (`ostemplate:` and `templates:`), fetched per node,
 * and the nodes' appliance index (aplinfo), kept in a cluster snapshot so
 * that plan can list template downloads as changes and validate can say that
 * a template exists nowhere.
 */
#ifndef PL_PLAN_TEMPLATES_H
#define PL_PLAN_TEMPLATES_H

#include "core/common.h"

#include <jansson.h>

struct pl_config;
struct pl_pve;

/* Fill snap["templates"] = {node: {storage: [volid, ...]}} for every online
 * node of snap and storage there that the config's templates name; with
 * aplinfo also snap["aplinfo"] = {node: [template file name, ...]}. A handful
 * of calls (nodes x template storages); a failed call leaves its entry out
 * (then nothing is known about it). Runs the client's loop until done. */
void pl_templates_fetch(struct pl_pve *c, const struct pl_config *cfg, json_t *snap, bool aplinfo);
/* The same on the client's loop: every call of a phase at once, cb (snap is
 * the caller's) once at the end, always from the loop. */
struct pl_templates_fetch;
typedef void (*pl_templates_cb)(json_t *snap, void *arg);
struct pl_templates_fetch *pl_templates_fetch_start(struct pl_pve *c, const struct pl_config *cfg,
						     json_t *snap, bool aplinfo, pl_templates_cb cb,
						     void *arg);
/* No callback after this; the handle goes once the calls in flight answer. */
void pl_templates_fetch_cancel(struct pl_templates_fetch *f);

/* The volids the config needs, each as {volid, storage, template, node?, ptr}:
 * containers' ostemplates (node: the guest's) and `templates:` entries. */
json_t *pl_templates_wanted(const struct pl_config *cfg);

/* Is volid on node (any node when NULL)? *known says whether snap has the
 * content list to tell. */
bool pl_templates_present(const json_t *snap, const char *node, const char *volid, bool *known);
/* Can node (any node when NULL) download volid's file name through aplinfo? */
bool pl_templates_downloadable(const json_t *snap, const char *node, const char *volid);
/* The known template closest to volid (on disk or in aplinfo, as a volid on
 * volid's storage), or NULL; caller frees. */
char *pl_templates_suggest(const json_t *snap, const char *volid);

#endif
