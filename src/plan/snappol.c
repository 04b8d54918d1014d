/*
 * Snapshot policies and retention (see snappol.h). The pure part decides
 * what is whose and what goes; the run is one small state machine per guest
 * on the caller's loop (feature check, list, take, delete the surplus one
 * task at a time), a few guests at once, lock conflicts retried with
 * backoff, the end reported from the loop, never from inside a call.
 */
#include "core/common.h"
#include "plan/snappol.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "pve/client.h"

#include <ctype.h>
#include <event2/event.h>
#include <limits.h>
#include <strings.h>

#define STAMP_LEN 12 /* yyMMddHHmmss */

int
pl_snappol_name(const char *label, time_t t, char *out, size_t outlen)
{
	struct tm tm;
	char stamp[32];

	if (localtime_r(&t, &tm) == NULL)
		return PL_EINVAL;
	/* yyMMddHHmmss, as cv4pve-autosnap's DateTime.Now.ToString() */
	snprintf(stamp, sizeof(stamp), "%02d%02d%02d%02d%02d%02d", tm.tm_year % 100, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if ((size_t)snprintf(out, outlen, "auto%s%s", label, stamp) >= outlen)
		return PL_EINVAL;
	return 0;
}

/* A description as cv4pve-autosnap compares it: line breaks removed. */
static bool
described_as_autosnap(const char *desc)
{
	char buf[64];
	size_t n = 0;

	for (const char *p = desc ? desc : ""; *p && n + 1 < sizeof(buf); p++)
		if (*p != '\n' && *p != '\r')
			buf[n++] = *p;
	buf[n] = '\0';
	return !strcmp(buf, PL_SNAPPOL_DESCRIPTION) || !strcmp(buf, "eve4pve-autosnap");
}

bool
pl_snappol_is_label(const json_t *snap, const char *label)
{
	const char *name = pl_json_str(snap, "name");
	size_t n, ln = strlen(label);

	if (name == NULL || strncmp(name, "auto", 4) || strncmp(name + 4, label, ln))
		return false;
	n = strlen(name);
	if (n != 4 + ln + STAMP_LEN)
		return false;
	for (size_t i = 4 + ln; i < n; i++)
		if (!isdigit((unsigned char)name[i]))
			return false;
	return described_as_autosnap(pl_json_str(snap, "description"));
}

long long
pl_snappol_apply_run(const char *name)
{
	long long run = 0;

	if (name == NULL || strncmp(name, "pvelab-pre-", 11) || !isdigit((unsigned char)name[11]) ||
	    pl_str_to_ll(name + 11, 1, LLONG_MAX, &run) != 0)
		return 0;
	return run;
}

/* Names in names sorted newest first by key, the first keep dropped, the
 * rest returned oldest first. */
static int
cmp_desc(const void *a, const void *b)
{
	const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
	long long kx = pl_json_int(x, "k", 0), ky = pl_json_int(y, "k", 0);

	if (kx != ky)
		return kx > ky ? -1 : 1;
	return -strcmp(pl_json_str_or(x, "name", ""), pl_json_str_or(y, "name", ""));
}

static json_t *
beyond(json_t *cands, long long keep)
{
	size_t n = json_array_size(cands);
	json_t **v = pl_calloc(n ? n : 1, sizeof(*v));
	json_t *out = json_array();

	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(cands, i);
	qsort(v, n, sizeof(*v), cmp_desc);
	for (size_t i = n; i-- > (size_t)(keep < 0 ? 0 : keep) && i < n;)
		json_array_append_new(out, json_string(pl_json_str_or(v[i], "name", "")));
	free(v);
	json_decref(cands);
	return out;
}

json_t *
pl_snappol_prune_list(const json_t *snaps, const char *label, long long keep)
{
	json_t *cands = json_array();
	const json_t *s;
	size_t i;

	/* by name, which is by time: what cv4pve-autosnap sorts by */
	json_array_foreach(snaps, i, s)
		if (pl_snappol_is_label(s, label))
			json_array_append_new(cands,
					      json_pack("{s:s,s:I}", "name", pl_json_str(s, "name"),
							"k", (json_int_t)0));
	return beyond(cands, keep);
}

json_t *
pl_snappol_apply_prune_list(const json_t *snaps, long long keep)
{
	json_t *cands = json_array();
	const json_t *s;
	size_t i;

	/* by run number: run 10 is newer than run 9 */
	json_array_foreach(snaps, i, s) {
		long long run = pl_snappol_apply_run(pl_json_str(s, "name"));

		if (run > 0)
			json_array_append_new(cands,
					      json_pack("{s:s,s:I}", "name", pl_json_str(s, "name"),
							"k", (json_int_t)run));
	}
	return beyond(cands, keep);
}

/* Whether a "guests"/"exclude" entry (a name or a vmid) names g. */
static bool
names_guest(const json_t *want, const json_t *g)
{
	char id[32];

	if (json_is_integer(want))
		return json_integer_value(want) == pl_json_int(g, "vmid", -1);
	if (!json_is_string(want))
		return false;
	snprintf(id, sizeof(id), "%lld", pl_json_int(g, "vmid", -1));
	return !strcmp(json_string_value(want), id) ||
	       !strcmp(json_string_value(want), pl_json_str_or(g, "name", ""));
}

static bool
in_list(const json_t *list, const json_t *g)
{
	const json_t *w;
	size_t i;

	json_array_foreach(list, i, w)
		if (names_guest(w, g))
			return true;
	return false;
}

/* Whether g's tags ("a;b", any separator PVE accepts) hold one of tags. */
static bool
has_tag(const json_t *tags, const json_t *g)
{
	const char *t = pl_json_str_or(g, "tags", "");
	const json_t *w;
	size_t i;

	json_array_foreach(tags, i, w) {
		const char *want = json_string_value(w);
		size_t n = want ? strlen(want) : 0;

		for (const char *p = t; n && *p;) {
			size_t len = strcspn(p, ";, ");

			if (len == n && !strncasecmp(p, want, n))
				return true;
			p += len + (p[len] != '\0');
		}
	}
	return false;
}

static bool
in_pool(const json_t *pools, const json_t *g)
{
	const char *pool = pl_json_str(g, "pool");
	const json_t *w;
	size_t i;

	json_array_foreach(pools, i, w)
		if (pool && json_is_string(w) && !strcmp(json_string_value(w), pool))
			return true;
	return false;
}

json_t *
pl_snappol_select(const json_t *policy, const json_t *resources, json_t *missing)
{
	const json_t *names = json_object_get(policy, "guests"), *g, *w;
	json_t *picked = json_object(), *out;
	size_t i, j;

	json_array_foreach(resources, i, g) {
		const char *type = pl_json_str_or(g, "type", "");
		char key[32];

		if (strcmp(type, "qemu") && strcmp(type, "lxc"))
			continue;
		if (!in_list(names, g) && !has_tag(json_object_get(policy, "tags"), g) &&
		    !in_pool(json_object_get(policy, "pools"), g))
			continue;
		if (in_list(json_object_get(policy, "exclude"), g))
			continue;
		snprintf(key, sizeof(key), "%lld", pl_json_int(g, "vmid", 0));
		json_object_set(picked, key, (json_t *)g);
	}
	json_array_foreach(names, j, w) {
		bool found = false;

		json_array_foreach(resources, i, g)
			found = found || (names_guest(w, g) &&
					  (!strcmp(pl_json_str_or(g, "type", ""), "qemu") ||
					   !strcmp(pl_json_str_or(g, "type", ""), "lxc")));
		if (!found && missing)
			json_array_append_new(
				missing,
				json_is_string(w) ?
					json_incref((json_t *)w) :
					json_sprintf("%lld", (long long)json_integer_value(w)));
	}
	out = pl_json_values_sorted(picked, "vmid");
	json_decref(picked);
	return out;
}

/* --- the run --- */

struct item {
	const json_t *policy; /* NULL: apply's retention */
	json_t *entry;        /* its entry in the result */
};

struct gjob {
	struct pl_snappol *p;
	long long vmid;
	char *node, *type, *name;
	bool tmpl, running, unsupported;
	struct item *items;
	size_t nitems, cur;
	json_t *snaps; /* the guest's snapshots as last seen */
	json_t *prune; /* what the current item still deletes */
	int step;      /* what the answer or task awaited belongs to */
	int attempts;
	struct event *timer;
};

enum { ST_FEATURE, ST_LIST, ST_TAKE, ST_DELETE };

struct pl_snappol {
	struct event_base *base;
	struct pl_pve *c;
	struct pl_snappol_opts o;
	json_t *policies;
	long long apply_keep; /* > 0: apply's retention */
	time_t now;
	json_t *result;
	struct gjob *jobs;
	size_t njobs, next, active;
	struct event *done_ev;
	pl_snappol_done_cb cb;
	void *arg;
	bool over;
};

static void job_go(struct gjob *j);
static void start_more(struct pl_snappol *p);

static void
count(struct pl_snappol *p, const char *status)
{
	json_object_set_new(p->result, status, json_integer(pl_json_int(p->result, status, 0) + 1));
}

/* The current item is over with status (and error). */
static void
item_end(struct gjob *j, const char *status, const char *error)
{
	struct item *it = &j->items[j->cur];

	json_object_set_new(it->entry, "status", json_string(status));
	if (error)
		json_object_set_new(it->entry, "error", json_string(error));
	if (!strcmp(status, "ok")) {
		long long kept = 0;
		const json_t *s;
		size_t i;

		json_array_foreach(j->snaps, i, s)
			kept += it->policy ? pl_snappol_is_label(
						     s, pl_json_str_or(it->policy, "label", "")) :
					     pl_snappol_apply_run(pl_json_str(s, "name")) > 0;
		json_object_set_new(it->entry, "kept", json_integer(kept));
	}
	count(j->p, status);
	if (j->p->o.progress)
		j->p->o.progress(it->entry, j->p->o.arg);
	json_decref(j->prune);
	j->prune = NULL;
	j->cur++;
	j->attempts = 0;
	job_go(j);
}

static void
on_done_ev(evutil_socket_t fd, short what, void *arg)
{
	struct pl_snappol *p = arg;
	int r = pl_json_int(p->result, "failed", 0) || pl_json_int(p->result, "unsupported", 0) ||
				json_array_size(json_object_get(p->result, "missing")) ?
			PL_ETASK :
			0;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < p->njobs; i++) {
		struct gjob *j = &p->jobs[i];

		if (j->timer)
			event_free(j->timer);
		free(j->node);
		free(j->type);
		free(j->name);
		free(j->items);
		json_decref(j->snaps);
		json_decref(j->prune);
	}
	free(p->jobs);
	event_free(p->done_ev);
	p->cb(r, p->result, p->arg);
	json_decref(p->result);
	json_decref(p->policies);
	free(p);
}

