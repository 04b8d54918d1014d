/*
 * The apply executor (see apply.h). Each change becomes a small program of
 * steps (program(), which also gives the plan its list of steps); a step is
 * one API call, followed by a task wait when Proxmox answers with a UPID. Lock
 * conflicts ("is locked", "got timeout") are retried with jittered backoff;
 * LXC templates are downloaded by their own changes (phase 0, with the
 * bridges), and a container's create checks again, once per node even when
 * many containers need it; clones from one node run one at a time. A guest is
 * backed up (vzdump) before any program destroys it, and a replace either
 * creates first or proves its create before the destroy. Stopped (opts.stop),
 * a change ends at its next step boundary; abandoned, the requests still in
 * flight keep the executor's memory alive until their answers come (or the
 * client is freed), so no callback ever runs on freed memory.
 */
#include "core/common.h"
#include "plan/apply.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "model/guest.h"
#include "plan/day2.h"
#include "plan/firewall.h"
#include "plan/wayback.h"
#include "pve/client.h"

#include <event2/event.h>
#include <sys/time.h>
#include <pthread.h>

enum step {
	S_END,
	S_BRIDGE,
	S_NETAPPLY,
	S_TEMPLATE,
	S_CLONE_RESOLVE,
	S_CLONE,
	S_CLONE_FIX,
	S_CREATE,
	S_SNAPSHOT,
	S_MIGRATE,
	S_CONFIG,
	S_RESIZE,
	S_REBOOT,
	S_START,
	S_STOP,
	S_SHUTDOWN,
	S_DESTROY,
	S_ROLLBACK,
	S_CHECK,
	S_BACKUP_STORAGE,
	S_BACKUP,
	S_BACKUP_FIND,
	S_RESTORE,
	S_FIREWALL,
	S_CALL,
	S_NEXTID,
};

static const char *const step_names[] = {
	"done",     "bridge",          "network apply", "template", "find template",
	"clone",    "configure clone", "create",        "snapshot", "migrate",
	"config",   "resize",          "reboot",        "start",    "stop",
	"shutdown", "destroy",         "rollback",      "check",    "backup storage",
	"backup",   "find backup",     "restore",       "firewall", "call",
	"vmid",
};

#define MAX_STEPS 24

struct applier;

struct job {
	struct applier *ap;
	const json_t *change; /* borrowed from the plan */
	json_t *result;       /* this change's entry in the result */
	enum step prog[MAX_STEPS];
	bool part[MAX_STEPS]; /* a part of a step beside it, not listed on its own */
	int nsteps, pc;
	int recorded;         /* the last pc put in "steps_done" */
	bool again;           /* the task waited for is one pass of a repeating step */
	int attempts;
	long long vmid;
	char *node, *type, *guest, *action;
	json_t *set, *del, *resize; /* what S_CONFIG / S_RESIZE send */
	char *src_node;             /* clone source */
	long long src_vmid;
	char *holding;              /* shared key this job holds (template or clone lock) */
	/* the guest this change removes (delete, replace; the replacement in a
	 * restore): backed up, stopped and destroyed with its own type and vmid */
	long long old_vmid;
	char *old_type, *old_node;
	char *bk_storage;           /* where its backup goes */
	json_t *bk_before;          /* backups of old_vmid there before ours: volid -> true */
	/* S_FIREWALL: the scope's lists read before the first write and after
	 * the last (fw_phase 0 and 2; the digests the plan saw are checked on
	 * the first read), then each call (phase 1) */
	int fw_phase;
	json_t *fw_queue, *fw_reads, *fw_before;
	size_t fw_q;
	size_t fw_i;                /* S_FIREWALL: the next call */
	char *fw_digest;            /* S_FIREWALL: the digest just read for the call */
	char *fw_error;             /* a call failed: ends the change once read after */
	json_t *own;                /* a change rewritten at apply (change points here) */
	/* S_NEXTID: the vmid asked to be confirmed free (0: ask for the next
	 * one), how many were asked, and how often a create met a taken vmid */
	long long probe;
	int probes, reassigned;
	struct event *timer;
	char *upid;                 /* the task waited for, while waiting */
	bool running_now;
	bool over;                  /* finished, successfully or not */
	bool inflight;              /* a request or task wait has this job's callback */
	bool must_finish;           /* created or destroyed a guest: ends only when done */
};

struct applier {
	struct event_base *base;
	struct pl_pve *c;
	const struct pl_apply_opts *o;
	struct pl_apply_opts *o_copy; /* o points here */
	struct job *jobs;
	size_t njobs, next, active, finished;
	int phase;
	bool failed;
	bool abandoned; /* the caller stopped waiting; orphans answers are due */
	size_t orphans;
	int cancel;     /* the level pl_apply_cancel asked for */
	int early;      /* refused before it started (PL_EINVAL), result in pre */
	json_t *pre;
	struct event *done_ev; /* ends the run from the loop: completion is never reentrant */
	pl_apply_done_cb cb;
	void *cb_arg;
	struct applier *next_abandoned;
	json_t *shared; /* "template|node|volid" -> "busy"|"present"; "clone|node" -> "busy" */
	json_t *taken;  /* "vmid" -> true: the plan's and those S_NEXTID took */
};

static void job_step(struct job *j);
static void start_more(struct applier *ap);
static void applier_free(struct applier *ap);

/* Abandoned runs waiting for their last answers: kept reachable, so that a
 * client freed before they come (its callbacks then never run) does not
 * leave them as leaks to the sanitizers. */
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static struct applier *abandoned_runs;

static void
abandoned_link(struct applier *ap, bool add)
{
	struct applier **pp;

	pthread_mutex_lock(&abandoned_lock);
	if (add) {
		ap->next_abandoned = abandoned_runs;
		abandoned_runs = ap;
	} else {
		for (pp = &abandoned_runs; *pp; pp = &(*pp)->next_abandoned)
			if (*pp == ap) {
				*pp = ap->next_abandoned;
				break;
			}
	}
	pthread_mutex_unlock(&abandoned_lock);
}

static int
stop_level(const struct applier *ap)
{
	int l = ap->o->stop ? *ap->o->stop : 0;

	return l > ap->cancel ? l : ap->cancel;
}

/* Have the loop end the run: the caller's callback never runs inside a
 * call of its own (pl_apply_start, pl_apply_cancel). */
static void
schedule_done(struct applier *ap)
{
	if (!ap->abandoned && ap->cb)
		event_active(ap->done_ev, EV_TIMEOUT, 1);
}

/* An answer for a job of an abandoned run: nothing more to do with it. */
static bool
orphaned(struct job *j)
{
	struct applier *ap = j->ap;

	j->inflight = false;
	if (!ap->abandoned) {
		if (stop_level(ap) >= PL_APPLY_ABANDON)
			schedule_done(ap); /* told through opts.stop alone */
		return false;
	}
	if (--ap->orphans == 0) {
		abandoned_link(ap, false);
		applier_free(ap);
	}
	return true;
}

static json_t *
build_result(const struct applier *ap)
{
	json_t *list = json_array();
	size_t i, ok = 0, failed = 0, skipped = 0, interrupted = 0, abandoned = 0;

	for (i = 0; i < ap->njobs; i++) {
		const char *st = pl_json_str_or(ap->jobs[i].result, "status", "");

		ok += !strcmp(st, "ok");
		failed += !strcmp(st, "failed");
		skipped += !strcmp(st, "not started");
		interrupted += !strcmp(st, "interrupted");
		abandoned += !strcmp(st, "abandoned");
		json_array_append(list, ap->jobs[i].result);
	}
	return json_pack("{s:i,s:i,s:i,s:i,s:i,s:b,s:o}", "ok", (int)ok, "failed", (int)failed,
			 "skipped", (int)skipped, "interrupted", (int)interrupted, "abandoned",
			 (int)abandoned, "stopped",
			 stop_level(ap) > 0 && skipped + interrupted + abandoned > 0, "changes", list);
}

/* Hand the caller this change's entry and the result so far, to record. */
static void
record(struct job *j)
{
	json_t *all;

	if (j->ap->o->record == NULL)
		return;
	all = build_result(j->ap);
	j->ap->o->record(j->result, all, j->ap->o->arg);
	json_decref(all);
}

static void
emit(struct job *j, bool done, const char *error)
{
	struct pl_apply_event ev = {
		.guest = j->guest,
		.action = j->action,
		.step = j->over ? "done" : step_names[j->prog[j->pc < j->nsteps ? j->pc : 0]],
		.done = done,
		.error = error,
		.stopped = j->over && error == NULL &&
			   strcmp(pl_json_str_or(j->result, "status", ""), "ok") != 0,
		.finished = j->ap->finished,
		.total = j->ap->njobs,
	};

	if (j->ap->o->progress)
		j->ap->o->progress(&ev, j->ap->o->arg);
}

static void
release_hold(struct job *j)
{
	if (j->holding) {
		json_object_del(j->ap->shared, j->holding);
		free(j->holding);
		j->holding = NULL;
	}
}

/* End a job with status ("ok", "failed", "interrupted", "not started"). */
static void
job_end(struct job *j, const char *status, const char *error)
{
	struct applier *ap = j->ap;

	release_hold(j);
	json_object_set_new(j->result, "status", json_string(status));
	if (error) {
		json_object_set_new(j->result, "error", json_string(error));
		ap->failed = true;
	}
	json_object_set_new(j->result, "vmid", json_integer(j->vmid));
	if (j->node)
		json_object_set_new(j->result, "node", json_string(j->node));
	ap->active--;
	ap->finished++;
	j->over = true;
	emit(j, true, error);
	record(j);
	start_more(ap);
}

/* A snapshot Proxmox refused although the plan expected one (the storages
 * changed since, or the inventory could not tell): the way back becomes a
 * vzdump backup in place of the snapshot, taken before anything changes.
 * Any other failure of the snapshot ends the change with nothing changed.
 * error is the step's failure, as job_finish has it. */
