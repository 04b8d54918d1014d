/*
 * The firewall's rule checks as PVE::Firewall makes them (verify_rule and
 * the address, port and protocol parsers), with the macro table; used by
 * the firewall handlers and seeds.
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

static const struct {
	const char *name, *descr;
} macros[] = {
#include "core/fw_macros.inc"
};

static const char *const rule_keys[] = { "type",  "action",  "macro",    "iface", "source",
					 "dest",  "proto",   "enable",   "log",   "sport",
					 "dport", "comment", "icmp-type" };

/* --- addresses, ports, protocols (PVE::Firewall's parsers) --- */

/* 4 or 6 for an address, CIDR or range; 0 when invalid. */
int
pl_sim_fw_ipver(const char *txt)
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
		if (pl_sim_fw_ipver(dash + 1) != v)
			return 0;
	}
	return v;
}

bool
pl_sim_fw_is_name(const char *s)
{
	if (!isalpha((unsigned char)*s))
		return false;
	for (s++; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

/* An alias by name (case-insensitive, as PVE keys them lower-case). */
json_t *
pl_sim_fw_alias(json_t *file, const char *name)
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
		if (!pl_sim_fw_is_name(name))
			return pl_asprintf("invalid ipset name '%s'", v);
		if (!json_object_get(json_object_get(pl_sim_fw_cluster(s), "ipset"), name) &&
		    !json_object_get(json_object_get(file, "ipset"), name))
			return pl_asprintf("no such ipset '%s'", name);
		return NULL;
	}
	if (!strncmp(name, "guest/", 6) || !strncmp(name, "dc/", 3))
		name = strchr(name, '/') + 1;
	if (pl_sim_fw_is_name(name)) {
		json_t *a = pl_sim_fw_alias(file, name);

		if (!a)
			a = pl_sim_fw_alias(pl_sim_fw_cluster(s), name);
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
			int tv = pl_sim_fw_ipver(tok);

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
bool
pl_sim_fw_verify_rule(struct pl_sim_req *r, json_t *file, const char *env, json_t *rule)
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
		if (!pl_sim_fw_is_name(action)) {
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
			pl_sim_fail(r, 500, "%s", "detected mixed ipv4/ipv6 addresses in rule");
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
void
pl_sim_fw_copy_rule(const struct pl_sim_req *r, json_t *rule)
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

json_t *
pl_sim_fw_macro_list(void)
{
	json_t *a = json_array();

	for (size_t i = 0; i < PL_ARRAY_LEN(macros); i++)
		json_array_append_new(a, json_pack("{s:s,s:s}", "macro", macros[i].name, "descr",
						   macros[i].descr));
	return a;
}

bool
pl_sim_fw_is_rule_key(const char *k)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(rule_keys); i++)
		if (!strcmp(rule_keys[i], k))
			return true;
	return false;
}
