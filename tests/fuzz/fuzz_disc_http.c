/* libFuzzer harness for discovery's HTTP response parser (head, chunked and
 * capped bodies) and the HTML <title> extractor. */
#include "core/common.h"
#include "discover/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_disc_http r;
	char *t;

	for (int eof = 0; eof < 2; eof++) {
		if (pl_disc_http_parse((const char *)data, size, eof, 4096, &r) == PL_DISC_DONE) {
			if (r.body == NULL || r.body_len > 4096 || r.body[r.body_len] != '\0')
				abort();
			t = pl_disc_html_title(r.body, r.body_len);
			free(t);
			pl_disc_http_release(&r);
		}
	}
	t = pl_disc_html_title((const char *)data, size);
	free(t);
	return 0;
}
