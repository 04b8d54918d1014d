/*
 * Status answers with the shape real Proxmox VE sends: a guest's entry in
 * the qemu/lxc lists and its status/current (qemu-server's vmstatus with what
 * QEMU's monitor adds, pve-container's vmstatus), and the fields PVE's
 * network reader fills into every interface. docs/sim.md lists where the
 * current release differs from the recorded 6.2/7.4 answers.
 */
#include "core/common.h"

#include <math.h>
#include <time.h>

#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

static bool
pve84(const struct pl_sim *s)
{
	return !strcmp(s->schema->version, "8.4");
}

/* A config key's index when it is PREFIX followed by digits only, else -1. */
static int
key_index(const char *key, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p = key + n;

	if (strncmp(key, prefix, n) || !*p)
		return -1;
	for (const char *q = p; *q; q++)
		if (*q < '0' || *q > '9')
			return -1;
	return (int)strtol(p, NULL, 10);
}

/* A property string's value of KEY, or of its first unnamed item when key is
 * NULL (e.g. the "1" of "1,fstrim_cloned_disks=1"); into out, false when absent. */
static bool
prop_value(const char *s, const char *key, char *out, size_t outlen)
{
	size_t kl = key ? strlen(key) : 0;

	while (s && *s) {
		size_t l = strcspn(s, ",");
		const char *eq = memchr(s, '=', l);

		if ((!key && !eq) ||
		    (key && eq && (size_t)(eq - s) == kl && !strncmp(s, key, kl))) {
			const char *v = key ? eq + 1 : s;

			snprintf(out, outlen, "%.*s", (int)(l - (size_t)(v - s)), v);
			return true;
		}
		s += l;
		s += *s == ',';
	}
	return false;
}

/* PVE::QemuServer::Agent::get_qga_key($conf, 'enabled'). */
static bool
agent_enabled(const struct pl_sim_guest *g)
{
	const char *a = pl_json_str(g->conf, "agent");
	char v[16];

	if (!a)
		return false;
	if (!prop_value(a, "enabled", v, sizeof(v)) && !prop_value(a, NULL, v, sizeof(v)))
		return false;
	return pl_bool_norm(v) && pl_bool_norm(v)[0] == '1';
}

/* Pressure stall averages (cgroup v2 *.pressure, avg10) that follow the
 * guest's load; a paused or idle guest has none. */
static void
pressures(json_t *o, const struct pl_sim_usage *u)
{
	double cpu = fmin(u->cpu, 1.0);
	double io = fmin(1.0, (double)(u->diskread + u->diskwrite) /
				      (double)(u->uptime > 0 ? u->uptime : 1) / 4e8);
	double v[6] = { cpu * 8.0, cpu * 2.0, io * 5.0, io * 4.0, 0.0, 0.0 };
	static const char *const names[6] = { "pressurecpusome",    "pressurecpufull",
					      "pressureiosome",     "pressureiofull",
					      "pressurememorysome", "pressurememoryfull" };

	for (int i = 0; i < 6; i++) {
		json_object_set_new(o, names[i], json_real(round(v[i] * 100.0) / 100.0));
	}
}

/* QEMU's query-blockstats entry (BlockDeviceStats) for a drive that read and
 * wrote the given bytes; a CD-ROM is not accounted (account_* false). */
