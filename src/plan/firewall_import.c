/*
 * The YAML of a live firewall (pvelab import --firewall, see firewall.h): a
 * guest's options and rules, the cluster's aliases, IP sets, security
 * groups, rules and options, and the nodes' host firewalls, written so that
 * the next plan is zero.
 */
#include "core/common.h"
#include "plan/firewall.h"
#include "plan/firewall_int.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "core/str.h"

/* A live rule as YAML: only what it sets; enable only when off. */
static json_t *
rule_yaml(const json_t *l)
{
	json_t *r = pl_fw_rule_of(l, false), *y = json_object();

	for (size_t i = 0; i < PL_FW_NRULE_KEYS; i++) {
		const char *k = pl_fw_rule_keys[i], *v = pl_json_str(r, k);

		if (v == NULL || (!strcmp(k, "type") && !strcmp(v, "in")))
			continue;
		if (!strcmp(k, "enable")) {
			if (!strcmp(v, "0"))
				json_object_set_new(y, "enable", json_false());
			continue;
		}
		json_object_set_new(y, !strcmp(k, "icmp-type") ? "icmp_type" : k, json_string(v));
	}
	json_decref(r);
	return y;
}

static json_t *
rules_yaml(const json_t *live)
{
	json_t *a = json_array();
	const json_t *e;
	size_t i;

	json_array_foreach(live, i, e)
		json_array_append_new(a, rule_yaml(e));
	return a;
}

static bool
is_bool_option(const char *k)
{
	static const char *const bools[] = { "enable",    "dhcp", "ipfilter",
					     "macfilter", "ndp",  "radv" };

	for (size_t i = 0; i < PL_ARRAY_LEN(bools); i++)
		if (!strcmp(bools[i], k))
			return true;
	return false;
}

/* Options as YAML: what the file sets (digest aside), booleans typed. */
static json_t *
options_yaml(const json_t *live, bool guest)
{
	json_t *o = json_object();
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)live, k, v) {
		if (!strcmp(k, "digest"))
			continue;
		/* a guest's are the schema's keys (PVE's $vm_option_properties) */
		if (guest && strcmp(k, "policy_in") && strcmp(k, "policy_out") &&
		    strcmp(k, "log_level_in") && strcmp(k, "log_level_out") && !is_bool_option(k))
			continue;
		if (guest && is_bool_option(k))
			json_object_set_new(
				o, k,
				json_boolean(pl_json_int(live, k, 0) != 0 ||
					     !strcmp(pl_json_str_or(live, k, ""), "1")));
		else
			json_object_set(o, k, v);
	}
	return o;
}

json_t *
pl_fw_guest_yaml(const json_t *snap, const char *node, const char *type, long long vmid)
{
	const json_t *live = json_object_get(snap, "firewall"), *opts, *rules;
	char *base = pl_asprintf("/nodes/%s/%s/%lld/firewall", node, type, vmid), *p;
	json_t *y = json_object();

	p = pl_asprintf("%s/options", base);
	opts = json_object_get(live, p);
	free(p);
	p = pl_asprintf("%s/rules", base);
	rules = json_object_get(live, p);
	free(p);
	free(base);
	if (json_object_size(opts) > 1) /* more than its digest */
		json_object_set_new(y, "options", options_yaml(opts, true));
	if (json_array_size(rules))
		json_object_set_new(y, "rules", rules_yaml(rules));
	if (json_object_size(y) == 0) {
		json_decref(y);
		return NULL;
	}
	return y;
}

/* Each node's host firewall that sets anything, under firewall.nodes (a
 * node that sets nothing is left out, so left alone by the next plan). */
static void
nodes_yaml(const json_t *snap, json_t *y)
{
	const json_t *live = json_object_get(snap, "firewall"), *n, *opts, *rules;
	json_t *nodes = json_object();
	size_t i;

	json_array_foreach(json_object_get(snap, PL_SNAP_NODES), i, n) {
		const char *node = pl_json_str_or(n, "node", "");
		char *p = pl_asprintf("/nodes/%s/firewall/options", node);
		json_t *h = json_object();

		opts = json_object_get(live, p);
		free(p);
		p = pl_asprintf("/nodes/%s/firewall/rules", node);
		rules = json_object_get(live, p);
		free(p);
		if (json_object_size(opts) > 1) /* more than its digest */
			json_object_set_new(h, "options", options_yaml(opts, false));
		if (json_array_size(rules))
			json_object_set_new(h, "rules", rules_yaml(rules));
		if (json_object_size(h))
			json_object_set_new(nodes, node, h);
		else
			json_decref(h);
	}
	if (json_object_size(nodes))
		json_object_set(y, "nodes", nodes);
	json_decref(nodes);
}

json_t *
pl_fw_cluster_yaml(const json_t *snap)
{
	const json_t *live = json_object_get(snap, "firewall"), *e, *opts;
	json_t *y = json_object(), *aliases = json_object(), *ipsets = json_object(),
	       *groups = json_object();
	size_t i, j;

	json_array_foreach(json_object_get(live, "/cluster/firewall/aliases"), i, e) {
		json_t *a = json_pack("{s:s}", "cidr", pl_json_str_or(e, "cidr", ""));

		if (pl_json_str(e, "comment"))
			json_object_set_new(a, "comment", json_string(pl_json_str(e, "comment")));
		json_object_set_new(aliases, pl_json_str_or(e, "name", "?"), a);
	}
	json_array_foreach(json_object_get(live, "/cluster/firewall/ipset"), i, e) {
		const char *n = pl_json_str_or(e, "name", "?");
		char *p = pl_asprintf("/cluster/firewall/ipset/%s", n);
		json_t *s = json_object(), *entries = json_array();
		const json_t *m;

		if (pl_json_str(e, "comment"))
			json_object_set_new(s, "comment", json_string(pl_json_str(e, "comment")));
		json_array_foreach(json_object_get(live, p), j, m) {
			char *t = pl_asprintf("%s%s", pl_json_int(m, "nomatch", 0) ? "!" : "",
					      pl_json_str_or(m, "cidr", ""));

			json_array_append_new(entries, json_string(t));
			free(t);
		}
		json_object_set_new(s, "entries", entries);
		json_object_set_new(ipsets, n, s);
		free(p);
	}
	json_array_foreach(json_object_get(live, "/cluster/firewall/groups"), i, e) {
		const char *n = pl_json_str_or(e, "group", "?");
		char *p = pl_asprintf("/cluster/firewall/groups/%s", n);
		json_t *gr = json_object();

		if (pl_json_str(e, "comment"))
			json_object_set_new(gr, "comment", json_string(pl_json_str(e, "comment")));
		json_object_set_new(gr, "rules", rules_yaml(json_object_get(live, p)));
		json_object_set_new(groups, n, gr);
		free(p);
	}
	if (json_object_size(aliases))
		json_object_set(y, "aliases", aliases);
	if (json_object_size(ipsets))
		json_object_set(y, "ipsets", ipsets);
	if (json_object_size(groups))
		json_object_set(y, "groups", groups);
	json_decref(aliases);
	json_decref(ipsets);
	json_decref(groups);
	if (json_array_size(json_object_get(live, "/cluster/firewall/rules")))
		json_object_set_new(y, "rules",
				    rules_yaml(json_object_get(live, "/cluster/firewall/rules")));
	opts = json_object_get(live, "/cluster/firewall/options");
	if (json_object_size(opts) > 1)
		json_object_set_new(y, "options", options_yaml(opts, false));
	nodes_yaml(snap, y);
	return y;
}
