/*
 * `pvelab host check|plan|apply`: a Proxmox node's own setup. check reads
 * its facts (a saved tree with --root, this host with --local) and prints
 * findings with exact fixes; plan and apply turn the `hosts:` section of
 * pvelab.yaml into file edits (src/host/). Exit codes as `pvelab check`:
 * 0 all pass, 1 a failure, 2 warnings only.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/buf.h"
#include "cmd/planning.h"
#include "config/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "host/host.h"
#include "host/reader.h"
#include "plan/runs.h"
#include "core/ssh.h"
#include "state/state.h"

#include <time.h>
#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "root", 0, "DIR", "read (and for apply, write) the node's files under DIR instead of /" },
	{ "local", 0, NULL, "the node is this host: read / and run its commands" },
	{ "facts", 0, NULL, "check: print the facts collected instead of the findings" },
	{ "yes", 'y', NULL, "apply: do not ask (the plan shown is the one applied)" },
	{ "ssh", 0, "[USER@]HOST[:PORT]",
	  "reach the node over SSH (its host key trusted on first use, a changed one refused)" },
	{ "identity", 'i', "FILE",
	  "--ssh: the private key (default: ssh-agent, then ~/.ssh/id_*)" },
	{ NULL, 0, NULL, NULL },
};

enum { O_ROOT, O_LOCAL, O_FACTS, O_YES, O_SSH, O_IDENTITY };

static void
print_finding(struct pl_ctx *ctx, const json_t *f)
{
	const char *st = pl_json_str(f, "status");
	const char *col = !strcmp(st, "pass") ? PL_C_GREEN :
			  !strcmp(st, "warn") ? PL_C_YELLOW :
						PL_C_RED;
	const json_t *fx = json_object_get(f, "fix"), *e;
	char up[8];
	size_t i;

	for (i = 0; st[i] && i < sizeof(up) - 1; i++)
		up[i] = (char)(st[i] - 'a' + 'A');
	up[i] = '\0';
	printf("  %s%-4s%s  %-20s %-14s %s\n", pl_color(ctx, col), up, pl_color(ctx, PL_C_RESET),
	       pl_json_str(f, "id"), pl_json_str(f, "subject"), pl_json_str(f, "title"));
	if (ctx->verbosity > 0 || strcmp(st, "pass"))
		json_array_foreach(json_object_get(f, "evidence"), i, e)
			printf("        %s\n", json_string_value(e));
	if (fx == NULL)
		return;
	if (json_object_get(fx, "file") && json_object_get(fx, "line"))
		printf("        fix: %s line %lld: %s\n", pl_json_str(fx, "file"),
		       pl_json_int(fx, "line", 0), pl_json_str(fx, "change"));
	else if (json_object_get(fx, "file"))
		printf("        fix: %s: %s\n", pl_json_str(fx, "file"), pl_json_str(fx, "change"));
	else
		printf("        fix: %s\n", pl_json_str(fx, "change"));
	json_array_foreach(json_object_get(fx, "commands"), i, e)
		printf("        run: %s\n", json_string_value(e));
	if (json_is_true(json_object_get(fx, "reboot")))
		printf("        then reboot the node\n");
}

/* Open the reader the options ask for; --ssh needs the state store in s
 * (the trusted host keys). */
static int
open_reader(struct pl_args *a, struct pl_session *s, struct pl_host_reader *r)
{
	const char *root = pl_args_str(a, O_ROOT, NULL), *ssh = pl_args_str(a, O_SSH, NULL);
	char *err = NULL, *spec, *at, *colon;
	int rc;

	if (root && pl_args_has(a, O_LOCAL))
		return pl_usage_error(&pl_cmd_host, "--root and --local exclude each other");
	if (ssh && pl_args_has(a, O_LOCAL))
		return pl_usage_error(&pl_cmd_host, "--ssh and --local exclude each other");
	if (root == NULL && ssh == NULL && !pl_args_has(a, O_LOCAL))
		return pl_usage_error(&pl_cmd_host,
				      "say where the node's files are: --ssh HOST, --root DIR (a "
				      "saved tree) or --local (this host)");
	if (ssh == NULL) {
		rc = pl_host_reader_dir(r, root ? root : "/", root == NULL, &err);
		goto out;
	}
	spec = pl_strdup(ssh);
	struct pl_ssh_opts o = { .identity = pl_args_str(a, O_IDENTITY, NULL),
				 .check_hostkey = pl_state_ssh_trust,
				 .check_ctx = s->state };
	long long port = 22;

	if ((at = strrchr(spec, '@')) != NULL) {
		*at = '\0';
		o.user = spec;
	}
	o.host = at ? at + 1 : spec;
	if ((colon = strrchr(o.host, ':')) != NULL) {
		*colon = '\0';
		if (pl_str_to_ll(colon + 1, 1, 65535, &port) != 0) {
			free(spec);
			return pl_usage_error(&pl_cmd_host, "--ssh '%s': the port is 1-65535", ssh);
		}
	}
	o.port = (int)port;
	rc = pl_host_reader_ssh(r, &o, root, &err);
	free(spec);
out:
	if (rc != 0) {
		pl_error("%s", err);
		free(err);
		return PL_EXIT_ERROR;
	}
	return 0;
}

