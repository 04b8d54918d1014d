/*
 * Cross-object checks of a loaded config (pl_config_check): uniqueness of
 * names, vmids, addresses (and host ports within a guest); hostnames;
 * category ranges; keys that only make sense for VMs or for containers;
 * values checked with the Proxmox property-string codec, and raw `config:`
 * keys and values with the official API schema, so that they fail here, not
 * at apply time; secrets' environment variables that are not set.
 */
#include "core/common.h"
#include "config/config.h"
#include "core/apischema.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/propstr.h"
#include "core/sshkey.h"
#include "core/str.h"

#include <ctype.h>
#include <strings.h>

/* Remember value -> first pointer; report a duplicate at the second. */
static void
unique(const struct pl_config *c, struct pl_diags *d, json_t *seen, const char *what,
       const char *value, const char *ptr)
{
	json_t *first = json_object_get(seen, value);

	if (first) {
		int line = 0, col = 0;

		pl_config_where(c, json_string_value(first), &line, &col);
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "duplicate %s '%s' (first used at line %d)",
			       what, value, line);
		return;
	}
	json_object_set_new(seen, value, json_string(ptr));
}

static const char *const vm_only[] = { "disks", "cloudinit", "clone", "hostpci", "sockets",
				       "cpu", "balloon", "bios", "machine", "scsihw", "agent",
				       "efidisk", "tpm", NULL };
static const char *const ct_only[] = { "ostemplate",   "rootfs", "mounts",   "features",
				       "unprivileged", "swap",   "ssh_keys", NULL };

static void
type_keys(const struct pl_config *c, struct pl_diags *d, const json_t *g, const char *gptr,
	  bool lxc)
{
	const char *const *bad = lxc ? vm_only : ct_only;
	char ptr[256];

	for (size_t i = 0; bad[i]; i++) {
		char own[256];

		if (!json_object_get(g, bad[i]))
			continue;
		snprintf(own, sizeof(own), "%s/%s", gptr, bad[i]);
		snprintf(ptr, sizeof(ptr), "/defaults/%s", bad[i]);
		if (pl_config_get(c, own) == NULL && pl_config_get(c, ptr) != NULL)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "only for %s, and guest '%s' is %s (it inherits this from "
				       "defaults:; set '%s: null' on the guest to unset it)",
				       lxc ? "VMs" : "containers", pl_json_str_or(g, "name", "?"),
				       lxc ? "an LXC container" : "a VM", bad[i]);
		else
			pl_config_diag(c, d, PL_DIAG_ERROR, own, "only for %s (this guest is %s)",
				       lxc ? "VMs" : "containers", lxc ? "an LXC container" : "a VM");
	}
	if (lxc && !json_object_get(g, "ostemplate") && !json_object_get(g, "vmid"))
		pl_config_diag(c, d, PL_DIAG_ERROR, gptr,
			       "a container needs 'ostemplate' (or a 'vmid' of an existing one)");
}

/* Proxmox's 'dns-name' format, which both a VM's name and a container's
 * hostname must match: dot-separated labels of letters, digits and inner
 * hyphens (so no underscores, as in "immich_backup"). */
static bool
dns_name(const char *s)
{
	for (;;) {
		size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");

		if (n == 0 || s[0] == '-' || s[n - 1] == '-')
			return false;
		if (s[n] == '\0')
			return true;
		if (s[n] != '.')
			return false;
		s += n + 1;
	}
}

/* Check a composed property string with the schema's codec. */
static void
codec_check(const struct pl_config *c, struct pl_diags *d, const char *fmt_name, const char *text,
	    const char *ptr)
{
	const struct pl_pfmt *f = pl_pfmt_get(fmt_name);
	struct pl_propstr p;
	char *err = NULL;

	if (f == NULL)
		return;
	pl_propstr_init(&p);
	if (pl_propstr_parse(f, text, &p, &err) != 0)
		pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "%s", err);
	free(err);
	pl_propstr_release(&p);
}

static void
add_opts(struct pl_buf *b, const json_t *opts)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)opts, k, v) {
		if (json_is_string(v))
			pl_buf_addf(b, ",%s=%s", k, json_string_value(v));
		else if (json_is_boolean(v))
			pl_buf_addf(b, ",%s=%d", k, json_is_true(v));
		else if (json_is_integer(v))
			pl_buf_addf(b, ",%s=%lld", k, (long long)json_integer_value(v));
		else if (json_is_real(v))
			pl_buf_addf(b, ",%s=%g", k, json_real_value(v));
	}
}

