/*
 * `pvelab import GUEST...`: adopt existing guests. Writes the pvelab.yaml
 * guests that describe them exactly (the next plan shows no changes) and tags
 * them as managed by the project of the file they are written to. --out never
 * overwrites a file: --merge adds the guests to its `guests:` list (and
 * storages, backup jobs and pools to theirs), as text, keeping the rest of
 * the file and its comments.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/owner.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/yaml.h"
#include "core/snapshot.h"
#include "core/str.h"
#include "model/guest.h"
#include "plan/firewall.h"
#include "plan/day2.h"
#include "pve/client.h"
#include "state/state.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct pl_opt opts[] = {
	{ "out", 0, "FILE",
	  "write the YAML to FILE (a new file, or with --merge an existing one)" },
	{ "merge", 0, NULL,
	  "add the guests (storages, jobs, pools) to FILE's lists, keeping the rest of it" },
	{ "no-adopt", 0, NULL, "do not tag the guests as managed by pvelab" },
	{ "firewall", 0, NULL,
	  "also their firewall (options, rules) and the cluster's aliases, IP sets, security "
	  "groups, rules and options" },
	{ NULL, 0, NULL, NULL },
};

enum { O_OUT, O_MERGE, O_NOADOPT, O_FIREWALL };

/* Leading spaces of a line. */
static size_t
indent_of(const char *line, size_t len)
{
	size_t n = 0;

	while (n < len && line[n] == ' ')
		n++;
	return n;
}

/* Is "KEY:" (top level) followed by nothing, a comment, or "[]"? *empty_flow
 * says it is "KEY: []". */
static bool
list_key(const char *line, size_t len, const char *key, bool *block, bool *empty_flow)
{
	size_t i = strlen(key);

	*block = *empty_flow = false;
	if (len < i + 1 || strncmp(line, key, i) || line[i] != ':')
		return false;
	i++;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] == '#') {
		*block = true;
		return true;
	}
	if (line[i] == '[') {
		for (i++; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
			;
		if (i < len && line[i] == ']') {
			for (i++; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
				;
			*empty_flow = i == len || line[i] == '#';
		}
	}
	return true;
}

/* The text of file with items added to its top-level KEY: list (block
 * style, or "KEY: []", or none yet), everything else kept as written. */
static int
merge_text(const char *file, const char *text, size_t len, const char *key, const json_t *items_in,
	   const char *stamp, struct pl_buf *out, char **errmsg)
{
	size_t pos = 0, key_line_end = 0, insert_at = 0, item_indent = 2;
	bool found = false, block = false, empty_flow = false, have_item = false;
	struct pl_buf items;

	/* find the key, then the end of its block: the last line that belongs to it */
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos, next = nl ? pos + n + 1 : len;
		size_t ind = indent_of(line, n);

		if (!found) {
			if (list_key(line, n, key, &block, &empty_flow)) {
				found = true;
				key_line_end = insert_at = next;
				if (!block && !empty_flow)
					return pl_seterr(
						errmsg, PL_EINVAL,
						"cannot merge into '%s': its %s: list is written "
						"inline (write it as a block list, one '- ' per "
						"line)",
						file, key);
				if (empty_flow)
					break;
			}
		} else if (ind < n && (line[ind] != '#' || ind > 0)) { /* indented comments belong */
			if (ind == 0 && line[0] != '-')
				break; /* the next top-level key */
			if (!have_item && line[ind] == '-') {
				item_indent = ind;
				have_item = true;
			}
			insert_at = next;
		}
		pos = next;
	}
	pl_buf_init(&items, 0);
	pl_buf_addf(&items, "%*s# %s\n", (int)item_indent, "", stamp);
	pl_yaml_emit(items_in, (int)item_indent, &items);
	if (!found) { /* no such list yet: a new one at the end */
		pl_buf_add(out, text, len);
		if (len && text[len - 1] != '\n')
			pl_buf_addch(out, '\n');
		pl_buf_addf(out, "%s:\n", key);
		pl_buf_add(out, items.data, items.len);
	} else if (empty_flow) { /* "guests: []" becomes the list */
		size_t start = key_line_end;

		while (start > 0 && text[start - 1] == '\n')
			start--;
		while (start > 0 && text[start - 1] != '\n')
			start--;
		pl_buf_add(out, text, start);
		pl_buf_addf(out, "%s:\n", key);
		pl_buf_add(out, items.data, items.len);
		pl_buf_add(out, text + key_line_end, len - key_line_end);
	} else {
		pl_buf_add(out, text, insert_at);
		if (insert_at && text[insert_at - 1] != '\n')
			pl_buf_addch(out, '\n');
		pl_buf_add(out, items.data, items.len);
		pl_buf_add(out, text + insert_at, len - insert_at);
	}
	pl_buf_release(&items);
	return 0;
}

