/*
 * Stacks rendered from the config and compared with the last deploy
 * (plan/stacks.h): file reading with caps and permission checks, the
 * per-file and per-stack hashes, and a small line diff for the plan.
 */
#include "core/common.h"
#include "plan/stacks.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"

#include <errno.h>
#include <sys/stat.h>

#define STACK_FILE_MAX ((size_t)4 << 20)

static void
extend_new(json_t *a, json_t *more)
{
	json_array_extend(a, more);
	json_decref(more);
}

static bool
name_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 63 || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_'))
			return false;
	return true;
}

/* Append one file to the stack's list, refusing two files at one path. */
static int
add_file(json_t *files, const char *path, const char *data, size_t len, unsigned mode, bool secret,
	 const char *where, char **errmsg)
{
	char sha[65];
	size_t i;
	json_t *f;

	json_array_foreach(files, i, f)
		if (!strcmp(pl_json_str_or(f, "path", ""), path))
			return pl_seterr(errmsg, PL_EINVAL, "%s: two files of the stack go to %s",
					 where, path);
	pl_sha256_hex(data, len, sha);
	f = json_pack("{s:s,s:i,s:b,s:s,s:s%}", "path", path, "mode", (int)mode, "secret", secret,
		      "sha256", sha, "_data", data, len);
	if (!f)
		return pl_seterr(errmsg, PL_EINVAL, "%s: %s is not text (UTF-8 without NUL)", where,
				 path);
	json_array_append_new(files, f);
	return 0;
}

/* Read a file named relative to the config; a secret must not be readable
 * by others. */
static int
read_rel(const char *cfgdir, const char *rel, bool secret, const char *where, struct pl_buf *b,
	 char **errmsg)
{
	char *path = rel[0] == '/' ? pl_strdup(rel) : pl_path_join(cfgdir, rel);
	struct stat st;
	int r;

	pl_buf_init(b, STACK_FILE_MAX);
	if (stat(path, &st) != 0)
		r = pl_seterr(errmsg, PL_ENOENT, "%s: %s: %s", where, path, strerror(errno));
	else if (secret && (st.st_mode & 077))
		r = pl_seterr(
			errmsg, PL_EPERM,
			"%s: %s holds secrets but is readable by others (mode %03o): chmod 600 it",
			where, path, (unsigned)(st.st_mode & 0777));
	else if ((r = pl_file_read(path, b, errmsg)) != 0)
		pl_preferr(errmsg, r, "%s", where);
	free(path);
	return r;
}

