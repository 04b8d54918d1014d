/* Unit tests for the metrics of pvelab serve: the exposition writer (Accept
 * and Accept-Encoding negotiation, numbers, escaping, OpenMetrics, gzip) and
 * the exporter equivalence: from answers recorded from the simulator
 * (tests/data/metrics/answers.json), the series prometheus-pve-exporter
 * 3.10.0's own collectors wrote from the same answers (exporter-3.10.0-*.prom,
 * recorded by tests/data/metrics/record.py) and no other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/common.h"
#include "cmd/serve_metrics.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/err.h"
#include "core/json.h"
#include "serve/expo.h"

#include <math.h>
#include <zlib.h>

static void
test_negotiate(void **state)
{
	(void)state;
	/* what Prometheus 2.x sends */
	assert_int_equal(pl_expo_negotiate("application/openmetrics-text;version=1.0.0,"
					   "application/openmetrics-text;version=0.0.1;q=0.75,"
					   "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
			 PL_EXPO_OPENMETRICS);
	assert_int_equal(pl_expo_negotiate(NULL), PL_EXPO_TEXT);
	assert_int_equal(pl_expo_negotiate(""), PL_EXPO_TEXT);
	assert_int_equal(pl_expo_negotiate("*/*"), PL_EXPO_TEXT);
	assert_int_equal(pl_expo_negotiate("text/plain;version=0.0.4"), PL_EXPO_TEXT);
	assert_int_equal(pl_expo_negotiate("Application/OpenMetrics-Text"), PL_EXPO_OPENMETRICS);
	/* q decides, not the order */
	assert_int_equal(pl_expo_negotiate("text/plain;q=0.9, application/openmetrics-text"),
			 PL_EXPO_OPENMETRICS);
	assert_int_equal(pl_expo_negotiate("application/openmetrics-text;q=0.2, text/plain"),
			 PL_EXPO_TEXT);
	/* a version we do not write, q=0, an unreadable q: not acceptable */
	assert_int_equal(pl_expo_negotiate("application/openmetrics-text;version=2.0.0"),
			 PL_EXPO_TEXT);
	assert_int_equal(pl_expo_negotiate("application/openmetrics-text;q=0"), PL_EXPO_TEXT);
	assert_int_equal(pl_expo_negotiate("application/openmetrics-text;q=abc"), PL_EXPO_TEXT);
	assert_int_equal(pl_expo_negotiate("application/openmetrics-text;q=1.5"), PL_EXPO_TEXT);
	assert_int_equal(pl_expo_negotiate("application/openmetrics-text; q=0.001"),
			 PL_EXPO_OPENMETRICS);
	/* quoted parameters, stray separators, garbage */
	assert_int_equal(
		pl_expo_negotiate("application/openmetrics-text;version=\"1.0.0\";x=\"a,b\""),
		PL_EXPO_OPENMETRICS);
	assert_int_equal(pl_expo_negotiate(",,;;==,\"\"\\"), PL_EXPO_TEXT);
	assert_int_equal(pl_expo_negotiate(";q=1,text/html"), PL_EXPO_TEXT);
	{
		char big[9000];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(pl_expo_negotiate(big), PL_EXPO_TEXT);
		big[100] = ';';
		big[101] = '"'; /* an unterminated quote runs to the end */
		assert_int_equal(pl_expo_negotiate(big), PL_EXPO_TEXT);
	}
	assert_true(pl_expo_wants_gzip("gzip"));
	assert_true(pl_expo_wants_gzip("deflate, gzip;q=0.5"));
	assert_true(pl_expo_wants_gzip("identity, *"));
	assert_false(pl_expo_wants_gzip(NULL));
	assert_false(pl_expo_wants_gzip("identity"));
	assert_false(pl_expo_wants_gzip("gzip;q=0"));
	assert_false(pl_expo_wants_gzip("*, gzip;q=0"));
	assert_false(pl_expo_wants_gzip("gzipx"));
}

