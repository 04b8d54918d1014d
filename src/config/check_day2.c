/*
 * Checks of the config's day-2 sections that need no cluster: snapshot
 * policies (labels valid as parts of PVE snapshot names and unique, a
 * selection that can select something, schedules that PVE's calendar-event
 * parser accepts).
 */
#include "core/common.h"
#include "config/config.h"
#include "core/calendar.h"
#include "core/err.h"
#include "core/json.h"

#include <ctype.h>

bool
pl_config_snap_label_valid(const char *label)
{
	size_t n = label ? strlen(label) : 0;

	if (n == 0 || n > 24) /* "auto" + label + yyMMddHHmmss within PVE's 40 */
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)label[i]) && label[i] != '_' && label[i] != '-')
			return false;
	return true;
}

static void
check_policy(const struct pl_config *c, struct pl_diags *d, const json_t *p, size_t i,
	     json_t *labels)
{
	const char *label = pl_json_str(p, "label"), *sched = pl_json_str(p, "schedule");
	char ptr[128];

	snprintf(ptr, sizeof(ptr), "/snapshot_policies/%zu/label", i);
	if (label && !pl_config_snap_label_valid(label))
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
			       "label '%s' cannot name snapshots (letters, digits, '_' and '-', at "
			       "most 24: snapshots are named auto<label><yyMMddHHmmss>)",
			       label);
	else if (label && json_object_get(labels, label))
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
			       "duplicate label '%s' (first used by policy %lld; two policies of "
			       "one label would prune each other's snapshots)",
			       label,
			       (long long)json_integer_value(json_object_get(labels, label)));
	else if (label)
		json_object_set_new(labels, label, json_integer((json_int_t)i));
	if (sched) {
		char *err = NULL;

		if (pl_calendar_parse(sched, NULL, &err) != 0) {
			snprintf(ptr, sizeof(ptr), "/snapshot_policies/%zu/schedule", i);
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "%s", err);
		}
		free(err);
	}
	if (!json_array_size(json_object_get(p, "guests")) &&
	    !json_array_size(json_object_get(p, "tags")) &&
	    !json_array_size(json_object_get(p, "pools"))) {
		snprintf(ptr, sizeof(ptr), "/snapshot_policies/%zu", i);
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
			       "policy '%s' selects no guest (give guests:, tags: or pools:)",
			       label ? label : "?");
	}
}

void
pl_config_check_day2(const struct pl_config *c, struct pl_diags *d)
{
	json_t *labels = json_object();
	const json_t *p;
	size_t i;

	json_array_foreach(pl_config_get(c, "/snapshot_policies"), i, p)
		if (json_is_object(p))
			check_policy(c, d, p, i, labels);
	json_decref(labels);
}
