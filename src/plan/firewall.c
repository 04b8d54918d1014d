/*
 * The firewall's plan (see firewall.h; firewall_fetch.c reads it,
 * firewall_import.c writes its YAML). A declared
 * rule list is the whole list (bpg's proxmox_virtual_environment_firewall_rules
 * behaves the same): rules beyond the declared ones are deleted, order is
 * state. PVE inserts every new rule at position 0 (pve-firewall
 * PVE/API2/Firewall/Rules.pm create_rule, register_create_rule unshifts) and
 * moves one with PUT .../rules/{pos} moveto=N (it lands before the rule at
 * N, update_rule), so the calls are computed on a model of the list.
 */
#include "core/common.h"
#include "plan/firewall.h"
#include "plan/firewall_int.h"
#include "config/config.h"
#include "core/apischema.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/snapshot.h"
#include "core/str.h"
#include "model/guest.h"

#include <ctype.h>
#include <strings.h>

static const struct {
	const char *name, *descr;
} macros[] = {
#include "core/fw_macros.inc"
};

/* A rule's properties, as the API names them (PVE::Firewall $rule_properties). */
const char *const pl_fw_rule_keys[PL_FW_NRULE_KEYS] = { "type",   "action",    "macro", "iface",
							"source", "dest",      "proto", "dport",
							"sport",  "icmp-type", "log",   "comment",
							"enable" };

/* The live guest a declared one is (by vmid, else by name: this project's
 * first), or NULL. */
const json_t *
pl_fw_live_guest(const json_t *snap, const json_t *g, const char *project)
{
	const json_t *l, *best = NULL;
	long long vmid = pl_json_int(g, "vmid", 0);
	size_t i;

	json_array_foreach(json_object_get(snap, PL_SNAP_GUESTS), i, l) {
		if (vmid ? pl_json_int(l, "vmid", 0) != vmid :
			   strcmp(pl_json_str_or(l, "name", ""), pl_json_str_or(g, "name", "")) ||
				    pl_json_int(l, "template", 0) == 1)
			continue;
		if (vmid || pl_model_owned_by(l, project))
			return l;
		if (best == NULL)
			best = l;
	}
	return best;
}

/* What the config declares of an online node's host firewall (firewall.nodes
 * by name, else firewall.host), or NULL. */
const json_t *
pl_fw_host_declared(const json_t *fw, const json_t *node)
{
	const json_t *named =
		json_object_get(json_object_get(fw, "nodes"), pl_json_str_or(node, "node", ""));

	if (strcmp(pl_json_str_or(node, "status", "online"), "online"))
		return NULL;
	return named ? named : json_object_get(fw, "host");
}

/* --- plan --- */

const char *
pl_fw_digest_of(const json_t *data)
{
	if (json_is_array(data))
		return pl_json_str_or(json_array_get(data, 0), "digest", "");
	return pl_json_str_or(data, "digest", "");
}

/* A value as PVE's parser sees it (true -> "1"); "" for none. */
char *
pl_fw_text_of(const json_t *v)
{
	char *t = v && !json_is_null(v) ? pl_api_value_text(v) : NULL;

	return t ? t : pl_strdup("");
}

static const char *
macro_name(const char *m)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(macros); i++)
		if (!strcasecmp(macros[i].name, m))
			return macros[i].name;
	return m;
}

/* A rule as the API's parameters, every value a string: a declared one
 * (yaml: type "in" and enable on by default), or a live one projected on the
 * same keys. enable is "1"/"0", log nolog none. */
