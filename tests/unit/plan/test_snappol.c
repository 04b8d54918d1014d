/* Unit tests for plan/snappol: cv4pve-autosnap's names, which snapshots are
 * a label's, what a retention deletes (ten runs of keep 3 among manual,
 * other labels' and apply's snapshots), apply's own retention by run number,
 * and which guests a policy selects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "core/json.h"
#include "plan/snappol.h"

#include <stdlib.h>

static json_t *
snap(const char *name, const char *desc)
{
	return json_pack("{s:s,s:s,s:i}", "name", name, "description", desc, "snaptime", 1);
}

static void
test_name(void **state)
{
	char name[64];
	time_t t;
	struct tm tm = { .tm_year = 126,
			 .tm_mon = 11,
			 .tm_mday = 7,
			 .tm_hour = 8,
			 .tm_min = 5,
			 .tm_sec = 9,
			 .tm_isdst = -1 };

	setenv("TZ", "UTC", 1);
	tzset();
	t = mktime(&tm);
	assert_int_equal(pl_snappol_name("daily", t, name, sizeof(name)), 0);
	assert_string_equal(name, "autodaily261207080509");
	/* local time, as cv4pve-autosnap's DateTime.Now */
	setenv("TZ", "Asia/Kolkata", 1);
	tzset();
	assert_int_equal(pl_snappol_name("daily", t, name, sizeof(name)), 0);
	assert_string_equal(name, "autodaily261207133509");
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(pl_snappol_name("daily", t, name, 10), PL_EINVAL);
}

static void
test_is_label(void **state)
{
	json_t *s;

	s = snap("autodaily261207080509", "cv4pve-autosnap");
	assert_true(pl_snappol_is_label(s, "daily"));
	assert_false(pl_snappol_is_label(s, "dail"));
	assert_false(pl_snappol_is_label(s, "daily2"));
	json_decref(s);
	s = snap("autodaily261207080509", "cv4pve-autosnap\n");
	assert_true(pl_snappol_is_label(s, "daily"));
	json_decref(s);
	s = snap("autodaily261207080509", "eve4pve-autosnap");
	assert_true(pl_snappol_is_label(s, "daily"));
	json_decref(s);
	/* named so by hand: another description */
	s = snap("autodaily261207080509", "before the upgrade");
	assert_false(pl_snappol_is_label(s, "daily"));
	json_decref(s);
	s = snap("autodaily26120708050", "cv4pve-autosnap"); /* 11 digits */
	assert_false(pl_snappol_is_label(s, "daily"));
	json_decref(s);
	s = snap("autodaily26120708050x", "cv4pve-autosnap");
	assert_false(pl_snappol_is_label(s, "daily"));
	json_decref(s);
	/* label "daily1" is not label "daily" with a longer stamp */
	s = snap("autodaily1261207080509", "cv4pve-autosnap");
	assert_false(pl_snappol_is_label(s, "daily"));
	assert_true(pl_snappol_is_label(s, "daily1"));
	json_decref(s);
}

static bool
has(const json_t *names, const char *name)
{
	const json_t *v;
	size_t i;

	json_array_foreach(names, i, v)
		if (!strcmp(json_string_value(v), name))
			return true;
	return false;
}

/* Ten runs of a keep-3 policy among snapshots that are not its own. */
static void
test_ten_runs_keep_three(void **state)
{
	static const char *const others[][2] = {
		{ "manual_before_upgrade", "" },
		{ "autodaily240101000000", "my own, named like theirs" },
		{ "autohourly240101000000", "cv4pve-autosnap" },
		{ "autodaily_x240101000000", "cv4pve-autosnap" },
		{ "pvelab-pre-7", "pvelab apply run 7" },
		{ "current", "You are here!" },
	};
	json_t *snaps = json_array(), *names;
	const json_t *v;
	size_t i;

	for (i = 0; i < PL_ARRAY_LEN(others); i++)
		json_array_append_new(snaps, snap(others[i][0], others[i][1]));
	for (int run = 0; run < 10; run++) {
		char name[64];

		/* the day rolls over between runs 3 and 4: names still sort by time */
		snprintf(name, sizeof(name), "autodaily2612%02d235959", 7 + run);
		json_array_append_new(snaps, snap(name, "cv4pve-autosnap"));
		names = pl_snappol_prune_list(snaps, "daily", 3);
		assert_int_equal(json_array_size(names), run >= 3 ? 1 : 0);
		json_array_foreach(names, i, v) {
			size_t k;
			const json_t *s;

			json_array_foreach(snaps, k, s)
				if (!strcmp(pl_json_str(s, "name"), json_string_value(v))) {
					json_array_remove(snaps, k);
					break;
				}
		}
		json_decref(names);
	}
	assert_int_equal(json_array_size(snaps), PL_ARRAY_LEN(others) + 3);
	names = json_array();
	json_array_foreach(snaps, i, v)
		json_array_append_new(names, json_string(pl_json_str(v, "name")));
	for (i = 0; i < PL_ARRAY_LEN(others); i++)
		assert_true(has(names, others[i][0]));
	assert_true(has(names, "autodaily261214235959"));
	assert_true(has(names, "autodaily261215235959"));
	assert_true(has(names, "autodaily261216235959"));
	json_decref(names);
	/* several beyond keep go oldest first */
	names = pl_snappol_prune_list(snaps, "daily", 1);
	assert_int_equal(json_array_size(names), 2);
	assert_string_equal(json_string_value(json_array_get(names, 0)), "autodaily261214235959");
	assert_string_equal(json_string_value(json_array_get(names, 1)), "autodaily261215235959");
	json_decref(names);
	json_decref(snaps);
}

