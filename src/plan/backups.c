/*
 * The cluster's backups (see backups.h): one /cluster/resources for the
 * guests and the storages, then every storage holding backups listed at once
 * (a shared one once, a local one on each of its nodes), and PVE's own list
 * of the guests no job covers when asked; the newest archive per guest is
 * worked out when the last answer is in.
 */
#include "core/common.h"
#include "plan/backups.h"
#include "core/err.h"
#include "core/json.h"
#include "pve/client.h"

#include <event2/event.h>

struct pl_backups {
	struct event_base *base;
	struct pl_pve *c;
	bool missing;
	pl_backups_cb cb;
	void *arg;
	json_t *resources, *volumes, *result;
	int pending;
	int err;
	char *errmsg;
	struct event *done_ev;
};

struct listing {
	struct pl_backups *b;
	char *storage, *node;
};

json_t *
pl_backups_newest(const json_t *resources, const json_t *volumes, time_t now)
{
	json_t *by = json_object(), *out, *e;
	const json_t *g, *v;
	size_t i;

	json_array_foreach(resources, i, g) {
		const char *type = pl_json_str_or(g, "type", "");
		char key[32];

		if (strcmp(type, "qemu") && strcmp(type, "lxc"))
			continue;
		snprintf(key, sizeof(key), "%lld", pl_json_int(g, "vmid", 0));
		json_object_set_new(by, key,
				    json_pack("{s:I,s:s,s:s,s:s,s:i}", "vmid",
					      (json_int_t)pl_json_int(g, "vmid", 0), "name",
					      pl_json_str_or(g, "name", ""), "type", type, "node",
					      pl_json_str_or(g, "node", ""), "count", 0));
	}
	json_array_foreach(volumes, i, v) {
		char key[32];
		long long ctime = pl_json_int(v, "ctime", 0);

		snprintf(key, sizeof(key), "%lld", pl_json_int(v, "vmid", -1));
		if ((e = json_object_get(by, key)) == NULL || pl_json_str(v, "volid") == NULL)
			continue; /* a guest gone since, or no guest's */
		json_object_set_new(e, "count", json_integer(pl_json_int(e, "count", 0) + 1));
		if (pl_json_str(e, "newest") &&
		    (ctime < pl_json_int(e, "ctime", 0) ||
		     (ctime == pl_json_int(e, "ctime", 0) &&
		      strcmp(pl_json_str(v, "volid"), pl_json_str(e, "newest")) < 0)))
			continue;
		json_object_set_new(e, "newest", json_string(pl_json_str(v, "volid")));
		json_object_set_new(e, "ctime", json_integer(ctime));
		json_object_set_new(e, "age", json_integer(now > ctime ? now - ctime : 0));
		json_object_set_new(e, "storage", json_string(pl_json_str_or(v, "storage", "")));
		json_object_set_new(e, "size", json_integer(pl_json_int(v, "size", 0)));
	}
	out = pl_json_values_sorted(by, "vmid");
	json_decref(by);
	return out;
}

static void
on_done_ev(evutil_socket_t fd, short what, void *arg)
{
	struct pl_backups *b = arg;

	(void)fd;
	(void)what;
	if (b->resources) /* else there is nothing to say about guests */
		json_object_set_new(b->result, "guests",
				    pl_backups_newest(b->resources, b->volumes,
						      (time_t)pl_json_int(b->result, "time", 0)));
	b->cb(b->err, b->result, b->errmsg, b->arg);
	event_free(b->done_ev);
	json_decref(b->resources);
	json_decref(b->volumes);
	json_decref(b->result);
	free(b->errmsg);
	free(b);
}

static void
one_less(struct pl_backups *b)
{
	struct timeval tv = { 0, 0 };

	if (--b->pending == 0)
		evtimer_add(b->done_ev, &tv);
}

static void
fail(struct pl_backups *b, int err, const char *what, const char *msg)
{
	if (b->err == 0) {
		b->err = err ? err : PL_EIO;
		b->errmsg = pl_asprintf("%s: %s", what, msg ? msg : pl_strerror(b->err));
	}
}

static void
on_content(const struct pl_pve_result *res, void *arg)
{
	struct listing *l = arg;
	struct pl_backups *b = l->b;
	const json_t *v;
	size_t i;

	if (res->err) {
		json_array_append_new(
			json_object_get(b->result, "errors"),
			json_sprintf("storage '%s' on node '%s': %s", l->storage, l->node,
				     res->errmsg ? res->errmsg : pl_strerror(res->err)));
	} else {
		json_array_foreach(res->data, i, v) {
			json_t *c = json_deep_copy(v);

			json_object_set_new(c, "storage", json_string(l->storage));
			json_array_append_new(b->volumes, c);
		}
	}
	free(l->storage);
	free(l->node);
	free(l);
	one_less(b);
}