static void
finish(struct pl_snappol *p)
{
	struct timeval tv = { 0, 0 };

	if (p->over)
		return;
	p->over = true;
	evtimer_add(p->done_ev, &tv);
}

static void
start_more(struct pl_snappol *p)
{
	int limit = p->o.jobs > 0 ? p->o.jobs : 4;

	while (p->active < (size_t)limit && p->next < p->njobs) {
		p->active++;
		job_go(&p->jobs[p->next++]);
	}
	if (p->active == 0 && p->next >= p->njobs)
		finish(p);
}

static char *
gpath(const struct gjob *j, const char *suffix)
{
	return pl_asprintf("/nodes/%s/%s/%lld%s", j->node, j->type, j->vmid, suffix);
}

static void on_resp(const struct pl_pve_result *res, void *arg);

static void
request(struct gjob *j, int step, const char *method, char *path, json_t *params)
{
	j->step = step;
	pl_pve_request(j->p->c, method, path, params, on_resp, j);
	free(path);
	json_decref(params);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	job_go(arg);
}

static const char *
message_of(const struct pl_pve_result *res)
{
	return res->message ? res->message : (res->errmsg ? res->errmsg : "");
}

static bool
cannot_snapshot(const char *msg)
{
	return msg && strstr(msg, "snapshot feature is not available");
}

