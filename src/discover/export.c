/*
 * Exports of discovered hosts: Devolutions Remote Desktop Manager (.rdm XML and its JSON form,
 * per ../shared/redfish/rdm/RDM.md) and an Ansible YAML inventory grouped by kind.
 */
#include "core/common.h"
#include "discover/discover.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

#include <openssl/sha.h>

#define RDM_ROOT "Discovered"

static const struct {
	const char *kind, *folder;
} folders[] = {
	{ "idrac", "iDRAC" },      { "ilo", "iLO" },       { "bmc", "BMC" },
	{ "proxmox", "Proxmox VE" }, { "pbs", "Proxmox Backup Server" },
	{ "linux-ssh", "Linux" },  { "windows-rdp", "Windows" }, { "vnc", "VNC" },
	{ "unknown", "Other" },
};

/* ConnectionType tokens and the numbers JSON exports use (go-dvls table). */
static const struct {
	const char *token;
	int number;
} ctypes[] = {
	{ "RDPConfigured", 1 }, { "VNC", 4 }, { "WebBrowser", 5 },
	{ "Group", 25 },        { "Host", 53 }, { "SSHShell", 77 },
};

static const char *
folder_of(const char *kind)
{
	for (size_t i = 0; i < PL_ARRAY_LEN(folders); i++)
		if (!strcmp(folders[i].kind, kind))
			return folders[i].folder;
	return "Other";
}

/* A stable GUID for an entry, so a re-import updates rather than duplicates. */
static json_t *
guid(const char *what)
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	char s[37];
	size_t o = 0;

	SHA256((const unsigned char *)what, strlen(what), d);
	d[6] = (unsigned char)((d[6] & 0x0f) | 0x50); /* name-based */
	d[8] = (unsigned char)((d[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			s[o++] = '-';
		snprintf(s + o, 3, "%02x", d[i]);
		o += 2;
	}
	s[o] = '\0';
	return json_string(s);
}

static json_t *
group_entry(const char *path, const char *name)
{
	json_t *c = json_object();
	char *id = pl_asprintf("pvelab-discover:group:%s", path);

	json_object_set_new(c, "ConnectionType", json_string("Group"));
	json_object_set_new(c, "Group", json_string(path));
	json_object_set_new(c, "ID", guid(id));
	json_object_set_new(c, "Name", json_string(name));
	free(id);
	return c;
}

/* The first open port with the given service, or 0. */
static int
port_of(const json_t *rec, const char *svc)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(rec, "evidence"), i, e)
		if (!strcmp(pl_json_str_or(e, "service", ""), svc) &&
		    !strcmp(pl_json_str_or(e, "state", ""), "open"))
			return (int)pl_json_int(e, "port", 0);
	return 0;
}

static char *
host_port(const char *addr, int port)
{
	return strchr(addr, ':') ? pl_asprintf("[%s]:%d", addr, port)
				 : pl_asprintf("%s:%d", addr, port);
}

/* The RDM entry for one record, in the JSON shape with a token ConnectionType. */
static json_t *
rdm_entry(const json_t *rec)
{
	const char *addr = pl_json_str_or(rec, "address", "");
	const char *kind = pl_json_str_or(rec, "kind", "unknown");
	const char *name = pl_json_str(rec, "name");
	const char *vendor = pl_json_str(rec, "vendor"), *model = pl_json_str(rec, "model");
	const char *url = json_string_value(json_array_get(json_object_get(rec, "urls"), 0));
	json_t *c = json_object();
	char *id = pl_asprintf("pvelab-discover:%s:%s", kind, addr);
	char *group = pl_asprintf(RDM_ROOT "\\%s", folder_of(kind));
	char *desc = pl_asprintf("%s%s%s (found by pvelab discover at %s)", vendor ? vendor : "",
				 vendor && model ? " " : "", model ? model : kind, addr);
	int port;

	if (!strcmp(kind, "windows-rdp")) {
		json_object_set_new(c, "ConnectionType", json_string("RDPConfigured"));
	} else if (!strcmp(kind, "linux-ssh")) {
		json_object_set_new(c, "ConnectionType", json_string("SSHShell"));
	} else if (!strcmp(kind, "vnc")) {
		json_object_set_new(c, "ConnectionType", json_string("VNC"));
	} else if (url && !strncmp(url, "http", 4)) {
		json_object_set_new(c, "ConnectionType", json_string("WebBrowser"));
	} else {
		json_object_set_new(c, "ConnectionType", json_string("Host"));
	}
	json_object_set_new(c, "Description", json_string(desc));
	json_object_set_new(c, "Group", json_string(group));
	json_object_set_new(c, "ID", guid(id));
	json_object_set_new(c, "Name", json_string(name ? name : addr));
	if (!strcmp(kind, "windows-rdp")) {
		char *hp = host_port(addr, (port = port_of(rec, "rdp")) ? port : 3389);

		json_object_set_new(c, "OpenEmbedded", json_true());
		json_object_set_new(c, "Url", json_string(hp)); /* the RDP "computer" field */
		free(hp);
	} else if (!strcmp(kind, "linux-ssh")) {
		json_t *t = json_object();

		json_object_set_new(t, "Host", json_string(addr));
		json_object_set_new(t, "HostPort", json_integer((port = port_of(rec, "ssh")) ? port : 22));
		json_object_set_new(c, "Terminal", t);
	} else if (!strcmp(kind, "vnc")) {
		/* the generic, documented Host field: RDM's VNC settings element is
		 * not described by any source we have */
		char *hp = host_port(addr, (port = port_of(rec, "vnc")) ? port : 5900);

		json_object_set_new(c, "Host", json_string(hp));
		free(hp);
	} else if (url && !strncmp(url, "http", 4)) {
		json_object_set_new(c, "WebBrowserUrl", json_string(url));
	} else {
		json_t *hd = json_object();

		json_object_set_new(hd, "Host", json_string(addr));
		json_object_set_new(c, "HostDetails", hd);
	}
	free(id);
	free(group);
	free(desc);
	return c;
}

