/* Unit tests for discover records and exports: which kind wins when a host
 * answers on several ports, URLs, the text table, XML and YAML escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "discover/discover.h"

static json_t *
ev(const char *json)
{
	json_t *v = json_loads(json, 0, NULL);

	assert_non_null(v);
	return v;
}

static void
test_kinds(void **state)
{
	json_t *r;

	/* xrdp on a Debian box: the SSH banner names a Unix, so linux-ssh */
	r = pl_disc_record("10.0.0.1", NULL,
			   ev("[{\"port\":22,\"proto\":\"tcp\",\"state\":\"open\",\"service\":\"ssh\","
			      "\"software\":\"OpenSSH_9.2p1\",\"os\":\"Debian\"},"
			      "{\"port\":3389,\"proto\":\"tcp\",\"state\":\"open\",\"service\":\"rdp\","
			      "\"selected_protocol\":\"ssl\"}]"));
	assert_string_equal(pl_json_str(r, "kind"), "linux-ssh");
	assert_string_equal(pl_json_str(r, "vendor"), "Debian");
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "urls"), 0)),
			    "ssh://10.0.0.1");
	assert_int_equal(json_array_size(json_object_get(r, "urls")), 2);
	json_decref(r);
	/* Windows OpenSSH and RDP: windows-rdp, RDP first */
	r = pl_disc_record("10.0.0.2", "win",
			   ev("[{\"port\":22,\"proto\":\"tcp\",\"state\":\"open\",\"service\":\"ssh\","
			      "\"os\":\"Windows\"},{\"port\":3389,\"proto\":\"tcp\",\"state\":\"open\","
			      "\"service\":\"rdp\",\"selected_protocol\":\"hybrid\"}]"));
	assert_string_equal(pl_json_str(r, "kind"), "windows-rdp");
	assert_string_equal(pl_json_str(r, "vendor"), "Microsoft");
	assert_string_equal(pl_json_str(r, "model"), "RDP (hybrid)");
	assert_string_equal(pl_json_str(r, "name"), "win");
	json_decref(r);
	/* a Proxmox node with sshd is a Proxmox node; its API URL comes first */
	r = pl_disc_record("fd00::5", NULL,
			   ev("[{\"port\":22,\"proto\":\"tcp\",\"state\":\"open\",\"service\":\"ssh\"},"
			      "{\"port\":8006,\"proto\":\"tcp\",\"state\":\"open\",\"service\":\"proxmox\"}]"));
	assert_string_equal(pl_json_str(r, "kind"), "proxmox");
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "urls"), 0)),
			    "https://[fd00::5]:8006/");
	json_decref(r);
	/* nothing identified */
	r = pl_disc_record("10.0.0.3", NULL,
			   ev("[{\"port\":25,\"proto\":\"tcp\",\"state\":\"open\",\"banner\":\"220 x\"}]"));
	assert_string_equal(pl_json_str(r, "kind"), "unknown");
	assert_true(json_is_null(json_object_get(r, "vendor")));
	assert_int_equal(json_array_size(json_object_get(r, "urls")), 0);
	json_decref(r);
}

static void
test_exports_escape(void **state)
{
	json_t *recs = json_array();
	struct pl_buf b;

	json_array_append_new(
		recs, pl_disc_record("10.0.0.9", "a&b<c>\"q\"",
				     ev("[{\"port\":22,\"proto\":\"tcp\",\"state\":\"open\","
					"\"service\":\"ssh\",\"os\":\"Debian\"}]")));
	pl_buf_init(&b, 0);
	assert_int_equal(pl_disc_export(recs, "rdm", &b, NULL), 0);
	assert_non_null(strstr(b.data, "<Name>a&amp;b&lt;c&gt;&quot;q&quot;</Name>"));
	assert_non_null(strstr(b.data, "<Group>Discovered\\Linux</Group>"));
	assert_non_null(strstr(b.data, "<HostPort>22</HostPort>"));
	pl_buf_reset(&b);
	assert_int_equal(pl_disc_export(recs, "inventory", &b, NULL), 0);
	assert_non_null(strstr(b.data, "\"a&b<c>\\\"q\\\"\":"));
	assert_non_null(strstr(b.data, "    linux_ssh:\n"));
	pl_buf_reset(&b);
	assert_int_equal(pl_disc_export(recs, "rdm-json", &b, NULL), 0);
	assert_non_null(strstr(b.data, "\"ConnectionType\": 77"));
	pl_buf_reset(&b);
	pl_disc_format_text(recs, &b);
	assert_non_null(strstr(b.data, "22/ssh\n"));
	pl_buf_release(&b);
	assert_int_equal(pl_disc_export(recs, "csv", &b, NULL), PL_EINVAL);
	json_decref(recs);
}

/* Device strings with Jinja markers go to Ansible as !unsafe text. */
static void
test_inventory_unsafe(void **state)
{
	json_t *recs = json_pack("[{s:s,s:s,s:s,s:s,s:s,s:[s]}]", "address", "10.0.0.7", "name",
				 "{{ lookup('pipe','id') }}", "kind", "bmc", "vendor", "{% raw %}x",
				 "model", "R640", "urls", "https://10.0.0.7/{#c#}");
	struct pl_buf b;

	(void)state;
	pl_buf_init(&b, 0);
	assert_int_equal(pl_disc_export(recs, "inventory", &b, NULL), 0);
	assert_null(strstr(b.data, "lookup"));
	assert_non_null(strstr(b.data, "        \"10.0.0.7\":\n"));
	assert_non_null(strstr(b.data, "pvelab_vendor: !unsafe \"{% raw %}x\""));
	assert_non_null(strstr(b.data, "pvelab_model: \"R640\""));
	assert_non_null(strstr(b.data, "[!unsafe \"https://10.0.0.7/{#c#}\"]"));
	pl_buf_release(&b);
	json_decref(recs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_exports_escape),
		cmocka_unit_test(test_inventory_unsafe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
