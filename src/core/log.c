/*
 * Levelled logging to a stream, as text or JSON lines (see log.h).
 */
#include "core/common.h"
#include "core/log.h"
#include "core/buf.h"
#include "core/json.h"

#include <time.h>

static enum pl_log_level pl_log_level = PL_LOG_WARN;
static bool pl_log_json;
static FILE *pl_log_stream;

static const char *const pl_log_names[] = { "error", "warn", "info", "debug", "trace" };

void
pl_log_set_level(enum pl_log_level lvl)
{
	pl_log_level = lvl;
}

enum pl_log_level
pl_log_get_level(void)
{
	return pl_log_level;
}

void
pl_log_set_json(bool json)
{
	pl_log_json = json;
}

void
pl_log_set_stream(FILE *f)
{
	pl_log_stream = f;
}

void
pl_log(enum pl_log_level lvl, const char *fmt, ...)
{
	FILE *out = pl_log_stream ? pl_log_stream : stderr;
	struct pl_buf msg;
	struct timespec ts;
	struct tm tm;
	char when[40];
	va_list ap;

	if (lvl > pl_log_level)
		return;
	pl_buf_init(&msg, 1 << 16);
	va_start(ap, fmt);
	(void)pl_buf_vaddf(&msg, fmt, ap);
	va_end(ap);

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	if (pl_log_json) {
		json_t *o = json_pack("{s:s+,s:s,s:s}", "ts", when, "Z", "level",
				      pl_log_names[lvl], "msg", msg.data);
		char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;

		if (line)
			fprintf(out, "%s\n", line);
		free(line);
		json_decref(o);
	} else {
		fprintf(out, "%s.%03ldZ %-5s %s\n", when, ts.tv_nsec / 1000000, pl_log_names[lvl],
			msg.data);
	}
	fflush(out);
	pl_buf_release(&msg);
}

double
pl_elapsed_s(const struct timespec *from, const struct timespec *to)
{
	return (double)(to->tv_sec - from->tv_sec) + (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}
