/*
 * Checks of the firewall sections that need no cluster, as
 * PVE::Firewall::verify_rule and parse_port_name_number_or_range make them
 * (pve-firewall src/PVE/Firewall.pm): known macros, actions per rule type,
 * port lists and ranges, dport/sport/icmp-type needing a protocol, guest
 * interfaces, and that the security groups, IP sets and aliases rules name
 * are declared in the config.
 */
#include "core/common.h"
#include "config/config.h"
#include "core/json.h"
#include "core/err.h"
#include "core/str.h"

#include <ctype.h>
#include <limits.h>
#include <strings.h>

static const struct {
	const char *name, *descr;
} macros[] = {
#include "core/fw_macros.inc"
};

/* The macro closest to a wrong one, or NULL. */
static const char *
macro_suggest(const char *m)
{
	const char *names[PL_ARRAY_LEN(macros)];

	for (size_t i = 0; i < PL_ARRAY_LEN(macros); i++)
		names[i] = macros[i].name;
	return pl_str_suggest(m, names, PL_ARRAY_LEN(macros));
}

/* parse_port_name_number_or_range: NULL when valid, else PVE's message. */
static char *
port_problem(const char *s)
{
	char *copy = pl_strdup(s), *save = NULL, *item, *err = NULL;
	int count = 0;

	for (item = strtok_r(copy, ",", &save); item && !err; item = strtok_r(NULL, ",", &save)) {
		const char *colon = strchr(item, ':');
		long long a = 0, b = 0;

		if (colon && item[0] && isdigit((unsigned char)item[0])) {
			char *left = pl_strndup(item, (size_t)(colon - item));

			if (pl_str_to_ll(left, 0, LLONG_MAX, &a) ||
			    pl_str_to_ll(colon + 1, 0, LLONG_MAX, &b))
				err = pl_asprintf("invalid port '%s'", item);
			else if (a > 65535)
				err = pl_asprintf("invalid port '%lld'", a);
			else if (b > 65535)
				err = pl_asprintf("invalid port '%lld'", b);
			else if (a > b)
				err = pl_asprintf("backwards port range '%s'", item);
			free(left);
			count += 2;
		} else if (item[0] && isdigit((unsigned char)item[0])) {
			if (pl_str_to_ll(item, 0, LLONG_MAX, &a))
				err = pl_asprintf("invalid port '%s'", item);
			else if (a > 65535)
				err = pl_asprintf("invalid port '%lld'", a);
			count++;
		} else if (!item[0] || !isalpha((unsigned char)item[0])) {
			err = pl_asprintf("invalid port '%s'", item); /* a service name, else */
		}
	}
	if (!err && count > 15)
		err = pl_strdup("too many entries in port list (> 15 numbers)");
	free(copy);
	return err;
}

/* An address, CIDR or range (not an alias's name). */
static bool
is_address(const char *s)
{
	return isdigit((unsigned char)s[0]) || strchr(s, ':') != NULL;
}

/* The IP sets and aliases source/dest name, each declared in the config. */
static void
check_addresses(const struct pl_config *c, struct pl_diags *d, const char *v, const char *ptr)
{
	const json_t *ipsets = pl_config_get(c, "/firewall/ipsets"),
		     *aliases = pl_config_get(c, "/firewall/aliases");
	char *copy = pl_strdup(v), *save = NULL, *item;

	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		const char *n = item;

		if (*n == '+') {
			n++;
			if (!strncmp(n, "dc/", 3))
				n += 3;
			if (!strncmp(n, "guest/", 6))
				continue; /* a guest's own set (ipfilter-net0, ...) */
			if (!json_object_get(ipsets, n))
				pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
					       "no IP set '%s' (declare it under firewall.ipsets)",
					       n);
			continue;
		}
		if (!strncmp(n, "dc/", 3))
			n += 3;
		if (is_address(n) || !strncmp(n, "guest/", 6))
			continue;
		bool found = false;
		const char *k;
		json_t *a;

		json_object_foreach((json_t *)aliases, k, a)
			found |= !strcasecmp(k, n);
		if (!found)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "no alias '%s' (declare it under firewall.aliases, or write "
				       "an address)",
				       n);
	}
	free(copy);
}

