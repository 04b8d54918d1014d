/*
 * API handlers for the firewall: cluster options, rules, security groups,
 * IP sets and aliases; a node's options and rules; a guest's options, rules,
 * IP sets and aliases. Rule order (pos, moveto), the per-list digests and the
 * 400 parameter errors are pve-firewall's (PVE/API2/Firewall/{Rules,Groups,
 * IPSet,Aliases,Cluster,Host,VM}.pm and PVE::Firewall::verify_rule).
 */
#include "core/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/fw.h"
#include "sim/internal.h"

/* --- the config files --- */

json_t *
pl_sim_fw_sub(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		v = json_object();
		json_object_set_new(o, key, v);
	}
	return v;
}

json_t *
pl_sim_fw_subarr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_array(v)) {
		v = json_array();
		json_object_set_new(o, key, v);
	}
	return v;
}

static json_t *
fw_root(struct pl_sim *s)
{
	if (!s->fw)
		s->fw = json_object();
	return s->fw;
}

json_t *
pl_sim_fw_cluster(struct pl_sim *s)
{
	return pl_sim_fw_sub(fw_root(s), "cluster");
}

/* The file a request is about (cluster.fw, host.fw, <vmid>.fw) and the rule
 * environment of its rules; NULL with the failure set. */
json_t *
pl_sim_fw_file(struct pl_sim_req *r, const char **env)
{
	struct pl_sim *s = r->sim;
	int scope = r->op & 3;
	char key[32];

	if (scope == FW_CLUSTER) {
		*env = (r->op & FW_GROUP) ? "group" : "cluster";
		return pl_sim_fw_cluster(s);
	}
	if (scope == FW_NODE) {
		int n = pl_sim_req_node(r);

		if (n < 0)
			return NULL;
		*env = "host";
		return pl_sim_fw_sub(pl_sim_fw_sub(fw_root(s), "nodes"), s->nodes[n].name);
	} else {
		struct pl_sim_guest *g = pl_sim_req_guest(r, r->lxc);

		if (!g)
			return NULL;
		*env = g->lxc ? "ct" : "vm";
		snprintf(key, sizeof(key), "%u", g->vmid);
		return pl_sim_fw_sub(pl_sim_fw_sub(fw_root(s), "guests"), key);
	}
}

static int
cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One entry's sorted scalar "key:value\n" lines, as pve-firewall hashes them. */
static void
entry_lines(struct pl_buf *b, const json_t *e)
{
	const char **keys = pl_calloc(json_object_size(e) + 1, sizeof(*keys));
	size_t n = 0;
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)e, k, v)
		if (!json_is_object(v) && !json_is_array(v))
			keys[n++] = k;
	qsort(keys, n, sizeof(*keys), cmp_keys);
	for (size_t j = 0; j < n; j++) {
		char *txt = pl_api_value_text(json_object_get(e, keys[j]));

		if (txt)
			pl_buf_addf(b, "%s:%s\n", keys[j], txt);
		free(txt);
	}
	free(keys);
}

/* PVE::Firewall::copy_list_with_digest's digest. */
void
pl_sim_fw_list_digest(const json_t *list, char out[41])
{
	struct pl_buf b;
	size_t i;
	json_t *e;

	pl_buf_init(&b, 0);
	json_array_foreach(list, i, e)
		entry_lines(&b, e);
	pl_sim_sha1_hex(b.data ? b.data : "", b.len, out);
	pl_buf_release(&b);
}

/* PVE::Tools::assert_if_modified against a list's digest; false with the
 * failure set. */
bool
pl_sim_fw_digest_ok(struct pl_sim_req *r, const json_t *list)
{
	const char *want = pl_sim_p(r, "digest");
	char cur[41];

	if (!want)
		return true;
	pl_sim_fw_list_digest(list, cur);
	if (!strcmp(want, cur))
		return true;
	pl_sim_fail(r, 500,
		    "detected modified configuration - file changed by other user? Try again.");
	return false;
}