static char *
expo_text(enum pl_expo_fmt fmt, bool gz, size_t *len)
{
	struct pl_expo e;
	const char *kv[] = { "id", "a\"b\\c\nd", "le", "x" };
	char *data = NULL;

	pl_expo_init(&e, fmt, gz, 0);
	pl_expo_family(&e, "t_bytes_total", PL_EXPO_COUNTER, "help with \\ and\nnewline");
	pl_expo_sample(&e, "", kv, 1, 12345678901234.0);
	pl_expo_family(&e, "t_ratio", PL_EXPO_GAUGE, "r");
	pl_expo_sample(&e, "", NULL, 0, 0.1);
	pl_expo_sample(&e, "", kv + 2, 1, -3);
	pl_expo_sample(&e, "", NULL, 0, 1.0 / 0.0);
	pl_expo_sample(&e, "", NULL, 0, 0.0 / 0.0);
	assert_int_equal(pl_expo_finish(&e, &data, len), 0);
	pl_expo_release(&e);
	return data;
}

static void
test_expo(void **state)
{
	size_t n, zn;
	char *t, *om, *z;

	(void)state;
	t = expo_text(PL_EXPO_TEXT, false, &n);
	assert_string_equal(t, "# HELP t_bytes_total help with \\\\ and\\nnewline\n"
			       "# TYPE t_bytes_total counter\n"
			       "t_bytes_total{id=\"a\\\"b\\\\c\\nd\"} 12345678901234\n"
			       "# HELP t_ratio r\n# TYPE t_ratio gauge\n"
			       "t_ratio 0.1\nt_ratio{le=\"x\"} -3\nt_ratio +Inf\nt_ratio NaN\n");
	om = expo_text(PL_EXPO_OPENMETRICS, false, &n);
	assert_string_equal(
		om, "# HELP t_bytes help with \\\\ and\\nnewline\n"
		    "# TYPE t_bytes counter\n"
		    "t_bytes_total{id=\"a\\\"b\\\\c\\nd\"} 12345678901234\n"
		    "# HELP t_ratio r\n# TYPE t_ratio gauge\n"
		    "t_ratio 0.1\nt_ratio{le=\"x\"} -3\nt_ratio +Inf\nt_ratio NaN\n# EOF\n");
	/* gzip: the same bytes once inflated */
	z = expo_text(PL_EXPO_TEXT, true, &zn);
	{
		char out[4096];
		z_stream s = { 0 };

		assert_int_equal(inflateInit2(&s, 16 + 15), Z_OK);
		s.next_in = (unsigned char *)z;
		s.avail_in = (unsigned)zn;
		s.next_out = (unsigned char *)out;
		s.avail_out = sizeof(out);
		assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
		assert_int_equal(s.total_out, strlen(t));
		assert_memory_equal(out, t, strlen(t));
		inflateEnd(&s);
	}
	free(t);
	free(om);
	free(z);
	/* the cap: an answer past it is an error, not a truncated answer */
	{
		struct pl_expo e;
		char *data = NULL;

		pl_expo_init(&e, PL_EXPO_TEXT, false, 100);
		pl_expo_family(&e, "x", PL_EXPO_GAUGE,
			       "help text long enough for the cap of bytes");
		for (int i = 0; i < 10; i++)
			pl_expo_sample(&e, "", NULL, 0, i);
		assert_int_not_equal(pl_expo_finish(&e, &data, &n), 0);
		assert_null(data);
		pl_expo_release(&e);
	}
}

/* Label sets rendered once (pl_expo_labels) and written with a tail
 * (pl_expo_sample_pre) make the same bytes as pl_expo_sample, also when
 * taken in parts as they are written (pl_expo_pending, pl_expo_sent), plain
 * or compressed. */
