/*
 * The simulator's access control, as pve-access-control has it: users and
 * their API tokens (with or without privilege separation), the built-in
 * roles, ACLs on paths with propagation and pool-derived roles, the check of
 * a method's schema `permissions` object, and the /access endpoints that
 * create users, tokens and ACLs and read effective permissions.
 */
#include "core/common.h"

#include <openssl/rand.h>
#include <time.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "sim/api.h"
#include "sim/internal.h"

/* PVE/AccessControl.pm $privgroups: per category, the root, admin, user and
 * audit privileges; create_roles() builds the PVE*Admin / PVE*User /
 * PVEAdmin / PVEAuditor roles from them. */
struct privgroup {
	const char *cat;
	const char *const *lv[4]; /* root, admin, user, audit; NULL-terminated */
};

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })
static const struct privgroup privgroups[] = {
	{ "VM",
	  { NONE,
	    L("VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
	      "VM.Config.HWType", "VM.Config.Options", "VM.Allocate", "VM.Clone",
	      "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.Replicate", "VM.Snapshot",
	      "VM.Snapshot.Rollback"),
	    L("VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup",
	      "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite",
	      "VM.PowerMgmt"),
	    L("VM.Audit", "VM.GuestAgent.Audit") } },
	{ "Sys",
	  { L("Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"),
	    L("Sys.Console", "Sys.Syslog"), NONE, L("Sys.Audit") } },
	{ "Datastore",
	  { NONE, L("Datastore.Allocate", "Datastore.AllocateTemplate"),
	    L("Datastore.AllocateSpace"), L("Datastore.Audit") } },
	{ "SDN", { NONE, L("SDN.Allocate", "SDN.Audit"), L("SDN.Use"), L("SDN.Audit") } },
	{ "User",
	  { L("Realm.Allocate"), L("User.Modify", "Group.Allocate", "Realm.AllocateUser"), NONE,
	    NONE } },
	{ "Pool", { NONE, L("Pool.Allocate"), L("Pool.Audit"), L("Pool.Audit") } },
	{ "Mapping", { NONE, L("Mapping.Modify"), L("Mapping.Use"), L("Mapping.Audit") } },
};
#undef L
#undef NONE

static void
add_level(json_t *role, const struct privgroup *g, int lv)
{
	for (const char *const *p = g->lv[lv]; *p; p++)
		json_object_set_new(role, *p, json_true());
}

/* The built-in roles (create_roles): name -> {priv: true}. */
static json_t *
builtin_roles(void)
{
	json_t *roles = json_object(), *admin = json_object(), *all = json_object(),
	       *auditor = json_object();

	json_object_set_new(all, "Permissions.Modify", json_true());
	for (size_t i = 0; i < PL_ARRAY_LEN(privgroups); i++) {
		const struct privgroup *g = &privgroups[i];
		json_t *cadmin = json_object();
		char name[64];

		for (int lv = 0; lv < 4; lv++)
			add_level(all, g, lv);
		for (int lv = 1; lv < 4; lv++) {
			add_level(cadmin, g, lv);
			add_level(admin, g, lv);
		}
		snprintf(name, sizeof(name), "PVE%sAdmin", g->cat);
		json_object_set_new(roles, name, cadmin);
		if (*g->lv[2]) {
			json_t *user = json_object();

			add_level(user, g, 2);
			add_level(user, g, 3);
			snprintf(name, sizeof(name), "PVE%sUser", g->cat);
			json_object_set_new(roles, name, user);
		}
		add_level(auditor, g, 3);
	}
	json_object_del(admin, "Mapping.Modify");
	json_object_set_new(roles, "PVEAdmin", admin);
	json_object_set_new(roles, "PVEAuditor", auditor);
	json_object_set_new(roles, "Administrator", all);
	json_object_set_new(roles, "NoAccess", json_object());
	json_object_set_new(roles, "PVETemplateUser",
			    json_pack("{s:b,s:b}", "VM.Clone", 1, "VM.Audit", 1));
	return roles;
}

static char *
random_secret(void)
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		pl_die("no randomness");
	return pl_asprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			   b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
			   b[12], b[13], b[14], b[15]);
}

