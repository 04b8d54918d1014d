/*
 * LXC templates on the cluster's storages and in the appliance index (see
 * templates.h).
 */
#include "core/common.h"
#include "plan/templates.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "core/str.h"
#include "pve/client.h"

#include <event2/event.h>

/* "local:vztmpl/debian.tar.zst" -> "local" */
static void
volid_storage(const char *volid, char *out, size_t outlen)
{
	snprintf(out, outlen, "%.*s", (int)strcspn(volid, ":"), volid);
}

/* "local:vztmpl/debian.tar.zst" -> "debian.tar.zst" */
static const char *
volid_file(const char *volid)
{
	const char *slash = strrchr(volid, '/'), *colon = strchr(volid, ':');

	return slash ? slash + 1 : colon ? colon + 1 : volid;
}

json_t *
pl_templates_wanted(const struct pl_config *cfg)
{
	json_t *out = json_array();
	const json_t *g, *t;
	size_t i;

	json_array_foreach(pl_config_guests(cfg), i, g) {
		const char *volid = pl_json_str(g, "ostemplate");
		char storage[128], ptr[64];

		if (volid == NULL || strcmp(pl_json_str_or(g, "type", "vm"), "lxc") || !strchr(volid, ':'))
			continue;
		volid_storage(volid, storage, sizeof(storage));
		snprintf(ptr, sizeof(ptr), "/guests/%zu/ostemplate", i);
		json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s?,s:s,s:s}", "volid", volid,
						     "storage", storage, "template", volid_file(volid),
						     "node", pl_json_str(g, "node"), "ptr", ptr,
						     "guest", pl_json_str_or(g, "name", "")));
	}
	json_array_foreach(pl_config_get(cfg, "/templates"), i, t) {
		const char *storage = pl_json_str_or(t, "storage", "local");
		const char *file = pl_json_str(t, "template");
		char *volid, ptr[64];

		if (file == NULL)
			continue;
		volid = pl_asprintf("%s:vztmpl/%s", storage, file);
		snprintf(ptr, sizeof(ptr), "/templates/%zu/template", i);
		json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s?,s:s}", "volid", volid, "storage",
						     storage, "template", file, "node",
						     pl_json_str(t, "node"), "ptr", ptr));
		free(volid);
	}
	return out;
}

/* Is storage listed on node in snap's storages? */
static bool
storage_on(const json_t *snap, const char *storage, const char *node)
{
	const json_t *s;
	size_t i;

	json_array_foreach(json_object_get(snap, PL_SNAP_STORAGES), i, s)
		if (!strcmp(pl_json_str_or(s, "storage", ""), storage) &&
		    !strcmp(pl_json_str_or(s, "node", ""), node))
			return true;
	return false;
}

/* The content lists, then the appliance index of the nodes that miss a
 * template: each phase's calls in parallel on the client's loop. */
struct pl_templates_fetch {
	struct pl_pve *c;
	json_t *snap, *wanted, *lists, *apl;
	bool aplinfo, cancelled, listed;
	int pending; /* requests with this as their argument */
	pl_templates_cb cb;
	void *arg;
	struct event *later; /* ends a phase with no calls from the loop */
};

/* One call's answer: where it goes. */
struct tpl_req {
	struct pl_templates_fetch *f;
	char *node, *storage; /* storage NULL: the node's aplinfo */
};

static void tpl_next(struct pl_templates_fetch *f);

static void
tpl_free(struct pl_templates_fetch *f)
{
	event_free(f->later);
	json_decref(f->snap);
	json_decref(f->wanted);
	json_decref(f->lists);
	json_decref(f->apl);
	free(f);
}

static void
tpl_answer(const struct pl_pve_result *res, void *arg)
{
	struct tpl_req *t = arg;
	struct pl_templates_fetch *f = t->f;
	const json_t *x;
	json_t *names;
	size_t k;

	f->pending--;
	if (!f->cancelled && res->err && t->storage) /* no entry: nothing known about it */
		json_object_del(json_object_get(f->lists, t->node), t->storage);
	if (!f->cancelled && res->err == 0) {
		/* a failed call leaves its entry out: nothing is known about it */
		names = json_array();
		json_array_foreach(res->data, k, x) {
			const char *s = pl_json_str(x, t->storage ? "volid" : "template");

			if (s)
				json_array_append_new(names, json_string(s));
		}
		if (t->storage)
			json_object_set_new(json_object_get(f->lists, t->node), t->storage, names);
		else
			json_object_set_new(f->apl, t->node, names);
	}
	free(t->node);
	free(t->storage);
	free(t);
	if (f->pending == 0) {
		if (f->cancelled)
			tpl_free(f);
		else
			tpl_next(f);
	}
}

static void
tpl_ask(struct pl_templates_fetch *f, const char *node, const char *storage)
{
	struct tpl_req *t = pl_calloc(1, sizeof(*t));
	json_t *q = storage ? json_pack("{s:s}", "content", "vztmpl") : NULL;
	char *path = storage ? pl_asprintf("/nodes/%s/storage/%s/content", node, storage)
			     : pl_asprintf("/nodes/%s/aplinfo", node);

	t->f = f;
	t->node = pl_strdup(node);
	t->storage = storage ? pl_strdup(storage) : NULL;
	f->pending++;
	pl_pve_request(f->c, "GET", path, q, tpl_answer, t);
	json_decref(q);
	free(path);
}

static const char *
online_node(const json_t *n)
{
	const char *node = pl_json_str(n, "node");

	return node && !strcmp(pl_json_str_or(n, "status", "online"), "online") ? node : NULL;
}

