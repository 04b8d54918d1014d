/* Unit tests for model/guest: desired configs from YAML guests, and per-key
 * comparison with live configs (no phantom diffs, correct classes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/json.h"
#include "core/propstr.h"
#include "model/guest.h"

static json_t *
J(const char *text)
{
	json_t *v = json_loads(text, 0, NULL);

	assert_non_null(v);
	return v;
}

static void
test_vm_desired(void **state)
{
	json_t *g = J("{\"name\":\"web\",\"type\":\"vm\",\"vmid\":101,\"cores\":2,\"memory\":2048,"
		      "\"onboot\":true,\"tags\":[\"Web\",\"prod\"],\"state\":\"running\","
		      "\"networks\":[{\"bridge\":\"vmbr0\",\"vlan\":20,\"firewall\":true,\"ip\":\"10.0.0.5/24\",\"gw\":\"10.0.0.1\"}],"
		      "\"disks\":[{\"storage\":\"local-lvm\",\"size\":\"32G\",\"bus\":\"scsi\",\"options\":{\"iothread\":true}},"
		      "{\"storage\":\"local-lvm\",\"size\":\"512M\",\"bus\":\"scsi\"}],"
		      "\"hostpci\":[{\"host\":\"0000:01:00\",\"pcie\":true,\"x_vga\":true}],"
		      "\"startup\":{\"order\":2,\"up\":30},\"config\":{\"vga\":\"std\"}}");
	struct pl_model_guest m;

	assert_int_equal(pl_model_guest_from_config(g, &m, NULL), 0);
	assert_false(m.lxc);
	assert_int_equal(m.vmid, 101);
	assert_true(m.running);
	assert_string_equal(pl_json_str(m.config, "name"), "web");
	assert_int_equal(pl_json_int(m.config, "memory", 0), 2048);
	assert_string_equal(pl_json_str(m.config, "onboot"), "1");
	assert_string_equal(pl_json_str(m.config, "tags"), "prod;pvelab;web");
	assert_string_equal(pl_json_str(m.config, "net0"), "virtio,bridge=vmbr0,firewall=1,tag=20");
	assert_string_equal(pl_json_str(m.config, "ipconfig0"), "gw=10.0.0.1,ip=10.0.0.5/24");
	assert_string_equal(pl_json_str(m.config, "scsi0"), "local-lvm:32,iothread=1");
	assert_string_equal(pl_json_str(m.config, "scsi1"), "local-lvm:0.5");
	assert_string_equal(pl_json_str(m.config, "hostpci0"), "0000:01:00,pcie=1,x-vga=1");
	assert_string_equal(pl_json_str(m.config, "startup"), "2,up=30");
	assert_string_equal(pl_json_str(m.config, "vga"), "std");
	assert_string_equal(pl_json_str(m.config, "ide2"), "local-lvm:cloudinit");
	assert_string_equal(pl_json_str(m.defaults, "ide2"), "storage"); /* never compared */
	assert_null(json_object_get(m.defaults, "scsi0"));
	pl_model_guest_release(&m);
	json_decref(g);
}

static void
test_ct_desired(void **state)
{
	json_t *g = J("{\"name\":\"plex\",\"type\":\"lxc\",\"vmid\":120,\"ostemplate\":\"local:vztmpl/d.tar.zst\","
		      "\"unprivileged\":true,\"features\":{\"nesting\":true},\"rootfs\":{\"storage\":\"local-lvm\",\"size\":\"8G\"},"
		      "\"networks\":[{\"bridge\":\"vmbr0\",\"ip\":\"192.168.0.207/24\",\"gw\":\"192.168.0.1\"}],"
		      "\"mounts\":[{\"volume\":\"/data\",\"path\":\"/data\"}],\"state\":\"stopped\"}");
	struct pl_model_guest m;

	assert_int_equal(pl_model_guest_from_config(g, &m, NULL), 0);
	assert_true(m.lxc);
	assert_false(m.running);
	assert_string_equal(pl_json_str(m.config, "hostname"), "plex");
	assert_string_equal(pl_json_str(m.config, "net0"),
			    "name=eth0,bridge=vmbr0,gw=192.168.0.1,ip=192.168.0.207/24");
	assert_string_equal(pl_json_str(m.config, "rootfs"), "local-lvm:8");
	assert_string_equal(pl_json_str(m.config, "mp0"), "/data,mp=/data");
	assert_string_equal(pl_json_str(m.config, "features"), "nesting=1");
	assert_string_equal(pl_json_str(m.create, "ostemplate"), "local:vztmpl/d.tar.zst");
	pl_model_guest_release(&m);
	json_decref(g);
}

/* Defaults pvelab fills in for a create are marked, so that the planner never
 * compares them with a live guest (issue 15: rootfs read as local-lvm:8). */