void
pl_sim_access_init(struct pl_sim *s)
{
	json_t *special = json_object(), *v;
	const char *k;

	s->access =
		json_pack("{s:o,s:{s:{s:{}},s:{s:{}}},s:[],s:{}}", "roles", builtin_roles(),
			  "users", "root@pam", "tokens", "audit@pve", "tokens", "acl", "groups");
	/* the built-in roles are "special": not to be changed or deleted */
	json_object_foreach(json_object_get(s->access, "roles"), k, v)
		json_object_set_new(special, k, json_true());
	json_object_set_new(s->access, "special", special);
	pl_sim_access_add_token(s, "root@pam", "pvelab", false, s->token_secret);
	/* the token of the recorded examples (tests/data/pve-api), secret unknown */
	pl_sim_access_add_token(s, "root@pam", "root1", false, NULL);
	pl_sim_access_add_token(s, "audit@pve", "ro", true, s->ro_secret);
	pl_sim_access_add_acl(s, "/", "audit@pve", "PVEAuditor", true);
	pl_sim_access_add_acl(s, "/", "audit@pve!ro", "PVEAuditor", true);
}

const char *
pl_sim_access_add_token(struct pl_sim *s, const char *user, const char *tok, bool privsep,
			const char *value)
{
	json_t *u = json_object_get(json_object_get(s->access, "users"), user);
	char *v = value ? pl_strdup(value) : random_secret();
	json_t *t = json_pack("{s:b,s:s}", "privsep", privsep, "value", v);

	pl_free_secret(v);
	if (!u)
		return NULL;
	json_object_set_new(json_object_get(u, "tokens"), tok, t);
	return pl_json_str(t, "value");
}

void
pl_sim_access_add_acl(struct pl_sim *s, const char *path, const char *ugid, const char *role,
		      bool propagate)
{
	json_t *acl = json_object_get(s->access, "acl");
	size_t i;
	json_t *e;

	json_array_foreach(acl, i, e) {
		if (!strcmp(pl_json_str_or(e, "path", ""), path) &&
		    !strcmp(pl_json_str_or(e, "ugid", ""), ugid) &&
		    !strcmp(pl_json_str_or(e, "roleid", ""), role)) {
			json_object_set_new(e, "propagate", json_integer(propagate));
			return;
		}
	}
	json_array_append_new(acl, json_pack("{s:s,s:s,s:s,s:i}", "path", path, "ugid", ugid,
					     "roleid", role, "propagate", propagate));
}

static void
del_acl(struct pl_sim *s, const char *path, const char *ugid, const char *role)
{
	json_t *acl = json_object_get(s->access, "acl");

	for (size_t i = json_array_size(acl); i-- > 0;) {
		json_t *e = json_array_get(acl, i);

		if (!strcmp(pl_json_str_or(e, "path", ""), path) &&
		    !strcmp(pl_json_str_or(e, "ugid", ""), ugid) &&
		    !strcmp(pl_json_str_or(e, "roleid", ""), role))
			json_array_remove(acl, i);
	}
}

/* Whether a user or token's expire (epoch seconds, 0: never) has passed. */
static bool
expired(const json_t *o)
{
	long long e = pl_json_int(o, "expire", 0);

	return e > 0 && e < (long long)time(NULL);
}

/* The token ("user@realm!name") an Authorization value "ID=SECRET" names,
 * or NULL. */
char *
pl_sim_access_token_auth(struct pl_sim *s, const char *value)
{
	const char *bang = strchr(value, '!'), *eq = bang ? strchr(bang, '=') : NULL;
	char *user, *tok, *id = NULL;
	json_t *t;

	if (!eq)
		return NULL;
	user = pl_strndup(value, (size_t)(bang - value));
	tok = pl_strndup(bang + 1, (size_t)(eq - bang - 1));
	t = json_object_get(
		json_object_get(json_object_get(json_object_get(s->access, "users"), user),
				"tokens"),
		tok);
	/* AccessControl::check_token_exist / check_user_enabled: an expired
	 * token or user is refused like a wrong secret */
	if (t && !strcmp(pl_json_str_or(t, "value", ""), eq + 1) && !expired(t) &&
	    !expired(json_object_get(json_object_get(s->access, "users"), user)))
		id = pl_strndup(value, (size_t)(eq - value));
	free(user);
	free(tok);
	return id;
}

/* Whether a user other than root@pam logs in with this password. */
bool
pl_sim_access_password_ok(struct pl_sim *s, const char *user, const char *pw)
{
	const char *want =
		pl_json_str(json_object_get(json_object_get(s->access, "users"), user), "password");

	return want && pw && !strcmp(want, pw);
}

/* Whether ACL entry e names ugid: itself, or (ugid a user) a group of its
 * when groups is set. */
