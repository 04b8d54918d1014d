/*
 * Embeds data/ JSON files with the assembler's .incbin (the build passes
 * PL_DATA_DIR) and looks them up by name.
 */
#include "core/common.h"
#include "core/embed.h"

#define PL_INCBIN(sym, file)                                                                  \
	__asm__(".section .rodata\n"                                                          \
		".global " #sym "\n"                                                          \
		".balign 16\n" #sym ":\n"                                                     \
		".incbin \"" PL_DATA_DIR "/" file "\"\n"                                      \
		".byte 0\n"                                                                   \
		".global " #sym "_end\n" #sym "_end:\n"                                       \
		".previous\n");                                                               \
	extern const char sym[], sym##_end[]

PL_INCBIN(pl_data_formats, "pve-formats.json");
PL_INCBIN(pl_data_schema_91, "pve-schema-9.1.json");
PL_INCBIN(pl_data_schema_84, "pve-schema-8.4.json");

static const struct {
	const char *name;
	const char *start;
	const char *end;
} pl_embedded[] = {
	{ "pve-formats.json", pl_data_formats, pl_data_formats_end },
	{ "pve-schema-9.1.json", pl_data_schema_91, pl_data_schema_91_end },
	{ "pve-schema-8.4.json", pl_data_schema_84, pl_data_schema_84_end },
};

const char *
pl_embed_get(const char *name, size_t *len)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(pl_embedded); i++) {
		if (strcmp(pl_embedded[i].name, name) != 0)
			continue;
		if (len) /* the end symbol follows the NUL byte */
			*len = (size_t)(pl_embedded[i].end - pl_embedded[i].start) - 1;
		return pl_embedded[i].start;
	}
	return NULL;
}