/* The next phase, or the end: always from the loop, never inside a call
 * of the caller's. */
static void
tpl_next(struct pl_templates_fetch *f)
{
	const json_t *n, *w;
	size_t i, j;

	if (!f->listed) {
		f->listed = true;
		json_object_set(f->snap, "templates", f->lists);
		if (f->aplinfo)
			json_array_foreach(json_object_get(f->snap, PL_SNAP_NODES), i, n) {
				const char *node = online_node(n);
				bool missing = false, known;

				json_array_foreach(f->wanted, j, w)
					if (node && !pl_templates_present(f->snap, node, pl_json_str(w, "volid"),
									  &known) && known)
						missing = true;
				if (missing)
					tpl_ask(f, node, NULL);
			}
		if (f->pending > 0)
			return;
	}
	if (f->aplinfo)
		json_object_set(f->snap, "aplinfo", f->apl);
	f->cb(f->snap, f->arg);
	tpl_free(f);
}

static void
tpl_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tpl_next(arg);
}

struct pl_templates_fetch *
pl_templates_fetch_start(struct pl_pve *c, const struct pl_config *cfg, json_t *snap,
			 bool aplinfo, pl_templates_cb cb, void *arg)
{
	struct pl_templates_fetch *f = pl_calloc(1, sizeof(*f));
	const json_t *n, *w;
	size_t i, j;

	f->c = c;
	f->snap = json_incref(snap);
	f->wanted = pl_templates_wanted(cfg);
	f->lists = json_object();
	f->apl = json_object();
	f->aplinfo = aplinfo;
	f->cb = cb;
	f->arg = arg;
	f->later = evtimer_new(pl_pve_base(c), tpl_later, f);
	json_array_foreach(json_object_get(snap, PL_SNAP_NODES), i, n) {
		const char *node = online_node(n);
		json_t *per;

		if (node == NULL)
			continue;
		per = json_object();
		json_object_set_new(f->lists, node, per);
		json_array_foreach(f->wanted, j, w) {
			const char *storage = pl_json_str(w, "storage");

			if (json_object_get(per, storage) || !storage_on(snap, storage, node))
				continue;
			json_object_set_new(per, storage, json_null()); /* asked once */
			tpl_ask(f, node, storage);
		}
	}
	if (f->pending == 0)
		event_active(f->later, EV_TIMEOUT, 1);
	return f;
}

void
pl_templates_fetch_cancel(struct pl_templates_fetch *f)
{
	if (f == NULL)
		return;
	f->cancelled = true;
	if (f->pending == 0) /* only the end was due, from the loop */
		tpl_free(f);
}

struct tpl_wait {
	bool done;
};

static void
tpl_waited(json_t *snap, void *arg)
{
	struct tpl_wait *w = arg;

	(void)snap;
	w->done = true;
}

void
pl_templates_fetch(struct pl_pve *c, const struct pl_config *cfg, json_t *snap, bool aplinfo)
{
	struct tpl_wait w = { false };

	pl_templates_fetch_start(c, cfg, snap, aplinfo, tpl_waited, &w);
	while (!w.done)
		if (event_base_loop(pl_pve_base(c), EVLOOP_ONCE) != 0)
			pl_die("the template lists stalled: the event loop has nothing left to wait for");
}

static bool
in_list(const json_t *list, const char *s)
{
	const json_t *x;
	size_t i;

	json_array_foreach(list, i, x)
		if (json_string_value(x) && !strcmp(json_string_value(x), s))
			return true;
	return false;
}

bool
pl_templates_present(const json_t *snap, const char *node, const char *volid, bool *known)
{
	const json_t *lists = json_object_get(snap, "templates"), *per;
	char storage[128];
	const char *k;

	*known = false;
	volid_storage(volid, storage, sizeof(storage));
	json_object_foreach((json_t *)lists, k, per) {
		const json_t *vols = json_object_get(per, storage);

		if ((node && strcmp(k, node)) || vols == NULL)
			continue;
		*known = true;
		if (in_list(vols, volid))
			return true;
	}
	return false;
}

bool
pl_templates_downloadable(const json_t *snap, const char *node, const char *volid)
{
	const json_t *apl = json_object_get(snap, "aplinfo"), *names;
	const char *k;

	json_object_foreach((json_t *)apl, k, names)
		if ((node == NULL || !strcmp(k, node)) && in_list(names, volid_file(volid)))
			return true;
	return false;
}

char *
pl_templates_suggest(const json_t *snap, const char *volid)
{
	const char **names = NULL;
	const json_t *per, *list, *x;
	const char *k, *k2, *s;
	size_t n = 0, i;
	char storage[128];
	char *out = NULL;

	volid_storage(volid, storage, sizeof(storage));
	json_object_foreach((json_t *)json_object_get(snap, "templates"), k, per)
		json_object_foreach((json_t *)per, k2, list)
			json_array_foreach(list, i, x) {
				names = pl_realloc(names, (n + 1) * sizeof(*names));
				names[n++] = volid_file(json_string_value(x));
			}
	json_object_foreach((json_t *)json_object_get(snap, "aplinfo"), k, list)
		json_array_foreach(list, i, x) {
			names = pl_realloc(names, (n + 1) * sizeof(*names));
			names[n++] = json_string_value(x);
		}
	if (n && (s = pl_str_suggest(volid_file(volid), names, n)) != NULL)
		out = pl_asprintf("%s:vztmpl/%s", storage, s);
	free(names);
	return out;
}
