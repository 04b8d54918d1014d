/*
 * Proxmox VE calendar events ("daily", "mon..fri 02:30", "*:0/15"), the
 * schedule syntax of vzdump jobs and of pvelab's snapshot policies: a parser
 * that accepts exactly what PVE accepts (proxmox-time's calendar_event.rs,
 * behind pve-common's PVE::CalendarEvent), and the next time one fires.
 */
#ifndef PL_CORE_CALENDAR_H
#define PL_CORE_CALENDAR_H

#include "core/common.h"

#include <time.h>

/* One field's values as a set: bit v of bits[] for value v. any: the field
 * was "*" (every value). Years go up to 2199, as in systemd and PVE. */
struct pl_cal_field {
	bool any;
	uint64_t bits[35];
};

struct pl_calendar {
	bool utc;
	unsigned days; /* bit 0 Monday .. bit 6 Sunday; 0: every day */
	struct pl_cal_field year, month, day, hour, minute, second;
};

/* Parse a calendar event as PVE does (surrounding white space trimmed, as
 * pve-common does). 0, or PL_EINVAL with *errmsg saying where. cal may be
 * NULL to only validate. */
int pl_calendar_parse(const char *text, struct pl_calendar *cal, char **errmsg);
/* The first time after last (at least one second later) the event fires,
 * in local time unless it says UTC; -1 when it never does. */
time_t pl_calendar_next(const struct pl_calendar *cal, time_t last);

#endif
