/*
 * Located diagnostics (see diag.h).
 */
#include "core/common.h"
#include "core/diag.h"
#include "core/buf.h"
#include "core/err.h"

void
pl_diags_init(struct pl_diags *d)
{
	memset(d, 0, sizeof(*d));
}

void
pl_diags_release(struct pl_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->items[i].file);
		free(d->items[i].key);
		free(d->items[i].msg);
	}
	free(d->items);
	pl_diags_init(d);
}

void
pl_diags_add(struct pl_diags *d, enum pl_diag_level level, const char *file, int line, int col,
	     const char *key, const char *fmt, ...)
{
	struct pl_diag *g;
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		pl_die("out of memory");
	va_end(ap);
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->items = pl_realloc(d->items, d->cap * sizeof(*d->items));
	}
	g = &d->items[d->n++];
	g->level = level;
	g->file = file ? pl_strdup(file) : NULL;
	g->line = line;
	g->col = col;
	g->key = key ? pl_strdup(key) : NULL;
	g->msg = msg;
	if (level == PL_DIAG_ERROR)
		d->nerrors++;
	else
		d->nwarnings++;
}

static int
cmp_diag(const void *a, const void *b)
{
	const struct pl_diag *x = a, *y = b;
	int c = strcmp(x->file ? x->file : "", y->file ? y->file : "");

	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x < y ? -1 : (x > y);
}

void
pl_diags_sort(struct pl_diags *d)
{
	if (d->n > 1)
		qsort(d->items, d->n, sizeof(*d->items), cmp_diag);
}

char *
pl_diag_line(const struct pl_diag *g)
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
	if (g->file) {
		pl_buf_addstr(&b, g->file);
		if (g->line)
			pl_buf_addf(&b, ":%d:%d", g->line, g->col);
		pl_buf_addstr(&b, ": ");
	}
	pl_buf_addstr(&b, g->level == PL_DIAG_ERROR ? "error: " : "warning: ");
	if (g->key)
		pl_buf_addf(&b, "%s: ", g->key);
	pl_buf_addstr(&b, g->msg);
	return pl_buf_detach(&b, NULL);
}

json_t *
pl_diags_json(const struct pl_diags *d)
{
	json_t *a = json_array();

	for (size_t i = 0; i < d->n; i++) {
		const struct pl_diag *g = &d->items[i];

		json_array_append_new(a, json_pack("{s:s,s:s?,s:i,s:i,s:s?,s:s}", "level",
						   g->level == PL_DIAG_ERROR ? "error" : "warning",
						   "file", g->file, "line", g->line, "col", g->col,
						   "key", g->key, "message", g->msg));
	}
	return a;
}
