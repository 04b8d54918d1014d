/*
 * API handlers for scheduled backup jobs (/cluster/backup, jobs.cfg) and the
 * guests no job covers (/cluster/backup-info/not-backed-up), as pve-manager's
 * PVE/API2/Backup.pm, PVE/API2/Cluster/BackupInfo.pm and PVE::VZDump do; with
 * schedules checked by core/calendar (proxmox-time's parser, PVE::CalendarEvent).
 */
#include "core/common.h"

#include "core/calendar.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

/* --- jobs --- */

static json_t *
jobs(struct pl_sim *s)
{
	if (!s->jobs)
		s->jobs = json_object();
	return s->jobs;
}

static const struct pl_sim_method *
post_method(struct pl_sim *s)
{
	struct pl_sim_path *p = pl_sim_schema_find(s->schema, "/cluster/backup");

	return p ? p->methods[PL_SIM_POST] : NULL;
}

static json_t *
job_entry(struct pl_sim *s, const char *id, const json_t *job)
{
	json_t *o = pl_sim_typed(post_method(s), job);

	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "type", json_string("vzdump"));
	return o;
}

static void
h_list(struct pl_sim_req *r)
{
	const char *id;
	json_t *v, *a = json_array();

	json_object_foreach(jobs(r->sim), id, v)
		json_array_append_new(a, job_entry(r->sim, id, v));
	pl_sim_ok(r, a);
}

static void
h_get(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "id");
	json_t *job = json_object_get(jobs(r->sim), id);

	if (!job) {
		pl_sim_param_fail(r, "id", "No such job '%s'", id);
		return;
	}
	pl_sim_ok(r, job_entry(r->sim, id, job));
}

/* The schedule parameter's check (the schema format pve-calendar-event) and
 * Backup.pm's $schedule_param_check; false with the 400 set. On success the
 * deprecated starttime/dow become schedule in params. */
static bool
schedule_check(struct pl_sim_req *r, json_t *params, bool create)
{
	const char *sched = pl_json_str(params, "schedule");
	const char *start = pl_json_str(params, "starttime");

	if (sched && pl_calendar_parse(sched, NULL, NULL) < 0) {
		/* proxmox-time's parse_complete_line, when nom names no context */
		pl_sim_param_fail(r, "schedule",
				  "invalid calendar event '%s' - unable to parse calendar event",
				  sched);
		return false;
	}
	if (sched && start) {
		pl_sim_param_fail(r, "starttime", "'starttime' and 'schedule' cannot both be set");
		return false;
	}
	if (!sched && !start) {
		if (create) {
			pl_sim_param_fail(r, "schedule",
					  "neither 'starttime' nor 'schedule' were set");
			return false;
		}
		return true;
	}
	if (start) {
		const char *dow = pl_json_str(params, "dow");
		bool all = !dow || !strcmp(dow, "mon,tue,wed,thu,fri,sat,sun");

		json_object_set_new(params, "schedule",
				    all ? json_string(start) : json_sprintf("%s %s", dow, start));
	}
	json_object_del(params, "starttime");
	json_object_del(params, "dow");
	return true;
}

/* PVE::VZDump::verify_vzdump_parameters; false with the 400 set. */
static bool
verify_job(struct pl_sim_req *r, json_t *job, bool check_missing)
{
	bool all = pl_json_bool(job, "all", false), vmid = pl_json_str(job, "vmid") != NULL;

	if (all && vmid) {
		pl_sim_param_fail(r, "all", "option conflicts with option 'vmid'");
		return false;
	}
	if (pl_json_str(job, "exclude") && vmid) {
		pl_sim_param_fail(r, "exclude", "option conflicts with option 'vmid'");
		return false;
	}
	if (pl_json_str(job, "pool") && vmid) {
		pl_sim_param_fail(r, "pool", "option conflicts with option 'vmid'");
		return false;
	}
	if (pl_json_str(job, "exclude") && !pl_json_str(job, "pool"))
		json_object_set_new(job, "all", json_string("1"));
	if (check_missing && !pl_json_bool(job, "all", false) &&
	    !pl_json_bool(job, "stop", false) && !pl_json_str(job, "pool") && !vmid) {
		pl_sim_param_fail(r, "vmid", "property is missing");
		return false;
	}
	return true;
}

static bool
pool_check(struct pl_sim_req *r, const json_t *params)
{
	const char *pool = pl_json_str(params, "pool");

	if (pool && !json_object_get(r->sim->pools, pool)) {
		pl_sim_fail(r, 500, "pool '%s' does not exist", pool);
		return false;
	}
	return true;
}