/* Refuse guests FILE already declares, by name or vmid. */
static int
not_declared(const struct pl_config *cfg, const json_t *guests, char **errmsg)
{
	const json_t *g, *mine;
	size_t i, j;

	json_array_foreach(guests, i, g)
		json_array_foreach(pl_config_guests(cfg), j, mine) {
			bool same_name = !strcmp(pl_json_str_or(g, "name", ""), pl_json_str_or(mine, "name", "?"));

			char ptr[64], what[160];
			int line = 0, col = 0;

			if (!same_name && pl_json_int(g, "vmid", 0) != pl_json_int(mine, "vmid", -1))
				continue;
			snprintf(ptr, sizeof(ptr), "/guests/%zu", j);
			pl_config_where(cfg, ptr, &line, &col);
			if (same_name)
				snprintf(what, sizeof(what), "a guest named '%s'", pl_json_str_or(g, "name", ""));
			else
				snprintf(what, sizeof(what), "vmid %lld", pl_json_int(g, "vmid", 0));
			return pl_seterr(errmsg, PL_ECONFLICT, "'%s' already declares %s (line %d); "
					 "nothing was imported", pl_config_path(cfg), what, line);
		}
	return 0;
}

/* The project --out FILE's entries belong to: an existing FILE's (with
 * --merge), else the one a new file is named for. Caller frees. */
static char *
out_project(const char *out, char **errmsg)
{
	struct pl_config *cfg = NULL;
	struct pl_diags d;
	char *project = NULL;

	if (access(out, F_OK) != 0) {
		if ((project = pl_config_default_project(out)) == NULL)
			pl_seterr(errmsg, PL_EINVAL,
				  "cannot name a project from '%s' (choose another file name)",
				  out);
		return project;
	}
	pl_diags_init(&d);
	if (pl_config_load(out, &cfg, &d) != 0 || cfg == NULL)
		pl_seterr(
			errmsg, PL_EINVAL,
			"cannot merge into '%s': it is not a valid config (pvelab validate %s says "
			"why); nothing was imported",
			out, out);
	else
		project = pl_strdup(pl_config_project(cfg));
	pl_config_free(cfg);
	pl_diags_release(&d);
	return project;
}

/* The id key of a day-2 section's entries. */
static const char *
id_key(const char *section)
{
	return !strcmp(section, "backups") ? "id" : "name";
}

/* Refuse storages, jobs and pools FILE already declares. */
static int
day2_not_declared(const struct pl_config *cfg, const json_t *sections, char **errmsg)
{
	const char *section;
	const json_t *list, *e;
	size_t i;

	json_object_foreach((json_t *)sections, section, list) {
		char ptr[64];

		snprintf(ptr, sizeof(ptr), "/%s", section);
		json_array_foreach(list, i, e) {
			const char *id = pl_json_str_or(e, id_key(section), "");

			if (pl_json_find(pl_config_get(cfg, ptr), id_key(section), id, false))
				return pl_seterr(
					errmsg, PL_ECONFLICT,
					"'%s' already declares %s '%s'; nothing was imported",
					pl_config_path(cfg), section, id);
		}
	}
	return 0;
}

/* Merging into a config of several clusters: the entries are cluster's
 * (they say so), and only its own declarations conflict with them (*view:
 * out narrowed to it). */
static int
cluster_view(const char *out, const char *cluster, json_t *guests, json_t *sections,
	     struct pl_config **view, char **errmsg)
{
	const char *section;
	struct pl_diags d;
	json_t *list, *e;
	size_t i;
	int r;

