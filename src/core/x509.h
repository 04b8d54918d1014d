/*
 * X.509 helpers on OpenSSL 3: key generation, self-signed and CA-issued
 * certificates (for the simulator's HTTPS and the TLS proxy's local CA), PEM
 * files, and SHA-256 fingerprints in Proxmox's "AA:BB:..." form.
 */
#ifndef PL_CORE_X509_H
#define PL_CORE_X509_H

#include "core/common.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

/* A new EC P-256 key (caller frees with EVP_PKEY_free), or NULL. */
EVP_PKEY *pl_x509_new_key(void);
/* Issue a certificate for cn with subjectAltNames sans (DNS names or IP
 * addresses, NULL-terminated, may be NULL), valid from one hour ago for days.
 * Signed by issuer_key/issuer_cert, or self-signed when issuer_cert is NULL.
 * is_ca makes it a CA (basicConstraints CA:TRUE, keyCertSign). */
X509 *pl_x509_issue(EVP_PKEY *key, const char *cn, const char *const *sans, int days, bool is_ca,
		    EVP_PKEY *issuer_key, X509 *issuer_cert, char **errmsg);
/* SHA-256 of the DER certificate as "AA:BB:..." (95 chars + NUL). */
void pl_x509_fingerprint(X509 *cert, char out[96]);
/* Normalise a user-given fingerprint (any case, with or without colons) to
 * "AA:BB:..."; returns PL_EINVAL if it is not 32 bytes of hex. */
int pl_x509_fingerprint_norm(const char *in, char out[96]);
/* Write a certificate / private key as PEM, atomically (keys with mode 0600). */
int pl_x509_write_cert(const char *path, X509 *cert, char **errmsg);
int pl_x509_write_key(const char *path, EVP_PKEY *key, char **errmsg);
/* Read PEM files; NULL with *errmsg on failure. */
X509 *pl_x509_read_cert(const char *path, char **errmsg);
EVP_PKEY *pl_x509_read_key(const char *path, char **errmsg);
/* The certificate as PEM text (caller frees). */
char *pl_x509_cert_pem(X509 *cert);

#endif