static json_t *
blockstat(uint64_t rd, uint64_t wr, uint64_t size, bool cdrom)
{
	uint64_t rdops = rd / 16384, wrops = wr / 32768, flush = wrops / 8;
	json_t *o = json_object();
	static const char *const zero[] = {
		"unmap_bytes",
		"unmap_operations",
		"unmap_total_time_ns",
		"unmap_merged",
		"zone_append_bytes",
		"zone_append_operations",
		"zone_append_total_time_ns",
		"zone_append_merged",
		"failed_rd_operations",
		"failed_wr_operations",
		"failed_zone_append_operations",
		"failed_flush_operations",
		"failed_unmap_operations",
		"invalid_rd_operations",
		"invalid_wr_operations",
		"invalid_zone_append_operations",
		"invalid_flush_operations",
		"invalid_unmap_operations",
	};

	for (size_t i = 0; i < PL_ARRAY_LEN(zero); i++)
		json_object_set_new(o, zero[i], json_integer(0));
	json_object_set_new(o, "rd_bytes", json_integer((json_int_t)rd));
	json_object_set_new(o, "wr_bytes", json_integer((json_int_t)wr));
	json_object_set_new(o, "rd_operations", json_integer((json_int_t)rdops));
	json_object_set_new(o, "wr_operations", json_integer((json_int_t)wrops));
	json_object_set_new(o, "flush_operations", json_integer((json_int_t)flush));
	json_object_set_new(o, "rd_total_time_ns", json_integer((json_int_t)(rdops * 95000)));
	json_object_set_new(o, "wr_total_time_ns", json_integer((json_int_t)(wrops * 180000)));
	json_object_set_new(o, "flush_total_time_ns", json_integer((json_int_t)(flush * 900000)));
	json_object_set_new(o, "wr_highest_offset",
			    json_integer((json_int_t)(wr < size ? wr : size)));
	json_object_set_new(o, "rd_merged", json_integer((json_int_t)(rdops / 20)));
	json_object_set_new(o, "wr_merged", json_integer((json_int_t)(wrops / 10)));
	if (rd || wr) /* QEMU reports it once the drive saw I/O */
		json_object_set_new(o, "idle_time_ns", json_integer(1250000000));
	json_object_set_new(o, "account_invalid", json_boolean(!cdrom));
	json_object_set_new(o, "account_failed", json_boolean(!cdrom));
	json_object_set_new(o, "timed_stats", json_array());
	return o;
}

static const char *const drive_keys[] = { "ide", "sata", "scsi", "virtio", NULL };
static const char *const net_keys[] = { "net", NULL };
static const char *const serial_keys[] = { "serial", NULL };

/* Whether a config key is one of the indexed kinds (e.g. scsi0 of drive_keys). */
static bool
key_is(const char *k, const char *const *kinds)
{
	for (; *kinds; kinds++)
		if (key_index(k, *kinds) >= 0)
			return true;
	return false;
}

/* How many config keys are of those kinds (holding a volume, with volumes). */
static size_t
count_keys(const struct pl_sim_guest *g, const char *const *kinds, bool volumes)
{
	const char *k;
	json_t *v;
	size_t n = 0;

	json_object_foreach(g->conf, k, v)
		n += key_is(k, kinds) &&
		     (!volumes || pl_sim_is_volume_key(g, k, json_string_value(v)));
	return n;
}

/* The part of a guest's total the i-th of its n devices shows (the first
 * one takes the remainder, so the parts add up). */
static uint64_t
share(uint64_t total, size_t n, size_t i)
{
	return n ? total / n + (i == 0 ? total % n : 0) : 0;
}

/* One device's entry into out; *i counts the devices that shared the totals. */
typedef void (*device_fn)(const struct pl_sim_guest *g, const struct pl_sim_usage *u,
			  const char *key, const char *val, size_t n, size_t *i, json_t *out);

/* An object of every config key of those kinds, filled by fn; n is how many
 * of them (holding a volume, with volumes) share the guest's totals. */
static json_t *
devices(const struct pl_sim_guest *g, const struct pl_sim_usage *u, const char *const *kinds,
	bool volumes, device_fn fn)
{
	json_t *o = json_object(), *v;
	size_t n = count_keys(g, kinds, volumes), i = 0;
	const char *k;

	json_object_foreach(g->conf, k, v)
		if (key_is(k, kinds))
			fn(g, u, k, json_string_value(v), n, &i, o);
	return o;
}

/* blockstat's entry of a drive, keyed by its config key as vmstatus'
 * blockstatscb names it: disks share the guest's I/O, CD-ROMs (empty ones
 * included) read nothing. */