static bool
acl_names(struct pl_sim *s, const json_t *e, const char *ugid, bool groups)
{
	const char *who = pl_json_str_or(e, "ugid", "");

	if (!groups)
		return !strcmp(who, ugid);
	return !strchr(who, '@') && pl_sim_access_in_group(s, who, ugid);
}

/* AccessControl::roles: along the path from "/", the ACL entries for ugid on
 * each prefix (propagated ones only above the path itself) replace what was
 * inherited — a user's own entries, else those of its groups; NoAccess stops
 * all. Sets role -> propagate into out. */
static void
path_roles(struct pl_sim *s, const char *ugid, const char *path, json_t *out)
{
	const json_t *acl = json_object_get(s->access, "acl");
	size_t plen = strlen(path), n = 1;

	json_object_clear(out);
	for (;;) {
		bool last = n >= plen, found = false;
		json_t *lv = json_object();
		const char *next;
		size_t i;
		json_t *e;

		/* pass 0: ugid's own entries; pass 1: its groups' (users only) */
		for (int pass = 0; pass < 2 && !found; pass++) {
			if (pass == 1 && (strchr(ugid, '!') || !strchr(ugid, '@')))
				break;
			json_array_foreach(acl, i, e) {
				const char *p = pl_json_str_or(e, "path", "");

				if (!acl_names(s, e, ugid, pass == 1) || strlen(p) != n ||
				    strncmp(p, path, n))
					continue;
				if (!last && !pl_json_int(e, "propagate", 1))
					continue;
				found = true;
				json_object_set_new(lv, pl_json_str_or(e, "roleid", ""),
						    json_integer(pl_json_int(e, "propagate", 1)));
			}
		}
		if (found) {
			json_object_clear(out);
			json_object_update(out, lv);
		}
		json_decref(lv);
		if (last)
			break;
		next = strchr(path + n + (n > 1), '/');
		n = next ? (size_t)(next - path) : plen;
	}
	if (json_object_get(out, "NoAccess")) {
		json_object_clear(out);
		json_object_set_new(out, "NoAccess", json_integer(0));
	}
}

/* The privileges (priv -> true) one user or token id has on a path, before
 * the token/user intersection: its roles plus, for /vms/ID and a pool
 * member, the pool's roles (RPCEnvironment compile_acl_path). */
static json_t *
ugid_privs(struct pl_sim *s, const char *ugid, const char *path)
{
	json_t *roles = json_object(), *privs = json_object();
	const char *k;
	json_t *v;

	path_roles(s, ugid, path, roles);
	if (pl_str_startswith(path, "/vms/") && !json_object_get(roles, "NoAccess")) {
		const char *pool = pl_sim_guest_pool(s, (uint32_t)strtoul(path + 5, NULL, 10));

		if (pool) {
			json_t *pr = json_object();
			char *pp = pl_asprintf("/pool/%s", pool);

			path_roles(s, ugid, pp, pr);
			if (json_object_get(pr, "NoAccess"))
				json_object_clear(roles);
			else
				json_object_foreach(pr, k, v)
					if (!json_object_get(roles, k))
						json_object_set_new(roles, k, json_integer(0));
			free(pp);
			json_decref(pr);
		}
	}
	json_object_foreach(roles, k, v) {
		const char *p;
		json_t *x;

		json_object_foreach(json_object_get(json_object_get(s->access, "roles"), k), p, x)
			json_object_set_new(privs, p, json_true());
	}
	json_decref(roles);
	return privs;
}

/* RPCEnvironment::permissions: root@pam has every privilege; a token without
 * privilege separation its user's; a separated one the intersection of its
 * user's and its own. */
json_t *
pl_sim_access_privs(struct pl_sim *s, const char *auth, const char *path)
{
	const char *bang = strchr(auth, '!');
	char *user = bang ? pl_strndup(auth, (size_t)(bang - auth)) : pl_strdup(auth);
	json_t *out;

	if (!strcmp(user, "root@pam")) {
		out = json_deep_copy(
			json_object_get(json_object_get(s->access, "roles"), "Administrator"));
	} else {
		json_t *u = json_object_get(json_object_get(s->access, "users"), user);
		json_t *t = bang ? json_object_get(json_object_get(u, "tokens"), bang + 1) : NULL;

		if (!u || (bang && !t)) {
			out = json_object();
		} else {
			out = ugid_privs(s, user, path);
			if (t && pl_json_bool(t, "privsep", false)) {
				json_t *tp = ugid_privs(s, auth, path);
				const char *k;
				json_t *v;
				void *tmp;

				json_object_foreach_safe(out, tmp, k, v)
					if (!json_object_get(tp, k))
						json_object_del(out, k);
				json_decref(tp);
			}
		}
	}
	free(user);
	return out;
}

