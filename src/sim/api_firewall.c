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
#include "sim/internal.h"

/* Route operations: the scope of the config file, and whether the rules are
 * a security group's. */
enum { FW_CLUSTER = 0, FW_NODE = 1, FW_GUEST = 2, FW_GROUP = 4 };

static const struct {
	const char *name, *descr;
} macros[] = {
#include "sim/fw_macros.inc"
};

static const char *const rule_keys[] = { "type",  "action",  "macro",    "iface", "source",
					 "dest",  "proto",   "enable",   "log",   "sport",
					 "dport", "comment", "icmp-type" };

/* --- the config files --- */

static json_t *
sub_obj(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		v = json_object();
		json_object_set_new(o, key, v);
	}
	return v;
}

static json_t *
sub_arr(json_t *o, const char *key)
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

static json_t *
cluster_file(struct pl_sim *s)
{
	return sub_obj(fw_root(s), "cluster");
}

/* The file a request is about (cluster.fw, host.fw, <vmid>.fw) and the rule
 * environment of its rules; NULL with the failure set. */
static json_t *
req_file(struct pl_sim_req *r, const char **env)
{
	struct pl_sim *s = r->sim;
	int scope = r->op & 3;
	char key[32];

	if (scope == FW_CLUSTER) {
		*env = (r->op & FW_GROUP) ? "group" : "cluster";
		return cluster_file(s);
	}
	if (scope == FW_NODE) {
		int n = pl_sim_req_node(r);

		if (n < 0)
			return NULL;
		*env = "host";
		return sub_obj(sub_obj(fw_root(s), "nodes"), s->nodes[n].name);
	} else {
		struct pl_sim_guest *g = pl_sim_req_guest(r, r->lxc);

		if (!g)
			return NULL;
		*env = g->lxc ? "ct" : "vm";
		snprintf(key, sizeof(key), "%u", g->vmid);
		return sub_obj(sub_obj(fw_root(s), "guests"), key);
	}
}

/* A plain error as PVE's config lock wraps it (PVE::Cluster::cfs_lock for the
 * cluster-wide files; host.fw has a local lock that does not). */