static void
blockstat_dev(const struct pl_sim_guest *g, const struct pl_sim_usage *u, const char *key,
	      const char *val, size_t n, size_t *i, json_t *out)
{
	char sz[32];
	unsigned long long size = 0;

	if (!pl_sim_is_volume_key(g, key, val)) {
		json_object_set_new(out, key, blockstat(0, 0, 0, true));
		return;
	}
	if (prop_value(val, "size", sz, sizeof(sz)))
		pl_size_parse(sz, &size);
	json_object_set_new(
		out, key,
		blockstat(share(u->diskread, n, *i), share(u->diskwrite, n, *i), size, false));
	(*i)++;
}

/* nics' entry of a netN: tap<vmid>i<N> with its part of the traffic. */
static void
nic_dev(const struct pl_sim_guest *g, const struct pl_sim_usage *u, const char *key,
	const char *val, size_t n, size_t *i, json_t *out)
{
	char tap[48];

	(void)val;
	snprintf(tap, sizeof(tap), "tap%ui%d", g->vmid, key_index(key, "net"));
	json_object_set_new(out, tap,
			    json_pack("{s:I,s:I}", "netin", (json_int_t)share(u->netin, n, *i),
				      "netout", (json_int_t)share(u->netout, n, *i)));
	(*i)++;
}

/* What vmstatus(full) asks a running QEMU: query-proxmox-support,
 * -blockstats, -machines, -version and -balloon (the last only when the VM
 * has a balloon device, i.e. balloon is not 0). */
static void
qemu_full(struct pl_sim *s, const struct pl_sim_guest *g, const struct pl_sim_usage *u, json_t *o)
{
	bool v8 = pve84(s);
	json_t *bs = devices(g, u, drive_keys, true, blockstat_dev);
	uint64_t rd = 0, wr = 0;
	const char *k;
	json_t *v;

	json_object_set_new(o, "nics", devices(g, u, net_keys, false, nic_dev));
	json_object_foreach(bs, k, v) {
		rd += (uint64_t)pl_json_int(v, "rd_bytes", 0);
		wr += (uint64_t)pl_json_int(v, "wr_bytes", 0);
	}
	json_object_set_new(o, "blockstat", bs);
	json_object_set_new(o, "diskread", json_integer((json_int_t)rd));
	json_object_set_new(o, "diskwrite", json_integer((json_int_t)wr));
	json_object_set_new(o, "proxmox-support",
			    json_pack("{s:b,s:b,s:b,s:b,s:b,s:s,s:b,s:b,s:b}", "pbs-dirty-bitmap",
				      1, "query-bitmap-info", 1, "pbs-dirty-bitmap-savevm", 1,
				      "pbs-dirty-bitmap-migration", 1, "pbs-masterkey", 1,
				      "pbs-library-version",
				      v8 ? "1.5.1 (UNKNOWN)" : "2.0.1 (UNKNOWN)", "backup-fleecing",
				      1, "backup-access-api", 1, "backup-max-workers", 1));
	json_object_set_new(o, "running-machine",
			    json_string(v8 ? "pc-i440fx-9.2+pve1" : "pc-i440fx-10.1+pve0"));
	json_object_set_new(o, "running-qemu", json_string(v8 ? "9.2.0" : "10.1.2"));
	json_object_set_new(o, "qmpstatus",
			    json_string(g->status == PL_SIM_PAUSED ? "paused" : "running"));
	if (pl_json_int(g->conf, "balloon", -1) != 0) {
		/* the guest's balloon driver reports its memory; the balloon is
		 * fully inflated (no host memory pressure), so actual = max_mem */
		uint64_t total = u->maxmem - u->maxmem / 25, free = total - u->mem;
		int64_t now = time(NULL);

		json_object_set_new(o, "balloon", json_integer((json_int_t)u->maxmem));
		json_object_set_new(o, "freemem", json_integer((json_int_t)free));
		json_object_set_new(o, "ballooninfo",
				    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "actual",
					      (json_int_t)u->maxmem, "max_mem",
					      (json_int_t)u->maxmem, "total_mem", (json_int_t)total,
					      "free_mem", (json_int_t)free, "mem_swapped_in",
					      (json_int_t)0, "mem_swapped_out", (json_int_t)0,
					      "major_page_faults", (json_int_t)(u->uptime / 40),
					      "minor_page_faults", (json_int_t)(u->uptime * 3100),
					      "last_update", (json_int_t)(now - now % 2)));
	}
}

