/*
 * API handlers for what a guest reports about itself: the QEMU guest
 * agent's network interfaces and ping, cloud-init, and a container's
 * interfaces (the addresses IP discovery reads).
 */
#include "core/common.h"

#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

/* --- guest agent / container interfaces: addresses for IP discovery --- */

/* The address a guest's NIC shows: the static one from ipconfigN / netN ip=,
 * or a stable DHCP-like one derived from the VMID. */
static void
nic_addr(const struct pl_sim_guest *g, int idx, char *out, size_t len, int *prefix)
{
	char key[16];
	const char *v, *ip;

	snprintf(key, sizeof(key), g->lxc ? "net%d" : "ipconfig%d", idx);
	v = pl_json_str(g->conf, key);
	*prefix = 24;
	if (v && (ip = strstr(v, "ip=")) != NULL && strncmp(ip + 3, "dhcp", 4) != 0 &&
	    strncmp(ip + 3, "manual", 6) != 0) {
		size_t n = strcspn(ip + 3, "/,");

		snprintf(out, len, "%.*s", (int)n, ip + 3);
		if (ip[3 + n] == '/')
			*prefix = (int)strtol(ip + 4 + n, NULL, 10);
		return;
	}
	snprintf(out, len, "10.%u.%u.%u", (unsigned)(idx + 10) & 0xff, (g->vmid >> 8) & 0xff,
		 (g->vmid & 0xff) ? (g->vmid & 0xff) : 1);
}

static const char *
nic_mac(const struct pl_sim_guest *g, const char *val, char *out, size_t len)
{
	const char *m = g->lxc ? strstr(val, "hwaddr=") : strchr(val, '=');

	if (!m)
		return NULL;
	m += g->lxc ? 7 : 1;
	snprintf(out, len, "%.17s", m);
	for (char *c = out; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
	return out;
}

static json_t *
nic_list(const struct pl_sim_guest *g, bool lxc_shape)
{
	json_t *a = json_array();

	if (lxc_shape)
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s}", "name", "lo", "hwaddr",
						   "00:00:00:00:00:00", "inet", "127.0.0.1/8",
						   "inet6", "::1/128"));
	else
		json_array_append_new(a, json_pack("{s:s,s:s,s:[{s:s,s:s,s:i}]}", "name", "lo",
						   "hardware-address", "00:00:00:00:00:00",
						   "ip-addresses", "ip-address-type", "ipv4",
						   "ip-address", "127.0.0.1", "prefix", 8));
	for (int i = 0; i < 32; i++) {
		char key[16], ip[64], mac[32], name[16], cidr[80];
		const char *v;
		int prefix;

		snprintf(key, sizeof(key), "net%d", i);
		if (!(v = pl_json_str(g->conf, key)) || !nic_mac(g, v, mac, sizeof(mac)))
			continue;
		nic_addr(g, i, ip, sizeof(ip), &prefix);
		snprintf(name, sizeof(name), "eth%d", i);
		if (g->lxc && strstr(v, "name=")) {
			const char *nm = strstr(v, "name=") + 5;

			snprintf(name, sizeof(name), "%.*s", (int)strcspn(nm, ","), nm);
		}
		if (lxc_shape) {
			snprintf(cidr, sizeof(cidr), "%s/%d", ip, prefix);
			json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", name, "hwaddr",
							   mac, "inet", cidr));
		} else {
			json_array_append_new(a,
					      json_pack("{s:s,s:s,s:[{s:s,s:s,s:i}]}", "name", name,
							"hardware-address", mac, "ip-addresses",
							"ip-address-type", "ipv4", "ip-address", ip,
							"prefix", prefix));
		}
	}
	return a;
}

/* The guest of an agent call, or NULL after answering as PVE does when the
 * VM is stopped or has no agent configured. */
static struct pl_sim_guest *
agent_guest(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = pl_sim_req_guest(r, false);
	const char *agent;

	if (!g)
		return NULL;
	if (g->status == PL_SIM_STOPPED) {
		pl_sim_fail(r, 500, "VM %u is not running", g->vmid);
		return NULL;
	}
	agent = pl_json_str(g->conf, "agent");
	if (!agent || agent[0] == '0' || !strncmp(agent, "enabled=0", 9)) {
		pl_sim_fail(r, 500, "No QEMU guest agent configured");
		return NULL;
	}
	return g;
}

static void
h_agent_net(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = agent_guest(r);

	if (g)
		pl_sim_ok(r, json_pack("{s:o}", "result", nic_list(g, false)));
}

static void
h_agent_ping(struct pl_sim_req *r)
{
	if (agent_guest(r))
		pl_sim_ok(r, json_pack("{s:{}}", "result"));
}

/* Cloud-init: the drive is regenerated from the config at once (PUT), so
 * nothing is ever pending; dump shows the user-data PVE would write. */
static void
h_cloudinit_put(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = pl_sim_req_guest(r, false);

	if (g && pl_sim_check_lock(r, g))
		pl_sim_ok(r, json_null());
}

static void
h_cloudinit_get(struct pl_sim_req *r)
{
	if (pl_sim_req_guest(r, false))
		pl_sim_ok(r, json_array());
}

static void
h_cloudinit_dump(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = pl_sim_req_guest(r, false);
	const char *type = pl_sim_p(r, "type");
	const char *user = NULL, *name;
	char *text;

	if (!g)
		return;
	name = pl_json_str_or(g->conf, "name", "");
	user = pl_json_str(g->conf, "ciuser");
	if (type && !strcmp(type, "user"))
		text = pl_asprintf("#cloud-config\nhostname: %s\nmanage_etc_hosts: true\n"
				   "fqdn: %s\n%s%s%schpasswd:\n  expire: False\n"
				   "users:\n  - default\npackage_upgrade: true\n",
				   name, name, user ? "user: " : "", user ? user : "",
				   user ? "\n" : "");
	else if (type && !strcmp(type, "meta"))
		text = pl_asprintf("instance-id: %.40s\n", g->digest);
	else
		text = pl_strdup("version: 1\nconfig:\n");
	pl_sim_ok(r, json_string(text));
	free(text);
}

static void
h_lxc_interfaces(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = pl_sim_req_guest(r, true);

	if (!g)
		return;
	if (g->status == PL_SIM_STOPPED) {
		pl_sim_fail(r, 500, "CT %u is not running", g->vmid);
		return;
	}
	pl_sim_ok(r, nic_list(g, true));
}

#define Q "/nodes/{node}/qemu"
#define L "/nodes/{node}/lxc"

const struct pl_sim_route_def pl_sim_agent_routes[] = {
	{ PL_SIM_GET, Q "/{vmid}/agent/network-get-interfaces", h_agent_net, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/agent/ping", h_agent_ping, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/cloudinit", h_cloudinit_get, false, 0 },
	{ PL_SIM_PUT, Q "/{vmid}/cloudinit", h_cloudinit_put, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/cloudinit/dump", h_cloudinit_dump, false, 0 },
	{ PL_SIM_GET, L "/{vmid}/interfaces", h_lxc_interfaces, true, 0 },
	{ 0, NULL, NULL, false, 0 },
};
