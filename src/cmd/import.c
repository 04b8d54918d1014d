/*
 * `pvelab import GUEST...`: adopt existing guests. Writes the pvelab.yaml
 * guests that describe them exactly (the next plan shows no changes) and tags
 * them as managed by pvelab.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "core/yaml.h"
#include "model/guest.h"
#include "pve/client.h"

#include <time.h>
#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "out", 0, "FILE", "write the YAML to FILE instead of standard output" },
	{ "no-adopt", 0, NULL, "do not tag the guests as managed by pvelab" },
	{ NULL, 0, NULL, NULL },
};

enum { O_OUT, O_NOADOPT };

/* Add the pvelab tag to a live guest. */
static int
adopt(struct pl_session *s, const json_t *live, char **err)
{
	const char *tags = pl_json_str_or(json_object_get(live, "config"), "tags", "");
	char *joined = pl_asprintf("%s%s%s", tags, *tags ? ";" : "", PL_MODEL_MANAGED_TAG);
	char *norm = pl_model_tags_norm(joined);
	char *path = pl_asprintf("/nodes/%s/%s/%lld/config", pl_json_str_or(live, "node", ""),
				 pl_json_str_or(live, "type", "qemu"), pl_json_int(live, "vmid", 0));
	json_t *params = json_pack("{s:s}", "tags", norm), *data = NULL;
	int r = pl_pve_call(s->pve, "PUT", path, params, &data, err);

	json_decref(params);
	json_decref(data);
	free(path);
	free(norm);
	free(joined);
	return r;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	const char *out = NULL;
	bool do_adopt = true;
	json_t *snap = NULL, *doc = NULL, *guests;
	struct pl_buf yaml;
	char *err = NULL;
	int r, rc = PL_EXIT_ERROR;

	pl_args_init(&a, &pl_cmd_import, ctx, argc, argv);
	while ((r = pl_args_next(&a)) >= 0) {
		if (r == O_OUT)
			out = a.value;
		else
			do_adopt = false;
	}
	if (r != PL_ARGS_END || a.npos == 0) {
		pl_args_release(&a);
		return r != PL_ARGS_END ? pl_args_exit(r) : pl_usage_error(&pl_cmd_import, "which guests?");
	}
	pl_buf_init(&yaml, 0);
	if (pl_session_open(&s, ctx, PL_NEED_API | PL_NEED_STATE, &err) != 0 ||
	    pl_cmd_sync_now(&s, false, false, NULL, NULL, &snap, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	doc = json_pack("{s:[]}", "guests");
	guests = json_object_get(doc, "guests");
	for (int i = 0; i < a.npos; i++) {
		const json_t *live = pl_guest_lookup(json_object_get(snap, "guests"), a.pos[i], &err);

		if (live == NULL) {
			pl_error("%s", err);
			goto out;
		}
		if (pl_json_str(live, "_unread")) {
			pl_error("cannot import %lld '%s': its config could not be read from node "
				 "'%s' (%s)", pl_json_int(live, "vmid", 0),
				 pl_json_str_or(live, "name", ""), pl_json_str_or(live, "node", "?"),
				 pl_json_str(live, "_unread"));
			goto out;
		}
		json_array_append_new(guests, pl_model_guest_to_yaml(live));
		if (do_adopt && adopt(&s, live, &err) != 0) {
			pl_error("cannot tag guest %lld as managed: %s", pl_json_int(live, "vmid", 0), err);
			goto out;
		}
	}
	if (ctx->output == PL_OUT_JSON && out == NULL) {
		pl_print_json(json_incref(doc));
		rc = PL_EXIT_OK;
		goto out;
	}
	time_t now = time(NULL);
	char when[32];

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	pl_buf_addf(&yaml, "# Written by pvelab import on %s. `pvelab plan` against this shows no\n"
			   "# changes; settings pvelab has no key for are kept verbatim under config:.\n",
		    when);
	pl_yaml_emit(doc, 0, &yaml);
	if (out) {
		if (pl_file_write_atomic(out, yaml.data, yaml.len, 0644, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
		if (ctx->verbosity >= 0)
			fprintf(stderr, "pvelab: wrote %d guest%s to '%s'%s\n", a.npos, a.npos == 1 ? "" : "s",
				out, do_adopt ? " and tagged them as managed" : "");
	} else {
		fputs(yaml.data, stdout);
	}
	rc = PL_EXIT_OK;
out:
	free(err);
	pl_buf_release(&yaml);
	json_decref(doc);
	json_decref(snap);
	pl_session_close(&s);
	pl_args_release(&a);
	return rc;
}

const struct pl_cmd pl_cmd_import = {
	.name = "import",
	.summary = "adopt existing guests: write their YAML so the next plan shows no changes",
	.usage = "GUEST... [--out FILE] [--no-adopt]",
	.help = "GUEST is a vmid or a name. The guests are tagged 'pvelab' (managed) unless\n"
		"--no-adopt is given; paste the YAML into pvelab.yaml's guests list.",
	.opts = opts,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
