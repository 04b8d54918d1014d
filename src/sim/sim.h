/*
 * `pvelab sim`: a Proxmox VE API simulator faithful to the official schema.
 * The front-end (cmd/sim.c) fills pl_sim_opts, creates the simulator on its
 * event loop, prints pl_sim_info() and runs the loop until a signal.
 */
#ifndef PL_SIM_SIM_H
#define PL_SIM_SIM_H

#include "core/common.h"

#include <jansson.h>

struct event_base;
struct pl_sim;

struct pl_sim_opts {
	const char *listen;      /* "127.0.0.1:8006"; port 0 picks a free one */
	bool no_tls;             /* plain HTTP */
	int nodes;               /* generated cluster: node count (when no seed) */
	int guests;              /* generated cluster: guest count */
	const char *seed;        /* YAML or JSON seed file, or NULL */
	const char *state_file;  /* saved on change and at exit, loaded at start */
	int task_ms;             /* how long worker tasks run */
	int auth_delay_ms;       /* delay of 401 answers (PVE: 3000) */
	const char *faults;      /* "error=0.05,timeout=0.01,reset=0.01,latency=20ms,lockwait=0.1" */
	uint64_t rng_seed;
	bool rng_seeded;
	const char *pve_version; /* "9.1" or "8.4" */
	const char *password;    /* root@pam password, random when NULL */
	const char *token;       /* secret of root@pam!pvelab, random when NULL */
	int lock_wait_ms;        /* how long a lockwait fault holds before failing */
	int health_ms;           /* a compose healthcheck's interval; 0: its own */
};

/* Set the defaults (port 8006, task 300 ms, auth delay 3 s, PVE 9.1, ...). */
void pl_sim_opts_init(struct pl_sim_opts *o);
/* Parse a fault spec into o's simulator (validates only); 0 or PL_EINVAL. */
int pl_sim_faults_check(const char *spec, char **errmsg);
/* Build the cluster (seed, state file or generated) and start serving on base. */
int pl_sim_new(struct event_base *base, const struct pl_sim_opts *o, struct pl_sim **out,
	       char **errmsg);
/* The start-up line: url, fingerprint, username, password, token, readonly_token. */
json_t *pl_sim_info(const struct pl_sim *s);
/* Write the state file now if one is configured. */
int pl_sim_save(struct pl_sim *s, char **errmsg);
/* Stop serving and free everything (secrets wiped). Accepts NULL. */
void pl_sim_free(struct pl_sim *s);

#endif
