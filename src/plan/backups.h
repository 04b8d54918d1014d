/*
 * What backups the cluster holds: each guest's newest vzdump archive and its
 * age, read from the backup content of every storage that holds backups,
 * and (on request) the guests no backup job covers, as PVE reports them
 * (/cluster/backup-info/not-backed-up). A read on the caller's loop.
 */
#ifndef PL_PLAN_BACKUPS_H
#define PL_PLAN_BACKUPS_H

#include "core/common.h"

#include <jansson.h>
#include <time.h>

struct event_base;
struct pl_pve;

/* Each guest of resources (entries of /cluster/resources) with its newest
 * archive among volumes (entries of .../content with "volid", "vmid",
 * "ctime", and the "storage" they were read from): [{"vmid","name","type",
 * "node","count","newest","ctime","age","storage","size"}], by vmid; a
 * guest without one has count 0 and no newest. New reference. */
json_t *pl_backups_newest(const json_t *resources, const json_t *volumes, time_t now);

/* Whether a storage's content list ("images,backup") holds backups. */
bool pl_backups_holds(const char *content);
/* When r (a /cluster/resources entry) is an available storage holding
 * backups: the key under which its archives are read once, its id for a
 * shared storage (the same archives on every node), else "ID@NODE" (caller
 * frees). NULL for any other entry. */
char *pl_backups_read_key(const json_t *r);

/* Called once, from the loop; result borrowed:
 * {"time","guests":[as pl_backups_newest],"storages":["storage@node"...],
 *  "errors":["..."],"not_backed_up":[{"vmid","name","type"}] (with missing)}.
 * err is nonzero when the guests could not be read or, with missing, PVE's
 * list of guests without a job could not (errmsg says why). */
typedef void (*pl_backups_cb)(int err, json_t *result, const char *errmsg, void *arg);
struct pl_backups;
/* Start the read on base and return at once. */
struct pl_backups *pl_backups_start(struct event_base *base, struct pl_pve *c, bool missing,
				    pl_backups_cb cb, void *arg);
/* The same with base's loop run until it ends (for the CLI); *result is a
 * new reference, also on error (with what could be read). */
int pl_backups_list(struct event_base *base, struct pl_pve *c, bool missing, json_t **result,
		    char **errmsg);

#endif