json_t *
pl_fw_rule_of(const json_t *src, bool yaml)
{
	json_t *r = json_object();

	for (size_t i = 0; i < PL_FW_NRULE_KEYS; i++) {
		const char *k = pl_fw_rule_keys[i];
		char *t = pl_fw_text_of(
			json_object_get(src, yaml && !strcmp(k, "icmp-type") ? "icmp_type" : k));

		if (yaml && !strcmp(k, "type") && !*t) {
			free(t);
			t = pl_strdup("in");
		}
		if (!strcmp(k, "enable")) {
			bool on = yaml ? json_object_get(src, "enable") == NULL ||
						  json_is_true(json_object_get(src, "enable")) :
					 !strcmp(t, "1");

			free(t);
			t = pl_strdup(on ? "1" : "0");
		}
		if (!strcmp(k, "macro") && *t) {
			char *m = pl_strdup(macro_name(t));

			free(t);
			t = m;
		}
		if (!strcmp(k, "log") && !strcmp(t, "nolog"))
			*t = '\0';
		if (*t)
			json_object_set_new(r, k, json_string(t));
		free(t);
	}
	return r;
}

static bool
rule_same(const json_t *a, const json_t *b)
{
	for (size_t i = 0; i < PL_FW_NRULE_KEYS; i++)
		if (strcmp(pl_json_str_or(a, pl_fw_rule_keys[i], ""),
			   pl_json_str_or(b, pl_fw_rule_keys[i], "")))
			return false;
	return true;
}

/* A rule as a line of a PVE firewall file ("IN HTTPS(ACCEPT) -source +lan"). */
char *
pl_fw_rule_text(const json_t *r)
{
	static const char *const opts[][2] = { { "iface", "-i" },
					       { "source", "-source" },
					       { "dest", "-dest" },
					       { "proto", "-p" },
					       { "dport", "-dport" },
					       { "sport", "-sport" },
					       { "icmp-type", "-icmp-type" },
					       { "log", "-log" } };
	struct pl_buf b;
	char *type = pl_strdup(pl_json_str_or(r, "type", "in"));
	char *out;

	for (char *q = type; *q; q++)
		*q = (char)toupper((unsigned char)*q);
	pl_buf_init(&b, 0);
	if (strcmp(pl_json_str_or(r, "enable", "0"), "1"))
		pl_buf_addf(&b, "|");
	if (pl_json_str(r, "macro"))
		pl_buf_addf(&b, "%s %s(%s)", type, pl_json_str(r, "macro"),
			    pl_json_str_or(r, "action", ""));
	else
		pl_buf_addf(&b, "%s %s", type, pl_json_str_or(r, "action", ""));
	for (size_t i = 0; i < PL_ARRAY_LEN(opts); i++)
		if (pl_json_str(r, opts[i][0]))
			pl_buf_addf(&b, " %s %s", opts[i][1], pl_json_str(r, opts[i][0]));
	if (pl_json_str(r, "comment"))
		pl_buf_addf(&b, " # %s", pl_json_str(r, "comment"));
	out = pl_strdup(b.data ? b.data : "");
	pl_buf_release(&b);
	free(type);
	return out;
}

void
pl_fw_diff(struct pl_fwc *c, const char *key, const char *from, const char *to, const char *note)
{
	json_array_append_new(c->diffs, json_pack("{s:s,s:s?,s:s?,s:s,s:s?}", "key", key, "from",
						  from, "to", to, "class", "live", "note", note));
}

/* A call; list: the path whose digest it carries (read just before it). */
void
pl_fw_call(struct pl_fwc *c, const char *method, char *path, json_t *params, const char *list)
{
	json_array_append_new(c->calls,
			      json_pack("{s:s,s:s,s:o,s:s?}", "method", method, "path", path,
					"params", params ? params : json_object(), "list", list));
	free(path);
}

/* The digest the plan saw of a list apply checks before writing. */
void
pl_fw_saw(struct pl_fwc *c, const char *path, const json_t *live)
{
	if (live)
		json_object_set_new(c->digests, path, json_string(pl_fw_digest_of(live)));
}

static long
find_id(const long *cur, long n, long id)
{
	for (long i = 0; i < n; i++)
		if (cur[i] == id)
			return i;
	return -1;
}

