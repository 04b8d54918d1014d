/*
 * The time-shift TLS proxy: a modern, locally trusted TLS front for old
 * iDRAC/iLO controllers whose certificates expired and which speak only legacy
 * TLS. Configuration, the local CA, counters and the serve/trust entry points.
 */
#ifndef PL_PROXY_PROXY_H
#define PL_PROXY_PROXY_H

#include "core/common.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <time.h>

#define PL_PROXY_DEFAULT_LISTEN "127.0.0.1:8090"

struct pl_buf;

/* One upstream controller and how to trust it. */
struct pl_proxy_target {
	char *name;       /* the config name, or HOST:PORT of the upstream */
	char *host;       /* upstream host name or IP address */
	int port;         /* upstream port (443 by default) */
	char *listen;     /* own listener "ADDR:PORT", or NULL for the shared one */
	char **hostnames; /* NULL-terminated names routed here (SNI/Host) */
	char *ca_file;    /* trust anchors; NULL: the system store */
	bool has_verify_at;
	time_t verify_at;   /* verify the chain as of this time */
	char pin[96];       /* "AA:BB:.." or "" */
	bool pin_from_file; /* pin came from the pins file (pvelab proxy trust) */
	bool ignore_time;   /* full checks except the validity dates */
	bool insecure;      /* no verification at all (loudly logged) */
	int min_tls;        /* TLS1_VERSION .. TLS1_3_VERSION */
	bool weak_keys;     /* chain may have small keys, MD5/SHA-1 signatures (loudly logged) */
	char *ciphers;      /* OpenSSL cipher list, or NULL for the default */
	bool rewrite_location;
};

/* The whole proxy configuration (CLI flags or the `proxy:` section). */
#define PL_PROXY_MAX_CONNS 512     /* default pl_proxy_config.max_conns */
#define PL_PROXY_IDLE_TIMEOUT 300  /* default pl_proxy_config.idle_timeout */
#define PL_PROXY_HANDSHAKE_TIMEOUT 30 /* default pl_proxy_config.handshake_timeout */

struct pl_proxy_config {
	char *listen;      /* the shared listener */
	char *name;        /* leaf name for clients that send no SNI (else the local IP) */
	char *state_dir;   /* local CA and pins live here */
	char *config_path; /* YAML file to reload on SIGHUP, or NULL (CLI flags) */
	int grace;         /* seconds open connections get on shutdown */
	int max_conns;     /* open client connections; more are closed at accept */
	int idle_timeout;  /* seconds a relay may move no byte before it is closed */
	int handshake_timeout; /* seconds from accept to a routed request */
	struct pl_proxy_target **targets;
	size_t ntargets;
};

/* Counters, readable at any time (the metrics endpoint exposes them later). */
struct pl_proxy_stats {
	uint64_t accepted;       /* downstream connections accepted */
	uint64_t active;         /* currently open */
	uint64_t completed;      /* relayed and closed normally */
	uint64_t tls_failed;     /* downstream handshake failed */
	uint64_t unrouted;       /* no target for the SNI/Host */
	uint64_t connect_failed; /* upstream unreachable or its handshake failed */
	uint64_t verify_failed;  /* upstream certificate refused */
	uint64_t pin_mismatch;   /* of which: pinned fingerprint changed */
	uint64_t error_pages;    /* HTML error pages served */
	uint64_t bytes_up;       /* client -> controller */
	uint64_t bytes_down;     /* controller -> client */
	uint64_t reloads;
	uint64_t over_cap;       /* closed at accept: max_conns open already */
	uint64_t timed_out;      /* no request head within the handshake deadline, or idle */
	uint64_t accept_paused;  /* listeners paused for want of file descriptors */
};

/* Parse "https://HOST[:PORT]" into host (caller frees) and port. */
int pl_proxy_parse_url(const char *url, char **host, int *port, char **errmsg);
/* Parse "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" (UTC). */
int pl_proxy_parse_date(const char *s, time_t *out, char **errmsg);
/* Parse "1.0".."1.3" into an OpenSSL version constant. */
int pl_proxy_parse_tls_version(const char *s, int *out, char **errmsg);

/* A new empty target with defaults (port 443, min TLS 1.2, rewrite on). */
struct pl_proxy_target *pl_proxy_target_new(void);
void pl_proxy_target_free(struct pl_proxy_target *t);
/* A new config with defaults; add targets with pl_proxy_config_add. */
struct pl_proxy_config *pl_proxy_config_new(const char *state_dir);
void pl_proxy_config_add(struct pl_proxy_config *c, struct pl_proxy_target *t);
void pl_proxy_config_free(struct pl_proxy_config *c);
/* Build a config from the `proxy:` section (a JSON object); relative paths are
 * taken relative to basedir. */
