/* Unit tests for plan/firewall: the calls a rule list's plan makes, carried
 * out on a model of PVE's list (pve-firewall Rules.pm: create unshifts,
 * update_rule's moveto lands before the rule at N, delete splices), turn any
 * live list into the declared one; an equal list plans nothing; appending
 * costs one create and one move; options compare with PVE's defaults. A
 * scope's recorded state comes back through pl_fw_undo's calls from any
 * later list, and only from the list the run left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "plan/firewall.h"

#include <stdlib.h>

#define PATH "/nodes/pve/qemu/100/firewall/rules"

static const char *const pool[] = {
	"{action: ACCEPT, proto: tcp, dport: '80'}",
	"{action: ACCEPT, proto: tcp, dport: '443', comment: web}",
	"{action: DROP, proto: udp, dport: '53'}",
	"{action: ACCEPT, macro: SSH, source: 10.0.0.0/24}",
	"{type: out, action: REJECT, proto: tcp, dport: '25'}",
	"{action: ACCEPT, proto: tcp, dport: '8000:8010', enable: false}",
	"{type: group, action: web}",
};

/* pool[i] as PVE's GET answers it. */
static json_t *
live_of(size_t i)
{
	static const char *const json[] = {
		"{\"type\":\"in\",\"action\":\"ACCEPT\",\"proto\":\"tcp\",\"dport\":\"80\","
		"\"enable\":1}",
		"{\"type\":\"in\",\"action\":\"ACCEPT\",\"proto\":\"tcp\",\"dport\":\"443\","
		"\"comment\":\"web\",\"enable\":1}",
		"{\"type\":\"in\",\"action\":\"DROP\",\"proto\":\"udp\",\"dport\":\"53\","
		"\"enable\":1}",
		"{\"type\":\"in\",\"action\":\"ACCEPT\",\"macro\":\"SSH\",\"source\":\"10.0.0.0/"
		"24\",\"enable\":1,\"ipversion\":4}",
		"{\"type\":\"out\",\"action\":\"REJECT\",\"proto\":\"tcp\",\"dport\":\"25\","
		"\"enable\":1}",
		"{\"type\":\"in\",\"action\":\"ACCEPT\",\"proto\":\"tcp\",\"dport\":\"8000:8010\"}",
		"{\"type\":\"group\",\"action\":\"web\",\"enable\":1}",
	};

	return json_loads(json[i], 0, NULL);
}

static struct pl_config *
config_of(const size_t *want, size_t n, const char *options)
{
	struct pl_buf b;
	struct pl_config *c = NULL;
	struct pl_diags d;

	pl_buf_init(&b, 0);
	pl_buf_addf(&b,
		    "firewall: {groups: {web: {rules: []}}}\nguests:\n  - name: g\n    vmid: 100\n"
		    "    firewall:\n%s      rules:%s\n",
		    options ? options : "", n ? "" : " []");
	for (size_t i = 0; i < n; i++)
		pl_buf_addf(&b, "        - %s\n", pool[want[i]]);
	pl_diags_init(&d);
	assert_int_equal(pl_config_load_string("t.yaml", b.data, b.len, &c, &d), 0);
	assert_non_null(c);
	pl_diags_release(&d);
	pl_buf_release(&b);
	return c;
}

static json_t *
snap_of(json_t *live_rules, json_t *live_opts)
{
	json_t *s = json_pack("{s:[{s:i,s:s,s:s,s:s}],s:{s:o}}", "guests", "vmid", 100, "node",
			      "pve", "type", "qemu", "name", "g", "firewall", PATH, live_rules);

	if (live_opts)
		json_object_set_new(json_object_get(s, "firewall"),
				    "/nodes/pve/qemu/100/firewall/options", live_opts);
	return s;
}

