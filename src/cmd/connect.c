/*
 * Connection settings for commands that talk to Proxmox or read the state:
 * environment variables win over pvelab.yaml; secrets come from 0600 files or
 * the environment and are wiped after use.
 */
#include "core/common.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/diag.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/str.h"
#include "core/json.h"
#include "pve/client.h"
#include "state/state.h"

#include <event2/event.h>
#include <sys/stat.h>
#include <unistd.h>

/* What pl_session_keep_begin keeps between sessions. */
static struct {
	bool on;
	struct event_base *base;
	struct pl_pve *pve;
	char pve_key[65]; /* SHA-256 of the client's settings, secrets included */
	struct pl_state *state;
	char *state_path;
	bool state_ro;
	int state_users; /* sessions open on it now */
} kept;

void
pl_session_keep_begin(void)
{
	kept.on = true;
	if (kept.base == NULL && (kept.base = event_base_new()) == NULL)
		pl_die("cannot create an event loop");
}

void
pl_session_keep_drop_api(void)
{
	pl_pve_free(kept.pve);
	kept.pve = NULL;
}

void
pl_session_keep_end(void)
{
	pl_pve_free(kept.pve);
	if (kept.base)
		event_base_free(kept.base);
	pl_state_close(kept.state);
	free(kept.state_path);
	memset(&kept, 0, sizeof(kept));
}

struct event_base *
pl_session_kept_base(void)
{
	return kept.base;
}

struct pl_pve *
pl_session_kept_pve(void)
{
	return kept.pve;
}

/* The kept store when it is the one at path and open for what mode needs. */
static struct pl_state *
kept_state(const char *path, unsigned need)
{
	if (!kept.on || kept.state == NULL || strcmp(kept.state_path, path) != 0)
		return NULL;
	if (kept.state_ro && !(need & PL_NEED_STATE_RO))
		return NULL;
	kept.state_users++;
	return kept.state;
}