static void
on_missing(const struct pl_pve_result *res, void *arg)
{
	struct pl_backups *b = arg;

	if (res->err)
		fail(b, res->err, "cannot read the guests no backup job covers", res->errmsg);
	else
		json_object_set(b->result, "not_backed_up", res->data);
	one_less(b);
}

bool
pl_backups_holds(const char *content)
{
	for (const char *p = content ? content : ""; *p;) {
		size_t n = strcspn(p, ",");

		if (n == 6 && !strncmp(p, "backup", 6))
			return true;
		p += n + (p[n] != '\0');
	}
	return false;
}

char *
pl_backups_read_key(const json_t *r)
{
	const char *id = pl_json_str(r, "storage"), *node = pl_json_str(r, "node");

	if (strcmp(pl_json_str_or(r, "type", ""), "storage") || !id || !node ||
	    !pl_backups_holds(pl_json_str(r, "content")) ||
	    strcmp(pl_json_str_or(r, "status", "available"), "available"))
		return NULL;
	return pl_json_bool(r, "shared", false) ? pl_strdup(id) : pl_asprintf("%s@%s", id, node);
}

static void
on_resources(const struct pl_pve_result *res, void *arg)
{
	struct pl_backups *b = arg;
	json_t *seen = json_object();
	const json_t *r;
	size_t i;

	if (res->err) {
		fail(b, res->err, "cannot read the cluster's guests", res->errmsg);
		json_decref(seen);
		one_less(b);
		return;
	}
	b->resources = json_incref(res->data);
	json_array_foreach(res->data, i, r) {
		const char *id = pl_json_str(r, "storage"), *node = pl_json_str(r, "node");
		struct listing *l;
		char *key;
		json_t *q;

		if ((key = pl_backups_read_key(r)) == NULL)
			continue;
		if (json_object_get(seen, key)) {
			free(key);
			continue;
		}
		json_object_set_new(seen, key, json_true());
		json_array_append_new(json_object_get(b->result, "storages"),
				      json_sprintf("%s@%s", id, node));
		free(key);
		l = pl_calloc(1, sizeof(*l));
		l->b = b;
		l->storage = pl_strdup(id);
		l->node = pl_strdup(node);
		b->pending++;
		key = pl_asprintf("/nodes/%s/storage/%s/content", node, id);
		q = json_pack("{s:s}", "content", "backup");
		pl_pve_request(b->c, "GET", key, q, on_content, l);
		json_decref(q);
		free(key);
	}
	json_decref(seen);
	one_less(b);
}

struct pl_backups *
pl_backups_start(struct event_base *base, struct pl_pve *c, bool missing, pl_backups_cb cb,
		 void *arg)
{
	struct pl_backups *b = pl_calloc(1, sizeof(*b));

	b->base = base;
	b->c = c;
	b->missing = missing;
	b->cb = cb;
	b->arg = arg;
	b->volumes = json_array();
	b->result =
		json_pack("{s:I,s:[],s:[]}", "time", (json_int_t)time(NULL), "storages", "errors");
	b->done_ev = evtimer_new(base, on_done_ev, b);
	b->pending = 1;
	pl_pve_request(c, "GET", "/cluster/resources", NULL, on_resources, b);
	if (missing) {
		b->pending++;
		pl_pve_request(c, "GET", "/cluster/backup-info/not-backed-up", NULL, on_missing, b);
	}
	return b;
}

struct waited {
	bool done;
	int err;
	json_t *result;
	char *errmsg;
};

static void
waited_cb(int err, json_t *result, const char *errmsg, void *arg)
{
	struct waited *w = arg;

	w->done = true;
	w->err = err;
	w->result = json_incref(result);
	w->errmsg = errmsg ? pl_strdup(errmsg) : NULL;
}

int
pl_backups_list(struct event_base *base, struct pl_pve *c, bool missing, json_t **result,
		char **errmsg)
{
	struct waited w = { 0 };

	pl_backups_start(base, c, missing, waited_cb, &w);
	while (!w.done)
		event_base_loop(base, EVLOOP_ONCE);
	*result = w.result;
	if (w.err)
		pl_seterr(errmsg, w.err, "%s", w.errmsg ? w.errmsg : pl_strerror(w.err));
	free(w.errmsg);
	return w.err;
}