/* The guest's firewall change of a plan (borrowed from changes), or NULL. */
static const json_t *
guest_change(const json_t *changes)
{
	const json_t *c;
	size_t i;

	json_array_foreach(changes, i, c)
		if (!strcmp(pl_json_str_or(c, "scope", ""), "guest"))
			return c;
	return NULL;
}

/* Carry the calls out on list as PVE does. */
static void
run_calls(json_t *list, const json_t *calls)
{
	const json_t *c;
	size_t i;

	json_array_foreach(calls, i, c) {
		const char *m = pl_json_str(c, "method"), *path = pl_json_str(c, "path");
		const json_t *params = json_object_get(c, "params");

		if (!strcmp(m, "POST")) {
			assert_string_equal(path, PATH);
			json_array_insert_new(list, 0, json_deep_copy(params));
			continue;
		}
		assert_memory_equal(path, PATH "/", strlen(PATH) + 1);
		size_t pos = (size_t)strtoul(path + strlen(PATH) + 1, NULL, 10);

		assert_true(pos < json_array_size(list));
		assert_string_equal(pl_json_str(c, "list"), PATH); /* carries the digest */
		if (!strcmp(m, "DELETE")) {
			json_array_remove(list, pos);
		} else if (json_object_get(params, "moveto")) {
			size_t to = (size_t)json_integer_value(json_object_get(params, "moveto"));
			json_t *moved = json_incref(json_array_get(list, pos)), *out = json_array();

			for (size_t k = 0; k < json_array_size(list); k++) {
				if (k == pos)
					continue;
				if (k == to)
					json_array_append(out, moved);
				json_array_append(out, json_array_get(list, k));
			}
			if (to >= json_array_size(list))
				json_array_append(out, moved);
			json_array_clear(list);
			json_array_extend(list, out);
			json_decref(out);
			json_decref(moved);
		} else {
			json_t *r = json_array_get(list, pos);
			const char *k;
			json_t *v;

			if (pl_json_str(params, "delete")) {
				char *del = pl_strdup(pl_json_str(params, "delete")), *save = NULL;

				for (char *t = strtok_r(del, ",", &save); t;
				     t = strtok_r(NULL, ",", &save))
					json_object_del(r, t);
				free(del);
			}
			json_object_foreach((json_t *)params, k, v)
				if (strcmp(k, "delete"))
					json_object_set(r, k, v);
		}
	}
}

/* Plan want against live, carry the calls out, and plan again: nothing. */
static size_t
converge(const size_t *live, size_t nl, const size_t *want, size_t nw)
{
	struct pl_config *c = config_of(want, nw, NULL);
	json_t *rules = json_array(), *changes = json_array(), *s;
	const json_t *ch;
	size_t ncalls = 0;

	for (size_t i = 0; i < nl; i++)
		json_array_append_new(rules, live_of(live[i]));
	s = snap_of(json_deep_copy(rules), NULL);
	pl_fw_plan(c, s, NULL, changes, NULL);
	if ((ch = guest_change(changes)) != NULL) {
		ncalls = json_array_size(json_object_get(ch, "calls"));
		assert_string_equal(pl_json_str(json_object_get(ch, "digests"), PATH), "");
		run_calls(rules, json_object_get(ch, "calls"));
	}
	json_decref(s);
	json_array_clear(changes);
	s = snap_of(rules, NULL);
	pl_fw_plan(c, s, NULL, changes, NULL);
	assert_null(guest_change(changes));
	json_decref(s);
	json_decref(changes);
	pl_config_free(c);
	return ncalls;
}

static void
test_random_lists_converge(void **state)
{
	unsigned seed = 28;

	(void)state;
	for (int round = 0; round < 400; round++) {
		size_t live[8], want[8], nl = (size_t)rand_r(&seed) % 7,
					 nw = (size_t)rand_r(&seed) % 7;

		for (size_t i = 0; i < nl; i++)
			live[i] = (size_t)rand_r(&seed) % PL_ARRAY_LEN(pool);
		for (size_t i = 0; i < nw; i++)
			want[i] = (size_t)rand_r(&seed) % PL_ARRAY_LEN(pool);
		converge(live, nl, want, nw);
	}
}

