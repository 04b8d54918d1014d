/*
 * GET /nodes/{node}/{qemu,lxc}/{vmid}/feature, and the rule behind it that
 * snapshots also obey: whether every volume of a guest can be snapshotted.
 * PVE asks each volume's storage plugin (pve-guest-common AbstractConfig
 * snapshot_prepare dies "snapshot feature is not available" inside the
 * snapshot task; QemuConfig/LXC::Config has_feature skip CD-ROMs only;
 * pve-storage volume_has_feature: LVM-thin, ZFS, RBD and Btrfs snapshot any
 * volume, Plugin.pm (dir, NFS, CIFS) and LVMPlugin only qcow2, and a path
 * that is no volume, a container's bind or device mount, never).
 * Known gap: the simulator's snapshot task does not refuse such a guest yet
 * (PVE's does): apply snapshots guests with bind mounts before changing them,
 * which real PVE refuses, and that needs deciding in apply first.
 */
#include "core/common.h"
#include "core/json.h"
#include "sim/api.h"
#include "sim/internal.h"

/* Whether storage type can snapshot a volume of format. */
static bool
can_snapshot(const char *type, const char *format)
{
	static const char *const any[] = { "lvmthin", "zfspool", "zfs", "rbd", "btrfs" };

	for (size_t i = 0; i < PL_ARRAY_LEN(any); i++)
		if (!strcmp(type, any[i]))
			return true;
	return format && !strcmp(format, "qcow2");
}

const char *
pl_sim_snapshot_blocker(struct pl_sim *s, const struct pl_sim_guest *g)
{
	static char why[160];
	const char *k;
	json_t *v;

	json_object_foreach(g->conf, k, v) {
		const char *val = json_string_value(v);
		char volid[256];
		struct pl_sim_storage *st = NULL;
		struct pl_sim_volume *vol;

		if (!pl_sim_is_volume_key(g, k, val))
			continue;
		snprintf(volid, sizeof(volid), "%.*s", (int)strcspn(val, ","), val);
		if (volid[0] == '/') {
			snprintf(why, sizeof(why), "%s is a bind mount", k);
			return why;
		}
		vol = pl_sim_volume_find(s, volid, g->node, &st);
		if (st && !can_snapshot(st->type, vol ? vol->format : NULL)) {
			snprintf(why, sizeof(why), "%s is a %s volume on %s storage '%s'", k,
				 vol && vol->format ? vol->format : "raw", st->type, st->id);
			return why;
		}
	}
	return NULL;
}

static void
h_feature(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = pl_sim_req_guest(r, r->lxc);
	const char *feature = pl_sim_p(r, "feature");
	bool has;
	json_t *o;

	if (!g)
		return;
	/* snapshot as PVE decides it; clone needs a template (linked clones),
	 * copy (a full clone) is left possible */
	if (!strcmp(feature, "snapshot"))
		has = pl_sim_snapshot_blocker(r->sim, g) == NULL;
	else if (!strcmp(feature, "clone"))
		has = pl_json_bool(g->conf, "template", false);
	else
		has = true;
	o = json_pack("{s:i}", "hasFeature", has ? 1 : 0);
	if (!r->lxc)
		json_object_set_new(o, "nodes", json_pack("[s]", r->sim->nodes[g->node].name));
	pl_sim_ok(r, o);
}

const struct pl_sim_route_def pl_sim_feature_routes[] = {
	{ PL_SIM_GET, "/nodes/{node}/qemu/{vmid}/feature", h_feature, false, 0 },
	{ PL_SIM_GET, "/nodes/{node}/lxc/{vmid}/feature", h_feature, true, 0 },
	{ 0, NULL, NULL, false, 0 },
};