#define UNSUPPORTED                                                                                \
	"its storage cannot take snapshots (Proxmox: snapshot feature is not "                     \
	"available; a raw disk on a dir, NFS, CIFS or LVM storage, or a container "                \
	"bind mount: move the volumes to ZFS, LVM-thin, Ceph or qcow2, or exclude it)"

static void
on_task(int err, const char *exitstatus, const char *errmsg, void *arg)
{
	struct gjob *j = arg;
	struct item *it = &j->items[j->cur];

	if (err) {
		const char *m = errmsg ? errmsg : (exitstatus ? exitstatus : pl_strerror(err));
		char *msg;

		if (j->step == ST_TAKE && cannot_snapshot(m)) {
			j->unsupported = true;
			item_end(j, "unsupported", UNSUPPORTED);
			return;
		}
		msg = pl_asprintf("%s failed: %s", j->step == ST_TAKE ? "snapshot" : "delete", m);
		item_end(j, "failed", msg);
		free(msg);
		return;
	}
	if (j->step == ST_TAKE) {
		const char *name = pl_json_str(it->entry, "snapshot");

		json_array_append_new(j->snaps, json_pack("{s:s,s:s,s:I}", "name", name,
							  "description", PL_SNAPPOL_DESCRIPTION,
							  "snaptime", (json_int_t)j->p->now));
		json_object_set_new(it->entry, "taken", json_true());
	} else { /* ST_DELETE: that one is gone */
		const char *gone = json_string_value(json_array_get(j->prune, 0));
		const json_t *s;
		size_t i;

		json_array_foreach(j->snaps, i, s)
			if (!strcmp(pl_json_str_or(s, "name", ""), gone)) {
				json_array_remove(j->snaps, i);
				break;
			}
		json_array_append_new(json_object_get(it->entry, "pruned"), json_string(gone));
		json_array_remove(j->prune, 0);
	}
	j->attempts = 0;
	job_go(j);
}

