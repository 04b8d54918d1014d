/*
 * A unified line diff for `pvelab host plan`: what each file edit changes,
 * as `diff -u` shows it. Files here are small (a few hundred lines), so a
 * plain longest-common-subsequence table is enough; beyond a cap the whole
 * file is shown replaced.
 */
#include "core/common.h"
#include "host/host.h"
#include "core/buf.h"
#include "core/err.h"

#define CONTEXT 3
#define TABLE_MAX ((size_t)4 << 20) /* cells of the LCS table */

struct lines {
	char **v;
	size_t n;
	char *store;
};

static void
split(const char *text, struct lines *l)
{
	size_t cap = 16;

	l->store = pl_strdup(text ? text : "");
	l->v = pl_calloc(cap, sizeof(*l->v));
	l->n = 0;
	for (char *p = l->store, *nl; *p; p = nl) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		else
			nl = p + strlen(p);
		if (l->n == cap)
			l->v = pl_realloc(l->v, (cap *= 2) * sizeof(*l->v));
		l->v[l->n++] = p;
	}
}

/* One step of the edit script: ' ' same, '-' removed, '+' added. */
struct op {
	char kind;
	const char *line;
	size_t a, b; /* line numbers (0-based) in before and after */
};

static void
hunk(struct pl_buf *out, const struct op *ops, size_t from, size_t to)
{
	size_t na = 0, nb = 0, a0 = ops[from].a, b0 = ops[from].b;

	for (size_t i = from; i < to; i++) {
		na += ops[i].kind != '+';
		nb += ops[i].kind != '-';
	}
	pl_buf_addf(out, "@@ -%zu,%zu +%zu,%zu @@\n", na ? a0 + 1 : a0, na, nb ? b0 + 1 : b0, nb);
	for (size_t i = from; i < to; i++)
		pl_buf_addf(out, "%c%s\n", ops[i].kind, ops[i].line);
}

char *
pl_host_diff(const char *path, const char *before, const char *after)
{
	struct lines a, b;
	struct pl_buf out;
	struct op *ops;
	size_t nops = 0, i, j;
	unsigned *t = NULL;

	split(before, &a);
	split(after, &b);
	pl_buf_init(&out, 0);
	pl_buf_addf(&out, "--- %s\n+++ %s\n", before ? path : "/dev/null", path);
	ops = pl_calloc(a.n + b.n + 1, sizeof(*ops));
	if ((a.n + 1) * (b.n + 1) <= TABLE_MAX) {
		size_t w = b.n + 1;

		t = pl_calloc((a.n + 1) * w, sizeof(*t));
		for (i = a.n; i-- > 0;)
			for (j = b.n; j-- > 0;)
				t[i * w + j] = !strcmp(a.v[i], b.v[j]) ?
						       t[(i + 1) * w + j + 1] + 1 :
						       (t[(i + 1) * w + j] > t[i * w + j + 1] ?
								t[(i + 1) * w + j] :
								t[i * w + j + 1]);
		for (i = j = 0; i < a.n || j < b.n;) {
			if (i < a.n && j < b.n && !strcmp(a.v[i], b.v[j])) {
				ops[nops++] = (struct op){ ' ', a.v[i], i, j };
				i++, j++;
			} else if (i < a.n &&
				   (j == b.n || t[(i + 1) * w + j] >= t[i * w + j + 1])) {
				ops[nops++] = (struct op){ '-', a.v[i], i, j };
				i++;
			} else {
				ops[nops++] = (struct op){ '+', b.v[j], i, j };
				j++;
			}
		}
	} else {
		for (i = 0; i < a.n; i++)
			ops[nops++] = (struct op){ '-', a.v[i], i, 0 };
		for (j = 0; j < b.n; j++)
			ops[nops++] = (struct op){ '+', b.v[j], a.n, j };
	}
	/* Group changes with CONTEXT lines around them into hunks. */
	for (i = 0; i < nops;) {
		size_t start, end, k;

		while (i < nops && ops[i].kind == ' ')
			i++;
		if (i == nops)
			break;
		start = i > CONTEXT ? i - CONTEXT : 0;
		end = i;
		for (k = i; k < nops; k++) {
			if (ops[k].kind != ' ')
				end = k + 1;
			else if (k - end >= 2 * CONTEXT)
				break;
		}
		end = end + CONTEXT < nops ? end + CONTEXT : nops;
		hunk(&out, ops, start, end);
		i = end;
	}
	free(t);
	free(ops);
	free(a.v), free(a.store), free(b.v), free(b.store);
	return pl_buf_detach(&out, NULL);
}