void
pl_fw_rules_diff(struct pl_fwc *c, const char *path, const json_t *want_y, bool yaml,
		 const json_t *live_l, const char *what)
{
	long nw = (long)json_array_size(want_y), nl = (long)json_array_size(live_l), n = nl;
	json_t *want = json_array(), *live = json_array();
	long *wm = pl_calloc((size_t)nw + 1, sizeof(long)),
	     *cur = pl_calloc((size_t)(nl + nw) + 1, sizeof(long));
	long *cp = pl_calloc((size_t)nw + 1, sizeof(long)),
	     *len = pl_calloc((size_t)nw + 1, sizeof(long));
	long *prev = pl_calloc((size_t)nw + 1, sizeof(long));
	bool *lm = pl_calloc((size_t)nl + 1, 1), *exact = pl_calloc((size_t)nw + 1, 1);
	bool *lis = pl_calloc((size_t)nw + 1, 1);
	const long NEW = 1000000;
	char key[64];
	long d, l;

	for (d = 0; d < nw; d++)
		json_array_append_new(want, pl_fw_rule_of(json_array_get(want_y, (size_t)d), yaml));
	for (l = 0; l < nl; l++)
		json_array_append_new(live,
				      pl_fw_rule_of(json_array_get(live_l, (size_t)l), false));
	/* the same rule wherever it is; then the rest pair up in order (an update) */
	for (d = 0; d < nw; d++) {
		wm[d] = -1;
		for (l = 0; l < nl && wm[d] < 0; l++)
			if (!lm[l] && rule_same(json_array_get(want, (size_t)d),
						json_array_get(live, (size_t)l))) {
				wm[d] = l;
				lm[l] = exact[d] = true;
			}
	}
	for (d = 0, l = 0; d < nw; d++) {
		if (wm[d] >= 0)
			continue;
		while (l < nl && lm[l])
			l++;
		if (l < nl) {
			wm[d] = l;
			lm[l] = true;
		}
	}
	for (l = 0; l < nl; l++)
		cur[l] = l;
	/* deletes from the end: the positions before stay */
	for (l = nl - 1; l >= 0; l--) {
		long pos = find_id(cur, n, l);
		char *t;

		if (lm[l])
			continue;
		t = pl_fw_rule_text(json_array_get(live, (size_t)l));
		snprintf(key, sizeof(key), "%s%srule %ld", what, *what ? " " : "", l);
		pl_fw_diff(c, key, t, NULL, "removed");
		free(t);
		pl_fw_call(c, "DELETE", pl_asprintf("%s/%ld", path, pos), NULL, path);
		memmove(cur + pos, cur + pos + 1, (size_t)(n - pos - 1) * sizeof(long));
		n--;
	}
	/* updates in place */
	for (d = 0; d < nw; d++) {
		const json_t *w = json_array_get(want, (size_t)d), *h;
		json_t *params;
		struct pl_buf del;
		char *from, *to;

		if (wm[d] < 0 || exact[d])
			continue;
		h = json_array_get(live, (size_t)wm[d]);
		params = json_object();
		pl_buf_init(&del, 0);
		for (size_t i = 0; i < PL_FW_NRULE_KEYS; i++) {
			const char *k = pl_fw_rule_keys[i], *wv = pl_json_str(w, k),
				   *hv = pl_json_str(h, k);

			if (!strcmp(wv ? wv : "", hv ? hv : ""))
				continue;
			if (wv)
				json_object_set_new(params, k, json_string(wv));
			else
				pl_buf_addf(&del, "%s%s", del.len ? "," : "", k);
		}
		if (del.len)
			json_object_set_new(params, "delete", json_string(del.data));
		pl_buf_release(&del);
		from = pl_fw_rule_text(h);
		to = pl_fw_rule_text(w);
		snprintf(key, sizeof(key), "%s%srule %ld", what, *what ? " " : "", d);
		pl_fw_diff(c, key, from, to, "changed");
		free(from);
		free(to);
		pl_fw_call(c, "PUT", pl_asprintf("%s/%ld", path, find_id(cur, n, wm[d])), params,
			   path);
	}
	/* creates, last first: each lands at 0, so they come out in order */
	for (d = nw - 1; d >= 0; d--) {
		char *t;

		if (wm[d] >= 0)
			continue;
		t = pl_fw_rule_text(json_array_get(want, (size_t)d));
		snprintf(key, sizeof(key), "%s%srule %ld", what, *what ? " " : "", d);
		pl_fw_diff(c, key, NULL, t, "added");
		free(t);
		pl_fw_call(c, "POST", pl_strdup(path),
			   json_deep_copy(json_array_get(want, (size_t)d)), NULL);
		memmove(cur + 1, cur, (size_t)n * sizeof(long));
		cur[0] = NEW + d;
		n++;
	}
	/* moves: the longest run already in order stays, each other rule goes
	 * right before its successor (or last), from the end */
	for (d = 0; d < nw; d++) {
		cp[d] = find_id(cur, n, wm[d] >= 0 ? wm[d] : NEW + d);
		len[d] = 1;
		prev[d] = -1;
		for (long e = 0; e < d; e++)
			if (cp[e] < cp[d] && len[e] + 1 > len[d]) {
				len[d] = len[e] + 1;
				prev[d] = e;
			}
	}
	long best = -1;

	for (d = 0; d < nw; d++)
		if (best < 0 || len[d] > len[best])
			best = d;
	for (d = best; d >= 0; d = prev[d])
		lis[d] = true;
	for (d = nw - 1; d >= 0; d--) {
		long id = wm[d] >= 0 ? wm[d] : NEW + d, p = find_id(cur, n, id);
		long q = d + 1 < nw ? find_id(cur, n, wm[d + 1] >= 0 ? wm[d + 1] : NEW + d + 1) : n;
		long at;

		if (lis[d])
			continue;
		if (wm[d] >= 0) {
			char *t = pl_fw_rule_text(json_array_get(want, (size_t)d));

			snprintf(key, sizeof(key), "%s%srule %ld", what, *what ? " " : "", d);
			pl_fw_diff(c, key, t, t, "moved");
			free(t);
		}
		pl_fw_call(c, "PUT", pl_asprintf("%s/%ld", path, p),
			   json_pack("{s:I}", "moveto", (json_int_t)q), path);
		/* update_rule: it lands before the rule now at q (past the end: last) */
		memmove(cur + p, cur + p + 1, (size_t)(n - p - 1) * sizeof(long));
		at = q > p ? q - 1 : q;
		memmove(cur + at + 1, cur + at, (size_t)(n - 1 - at) * sizeof(long));
		cur[at] = id;
	}
	json_decref(want);
	json_decref(live);
	free(wm);
	free(cur);
	free(cp);
	free(len);
	free(prev);
	free(lm);
	free(exact);
	free(lis);
}