int pl_proxy_config_from_json(const json_t *proxy, const char *basedir, const char *state_dir,
                              struct pl_proxy_config **out, char **errmsg);
/* Load the `proxy:` section of a pvelab.yaml (the one place that reads YAML). */
int pl_proxy_config_load(const char *config_path, const char *state_dir,
                         struct pl_proxy_config **out, char **errmsg);
/* Check the config (a target, unique listeners, one verification mode each)
 * and apply pins recorded by `pvelab proxy trust`. */
int pl_proxy_config_finish(struct pl_proxy_config *c, char **errmsg);

/* Path of the local CA certificate in state_dir (caller frees). */
char *pl_proxy_ca_path(const char *state_dir);
/* Load the local CA, creating it (key mode 0600) when create and it is absent.
 * Returns the CA certificate as PEM in *pem (caller frees) and whether it was
 * just created. */
int pl_proxy_ca_ensure(const char *state_dir, bool create, char **pem, bool *created,
                       char **errmsg);

/* A certificate for names (DNS names or addresses, NULL-terminated) issued by
 * the local CA (created when absent), with a new key: for pvelab serve. */
int pl_proxy_ca_issue(const char *state_dir, const char *const *names, EVP_PKEY **key, X509 **cert,
		      char **errmsg);

/* The pins file and recording a pin for an upstream "HOST:PORT" key. */
char *pl_proxy_pins_path(const char *state_dir);
int pl_proxy_pin_record(const char *state_dir, const char *key, const char *fingerprint,
                        const char *subject, const char *not_after, char **errmsg);
/* The recorded pin for key into out[96]; PL_ENOENT when there is none. */
int pl_proxy_pin_lookup(const char *state_dir, const char *key, char out[96]);
/* seen.json of state_dir: {"HOST:PORT": {"sha256","subject","first_verified"}}, the
 * certificate each date-verified target first passed with ({} when none). */
json_t *pl_proxy_seen_load(const char *state_dir);
int pl_proxy_seen_record(const char *state_dir, const char *key, const char *fingerprint,
                         const char *subject, char **errmsg);

/* What `pvelab proxy trust` learns from one upstream. */
struct pl_proxy_probe {
	char subject[512];
	char issuer[512];
	char not_before[64];
	char not_after[64];
	char fingerprint[96];
	char san[512];
	char protocol[32];
	char cipher[96];
	char verify_now[256]; /* result of a normal verification as of now */
	bool expired;
};

/* Connect to the target's upstream (its TLS settings, no verification) and
 * describe the certificate it presents. Runs its own short event loop. */
int pl_proxy_probe(const struct pl_proxy_target *t, int timeout_s, struct pl_proxy_probe *out,
                   char **errmsg);

struct pl_proxy;

/* Serve cfg until SIGINT/SIGTERM (then drain for cfg->grace seconds); SIGHUP
 * reloads cfg->config_path. Takes ownership of cfg. */
int pl_proxy_serve(struct pl_proxy_config *cfg, char **errmsg);

/* --- parsers of untrusted input (http.c; fuzzed by tests/fuzz/fuzz_proxy.c) --- */

/* The host_name from a TLS server_name extension body, lower-cased and
 * checked to be a plausible DNS name; 0, or PL_EPARSE / PL_ENOENT. */
int pl_proxy_sni_parse(const uint8_t *p, size_t len, char *out, size_t outsz);
/* Offset just past the "\r\n\r\n" ending a header block, or 0 if none yet. */
size_t pl_proxy_http_head_end(const char *p, size_t len);
/* Whether data starts like an HTTP/1 request line ("GET /", ...). */
bool pl_proxy_http_is_request(const char *p, size_t len);
/* The Host header of a request head, without port, lower-cased; 0, PL_ENOENT
 * or PL_EPARSE. */
int pl_proxy_http_host(const char *head, size_t len, char *out, size_t outsz);

/* What the response head said, for relaying the body that follows. */
struct pl_proxy_resp {
	int status;
	long long content_length; /* -1 when absent */
	bool chunked;
	int rewritten; /* Location headers rewritten */
};

/* Copy a response head to out, rewriting Location values that start with one
 * of the origins in from (e.g. "https://10.0.0.5") to the origin to. Every
 * other byte is copied unchanged. PL_EPARSE when it is not an HTTP response. */
int pl_proxy_http_rewrite(const char *head, size_t len, const char *const *from, const char *to,
                          struct pl_buf *out, struct pl_proxy_resp *info);

#endif
