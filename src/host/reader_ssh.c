/*
 * The SSH backend of the host reader: the node's files and commands over
 * core/ssh.c (host key checked by the caller's function, trust on first use
 * in the state store). With a remote root (--root DIR) it reads a saved tree
 * on the far side, as the directory backend does here.
 */
#include "core/common.h"
#include "host/reader.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "core/ssh.h"

#include <openssl/rand.h>

#define SSH_TIMEOUT_MS 30000

struct ssh_impl {
	struct pl_ssh *s;
	char *root;    /* "" for the node's own / */
	json_t *cache; /* path -> {t: F|L|D|N, data|target|names}: the prefetch */
};

/* What the facts read, fetched in one command (prefetch): files, symlinks
 * and directories, as shell globs relative to the root. */
static const char prefetch_files[] =
	"proc/cpuinfo proc/cmdline proc/sys/kernel/osrelease etc/hostname etc/os-release "
	"etc/default/grub etc/kernel/cmdline etc/modules etc/pve/mapping/pci.cfg "
	"etc/chrony/chrony.conf etc/network/interfaces etc/apt/sources.list "
	"etc/modules-load.d/*.conf etc/modprobe.d/*.conf etc/pve/qemu-server/*.conf "
	"etc/apt/sources.list.d/* .pvelab-cmd/proxmox-boot-tool-status .pvelab-cmd/dmesg "
	"sys/bus/pci/devices/*/vendor sys/bus/pci/devices/*/device sys/bus/pci/devices/*/class "
	"sys/bus/pci/devices/*/boot_vga sys/bus/pci/devices/*/subsystem_vendor "
	"sys/bus/pci/devices/*/subsystem_device";
static const char prefetch_links[] =
	"sys/bus/pci/devices/*/driver sys/bus/pci/devices/*/iommu_group";
static const char prefetch_dirs[] =
	". sys/class/iommu sys/kernel/iommu_groups sys/bus/pci/devices etc/modprobe.d "
	"etc/modules-load.d etc/pve/qemu-server etc/apt/sources.list.d";

static char *
full(struct ssh_impl *d, const char *path)
{
	return pl_asprintf("%s%s", d->root, path);
}

/* Run script with sh; its stdout into out (capped); 0 only on status 0,
 * PL_ENOENT on status 3. */
static int
sh(struct ssh_impl *d, const char *script, size_t max, int timeout_ms, struct pl_buf *out,
   char **errmsg)
{
	char *q = pl_ssh_quote(script), *cmd = pl_asprintf("sh -c %s", q);
	struct pl_ssh_cmd c = { .cmd = cmd, .timeout_ms = timeout_ms, .max_out = max + 1 };
	struct pl_ssh_result res;
	int r = pl_ssh_run(d->s, &c, &res, errmsg);

	if (r != 0)
		;
	else if (res.status == 3)
		r = pl_seterr(errmsg, PL_ENOENT, "ssh %s: not found", pl_ssh_peer(d->s));
	else if (res.status != 0)
		r = pl_seterr(errmsg, PL_EIO, "ssh %s: '%s' failed (status %d): %.200s",
			      pl_ssh_peer(d->s), script, res.status, res.err.data);
	else if (res.out.len > max || pl_buf_add(out, res.out.data, res.out.len) != 0)
		r = pl_seterr(errmsg, PL_ETOOBIG, "ssh %s: more than %zu bytes", pl_ssh_peer(d->s),
			      max);
	pl_ssh_result_release(&res);
	free(cmd);
	free(q);
	return r;
}

/* One command reads everything the facts need (records: see
 * pl_host_fetch_parse); anything not in it is read on demand. */
static void
prefetch(struct ssh_impl *d)
{
	unsigned char raw[12];
	char marker[48], *q, *script;
	struct pl_buf out;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return;
	snprintf(marker, sizeof(marker), "@@pvelab-");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(marker + 9 + 2 * i, 3, "%02x", raw[i]);
	q = pl_ssh_quote(*d->root ? d->root : "/");
	script = pl_asprintf(
		"cd -- %s 2>/dev/null || exit 3; "
		"for p in %s; do if [ -f \"$p\" ]; then echo \"F /$p\"; head -c 4194305 -- \"$p\"; "
		"echo; echo %s; else echo \"N /$p\"; fi; done; "
		"for p in %s; do [ -L \"$p\" ] && echo \"L /$p $(readlink -- \"$p\")\"; done; "
		"for p in %s; do [ -d \"$p\" ] && { echo \"D /$p\"; LC_ALL=C ls -1A -- \"$p\"; "
		"echo %s; }; done; echo \"E %s\"",
		q, prefetch_files, marker, prefetch_links, prefetch_dirs, marker, marker);
	pl_buf_init(&out, 0);
	if (sh(d, script, (size_t)64 << 20, SSH_TIMEOUT_MS, &out, NULL) == 0)
		d->cache = pl_host_fetch_parse(out.data, out.len, marker);
	pl_buf_release(&out);
	free(script);
	free(q);
}