static void
test_defaults_marked(void **state)
{
	json_t *ct = J("{\"name\":\"c\",\"type\":\"lxc\",\"vmid\":320}");
	json_t *sized = J("{\"name\":\"c\",\"type\":\"lxc\",\"rootfs\":{\"size\":\"6G\"},"
			  "\"mounts\":[{\"path\":\"/a\",\"storage\":\"vault\"}],\"config\":{\"mp1\":\"/x,mp=/x\"}}");
	json_t *vm = J("{\"name\":\"v\",\"disks\":[{\"size\":\"8G\"},{\"storage\":\"vault\",\"size\":\"2G\"}]}");
	struct pl_model_guest m;

	assert_int_equal(pl_model_guest_from_config(ct, &m, NULL), 0);
	assert_string_equal(pl_json_str(m.config, "rootfs"), "local-lvm:8"); /* a create still works */
	assert_string_equal(pl_json_str(m.defaults, "rootfs"), "all");
	pl_model_guest_release(&m);
	assert_int_equal(pl_model_guest_from_config(sized, &m, NULL), 0);
	assert_string_equal(pl_json_str(m.defaults, "rootfs"), "storage");
	assert_string_equal(pl_json_str(m.defaults, "mp0"), "size");
	assert_null(json_object_get(m.defaults, "mp1"));
	pl_model_guest_release(&m);
	assert_int_equal(pl_model_guest_from_config(vm, &m, NULL), 0);
	assert_string_equal(pl_json_str(m.defaults, "scsi0"), "storage");
	assert_null(json_object_get(m.defaults, "scsi1"));
	assert_null(json_object_get(m.defaults, "ide2")); /* no cloud-init, no drive */
	pl_model_guest_release(&m);
	json_decref(ct);
	json_decref(sized);
	json_decref(vm);
}

/* A config about to be created: every property string parses with the
 * schema's codec; the storages its disks use and the content they need. */
static void
test_create_check(void **state)
{
	json_t *ok = J("{\"rootfs\":\"vault:8\",\"mp0\":\"local-lvm:2,mp=/a\",\"mp1\":\"/srv,mp=/b\","
		       "\"net0\":\"name=eth0,bridge=vmbr0,ip=dhcp\"}");
	json_t *bad = J("{\"net0\":\"name=eth0,bridge=vmbr0,bogus=1\"}");
	json_t *vm = J("{\"scsi0\":\"local-lvm:8\",\"ide2\":\"local:iso/d.iso,media=cdrom\"}");
	json_t *needs = NULL;
	char *err = NULL;

	assert_int_equal(pl_model_create_check(true, ok, &needs, &err), 0);
	assert_string_equal(pl_json_str(needs, "vault"), "rootdir");
	assert_string_equal(pl_json_str(needs, "local-lvm"), "rootdir");
	assert_int_equal(json_object_size(needs), 2);
	json_decref(needs);
	assert_int_equal(pl_model_create_check(false, vm, &needs, &err), 0);
	assert_string_equal(pl_json_str(needs, "local-lvm"), "images");
	assert_int_equal(json_object_size(needs), 1); /* a CD-ROM needs no images */
	json_decref(needs);
	assert_int_not_equal(pl_model_create_check(true, bad, &needs, &err), 0);
	assert_null(needs);
	assert_non_null(strstr(err, "net0"));
	free(err);
	json_decref(ok);
	json_decref(bad);
	json_decref(vm);
}

static void
check(bool lxc, const char *key, const char *want, const char *have, bool running,
      bool equal, enum pl_change_class cls)
{
	struct pl_model_cmp c;

	pl_model_compare(lxc, key, want, have, running, NULL, &c);
	if (c.equal != equal || (!equal && c.cls != cls))
		fail_msg("%s: want '%s' have '%s': equal=%d cls=%s note=%s", key, want, have,
			 c.equal, pl_change_class_name(c.cls), c.note ? c.note : "");
	pl_model_cmp_release(&c);
}

static void
test_no_phantom_diffs(void **state)
{
	/* generated MAC, allocated volume, size units, key order, defaults */
	check(false, "net0", "virtio,bridge=vmbr0,firewall=1", "virtio=BC:24:11:2A:3B:4C,firewall=1,bridge=vmbr0", true, true, 0);
	check(false, "scsi0", "local-lvm:32,iothread=1", "local-lvm:vm-100-disk-0,iothread=1,size=32768M", true, true, 0);
	check(false, "scsi1", "local-lvm:0.5", "local-lvm:vm-100-disk-1,size=512M", true, true, 0);
	check(true, "net0", "name=eth0,bridge=vmbr0,ip=dhcp", "name=eth0,bridge=vmbr0,hwaddr=D2:86:76:35:0D:3E,ip=dhcp,type=veth", true, true, 0);
	check(true, "rootfs", "local-lvm:8", "local-lvm:vm-100-disk-0,size=8G", true, true, 0);
	check(false, "tags", "pvelab;web", "web;pvelab", true, true, 0);
	check(false, "onboot", "1", "1", true, true, 0);
	check(false, "memory", "2048", "2048", true, true, 0);
	check(false, "description", "hello", "hello\n", true, true, 0);
	check(false, "sshkeys", "ssh-ed25519 AAAA x@y", "ssh-ed25519%20AAAA%20x%40y%0A", true, true, 0);
	check(false, "startup", "2,up=30", "order=2,up=30", true, true, 0);
	check(false, "ide2", "local-lvm:cloudinit", "local-lvm:vm-101-cloudinit,media=cdrom", true, true, 0);
}