/* The hosts: entry for node (or, without one, for the facts' host name). */
static const json_t *
want_for(const struct pl_config *cfg, const char *node, char **errmsg)
{
	const json_t *hosts = pl_config_get(cfg, "/hosts"), *h;
	size_t i;

	json_array_foreach(hosts, i, h)
		if (!strcmp(pl_json_str_or(h, "node", ""), node))
			return h;
	pl_seterr(errmsg, PL_ENOENT, "%s has no hosts: entry for node '%s'", pl_config_path(cfg),
		  node);
	return NULL;
}

static int
do_check(struct pl_ctx *ctx, struct pl_args *a)
{
	struct pl_host_reader r = { 0 };
	struct pl_session s = { 0 };
	json_t *facts = NULL, *findings, *f, *want;
	const char *node;
	char *err = NULL;
	int pass = 0, warn = 0, fail = 0, rc;
	size_t i;

	/* the config, when there is one, names the devices meant for
	 * passthrough and the PCI mappings to hold against the node */
	if (pl_session_open(&s, ctx, pl_args_has(a, O_SSH) ? PL_NEED_STATE : 0, &err) != 0) {
		rc = pl_error("%s", err);
		free(err);
		return rc;
	}
	if ((rc = open_reader(a, &s, &r)) != 0) {
		pl_session_close(&s);
		return rc;
	}
	rc = pl_host_facts(&r, &facts, &err);
	pl_host_reader_release(&r);
	if (rc != 0) {
		pl_session_close(&s);
		rc = pl_error("%s", err);
		free(err);
		return rc;
	}
	if (pl_args_has(a, O_FACTS)) {
		pl_session_close(&s);
		return pl_print_json(facts) ? PL_EXIT_ERROR : PL_EXIT_OK;
	}
	node = a->npos > 1 ? a->pos[1] : pl_json_str_or(facts, "hostname", "node");
	want = s.cfg ? json_deep_copy(want_for(s.cfg, node, NULL)) : NULL;
	if (s.cfg && json_array_size(pl_config_get(s.cfg, "/pci_mappings"))) {
		if (want == NULL)
			want = json_object();
		json_object_set(want, "pci_mappings",
				(json_t *)pl_config_get(s.cfg, "/pci_mappings"));
	}
	findings = pl_host_check(facts, want);
	json_decref(want);
	pl_session_close(&s);
	json_array_foreach(findings, i, f) {
		const char *st = pl_json_str(f, "status");

		pass += !strcmp(st, "pass");
		warn += !strcmp(st, "warn");
		fail += !strcmp(st, "fail");
	}
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_pack("{s:[{s:s,s:O,s:o,s:{s:i,s:i,s:i}}]}", "hosts", "node",
					node, "where", json_object_get(facts, "where"), "findings",
					findings, "summary", "pass", pass, "warn", warn, "fail",
					fail));
	} else {
		printf("host %s (%s)\n", node, pl_json_str(facts, "where"));
		json_array_foreach(findings, i, f)
			print_finding(ctx, f);
		printf("%d pass, %d warn, %d fail\n", pass, warn, fail);
		json_decref(findings);
	}
	json_decref(facts);
	return fail ? PL_EXIT_ERROR : warn ? PL_EXIT_CHANGES : PL_EXIT_OK;
}

static bool
any_reboot(const json_t *edits)
{
	const json_t *e;
	size_t i;

	json_array_foreach(edits, i, e)
		if (json_is_true(json_object_get(e, "reboot")))
			return true;
	return false;
}

static json_t *
plan_json(const char *node, const json_t *edits)
{
	json_t *out = json_array();
	const json_t *e;
	size_t i;

	json_array_foreach(edits, i, e) {
		char *diff = pl_host_diff(pl_json_str(e, "file"), pl_json_str(e, "before"),
					  pl_json_str(e, "after"));

		json_array_append_new(
			out,
			json_pack("{s:O,s:s,s:O,s:O,s:O,s:s}", "file", json_object_get(e, "file"),
				  "action",
				  json_is_null(json_object_get(e, "before")) ? "create" : "edit",
				  "why", json_object_get(e, "why"), "commands",
				  json_object_get(e, "commands"), "reboot",
				  json_object_get(e, "reboot"), "diff", diff));
		free(diff);
	}
	return json_pack("{s:s,s:o,s:b}", "node", node, "edits", out, "reboot", any_reboot(edits));
}