/* What status/current adds to vmstatus (PVE::API2::Qemu vm_status): the HA
 * state, spice and clipboard from vga, agent. */
static void
qemu_current(struct pl_sim *s, const struct pl_sim_guest *g, json_t *o)
{
	const char *vga = pl_json_str(g->conf, "vga");
	char type[32] = "", clip[16];

	json_object_set_new(o, "ha", pl_sim_ha_status_json(s, g));
	if (vga) {
		if (!prop_value(vga, "type", type, sizeof(type)))
			prop_value(vga, NULL, type, sizeof(type));
		/* vga_conf_has_spice: qxl*; virtio* also offers spice */
		if (pl_str_startswith(type, "qxl") || pl_str_startswith(type, "virtio"))
			json_object_set_new(o, "spice", json_integer(1));
		if (prop_value(vga, "clipboard", clip, sizeof(clip)))
			json_object_set_new(o, "clipboard", json_string(clip));
	}
	if (agent_enabled(g))
		json_object_set_new(o, "agent", json_integer(1));
}

/* What both vmstatus functions report alike; name is the config's, or
 * NULL for PVE's fallback ("VM 100", "CT100"). */
static json_t *
status_common(const struct pl_sim_guest *g, const struct pl_sim_usage *u, const char *name,
	      unsigned pid)
{
	bool up = g->status != PL_SIM_STOPPED;
	json_t *o = json_object();

	json_object_set_new(o, "vmid", json_integer(g->vmid));
	if (name)
		json_object_set_new(o, "name", json_string(name));
	else
		json_object_set_new(o, "name",
				    g->lxc ? json_sprintf("CT%u", g->vmid) :
					     json_sprintf("VM %u", g->vmid));
	json_object_set_new(o, "status", json_string(up ? "running" : "stopped"));
	if (up)
		json_object_set_new(o, "pid", json_integer(pid));
	json_object_set_new(o, "cpus", json_integer(u->cpus));
	json_object_set_new(o, "maxmem", json_integer((json_int_t)u->maxmem));
	json_object_set_new(o, "maxdisk", json_integer((json_int_t)u->maxdisk));
	json_object_set_new(o, "uptime", json_integer(u->uptime));
	json_object_set_new(o, "cpu", json_real(u->cpu));
	json_object_set_new(o, "mem", json_integer((json_int_t)u->mem));
	json_object_set_new(o, "netin", json_integer((json_int_t)u->netin));
	json_object_set_new(o, "netout", json_integer((json_int_t)u->netout));
	if (pl_json_bool(g->conf, "template", false))
		json_object_set_new(o, "template", json_integer(1));
	if (g->lock[0])
		json_object_set_new(o, "lock", json_string(g->lock));
	if (pl_json_str(g->conf, "tags"))
		json_object_set_new(o, "tags", json_string(pl_json_str(g->conf, "tags")));
	return o;
}

