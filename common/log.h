/*
 * log.h - leveled log lines for J4's services.
 *
 * One line per event a person can act on, written to stderr as
 * "2026-12-04T16:30:00.123Z info  distributor: leader: won, epoch 4".
 * Nothing on a request path logs: count it and expose the counter.
 * Thread-safe; a line is written with one write(2).
 */
#ifndef J4_COMMON_LOG_H
#define J4_COMMON_LOG_H

#include "j4.h"

/* Sets the component shown on every line ("distributor", "executor e-1")
 * and the most verbose level written. Call once, early, from main. */
void log_init(const char *component, j4_log_level level);

/* Parses "error", "warn", "info" or "debug". Returns J4_OK or
 * J4_ERR_INVALID. */
int log_level_parse(const char *text, j4_log_level *level);

void log_msg(j4_log_level level, const char *fmt, ...) J4_PRINTF(2, 3);

#define log_error(...) log_msg(J4_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(J4_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(J4_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(J4_LOG_DEBUG, __VA_ARGS__)

#endif