	pl_diags_init(&d);
	r = pl_config_load(out, view, &d);
	pl_diags_release(&d);
	if (r != 0 || *view == NULL)
		return pl_seterr(errmsg, PL_EINVAL,
				 "cannot merge into '%s': it changed while it "
				 "was read; nothing was imported",
				 out);
	if ((r = pl_config_select_cluster(*view, cluster, errmsg)) != 0)
		return pl_preferr(errmsg, r, "cannot merge into '%s'", out);
	json_array_foreach(guests, i, e)
		json_object_set_new(e, "cluster", json_string(cluster));
	json_object_foreach(sections, section, list)
		json_array_foreach(list, i, e)
			json_object_set_new(e, "cluster", json_string(cluster));
	return 0;
}

/* The file text --out writes for project: a new file, or the existing one
 * merged (guests and each day-2 section into its own list; with clusters:,
 * as cluster's). */
static int
out_text(const char *out, bool merge, json_t *guests, const json_t *fw, json_t *sections,
	 const char *project, const char *cluster, struct pl_buf *yaml, char **errmsg)
{
	struct pl_config *cfg = NULL, *check = NULL, *view = NULL;
	struct pl_diags d;
	struct pl_buf old, next;
	struct stat st;
	const char *section;
	const json_t *list;
	char stamp[96];
	time_t now = time(NULL);
	bool counts_ok = true;
	int r = 0;

	strftime(stamp, sizeof(stamp), "imported by pvelab import on %Y-%m-%d %H:%M UTC", gmtime(&now));
	pl_diags_init(&d);
	pl_buf_init(&old, 64 << 20);
	if (stat(out, &st) != 0) { /* a new file: its project is named by its path */
		json_t *doc;

		pl_buf_addf(
			yaml,
			"# Written by pvelab import. `pvelab plan` against this shows no changes;\n"
			"# settings pvelab has no key for are kept verbatim under config:.\n"
			"project: %s\n",
			project);
		doc = json_pack("{s:O}", "guests", guests);
		if (fw)
			json_object_set(doc, "firewall", (json_t *)fw);
		if (sections)
			json_object_update(doc, (json_t *)sections);
		pl_yaml_emit(doc, 0, yaml);
		json_decref(doc);
		goto out;
	}
	if (!merge) {
		r = pl_seterr(errmsg, PL_ECONFLICT, "refusing to overwrite '%s' (pvelab import --merge adds "
			      "the guests to it; --out a new file writes them apart)", out);
		goto out;
	}
	if (pl_config_load(out, &cfg, &d) != 0 || cfg == NULL) {
		r = pl_seterr(errmsg, PL_EINVAL, "cannot merge into '%s': it is not a valid config "
			      "(pvelab validate %s says why); nothing was imported", out, out);
		goto out;
	}
	if (cluster && pl_config_clusters(cfg) &&
	    (r = cluster_view(out, cluster, guests, sections, &view, errmsg)) != 0)
		goto out;
	if ((r = not_declared(view ? view : cfg, guests, errmsg)) != 0 ||
	    (r = day2_not_declared(view ? view : cfg, sections, errmsg)) != 0 ||
	    (r = pl_file_read(out, &old, errmsg)) != 0)
		goto out;
	if (json_array_size(guests) == 0)
		pl_buf_add(yaml, old.data, old.len);
	else if ((r = merge_text(out, old.data, old.len, "guests", guests, stamp, yaml, errmsg)) !=
		 0)
		goto out;
	json_object_foreach((json_t *)sections, section, list) {
		pl_buf_init(&next, 64 << 20);
		r = merge_text(out, yaml->data, yaml->len, section, list, stamp, &next, errmsg);
		pl_buf_release(yaml);
		*yaml = next;
		if (r != 0)
			goto out;
	}
	/* the result must load as the same project with every entry */
	pl_diags_release(&d);
	pl_diags_init(&d);
	if (pl_config_load_string(out, yaml->data, yaml->len, &check, &d) == 0 && check)
		json_object_foreach((json_t *)sections, section, list) {
			char ptr[64];

			snprintf(ptr, sizeof(ptr), "/%s", section);
			counts_ok &=
				json_array_size(pl_config_get(check, ptr)) ==
				json_array_size(pl_config_get(cfg, ptr)) + json_array_size(list);
		}
	if (check == NULL || !counts_ok || strcmp(pl_config_project(check), project) ||
	    json_array_size(pl_config_guests(check)) !=
		    json_array_size(pl_config_guests(cfg)) + json_array_size(guests)) {
		r = pl_seterr(errmsg, PL_EINVAL,
			      "cannot merge into '%s': the merged file would not "
			      "load as written (%s); nothing was imported (write them with --out "
			      "NEW.yaml and paste them)",
			      out, d.n ? d.items[0].msg : "a list could not be found");
		goto out;
	}
out:
	pl_config_free(cfg);
	pl_config_free(view);
	pl_config_free(check);
	pl_diags_release(&d);
	pl_buf_release(&old);
	return r;
}

