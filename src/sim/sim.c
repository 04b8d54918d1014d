/*
 * The simulator's life cycle: options, building the cluster from a state
 * file, a seed or a generator, secrets, the start-up line, periodic state
 * saves, and tear-down.
 */
#include "core/common.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/str.h"
#include "core/yaml.h"
#include "sim/internal.h"

void
pl_sim_opts_init(struct pl_sim_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->listen = "127.0.0.1:8006";
	o->nodes = 1;
	o->guests = 0;
	o->task_ms = 300;
	o->auth_delay_ms = 3000;
	o->pve_version = "9.1";
	o->lock_wait_ms = 10000;
}

static char *
random_uuid(void)
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		pl_die("no randomness");
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	return pl_asprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			   b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
			   b[12], b[13], b[14], b[15]);
}

static char *
random_password(void)
{
	static const char cs[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char b[20];
	char *p = pl_malloc(sizeof(b) + 1);

	if (RAND_bytes(b, sizeof(b)) != 1)
		pl_die("no randomness");
	for (size_t i = 0; i < sizeof(b); i++)
		p[i] = cs[b[i] % (sizeof(cs) - 1)];
	p[sizeof(b)] = 0;
	return p;
}

static json_t *
default_aplinfo(void)
{
	static const struct {
		const char *os, *tpl, *pkg, *ver, *head;
	} a[] = {
		{ "debian-12", "debian-12-standard_12.7-1_amd64.tar.zst", "debian-12-standard",
		  "12.7-1", "Debian 12 Bookworm (standard)" },
		{ "debian-13", "debian-13-standard_13.1-2_amd64.tar.zst", "debian-13-standard",
		  "13.1-2", "Debian 13 Trixie (standard)" },
		{ "ubuntu-24.04", "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
		  "ubuntu-24.04-standard", "24.04-2", "Ubuntu 24.04 Noble (standard)" },
		{ "alpine-3.22", "alpine-3.22-default_20250617_amd64.tar.xz", "alpine-3.22-default",
		  "20250617", "Alpine Linux 3.22 (default)" },
		{ "rockylinux-9", "rockylinux-9-default_20240912_amd64.tar.xz",
		  "rockylinux-9-default", "20240912", "Rocky Linux 9 (default)" },
	};
	json_t *arr = json_array();

	for (size_t i = 0; i < PL_ARRAY_LEN(a); i++) {
		char loc[256];

		snprintf(loc, sizeof(loc), "http://download.proxmox.com/images/system/%s", a[i].tpl);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
						     "template", a[i].tpl, "package", a[i].pkg,
						     "version", a[i].ver, "os", a[i].os, "section",
						     "system", "type", "lxc", "headline", a[i].head,
						     "description", a[i].head, "location", loc,
						     "architecture", "amd64", "infopage",
						     "https://www.proxmox.com"));
	}
	return arr;
}

static void
save_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pl_sim *s = arg;

	(void)fd;
	(void)what;
	if (s->dirty)
		pl_sim_state_save(s, NULL);
}

static int
load_file(const char *path, json_t **out, char **errmsg)
{
	if (pl_str_endswith(path, ".json")) {
		struct pl_buf b;
		int r;

		pl_buf_init(&b, 0);
		if ((r = pl_file_read(path, &b, errmsg)) != 0) {
			pl_buf_release(&b);
			return r;
		}
		*out = pl_json_parse(b.data, b.len, errmsg);
		pl_buf_release(&b);
		if (!*out)
			return pl_preferr(errmsg, PL_EPARSE, "%s", path);
		return 0;
	}
	*out = pl_yaml_load_file(path, NULL, errmsg);
	return *out ? 0 : PL_EPARSE;
}