static void lock_fail(struct pl_sim_req *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
lock_fail(struct pl_sim_req *r, const char *fmt, ...)
{
	char msg[512];
	int scope = r->op & 3;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (scope == FW_CLUSTER)
		pl_sim_fail(r, 500, "cfs-lock 'firewall-cluster' error: %s", msg);
	else if (scope == FW_GUEST)
		pl_sim_fail(r, 500, "cfs-lock 'firewall-vm-%s' error: %s",
			    pl_sim_p(r, "vmid") ? pl_sim_p(r, "vmid") : "", msg);
	else
		pl_sim_fail(r, 500, "%s", msg);
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
static void
list_digest(const json_t *list, char out[41])
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
static bool
digest_ok(struct pl_sim_req *r, const json_t *list)
{
	const char *want = pl_sim_p(r, "digest");
	char cur[41];

	if (!want)
		return true;
	list_digest(list, cur);
	if (!strcmp(want, cur))
		return true;
	lock_fail(r, "%s",
		  "detected modified configuration - file changed by other user? Try again.");
	return false;
}

/* The list typed as the path's create method declares its values, each entry
 * with the list's digest. */
static json_t *
list_out(struct pl_sim_req *r, const json_t *list, const char *tmpl_path, bool pos)
{
	struct pl_sim_path *p = pl_sim_schema_find(r->sim->schema, tmpl_path);
	const struct pl_sim_method *m = p ? p->methods[PL_SIM_POST] : NULL;
	json_t *a = json_array();
	char digest[41];
	size_t i;
	json_t *e;

	list_digest(list, digest);
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

/* --- addresses, ports, protocols (PVE::Firewall's parsers) --- */

/* 4 or 6 for an address, CIDR or range; 0 when invalid. */
static int
ip_version(const char *txt)
{
	char buf[128];
	const char *slash = strchr(txt, '/'), *dash = strchr(txt, '-');
	unsigned char addr[16];
	size_t n = slash ? (size_t)(slash - txt) : dash ? (size_t)(dash - txt) : strlen(txt);
	int v;

	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, txt, n);
	buf[n] = 0;
	v = inet_pton(AF_INET, buf, addr) == 1 ? 4 : inet_pton(AF_INET6, buf, addr) == 1 ? 6 : 0;
	if (v && slash) {
		long long pl;

		if (pl_str_to_ll(slash + 1, 0, v == 4 ? 32 : 128, &pl) != 0)
			return 0;
	} else if (v && dash) {
		if (ip_version(dash + 1) != v)
			return 0;
	}
	return v;
}

static bool
is_alias_name(const char *s)
{
	if (!isalpha((unsigned char)*s))
		return false;
	for (s++; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

/* An alias by name (case-insensitive, as PVE keys them lower-case). */
static json_t *
alias_find(json_t *file, const char *name)
{
	char low[128];
	size_t i;

	for (i = 0; name[i] && i + 1 < sizeof(low); i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[i] = 0;
	return json_object_get(json_object_get(file, "aliases"), low);
}

/* A rule's source/dest: an IP set (+name), an alias or an address list. The
 * error (caller frees) or NULL; *ver gets the addresses' IP version. */
static char *
check_addr(struct pl_sim *s, json_t *file, const char *v, int *ver)
{
	const char *name = v;

	if (*v == '+') {
		name = v + 1;
		if (!strncmp(name, "guest/", 6) || !strncmp(name, "dc/", 3))
			name = strchr(name, '/') + 1;
		if (!is_alias_name(name))
			return pl_asprintf("invalid ipset name '%s'", v);
		if (!json_object_get(json_object_get(cluster_file(s), "ipset"), name) &&
		    !json_object_get(json_object_get(file, "ipset"), name))
			return pl_asprintf("no such ipset '%s'", name);
		return NULL;
	}
	if (!strncmp(name, "guest/", 6) || !strncmp(name, "dc/", 3))
		name = strchr(name, '/') + 1;
	if (is_alias_name(name)) {
		json_t *a = alias_find(file, name);

		if (!a)
			a = alias_find(cluster_file(s), name);
		if (!a)
			return pl_asprintf("no such alias '%s'", v);
		*ver = (int)pl_json_int(a, "ipversion", 0);
		return NULL;
	}
	{
		char *dup = pl_strdup(v), *save = NULL, *tok, *err = NULL;
		int n = 0;

		if (strstr(v, ",,") || *v == ',' || v[strlen(v) - 1] == ',')
			err = pl_strdup("extraneous commas in list");
		for (tok = strtok_r(dup, ",", &save); tok && !err;
		     tok = strtok_r(NULL, ",", &save), n++) {
			int tv = ip_version(tok);

			if (!tv)
				err = pl_asprintf("invalid IP address: '%s'", tok);
			else if (*ver && tv != *ver)
				err = pl_asprintf("detected mixed ipv4/ipv6 addresses in address "
						  "list '%s'",
						  v);
			else if (strchr(tok, '-') && strchr(v, ','))
				err = pl_strdup("you can't use a range in a list");
			*ver = tv;
		}
		free(dup);
		return err;
	}
}

/* parse_port_name_number_or_range: NULL or the error (caller frees). */
static char *
check_ports(const char *str)
{
	char *dup = pl_strdup(str), *save = NULL, *tok, *err = NULL;
	int count = 0;

	if (!*str || strstr(str, ",,") || *str == ',' || str[strlen(str) - 1] == ',')
		err = pl_strdup("extraneous commas in list");
	for (tok = strtok_r(dup, ",", &save); tok && !err; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		long long a, b;

		if (colon && isdigit((unsigned char)*tok)) {
			*colon = 0;
			count += 2;
			if (pl_str_to_ll(tok, 0, LLONG_MAX, &a) || a > 65535)
				err = pl_asprintf("invalid port '%s'", tok);
			else if (pl_str_to_ll(colon + 1, 0, LLONG_MAX, &b) || b > 65535)
				err = pl_asprintf("invalid port '%s'", colon + 1);
			else if (a > b)
				err = pl_asprintf(
					"backwards range '%lld:%lld' not allowed, did you "
					"mean '%lld:%lld'?",
					a, b, b, a);
		} else if (isdigit((unsigned char)*tok)) {
			count++;
			if (pl_str_to_ll(tok, 0, LLONG_MAX, &a) || a > 65535)
				err = pl_asprintf("invalid port '%s'", tok);
		} else if (!getservbyname(tok, NULL)) { /* /etc/services, as PVE reads it */
			err = pl_asprintf("invalid port '%s'", tok);
		}
	}
	if (!err && count > 15)
		err = pl_strdup("too many entries in port list (> 15 numbers)");
	free(dup);
	return err;
}

static bool
proto_known(const char *p)
{
	long long n;

	if (pl_str_to_ll(p, 0, 255, &n) == 0)
		return true;
	return getprotobyname(p) != NULL || !strcmp(p, "icmpv6");
}

static bool
proto_has_ports(const char *p)
{
	static const char *const with[] = { "udp", "17",   "udplite", "136",  "tcp",
					    "6",   "dccp", "33",      "sctp", "132" };

	for (size_t i = 0; i < PL_ARRAY_LEN(with); i++)
		if (!strcmp(p, with[i]))
			return true;
	return false;
}

static bool
proto_is_icmp(const char *p)
{
	return p && (!strcmp(p, "icmp") || !strcmp(p, "icmpv6") || !strcmp(p, "ipv6-icmp") ||
		     !strcmp(p, "1") || !strcmp(p, "58"));
}

/* PVE::Firewall::verify_rule: the first error as a 400 (raise_param_exc);
 * false then. Normalises the macro's name and sets ipversion. */
static bool
verify_rule(struct pl_sim_req *r, json_t *file, const char *env, json_t *rule)
{
	const char *type = pl_json_str(rule, "type"), *action = pl_json_str(rule, "action");
	const char *iface = pl_json_str(rule, "iface"), *macro = pl_json_str(rule, "macro");
	const char *proto = pl_json_str(rule, "proto");
	bool is_vm = !strcmp(env, "vm") || !strcmp(env, "ct");
	int ver = 0;
	char *err;

	if (!type) {
		pl_sim_param_fail(r, "type", "missing property");
		return false;
	}
	if (!action) {
		pl_sim_param_fail(r, "action", "missing property");
		return false;
	}
	/* $rule_env_direction_lookup */
	if ((is_vm && !strcmp(type, "forward")) ||
	    (!strcmp(env, "group") && !strcmp(type, "group"))) {
		pl_sim_param_fail(r, "type", "invalid rule type '%s' for rule_env '%s'", type, env);
		return false;
	}
	if (!strcmp(type, "in") || !strcmp(type, "out") || !strcmp(type, "forward")) {
		if (!strcmp(type, "forward") && !strcmp(action, "REJECT")) {
			pl_sim_param_fail(r, "action",
					  "cannot define REJECT rules on forward chain");
			return false;
		}
		if (strcmp(action, "ACCEPT") && strcmp(action, "DROP") &&
		    strcmp(action, "REJECT")) {
			pl_sim_param_fail(r, "action", "unknown action '%s'", action);
			return false;
		}
	} else if (!strcmp(type, "group")) {
		if (!is_alias_name(action)) {
			pl_sim_param_fail(r, "action", "invalid characters in security group name");
			return false;
		}
	}
	if (iface) {
		if (!strcmp(env, "group")) {
			pl_sim_param_fail(r, "type", "parameter -i not allowed for this rule type");
			return false;
		}
		if (is_vm && (strncmp(iface, "net", 3) || !iface[3] ||
			      strspn(iface + 3, "0123456789") != strlen(iface + 3))) {
			pl_sim_param_fail(r, "iface",
					  "value does not match the regex pattern 'net\\d+'");
			return false;
		}
	}
	if (macro) {
		const char *found = NULL;

		for (size_t i = 0; i < PL_ARRAY_LEN(macros) && !found; i++)
			if (!strcasecmp(macros[i].name, macro))
				found = macros[i].name;
		if (!found) {
			pl_sim_param_fail(r, "macro", "unknown macro '%s'", macro);
			return false;
		}
		json_object_set_new(rule, "macro", json_string(found));
	}
	if (proto) {
		if (!proto_known(proto)) {
			pl_sim_param_fail(r, "proto", "unknown protocol '%s'", proto);
			return false;
		}
		if (!strcmp(proto, "icmp"))
			ver = 4;
		else if (!strcmp(proto, "icmpv6") || !strcmp(proto, "ipv6-icmp"))
			ver = 6;
	}
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "sport" : "dport", *v = pl_json_str(rule, key);

		if (!v)
			continue;
		if ((err = check_ports(v)) != NULL) {
			pl_sim_param_fail(r, key, "%s", err);
			free(err);
			return false;
		}
		if (!proto) {
			pl_sim_param_fail(r, "proto",
					  "missing property - '%s' requires this property", key);
			return false;
		}
		if (!proto_has_ports(proto) && !(i == 0 && proto_is_icmp(proto))) {
			pl_sim_param_fail(r, key, "protocol '%s' does not support ports", proto);
			return false;
		}
	}
	if (pl_json_str(rule, "icmp-type") && !proto_is_icmp(proto)) {
		pl_sim_param_fail(r, "proto",
				  "missing property - 'icmp-type' requires this property");
		return false;
	}
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "dest" : "source", *v = pl_json_str(rule, key);
		int av = 0;

		if (!v)
			continue;
		if ((err = check_addr(r->sim, file, v, &av)) != NULL) {
			pl_sim_param_fail(r, key, "%s", err);
			free(err);
			return false;
		}
		if (av && ver && av != ver) {
			lock_fail(r, "%s", "detected mixed ipv4/ipv6 addresses in rule");
			return false;
		}
		if (av)
			ver = av;
	}
	if (ver)
		json_object_set_new(rule, "ipversion", json_sprintf("%d", ver));
	return true;
}

/* PVE::Firewall::copy_rule_data: the request's rule values ('' and '-'
 * delete one). */
static void
copy_rule_data(const struct pl_sim_req *r, json_t *rule)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(rule_keys); i++) {
		const char *v = pl_sim_p(r, rule_keys[i]);

		if (!v)
			continue;
		if (!*v || !strcmp(v, "-"))
			json_object_del(rule, rule_keys[i]);
		else
			json_object_set_new(rule, rule_keys[i], json_string(v));
	}
}

/* --- rules --- */

/* The rules list of a request (a file's or a security group's); NULL with the
 * failure set. */
static json_t *
req_rules(struct pl_sim_req *r, json_t **file, const char **env)
{
	const char *group = pl_sim_p(r, "group");
	json_t *g;

	if ((*file = req_file(r, env)) == NULL)
		return NULL;
	if (!(r->op & FW_GROUP))
		return sub_arr(*file, "rules");
	if ((g = json_object_get(json_object_get(*file, "groups"), group)) == NULL) {
		pl_sim_fail(r, 500, "no such security group '%s'", group ? group : "");
		return NULL;
	}
	return sub_arr(g, "rules");
}

static void
h_rules(struct pl_sim_req *r)
{
	json_t *file, *rules;
	const char *env;

	if ((rules = req_rules(r, &file, &env)) != NULL)
		pl_sim_ok(r, list_out(r, rules, "/cluster/firewall/rules", true));
}

/* The rule at the pos parameter; NULL with "no rule at position" set (as
 * the config lock wraps it when locked). */
static json_t *
rule_at(struct pl_sim_req *r, json_t *rules, long long *pos, bool locked)
{
	const char *txt = pl_sim_p(r, "pos") ? pl_sim_p(r, "pos") : "";

	*pos = pl_sim_pint(r, "pos", 0);
	if (*pos < 0 || (size_t)*pos >= json_array_size(rules)) {
		if (locked)
			lock_fail(r, "no rule at position %s", txt);
		else
			pl_sim_fail(r, 500, "no rule at position %s", txt);
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

	if ((rules = req_rules(r, &file, &env)) == NULL ||
	    (rule = rule_at(r, rules, &pos, false)) == NULL)
		return;
	list = list_out(r, rules, "/cluster/firewall/rules", true);
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
	copy_rule_data(r, rule);
	if (!verify_rule(r, file, env, rule)) {
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

	if ((rules = req_rules(r, &file, &env)) == NULL || !digest_ok(r, rules) ||
	    (rule = rule_at(r, rules, &pos, true)) == NULL)
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

		copy_rule_data(r, upd);
		if (del) {
			char *dup = pl_strdup(del), *save = NULL, *tok;

			for (tok = strtok_r(dup, ",; ", &save); tok;
			     tok = strtok_r(NULL, ",; ", &save)) {
				bool known = false;

				for (size_t i = 0; i < PL_ARRAY_LEN(rule_keys); i++)
					known |= !strcmp(rule_keys[i], tok);
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
		if (!verify_rule(r, file, env, upd)) {
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

	if ((rules = req_rules(r, &file, &env)) == NULL || !digest_ok(r, rules) ||
	    !rule_at(r, rules, &pos, true))
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
	json_t *file = req_file(r, &env), *o;
	char digest[41];

	if (!file)
		return;
	o = pl_sim_typed(put_method(r), sub_obj(file, "options"));
	obj_digest(sub_obj(file, "options"), digest);
	json_object_set_new(o, "digest", json_string(digest));
	pl_sim_ok(r, o);
}

static void
h_options_put(struct pl_sim_req *r)
{
	const struct pl_sim_method *m = r->m;
	const char *env, *del = pl_sim_p(r, "delete"), *want = pl_sim_p(r, "digest");
	json_t *file = req_file(r, &env), *opts;
	const char *k;
	json_t *v;
	char cur[41];

	if (!file)
		return;
	opts = sub_obj(file, "options");
	obj_digest(opts, cur);
	if (want && strcmp(want, cur)) {
		lock_fail(
			r, "%s",
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

/* --- security groups --- */

/* The groups as a list of {group, comment} in name order. */
static json_t *
group_list(json_t *file)
{
	json_t *a = json_array();
	const char *k;
	json_t *g;

	json_object_foreach(sub_obj(file, "groups"), k, g) {
		json_t *o = json_pack("{s:s}", "group", k);

		if (pl_json_str(g, "comment"))
			json_object_set_new(o, "comment", json_string(pl_json_str(g, "comment")));
		json_array_append_new(a, o);
	}
	return a;
}

static void
h_groups(struct pl_sim_req *r)
{
	json_t *a = group_list(cluster_file(r->sim));

	pl_sim_ok(r, list_out(r, a, "/cluster/firewall/groups", false));
	json_decref(a);
}

static void
h_group_create(struct pl_sim_req *r)
{
	json_t *groups = sub_obj(cluster_file(r->sim), "groups"), *g;
	const char *name = pl_sim_p(r, "group"), *rename = pl_sim_p(r, "rename");
	const char *comment = pl_sim_p(r, "comment");

	if (rename) {
		json_t *list = group_list(cluster_file(r->sim));
		bool ok = digest_ok(r, list);

		json_decref(list);
		if (!ok)
			return;
		if ((g = json_object_get(groups, rename)) == NULL) {
			pl_sim_param_fail(r, "group", "Security group '%s' does not exist", rename);
			return;
		}
		if (strcmp(rename, name) && json_object_get(groups, name)) {
			pl_sim_param_fail(r, "group", "Security group '%s' does already exist",
					  name);
			return;
		}
		json_incref(g);
		json_object_del(groups, rename);
		json_object_set_new(groups, name, g);
	} else {
		if (json_object_get(groups, name)) {
			pl_sim_param_fail(r, "group", "Security group '%s' already exists", name);
			return;
		}
		g = json_pack("{s:[]}", "rules");
		json_object_set_new(groups, name, g);
	}
	if (comment)
		json_object_set_new(g, "comment", json_string(comment));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_group_delete(struct pl_sim_req *r)
{
	json_t *groups = sub_obj(cluster_file(r->sim), "groups");
	const char *name = pl_sim_p(r, "group");
	json_t *g = json_object_get(groups, name);

	if (!g) {
		lock_fail(r, "no such security group '%s'", name);
		return;
	}
	if (json_array_size(json_object_get(g, "rules"))) {
		lock_fail(r, "Security group '%s' is not empty", name);
		return;
	}
	json_object_del(groups, name);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* --- IP sets --- */

static json_t *
ipset_list(json_t *file)
{
	json_t *a = json_array();
	const char *k;
	json_t *s;

	json_object_foreach(sub_obj(file, "ipset"), k, s) {
		json_t *o = json_pack("{s:s}", "name", k);

		if (pl_json_str(s, "comment"))
			json_object_set_new(o, "comment", json_string(pl_json_str(s, "comment")));
		json_array_append_new(a, o);
	}
	return a;
}

static void
h_ipsets(struct pl_sim_req *r)
{
	const char *env;
	json_t *file = req_file(r, &env), *a;

	if (!file)
		return;
	a = ipset_list(file);
	pl_sim_ok(r, list_out(r, a, "/cluster/firewall/ipset", false));
	json_decref(a);
}

static void
h_ipset_create(struct pl_sim_req *r)
{
	const char *env, *name = pl_sim_p(r, "name"), *rename = pl_sim_p(r, "rename");
	const char *comment = pl_sim_p(r, "comment");
	json_t *file = req_file(r, &env), *sets, *set;

	if (!file)
		return;
	sets = sub_obj(file, "ipset");
	if (rename) {
		json_t *list = ipset_list(file);
		bool ok = digest_ok(r, list);

		json_decref(list);
		if (!ok)
			return;
		if ((set = json_object_get(sets, rename)) == NULL) {
			pl_sim_param_fail(r, "name", "IPSet '%s' does not exist", rename);
			return;
		}
		if (strcmp(rename, name) && json_object_get(sets, name)) {
			pl_sim_param_fail(r, "name", "IPSet '%s' does already exist", name);
			return;
		}
		json_incref(set);
		json_object_del(sets, rename);
		json_object_set_new(sets, name, set);
	} else {
		if (json_object_get(sets, name)) {
			pl_sim_param_fail(r, "name", "IPSet '%s' already exists", name);
			return;
		}
		set = json_pack("{s:[]}", "entries");
		json_object_set_new(sets, name, set);
	}
	if (comment)
		json_object_set_new(set, "comment", json_string(comment));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* The IP set of the name parameter; NULL with "no such IPSet" set. */
static json_t *
req_ipset(struct pl_sim_req *r, json_t **file)
{
	const char *env, *name = pl_sim_p(r, "name");
	json_t *set;

	if ((*file = req_file(r, &env)) == NULL)
		return NULL;
	if ((set = json_object_get(sub_obj(*file, "ipset"), name)) == NULL) {
		pl_sim_fail(r, 500, "no such IPSet '%s'", name ? name : "");
		return NULL;
	}
	return set;
}

static void
h_ipset_get(struct pl_sim_req *r)
{
	json_t *file, *set = req_ipset(r, &file);

	if (set)
		pl_sim_ok(r, list_out(r, sub_arr(set, "entries"), "/cluster/firewall/ipset/{name}",
				      false));
}

static void
h_ipset_delete(struct pl_sim_req *r)
{
	json_t *file, *set = req_ipset(r, &file);

	if (!set)
		return;
	if (json_array_size(json_object_get(set, "entries")) && !pl_sim_pbool(r, "force", false)) {
		lock_fail(r, "IPSet '%s' is not empty", pl_sim_p(r, "name"));
		return;
	}
	json_object_del(sub_obj(file, "ipset"), pl_sim_p(r, "name"));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* An entry of a set by CIDR, or NULL; *idx its position. */
static json_t *
entry_find(json_t *set, const char *cidr, size_t *idx)
{
	size_t i;
	json_t *e;

	json_array_foreach(sub_arr(set, "entries"), i, e) {
		if (!strcmp(pl_json_str_or(e, "cidr", ""), cidr)) {
			*idx = i;
			return e;
		}
	}
	return NULL;
}

static void
h_ipset_add(struct pl_sim_req *r)
{
	json_t *file, *set = req_ipset(r, &file), *e;
	const char *cidr = pl_sim_p(r, "cidr"), *slash;
	size_t idx;

	if (!set)
		return;
	if (!is_alias_name(cidr) && !ip_version(cidr)) {
		pl_sim_param_fail(r, "cidr", "invalid IP address: '%s'", cidr);
		return;
	}
	if (entry_find(set, cidr, &idx)) {
		pl_sim_param_fail(r, "cidr", "address '%s' already exists", cidr);
		return;
	}
	if ((slash = strchr(cidr, '/')) != NULL && !strcmp(slash, "/0")) {
		pl_sim_param_fail(r, "cidr", "a zero prefix is not allowed in ipset entries");
		return;
	}
	if (is_alias_name(cidr) && !alias_find(file, cidr) &&
	    !alias_find(cluster_file(r->sim), cidr)) {
		pl_sim_param_fail(r, "cidr", "no such alias '%s'", cidr);
		return;
	}
	e = json_pack("{s:s}", "cidr", cidr);
	if (pl_sim_p(r, "comment"))
		json_object_set_new(e, "comment", json_string(pl_sim_p(r, "comment")));
	if (pl_sim_pbool(r, "nomatch", false))
		json_object_set_new(e, "nomatch", json_string("1"));
	json_array_append_new(sub_arr(set, "entries"), e);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* The entry of the cidr parameter; NULL with PVE's 400 set. */
static json_t *
req_entry(struct pl_sim_req *r, json_t **set, size_t *idx)
{
	json_t *file, *e;

	if ((*set = req_ipset(r, &file)) == NULL)
		return NULL;
	if ((e = entry_find(*set, pl_sim_p(r, "cidr"), idx)) == NULL)
		pl_sim_param_fail(r, "cidr", "no such IP/Network");
	return e;
}

static void
h_entry_get(struct pl_sim_req *r)
{
	json_t *set, *e, *list;
	size_t idx;

	if ((e = req_entry(r, &set, &idx)) == NULL)
		return;
	list = list_out(r, sub_arr(set, "entries"), "/cluster/firewall/ipset/{name}", false);
	pl_sim_ok(r, json_incref(json_array_get(list, idx)));
	json_decref(list);
}

static void
h_entry_update(struct pl_sim_req *r)
{
	json_t *set, *e;
	size_t idx;

	if ((e = req_entry(r, &set, &idx)) == NULL ||
	    !digest_ok(r, json_object_get(set, "entries")))
		return;
	if (pl_sim_p(r, "comment"))
		json_object_set_new(e, "comment", json_string(pl_sim_p(r, "comment")));
	if (pl_sim_p(r, "nomatch")) {
		if (pl_sim_pbool(r, "nomatch", false))
			json_object_set_new(e, "nomatch", json_string("1"));
		else
			json_object_del(e, "nomatch");
	}
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_entry_delete(struct pl_sim_req *r)
{
	json_t *set, *e;
	size_t idx;

	if ((e = req_entry(r, &set, &idx)) == NULL ||
	    !digest_ok(r, json_object_get(set, "entries")))
		return;
	json_array_remove(json_object_get(set, "entries"), idx);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* --- aliases --- */

static json_t *
alias_list(json_t *file)
{
	json_t *a = json_array();
	const char *k;
	json_t *v;

	json_object_foreach(sub_obj(file, "aliases"), k, v)
		json_array_append(a, v);
	return a;
}

static void
h_aliases(struct pl_sim_req *r)
{
	const char *env;
	json_t *file = req_file(r, &env), *a;

	if (!file)
		return;
	a = alias_list(file);
	pl_sim_ok(r, list_out(r, a, "/cluster/firewall/aliases", false));
	json_decref(a);
}

static void
lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Set an alias (name as given, key lower-cased); false with the 400 set. */
static bool
alias_put(struct pl_sim_req *r, json_t *file, const char *name)
{
	const char *cidr = pl_sim_p(r, "cidr");
	int ver = cidr ? ip_version(cidr) : 0;
	json_t *a;
	char *key;

	if (!ver) {
		pl_sim_param_fail(r, "cidr", "invalid IP address: '%s'", cidr ? cidr : "");
		return false;
	}
	a = json_pack("{s:s,s:s,s:s}", "name", name, "cidr", cidr, "ipversion",
		      ver == 4 ? "4" : "6");
	if (pl_sim_p(r, "comment"))
		json_object_set_new(a, "comment", json_string(pl_sim_p(r, "comment")));
	key = pl_strdup(name);
	lower(key);
	json_object_set_new(sub_obj(file, "aliases"), key, a);
	free(key);
	return true;
}

static void
h_alias_create(struct pl_sim_req *r)
{
	const char *env, *name = pl_sim_p(r, "name");
	json_t *file = req_file(r, &env);

	if (!file)
		return;
	if (alias_find(file, name)) {
		pl_sim_param_fail(r, "name", "alias '%s' already exists", name);
		return;
	}
	if (alias_put(r, file, name)) {
		r->sim->dirty = true;
		pl_sim_ok(r, json_null());
	}
}

static json_t *
req_alias(struct pl_sim_req *r, json_t **file)
{
	const char *env;
	json_t *a;

	if ((*file = req_file(r, &env)) == NULL)
		return NULL;
	if ((a = alias_find(*file, pl_sim_p(r, "name"))) == NULL)
		pl_sim_param_fail(r, "name", "no such alias");
	return a;
}

static void
h_alias_get(struct pl_sim_req *r)
{
	json_t *file, *a = req_alias(r, &file), *list, *o;
	char digest[41];

	if (!a)
		return;
	list = alias_list(file);
	list_digest(list, digest);
	json_decref(list);
	o = pl_sim_typed(NULL, a);
	json_object_set_new(o, "ipversion", json_integer(pl_json_int(a, "ipversion", 4)));
	json_object_set_new(o, "digest", json_string(digest));
	pl_sim_ok(r, o);
}

static void
h_alias_update(struct pl_sim_req *r)
{
	json_t *file, *a, *list;
	const char *rename = pl_sim_p(r, "rename"), *name = pl_sim_p(r, "name");
	char *key;
	bool ok;

	if ((a = req_alias(r, &file)) == NULL)
		return;
	list = alias_list(file);
	ok = digest_ok(r, list);
	json_decref(list);
	if (!ok)
		return;
	if (rename && strcasecmp(rename, name) && alias_find(file, rename)) {
		pl_sim_param_fail(r, "name", "alias '%s' already exists", rename);
		return;
	}
	key = pl_strdup(name);
	lower(key);
	json_incref(a);
	json_object_del(sub_obj(file, "aliases"), key);
	free(key);
	if (!alias_put(r, file, rename ? rename : pl_json_str_or(a, "name", name))) {
		key = pl_strdup(name);
		lower(key);
		json_object_set_new(sub_obj(file, "aliases"), key, a);
		free(key);
		return;
	}
	json_decref(a);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_alias_delete(struct pl_sim_req *r)
{
	json_t *file, *a, *list;
	char *key;
	bool ok;

	if ((a = req_alias(r, &file)) == NULL)
		return;
	list = alias_list(file);
	ok = digest_ok(r, list);
	json_decref(list);
	if (!ok)
		return;
	key = pl_strdup(pl_sim_p(r, "name"));
	lower(key);
	json_object_del(sub_obj(file, "aliases"), key);
	free(key);
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

/* --- macros and indexes --- */

static void
h_macros(struct pl_sim_req *r)
{
	json_t *a = json_array();

	for (size_t i = 0; i < PL_ARRAY_LEN(macros); i++)
		json_array_append_new(a, json_pack("{s:s,s:s}", "macro", macros[i].name, "descr",
						   macros[i].descr));
	pl_sim_ok(r, a);
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

	if ((r->op & 3) != FW_CLUSTER && !req_file(r, &env))
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
			json_object_set_new(sub_obj(out, "options"), k, json_string(txt));
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
		json_array_append_new(sub_arr(out, "rules"), rule);
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
		json_object_set_new(sub_obj(out, "ipset"), k, set);
	}
	json_object_foreach(json_object_get(in, "aliases"), k, v) {
		const char *cidr =
			json_is_string(v) ? json_string_value(v) : pl_json_str(v, "cidr");
		int ver = cidr ? ip_version(cidr) : 0;
		char *key;
		json_t *a;

		if (!ver)
			return pl_seterr(errmsg, PL_EINVAL,
					 "seed: firewall %s: alias '%s' needs an IP or CIDR", what,
					 k);
		a = json_pack("{s:s,s:s,s:s}", "name", pl_json_str_or(v, "name", k), "cidr", cidr,
			      "ipversion", ver == 4 ? "4" : "6");
		if (pl_json_str(v, "comment"))
			json_object_set_new(a, "comment", json_string(pl_json_str(v, "comment")));
		key = pl_strdup(k);
		lower(key);
		json_object_set_new(sub_obj(out, "aliases"), key, a);
		free(key);
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
	if ((r = seed_file(fw, cluster_file(s), "cluster", errmsg)) != 0)
		return r;
	json_object_foreach(json_object_get(fw, "groups"), k, v) {
		json_t *g = json_pack("{s:[]}", "rules");

		json_object_set_new(sub_obj(cluster_file(s), "groups"), k, g);
		if (pl_json_str(v, "comment"))
			json_object_set_new(g, "comment", json_string(pl_json_str(v, "comment")));
		if ((r = seed_file(v, g, k, errmsg)) != 0)
			return r;
	}
	json_object_foreach(json_object_get(fw, "nodes"), k, v) {
		if (pl_sim_node_index(s, k) < 0)
			return pl_seterr(errmsg, PL_ENOENT, "seed: firewall: unknown node '%s'", k);
		if ((r = seed_file(v, sub_obj(sub_obj(fw_root(s), "nodes"), k), k, errmsg)) != 0)
			return r;
	}
	json_object_foreach(json_object_get(fw, "guests"), k, v) {
		if (!pl_sim_guest_find(s, (uint32_t)strtoul(k, NULL, 10)))
			return pl_seterr(errmsg, PL_ENOENT, "seed: firewall: no guest %s", k);
		if ((r = seed_file(v, sub_obj(sub_obj(fw_root(s), "guests"), k), k, errmsg)) != 0)
			return r;
	}
	return 0;
}

json_t *
pl_sim_fw_dump(struct pl_sim *s)
{
	json_t *out = json_deep_copy(cluster_file(s));
	json_t *groups = json_object_get(out, "groups");

	if (groups) {
		json_incref(groups);
		json_object_del(out, "groups");
		json_object_set_new(out, "groups", groups);
	}
	json_object_set(out, "nodes", sub_obj(fw_root(s), "nodes"));
	json_object_set(out, "guests", sub_obj(fw_root(s), "guests"));
	return out;
}

#define C "/cluster/firewall"
#define N "/nodes/{node}/firewall"
#define Q "/nodes/{node}/qemu/{vmid}/firewall"
#define L "/nodes/{node}/lxc/{vmid}/firewall"

/* The routes of one guest kind's firewall. */
#define GUEST_ROUTES(P, lxc)                                                                       \
	{ PL_SIM_GET, P, h_index, lxc, FW_GUEST },                                                 \
		{ PL_SIM_GET, P "/options", h_options_get, lxc, FW_GUEST },                        \
		{ PL_SIM_PUT, P "/options", h_options_put, lxc, FW_GUEST },                        \
		{ PL_SIM_GET, P "/rules", h_rules, lxc, FW_GUEST },                                \
		{ PL_SIM_POST, P "/rules", h_rule_create, lxc, FW_GUEST },                         \
		{ PL_SIM_GET, P "/rules/{pos}", h_rule_get, lxc, FW_GUEST },                       \
		{ PL_SIM_PUT, P "/rules/{pos}", h_rule_update, lxc, FW_GUEST },                    \
		{ PL_SIM_DELETE, P "/rules/{pos}", h_rule_delete, lxc, FW_GUEST },                 \
		{ PL_SIM_GET, P "/ipset", h_ipsets, lxc, FW_GUEST },                               \
		{ PL_SIM_POST, P "/ipset", h_ipset_create, lxc, FW_GUEST },                        \
		{ PL_SIM_GET, P "/ipset/{name}", h_ipset_get, lxc, FW_GUEST },                     \
		{ PL_SIM_POST, P "/ipset/{name}", h_ipset_add, lxc, FW_GUEST },                    \
		{ PL_SIM_DELETE, P "/ipset/{name}", h_ipset_delete, lxc, FW_GUEST },               \
		{ PL_SIM_GET, P "/ipset/{name}/{cidr}", h_entry_get, lxc, FW_GUEST },              \
		{ PL_SIM_PUT, P "/ipset/{name}/{cidr}", h_entry_update, lxc, FW_GUEST },           \
		{ PL_SIM_DELETE, P "/ipset/{name}/{cidr}", h_entry_delete, lxc, FW_GUEST },        \
		{ PL_SIM_GET, P "/aliases", h_aliases, lxc, FW_GUEST },                            \
		{ PL_SIM_POST, P "/aliases", h_alias_create, lxc, FW_GUEST },                      \
		{ PL_SIM_GET, P "/aliases/{name}", h_alias_get, lxc, FW_GUEST },                   \
		{ PL_SIM_PUT, P "/aliases/{name}", h_alias_update, lxc, FW_GUEST },                \
	{                                                                                          \
		PL_SIM_DELETE, P "/aliases/{name}", h_alias_delete, lxc, FW_GUEST                  \
	}

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
	{ PL_SIM_GET, C "/groups", h_groups, false, FW_CLUSTER },
	{ PL_SIM_POST, C "/groups", h_group_create, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/groups/{group}", h_rules, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_POST, C "/groups/{group}", h_rule_create, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_DELETE, C "/groups/{group}", h_group_delete, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/groups/{group}/{pos}", h_rule_get, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_PUT, C "/groups/{group}/{pos}", h_rule_update, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_DELETE, C "/groups/{group}/{pos}", h_rule_delete, false, FW_CLUSTER | FW_GROUP },
	{ PL_SIM_GET, C "/ipset", h_ipsets, false, FW_CLUSTER },
	{ PL_SIM_POST, C "/ipset", h_ipset_create, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/ipset/{name}", h_ipset_get, false, FW_CLUSTER },
	{ PL_SIM_POST, C "/ipset/{name}", h_ipset_add, false, FW_CLUSTER },
	{ PL_SIM_DELETE, C "/ipset/{name}", h_ipset_delete, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/ipset/{name}/{cidr}", h_entry_get, false, FW_CLUSTER },
	{ PL_SIM_PUT, C "/ipset/{name}/{cidr}", h_entry_update, false, FW_CLUSTER },
	{ PL_SIM_DELETE, C "/ipset/{name}/{cidr}", h_entry_delete, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/aliases", h_aliases, false, FW_CLUSTER },
	{ PL_SIM_POST, C "/aliases", h_alias_create, false, FW_CLUSTER },
	{ PL_SIM_GET, C "/aliases/{name}", h_alias_get, false, FW_CLUSTER },
	{ PL_SIM_PUT, C "/aliases/{name}", h_alias_update, false, FW_CLUSTER },
	{ PL_SIM_DELETE, C "/aliases/{name}", h_alias_delete, false, FW_CLUSTER },
	{ PL_SIM_GET, N, h_index, false, FW_NODE },
	{ PL_SIM_GET, N "/options", h_options_get, false, FW_NODE },
	{ PL_SIM_PUT, N "/options", h_options_put, false, FW_NODE },
	{ PL_SIM_GET, N "/rules", h_rules, false, FW_NODE },
	{ PL_SIM_POST, N "/rules", h_rule_create, false, FW_NODE },
	{ PL_SIM_GET, N "/rules/{pos}", h_rule_get, false, FW_NODE },
	{ PL_SIM_PUT, N "/rules/{pos}", h_rule_update, false, FW_NODE },
	{ PL_SIM_DELETE, N "/rules/{pos}", h_rule_delete, false, FW_NODE },
	GUEST_ROUTES(Q, false),
	GUEST_ROUTES(L, true),
	{ 0, NULL, NULL, false, 0 },
};
