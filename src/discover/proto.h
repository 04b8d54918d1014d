/*
 * Parsers for what discovery reads from the network (SSH, RFB, X.224, RMCP, HTTP, HTML titles,
 * Redfish service roots): pure functions over bytes, each with a libFuzzer harness.
 */
#ifndef PL_DISCOVER_PROTO_H
#define PL_DISCOVER_PROTO_H

#include "core/common.h"

#include <jansson.h>

/* A JSON string of len bytes; invalid UTF-8 and control characters become '?'. */
json_t *pl_disc_json_text(const char *s, size_t len);

/* Results of the incremental parsers: complete, or more bytes needed. */
#define PL_DISC_DONE 0
#define PL_DISC_MORE 1

/* Parse an SSH identification line ("SSH-2.0-OpenSSH_9.2p1 Debian-2"); lines
 * before it (RFC 4253 allows them) are skipped. *out gets {banner, protocol,
 * software, comment?, os?}. PL_DISC_MORE until a full line; PL_EPARSE if it is
 * not SSH. */
int pl_disc_ssh_parse(const char *data, size_t len, json_t **out);

/* Parse the 12-byte RFB ProtocolVersion ("RFB 003.008\n"). */
int pl_disc_rfb_version(const char *data, size_t len, int *major, int *minor);
/* Parse the security part the server sends after our version reply (for
 * minor >= 7 a count and type list; for 3.3 one u32 type; a zero count or type
 * is followed by a reason string). *out gets {security_types:[names], reason?}. */
int pl_disc_rfb_security(const unsigned char *data, size_t len, int minor, json_t **out);

/* The X.224 Connection Request with an RDP Negotiation Request asking for
 * TLS and CredSSP: fills buf (at least 19 bytes); returns the length. */
size_t pl_disc_x224_request(unsigned char *buf, size_t cap);
/* Parse a TPKT + X.224 Connection Confirm, with an optional RDP Negotiation
 * Response or Failure. *out gets {selected_protocol?, failure?, flags?}. */
int pl_disc_x224_parse(const unsigned char *data, size_t len, json_t **out);

/* The 12-byte RMCP/ASF Presence Ping (IPMI discovery), tag given. */
size_t pl_disc_rmcp_ping(unsigned char *buf, size_t cap, uint8_t tag);
/* Parse an RMCP/ASF Presence Pong: *out gets {iana, ipmi}. PL_EPARSE otherwise. */
int pl_disc_rmcp_pong(const unsigned char *data, size_t len, json_t **out);

/* An HTTP response read off the wire. Strings are owned (free with
 * pl_disc_http_release). */
struct pl_disc_http {
	int status;
	char *reason;
	char *server;
	char *content_type;
	char *location;
	char *www_authenticate;
	char *body; /* decoded (chunked removed), NUL-terminated */
	size_t body_len;
	bool truncated; /* the body was cut at the cap or the peer closed early */
};

/* Parse a response (head and body). With eof false it returns PL_DISC_MORE
 * until the body is complete by Content-Length or chunked framing; with eof
 * true whatever arrived is taken. PL_EPARSE if it is not HTTP/1.x. The body
 * is limited to max_body bytes (truncated is then set). */
int pl_disc_http_parse(const char *data, size_t len, bool eof, size_t max_body,
		       struct pl_disc_http *resp);
/* Free the strings of a parsed response and zero it. */
void pl_disc_http_release(struct pl_disc_http *resp);

/* The text of the first <title> in an HTML document, entities for &amp; &lt;
 * &gt; &quot; &#39; &#NN; decoded and white space collapsed; NULL if none.
 * Caller frees. */
char *pl_disc_html_title(const char *html, size_t len);

/* Recognise a Redfish service root. *out gets {redfish_version, vendor?,
 * product?, kind (idrac|ilo|bmc), service_tag?, uuid?, service_root_type?,
 * hints:[why vendor/kind]}. PL_EPARSE if the body is not a service root. */
int pl_disc_redfish_parse(const char *body, size_t len, json_t **out);

#endif