bool
pl_sim_access_can(struct pl_sim *s, const char *auth, const char *path, const char *priv)
{
	json_t *p = pl_sim_access_privs(s, auth, path);
	bool ok = json_object_get(p, priv) != NULL;

	json_decref(p);
	return ok;
}

/* A path template with {param} replaced. */
static char *
fill_path(const char *tpl, const json_t *params)
{
	struct pl_buf b;

	pl_buf_init(&b, 64);
	for (const char *p = tpl; *p; p++) {
		const char *e;

		if (*p == '{' && (e = strchr(p, '}')) != NULL) {
			char *name = pl_strndup(p + 1, (size_t)(e - p - 1));

			pl_buf_addstr(&b, pl_json_str_or(params, name, ""));
			free(name);
			p = e;
			continue;
		}
		pl_buf_addch(&b, *p);
	}
	return pl_buf_detach(&b, NULL);
}

/* RPCEnvironment::check_full: the first missing privilege ("/vms/100,
 * VM.PowerMgmt"), or all of them joined by "|" when any one would do. */
static bool
check_privs(struct pl_sim *s, const char *auth, const char *path, const json_t *privs, bool any,
	    char **why)
{
	json_t *have = pl_sim_access_privs(s, auth, path);
	struct pl_buf b;
	bool ok = !any;
	size_t i;
	json_t *v;

	json_array_foreach(privs, i, v) {
		bool has = json_object_get(have, json_string_value(v) ? json_string_value(v) : "");

		if (any && has) {
			ok = true;
			break;
		}
		if (!any && !has) {
			ok = false;
			if (why && !*why)
				*why = pl_asprintf("%s, %s", path, json_string_value(v));
			break;
		}
	}
	json_decref(have);
	if (!ok && any && why && !*why) {
		pl_buf_init(&b, 64);
		pl_buf_addf(&b, "%s, ", path);
		json_array_foreach(privs, i, v)
			pl_buf_addf(&b, "%s%s", i ? "|" : "", json_string_value(v));
		*why = pl_buf_detach(&b, NULL);
	}
	return ok;
}

/* RPCEnvironment::exec_api2_perm_check for the tests the schema uses. */
static bool
exec_check(struct pl_sim *s, const json_t *check, const char *auth, const json_t *params,
	   char **why)
{
	const char *test = json_string_value(json_array_get(check, 0));
	const char *bang = strchr(auth, '!');

	if (!test)
		return false;
	if (!strcmp(test, "and") || !strcmp(test, "or")) {
		bool and = !strcmp(test, "and");

		for (size_t i = 1; i < json_array_size(check); i++) {
			bool ok = exec_check(s, json_array_get(check, i), auth, params,
					     and? why : NULL);

			if (ok != and)
				return ok;
		}
		return and;
	}
	if (!strcmp(test, "perm")) {
		const char *req = NULL;
		bool any = false;
		char *path;
		bool ok;

		for (size_t i = 3; i + 1 < json_array_size(check); i += 2) {
			const char *o = json_string_value(json_array_get(check, i));

			if (o && !strcmp(o, "any"))
				any = json_is_true(json_array_get(check, i + 1)) ||
				      json_integer_value(json_array_get(check, i + 1));
			if (o && !strcmp(o, "require_param"))
				req = json_string_value(json_array_get(check, i + 1));
		}
		if (req && !json_object_get(params, req))
			return false;
		path = fill_path(json_string_value(json_array_get(check, 1)), params);
		ok = check_privs(s, auth, path, json_array_get(check, 2), any, why);
		free(path);
		return ok;
	}
	if (!strcmp(test, "userid-param")) {
		const char *sub = json_string_value(json_array_get(check, 1));
		const char *uid = pl_json_str_or(params, "userid", "");

		if (sub && !strcmp(sub, "self"))
			return !strncmp(auth, uid, bang ? (size_t)(bang - auth) : strlen(auth)) &&
			       strlen(uid) == (bang ? (size_t)(bang - auth) : strlen(auth));
		return pl_sim_access_can(s, auth, "/access", "Realm.AllocateUser");
	}
	if (!strcmp(test, "userid-group")) {
		const json_t *privs = json_array_get(check, 1);

		return check_privs(s, auth, "/access/groups", privs, true, why);
	}
	if (!strcmp(test, "perm-modify")) {
		char *path = fill_path(json_string_value(json_array_get(check, 1)), params);
		bool ok = pl_sim_access_can(s, auth, path, "Permissions.Modify");

		if (!ok && why && !*why)
			*why = pl_asprintf("%s, Permissions.Modify", path);
		free(path);
		return ok;
	}
	return false;
}