static void
on_resp(const struct pl_pve_result *res, void *arg)
{
	struct gjob *j = arg;
	const char *m = message_of(res);

	if (res->err && j->step == ST_FEATURE) {
		/* no feature check (an older PVE, a proxy): the snapshot says */
		j->step = ST_LIST;
		job_go(j);
		return;
	}
	if (res->err && (res->lock || strstr(m, "got timeout") || strstr(m, "is locked")) &&
	    j->attempts < 8) {
		long ms = 200L << (j->attempts < 4 ? j->attempts : 4);
		struct timeval tv;

		ms += rand() % (ms / 2 + 1);
		tv = (struct timeval){ ms / 1000, (ms % 1000) * 1000 };
		j->attempts++;
		pl_log_info("snapshot-policy: %s: %s, retrying in %ld ms", j->name, m, ms);
		if (j->timer == NULL)
			j->timer = evtimer_new(j->p->base, on_timer, j);
		evtimer_add(j->timer, &tv);
		return;
	}
	if (res->err) {
		char *msg;

		if (j->step == ST_TAKE && cannot_snapshot(m)) {
			j->unsupported = true;
			item_end(j, "unsupported", UNSUPPORTED);
			return;
		}
		msg = pl_asprintf("%s failed: %s",
				  j->step == ST_LIST ? "listing snapshots" :
				  j->step == ST_TAKE ? "snapshot" :
						       "delete",
				  res->errmsg ? res->errmsg : pl_strerror(res->err));
		if (j->step == ST_LIST) { /* nothing to go on: every item fails */
			while (j->cur < j->nitems) {
				struct item *it = &j->items[j->cur++];

				json_object_set_new(it->entry, "status", json_string("failed"));
				json_object_set_new(it->entry, "error", json_string(msg));
				count(j->p, "failed");
				if (j->p->o.progress)
					j->p->o.progress(it->entry, j->p->o.arg);
			}
			free(msg);
			j->step = ST_DELETE + 1;
			job_go(j);
			return;
		}
		item_end(j, "failed", msg);
		free(msg);
		return;
	}
	switch (j->step) {
	case ST_FEATURE:
		if (!pl_json_bool(res->data, "hasFeature", true))
			j->unsupported = true;
		j->step = ST_LIST;
		break;
	case ST_LIST: {
		const json_t *s;
		size_t i;

		json_decref(j->snaps);
		j->snaps = json_array();
		json_array_foreach(res->data, i, s)
			if (strcmp(pl_json_str_or(s, "name", ""), "current"))
				json_array_append(j->snaps, (json_t *)s);
		j->step = ST_TAKE;
		break;
	}
	default:
		if (json_is_string(res->data)) {
			pl_pve_task_wait(j->p->c, json_string_value(res->data),
					 j->p->o.task_timeout_ms ? j->p->o.task_timeout_ms : 600000,
					 on_task, j);
			return;
		}
		on_task(0, "OK", NULL, j); /* done at once */
		return;
	}
	job_go(j);
}

/* Take the current policy item's snapshot, or go on to pruning when there
 * is nothing to take; false when the item ended here. */
