/*
 * The check before a rollback (plan/rollback_check.h): two reads per
 * snapshot rollback, the guest's snapshot list and, only when a newer
 * snapshot exists, the snapshot's config.
 */
#include "core/common.h"
#include "plan/rollback_check.h"
#include "core/err.h"
#include "core/json.h"
#include "plan/wayback.h"
#include "pve/client.h"

#include <event2/event.h>

struct check {
	struct pl_pve *c;
	const json_t *storages;
	json_t *blocked;
	int pending;
	int err;
	char *errmsg;
	pl_rollback_check_cb cb;
	void *arg;
};

struct one {
	struct check *k;
	const json_t *change; /* borrowed from the plan, which outlives the check */
	json_t *snaps;
};

static void
finish(struct check *k)
{
	k->cb(k->err, k->blocked, k->errmsg, k->arg);
	json_decref(k->blocked);
	free(k->errmsg);
	free(k);
}

static void
one_done(struct one *o)
{
	struct check *k = o->k;

	json_decref(o->snaps);
	free(o);
	if (--k->pending == 0)
		finish(k);
}

static void
failed(struct one *o, const struct pl_pve_result *res)
{
	if (o->k->err == 0) {
		o->k->err = res->err;
		o->k->errmsg = pl_strdup(res->errmsg ? res->errmsg : "the cluster did not answer");
	}
}

static void
block(struct one *o, char *why)
{
	if (why)
		json_array_append_new(o->k->blocked,
				      json_pack("{s:s,s:s}", "guest",
						pl_json_str_or(o->change, "guest", "?"), "reason",
						why));
	free(why);
}

static void
on_config(const struct pl_pve_result *res, void *arg)
{
	struct one *o = arg;
	const json_t *c = o->change;

	if (res->err)
		failed(o, res);
	else
		block(o, pl_plan_rollback_blocker(pl_json_str_or(c, "snapshot", ""), o->snaps,
						  res->data,
						  !strcmp(pl_json_str_or(c, "type", ""), "lxc"),
						  pl_json_str(c, "node"), o->k->storages));
	one_done(o);
}

static char *
guest_path(const json_t *c, const char *suffix)
{
	return pl_asprintf("/nodes/%s/%s/%lld/snapshot%s", pl_json_str_or(c, "node", ""),
			   pl_json_str_or(c, "type", "qemu"), pl_json_int(c, "vmid", 0), suffix);
}

static void
on_snapshots(const struct pl_pve_result *res, void *arg)
{
	struct one *o = arg;
	const char *snap = pl_json_str_or(o->change, "snapshot", "");
	char *suffix, *path;

	if (res->err) {
		failed(o, res);
		one_done(o);
		return;
	}
	o->snaps = json_incref(res->data);
	/* the list alone says when the config does not matter */
	switch (pl_plan_snapshots_after(snap, o->snaps)) {
	case -1:
		block(o, pl_plan_rollback_blocker(snap, o->snaps, NULL, false, NULL, NULL));
		/* fall through */
	case 0:
		one_done(o);
		return;
	}
	suffix = pl_asprintf("/%s/config", snap);
	path = guest_path(o->change, suffix);
	pl_pve_request(o->k->c, "GET", path, NULL, on_config, o);
	free(path);
	free(suffix);
}

static void
nothing_to_ask(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finish(arg);
}

void
pl_rollback_check_start(struct pl_pve *c, const json_t *plan, const json_t *storages,
			pl_rollback_check_cb cb, void *arg)
{
	struct check *k = pl_calloc(1, sizeof(*k));
	const json_t *ch;
	size_t i;

	k->c = c;
	k->storages = storages;
	k->blocked = json_array();
	k->cb = cb;
	k->arg = arg;
	k->pending = 1; /* this loop's own, dropped below */
	json_array_foreach(json_object_get(plan, "changes"), i, ch) {
		struct one *o;
		char *path;

		if (!pl_json_str(ch, "snapshot") ||
		    strcmp(pl_json_str_or(ch, "action", ""), "rollback"))
			continue;
		o = pl_calloc(1, sizeof(*o));
		o->k = k;
		o->change = ch;
		k->pending++;
		path = guest_path(ch, "");
		pl_pve_request(c, "GET", path, NULL, on_snapshots, o);
		free(path);
	}
	if (--k->pending == 0 &&
	    event_base_once(pl_pve_base(c), -1, EV_TIMEOUT, nothing_to_ask, k, NULL) != 0)
		pl_die("rollback check: cannot schedule its answer");
}