static void
test_expo_pre(void **state)
{
	const char *kv[] = { "id", "a\"b\\c\nd", "state", "x" };

	(void)state;
	for (int gz = 0; gz < 2; gz++) {
		struct pl_expo a, b;
		struct pl_buf labels, parts;
		char *da = NULL, *db = NULL;
		const char *p;
		size_t na, nb;

		pl_buf_init(&labels, 0);
		assert_int_equal(pl_expo_labels(&labels, kv, 1, true), 0);
		assert_string_equal(labels.data, "{id=\"a\\\"b\\\\c\\nd\"");
		pl_expo_init(&a, PL_EXPO_TEXT, gz, 0);
		pl_expo_init(&b, PL_EXPO_TEXT, gz, 0);
		pl_buf_init(&parts, 0);
		pl_expo_family(&a, "t", PL_EXPO_GAUGE, "h");
		pl_expo_family(&b, "t", PL_EXPO_GAUGE, "h");
		p = pl_expo_pending(&b, &nb);
		pl_buf_add(&parts, p, nb);
		pl_expo_sent(&b);
		pl_expo_sample(&a, "", kv, 2, 0.25);
		pl_expo_sample_pre(&b, labels.data, labels.len, ",state=\"x\"}", 11, 0.25);
		p = pl_expo_pending(&b, &nb);
		pl_buf_add(&parts, p, nb);
		pl_expo_sent(&b);
		pl_expo_sample(&a, "", kv, 1, 3);
		pl_expo_sample_pre(&b, labels.data, labels.len, "}", 1, 3);
		assert_int_equal(pl_expo_finish(&a, &da, &na), 0);
		assert_int_equal(pl_expo_end(&b), 0);
		p = pl_expo_pending(&b, &nb);
		pl_buf_add(&parts, p, nb);
		db = pl_buf_detach(&parts, &nb);
		assert_int_equal(na, nb);
		assert_memory_equal(da, db, na);
		if (!gz)
			assert_string_equal(db, "# HELP t h\n# TYPE t gauge\n"
						"t{id=\"a\\\"b\\\\c\\nd\",state=\"x\"} 0.25\n"
						"t{id=\"a\\\"b\\\\c\\nd\"} 3\n");
		pl_expo_release(&a);
		pl_expo_release(&b);
		pl_buf_release(&labels);
		free(da);
		free(db);
	}
}

static void
test_numbers_and_pystr(void **state)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = { { 0, "0" },
		      { 1, "1" },
		      { -1, "-1" },
		      { 0.5, "0.5" },
		      { 0.0873, "0.0873" },
		      { 1e300, "1e+300" },
		      { 1.0 / 3, "0.3333333333333333" },
		      { 9007199254740993.0, "9007199254740992" } };
	char buf[64];
	json_t *v;

	(void)state;
	for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
		struct pl_buf b;

		pl_buf_init(&b, 0);
		pl_expo_number(&b, cases[i].v);
		assert_string_equal(b.data, cases[i].text);
		pl_buf_release(&b);
	}
	assert_string_equal(pl_metrics_pystr(v = json_integer(3), buf, sizeof(buf)), "3");
	json_decref(v);
	assert_string_equal(pl_metrics_pystr(v = json_real(2.0), buf, sizeof(buf)), "2.0");
	json_decref(v);
	assert_string_equal(pl_metrics_pystr(v = json_real(0.25), buf, sizeof(buf)), "0.25");
	json_decref(v);
	assert_string_equal(pl_metrics_pystr(json_true(), buf, sizeof(buf)), "True");
	assert_string_equal(pl_metrics_pystr(json_null(), buf, sizeof(buf)), "None");
}

/* The reference: the shortest of %.15g..%.17g that reads back as v. */
static void
reference_number(char *out, size_t size, double v)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, v);
		if (prec == 17 || strtod(out, NULL) == v)
			break;
	}
}

static void
check_number(double v)
{
	char want[64];
	struct pl_buf b;

	if (!isfinite(v))
		return; /* NaN and the infinities: test_numbers_and_pystr */
	pl_buf_init(&b, 0);
	pl_expo_number(&b, v);
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		snprintf(want, sizeof(want), "%lld", (long long)v);
	else
		reference_number(want, sizeof(want), v);
	if (strcmp(b.data, want))
		fail_msg("%.17g: wrote '%s', printf's shortest is '%s'", v, b.data, want);
	/* and what is written reads back as v */
	if (strtod(b.data, NULL) != v && fabs(v) < 9007199254740992.0)
		fail_msg("%.17g: '%s' does not read back", v, b.data);
	pl_buf_release(&b);
}

/* The number writer's own decimal path equals printf's shortest round trip
 * over a million values of every shape (250,000 drawn, each with its negative and its neighbour): short decimals at every scale (CPU
 * ratios, ages), random bit patterns, neighbours of the path's edges. */