/* Defaults of options PVE leaves out of a file (pve-firewall
 * $cluster_option_properties, $host_option_properties, $vm_option_properties,
 * and the ruleset's policy fallbacks). */
static const char *
option_default(const char *scope, const char *k)
{
	static const char *const d[][3] = {
		{ "cluster", "enable", "0" },
		{ "cluster", "ebtables", "1" },
		{ "cluster", "policy_in", "DROP" },
		{ "cluster", "policy_out", "ACCEPT" },
		{ "node", "enable", "1" },
		{ "guest", "enable", "0" },
		{ "guest", "macfilter", "1" },
		{ "guest", "dhcp", "0" },
		{ "guest", "ndp", "1" },
		{ "guest", "radv", "0" },
		{ "guest", "ipfilter", "0" },
		{ "guest", "policy_in", "DROP" },
		{ "guest", "policy_out", "ACCEPT" },
		{ "guest", "log_level_in", "nolog" },
		{ "guest", "log_level_out", "nolog" },
	};

	for (size_t i = 0; i < PL_ARRAY_LEN(d); i++)
		if (!strcmp(d[i][0], scope) && !strcmp(d[i][1], k))
			return d[i][2];
	return "";
}

/* Only the declared options are managed. */
static void
options_diff(struct pl_fwc *c, const char *path, const char *scope, const json_t *want,
	     const json_t *live)
{
	json_t *set = json_object();
	const char *k;
	json_t *v;
	char key[64];

	pl_fw_saw(c, path, live);
	json_object_foreach((json_t *)want, k, v) {
		char *w = pl_fw_text_of(v), *h = pl_fw_text_of(json_object_get(live, k));

		if (!*h) {
			free(h);
			h = pl_strdup(option_default(scope, k));
		}
		if (strcmp(w, h)) {
			snprintf(key, sizeof(key), "option %s", k);
			pl_fw_diff(c, key, *h ? h : NULL, w, NULL);
			json_object_set_new(set, k, json_string(w));
		}
		free(w);
		free(h);
	}
	if (json_object_size(set))
		pl_fw_call(c, "PUT", pl_strdup(path), set, path);
	else
		json_decref(set);
}

