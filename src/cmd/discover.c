/*
 * `pvelab discover CIDR|HOST...`: find servers by their protocols (never with credentials),
 * print, export for RDM or Ansible, remember in the state database. The work is in src/discover/.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/buf.h"
#include "core/file.h"
#include "discover/discover.h"
#include "state/state.h"

#include <time.h>
#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "ports", 'p', "PORTS", "ports to probe (default " PL_DISC_DEFAULT_PORTS "; 623/udp adds IPMI)" },
	{ "timeout", 't', "MS", "connect and per-exchange timeout in ms (default 1500)" },
	{ "concurrency", 0, "N", "sockets in flight (default 512)" },
	{ "rate", 0, "N", "new connections per second (default 2000)" },
	{ "export", 'e', "FORMAT", "write rdm (RDM .rdm XML), rdm-json or inventory (Ansible YAML)" },
	{ "out", 0, "FILE", "write the export to FILE (atomically) instead of stdout" },
	{ "save", 0, NULL, "remember the hosts in the state database; report new and vanished ones" },
	{ "force", 0, NULL, "allow scanning more than a /16" },
	{ "all", 0, NULL, "also list addresses where no port was open" },
	{ "no-dns", 0, NULL, "no reverse DNS lookups" },
	{ NULL, 0, NULL, NULL },
};

enum { O_PORTS, O_TIMEOUT, O_CONC, O_RATE, O_EXPORT, O_OUT, O_SAVE, O_FORCE, O_ALL, O_NODNS };

/* "\r1234/2048 probes, 5 hosts up" on a terminal, erased when the scan ends */
static void
show_progress(void *arg, size_t done, size_t total, size_t up)
{
	PL_UNUSED(arg);
	if (done >= total)
		fputs("\r\033[K", stderr);
	else
		fprintf(stderr, "\r\033[K%zu/%zu probes, %zu host%s up", done, total, up,
			up == 1 ? "" : "s");
	fflush(stderr);
}