/* Keep the store s just opened, unless the one kept is still in use. */
static void
keep_state(struct pl_session *s, unsigned need)
{
	if (!kept.on || s->state == kept.state || kept.state_users > 0)
		return;
	pl_state_close(kept.state);
	free(kept.state_path);
	kept.state = s->state;
	kept.state_path = pl_strdup(s->state_path);
	kept.state_ro = (need & PL_NEED_STATE_RO) != 0;
	kept.state_users = 1;
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int
read_config(struct pl_session *s, char **errmsg)
{
	struct pl_diags d;
	struct stat sb;
	int r;

	if (stat(s->ctx->config_path, &sb) != 0) {
		if (s->ctx->config_given)
			return pl_seterr(errmsg, PL_ENOENT, "config file '%s' not found",
					 s->ctx->config_path);
		return 0;
	}
	pl_diags_init(&d);
	r = pl_config_load(s->ctx->config_path, &s->cfg, &d);
	if (r != 0) {
		char *line = NULL;

		for (size_t i = 0; i < d.n && !line; i++)
			if (d.items[i].level == PL_DIAG_ERROR)
				line = pl_diag_line(&d.items[i]);
		pl_seterr(errmsg, PL_EINVAL, "%s (pvelab validate shows all problems)",
			  line ? line : "invalid config");
		free(line);
		pl_config_free(s->cfg);
		s->cfg = NULL;
		r = PL_EINVAL;
	}
	pl_diags_release(&d);
	return r;
}

/* A config with clusters: is worked on one cluster at a time: --cluster's,
 * or its only one; with several and no --cluster the command cannot choose
 * (the reads that cover them all ask pl_cmd_clusters first). */
static int
select_cluster(struct pl_session *s, char **errmsg)
{
	const json_t *cls = pl_config_clusters(s->cfg);
	const char *name = s->ctx->cluster;
	char *list;
	int r;

	if (name == NULL && cls == NULL)
		return 0;
	if (name == NULL && json_object_size(cls) == 1)
		name = json_object_iter_key(json_object_iter((json_t *)cls));
	if (name)
		return pl_config_select_cluster(s->cfg, name, errmsg);
	list = pl_config_cluster_list(s->cfg);
	r = pl_seterr(errmsg, PL_EINVAL,
		      "%s has several clusters (%s): choose one with --cluster "
		      "NAME",
		      pl_config_path(s->cfg), list);
	free(list);
	return r;
}

static int
load_config(struct pl_session *s, char **errmsg)
{
	int r = read_config(s, errmsg);

	return r ? r : s->cfg ? select_cluster(s, errmsg) : 0;
}

size_t
pl_cmd_clusters(struct pl_ctx *ctx, char ***names)
{
	struct pl_session s;
	const json_t *cls = NULL;
	const char *k;
	char *err = NULL;
	json_t *v;
	size_t n = 0;

	*names = NULL;
	memset(&s, 0, sizeof(s));
	s.ctx = ctx;
	/* --cluster, no clusters: or only one: one pass, as before (a config
	 * that does not load is the pass's to report) */
	if (ctx->cluster == NULL && read_config(&s, &err) == 0 && s.cfg)
		cls = pl_config_clusters(s.cfg);
	free(err);
	if (json_object_size(cls) < 2) {
		pl_session_close(&s);
		*names = pl_calloc(1, sizeof(**names));
		return 1;
	}
	*names = pl_calloc(json_object_size(cls), sizeof(**names));
	json_object_foreach((json_t *)cls, k, v)
		(*names)[n++] = pl_strdup(k);
	pl_session_close(&s);
	return n;
}

void
pl_cmd_clusters_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int
pl_cmd_guest_cluster(struct pl_ctx *ctx, const char *guest, char **cluster, char **errmsg)
{
	char **cls = NULL, *found = NULL, *both = NULL, *list;
	size_t n = pl_cmd_clusters(ctx, &cls);
	struct pl_buf b;
	int r = 0;

	*cluster = NULL;
	if (n == 1) {
		pl_cmd_clusters_free(cls, n);
		return 0;
	}
	for (size_t i = 0; i < n && !both && !strchr(guest, ':'); i++) {
		struct pl_ctx one = *ctx;
		struct pl_session s;
		json_t *g = NULL;
		char *e = NULL;

		one.cluster = cls[i];
		if (pl_session_open(&s, &one, PL_NEED_STATE_RO, &e) == 0 &&
		    pl_session_guest(&s, guest, &g, &e) == 0) {
			if (found)
				both = cls[i];
			else
				found = cls[i];
		}
		json_decref(g);
		free(e);
		pl_session_close(&s);
	}
	pl_buf_init(&b, 0);
	for (size_t i = 0; i < n; i++)
		pl_buf_addf(&b, "%s%s", i ? ", " : "", cls[i]);
	list = pl_buf_detach(&b, NULL);
	if (both)
		r = pl_seterr(errmsg, PL_ECONFLICT,
			      "'%s' is in clusters '%s' and '%s' (choose one "
			      "with --cluster NAME)",
			      guest, found, both);
	else if (found)
		ctx->cluster = *cluster = pl_strdup(found);
	else if (strchr(guest, ':'))
		r = pl_seterr(errmsg, PL_EINVAL,
			      "the config has several clusters (%s): choose one "
			      "with --cluster NAME",
			      list);
	else
		r = pl_seterr(errmsg, PL_ENOENT,
			      "guest '%s' not found in any cluster (%s; run "
			      "pvelab sync if it is new)",
			      guest, list);
	free(list);
	pl_cmd_clusters_free(cls, n);
	return r;
}

/* "~/x", "$HOME/x", "$XDG_CONFIG_HOME/x" (or ${...}) as the shell would
 * expand them; NULL when p starts with none of them. */
static char *
expand_home(const char *p)
{
	static const char *const vars[] = { "HOME", "XDG_CONFIG_HOME" };
	const char *home = env("HOME");

	if (p[0] == '~' && (p[1] == '/' || p[1] == '\0'))
		return home ? pl_asprintf("%s%s", home, p + 1) : NULL;
	for (size_t i = 0; i < PL_ARRAY_LEN(vars); i++) {
		size_t n = strlen(vars[i]);
		const char *rest = NULL, *v;

		if (p[0] == '$' && !strncmp(p + 1, vars[i], n) && (p[n + 1] == '/' || !p[n + 1]))
			rest = p + n + 1;
		else if (!strncmp(p, "${", 2) && !strncmp(p + 2, vars[i], n) && p[n + 2] == '}')
			rest = p + n + 3;
		if (rest == NULL)
			continue;
		if ((v = env(vars[i])) != NULL)
			return pl_asprintf("%s%s", v, rest);
		if (i == 1 && home) /* the XDG default */
			return pl_asprintf("%s/.config%s", home, rest);
		return NULL;
	}
	return NULL;
}

/* A path from the config: ~ and $XDG_CONFIG_HOME expanded, else relative to
 * the config file's directory (shown without a leading "./"). */
static char *
cfg_path(const struct pl_session *s, const char *p)
{
	char *dir, *r;

	if ((r = expand_home(p)) != NULL || p[0] == '/')
		return r ? r : pl_strdup(p);
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	dir = pl_path_dirname(pl_config_path(s->cfg));
	r = strcmp(dir, ".") ? pl_path_join(dir, p) : pl_strdup(p);
	free(dir);
	return r;
}

/* A path from the environment: ~ expanded (when it was quoted). */
static char *
env_path(const char *name)
{
	char *r = expand_home(env(name));

	return r ? r : pl_strdup(env(name));
}

/* An integer environment variable with the range of the config key it
 * stands for; 0 (and *out untouched) when it is not set. */
static int
env_int(const char *name, const char *key, long long min, long long max, long long *out,
	char **errmsg)
{
	const char *v = env(name);

	if (v == NULL)
		return 0;
	if (pl_str_to_ll(v, min, max, out) != 0)
		return pl_seterr(errmsg, PL_EINVAL, "%s='%.40s' is not a number from %lld to %lld "
				 "(it stands for %s)", name, v, min, max, key);
	return 0;
}

/* Where the store is. A cluster of clusters: has its own: its state:, else
 * the one the config would have with -NAME before the extension (one schema,
 * one store per cluster: its history, runs and locks are that cluster's). */
static char *
state_path(struct pl_session *s)
{
	const char *p = s->cfg ? json_string_value(pl_config_get(s->cfg, "/state")) : NULL;
	const char *cl = s->cfg ? pl_config_cluster(s->cfg) : NULL;
	const char *cs = s->cfg ? pl_config_cluster_state(s->cfg) : NULL;
	char *given = NULL, *r;

	/* ~ and $HOME expanded as in every path key; the order (environment,
	 * YAML, beside the config) is pl_state_path's */
	if (cs)
		given = pl_state_is_pg(cs) ? pl_strdup(cs) : cfg_path(s, cs);
	else if (env("PVELAB_STATE"))
		given = pl_state_is_pg(env("PVELAB_STATE")) ? pl_strdup(env("PVELAB_STATE")) :
							      env_path("PVELAB_STATE");
	else if (p && s->cfg)
		given = pl_state_is_pg(p) ? pl_strdup(p) : cfg_path(s, p);
	r = pl_state_path(given, NULL, s->cfg ? pl_config_path(s->cfg) : s->ctx->config_path);
	free(given);
	if (cl && !cs && pl_state_is_pg(r)) { /* one database, a schema per cluster */
		char *schema = pl_asprintf("pvelab_%s", cl), *per = pl_state_pg_schema(r, schema);

		free(schema);
		free(r);
		r = per;
	} else if (cl && !cs) { /* dir/state.db -> dir/state-NAME.db */
		const char *base = strrchr(r, '/') ? strrchr(r, '/') + 1 : r;
		const char *dot = strrchr(base, '.');
		size_t at = dot && dot != base ? (size_t)(dot - r) : strlen(r);
		char *per = pl_asprintf("%.*s-%s%s", (int)at, r, cl, r + at);

		free(r);
		r = per;
	}
	return r;
}

/* The store's location, or (local) the local files' directory, of the
 * config ctx names. */
static int
cmd_path(struct pl_ctx *ctx, bool local, char **path, char **errmsg)
{
	struct pl_ctx c = *ctx;
	struct pl_session s;
	int r;

	/* No config file there: the default beside its path. */
	c.config_given = false;
	*path = NULL;
	if ((r = pl_session_open(&s, &c, 0, errmsg)) == 0)
		*path = local ? pl_session_local_dir(&s) : state_path(&s);
	pl_session_close(&s);
	return r;
}

int
pl_cmd_state_path(struct pl_ctx *ctx, char **path, char **errmsg)
{
	return cmd_path(ctx, false, path, errmsg);
}

char *
pl_session_local_dir(struct pl_session *s)
{
	char *where = s->state_path ? pl_strdup(s->state_path) : state_path(s), *r;

	r = pl_state_local_dir(where, s->cfg ? pl_config_path(s->cfg) : s->ctx->config_path);
	free(where);
	return r;
}

int
pl_cmd_local_dir(struct pl_ctx *ctx, char **dir, char **errmsg)
{
	return cmd_path(ctx, true, dir, errmsg);
}

/* A state location the user chose (PVELAB_STATE or state:) may name a new
 * directory, not a tree of them: a typo must not create /nonexistent/dir. */
static int
check_state_dir(const struct pl_session *s, char **errmsg)
{
	const char *from = env("PVELAB_STATE") ? "PVELAB_STATE" : "state";
	char *dir, *up;
	struct stat sb;
	int r = 0;

	if (!env("PVELAB_STATE") &&
	    !(s->cfg && (json_string_value(pl_config_get(s->cfg, "/state")) ||
			 pl_config_cluster_state(s->cfg))))
		return 0;
	/* PostgreSQL: a password is for PGPASSFILE or ~/.pgpass, never the YAML */
	if (pl_state_is_pg(s->state_path))
		return !env("PVELAB_STATE") && pl_state_has_password(s->state_path) ?
			       pl_seterr(errmsg, PL_EINVAL,
					 "state: the connection string holds a password; put it "
					 "in ~/.pgpass or the file PGPASSFILE names instead") :
			       0;
	dir = pl_path_dirname(s->state_path);
	up = pl_path_dirname(dir);
	if (stat(dir, &sb) != 0 && stat(up, &sb) != 0)
		r = pl_seterr(errmsg, PL_ENOENT, "%s '%s': directory '%s' does not exist (create it, "
			      "or choose another place)", from, s->state_path, up);
	free(up);
	free(dir);
	return r;
}

int
pl_session_api(struct pl_session *s, char **errmsg)
{
	const json_t *cl = s->cfg ? pl_config_get(s->cfg, "/cluster") : NULL;
	struct pl_pve_opts o = { .retries = -1 };
	const char *url = env("PVELAB_URL");
	char **eps = NULL, *token = NULL, *secret = NULL, *ca = NULL;
	long long timeout = 30, conc = 16;
	size_t n = 0;
	int r;

	if (s->pve)
		return 0;
	/* one variable for every cluster would send each one's changes to the
	 * same place: with clusters: the config says where each one is */
	if (s->cfg && pl_config_cluster(s->cfg)) {
		static const char *const vars[] = { "PVELAB_URL", "PVELAB_TOKEN", "PVELAB_USER",
						    "PVELAB_FINGERPRINT", "PVELAB_CA_FILE" };

		for (size_t i = 0; i < PL_ARRAY_LEN(vars); i++)
			if (env(vars[i]))
				return pl_seterr(errmsg, PL_EINVAL,
						 "%s is set, but %s names its "
						 "clusters (clusters:): unset it (each cluster's "
						 "endpoints and token are under clusters.%s)",
						 vars[i], pl_config_path(s->cfg),
						 pl_config_cluster(s->cfg));
	}
	if (url) {
		/* A comma-separated list fails over like cluster.endpoints. */
		char *copy = pl_strdup(url), *p = copy, *comma;

		do {
			char *end;

			comma = strchr(p, ',');
			if (comma)
				*comma = '\0';
			while (*p == ' ' || *p == '\t') /* "a, b" */
				p++;
			end = p + strlen(p);
			while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
				*--end = '\0';
			if (*p) {
				eps = pl_realloc(eps, (n + 1) * sizeof(*eps));
				eps[n++] = pl_strdup(p);
			}
			p = comma + 1;
		} while (comma);
		free(copy);
	} else if (cl) {
		size_t i;
		json_t *e;

		json_array_foreach(json_object_get(cl, "endpoints"), i, e) {
			eps = pl_realloc(eps, (n + 1) * sizeof(*eps));
			eps[n++] = pl_strdup(json_string_value(e));
		}
	}
	if (n == 0) {
		r = pl_seterr(errmsg, PL_EINVAL, "no Proxmox endpoint configured (set PVELAB_URL "
			      "or cluster.endpoints in %s)", s->ctx->config_path);
		goto out;
	}
	if (env("PVELAB_TOKEN")) {
		token = pl_strdup(env("PVELAB_TOKEN"));
	} else if (env("PVELAB_USER") && env("PVELAB_PASSWORD")) {
		o.username = env("PVELAB_USER");
		o.password = env("PVELAB_PASSWORD");
	} else if (cl && pl_json_str(cl, "token_id")) {
		const char *f = pl_json_str(cl, "token_secret_file");
		const char *ev = pl_json_str(cl, "token_secret_env");
		const char *id = pl_json_str(cl, "token_id"), *eq = strchr(id, '=');

		if (eq) { /* never print what follows the '=' */
			r = pl_seterr(errmsg, PL_EINVAL, "cluster.token_id '%.*s=…' holds the token's "
				      "secret (keep only USER@REALM!TOKENID there; the secret goes in "
				      "cluster.token_secret_file or cluster.token_secret_env)",
				      (int)(eq - id), id);
			goto out;
		}
		if (f) {
			char *path = cfg_path(s, f);

			r = pl_file_read_secret(path, &secret, errmsg);
			free(path);
			if (r != 0) {
				pl_preferr(errmsg, r, "cluster.token_secret_file");
				goto out;
			}
		} else if (ev && env(ev)) {
			secret = pl_strdup(env(ev));
		} else {
			r = pl_seterr(errmsg, PL_EINVAL, "no secret for token '%s' (set "
				      "cluster.token_secret_file or cluster.token_secret_env%s%s)",
				      pl_json_str(cl, "token_id"), ev ? ", and export " : "",
				      ev ? ev : "");
			goto out;
		}
		token = pl_asprintf("%s=%s", pl_json_str(cl, "token_id"), secret);
	} else {
		r = pl_seterr(errmsg, PL_EINVAL, "no API token configured (set PVELAB_TOKEN="
			      "USER@REALM!TOKENID=SECRET or cluster.token_id, or log in with "
			      "PVELAB_USER and PVELAB_PASSWORD; docs/cluster.md shows how to make "
			      "a token)");
		goto out;
	}
	o.token = token;
	o.endpoints = (const char *const *)eps;
	o.n_endpoints = n;
	o.fingerprint = env("PVELAB_FINGERPRINT");
	if (!o.fingerprint && cl)
		o.fingerprint = pl_json_str(cl, "fingerprint");
	if (env("PVELAB_CA_FILE"))
		ca = env_path("PVELAB_CA_FILE");
	else if (cl && pl_json_str(cl, "ca_file"))
		ca = cfg_path(s, pl_json_str(cl, "ca_file"));
	o.ca_file = ca;
	if (cl) {
		timeout = pl_json_int(cl, "timeout", 30);
		conc = pl_json_int(cl, "concurrency", 16);
	}
	/* the ranges of cluster.timeout and cluster.concurrency (config/schema.c) */
	if ((r = env_int("PVELAB_TIMEOUT", "cluster.timeout", 1, 3600, &timeout, errmsg)) != 0 ||
	    (r = env_int("PVELAB_CONCURRENCY", "cluster.concurrency", 1, 256, &conc, errmsg)) != 0)
		goto out;
	if (cl || env("PVELAB_TIMEOUT") || env("PVELAB_CONCURRENCY")) {
		o.timeout_ms = timeout * 1000;
		o.concurrency = (int)conc;
	}
	if (kept.on) {
		/* the settings that make a client, secrets included (hashed) */
		char *key = pl_asprintf("%s|%s|%s|%s|%s|%ld|%d", token ? token : "",
					o.username ? o.username : "", o.password ? o.password : "",
					o.fingerprint ? o.fingerprint : "", ca ? ca : "",
					o.timeout_ms, o.concurrency);
		char hex[65];

		for (size_t i = 0; i < n; i++) {
			char *longer = pl_asprintf("%s|%s", key, eps[i]);

			pl_free_secret(key);
			key = longer;
		}
		pl_sha256_hex(key, strlen(key), hex);
		pl_free_secret(key);
		if (kept.base == NULL && (kept.base = event_base_new()) == NULL) {
			r = pl_seterr(errmsg, PL_ENOMEM, "cannot create an event loop");
			goto out;
		}
		s->base = kept.base;
		if (kept.pve && !strcmp(kept.pve_key, hex)) {
			s->pve = kept.pve;
			r = 0;
			goto out;
		}
		pl_pve_free(kept.pve);
		kept.pve = NULL;
		if ((r = pl_pve_new(s->base, &o, &s->pve, errmsg)) == 0) {
			kept.pve = s->pve;
			memcpy(kept.pve_key, hex, sizeof(hex));
		}
		goto out;
	}
	if (s->base == NULL && (s->base = event_base_new()) == NULL) {
		r = pl_seterr(errmsg, PL_ENOMEM, "cannot create an event loop");
		goto out;
	}
	r = pl_pve_new(s->base, &o, &s->pve, errmsg);
out:
	for (size_t i = 0; i < n; i++)
		free(eps[i]);
	free(eps);
	pl_free_secret(token);
	pl_free_secret(secret);
	free(ca);
	return r;
}

int
pl_session_open(struct pl_session *s, struct pl_ctx *ctx, unsigned need, char **errmsg)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	if ((r = load_config(s, errmsg)) != 0)
		return r;
	if (need & (PL_NEED_STATE | PL_NEED_STATE_RO | PL_NEED_STATE_IF)) {
		s->state_path = state_path(s);
		if ((r = check_state_dir(s, errmsg)) != 0)
			return r;
		if ((s->state = kept_state(s->state_path, need)) != NULL)
			r = 0;
		else if (need & PL_NEED_STATE)
			r = pl_state_open(s->state_path, &s->state, errmsg);
		else if (need & PL_NEED_STATE_IF)
			r = pl_state_open_existing(s->state_path, &s->state, errmsg);
		else
			r = pl_state_open_ro(s->state_path, &s->state, errmsg);
		if (r != 0)
			return r;
		keep_state(s, need);
	}
	if (need & PL_NEED_API)
		return pl_session_api(s, errmsg);
	return 0;
}

