/*
 * log.c - leveled log lines on stderr for J4's services.
 *
 * Each line is formatted into one buffer and written with a single
 * write(2), so lines from different threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"

static char log_component[96] = "j4";
static j4_log_level log_max = J4_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info",
                                          "debug"};

void log_init(const char *component, j4_log_level level)
{
    snprintf(log_component, sizeof(log_component), "%s", component);
    log_max = level;
}

int log_level_parse(const char *text, j4_log_level *level)
{
    for (int i = 0; i <= J4_LOG_DEBUG; i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *level = (j4_log_level)i;
            return J4_OK;
        }
    }
    return J4_ERR_INVALID;
}

void log_msg(j4_log_level level, const char *fmt, ...)
{
    char line[2048];
    char when[32];
    va_list ap;
    int n;

    if (level > log_max || level < J4_LOG_ERROR)
        return;

    clock_format_wall(clock_wall_ms(), when, sizeof(when));
    n = snprintf(line, sizeof(line), "%s %-5s %s: ", when,
                 level_names[level], log_component);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;

    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);

    n = (int)strlen(line);
    line[n++] = '\n';
    /* Nothing useful to do when stderr is gone. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}