/* The list typed as the path's create method declares its values, each entry
 * with the list's digest. */
json_t *
pl_sim_fw_list_out(struct pl_sim_req *r, const json_t *list, const char *tmpl_path, bool pos)
{
	struct pl_sim_path *p = pl_sim_schema_find(r->sim->schema, tmpl_path);
	const struct pl_sim_method *m = p ? p->methods[PL_SIM_POST] : NULL;
	json_t *a = json_array();
	char digest[41];
	size_t i;
	json_t *e;

	pl_sim_fw_list_digest(list, digest);
	json_array_foreach(list, i, e) {
		json_t *o = pl_sim_typed(m, e);

		if (pos)
			json_object_set_new(o, "pos", json_integer((json_int_t)i));
		if (pl_json_str(e, "ipversion"))
			json_object_set_new(o, "ipversion",
					    json_integer(pl_json_int(e, "ipversion", 0)));
		json_object_set_new(o, "digest", json_string(digest));
		json_array_append_new(a, o);
	}
	return a;
}

json_t *
pl_sim_fw_alias_new(const char *name, const char *cidr, const char *comment)
{
	json_t *a = json_pack("{s:s,s:s,s:s}", "name", name, "cidr", cidr, "ipversion",
			      pl_sim_fw_ipver(cidr) == 6 ? "6" : "4");

	if (comment)
		json_object_set_new(a, "comment", json_string(comment));
	return a;
}

void
pl_sim_fw_alias_set(json_t *file, const char *name, json_t *alias)
{
	char *key = pl_strdup(name);

	pl_sim_fw_lower(key);
	if (alias)
		json_object_set_new(pl_sim_fw_sub(file, "aliases"), key, alias);
	else
		json_object_del(pl_sim_fw_sub(file, "aliases"), key);
	free(key);
}

void
pl_sim_fw_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* --- rules --- */

/* The rules list of a request (a file's or a security group's); NULL with the
 * failure set. */
static json_t *
req_rules(struct pl_sim_req *r, json_t **file, const char **env)
{
	const char *group = pl_sim_p(r, "group");
	json_t *g;

	if ((*file = pl_sim_fw_file(r, env)) == NULL)
		return NULL;
	if (!(r->op & FW_GROUP))
		return pl_sim_fw_subarr(*file, "rules");
	if ((g = json_object_get(json_object_get(*file, "groups"), group)) == NULL) {
		pl_sim_fail(r, 500, "no such security group '%s'", group ? group : "");
		return NULL;
	}
	return pl_sim_fw_subarr(g, "rules");
}

static void
h_rules(struct pl_sim_req *r)
{
	json_t *file, *rules;
	const char *env;

	if ((rules = req_rules(r, &file, &env)) != NULL)
		pl_sim_ok(r, pl_sim_fw_list_out(r, rules, "/cluster/firewall/rules", true));
}

/* The rule at the pos parameter; NULL with "no rule at position" set. */
static json_t *
rule_at(struct pl_sim_req *r, json_t *rules, long long *pos)
{
	*pos = pl_sim_pint(r, "pos", 0);
	if (*pos < 0 || (size_t)*pos >= json_array_size(rules)) {
		pl_sim_fail(r, 500, "no rule at position %s",
			    pl_sim_p(r, "pos") ? pl_sim_p(r, "pos") : "");
		return NULL;
	}
	return json_array_get(rules, (size_t)*pos);
}

static void
h_rule_get(struct pl_sim_req *r)
{
	json_t *file, *rules, *rule, *list;
	const char *env;
	long long pos;

	if ((rules = req_rules(r, &file, &env)) == NULL || (rule = rule_at(r, rules, &pos)) == NULL)
		return;
	list = pl_sim_fw_list_out(r, rules, "/cluster/firewall/rules", true);
	pl_sim_ok(r, json_incref(json_array_get(list, (size_t)pos)));
	json_decref(list);
}

