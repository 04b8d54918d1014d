/*
 * libFuzzer harness for the Proxmox response parser: the first byte picks a
 * status, the rest splits into a reason phrase and a body; also feeds UPID,
 * permission and lock parsing, which see the same untrusted text.
 */
#include "core/common.h"
#include "core/err.h"
#include "pve/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 200, 201, 400, 401, 403, 500, 501, 502, 503, 595 };
	struct pl_pve_resp r;
	struct pl_pve_upid u;
	const uint8_t *nl;
	char *reason, *text, path[64], priv[64], lock[32];
	size_t rlen;

	if (size < 1)
		return 0;
	long status = statuses[data[0] % PL_ARRAY_LEN(statuses)];

	data++;
	size--;
	nl = memchr(data, '\n', size);
	rlen = nl ? (size_t)(nl - data) : 0;
	reason = pl_strndup((const char *)data, rlen);
	if (nl) {
		data += rlen + 1;
		size -= rlen + 1;
	}
	pl_pve_resp_parse(status, reason, (const char *)data, size, &r);
	text = pl_pve_resp_errtext(&r);
	pl_pve_perm_parse(r.message, path, sizeof(path), priv, sizeof(priv));
	pl_pve_lock_parse(r.message, lock, sizeof(lock));
	free(text);
	pl_pve_resp_release(&r);
	{
		char *s = pl_strndup((const char *)data, size);

		pl_pve_upid_parse(s, &u);
		pl_pve_perm_parse(s, path, sizeof(path), priv, sizeof(priv));
		pl_pve_lock_parse(s, lock, sizeof(lock));
		free(s);
	}
	free(reason);
	return 0;
}
