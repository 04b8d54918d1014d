/*
 * From evidence to a host record: which kind of machine answered, vendor and model where the
 * protocols said so, management URLs; and the aligned text table of records.
 */
#include "core/common.h"
#include "discover/discover.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

/* The first open port whose service is svc, or NULL. */
static json_t *
find_service(json_t *evidence, const char *svc)
{
	size_t i;
	json_t *e;

	json_array_foreach(evidence, i, e) {
		const char *s = pl_json_str(e, "service");

		if (s && !strcmp(s, svc))
			return e;
	}
	return NULL;
}

static json_t *
find_title(json_t *evidence, const char *needle)
{
	size_t i;
	json_t *e;

	json_array_foreach(evidence, i, e) {
		const char *t = pl_json_str(e, "title");

		if (t && strcasestr(t, needle))
			return e;
	}
	return NULL;
}

static char *
url_for(const char *scheme, const char *addr, int port, int dflt, const char *path)
{
	bool v6 = strchr(addr, ':') != NULL;

	if (port == dflt)
		return pl_asprintf("%s://%s%s%s%s", scheme, v6 ? "[" : "", addr, v6 ? "]" : "", path);
	return pl_asprintf("%s://%s%s%s:%d%s", scheme, v6 ? "[" : "", addr, v6 ? "]" : "", port,
			   path);
}

static char *
url_of(const char *addr, json_t *e)
{
	const char *svc = pl_json_str(e, "service");
	int port = (int)pl_json_int(e, "port", 0);

	if (svc == NULL || strcmp(pl_json_str_or(e, "state", ""), "open"))
		return NULL;
	if (!strcmp(svc, "ssh"))
		return url_for("ssh", addr, port, 22, "");
	if (!strcmp(svc, "rdp"))
		return url_for("rdp", addr, port, -1, "");
	if (!strcmp(svc, "vnc"))
		return url_for("vnc", addr, port, -1, "");
	if (!strcmp(svc, "http"))
		return url_for("http", addr, port, 80, "/");
	if (!strcmp(svc, "https") || !strcmp(svc, "redfish") || !strcmp(svc, "proxmox") ||
	    !strcmp(svc, "pbs"))
		return url_for("https", addr, port, 443, "/");
	return NULL;
}

static void
add_url(json_t *urls, char *u)
{
	size_t i;
	json_t *v;

	if (u == NULL)
		return;
	json_array_foreach(urls, i, v)
		if (!strcmp(json_string_value(v), u)) {
			free(u);
			return;
		}
	json_array_append_new(urls, json_string(u));
	free(u);
}