static void
test_small_changes_cost_little(void **state)
{
	size_t a[] = { 0, 1, 2 }, b[] = { 0, 1, 2, 3 }, c[] = { 3, 0, 1, 2 }, d[] = { 1, 2, 0 };

	(void)state;
	assert_int_equal(converge(a, 3, a, 3), 0); /* equal: no change at all */
	assert_int_equal(converge(a, 3, c, 4), 1); /* prepend: one create */
	assert_int_equal(converge(a, 3, b, 4), 2); /* append: a create and a move */
	assert_int_equal(converge(a, 3, d, 3), 1); /* rotate: one move */
	assert_int_equal(converge(b, 4, a, 3), 1); /* drop the last: one delete */
}

static void
test_options_against_defaults(void **state)
{
	struct pl_config *c = config_of(
		NULL, 0,
		"      options: {enable: true, macfilter: true, policy_in: DROP, dhcp: true}\n");
	json_t *changes = json_array(),
	       *s = snap_of(json_array(), json_pack("{s:s}", "digest", "abc"));
	const json_t *ch, *call;

	(void)state;
	pl_fw_plan(c, s, NULL, changes, NULL);
	ch = guest_change(changes);
	assert_non_null(ch);
	/* macfilter and policy_in are PVE's defaults: only enable and dhcp differ */
	assert_int_equal(json_array_size(json_object_get(ch, "calls")), 1);
	call = json_array_get(json_object_get(ch, "calls"), 0);
	assert_string_equal(pl_json_str(call, "method"), "PUT");
	assert_int_equal(json_object_size(json_object_get(call, "params")), 2);
	assert_string_equal(pl_json_str(json_object_get(call, "params"), "enable"), "1");
	assert_string_equal(pl_json_str(json_object_get(call, "params"), "dhcp"), "1");
	assert_string_equal(
		pl_json_str(json_object_get(ch, "digests"), "/nodes/pve/qemu/100/firewall/options"),
		"abc");
	json_decref(changes);
	json_decref(s);
	pl_config_free(c);
}

/* A guest scope with these rules (and options) as its reads. */
static json_t *
reads_of(json_t *rules, json_t *opts)
{
	json_t *r = json_pack("{s:o}", PATH, rules);

	if (opts)
		json_object_set_new(r, "/nodes/pve/qemu/100/firewall/options", opts);
	return r;
}

static const char scope[] = "{\"scope\":\"guest\",\"node\":\"pve\",\"type\":\"qemu\","
			    "\"vmid\":100,\"guest\":\"g\"}";

static void
test_undo_restores_any_list_exactly(void **state)
{
	unsigned seed = 692;

	(void)state;
	for (int round = 0; round < 400; round++) {
		json_t *before = json_array(), *after = json_array(),
		       *hist = json_loads(scope, 0, NULL);
		json_t *rb, *ra, *u, *back;
		size_t nb = (size_t)rand_r(&seed) % 7, na = (size_t)rand_r(&seed) % 7;
		char *why = NULL;

		for (size_t i = 0; i < nb; i++)
			json_array_append_new(before,
					      live_of((size_t)rand_r(&seed) % PL_ARRAY_LEN(pool)));
		for (size_t i = 0; i < na; i++)
			json_array_append_new(after,
					      live_of((size_t)rand_r(&seed) % PL_ARRAY_LEN(pool)));
		rb = reads_of(json_deep_copy(before), NULL);
		ra = reads_of(json_deep_copy(after), NULL);
		json_object_set_new(hist, "before", pl_fw_scope_state(hist, rb));
		json_object_set_new(hist, "after", pl_fw_scope_state(hist, ra));
		u = pl_fw_undo(hist, ra, NULL, &why);
		assert_null(why);
		if (json_equal(json_object_get(hist, "before"), json_object_get(hist, "after"))) {
			assert_null(u); /* nothing to put back */
		} else {
			assert_non_null(u);
			assert_true(json_is_true(json_object_get(u, "undo")));
			run_calls(json_object_get(ra, PATH), json_object_get(u, "calls"));
			back = pl_fw_scope_state(hist, ra);
			assert_true(json_equal(back, json_object_get(hist, "before")));
			json_decref(back);
		}
		json_decref(u);
		json_decref(rb);
		json_decref(ra);
		json_decref(hist);
		json_decref(before);
		json_decref(after);
	}
}

