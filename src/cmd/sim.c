/*
 * `pvelab sim`: run the Proxmox VE API simulator until SIGINT/SIGTERM. Prints
 * one JSON line (url, fingerprint, credentials) on stdout when it is ready.
 */
#include "core/common.h"
#include "cmd/cmd.h"

#include <event2/event.h>
#include <limits.h>
#include <signal.h>

#include "core/err.h"
#include "core/file.h"
#include "core/propstr.h"
#include "sim/sim.h"

static const struct pl_opt opts[] = {
	{ "listen", 'l', "HOST:PORT",
	  "address to serve on (default 127.0.0.1:8006; port 0 picks one)" },
	{ "no-tls", 0, NULL, "serve plain HTTP instead of HTTPS" },
	{ "nodes", 0, "N", "generated cluster: number of nodes (default 1)" },
	{ "guests", 0, "M", "generated cluster: number of guests (default 0)" },
	{ "seed", 0, "FILE", "YAML or JSON description of the cluster (docs/sim.md)" },
	{ "state-file", 0, "FILE", "load the cluster from FILE if it exists; save changes to it" },
	{ "task-ms", 0, "MS", "how long worker tasks run (default 300)" },
	{ "auth-delay-ms", 0, "MS", "delay of 401 answers (default 3000, as PVE)" },
	{ "lock-wait-ms", 0, "MS",
	  "how long a lockwait fault waits before failing (default 10000)" },
	{ "health-ms", 0, "MS",
	  "guest agent's docker compose: each healthcheck interval lasts MS instead of its own "
	  "(default: as the compose file says)" },
	{ "faults", 0, "SPEC",
	  "inject faults: "
	  "error=P,timeout=P,reset=P,latency=MS,lockwait=P,noanswer=P,truncate=P,nextidrace=P" },
	{ "rng-seed", 0, "N", "seed for faults, MACs and UUIDs (deterministic runs)" },
	{ "pve-version", 0, "VER", "API schema to follow: 9.1 (default) or 8.4" },
	{ "password-file", 0, "FILE",
	  "root@pam password (mode 0600; or PVELAB_SIM_PASSWORD; default: random)" },
	{ "token-file", 0, "FILE",
	  "secret of the token root@pam!pvelab (mode 0600; or PVELAB_SIM_TOKEN; default: random)" },
	{ NULL, 0, NULL, NULL },
};

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_sim_opts o;
	struct pl_args a;
	struct event_base *base = NULL;
	struct event_config *cfg;
	struct event *sigint = NULL, *sigterm = NULL;
	struct pl_sim *sim = NULL;
	char *err = NULL, *line, *password = NULL, *token = NULL;
	long long v;
	json_t *info;
	int r, rc = PL_EXIT_ERROR;

	pl_sim_opts_init(&o);
	if ((r = pl_args_parse(&a, &pl_cmd_sim, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	for (int i = 0; opts[i].name; i++) {
		const char *name = opts[i].name;

		if (!pl_args_has(&a, i))
			continue;
		a.value = a.val[i];
		if (!strcmp(name, "listen"))
			o.listen = a.value;
		else if (!strcmp(name, "no-tls"))
			o.no_tls = true;
		else if (!strcmp(name, "seed"))
			o.seed = a.value;
		else if (!strcmp(name, "state-file"))
			o.state_file = a.value;
		else if (!strcmp(name, "faults"))
			o.faults = a.value;
		else if (!strcmp(name, "pve-version"))
			o.pve_version = a.value;
		else if (!strcmp(name, "password-file") || !strcmp(name, "token-file")) {
			/* never on the command line: /proc/PID/cmdline is world-readable */
			char **dst = name[0] == 'p' ? &password : &token;

			pl_free_secret(*dst);
			*dst = NULL;
			if (pl_file_read_secret(a.value, dst, &err) != 0) {
				pl_error("--%s: %s", name, err);
				free(err);
				pl_free_secret(password);
				pl_free_secret(token);
				return PL_EXIT_USAGE;
			}
		} else {
			long long max = !strcmp(name, "rng-seed") ? LLONG_MAX : 100000000;

			if (pl_args_int(&a, 0, max, &v) != 0) {
				pl_free_secret(password);
				pl_free_secret(token);
				return PL_EXIT_USAGE;
			}
			if (!strcmp(name, "nodes"))
				o.nodes = (int)v;
			else if (!strcmp(name, "guests"))
				o.guests = (int)v;
			else if (!strcmp(name, "task-ms"))
				o.task_ms = (int)v;
			else if (!strcmp(name, "auth-delay-ms"))
				o.auth_delay_ms = (int)v;
			else if (!strcmp(name, "lock-wait-ms"))
				o.lock_wait_ms = (int)v;
			else if (!strcmp(name, "health-ms"))
				o.health_ms = (int)v;
			else if (!strcmp(name, "rng-seed")) {
				o.rng_seed = (uint64_t)v;
				o.rng_seeded = true;
			}
		}
	}
	if (password == NULL && getenv("PVELAB_SIM_PASSWORD") && *getenv("PVELAB_SIM_PASSWORD"))
		password = pl_strdup(getenv("PVELAB_SIM_PASSWORD"));
	if (token == NULL && getenv("PVELAB_SIM_TOKEN") && *getenv("PVELAB_SIM_TOKEN"))
		token = pl_strdup(getenv("PVELAB_SIM_TOKEN"));
	o.password = password;
	o.token = token;
	if (o.faults && pl_sim_faults_check(o.faults, &err) != 0) {
		pl_error("bad --faults '%s': %s", o.faults, err);
		rc = PL_EXIT_USAGE;
		goto out;
	}
	/* the changelist merges what a request does to its socket's interest (read
	 * off, write on; write off, read on) into one epoll_ctl each way */
	cfg = event_config_new();
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (pl_sim_new(base, &o, &sim, &err) != 0) {
		pl_error("cannot start the simulator: %s", err ? err : "unknown error");
		goto out;
	}
	info = pl_sim_info(sim);
	line = json_dumps(info, JSON_COMPACT);
	printf("%s\n", line);
	fflush(stdout);
	free(line);
	json_decref(info);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	event_base_dispatch(base);
	if (pl_sim_save(sim, &err) != 0)
		pl_error("cannot save the state: %s", err);
	else
		rc = PL_EXIT_OK;
out:
	free(err);
	pl_sim_free(sim);
	pl_free_secret(password);
	pl_free_secret(token);
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	if (base)
		event_base_free(base);
	pl_pfmt_cleanup();
	return rc;
}

const struct pl_cmd pl_cmd_sim = {
	.name = "sim",
	.summary = "run a Proxmox VE API simulator",
	.usage = "[--listen HOST:PORT] [--seed FILE] [--nodes N --guests M] [options]",
	.help = "Serves the Proxmox VE API (/api2/json, schema of PVE 9.1 or 8.4) over HTTPS with a\n"
		"self-signed certificate, and prints one JSON line with the URL, the certificate\n"
		"fingerprint and credentials. Runs until SIGINT or SIGTERM. See docs/sim.md.",
	.opts = opts,
	.run = run,
};
