/*
 * `pvelab proxy`: serve the time-shift TLS proxy (flags for one target, or the
 * `proxy:` section of pvelab.yaml), print its local CA (`proxy ca`), or pin an
 * upstream's certificate (`proxy trust`). The work is in src/proxy/.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/planning.h"
#include "core/err.h"
#include "core/file.h"
#include "core/log.h"
#include "core/x509.h"
#include "proxy/proxy.h"

#include <unistd.h>

static const struct pl_opt opts[] = {
    {"listen", 'l', "ADDR:PORT", "listen here (default " PL_PROXY_DEFAULT_LISTEN ")"},
    {"upstream", 'u', "URL", "the controller, https://HOST[:PORT] (one target from flags)"},
    {"ca-file", 0, "FILE", "trust anchors for the upstream (default: the system store)"},
    {"verify-at", 0, "DATE", "verify the upstream chain as of DATE (YYYY-MM-DD)"},
    {"pin", 0, "SHA256", "accept exactly this upstream certificate fingerprint"},
    {"ignore-time", 0, NULL, "verify chain and name but not the validity dates"},
    {"insecure", 'k', NULL, "do not verify the upstream at all (loudly logged)"},
    {"min-tls", 0, "VER", "lowest upstream TLS version: 1.0, 1.1, 1.2 (default), 1.3"},
    {"ciphers", 0, "LIST", "upstream OpenSSL cipher list"},
    {"weak-keys", 0, NULL, "accept small keys, MD5/SHA-1 signatures upstream (loudly logged)"},
    {"name", 'n', "HOSTNAME", "certificate name for clients that send no SNI"},
    {"no-rewrite-location", 0, NULL, "relay Location headers unchanged"},
    {"grace", 0, "SECONDS", "how long open connections may finish on shutdown (10)"},
    {"timeout", 0, "SECONDS", "trust: how long to wait for the upstream (10)"},
    {"yes", 'y', NULL, "trust: pin without asking (after showing the certificate)"},
    {NULL, 0, NULL, NULL},
};

enum {
	O_LISTEN,
	O_UPSTREAM,
	O_CAFILE,
	O_VERIFYAT,
	O_PIN,
	O_IGNORETIME,
	O_INSECURE,
	O_MINTLS,
	O_CIPHERS,
	O_WEAKKEYS,
	O_NAME,
	O_NOREWRITE,
	O_GRACE,
	O_TIMEOUT,
	O_YES
};

struct flags {
	const char *v[PL_ARRAY_LEN(opts)];
	bool set[PL_ARRAY_LEN(opts)];
	long long grace, timeout;
};

static int
print_ca(struct pl_ctx *ctx, const char *state_dir)
{
	char *pem = NULL, *err = NULL, *path = pl_proxy_ca_path(state_dir);
	bool created = false;
	int rc = PL_EXIT_ERROR;

	if (pl_proxy_ca_ensure(state_dir, true, &pem, &created, &err) != 0) {
		pl_error("cannot set up the proxy CA: %s", err);
		goto out;
	}
	if (ctx->output == PL_OUT_JSON) {
		rc = pl_print_json(
		    json_pack("{s:s,s:s,s:b}", "path", path, "pem", pem, "created", created));
		goto out;
	}
	if (created)
		fprintf(stderr, "pvelab: created a new proxy CA in '%s'\n", state_dir);
	fputs(pem, stdout);
	printf("\n# This is pvelab's local proxy CA (%s).\n"
	       "# Trust it once and the proxy's certificates are accepted:\n"
	       "#   Firefox:  Settings > Privacy & Security > Certificates > View Certificates >\n"
	       "#             Authorities > Import... (%s), tick \"identify websites\"\n"
	       "#   Chrome/Chromium on Linux (NSS):\n"
	       "#     certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n pvelab-proxy -i %s\n"
	       "#   Debian/Ubuntu system store:\n"
	       "#     sudo cp %s /usr/local/share/ca-certificates/pvelab-proxy.crt &&\n"
	       "#     sudo update-ca-certificates\n"
	       "#   macOS:\n"
	       "#     sudo security add-trusted-cert -d -r trustRoot \\\n"
	       "#       -k /Library/Keychains/System.keychain %s\n"
	       "#   Windows (admin prompt):\n"
	       "#     certutil -addstore -f Root %s\n"
	       "#   curl: curl --cacert %s https://...\n"
	       "# The CA key stays in %s (mode 0600); anyone holding it can impersonate\n"
	       "# any site to browsers that trust this CA, so keep the directory private.\n",
	       path, path, path, path, path, path, path, state_dir);
	rc = PL_EXIT_OK;
out:
	free(pem);
	free(err);
	free(path);
	return rc;
}

static int
target_from_flags(struct flags *f, const char *url, struct pl_proxy_target **out, char **err)
{
	struct pl_proxy_target *t = pl_proxy_target_new();
	int r;

	*out = NULL;
	if ((r = pl_proxy_parse_url(url, &t->host, &t->port, err)) != 0)
		goto out;
	t->name = pl_asprintf(strchr(t->host, ':') ? "[%s]:%d" : "%s:%d", t->host, t->port);
	if (f->set[O_CAFILE])
		t->ca_file = pl_strdup(f->v[O_CAFILE]);
	if (f->set[O_VERIFYAT]) {
		if ((r = pl_proxy_parse_date(f->v[O_VERIFYAT], &t->verify_at, err)) != 0)
			goto out;
		t->has_verify_at = true;
	}
	if (f->set[O_PIN] && pl_x509_fingerprint_norm(f->v[O_PIN], t->pin) != 0) {
		r = pl_seterr(err, PL_EINVAL,
		              "'%s' is not a SHA-256 fingerprint (AA:BB:... or hex)", f->v[O_PIN]);
		goto out;
	}
	t->ignore_time = f->set[O_IGNORETIME];
	t->insecure = f->set[O_INSECURE];
	t->weak_keys = f->set[O_WEAKKEYS];
	if (f->set[O_MINTLS] &&
	    (r = pl_proxy_parse_tls_version(f->v[O_MINTLS], &t->min_tls, err)) != 0)
		goto out;
	if (f->set[O_CIPHERS])
		t->ciphers = pl_strdup(f->v[O_CIPHERS]);
	t->rewrite_location = !f->set[O_NOREWRITE];
	*out = t;
	t = NULL;
	r = 0;
out:
	pl_proxy_target_free(t);
	return r;
}

/* The config to serve or trust from: flags when --upstream is given, else the YAML. */
static int
load_config(struct pl_ctx *ctx, struct flags *f, const char *state_dir,
            struct pl_proxy_config **out, char **err)
{
	struct pl_proxy_config *c = NULL;
	struct pl_proxy_target *t;
	int r;