static void
check_networks(const struct pl_config *c, struct pl_diags *d, const json_t *g, const char *gptr,
	       bool lxc, json_t *ips, json_t *macs)
{
	const json_t *n;
	size_t i;
	char ptr[256];

	json_array_foreach(json_object_get(g, "networks"), i, n) {
		const char *ip = pl_json_str(n, "ip"), *mac = pl_json_str(n, "mac");
		struct pl_buf s;

		snprintf(ptr, sizeof(ptr), "%s/networks/%zu", gptr, i);
		pl_buf_init(&s, 4096);
		if (lxc)
			pl_buf_addf(&s, "name=%s", pl_json_str_or(n, "name", "eth0"));
		else
			pl_buf_addf(&s, "%s", pl_json_str_or(n, "model", "virtio"));
		if (mac)
			pl_buf_addf(&s, ",%s=%s", lxc ? "hwaddr" : "macaddr", mac);
		if (json_object_get(n, "vlan"))
			pl_buf_addf(&s, ",tag=%lld", pl_json_int(n, "vlan", 0));
		if (json_object_get(n, "mtu"))
			pl_buf_addf(&s, ",mtu=%lld", pl_json_int(n, "mtu", 0));
		if (lxc) {
			for (const char *const *k = (const char *const[]){ "ip", "gw", "ip6", "gw6", NULL }; *k; k++)
				if (pl_json_str(n, *k))
					pl_buf_addf(&s, ",%s=%s", *k, pl_json_str(n, *k));
		}
		codec_check(c, d, lxc ? "lxc.net" : "qemu.net", s.data, ptr);
		if (!lxc && (ip || pl_json_str(n, "ip6"))) {
			pl_buf_reset(&s);
			for (const char *const *k = (const char *const[]){ "ip", "gw", "ip6", "gw6", NULL }; *k; k++)
				if (pl_json_str(n, *k))
					pl_buf_addf(&s, "%s%s=%s", s.len ? "," : "", *k, pl_json_str(n, *k));
			codec_check(c, d, "qemu.ipconfig", s.data, ptr);
		}
		pl_buf_release(&s);
		if (ip && strcmp(ip, "dhcp") && strcmp(ip, "manual")) {
			char addr[64];
			char p2[300];

			snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(ip, "/"), ip);
			snprintf(p2, sizeof(p2), "%s/ip", ptr);
			unique(c, d, ips, "IP address", addr, p2);
		}
		if (mac) {
			char up[32], p2[300];

			snprintf(up, sizeof(up), "%s", mac);
			for (char *q = up; *q; q++)
				*q = (char)toupper((unsigned char)*q);
			snprintf(p2, sizeof(p2), "%s/mac", ptr);
			unique(c, d, macs, "MAC address", up, p2);
		}
	}
}

static void
check_disks(const struct pl_config *c, struct pl_diags *d, const json_t *g, const char *gptr)
{
	const json_t *disk;
	size_t i;
	char ptr[256];

	json_array_foreach(json_object_get(g, "disks"), i, disk) {
		struct pl_buf s;
		char fmt[32];

		snprintf(ptr, sizeof(ptr), "%s/disks/%zu", gptr, i);
		snprintf(fmt, sizeof(fmt), "qemu.%s", pl_json_str_or(disk, "bus", "scsi"));
		pl_buf_init(&s, 4096);
		pl_buf_addf(&s, "%s:1", pl_json_str_or(disk, "storage", "local-lvm"));
		add_opts(&s, json_object_get(disk, "options"));
		codec_check(c, d, fmt, s.data, ptr);
		pl_buf_release(&s);
	}
}

/* A guest key that may come from `defaults:`: the guest's own pointer when
 * the file has it there, else the one under defaults. */
static void
guest_ptr(const struct pl_config *c, char *out, size_t outlen, const char *gptr, const char *rel)
{
	char alt[300];

	snprintf(out, outlen, "%s%s", gptr, rel);
	snprintf(alt, sizeof(alt), "/defaults%s", rel);
	if (pl_config_get(c, out) == NULL && pl_config_get(c, alt) != NULL)
		snprintf(out, outlen, "%s", alt);
}

/* Raw `config:` settings go to Proxmox as they are: check each key and value
 * against the embedded official schema (PUT .../config), as Proxmox would. */
