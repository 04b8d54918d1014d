/* Unit tests for core/propstr: parse, canonical format, semantic compare,
 * error naming, sizes and booleans. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/propstr.h"

static char *
canon(const char *fmt, const char *s)
{
	char *err = NULL;
	char *c = pl_propstr_canonical(pl_pfmt_get(fmt), s, &err);

	free(err);
	return c;
}

static void
test_net_model_mac(void **state)
{
	const struct pl_pfmt *f = pl_pfmt_get("qemu.net");
	struct pl_propstr p;
	char *c;

	assert_non_null(f);
	pl_propstr_init(&p);
	assert_int_equal(pl_propstr_parse(f, "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1,tag=20", &p, NULL), 0);
	assert_string_equal(pl_propstr_get(&p, "model"), "virtio");
	assert_string_equal(pl_propstr_get(&p, "macaddr"), "BC:24:11:2A:3B:4C");
	assert_string_equal(pl_propstr_get(&p, "tag"), "20");
	pl_propstr_release(&p);
	c = canon("qemu.net", "firewall=yes,bridge=vmbr0,e1000=bc:24:11:2a:3b:4c");
	assert_string_equal(c, "e1000=bc:24:11:2a:3b:4c,bridge=vmbr0,firewall=1");
	free(c);
	c = canon("qemu.net", "virtio,bridge=vmbr0");
	assert_string_equal(c, "virtio,bridge=vmbr0");
	free(c);
}

static void
test_disk_and_sizes(void **state)
{
	unsigned long long b;
	char out[32];
	char *c = canon("qemu.scsi", "local-lvm:vm-100-disk-0,size=32768M,iothread=on");

	assert_string_equal(c, "local-lvm:vm-100-disk-0,iothread=1,size=32G");
	free(c);
	assert_int_equal(pl_size_parse("1.5T", &b), 0);
	assert_true(b == 1536ULL << 30);
	pl_size_format(b, out, sizeof(out));
	assert_string_equal(out, "1536G");
	pl_size_format(1000, out, sizeof(out));
	assert_string_equal(out, "1000");
	assert_int_equal(pl_size_parse("12X", &b), PL_EINVAL);
	assert_int_equal(pl_size_parse("", &b), PL_EINVAL);
	assert_true(pl_propstr_equal_str(pl_pfmt_get("qemu.scsi"), "local:1,size=1G",
					 "size=1024M,file=local:1"));
	assert_false(pl_propstr_equal_str(pl_pfmt_get("qemu.scsi"), "local:1,size=1G",
					  "local:1,size=2G"));
}

static void
test_lxc_required_first(void **state)
{
	char *c = canon("lxc.mp", "backup=1,mp=/data,/vault/data");

	assert_string_equal(c, "/vault/data,mp=/data,backup=1");
	free(c);
	c = canon("lxc.net", "ip=dhcp,bridge=vmbr0,name=eth0,type=veth");
	assert_string_equal(c, "name=eth0,bridge=vmbr0,ip=dhcp,type=veth");
	free(c);
}

static void
test_errors_name_key(void **state)
{
	const struct pl_pfmt *f = pl_pfmt_get("qemu.net");
	struct pl_propstr p;
	char *err = NULL;

	pl_propstr_init(&p);
	assert_int_equal(pl_propstr_parse(f, "virtio,tag=0", &p, &err), PL_EPARSE);
	assert_non_null(strstr(err, "tag: value must have a minimum value of 1"));
	assert_int_equal(pl_propstr_parse(f, "virtio,nope=1", &p, &err), PL_EPARSE);
	assert_non_null(strstr(err, "nope: invalid key"));
	assert_int_equal(pl_propstr_parse(f, "virtio,virtio", &p, &err), PL_EPARSE);
	assert_non_null(strstr(err, "duplicate key"));
	assert_int_equal(pl_propstr_parse(f, "virtio,bridge=", &p, &err), PL_EPARSE);
	assert_int_equal(pl_propstr_parse(f, "virtio,macaddr=zz:24:11:2a:3b:4c", &p, &err), PL_EPARSE);
	assert_non_null(strstr(err, "macaddr"));
	assert_int_equal(pl_propstr_parse(pl_pfmt_get("lxc.features"), "nesting", &p, &err), PL_EPARSE);
	assert_non_null(strstr(err, "default key"));
	free(err);
	pl_propstr_release(&p);
}

static void
test_defaults_compare(void **state)
{
	const struct pl_pfmt *f = pl_pfmt_get("qemu.scsi");
	const char *diff = NULL;
	struct pl_propstr a, b;

	pl_propstr_init(&a);
	pl_propstr_init(&b);
	/* replicate defaults to 1, so stating it changes nothing */
	assert_int_equal(pl_propstr_parse(f, "local:1,replicate=1", &a, NULL), 0);
	assert_int_equal(pl_propstr_parse(f, "local:1", &b, NULL), 0);
	assert_true(pl_propstr_equal(f, &a, &b, NULL));
	pl_propstr_set(&b, "cache", "writeback");
	assert_false(pl_propstr_equal(f, &a, &b, &diff));
	assert_string_equal(diff, "cache");
	assert_true(pl_propstr_del(&b, "cache"));
	assert_false(pl_propstr_del(&b, "cache"));
	assert_true(pl_propstr_equal(f, &a, &b, NULL));
	pl_propstr_release(&a);
	pl_propstr_release(&b);
}

static void
test_named_formats(void **state)
{
	char *c = canon("qemu.ipconfig", "ip=10.0.0.5/24,gw=10.0.0.1");

	assert_string_equal(c, "gw=10.0.0.1,ip=10.0.0.5/24");
	free(c);
	c = canon("qemu.startup", "up=5,order=2");
	assert_string_equal(c, "2,up=5");
	free(c);
	assert_null(canon("qemu.ipconfig", "ip=10.0.0.5"));
	assert_null(pl_pfmt_get("no.such"));
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
		cmocka_unit_test(test_net_model_mac),
		cmocka_unit_test(test_disk_and_sizes),
		cmocka_unit_test(test_lxc_required_first),
		cmocka_unit_test(test_errors_name_key),
		cmocka_unit_test(test_defaults_compare),
		cmocka_unit_test(test_named_formats),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