/* PVE::QemuServer::vmstatus for one VM. */
static json_t *
qemu_status(struct pl_sim *s, const struct pl_sim_guest *g, const struct pl_sim_usage *u, bool full)
{
	bool up = g->status != PL_SIM_STOPPED;
	long long balloon = pl_json_int(g->conf, "balloon", 0);
	json_t *o = status_common(g, u, pl_json_str(g->conf, "name"), 10000 + g->vmid % 50000);

	json_object_set_new(o, "disk", json_integer(0)); /* "no info available" */
	if (balloon > 0) {
		json_object_set_new(o, "balloon_min", json_integer((json_int_t)balloon << 20));
		json_object_set_new(o, "shares",
				    json_integer((json_int_t)pl_json_int(g->conf, "shares", 1000)));
	}
	if (pve84(s)) { /* 8.x: zeros until QEMU was asked (9.0.24 drops them) */
		json_object_set_new(o, "diskread", json_integer(0));
		json_object_set_new(o, "diskwrite", json_integer(0));
	} else {
		json_object_set_new(o, "memhost", json_integer((json_int_t)pl_sim_memhost(g, u)));
		if (up)
			pressures(o, u);
	}
	if (count_keys(g, serial_keys, false))
		json_object_set_new(o, "serial", json_integer(1));
	if (full && up)
		qemu_full(s, g, u, o);
	else if (full)
		json_object_set_new(o, "qmpstatus", json_string("stopped"));
	return o;
}

/* PVE::LXC::vmstatus for one container. */
static json_t *
lxc_status(struct pl_sim *s, const struct pl_sim_guest *g, const struct pl_sim_usage *u)
{
	json_t *o = status_common(g, u, pl_json_str(g->conf, "hostname"), 20000 + g->vmid % 50000);

	json_object_set_new(o, "type", json_string("lxc"));
	json_object_set_new(o, "disk", json_integer((json_int_t)u->disk));
	json_object_set_new(o, "swap", json_integer(0));
	json_object_set_new(o, "maxswap",
			    json_integer((json_int_t)pl_json_int(g->conf, "swap", 0) << 20));
	json_object_set_new(o, "diskread", json_integer((json_int_t)u->diskread));
	json_object_set_new(o, "diskwrite", json_integer((json_int_t)u->diskwrite));
	if (g->status != PL_SIM_STOPPED && !pve84(s))
		pressures(o, u);
	return o;
}

uint64_t
pl_sim_memhost(const struct pl_sim_guest *g, const struct pl_sim_usage *u)
{
	/* pvestatd stores none for containers (undef in the pve-vm-9.0 RRD) */
	if (g->lxc || g->status == PL_SIM_STOPPED)
		return 0;
	return u->mem + u->maxmem / 16; /* QEMU's own overhead on the host */
}

json_t *
pl_sim_guest_status(struct pl_sim *s, const struct pl_sim_guest *g, bool full, bool current)
{
	struct pl_sim_usage u;
	json_t *o;

	pl_sim_guest_usage(s, g, time(NULL), &u);
	if (g->lxc) {
		o = lxc_status(s, g, &u);
		if (current) /* PVE::API2::LXC::Status vm_status */
			json_object_set_new(o, "ha", pl_sim_ha_status_json(s, g));
		return o;
	}
	o = qemu_status(s, g, &u, full || current);
	if (current)
		qemu_current(s, g, o);
	return o;
}

json_t *
pl_sim_iface_out(const json_t *iface)
{
	json_t *o = json_deep_copy(iface);
	const char *cidr = pl_json_str(o, "cidr");

	/* PVE::Network::Interfaces::__read_etc_network_interfaces */
	if (!json_object_get(o, "method"))
		json_object_set_new(o, "method", json_string("manual"));
	if (!json_object_get(o, "method6"))
		json_object_set_new(o, "method6", json_string("manual"));
	if (!json_object_get(o, "families"))
		json_object_set_new(o, "families", json_pack("[s]", "inet"));
	if (cidr && strchr(cidr, '/') && !json_object_get(o, "netmask"))
		json_object_set_new(o, "netmask", json_string(strchr(cidr, '/') + 1));
	if (!strcmp(pl_json_str_or(o, "type", ""), "bridge")) {
		if (!json_object_get(o, "bridge_stp"))
			json_object_set_new(o, "bridge_stp", json_string("off"));
		if (!json_object_get(o, "bridge_fd") &&
		    !strcmp(pl_json_str(o, "bridge_stp"), "off"))
			json_object_set_new(o, "bridge_fd", json_string("0"));
	}
	return o;
}
