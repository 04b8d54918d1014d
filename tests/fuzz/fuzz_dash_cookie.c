/*
 * libFuzzer harness for the dashboard's Cookie header reader: whatever the
 * header, it must not crash or read past it, and a session it finds is 64
 * lowercase hex digits that follow "pvelab_session=" in the header.
 */
#include "core/common.h"
#include "cmd/serve_dash.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *h = pl_strndup((const char *)data, size), out[65];
	bool named = false;

	if (pl_dash_cookie_value(h, out)) {
		if (strlen(out) != 64 || strspn(out, "0123456789abcdef") != 64)
			abort();
		/* some occurrence of it is the value of a cookie of that name */
		for (char *at = strstr(h, out); at && !named; at = strstr(at + 1, out))
			named = at - h >= 15 && !strncmp(at - 15, "pvelab_session=", 15) &&
				(at - h == 15 || at[-16] == ' ' || at[-16] == ';');
		if (!named)
			abort();
	}
	free(h);
	return 0;
}