/* --firewall: the guests' firewall into their YAML, the cluster's into
 * doc's firewall: (docs/firewall.md). */
static int
import_firewall(struct pl_session *s, json_t *snap, const json_t *lives, json_t *doc, char **errmsg)
{
	json_t *vmids = json_object();
	const json_t *live;
	size_t i;
	int r;

	json_array_foreach(lives, i, live) {
		char key[32];

		snprintf(key, sizeof(key), "%lld", pl_json_int(live, "vmid", 0));
		json_object_set_new(vmids, key, json_true());
	}
	r = pl_fw_fetch(s->pve, NULL, true, vmids, snap, errmsg);
	json_decref(vmids);
	if (r != 0)
		return r;
	json_array_foreach(lives, i, live) {
		json_t *fw = pl_fw_guest_yaml(snap, pl_json_str_or(live, "node", ""),
					      pl_json_str_or(live, "type", "qemu"),
					      pl_json_int(live, "vmid", 0));

		if (fw)
			json_object_set_new(json_array_get(json_object_get(doc, "guests"), i),
					    "firewall", fw);
	}
	json_object_set_new(doc, "firewall", pl_fw_cluster_yaml(snap));
	return 0;
}

/* storage:ID, backup-job:ID, pool:ID and pci-mapping:ID: their YAML into
 * doc, and into marks the calls that put this project's marker on the jobs,
 * pools and mappings (day2.c). Returns the sections (new reference), NULL with *errmsg. */
static json_t *
import_day2(const json_t *snap, const json_t *args, const char *project, json_t *doc, json_t *marks,
	    char **errmsg)
{
	json_t *sections = json_object(), *e, *mark;
	const char *section;
	size_t i;

	json_array_foreach(args, i, e) {
		json_t *y = pl_day2_import(snap, json_string_value(e), project, &section, &mark,
					   errmsg);

		if (y == NULL)
			goto bad;
		if (!json_object_get(sections, section))
			json_object_set_new(sections, section, json_array());
		json_array_append_new(json_object_get(sections, section), y);
		if (mark)
			json_array_append_new(marks, mark);
	}
	json_object_update(doc, sections);
	return sections;
bad:
	json_decref(sections);
	return NULL;
}

#define PL_STORAGE_ARG "storage:"

/* Refuse to adopt a storage:ID of args that the store records as another
 * project's. */
