/* Unit tests for sim/schema: the path router over the embedded PVE schema and
 * parameter validation with PVE's messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/err.h"
#include "core/propstr.h"
#include "sim/schema.h"

static struct pl_sim_schema *S;

static int
setup(void **state)
{
	char *err = NULL;

	S = pl_sim_schema_load("9.1", &err);
	if (!S)
		fprintf(stderr, "schema: %s\n", err);
	free(err);
	return S ? 0 : -1;
}

static int
teardown(void **state)
{
	pl_sim_schema_free(S);
	pl_pfmt_cleanup();
	return 0;
}

static const struct pl_sim_method *
method(const char *meth, const char *path, json_t **vars)
{
	const struct pl_sim_path *p = pl_sim_route(S, path, vars);

	return p ? p->methods[pl_sim_meth_parse(meth)] : NULL;
}

static void
test_route(void **state)
{
	json_t *vars = NULL;
	const struct pl_sim_path *p;

	p = pl_sim_route(S, "/nodes/pve1/qemu/100/status/start", &vars);
	assert_non_null(p);
	assert_string_equal(p->path, "/nodes/{node}/qemu/{vmid}/status/start");
	assert_string_equal(json_string_value(json_object_get(vars, "node")), "pve1");
	assert_string_equal(json_string_value(json_object_get(vars, "vmid")), "100");
	assert_non_null(p->methods[PL_SIM_POST]);
	assert_null(p->methods[PL_SIM_GET]);
	json_decref(vars);

	/* literal segments win over variables */
	p = pl_sim_route(S, "/nodes/pve/qemu", &vars);
	assert_string_equal(p->path, "/nodes/{node}/qemu");
	json_decref(vars);
	p = pl_sim_route(S, "/cluster/resources", &vars);
	assert_string_equal(p->path, "/cluster/resources");
	assert_int_equal(json_object_size(vars), 0);
	json_decref(vars);

	/* a UPID (colons) and a volume id (slash, escaped) as variables */
	p = pl_sim_route(S, "/nodes/pve/tasks/UPID:pve:00001000:00000001:5FBE5E7B:qmstart:100:root@pam:/status",
			 &vars);
	assert_string_equal(p->path, "/nodes/{node}/tasks/{upid}/status");
	assert_string_equal(json_string_value(json_object_get(vars, "upid")),
			    "UPID:pve:00001000:00000001:5FBE5E7B:qmstart:100:root@pam:");
	json_decref(vars);
	p = pl_sim_route(S, "/nodes/pve/storage/local/content/local:iso/debian.iso", &vars);
	assert_non_null(p);
	assert_string_equal(p->path, "/nodes/{node}/storage/{storage}/content/{volume}");
	assert_string_equal(json_string_value(json_object_get(vars, "volume")), "local:iso/debian.iso");
	json_decref(vars);
	p = pl_sim_route(S, "/nodes/pve/storage/local/content/local%3Aiso%2Fx.iso", &vars);
	assert_string_equal(json_string_value(json_object_get(vars, "volume")), "local:iso/x.iso");
	json_decref(vars);

	/* unknown paths */
	assert_null(pl_sim_route(S, "/foo", &vars));
	assert_null(vars);
	assert_null(pl_sim_route(S, "/nodes/pve/frobnicate", &vars));
	assert_null(pl_sim_route(S, "/", &vars)); /* the schema has no methods at the root */
	assert_non_null(pl_sim_schema_find(S, "/nodes/{node}/lxc/{vmid}/config"));
	assert_null(pl_sim_schema_find(S, "/nodes/{node}/lxc/{vmid}/nothing"));
}

/* Validate a request given as "k=v" pairs; returns the errors object. */
static json_t *
check(const char *meth, const char *path, ...)
{
	json_t *vars = NULL, *params, *errors = json_object();
	const struct pl_sim_method *m = method(meth, path, &vars);
	const char *kv;
	va_list ap;

	assert_non_null(m);
	params = json_deep_copy(vars);
	va_start(ap, path);
	while ((kv = va_arg(ap, const char *)) != NULL) {
		const char *eq = strchr(kv, '=');
		char *k = pl_strndup(kv, (size_t)(eq - kv));

		json_object_set_new(params, k, json_string(eq + 1));
		free(k);
	}
	va_end(ap);
	pl_sim_validate(m, params, errors);
	json_decref(params);
	json_decref(vars);
	return errors;
}

static void
assert_err(json_t *errors, const char *key, const char *msg)
{
	const char *got = json_string_value(json_object_get(errors, key));

	if (!got || strcmp(got, msg) != 0)
		fail_msg("error of '%s': want '%s', got '%s'", key, msg, got ? got : "(none)");
}