static bool
fall_back(struct job *j, const char *error)
{
	static const enum step backup[] = { S_BACKUP_STORAGE, S_BACKUP, S_BACKUP_FIND };
	static const char refused[] = "snapshot feature is not available";
	int rest = j->nsteps - j->pc - 1;

	if (j->pc >= j->nsteps || j->prog[j->pc] != S_SNAPSHOT || !strstr(error, refused) ||
	    j->nsteps + 2 > MAX_STEPS)
		return false;
	memmove(j->prog + j->pc + 3, j->prog + j->pc + 1, (size_t)rest * sizeof(*j->prog));
	memmove(j->part + j->pc + 3, j->part + j->pc + 1, (size_t)rest * sizeof(*j->part));
	for (int i = 0; i < 3; i++) {
		j->prog[j->pc + i] = backup[i];
		j->part[j->pc + i] = backup[i] != S_BACKUP;
	}
	j->nsteps += 2;
	json_object_set_new(j->result, "way_back",
			    json_pack("{s:s,s:s+}", "kind", PL_WAY_BACK_BACKUP, "reason",
				      "the snapshot was refused: ", refused));
	pl_log_info("apply: %s: %s, backing it up instead", j->guest, error);
	j->attempts = 0;
	job_step(j);
	return true;
}

static void fw_next(struct job *j);
static void fw_answer(struct job *j, const json_t *data);

static void
job_finish(struct job *j, const char *error)
{
	if (error && fall_back(j, error))
		return;
	/* a firewall call failed: its scope is read as it is now first */
	if (error && j->pc < j->nsteps && j->prog[j->pc] == S_FIREWALL && j->fw_phase == 1) {
		j->fw_error = pl_strdup(error);
		j->fw_phase = 2;
		json_decref(j->fw_queue);
		j->fw_queue = NULL;
		fw_next(j);
		return;
	}
	if (error && j->fw_error)
		error = j->fw_error;
	job_end(j, error ? "failed" : "ok", error);
}

/* What a finished step leaves behind that a rollback or the next run must
 * know, recorded at once; and the listed steps carried out, as the plan
 * showed them (a step that repeats, such as one resize per disk, once). */
static void
step_done(struct job *j)
{
	enum step s = j->prog[j->pc];
	bool matters = true;
	char name[64];

	if (!j->part[j->pc] && j->pc != j->recorded) {
		json_array_append_new(json_object_get(j->result, "steps_done"), json_string(step_names[s]));
		j->recorded = j->pc;
	}
	switch (s) {
	case S_SNAPSHOT:
		snprintf(name, sizeof(name), "pvelab-pre-%lld", j->ap->o->run_id);
		json_object_set_new(j->result, "snapshot", json_string(name));
		break;
	case S_CREATE:
	case S_CLONE:
	case S_RESTORE: /* the new guest is there */
		json_object_set_new(j->result, "created", json_true());
		json_object_set_new(j->result, "vmid", json_integer(j->vmid));
		json_object_set_new(j->result, "node", json_string(j->node));
		break;
	case S_DESTROY: /* the old guest is gone */
		json_object_set_new(j->result, "destroyed", json_true());
		break;
	case S_MIGRATE:
		json_object_set_new(j->result, "node", json_string(j->node));
		break;
	case S_CONFIG:
		if (json_is_true(json_object_get(j->change, "reboot")) && !j->ap->o->reboot)
			json_object_set_new(j->result, "pending_reboot", json_true());
		break;
	case S_BACKUP_FIND: /* the archive a rollback restores from */
		break;
	default:
		matters = false;
	}
	if (matters)
		record(j);
}

static void
advance(struct job *j)
{
	emit(j, true, NULL);
	step_done(j);
	j->pc++;
	j->attempts = 0;
	job_step(j);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	job_step(arg);
}

/* Run the current step again after ms. */
static void
retry_later(struct job *j, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (j->timer == NULL)
		j->timer = evtimer_new(j->ap->base, on_timer, j);
	evtimer_add(j->timer, &tv);
}

/* The template this job fetched is on the node now: others may go on. */
static void
mark_present(struct job *j)
{
	json_object_set_new(j->ap->shared, j->holding, json_string("present"));
	free(j->holding);
	j->holding = NULL;
}

static bool harmless_msg(const struct job *j, const char *m);

static void next_probe(struct job *j, long long from);
static bool reassign(struct job *j, const char *msg);

/* A guest's lock met: "VM is locked (backup)", "can't lock file '…' - got
 * timeout" (not "VM quit/powerdown failed - got timeout": no lock there). */
static bool
lock_msg(const char *m)
{
	return strstr(m, "can't lock file") || strstr(m, "is locked");
}

/* Send the current step again after a jittered, growing wait. */
static void
back_off(struct job *j, const char *why)
{
	long ms = 200L << (j->attempts < 4 ? j->attempts : 4);

	j->attempts++;
	ms += rand() % (ms / 2 + 1); /* jitter */
	pl_log_info("apply: %s: %s failed (%s), retrying in %ld ms", j->guest,
		    step_names[j->prog[j->pc]], why, ms);
	retry_later(j, ms);
}

static void
on_task(int err, const char *exitstatus, const char *errmsg, void *arg)
{
	struct job *j = arg;

	if (orphaned(j))
		return;
	free(j->upid);
	j->upid = NULL;
	/* PVE's vm_start finds an already running VM inside its task: the same
	 * as the answer harmless() lets pass */
	if (err && exitstatus && harmless_msg(j, exitstatus)) {
		advance(j);
		return;
	}
	/* PVE checks a guest's lock inside the worker (check_lock under
	 * lock_config): a refused task did nothing and is sent again, as a
	 * refused request is */
	if (err && exitstatus && lock_msg(exitstatus) && j->attempts < 8) {
		back_off(j, exitstatus);
		return;
	}
	if (err && reassign(j, errmsg ? errmsg : exitstatus))
		return;
	if (err) {
		char *msg = pl_asprintf("%s failed: %s", step_names[j->prog[j->pc]],
					errmsg ? errmsg : (exitstatus ? exitstatus : pl_strerror(err)));

		job_finish(j, msg);
		free(msg);
		return;
	}
	if (j->prog[j->pc] == S_TEMPLATE && j->holding)
		mark_present(j);
	if (j->again) { /* the step has more to do (another disk to grow) */
		j->again = false;
		j->attempts = 0;
		job_step(j);
		return;
	}
	advance(j);
}

static bool
is_lock_error(const struct pl_pve_result *res)
{
	const char *m = res->message ? res->message : (res->errmsg ? res->errmsg : "");

	return res->lock || lock_msg(m) || strstr(m, "got timeout");
}

/* Steps whose failure message means the work is already done. */
static bool
harmless_msg(const struct job *j, const char *m)
{
	enum step s = j->prog[j->pc];

	return ((s == S_STOP || s == S_SHUTDOWN) && strstr(m, "not running")) ||
	       (s == S_START && strstr(m, "already running"));
}

static bool
harmless(const struct job *j, const struct pl_pve_result *res)
{
	return harmless_msg(j, res->message ? res->message : (res->errmsg ? res->errmsg : ""));
}

/* Steps that can simply be sent again after a server or transport error:
 * reads, and power actions whose repetition is harmless (see harmless()). */
static bool
retryable(const struct job *j, const struct pl_pve_result *res)
{
	enum step s = j->prog[j->pc];
	bool safe = s == S_START || s == S_STOP || s == S_SHUTDOWN || s == S_REBOOT ||
		    s == S_NETAPPLY || s == S_CLONE_RESOLVE || s == S_CLONE_FIX || s == S_CHECK ||
		    s == S_BACKUP_STORAGE || s == S_BACKUP_FIND ||
		    (s == S_BACKUP && !j->bk_before) || (s == S_TEMPLATE && j->holding) ||
		    s == S_NEXTID;

	return safe && (res->status == 0 || res->status >= 500);
}

static void step_after(struct job *j, json_t *data);

static void
on_resp(const struct pl_pve_result *res, void *arg)
{
	struct job *j = arg;

	if (orphaned(j))
		return;
	if (res->err && harmless(j, res)) {
		advance(j);
		return;
	}
	if (res->err && j->prog[j->pc] == S_FIREWALL && j->fw_phase != 1 && res->status >= 400 &&
	    res->status < 500) {
		fw_answer(j, NULL); /* a list that is not there */
		return;
	}
	if (res->err && j->prog[j->pc] == S_NEXTID && j->probe && res->status == 400) {
		next_probe(j, j->probe + 1); /* "VM N already exists" */
		return;
	}
	if (res->err && reassign(j, res->message ? res->message : res->errmsg))
		return;
	if (res->err) {
		if ((is_lock_error(res) && j->attempts < 8) || (retryable(j, res) && j->attempts < 3)) {
			back_off(j, res->errmsg ? res->errmsg : "?");
			return;
		}
		char *msg = pl_asprintf("%s failed: %s", step_names[j->prog[j->pc]],
					res->errmsg ? res->errmsg : pl_strerror(res->err));

		job_finish(j, msg);
		free(msg);
		return;
	}
	step_after(j, res->data);
}

static char *
guest_path(const struct job *j, const char *suffix)
{
	return pl_asprintf("/nodes/%s/%s/%lld%s", j->node, j->type, j->vmid, suffix);
}

/* The guest the change removes (see struct job). */
static char *
old_path(const struct job *j, const char *suffix)
{
	return pl_asprintf("/nodes/%s/%s/%lld%s", j->old_node, j->old_type, j->old_vmid, suffix);
}

static void
request(struct job *j, const char *method, char *path, json_t *params)
{
	j->inflight = true;
	pl_pve_request(j->ap->c, method, path, params, on_resp, j);
	free(path);
	json_decref(params);
}