static void
check_raw_config(const struct pl_config *c, struct pl_diags *d, const json_t *g, const char *gptr,
		 bool lxc)
{
	const char *k;
	json_t *v;
	char rel[256], ptr[300];

	json_object_foreach((json_t *)json_object_get(g, "config"), k, v) {
		const struct pl_api_param *p = pl_api_config_param(lxc, k);
		char *text, *err;

		snprintf(rel, sizeof(rel), "/config/%s", k);
		guest_ptr(c, ptr, sizeof(ptr), gptr, rel);
		if (p == NULL) {
			char *fix = pl_api_config_suggest(lxc, k);
			char *whose = pl_str_startswith(ptr, "/defaults/")
					      ? pl_asprintf(", from defaults: for guest '%s'", pl_json_str_or(g, "name", "?"))
					      : pl_strdup("");

			if (fix)
				pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
					       "unknown %s setting '%s' (did you mean '%s'?%s)",
					       lxc ? "container" : "VM", k, fix, whose);
			else
				pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
					       "unknown %s setting '%s' (not in the Proxmox VE API schema%s)",
					       lxc ? "container" : "VM", k, whose);
			free(whose);
			free(fix);
			continue;
		}
		if (strstr(k, "password") != NULL) {
			/* it would show in plan output, plan.json and the store */
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "a password in 'config: %s' would be shown in plans and stored "
				       "(give it by environment variable: cloudinit.password_env)", k);
			continue;
		}
		if ((text = pl_api_value_text(v)) == NULL)
			continue;
		if ((err = pl_api_check_value(p, text)) != NULL) {
			char *want = pl_api_param_expects(p);
			size_t n = strlen(err);

			while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
				err[--n] = '\0';
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr, "invalid value '%s' for '%s': %s (expects %s)",
				       text, k, err, want);
			free(want);
			free(err);
		}
		free(text);
	}
}

/* Secrets are named by environment variable (`*_env` keys): one that is not
 * set would be dropped at apply time without a word, so it is an error here.
 * Guest keys are checked for every guest (defaults applied); the cluster's
 * token secret is the connection's business (PVELAB_TOKEN may stand in). */
static void
check_secrets(const struct pl_config *c, struct pl_diags *d)
{
	for (const struct pl_config_key *row = pl_config_schema(); row->path; row++) {
		const char *rel;

		if (!pl_str_endswith(row->path, "_env") || row->type != PL_CT_STRING)
			continue;
		if (pl_str_startswith(row->path, "/guests/*/")) { /* guest secrets */
			const json_t *g;
			size_t i;

			rel = row->path + strlen("/guests/*");
			if (strchr(rel, '*'))
				continue;
			json_array_foreach(pl_config_guests(c), i, g) {
				const json_t *at = g;
				char gptr[64], ptr[300];
				const char *seg = rel + 1, *var;
				char what[128];

				/* walk the guest down to the key */
				while (at && strchr(seg, '/')) {
					char part[128];

					snprintf(part, sizeof(part), "%.*s", (int)strcspn(seg, "/"), seg);
					at = json_object_get(at, part);
					seg += strcspn(seg, "/") + 1;
				}
				if ((var = pl_json_str(at, seg)) == NULL || getenv(var))
					continue;
				snprintf(gptr, sizeof(gptr), "/guests/%zu", i);
				guest_ptr(c, ptr, sizeof(ptr), gptr, rel);
				snprintf(what, sizeof(what), "%s", rel + 1);
				for (char *q = what; *q; q++)
					if (*q == '/')
						*q = '.';
				pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
					       "environment variable '%s' is not set (guest '%s' needs it "
					       "for %s; export it before plan and apply)",
					       var, pl_json_str_or(g, "name", "?"), what);
			}
		}
	}
}

/* A whole token (ID=SECRET) pasted into cluster.token_id: refuse it, and
 * never repeat what follows the '='. */
static void
check_token_id(const struct pl_config *c, struct pl_diags *d)
{
	const char *id = json_string_value(pl_config_get(c, "/cluster/token_id"));
	const char *eq = id ? strchr(id, '=') : NULL;

	if (eq)
		pl_config_diag(c, d, PL_DIAG_ERROR, "/cluster/token_id",
			       "cluster.token_id '%.*s=…' holds the token's secret (keep only "
			       "USER@REALM!TOKENID here; the secret goes in "
			       "cluster.token_secret_file or cluster.token_secret_env)",
			       (int)(eq - id), id);
}

