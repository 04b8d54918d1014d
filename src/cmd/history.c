/*
 * `pvelab history GUEST`: every recorded state of a guest, each shown as the
 * difference from the one before (config keys and durable status).
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "cmd/views.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "plan/firewall.h"
#include "state/state.h"

#include <limits.h>
#include <time.h>

static const struct pl_opt opts[] = {
	{ "live", 'l', NULL, "sync from the cluster first" },
	{ NULL, 0, NULL, NULL },
};

/* "config.memory" -> value, "status" -> value: one level of nesting. */
static json_t *
flatten(const json_t *state)
{
	json_t *f = json_object();
	const char *k, *k2;
	json_t *v, *v2;

	json_object_foreach((json_t *)state, k, v) {
		if (json_is_object(v)) {
			json_object_foreach(v, k2, v2) {
				char *key = pl_asprintf("%s.%s", k, k2);

				json_object_set(f, key, v2);
				free(key);
			}
		} else {
			json_object_set(f, k, v);
		}
	}
	return f;
}

static char *
text(const json_t *v)
{
	if (json_is_string(v))
		return pl_strdup(json_string_value(v));
	return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* [{key, old, new}] between two states, sorted by key. */
static json_t *
diff(const json_t *a, const json_t *b)
{
	json_t *fa = flatten(a), *fb = flatten(b), *out = json_array(), *keys = json_object();
	const char *k;
	json_t *v;
	const char **sorted;
	size_t n = 0;

	json_object_foreach(fa, k, v)
		json_object_set_new(keys, k, json_true());
	json_object_foreach(fb, k, v)
		json_object_set_new(keys, k, json_true());
	sorted = pl_calloc(json_object_size(keys) + 1, sizeof(*sorted));
	json_object_foreach(keys, k, v)
		sorted[n++] = k;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
			const char *t = sorted[j];

			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_object_get(fa, sorted[i]), *y = json_object_get(fb, sorted[i]);

		if (!strcmp(sorted[i], "config.digest"))
			continue; /* follows every config change; says nothing by itself */
		if (x && y && json_equal(x, y))
			continue;
		json_array_append_new(out, json_pack("{s:s,s:O?,s:O?}", "key", sorted[i], "old", x,
						     "new", y));
	}
	free(sorted);
	json_decref(keys);
	json_decref(fa);
	json_decref(fb);
	return out;
}

int
pl_view_history(struct pl_state *st, const char *guest, json_t **out, char **errmsg)
{
	json_t *guests = NULL, *hist = NULL, *h;
	const json_t *g, *prev = NULL;
	long long vmid = -1;
	char *err = NULL;
	size_t i;
	int r;

	*out = NULL;
	if ((r = pl_state_guest_names(st, &guests, errmsg)) != 0)
		return r;
	/* storage:ID, backup-job:ID, pool:ID, firewall:... (their rows have no
	 * vmid); firewall:GUEST is the firewall of a guest named or numbered */
	if (strchr(guest, ':')) {
		char *key = NULL;

		if (pl_str_startswith(guest, "firewall:") &&
		    (g = pl_guest_lookup(guests, guest + 9, NULL)) != NULL)
			key = pl_asprintf("firewall:guest:%lld", pl_json_int(g, "vmid", 0));
		r = pl_state_history_key(st, key ? key : guest, &hist, errmsg);
		free(key);
		if (r != 0)
			goto out;
		goto got;
	}
	if ((g = pl_guest_lookup(guests, guest, &err)) != NULL) {
		vmid = pl_json_int(g, "vmid", -1);
	} else if (pl_str_to_ll(guest, 1, 999999999, &vmid) != 0) {
		/* a guest deleted since: its name is in its history */
		json_t *ids = NULL;

		if (pl_state_history_vmids(st, guest, &ids, NULL) != 0 ||
		    json_array_size(ids) != 1) {
			if (json_array_size(ids) > 1) {
				struct pl_buf list;
				size_t k;
				json_t *id;

				pl_buf_init(&list, 0);
				json_array_foreach(ids, k, id)
					pl_buf_addf(&list, "%s%lld", k ? ", " : "",
						    (long long)json_integer_value(id));
				r = pl_seterr(errmsg, PL_ECONFLICT,
					      "%zu guests were named '%s' "
					      "(vmids %s): name one by vmid",
					      json_array_size(ids), guest, list.data);
				pl_buf_release(&list);
			} else {
				r = pl_seterr(errmsg, PL_ENOENT, "%s", err);
			}
			json_decref(ids);
			goto out;
		}
		vmid = json_integer_value(json_array_get(ids, 0));
		json_decref(ids);
	}
	if ((r = pl_state_history(st, vmid, &hist, errmsg)) != 0)
		goto out;
got:
	if (json_array_size(hist) == 0) {
		r = pl_seterr(errmsg, PL_ENOENT,
			      "no history for guest '%s' (pvelab list shows the "
			      "known guests)",
			      guest);
		goto out;
	}
	*out = json_array();
	json_array_foreach(hist, i, h) {
		const json_t *hs = json_object_get(h, "state");
		json_t *empty = json_object();
		json_t *d = pl_str_startswith(guest, "firewall:") ?
				    pl_fw_state_diff(prev ? prev : empty, hs) :
				    diff(prev ? prev : empty, hs);
		json_t *e = json_pack("{s:I,s:s?,s:s?,s:O?,s:f,s:o,s:O}", "id",
				      (json_int_t)pl_json_int(h, "id", 0), "kind",
				      pl_json_str(h, "kind"), "sha256", pl_json_str(h, "sha256"),
				      "run", json_object_get(h, "run"), "ts",
				      pl_json_num(h, "ts", 0), "changes", d, "state", hs);

		json_decref(empty);
		json_array_append_new(*out, e);
		prev = hs;
	}
out:
	free(err);
	json_decref(hist);
	json_decref(guests);
	return r;
}