static void
test_numbers_many(void **state)
{
	static const double edges[] = { 1e-4,
					1e-5,
					9.9999e-5,
					1e15,
					1e15 - 0.5,
					999999999999999.9,
					9007199254740991.0,
					0.1 + 0.2,
					1.0 / 3,
					2.0 / 3,
					0.30000000000000004,
					5e-324,
					1.7976931348623157e308,
					123456789012345.6,
					12345678901234.56,
					0.000123456789012345 };
	unsigned long long x = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (size_t i = 0; i < PL_ARRAY_LEN(edges); i++) {
		double lo = edges[i], hi = edges[i];

		for (int d = 0; d < 3; d++) { /* it and its two neighbours each side */
			check_number(lo);
			check_number(-lo);
			check_number(hi);
			check_number(-hi);
			lo = nextafter(lo, 0);
			hi = nextafter(hi, INFINITY);
		}
	}
	for (int i = 0; i < 250000; i++) {
		double v;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
		switch (i % 4) {
		case 0: /* k decimals of a number below 10^(1..15) */
			v = (double)(x % 1000000000000000ULL) / pow(10, (double)((x >> 50) % 16));
			break;
		case 1: /* any finite double */
			memcpy(&v, &x, sizeof(v));
			if (!isfinite(v))
				continue;
			break;
		case 2: /* a ratio of four decimals, as PVE's cpu */
			v = (double)(x % 100000) / 10000;
			break;
		default: /* an age: now minus a time, in seconds with fractions */
			v = 1.7e9 - (double)(x % 4000000000ULL) / 1000.0 - 1.6e9;
			break;
		}
		check_number(v);
		check_number(-v);
		check_number(nextafter(v, INFINITY));
	}
}

static void
test_path_template(void **state)
{
	static const char *const cases[][2] = {
		{ "/nodes/pve1/qemu/100/config", "/nodes/{node}/qemu/{vmid}/config" },
		{ "/cluster/resources?type=vm", "/cluster/resources" },
		{ "/nodes/pve2/storage/local/content?content=backup",
		  "/nodes/{node}/storage/{storage}/content" },
		{ "/nodes/pve1/lxc/101/snapshot/before/config",
		  "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config" },
		{ "/nodes/pve1/tasks/UPID:pve1:0001:x:y:z:w:root@pam:/status",
		  "/nodes/{node}/tasks/{upid}/status" },
		{ "/version", "/version" },
		{ "/cluster/ha/resources/vm:100", "/cluster/ha/resources/{sid}" },
	};
	char out[96];

	(void)state;
	for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
		pl_metrics_path_template(cases[i][0], out, sizeof(out));
		assert_string_equal(out, cases[i][1]);
	}
	pl_metrics_path_template("/a/very/long/path/that/goes/on/and/on/and/on/and/on/past/the/"
				 "buffer/size/by/far/and/beyond",
				 out, 32);
	assert_true(strlen(out) < 32);
}

/* --- the exporter equivalence --- */

/* One exposition as sorted lines: "TYPE name type" for each family, and
 * "name{labels sorted} value" for each sample, the value as %.17g. */
static json_t *
normalise(const char *text)
{
	json_t *out = json_array();
	const char *p = text;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[4096];

		assert_true(len < sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (eol ? 1 : 0);
		if (!strncmp(line, "# TYPE ", 7)) {
			json_array_append_new(out, json_sprintf("TYPE %s", line + 7));
		} else if (line[0] && line[0] != '#') {
			char name[256], labels[64][512], *q = line, *space;
			size_t n = 0, nl = 0;
			struct pl_buf b;

			while (*q && *q != '{' && *q != ' ' && n + 1 < sizeof(name))
				name[n++] = *q++;
			name[n] = '\0';
			if (*q == '{') {
				q++;
				while (*q && *q != '}') {
					size_t o = 0;
					bool in = false;

					while (*q && (in || (*q != ',' && *q != '}'))) {
						if (in && *q == '\\' && q[1]) {
							labels[nl][o++] = *q++;
						} else if (*q == '"') {
							in = !in;
						}
						labels[nl][o++] = *q++;
					}
					labels[nl++][o] = '\0';
					if (*q == ',')
						q++;
				}
				q++;
			}
			for (size_t i = 1; i < nl; i++) /* sort the labels */
				for (size_t j = i; j > 0 && strcmp(labels[j - 1], labels[j]) > 0;
				     j--) {
					char tmp[512];

					memcpy(tmp, labels[j], sizeof(tmp));
					memcpy(labels[j], labels[j - 1], sizeof(tmp));
					memcpy(labels[j - 1], tmp, sizeof(tmp));
				}
			pl_buf_init(&b, 0);
			pl_buf_addf(&b, "%s{", name);
			for (size_t i = 0; i < nl; i++)
				pl_buf_addf(&b, "%s%s", i ? "," : "", labels[i]);
			space = strrchr(q, ' ');
			pl_buf_addf(&b, "} %.17g", strtod(space ? space + 1 : q, NULL));
			json_array_append_new(out, json_string(b.data));
			pl_buf_release(&b);
		}
	}
	return out;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a),
		      json_string_value(*(json_t *const *)b));
}

