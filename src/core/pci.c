/*
 * PCI addresses, ids and property-string lookups shared by the config
 * checks, the simulator's mapping endpoint and `pvelab host` (core/pci.h).
 */
#include "core/common.h"
#include "core/pci.h"
#include "core/buf.h"
#include "core/json.h"

static size_t
hex_run(const char *s, bool upper)
{
	return strspn(s, upper ? "0123456789abcdefABCDEF" : "0123456789abcdef");
}

bool
pl_pci_path_ok(const char *s)
{
	if (s == NULL)
		return false;
	for (;;) {
		size_t dom = hex_run(s, false);

		if (dom < 4 || s[dom] != ':' || hex_run(s + dom + 1, false) != 2 ||
		    s[dom + 3] != ':' || hex_run(s + dom + 4, false) != 2)
			return false;
		s += dom + 6;
		/* $PCI_RE's "(?:.[a-f0-9])?": any one character, then a digit */
		if (*s && *s != ';') {
			if (s[1] == '\0' || !hex_run(s + 1, false))
				return false;
			s += 2;
		}
		if (*s == '\0')
			return true;
		if (*s != ';' || *++s == '\0')
			return false;
	}
}

bool
pl_pci_id_ok(const char *s)
{
	return s && strlen(s) == 9 && hex_run(s, true) == 4 && s[4] == ':' &&
	       hex_run(s + 5, true) == 4;
}

bool
pl_pci_prop(const char *ps, const char *key, char *out, size_t n)
{
	size_t klen = strlen(key);

	for (const char *p = ps; p && *p;) {
		size_t len = strcspn(p, ",");

		if (len > klen && p[klen] == '=' && !strncmp(p, key, klen)) {
			snprintf(out, n, "%.*s", (int)(len - klen - 1), p + klen + 1);
			return true;
		}
		p = p[len] ? p + len + 1 : NULL;
	}
	return false;
}

char *
pl_pci_map_entry(const json_t *m)
{
	struct pl_buf b;

	pl_buf_init(&b, 0);
	if (pl_json_str(m, "description"))
		pl_buf_addf(&b, "description=%s,", pl_json_str(m, "description"));
	pl_buf_addf(&b, "id=%s", pl_json_str_or(m, "id", ""));
	if (json_is_integer(json_object_get(m, "iommugroup")))
		pl_buf_addf(&b, ",iommugroup=%lld", pl_json_int(m, "iommugroup", 0));
	pl_buf_addf(&b, ",node=%s,path=%s", pl_json_str_or(m, "node", ""),
		    pl_json_str_or(m, "path", ""));
	if (pl_json_str(m, "subsystem_id"))
		pl_buf_addf(&b, ",subsystem-id=%s", pl_json_str(m, "subsystem_id"));
	return pl_buf_detach(&b, NULL);
}
