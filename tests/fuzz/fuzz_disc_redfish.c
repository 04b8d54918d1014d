/* libFuzzer harness for discovery's Redfish service-root reader, through to
 * the host record, its text row and the RDM/Ansible exports. */
#include "core/common.h"
#include "core/buf.h"
#include "discover/discover.h"
#include "discover/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *rf = NULL, *ev, *recs;
	struct pl_buf b;

	if (pl_disc_redfish_parse((const char *)data, size, &rf) != PL_DISC_DONE)
		return 0;
	ev = json_pack("[{s:i,s:s,s:s,s:s,s:o}]", "port", 443, "proto", "tcp", "state", "open",
		       "service", "redfish", "redfish", rf);
	recs = json_array();
	json_array_append_new(recs, pl_disc_record("192.0.2.1", NULL, ev));
	pl_buf_init(&b, 0);
	pl_disc_format_text(recs, &b);
	pl_disc_export(recs, "rdm", &b, NULL);
	pl_disc_export(recs, "rdm-json", &b, NULL);
	pl_disc_export(recs, "inventory", &b, NULL);
	pl_buf_release(&b);
	json_decref(recs);
	return 0;
}
