/* Import round trip: a live guest with the odd settings real guests have,
 * written as pvelab.yaml by the importer and the YAML emitter, loaded back
 * and planned against itself, must show no changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/yaml.h"
#include "model/guest.h"
#include "plan/plan.h"

/* one JSON document per entry, split where it reads well */
/* clang-format off */
static const char *const LIVE[] = {
	/* a VM with cloud-init, two NICs, odd disk options, a CD-ROM, EFI, PCI */
	"{\"vmid\":123,\"name\":\"odd-vm\",\"node\":\"pve\",\"type\":\"qemu\",\"status\":\"running\","
	"\"config\":{\"name\":\"odd-vm\",\"memory\":\"4096\",\"cores\":4,\"sockets\":1,\"cpu\":\"x86-64-v2-AES\","
	"\"tags\":\"pvelab;pvelab-import;Web;db\",\"onboot\":1,\"boot\":\"order=scsi0;ide2;net0\",\"ostype\":\"l26\","
	"\"scsihw\":\"virtio-scsi-single\",\"agent\":\"enabled=1,fstrim_cloned_disks=1\",\"numa\":0,"
	"\"net0\":\"virtio=BC:24:11:AA:BB:01,bridge=vmbr0,firewall=1,tag=20\","
	"\"net1\":\"e1000=BC:24:11:AA:BB:02,bridge=vmbr1,queues=4\","
	"\"ipconfig0\":\"ip=10.0.0.5/24,gw=10.0.0.1\",\"ciuser\":\"debian\","
	"\"sshkeys\":\"ssh-ed25519%20"
	"AAAAC3NzaC1lZDI1NTE5AAAAIKs86tQAW4v4TTndgNnyO6pHXTXzSRIkK81TAxpEaFrR%20me%40host%0A\","
	"\"nameserver\":\"1.1.1.1 9.9.9.9\","
	"\"scsi0\":\"local-lvm:vm-123-disk-0,discard=on,iothread=1,size=32G,ssd=1\","
	"\"scsi1\":\"local-lvm:vm-123-disk-1,backup=0,size=512M\","
	"\"ide2\":\"local-lvm:vm-123-cloudinit,media=cdrom\",\"ide0\":\"local:iso/debian.iso,media=cdrom,size=600M\","
	"\"efidisk0\":\"local-lvm:vm-123-disk-2,efitype=4m,pre-enrolled-keys=1,size=4M\",\"bios\":\"ovmf\","
	"\"hostpci0\":\"0000:01:00,pcie=1,x-vga=1\",\"machine\":\"q35\",\"description\":\"line one\\nline two: yes\","
	"\"startup\":\"order=3,up=30\",\"digest\":\"abc\",\"vmgenid\":\"x\",\"smbios1\":\"uuid=y\",\"meta\":\"ctime=1\"}}",
	/* a container with a bind mount, a volume mount point, features, two NICs */
	"{\"vmid\":105,\"name\":\"media\",\"node\":\"pve\",\"type\":\"lxc\",\"status\":\"stopped\","
	"\"config\":{\"hostname\":\"media\",\"memory\":1024,\"swap\":512,\"cores\":2,\"unprivileged\":1,"
	"\"tags\":\"pvelab-import;pvelab\",\"features\":\"keyctl=1,nesting=1\",\"ostype\":\"debian\",\"arch\":\"amd64\","
	"\"rootfs\":\"local-lvm:vm-105-disk-0,size=8G\",\"mp0\":\"/vault/data,mp=/data\","
	"\"mp1\":\"local-lvm:vm-105-disk-1,mp=/srv,backup=1,size=16G\","
	"\"net0\":\"name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:05,ip=192.168.0.5/24,gw=192.168.0.1,type=veth\","
	"\"net1\":\"name=wg0,bridge=vmbr1,hwaddr=BC:24:11:00:00:06,ip=10.10.10.2/24,type=veth\","
	"\"nameserver\":\"192.168.0.1\",\"lxc\":[[\"lxc.cgroup2.devices.allow\",\"c 226:0 rwm\"]],"
	"\"digest\":\"d\"}}",
};
/* clang-format on */

static void
test_import_round_trip(void **state)
{
	for (size_t n = 0; n < PL_ARRAY_LEN(LIVE); n++) {
		json_t *live = json_loads(LIVE[n], 0, NULL), *snap, *doc, *plan = NULL;
		struct pl_config *cfg = NULL;
		struct pl_diags d;
		struct pl_buf yaml;
		char *err = NULL;

		assert_non_null(live);
		snap = json_pack("{s:[{s:s,s:s,s:i,s:i}],s:[O],s:[]}", "nodes", "node", "pve", "status",
				 "online", "maxmem", 100, "mem", 1, "guests", live, "bridges");
		doc = json_pack("{s:[o]}", "guests", pl_model_guest_to_yaml(live));
		pl_buf_init(&yaml, 0);
		assert_int_equal(pl_yaml_emit(doc, 0, &yaml), 0);
		pl_diags_init(&d);
		if (pl_config_load_string("import.yaml", yaml.data, yaml.len, &cfg, &d) != 0) {
			char *line = pl_diag_line(&d.items[0]);

			fail_msg("%s\n%s", line, yaml.data);
		}
		pl_config_check(cfg, &d);
		assert_int_equal(d.nerrors, 0);
		assert_int_equal(pl_plan_build(cfg, snap, &(struct pl_plan_opts){ 0 }, &plan, &err), 0);
		if (pl_plan_has_changes(plan) || json_array_size(json_object_get(plan, "blocked")))
			fail_msg("phantom changes:\n%s\nYAML:\n%s",
				 json_dumps(json_object_get(plan, "changes"), JSON_INDENT(1)), yaml.data);
		/* the importer used pvelab's own keys, not just the raw escape hatch */
		assert_non_null(strstr(yaml.data, n == 0 ? "disks:" : "networks:"));
		assert_non_null(strstr(yaml.data, n == 0 ? "cloudinit:" : "mounts:"));
		if (getenv("PL_SHOW_YAML"))
			fputs(yaml.data, stderr);
		json_decref(plan);
		pl_config_free(cfg);
		pl_diags_release(&d);
		pl_buf_release(&yaml);
		json_decref(doc);
		json_decref(snap);
		json_decref(live);
	}
}

static int
teardown(void **state)
{
	pl_pfmt_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_import_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