int
pl_session_open_on(struct pl_session *s, struct pl_ctx *ctx, struct event_base *base, char **errmsg)
{
	int r;

	if ((r = pl_session_open(s, ctx, PL_NEED_STATE, errmsg)) != 0)
		return r;
	s->base = base;
	s->base_borrowed = true;
	return pl_session_api(s, errmsg);
}

void
pl_session_close(struct pl_session *s)
{
	if (s->pve != kept.pve)
		pl_pve_free(s->pve);
	s->pve = NULL;
	if (s->base && s->base != kept.base && !s->base_borrowed)
		event_base_free(s->base);
	s->base = NULL;
	if (s->state && s->state == kept.state)
		kept.state_users--;
	else
		pl_state_close(s->state);
	s->state = NULL;
	pl_config_free(s->cfg);
	s->cfg = NULL;
	free(s->state_path);
	s->state_path = NULL;
}

int
pl_session_live_guests(struct pl_session *s, json_t **guests, char **errmsg)
{
	json_t *q = json_pack("{s:s}", "type", "vm");
	int r = pl_pve_call(s->pve, "GET", "/cluster/resources", q, guests, errmsg);

	json_decref(q);
	return r;
}

const json_t *
pl_guest_lookup(const json_t *guests, const char *guest, char **errmsg)
{
	const json_t *found = NULL;
	const char *best[3] = { NULL, NULL, NULL };
	int bestd[3] = { 999, 999, 999 };
	long long vmid = -1;
	int nfound = 0;
	size_t i;
	json_t *g;

	pl_str_to_ll(guest, 1, 999999999, &vmid);
	json_array_foreach(guests, i, g) {
		const char *name = pl_json_str(g, "name");

		if (vmid > 0 && pl_json_int(g, "vmid", -1) == vmid)
			return g;
		if (name && !strcmp(name, guest)) {
			found = g;
			nfound++;
		}
	}
	if (nfound == 1)
		return found;
	if (nfound > 1) {
		struct pl_buf ids;

		pl_buf_init(&ids, 0);
		json_array_foreach(guests, i, g)
			if (!strcmp(pl_json_str_or(g, "name", ""), guest))
				pl_buf_addf(&ids, "%s%lld", ids.len ? ", " : "",
					    pl_json_int(g, "vmid", 0));
		pl_seterr(errmsg, PL_ECONFLICT, "%d guests are named '%s': vmids %s (use the vmid)",
			  nfound, guest, ids.data);
		pl_buf_release(&ids);
		return NULL;
	}
	/* The three closest names, for "did you mean". */
	json_array_foreach(guests, i, g) {
		const char *name = pl_json_str(g, "name");
		int d;

		if (name == NULL)
			continue;
		d = pl_str_distance(guest, name);
		if (pl_str_startswith(name, guest) || strstr(name, guest))
			d = d > 2 ? 2 : d;
		for (int k = 0; k < 3; k++) {
			if (d < bestd[k]) {
				for (int m = 2; m > k; m--) {
					best[m] = best[m - 1];
					bestd[m] = bestd[m - 1];
				}
				best[k] = name;
				bestd[k] = d;
				break;
			}
		}
	}
	{
		size_t len = strlen(guest);
		int limit = len < 6 ? 2 : (int)(len / 3) + 1;

		if (best[0] && bestd[0] <= limit) {
			char list[512] = "";
			size_t off = 0;

			for (int k = 0; k < 3 && best[k] && bestd[k] <= limit; k++)
				off += (size_t)snprintf(list + off, sizeof(list) - off, "%s'%s'",
							k ? ", " : "", best[k]);
			pl_seterr(errmsg, PL_ENOENT, "guest '%s' not found (closest: %s)", guest,
				  list);
		} else {
			pl_seterr(errmsg, PL_ENOENT, "guest '%s' not found (pvelab list shows the "
				  "guests; run pvelab sync if it is new)", guest);
		}
	}
	return NULL;
}