static void
h_create(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	json_t *job = json_deep_copy(r->params);
	char id[40];

	if (!pool_check(r, job) || !schedule_check(r, job, true))
		goto out;
	if (!json_object_get(job, "enabled"))
		json_object_set_new(job, "enabled", json_string("1"));
	/* "autogenerate id for api compatibility": UUID::uuid() */
	if (pl_json_str(job, "id"))
		snprintf(id, sizeof(id), "%s", pl_json_str(job, "id"));
	else
		pl_sim_gen_uuid(s, id);
	json_object_del(job, "id");
	if (json_object_get(jobs(s), id)) {
		pl_sim_fail(r, 500, "Job '%s' already exists", id);
		goto out;
	}
	if (!verify_job(r, job, true))
		goto out;
	json_object_set(jobs(s), id, job);
	s->dirty = true;
	pl_sim_ok(r, json_null());
out:
	json_decref(job);
}

/* Options a PUT may delete beyond the vzdump ones (Backup.pm's $deletable). */
static bool
deletable(struct pl_sim *s, const char *k)
{
	const struct pl_sim_method *m = post_method(s);

	if (!strcmp(k, "comment") || !strcmp(k, "repeat-missed"))
		return true;
	return strcmp(k, "id") && strcmp(k, "schedule") && strcmp(k, "starttime") &&
	       strcmp(k, "dow") && strcmp(k, "enabled") && m && pl_sim_param_find(m, k);
}

static void
h_update(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	const char *id = pl_sim_p(r, "id"), *del = pl_sim_p(r, "delete");
	json_t *params = json_deep_copy(r->params), *job, *upd = NULL;
	const char *k;
	json_t *v;

	json_object_del(params, "id");
	json_object_del(params, "delete");
	if (!pool_check(r, params) || !schedule_check(r, params, false))
		goto out;
	if (!json_object_size(params) && !del) {
		pl_sim_fail(r, 500, "no options specified");
		goto out;
	}
	if (!verify_job(r, params, false))
		goto out;
	if ((job = json_object_get(jobs(s), id)) == NULL) {
		pl_sim_fail(r, 500, "no such vzdump job");
		goto out;
	}
	upd = json_deep_copy(job);
	if (del) {
		char *dup = pl_strdup(del), *save = NULL, *tok;

		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save)) {
			if (!deletable(s, tok)) {
				pl_sim_param_fail(r, "delete", "unknown option '%s'", tok);
				free(dup);
				goto out;
			}
			json_object_del(upd, tok);
		}
		free(dup);
	}
	json_object_foreach(params, k, v)
		json_object_set(upd, k, v);
	if (pl_json_str(upd, "exclude") && !pl_json_str(upd, "pool"))
		json_object_set_new(upd, "all", json_string("1"));
	/* one selection wins: the one this call set */
	if (pl_json_str(params, "vmid")) {
		json_object_del(upd, "all");
		json_object_del(upd, "exclude");
		json_object_del(upd, "pool");
	} else if (pl_json_bool(params, "all", false)) {
		json_object_del(upd, "vmid");
		json_object_del(upd, "pool");
	} else if (pl_json_str(upd, "pool")) {
		json_object_del(upd, "vmid");
		json_object_del(upd, "all");
		json_object_del(upd, "exclude");
	}
	if (!verify_job(r, upd, true))
		goto out;
	json_object_set(jobs(s), id, upd);
	s->dirty = true;
	pl_sim_ok(r, json_null());
out:
	json_decref(upd);
	json_decref(params);
}