json_t *
pl_disc_record(const char *address, const char *name, json_t *evidence)
{
	json_t *rec = json_object(), *urls = json_array(), *primary = NULL, *e;
	const char *kind = "unknown", *vendor = NULL;
	char *model = NULL;
	size_t i;

	if ((e = find_service(evidence, "redfish")) != NULL) {
		json_t *rf = json_object_get(e, "redfish");
		const char *product = pl_json_str(rf, "product");

		kind = pl_json_str_or(rf, "kind", "bmc");
		vendor = pl_json_str(rf, "vendor");
		if (product)
			model = pl_strdup(product);
		else if (!strcmp(kind, "idrac"))
			model = pl_strdup("iDRAC");
		primary = e;
	} else if ((e = find_title(evidence, "iDRAC")) != NULL) {
		kind = "idrac";
		vendor = "Dell";
		model = pl_strdup("iDRAC");
		primary = e;
	} else if ((e = find_title(evidence, "iLO")) != NULL) {
		kind = "ilo";
		vendor = "HPE";
		model = pl_strdup("iLO");
		primary = e;
	} else if ((e = find_service(evidence, "proxmox")) != NULL) {
		kind = "proxmox";
		vendor = "Proxmox";
		model = pl_strdup("Proxmox VE");
		primary = e;
	} else if ((e = find_service(evidence, "pbs")) != NULL) {
		kind = "pbs";
		vendor = "Proxmox";
		model = pl_strdup("Proxmox Backup Server");
		primary = e;
	} else if ((e = find_service(evidence, "ipmi")) != NULL) {
		kind = "bmc";
		model = pl_strdup("IPMI");
		primary = e;
	} else {
		json_t *ssh = find_service(evidence, "ssh");
		json_t *rdp = find_service(evidence, "rdp");
		json_t *vnc = find_service(evidence, "vnc");
		const char *os = pl_json_str(ssh, "os");
		bool unix_ssh = ssh && !(os && !strcmp(os, "Windows"));

		/* xrdp on a Linux box answers RDP too: an SSH banner naming a
		 * Unix wins over the RDP port */
		if (rdp && !(unix_ssh && os)) {
			kind = "windows-rdp";
			vendor = os && !strcmp(os, "Windows") ? "Microsoft" : NULL;
			model = pl_asprintf("RDP (%s)",
					    pl_json_str_or(rdp, "selected_protocol",
							   pl_json_str_or(rdp, "failure", "?")));
			primary = rdp;
		} else if (ssh) {
			kind = "linux-ssh";
			vendor = os;
			model = pl_strdup(pl_json_str_or(ssh, "software", "SSH"));
			primary = ssh;
		} else if (vnc) {
			kind = "vnc";
			model = pl_asprintf("RFB %s", pl_json_str_or(vnc, "rfb_version", "?"));
			primary = vnc;
		}
	}
	if (primary)
		add_url(urls, url_of(address, primary));
	json_array_foreach(evidence, i, e)
		add_url(urls, url_of(address, e));
	json_object_set_new(rec, "address", json_string(address));
	json_object_set_new(rec, "name", name ? json_string(name) : json_null());
	json_object_set_new(rec, "kind", json_string(kind));
	json_object_set_new(rec, "vendor", vendor ? json_string(vendor) : json_null());
	json_object_set_new(rec, "model", model ? json_string(model) : json_null());
	json_object_set_new(rec, "evidence", evidence);
	json_object_set_new(rec, "urls", urls);
	free(model);
	return rec;
}

static const char *
or_dash(const char *s)
{
	return s && *s ? s : "-";
}

void
pl_disc_format_text(const json_t *records, struct pl_buf *out)
{
	static const char *const head[] = { "ADDRESS", "NAME", "KIND", "VENDOR", "MODEL", "OPEN" };
	size_t n = json_array_size(records), w[6];
	char **cells = pl_calloc((n + 1) * 6, sizeof(char *));

	for (size_t c = 0; c < 6; c++)
		cells[c] = pl_strdup(head[c]);
	for (size_t r = 0; r < n; r++) {
		json_t *rec = json_array_get(records, r), *e;
		struct pl_buf open;
		size_t i;

		pl_buf_init(&open, 0);
		json_array_foreach(json_object_get(rec, "evidence"), i, e) {
			if (strcmp(pl_json_str_or(e, "state", ""), "open"))
				continue;
			pl_buf_addf(&open, "%s%lld/%s", open.len ? " " : "",
				    pl_json_int(e, "port", 0),
				    pl_json_str_or(e, "service", pl_json_str_or(e, "proto", "?")));
		}
		cells[(r + 1) * 6 + 0] = pl_strdup(or_dash(pl_json_str(rec, "address")));
		cells[(r + 1) * 6 + 1] = pl_strdup(or_dash(pl_json_str(rec, "name")));
		cells[(r + 1) * 6 + 2] = pl_strdup(or_dash(pl_json_str(rec, "kind")));
		cells[(r + 1) * 6 + 3] = pl_strdup(or_dash(pl_json_str(rec, "vendor")));
		cells[(r + 1) * 6 + 4] = pl_strdup(or_dash(pl_json_str(rec, "model")));
		cells[(r + 1) * 6 + 5] = pl_strdup(or_dash(open.data));
		pl_buf_release(&open);
	}
	for (size_t c = 0; c < 6; c++) {
		w[c] = 0;
		for (size_t r = 0; r <= n; r++)
			if (strlen(cells[r * 6 + c]) > w[c])
				w[c] = strlen(cells[r * 6 + c]);
	}
	for (size_t r = 0; r <= n; r++) {
		for (size_t c = 0; c < 6; c++) {
			if (c == 5)
				pl_buf_addf(out, "%s\n", cells[r * 6 + c]);
			else
				pl_buf_addf(out, "%-*s  ", (int)w[c], cells[r * 6 + c]);
		}
	}
	for (size_t k = 0; k < (n + 1) * 6; k++)
		free(cells[k]);
	free(cells);
}