/* Config values as API parameters. */
static void
add_config_params(json_t *params, const json_t *cfg)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)cfg, k, v) {
		const char *sv = json_string_value(v);

		if (!strcmp(k, "sshkeys") && sv) {
			char *enc = pl_str_url_encode(sv); /* PVE stores sshkeys encoded */

			json_object_set_new(params, k, json_string(enc));
			free(enc);
		} else if (sv && strstr(sv, ",import-from=") && strchr(sv, ':') &&
			   strchr(sv, ':') + 1 + strspn(strchr(sv, ':') + 1, "0123456789.") ==
				   sv + strcspn(sv, ",")) {
			/* qemu-server sizes an imported disk from its source and
			 * takes only "<storage>:0,import-from=..." ($check_drive_param) */
			json_object_set_new(params, k,
					    json_sprintf("%.*s:0%s", (int)(strchr(sv, ':') - sv),
							 sv, sv + strcspn(sv, ",")));
		} else {
			json_object_set(params, k, v);
		}
	}
}

static void
create_params(const struct job *j, json_t *params)
{
	const json_t *create = json_object_get(j->change, "create");
	const char *penv = pl_json_str(create, "password_env");

	add_config_params(params, json_object_get(j->change, "config"));
	if (pl_json_str(create, "pool"))
		json_object_set_new(params, "pool", json_string(pl_json_str(create, "pool")));
	if (pl_json_str(create, "ssh-public-keys"))
		json_object_set_new(params, "ssh-public-keys",
				    json_string(pl_json_str(create, "ssh-public-keys")));
	if (penv && getenv(penv))
		json_object_set_new(params, "cipassword", json_string(getenv(penv)));
}

/* The template a step downloads: a template change's own, or a container's. */
static const char *
template_volid(const struct job *j)
{
	if (pl_json_str(j->change, "volid"))
		return pl_json_str(j->change, "volid");
	return pl_json_str(json_object_get(j->change, "create"), "ostemplate");
}

/* Hold a shared key (template download, clone source); false if another job has it. */
static bool
hold(struct job *j, const char *key)
{
	const char *state = pl_json_str(j->ap->shared, key);

	if (state && !strcmp(state, "busy"))
		return false;
	json_object_set_new(j->ap->shared, key, json_string("busy"));
	j->holding = pl_strdup(key);
	return true;
}

/* The backup itself (S_BACKUP once the archives already there are known).
 * Mode snapshot, PVE's default: a stopped guest is simply read, and vzdump
 * falls back to suspend where a volume cannot be snapshotted. remove=0: no
 * pruning, which could take an earlier run's backup. */
static void
backup_post(struct job *j)
{
	request(j, "POST", pl_asprintf("/nodes/%s/vzdump", j->old_node),
		json_pack("{s:I,s:s,s:s,s:s,s:b}", "vmid", (json_int_t)j->old_vmid, "storage",
			  j->bk_storage, "mode", pl_json_str_or(j->change, "mode", "snapshot"),
			  "compress", pl_json_str_or(j->change, "compress", "zstd"), "remove", 0));
}

/* The storage named id in a storage list (entries of /nodes/N/storage, or of
 * the snapshot's storages with their "node"), as seen from node. */
static const json_t *
storage_on(const json_t *storages, const char *id, const char *node)
{
	const json_t *st;
	size_t i;

	json_array_foreach(storages, i, st)
		if (!strcmp(pl_json_str_or(st, "storage", ""), id) &&
		    (pl_json_str(st, "node") == NULL || !strcmp(pl_json_str(st, "node"), node)))
			return st;
	return NULL;
}

/* Whether a storage's "images,rootdir" content list holds content. */
static bool
holds(const json_t *st, const char *content)
{
	const char *c = pl_json_str_or(st, "content", "");
	size_t n = strlen(content);

	for (const char *p = c; *p;) {
		size_t l = strcspn(p, ",");

		if (l == n && !strncmp(p, content, n))
			return true;
		p += l;
		p += strspn(p, ",");
	}
	return false;
}

char *
pl_apply_create_problem(const json_t *change, const json_t *storages, const char *node)
{
	const json_t *create = json_object_get(change, "create");
	const char *tmpl = pl_json_str(create, "ostemplate");
	const char *clone_st = pl_json_str(json_object_get(create, "clone"), "storage");
	bool lxc = !strcmp(pl_json_str_or(change, "type", "qemu"), "lxc");
	json_t *needs = NULL, *v;
	char *err = NULL, *why = NULL;
	const char *k;

	if (lxc && tmpl == NULL)
		return pl_strdup("no ostemplate to create the container from (set ostemplate)");
	if (pl_model_create_check(lxc, json_object_get(change, "config"), &needs, &err) != 0) {
		why = pl_asprintf("the new config is invalid: %s", err);
		free(err);
		return why;
	}
	if (tmpl && strchr(tmpl, ':')) {
		char *sid = pl_strndup(tmpl, strcspn(tmpl, ":"));

		json_object_set_new(needs, sid, json_string("vztmpl"));
		free(sid);
	}
	if (clone_st)
		json_object_set_new(needs, clone_st, json_string("images"));
	if (storages == NULL)
		goto out;
	json_object_foreach(needs, k, v) {
		const json_t *st = storage_on(storages, k, node);

		if (st == NULL || pl_json_int(st, "active", 1) == 0 || pl_json_int(st, "enabled", 1) == 0)
			why = pl_asprintf("storage '%s' does not exist on node '%s'", k, node);
		else if (!holds(st, json_string_value(v)))
			why = pl_asprintf("storage '%s' on node '%s' does not hold content type '%s' "
					  "(it holds '%s')", k, node, json_string_value(v),
					  pl_json_str_or(st, "content", ""));
		if (why)
			break;
	}
out:
	json_decref(needs);
	return why;
}

/* A replace that cannot create first proves its create would work before
 * anything is destroyed: the schema accepts the config, and the storages it
 * names exist on the node with the content types it needs (the answer is
 * checked in step_after). When it would not, the job ends here. */
static bool
create_refused(struct job *j, const json_t *storages)
{
	char *why = pl_apply_create_problem(j->change, storages, j->node), *msg;

	if (why == NULL)
		return false;
	msg = pl_asprintf("cannot recreate it, so nothing was destroyed: %s", why);
	job_finish(j, msg);
	free(msg);
	free(why);
	return true;
}

static void
check_create(struct job *j)
{
	if (!create_refused(j, NULL))
		request(j, "GET", pl_asprintf("/nodes/%s/storage", j->node), NULL);
}

/* S_FIREWALL, one request at a time: the scope's lists are read (the
 * state before, for history and rollback) and the digests the plan saw
 * compared (a change behind pvelab's back stops the change before it writes
 * anything); then each call, one that carries a digest after a fresh read of
 * its list (PVE refuses it if the list changed since); then the lists are
 * read again (the state after, also when a call failed). */
static void
fw_next(struct job *j)
{
	const json_t *calls = json_object_get(j->change, "calls"), *c;
	json_t *params;

	if (j->fw_queue == NULL) {
		j->fw_queue = pl_fw_scope_paths(j->change);
		json_decref(j->fw_reads);
		j->fw_reads = json_object();
		j->fw_q = 0;
	}
	if (j->fw_phase != 1) {
		request(j, "GET",
			pl_strdup(json_string_value(json_array_get(j->fw_queue, j->fw_q))), NULL);
		return;
	}
	if ((c = json_array_get(calls, j->fw_i)) == NULL) {
		j->fw_phase = 2;
		json_decref(j->fw_queue);
		j->fw_queue = NULL;
		job_step(j);
		return;
	}
	if (pl_json_str(c, "list") && j->fw_digest == NULL) {
		request(j, "GET", pl_strdup(pl_json_str(c, "list")), NULL);
		return;
	}
	params = json_deep_copy(json_object_get(c, "params"));
	if (j->fw_digest && *j->fw_digest)
		json_object_set_new(params, "digest", json_string(j->fw_digest));
	request(j, pl_json_str_or(c, "method", "GET"), pl_strdup(pl_json_str_or(c, "path", "")),
		params);
}

/* The lists of the scope are read: before, check the plan's digests and
 * go on to the calls; after, record both states and end. */
static void
fw_read_done(struct job *j)
{
	json_t *state = pl_fw_scope_state(j->change, j->fw_reads);
	const char *path;
	json_t *want;
	char *key;

	if (j->fw_phase == 0) {
		json_object_foreach((json_t *)json_object_get(j->change, "digests"), path, want) {
			const char *now = pl_fw_digest_of(json_object_get(j->fw_reads, path));
			char *msg;

			if (!strcmp(now, json_string_value(want)))
				continue;
			msg = pl_asprintf("the firewall of %s changed since the plan (%s: digest "
					  "%.12s, the plan saw %.12s); nothing of it was changed "
					  "(run pvelab plan again)",
					  j->guest, path, *now ? now : "of an empty list",
					  *json_string_value(want) ? json_string_value(want) :
								     "an empty list");
			job_finish(j, msg);
			free(msg);
			json_decref(state);
			return;
		}
		j->fw_before = state;
		j->fw_phase = 1;
		j->must_finish = true; /* a ruleset is never left half written */
		json_decref(j->fw_queue);
		j->fw_queue = NULL;
		job_step(j);
		return;
	}
	key = pl_fw_scope_key(j->change);
	json_object_set_new(
		j->result, "history",
		json_pack("{s:s,s:s,s:s?,s:s?,s:O?,s:s,s:s?,s:O,s:o}", "key", key, "scope",
			  pl_json_str_or(j->change, "scope", "guest"), "node",
			  pl_json_str(j->change, "node"), "type", pl_json_str(j->change, "type"),
			  "vmid", json_object_get(j->change, "vmid"), "guest", j->guest, "what",
			  pl_json_str(j->change, "what"), "before", j->fw_before, "after", state));
	free(key);
	if (j->fw_error) {
		job_end(j, "failed", j->fw_error);
		return;
	}
	advance(j);
}

