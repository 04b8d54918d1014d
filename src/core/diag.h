/*
 * Diagnostics: a list of located errors and warnings, so that a checker can
 * report every problem at once ("file:line:col: key: message").
 */
#ifndef PL_CORE_DIAG_H
#define PL_CORE_DIAG_H

#include "core/common.h"

#include <jansson.h>

enum pl_diag_level { PL_DIAG_ERROR, PL_DIAG_WARNING };

struct pl_diag {
	enum pl_diag_level level;
	char *file; /* may be NULL */
	int line, col;  /* 1-based; 0 when unknown */
	char *key;  /* the config key or subject, may be NULL */
	char *msg;
};

struct pl_diags {
	struct pl_diag *items;
	size_t n, cap;
	size_t nerrors, nwarnings;
};

void pl_diags_init(struct pl_diags *d);
void pl_diags_release(struct pl_diags *d);
/* Add a diagnostic. file/key may be NULL; line/col 0 when unknown. */
void pl_diags_add(struct pl_diags *d, enum pl_diag_level level, const char *file, int line,
		  int col, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
/* Sort by file, line, column (stable for equal positions). */
void pl_diags_sort(struct pl_diags *d);
/* One diagnostic as a line: "file:line:col: error: key: msg" (caller frees). */
char *pl_diag_line(const struct pl_diag *g);
/* All diagnostics as a JSON array of {level,file,line,col,key,message}. */
json_t *pl_diags_json(const struct pl_diags *d);

#endif
