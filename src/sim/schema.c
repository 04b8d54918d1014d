/*
 * Loads the embedded PVE API schema, builds a segment trie over its paths for
 * routing, and checks request parameters the way PVE::JSONSchema does, with
 * its error texts ("property is missing and it is not optional", ...).
 */
#include "core/common.h"
#include "sim/schema.h"

#include <ctype.h>

#include "core/apischema.h"
#include "core/buf.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"

struct pl_sim_rnode {
	char *seg;     /* literal segment, or NULL for a variable */
	size_t seglen;
	char *var;     /* variable name for {var} */
	struct pl_sim_rnode **kids;
	size_t nkids;
	long path;     /* index into paths, -1 if no path ends here */
};

static const char *const meth_names[PL_SIM_NMETH] = { "GET", "POST", "PUT", "DELETE" };

int
pl_sim_meth_parse(const char *m)
{
	for (int i = 0; i < PL_SIM_NMETH; i++)
		if (!strcmp(m, meth_names[i]))
			return i;
	return -1;
}

const char *
pl_sim_meth_name(enum pl_sim_meth m)
{
	return (unsigned)m < PL_SIM_NMETH ? meth_names[m] : "?";
}

static struct pl_sim_rnode *
rnode_new(void)
{
	struct pl_sim_rnode *n = pl_calloc(1, sizeof(*n));

	n->path = -1;
	return n;
}

static void
rnode_free(struct pl_sim_rnode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		rnode_free(n->kids[i]);
	free(n->kids);
	free(n->seg);
	free(n->var);
	free(n);
}

static struct pl_sim_rnode *
rnode_child(struct pl_sim_rnode *n, const char *seg, size_t len)
{
	bool var = len >= 2 && seg[0] == '{' && seg[len - 1] == '}';
	struct pl_sim_rnode *k;

	for (size_t i = 0; i < n->nkids; i++) {
		k = n->kids[i];
		if (var && k->var && strlen(k->var) == len - 2 && !strncmp(k->var, seg + 1, len - 2))
			return k;
		if (!var && k->seg && k->seglen == len && !memcmp(k->seg, seg, len))
			return k;
	}
	k = rnode_new();
	if (var)
		k->var = pl_strndup(seg + 1, len - 2);
	else {
		k->seg = pl_strndup(seg, len);
		k->seglen = len;
	}
	n->kids = pl_realloc(n->kids, (n->nkids + 1) * sizeof(*n->kids));
	n->kids[n->nkids++] = k;
	return k;
}

static void
route_add(struct pl_sim_rnode *root, const char *path, long idx)
{
	struct pl_sim_rnode *n = root;
	const char *p = path;

	while (*p) {
		const char *e;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		e = strchr(p, '/');
		if (!e)
			e = p + strlen(p);
		n = rnode_child(n, p, (size_t)(e - p));
		p = e;
	}
	n->path = idx;
}

static char *
uri_unescape(const char *s, size_t len)
{
	char *out = pl_malloc(len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char h[3] = { s[i + 1], s[i + 2], 0 };

			out[o++] = (char)strtol(h, NULL, 16);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = 0;
	return out;
}

/* Depth-first match; literal children are preferred over variables. A
 * variable that ends a path may swallow the rest (volume ids contain '/'). */
static long
route_match(const struct pl_sim_rnode *n, const char *p, json_t *vars)
{
	const char *e;
	size_t len;

	while (*p == '/')
		p++;
	if (!*p)
		return n->path;
	e = strchr(p, '/');
	if (!e)
		e = p + strlen(p);
	len = (size_t)(e - p);
	for (size_t i = 0; i < n->nkids; i++) {
		const struct pl_sim_rnode *k = n->kids[i];
		long r;

		if (!k->seg || k->seglen != len || memcmp(k->seg, p, len))
			continue;
		if ((r = route_match(k, e, vars)) >= 0)
			return r;
	}
	for (size_t i = 0; i < n->nkids; i++) {
		const struct pl_sim_rnode *k = n->kids[i];
		long r;

		if (!k->var)
			continue;
		{
			char *v = uri_unescape(p, len);

			json_object_set_new(vars, k->var, json_string(v));
			free(v);
		}
		if ((r = route_match(k, e, vars)) >= 0)
			return r;
		if (k->path >= 0 && k->nkids == 0) {
			char *v = uri_unescape(p, strlen(p));

			json_object_set_new(vars, k->var, json_string(v));
			free(v);
			return k->path;
		}
		json_object_del(vars, k->var);
	}
	return -1;
}

const struct pl_sim_path *
pl_sim_route(const struct pl_sim_schema *s, const char *path, json_t **vars)
{
	json_t *v = json_object();
	long idx = route_match(s->root, path, v);

	if (idx < 0) {
		json_decref(v);
		*vars = NULL;
		return NULL;
	}
	*vars = v;
	return &s->paths[idx];
}

struct pl_sim_path *
pl_sim_schema_find(const struct pl_sim_schema *s, const char *tmpl)
{
	for (size_t i = 0; i < s->npaths; i++)
		if (!strcmp(s->paths[i].path, tmpl))
			return &s->paths[i];
	return NULL;
}

static struct pl_sim_method *
method_new(enum pl_sim_meth meth, const char *path, const json_t *def)
{
	struct pl_sim_method *m = pl_calloc(1, sizeof(*m));
	const json_t *params = json_object_get(def, "params");
	const char *k;
	json_t *v;
	size_t i = 0;

	m->meth = meth;
	m->path = path;
	m->def = def;
	m->allowtoken = pl_json_bool(def, "allowtoken", true);
	m->returns = pl_json_str_or(def, "returns", "null");
	m->nparams = json_object_size(params);
	m->params = pl_calloc(m->nparams ? m->nparams : 1, sizeof(*m->params));
	m->index = json_object();
	json_object_foreach((json_t *)params, k, v) {
		json_object_set_new(m->index, k, json_integer((json_int_t)i));
		pl_api_param_init(&m->params[i++], k, v);
	}
	return m;
}

static void
method_free(struct pl_sim_method *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nparams; i++)
		pl_api_param_release(&m->params[i]);
	free(m->params);
	json_decref(m->index);
	free(m);
}