static void
fw_answer(struct job *j, const json_t *data)
{
	const json_t *c;

	if (j->fw_phase != 1) {
		const char *path = json_string_value(json_array_get(j->fw_queue, j->fw_q));

		if (data) { /* absent (4xx): a list that does not exist */
			json_t *more = pl_fw_members(path, data);

			json_object_set(j->fw_reads, path, (json_t *)data);
			json_array_extend(j->fw_queue, more);
			json_decref(more);
		}
		j->attempts = 0;
		if (++j->fw_q < json_array_size(j->fw_queue))
			job_step(j);
		else
			fw_read_done(j);
		return;
	}
	c = json_array_get(json_object_get(j->change, "calls"), j->fw_i);
	if (pl_json_str(c, "list") && j->fw_digest == NULL) {
		j->fw_digest = pl_strdup(pl_fw_digest_of(data));
		job_step(j);
		return;
	}
	free(j->fw_digest);
	j->fw_digest = NULL;
	j->fw_i++;
	j->attempts = 0;
	job_step(j);
}

/* S_NEXTID: confirm vmid from or the next free one after it, within the
 * change's range, that no job of this run holds. */
static void
next_probe(struct job *j, long long from)
{
	const json_t *range = json_object_get(j->change, "vmid_range");
	long long lo = 100, hi = 999999999;
	char key[32];

	if (json_is_array(range)) {
		lo = json_integer_value(json_array_get(range, 0));
		hi = json_integer_value(json_array_get(range, 1));
	}
	for (j->probe = from > lo ? from : lo; j->probe <= hi; j->probe++) {
		snprintf(key, sizeof(key), "%lld", j->probe);
		if (!json_object_get(j->ap->taken, key))
			break;
	}
	if (j->probe > hi || ++j->probes > 64) {
		char *msg = pl_asprintf("no free vmid for %s in %lld-%lld after %d tries "
					"(Proxmox's /cluster/nextid)",
					j->guest, lo, hi, j->probes - 1);

		job_finish(j, msg);
		free(msg);
		return;
	}
	job_step(j);
}

/* nextid's answer (a string on the wire, an integer on some versions). */
static void
nextid_answer(struct job *j, const json_t *data)
{
	const json_t *range = json_object_get(j->change, "vmid_range");
	long long id = 0;
	char key[32];

	if (json_is_integer(data))
		id = json_integer_value(data);
	else if (!json_is_string(data) ||
		 pl_str_to_ll(json_string_value(data), 100, 999999999, &id) != 0)
		id = 0;
	snprintf(key, sizeof(key), "%lld", id);
	if (id == 0 || json_object_get(j->ap->taken, key) ||
	    (json_is_array(range) && (id < json_integer_value(json_array_get(range, 0)) ||
				      id > json_integer_value(json_array_get(range, 1))))) {
		next_probe(j, id ? id + 1 : j->probe + 1);
		return;
	}
	json_object_set_new(j->ap->taken, key, json_true());
	j->vmid = id;
	json_object_set_new(j->result, "vmid", json_integer(id));
	pl_log_info("apply: %s: vmid %lld (Proxmox's next free one)", j->guest, id);
	advance(j);
}

/* Another client created a guest on the vmid nextid gave between the
 * answer and the create (PVE refuses it: "... already exists on node"):
 * ask again, a bounded number of times. */
static bool
reassign(struct job *j, const char *msg)
{
	enum step s = j->pc < j->nsteps ? j->prog[j->pc] : S_END;
	int at = 0;

	if ((s != S_CREATE && s != S_CLONE) || msg == NULL || !strstr(msg, "already exists") ||
	    !json_is_true(json_object_get(j->change, "vmid_at_apply")) || j->reassigned >= 5)
		return false;
	while (at < j->nsteps && j->prog[at] != S_NEXTID)
		at++;
	if (at == j->nsteps)
		return false;
	pl_log_info("apply: %s: vmid %lld was taken meanwhile (%s), asking for another", j->guest,
		    j->vmid, msg);
	j->reassigned++;
	j->vmid = 0;
	j->probe = 0;
	j->probes = 0;
	j->pc = at;
	j->attempts = 0;
	job_step(j);
	return true;
}

/* The firewall of a guest whose vmid this run assigned: its calls moved
 * under that vmid; false (the change ended) when the guest was not made. */
static bool
firewall_for_made(struct job *j)
{
	const struct applier *ap = j->ap;

	for (size_t i = 0; i < ap->njobs; i++) {
		const struct job *c = &ap->jobs[i];

		if (c != j && !strcmp(c->guest, j->guest) && !strcmp(c->action, "create") &&
		    json_is_true(json_object_get(c->result, "created")) && c->vmid > 0) {
			j->own = pl_fw_change_for_vmid(j->change, c->vmid);
			j->change = j->own;
			j->vmid = c->vmid;
			return true;
		}
	}
	json_object_set_new(j->result, "status", json_string("running"));
	job_finish(j, "its guest was not created, so it has no vmid");
	return false;
}