/* The lines of want missing from got, and of got not in want, printed. */
static size_t
differences(json_t *got, json_t *want)
{
	size_t n = 0, i = 0, j = 0, ng = json_array_size(got), nw = json_array_size(want);
	json_t **g = pl_calloc(ng + 1, sizeof(*g)), **w = pl_calloc(nw + 1, sizeof(*w));

	for (size_t k = 0; k < ng; k++)
		g[k] = json_array_get(got, k);
	for (size_t k = 0; k < nw; k++)
		w[k] = json_array_get(want, k);
	qsort(g, ng, sizeof(*g), cmp_str);
	qsort(w, nw, sizeof(*w), cmp_str);
	while (i < ng || j < nw) {
		int c = i == ng ? 1 : j == nw ? -1 : cmp_str(&g[i], &w[j]);

		if (c == 0) {
			i++, j++;
			continue;
		}
		if (n++ < 30)
			fprintf(stderr, "%s %s\n", c < 0 ? "pvelab only:  " : "exporter only:",
				json_string_value(c < 0 ? g[i] : w[j]));
		if (c < 0)
			i++;
		else
			j++;
	}
	free(g);
	free(w);
	return n;
}

static json_t *
load_json(const char *rel)
{
	char path[1024];
	struct pl_buf b;
	json_t *j;

	snprintf(path, sizeof(path), "%s/tests/data/metrics/%s", PL_TEST_SRCDIR, rel);
	pl_buf_init(&b, 0);
	assert_int_equal(pl_file_read(path, &b, NULL), 0);
	j = strstr(rel, ".json") ? pl_json_loadb(b.data, b.len, 0) : json_string(b.data);
	pl_buf_release(&b);
	assert_non_null(j);
	return j;
}

static json_t *
slot(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		json_object_set_new(obj, key, v = json_object());
	return v;
}

static void
equivalence(const char *local)
{
	json_t *a = load_json("answers.json"), *status, *nodes = json_object(),
	       *guests = json_array();
	json_t *onboot, *got, *want, *x;
	const char *key;
	struct pl_expo e;
	char *data = NULL, file[64];
	size_t len, i;

	/* the node the exporter was pointed at is the local one */
	status = json_deep_copy(json_object_get(a, "/cluster/status"));
	json_array_foreach(status, i, x)
		if (!strcmp(pl_json_str_or(x, "type", ""), "node"))
			json_object_set_new(
				x, "local",
				json_integer(!strcmp(pl_json_str_or(x, "name", ""), local)));
	/* what the refresh keeps: each node's subscription and replication, and
	 * the configs a sync read, as a snapshot holds them */
	json_object_foreach(a, key, x) {
		char node[64], kind[8];
		long long vmid;
		int end = 0;

		if (sscanf(key, "/nodes/%63[^/]/subscription%n", node, &end) == 1 && !key[end])
			json_object_set(slot(nodes, node), "subscription", x);
		else if (sscanf(key, "/nodes/%63[^/]/replication%n", node, &end) == 1 && !key[end])
			json_object_set(slot(nodes, node), "replication", x);
		else if (sscanf(key, "/nodes/%63[^/]/%7[a-z]/%lld/config%n", node, kind, &vmid,
				&end) == 3 &&
			 !key[end])
			json_array_append_new(guests, json_pack("{s:I,s:s,s:s,s:O}", "vmid",
								(json_int_t)vmid, "type", kind,
								"node", node, "config", x));
	}
	onboot = pl_metrics_onboot(guests);
	{
		struct pl_metrics_pve_in in = {
			.status = status,
			.resources = json_object_get(a, "/cluster/resources"),
			.version = json_object_get(a, "/version"),
			.not_backed_up = json_object_get(a, "/cluster/backup-info/not-backed-up"),
			.qdevice = json_object_get(a, "/cluster/config/qdevice"),
			.nodes = nodes,
			.onboot = onboot,
		};
		struct pl_metrics_pve_opts o = { true, true, local, true, true };

		pl_expo_init(&e, PL_EXPO_TEXT, false, 0);
		pl_metrics_pve(&e, &in, &o);
		assert_int_equal(pl_expo_finish(&e, &data, &len), 0);
		pl_expo_release(&e);
	}
	snprintf(file, sizeof(file), "exporter-3.10.0-%s.prom", local);
	want = load_json(file);
	got = normalise(data);
	x = normalise(json_string_value(want));
	/* the recording covers what the issue names */
	assert_true(json_array_size(x) > 400);
	assert_int_equal(differences(got, x), 0);
	json_decref(x);
	json_decref(got);
	json_decref(want);
	free(data);
	json_decref(onboot);
	json_decref(guests);
	json_decref(nodes);
	json_decref(status);
	json_decref(a);
}