int
pl_session_guest(struct pl_session *s, const char *guest, json_t **g, char **errmsg)
{
	json_t *names;
	const json_t *found;
	int r;

	*g = NULL;
	/* the rows named so first; the whole list only for a refusal's
	 * "did you mean" */
	if ((r = pl_state_guest_named(s->state, guest, &names, errmsg)) != 0)
		return r;
	if (json_array_size(names) == 0) {
		json_decref(names);
		if ((r = pl_state_guest_names(s->state, &names, errmsg)) != 0)
			return r;
	}
	if ((found = pl_guest_lookup(names, guest, errmsg)) == NULL)
		r = PL_ENOENT;
	else
		r = pl_state_guest(s->state, pl_json_int(found, "vmid", 0), g, errmsg);
	json_decref(names);
	return r;
}

int
pl_session_read(struct pl_session *s, struct pl_ctx *ctx, bool live, char **errmsg)
{
	int r;

	if (!live)
		return pl_session_open(s, ctx, PL_NEED_STATE_RO, errmsg);
	if ((r = pl_session_open(s, ctx, PL_NEED_STATE | PL_NEED_API, errmsg)) != 0)
		return r;
	if ((r = pl_cmd_sync_now(s, false, false, NULL, NULL, NULL, errmsg)) != 0)
		return pl_preferr(errmsg, r, "--live sync failed");
	return 0;
}

int
pl_session_snapshots(struct pl_session *s, const json_t *g, json_t **list, char **errmsg)
{
	char *path = pl_asprintf("/nodes/%s/%s/%lld/snapshot", pl_json_str_or(g, "node", ""),
				 pl_json_str_or(g, "type", "qemu"), pl_json_int(g, "vmid", 0));
	json_t *snaps = NULL, *t;
	size_t i;
	int r = pl_pve_call(s->pve, "GET", path, NULL, &snaps, errmsg);

	free(path);
	*list = NULL;
	if (r != 0)
		return r;
	*list = json_array();
	json_array_foreach(snaps, i, t)
		if (strcmp(pl_json_str_or(t, "name", ""), "current"))
			json_array_append(*list, t);
	json_decref(snaps);
	return 0;
}
