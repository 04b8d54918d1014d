/*
 * Reading the firewall for a plan or an import (see firewall.h): every list
 * and options object the config declares, or all of them, at once on the
 * client's loop into snap["firewall"], keyed by API path.
 */
#include "core/common.h"
#include "plan/firewall.h"
#include "plan/firewall_int.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "core/str.h"
#include "pve/client.h"

#include <event2/event.h>

struct pl_fw_fetch {
	struct pl_pve *c;
	json_t *snap, *out;
	const json_t *fw; /* the config's firewall: section (borrowed) */
	bool all, cancelled;
	int asked, err;
	char *errmsg;
	pl_fw_cb cb;
	void *arg;
};

struct fw_req {
	struct pl_fw_fetch *f;
	char *path;
};

static void fw_get(struct pl_fw_fetch *f, const char *path);

static void
fw_maybe_end(struct pl_fw_fetch *f)
{
	json_t *got;
	const char *k;
	json_t *v;
	void *tmp;

	if (f->asked > 0)
		return;
	if (!f->cancelled && f->err == 0) {
		got = json_object_get(f->snap, "firewall");
		if (!json_is_object(got))
			json_object_set_new(f->snap, "firewall", got = json_object());
		json_object_foreach_safe(f->out, tmp, k, v)
			if (!json_is_null(v))
				json_object_set(got, k, v);
	}
	if (!f->cancelled)
		f->cb(f->err, f->errmsg, f->arg);
	json_decref(f->out);
	free(f->errmsg);
	free(f);
}

static void
fw_answer(const struct pl_pve_result *res, void *arg)
{
	struct fw_req *q = arg;
	struct pl_fw_fetch *f = q->f;
	const json_t *e;
	size_t i;

	f->asked--;
	if (f->cancelled) {
	} else if (res->err && res->status >= 400 && res->status < 500) {
		/* not there (a group, an IP set, a guest's file): nothing to read */
	} else if (res->err) {
		if (f->err == 0) {
			f->err = res->err;
			f->errmsg = pl_asprintf("cannot read the firewall (%s): %s", q->path,
						res->errmsg ? res->errmsg : pl_strerror(res->err));
		}
	} else {
		json_object_set(f->out, q->path, res->data);
		/* the members of the groups and IP sets that exist (PVE answers
		 * 500 for one that does not): all of them, or the declared ones */
		if (!strcmp(q->path, "/cluster/firewall/groups") ||
		    !strcmp(q->path, "/cluster/firewall/ipset")) {
			bool groups = strstr(q->path, "groups") != NULL;
			const json_t *decl = json_object_get(f->fw, groups ? "groups" : "ipsets");

			json_array_foreach(res->data, i, e) {
				const char *n = pl_json_str(e, groups ? "group" : "name");
				char *p = n && (f->all || json_object_get(decl, n)) ?
						  pl_asprintf("%s/%s", q->path, n) :
						  NULL;

				if (p)
					fw_get(f, p);
				free(p);
			}
		}
	}
	free(q->path);
	free(q);
	fw_maybe_end(f);
}

static void
fw_get(struct pl_fw_fetch *f, const char *path)
{
	struct fw_req *q;

	if (json_object_get(f->out, path))
		return;
	json_object_set_new(f->out, path, json_null()); /* asked once */
	q = pl_calloc(1, sizeof(*q));
	q->f = f;
	q->path = pl_strdup(path);
	f->asked++;
	pl_pve_request(f->c, "GET", path, NULL, fw_answer, q);
}

static void
fw_nothing(evutil_socket_t fd, short what, void *arg)
{
	struct pl_fw_fetch *f = arg;

	(void)fd;
	(void)what;
	f->asked--;
	fw_maybe_end(f);
}

static void
guest_paths(struct pl_fw_fetch *f, const json_t *l)
{
	char *base = pl_asprintf("/nodes/%s/%s/%lld/firewall", pl_json_str_or(l, "node", ""),
				 pl_json_str_or(l, "type", "qemu"), pl_json_int(l, "vmid", 0));
	char *p;

	p = pl_asprintf("%s/options", base);
	fw_get(f, p);
	free(p);
	p = pl_asprintf("%s/rules", base);
	fw_get(f, p);
	free(p);
	free(base);
}

static struct pl_fw_fetch *
fetch_new(struct pl_pve *c, const json_t *fw, bool all, json_t *snap, pl_fw_cb cb, void *arg)
{
	struct pl_fw_fetch *f = pl_calloc(1, sizeof(*f));

	f->c = c;
	f->snap = snap;
	f->all = all;
	f->fw = fw;
	f->cb = cb;
	f->arg = arg;
	f->out = json_object();
	f->asked = 1; /* held until every request is out */
	return f;
}