/* Inflate a whole gzip answer (checking its CRC and length) into a string. */
static char *
gunzip(const char *z, size_t zn)
{
	struct pl_buf out;
	z_stream s = { 0 };
	int r;

	pl_buf_init(&out, 0);
	assert_int_equal(inflateInit2(&s, 16 + 15), Z_OK);
	s.next_in = (unsigned char *)z;
	s.avail_in = (unsigned)zn;
	do {
		assert_int_equal(pl_buf_grow(&out, 65536), 0);
		s.next_out = (unsigned char *)out.data + out.len;
		s.avail_out = 65536;
		r = inflate(&s, Z_NO_FLUSH);
		out.len = (size_t)((char *)s.next_out - out.data);
		assert_true(r == Z_OK || r == Z_STREAM_END);
	} while (r != Z_STREAM_END);
	assert_int_equal(s.avail_in, 0); /* one gzip member, nothing after it */
	inflateEnd(&s);
	out.data[out.len] = '\0';
	return pl_buf_detach(&out, NULL);
}

static char *
render(const struct pl_metrics_pve_in *in, enum pl_expo_fmt fmt, bool gz, size_t *len)
{
	struct pl_metrics_pve_opts o = { true, true, NULL, true, true };
	struct pl_expo e;
	char *data = NULL;

	pl_expo_init(&e, fmt, gz, 0);
	pl_metrics_pve(&e, in, &o);
	pl_expo_family(&e, "after", PL_EXPO_GAUGE, "a family after the kept ones");
	pl_expo_sample(&e, "", NULL, 0, 1);
	assert_int_equal(pl_expo_finish(&e, &data, len), 0);
	pl_expo_release(&e);
	return data;
}

/* Exchange two kept segments' bytes, leaving their hashes. */
static void
swap_bytes(struct pl_expo_seg *a, struct pl_expo_seg *b)
{
	struct pl_expo_seg t = *a;

	a->z = b->z, a->zlen = b->zlen, a->crc = b->crc, a->len = b->len;
	b->z = t.z, b->zlen = t.zlen, b->crc = t.crc, b->len = t.len;
}

/* Families kept compressed and spliced into later answers: the answers
 * inflate (CRC and length right) to exactly what a fresh render writes,
 * before and after a resource changes, in both formats. */