static void
job_step(struct job *j)
{
	const json_t *ch = j->change;
	json_t *p;
	char *key;

	if (j->pc >= j->nsteps || j->prog[j->pc] == S_END) {
		job_finish(j, NULL);
		return;
	}
	if (stop_level(j->ap) && !j->must_finish) {
		job_end(j, j->pc == 0 ? "not started" : "interrupted", NULL);
		return;
	}
	if (j->pc == 0 && j->own == NULL && j->prog[0] == S_FIREWALL &&
	    json_is_true(json_object_get(ch, "vmid_at_apply")) && !firewall_for_made(j))
		return;
	ch = j->change;
	if (j->pc == 0) /* what the record says of a change in flight */
		json_object_set_new(j->result, "status", json_string("running"));
	/* past these the guest is half made until the program ends */
	if (j->prog[j->pc] == S_CREATE || j->prog[j->pc] == S_CLONE || j->prog[j->pc] == S_RESTORE ||
	    (j->prog[j->pc] == S_DESTROY && j->pc + 1 < j->nsteps))
		j->must_finish = true;
	emit(j, false, NULL);
	switch (j->prog[j->pc]) {
	case S_BRIDGE: {
		const json_t *b = json_object_get(ch, "bridge");
		bool update = json_is_true(json_object_get(ch, "update"));
		static const char *const keys[][2] = { { "cidr", "cidr" }, { "gateway", "gateway" },
						       { "ports", "bridge_ports" }, { "comment", "comments" } };
		struct pl_buf del;

		/* an update sends the whole bridge (the plan filled in the live
		 * values of what the YAML leaves out): PUT resets the method */
		p = json_pack("{s:s}", "type", "bridge");
		if (!update)
			json_object_set_new(p, "iface", json_string(pl_json_str_or(b, "name", "")));
		if (!update || json_object_get(b, "autostart"))
			json_object_set_new(p, "autostart", json_boolean(json_is_true(json_object_get(b, "autostart"))));
		pl_buf_init(&del, 0);
		for (size_t i = 0; i < PL_ARRAY_LEN(keys); i++) {
			const char *v = pl_json_str(b, keys[i][0]);

			if (v && *v)
				json_object_set_new(p, keys[i][1], json_string(v));
			else if (update && v)
				pl_buf_addf(&del, "%s%s", del.len ? "," : "", keys[i][1]);
		}
		if (json_is_true(json_object_get(b, "vlan_aware")) || (update && json_object_get(b, "vlan_aware")))
			json_object_set_new(p, "bridge_vlan_aware", json_boolean(json_is_true(json_object_get(b, "vlan_aware"))));
		if (del.len)
			json_object_set_new(p, "delete", json_string(del.data));
		pl_buf_release(&del);
		if (update)
			request(j, "PUT", pl_asprintf("/nodes/%s/network/%s", j->node, pl_json_str_or(b, "name", "")), p);
		else
			request(j, "POST", pl_asprintf("/nodes/%s/network", j->node), p);
		return;
	}
	case S_CALL: { /* a storage, backup job or pool (day2.c) */
		const char *method;
		char *path, *err = NULL;

		if (pl_day2_request(ch, &method, &path, &p, &err) != 0) {
			job_finish(j, err);
			free(err);
			return;
		}
		j->inflight = true;
		pl_pve_request(j->ap->c, method, path, p, on_resp, j);
		free(path);
		pl_day2_request_free(p);
		return;
	}
	case S_NETAPPLY:
		request(j, "PUT", pl_asprintf("/nodes/%s/network", j->node), NULL);
		return;
	case S_TEMPLATE: {
		const char *volid = template_volid(j);
		const char *state;

		if (volid == NULL) {
			advance(j);
			return;
		}
		key = pl_asprintf("template|%s|%s", j->node, volid);
		state = pl_json_str(j->ap->shared, key);
		if (state && !strcmp(state, "present")) {
			free(key);
			advance(j);
			return;
		}
		/* a retry of this step still holds the key */
		if (j->holding == NULL && !hold(j, key)) { /* another container fetches it */
			free(key);
			retry_later(j, 100);
			return;
		}
		free(key);
		char *storage = pl_strndup(volid, strcspn(volid, ":"));

		request(j, "GET", pl_asprintf("/nodes/%s/storage/%s/content", j->node, storage),
			json_pack("{s:s}", "content", "vztmpl"));
		free(storage);
		return;
	}
	case S_CLONE_RESOLVE:
		request(j, "GET", pl_strdup("/cluster/resources"), json_pack("{s:s}", "type", "vm"));
		return;
	case S_CLONE: {
		const json_t *clone = json_object_get(json_object_get(ch, "create"), "clone");

		key = pl_asprintf("clone|%s", j->src_node);
		if (j->holding == NULL && !hold(j, key)) {
			free(key);
			retry_later(j, 100);
			return;
		}
		free(key);
		p = json_pack("{s:I,s:s,s:s,s:b}", "newid", (json_int_t)j->vmid, "name", j->guest,
			      "target", j->node, "full",
			      !json_is_false(json_object_get(clone, "full")));
		if (pl_json_str(clone, "storage") && !json_is_false(json_object_get(clone, "full")))
			json_object_set_new(p, "storage", json_string(pl_json_str(clone, "storage")));
		if (pl_json_str(json_object_get(ch, "create"), "pool"))
			json_object_set_new(p, "pool", json_string(pl_json_str(json_object_get(ch, "create"), "pool")));
		request(j, "POST", pl_asprintf("/nodes/%s/qemu/%lld/clone", j->src_node, j->src_vmid), p);
		return;
	}
	case S_CLONE_FIX:
		release_hold(j);
		request(j, "GET", guest_path(j, "/config"), NULL);
		return;
	case S_NEXTID: /* PVE's nextid: open to every user, it sees every guest */
		request(j, "GET", pl_strdup("/cluster/nextid"),
			j->probe ? json_pack("{s:I}", "vmid", (json_int_t)j->probe) : NULL);
		return;
	case S_CREATE:
		p = json_pack("{s:I}", "vmid", (json_int_t)j->vmid);
		create_params(j, p);
		if (!strcmp(j->type, "lxc"))
			json_object_set_new(p, "ostemplate",
					    json_string(pl_json_str_or(json_object_get(ch, "create"),
								       "ostemplate", "")));
		request(j, "POST", pl_asprintf("/nodes/%s/%s", j->node, j->type), p);
		return;
	case S_SNAPSHOT: {
		char name[64];

		snprintf(name, sizeof(name), "pvelab-pre-%lld", j->ap->o->run_id);
		/* named in the result once taken (step_done) */
		request(j, "POST", guest_path(j, "/snapshot"),
			json_pack("{s:s,s:s}", "snapname", name, "description",
				  "taken by pvelab apply before changing this guest"));
		return;
	}
	case S_MIGRATE:
		p = json_pack("{s:s}", "target", pl_json_str(ch, "migrate_to"));
		if (j->running_now && !strcmp(j->type, "lxc"))
			json_object_set_new(p, "restart", json_true());
		else if (j->running_now) { /* PVE refuses to move local disks live without it */
			json_object_set_new(p, "online", json_true());
			json_object_set_new(p, "with-local-disks", json_true());
		}
		request(j, "POST", guest_path(j, "/migrate"), p);
		return;
	case S_CONFIG: {
		struct pl_buf del;
		size_t i;
		json_t *k;

		if (json_object_size(j->set) == 0 && json_array_size(j->del) == 0) {
			advance(j);
			return;
		}
		p = json_object();
		add_config_params(p, j->set);
		pl_buf_init(&del, 0);
		json_array_foreach(j->del, i, k)
			pl_buf_addf(&del, "%s%s", del.len ? "," : "", json_string_value(k));
		if (del.len)
			json_object_set_new(p, "delete", json_string(del.data));
		pl_buf_release(&del);
		if (pl_json_str(ch, "digest") && !strcmp(pl_json_str_or(ch, "action", ""), "update"))
			json_object_set_new(p, "digest", json_string(pl_json_str(ch, "digest")));
		request(j, "PUT", guest_path(j, "/config"), p);
		return;
	}
	case S_RESIZE: {
		const char *disk;
		json_t *size;
		void *it = json_object_iter(j->resize);

		if (it == NULL) {
			advance(j);
			return;
		}
		disk = json_object_iter_key(it);
		size = json_object_iter_value(it);
		p = json_pack("{s:s,s:O}", "disk", disk, "size", size);
		/* one per pass, the step repeats: the disk leaves j->resize only
		 * once Proxmox took it (step_after), so that a retry after a lock
		 * error sends the same disk again */
		request(j, "PUT", guest_path(j, "/resize"), p);
		return;
	}
	case S_REBOOT:
		request(j, "POST", guest_path(j, "/status/reboot"), NULL);
		return;
	case S_START:
		request(j, "POST", guest_path(j, "/status/start"), NULL);
		return;
	case S_STOP:
		request(j, "POST", old_path(j, "/status/stop"), NULL);
		return;
	case S_SHUTDOWN:
		request(j, "POST", guest_path(j, "/status/shutdown"),
			json_pack("{s:b,s:i}", "forceStop", 1, "timeout", 120));
		return;
	case S_DESTROY:
		request(j, "DELETE", old_path(j, ""),
			json_pack("{s:b,s:b}", "purge", 1, "destroy-unreferenced-disks", 1));
		return;
	case S_ROLLBACK: {
		char *suffix = pl_asprintf("/snapshot/%s/rollback", pl_json_str_or(ch, "snapshot", ""));

		p = json_object();
		if (j->running_now)
			json_object_set_new(p, "start", json_true());
		request(j, "POST", guest_path(j, suffix), p);
		free(suffix);
		return;
	}
	case S_CHECK:
		check_create(j);
		return;
	case S_BACKUP_STORAGE:
		p = json_pack("{s:s}", "content", "backup");
		if (j->bk_storage)
			json_object_set_new(p, "storage", json_string(j->bk_storage));
		request(j, "GET", pl_asprintf("/nodes/%s/storage", j->old_node), p);
		return;
	case S_BACKUP:
		if (j->bk_before == NULL) { /* first what is there already, to tell ours apart */
			request(j, "GET", pl_asprintf("/nodes/%s/storage/%s/content", j->old_node, j->bk_storage),
				json_pack("{s:s,s:I}", "content", "backup", "vmid", (json_int_t)j->old_vmid));
			return;
		}
		backup_post(j);
		return;
	case S_BACKUP_FIND:
		request(j, "GET", pl_asprintf("/nodes/%s/storage/%s/content", j->old_node, j->bk_storage),
			json_pack("{s:s,s:I}", "content", "backup", "vmid", (json_int_t)j->old_vmid));
		return;
	case S_RESTORE: {
		const char *archive = pl_json_str_or(ch, "archive", "");

		if (!strcmp(j->type, "lxc"))
			p = json_pack("{s:I,s:s,s:b}", "vmid", (json_int_t)j->vmid, "ostemplate", archive,
				      "restore", 1);
		else
			p = json_pack("{s:I,s:s}", "vmid", (json_int_t)j->vmid, "archive", archive);
		if (json_is_true(json_object_get(ch, "overwrite")))
			json_object_set_new(p, "force", json_true());
		request(j, "POST", pl_asprintf("/nodes/%s/%s", j->node, j->type), p);
		return;
	}
	case S_FIREWALL:
		fw_next(j);
		return;
	case S_END:
		break;
	}
	job_finish(j, NULL);
}

/* A clone's config, diffed like an update of a stopped guest. */
static void
clone_fix(struct job *j, const json_t *live)
{
	const json_t *want = json_object_get(j->change, "config");
	const char *penv = pl_json_str(json_object_get(j->change, "create"), "password_env");
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)want, k, v) {
		char *w = pl_model_value_text(v), *h = pl_model_value_text(json_object_get(live, k));
		struct pl_model_cmp r;

		pl_model_compare(false, k, w, h, false, NULL, &r);
		if (!r.equal && r.resize && r.size)
			json_object_set_new(j->resize, k, json_string(r.size));
		if (!r.equal && r.value && !r.blocked)
			json_object_set_new(j->set, k, json_string(r.value));
		pl_model_cmp_release(&r);
		free(w);
		free(h);
	}
	/* the cloud-init password, as a create gets it (create_params): read
	 * from the environment here, sent once, never in the plan or the result */
	if (penv && getenv(penv))
		json_object_set_new(j->set, "cipassword", json_string(getenv(penv)));
}

static void
wait_task(struct job *j, const char *upid)
{
	free(j->upid);
	j->upid = pl_strdup(upid);
	j->inflight = true;
	pl_pve_task_wait(j->ap->c, upid, j->ap->o->task_timeout_ms, on_task, j);
}

/* What a change whose backup failed leaves alone, for its message. */
static const char *
kept(const struct job *j)
{
	return !strcmp(j->action, "update") ? "nothing was changed" : "nothing was destroyed";
}

