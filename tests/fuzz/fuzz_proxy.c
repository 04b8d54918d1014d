/*
 * libFuzzer harness for the proxy's parsers of untrusted bytes: the TLS SNI
 * extension, request heads (Host routing) and response heads (Location rewrite).
 */
#include "core/common.h"
#include "core/buf.h"
#include "proxy/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const from[] = {"https://10.0.0.5:443", "https://10.0.0.5",
	                                   "http://10.0.0.5", NULL};
	char out[256];
	const char *p = (const char *)data;
	struct pl_proxy_resp info;
	struct pl_buf b;
	size_t end;

	/* the parsers get exact-length copies so ASan sees any overread */
	char *copy = malloc(size ? size : 1);

	memcpy(copy, data, size);
	pl_proxy_sni_parse((const uint8_t *)copy, size, out, sizeof(out));
	pl_proxy_http_is_request(copy, size);
	end = pl_proxy_http_head_end(copy, size);
	pl_proxy_http_host(copy, end ? end : size, out, sizeof(out));
	pl_buf_init(&b, 1 << 20);
	if (pl_proxy_http_rewrite(copy, end ? end : size, from, "https://idrac.lab:8090", &b,
	                          &info) == 0 &&
	    info.rewritten == 0 && b.len != (end ? end : size))
		__builtin_trap(); /* nothing rewritten must mean byte-exact */
	pl_buf_release(&b);
	free(copy);
	(void)p;
	return 0;
}