static void
test_kept_segments(void **state)
{
	json_t *a = load_json("answers.json");
	json_t *res = json_deep_copy(json_object_get(a, "/cluster/resources"));
	struct pl_expo_seg segs[PL_METRICS_SEGS];
	struct pl_metrics_pve_in in = { .status = json_object_get(a, "/cluster/status"),
					.resources = res };

	(void)state;
	memset(segs, 0, sizeof(segs));
	for (int fmt = 0; fmt < 2; fmt++) {
		for (int round = 0; round < 3; round++) {
			size_t n, zn;
			char *plain, *z, *unz;

			if (round == 2) /* a counter and a lock move */
				json_object_set_new(json_array_get(res, 0), "netin",
						    json_integer(12345 + fmt)),
					json_object_set_new(json_array_get(res, 1), "lock",
							    json_string("snapshot"));
			in.segs = NULL;
			plain = render(&in, (enum pl_expo_fmt)fmt, false, &n);
			in.segs = segs;
			z = render(&in, (enum pl_expo_fmt)fmt, true, &zn);
			unz = gunzip(z, zn);
			assert_string_equal(unz, plain);
			if (round == 1) { /* nothing changed: the kept bytes go out as kept */
				char *swapped, *unsw;
				size_t sn;

				swap_bytes(&segs[0], &segs[1]);
				swapped = render(&in, (enum pl_expo_fmt)fmt, true, &sn);
				unsw = gunzip(swapped, sn);
				assert_string_not_equal(unsw, plain);
				assert_int_equal(strlen(unsw), strlen(plain));
				free(swapped);
				free(unsw);
				swap_bytes(&segs[0], &segs[1]);
			}
			free(plain);
			free(z);
			free(unz);
		}
	}
	for (size_t i = 0; i < PL_METRICS_SEGS; i++)
		pl_expo_seg_release(&segs[i]);
	json_decref(res);
	json_decref(a);
}

/* The small cluster-wide families and the node collectors' are kept while
 * their answers are the same ones (in.gen): an answer changed under the
 * same gen still shows as kept, and the next gen shows the change; each
 * answer inflates to exactly what a fresh render writes. */
static void
test_kept_small_parts(void **state)
{
	json_t *a = load_json("answers.json");
	json_t *nbu = json_deep_copy(json_object_get(a, "/cluster/backup-info/not-backed-up"));
	json_t *onboot = json_pack("[{s:i,s:s,s:s,s:i}]", "vmid", 100, "type", "qemu", "node",
				   "pve1", "onboot", 1);
	struct pl_expo_seg segs[PL_METRICS_SEGS];
	struct pl_metrics_pve_in in = { .status = json_object_get(a, "/cluster/status"),
					.resources = json_object_get(a, "/cluster/resources"),
					.version = json_object_get(a, "/version"),
					.not_backed_up = nbu,
					.onboot = onboot,
					.gen = 1 };
	char *kept, *got[3], *z;
	size_t n, zn;

	(void)state;
	memset(segs, 0, sizeof(segs));
	for (int round = 0; round < 3; round++) {
		if (round == 1) { /* in place: serve replaces an answer, and gen moves */
			json_object_set_new(json_array_get(onboot, 0), "onboot", json_integer(0));
			json_array_append_new(nbu,
					      json_pack("{s:s,s:i}", "type", "qemu", "vmid", 999));
		}
		if (round == 2)
			in.gen = 2;
		in.segs = segs;
		z = render(&in, PL_EXPO_TEXT, true, &zn);
		got[round] = gunzip(z, zn);
		free(z);
	}
	in.segs = NULL;
	kept = render(&in, PL_EXPO_TEXT, false, &n);
	assert_string_equal(got[2], kept);
	assert_string_equal(got[1], got[0]);
	assert_string_not_equal(got[2], got[0]);
	assert_non_null(strstr(got[0], "\npve_onboot_status{id=\"qemu/100\",node=\"pve1\","
				       "type=\"qemu\"} 1\n"));
	assert_null(strstr(got[1], "id=\"qemu/999\""));
	assert_non_null(strstr(got[2], "\npve_onboot_status{id=\"qemu/100\",node=\"pve1\","
				       "type=\"qemu\"} 0\n"));
	assert_non_null(strstr(got[2], "\npve_not_backed_up_info{id=\"qemu/999\"} 1\n"));
	for (int round = 0; round < 3; round++)
		free(got[round]);
	free(kept);
	for (size_t i = 0; i < PL_METRICS_SEGS; i++)
		pl_expo_seg_release(&segs[i]);
	json_decref(onboot);
	json_decref(nbu);
	json_decref(a);
}

/* An answer written in parts (pl_metrics_pve_next, each part taken with
 * pl_expo_pending and pl_expo_sent, as serve sends it while its client
 * reads) is byte for byte the answer written whole, plain or gzipped with
 * kept segments, in both formats; the one-hot families of a list bigger
 * than a part are split, so no part holds a whole big family. */