static void
h_rule_create(struct pl_sim_req *r)
{
	json_t *file, *rules, *rule;
	const char *env;

	if ((rules = req_rules(r, &file, &env)) == NULL)
		return;
	rule = json_object();
	pl_sim_fw_copy_rule(r, rule);
	if (!pl_sim_fw_verify_rule(r, file, env, rule)) {
		json_decref(rule);
		return;
	}
	if (!pl_sim_p(r, "enable"))
		json_object_set_new(rule, "enable", json_string("0"));
	/* register_create_rule: unshift, whatever pos says */
	json_array_insert_new(rules, 0, rule);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_rule_update(struct pl_sim_req *r)
{
	json_t *file, *rules, *rule;
	const char *env, *del = pl_sim_p(r, "delete");
	long long pos, moveto = pl_sim_pint(r, "moveto", -1);

	if ((rules = req_rules(r, &file, &env)) == NULL || !pl_sim_fw_digest_ok(r, rules) ||
	    (rule = rule_at(r, rules, &pos)) == NULL)
		return;
	if (pl_sim_p(r, "moveto") && moveto != pos) {
		/* register_update_rule: the rule goes before the one now at moveto,
		 * or to the end */
		json_incref(rule);
		json_array_remove(rules, (size_t)pos);
		if ((size_t)moveto >= json_array_size(rules) + 1)
			json_array_append_new(rules, rule);
		else
			json_array_insert_new(rules, (size_t)(moveto > pos ? moveto - 1 : moveto),
					      rule);
	} else {
		json_t *upd = json_deep_copy(rule);

		pl_sim_fw_copy_rule(r, upd);
		if (del) {
			char *dup = pl_strdup(del), *save = NULL, *tok;

			for (tok = strtok_r(dup, ",; ", &save); tok;
			     tok = strtok_r(NULL, ",; ", &save)) {
				bool known = pl_sim_fw_is_rule_key(tok);

				if (!known || !strcmp(tok, "type") || !strcmp(tok, "action")) {
					if (!known)
						pl_sim_param_fail(r, "delete",
								  "no such property ('%s')", tok);
					else
						pl_sim_param_fail(
							r, "delete",
							"unable to delete required property '%s'",
							tok);
					free(dup);
					json_decref(upd);
					return;
				}
				json_object_del(upd, tok);
			}
			free(dup);
		}
		json_object_del(upd, "ipversion");
		if (!pl_sim_fw_verify_rule(r, file, env, upd)) {
			json_decref(upd);
			return;
		}
		json_array_set_new(rules, (size_t)pos, upd);
	}
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_rule_delete(struct pl_sim_req *r)
{
	json_t *file, *rules;
	const char *env;
	long long pos;

	if ((rules = req_rules(r, &file, &env)) == NULL || !pl_sim_fw_digest_ok(r, rules) ||
	    !rule_at(r, rules, &pos))
		return;
	json_array_remove(rules, (size_t)pos);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* --- options --- */

static const struct pl_sim_method *
put_method(struct pl_sim_req *r)
{
	struct pl_sim_path *p = pl_sim_schema_find(r->sim->schema, r->m->path);

	return p ? p->methods[PL_SIM_PUT] : NULL;
}

/* PVE::Firewall::copy_opject_with_digest's digest. */
static void
obj_digest(const json_t *o, char out[41])
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
	entry_lines(&b, o);
	pl_sim_sha1_hex(b.data ? b.data : "", b.len, out);
	pl_buf_release(&b);
}

static void
h_options_get(struct pl_sim_req *r)
{
	const char *env;
	json_t *file = pl_sim_fw_file(r, &env), *o;
	char digest[41];

	if (!file)
		return;
	o = pl_sim_typed(put_method(r), pl_sim_fw_sub(file, "options"));
	obj_digest(pl_sim_fw_sub(file, "options"), digest);
	json_object_set_new(o, "digest", json_string(digest));
	pl_sim_ok(r, o);
}

static void
h_options_put(struct pl_sim_req *r)
{
	const struct pl_sim_method *m = r->m;
	const char *env, *del = pl_sim_p(r, "delete"), *want = pl_sim_p(r, "digest");
	json_t *file = pl_sim_fw_file(r, &env), *opts;
	const char *k;
	json_t *v;
	char cur[41];

	if (!file)
		return;
	opts = pl_sim_fw_sub(file, "options");
	obj_digest(opts, cur);
	if (want && strcmp(want, cur)) {
		pl_sim_fail(
			r, 500,
			"detected modified configuration - file changed by other user? Try again.");
		return;
	}
	if (del) {
		char *dup = pl_strdup(del), *save = NULL, *tok;

		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save)) {
			if (!pl_sim_param_find(m, tok) || !strcmp(tok, "digest") ||
			    !strcmp(tok, "delete") || !strcmp(tok, "node") ||
			    !strcmp(tok, "vmid")) {
				pl_sim_param_fail(r, "delete", "no such option '%s'", tok);
				free(dup);
				return;
			}
		}
		free(dup);
		dup = pl_strdup(del);
		for (tok = strtok_r(dup, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save))
			json_object_del(opts, tok);
		free(dup);
	}
	json_object_foreach(r->params, k, v) {
		if (!strcmp(k, "digest") || !strcmp(k, "delete") || !strcmp(k, "node") ||
		    !strcmp(k, "vmid"))
			continue;
		json_object_set(opts, k, v);
	}
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* --- macros and indexes --- */

static void
h_macros(struct pl_sim_req *r)
{
	pl_sim_ok(r, pl_sim_fw_macro_list());
}

static void
h_index(struct pl_sim_req *r)
{
	static const char *const cluster[] = { "aliases", "rules",  "options", "groups",
					       "ipset",   "macros", "refs" };
	static const char *const node[] = { "rules", "options", "log" };
	static const char *const guest[] = {
		"rules", "aliases", "ipset", "refs", "options", "log"
	};
	const char *const *kids = cluster;
	size_t n = PL_ARRAY_LEN(cluster);
	const char *env;
	json_t *a;

	if ((r->op & 3) != FW_CLUSTER && !pl_sim_fw_file(r, &env))
		return;
	if ((r->op & 3) == FW_NODE) {
		kids = node;
		n = PL_ARRAY_LEN(node);
	} else if ((r->op & 3) == FW_GUEST) {
		kids = guest;
		n = PL_ARRAY_LEN(guest);
	}
	a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s}", "name", kids[i]));
	pl_sim_ok(r, a);
}

