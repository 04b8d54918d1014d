/*
 * API handlers for a guest's power (/status/start, stop, shutdown, reboot,
 * suspend, resume, reset): PVE's checks, the task, the state it leaves.
 */
#include "core/common.h"

#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

/* --- power --- */

enum power { P_START, P_STOP, P_SHUTDOWN, P_REBOOT, P_SUSPEND, P_RESUME, P_RESET };

static void
power_done(struct pl_sim *s, struct pl_sim_task *t)
{
	struct pl_sim_guest *g = pl_sim_guest_find(s, t->vmid);
	enum power p = (enum power)pl_json_int(t->args, "op", 0);

	if (!g)
		return;
	switch (p) {
	case P_START:
		pl_sim_apply_pending(s, g);
		g->status = PL_SIM_RUNNING;
		g->started = time(NULL);
		break;
	case P_SHUTDOWN:
		if (json_is_true(json_object_get(t->args, "ignored"))) {
			/* A guest without ACPI never powers down: PVE gives up after
			 * the timeout, or kills it with forceStop. */
			if (!json_is_true(json_object_get(t->args, "force"))) {
				pl_sim_task_fail(t, "VM quit/powerdown failed - got timeout");
				return;
			}
			pl_sim_task_log(t, "VM still running - terminating now with SIGTERM");
		}
		g->status = PL_SIM_STOPPED;
		break;
	case P_STOP:
		g->status = PL_SIM_STOPPED;
		break;
	case P_REBOOT:
		if (json_is_true(json_object_get(t->args, "ignored"))) {
			pl_sim_task_fail(t, "VM quit/powerdown failed - got timeout");
			return;
		}
		/* fall through */
	case P_RESET:
		pl_sim_apply_pending(s, g);
		g->status = PL_SIM_RUNNING;
		g->started = time(NULL);
		break;
	case P_SUSPEND:
		g->status = PL_SIM_PAUSED;
		break;
	case P_RESUME:
		g->status = PL_SIM_RUNNING;
		break;
	}
	free(g->res);
	g->res = NULL;
	s->dirty = true;
}

/* What the power action's worker finds before it acts, as PVE's message
 * (caller frees), or NULL: the task then ends with it and changes nothing.
 * qemu: PVE::QemuServer::vm_start_nolock (template, check_lock unless the
 * lock is 'suspended', a running VM with a 'backup' lock is resumed,
 * "already running", volumes activated), _do_vm_stop and
 * PVE::QemuServer::RunState (check_lock unless skiplock); lxc:
 * PVE::API2::LXC::Status's workers (check_lock unless skiplock or the lock
 * is 'mounted'). */
static char *
worker_refusal(struct pl_sim_req *r, struct pl_sim_guest *g, enum power p)
{
	bool lxc = g->lxc, running = g->status != PL_SIM_STOPPED;

	if (p == P_START && pl_json_bool(g->conf, "template", false))
		return pl_strdup(lxc ? "you can't start a CT if it's a template" :
				       "you can't start a vm if it's a template");
	if (!lxc && p == P_START && running && !strcmp(g->lock, "backup"))
		return NULL;
	if (!(lxc && !strcmp(g->lock, "mounted")) &&
	    !((p == P_START || p == P_RESUME) && !strcmp(g->lock, "suspended"))) {
		char *why = pl_sim_lock_refusal(r, g);

		if (why)
			return why;
	}
	if (p == P_START && !lxc && running)
		return pl_asprintf("VM %u already running", g->vmid);
	if (p == P_START) {
		char *why = pl_sim_missing_volume(r->sim, g);
		const char *k;
		json_t *v;

		/* QemuServer::PCI::parse_hostpci: a mapping this node lacks */
		json_object_foreach(lxc ? NULL : g->conf, k, v)
			if (why == NULL && pl_str_startswith(k, "hostpci") && json_is_string(v))
				why = pl_sim_pcimap_missing(r->sim, json_string_value(v),
							    r->sim->nodes[g->node].name);
		return why;
	}
	return NULL;
}