static const json_t *
cached(struct ssh_impl *d, const char *path, const char *kind)
{
	const json_t *e = json_object_get(d->cache, path);

	if (e == NULL)
		return NULL;
	if (!strcmp(pl_json_str(e, "t"), "N") && !strcmp(kind, "F"))
		return e;
	return !strcmp(pl_json_str(e, "t"), kind) ? e : NULL;
}

static int
ssh_read(void *impl, const char *path, size_t max, struct pl_buf *out, char **errmsg)
{
	struct ssh_impl *d = impl;
	const json_t *e;
	struct pl_buf b;
	char *p;
	int r;

	if (!pl_host_path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path", path);
	if ((e = cached(d, path, "F")) != NULL) {
		const json_t *data = json_object_get(e, "data");

		if (data == NULL)
			return pl_seterr(errmsg, PL_ENOENT, "%s does not exist", path);
		if (json_string_length(data) > max ||
		    pl_buf_add(out, json_string_value(data), json_string_length(data)) != 0)
			return pl_seterr(errmsg, PL_ETOOBIG, "'%s' is larger than %zu bytes", path,
					 max);
		return 0;
	}
	p = full(d, path);
	pl_buf_init(&b, max + 1);
	r = pl_ssh_read_file(d->s, p, max, &b, SSH_TIMEOUT_MS, errmsg);
	if (r == 0 && pl_buf_add(out, b.data, b.len) != 0)
		r = pl_seterr(errmsg, PL_ETOOBIG, "'%s' is too large", path);
	pl_buf_release(&b);
	free(p);
	return r;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
ssh_list(void *impl, const char *path, char ***names, size_t *n, char **errmsg)
{
	struct ssh_impl *d = impl;
	char *p, *q, *script;
	const json_t *e;
	struct pl_buf out;
	size_t cap = 0;
	int r;

	*names = NULL;
	*n = 0;
	if (!pl_host_path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path", path);
	if ((e = cached(d, path, "D")) != NULL) {
		const json_t *v;
		size_t i;

		*n = json_array_size(json_object_get(e, "names"));
		*names = pl_calloc(*n + 1, sizeof(**names));
		json_array_foreach(json_object_get(e, "names"), i, v)
			(*names)[i] = pl_strdup(json_string_value(v));
		if (*n)
			qsort(*names, *n, sizeof(**names), cmp_names);
		return 0;
	}
	p = full(d, path);
	q = pl_ssh_quote(*p ? p : "/");
	script = pl_asprintf("cd -- %s 2>/dev/null || exit 3; LC_ALL=C ls -1A", q);
	pl_buf_init(&out, 0);
	r = sh(d, script, PL_HOST_READ_MAX, SSH_TIMEOUT_MS, &out, errmsg);
	for (char *s = out.data, *nl; r == 0 && *s && *n < 4096; s = nl) {
		if ((nl = strchr(s, '\n')) != NULL)
			*nl++ = '\0';
		else
			nl = s + strlen(s);
		if (*n == cap)
			*names = pl_realloc(*names, (cap = cap ? 2 * cap : 32) * sizeof(**names));
		(*names)[(*n)++] = pl_strdup(s);
	}
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_names);
	pl_buf_release(&out);
	free(script), free(q), free(p);
	return r;
}

static int
ssh_readlink(void *impl, const char *path, char **target, char **errmsg)
{
	struct ssh_impl *d = impl;
	const json_t *e;
	char *p, *q, *script;
	struct pl_buf out;
	int r;

	if (!pl_host_path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path", path);
	if ((e = cached(d, path, "L")) != NULL) {
		*target = pl_strdup(pl_json_str(e, "target"));
		return 0;
	}
	if (d->cache && pl_str_startswith(path, "/sys/bus/pci/devices/"))
		return pl_seterr(errmsg, PL_ENOENT, "%s is no link", path); /* all were fetched */
	p = full(d, path);
	q = pl_ssh_quote(p);
	script = pl_asprintf("readlink -- %s || exit 3", q);
	pl_buf_init(&out, 0);
	if ((r = sh(d, script, 4096, SSH_TIMEOUT_MS, &out, errmsg)) == 0) {
		out.data[strcspn(out.data, "\n")] = '\0';
		*target = pl_strdup(out.data);
	}
	pl_buf_release(&out);
	free(script), free(q), free(p);
	return r;
}

static int
ssh_runcmd(void *impl, const char *cmd, struct pl_buf *out, char **errmsg)
{
	struct ssh_impl *d = impl;
	char *saved;
	size_t i;
	int r;

	for (i = 0; pl_host_commands[i]; i++)
		if (!strcmp(pl_host_commands[i], cmd))
			break;
	if (pl_host_commands[i] == NULL)
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not a command pvelab runs", cmd);
	if (*d->root) {
		if (i >= PL_HOST_FIRST_CHANGE)
			return pl_seterr(errmsg, PL_EPERM,
					 "'%s' changes the node: not run on a saved tree", cmd);
		saved = pl_asprintf("/.pvelab-cmd/%s", cmd);
		for (char *p = saved; *p; p++)
			if (*p == ' ')
				*p = '-';
		r = ssh_read(d, saved, PL_HOST_READ_MAX, out, errmsg);
		free(saved);
		return r;
	}
	if (i < PL_HOST_FIRST_CHANGE) {
		/* a read: its output counts whatever its status */
		struct pl_ssh_cmd c = { .cmd = cmd,
					.timeout_ms = SSH_TIMEOUT_MS,
					.max_out = PL_HOST_READ_MAX };
		struct pl_ssh_result res;

		if ((r = pl_ssh_run(d->s, &c, &res, errmsg)) == 0 &&
		    pl_buf_add(out, res.out.data, res.out.len) != 0)
			r = pl_seterr(errmsg, PL_ETOOBIG, "%s: too much output", cmd);
		pl_ssh_result_release(&res);
		return r;
	}
	return sh(d, cmd, PL_HOST_READ_MAX, 600000, out, errmsg);
}

static int
ssh_write(void *impl, const char *path, const void *data, size_t len, mode_t mode,
	  const char *backup_suffix, char **errmsg)
{
	struct ssh_impl *d = impl;
	char *p, *q, *qb, *bak, *script;
	struct pl_buf out;
	int r;

	if (!pl_host_path_ok(path))
		return pl_seterr(errmsg, PL_EINVAL, "'%s' is not an absolute path", path);
	p = full(d, path);
	bak = pl_asprintf("%s%s", p, backup_suffix);
	q = pl_ssh_quote(p);
	qb = pl_ssh_quote(bak);
	/* keep the old file (and its mode) beside it; refuse anything but a
	 * regular file */
	script = pl_asprintf("p=%s; if [ -L \"$p\" ] || { [ -e \"$p\" ] && [ ! -f \"$p\" ]; }; "
			     "then echo 'not a regular file' >&2; exit 1; fi; "
			     "if [ -e \"$p\" ]; then cp -p -- \"$p\" %s; fi",
			     q, qb);
	pl_buf_init(&out, 0);
	r = sh(d, script, 4096, SSH_TIMEOUT_MS, &out, errmsg);
	if (r == 0)
		r = pl_ssh_write_file(d->s, p, data, len, mode, SSH_TIMEOUT_MS, errmsg);
	json_decref(d->cache); /* the tree changed */
	d->cache = NULL;
	pl_buf_release(&out);
	free(script), free(qb), free(q), free(bak), free(p);
	return r;
}

static void
ssh_free(void *impl)
{
	struct ssh_impl *d = impl;

	if (d == NULL)
		return;
	pl_ssh_free(d->s);
	json_decref(d->cache);
	free(d->root);
	free(d);
}

static const struct pl_host_reader_ops ssh_ops = {
	.read = ssh_read,
	.list = ssh_list,
	.readlink = ssh_readlink,
	.run = ssh_runcmd,
	.write = ssh_write,
	.free = ssh_free,
};

int
pl_host_reader_ssh(struct pl_host_reader *r, const struct pl_ssh_opts *o, const char *root,
		   char **errmsg)
{
	struct ssh_impl *d = pl_calloc(1, sizeof(*d));
	size_t len = root ? strlen(root) : 0;
	int rc;

	while (len && root[len - 1] == '/')
		len--;
	d->root = pl_strndup(root ? root : "", len);
	if ((rc = pl_ssh_connect(o, &d->s, errmsg)) != 0) {
		ssh_free(d);
		return rc;
	}
	prefetch(d);
	r->ops = &ssh_ops;
	r->impl = d;
	r->runs = *d->root == '\0';
	r->where = *d->root ? pl_asprintf("ssh %s, --root %s", pl_ssh_peer(d->s), d->root) :
			      pl_asprintf("ssh %s", pl_ssh_peer(d->s));
	return 0;
}