static void
print_plan(struct pl_ctx *ctx, const json_t *plan)
{
	const json_t *e, *v;
	size_t i, k;

	json_array_foreach(json_object_get(plan, "edits"), i, e) {
		printf("%s%s %s%s\n", pl_color(ctx, PL_C_BOLD),
		       !strcmp(pl_json_str(e, "action"), "create") ? "+" : "~",
		       pl_json_str(e, "file"), pl_color(ctx, PL_C_RESET));
		json_array_foreach(json_object_get(e, "why"), k, v)
			printf("  # %s\n", json_string_value(v));
		for (const char *p = pl_json_str(e, "diff"), *nl; *p; p = nl) {
			const char *col = *p == '+' ? PL_C_GREEN : *p == '-' ? PL_C_RED : PL_C_DIM;

			nl = strchr(p, '\n');
			nl = nl ? nl + 1 : p + strlen(p);
			printf("  %s%.*s%s\n", pl_color(ctx, col), (int)(nl - p - (nl[-1] == '\n')),
			       p, pl_color(ctx, PL_C_RESET));
		}
		json_array_foreach(json_object_get(e, "commands"), k, v)
			printf("  then: %s\n", json_string_value(v));
		if (json_is_true(json_object_get(e, "reboot")))
			printf("  needs a reboot\n");
	}
	if (json_array_size(json_object_get(plan, "edits")))
		printf("Plan: %zu file(s) to change on %s%s.\n",
		       json_array_size(json_object_get(plan, "edits")), pl_json_str(plan, "node"),
		       json_is_true(json_object_get(plan, "reboot")) ? "; the node needs a reboot "
								       "afterwards" :
								       "");
	else
		printf("No changes: %s is as declared.\n", pl_json_str(plan, "node"));
}

/* Write the edits (each file atomically, its old copy kept beside it as
 * FILE.pvelab-STAMP), record them as a run in the history, then run the
 * commands they need when the reader runs commands on the node. */
static int
apply_edits(struct pl_ctx *ctx, struct pl_session *s, struct pl_host_reader *r, const char *node,
	    const json_t *edits)
{
	json_t *changes = json_array(), *cmds = json_array(), *result;
	const json_t *e, *c;
	char stamp[32], suffix[48], *err = NULL;
	long long run = 0;
	time_t now = time(NULL);
	struct tm tm;
	size_t i, k;
	int rc = 0;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(suffix, sizeof(suffix), ".pvelab-%s", stamp);
	if (pl_runs_begin(s->state, "host-apply", &run, &err) != 0) {
		rc = pl_error("%s", err);
		goto out;
	}
	json_array_foreach(edits, i, e) {
		const char *path = pl_json_str(e, "file"), *after = pl_json_str(e, "after");
		const char *old = pl_json_str_or(e, "before", "");
		char *key = pl_asprintf("host:%s:%s", node, path);

		rc = r->ops->write(r->impl, path, after, strlen(after), 0644, suffix, &err);
		json_array_append_new(
			changes,
			json_pack("{s:s,s:s,s:s,s:{s:s,s:{s:s},s:{s:s}}}", "file", path, "backup",
				  json_is_null(json_object_get(e, "before")) ? "" : suffix,
				  "status", rc ? "failed" : "ok", "history", "key", key, "before",
				  "text", old, "after", "text", rc ? old : after));
		free(key);
		if (rc != 0) {
			pl_error("%s: %s", path, err);
			break;
		}
		if (pl_chatty(ctx))
			printf("wrote %s%s\n", path,
			       json_is_null(json_object_get(e, "before")) ? "" :
									    " (backup beside it)");
		json_array_foreach(json_object_get(e, "commands"), k, c) {
			size_t j;
			const json_t *have;
			bool dup = false;

			json_array_foreach(cmds, j, have)
				dup |= json_equal(have, c);
			if (!dup)
				json_array_append_new(cmds, json_string(json_string_value(c)));
		}
	}
	json_array_foreach(cmds, i, c) {
		struct pl_buf out;

		if (rc != 0)
			break;
		if (!r->runs) {
			if (pl_chatty(ctx))
				printf("run on the node: %s\n", json_string_value(c));
			continue;
		}
		pl_buf_init(&out, 0);
		if ((rc = pl_host_run(r, json_string_value(c), &out, &err)) != 0)
			pl_error("%s", err);
		else if (pl_chatty(ctx))
			printf("ran %s\n", json_string_value(c));
		pl_buf_release(&out);
	}
	if (rc == 0 && any_reboot(edits) && pl_chatty(ctx))
		printf("reboot %s for the kernel and module changes to take effect\n", node);
	result = json_pack("{s:s,s:O,s:O}", "node", node, "changes", changes, "commands", cmds);
	free(err);
	err = NULL;
	if (pl_runs_finish(s->state, run, rc ? "failed" : "ok", result, &err) != 0)
		rc = pl_error("%s", err);
	json_decref(result);
out:
	free(err);
	json_decref(changes);
	json_decref(cmds);
	return rc ? PL_EXIT_ERROR : PL_EXIT_OK;
}