void
pl_sim_fw_forget(struct pl_sim *s, uint32_t vmid)
{
	char key[16];

	snprintf(key, sizeof(key), "%u", vmid);
	if (s->fw)
		json_object_del(pl_sim_fw_sub(s->fw, "guests"), key);
}

/* --- seeds and state --- */

/* A seeded file: options and aliases as text, rules as text values (enable
 * defaulting to 1, as a rule line without '|' reads), IP sets' entries. */
static int
seed_file(const json_t *in, json_t *out, const char *what, char **errmsg)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(json_object_get(in, "options"), k, v) {
		char *txt = pl_api_value_text(v);

		if (txt)
			json_object_set_new(pl_sim_fw_sub(out, "options"), k, json_string(txt));
		free(txt);
	}
	json_array_foreach(json_object_get(in, "rules"), i, v) {
		json_t *rule = json_object();
		const char *rk;
		json_t *rv;

		json_object_foreach(v, rk, rv) {
			char *txt = pl_api_value_text(rv);

			if (txt)
				json_object_set_new(rule, rk, json_string(txt));
			free(txt);
		}
		if (!pl_json_str(rule, "type") || !pl_json_str(rule, "action")) {
			json_decref(rule);
			return pl_seterr(errmsg, PL_EINVAL,
					 "seed: firewall %s: rules[%zu] needs 'type' and 'action'",
					 what, i);
		}
		if (!json_object_get(rule, "enable"))
			json_object_set_new(rule, "enable", json_string("1"));
		json_array_append_new(pl_sim_fw_subarr(out, "rules"), rule);
	}
	json_object_foreach(json_object_get(in, "ipset"), k, v) {
		json_t *set = json_pack("{s:[]}", "entries"), *e;

		if (pl_json_str(v, "comment"))
			json_object_set_new(set, "comment", json_string(pl_json_str(v, "comment")));
		json_array_foreach(json_object_get(v, "entries"), i, e) {
			const char *cidr =
				json_is_string(e) ? json_string_value(e) : pl_json_str(e, "cidr");

			if (!cidr)
				continue;
			if (json_is_string(e))
				json_array_append_new(json_object_get(set, "entries"),
						      json_pack("{s:s}", "cidr", cidr));
			else
				json_array_append_new(json_object_get(set, "entries"),
						      json_deep_copy(e));
		}
		json_object_set_new(pl_sim_fw_sub(out, "ipset"), k, set);
	}
	json_object_foreach(json_object_get(in, "aliases"), k, v) {
		const char *cidr =
			json_is_string(v) ? json_string_value(v) : pl_json_str(v, "cidr");
		int ver = cidr ? pl_sim_fw_ipver(cidr) : 0;
		json_t *a;

		if (!ver)
			return pl_seterr(errmsg, PL_EINVAL,
					 "seed: firewall %s: alias '%s' needs an IP or CIDR", what,
					 k);
		a = pl_sim_fw_alias_new(pl_json_str_or(v, "name", k), cidr,
					pl_json_str(v, "comment"));
		pl_sim_fw_alias_set(out, k, a);
	}
	return 0;
}