bool
pl_sim_storage_listed(struct pl_sim *s, const char *auth, const char *id)
{
	char path[300];

	if (!pl_sim_access_filtered(s, auth))
		return true;
	snprintf(path, sizeof(path), "/storage/%s", id);
	return pl_sim_access_can(s, auth, path, "Datastore.Audit") ||
	       pl_sim_access_can(s, auth, path, "Datastore.AllocateSpace");
}

/* RPCEnvironment::check_api2_permissions: NULL when allowed, else the 403
 * message (caller frees). */
char *
pl_sim_access_check(struct pl_sim *s, const json_t *perm, const char *auth, const json_t *params)
{
	char *why = NULL, *msg;

	if (!strcmp(auth, "root@pam"))
		return NULL;
	if (!perm || (!json_object_get(perm, "check") && !json_object_get(perm, "user")))
		return pl_strdup("Permission check failed (user != root@pam)");
	if (!strcmp(pl_json_str_or(perm, "user", ""), "all"))
		return NULL;
	/* root@pam's unseparated tokens hold every privilege on every path: any
	 * check passes (the shortcut above is for root@pam itself only) */
	if (!pl_sim_access_filtered(s, auth))
		return NULL;
	if (json_object_get(perm, "check") &&
	    exec_check(s, json_object_get(perm, "check"), auth, params, &why)) {
		free(why);
		return NULL;
	}
	msg = why ? pl_asprintf("Permission check failed (%s)", why) :
		    pl_strdup("Permission check failed");
	free(why);
	return msg;
}

/* --- /access endpoints --- */

static bool
user_ok(struct pl_sim_req *r)
{
	return !strcmp(r->user, "root@pam") || !strcmp(r->user, "root@pam!pvelab") ||
	       pl_sim_access_can(r->sim, r->user, "/access", "User.Modify");
}

static void
h_users(struct pl_sim_req *r)
{
	json_t *a = json_array();
	const char *k;
	json_t *v;

	json_object_foreach(json_object_get(r->sim->access, "users"), k, v)
		json_array_append_new(a, json_pack("{s:s,s:i}", "userid", k, "enable", 1));
	pl_sim_ok(r, a);
}

static void
h_user_create(struct pl_sim_req *r)
{
	json_t *users = json_object_get(r->sim->access, "users");
	const char *id = pl_sim_p(r, "userid");

	if (json_object_get(users, id)) {
		pl_sim_fail(r, 500, "create user failed: user '%s' already exists", id);
		return;
	}
	if (pl_sim_p(r, "groups") && !pl_sim_access_set_groups(r, id, pl_sim_p(r, "groups"), true))
		return; /* before the user exists: nothing half made */
	json_object_set_new(users, id, json_pack("{s:{}}", "tokens"));
	if (pl_sim_p(r, "password"))
		json_object_set_new(json_object_get(users, id), "password",
				    json_string(pl_sim_p(r, "password")));
	if (pl_sim_p(r, "expire"))
		json_object_set_new(json_object_get(users, id), "expire",
				    json_integer(strtoll(pl_sim_p(r, "expire"), NULL, 10)));
	r->sim->dirty = true;
	pl_sim_ok(r, json_null());
}

static void
h_token_get(struct pl_sim_req *r)
{
	const char *user = pl_sim_p(r, "userid"), *tok = pl_sim_p(r, "tokenid");
	json_t *t = json_object_get(
		json_object_get(json_object_get(json_object_get(r->sim->access, "users"), user),
				"tokens"),
		tok);

	if (!t) {
		pl_sim_fail(r, 500, "no such token '%s' for user '%s'", tok, user);
		return;
	}
	pl_sim_ok(r, json_pack("{s:i,s:I}", "privsep", pl_json_bool(t, "privsep", false), "expire",
			       (json_int_t)pl_json_int(t, "expire", 0)));
}

