/*
 * `pvelab token create|list|revoke`: the API tokens of pvelab serve. A secret
 * is printed once, when it is made; the store keeps only its SHA-256.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "serve/serve.h"
#include "state/state.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <time.h>

static const struct pl_opt opts[] = {
	{ "role", 'r', "ROLE",
	  "create: viewer (reads), operator (+ power, snapshots, sync) or admin (+ plan, apply, "
	  "rollback, destroy, tokens)" },
	{ "expires", 'e', "DURATION",
	  "create: valid for this long (90d, 12h, 30m); default never" },
	{ NULL, 0, NULL, NULL },
};

static bool
name_ok(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > 63)
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

static int
create(struct pl_ctx *ctx, struct pl_session *s, struct pl_args *a)
{
	const char *name = a->npos > 1 ? a->pos[1] : NULL, *role = pl_args_str(a, 0, NULL);
	const char *exp = pl_args_str(a, 1, NULL);
	unsigned char raw[32];
	char secret[4 + 64 + 1], sha[65], *err = NULL;
	long long secs = 0;
	double expires = 0;
	int rc = PL_EXIT_ERROR;

	if (name == NULL || !name_ok(name))
		return pl_usage_error(&pl_cmd_token,
				      "token create NAME: a name of letters, digits, "
				      "'-', '_' and '.' (at most 63)");
	if (role == NULL || pl_serve_role_parse(role) < 0)
		return pl_usage_error(&pl_cmd_token, "--role is viewer, operator or admin%s%s%s",
				      role ? ", not '" : "", role ? role : "", role ? "'" : "");
	if (exp && (secs = pl_str_duration(exp)) < 0)
		return pl_usage_error(&pl_cmd_token,
				      "--expires '%s' is not a duration (90d, 12h, "
				      "30m, 45s)",
				      exp);
	if (secs)
		expires = (double)time(NULL) + (double)secs;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return pl_error("cannot draw random bytes for the token");
	memcpy(secret, "pvl_", 4);
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(secret + 4 + 2 * i, 3, "%02x", raw[i]);
	OPENSSL_cleanse(raw, sizeof(raw));
	pl_sha256_hex(secret, strlen(secret), sha);
	if (pl_state_token_add(s->state, name, role, sha, expires, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (ctx->output == PL_OUT_JSON)
		pl_print_json(json_pack("{s:s,s:s,s:s,s:o}", "name", name, "role", role, "secret",
					secret, "expires",
					expires > 0 ? json_real(expires) : json_null()));
	else
		printf("%s\n", secret);
	if (pl_chatty(ctx))
		fprintf(stderr,
			"token '%s' (%s) created; its secret is shown only now: send it as "
			"'Authorization: Bearer <secret>'\n",
			name, role);
	rc = PL_EXIT_OK;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	free(err);
	return rc;
}

static int
list(struct pl_ctx *ctx, struct pl_session *s)
{
	json_t *toks = NULL, *t;
	char *err = NULL;
	size_t i;

	if (pl_state_tokens(s->state, &toks, &err) != 0) {
		pl_error("%s", err);
		free(err);
		return PL_EXIT_ERROR;
	}
	if (ctx->output == PL_OUT_JSON)
		return pl_print_json(toks), PL_EXIT_OK;
	printf("%s%-24s %-9s %-17s %s%s\n", pl_color(ctx, PL_C_BOLD), "NAME", "ROLE", "EXPIRES",
	       "STATE", pl_color(ctx, PL_C_RESET));
	json_array_foreach(toks, i, t) {
		char when[32] = "never";
		double e = pl_json_num(t, "expires", 0);
		time_t et = (time_t)e;

		if (e > 0)
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M", localtime(&et));
		printf("%-24s %-9s %-17s %s\n", pl_json_str_or(t, "name", "?"),
		       pl_json_str_or(t, "role", "?"), when,
		       !json_is_null(json_object_get(t, "revoked")) ? "revoked" :
		       (e > 0 && e <= (double)time(NULL))           ? "expired" :
								      "active");
	}
	json_decref(toks);
	return PL_EXIT_OK;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	const char *sub;
	char *err = NULL;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_token, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	sub = a.pos[0];
	if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke"))
		return pl_usage_error(&pl_cmd_token, "no token command '%s' (create, list, revoke)",
				      sub);
	if (strcmp(sub, "list") ? a.npos != 2 : a.npos != 1)
		return pl_usage_error(&pl_cmd_token, "token %s %s", sub,
				      strcmp(sub, "list") ? "takes one NAME" : "takes no argument");
	if ((pl_args_has(&a, 0) || pl_args_has(&a, 1)) && strcmp(sub, "create"))
		return pl_usage_error(&pl_cmd_token, "--role and --expires are for token create");
	if (pl_session_open(&s, ctx, PL_NEED_STATE, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (!strcmp(sub, "create")) {
		rc = create(ctx, &s, &a);
	} else if (!strcmp(sub, "list")) {
		rc = list(ctx, &s);
	} else if (pl_state_token_revoke(s.state, a.pos[1], &err) != 0) {
		pl_error("%s", err);
	} else {
		if (pl_chatty(ctx))
			printf("token '%s' revoked\n", a.pos[1]);
		rc = PL_EXIT_OK;
	}
out:
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_token = {
	.name = "token",
	.summary = "create, list and revoke the API tokens of pvelab serve",
	.usage = "create NAME --role viewer|operator|admin [--expires 90d] | list | revoke NAME",
	.help = "create prints the secret (pvl_ and 256 random bits in hex) once; the state\n"
		"database keeps only its SHA-256. Clients send it as 'Authorization: Bearer\n"
		"<secret>'. viewer reads; operator may also run power actions, snapshots and\n"
		"sync; admin may also plan, apply, roll back, destroy and manage tokens.\n"
		"A revoked token keeps its name. docs/serve.md describes the API.",
	.opts = opts,
	.min_args = 1,
	.max_args = 2,
	.run = run,
};