static void
aliases_diff(struct pl_fwc *c, const json_t *fwlive, const json_t *want)
{
	const char *path = "/cluster/firewall/aliases", *k;
	const json_t *live = json_object_get(fwlive, path), *l;
	json_t *v;
	char key[160];

	pl_fw_saw(c, path, live);
	json_object_foreach((json_t *)want, k, v) {
		const char *cidr = pl_json_str_or(v, "cidr", ""), *cm = pl_json_str(v, "comment");

		l = pl_json_find(live, "name", k, true);
		snprintf(key, sizeof(key), "alias %s", k);
		if (l == NULL) {
			pl_fw_diff(c, key, NULL, cidr, "added");
			pl_fw_call(
				c, "POST", pl_strdup(path),
				json_pack("{s:s,s:s,s:s?}", "name", k, "cidr", cidr, "comment", cm),
				NULL);
		} else if (strcmp(pl_json_str_or(l, "cidr", ""), cidr) ||
			   (cm && strcmp(pl_json_str_or(l, "comment", ""), cm))) {
			pl_fw_diff(c, key, pl_json_str(l, "cidr"), cidr, "changed");
			/* Aliases.pm update_alias drops a comment not sent again */
			pl_fw_call(c, "PUT",
				   pl_asprintf("%s/%s", path, pl_json_str_or(l, "name", k)),
				   json_pack("{s:s,s:s?}", "cidr", cidr, "comment",
					     cm ? cm : pl_json_str(l, "comment")),
				   path);
		}
	}
}

/* A group's or an IP set's own entry: create it, or set its comment. */
static void
section_diff(struct pl_fwc *c, const char *list_path, const char *idkey, const char *name,
	     const json_t *want, const json_t *live_list, const char *what)
{
	const json_t *l = pl_json_find(live_list, idkey, name, true);
	const char *cm = pl_json_str(want, "comment");
	char key[160];

	snprintf(key, sizeof(key), "%s %s", what, name);
	if (l == NULL) {
		pl_fw_diff(c, key, NULL, cm ? cm : "", "added");
		pl_fw_call(c, "POST", pl_strdup(list_path),
			   json_pack("{s:s,s:s?}", idkey, name, "comment", cm), NULL);
	} else if (cm && strcmp(pl_json_str_or(l, "comment", ""), cm)) {
		pl_fw_diff(c, key, pl_json_str(l, "comment"), cm, "comment");
		pl_fw_call(c, "POST", pl_strdup(list_path),
			   json_pack("{s:s,s:s,s:s}", idkey, name, "rename", name, "comment", cm),
			   list_path);
	}
}