static void
print_changes(const struct pl_ctx *ctx, json_t *news, json_t *vanished)
{
	FILE *f = ctx->output == PL_OUT_JSON ? stderr : stdout;
	size_t i;
	json_t *v;

	if (ctx->verbosity < 0 && f == stderr)
		return;
	json_array_foreach(news, i, v)
		fprintf(f, "new: %s (%s)\n", json_string_value(json_object_get(v, "address")),
			json_string_value(json_object_get(v, "kind")));
	json_array_foreach(vanished, i, v)
		fprintf(f, "vanished: %s (%s)\n", json_string_value(json_object_get(v, "address")),
			json_string_value(json_object_get(v, "kind")));
	if (json_array_size(news) == 0 && json_array_size(vanished) == 0)
		fprintf(f, "no new or vanished hosts since the last saved scan\n");
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_disc_opts o = {
		.timeout_ms = 1500, .concurrency = 512, .rate = 2000, .dns = true,
	};
	struct pl_disc_targets t;
	struct pl_args a;
	const char *ports = PL_DISC_DEFAULT_PORTS, *export = NULL, *out = NULL;
	bool save = false, force = false;
	json_t *records = NULL;
	char *err = NULL;
	long long v;
	int r, rc = PL_EXIT_ERROR;
	struct timespec t0, t1;

	pl_disc_targets_init(&t);
	if ((r = pl_args_parse(&a, &pl_cmd_discover, ctx, argc, argv)) != 0) {
		rc = pl_args_exit(r);
		goto out;
	}
	ports = pl_args_str(&a, O_PORTS, ports);
	v = o.timeout_ms;
	if ((r = pl_args_num(&a, O_TIMEOUT, 10, 600000, &v)) != 0)
		goto usage;
	o.timeout_ms = (int)v;
	v = o.concurrency;
	if ((r = pl_args_num(&a, O_CONC, 1, 100000, &v)) != 0)
		goto usage;
	o.concurrency = (int)v;
	v = o.rate;
	if ((r = pl_args_num(&a, O_RATE, 1, 10000000, &v)) != 0)
		goto usage;
	o.rate = (int)v;
	export = pl_args_str(&a, O_EXPORT, NULL);
	out = pl_args_str(&a, O_OUT, NULL);
	save = pl_args_has(&a, O_SAVE);
	force = pl_args_has(&a, O_FORCE);
	o.all = pl_args_has(&a, O_ALL);
	o.dns = !pl_args_has(&a, O_NODNS);
	if (0) {
usage:
		rc = pl_args_exit(r);
		goto out;
	}
	if (export && strcmp(export, "rdm") && strcmp(export, "rdm-json") &&
	    strcmp(export, "inventory")) {
		rc = pl_usage_error(&pl_cmd_discover,
				    "unknown export format '%s' (use rdm, rdm-json or inventory)",
				    export);
		goto out;
	}
	if (out && !export) {
		rc = pl_usage_error(&pl_cmd_discover, "--out needs --export");
		goto out;
	}
	if (pl_disc_ports_parse(ports, &o.ports, &o.nports, &err) != 0) {
		rc = pl_usage_error(&pl_cmd_discover, "%s", err);
		goto out;
	}
	for (size_t i = 0; i < o.nports; i++)
		if (o.ports[i].udp && o.ports[i].port != 623) {
			rc = pl_usage_error(&pl_cmd_discover,
					    "UDP port %u is not supported (only 623/udp, IPMI)",
					    o.ports[i].port);
			goto out;
		}
	for (int i = 0; i < a.npos; i++)
		if (pl_disc_targets_add(&t, a.pos[i], force, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
	if (ctx->verbosity >= 0 && isatty(STDERR_FILENO))
		o.progress = show_progress;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pl_disc_run(&o, &t, &records, &err) != 0) {
		pl_error("discovery failed: %s", err);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (export) {
		struct pl_buf b;

		pl_buf_init(&b, 0);
		pl_disc_export(records, export, &b, NULL);
		if (out) {
			if (pl_file_write_atomic(out, b.data, b.len, 0644, &err) != 0) {
				pl_error("cannot write export: %s", err);
				pl_buf_release(&b);
				goto out;
			}
		} else {
			fwrite(b.data, 1, b.len, stdout);
		}
		pl_buf_release(&b);
	}
	if (!export || out) {
		if (ctx->output == PL_OUT_JSON) {
			pl_print_json(json_incref(records));
		} else {
			struct pl_buf b;

			pl_buf_init(&b, 0);
			if (json_array_size(records))
				pl_disc_format_text(records, &b);
			fwrite(b.data, 1, b.len, stdout);
			pl_buf_release(&b);
		}
	}
	if (ctx->output == PL_OUT_TEXT && ctx->verbosity >= 0)
		fprintf(stderr, "%zu host%s found; %zu address%s x %zu port%s in %.2f s\n",
			json_array_size(records), json_array_size(records) == 1 ? "" : "s", t.n,
			t.n == 1 ? "" : "es", o.nports, o.nports == 1 ? "" : "s",
			(double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (save) {
		struct pl_state *st = NULL;
		json_t *news = NULL, *vanished = NULL;
		char *path = NULL;

		if (pl_cmd_state_path(ctx, &path, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
		if (pl_state_open(path, &st, &err) != 0 ||
		    pl_disc_store_save(st, records, &t, &news, &vanished, &err) != 0) {
			pl_error("%s (set PVELAB_STATE or state: in the config to choose where it "
				 "lives)", err);
			pl_state_close(st);
			free(path);
			goto out;
		}
		pl_state_close(st);
		free(path);
		print_changes(ctx, news, vanished);
		json_decref(news);
		json_decref(vanished);
	}
	rc = PL_EXIT_OK;
out:
	json_decref(records);
	free(err);
	free(o.ports);
	pl_disc_targets_release(&t);
	return rc;
}

const struct pl_cmd pl_cmd_discover = {
	.name = "discover",
	.summary = "find servers, BMCs and Proxmox nodes on a network by their protocols",
	.usage = "[--ports PORTS] [--timeout MS] [--concurrency N] [--rate N] [--export FORMAT [--out FILE]] [--save] [--force] [--all] [--no-dns] CIDR|HOST...",
	.help = "Probes each address on SSH (22), HTTP/HTTPS and Redfish (80, 443), Proxmox VE and\n"
		"Backup Server (8006, 8007), RDP (3389) and VNC (5900-5901), optionally IPMI\n"
		"(623/udp), and identifies what answers by speaking its protocol. It never\n"
		"tries a password. TLS certificates are read, not verified: this is\n"
		"identification only. More than a /16 needs --force. Results can be exported\n"
		"for Remote Desktop Manager (--export rdm|rdm-json) or Ansible (--export\n"
		"inventory), and --save keeps them in the state database so that a rescan\n"
		"shows what is new and what vanished.",
	.opts = opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
	/* not an MCP tool: it sends packets to a network and --save writes state */
	.flags = 0,
};
