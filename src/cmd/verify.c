/*
 * `pvelab verify [GUEST...]`: after an apply or a deploy, whether each
 * declared guest works: reachable inside (guest agent ping, or SSH), each
 * declared service answering (the check engine's TCP/HTTP(S) probes, with
 * TLS verification as the service says), and every service of its stacks
 * running in `docker compose ps`. A table or -o json; exit 1 when anything
 * fails.
 */
#include "core/common.h"
#include "check/check.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/guestx.h"
#include "config/config.h"
#include "core/json.h"
#include "plan/stacks.h"

#include <event2/event.h>

struct probes {
	struct event_base *base;
	json_t *results;
};

static void
probes_done(json_t *results, void *arg)
{
	struct probes *p = arg;

	p->results = json_incref(results);
	event_base_loopbreak(p->base);
}

static void
row_status(json_t *rows, const char *guest, const char *what, const char *status,
	   const char *detail)
{
	json_array_append_new(rows, json_pack("{s:s,s:s,s:s,s:s}", "guest", guest, "check", what,
					      "status", status, "detail", detail ? detail : ""));
}

static void
row(json_t *rows, const char *guest, const char *what, bool ok, const char *detail)
{
	row_status(rows, guest, what, ok ? "ok" : "failed", detail);
}

/* Reachable, then each stack's services, of one guest. */
static void
inside(struct pl_session *s, const json_t *gcfg, const json_t *g, const json_t *stacks,
       json_t *rows)
{
	const char *name = pl_json_str_or(gcfg, "name", "?"), *transport = NULL;
	const char *want = pl_json_str(pl_config_get(s->cfg, "/stack_defaults/transport"), NULL);
	struct pl_gx x;
	char *err = NULL, *what;
	size_t i;
	json_t *st;
	int r;

	json_array_foreach(stacks, i, st)
		if (!strcmp(pl_json_str(st, "guest"), name) && pl_json_str(st, "transport"))
			want = pl_json_str(st, "transport");
	r = pl_gx_open(s, gcfg, g, want, 0, &x, &transport, &err);
	what = pl_asprintf("reachable (%s)", transport ? transport : "?");
	row(rows, name, what, r == 0, err);
	free(what);
	free(err);
	err = NULL;
	json_array_foreach(stacks, i, st) {
		struct pl_gx_res res;
		char *why = NULL;
		bool ok;

		if (strcmp(pl_json_str(st, "guest"), name) != 0)
			continue;
		what = pl_asprintf("stack %s", pl_json_str(st, "name"));
		if (r != 0) {
			row(rows, name, what, false, "guest not reachable");
		} else if (pl_gx_run(&x, json_object_get(st, "ps"), 60000, &res, &err) != 0) {
			row(rows, name, what, false, err);
			pl_gx_res_release(&res);
		} else {
			ok = res.code == 0 &&
			     pl_gx_services_down(res.out ? res.out : "", &why) == 0;
			if (res.code != 0)
				why = pl_asprintf("docker compose ps exited %d: %.200s", res.code,
						  res.err ? res.err : "");
			row(rows, name, what, ok, ok ? "every service running" : why);
			pl_gx_res_release(&res);
		}
		free(why);
		free(what);
		free(err);
		err = NULL;
	}
	pl_gx_close(&x);
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	struct pl_session s = { 0 };
	json_t *names, *stacks = NULL, *live = NULL, *rows, *g, *specs, *mine, *v;
	struct probes p = { 0 };
	char *err = NULL;
	size_t i, j;
	int r, failed = 0;

	if ((r = pl_args_parse(&a, &pl_cmd_verify, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	names = json_array(); /* after the usage errors, which return */
	rows = json_array();
	mine = json_array();
	for (int k = 0; k < a.npos; k++)
		json_array_append_new(names, json_string(a.pos[k]));
	if ((r = pl_session_open(&s, ctx, PL_NEED_API | PL_NEED_STATE, &err)) != 0 || !s.cfg) {
		r = pl_error("%s", err ? err : "verify needs a config file");
		goto out;
	}
	if (pl_stacks_render(s.cfg, names, NULL, &stacks, &err) != 0 ||
	    pl_session_live_guests(&s, &live, &err) != 0) {
		r = pl_error("%s", err);
		goto out;
	}
	json_array_foreach(pl_config_guests(s.cfg), i, g) {
		const char *name = pl_json_str_or(g, "name", "");
		const json_t *lg;
		bool wanted = a.npos == 0;

		if (pl_gx_stopped(&s)) /* Ctrl-C in the console */
			break;
		json_array_foreach(names, j, v)
			wanted |= !strcmp(json_string_value(v), name);
		if (!wanted)
			continue;
		if (!(lg = pl_guest_lookup(live, name, &err))) {
			row(rows, name, "exists", false,
			    "not in the cluster (pvelab apply creates it)");
			free(err);
			err = NULL;
			continue;
		}
		inside(&s, g, lg, stacks, rows);
	}
	for (int k = 0; k < a.npos; k++) {
		bool found = false;

		json_array_foreach(pl_config_guests(s.cfg), i, g)
			found |= !strcmp(pl_json_str_or(g, "name", ""), a.pos[k]);
		if (!found) {
			r = pl_error("verify: no guest '%s' in %s", a.pos[k],
				     pl_config_path(s.cfg));
			goto out;
		}
	}
	if (pl_gx_stopped(&s)) {
		r = pl_error("verify: interrupted");
		goto out;
	}
	/* the declared services, probed by the check engine */
	specs = pl_check_specs(s.cfg);
	json_array_foreach(specs, i, v) {
		bool wanted = a.npos == 0 && pl_json_str(v, "guest");

		json_array_foreach(names, j, g)
			wanted |= pl_json_str(v, "guest") &&
				  !strcmp(json_string_value(g), pl_json_str(v, "guest"));
		if (wanted)
			json_array_append(mine, v);
	}
	json_decref(specs);
	if (json_array_size(mine) > 0) {
		p.base = s.base;
		pl_check_start(s.base, mine, 8, NULL, probes_done, &p);
		event_base_dispatch(s.base);
		json_array_foreach(p.results, i, v) {
			const char *st = pl_json_str_or(v, "status", "");
			const char *gname = pl_json_str_or(json_array_get(mine, i), "guest", "?");
			const char *svc = pl_json_str_or(v, "name", "?");
			char *what = pl_asprintf("service %s",
						 strchr(svc, '/') ? strchr(svc, '/') + 1 : svc);
			char *detail = pl_json_str(v, "error") ?
					       pl_strdup(pl_json_str(v, "error")) :
				       json_integer_value(json_object_get(v, "code")) ?
					       pl_asprintf("%s, HTTP %lld", st,
							   (long long)json_integer_value(
								   json_object_get(v, "code"))) :
					       pl_strdup(st);

			/* a service that cannot be probed (no address, UDP) is said so, not failed */
			row_status(rows, gname, what,
				   !strcmp(st, PL_CHECK_SKIPPED) ? "skipped" :
				   !strcmp(st, PL_CHECK_UP) || !strcmp(st, PL_CHECK_WARNING) ?
								   "ok" :
								   "failed",
				   detail);
			free(what);
			free(detail);
		}
	}
	json_array_foreach(rows, i, v)
		failed += !strcmp(pl_json_str(v, "status"), "failed");
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_pack("{s:b,s:O}", "ok", !failed, "checks", rows));
	} else {
		/* quiet (-q, or under apply -o json): the failures alone */
		if (ctx->verbosity >= 0)
			printf("%-16s %-28s %-7s %s\n", "GUEST", "CHECK", "STATUS", "DETAIL");
		json_array_foreach(rows, i, v) {
			bool ok = strcmp(pl_json_str(v, "status"), "failed") != 0;

			if (ok && ctx->verbosity < 0)
				continue;

			fprintf(ctx->verbosity < 0 ? stderr : stdout, "%-16s %-28s %s%-7s%s %s\n",
				pl_json_str(v, "guest"), pl_json_str(v, "check"),
				pl_color(ctx, ok ? PL_C_GREEN : PL_C_RED), pl_json_str(v, "status"),
				pl_color(ctx, PL_C_RESET), pl_json_str(v, "detail"));
		}
		if (pl_chatty(ctx))
			printf("%s\n", failed ? "verify: FAILED" : "verify: all ok");
	}
	r = failed ? PL_EXIT_ERROR : PL_EXIT_OK;
out:
	free(err);
	json_decref(p.results);
	json_decref(mine);
	json_decref(names);
	json_decref(stacks);
	json_decref(live);
	json_decref(rows);
	pl_session_close(&s);
	return r;
}

const struct pl_cmd pl_cmd_verify = {
	.name = "verify",
	.summary = "check that the guests work: reachable, services answering, stacks running",
	.usage = "[GUEST...]",
	.help = "For each declared guest (or those named): reachable inside (QEMU guest agent "
		"ping, or SSH with the host key trusted on first use), each of its services: "
		"answering (TCP connect, HTTP(S) status with TLS verification as the service "
		"says, as pvelab check probes them), and every service of its stacks running or "
		"healthy in docker compose ps. Exit 1 when anything failed.",
	.min_args = 0,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = 0,
};