/* An IP set's entries: "CIDR" or "!CIDR" (nomatch). */
static void
ipset_diff(struct pl_fwc *c, const char *name, const json_t *want, const json_t *live)
{
	char *path = pl_asprintf("/cluster/firewall/ipset/%s", name);
	json_t *seen = json_object();
	const json_t *e;
	char key[200];
	size_t i;

	pl_fw_saw(c, path, live);
	json_array_foreach(json_object_get(want, "entries"), i, e) {
		char *t = pl_fw_text_of(e);
		bool nomatch = t[0] == '!';
		const char *cidr = t + nomatch;
		const json_t *l = pl_json_find(live, "cidr", cidr, true);
		char *enc = pl_str_url_encode(cidr);

		json_object_set_new(seen, cidr, json_true());
		snprintf(key, sizeof(key), "ipset %s entry", name);
		if (l == NULL) {
			pl_fw_diff(c, key, NULL, t, "added");
			pl_fw_call(c, "POST", pl_strdup(path),
				   json_pack("{s:s,s:i}", "cidr", cidr, "nomatch", nomatch), NULL);
		} else if ((pl_json_int(l, "nomatch", 0) != 0) != nomatch) {
			pl_fw_diff(c, key, nomatch ? cidr : t, t, "changed");
			pl_fw_call(c, "PUT", pl_asprintf("%s/%s", path, enc),
				   json_pack("{s:i}", "nomatch", nomatch), path);
		}
		free(enc);
		free(t);
	}
	json_array_foreach(live, i, e) {
		const char *cidr = pl_json_str_or(e, "cidr", "");
		char *enc;

		if (json_object_get(seen, cidr))
			continue;
		enc = pl_str_url_encode(cidr);
		snprintf(key, sizeof(key), "ipset %s entry", name);
		pl_fw_diff(c, key, cidr, NULL, "removed");
		pl_fw_call(c, "DELETE", pl_asprintf("%s/%s", path, enc), NULL, path);
		free(enc);
	}
	json_decref(seen);
	free(path);
}

struct pl_fwc
pl_fw_change_new(const char *scope, const char *guest, const char *what)
{
	struct pl_fwc c = { .diffs = json_array(),
			    .calls = json_array(),
			    .digests = json_object() };

	c.ch = json_pack("{s:s,s:s,s:s,s:s,s:s}", "action", "firewall", "scope", scope, "guest",
			 guest, "what", what, "class", "live");
	return c;
}

void
pl_fw_change_end(struct pl_fwc *c, json_t *changes)
{
	if (json_array_size(c->calls) == 0) {
		json_decref(c->ch);
		json_decref(c->diffs);
		json_decref(c->calls);
		json_decref(c->digests);
		return;
	}
	json_object_set_new(c->ch, "diffs", c->diffs);
	json_object_set_new(c->ch, "calls", c->calls);
	json_object_set_new(c->ch, "digests", c->digests);
	json_array_append_new(changes, c->ch);
}

/* The datacenter's declared firewall; sets_only: its aliases, IP sets and
 * groups alone (what a profile's guests' rules may name). */
static void
plan_cluster(const json_t *fw, const json_t *live, bool sets_only, json_t *changes)
{
	struct pl_fwc c = pl_fw_change_new("cluster", "cluster", "datacenter");
	const char *k;
	json_t *v;

	if (json_object_get(fw, "aliases"))
		aliases_diff(&c, live, json_object_get(fw, "aliases"));
	pl_fw_saw(&c, "/cluster/firewall/ipset", json_object_get(live, "/cluster/firewall/ipset"));
	json_object_foreach((json_t *)json_object_get(fw, "ipsets"), k, v) {
		char *p = pl_asprintf("/cluster/firewall/ipset/%s", k);

		section_diff(&c, "/cluster/firewall/ipset", "name", k, v,
			     json_object_get(live, "/cluster/firewall/ipset"), "ipset");
		ipset_diff(&c, k, v, json_object_get(live, p));
		free(p);
	}
	pl_fw_saw(&c, "/cluster/firewall/groups",
		  json_object_get(live, "/cluster/firewall/groups"));
	json_object_foreach((json_t *)json_object_get(fw, "groups"), k, v) {
		char *p = pl_asprintf("/cluster/firewall/groups/%s", k),
		     *what = pl_asprintf("group %s", k);

		section_diff(&c, "/cluster/firewall/groups", "group", k, v,
			     json_object_get(live, "/cluster/firewall/groups"), "group");
		pl_fw_saw(&c, p, json_object_get(live, p));
		pl_fw_rules_diff(&c, p, json_object_get(v, "rules"), true, json_object_get(live, p),
				 what);
		free(p);
		free(what);
	}
	if (json_object_get(fw, "rules") && !sets_only) {
		pl_fw_saw(&c, "/cluster/firewall/rules",
			  json_object_get(live, "/cluster/firewall/rules"));
		pl_fw_rules_diff(&c, "/cluster/firewall/rules", json_object_get(fw, "rules"), true,
				 json_object_get(live, "/cluster/firewall/rules"), "cluster");
	}
	/* options last: enabling a DROP policy before the rules that let the
	 * traffic in would cut it */
	if (json_object_get(fw, "options") && !sets_only)
		options_diff(&c, "/cluster/firewall/options", "cluster",
			     json_object_get(fw, "options"),
			     json_object_get(live, "/cluster/firewall/options"));
	pl_fw_change_end(&c, changes);
}

