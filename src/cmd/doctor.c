/*
 * `pvelab doctor`: whether pvelab can work with this cluster and token — the
 * API version, each node's clock and API certificate, the state store, how
 * much of the cluster the token sees, and, for everything the config
 * declares, the privileges PVE will check (each missing one named with its
 * path and the `pveum acl modify` line that grants it). `--print-setup`
 * prints the pveum commands that make a least-privilege token for the config.
 */
#include "core/common.h"

#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/doctor.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "pve/client.h"
#include "pve/resp.h"
#include "state/state.h"

enum { O_SETUP, O_USER };
static const struct pl_opt opts[] = {
	{ "print-setup", 0, NULL,
	  "print the pveum commands that create a least-privilege token for the config" },
	{ "user", 0, "USER@REALM", "the user --print-setup creates (default pvelab-PROJECT@pve)" },
	{ NULL, 0, NULL, NULL },
};

/* Clock skew that is worth a warning: PVE's tickets and pvelab's snapshot
 * names and ages assume the clocks agree. */
#define SKEW_WARN_S 3
/* Days before a node certificate's expiry that doctor warns. */
#define CERT_WARN_DAYS 30

struct report {
	struct pl_ctx *ctx;
	json_t *out;  /* the -o json document */
	int problems; /* what makes the exit status 1 */
	int warnings;
};

