/*
 * Version facts: pvelab's own, the git commit it was built from, and the
 * runtime versions of the libraries it links.
 */
#include "core/common.h"
#include "core/version.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <libfyaml.h>
#include <openssl/crypto.h>
#include <sqlite3.h>

#ifndef PL_GIT_COMMIT
#define PL_GIT_COMMIT "unknown"
#endif

json_t *
pl_version_info(void)
{
	char jansson[32];

	snprintf(jansson, sizeof(jansson), "%s", jansson_version_str());
	return json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s,s:s}}", "version", PL_VERSION, "commit",
			 PL_GIT_COMMIT, "libraries", "libevent", event_get_version(), "libcurl",
			 curl_version_info(CURLVERSION_NOW)->version, "openssl",
			 OpenSSL_version(OPENSSL_VERSION), "jansson", jansson, "sqlite",
			 sqlite3_libversion(), "libfyaml", fy_library_version());
}