static void
test_classes(void **state)
{
	check(false, "memory", "4096", "2048", true, false, PL_CHANGE_REBOOT);
	check(false, "memory", "4096", "2048", false, false, PL_CHANGE_LIVE);
	check(false, "name", "b", "a", true, false, PL_CHANGE_LIVE);
	check(false, "net0", "virtio,bridge=vmbr1", "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0", true, false, PL_CHANGE_LIVE);
	check(false, "net1", "virtio,bridge=vmbr1", NULL, true, false, PL_CHANGE_LIVE);
	check(false, "hostpci0", "0000:01:00,pcie=1", NULL, true, false, PL_CHANGE_RESTART);
	check(false, "ipconfig0", "ip=10.0.0.6/24", "ip=10.0.0.5/24", true, false, PL_CHANGE_REBOOT);
	check(false, "scsi0", "local-lvm:64", "local-lvm:vm-100-disk-0,size=32G", true, false, PL_CHANGE_LIVE);
	check(false, "scsi0", "local-lvm:16", "local-lvm:vm-100-disk-0,size=32G", true, false, PL_CHANGE_REPLACE);
	check(false, "scsi0", "ceph:32", "local-lvm:vm-100-disk-0,size=32G", true, false, PL_CHANGE_REPLACE);
	check(false, "scsi0", "local-lvm:32,cache=writeback", "local-lvm:vm-100-disk-0,size=32G", true, false, PL_CHANGE_REBOOT);
	check(true, "memory", "1024", "512", true, false, PL_CHANGE_LIVE);
	check(true, "features", "nesting=1", "keyctl=1", true, false, PL_CHANGE_REBOOT);
	check(true, "unprivileged", "1", "0", false, false, PL_CHANGE_REPLACE);
}

static void
test_update_keeps_mac_and_resize(void **state)
{
	struct pl_model_cmp c;

	pl_model_compare(false, "net0", "virtio,bridge=vmbr1", "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0", true, NULL, &c);
	assert_string_equal(c.value, "virtio=BC:24:11:2A:3B:4C,bridge=vmbr1");
	pl_model_cmp_release(&c);
	pl_model_compare(false, "scsi0", "local-lvm:64", "local-lvm:vm-100-disk-0,size=32G", true, NULL, &c);
	assert_true(c.resize);
	assert_string_equal(c.size, "64G");
	assert_null(c.value); /* nothing but the size changes */
	assert_non_null(strstr(c.note, "resize 32G -> 64G"));
	pl_model_cmp_release(&c);
	pl_model_compare(false, "scsi0", "local-lvm:16", "local-lvm:vm-100-disk-0,size=32G", true, NULL, &c);
	assert_true(c.blocked);
	pl_model_cmp_release(&c);
}

static int
teardown(void **state)
{
	pl_pfmt_cleanup();
	return 0;
}

static void
test_owner_tags(void **state)
{
	json_t *g = json_pack("{s:s}", "tags", "Web;pvelab");
	char *p = NULL, *t;

	assert_int_equal(pl_model_owner(g, &p), PL_OWNER_LEGACY);
	assert_null(p);
	json_object_set_new(g, "tags", json_string("pvelab-lab2;pvelab;x"));
	assert_int_equal(pl_model_owner(g, &p), PL_OWNER_PROJECT);
	assert_string_equal(p, "lab2");
	free(p);
	assert_true(pl_model_owned_by(g, "lab2"));
	assert_false(pl_model_owned_by(g, "lab"));
	json_object_set_new(g, "tags", json_string("web"));
	assert_int_equal(pl_model_owner(g, NULL), PL_OWNER_NONE);
	assert_false(pl_model_is_managed(g));
	/* the config's tags when the resource list gave none */
	json_object_del(g, "tags");
	json_object_set_new(g, "config", json_pack("{s:s}", "tags", "pvelab-a"));
	assert_true(pl_model_owned_by(g, "a"));
	json_decref(g);
	/* owning: pvelab and the project in, other projects out, the rest kept */
	t = pl_model_tags_owned("Web;pvelab-lab2 pvelab,db", "lab1");
	assert_string_equal(t, "db;pvelab;pvelab-lab1;web");
	free(t);
	t = pl_model_tags_owned(NULL, "x");
	assert_string_equal(t, "pvelab;pvelab-x");
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_desired),
		cmocka_unit_test(test_ct_desired),
		cmocka_unit_test(test_defaults_marked),
		cmocka_unit_test(test_create_check),
		cmocka_unit_test(test_no_phantom_diffs),
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_update_keeps_mac_and_resize),
		cmocka_unit_test(test_owner_tags),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