static bool
take(struct gjob *j, struct item *it)
{
	const char *label = pl_json_str_or(it->policy, "label", "");
	const json_t *s;
	char name[64];
	size_t i;
	json_t *params;

	if (pl_snappol_name(label, j->p->now, name, sizeof(name)) != 0) {
		item_end(j, "failed", "the label makes too long a snapshot name");
		return false;
	}
	json_object_set_new(it->entry, "snapshot", json_string(name));
	json_array_foreach(j->snaps, i, s) {
		if (strcmp(pl_json_str_or(s, "name", ""), name))
			continue;
		if (!pl_snappol_is_label(s, label)) {
			item_end(j, "failed",
				 "a snapshot of that name is there and is not this policy's");
			return false;
		}
		return true; /* taken this very second: nothing more to take */
	}
	params = json_pack("{s:s,s:s}", "snapname", name, "description", PL_SNAPPOL_DESCRIPTION);
	if (pl_json_bool(it->policy, "vmstate", false) && j->running && !strcmp(j->type, "qemu"))
		json_object_set_new(params, "vmstate", json_integer(1));
	/* "taken" is set once the task is done: a retry after a lock conflict
	 * comes back here and asks again */
	request(j, ST_TAKE, "POST", gpath(j, "/snapshot"), params);
	return false;
}

static void
job_go(struct gjob *j)
{
	struct pl_snappol *p = j->p;

	if (j->cur >= j->nitems || j->step > ST_DELETE) {
		p->active--;
		start_more(p);
		return;
	}
	if (j->step == ST_FEATURE) {
		bool takes = j->items[0].policy != NULL;

		if (j->tmpl) {
			while (j->cur < j->nitems) {
				struct item *it = &j->items[j->cur++];

				json_object_set_new(it->entry, "status", json_string("skipped"));
				json_object_set_new(it->entry, "error", json_string("a template"));
				count(p, "skipped");
				if (p->o.progress)
					p->o.progress(it->entry, p->o.arg);
			}
			job_go(j);
			return;
		}
		if (takes) {
			request(j, ST_FEATURE, "GET", gpath(j, "/feature"),
				json_pack("{s:s}", "feature", "snapshot"));
			return;
		}
		j->step = ST_LIST;
	}
	if (j->step == ST_LIST) {
		request(j, ST_LIST, "GET", gpath(j, "/snapshot"), NULL);
		return;
	}
	{
		struct item *it = &j->items[j->cur];

		if (j->prune == NULL && j->step == ST_TAKE && it->policy) {
			if (j->unsupported) {
				item_end(j, "unsupported", UNSUPPORTED);
				return;
			}
			if (!json_object_get(it->entry, "taken") && !take(j, it))
				return;
			if (!json_object_get(it->entry, "taken"))
				json_object_set_new(it->entry, "taken", json_false());
		}
		if (j->prune == NULL)
			j->prune =
				it->policy ?
					pl_snappol_prune_list(
						j->snaps, pl_json_str_or(it->policy, "label", ""),
						pl_json_int(it->policy, "keep", 1)) :
					pl_snappol_apply_prune_list(j->snaps, p->apply_keep);
		if (json_array_size(j->prune) == 0) {
			j->step = ST_TAKE; /* the next item starts with its snapshot */
			item_end(j, "ok", NULL);
			return;
		}
		char *suffix =
			pl_asprintf("/snapshot/%s", json_string_value(json_array_get(j->prune, 0)));

		request(j, ST_DELETE, "DELETE", gpath(j, suffix), NULL);
		free(suffix);
	}
}

static struct pl_snappol *
snappol_new(struct event_base *base, struct pl_pve *c, const struct pl_snappol_opts *o,
	    pl_snappol_done_cb cb, void *arg)
{
	struct pl_snappol *p = pl_calloc(1, sizeof(*p));

	p->base = base;
	p->c = c;
	if (o)
		p->o = *o;
	p->now = p->o.now ? p->o.now : time(NULL);
	p->cb = cb;
	p->arg = arg;
	p->result = json_pack("{s:I,s:i,s:i,s:i,s:i,s:[],s:[]}", "time", (json_int_t)p->now, "ok",
			      0, "failed", 0, "unsupported", 0, "skipped", 0, "missing", "guests");
	p->done_ev = evtimer_new(base, on_done_ev, p);
	return p;
}

/* The job of guest g (an entry with vmid, node, type, name), made on first
 * use in p->jobs (room for it reserved by the caller). */