static void
check_rule(const struct pl_config *c, struct pl_diags *d, const json_t *r, const char *base,
	   bool guest, bool group)
{
	const char *type = pl_json_str_or(r, "type", "in"),
		   *action = pl_json_str_or(r, "action", "");
	const char *macro = pl_json_str(r, "macro"), *proto = pl_json_str(r, "proto");
	const char *iface = pl_json_str(r, "iface");
	char ptr[300];

	snprintf(ptr, sizeof(ptr), "%s/action", base);
	if (!strcmp(type, "group")) {
		if (group)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "a security group cannot hold a group rule ('%s')", action);
		else if (!json_object_get(pl_config_get(c, "/firewall/groups"), action))
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "no security group '%s' (declare it under firewall.groups)",
				       action);
	} else if (strcmp(action, "ACCEPT") && strcmp(action, "DROP") && strcmp(action, "REJECT")) {
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
			       "unknown action '%s' (ACCEPT, DROP or REJECT; a security group "
			       "needs type: group)",
			       action);
	}
	if (macro) {
		bool found = false;

		for (size_t i = 0; i < PL_ARRAY_LEN(macros); i++)
			found |= !strcasecmp(macros[i].name, macro);
		snprintf(ptr, sizeof(ptr), "%s/macro", base);
		if (!found && macro_suggest(macro))
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "unknown macro '%s' (did you mean '%s'?)", macro,
				       macro_suggest(macro));
		else if (!found)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "unknown macro '%s' (PVE's macros are SSH, HTTP, HTTPS, "
				       "DNS, Ping, SMB, ...: "
				       "GET /cluster/firewall/macros lists them)",
				       macro);
	}
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "sport" : "dport";
		char *v, *err;
		const json_t *jv = json_object_get(r, key);

		if (jv == NULL)
			continue;
		v = json_is_string(jv) ? pl_strdup(json_string_value(jv)) :
					 pl_asprintf("%lld", (long long)json_integer_value(jv));
		snprintf(ptr, sizeof(ptr), "%s/%s", base, key);
		if ((err = port_problem(v)) != NULL)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "%s", err);
		else if (proto == NULL)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "%s '%s' needs proto (tcp or udp)",
				       key, v);
		free(err);
		free(v);
	}
	if (pl_json_str(r, "icmp_type") && (proto == NULL || strncmp(proto, "icmp", 4))) {
		snprintf(ptr, sizeof(ptr), "%s/icmp_type", base);
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "icmp_type needs proto icmp or icmpv6");
	}
	if (iface && (group || (guest && (strncmp(iface, "net", 3) || !iface[3] ||
					  strspn(iface + 3, "0123456789") != strlen(iface + 3))))) {
		snprintf(ptr, sizeof(ptr), "%s/iface", base);
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
			       group ? "a security group's rule has no iface" :
				       "iface '%s' is not a guest interface (net0, net1, ...)",
			       iface);
	}
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "dest" : "source";

		snprintf(ptr, sizeof(ptr), "%s/%s", base, key);
		if (pl_json_str(r, key))
			check_addresses(c, d, pl_json_str(r, key), ptr);
	}
}

static void
check_rules(const struct pl_config *c, struct pl_diags *d, const json_t *rules, const char *base,
	    bool guest, bool group)
{
	const json_t *r;
	size_t i;

	json_array_foreach(rules, i, r) {
		char ptr[256];

		snprintf(ptr, sizeof(ptr), "%s/%zu", base, i);
		if (json_is_object(r))
			check_rule(c, d, r, ptr, guest, group);
	}
}

void
pl_config_check_firewall(const struct pl_config *c, struct pl_diags *d)
{
	const json_t *fw = pl_config_get(c, "/firewall"), *g, *e;
	const char *k;
	json_t *v;
	size_t i;
	char ptr[300];

	check_rules(c, d, json_object_get(fw, "rules"), "/firewall/rules", false, false);
	json_object_foreach((json_t *)json_object_get(fw, "groups"), k, v) {
		snprintf(ptr, sizeof(ptr), "/firewall/groups/%s/rules", k);
		check_rules(c, d, json_object_get(v, "rules"), ptr, false, true);
	}
	check_rules(c, d, json_object_get(json_object_get(fw, "host"), "rules"),
		    "/firewall/host/rules", false, false);
	json_object_foreach((json_t *)json_object_get(fw, "nodes"), k, v) {
		snprintf(ptr, sizeof(ptr), "/firewall/nodes/%s/rules", k);
		check_rules(c, d, json_object_get(v, "rules"), ptr, false, false);
	}
	json_object_foreach((json_t *)json_object_get(fw, "ipsets"), k, v) {
		json_array_foreach(json_object_get(v, "entries"), i, e) {
			const char *t = json_string_value(e);

			snprintf(ptr, sizeof(ptr), "/firewall/ipsets/%s/entries/%zu", k, i);
			if (t)
				check_addresses(c, d, t[0] == '!' ? t + 1 : t, ptr);
		}
	}
	json_array_foreach(pl_config_guests(c), i, g) {
		snprintf(ptr, sizeof(ptr), "/guests/%zu/firewall/rules", i);
		check_rules(c, d, json_object_get(json_object_get(g, "firewall"), "rules"), ptr,
			    true, false);
	}
}