/* All entries: the root folder, one folder per kind present, then hosts
 * grouped by kind. */
static json_t *
rdm_entries(const json_t *records)
{
	json_t *out = json_array();

	json_array_append_new(out, group_entry(RDM_ROOT, RDM_ROOT));
	for (size_t f = 0; f < PL_ARRAY_LEN(folders); f++) {
		bool any = false;
		size_t i;
		json_t *rec;

		json_array_foreach(records, i, rec)
			any = any || !strcmp(pl_json_str_or(rec, "kind", "unknown"), folders[f].kind);
		if (!any)
			continue;
		{
			char *path = pl_asprintf(RDM_ROOT "\\%s", folders[f].folder);

			json_array_append_new(out, group_entry(path, folders[f].folder));
			free(path);
		}
		json_array_foreach(records, i, rec)
			if (!strcmp(pl_json_str_or(rec, "kind", "unknown"), folders[f].kind))
				json_array_append_new(out, rdm_entry(rec));
	}
	return out;
}

/* XML character data: markup characters escaped, characters XML 1.0 forbids dropped. */
static void
xml_text(struct pl_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '&': pl_buf_addstr(b, "&amp;"); break;
		case '<': pl_buf_addstr(b, "&lt;"); break;
		case '>': pl_buf_addstr(b, "&gt;"); break;
		case '"': pl_buf_addstr(b, "&quot;"); break;
		case '\'': pl_buf_addstr(b, "&apos;"); break;
		default:
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				break;
			pl_buf_addch(b, (char)c);
		}
	}
}

static void
xml_object(struct pl_buf *b, const json_t *o, int depth)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v) {
		pl_buf_addf(b, "%*s<%s>", depth * 2, "", k);
		if (json_is_object(v)) {
			pl_buf_addch(b, '\n');
			xml_object(b, v, depth + 1);
			pl_buf_addf(b, "%*s", depth * 2, "");
		} else if (json_is_string(v)) {
			xml_text(b, json_string_value(v));
		} else if (json_is_integer(v)) {
			pl_buf_addf(b, "%lld", (long long)json_integer_value(v));
		} else if (json_is_boolean(v)) {
			pl_buf_addstr(b, json_is_true(v) ? "true" : "false");
		}
		pl_buf_addf(b, "</%s>\n", k);
	}
}

static int
export_rdm_xml(const json_t *records, struct pl_buf *out)
{
	json_t *entries = rdm_entries(records), *c;
	size_t i;

	pl_buf_addstr(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			   "<!-- Remote Desktop Manager import file written by pvelab discover -->\n"
			   "<RDMExport>\n  <Connections>\n");
	json_array_foreach(entries, i, c) {
		pl_buf_addstr(out, "    <Connection>\n");
		xml_object(out, c, 3);
		pl_buf_addstr(out, "    </Connection>\n");
	}
	pl_buf_addstr(out, "  </Connections>\n</RDMExport>\n");
	json_decref(entries);
	return 0;
}