static struct gjob *
job_for(struct pl_snappol *p, const json_t *g)
{
	long long vmid = pl_json_int(g, "vmid", 0);
	struct gjob *j;

	for (size_t i = 0; i < p->njobs; i++)
		if (p->jobs[i].vmid == vmid)
			return &p->jobs[i];
	j = &p->jobs[p->njobs++];
	j->p = p;
	j->vmid = vmid;
	j->node = pl_strdup(pl_json_str_or(g, "node", ""));
	j->type = pl_strdup(pl_json_str_or(g, "type", "qemu"));
	j->name = pl_strdup(pl_json_str_or(g, "name", pl_json_str_or(g, "guest", "?")));
	j->tmpl = pl_json_int(g, "template", 0) != 0;
	j->running = !strcmp(pl_json_str_or(g, "status", ""), "running");
	j->step = ST_FEATURE;
	return j;
}

static void
add_item(struct gjob *j, const json_t *policy)
{
	json_t *entry = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:[]}", "guest", j->name, "vmid",
				  (json_int_t)j->vmid, "node", j->node, "type", j->type, "label",
				  policy ? pl_json_str_or(policy, "label", "") : "apply", "status",
				  "pending", "pruned");

	j->items = pl_realloc(j->items, (j->nitems + 1) * sizeof(*j->items));
	j->items[j->nitems++] = (struct item){ .policy = policy, .entry = entry };
	json_array_append_new(json_object_get(j->p->result, "guests"), entry);
}

static void
on_resources(const struct pl_pve_result *res, void *arg)
{
	struct pl_snappol *p = arg;
	const json_t *pol;
	size_t i;

	if (res->err) {
		json_object_set_new(p->result, "error",
				    json_string(res->errmsg ? res->errmsg : pl_strerror(res->err)));
		count(p, "failed");
		finish(p);
		return;
	}
	p->jobs = pl_calloc(json_array_size(res->data) + 1, sizeof(*p->jobs));
	json_array_foreach(p->policies, i, pol) {
		json_t *sel =
			pl_snappol_select(pol, res->data, json_object_get(p->result, "missing"));
		const json_t *g;
		size_t k;

		json_array_foreach(sel, k, g)
			add_item(job_for(p, g), pol);
		json_decref(sel);
	}
	start_more(p);
}

struct pl_snappol *
pl_snappol_start(struct event_base *base, struct pl_pve *c, const json_t *policies,
		 const struct pl_snappol_opts *o, pl_snappol_done_cb cb, void *arg)
{
	struct pl_snappol *p = snappol_new(base, c, o, cb, arg);
	json_t *q = json_pack("{s:s}", "type", "vm");

	p->policies = json_incref((json_t *)policies);
	pl_pve_request(c, "GET", "/cluster/resources", q, on_resources, p);
	json_decref(q);
	return p;
}

struct pl_snappol *
pl_snappol_prune_apply_start(struct event_base *base, struct pl_pve *c, const json_t *guests,
			     long long keep, const struct pl_snappol_opts *o, pl_snappol_done_cb cb,
			     void *arg)
{
	struct pl_snappol *p = snappol_new(base, c, o, cb, arg);
	const json_t *g;
	size_t i;

	p->apply_keep = keep > 0 ? keep : 1; /* the run's own snapshot always stays */
	p->jobs = pl_calloc(json_array_size(guests) + 1, sizeof(*p->jobs));
	json_array_foreach(guests, i, g) {
		struct gjob *j = job_for(p, g);

		if (j->nitems == 0)
			add_item(j, NULL);
	}
	start_more(p);
	return p;
}

struct waited {
	bool done;
	int r;
	json_t *result;
};

static void
waited_cb(int r, json_t *result, void *arg)
{
	struct waited *w = arg;

	w->done = true;
	w->r = r;
	w->result = json_incref(result);
}

static int
wait_for(struct event_base *base, struct waited *w, json_t **result)
{
	while (!w->done)
		event_base_loop(base, EVLOOP_ONCE);
	*result = w->result;
	return w->r;
}

int
pl_snappol_run(struct event_base *base, struct pl_pve *c, const json_t *policies,
	       const struct pl_snappol_opts *o, json_t **result)
{
	struct waited w = { 0 };

	pl_snappol_start(base, c, policies, o, waited_cb, &w);
	return wait_for(base, &w, result);
}

int
pl_snappol_prune_apply(struct event_base *base, struct pl_pve *c, const json_t *guests,
		       long long keep, const struct pl_snappol_opts *o, json_t **result)
{
	struct waited w = { 0 };

	pl_snappol_prune_apply_start(base, c, guests, keep, o, waited_cb, &w);
	return wait_for(base, &w, result);
}