static const char *
base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* One stack of guest g (index k), rendered. */
static int
render_one(const struct pl_config *cfg, const char *cfgdir, const json_t *g, size_t gi, size_t k,
	   const json_t *st, const char *profile, json_t **out, char **errmsg)
{
	const char *name = pl_json_str(st, "name"), *gname = pl_json_str_or(g, "name", "?");
	const char *root = pl_json_str(pl_config_get(cfg, "/stack_defaults/root"), NULL);
	const char *transport = pl_json_str(st, "transport");
	char where[160], *dir;
	json_t *files = json_array(), *profiles, *v, *s = NULL, *base;
	struct pl_buf b, canon;
	size_t i;
	int r = 0;

	snprintf(where, sizeof where, "guests[%zu].stacks[%zu]", gi, k);
	if (!name_ok(name)) {
		json_decref(files);
		return pl_seterr(
			errmsg, PL_EINVAL,
			"%s.name: '%s' is not a compose project name ([a-z0-9][a-z0-9_-]*)", where,
			name ? name : "");
	}
	if (!root)
		root = "/opt/pvelab/stacks";
	if (pl_json_str(st, "directory"))
		dir = pl_strdup(pl_json_str(st, "directory"));
	else
		dir = pl_asprintf("%s/%s", root, name);
	if (dir[0] != '/') {
		r = pl_seterr(errmsg, PL_EINVAL, "%s.directory: '%s' is not an absolute path",
			      where, dir);
		goto out;
	}
	if (!transport) {
		const json_t *d = pl_config_get(cfg, "/stack_defaults/transport");

		transport = d && json_is_string(d) ? json_string_value(d) : "auto";
	}
	base = json_pack("[s,s,s,s,s,s]", "docker", "compose", "-p", name, "--project-directory",
			 dir);
	json_array_foreach(json_object_get(st, "compose"), i, v) {
		char *dest = pl_asprintf("%s/%s", dir, base_name(json_string_value(v)));

		if ((r = read_rel(cfgdir, json_string_value(v), false, where, &b, errmsg)) == 0)
			r = add_file(files, dest, b.data, b.len, 0644, false, where, errmsg);
		json_array_append_new(base, json_string("-f"));
		json_array_append_new(base, json_string(dest));
		pl_buf_release(&b);
		free(dest);
		if (r)
			goto outcmd;
	}
	if (json_object_size(json_object_get(st, "env")) > 0) {
		const char *key;
		struct pl_buf env;
		char *dest = pl_asprintf("%s/.env", dir);
		json_t *keys = json_array();

		pl_buf_init(&env, 0);
		json_object_foreach(json_object_get(st, "env"), key, v)
			json_array_append_new(keys, json_string(key));
		/* sorted, so that the text (and its hash) does not depend on YAML order */
		for (size_t a = 1; a < json_array_size(keys); a++)
			for (size_t c = a;
			     c > 0 && strcmp(json_string_value(json_array_get(keys, c - 1)),
					     json_string_value(json_array_get(keys, c))) > 0;
			     c--) {
				json_t *t = json_incref(json_array_get(keys, c));

				json_array_set(keys, c, json_array_get(keys, c - 1));
				json_array_set_new(keys, c - 1, t);
			}
		json_array_foreach(keys, i, v) {
			const json_t *val =
				json_object_get(json_object_get(st, "env"), json_string_value(v));
			char *text = json_is_string(val) ? pl_strdup(json_string_value(val)) :
							   json_dumps(val, JSON_ENCODE_ANY);

			pl_buf_addf(&env, "%s=%s\n", json_string_value(v), text ? text : "");
			free(text);
		}
		r = add_file(files, dest, env.data, env.len, 0644, false, where, errmsg);
		json_decref(keys);
		pl_buf_release(&env);
		if (r == 0 && json_array_size(json_object_get(st, "env_files")) > 0)
			extend_new(base, json_pack("[s,s]", "--env-file", dest));
		free(dest);
		if (r)
			goto outcmd;
	}
	json_array_foreach(json_object_get(st, "env_files"), i, v) {
		char *dest = pl_asprintf("%s/%s", dir, base_name(json_string_value(v)));

		if ((r = read_rel(cfgdir, json_string_value(v), true, where, &b, errmsg)) == 0)
			r = add_file(files, dest, b.data, b.len, 0600, true, where, errmsg);
		json_array_append_new(base, json_string("--env-file"));
		json_array_append_new(base, json_string(dest));
		pl_buf_release(&b);
		free(dest);
		if (r)
			goto outcmd;
	}
	json_array_foreach(json_object_get(st, "files"), i, v) {
		const char *src = pl_json_str(v, "src"), *d = pl_json_str(v, "dest");
		const char *m = pl_json_str_or(v, "mode", "0644");
		bool secret = json_is_true(json_object_get(v, "secret"));
		char *end = NULL, *dest;
		long mode = strtol(m, &end, 8);

		if (!*m || *end || mode < 0 || mode > 07777) {
			r = pl_seterr(errmsg, PL_EINVAL,
				      "%s.files[%zu].mode: '%s' is not an octal mode", where, i, m);
			goto outcmd;
		}
		if (strstr(d, "..")) {
			r = pl_seterr(errmsg, PL_EINVAL,
				      "%s.files[%zu].dest: '%s' may not contain ..", where, i, d);
			goto outcmd;
		}
		dest = d[0] == '/' ? pl_strdup(d) : pl_asprintf("%s/%s", dir, d);
		if ((r = read_rel(cfgdir, src, secret, where, &b, errmsg)) == 0)
			r = add_file(files, dest, b.data, b.len, (unsigned)mode, secret, where,
				     errmsg);
		pl_buf_release(&b);
		free(dest);
		if (r)
			goto outcmd;
	}
	profiles = json_array();
	if (profile)
		json_array_append_new(profiles, json_string(profile));
	else
		json_array_foreach(json_object_get(st, "profiles"), i, v)
			json_array_append(profiles, v);
	json_array_foreach(profiles, i, v) {
		json_array_append_new(base, json_string("--profile"));
		json_array_append(base, v);
	}

	/* The stack's hash: its name, directory, profiles and every file's path,
	 * mode and content hash. */
	pl_buf_init(&canon, 0);
	pl_buf_addf(&canon, "%s\n%s\n", name, dir);
	json_array_foreach(profiles, i, v)
		pl_buf_addf(&canon, "profile %s\n", json_string_value(v));
	json_array_foreach(files, i, v)
		pl_buf_addf(&canon, "%s %o %s\n", pl_json_str(v, "path"),
			    (unsigned)json_integer_value(json_object_get(v, "mode")),
			    pl_json_str(v, "sha256"));
	{
		char sha[65];
		json_t *up = json_deep_copy(base), *ps = json_deep_copy(base),
		       *down = json_deep_copy(base);

		pl_sha256_hex(canon.data, canon.len, sha);
		extend_new(up, json_pack("[s,s,s]", "up", "-d", "--remove-orphans"));
		extend_new(ps, json_pack("[s,s,s,s]", "ps", "--all", "--format", "json"));
		json_array_append_new(down, json_string("down"));
		s = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s,s:o,s:o,s:o,s:s,s:O}", "guest", gname,
			      "type", pl_json_str_or(g, "type", "vm"), "name", name, "profiles",
			      profiles, "directory", dir, "transport", transport, "up", up, "ps",
			      ps, "down", down, "sha256", sha, "files", files);
		if (json_integer_value(json_object_get(g, "vmid")) > 0)
			json_object_set(s, "vmid", json_object_get(g, "vmid"));
	}
	pl_buf_release(&canon);
