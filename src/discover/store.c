/*
 * A scan remembered in the state store (discover --save): the hosts with an
 * open port are recorded there (pl_state_discovered_save); a host the store
 * knows inside the scanned targets and not answering now has vanished.
 */
#include "core/common.h"
#include "discover/discover.h"
#include "core/json.h"
#include "state/state.h"

static bool
has_open_port(const json_t *rec)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(rec, "evidence"), i, e)
		if (!strcmp(pl_json_str_or(e, "state", ""), "open"))
			return true;
	return false;
}

static bool
covers(const char *address, void *arg)
{
	return pl_disc_targets_cover(arg, address);
}

int
pl_disc_store_save(struct pl_state *s, const json_t *records, const struct pl_disc_targets *t,
		   json_t **news, json_t **vanished, char **errmsg)
{
	json_t *up = json_array(), *rec;
	size_t i;
	int r;

	json_array_foreach(records, i, rec)
		if (pl_json_str(rec, "address") && has_open_port(rec))
			json_array_append(up, rec);
	r = pl_state_discovered_save(s, up, covers, (void *)t, news, vanished, errmsg);
	json_decref(up);
	return r;
}
