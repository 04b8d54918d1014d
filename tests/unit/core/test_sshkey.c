/* Unit tests for core/sshkey: real OpenSSH public keys pass (with a comment,
 * with authorized_keys options), and what ssh-keygen -l refuses does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/sshkey.h"

/* made with ssh-keygen; the private halves were deleted at once */
#define ED25519 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKs86tQAW4v4TTndgNnyO6pHXTXzSRIkK81TAxpEaFrR"
#define ECDSA                                                                                      \
	"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFt67//h/o1FVO+"  \
	"bdLVdJup5/2w+xN7ZCheb0cFySf6KfU4D9yL/5PYkZNoe71MBLO2i44OO24vPv7DXcdiaodg="
#define RSA                                                                                        \
	"ssh-rsa "                                                                                 \
	"AAAAB3NzaC1yc2EAAAADAQABAAAAgQCtUazoH7NwoLbg6XD8WxdKxrpcQKIWsL/XIT5kM6FC9uSJmFsOAVd1"     \
	"QH8tz47LGDAj04IlWeAwbZc46oDSa9PsRg2AC7HNCV5C7MlpxCzrsqL+QaVmwavcq7sgDUwGOR8uyZDPw+"       \
	"pdSe50va3"                                                                                \
	"+p6tHJgLGMEZO4dMQondmSEKM3Q=="

static void
test_real_keys_pass(void **state)
{
	(void)state;
	assert_true(pl_sshkey_valid(ED25519));
	assert_true(pl_sshkey_valid(ED25519 " ops@pvelab-example"));
	assert_true(pl_sshkey_valid(ECDSA " ops@pvelab-example"));
	assert_true(pl_sshkey_valid(RSA " rsa@x"));
	assert_true(pl_sshkey_valid("  " ED25519 "\r"));
	assert_true(pl_sshkey_valid("from=\"10.0.0.1, 10.0.0.2\",no-pty " ED25519 " me"));
}

static void
test_bad_keys_fail(void **state)
{
	(void)state;
	assert_false(pl_sshkey_valid(""));
	assert_false(pl_sshkey_valid("ssh-ed25519"));
	assert_false(pl_sshkey_valid("ssh-ed25519 AAAA x@y"));     /* no key in the blob */
	assert_false(pl_sshkey_valid("ssh-ed25519 AAAAC3Nz x@y")); /* not a multiple of 4 */
	assert_false(pl_sshkey_valid(
		"ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIKs86tQAW4v4TTndgNnyO6pHXTXzSRIkK81TAxpEaFrR"));
	/* a blob of one type under another type's name */
	assert_false(pl_sshkey_valid(
		"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIKs86tQAW4v4TTndgNnyO6pHXTXzSRIkK81TAxpEaFrR"));
	assert_false(pl_sshkey_valid(
		"ssh-ed25519 "
		"AAAAC3NzaC1lZDI1NTE5AAAAIKs86tQAW4v4TTndgNnyO6pHXTXzSRIkK81TAxpEaF!R"));
	assert_false(pl_sshkey_valid(
		"ssh-ed25519 "
		"AAAAC3NzaC1lZDI1NTE5AAAAIKs86tQAW4v4TTndgNnyO6pHXTXzSRIkK81TAxpE=aFr"));
	assert_false(pl_sshkey_valid("-----BEGIN OPENSSH PRIVATE KEY-----"));
}

static void
test_lines(void **state)
{
	(void)state;
	assert_true(pl_sshkey_lines_valid(ED25519 " a\n" RSA " b\n"));
	assert_true(pl_sshkey_lines_valid("\n  \n" ECDSA "\n"));
	assert_true(pl_sshkey_lines_valid(""));
	assert_false(pl_sshkey_lines_valid(ED25519 "\nnot a key\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_keys_pass),
		cmocka_unit_test(test_bad_keys_fail),
		cmocka_unit_test(test_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