static int
do_plan(struct pl_ctx *ctx, struct pl_args *a, bool apply)
{
	struct pl_host_reader r = { 0 };
	struct pl_session s = { 0 };
	json_t *facts = NULL, *edits = NULL, *plan = NULL;
	const json_t *want;
	const char *node;
	char *err = NULL;
	int rc;

	if (pl_session_open(&s, ctx, apply || pl_args_has(a, O_SSH) ? PL_NEED_STATE : 0, &err) !=
	    0) {
		rc = pl_error("%s", err);
		goto out;
	}
	if ((rc = open_reader(a, &s, &r)) != 0)
		goto out;
	if (s.cfg == NULL) {
		rc = pl_error("host %s needs pvelab.yaml with a hosts: entry (-c FILE)",
			      apply ? "apply" : "plan");
		goto out;
	}
	if (pl_host_facts(&r, &facts, &err) != 0) {
		rc = pl_error("%s", err);
		goto out;
	}
	node = a->npos > 1 ? a->pos[1] : pl_json_str_or(facts, "hostname", "");
	if ((want = want_for(s.cfg, node, &err)) == NULL ||
	    pl_host_plan(&r, facts, want, &edits, &err) != 0) {
		rc = pl_error("%s", err);
		goto out;
	}
	plan = plan_json(node, edits);
	if (ctx->output == PL_OUT_JSON && !apply)
		pl_print_json(json_incref(plan));
	else if (ctx->output == PL_OUT_TEXT)
		print_plan(ctx, plan);
	rc = PL_EXIT_OK;
	if (!apply || json_array_size(edits) == 0)
		goto out;
	if (!pl_args_has(a, O_YES)) {
		if (!isatty(STDIN_FILENO)) {
			rc = pl_error("refusing to apply without --yes when not on a terminal");
			goto out;
		}
		if (!pl_confirm("Apply these changes?")) {
			rc = pl_error("nothing changed");
			goto out;
		}
	}
	rc = apply_edits(ctx, &s, &r, node, edits);
out:
	free(err);
	json_decref(plan);
	json_decref(edits);
	json_decref(facts);
	pl_session_close(&s);
	pl_host_reader_release(&r);
	return rc;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_args a;
	const char *sub;
	int r;

	if ((r = pl_args_parse(&a, &pl_cmd_host, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	sub = a.npos ? a.pos[0] : "";
	if (!strcmp(sub, "check"))
		return do_check(ctx, &a);
	if (!strcmp(sub, "plan") || !strcmp(sub, "apply"))
		return do_plan(ctx, &a, !strcmp(sub, "apply"));
	return pl_usage_error(&pl_cmd_host, "the first argument is check, plan or apply%s%s%s",
			      *sub ? ", not '" : "", sub, *sub ? "'" : "");
}

const struct pl_cmd pl_cmd_host = {
	.name = "host",
	.summary = "check, plan and apply a Proxmox node's own setup (GPU passthrough, "
		   "repositories, NAT, NTP)",
	.usage = "check|plan|apply [NODE] (--root DIR | --local | --ssh [USER@]HOST[:PORT] "
		 "[--identity FILE] [--root DIR]) [--facts] [--yes]",
	.help = "check reads the node's facts - CPU flags, IOMMU, kernel command line, boot "
		"loader, IOMMU groups, the driver of each GPU function, /etc/modules and "
		"/etc/modprobe.d, interrupt remapping, PCI mappings and each VM's hostpci "
		"entries - and prints each finding as pass, warn or fail with its evidence and "
		"the exact fix. --root DIR reads a saved copy of the node's files; the saved "
		"output of `proxmox-boot-tool status` and `dmesg` go in DIR/.pvelab-cmd/ as "
		"proxmox-boot-tool-status and dmesg. Exit 0 all pass, 1 a failure, 2 warnings.",
	.opts = opts,
	.min_args = 1,
	.max_args = 2,
	.run = run,
};
