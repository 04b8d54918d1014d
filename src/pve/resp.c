/*
 * The Proxmox response envelope, error shapes (reason phrase, "message",
 * "errors"), UPIDs and the messages users need decoded: permissions and locks.
 */
#include "core/common.h"
#include "pve/resp.h"
#include "pve/client.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

#include <ctype.h>
#include <errno.h>

#define PARALLEL_PARSE_MIN ((size_t)1 << 20)

static char *
trim_dup(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return pl_strndup(s, n);
}

int
pl_pve_resp_parse(long status, const char *reason, const char *body, size_t len,
		  struct pl_pve_resp *r)
{
	const char *m;

	memset(r, 0, sizeof(*r));
	r->status = status;
	if (len > 0) {
		/* /cluster/resources of a large cluster: megabytes, parsed on all cores. */
		r->body = len < PARALLEL_PARSE_MIN ? pl_json_loadb(body, len, JSON_DECODE_ANY)
						   : pl_json_load_list(body, len, pl_pve_threads());
		if (r->body && !json_is_object(r->body)) {
			json_decref(r->body);
			r->body = NULL;
		}
	}
	if (r->body) {
		r->data = json_object_get(r->body, "data");
		r->errors = json_object_get(r->body, "errors");
		if (r->errors && !json_is_object(r->errors))
			r->errors = NULL;
	}
	if (status >= 200 && status < 300) {
		if (r->body == NULL) {
			r->message = pl_strdup("response is not a JSON object");
			return PL_EPARSE;
		}
		return 0;
	}
	if ((m = pl_json_str(r->body, "message")) && *m)
		r->message = trim_dup(m, strlen(m));
	else if (reason && *reason)
		r->message = trim_dup(reason, strlen(reason));
	else
		r->message = pl_asprintf("HTTP %ld", status);
	if (status == 401)
		return PL_EAUTH;
	if (status == 403)
		return PL_EPERM;
	return PL_EHTTP;
}

void
pl_pve_resp_release(struct pl_pve_resp *r)
{
	json_decref(r->body);
	free(r->message);
	memset(r, 0, sizeof(*r));
}

char *
pl_pve_resp_errtext(const struct pl_pve_resp *r)
{
	struct pl_buf b;
	const char *k;
	json_t *v;
	bool first = true;

	pl_buf_init(&b, 4096);
	pl_buf_addstr(&b, r->message ? r->message : "error");
	if (r->errors && json_object_size(r->errors) > 0) {
		/* Sorted for stable output. */
		const char **keys = pl_calloc(json_object_size(r->errors), sizeof(*keys));
		size_t n = 0;

		json_object_foreach(r->errors, k, v)
			keys[n++] = k;
		for (size_t i = 1; i < n; i++)
			for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
				const char *t = keys[j];

				keys[j] = keys[j - 1];
				keys[j - 1] = t;
			}
		pl_buf_addstr(&b, " (");
		for (size_t i = 0; i < n; i++) {
			const char *s = json_string_value(json_object_get(r->errors, keys[i]));
			char *t = s ? trim_dup(s, strlen(s)) : pl_strdup("invalid");

			pl_buf_addf(&b, "%s%s: %s", first ? "" : "; ", keys[i], t);
			first = false;
			free(t);
		}
		pl_buf_addch(&b, ')');
		free(keys);
	}
	/* Messages may hold newlines: keep errors on one line. */
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] == '\n' || b.data[i] == '\r')
			b.data[i] = ' ';
	return pl_buf_detach(&b, NULL);
}