struct pl_sim_schema *
pl_sim_schema_load(const char *version, char **errmsg)
{
	struct pl_sim_schema *s;
	const char *data;
	char name[64];
	json_t *paths;
	size_t len;

	snprintf(name, sizeof(name), "pve-schema-%s.json", version);
	if ((data = pl_embed_get(name, &len)) == NULL) {
		pl_seterr(errmsg, PL_EINVAL, "unknown PVE version '%s' (known: 9.1, 8.4)", version);
		return NULL;
	}
	s = pl_calloc(1, sizeof(*s));
	if ((s->doc = pl_json_parse(data, len, errmsg)) == NULL) {
		free(s);
		return NULL;
	}
	s->version = pl_strdup(version);
	s->root = rnode_new();
	paths = json_object_get(s->doc, "paths");
	s->npaths = json_array_size(paths);
	s->paths = pl_calloc(s->npaths ? s->npaths : 1, sizeof(*s->paths));
	for (size_t i = 0; i < s->npaths; i++) {
		json_t *pe = json_array_get(paths, i);
		json_t *ms = json_object_get(pe, "methods");
		struct pl_sim_path *p = &s->paths[i];
		const char *mk;
		json_t *mv;

		p->path = pl_strdup(pl_json_str_or(pe, "path", "/"));
		json_object_foreach(ms, mk, mv) {
			int mi = pl_sim_meth_parse(mk);

			if (mi >= 0)
				p->methods[mi] = method_new((enum pl_sim_meth)mi, p->path, mv);
		}
		route_add(s->root, p->path, (long)i);
	}
	return s;
}

void
pl_sim_schema_free(struct pl_sim_schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->npaths; i++) {
		for (int m = 0; m < PL_SIM_NMETH; m++)
			method_free(s->paths[i].methods[m]);
		free(s->paths[i].path);
	}
	free(s->paths);
	rnode_free(s->root);
	json_decref(s->doc);
	free(s->version);
	free(s);
}

const struct pl_api_param *
pl_sim_param_find(const struct pl_sim_method *m, const char *name)
{
	return pl_api_param_lookup(m->params, m->index, name);
}

int
pl_sim_validate(const struct pl_sim_method *m, const json_t *params, json_t *errors)
{
	const char *k;
	json_t *v;
	int n = 0;

	json_object_foreach((json_t *)params, k, v) {
		const struct pl_api_param *p = pl_sim_param_find(m, k);
		char *err;

		if (!p) {
			json_object_set_new(errors, k,
					    json_string("property is not defined in schema and the "
							"schema does not allow additional properties"));
			n++;
			continue;
		}
		if (json_is_array(v) && p->array) {
			size_t i;
			json_t *item;

			json_array_foreach(v, i, item) {
				err = json_is_string(item) ?
					      pl_api_check_value(p, json_string_value(item)) :
					      NULL;
				if (err == NULL)
					continue;
				json_object_set_new(errors, k, json_string(err));
				free(err);
				n++;
				break;
			}
			continue;
		}
		if (!json_is_string(v))
			continue; /* repeated keys for array parameters */
		if ((err = pl_api_check_value(p, json_string_value(v))) != NULL) {
			json_object_set_new(errors, k, json_string(err));
			free(err);
			n++;
		}
	}
	for (size_t i = 0; i < m->nparams; i++) {
		const struct pl_api_param *p = &m->params[i];

		if (p->optional || p->indexed || json_object_get(params, p->name))
			continue;
		json_object_set_new(errors, p->name,
				    json_string("property is missing and it is not optional"));
		n++;
	}
	return n;
}