static void
test_validate(void **state)
{
	json_t *e;

	e = check("GET", "/cluster/nextid", "vmid=99", NULL);
	assert_err(e, "vmid", "invalid format - value does not look like a valid VM ID\n");
	json_decref(e);
	e = check("GET", "/cluster/nextid", "vmid=100", NULL);
	assert_int_equal(json_object_size(e), 0);
	json_decref(e);

	e = check("POST", "/nodes/pve/qemu", "vmid=100", "bogus=1", "cores=two", "acpi=maybe",
		  "ostype=plan9", "memory=2048", "name=web", "net0=virtio,bridge=vmbr0",
		  "scsi0=local-lvm:32,discard=on", "net1=virtio,tag=99999", "boot=order=scsi0;net0",
		  NULL);
	assert_err(e, "bogus",
		   "property is not defined in schema and the schema does not allow additional "
		   "properties");
	assert_err(e, "cores", "type check ('integer') failed - got 'two'");
	assert_err(e, "acpi", "type check ('boolean') failed - got 'maybe'");
	assert_non_null(strstr(json_string_value(json_object_get(e, "ostype")),
			       "does not have a value in the enumeration 'other, wxp"));
	assert_non_null(json_object_get(e, "net1"));
	assert_null(json_object_get(e, "net0"));
	assert_null(json_object_get(e, "scsi0"));
	assert_null(json_object_get(e, "memory"));
	assert_null(json_object_get(e, "boot"));
	assert_int_equal(json_object_size(e), 5);
	json_decref(e);

	e = check("POST", "/nodes/pve/qemu", NULL);
	assert_err(e, "vmid", "property is missing and it is not optional");
	json_decref(e);
	e = check("POST", "/nodes/pve/qemu", "vmid=100", "cores=0", "vcpus=5000", NULL);
	assert_err(e, "cores", "value must have a minimum value of 1");
	assert_null(json_object_get(e, "vcpus")); /* vcpus has no fixed maximum */
	json_decref(e);
	e = check("GET", "/cluster/nextid", "vmid=1000000000", NULL);
	assert_err(e, "vmid", "invalid format - value does not look like a valid VM ID\n");
	json_decref(e);

	/* path variables are parameters too */
	e = check("GET", "/nodes/bad_node!/qemu", NULL);
	assert_err(e, "node", "invalid format - value does not look like a valid node name\n");
	json_decref(e);

	/* indexed parameters: net[n] covers net0..; not "net" or "netx" */
	e = check("PUT", "/nodes/pve/lxc/100/config", "net3=name=eth3,bridge=vmbr0", "netx=1",
		  "mp0=local-lvm:8,mp=/srv", "hostname=ct1", NULL);
	assert_int_equal(json_object_size(e), 1);
	assert_non_null(json_object_get(e, "netx"));
	json_decref(e);

	/* patterns (translated from Perl) and maxLength */
	e = check("PUT", "/nodes/pve/qemu/100/resize", "disk=scsi0", "size=+10G", NULL);
	assert_int_equal(json_object_size(e), 0);
	json_decref(e);
	e = check("PUT", "/nodes/pve/qemu/100/resize", "disk=scsi0", "size=ten", NULL);
	assert_err(e, "size", "value does not match the regex pattern");
	json_decref(e);
	e = check("POST", "/nodes/pve/network", "iface=9bad", "type=bridge", NULL);
	assert_err(e, "iface", "invalid format - invalid network interface name '9bad'\n");
	json_decref(e);
	e = check("POST", "/nodes/pve/network", "iface=vmbr5", "type=bridge",
		  "cidr=10.0.0.1/24", "address=10.0.0.300", NULL);
	assert_int_equal(json_object_size(e), 1);
	assert_non_null(json_object_get(e, "address"));
	json_decref(e);
}

/* The formats of path variables, checked without a regex: PVE's patterns at
 * their edges. */