int
pl_sim_fw_seed(struct pl_sim *s, const json_t *fw, char **errmsg)
{
	const char *k;
	json_t *v;
	int r;

	if (!fw)
		return 0;
	if (!json_is_object(fw))
		return pl_seterr(errmsg, PL_EINVAL, "seed: 'firewall' must be a mapping");
	if ((r = seed_file(fw, pl_sim_fw_cluster(s), "cluster", errmsg)) != 0)
		return r;
	json_object_foreach(json_object_get(fw, "groups"), k, v) {
		json_t *g = json_pack("{s:[]}", "rules");

		json_object_set_new(pl_sim_fw_sub(pl_sim_fw_cluster(s), "groups"), k, g);
		if (pl_json_str(v, "comment"))
			json_object_set_new(g, "comment", json_string(pl_json_str(v, "comment")));
		if ((r = seed_file(v, g, k, errmsg)) != 0)
			return r;
	}
	json_object_foreach(json_object_get(fw, "nodes"), k, v) {
		if (pl_sim_node_index(s, k) < 0)
			return pl_seterr(errmsg, PL_ENOENT, "seed: firewall: unknown node '%s'", k);
		if ((r = seed_file(v, pl_sim_fw_sub(pl_sim_fw_sub(fw_root(s), "nodes"), k), k,
				   errmsg)) != 0)
			return r;
	}
	json_object_foreach(json_object_get(fw, "guests"), k, v) {
		if (!pl_sim_guest_find(s, (uint32_t)strtoul(k, NULL, 10)))
			return pl_seterr(errmsg, PL_ENOENT, "seed: firewall: no guest %s", k);
		if ((r = seed_file(v, pl_sim_fw_sub(pl_sim_fw_sub(fw_root(s), "guests"), k), k,
				   errmsg)) != 0)
			return r;
	}
	return 0;
}