static void
h_power(struct pl_sim_req *r)
{
	bool lxc = r->lxc;
	enum power p = (enum power)r->op;
	static const char *const qm[] = { "qmstart",   "qmstop",   "qmshutdown", "qmreboot",
					  "qmsuspend", "qmresume", "qmreset" };
	static const char *const vz[] = { "vzstart",   "vzstop",   "vzshutdown", "vzreboot",
					  "vzsuspend", "vzresume", "vzreset" };
	struct pl_sim_guest *g = pl_sim_req_guest(r, lxc);
	struct pl_sim_task *t;
	char overruled[256] = "", *refusal;
	bool ignored = false;

	/* (PVE refuses a token's skiplock before it looks at the guest) */
	if (!pl_sim_skiplock_ok(r))
		return;

	if (!g)
		return;
	if (pl_sim_ha_power(r, g,
			    p == P_START    ? PL_SIM_HA_START :
			    p == P_STOP     ? PL_SIM_HA_STOP :
			    p == P_SHUTDOWN ? PL_SIM_HA_SHUTDOWN :
					      -1))
		return;
	if (p == P_STOP && pl_sim_pbool(r, "overrule-shutdown", false) && g->holder &&
	    g->holder->running && strstr(g->holder->type, "shutdown")) {
		/* PVE 8.1+: a stop may abort the shutdown that holds the lock. */
		snprintf(overruled, sizeof(overruled), "%s", g->holder->upid);
		pl_sim_task_abort(g->holder, "received interrupt");
	}
	if (pl_sim_flock_busy(r, g))
		return;
	/* the checks PVE's API makes before it forks the worker */
	if (p == P_START) {
		if (lxc && g->status != PL_SIM_STOPPED) {
			pl_sim_fail(r, 500, "CT %u already running", g->vmid);
			return;
		}
	} else if (p == P_STOP || p == P_SHUTDOWN) {
		/* a VM's stop or shutdown of a stopped VM is a task that does nothing */
		if (lxc && g->status == PL_SIM_STOPPED) {
			pl_sim_fail(r, 500, "CT %u not running", g->vmid);
			return;
		}
		if (p == P_SHUTDOWN && !lxc && g->status == PL_SIM_PAUSED) {
			pl_sim_fail(r, 500, "VM is paused - cannot shutdown");
			return;
		}
	} else {
		if (g->status == PL_SIM_STOPPED) {
			pl_sim_fail(r, 500, "%s %u not running", PL_SIM_GT(g), g->vmid);
			return;
		}
		if (p == P_REBOOT && !lxc && g->status == PL_SIM_PAUSED) {
			pl_sim_fail(r, 500, "VM is paused - cannot shutdown");
			return;
		}
		if (p == P_RESUME && g->status != PL_SIM_PAUSED && !lxc) {
			pl_sim_fail(r, 500, "VM %u not paused", g->vmid);
			return;
		}
	}
	if (p != P_STOP && !pl_sim_check_lock_fault(r, g))
		return;
	refusal = worker_refusal(r, g, p);
	/* A VM with ACPI off ignores the power button that shutdown (and reboot,
	 * a shutdown and a start) presses. */
	ignored = (p == P_SHUTDOWN || p == P_REBOOT) && !lxc && g->status != PL_SIM_STOPPED &&
		  !pl_json_bool(g->conf, "acpi", true);
	t = pl_sim_task_start(r->sim, g->node, lxc ? vz[p] : qm[p], pl_sim_p(r, "vmid"), r->user, 0,
			      power_done,
			      json_pack("{s:i,s:b,s:b}", "op", (int)p, "ignored", ignored, "force",
					pl_sim_pbool(r, "forceStop", false)));
	t->vmid = g->vmid;
	g->holder = t;
	if (overruled[0])
		pl_sim_task_log(t, "overruled %s tasks: %s", lxc ? "vzshutdown" : "qmshutdown",
				overruled);
	if (refusal) {
		pl_sim_task_doom(t, refusal);
		free(refusal);
	} else if (ignored) { /* PVE waits `timeout` seconds, 60 by default */
		pl_sim_task_run_for(t, (long)pl_sim_pint(r, "timeout", 60) * 1000);
	}
	pl_sim_ok_task(r, t);
}

#define Q "/nodes/{node}/qemu"
#define L "/nodes/{node}/lxc"

const struct pl_sim_route_def pl_sim_power_routes[] = {
	{ PL_SIM_POST, Q "/{vmid}/status/start", h_power, false, P_START },
	{ PL_SIM_POST, Q "/{vmid}/status/stop", h_power, false, P_STOP },
	{ PL_SIM_POST, Q "/{vmid}/status/shutdown", h_power, false, P_SHUTDOWN },
	{ PL_SIM_POST, Q "/{vmid}/status/reboot", h_power, false, P_REBOOT },
	{ PL_SIM_POST, Q "/{vmid}/status/suspend", h_power, false, P_SUSPEND },
	{ PL_SIM_POST, Q "/{vmid}/status/resume", h_power, false, P_RESUME },
	{ PL_SIM_POST, Q "/{vmid}/status/reset", h_power, false, P_RESET },
	{ PL_SIM_POST, L "/{vmid}/status/start", h_power, true, P_START },
	{ PL_SIM_POST, L "/{vmid}/status/stop", h_power, true, P_STOP },
	{ PL_SIM_POST, L "/{vmid}/status/shutdown", h_power, true, P_SHUTDOWN },
	{ PL_SIM_POST, L "/{vmid}/status/reboot", h_power, true, P_REBOOT },
	{ PL_SIM_POST, L "/{vmid}/status/suspend", h_power, true, P_SUSPEND },
	{ PL_SIM_POST, L "/{vmid}/status/resume", h_power, true, P_RESUME },
	{ 0, NULL, NULL, false, 0 },
};
