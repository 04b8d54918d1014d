/*
 * `pvelab host check|plan|apply`: a Proxmox node's own setup. check reads
 * its facts (a saved tree with --root, this host with --local) and prints
 * findings with exact fixes; plan and apply turn the `hosts:` section of
 * pvelab.yaml into file edits (src/host/). Exit codes as `pvelab check`:
 * 0 all pass, 1 a failure, 2 warnings only.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "host/host.h"
#include "host/reader.h"

static const struct pl_opt opts[] = {
	{ "root", 0, "DIR", "read (and for apply, write) the node's files under DIR instead of /" },
	{ "local", 0, NULL, "the node is this host: read / and run its commands" },
	{ "facts", 0, NULL, "check: print the facts collected instead of the findings" },
	{ "yes", 'y', NULL, "apply: do not ask (the plan shown is the one applied)" },
	{ NULL, 0, NULL, NULL },
};

enum { O_ROOT, O_LOCAL, O_FACTS, O_YES };

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

/* Open the reader the options ask for. */
static int
open_reader(struct pl_args *a, struct pl_host_reader *r)
{
	const char *root = pl_args_str(a, O_ROOT, NULL);
	char *err = NULL;
	int rc;

	if (root && pl_args_has(a, O_LOCAL))
		return pl_usage_error(&pl_cmd_host, "--root and --local exclude each other");
	if (root == NULL && !pl_args_has(a, O_LOCAL))
		return pl_usage_error(&pl_cmd_host,
				      "say where the node's files are: --root DIR (a saved tree) "
				      "or --local (this host); over SSH is not built yet");
	if (a->npos > 2)
		return pl_usage_error(&pl_cmd_host, "--root and --local read one node");
	rc = pl_host_reader_dir(r, root ? root : "/", root == NULL, &err);
	if (rc != 0) {
		pl_error("%s", err);
		free(err);
		return PL_EXIT_ERROR;
	}
	return 0;
}

static int
do_check(struct pl_ctx *ctx, struct pl_args *a)
{
	struct pl_host_reader r = { 0 };
	json_t *facts = NULL, *findings, *f;
	const char *node;
	char *err = NULL;
	int pass = 0, warn = 0, fail = 0, rc;
	size_t i;

	if ((rc = open_reader(a, &r)) != 0)
		return rc;
	if (pl_host_facts(&r, &facts, &err) != 0) {
		rc = pl_error("%s", err);
		free(err);
		pl_host_reader_release(&r);
		return rc;
	}
	pl_host_reader_release(&r);
	if (pl_args_has(a, O_FACTS))
		return pl_print_json(facts) ? PL_EXIT_ERROR : PL_EXIT_OK;
	node = a->npos > 1 ? a->pos[1] : pl_json_str_or(facts, "hostname", "node");
	findings = pl_host_check(facts, NULL);
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
	return pl_usage_error(&pl_cmd_host, "the first argument is check, plan or apply%s%s%s",
			      *sub ? ", not '" : "", sub, *sub ? "'" : "");
}

const struct pl_cmd pl_cmd_host = {
	.name = "host",
	.summary = "check, plan and apply a Proxmox node's own setup (GPU passthrough, "
		   "repositories, NAT, NTP)",
	.usage = "check|plan|apply [NODE] (--root DIR | --local) [--facts] [--yes]",
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
	.flags = PL_CMD_MCP_READ,
};