json_t *
pl_sim_fw_dump(struct pl_sim *s)
{
	json_t *out = json_deep_copy(pl_sim_fw_cluster(s));
	json_t *groups = json_object_get(out, "groups");

	if (groups) {
		json_incref(groups);
		json_object_del(out, "groups");
		json_object_set_new(out, "groups", groups);
	}
	json_object_set(out, "nodes", pl_sim_fw_sub(fw_root(s), "nodes"));
	json_object_set(out, "guests", pl_sim_fw_sub(fw_root(s), "guests"));
	return out;
}

#define C "/cluster/firewall"
#define N "/nodes/{node}/firewall"
#define Q "/nodes/{node}/qemu/{vmid}/firewall"
#define L "/nodes/{node}/lxc/{vmid}/firewall"

const struct pl_sim_route_def pl_sim_firewall_routes[] = {
	{ PL_SIM_GET, C, h_index, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/options", h_options_get, false, FW_CLUSTER },
	{ PL_SIM_PUT, C "/options", h_options_put, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/macros", h_macros, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/rules", h_rules, false, FW_CLUSTER },
	{ PL_SIM_POST, C "/rules", h_rule_create, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/rules/{pos}", h_rule_get, false, FW_CLUSTER },
	{ PL_SIM_PUT, C "/rules/{pos}", h_rule_update, false, FW_CLUSTER },
	{ PL_SIM_DELETE, C "/rules/{pos}", h_rule_delete, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/groups/{group}", h_rules, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_POST, C "/groups/{group}", h_rule_create, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_GET, C "/groups/{group}/{pos}", h_rule_get, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_PUT, C "/groups/{group}/{pos}", h_rule_update, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_DELETE, C "/groups/{group}/{pos}", h_rule_delete, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_GET, N, h_index, false, FW_NODE },
	{ PL_SIM_GET, N "/options", h_options_get, false, FW_NODE },
	{ PL_SIM_PUT, N "/options", h_options_put, false, FW_NODE },
	{ PL_SIM_GET, N "/rules", h_rules, false, FW_NODE },
	{ PL_SIM_POST, N "/rules", h_rule_create, false, FW_NODE },
	{ PL_SIM_GET, N "/rules/{pos}", h_rule_get, false, FW_NODE },
	{ PL_SIM_PUT, N "/rules/{pos}", h_rule_update, false, FW_NODE },
	{ PL_SIM_DELETE, N "/rules/{pos}", h_rule_delete, false, FW_NODE },
	{ PL_SIM_GET, Q, h_index, false, FW_GUEST },
	{ PL_SIM_GET, Q "/options", h_options_get, false, FW_GUEST },
	{ PL_SIM_PUT, Q "/options", h_options_put, false, FW_GUEST },
	{ PL_SIM_GET, Q "/rules", h_rules, false, FW_GUEST },
	{ PL_SIM_POST, Q "/rules", h_rule_create, false, FW_GUEST },
	{ PL_SIM_GET, Q "/rules/{pos}", h_rule_get, false, FW_GUEST },
	{ PL_SIM_PUT, Q "/rules/{pos}", h_rule_update, false, FW_GUEST },
	{ PL_SIM_DELETE, Q "/rules/{pos}", h_rule_delete, false, FW_GUEST },
	{ PL_SIM_GET, L, h_index, true, FW_GUEST },
	{ PL_SIM_GET, L "/options", h_options_get, true, FW_GUEST },
	{ PL_SIM_PUT, L "/options", h_options_put, true, FW_GUEST },
	{ PL_SIM_GET, L "/rules", h_rules, true, FW_GUEST },
	{ PL_SIM_POST, L "/rules", h_rule_create, true, FW_GUEST },
	{ PL_SIM_GET, L "/rules/{pos}", h_rule_get, true, FW_GUEST },
	{ PL_SIM_PUT, L "/rules/{pos}", h_rule_update, true, FW_GUEST },
	{ PL_SIM_DELETE, L "/rules/{pos}", h_rule_delete, true, FW_GUEST },
	{ 0, NULL, NULL, false, 0 },
};
