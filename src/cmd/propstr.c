/*
 * `pvelab propstr FORMAT VALUE [OTHER]`: parse a Proxmox property string with
 * the schema's format and print it canonically, or compare two semantically.
 * Handy when writing configs, and the codec's command-line face.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "core/buf.h"
#include "core/propstr.h"

static const struct pl_opt opts[] = {
	{ "list", 'l', NULL, "list the known formats" },
	{ NULL, 0, NULL, NULL },
};

static int
list_formats(struct pl_ctx *ctx)
{
	const char *const *names = pl_pfmt_names();

	if (ctx->output == PL_OUT_JSON) {
		json_t *a = json_array();

		for (size_t i = 0; names[i]; i++)
			json_array_append_new(a, json_string(names[i]));
		return pl_print_json(a);
	}
	for (size_t i = 0; names[i]; i++)
		puts(names[i]);
	return PL_EXIT_OK;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_propstr p, q;
	const struct pl_pfmt *f;
	struct pl_args a;
	struct pl_buf out;
	char *err = NULL;
	bool list = false;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_propstr, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if ((list = pl_args_has(&a, 0)))
		return list_formats(ctx);
	if (a.npos < 2)
		return pl_usage_error(&pl_cmd_propstr, "needs a format and one or two values");
	if ((f = pl_pfmt_get(a.pos[0])) == NULL) {
		pl_error("unknown property-string format '%s' (pvelab propstr --list shows them)",
			 a.pos[0]);
		return PL_EXIT_USAGE;
	}
	pl_propstr_init(&p);
	pl_propstr_init(&q);
	pl_buf_init(&out, 0);
	if (pl_propstr_parse(f, a.pos[1], &p, &err) != 0) {
		pl_error("invalid %s value '%s': %s", f->name, a.pos[1], err);
		goto out;
	}
	if (a.npos == 3) {
		const char *diff = NULL;
		bool eq;

		if (pl_propstr_parse(f, a.pos[2], &q, &err) != 0) {
			pl_error("invalid %s value '%s': %s", f->name, a.pos[2], err);
			goto out;
		}
		eq = pl_propstr_equal(f, &p, &q, &diff);
		if (ctx->output == PL_OUT_JSON)
			pl_print_json(json_pack("{s:b,s:s?}", "equal", eq, "differs", diff));
		else if (eq)
			puts("equal");
		else
			printf("differ in '%s'\n", diff);
		rc = eq ? PL_EXIT_OK : PL_EXIT_CHANGES;
		goto out;
	}
	pl_propstr_format(f, &p, &out);
	if (ctx->output == PL_OUT_JSON) {
		json_t *pairs = json_object();

		for (size_t i = 0; i < p.n; i++)
			json_object_set_new(pairs, p.items[i].key, json_string(p.items[i].value));
		pl_print_json(json_pack("{s:s,s:o}", "canonical", out.data, "keys", pairs));
	} else {
		puts(out.data);
	}
	rc = PL_EXIT_OK;
out:
	free(err);
	pl_buf_release(&out);
	pl_propstr_release(&p);
	pl_propstr_release(&q);
	return rc;
}

const struct pl_cmd pl_cmd_propstr = {
	.name = "propstr",
	.summary = "parse, canonicalise or compare a Proxmox property string",
	.usage = "FORMAT VALUE [OTHER] | --list",
	.help = "FORMAT is a config key kind such as qemu.net, qemu.scsi, qemu.ipconfig, lxc.net,\n"
		"lxc.rootfs, lxc.mp or a schema format name (pve-startup-order). With two values\n"
		"it exits 0 when they mean the same and 2 when they differ.",
	.opts = opts,
	.max_args = 3,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