int
pl_sim_new(struct event_base *base, const struct pl_sim_opts *o, struct pl_sim **out,
	   char **errmsg)
{
	struct pl_sim *s = pl_calloc(1, sizeof(*s));
	struct stat stt;
	json_t *seed = NULL;
	int r;

	s->base = base;
	s->opts = *o;
	s->t0 = time(NULL);
	s->next_pid = 0x1000;
	s->pools = json_object();
	s->pcimaps = json_object();
	s->aplinfo = default_aplinfo();
	s->clustername = pl_strdup("pvelab");
	if (o->rng_seeded) {
		s->rng = o->rng_seed;
	} else if (RAND_bytes((unsigned char *)&s->rng, sizeof(s->rng)) != 1) {
		pl_die("no randomness");
	}
	if (RAND_bytes(s->key, sizeof(s->key)) != 1)
		pl_die("no randomness");
	s->password = o->password ? pl_strdup(o->password) : random_password();
	s->token_secret = o->token ? pl_strdup(o->token) : random_uuid();
	s->ro_secret = random_uuid();
	if ((s->schema = pl_sim_schema_load(o->pve_version, errmsg)) == NULL) {
		r = PL_EINVAL;
		goto fail;
	}
	{
		struct pl_sim_path *qp = pl_sim_schema_find(s->schema, "/nodes/{node}/qemu/{vmid}/config");
		struct pl_sim_path *lp = pl_sim_schema_find(s->schema, "/nodes/{node}/lxc/{vmid}/config");

		s->qemu_conf_m = qp ? qp->methods[PL_SIM_POST] : NULL;
		s->lxc_conf_m = lp ? lp->methods[PL_SIM_PUT] : NULL;
	}
	pl_sim_api_bind(s);
	pl_sim_access_init(s);
	if (o->state_file && stat(o->state_file, &stt) == 0) {
		if ((r = load_file(o->state_file, &seed, errmsg)) != 0)
			goto fail;
		r = pl_sim_seed_load(s, seed, errmsg);
	} else if (o->seed) {
		if ((r = load_file(o->seed, &seed, errmsg)) != 0)
			goto fail;
		r = pl_sim_seed_load(s, seed, errmsg);
	} else {
		if (o->nodes < 1 || o->nodes > 1000) {
			r = pl_seterr(errmsg, PL_EUSAGE, "--nodes must be between 1 and 1000");
			goto fail;
		}
		r = pl_sim_generate(s, o->nodes, o->guests, errmsg);
	}
	json_decref(seed);
	seed = NULL;
	if (r != 0)
		goto fail;
	if ((r = pl_sim_server_start(s, errmsg)) != 0)
		goto fail;
	if (o->state_file) {
		struct timeval tv = { 1, 0 };

		s->save_ev = event_new(base, -1, EV_PERSIST, save_timer, s);
		event_add(s->save_ev, &tv);
	}
	/* a cluster loaded from the state file is saved again only once it changes;
	 * a seeded or generated one is written by the first timer tick */
	s->dirty = !(o->state_file && stat(o->state_file, &stt) == 0);
	*out = s;
	return 0;
fail:
	json_decref(seed);
	pl_sim_free(s);
	return r;
}

json_t *
pl_sim_info(const struct pl_sim *s)
{
	char token[256], ro[256];

	snprintf(token, sizeof(token), "root@pam!pvelab=%s", s->token_secret);
	snprintf(ro, sizeof(ro), "audit@pve!ro=%s", s->ro_secret);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "url", s->url, "fingerprint",
			 s->opts.no_tls ? "" : s->fingerprint, "username", "root@pam", "password",
			 s->password, "token", token, "readonly_token", ro);
}

int
pl_sim_save(struct pl_sim *s, char **errmsg)
{
	return pl_sim_state_save(s, errmsg);
}

void
pl_sim_free(struct pl_sim *s)
{
	if (!s)
		return;
	if (s->save_ev)
		event_free(s->save_ev);
	pl_sim_server_stop(s);
	pl_sim_tasks_free(s);
	pl_sim_model_free(s);
	pl_sim_schema_free(s->schema);
	json_decref(s->pools);
	json_decref(s->pcimaps);
	json_decref(s->ha);
	json_decref(s->jobs);
	json_decref(s->fw);
	json_decref(s->access);
	json_decref(s->aplinfo);
	free(s->clustername);
	pl_free_secret(s->password);
	pl_free_secret(s->token_secret);
	pl_free_secret(s->ro_secret);
	memset(s->key, 0, sizeof(s->key));
	free(s);
}