static void
h_token_create(struct pl_sim_req *r)
{
	const char *user = pl_sim_p(r, "userid"), *tok = pl_sim_p(r, "tokenid");
	json_t *u = json_object_get(json_object_get(r->sim->access, "users"), user);
	long long expire;
	const char *v;
	char *full;

	if (!u) {
		pl_sim_fail(r, 500, "no such user ('%s')", user);
		return;
	}
	if (json_object_get(json_object_get(u, "tokens"), tok)) {
		pl_sim_fail(r, 500, "Token already exists.");
		return;
	}
	/* PVE's default: privilege separated */
	v = pl_sim_access_add_token(r->sim, user, tok, pl_sim_pbool(r, "privsep", true), NULL);
	expire = pl_sim_p(r, "expire") ? strtoll(pl_sim_p(r, "expire"), NULL, 10) : 0;
	json_object_set_new(json_object_get(json_object_get(u, "tokens"), tok), "expire",
			    json_integer(expire));
	full = pl_asprintf("%s!%s", user, tok);
	r->sim->dirty = true;
	pl_sim_ok(r, json_pack("{s:s,s:s,s:{s:i,s:I}}", "full-tokenid", full, "value", v, "info",
			       "privsep", pl_sim_pbool(r, "privsep", true), "expire",
			       (json_int_t)expire));
	free(full);
}

static void
h_acl_get(struct pl_sim_req *r)
{
	json_t *a = json_array();
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(r->sim->access, "acl"), i, e) {
		const char *ugid = pl_json_str_or(e, "ugid", "");

		json_array_append_new(a,
				      json_pack("{s:s,s:s,s:s,s:s,s:i}", "path",
						pl_json_str_or(e, "path", ""), "ugid", ugid,
						"roleid", pl_json_str_or(e, "roleid", ""), "type",
						strchr(ugid, '!') ? "token" :
						strchr(ugid, '@') ? "user" :
								    "group",
						"propagate", (int)pl_json_int(e, "propagate", 1)));
	}
	pl_sim_ok(r, a);
}

/* PUT /access/acl: roles (list) for users and/or tokens (lists) on path. */
static void
h_acl_put(struct pl_sim_req *r)
{
	const char *path = pl_sim_p(r, "path");
	char *roles = pl_strdup(pl_sim_p(r, "roles") ? pl_sim_p(r, "roles") : "");
	bool del = pl_sim_pbool(r, "delete", false), prop = pl_sim_pbool(r, "propagate", true);
	const char *kinds[] = { "users", "tokens", "groups" };
	char *save1, *save2;

	for (size_t k = 0; k < PL_ARRAY_LEN(kinds); k++) {
		char *ids = pl_strdup(pl_sim_p(r, kinds[k]) ? pl_sim_p(r, kinds[k]) : "");

		for (char *id = strtok_r(ids, ", ;", &save1); id;
		     id = strtok_r(NULL, ", ;", &save1)) {
			char *rl = pl_strdup(roles);

			if (k == 1 && !pl_sim_access_token_known(r->sim, id)) {
				pl_sim_fail(r, 500, "no such token '%s'", id);
				free(rl);
				free(ids);
				goto out;
			}
			if (k == 2 &&
			    !json_object_get(json_object_get(r->sim->access, "groups"), id)) {
				pl_sim_fail(r, 500, "group '%s' does not exist", id);
				free(rl);
				free(ids);
				goto out;
			}
			for (char *role = strtok_r(rl, ", ;", &save2); role;
			     role = strtok_r(NULL, ", ;", &save2)) {
				if (!json_object_get(json_object_get(r->sim->access, "roles"),
						     role)) {
					pl_sim_fail(r, 500, "role '%s' does not exist", role);
					free(rl);
					free(ids);
					goto out;
				}
				if (del)
					del_acl(r->sim, path, id, role);
				else
					pl_sim_access_add_acl(r->sim, path, id, role, prop);
			}
			free(rl);
		}
		free(ids);
	}
	r->sim->dirty = true;
	r->sim->gen++;
	pl_sim_ok(r, json_null());
out:
	free(roles);
}

bool
pl_sim_access_token_known(struct pl_sim *s, const char *id)
{
	const char *bang = strchr(id, '!');
	char *user;
	bool ok;

	if (!bang)
		return false;
	user = pl_strndup(id, (size_t)(bang - id));
	ok = json_object_get(
		     json_object_get(json_object_get(json_object_get(s->access, "users"), user),
				     "tokens"),
		     bang + 1) != NULL;
	free(user);
	return ok;
}