static void
test_apply_retention(void **state)
{
	json_t *snaps = json_array(), *names;

	json_array_append_new(snaps, snap("pvelab-pre-9", ""));
	json_array_append_new(snaps, snap("pvelab-pre-10", ""));
	json_array_append_new(snaps, snap("pvelab-pre-100", ""));
	json_array_append_new(snaps, snap("pvelab-pre-2", ""));
	json_array_append_new(snaps, snap("pvelab-pre-x", ""));
	json_array_append_new(snaps, snap("pvelab-pre-", ""));
	json_array_append_new(snaps, snap("autodaily261207080509", "cv4pve-autosnap"));
	json_array_append_new(snaps, snap("manual", ""));
	names = pl_snappol_apply_prune_list(snaps, 2);
	/* by run number, not by name: 100 and 10 stay */
	assert_int_equal(json_array_size(names), 2);
	assert_string_equal(json_string_value(json_array_get(names, 0)), "pvelab-pre-2");
	assert_string_equal(json_string_value(json_array_get(names, 1)), "pvelab-pre-9");
	json_decref(names);
	names = pl_snappol_apply_prune_list(snaps, 10);
	assert_int_equal(json_array_size(names), 0);
	json_decref(names);
	assert_int_equal(pl_snappol_apply_run("pvelab-pre-42"), 42);
	assert_int_equal(pl_snappol_apply_run("pvelab-pre-4x"), 0);
	assert_int_equal(pl_snappol_apply_run("pvelab-pre--1"), 0);
	assert_int_equal(pl_snappol_apply_run("xpvelab-pre-1"), 0);
	json_decref(snaps);
}

static json_t *
res(long long vmid, const char *name, const char *type, const char *tags, const char *pool)
{
	json_t *g = json_pack("{s:I,s:s,s:s,s:s}", "vmid", (json_int_t)vmid, "name", name, "type",
			      type, "node", "pve1");

	if (tags)
		json_object_set_new(g, "tags", json_string(tags));
	if (pool)
		json_object_set_new(g, "pool", json_string(pool));
	return g;
}

static json_t *
vmids(const json_t *sel)
{
	json_t *out = json_array();
	const json_t *g;
	size_t i;

	json_array_foreach(sel, i, g)
		json_array_append_new(out, json_integer(pl_json_int(g, "vmid", 0)));
	return out;
}

static void
check_select(const json_t *resources, const char *policy, const char *want,
	     const char *want_missing)
{
	json_t *p = json_loads(policy, 0, NULL), *missing = json_array();
	json_t *sel = pl_snappol_select(p, resources, missing), *got = vmids(sel);
	json_t *w = json_loads(want, 0, NULL), *wm = json_loads(want_missing, 0, NULL);

	assert_non_null(p);
	if (!json_equal(got, w) || !json_equal(missing, wm)) {
		char *a = json_dumps(got, 0), *b = json_dumps(missing, 0);

		fail_msg("%s: got %s missing %s, want %s missing %s", policy, a, b, want,
			 want_missing);
	}
	json_decref(p);
	json_decref(missing);
	json_decref(sel);
	json_decref(got);
	json_decref(w);
	json_decref(wm);
}

static void
test_select(void **state)
{
	json_t *r = json_array();

	json_array_append_new(r, res(300, "proxy", "qemu", "prod;web", "infra"));
	json_array_append_new(r, res(101, "db", "lxc", "Prod", NULL));
	json_array_append_new(r, res(102, "cache", "lxc", "production", "infra"));
	json_array_append_new(r, res(103, "lab", "qemu", NULL, "lab"));
	json_array_append_new(r, json_pack("{s:s,s:s}", "type", "storage", "storage", "local"));
	json_array_append_new(r, json_pack("{s:s,s:s,s:s}", "type", "pool", "pool", "infra", "id",
					   "/pool/infra"));

	check_select(r, "{\"guests\":[\"proxy\", 103]}", "[103,300]", "[]");
	check_select(r, "{\"guests\":[\"101\", \"nope\", 999]}", "[101]", "[\"nope\",\"999\"]");
	/* tags whole and case-blind: "production" is not "prod" */
	check_select(r, "{\"tags\":[\"prod\"]}", "[101,300]", "[]");
	check_select(r, "{\"pools\":[\"infra\"]}", "[102,300]", "[]");
	check_select(r, "{\"pools\":[\"infra\"],\"tags\":[\"prod\"],\"guests\":[300]}",
		     "[101,102,300]", "[]");
	check_select(r, "{\"pools\":[\"infra\"],\"exclude\":[\"proxy\"]}", "[102]", "[]");
	check_select(r, "{\"tags\":[\"prod\"],\"exclude\":[101]}", "[300]", "[]");
	/* a storage or pool entry named like a selection is never a guest */
	check_select(r, "{\"guests\":[\"local\"]}", "[]", "[\"local\"]");
	check_select(r, "{}", "[]", "[]");
	json_decref(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_is_label),
		cmocka_unit_test(test_ten_runs_keep_three),
		cmocka_unit_test(test_apply_retention),
		cmocka_unit_test(test_select),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