/* The [lo, hi] range of a category key, or false. */
static bool
category_range(const json_t *cat, const char *key, long long *lo, long long *hi)
{
	const json_t *r = json_object_get(cat, key);

	if (!json_is_array(r))
		return false;
	*lo = json_integer_value(json_array_get(r, 0));
	*hi = json_integer_value(json_array_get(r, 1));
	return true;
}

static void
check_category(const struct pl_config *c, struct pl_diags *d, const json_t *g, const char *gptr)
{
	const json_t *cats = pl_config_get(c, "/conventions/categories");
	const char *name = pl_json_str(g, "category");
	const json_t *cat, *svc;
	long long lo, hi;
	char ptr[256];
	size_t i;

	if (name == NULL)
		return;
	snprintf(ptr, sizeof(ptr), "%s/category", gptr);
	if ((cat = json_object_get(cats, name)) == NULL) {
		const char *names[256];
		const char *k, *s;
		json_t *v;
		size_t n = 0;

		json_object_foreach((json_t *)cats, k, v)
			if (n < 256)
				names[n++] = k;
		s = n ? pl_str_suggest(name, names, n) : NULL;
		if (s)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "unknown category '%s' (did you mean '%s'?)", name, s);
		else
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "unknown category '%s' (declare it under conventions.categories)",
				       name);
		return;
	}
	if (json_object_get(g, "vmid") && category_range(cat, "vmids", &lo, &hi)) {
		long long id = pl_json_int(g, "vmid", 0);

		snprintf(ptr, sizeof(ptr), "%s/vmid", gptr);
		if (id < lo || id > hi)
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "vmid %lld is outside category '%s' (%lld-%lld)", id, name, lo,
				       hi);
	}
	if (category_range(cat, "ports", &lo, &hi)) {
		json_array_foreach(json_object_get(g, "services"), i, svc) {
			long long port = pl_json_int(svc, "host_port", 0);

			snprintf(ptr, sizeof(ptr), "%s/services/%zu/host_port", gptr, i);
			if (port && (port < lo || port > hi))
				pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
					       "host port %lld is outside category '%s' (%lld-%lld)",
					       port, name, lo, hi);
		}
	}
}

static void
check_profiles(const struct pl_config *c, struct pl_diags *d, json_t *names)
{
	const json_t *cats = pl_config_get(c, "/conventions/categories");
	const char *pname;
	json_t *members;

	json_object_foreach((json_t *)pl_config_get(c, "/profiles"), pname, members) {
		const json_t *m;
		size_t i;

		json_array_foreach(members, i, m) {
			const char *s = json_string_value(m);
			char ptr[256];

			if (s == NULL || json_object_get(cats, s) || json_object_get(names, s))
				continue;
			snprintf(ptr, sizeof(ptr), "/profiles/%s/%zu", pname, i);
			pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
				       "'%s' is neither a category nor a guest name", s);
		}
	}
}

/* SSH public keys, checked as PVE checks them (ssh-keygen -l) before it
 * takes a guest's cloud-init sshkeys or a container's ssh-public-keys. */
static void
check_ssh_keys(const struct pl_config *c, struct pl_diags *d, const json_t *g, const char *gptr)
{
	static const char *const lists[] = { "ssh_keys", "cloudinit/ssh_keys" };
	char ptr[300];

	for (size_t l = 0; l < PL_ARRAY_LEN(lists); l++) {
		const json_t *keys =
			!strcmp(lists[l], "ssh_keys") ?
				json_object_get(g, "ssh_keys") :
				json_object_get(json_object_get(g, "cloudinit"), "ssh_keys");
		const json_t *k;
		size_t j;

		json_array_foreach(keys, j, k) {
			const char *key = json_string_value(k);

			if (key == NULL || (!strchr(key, '\n') && pl_sshkey_valid(key)))
				continue;
			snprintf(ptr, sizeof(ptr), "%s/%s/%zu", gptr, lists[l], j);
			pl_config_diag(
				c, d, PL_DIAG_ERROR, ptr,
				"'%.24s%s' is not an OpenSSH public key (one key per item: TYPE "
				"BASE64 [COMMENT], as in ~/.ssh/id_ed25519.pub)",
				key, strlen(key) > 24 ? "..." : "");
		}
	}
}

