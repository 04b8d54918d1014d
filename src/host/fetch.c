/*
 * The parser of what a node sends back for the SSH reader's one-command
 * prefetch (reader_ssh.c): untrusted bytes in, a cache of files, links and
 * directory listings out, or nothing at all when any record is malformed.
 */
#include "core/common.h"
#include "host/reader.h"
#include "core/err.h"

/* The most names one directory record may hold (as ssh_list reads). */
#define FETCH_NAMES_MAX 4096

/* The end of the line starting at p (its '\n'), or NULL. */
static const char *
eol(const char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

/* The start of the first line from p that is exactly marker, or NULL. */
static const char *
marker_line(const char *p, const char *end, const char *marker, size_t mlen)
{
	const char *line = p;

	while (line < end) {
		const char *nl = eol(line, end);

		if (nl == NULL)
			return NULL;
		if ((size_t)(nl - line) == mlen && memcmp(line, marker, mlen) == 0)
			return line;
		line = nl + 1;
	}
	return NULL;
}

static json_t *
names_of(const char *p, const char *m)
{
	json_t *names = json_array();

	for (const char *nl; p < m; p = nl + 1) {
		nl = eol(p, m);
		if (nl == NULL || json_array_size(names) >= FETCH_NAMES_MAX) {
			json_decref(names);
			return NULL;
		}
		if (nl > p)
			json_array_append_new(names, json_stringn_nocheck(p, (size_t)(nl - p)));
	}
	return names;
}

json_t *
pl_host_fetch_parse(const char *data, size_t len, const char *marker)
{
	size_t mlen = strlen(marker);
	const char *p = data, *end;
	json_t *cache;

	/* all or nothing: without the end line (cut short) every read goes on
	 * demand */
	if (data == NULL || mlen == 0 || len < mlen + 3 || data[len - 1] != '\n' ||
	    memcmp(data + len - 1 - mlen, marker, mlen) != 0 ||
	    memcmp(data + len - 3 - mlen, "E ", 2) != 0 ||
	    (len > mlen + 3 && data[len - 4 - mlen] != '\n'))
		return NULL;
	end = data + len - 3 - mlen; /* the end line */
	cache = json_object();
	while (p < end) {
		const char *nl = eol(p, end), *m, *key;
		char kind = p[0], *path;
		json_t *e = NULL;

		if (nl == NULL || nl - p < 3 || p[1] != ' ' || p[2] != '/' ||
		    memchr(p, '\0', (size_t)(nl - p)) != NULL)
			goto bad;
		path = pl_strndup(p + 2, (size_t)(nl - p - 2));
		p = nl + 1;
		if (kind == 'L') {
			char *sp = strchr(path, ' ');

			if (sp == NULL)
				goto bad_path;
			*sp = '\0';
			e = json_pack("{s:s,s:o}", "t", "L", "target",
				      json_stringn_nocheck(sp + 1, strlen(sp + 1)));
		} else if (kind == 'N') {
			e = json_pack("{s:s}", "t", "N");
		} else if (kind == 'F' || kind == 'D') {
			/* the bytes, then "\n" marker "\n" (F: the echo's newline
			 * is not the file's) */
			if ((m = marker_line(p, end, marker, mlen)) == NULL)
				goto bad_path;
			if (kind == 'D') {
				json_t *names = names_of(p, m);

				if (names == NULL)
					goto bad_path;
				e = json_pack("{s:s,s:o}", "t", "D", "names", names);
			} else if (m > p && (size_t)(m - p - 1) <= PL_HOST_READ_MAX) {
				e = json_pack("{s:s,s:o}", "t", "F", "data",
					      json_stringn_nocheck(p, (size_t)(m - p - 1)));
			} else if (m == p) {
				goto bad_path; /* not even the echo's newline */
			} /* else over the cap: left to the read, which says so */
			p = m + mlen + 1;
		} else {
			goto bad_path;
		}
		/* "/./x" and "/." as the shell's globs of "." give them */
		key = path;
		if (!strcmp(key, "/.") || !strncmp(key, "/./", 3))
			key += 2;
		if (*key == '\0')
			key = "/";
		if (e != NULL && !pl_host_path_ok(key)) {
			json_decref(e);
			goto bad_path;
		}
		if (e != NULL)
			json_object_set_new(cache, key, e);
		free(path);
		continue;
	bad_path:
		free(path);
		goto bad;
	}
	return cache;
bad:
	json_decref(cache);
	return NULL;
}