/* Rules, then options, of one node or guest at base. */
static void
plan_scope(struct pl_fwc *c, const char *base, const char *scope, const json_t *decl,
	   const json_t *live, const char *what)
{
	char *p = pl_asprintf("%s/rules", base);

	if (json_object_get(decl, "rules")) {
		pl_fw_saw(c, p, json_object_get(live, p));
		pl_fw_rules_diff(c, p, json_object_get(decl, "rules"), true,
				 json_object_get(live, p), what);
	}
	free(p);
	p = pl_asprintf("%s/options", base);
	if (json_object_get(decl, "options"))
		options_diff(c, p, scope, json_object_get(decl, "options"),
			     json_object_get(live, p));
	free(p);
}

/* The paths of a change's calls and digests under from, under to instead. */
static void
rebase(struct pl_fwc *c, const char *from, const char *to)
{
	size_t n = strlen(from), i;
	json_t *digests = json_object(), *call, *v;
	const char *k;

	json_array_foreach(c->calls, i, call) {
		for (int f = 0; f < 2; f++) {
			const char *key = f ? "list" : "path", *p = pl_json_str(call, key);

			if (p && !strncmp(p, from, n)) {
				char *q = pl_asprintf("%s%s", to, p + n);

				json_object_set_new(call, key, json_string(q));
				free(q);
			}
		}
	}
	json_object_foreach(c->digests, k, v) {
		char *q = !strncmp(k, from, n) ? pl_asprintf("%s%s", to, k + n) : pl_strdup(k);

		json_object_set(digests, q, v);
		free(q);
	}
	json_decref(c->digests);
	c->digests = digests;
}

json_t *
pl_fw_change_for_vmid(const json_t *change, long long vmid)
{
	const char *node = pl_json_str_or(change, "node", ""),
		   *type = pl_json_str_or(change, "type", "qemu");
	char *from = pl_asprintf("/nodes/%s/%s/0/firewall", node, type),
	     *to = pl_asprintf("/nodes/%s/%s/%lld/firewall", node, type, vmid);
	json_t *ch = json_deep_copy(change);
	struct pl_fwc c = { .ch = ch,
			    .calls = json_object_get(ch, "calls"),
			    .digests = json_incref(json_object_get(ch, "digests")) };

	rebase(&c, from, to);
	json_object_set_new(ch, "digests", c.digests);
	json_object_set_new(ch, "vmid", json_integer(vmid));
	json_object_set_new(ch, "what", json_sprintf("%s %lld on %s", type, vmid, node));
	json_object_del(ch, "vmid_at_apply");
	free(from);
	free(to);
	return ch;
}

static bool
is_blocked(const json_t *blocked, const char *name)
{
	const json_t *b;
	size_t i;

	json_array_foreach(blocked, i, b)
		if (!strcmp(pl_json_str_or(b, "guest", ""), name))
			return true;
	return false;
}