	*out = NULL;
	if (f->set[O_UPSTREAM]) {
		if ((r = target_from_flags(f, f->v[O_UPSTREAM], &t, err)) != 0)
			return r;
		c = pl_proxy_config_new(state_dir);
		pl_proxy_config_add(c, t);
	} else {
		if (access(ctx->config_path, F_OK) != 0)
			return pl_seterr(err, PL_ENOENT,
			                 "no --upstream and no config file '%s' (give --upstream "
			                 "https://HOST or -c FILE with a proxy: section)",
			                 ctx->config_path);
		if ((r = pl_proxy_config_load(ctx->config_path, state_dir, &c, err)) != 0)
			return r;
	}
	if (f->set[O_LISTEN]) {
		free(c->listen);
		c->listen = pl_strdup(f->v[O_LISTEN]);
	}
	if (f->set[O_NAME]) {
		free(c->name);
		c->name = pl_strdup(f->v[O_NAME]);
	}
	if (f->set[O_GRACE])
		c->grace = (int)f->grace;
	*out = c;
	return 0;
}

static int
do_trust(struct pl_ctx *ctx, struct flags *f, const char *state_dir, const char *what)
{
	struct pl_proxy_config *c = NULL;
	struct pl_proxy_target *t = NULL, *own = NULL;
	struct pl_proxy_probe pr;
	char *err = NULL, key[300];
	int rc = PL_EXIT_ERROR;

	if (strstr(what, "://") == NULL && !f->set[O_UPSTREAM] &&
	    access(ctx->config_path, F_OK) == 0) {
		if (pl_proxy_config_load(ctx->config_path, state_dir, &c, &err) != 0) {
			pl_error("%s", err);
			goto out;
		}
		for (size_t i = 0; i < c->ntargets; i++)
			if (!strcmp(c->targets[i]->name, what))
				t = c->targets[i];
	}
	if (t == NULL) {
		if (strstr(what, "://") == NULL && strchr(what, '.') == NULL &&
		    strchr(what, ':') == NULL && c != NULL) {
			pl_error(
			    "no proxy target named '%s' in '%s' (give a name from proxy.targets "
			    "or an https:// URL)",
			    what, ctx->config_path);
			rc = PL_EXIT_USAGE;
			goto out;
		}
		if (target_from_flags(f, what, &own, &err) != 0) {
			pl_error("%s", err);
			rc = PL_EXIT_USAGE;
			goto out;
		}
		t = own;
	}
	if (pl_proxy_probe(t, (int)f->timeout, &pr, &err) != 0) {
		pl_error("cannot fetch the certificate of '%s': %s", t->name, err);
		goto out;
	}
	snprintf(key, sizeof(key), "%s:%d", t->host, t->port);
	/* the certificate is shown first; it is pinned only once accepted */
	if (!f->set[O_YES] && (ctx->output == PL_OUT_JSON || !isatty(STDIN_FILENO))) {
		pl_error("refusing to pin '%s' (sha256 %s) without --yes when not on a terminal",
		         key, pr.fingerprint);
		rc = PL_EXIT_USAGE;
		goto out;
	}
	if (ctx->output == PL_OUT_JSON) {
		if (pl_proxy_pin_record(state_dir, key, pr.fingerprint, pr.subject, pr.not_after,
		                        &err) != 0) {
			pl_error("cannot record the pin: %s", err);
			goto out;
		}
		rc = pl_print_json(json_pack(
		    "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "target", t->name, "upstream",
		    key, "subject", pr.subject, "issuer", pr.issuer, "not_before", pr.not_before,
		    "not_after", pr.not_after, "sha256", pr.fingerprint, "san", pr.san, "protocol",
		    pr.protocol, "verify_now", pr.verify_now, "expired", pr.expired));
		goto out;
	}
	printf("target:      %s (https://%s)\n", t->name, key);
	printf("subject:     %s\n", pr.subject);
	printf("issuer:      %s\n", pr.issuer);
	if (pr.san[0])
		printf("names:       %s\n", pr.san);
	printf("valid:       %s .. %s%s\n", pr.not_before, pr.not_after,
	       pr.expired ? "  (EXPIRED)" : "");
	printf("sha256:      %s\n", pr.fingerprint);
	printf("protocol:    %s %s\n", pr.protocol, pr.cipher);
	printf("verify now:  %s\n", pr.verify_now);
	fflush(stdout);
	if (!f->set[O_YES] && !pl_confirm("Pin this certificate?")) {
		pl_error("nothing was pinned");
		goto out;
	}
	if (pl_proxy_pin_record(state_dir, key, pr.fingerprint, pr.subject, pr.not_after, &err) !=
	    0) {
		pl_error("cannot record the pin: %s", err);
		goto out;
	}
	printf("pinned in %s/pins.json; `pvelab proxy` now accepts exactly this certificate\n"
	       "for %s unless the target sets verify_at, pin_sha256, ignore_time or insecure.\n",
	       state_dir, key);
	rc = PL_EXIT_OK;
out:
	free(err);
	pl_proxy_target_free(own);
	pl_proxy_config_free(c);
	return rc;
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct flags f;
	struct pl_args a;
	struct pl_proxy_config *c = NULL;
	char *err = NULL, *state_dir = NULL;
	int r, rc = PL_EXIT_ERROR;

	memset(&f, 0, sizeof(f));
	f.grace = 10;
	f.timeout = 10;
	if ((r = pl_args_parse(&a, &pl_cmd_proxy, ctx, argc, argv)) != 0 ||
	    (r = pl_args_num(&a, O_GRACE, 0, 3600, &f.grace)) != 0 ||
	    (r = pl_args_num(&a, O_TIMEOUT, 1, 600, &f.timeout)) != 0) {
		rc = pl_args_exit(r);
		goto out;
	}
	for (int i = 0; opts[i].name; i++) {
		f.set[i] = pl_args_has(&a, i);
		f.v[i] = pl_args_str(&a, i, NULL);
	}
	if (f.set[O_VERIFYAT] + f.set[O_PIN] + f.set[O_IGNORETIME] + f.set[O_INSECURE] > 1) {
		rc = pl_usage_error(&pl_cmd_proxy,
		                    "choose one of --verify-at, --pin, --ignore-time, --insecure");
		goto out;
	}
	if (pl_cmd_local_dir(ctx, &state_dir, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (a.npos >= 1 && !strcmp(a.pos[0], "ca")) {
		rc = a.npos == 1 ? print_ca(ctx, state_dir)
		                 : pl_usage_error(&pl_cmd_proxy, "'proxy ca' takes no arguments");
		goto out;
	}
	if (a.npos >= 1 && !strcmp(a.pos[0], "trust")) {
		rc = a.npos == 2
		         ? do_trust(ctx, &f, state_dir, a.pos[1])
		         : pl_usage_error(&pl_cmd_proxy, "'proxy trust' needs one TARGET or URL");
		goto out;
	}
	if (a.npos != 0) {
		rc = pl_usage_error(&pl_cmd_proxy, "unknown subcommand '%s' (ca or trust)",
		                    a.pos[0]);
		goto out;
	}
	if (load_config(ctx, &f, state_dir, &c, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (ctx->verbosity == 0)
		pl_log_set_level(PL_LOG_INFO);
	if (pl_proxy_serve(c, &err) != 0) {
		pl_error("proxy: %s", err);
		goto out;
	}
	rc = PL_EXIT_OK;
out:
	free(err);
	free(state_dir);
	return rc;
}

const struct pl_cmd pl_cmd_proxy = {
    .name = "proxy",
    .summary = "time-shift TLS proxy for old iDRAC/iLO controllers",
    .usage = "[--listen ADDR:PORT] [--upstream https://HOST[:PORT] [--ca-file F] "
             "[--verify-at DATE | --pin SHA256 | --ignore-time | --insecure] "
             "[--min-tls 1.0] [--weak-keys] [--ciphers LIST] [--name HOST] [--no-rewrite-location]] "
             "[--grace SECONDS] | ca | trust [--timeout SECONDS] [--yes] TARGET|URL",
    .help = "Gives a browser a modern TLS connection, trusted through pvelab's local CA\n"
            "(`pvelab proxy ca` prints it and how to install it), to a controller that\n"
            "speaks only old TLS with an expired certificate, verified honestly: as of a\n"
            "date (--verify-at), by pinned fingerprint (--pin, or `pvelab proxy trust`),\n"
            "or ignoring only the dates (--ignore-time). Without --upstream the targets\n"
            "come from the proxy: section of the config; SIGHUP reloads it, SIGUSR1 logs\n"
            "the counters, SIGTERM lets open connections finish. The CA and pins.json live in the "
            "state directory\n"
            "(the state database's directory: $PVELAB_STATE, state: in the config, else\n"
            ".pvelab/ beside the config).",
    .opts = opts,
    .max_args = 2,
    .run = run,
};
