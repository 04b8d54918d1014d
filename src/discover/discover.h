/*
 * Network discovery: probe addresses, identify each service by its protocol (never with
 * credentials), one record per host; exports for RDM and Ansible; saved scans.
 */
#ifndef PL_DISCOVER_DISCOVER_H
#define PL_DISCOVER_DISCOVER_H

#include "core/common.h"

#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct pl_buf;
struct pl_state;

/* One port to probe. */
struct pl_disc_port {
	uint16_t port;
	bool udp;
};

/* An IPv4 or IPv6 address, compact (a /16 is 65536 of them). */
struct pl_disc_addr {
	sa_family_t family;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} u;
};

/* The addresses to scan, sorted, without duplicates. */
struct pl_disc_targets {
	struct pl_disc_addr *addrs;
	size_t n, cap;
	/* what was asked for, for matching stored hosts to "the same range" */
	struct pl_disc_range {
		struct pl_disc_addr net;
		int prefix;
	} *ranges;
	size_t nranges;
};

struct pl_disc_opts {
	struct pl_disc_port *ports;
	size_t nports;
	int timeout_ms;  /* connect timeout and bound of each protocol exchange */
	int concurrency; /* sockets in flight */
	int rate;        /* new connections per second */
	bool dns;        /* reverse lookups */
	bool all;        /* also report hosts without an open port */
	/* called about four times a second while scanning, if set: probes done
	 * of total, hosts with an open port so far */
	void (*progress)(void *arg, size_t done, size_t total, size_t up);
	void *progress_arg;
};

#define PL_DISC_DEFAULT_PORTS "22,80,443,3389,5900,5901,8006,8007"
#define PL_DISC_MAX_HOSTS_UNFORCED 65536 /* a /16 */
#define PL_DISC_MAX_HOSTS (1u << 22)       /* even with --force */

/* Start an empty target list. */
void pl_disc_targets_init(struct pl_disc_targets *t);
/* Free the lists; t may be initialised again. */
void pl_disc_targets_release(struct pl_disc_targets *t);
/* Add "10.0.0.0/24", "10.0.0.5", "::1" or a host name (resolved now, before
 * the scan starts). More than a /16 in total is refused unless force. */
int pl_disc_targets_add(struct pl_disc_targets *t, const char *spec, bool force,
			char **errmsg);
/* The address as text into out (INET6_ADDRSTRLEN bytes). */
void pl_disc_addr_str(const struct pl_disc_addr *a, char *out, size_t outlen);
/* Whether address text addr lies in one of the ranges asked for. */
bool pl_disc_targets_cover(const struct pl_disc_targets *t, const char *addr);

/* Parse "22,80,8000-8010,623/udp" into a new array (caller frees). */
int pl_disc_ports_parse(const char *s, struct pl_disc_port **ports, size_t *n, char **errmsg);

/* Run the scan on its own event loop; *records gets an array of host records
 * {address, name, kind, vendor, model, evidence, urls}, in address order. */
int pl_disc_run(const struct pl_disc_opts *o, const struct pl_disc_targets *t, json_t **records,
		char **errmsg);

/* Build a host record from its evidence (array of per-port objects). */
json_t *pl_disc_record(const char *address, const char *name, json_t *evidence);

/* One aligned text row per host, with a header line. */
void pl_disc_format_text(const json_t *records, struct pl_buf *out);

/* Exports: "rdm" (RDM XML), "rdm-json", "inventory" (Ansible YAML). */
int pl_disc_export(const json_t *records, const char *format, struct pl_buf *out,
		   char **errmsg);

/* Remember a scan of t in the state store; *news and *vanished get arrays
 * of {address, kind} compared with earlier scans of the same ranges. */
int pl_disc_store_save(struct pl_state *s, const json_t *records,
		       const struct pl_disc_targets *t, json_t **news, json_t **vanished,
		       char **errmsg);

#endif