static void
step_after(struct job *j, json_t *data)
{
	enum step s = j->prog[j->pc];

	if (s == S_NEXTID) {
		nextid_answer(j, data);
		return;
	}
	if (s == S_TEMPLATE && j->holding && json_is_array(data)) {
		const char *volid = template_volid(j);
		const char *slash = strrchr(volid, '/');
		const json_t *item;
		size_t i;

		json_array_foreach(data, i, item) {
			if (!strcmp(pl_json_str_or(item, "volid", ""), volid)) {
				mark_present(j);
				advance(j);
				return;
			}
		}
		/* missing: download it through aplinfo; the answer is a task */
		char *storage = pl_strndup(volid, strcspn(volid, ":"));

		pl_log_info("apply: downloading template '%s' on node '%s'", volid, j->node);
		request(j, "POST", pl_asprintf("/nodes/%s/aplinfo", j->node),
			json_pack("{s:s,s:s}", "storage", storage, "template", slash ? slash + 1 : volid));
		free(storage);
		return;
	}
	if (s == S_CLONE_RESOLVE) {
		const json_t *clone = json_object_get(json_object_get(j->change, "create"), "clone");
		const char *tmpl = pl_json_str_or(clone, "template", "");
		long long want_id = 0;
		const json_t *g, *from = json_object_get(j->change, "clone_from");
		size_t i;

		pl_str_to_ll(tmpl, 1, 999999999, &want_id);
		json_array_foreach(data, i, g) {
			bool named = (want_id && pl_json_int(g, "vmid", 0) == want_id) ||
				     !strcmp(pl_json_str_or(g, "name", ""), tmpl);

			if (pl_json_int(g, "template", 0) != 1 || !named)
				continue;
			/* the source the plan showed, and no other */
			if (from == NULL || pl_json_int(g, "vmid", 0) == pl_json_int(from, "vmid", 0)) {
				j->src_vmid = pl_json_int(g, "vmid", 0);
				free(j->src_node);
				j->src_node = pl_strdup(pl_json_str_or(g, "node", ""));
				break;
			}
		}
		if (j->src_node == NULL) {
			char *msg = from ? pl_asprintf("template %lld ('%s'), the clone source the plan "
						       "showed, is gone (run pvelab plan again)",
						       pl_json_int(from, "vmid", 0),
						       pl_json_str_or(from, "name", tmpl))
					 : pl_asprintf("no template '%s' in the cluster (convert a VM with "
						       "'qm template' or fix clone.template)", tmpl);

			job_finish(j, msg);
			free(msg);
			return;
		}
		advance(j);
		return;
	}
	if (s == S_CHECK) {
		if (!create_refused(j, data))
			advance(j);
		return;
	}
	if (s == S_BACKUP_STORAGE) {
		const json_t *st = NULL, *e;
		size_t i;

		json_array_foreach(data, i, e) {
			if (!holds(e, "backup") || pl_json_int(e, "active", 1) == 0 ||
			    pl_json_int(e, "enabled", 1) == 0)
				continue;
			if (j->bk_storage ? !strcmp(pl_json_str_or(e, "storage", ""), j->bk_storage)
					  : st == NULL || !strcmp(pl_json_str_or(e, "storage", ""), "local"))
				st = e; /* unset: 'local', as vzdump itself, else the first */
		}
		if (st == NULL) {
			bool update = !strcmp(j->action, "update");
			const char *flag = update ? "--no-snapshot" : "--no-backup";
			char *msg;

			if (j->bk_storage)
				msg = pl_asprintf(
					"backup storage '%s' does not exist on node '%s' or "
					"does not hold backups; %s (fix backup.storage, or "
					"apply %s)",
					j->bk_storage, j->old_node, kept(j), flag);
			else
				msg = pl_asprintf(
					"no storage on node '%s' holds backups, so %s %lld "
					"would be %s without a way back; %s (set "
					"backup.storage to a storage with the 'backup' "
					"content type, or apply %s)",
					j->old_node, !strcmp(j->old_type, "lxc") ? "CT" : "VM",
					j->old_vmid, update ? "changed" : "destroyed", kept(j),
					flag);

			job_finish(j, msg);
			free(msg);
			return;
		}
		free(j->bk_storage);
		j->bk_storage = pl_strdup(pl_json_str(st, "storage"));
		json_object_set_new(j->result, "backup_storage", json_string(j->bk_storage));
		advance(j);
		return;
	}
	if (s == S_BACKUP && j->bk_before == NULL && json_is_array(data)) {
		const json_t *e;
		long long newest = 0, now = (long long)time(NULL);
		size_t i;

		j->bk_before = json_object();
		json_array_foreach(data, i, e) {
			if (pl_json_str(e, "volid"))
				json_object_set_new(j->bk_before, pl_json_str(e, "volid"), json_true());
			if (pl_json_int(e, "vmid", j->old_vmid) == j->old_vmid &&
			    pl_json_int(e, "ctime", 0) > newest)
				newest = pl_json_int(e, "ctime", 0);
		}
		/* vzdump names an archive to the second: one of this guest made this
		 * second (a rollback's backup just before) would be overwritten, and
		 * ours not told apart. Wait for the next second (a clock a second or
		 * two ahead included). */
		if (newest >= now && newest - now < 2) {
			struct timeval tv;

			gettimeofday(&tv, NULL);
			retry_later(j, (long)(newest - now + 1) * 1000 - tv.tv_usec / 1000 + 50);
			return;
		}
		backup_post(j); /* now the backup itself */
		return;
	}
	if (s == S_BACKUP_FIND) {
		const char *volid = NULL;
		long long newest = -1;
		const json_t *e;
		size_t i;

		/* ours is the one that was not there before (the newest if several) */
		json_array_foreach(data, i, e) {
			const char *v = pl_json_str(e, "volid");

			if (v == NULL || json_object_get(j->bk_before, v) ||
			    pl_json_int(e, "vmid", j->old_vmid) != j->old_vmid)
				continue;
			if (pl_json_int(e, "ctime", 0) > newest ||
			    (pl_json_int(e, "ctime", 0) == newest && strcmp(v, volid) > 0)) {
				newest = pl_json_int(e, "ctime", 0);
				volid = v;
			}
		}
		if (volid == NULL) {
			char *msg = pl_asprintf("the backup finished but no new archive of %lld is "
						"on storage '%s'; %s",
						j->old_vmid, j->bk_storage, kept(j));

			job_finish(j, msg);
			free(msg);
			return;
		}
		json_object_set_new(j->result, "backup", json_string(volid));
		json_object_set_new(j->result, "backup_node", json_string(j->old_node));
		advance(j);
		return;
	}
	if (s == S_FIREWALL) {
		fw_answer(j, data);
		return;
	}
	if (s == S_CLONE_FIX) {
		clone_fix(j, data);
		advance(j);
		return;
	}
	if (s == S_MIGRATE) {
		free(j->node);
		j->node = pl_strdup(pl_json_str(j->change, "migrate_to"));
	}
	if (s == S_RESIZE && json_object_iter(j->resize))
		json_object_del(j->resize, json_object_iter_key(json_object_iter(j->resize)));
	if (s == S_RESIZE && json_object_size(j->resize) > 0) {
		/* more disks to grow: wait for this one, then repeat the step */
		if (json_is_string(data) && pl_str_startswith(json_string_value(data), "UPID:")) {
			j->again = true; /* on_task runs S_RESIZE again */
			wait_task(j, json_string_value(data));
			return;
		}
		job_step(j);
		return;
	}
	if (json_is_string(data) && pl_str_startswith(json_string_value(data), "UPID:")) {
		wait_task(j, json_string_value(data));
		return;
	}
	advance(j);
}

static void
add_step(struct job *j, enum step s)
{
	if (j->nsteps < MAX_STEPS)
		j->prog[j->nsteps++] = s;
}

/* A step that is part of a listed one beside it (the plan does not list it). */
static void
add_part(struct job *j, enum step s)
{
	if (j->nsteps < MAX_STEPS) {
		j->part[j->nsteps] = true;
		j->prog[j->nsteps++] = s;
	}
}

/* Create the guest. prepared: the template or clone source was already
 * looked at (a replace does that before destroying); start: power it on. */
static void
program_create(struct job *j, bool prepared, bool start)
{
	const json_t *create = json_object_get(j->change, "create");

	if (json_is_true(json_object_get(j->change, "vmid_at_apply")))
		add_part(j, S_NEXTID);
	if (!strcmp(j->type, "lxc")) {
		if (!prepared && pl_json_str(create, "ostemplate"))
			add_step(j, S_TEMPLATE);
		add_step(j, S_CREATE);
	} else if (json_is_object(json_object_get(create, "clone"))) {
		if (!prepared)
			add_step(j, S_CLONE_RESOLVE);
		add_step(j, S_CLONE);
		add_step(j, S_CLONE_FIX);
		/* what configuring the clone sends: known only once it exists */
		add_part(j, S_CONFIG);
		add_part(j, S_RESIZE);
	} else {
		add_step(j, S_CREATE);
	}
	if (start && json_is_true(json_object_get(j->change, "start")))
		add_step(j, S_START);
}

/* A vzdump backup of the guest j removes or changes (old_vmid): the plan
 * lists one step, "backup". */
static void
program_backup(struct job *j)
{
	add_part(j, S_BACKUP_STORAGE);
	add_step(j, S_BACKUP);
	add_part(j, S_BACKUP_FIND);
}

/* Back up the old guest (unless --no-backup), then stop and destroy it. */
static void
program_remove(struct job *j, bool stop)
{
	if (!j->ap->o->no_backup)
		program_backup(j);
	if (stop)
		add_step(j, S_STOP);
	add_step(j, S_DESTROY);
}

/* A replace. With a vmid of its own (the YAML fixes none) the new guest is
 * created first and started only once the old one is gone (same name,
 * same addresses); else the create is proven possible before the destroy:
 * the config and storages checked, the template fetched or the clone
 * source found. */
static void
program_replace(struct job *j)
{
	const json_t *create = json_object_get(j->change, "create");

	if (j->old_vmid != j->vmid) {
		program_create(j, false, false);
		program_remove(j, j->running_now);
		if (json_is_true(json_object_get(j->change, "start")))
			add_step(j, S_START);
		return;
	}
	add_step(j, S_CHECK);
	if (!strcmp(j->type, "lxc"))
		add_step(j, S_TEMPLATE);
	else if (json_is_object(json_object_get(create, "clone")))
		add_step(j, S_CLONE_RESOLVE);
	program_remove(j, j->running_now);
	program_create(j, true, true);
}

/* The steps of one change: the only place that decides them. The planner
 * lists them (pl_apply_steps) and the executor runs them, so the two agree. */