static void
test_path_formats(void **state)
{
	static const char *const good_vmids[] = { "100", "999999999", "4711" };
	static const char *const bad_vmids[] = { "99", "099", "1000000000", "10a", "", "+100" };
	static const char *const good_nodes[] = { "a", "pve", "pve-1", "PVE2", "9" };
	static const char *const bad_nodes[] = { "-pve", "pve-", "pve_1", "pv%20e" };
	static const char *const good_ints[] = { "2", "+2", "0002" };
	static const char *const bad_ints[] = { "+", "-", "2 ", "2.0", "" };
	json_t *e;
	char q[64], path[64];

	for (size_t i = 0; i < PL_ARRAY_LEN(good_vmids); i++) {
		snprintf(q, sizeof(q), "vmid=%s", good_vmids[i]);
		e = check("GET", "/cluster/nextid", q, NULL);
		assert_int_equal(json_object_size(e), 0);
		json_decref(e);
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(bad_vmids); i++) {
		snprintf(q, sizeof(q), "vmid=%s", bad_vmids[i]);
		e = check("GET", "/cluster/nextid", q, NULL);
		assert_non_null(json_object_get(e, "vmid"));
		json_decref(e);
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(good_nodes); i++) {
		snprintf(path, sizeof(path), "/nodes/%s/qemu", good_nodes[i]);
		e = check("GET", path, NULL);
		assert_int_equal(json_object_size(e), 0);
		json_decref(e);
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(bad_nodes); i++) {
		snprintf(path, sizeof(path), "/nodes/%s/qemu", bad_nodes[i]);
		e = check("GET", path, NULL);
		assert_err(e, "node", "invalid format - value does not look like a valid node name\n");
		json_decref(e);
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(good_ints); i++) {
		snprintf(q, sizeof(q), "sockets=%s", good_ints[i]);
		e = check("POST", "/nodes/pve/qemu", "vmid=100", q, NULL);
		assert_null(json_object_get(e, "sockets"));
		json_decref(e);
	}
	for (size_t i = 0; i < PL_ARRAY_LEN(bad_ints); i++) {
		snprintf(q, sizeof(q), "sockets=%s", bad_ints[i]);
		e = check("POST", "/nodes/pve/qemu", "vmid=100", q, NULL);
		snprintf(path, sizeof(path), "type check ('integer') failed - got '%s'", bad_ints[i]);
		assert_err(e, "sockets", path);
		json_decref(e);
	}
}

static void
test_check_value(void **state)
{
	json_t *vars = NULL;
	const struct pl_sim_method *m = method("POST", "/nodes/pve/qemu/100/config", &vars);
	const struct pl_api_param *p = pl_sim_param_find(m, "ipconfig0");
	char *e;

	json_decref(vars);
	assert_non_null(p);
	assert_string_equal(p->name, "ipconfig");
	assert_true(p->indexed);
	assert_null(pl_api_check_value(p, "ip=10.0.0.5/24,gw=10.0.0.1"));
	assert_null(pl_sim_param_find(m, "ipconfig"));
	assert_null(pl_sim_param_find(m, "ipconfig[n]"));
	assert_null(pl_sim_param_find(m, "ipconfigx0"));
	assert_ptr_equal(pl_sim_param_find(m, "ipconfig12"), p);
	assert_string_equal(pl_sim_param_find(m, "cores")->name, "cores");
	p = pl_sim_param_find(m, "tags");
	assert_null(pl_api_check_value(p, "web;prod"));
	p = pl_sim_param_find(m, "onboot");
	assert_null(pl_api_check_value(p, "yes"));
	assert_null(pl_api_check_value(p, "0"));
	e = pl_api_check_value(p, "2");
	assert_string_equal(e, "type check ('boolean') failed - got '2'");
	free(e);
	{
		json_t *arr = json_array();

		assert_null(pl_api_value_text(arr));
		json_decref(arr);
	}
}

static void
test_value_text(void **state)
{
	json_t *v = json_pack("{s:i,s:b,s:s,s:f,s:n}", "i", 42, "b", 1, "s", "x", "f", 1.5, "n");
	char *t;

	t = pl_api_value_text(json_object_get(v, "i"));
	assert_string_equal(t, "42");
	free(t);
	t = pl_api_value_text(json_object_get(v, "b"));
	assert_string_equal(t, "1");
	free(t);
	t = pl_api_value_text(json_object_get(v, "f"));
	assert_string_equal(t, "1.5");
	free(t);
	t = pl_api_value_text(json_object_get(v, "n"));
	assert_string_equal(t, "");
	free(t);
	json_decref(v);
	assert_int_equal(pl_sim_meth_parse("PATCH"), -1);
	assert_string_equal(pl_sim_meth_name(PL_SIM_DELETE), "DELETE");
}

static void
test_pve84(void **state)
{
	char *err = NULL;
	struct pl_sim_schema *s84 = pl_sim_schema_load("8.4", &err);
	json_t *vars = NULL;

	assert_non_null(s84);
	assert_string_equal(s84->version, "8.4");
	assert_null(pl_sim_route(s84, "/cluster/ha/rules", &vars));
	assert_non_null(pl_sim_route(S, "/cluster/ha/rules", &vars));
	json_decref(vars);
	pl_sim_schema_free(s84);
	assert_null(pl_sim_schema_load("7.0", &err));
	assert_non_null(strstr(err, "unknown PVE version '7.0'"));
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_path_formats),
		cmocka_unit_test(test_check_value),
		cmocka_unit_test(test_value_text),
		cmocka_unit_test(test_pve84),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
