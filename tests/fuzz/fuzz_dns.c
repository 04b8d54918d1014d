/* libFuzzer harness for the dns check's answer parser (src/check/dns.c): the
 * first two bytes are the query's id as the answer should echo it, the rest
 * the answer, parsed once for every record type it knows. */
#include "core/common.h"
#include "check/check.h"
#include "core/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = { 2, 5, 6, 12, 15, 16, 33, 257 };
	struct pl_buf b;

	if (size < 2)
		return 0;
	pl_buf_init(&b, PL_CHECK_READ_MAX);
	for (size_t i = 0; i < PL_ARRAY_LEN(types); i++) {
		char *err = NULL;
		int r = pl_check_dns_parse(data + 2, size - 2, (uint16_t)(data[0] << 8 | data[1]),
					   types[i], &b, &err);

		/* an error always says why (a record may be empty: TXT "") */
		if ((r != 0) != (err != NULL))
			abort();
		free(err);
		pl_buf_reset(&b);
	}
	pl_buf_release(&b);
	return 0;
}