/* GET /access/permissions (RPCEnvironment::get_effective_permissions): the
 * top-level paths, every ACL path and the pools' members, each with the
 * privileges held there (paths with none left out); ?path= gives one. */
static void
h_permissions(struct pl_sim_req *r)
{
	static const char *const tops[] = { "/",     "/access", "/access/groups", "/nodes",
					    "/pool", "/sdn",    "/storage",       "/vms" };
	const char *who = pl_sim_p(r, "userid") ? pl_sim_p(r, "userid") : r->user;
	json_t *paths = json_object(), *out = json_object();
	const char *k;
	json_t *v;
	size_t i;

	if (strcmp(who, r->user) != 0 && !user_ok(r)) {
		pl_sim_fail(r, 403, "Permission check failed (/access, Sys.Audit)");
		json_decref(paths);
		json_decref(out);
		return;
	}
	if (pl_sim_p(r, "path")) {
		json_object_set_new(paths, pl_sim_p(r, "path"), json_true());
	} else {
		for (i = 0; i < PL_ARRAY_LEN(tops); i++)
			json_object_set_new(paths, tops[i], json_true());
		json_array_foreach(json_object_get(r->sim->access, "acl"), i, v)
			json_object_set_new(paths, pl_json_str_or(v, "path", "/"), json_true());
		json_object_foreach(r->sim->pools, k, v) {
			json_t *m;

			json_array_foreach(json_object_get(v, "members"), i, m) {
				char vp[40];

				snprintf(vp, sizeof(vp), "/vms/%u", pl_sim_member_vmid(m));
				json_object_set_new(paths, vp, json_true());
			}
		}
	}
	json_object_foreach(paths, k, v) {
		json_t *p = pl_sim_access_privs(r->sim, who, k);
		const char *pk;
		json_t *pv;

		json_object_foreach(p, pk, pv)
			json_object_set_new(p, pk, json_integer(1));
		if (json_object_size(p))
			json_object_set(out, k, p);
		json_decref(p);
	}
	json_decref(paths);
	pl_sim_ok(r, out);
}