/* The changes of a history row from the one before of the same key. */
static json_t *
row_changes(const char *key, const json_t *prev, const json_t *state)
{
	json_t *empty = json_object(), *d;

	if (prev == NULL || json_is_null(prev))
		prev = empty;
	d = pl_str_startswith(key, "firewall:") ? pl_fw_state_diff(prev, state) : diff(prev, state);
	json_decref(empty);
	return d;
}

int
pl_view_timeline(struct pl_state *st, const struct pl_view_timeline *q, json_t **out,
		 const char **field, char **errmsg)
{
	static const char *const kinds[] = { "discovered", "created", "updated", "deleted" };
	struct pl_state_history_filter f = { .node = q->node, .kind = q->kind };
	json_t *rows = NULL, *names = NULL, *row;
	long long n;
	size_t i;
	int r;

	*out = NULL;
	*field = NULL;
	f.limit = 50;
	if (q->limit) {
		if (pl_str_to_ll(q->limit, 1, 500, &n) != 0)
			goto bad_limit;
		f.limit = (int)n;
	}
	if (q->before && pl_str_to_ll(q->before, 1, LLONG_MAX, &f.before) != 0) {
		*field = "before";
		return pl_seterr(errmsg, PL_EINVAL, "before is a history row id, not '%.32s'",
				 q->before);
	}
	if (q->since) {
		char *end = NULL;

		f.since = strtod(q->since, &end);
		if (end == q->since || *end || !(f.since >= 0 && f.since < 1e11)) {
			*field = "since";
			return pl_seterr(errmsg, PL_EINVAL,
					 "since is a time in Unix seconds, not '%.32s'", q->since);
		}
	}
	if (q->kind) {
		for (i = 0; i < PL_ARRAY_LEN(kinds) && strcmp(kinds[i], q->kind); i++)
			;
		if (i == PL_ARRAY_LEN(kinds)) {
			*field = "kind";
			return pl_seterr(errmsg, PL_EINVAL,
					 "kind is discovered, created, updated or deleted, not "
					 "'%.32s'",
					 q->kind);
		}
	}
	if (q->guest && strchr(q->guest, ':')) {
		f.key = q->guest; /* storage:ID, pool:ID, firewall:... */
	} else if (q->guest) {
		const json_t *g;
		json_t *ids = NULL;

		if ((r = pl_state_guest_names(st, &names, errmsg)) != 0)
			return r;
		if ((g = pl_guest_lookup(names, q->guest, NULL)) != NULL) {
			f.vmid = pl_json_int(g, "vmid", 0);
		} else if (pl_str_to_ll(q->guest, 1, 999999999, &f.vmid) != 0) {
			/* a guest deleted since: its name is in its history */
			if (pl_state_history_vmids(st, q->guest, &ids, NULL) == 0 &&
			    json_array_size(ids) == 1)
				f.vmid = json_integer_value(json_array_get(ids, 0));
			json_decref(ids);
		}
		json_decref(names);
		if (f.vmid == 0) {
			*field = "guest";
			return pl_seterr(errmsg, PL_ENOENT, "no history for guest '%.64s'",
					 q->guest);
		}
	}
	if ((r = pl_state_history_page(st, &f, &rows, errmsg)) != 0)
		return r;
	*out = json_pack("{s:[],s:n}", "items", "next");
	json_array_foreach(rows, i, row) {
		const json_t *state = json_object_get(row, "state");
		const char *key = pl_json_str_or(row, "guest", "");
		const json_t *cfg = json_object_get(state, "config");

		json_array_append_new(
			json_object_get(*out, "items"),
			json_pack("{s:O,s:s,s:O,s:s?,s:s?,s:s?,s:O,s:O,s:O,s:O,s:o}", "id",
				  json_object_get(row, "id"), "guest", key, "vmid",
				  json_object_get(row, "vmid"), "name",
				  pl_json_str_or(state, "name", pl_json_str(cfg, "hostname")),
				  "node", pl_json_str(state, "node"), "type",
				  json_is_integer(json_object_get(row, "vmid")) ?
					  pl_json_str(state, "type") :
					  NULL,
				  "kind", json_object_get(row, "kind"), "sha256",
				  json_object_get(row, "sha256"), "run",
				  json_object_get(row, "run"), "ts", json_object_get(row, "ts"),
				  "changes",
				  row_changes(key, json_object_get(row, "prev"), state)));
	}
	if (json_array_size(rows) == (size_t)f.limit)
		json_object_set(*out, "next",
				json_object_get(json_array_get(rows, f.limit - 1), "id"));
	json_decref(rows);
	return 0;
bad_limit:
	*field = "limit";
	return pl_seterr(errmsg, PL_EINVAL, "limit is a number from 1 to 500, not '%.32s'",
			 q->limit);
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s = { 0 };
	struct pl_ctx one;
	struct pl_args a;
	char *cl = NULL;
	json_t *out = NULL, *h;
	bool live = false;
	char *err = NULL;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_history, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	live = pl_args_has(&a, 0);
	/* several clusters: in the one that has it (one: the options after
	 * the command included) */
	one = *ctx;
	if (pl_cmd_guest_cluster(&one, a.pos[0], &cl, &err) != 0 ||
	    pl_session_read(&s, &one, live, &err) != 0 ||
	    pl_view_history(s.state, a.pos[0], &out, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	if (ctx->output == PL_OUT_JSON) {
		pl_print_json(out);
		out = NULL;
	} else {
		json_array_foreach(out, i, h) {
			time_t t = (time_t)pl_json_num(h, "ts", 0);
			const char *kind = pl_json_str_or(h, "kind", "?");
			char when[64];
			size_t j;
			json_t *c;

			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
			printf("%s%s  %-10s%s sha256:%.12s  run %lld\n", pl_color(ctx, PL_C_BOLD), when,
			       kind, pl_color(ctx, PL_C_RESET), pl_json_str_or(h, "sha256", ""),
			       pl_json_int(h, "run", 0));
			/* a guest's summary line; storage:ID, pool:ID, firewall:… rows
			 * have no type, node or status (a guest name has no ':') */
			if ((!strcmp(kind, "discovered") || !strcmp(kind, "created") ||
			     !strcmp(kind, "deleted")) &&
			    strchr(a.pos[0], ':') == NULL) {
				const json_t *st = json_object_get(h, "state");

				printf("    %s %s on %s, %s\n", pl_json_str_or(st, "type", "?"),
				       pl_json_str_or(st, "name", "-"), pl_json_str_or(st, "node", "?"),
				       pl_json_str_or(st, "status", "?"));
				if (i == 0 || strcmp(kind, "deleted") == 0)
					continue;
			}
			json_array_foreach(json_object_get(h, "changes"), j, c) {
				const json_t *o = json_object_get(c, "old"), *n = json_object_get(c, "new");
				char *ot, *nt;

				o = json_is_null(o) ? NULL : o; /* null: the key was not there */
				n = json_is_null(n) ? NULL : n;
				ot = o ? text(o) : NULL;
				nt = n ? text(n) : NULL;

				if (o && n)
					printf("    %s~ %s: %s -> %s%s\n", pl_color(ctx, PL_C_YELLOW),
					       pl_json_str(c, "key"), ot, nt, pl_color(ctx, PL_C_RESET));
				else if (n)
					printf("    %s+ %s: %s%s\n", pl_color(ctx, PL_C_GREEN),
					       pl_json_str(c, "key"), nt, pl_color(ctx, PL_C_RESET));
				else
					printf("    %s- %s: %s%s\n", pl_color(ctx, PL_C_RED),
					       pl_json_str(c, "key"), ot, pl_color(ctx, PL_C_RESET));
				free(ot);
				free(nt);
			}
		}
	}
	rc = PL_EXIT_OK;
out:
	json_decref(out);
	free(err);
	pl_session_close(&s);
	free(cl);
	return rc;
}

const struct pl_cmd pl_cmd_history = {
	.name = "history",
	.summary = "show what changed on a guest, sync by sync",
	.usage = "[--live] GUEST",
	.help = "GUEST is a vmid or a name. Each recorded state is shown as the difference\n"
		"from the one before; -o json adds the full states. storage:ID, backup-job:ID,\n"
		"pool:ID and pci-mapping:ID show a storage's, backup job's, pool's or PCI\n"
		"mapping's history;\n"
		"firewall:cluster, firewall:node:NODE and firewall:GUEST the firewall's, as\n"
		"each apply or rollback found and left it (rules with their position).",
	.opts = opts,
	.min_args = 1,
	.max_args = 1,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
