/*
 * GET /nodes/{node}/{qemu,lxc}/{vmid}/feature, and the rule behind it that
 * snapshots also obey: whether every volume of a guest can be snapshotted.
 * PVE asks each volume's storage plugin (pve-guest-common AbstractConfig
 * snapshot_prepare dies "snapshot feature is not available" inside the
 * snapshot task; QemuConfig/LXC::Config has_feature skip CD-ROMs only;
 * pve-storage volume_has_feature: LVM-thin, ZFS, RBD and Btrfs snapshot any
 * volume, Plugin.pm (dir, NFS, CIFS) and LVMPlugin only qcow2, and a path
 * that is no volume, a container's bind or device mount, never).
 * The rule itself is model/wayback.c, which the planner uses too; the
 * snapshot task refuses by it (api_snapshot.c).
 */
#include "core/common.h"
#include "core/json.h"
#include "model/wayback.h"
#include "sim/api.h"
#include "sim/internal.h"

/* The type of a storage, for the shared rule (model/wayback.h). */
static const char *
storage_type(const char *storage, void *arg)
{
	struct pl_sim_storage *st = pl_sim_storage_find(arg, storage);

	return st ? st->type : NULL;
}

char *
pl_sim_snapshot_blocker(struct pl_sim *s, const struct pl_sim_guest *g)
{
	return pl_model_snapshot_blocker(g->lxc, g->conf, storage_type, s);
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
	if (!strcmp(feature, "snapshot")) {
		char *why = pl_sim_snapshot_blocker(r->sim, g);

		has = why == NULL;
		free(why);
	} else if (!strcmp(feature, "clone"))
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