const struct pl_sim_route_def pl_sim_access_routes[] = {
	{ PL_SIM_GET, "/access/users", h_users, false, 0 },
	{ PL_SIM_POST, "/access/users", h_user_create, false, 0 },
	{ PL_SIM_GET, "/access/users/{userid}/token/{tokenid}", h_token_get, false, 0 },
	{ PL_SIM_POST, "/access/users/{userid}/token/{tokenid}", h_token_create, false, 0 },
	{ PL_SIM_GET, "/access/acl", h_acl_get, false, 0 },
	{ PL_SIM_PUT, "/access/acl", h_acl_put, false, 0 },
	{ PL_SIM_GET, "/access/permissions", h_permissions, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};

bool
pl_sim_access_filtered(struct pl_sim *s, const char *auth)
{
	json_t *t;

	if (!strcmp(auth, "root@pam"))
		return false;
	if (!pl_str_startswith(auth, "root@pam!"))
		return true;
	t = json_object_get(
		json_object_get(json_object_get(json_object_get(s->access, "users"), "root@pam"),
				"tokens"),
		auth + strlen("root@pam!"));
	return !t || pl_json_bool(t, "privsep", false);
}

/* What the state file keeps of access control: users (with tokens, groups
 * they are in and expiry), custom roles, groups and the ACL — the form
 * pl_sim_access_seed reads. */
json_t *
pl_sim_access_saved(struct pl_sim *s)
{
	json_t *roles = json_object(), *groups = json_object(), *v;
	const char *k;

	json_object_foreach(json_object_get(s->access, "roles"), k, v)
		if (!json_object_get(json_object_get(s->access, "special"), k))
			json_object_set(roles, k, v);
	json_object_foreach(json_object_get(s->access, "groups"), k, v)
		json_object_set_new(groups, k,
				    json_pack("{s:s,s:O}", "comment",
					      pl_json_str_or(v, "comment", ""), "users",
					      json_object_get(v, "users")));
	return json_pack("{s:O,s:o,s:o,s:O}", "users", json_object_get(s->access, "users"), "roles",
			 roles, "groups", groups, "acl", json_object_get(s->access, "acl"));
}

/* Seed "access": {users: {id: {password, expire, tokens: {name: {privsep,
 * value, expire}}}}, roles: {name: {priv: true} | "Priv1,Priv2"}, groups:
 * {id: {comment, users: {id: true} | [id...]}}, acl: [{path, ugid, roleid,
 * propagate}]}, the form the state file keeps. The built-in tokens keep this
 * run's secrets. */
int
pl_sim_access_seed(struct pl_sim *s, const json_t *access, char **errmsg)
{
	json_t *users = json_object_get(s->access, "users");
	json_t *valid = json_object_get(json_object_get(s->access, "roles"), "Administrator");
	const char *k, *tk;
	json_t *v, *tv;
	size_t i;

	if (!access)
		return 0;
	json_object_foreach((json_t *)json_object_get(access, "roles"), k, v) {
		json_t *role = json_object();
		char *list = json_is_string(v) ? pl_strdup(json_string_value(v)) : NULL, *save;

		if (json_object_get(json_object_get(s->access, "special"), k)) {
			free(list);
			json_decref(role);
			return pl_seterr(errmsg, PL_EINVAL,
					 "seed: access role '%s' is built in and cannot be changed",
					 k);
		}
		if (list)
			for (char *p = strtok_r(list, ", ;", &save); p;
			     p = strtok_r(NULL, ", ;", &save))
				json_object_set_new(role, p, json_true());
		else
			json_object_update(role, v);
		free(list);
		json_object_foreach(role, tk, tv)
			if (!json_object_get(valid, tk)) {
				json_decref(role);
				return pl_seterr(errmsg, PL_EINVAL,
						 "seed: access role '%s': invalid privilege '%s'",
						 k, tk);
			}
		json_object_set_new(json_object_get(s->access, "roles"), k, role);
	}
	json_object_foreach((json_t *)json_object_get(access, "users"), k, v) {
		if (!strchr(k, '@'))
			return pl_seterr(errmsg, PL_EINVAL,
					 "seed: access user '%s' has no realm (user@realm)", k);
		if (!json_object_get(users, k))
			json_object_set_new(users, k, json_pack("{s:{}}", "tokens"));
		if (pl_json_str(v, "password"))
			json_object_set_new(json_object_get(users, k), "password",
					    json_string(pl_json_str(v, "password")));
		if (pl_json_int(v, "expire", 0))
			json_object_set_new(json_object_get(users, k), "expire",
					    json_integer(pl_json_int(v, "expire", 0)));
		json_object_foreach(json_object_get(v, "tokens"), tk, tv) {
			pl_sim_access_add_token(s, k, tk, pl_json_bool(tv, "privsep", true),
						pl_json_str(tv, "value"));
			if (pl_json_int(tv, "expire", 0))
				json_object_set_new(
					json_object_get(json_object_get(json_object_get(users, k),
									"tokens"),
							tk),
					"expire", json_integer(pl_json_int(tv, "expire", 0)));
		}
	}
	json_object_foreach((json_t *)json_object_get(access, "groups"), k, v) {
		json_t *members = json_object(), *m = json_object_get(v, "users"), *x;
		const char *mk;

		if (strchr(k, '@') || strchr(k, '!')) {
			json_decref(members);
			return pl_seterr(errmsg, PL_EINVAL, "seed: access group '%s': bad name", k);
		}
		if (json_is_array(m)) {
			json_array_foreach(m, i, x)
				if (json_string_value(x))
					json_object_set_new(members, json_string_value(x),
							    json_true());
		} else {
			json_object_foreach(m, mk, x)
				json_object_set_new(members, mk, json_true());
		}
		json_object_foreach(members, mk, x)
			if (!json_object_get(users, mk)) {
				json_decref(members);
				return pl_seterr(errmsg, PL_EINVAL,
						 "seed: access group '%s': no such user '%s'", k,
						 mk);
			}
		json_object_set_new(json_object_get(s->access, "groups"), k,
				    json_pack("{s:s,s:o}", "comment",
					      pl_json_str_or(v, "comment", ""), "users", members));
	}
	json_array_foreach(json_object_get(access, "acl"), i, v) {
		const char *role = pl_json_str_or(v, "roleid", "");

		if (!json_object_get(json_object_get(s->access, "roles"), role))
			return pl_seterr(errmsg, PL_EINVAL, "seed: access role '%s' does not exist",
					 role);
		pl_sim_access_add_acl(s, pl_json_str_or(v, "path", "/"),
				      pl_json_str_or(v, "ugid", ""), role,
				      pl_json_bool(v, "propagate", true));
	}
	pl_sim_access_add_token(s, "root@pam", "pvelab", false, s->token_secret);
	pl_sim_access_add_token(s, "audit@pve", "ro", true, s->ro_secret);
	return 0;
}
