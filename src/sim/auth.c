/*
 * The simulator's side of PVE's authentication: tickets and CSRF tokens
 * signed with the simulator's key, API token values, cookie and
 * Authorization header parsing, and the login call (POST /access/ticket).
 */
#include "core/common.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "sim/internal.h"

#define PL_SIM_TICKET_LIFETIME (2 * 3600)

static void
hmac_b64(struct pl_sim *s, const char *data, char out[64])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char b64[96];
	int n;

	HMAC(EVP_sha256(), s->key, sizeof(s->key), (const unsigned char *)data, strlen(data), md,
	     &mdlen);
	n = EVP_EncodeBlock(b64, md, (int)mdlen);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	if (n > 63)
		n = 63;
	memcpy(out, b64, (size_t)n);
	out[n] = 0;
}

static char *
ticket_new(struct pl_sim *s, const char *user)
{
	char sig[64], *plain, *t;

	plain = pl_asprintf("PVE:%s:%08X", user, (unsigned)time(NULL));
	hmac_b64(s, plain, sig);
	t = pl_asprintf("%s::%s", plain, sig);
	free(plain);
	return t;
}

static char *
csrf_new(struct pl_sim *s, const char *user, unsigned ts)
{
	char sig[64], *plain, *t;

	plain = pl_asprintf("%08X:%s", ts, user);
	hmac_b64(s, plain, sig);
	t = pl_asprintf("%08X:%s", ts, sig);
	free(plain);
	return t;
}

/* The user of a valid ticket (caller frees), or NULL. */
char *
pl_sim_ticket_check(struct pl_sim *s, const char *ticket)
{
	const char *sep = strstr(ticket, "::");
	char *plain, sig[64], *user = NULL;
	unsigned ts = 0;
	const char *colon;

	if (!pl_str_startswith(ticket, "PVE:") || !sep)
		return NULL;
	plain = pl_strndup(ticket, (size_t)(sep - ticket));
	hmac_b64(s, plain, sig);
	colon = strrchr(plain, ':');
	if (strcmp(sig, sep + 2) == 0 && colon && sscanf(colon + 1, "%8X", &ts) == 1 &&
	    (long long)time(NULL) - (long long)ts < PL_SIM_TICKET_LIFETIME &&
	    (long long)ts - (long long)time(NULL) < 300)
		user = pl_strndup(plain + 4, (size_t)(colon - plain - 4));
	free(plain);
	return user;
}

bool
pl_sim_csrf_check(struct pl_sim *s, const char *user, const char *token)
{
	unsigned ts;
	char *want;
	bool ok;

	if (!token || sscanf(token, "%8X:", &ts) != 1)
		return false;
	if ((long long)time(NULL) - (long long)ts > PL_SIM_TICKET_LIFETIME)
		return false;
	want = csrf_new(s, user, ts);
	ok = strcmp(want, token) == 0;
	free(want);
	return ok;
}

/* Value of NAME in a cookie/authorization header: (?:^|\s)NAME(?:=| )([^;]*) */
char *
pl_sim_auth_value(const char *hdr, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = hdr; (p = strstr(p, name)) != NULL; p++) {
		if ((p == hdr || isspace((unsigned char)p[-1]) || p[-1] == ';') &&
		    (p[n] == '=' || p[n] == ' ')) {
			const char *v = p + n + 1;
			size_t len = strcspn(v, ";");
			char *raw = pl_strndup(v, len), *out = evhttp_uridecode(raw, 0, NULL);

			free(raw);
			if (!out)
				return NULL;
			raw = pl_strdup(out);
			free(out);
			return raw;
		}
	}
	return NULL;
}

/* Whether an API token value is "ID=SECRET". */
bool
pl_sim_token_is(const char *value, const char *id, const char *secret)
{
	size_t n = strlen(id);

	return !strncmp(value, id, n) && value[n] == '=' && !strcmp(value + n + 1, secret);
}

void
pl_sim_login(struct pl_sim *s, struct evhttp_request *req, json_t *params)
{
	const char *user = pl_json_str(params, "username");
	const char *pw = pl_json_str(params, "password");
	const char *realm = pl_json_str(params, "realm");
	char *full = NULL, *tuser = NULL, *ticket, *csrf;
	json_t *o;
	struct evbuffer *b;
	char *text;

	if (user && realm && !strchr(user, '@'))
		full = pl_asprintf("%s@%s", user, realm);
	else
		full = pl_strdup(user ? user : "");
	if (pw && pl_str_startswith(pw, "PVE:"))
		tuser = pl_sim_ticket_check(s, pw);
	if (!(pw && ((tuser && !strcmp(tuser, full)) ||
		     (!strcmp(full, "root@pam") && !strcmp(pw, s->password)) ||
		     pl_sim_access_password_ok(s, full, pw)))) {
		free(full);
		free(tuser);
		pl_sim_std_headers(s, req, true);
		b = evbuffer_new();
		evbuffer_add_printf(b, "{\"data\":null,\"message\":\"authentication failure\\n\"}");
		pl_sim_reply(s, req, 401, "authentication failure", b, s->opts.auth_delay_ms,
			     false);
		return;
	}
	ticket = ticket_new(s, full);
	csrf = csrf_new(s, full, (unsigned)time(NULL));
	o = json_pack("{s:{s:s,s:s,s:s,s:s,s:{s:{s:i},s:{s:i},s:{s:i},s:{s:i},s:{s:i}}}}", "data",
		      "username", full, "ticket", ticket, "CSRFPreventionToken", csrf,
		      "clustername", s->clustername, "cap", "vms", "VM.Allocate", 1, "storage",
		      "Datastore.Allocate", 1, "nodes", "Sys.Modify", 1, "access", "User.Modify", 1,
		      "dc", "Sys.Audit", 1);
	text = json_dumps(o, JSON_COMPACT);
	b = evbuffer_new();
	evbuffer_add(b, text, strlen(text));
	pl_sim_std_headers(s, req, true);
	pl_sim_reply(s, req, 200, "OK", b, 0, false);
	free(text);
	json_decref(o);
	free(ticket);
	free(csrf);
	free(full);
	free(tuser);
}