static void line(struct report *r, bool ok, bool warn, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
line(struct report *r, bool ok, bool warn, const char *fmt, ...)
{
	const char *word = ok ? "ok" : warn ? "warning" : "problem";
	va_list ap;

	r->problems += !ok && !warn;
	r->warnings += !ok && warn;
	if (r->ctx->output == PL_OUT_JSON)
		return;
	printf("%s%-8s%s ",
	       pl_color(r->ctx, ok   ? PL_C_GREEN :
				warn ? PL_C_YELLOW :
				       PL_C_RED),
	       word, pl_color(r->ctx, PL_C_RESET));
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* The PVE major version ("9.1.1" -> 9), 0 if unknown. */
static int
api_major(const json_t *version)
{
	const char *v = pl_json_str(version, "version");

	long long major = 0;
	char num[8];

	if (!v)
		return 0;
	snprintf(num, sizeof(num), "%.*s", (int)strcspn(v, "."), v);
	return pl_str_to_ll(num, 0, 999, &major) == 0 ? (int)major : 0;
}

static void
check_api(struct report *r, struct pl_session *s, json_t **version)
{
	char *err = NULL;

	if (pl_pve_call(s->pve, "GET", "/version", NULL, version, &err) != 0) {
		line(r, false, false, "API: cannot read /version: %s", err);
		free(err);
		return;
	}
	json_object_set(r->out, "api", *version);
	line(r, api_major(*version) >= 8, true, "API: Proxmox VE %s%s",
	     pl_json_str_or(*version, "version", "?"),
	     api_major(*version) >= 8 ? "" : " (pvelab is tested against 8.4 and 9.1)");
}

static void
check_token(struct report *r, struct pl_session *s, const char *tok)
{
	json_t *info = NULL;
	char *user, *path, *err = NULL;
	long long expire;

	if (!tok) {
		line(r, true, false,
		     "login: a password (a token with privilege separation is "
		     "safer: docs/cluster.md)");
		return;
	}
	user = pl_strndup(tok, strcspn(tok, "!"));
	path = pl_asprintf("/access/users/%s/token/%s", user, strchr(tok, '!') + 1);
	if (pl_pve_call(s->pve, "GET", path, NULL, &info, &err) != 0) {
		line(r, false, true, "token %s: cannot read its settings: %s", tok, err);
		goto out;
	}
	expire = pl_json_int(info, "expire", 0);
	json_object_set_new(r->out, "token",
			    json_pack("{s:s,s:b,s:I}", "id", tok, "privsep",
				      pl_json_int(info, "privsep", 0) != 0, "expire",
				      (json_int_t)expire));
	if (!pl_json_int(info, "privsep", 0))
		line(r, false, true,
		     "token %s: not privilege separated (it holds all of %s's privileges)", tok,
		     user);
	else
		line(r, true, false, "token %s: privilege separated", tok);
	if (expire && expire - time(NULL) < CERT_WARN_DAYS * 86400LL)
		line(r, false, expire > time(NULL), "token %s: %s", tok,
		     expire > time(NULL) ? "expires within 30 days" : "expired");
out:
	json_decref(info);
	free(err);
	free(path);
	free(user);
}

/* The certificate the node serves its API with: pveproxy-ssl.pem when there
 * is one (a custom or ACME certificate), else pve-ssl.pem. */
static const json_t *
served_cert(const json_t *certs)
{
	const json_t *c, *found = NULL;
	size_t i;

	json_array_foreach(certs, i, c) {
		const char *f = pl_json_str_or(c, "filename", "");

		if (!strcmp(f, "pveproxy-ssl.pem"))
			return c;
		if (!strcmp(f, "pve-ssl.pem"))
			found = c;
	}
	return found;
}

static void
check_nodes(struct report *r, struct pl_session *s)
{
	json_t *nodes = NULL, *n, *list = json_array();
	char *err = NULL;
	size_t i;

	if (pl_pve_call(s->pve, "GET", "/nodes", NULL, &nodes, &err) != 0) {
		line(r, false, false, "nodes: cannot list them: %s", err);
		free(err);
		json_decref(list);
		return;
	}
	json_array_foreach(nodes, i, n) {
		const char *name = pl_json_str_or(n, "node", "?");
		json_t *t = NULL, *certs = NULL, *o = json_pack("{s:s}", "node", name);
		char *path;

		json_array_append_new(list, o);
		if (strcmp(pl_json_str_or(n, "status", ""), "online") != 0) {
			line(r, false, true, "node %s: offline, not checked", name);
			continue;
		}
		path = pl_asprintf("/nodes/%s/time", name);
		if (pl_pve_call(s->pve, "GET", path, NULL, &t, &err) == 0) {
			long long skew = pl_json_int(t, "time", 0) - (long long)time(NULL);

			json_object_set_new(o, "clock_skew_s", json_integer(skew));
			line(r, llabs(skew) < SKEW_WARN_S, true,
			     "node %s: clock %+lld s from this host's%s", name, skew,
			     llabs(skew) < SKEW_WARN_S ? "" : " (run NTP on both: chrony)");
		} else {
			line(r, false, true, "node %s: cannot read its clock: %s", name, err);
			free(err);
			err = NULL;
		}
		free(path);
		path = pl_asprintf("/nodes/%s/certificates/info", name);
		if (pl_pve_call(s->pve, "GET", path, NULL, &certs, &err) == 0 &&
		    served_cert(certs)) {
			const json_t *c = served_cert(certs);
			long long left =
				(pl_json_int(c, "notafter", 0) - (long long)time(NULL)) / 86400;

			json_object_set_new(o, "certificate",
					    json_pack("{s:s,s:I,s:I}", "filename",
						      pl_json_str_or(c, "filename", ""), "notafter",
						      (json_int_t)pl_json_int(c, "notafter", 0),
						      "days_left", (json_int_t)left));
			line(r, left >= CERT_WARN_DAYS, left >= 0,
			     "node %s: API certificate %s %s %lld days%s", name,
			     pl_json_str_or(c, "filename", ""),
			     left >= 0 ? "expires in" : "expired", llabs(left),
			     left >= CERT_WARN_DAYS ? "" :
						      " (pvenode cert set, or ACME: "
						      "docs/cluster.md)");
		} else {
			line(r, false, true, "node %s: cannot read its certificates: %s", name,
			     err ? err : "none listed");
			free(err);
			err = NULL;
		}
		free(path);
		json_decref(t);
		json_decref(certs);
	}
	json_object_set_new(r->out, "nodes", list);
	json_decref(nodes);
}

static void
check_trust(struct report *r, struct pl_session *s)
{
	/* as the session chose (connect.c): the environment before the config */
	const char *fp = getenv("PVELAB_FINGERPRINT"), *ca = getenv("PVELAB_CA_FILE"), *how;

	if (!fp && !ca && s->cfg) {
		fp = json_string_value(pl_config_get(s->cfg, "/cluster/fingerprint"));
		ca = json_string_value(pl_config_get(s->cfg, "/cluster/ca_file"));
	}
	how = fp ? "pinned by its SHA-256 fingerprint" :
	      ca ? "verified against the CA file given" :
		   "verified against the system's CAs";

	json_object_set_new(r->out, "trust",
			    json_string(fp ? "fingerprint" :
					ca ? "ca_file" :
					     "system"));
	line(r, true, false, "TLS: the API's certificate is %s", how);
}

/* A PostgreSQL store: it answers, with its schema version, or has none yet
 * (the first sync makes it); never written here. */
static void
check_state_pg(struct report *r, const char *where)
{
	char *shown = pl_state_display(where), *err = NULL;
	struct pl_state *st = NULL;
	int v = -1, rc;

	if ((rc = pl_state_open_ro(where, &st, &err)) == 0) {
		v = pl_state_version(st);
		pl_state_close(st);
	}
	json_object_set_new(r->out, "state",
			    json_pack("{s:s,s:b,s:i}", "path", shown, "postgres", true, "version",
				      rc == PL_ENOENT ? 0 : v));
	if (rc == 0)
		line(r, true, false, "state: %s answers (schema version %d)", shown, v);
	else if (rc == PL_ENOENT)
		line(r, true, false, "state: %s answers; its schema will be created", shown);
	else
		line(r, false, false, "state: %s", err);
	free(err);
	free(shown);
}

/* Whether the state store can be written: the file if it exists, else the
 * nearest directory that does. */
static void
check_state(struct report *r, struct pl_ctx *ctx)
{
	char *path = NULL, *err = NULL, *dir;
	struct pl_state *st = NULL;
	bool ok;

	if (pl_cmd_state_path(ctx, &path, &err) != 0) {
		line(r, false, false, "state: %s", err);
		free(err);
		return;
	}
	if (pl_state_is_pg(path)) {
		check_state_pg(r, path);
		free(path);
		return;
	}
	if (access(path, F_OK) == 0) {
		int v = -1;

		ok = access(path, R_OK | W_OK) == 0;
		if (pl_state_open_ro(path, &st, &err) == 0) {
			v = pl_state_version(st);
			pl_state_close(st);
		}
		json_object_set_new(
			r->out, "state",
			json_pack("{s:s,s:b,s:i}", "path", path, "writable", ok, "version", v));
		line(r, ok && !err, false, "state: %s %s%s%s", path,
		     ok ? "is writable" : "cannot be written", err ? ": " : "", err ? err : "");
	} else {
		dir = pl_strdup(path);
		do {
			char *slash = strrchr(dir, '/');

			if (!slash) {
				free(dir);
				dir = pl_strdup(".");
				break;
			}
			*slash = 0;
		} while (*dir && access(dir, F_OK) != 0);
		ok = access(*dir ? dir : "/", W_OK) == 0;
		json_object_set_new(r->out, "state",
				    json_pack("{s:s,s:b}", "path", path, "writable", ok));
		line(r, ok, false, "state: %s will be created%s%s", path,
		     ok ? "" : " but cannot be: no write access to ", ok ? "" : dir);
		free(dir);
	}
	free(err);
	free(path);
}

/* The privileges the token has on path (GET /access/permissions?path=). */
static json_t *
privs_on(struct pl_session *s, json_t *cache, const char *path)
{
	json_t *p = json_object_get(cache, path), *got = NULL, *params;
	char *err = NULL;

	if (p)
		return p;
	params = json_pack("{s:s}", "path", path);
	if (pl_pve_call(s->pve, "GET", "/access/permissions", params, &got, &err) == 0)
		p = json_incref(json_object_get(got, path));
	json_decref(params);
	json_decref(got);
	free(err);
	if (!p)
		p = json_object();
	json_object_set_new(cache, path, p);
	return p;
}

static void
check_view(struct report *r, struct pl_session *s, json_t *cache)
{
	bool all = json_object_get(privs_on(s, cache, "/vms"), "VM.Audit") != NULL;

	json_object_set_new(r->out, "sees_all_guests", json_boolean(all));
	line(r, all, true, "view: %s",
	     all ? "the token sees every guest (VM.Audit on /vms)" :
		   "the token sees only part of the cluster: guests outside its view are kept "
		   "as last synced, never recorded deleted");
}

static void
check_needs(struct report *r, struct pl_session *s, json_t *needs, json_t *cache, const char *tok,
	    bool privsep)
{
	json_t *n;
	size_t i;

	json_array_foreach(needs, i, n) {
		const char *path = pl_json_str(n, "path");
		json_t *have = privs_on(s, cache, path), *missing = json_array(), *p;
		struct pl_buf roles, list;
		size_t j;

		pl_buf_init(&roles, 0);
		pl_buf_init(&list, 0);
		json_array_foreach(json_object_get(n, "privileges"), j, p) {
			const char *priv = json_string_value(p);
			/* what only root@pam may do, no token can */
			bool ok = strcmp(priv, "root@pam") ?
					  json_object_get(have, priv) != NULL :
					  !tok; /* a password login: root@pam's? */

			if (ok)
				continue;
			json_array_append_new(missing, json_string(priv));
			pl_buf_addf(&list, "%s%s", list.len ? "," : "", priv);
			if (strcmp(priv, "root@pam") &&
			    !strstr(roles.data ? roles.data : "", pl_pve_role_for(priv)))
				pl_buf_addf(&roles, "%s%s", roles.len ? "," : "",
					    pl_pve_role_for(priv));
		}
		json_object_set_new(n, "missing", missing);
		if (json_array_size(missing) == 0) {
			line(r, true, false, "%s", pl_json_str(n, "what"));
		} else if (!roles.len) {
			line(r, false, false, "%s: only root@pam may (use a resource mapping)",
			     pl_json_str(n, "what"));
		} else {
			char *user = tok ? pl_strndup(tok, strcspn(tok, "!")) : NULL;
			char *fix =
				tok ? pl_asprintf(
					      "pveum acl modify %s%s%s --tokens '%s' --roles %s",
					      path, privsep ? " --users " : "", privsep ? user : "",
					      tok, roles.data) :
				      pl_asprintf(
					      "pveum acl modify %s --users USER@REALM --roles %s",
					      path, roles.data);

			json_object_set_new(n, "fix", json_string(fix));
			line(r, false, false, "%s: %s on %s missing: %s", pl_json_str(n, "what"),
			     list.data, path, fix);
			free(fix);
			free(user);
		}
		free(pl_buf_detach(&roles, NULL));
		free(pl_buf_detach(&list, NULL));
	}
	json_object_set(r->out, "needs", needs);
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* --print-setup: roles (one per distinct privilege set of each kind of
 * path), a user, a privilege-separated token and the ACLs. */
static void
print_setup(const json_t *needs, const char *project, const char *user)
{
	json_t *paths = json_object(), *roles = json_object(), *n, *v;
	const char *path;
	char *u = user ? pl_strdup(user) : pl_asprintf("pvelab-%s@pve", project);
	size_t i, j;

	/* path -> set of privileges */
	json_array_foreach(needs, i, n) {
		json_t *set = json_object_get(paths, pl_json_str(n, "path"));

		if (!set) {
			set = json_object();
			json_object_set_new(paths, pl_json_str(n, "path"), set);
		}
		json_array_foreach(json_object_get(n, "privileges"), j, v)
			if (strcmp(json_string_value(v), "root@pam"))
				json_object_set_new(set, json_string_value(v), json_true());
	}
	printf("# A least-privilege API token for %s (project %s): run as root on a node.\n",
	       "this config", project);
	json_object_foreach(paths, path, v) {
		const char *kind = !strcmp(path, "/")                  ? "Cluster" :
				   pl_str_startswith(path, "/storage") ? "Storage" :
				   pl_str_startswith(path, "/nodes")   ? "Nodes" :
				   pl_str_startswith(path, "/sdn")     ? "Network" :
				   pl_str_startswith(path, "/mapping") ? "Mapping" :
									 "Guests";
		const char **keys = pl_calloc(json_object_size(v) + 1, sizeof(*keys));
		struct pl_buf b;
		const char *k;
		json_t *x;
		size_t nk = 0, idx = 1;
		char *name = NULL;

		if (!json_object_size(v)) {
			free(keys);
			continue;
		}
		json_object_foreach(v, k, x)
			keys[nk++] = k;
		qsort(keys, nk, sizeof(*keys), by_name);
		pl_buf_init(&b, 0);
		for (j = 0; j < nk; j++)
			pl_buf_addf(&b, "%s%s", j ? "," : "", keys[j]);
		free(keys);
		/* the same privileges on paths of one kind share a role */
		for (;;) {
			const char *have;

			free(name);
			name = idx == 1 ? pl_asprintf("PVELab-%s-%s", project, kind) :
					  pl_asprintf("PVELab-%s-%s%zu", project, kind, idx);
			have = json_string_value(json_object_get(roles, name));
			if (!have) {
				json_object_set_new(roles, name, json_string(b.data));
				printf("pveum role add %s --privs \"%s\"\n", name, b.data);
				break;
			}
			if (!strcmp(have, b.data))
				break;
			idx++;
		}
		json_object_set_new(v, "", json_string(name)); /* the path's role */
		free(name);
		free(pl_buf_detach(&b, NULL));
	}
	printf("pveum user add %s --comment \"pvelab project %s\"\n", u, project);
	printf("pveum user token add %s pvelab --privsep 1\n", u);
	json_object_foreach(paths, path, v) {
		const char *role = pl_json_str(v, "");

		if (role)
			printf("pveum acl modify %s --users %s --tokens '%s!pvelab' --roles %s%s\n",
			       path, u, u, role, !strcmp(path, "/") ? " --propagate 0" : "");
	}
	printf("# then in the config: cluster: {token_id: \"%s!pvelab\", token_secret_file: ...}\n",
	       u);
	json_array_foreach(needs, i, n) {
		json_array_foreach(json_object_get(n, "privileges"), j, v)
			if (!strcmp(json_string_value(v), "root@pam"))
				printf("# %s: only root@pam may; no token can (use a resource "
				       "mapping)\n",
				       pl_json_str(n, "what"));
	}
	json_decref(paths);
	json_decref(roles);
	free(u);
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	struct report r = { .ctx = ctx };
	json_t *version = NULL, *resources = NULL, *needs = NULL, *cache = NULL;
	char *err = NULL, *tok = NULL;
	bool privsep;
	int rc;

	if ((rc = pl_args_parse(&a, &pl_cmd_doctor, ctx, argc, argv)) != 0)
		return pl_args_exit(rc);
	rc = PL_EXIT_ERROR;
	if (pl_session_open(&s, ctx, PL_NEED_API, &err) != 0) {
		pl_error("doctor: %s", err);
		free(err);
		return PL_EXIT_ERROR;
	}
	r.out = json_object();
	cache = json_object();
	if (pl_args_has(&a, O_SETUP)) {
		if (!s.cfg) {
			pl_error("doctor --print-setup: no config to read what it needs (-c FILE)");
			goto out;
		}
		/* the cluster is read for clone templates and the version only */
		pl_pve_call(s.pve, "GET", "/version", NULL, &version, NULL);
		pl_pve_call(s.pve, "GET", "/cluster/resources?type=vm", NULL, &resources, NULL);
		needs = pl_doctor_needs(s.cfg, resources, version ? api_major(version) : 9);
		print_setup(needs, pl_config_project(s.cfg), pl_args_str(&a, O_USER, NULL));
		rc = PL_EXIT_OK;
		goto out;
	}
	tok = pl_pve_token_id(s.pve);
	check_api(&r, &s, &version);
	check_trust(&r, &s);
	check_token(&r, &s, tok);
	check_nodes(&r, &s);
	check_state(&r, ctx);
	check_view(&r, &s, cache);
	pl_pve_call(s.pve, "GET", "/cluster/resources?type=vm", NULL, &resources, NULL);
	needs = pl_doctor_needs(s.cfg, resources, version ? api_major(version) : 9);
	privsep = json_is_true(json_object_get(json_object_get(r.out, "token"), "privsep"));
	check_needs(&r, &s, needs, cache, tok, privsep);
	json_object_set_new(r.out, "problems", json_integer(r.problems));
	json_object_set_new(r.out, "warnings", json_integer(r.warnings));
	if (ctx->output == PL_OUT_JSON)
		pl_print_json(json_incref(r.out));
	else
		printf("%d problem%s, %d warning%s%s\n", r.problems, r.problems == 1 ? "" : "s",
		       r.warnings, r.warnings == 1 ? "" : "s",
		       r.problems && s.cfg ? " (pvelab doctor --print-setup prints a token "
					     "setup that has what the config needs)" :
					     "");
	rc = r.problems ? PL_EXIT_ERROR : PL_EXIT_OK;
out:
	json_decref(version);
	json_decref(resources);
	json_decref(needs);
	json_decref(cache);
	json_decref(r.out);
	free(tok);
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_doctor = {
	.name = "doctor",
	.summary = "check the cluster, the token's privileges and the state store",
	.usage = "[--print-setup [--user USER@REALM]]",
	.help = "Checks what pvelab needs to work: the API version, each node's clock and API\n"
		"certificate, how the certificate is trusted, the state store, how much of the\n"
		"cluster the token sees, and for everything the config declares (guests, their\n"
		"storages and bridges, clone templates, bridges, storages, backup jobs, pools,\n"
		"the firewall, snapshot policies) the privileges Proxmox VE will check, each\n"
		"read from GET /access/permissions on its path. A missing privilege is named\n"
		"with the 'pveum acl modify' line that grants it. Exit status 1 on a problem\n"
		"(warnings do not count).\n"
		"\n"
		"--print-setup prints the pveum commands that create a user, a privilege\n"
		"separated token, roles with exactly the privileges the config needs and the\n"
		"ACLs on exactly the paths it needs them (docs/cluster.md).",
	.opts = opts,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