outcmd:
	json_decref(base);
out:
	free(dir);
	json_decref(files);
	*out = s;
	return r;
}

int
pl_stacks_render(const struct pl_config *cfg, const json_t *guests, const char *profile,
		 json_t **out, char **errmsg)
{
	char *cfgdir = pl_path_dirname(pl_config_path(cfg));
	json_t *all = json_array(), *g, *st, *one;
	size_t gi, k;
	int r = 0;

	json_array_foreach(pl_config_guests(cfg), gi, g) {
		if (guests && json_array_size(guests) > 0) {
			bool wanted = false;
			size_t i;
			json_t *n;

			json_array_foreach(guests, i, n)
				wanted |= !strcmp(json_string_value(n),
						  pl_json_str_or(g, "name", ""));
			if (!wanted)
				continue;
		}
		json_array_foreach(json_object_get(g, "stacks"), k, st) {
			size_t j;
			json_t *o;

			if ((r = render_one(cfg, cfgdir, g, gi, k, st, profile, &one, errmsg)) != 0)
				goto out;
			json_array_foreach(all, j, o)
				if (!strcmp(pl_json_str(o, "guest"), pl_json_str(one, "guest")) &&
				    !strcmp(pl_json_str(o, "name"), pl_json_str(one, "name"))) {
					r = pl_seterr(errmsg, PL_EINVAL,
						      "guests[%zu].stacks[%zu].name: '%s' twice in "
						      "guest %s",
						      gi, k, pl_json_str(one, "name"),
						      pl_json_str(one, "guest"));
					json_decref(one);
					goto out;
				}
			json_array_append_new(all, one);
		}
	}
out:
	free(cfgdir);
	if (r) {
		json_decref(all);
		all = NULL;
	}
	*out = all;
	return r;
}

json_t *
pl_stacks_public(const json_t *stack, bool keep_text)
{
	json_t *s = json_deep_copy(stack), *f;
	size_t i;

	json_array_foreach(json_object_get(s, "files"), i, f) {
		if (keep_text && !json_is_true(json_object_get(f, "secret")))
			json_object_set(f, "text", json_object_get(f, "_data"));
		json_object_del(f, "_data");
	}
	return s;
}

/* The lines of text (without their newlines), *n of them; the caller frees each and the array. */
static char **
split_lines(const char *text, int *n)
{
	int cap = 16;
	char **v = pl_calloc((size_t)cap, sizeof *v);

	*n = 0;
	while (text && *text) {
		size_t len = strcspn(text, "\n");

		if (*n == cap) {
			cap *= 2;
			v = pl_realloc(v, (size_t)cap * sizeof *v);
		}
		v[(*n)++] = pl_strndup(text, len);
		text += len + (text[len] == '\n');
	}
	return v;
}

