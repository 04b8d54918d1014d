/*
 * `pvelab ssh forget HOST[:PORT]` and `pvelab ssh hosts`: the SSH host keys
 * pvelab trusted on first use (state store, core/ssh.h), listed, and one
 * forgotten after a guest or host was rebuilt on purpose, so that the next
 * connection trusts its new key. A changed key is refused until then.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/json.h"
#include "core/str.h"
#include "state/state.h"

#include <limits.h>

static const struct pl_opt opts[] = {
	{ NULL, 0, NULL, NULL },
};

/* HOST, HOST:PORT or [V6]:PORT into host (caller frees) and port (22). */
static int
split_host(const char *arg, char **host, int *port)
{
	const char *colon = strrchr(arg, ':');
	long long p = 22;

	if (arg[0] == '[') {
		const char *end = strchr(arg, ']');

		if (!end || (end[1] && (end[1] != ':' || pl_str_to_ll(end + 2, 1, 65535, &p))))
			return -1;
		*host = pl_strndup(arg + 1, (size_t)(end - arg - 1));
	} else if (colon && strchr(arg, ':') == colon) {
		if (colon == arg || pl_str_to_ll(colon + 1, 1, 65535, &p) != 0)
			return -1;
		*host = pl_strndup(arg, (size_t)(colon - arg));
	} else {
		*host = pl_strdup(arg); /* a bare IPv6 address, or a name */
	}
	*port = (int)p;
	return **host ? 0 : -1;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	json_t *hosts = NULL, *h;
	char *err = NULL, *host = NULL;
	int r, port = 22, rc = PL_EXIT_ERROR;
	size_t i;

	if ((r = pl_args_parse(&a, &pl_cmd_ssh, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	if (!strcmp(a.pos[0], "forget")) {
		if (a.npos != 2)
			return pl_usage_error(&pl_cmd_ssh, "ssh forget needs HOST[:PORT]");
		if (split_host(a.pos[1], &host, &port) != 0) {
			free(host);
			return pl_usage_error(&pl_cmd_ssh,
					      "'%s' is not HOST, HOST:PORT or [V6]:PORT", a.pos[1]);
		}
	} else if (strcmp(a.pos[0], "hosts") || a.npos != 1) {
		return pl_usage_error(&pl_cmd_ssh,
				      "unknown action '%s' (ssh hosts, ssh forget HOST[:PORT])",
				      a.pos[0]);
	}
	if (pl_session_open(&s, ctx, PL_NEED_STATE, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (host) {
		if (pl_state_ssh_forget(s.state, host, port, &err) != 0) {
			pl_error("%s (pvelab ssh hosts lists them)", err);
			goto out;
		}
		if (pl_chatty(ctx))
			printf("Forgot the host key of %s:%d: the next connection trusts the key "
			       "it "
			       "presents.\n",
			       host, port);
		rc = PL_EXIT_OK;
		goto out;
	}
	if (pl_state_ssh_hosts(s.state, &hosts, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(json_incref(hosts));
	} else {
		if (json_array_size(hosts) == 0 && pl_chatty(ctx))
			printf("No SSH host keys recorded yet.\n");
		json_array_foreach(hosts, i, h)
			printf("%s:%lld  %s %s\n", pl_json_str_or(h, "host", "?"),
			       pl_json_int(h, "port", 0), pl_json_str_or(h, "keytype", "?"),
			       pl_json_str_or(h, "fingerprint", "?"));
	}
	rc = PL_EXIT_OK;
out:
	json_decref(hosts);
	free(host);
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_ssh = {
	.name = "ssh",
	.summary =
		"list the SSH host keys pvelab trusts, or forget one (a host rebuilt on purpose)",
	.usage = "hosts | forget HOST[:PORT]",
	.help = "pvelab reaches guests (stacks, verify) and hosts (host check/apply) over SSH\n"
		"with host keys trusted on first use and recorded in the state store; a key\n"
		"that changes later is refused, naming both fingerprints. `ssh hosts` lists\n"
		"the recorded keys; `ssh forget HOST[:PORT]` (port 22 when left out) drops\n"
		"one, after you have checked that the host was rebuilt and not impersonated:\n"
		"the next connection trusts the key it presents.",
	.opts = opts,
	.min_args = 1,
	.max_args = 2,
	.run = run,
};