/* Every request is out: answer now if there was none to make. */
static struct pl_fw_fetch *
fetch_sent(struct pl_fw_fetch *f)
{
	f->asked--;
	if (f->asked == 0) { /* nothing to read: still answer from the loop */
		struct timeval now = { 0, 0 };

		f->asked = 1;
		event_base_once(pl_pve_base(f->c), -1, EV_TIMEOUT, fw_nothing, f, &now);
	}
	return f;
}

struct pl_fw_fetch *
pl_fw_fetch_scopes_start(struct pl_pve *c, const json_t *scopes, json_t *snap, pl_fw_cb cb,
			 void *arg)
{
	struct pl_fw_fetch *f = fetch_new(c, NULL, true, snap, cb, arg);
	const json_t *sc, *p;
	size_t i, j;

	json_array_foreach(scopes, i, sc) {
		json_t *paths = pl_fw_scope_paths(sc);

		json_array_foreach(paths, j, p)
			fw_get(f, json_string_value(p));
		json_decref(paths);
	}
	return fetch_sent(f);
}

struct pl_fw_fetch *
pl_fw_fetch_start(struct pl_pve *c, const struct pl_config *cfg, bool all, const json_t *vmids,
		  json_t *snap, pl_fw_cb cb, void *arg)
{
	const json_t *fw = cfg ? pl_config_get(cfg, "/firewall") : NULL, *g;
	struct pl_fw_fetch *f = fetch_new(c, fw, all, snap, cb, arg);
	size_t i;

	if (all || json_object_get(fw, "options"))
		fw_get(f, "/cluster/firewall/options");
	if (all || json_object_get(fw, "rules"))
		fw_get(f, "/cluster/firewall/rules");
	if (all || json_object_get(fw, "aliases"))
		fw_get(f, "/cluster/firewall/aliases");
	if (all || json_object_get(fw, "ipsets"))
		fw_get(f, "/cluster/firewall/ipset");
	if (all || json_object_get(fw, "groups"))
		fw_get(f, "/cluster/firewall/groups");
	json_array_foreach(json_object_get(snap, PL_SNAP_NODES), i, g) {
		const char *node = pl_json_str_or(g, "node", "");
		char *p;

		/* all (an import): every online node's host firewall */
		if (all ? strcmp(pl_json_str_or(g, "status", "online"), "online") :
			  !pl_fw_host_declared(fw, g))
			continue;
		p = pl_asprintf("/nodes/%s/firewall/options", node);
		fw_get(f, p);
		free(p);
		p = pl_asprintf("/nodes/%s/firewall/rules", node);
		fw_get(f, p);
		free(p);
	}
	if (cfg)
		json_array_foreach(pl_config_guests(cfg), i, g) {
			const json_t *l;

			if (json_object_get(g, "firewall") == NULL ||
			    (l = pl_fw_live_guest(snap, g, pl_config_project(cfg))) == NULL)
				continue;
			guest_paths(f, l);
		}
	json_array_foreach(vmids ? json_object_get(snap, PL_SNAP_GUESTS) : NULL, i, g) {
		char key[32];

		snprintf(key, sizeof(key), "%lld", pl_json_int(g, "vmid", 0));
		if (json_object_get(vmids, key))
			guest_paths(f, g);
	}
	return fetch_sent(f);
}

void
pl_fw_fetch_cancel(struct pl_fw_fetch *f)
{
	if (f)
		f->cancelled = true;
}

struct fw_wait {
	bool done;
	int err;
	char *msg;
};

static void
fw_waited(int err, const char *errmsg, void *arg)
{
	struct fw_wait *w = arg;

	w->done = true;
	w->err = err;
	w->msg = err ? pl_strdup(errmsg ? errmsg : pl_strerror(err)) : NULL;
}

static int fetch_wait(struct pl_pve *c, struct fw_wait *w, char **errmsg);

int
pl_fw_fetch(struct pl_pve *c, const struct pl_config *cfg, bool all, const json_t *vmids,
	    json_t *snap, char **errmsg)
{
	struct fw_wait w = { 0 };

	pl_fw_fetch_start(c, cfg, all, vmids, snap, fw_waited, &w);
	return fetch_wait(c, &w, errmsg);
}

int
pl_fw_fetch_scopes(struct pl_pve *c, const json_t *scopes, json_t *snap, char **errmsg)
{
	struct fw_wait w = { 0 };

	pl_fw_fetch_scopes_start(c, scopes, snap, fw_waited, &w);
	return fetch_wait(c, &w, errmsg);
}

static int
fetch_wait(struct pl_pve *c, struct fw_wait *w, char **errmsg)
{
	while (!w->done)
		if (event_base_loop(pl_pve_base(c), EVLOOP_ONCE) != 0)
			pl_die("the firewall read stalled: the event loop has nothing left to wait "
			       "for");
	if (w->err) {
		pl_seterr(errmsg, w->err, "%s", w->msg);
		free(w->msg);
		return w->err;
	}
	return 0;
}
