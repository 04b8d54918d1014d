/*
 * The dashboard's web files (web/), built into the binary with the
 * assembler's .incbin (the build passes PL_WEB_DIR) so serve stays one file.
 */
#include "core/common.h"
#include "cmd/serve_dash.h"

#define PL_WEB(sym, file)                                                                          \
	__asm__(".section .rodata\n"                                                               \
		".balign 16\n" #sym ":\n"                                                          \
		".incbin \"" PL_WEB_DIR "/" file "\"\n" #sym "_end:\n"                             \
		".previous\n");                                                                    \
	extern const char sym[] __asm__(#sym), sym##_end[] __asm__(#sym "_end")

PL_WEB(pl_web_index, "index.html");
PL_WEB(pl_web_js, "app.js");
PL_WEB(pl_web_css, "app.css");
PL_WEB(pl_web_icon, "icon.svg");

static const struct {
	const char *name;
	const char *start, *end;
} files[] = {
	{ "index.html", pl_web_index, pl_web_index_end },
	{ "app.js", pl_web_js, pl_web_js_end },
	{ "app.css", pl_web_css, pl_web_css_end },
	{ "icon.svg", pl_web_icon, pl_web_icon_end },
};

const char *
pl_dash_asset(const char *name, size_t *len)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(files); i++)
		if (!strcmp(files[i].name, name)) {
			*len = (size_t)(files[i].end - files[i].start);
			return files[i].start;
		}
	return NULL;
}
