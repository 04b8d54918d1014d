/*
 * Connection settings for commands that talk to Proxmox or read the state:
 * environment variables win over pvelab.yaml; secrets come from 0600 files or
 * the environment and are wiped after use.
 */
#include "core/common.h"
#include "cmd/connect.h"
#include "config/config.h"
#include "core/diag.h"
#include "core/err.h"
#include "core/file.h"
#include "core/str.h"
#include "core/json.h"
#include "pve/client.h"
#include "state/state.h"

#include <event2/event.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int
load_config(struct pl_session *s, char **errmsg)
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

/* A path from the config, relative to the config file's directory. */
static char *
cfg_path(const struct pl_session *s, const char *p)
{
	char *dir, *r;

	if (p[0] == '/')
		return pl_strdup(p);
	dir = pl_path_dirname(pl_config_path(s->cfg));
	r = pl_path_join(dir, p);
	free(dir);
	return r;
}

static char *
state_path(struct pl_session *s)
{
	const char *e = env("PVELAB_STATE");
	const char *p;
	char *dir, *r;

	if (e)
		return pl_strdup(e);
	if (s->cfg && (p = json_string_value(pl_config_get(s->cfg, "/state"))) != NULL)
		return cfg_path(s, p);
	dir = pl_path_dirname(s->ctx->config_path);
	r = pl_asprintf("%s/.pvelab/state.db", dir);
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
	size_t n = 0;
	int r;

	if (s->pve)
		return 0;
	if (url) {
		/* A comma-separated list fails over like cluster.endpoints. */
		char *copy = pl_strdup(url), *p = copy, *comma;

		do {
			comma = strchr(p, ',');
			if (comma)
				*comma = '\0';
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
			      "USER@REALM!TOKENID=SECRET or cluster.token_id)");
		goto out;
	}
	o.token = token;
	o.endpoints = (const char *const *)eps;
	o.n_endpoints = n;
	o.fingerprint = env("PVELAB_FINGERPRINT");
	if (!o.fingerprint && cl)
		o.fingerprint = pl_json_str(cl, "fingerprint");
	if (env("PVELAB_CA_FILE"))
		ca = pl_strdup(env("PVELAB_CA_FILE"));
	else if (cl && pl_json_str(cl, "ca_file"))
		ca = cfg_path(s, pl_json_str(cl, "ca_file"));
	o.ca_file = ca;
	if (cl) {
		o.timeout_ms = pl_json_int(cl, "timeout", 30) * 1000;
		o.concurrency = (int)pl_json_int(cl, "concurrency", 16);
	}
	if (env("PVELAB_TIMEOUT"))
		o.timeout_ms = strtol(env("PVELAB_TIMEOUT"), NULL, 10) * 1000;
	if (env("PVELAB_CONCURRENCY"))
		o.concurrency = (int)strtol(env("PVELAB_CONCURRENCY"), NULL, 10);
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
	if (need & (PL_NEED_STATE | PL_NEED_STATE_RO)) {
		s->state_path = state_path(s);
		if (need & PL_NEED_STATE)
			r = pl_state_open(s->state_path, &s->state, errmsg);
		else
			r = pl_state_open_ro(s->state_path, &s->state, errmsg);
		if (r != 0)
			return r;
	}
	if (need & PL_NEED_API)
		return pl_session_api(s, errmsg);
	return 0;
}

void
pl_session_close(struct pl_session *s)
{
	pl_pve_free(s->pve);
	s->pve = NULL;
	if (s->base)
		event_base_free(s->base);
	s->base = NULL;
	pl_state_close(s->state);
	s->state = NULL;
	pl_config_free(s->cfg);
	s->cfg = NULL;
	free(s->state_path);
	s->state_path = NULL;
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
		pl_seterr(errmsg, PL_ECONFLICT, "%d guests are named '%s' (use the vmid)", nfound,
			  guest);
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
	if ((r = pl_state_guest_names(s->state, &names, errmsg)) != 0)
		return r;
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