static void
test_undo_refuses_a_list_changed_since(void **state)
{
	json_t *hist = json_loads(scope, 0, NULL), *ra, *now, *u, *d, *back;
	char *why = NULL;

	(void)state;
	ra = reads_of(json_pack("[o,o]", live_of(0), live_of(1)),
		      json_pack("{s:i,s:s}", "enable", 1, "policy_in", "REJECT"));
	json_object_set_new(
		hist, "before",
		json_pack("{s:{s:s,s:s},s:[]}", "options", "enable", "1", "dhcp", "1", "rules"));
	json_object_set_new(hist, "after", pl_fw_scope_state(hist, ra));
	/* the options go back first: dhcp set again, policy_in deleted */
	u = pl_fw_undo(hist, ra, NULL, &why);
	assert_null(why);
	assert_string_equal(pl_json_str(json_array_get(json_object_get(u, "calls"), 0), "path"),
			    "/nodes/pve/qemu/100/firewall/options");
	assert_string_equal(
		pl_json_str(
			json_object_get(json_array_get(json_object_get(u, "calls"), 0), "params"),
			"delete"),
		"policy_in");
	json_decref(u);
	/* a rule's comment changed by hand since the run */
	now = json_deep_copy(ra);
	json_object_set_new(json_array_get(json_object_get(now, PATH), 1), "comment",
			    json_string("by hand"));
	assert_null(pl_fw_undo(hist, now, NULL, &why));
	assert_non_null(why);
	assert_string_equal(why, "its firewall changed since the run (rule 1)");
	free(why);
	/* the readable difference: the rule out and in again at its place */
	back = pl_fw_scope_state(hist, now);
	d = pl_fw_state_diff(json_object_get(hist, "after"), back);
	json_decref(back);
	assert_int_equal(json_array_size(d), 2);
	assert_string_equal(pl_json_str(json_array_get(d, 0), "key"), "rule 1");
	json_decref(d);
	json_decref(now);
	json_decref(ra);
	json_decref(hist);
}

static void
test_uses_names_groups_sets_and_aliases(void **state)
{
	json_t *uses = json_object(),
	       *rules = json_loads("[{\"type\":\"group\",\"action\":\"web\"},"
				   "{\"type\":\"in\",\"action\":\"ACCEPT\",\"source\":"
				   "\"+dc/admins,nas,10.0.0.1,fe80::1\",\"dest\":\"+lan\"}]",
				   0, NULL);

	(void)state;
	pl_fw_uses(rules, "g", uses);
	assert_int_equal(json_object_size(uses), 4);
	assert_string_equal(pl_json_str(uses, "web"), "g");
	assert_non_null(json_object_get(uses, "admins"));
	assert_non_null(json_object_get(uses, "nas"));
	assert_non_null(json_object_get(uses, "lan"));
	json_decref(uses);
	json_decref(rules);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_lists_converge),
		cmocka_unit_test(test_small_changes_cost_little),
		cmocka_unit_test(test_options_against_defaults),
		cmocka_unit_test(test_undo_restores_any_list_exactly),
		cmocka_unit_test(test_undo_refuses_a_list_changed_since),
		cmocka_unit_test(test_uses_names_groups_sets_and_aliases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