/* What guest g's cluster has seen of kind (names, vmids, addresses): guests
 * of different clusters may share them (each cluster is its own network of
 * VMIDs and names; the same name in a lab and at home is expected). */
static json_t *
scoped(json_t *scopes, const json_t *g, const char *kind)
{
	const char *cl = pl_json_str_or(g, "cluster", "");
	json_t *o = json_object_get(scopes, cl), *k;

	if (o == NULL)
		json_object_set_new(scopes, cl, o = json_object());
	if ((k = json_object_get(o, kind)) == NULL)
		json_object_set_new(o, kind, k = json_object());
	return k;
}

void
pl_config_check(const struct pl_config *c, struct pl_diags *d)
{
	json_t *names = json_object(), *scopes = json_object(), *ports;
	const json_t *g;
	size_t i;

	json_array_foreach(pl_config_guests(c), i, g) {
		char gptr[64], ptr[300];
		const char *name = pl_json_str(g, "name");
		bool lxc = !strcmp(pl_json_str_or(g, "type", "vm"), "lxc");
		const json_t *svc;
		size_t j;

		if (!json_is_object(g))
			continue;
		snprintf(gptr, sizeof(gptr), "/guests/%zu", i);
		if (name) {
			snprintf(ptr, sizeof(ptr), "%s/name", gptr);
			unique(c, d, scoped(scopes, g, "names"), "guest name", name, ptr);
			if (!json_object_get(names, name)) /* what profiles may name */
				json_object_set_new(names, name, json_string(ptr));
			if (!dns_name(name)) {
				char *fix = pl_strdup(name);

				for (char *q = fix; *q; q++)
					if (*q == '_')
						*q = '-';
				if (dns_name(fix))
					pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
						       "'%s' is not a valid %s (did you mean '%s'?)",
						       name, lxc ? "container hostname" : "VM name", fix);
				else
					pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
						       "'%s' is not a valid %s (letters, digits, '-' "
						       "and '.')", name,
						       lxc ? "container hostname" : "VM name");
				free(fix);
			}
		}
		json_array_foreach(json_object_get(g, "tags"), j, svc) {
			const char *t = json_string_value(svc);

			/* pvelab's own tags say who owns the guest: project: sets them */
			if (t && (!strcasecmp(t, "pvelab") || !strncasecmp(t, "pvelab-", 7))) {
				snprintf(ptr, sizeof(ptr), "%s/tags/%zu", gptr, j);
				pl_config_diag(c, d, PL_DIAG_ERROR, ptr,
					       "'%s' is pvelab's own tag (it is set from project: '%s'; "
					       "leave it out)", t, pl_config_project(c));
			}
		}
		if (json_object_get(g, "vmid")) {
			char id[32];

			snprintf(id, sizeof(id), "%lld", pl_json_int(g, "vmid", 0));
			snprintf(ptr, sizeof(ptr), "%s/vmid", gptr);
			unique(c, d, scoped(scopes, g, "vmids"), "vmid", id, ptr);
		}
		type_keys(c, d, g, gptr, lxc);
		check_networks(c, d, g, gptr, lxc, scoped(scopes, g, "ips"),
			       scoped(scopes, g, "macs"));
		check_disks(c, d, g, gptr);
		check_raw_config(c, d, g, gptr, lxc);
		check_ssh_keys(c, d, g, gptr);
		check_category(c, d, g, gptr);
		/* Ports are published on the guest's own addresses (Docker on a
		 * VM, a service in a container), so two guests may both publish
		 * 7001; one guest may not publish it twice. */
		ports = json_object();
		json_array_foreach(json_object_get(g, "services"), j, svc) {
			char port[16];

			if (!json_object_get(svc, "host_port"))
				continue;
			snprintf(port, sizeof(port), "%lld", pl_json_int(svc, "host_port", 0));
			snprintf(ptr, sizeof(ptr), "%s/services/%zu/host_port", gptr, j);
			unique(c, d, ports, "host port", port, ptr);
		}
		json_decref(ports);
	}
	check_profiles(c, d, names);
	check_secrets(c, d);
	check_token_id(c, d);
	pl_config_check_day2(c, d);
	pl_config_check_firewall(c, d);
	pl_config_check_storage(c, d);
	pl_config_check_checks(c, d);
	json_decref(names);
	json_decref(scopes);
}
