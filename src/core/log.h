/*
 * Logging: levels, to stderr by default, optionally as JSON lines. Front-ends
 * set the level and format; library code only calls pl_log*.
 */
#ifndef PL_CORE_LOG_H
#define PL_CORE_LOG_H

#include "core/common.h"

enum pl_log_level { PL_LOG_ERROR, PL_LOG_WARN, PL_LOG_INFO, PL_LOG_DEBUG, PL_LOG_TRACE };

void pl_log_set_level(enum pl_log_level lvl);
enum pl_log_level pl_log_get_level(void);
/* JSON lines ({"ts":..,"level":..,"msg":..}) instead of text. */
void pl_log_set_json(bool json);
/* Where log lines go (default stderr). */
void pl_log_set_stream(FILE *f);

void pl_log(enum pl_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pl_log_error(...) pl_log(PL_LOG_ERROR, __VA_ARGS__)
#define pl_log_warn(...) pl_log(PL_LOG_WARN, __VA_ARGS__)
#define pl_log_info(...) pl_log(PL_LOG_INFO, __VA_ARGS__)
#define pl_log_debug(...) pl_log(PL_LOG_DEBUG, __VA_ARGS__)

struct timespec;
/* Seconds from one clock_gettime() reading to a later one, for log lines. */
double pl_elapsed_s(const struct timespec *from, const struct timespec *to);

#endif