static void
test_parts(void **state)
{
	json_t *a = load_json("answers.json"), *res = json_array(), *x;
	struct pl_expo_seg segs[PL_METRICS_SEGS];
	struct pl_metrics_pve_opts o = { true, true, NULL, true, true };
	struct pl_metrics_index *ix;
	size_t i;

	(void)state;
	memset(segs, 0, sizeof(segs));
	/* 3,000 guests and the list's nodes and storages */
	json_array_foreach(json_object_get(a, "/cluster/resources"), i, x)
		if (strcmp(pl_json_str_or(x, "type", ""), "qemu"))
			json_array_append(res, x);
	for (int g = 0; g < 3000; g++) {
		x = json_pack("{s:s,s:s,s:i,s:s,s:s,s:i,s:i,s:f}", "id", "", "type",
			      g % 2 ? "qemu" : "lxc", "vmid", 1000 + g, "node", "pve1", "status",
			      g % 3 ? "running" : "stopped", "maxmem", 1 << 30, "netin", g * 977,
			      "cpu", g / 3001.0);
		json_object_set_new(x, "id",
				    json_sprintf("%s/%d", g % 2 ? "qemu" : "lxc", 1000 + g));
		if (g % 7 == 0)
			json_object_set_new(x, "lock", json_string("backup"));
		json_array_append_new(res, x);
	}
	ix = pl_metrics_index_new(res);
	for (int fmt = 0; fmt < 2; fmt++)
		for (int gz = 0; gz < 2; gz++) {
			struct pl_metrics_pve_in in = { .status = json_object_get(
								a, "/cluster/status"),
							.resources = res,
							.index = ix,
							.segs = gz ? segs : NULL };
			struct pl_metrics_cursor c = { 0, 0 };
			struct pl_expo e;
			struct pl_buf parts;
			char *whole, *got;
			size_t n, len, most = 0, nparts = 0;
			bool more;

			whole = render(&in, (enum pl_expo_fmt)fmt, false, &n);
			pl_buf_init(&parts, 0);
			pl_expo_init(&e, (enum pl_expo_fmt)fmt, gz, 0);
			do {
				const char *p;

				more = pl_metrics_pve_next(&e, &in, &o, &c);
				if (!more) {
					pl_expo_family(&e, "after", PL_EXPO_GAUGE,
						       "a family after the kept ones");
					pl_expo_sample(&e, "", NULL, 0, 1);
					assert_int_equal(pl_expo_end(&e), 0);
				}
				p = pl_expo_pending(&e, &len);
				pl_buf_add(&parts, p, len);
				most = len > most ? len : most;
				nparts++;
				pl_expo_sent(&e);
			} while (more);
			pl_expo_release(&e);
			got = gz ? gunzip(parts.data, parts.len) : pl_strdup(parts.data);
			assert_string_equal(got, whole);
			if (!gz) { /* pve_ha_state alone is ~1.3 MB here */
				assert_true(n > 3000000);
				assert_true(most < 1200000);
				assert_true(nparts > 23); /* the answer's parts, unsplit */
			}
			free(got);
			free(whole);
			pl_buf_release(&parts);
		}
	for (i = 0; i < PL_METRICS_SEGS; i++)
		pl_expo_seg_release(&segs[i]);
	pl_metrics_index_free(ix);
	json_decref(res);
	json_decref(a);
}

static void
test_exporter_equivalence_pve1(void **state)
{
	(void)state;
	equivalence("pve1");
}

static void
test_exporter_equivalence_pve2(void **state)
{
	(void)state;
	equivalence("pve2");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiate),
		cmocka_unit_test(test_expo),
		cmocka_unit_test(test_expo_pre),
		cmocka_unit_test(test_numbers_and_pystr),
		cmocka_unit_test(test_numbers_many),
		cmocka_unit_test(test_path_template),
		cmocka_unit_test(test_kept_segments),
		cmocka_unit_test(test_kept_small_parts),
		cmocka_unit_test(test_parts),
		cmocka_unit_test(test_exporter_equivalence_pve1),
		cmocka_unit_test(test_exporter_equivalence_pve2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