static int
storages_free(struct pl_session *s, const json_t *args, const char *project, char **errmsg)
{
	json_t *owners;
	const json_t *e;
	const char *arg, *owner;
	size_t i;
	int r;

	if ((r = pl_state_storage_owners(s->state, &owners, errmsg)) != 0)
		return r;
	json_array_foreach(args, i, e) {
		arg = json_string_value(e);
		if (pl_str_startswith(arg, PL_STORAGE_ARG) &&
		    (owner = pl_json_str(owners, arg + strlen(PL_STORAGE_ARG))) != NULL &&
		    strcmp(owner, project)) {
			r = pl_seterr(errmsg, PL_EINVAL,
				      "refusing to import '%s': it is managed by project '%s'", arg,
				      owner);
			break;
		}
	}
	json_decref(owners);
	return r;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	const char *out = NULL;
	bool do_adopt = true, merge = false;
	json_t *snap = NULL, *doc = NULL, *guests, *lives, *d2args, *d2 = NULL, *marks;
	const json_t *live;
	struct pl_buf yaml;
	char *err = NULL, *project = NULL;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_import, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	out = pl_args_str(&a, O_OUT, NULL);
	merge = pl_args_has(&a, O_MERGE);
	do_adopt = !pl_args_has(&a, O_NOADOPT);
	if (merge && out == NULL)
		return pl_usage_error(&pl_cmd_import, "--merge needs --out FILE");
	if (merge && pl_args_has(&a, O_FIREWALL))
		return pl_usage_error(&pl_cmd_import,
				      "--firewall writes the cluster's firewall: section, "
				      "so it needs a new --out FILE (or none), not --merge");
	marks = json_array(); /* after the usage errors, which return */
	lives = json_array();
	d2args = json_array();
	pl_buf_init(&yaml, 64 << 20);
	if (pl_session_open(&s, ctx, PL_NEED_API | PL_NEED_STATE, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	/* refuse an existing --out before reading anything */
	if (out && !merge && access(out, F_OK) == 0) {
		pl_error("refusing to overwrite '%s' (pvelab import --merge adds the guests to it; "
			 "--out a new file writes them apart)", out);
		goto out;
	}
	if ((project = out ? out_project(out, &err) : pl_owner_project(&s, &err)) == NULL ||
	    pl_cmd_sync_now(&s, false, false, NULL, NULL, &snap, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	doc = json_pack("{s:[]}", "guests");
	guests = json_object_get(doc, "guests");
	for (int k = 0; k < a.npos; k++) {
		if (pl_day2_import_arg(a.pos[k])) { /* storage:ID, pool:ID... */
			json_array_append_new(d2args, json_string(a.pos[k]));
			continue;
		}
		if ((live = pl_guest_lookup(json_object_get(snap, PL_SNAP_GUESTS), a.pos[k], &err)) == NULL) {
			pl_error("%s", err);
			goto out;
		}
		if (pl_json_str(live, PL_SNAP_UNREAD)) {
			pl_error("cannot import %lld '%s': its config could not be read from node "
				 "'%s' (%s)", pl_json_int(live, "vmid", 0),
				 pl_json_str_or(live, "name", ""), pl_json_str_or(live, "node", "?"),
				 pl_json_str(live, PL_SNAP_UNREAD));
			goto out;
		}
		json_array_append_new(guests, pl_model_guest_to_yaml(live));
		json_array_append(lives, (json_t *)live);
	}
	if (pl_args_has(&a, O_FIREWALL) && import_firewall(&s, snap, lives, doc, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (json_array_size(d2args) &&
	    (d2 = import_day2(snap, d2args, project, doc, marks, &err)) == NULL) {
		pl_error("%s", err);
		goto out;
	}
	if (out && out_text(out, merge, guests, json_object_get(doc, "firewall"), d2, project,
			    s.cfg ? pl_config_cluster(s.cfg) : NULL, &yaml, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	/* nothing is tagged before every guest is known to be free to take */
	json_array_foreach(lives, i, live) {
		char *owner = NULL;

		if (do_adopt && pl_model_owner(live, &owner) == PL_OWNER_PROJECT && strcmp(owner, project)) {
			pl_error("refusing to import %lld '%s': it is managed by project '%s', and '%s' is "
				 "project '%s' (pvelab adopt %lld --from %s moves it first)",
				 pl_json_int(live, "vmid", 0), pl_json_str_or(live, "name", ""), owner,
				 out ? out : ctx->config_path, project, pl_json_int(live, "vmid", 0), owner);
			free(owner);
			goto out;
		}
		free(owner);
	}
	if (do_adopt && storages_free(&s, d2args, project, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	json_array_foreach(do_adopt ? marks : NULL, i, live)
		if (pl_pve_call(s.pve, pl_json_str(live, "method"), pl_json_str(live, "path"),
				json_object_get(live, "params"), NULL, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
	json_array_foreach(lives, i, live) {
		if (do_adopt && pl_owner_tag(&s, live, project, &err) != 0) {
			pl_error("cannot tag guest %lld as managed: %s", pl_json_int(live, "vmid", 0), err);
			goto out;
		}
	}
	/* a storage has no comment to mark: the store records it as the project's */
	json_array_foreach(do_adopt ? d2args : NULL, i, live) {
		const char *arg = json_string_value(live), *id;

		if (!pl_str_startswith(arg, PL_STORAGE_ARG))
			continue;
		id = arg + strlen(PL_STORAGE_ARG);
		if (pl_state_storage_own(s.state, id, project, &err) != 0) {
			pl_error("cannot record storage '%s' as owned by project '%s': %s", id,
				 project, err);
			goto out;
		}
	}
	if (do_adopt) {
		free(err);
		err = NULL;
		if (pl_cmd_sync_now(&s, false, false, NULL, NULL, NULL, &err) != 0)
			pl_warn(ctx, "imported, but the refresh afterwards failed: %s", err);
	}
	if (ctx->output == PL_OUT_JSON && out == NULL) {
		json_object_set_new(doc, "project", json_string(project));
		pl_print_json(json_incref(doc));
		rc = PL_EXIT_OK;
		goto out;
	}
	if (out) {
		if (pl_file_write_atomic(out, yaml.data, yaml.len, 0644, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
		if (ctx->verbosity >= 0)
			fprintf(stderr, "pvelab: %s %d guest%s to '%s'%s%s%s\n", merge ? "added" : "wrote",
				a.npos, a.npos == 1 ? "" : "s", out,
				do_adopt ? ", tagged for project '" : "", do_adopt ? project : "",
				do_adopt ? "'" : "");
	} else {
		time_t now = time(NULL);
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));
		pl_buf_addf(&yaml, "# Written by pvelab import on %s for project '%s'. `pvelab plan`\n"
				   "# against this shows no changes; settings pvelab has no key for are kept\n"
				   "# verbatim under config:.\n", when, project);
		pl_yaml_emit(doc, 0, &yaml);
		fputs(yaml.data, stdout);
	}
	rc = PL_EXIT_OK;
out:
	free(err);
	free(project);
	pl_buf_release(&yaml);
	json_decref(doc);
	json_decref(lives);
	json_decref(d2args);
	json_decref(d2);
	json_decref(marks);
	json_decref(snap);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_import = {
	.name = "import",
	.summary = "adopt existing guests, storages, backup jobs, pools and PCI mappings: write "
		   "their YAML so the next plan shows no changes",
	.usage = "GUEST|KIND:ID... [--out FILE [--merge]] [--no-adopt] [--firewall]",
	.help = "GUEST is a vmid or a name. The guests are tagged pvelab and pvelab-<project>\n"
		"(managed by that project) unless --no-adopt is given. The project is the one of\n"
		"the file the YAML goes to: --out NEW.yaml writes a new file that says\n"
		"project: NEW (its name, or its directory's for pvelab.yaml); --out FILE --merge\n"
		"adds the guests to FILE's guests: list, and storages, jobs and pools to its\n"
		"storages:, backups: and pools: (comments and the rest kept), and uses FILE's\n"
		"project; one FILE declares already is refused. --out never overwrites an existing "
		"file. Without --out the YAML\n"
		"goes to standard output for -c's config's project. Guests of another project\n"
		"are refused (pvelab adopt --from moves them first). --firewall adds each guest's\n"
		"firewall options and rules and the cluster's firewall (aliases, IP sets,\n"
		"security groups, datacenter rules and options) as written by hand, so that\n"
		"pvelab manages them from then on (docs/firewall.md).\n"
		"KIND:ID is storage:ID, backup-job:ID, pool:ID or pci-mapping:ID: the cluster's\n"
		"storage, backup job, pool or PCI resource mapping goes under storages:,\n"
		"backups:, pools: or pci_mappings:; a job, pool or mapping is marked as the\n"
		"project's by [pvelab:<project>] at the end of its comment or description, a\n"
		"storage in pvelab's store (not with --no-adopt; another project's is refused).\n"
		"Secrets (CIFS/PBS passwords, PBS fingerprints) are not written: add\n"
		"password_file:/fingerprint_file: for a storage pvelab will create again.",
	.opts = opts,
	.min_args = 1,
	.max_args = PL_ARGS_MANY,
	.run = run,
	.flags = PL_CMD_MCP_WRITE,
};