/* Copy field [s,e) into out; false if it does not fit. */
static bool
field(const char *s, const char *e, char *out, size_t outlen)
{
	size_t n = (size_t)(e - s);

	if (n >= outlen)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

static bool
hexfield(const char *s, const char *e, size_t minlen, size_t maxlen, unsigned long long *out)
{
	size_t n = (size_t)(e - s);
	unsigned long long v = 0;

	if (n < minlen || n > maxlen)
		return false;
	for (const char *p = s; p < e; p++) {
		if (!isxdigit((unsigned char)*p))
			return false;
		v = v * 16 + (unsigned long long)(isdigit((unsigned char)*p) ? *p - '0' :
						  (tolower((unsigned char)*p) - 'a' + 10));
	}
	*out = v;
	return true;
}

int
pl_pve_upid_parse(const char *s, struct pl_pve_upid *u)
{
	const char *f[8];
	const char *p;
	unsigned long long v;
	int n = 0;

	memset(u, 0, sizeof(*u));
	if (s == NULL || strncmp(s, "UPID:", 5) != 0)
		return PL_EPARSE;
	/* Seven colon-terminated fields after "UPID:" (node, pid, pstart,
	 * starttime, type, id, user); the id may be empty; nothing after. */
	p = s + 5;
	f[n++] = p;
	for (; *p && n < 8; p++)
		if (*p == ':')
			f[n++] = p + 1;
	if (n != 8 || *p != '\0')
		return PL_EPARSE;
	if (!field(f[0], f[1] - 1, u->node, sizeof(u->node)) || !u->node[0])
		return PL_EPARSE;
	for (const char *q = u->node; *q; q++)
		if (!isalnum((unsigned char)*q) && *q != '-' && *q != '.')
			return PL_EPARSE;
	if (!hexfield(f[1], f[2] - 1, 8, 8, &v))
		return PL_EPARSE;
	u->pid = (unsigned long)v;
	if (!hexfield(f[2], f[3] - 1, 8, 9, &v))
		return PL_EPARSE;
	u->pstart = (unsigned long)v;
	if (!hexfield(f[3], f[4] - 1, 8, 8, &v))
		return PL_EPARSE;
	u->starttime = (long long)v;
	if (!field(f[4], f[5] - 1, u->type, sizeof(u->type)) || !u->type[0])
		return PL_EPARSE;
	if (!field(f[5], f[6] - 1, u->id, sizeof(u->id)))
		return PL_EPARSE;
	if (!field(f[6], f[7] - 1, u->user, sizeof(u->user)) || !u->user[0])
		return PL_EPARSE;
	return 0;
}

/* The smallest built-in role that holds priv (pve-access-control
 * AccessControl.pm create_roles: audit privileges are in PVEAuditor, a
 * category's user ones in PVE<cat>User, its admin ones in PVE<cat>Admin, the
 * root ones such as Sys.Modify only in Administrator). */
const char *
pl_pve_role_for(const char *priv)
{
	static const struct {
		const char *priv, *role;
	} exact[] = {
		{ "VM.Audit", "PVEAuditor" },
		{ "Sys.Audit", "PVEAuditor" },
		{ "Datastore.Audit", "PVEAuditor" },
		{ "Pool.Audit", "PVEAuditor" },
		{ "SDN.Audit", "PVEAuditor" },
		{ "Mapping.Audit", "PVEAuditor" },
		{ "VM.PowerMgmt", "PVEVMUser" },
		{ "VM.Console", "PVEVMUser" },
		{ "VM.Backup", "PVEVMUser" },
		{ "Datastore.AllocateSpace", "PVEDatastoreUser" },
		{ "Sys.Console", "PVESysAdmin" },
		{ "Sys.Syslog", "PVESysAdmin" },
		{ "Pool.Allocate", "PVEPoolAdmin" },
		{ "SDN.Use", "PVESDNUser" },
	};

	size_t n = strcspn(priv, "|"); /* of "A|B" (any one will do), the first */

	for (size_t i = 0; i < PL_ARRAY_LEN(exact); i++)
		if (strlen(exact[i].priv) == n && !strncmp(priv, exact[i].priv, n))
			return exact[i].role;
	if (pl_str_startswith(priv, "VM."))
		return "PVEVMAdmin";
	if (pl_str_startswith(priv, "Datastore."))
		return "PVEDatastoreAdmin";
	if (pl_str_startswith(priv, "SDN."))
		return "PVESDNAdmin";
	if (pl_str_startswith(priv, "User.") || pl_str_startswith(priv, "Group."))
		return "PVEUserAdmin";
	return "Administrator"; /* Sys.Modify, Sys.PowerMgmt, Permissions.Modify, ... */
}

bool
pl_pve_perm_parse(const char *msg, char *path, size_t pathlen, char *priv, size_t privlen)
{
	const char *p, *comma, *close;

	if (msg == NULL || (p = strstr(msg, "Permission check failed (")) == NULL)
		return false;
	p += strlen("Permission check failed (");
	close = strchr(p, ')');
	comma = strchr(p, ',');
	if (close == NULL || comma == NULL || comma > close || *p != '/')
		return false;
	if (!field(p, comma, path, pathlen))
		return false;
	comma++;
	while (*comma == ' ')
		comma++;
	/* "VM.PowerMgmt" or "VM.PowerMgmt|VM.Allocate", no spaces. */
	for (const char *q = comma; q < close; q++)
		if (isspace((unsigned char)*q))
			return false;
	return comma < close && field(comma, close, priv, privlen);
}

bool
pl_pve_lock_parse(const char *msg, char *lock, size_t locklen)
{
	const char *p, *close;

	if (msg == NULL || (p = strstr(msg, "is locked (")) == NULL)
		return false;
	p += strlen("is locked (");
	if ((close = strchr(p, ')')) == NULL || close == p)
		return false;
	return field(p, close, lock, locklen);
}

long
pl_pve_backoff_ms(int attempt, long base_ms, long cap_ms, double rnd)
{
	long ceil_ms = base_ms;

	if (attempt < 1)
		attempt = 1;
	for (int i = 1; i < attempt && ceil_ms < cap_ms; i++)
		ceil_ms *= 2;
	if (ceil_ms > cap_ms)
		ceil_ms = cap_ms;
	if (rnd < 0 || rnd >= 1)
		rnd = 0.5;
	/* Full jitter, with a floor so that retries never hammer. */
	return base_ms / 2 + (long)(rnd * (double)(ceil_ms - base_ms / 2));
}