void
pl_fw_plan(const struct pl_config *cfg, const json_t *snap, const json_t *only, json_t *changes,
	   json_t *blocked)
{
	const json_t *fw = pl_config_get(cfg, "/firewall"),
		     *live = json_object_get(snap, "firewall");
	const json_t *g, *ch;
	const char *k;
	json_t *v;
	bool guest_fw = false;
	size_t i, j;

	json_array_foreach(pl_config_guests(cfg), i, g)
		guest_fw |= json_is_object(json_object_get(g, "firewall")) &&
			    (!only || json_object_get(only, pl_json_str_or(g, "name", "")));
	if (json_is_object(fw) && (!only || guest_fw))
		plan_cluster(fw, live, only != NULL, changes);
	json_object_foreach(only ? NULL : (json_t *)json_object_get(fw, "nodes"), k, v) {
		bool there = false;

		json_array_foreach(json_object_get(snap, PL_SNAP_NODES), j, g)
			there |= !strcmp(pl_json_str_or(g, "node", ""), k) &&
				 !strcmp(pl_json_str_or(g, "status", "online"), "online");
		if (!there) {
			char *who = pl_asprintf("firewall of node %s", k);

			json_array_append_new(
				blocked,
				json_pack("{s:s,s:s}", "guest", who, "reason",
					  "no such online node in the cluster (fix firewall.nodes, "
					  "or use firewall.host for every node)"));
			free(who);
		}
	}
	json_array_foreach(json_object_get(snap, PL_SNAP_NODES), j, g) {
		const char *node = pl_json_str_or(g, "node", "");
		const json_t *decl = pl_fw_host_declared(fw, g);
		char *base, *what;
		struct pl_fwc c;

		if (decl == NULL || only)
			continue;
		base = pl_asprintf("/nodes/%s/firewall", node);
		what = pl_asprintf("node %s", node);
		c = pl_fw_change_new("node", node, what);
		json_object_set_new(c.ch, "node", json_string(node));
		plan_scope(&c, base, "node", decl, live, what);
		pl_fw_change_end(&c, changes);
		free(base);
		free(what);
	}
	json_array_foreach(pl_config_guests(cfg), i, g) {
		const char *name = pl_json_str_or(g, "name", "");
		const json_t *decl = json_object_get(g, "firewall"), *l, *made = NULL;
		const char *node, *type, *moves = NULL;
		long long vmid;
		char *base, *what;
		struct pl_fwc c;

		if (!json_is_object(decl) || is_blocked(blocked, name) ||
		    (only && !json_object_get(only, name)))
			continue;
		/* a guest this plan makes (or makes anew) has an empty firewall */
		json_array_foreach(changes, j, ch)
			if (!strcmp(pl_json_str_or(ch, "guest", ""), name) &&
			    (!strcmp(pl_json_str_or(ch, "action", ""), "create") ||
			     !strcmp(pl_json_str_or(ch, "action", ""), "replace")))
				made = ch;
			else if (!strcmp(pl_json_str_or(ch, "guest", ""), name) &&
				 pl_json_str(ch, "migrate_to"))
				moves = pl_json_str(ch, "migrate_to");
		l = made ? made : pl_fw_live_guest(snap, g, pl_config_project(cfg));
		if (l == NULL)
			continue;
		node = pl_json_str_or(l, "node", "");
		type = pl_json_str_or(l, "type", "qemu");
		vmid = pl_json_int(l, "vmid", 0);
		base = pl_asprintf("/nodes/%s/%s/%lld/firewall", node, type, vmid);
		what = vmid ? pl_asprintf("%s %lld on %s", type, vmid, node) :
			      pl_asprintf("%s on %s, vmid at apply", type, node);
		c = pl_fw_change_new("guest", name, what);
		json_object_set_new(c.ch, "node", json_string(node));
		json_object_set_new(c.ch, "type", json_string(type));
		json_object_set_new(c.ch, "vmid", json_integer(vmid));
		if (made && json_is_true(json_object_get(made, "vmid_at_apply")))
			json_object_set_new(c.ch, "vmid_at_apply", json_true());
		plan_scope(&c, base, "guest", decl, made ? NULL : live, "");
		if (made) /* nothing to compare with: its lists do not exist yet */
			json_object_clear(c.digests);
		if (moves) { /* its update moves it first; the file is the cluster's */
			char *to = pl_asprintf("/nodes/%s/%s/%lld/firewall", moves, type, vmid);

			rebase(&c, base, to);
			json_object_set_new(c.ch, "node", json_string(moves));
			free(to);
		}
		pl_fw_change_end(&c, changes);
		free(base);
		free(what);
	}
}