static void
program(struct job *j)
{
	const json_t *ch = j->change;
	const struct pl_apply_opts *o = j->ap->o;
	const char *a = pl_json_str_or(ch, "action", "");

	if (!strcmp(a, "bridge")) {
		add_step(j, S_BRIDGE);
		add_step(j, S_NETAPPLY);
	} else if (!strcmp(a, "template")) {
		add_step(j, S_TEMPLATE);
	} else if (pl_day2_action(a)) {
		add_step(j, S_CALL);
	} else if (!strcmp(a, "create")) {
		program_create(j, false, true);
	} else if (!strcmp(a, "reboot")) {
		add_step(j, S_REBOOT);
	} else if (!strcmp(a, "update")) {
		/* its way back, as the plan decided it (see fall_back) */
		if (o->snapshot && !strcmp(pl_plan_way_back_kind(ch), PL_WAY_BACK_BACKUP))
			program_backup(j);
		else if (o->snapshot)
			add_step(j, S_SNAPSHOT);
		if (pl_json_str(ch, "migrate_to"))
			add_step(j, S_MIGRATE);
		if (json_object_size(j->set) || json_array_size(j->del))
			add_step(j, S_CONFIG);
		if (json_object_size(j->resize))
			add_step(j, S_RESIZE);
		if (o->reboot && json_is_true(json_object_get(ch, "reboot")))
			add_step(j, S_REBOOT);
	} else if (!strcmp(a, "replace")) {
		if (!o->allow_replace)
			return; /* refused: the plan is blocked */
		program_replace(j);
	} else if (!strcmp(a, "start")) {
		add_step(j, S_START);
	} else if (!strcmp(a, "stop")) {
		add_step(j, S_SHUTDOWN);
	} else if (!strcmp(a, "delete")) {
		program_remove(j, true);
	} else if (!strcmp(a, "restore")) {
		/* rollback of a delete or replace: the replacement (if any) goes first,
		 * backed up like any guest pvelab destroys; of an update whose way
		 * back was a backup: its state now is backed up, then it is stopped
		 * and restored over (force, as PVE's own restore over a guest) */
		if (json_is_true(json_object_get(ch, "overwrite"))) {
			program_backup(j);
			add_step(j, S_STOP);
		} else if (json_object_get(ch, "old_vmid")) {
			program_remove(j, true);
		}
		add_step(j, S_RESTORE);
		if (j->running_now)
			add_step(j, S_START);
	} else if (!strcmp(a, "rollback")) {
		add_step(j, S_ROLLBACK);
	} else if (!strcmp(a, "firewall")) {
		add_step(j, S_FIREWALL);
	} else if (!strcmp(a, "backup")) { /* pvelab backup: the backup alone */
		program_backup(j);
	}
}

/* The parts of a job program() reads. */
static void
job_setup(struct job *j, struct applier *ap, const json_t *ch)
{
	memset(j, 0, sizeof(*j));
	j->ap = ap;
	j->change = ch;
	j->type = pl_strdup(pl_json_str_or(ch, "type", "qemu"));
	j->vmid = pl_json_int(ch, "vmid", 0);
	j->old_vmid = pl_json_int(ch, "old_vmid", j->vmid);
	j->running_now = json_is_true(json_object_get(ch, "running"));
	j->set = json_object_get(ch, "set") ? json_deep_copy(json_object_get(ch, "set")) : json_object();
	j->del = json_object_get(ch, "delete") ? json_deep_copy(json_object_get(ch, "delete")) : json_array();
	j->resize = json_object_get(ch, "resize") ? json_deep_copy(json_object_get(ch, "resize")) : json_object();
	j->recorded = -1;
	program(j);
}

json_t *
pl_apply_steps(const json_t *change, const struct pl_apply_opts *o)
{
	struct applier ap = { .o = o };
	struct job j;
	json_t *names = json_array();

	job_setup(&j, &ap, change);
	for (int i = 0; i < j.nsteps; i++)
		if (!j.part[i])
			json_array_append_new(names, json_string(step_names[j.prog[i]]));
	free(j.type);
	json_decref(j.set);
	json_decref(j.del);
	json_decref(j.resize);
	return names;
}

static void
job_init(struct applier *ap, struct job *j, const json_t *ch)
{
	const char *a = pl_json_str_or(ch, "action", "");
	bool destroys = !strcmp(a, "delete") || (!strcmp(a, "replace") && ap->o->allow_replace) ||
			(!strcmp(a, "restore") && json_object_get(ch, "old_vmid"));

	job_setup(j, ap, ch);
	j->guest = pl_strdup(pl_json_str_or(ch, "guest", "?"));
	j->action = pl_strdup(a);
	j->node = pl_json_str(ch, "node") ? pl_strdup(pl_json_str(ch, "node")) : NULL;
	j->old_type = pl_strdup(pl_json_str_or(ch, "from_type", j->type));
	j->old_node = j->node || pl_json_str(ch, "old_node")
		? pl_strdup(pl_json_str_or(ch, "old_node", j->node)) : NULL;
	j->bk_storage = pl_json_str(ch, "backup_storage") || ap->o->backup_storage
		? pl_strdup(pl_json_str_or(ch, "backup_storage", ap->o->backup_storage)) : NULL;
	j->result = json_pack("{s:s,s:s,s:s,s:s,s:I,s:[]}", "guest", j->guest, "action", a, "type",
			      j->type, "status", "not started", "vmid", (json_int_t)j->vmid, "steps_done");
	if (j->node)
		json_object_set_new(j->result, "node", json_string(j->node));
	if (pl_day2_action(a)) /* what it did to a storage, job or pool (its owner) */
		json_object_set(j->result, "class", json_object_get(ch, "class"));
	json_object_set_new(j->result, "was_running", json_boolean(j->running_now));
	if (destroys && ap->o->no_backup)
		json_object_set_new(j->result, "no_backup", json_true());
	if (!strcmp(a, "replace")) {
		json_object_set_new(j->result, "from_type", json_string(j->old_type));
		json_object_set_new(j->result, "old_vmid", json_integer(j->old_vmid));
		json_object_set_new(j->result, "old_node", json_string(j->old_node ? j->old_node : ""));
	}
	if (!strcmp(a, "restore"))
		json_object_set(j->result, "archive", json_object_get(ch, "archive"));
	if (!strcmp(a, "rollback"))
		json_object_set(j->result, "snapshot", json_object_get(ch, "snapshot"));
	/* an update's way back, as program() takes it (fall_back may change it) */
	if (!strcmp(a, "update") && !ap->o->snapshot)
		json_object_set_new(j->result, "way_back",
				    json_pack("{s:s,s:s}", "kind", PL_WAY_BACK_NONE, "reason",
					      "--no-snapshot"));
	else if (!strcmp(a, "update") && json_object_get(ch, "way_back"))
		json_object_set_new(j->result, "way_back",
				    json_deep_copy(json_object_get(ch, "way_back")));
	else if (!strcmp(a, "update"))
		json_object_set_new(j->result, "way_back",
				    json_pack("{s:s}", "kind", PL_WAY_BACK_SNAPSHOT));
}

static void
job_release(struct job *j)
{
	if (j->timer)
		event_free(j->timer);
	json_decref(j->result);
	json_decref(j->set);
	json_decref(j->del);
	json_decref(j->resize);
	free(j->guest);
	free(j->action);
	free(j->node);
	free(j->type);
	free(j->src_node);
	free(j->holding);
	free(j->old_type);
	free(j->old_node);
	free(j->bk_storage);
	json_decref(j->bk_before);
	free(j->fw_digest);
	free(j->fw_error);
	json_decref(j->fw_queue);
	json_decref(j->fw_reads);
	json_decref(j->fw_before);
	json_decref(j->own);
	free(j->upid);
}

static void
applier_free(struct applier *ap)
{
	for (size_t i = 0; i < ap->njobs; i++)
		job_release(&ap->jobs[i]);
	free(ap->jobs);
	if (ap->done_ev)
		event_free(ap->done_ev);
	json_decref(ap->pre);
	json_decref(ap->shared);
	json_decref(ap->taken);
	free(ap->o_copy);
	free(ap);
}

static int
phase_of(const json_t *ch)
{
	const char *a = pl_json_str_or(ch, "action", "");

	if (!strcmp(a, "bridge") || !strcmp(a, "template"))
		return 0;
	/* the cluster's sets first; a guest's once it exists; undone (rollback):
	 * the guests' rules that name the cluster's sets first */
	if (!strcmp(a, "firewall") && json_is_true(json_object_get(ch, "undo")))
		return strcmp(pl_json_str_or(ch, "scope", ""), "cluster") ? 1 : 2;
	if (!strcmp(a, "firewall"))
		return strcmp(pl_json_str_or(ch, "scope", ""), "cluster") ? 2 : 0;
	if (pl_day2_action(a))
		return pl_day2_phase(ch);
	if (!strcmp(a, "delete"))
		return 2;
	return 1;
}

/* Start jobs of the current phase while there is room; move to the next
 * phase when this one has drained. */
static void
start_more(struct applier *ap)
{
	for (;;) {
		int limit = ap->phase == 0 ? 1 : (ap->o->jobs > 0 ? ap->o->jobs : 4);

		while (!ap->failed && !stop_level(ap) && ap->active < (size_t)limit && ap->next < ap->njobs &&
		       phase_of(ap->jobs[ap->next].change) == ap->phase) {
			struct job *j = &ap->jobs[ap->next++];

			ap->active++;
			job_step(j);
		}
		if (ap->active == 0 && (ap->failed || stop_level(ap) || ap->next >= ap->njobs)) {
			schedule_done(ap);
			return;
		}
		if (ap->failed || stop_level(ap) || ap->active > 0 || ap->next >= ap->njobs)
			return;
		ap->phase++;
	}
}

static int
cmp_phase(const void *a, const void *b)
{
	const struct job *x = a, *y = b;

	return phase_of(x->change) - phase_of(y->change);
}

/* The executor's own delete limit (a plan file is never trusted): when the
 * plan deletes more guests than o allows, *result says so and nothing runs. */