static int
export_rdm_json(const json_t *records, struct pl_buf *out)
{
	json_t *entries = rdm_entries(records), *c, *doc;
	size_t i;
	char *text;

	/* JSON exports carry the ConnectionType as its number */
	json_array_foreach(entries, i, c) {
		const char *tok = pl_json_str(c, "ConnectionType");

		for (size_t k = 0; k < PL_ARRAY_LEN(ctypes); k++)
			if (tok && !strcmp(tok, ctypes[k].token)) {
				json_object_set_new(c, "ConnectionType",
						    json_integer(ctypes[k].number));
				break;
			}
	}
	doc = json_pack("{s:o}", "Connections", entries);
	text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	pl_buf_addstr(out, text);
	pl_buf_addch(out, '\n');
	free(text);
	json_decref(doc);
	return 0;
}

/* A YAML double-quoted scalar. */
static void
yaml_str(struct pl_buf *b, const char *s)
{
	pl_buf_addch(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			pl_buf_addf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			pl_buf_addf(b, "\\x%02x", c);
		else
			pl_buf_addch(b, (char)c);
	}
	pl_buf_addch(b, '"');
}

/* Whether Ansible would template s: text from a device must stay text. */
static bool
templated(const char *s)
{
	return strstr(s, "{{") || strstr(s, "{%") || strstr(s, "{#");
}

/* A host variable's value: tagged !unsafe when Ansible would template it. */
static void
yaml_val(struct pl_buf *b, const char *s)
{
	if (templated(s))
		pl_buf_addstr(b, "!unsafe ");
	yaml_str(b, s);
}

static int
export_inventory(const json_t *records, struct pl_buf *out)
{
	pl_buf_addstr(out, "# Ansible inventory written by pvelab discover, grouped by kind\n"
			   "all:\n  children:\n");
	for (size_t f = 0; f < PL_ARRAY_LEN(folders); f++) {
		bool any = false;
		size_t i;
		json_t *rec;

		json_array_foreach(records, i, rec) {
			const char *addr = pl_json_str_or(rec, "address", "");
			const char *name = pl_json_str(rec, "name");
			const char *kind = pl_json_str_or(rec, "kind", "unknown");
			json_t *u;
			size_t k;
			int port;

			if (strcmp(kind, folders[f].kind))
				continue;
			if (!any) {
				/* Ansible group names may not contain '-' */
				pl_buf_addstr(out, "    ");
				for (const char *p = kind; *p; p++)
					pl_buf_addch(out, *p == '-' ? '_' : *p);
				pl_buf_addstr(out, ":\n      hosts:\n");
				any = true;
			}
			pl_buf_addstr(out, "        ");
			/* a host name cannot be tagged: one Ansible would template is left out */
			yaml_str(out, name && !templated(name) ? name : addr);
			pl_buf_addstr(out, ":\n          ansible_host: ");
			yaml_val(out, addr);
			if (!strcmp(kind, "linux-ssh") && (port = port_of(rec, "ssh")) && port != 22)
				pl_buf_addf(out, "\n          ansible_port: %d", port);
			pl_buf_addstr(out, "\n          pvelab_kind: ");
			yaml_val(out, kind);
			if (pl_json_str(rec, "vendor")) {
				pl_buf_addstr(out, "\n          pvelab_vendor: ");
				yaml_val(out, pl_json_str(rec, "vendor"));
			}
			if (pl_json_str(rec, "model")) {
				pl_buf_addstr(out, "\n          pvelab_model: ");
				yaml_val(out, pl_json_str(rec, "model"));
			}
			pl_buf_addstr(out, "\n          pvelab_urls: [");
			json_array_foreach(json_object_get(rec, "urls"), k, u) {
				if (k)
					pl_buf_addstr(out, ", ");
				yaml_val(out, json_string_value(u));
			}
			pl_buf_addstr(out, "]\n");
		}
	}
	if (json_array_size(records) == 0)
		pl_buf_addstr(out, "    {}\n");
	return 0;
}

int
pl_disc_export(const json_t *records, const char *format, struct pl_buf *out, char **errmsg)
{
	if (!strcmp(format, "rdm"))
		return export_rdm_xml(records, out);
	if (!strcmp(format, "rdm-json"))
		return export_rdm_json(records, out);
	if (!strcmp(format, "inventory"))
		return export_inventory(records, out);
	return pl_seterr(errmsg, PL_EINVAL,
			 "unknown export format '%s' (use rdm, rdm-json or inventory)", format);
}