static void
h_delete(struct pl_sim_req *r)
{
	const char *id = pl_sim_p(r, "id");

	if (!json_object_get(jobs(r->sim), id)) {
		pl_sim_param_fail(r, "id", "No such job '%s'", id);
		return;
	}
	json_object_del(jobs(r->sim), id);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* PVE::VZDump::Plugin::remove_vmid_from_backup_jobs: the guest leaves every
 * job's vmid list (a job left without guests goes) and exclude list. */
void
pl_sim_jobs_forget(struct pl_sim *s, uint32_t vmid)
{
	char id[16];
	void *it;

	snprintf(id, sizeof(id), "%u", vmid);
	for (it = json_object_iter(jobs(s)); it;) {
		json_t *job = json_object_iter_value(it);
		const char *key = json_object_iter_key(it);
		const char *field = pl_json_str(job, "vmid") ? "vmid" : "exclude";
		char *left = pl_sim_list_without(pl_json_str(job, field), id);

		it = json_object_iter_next(jobs(s), it);
		if (*left)
			json_object_set_new(job, field, json_string(left));
		else if (!strcmp(field, "vmid"))
			json_object_del(jobs(s), key);
		else
			json_object_del(job, field);
		free(left);
	}
	s->dirty = true;
}

/* --- backup-info --- */

static bool
list_has_vmid(const char *list, uint32_t vmid)
{
	char *dup = pl_strdup(list ? list : ""), *save = NULL, *tok;
	bool found = false;

	for (tok = strtok_r(dup, ",; ", &save); tok && !found; tok = strtok_r(NULL, ",; ", &save))
		found = strtoul(tok, NULL, 10) == vmid;
	free(dup);
	return found;
}

static bool
pool_has(struct pl_sim *s, const char *pool, uint32_t vmid)
{
	size_t i;
	json_t *m;

	json_array_foreach(json_object_get(json_object_get(s->pools, pool), "members"), i, m) {
		if ((json_is_integer(m) && json_integer_value(m) == vmid) ||
		    (json_is_string(m) && strtoul(json_string_value(m), NULL, 10) == vmid))
			return true;
	}
	return false;
}

/* PVE::VZDump::get_included_guests: whether a job backs the guest up
 * (disabled jobs count too, as BackupInfo.pm counts them). */
static bool
job_includes(struct pl_sim *s, const json_t *job, const struct pl_sim_guest *g)
{
	const char *node = pl_json_str(job, "node");

	if (node && strcmp(node, s->nodes[g->node].name))
		return false;
	if (pl_json_str(job, "pool"))
		return pool_has(s, pl_json_str(job, "pool"), g->vmid);
	if (pl_json_str(job, "vmid"))
		return list_has_vmid(pl_json_str(job, "vmid"), g->vmid);
	if (pl_json_bool(job, "all", false))
		return !list_has_vmid(pl_json_str(job, "exclude"), g->vmid);
	return false;
}

static void
h_not_backed_up(struct pl_sim_req *r)
{
	struct pl_sim *s = r->sim;
	json_t *a = json_array();

	for (size_t i = 0; i < s->nguests; i++) {
		struct pl_sim_guest *g = s->guests[i];
		const char *id, *name = pl_json_str(g->conf, g->lxc ? "hostname" : "name");
		json_t *job, *o;
		bool covered = false;

		json_object_foreach(jobs(s), id, job)
			covered |= job_includes(s, job, g);
		if (covered)
			continue;
		o = json_pack("{s:I,s:s}", "vmid", (json_int_t)g->vmid, "type",
			      g->lxc ? "lxc" : "qemu");
		if (name)
			json_object_set_new(o, "name", json_string(name));
		json_array_append_new(a, o);
	}
	pl_sim_ok(r, a);
}

/* --- seeds and state --- */

int
pl_sim_jobs_seed(struct pl_sim *s, const json_t *seed, char **errmsg)
{
	int r;
	size_t i;
	json_t *v;

	if (!seed)
		return 0;
	if (!json_is_array(seed))
		return pl_seterr(errmsg, PL_EINVAL, "seed: 'backup_jobs' must be a list");
	json_array_foreach(seed, i, v) {
		const char *id = pl_json_str(v, "id"), *k;
		char *why = NULL;
		json_t *job = json_object(), *e;
		char uuid[40];

		json_object_foreach(v, k, e) {
			char *txt = pl_api_value_text(e);

			if (txt && strcmp(k, "id"))
				json_object_set_new(job, k, json_string(txt));
			free(txt);
		}
		if (!pl_json_str(job, "schedule") ||
		    pl_calendar_parse(pl_json_str(job, "schedule"), NULL, &why) < 0) {
			json_decref(job);
			r = pl_seterr(errmsg, PL_EINVAL, "seed: backup_jobs[%zu]: %s", i,
				      why ? why : "schedule is missing");
			free(why);
			return r;
		}
		if (!json_object_get(job, "enabled"))
			json_object_set_new(job, "enabled", json_string("1"));
		if (!id) {
			pl_sim_gen_uuid(s, uuid);
			id = uuid;
		}
		json_object_set_new(jobs(s), id, job);
	}
	return 0;
}

json_t *
pl_sim_jobs_dump(struct pl_sim *s)
{
	const char *id;
	json_t *v, *a = json_array();

	json_object_foreach(jobs(s), id, v) {
		json_t *o = json_deep_copy(v);

		json_object_set_new(o, "id", json_string(id));
		json_array_append_new(a, o);
	}
	return a;
}

const struct pl_sim_route_def pl_sim_backup_routes[] = {
	{ PL_SIM_GET, "/cluster/backup", h_list, false, 0 },
	{ PL_SIM_POST, "/cluster/backup", h_create, false, 0 },
	{ PL_SIM_GET, "/cluster/backup/{id}", h_get, false, 0 },
	{ PL_SIM_PUT, "/cluster/backup/{id}", h_update, false, 0 },
	{ PL_SIM_DELETE, "/cluster/backup/{id}", h_delete, false, 0 },
	{ PL_SIM_GET, "/cluster/backup-info/not-backed-up", h_not_backed_up, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