static bool
too_many_deletes(const json_t *plan, const struct pl_apply_opts *o, json_t **result)
{
	const json_t *changes = json_object_get(plan, "changes"), *ch;
	long long n = 0, limit = !o->allow_delete ? 0 : o->max_deletes;
	json_t *list;
	char *why;
	size_t i;

	json_array_foreach(changes, i, ch)
		n += !strcmp(pl_json_str_or(ch, "action", ""), "delete");
	if (n == 0 || limit < 0 || n <= limit)
		return false;
	why = !o->allow_delete ? pl_asprintf("refused: deleting guests needs --allow-delete")
			       : pl_asprintf("refused: %lld deletes, more than the limit of %lld", n, limit);
	list = json_array();
	json_array_foreach(changes, i, ch) {
		json_t *res = json_pack("{s:s,s:s,s:s,s:s}", "guest", pl_json_str_or(ch, "guest", "?"), "action",
					pl_json_str_or(ch, "action", "?"), "type", pl_json_str_or(ch, "type", "qemu"),
					"status", "not started");

		if (!strcmp(pl_json_str_or(ch, "action", ""), "delete"))
			json_object_set_new(res, "error", json_string(why));
		json_array_append_new(list, res);
	}
	free(why);
	*result = json_pack("{s:i,s:i,s:i,s:o}", "ok", 0, "failed", 0, "skipped", (int)json_array_size(list),
			    "changes", list);
	return true;
}

json_t *
pl_apply_owned(const json_t *snap, const char *project)
{
	json_t *owned = json_object();
	const json_t *g;
	char key[32];
	size_t i;

	json_array_foreach(json_object_get(snap, "guests"), i, g) {
		if (project == NULL || !pl_model_owned_by(g, project))
			continue;
		snprintf(key, sizeof(key), "%lld", pl_json_int(g, "vmid", -1));
		json_object_set_new(owned, key, json_true());
	}
	return owned;
}

/* A guest ch would stop, reboot, replace, roll back or destroy that is not
 * in owned: its vmid, or 0. */
static long long
unowned_target(const json_t *ch, const struct pl_apply_opts *o)
{
	const char *a = pl_json_str_or(ch, "action", "");
	long long t[2] = { 0, pl_json_int(ch, "old_vmid", 0) };
	char key[32];

	if (!strcmp(a, "replace") && t[1] != 0)
		; /* the guest it destroys is old_vmid; vmid is the one it makes */
	else if (!strcmp(a, "delete") || !strcmp(a, "replace") || !strcmp(a, "stop") ||
		 !strcmp(a, "rollback") || !strcmp(a, "reboot") ||
		 (!strcmp(a, "restore") && json_is_true(json_object_get(ch, "overwrite"))) ||
		 (!strcmp(a, "update") &&
		  (pl_json_str(ch, "migrate_to") ||
		   (o->reboot && json_is_true(json_object_get(ch, "reboot"))))))
		t[0] = pl_json_int(ch, "vmid", -1);
	else if (strcmp(a, "restore") != 0)
		t[1] = 0; /* a create's or a start's old_vmid destroys nothing */
	for (int k = 0; k < 2; k++) {
		if (t[k] == 0)
			continue;
		snprintf(key, sizeof(key), "%lld", t[k]);
		if (!json_is_true(json_object_get(o->owned, key)))
			return t[k] < 0 ? -1 : t[k];
	}
	return 0;
}

/* The executor's own ownership rule (a plan file is never trusted): a plan
 * that touches a guest outside o->owned is refused whole, as
 * too_many_deletes refuses. */
static bool
touches_unowned(const json_t *plan, const struct pl_apply_opts *o, json_t **result)
{
	const json_t *changes = json_object_get(plan, "changes"), *ch;
	bool any = false;
	json_t *list;
	size_t i;

	json_array_foreach(changes, i, ch)
		any = any || unowned_target(ch, o) != 0;
	if (!any)
		return false;
	list = json_array();
	json_array_foreach(changes, i, ch) {
		long long v = unowned_target(ch, o);
		json_t *res = json_pack("{s:s,s:s,s:s,s:s}", "guest", pl_json_str_or(ch, "guest", "?"), "action",
					pl_json_str_or(ch, "action", "?"), "type", pl_json_str_or(ch, "type", "qemu"),
					"status", "not started");

		if (v != 0)
			json_object_set_new(res, "error", json_sprintf("refused: guest %lld is not managed "
								       "by this project", v));
		json_array_append_new(list, res);
	}
	*result = json_pack("{s:i,s:i,s:i,s:o}", "ok", 0, "failed", 0, "skipped", (int)json_array_size(list),
			    "changes", list);
	return true;
}

/* Stop waiting: the changes in flight are "abandoned" (their tasks go on in
 * Proxmox); answers still due find the applier marked and free it. */
static void
abandon(struct applier *ap)
{
	for (size_t i = 0; i < ap->njobs; i++) {
		struct job *j = &ap->jobs[i];

		if (j->timer)
			event_del(j->timer);
		if (j->over || i >= ap->next)
			continue;
		json_object_set_new(j->result, "status", json_string("abandoned"));
		json_object_set_new(j->result, "step", json_string(step_names[j->prog[j->pc]]));
		if (j->upid)
			json_object_set_new(j->result, "upid", json_string(j->upid));
		if (j->inflight)
			ap->orphans++;
		j->over = true;
		emit(j, true, NULL);
	}
}

/* The run ends (from the loop): abandon what is in flight if asked to, give
 * the caller the result, and free the run, or keep it until the answers
 * still due have come (see abandoned_link). */
static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	struct applier *ap = arg;
	pl_apply_done_cb cb = ap->cb;
	json_t *result;
	int r;

	(void)fd;
	(void)what;
	if (ap->early) {
		r = ap->early;
		result = json_incref(ap->pre);
	} else {
		if (ap->active > 0)
			abandon(ap);
		result = build_result(ap);
		r = pl_json_int(result, "failed", 0) ? PL_ETASK
		    : json_is_true(json_object_get(result, "stopped")) ? PL_ECANCEL : 0;
	}
	/* the caller's options and callback are gone once it has the result */
	ap->o_copy->progress = NULL;
	ap->o_copy->record = NULL;
	ap->o_copy->stop = NULL;
	ap->cb = NULL;
	cb(r, result, ap->cb_arg);
	json_decref(result);
	if (ap->orphans) {
		ap->abandoned = true;
		abandoned_link(ap, true);
	} else
		applier_free(ap);
}

struct pl_apply *
pl_apply_start(struct event_base *base, struct pl_pve *c, const json_t *plan,
	       const struct pl_apply_opts *o, pl_apply_done_cb cb, void *arg)
{
	struct applier *ap = pl_calloc(1, sizeof(*ap));
	const json_t *changes = json_object_get(plan, "changes"), *ch;
	size_t i;

	ap->base = base;
	ap->c = c;
	ap->cb = cb;
	ap->cb_arg = arg;
	ap->done_ev = evtimer_new(base, on_done, ap);
	ap->o_copy = pl_malloc(sizeof(*o)); /* outlives the call when abandoned */
	*ap->o_copy = *o;
	if (ap->o_copy->task_timeout_ms == 0)
		ap->o_copy->task_timeout_ms = 600000;
	ap->o = ap->o_copy;
	ap->shared = json_object();
	ap->taken = json_object();
	json_array_foreach(changes, i, ch) {
		char key[32];

		snprintf(key, sizeof(key), "%lld", pl_json_int(ch, "vmid", 0));
		if (pl_json_int(ch, "vmid", 0) > 0)
			json_object_set_new(ap->taken, key, json_true());
	}
	if (too_many_deletes(plan, o, &ap->pre) || touches_unowned(plan, o, &ap->pre)) {
		ap->early = PL_EINVAL;
		schedule_done(ap);
		return (struct pl_apply *)ap;
	}
	ap->jobs = pl_calloc(json_array_size(changes) + 1, sizeof(*ap->jobs));
	json_array_foreach(changes, i, ch) {
		if (!strcmp(pl_json_str_or(ch, "action", ""), "replace") && !o->allow_replace)
			continue;
		job_init(ap, &ap->jobs[ap->njobs++], ch);
	}
	/* stable within a phase: keep the plan's order */
	for (size_t a = 1; a < ap->njobs; a++)
		for (size_t b = a; b > 0 && cmp_phase(&ap->jobs[b - 1], &ap->jobs[b]) > 0; b--) {
			struct job t = ap->jobs[b - 1];

			ap->jobs[b - 1] = ap->jobs[b];
			ap->jobs[b] = t;
		}
	for (i = 0; i < ap->njobs; i++) /* fix back-pointers after moving */
		ap->jobs[i].ap = ap;
	start_more(ap);
	return (struct pl_apply *)ap;
}

void
pl_apply_cancel(struct pl_apply *a, int level)
{
	struct applier *ap = (struct applier *)a;

	if (ap == NULL || ap->cb == NULL || level <= ap->cancel)
		return;
	ap->cancel = level;
	if (level >= PL_APPLY_ABANDON || ap->active == 0)
		schedule_done(ap);
}

struct apply_wait {
	bool done;
	int r;
	json_t *result;
};

static void
apply_waited(int r, json_t *result, void *arg)
{
	struct apply_wait *w = arg;

	w->done = true;
	w->r = r;
	w->result = json_incref(result);
}

int
pl_apply_run(struct event_base *base, struct pl_pve *c, const json_t *plan,
	     const struct pl_apply_opts *o, json_t **result)
{
	struct apply_wait w = { 0 };
	struct pl_apply *a;

	/* refused whole: no loop needed */
	if (too_many_deletes(plan, o, result) || touches_unowned(plan, o, result))
		return PL_EINVAL;
	a = pl_apply_start(base, c, plan, o, apply_waited, &w);
	while (!w.done) {
		if (o->stop && *o->stop)
			pl_apply_cancel(a, *o->stop);
		if (w.done)
			break;
		/* 1: nothing left to wait for, a stall: stop waiting, not spin */
		if (event_base_loop(base, EVLOOP_ONCE) != 0)
			pl_apply_cancel(a, PL_APPLY_ABANDON);
	}
	*result = w.result;
	return w.r;
}
