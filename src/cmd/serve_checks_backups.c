/*
 * The newest-backup checks of pvelab serve (checks.cluster.backup_days):
 * after each full sync, the backup content of every storage that holds
 * backups in the refresh's resource list (a shared one once) is read on the
 * loop, and each declared guest's "backup:NAME" result fed to the scheduler,
 * as `pvelab check` decides it (pl_check_backups).
 */
#include "core/common.h"
#include "check/check.h"
#include "cmd/connect.h"
#include "cmd/serve_api.h"
#include "cmd/serve_checks.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "plan/backups.h"
#include "pve/client.h"

#include <time.h>

struct pl_checks_bread {
	struct pl_checks_bread *prev, *next; /* in c->breads */
	struct pl_serve_checks *c;
	char storage[128], node[64];
};

static void
bread_unlink(struct pl_checks_bread *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		q->c->breads = q->next;
	if (q->next)
		q->next->prev = q->prev;
}

/* Every storage answered: decide and feed the checks. */
static void
decide(struct pl_serve_checks *c)
{
	long long days = pl_json_int(c->cl_opts, "backup_days", 0);
	json_t *newest = pl_backups_newest(c->refresh->live, c->bvolumes, time(NULL));
	json_t *res = pl_check_backups(c->s->cfg, newest, days), *x;
	size_t i;

	json_array_foreach(res, i, x)
		pl_check_sched_feed(c->sched, x);
	/* a storage that cannot be read is its own failure (those on it would
	 * look old); shown once one has failed, up again when all answer */
	if (c->berrors || c->backups_failed) {
		x = c->berrors ? json_pack("{s:s,s:s,s:s,s:s}", "name", "backups", "type", "backup",
					   "status", PL_CHECK_DOWN, "error", c->berrors) :
				 json_pack("{s:s,s:s,s:s}", "name", "backups", "type", "backup",
					   "status", PL_CHECK_UP);
		pl_check_sched_feed(c->sched, x);
		json_decref(x);
		c->backups_failed = c->berrors != NULL;
	}
	json_decref(res);
	json_decref(newest);
	json_decref(c->bvolumes);
	c->bvolumes = NULL;
	free(c->berrors);
	c->berrors = NULL;
}

static void
on_content(const struct pl_pve_result *res, void *arg)
{
	struct pl_checks_bread *q = arg;
	struct pl_serve_checks *c = q->c;
	const json_t *v;
	size_t i;

	bread_unlink(q);
	if (res->err) {
		char *e = pl_asprintf("%s%sstorage '%s' on node '%s': %s",
				      c->berrors ? c->berrors : "", c->berrors ? "; " : "",
				      q->storage, q->node, res->errmsg ? res->errmsg : "no answer");

		free(c->berrors);
		c->berrors = e;
	} else {
		json_array_foreach(res->data, i, v) {
			json_t *vol = json_deep_copy(v);

			json_object_set_new(vol, "storage", json_string(q->storage));
			json_array_append_new(c->bvolumes, vol);
		}
	}
	free(q);
	if (c->breads == NULL && !c->bstarting)
		decide(c);
}

void
pl_serve_checks_backups(struct pl_serve_checks *c)
{
	const struct pl_serve_refresh *f = c->refresh;
	json_t *seen;
	const json_t *r;
	size_t i;

	if (pl_json_int(c->cl_opts, "backup_days", 0) <= 0 || !c->s->pve || c->breads || !f->live ||
	    f->sync_ok_at <= c->backups_seen)
		return;
	c->backups_seen = f->sync_ok_at;
	seen = json_object();
	c->bvolumes = json_array();
	c->bstarting = true; /* an answer inside pl_pve_request decides nothing yet */
	json_array_foreach(f->live, i, r) {
		const char *id = pl_json_str(r, "storage"), *node = pl_json_str(r, "node");
		struct pl_checks_bread *q;
		char *key, *path;
		json_t *params;

		if ((key = pl_backups_read_key(r)) == NULL)
			continue;
		if (json_object_get(seen, key) == NULL) {
			json_object_set_new(seen, key, json_true());
			q = pl_calloc(1, sizeof(*q));
			q->c = c;
			snprintf(q->storage, sizeof(q->storage), "%s", id);
			snprintf(q->node, sizeof(q->node), "%s", node);
			q->next = c->breads;
			if (c->breads)
				c->breads->prev = q;
			c->breads = q;
			path = pl_asprintf("/nodes/%s/storage/%s/content", node, id);
			params = json_pack("{s:s}", "content", "backup");
			pl_pve_request(c->s->pve, "GET", path, params, on_content, q);
			json_decref(params);
			free(path);
		}
		free(key);
	}
	json_decref(seen);
	c->bstarting = false;
	if (c->breads == NULL)
		decide(c); /* all answered, or no storage holds backups */
}

void
pl_serve_checks_backups_stop(struct pl_serve_checks *c)
{
	/* the client drops what is in flight without calling back */
	while (c->breads) {
		struct pl_checks_bread *q = c->breads;

		bread_unlink(q);
		free(q);
	}
	json_decref(c->bvolumes);
	c->bvolumes = NULL;
	free(c->berrors);
	c->berrors = NULL;
}