char *
pl_stacks_diff(const char *a, const char *b, int max_lines)
{
	int na, nb, shown = 0, more = 0;
	char **la = split_lines(a, &na), **lb = split_lines(b, &nb);
	struct pl_buf out;

	pl_buf_init(&out, 0);
	if ((long)na * nb > 4000000) {
		pl_buf_addf(&out, "(%d lines before, %d after: too long to compare)\n", na, nb);
	} else {
		/* longest common subsequence, then walk it */
		int *t = pl_calloc((size_t)(na + 1) * (size_t)(nb + 1), sizeof *t);
		int i = 0, j = 0;

#define T(x, y) t[(size_t)(x) * (size_t)(nb + 1) + (size_t)(y)]
		for (int x = na - 1; x >= 0; x--)
			for (int y = nb - 1; y >= 0; y--)
				T(x, y) = !strcmp(la[x], lb[y]) ?
						  T(x + 1, y + 1) + 1 :
						  (T(x + 1, y) > T(x, y + 1) ? T(x + 1, y) :
									       T(x, y + 1));
		while (i < na || j < nb) {
			const char *sign, *line;

			if (i < na && j < nb && !strcmp(la[i], lb[j])) {
				i++, j++;
				continue;
			}
			if (j < nb && (i == na || T(i, j + 1) > T(i + 1, j)))
				sign = "+", line = lb[j++];
			else
				sign = "-", line = la[i++];
			if (shown < max_lines) {
				pl_buf_addf(&out, "%s%s\n", sign, line);
				shown++;
			} else {
				more++;
			}
		}
#undef T
		free(t);
		if (more)
			pl_buf_addf(&out, "... %d more\n", more);
	}
	for (int i = 0; i < na; i++)
		free(la[i]);
	for (int i = 0; i < nb; i++)
		free(lb[i]);
	free(la);
	free(lb);
	return pl_buf_detach(&out, NULL);
}

static const json_t *
find_file(const json_t *files, const char *path)
{
	size_t i;
	json_t *f;

	json_array_foreach(files, i, f)
		if (!strcmp(pl_json_str_or(f, "path", ""), path))
			return f;
	return NULL;
}

json_t *
pl_stacks_compare(const json_t *rendered, const json_t *recorded)
{
	json_t *plan = json_array(), *s, *rec;
	size_t i, j;

	json_array_foreach(rendered, i, s) {
		const json_t *old = NULL, *oldfiles = NULL;
		json_t *changes = json_array(), *f, *e;
		const char *action;
		const char *key;

		json_array_foreach(recorded, j, rec)
			if (json_integer_value(json_object_get(rec, "vmid")) ==
				    json_integer_value(json_object_get(s, "vmid")) &&
			    !strcmp(pl_json_str_or(rec, "stack", ""), pl_json_str(s, "name")))
				old = rec;
		if (old)
			oldfiles = json_object_get(old, "files");
		json_array_foreach(json_object_get(s, "files"), j, f) {
			const char *path = pl_json_str(f, "path");
			const json_t *o = json_object_get(oldfiles, path);
			bool secret = json_is_true(json_object_get(f, "secret"));

			if (!o) {
				e = json_pack("{s:s,s:s,s:b}", "path", path, "change", "create",
					      "secret", secret);
				if (!secret)
					json_object_set(e, "sha256", json_object_get(f, "sha256"));
				json_array_append_new(changes, e);
			} else if (strcmp(pl_json_str_or(o, "sha256", ""),
					  pl_json_str(f, "sha256")) ||
				   json_integer_value(json_object_get(o, "mode")) !=
					   json_integer_value(json_object_get(f, "mode"))) {
				e = json_pack("{s:s,s:s,s:b}", "path", path, "change", "update",
					      "secret", secret);
				if (!secret)
					json_object_set(e, "sha256", json_object_get(f, "sha256"));
				if (!secret && pl_json_str(o, "text")) {
					char *d = pl_stacks_diff(pl_json_str(o, "text"),
								 pl_json_str(f, "_data"), 40);

					json_object_set_new(e, "diff", json_string(d));
					free(d);
				}
				json_array_append_new(changes, e);
			}
		}
		json_object_foreach((json_t *)oldfiles, key, e)
			if (!find_file(json_object_get(s, "files"), key))
				json_array_append_new(
					changes,
					json_pack("{s:s,s:s,s:b}", "path", key, "change", "delete",
						  "secret",
						  json_is_true(json_object_get(e, "secret"))));
		if (!old)
			action = "create";
		else if (strcmp(pl_json_str_or(old, "sha256", ""), pl_json_str(s, "sha256")))
			action = "update";
		else
			action = "unchanged";
		json_array_append_new(
			plan, json_pack("{s:s,s:O,s:s,s:s,s:s,s:o}", "guest",
					pl_json_str(s, "guest"), "vmid",
					json_object_get(s, "vmid") ? json_object_get(s, "vmid") :
								     json_null(),
					"name", pl_json_str(s, "name"), "action", action, "sha256",
					pl_json_str(s, "sha256"), "files", changes));
	}
	return plan;
}
