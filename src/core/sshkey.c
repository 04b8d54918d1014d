/*
 * OpenSSH public key lines (see sshkey.h): the key type, and a base64 blob
 * whose first field repeats that type, as ssh-keygen checks them.
 */
#include "core/common.h"
#include "core/sshkey.h"
#include "core/err.h"

#include <ctype.h>
#include <openssl/evp.h>

static const char *const key_types[] = {
	"ssh-ed25519",
	"ssh-rsa",
	"ssh-dss",
	"ecdsa-sha2-nistp256",
	"ecdsa-sha2-nistp384",
	"ecdsa-sha2-nistp521",
	"sk-ssh-ed25519@openssh.com",
	"sk-ecdsa-sha2-nistp256@openssh.com",
	NULL,
};

/* The key type a blob starts with (uint32 length, then the name). */
static bool
blob_names(const unsigned char *blob, size_t len, const char *type, size_t tlen)
{
	size_t n;

	if (len < 4)
		return false;
	n = (size_t)blob[0] << 24 | (size_t)blob[1] << 16 | (size_t)blob[2] << 8 | blob[3];
	return n == tlen && n + 4 < len && !memcmp(blob + 4, type, tlen);
}

bool
pl_sshkey_valid(const char *line)
{
	const char *p = line, *b64;
	size_t tlen, blen, pad = 0;
	unsigned char *blob;
	bool ok = false;
	int n;

	/* authorized_keys form: options (quoted parts may hold blanks) first */
	for (int tries = 0; !ok && tries < 2; tries++) {
		bool quoted = false;

		while (*p == ' ' || *p == '\t')
			p++;
		tlen = strcspn(p, " \t");
		for (size_t i = 0; key_types[i]; i++)
			if (strlen(key_types[i]) == tlen && !strncmp(key_types[i], p, tlen))
				ok = true;
		for (; !ok && *p && (quoted || (*p != ' ' && *p != '\t')); p++)
			if (*p == '"')
				quoted = !quoted;
	}
	if (!ok)
		return false;
	b64 = p + tlen;
	while (*b64 == ' ' || *b64 == '\t')
		b64++;
	blen = strcspn(b64, " \t\r\n");
	if (blen == 0 || blen % 4 != 0 || blen > 16384)
		return false;
	for (size_t i = 0; i < blen; i++) {
		char ch = b64[i];

		if (ch == '=' && i + 2 >= blen)
			pad++;
		else if (!(isalnum((unsigned char)ch) || ch == '+' || ch == '/') || pad)
			return false;
	}
	blob = pl_calloc(blen, 1);
	n = EVP_DecodeBlock(blob, (const unsigned char *)b64, (int)blen);
	ok = n > 0 && blob_names(blob, (size_t)n - pad, p, tlen);
	free(blob);
	return ok;
}

bool
pl_sshkey_lines_valid(const char *text)
{
	const char *p = text;

	while (*p) {
		size_t len = strcspn(p, "\n");
		char *line = pl_strndup(p, len);
		const char *q = line;
		bool ok;

		while (*q == ' ' || *q == '\t' || *q == '\r')
			q++;
		ok = *q == '\0' || pl_sshkey_valid(line);
		free(line);
		if (!ok)
			return false;
		p += len;
		if (*p == '\n')
			p++;
	}
	return true;
}
