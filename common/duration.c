/*
 * duration.c - parsing and formatting "1h", "5m", "10s", "250ms", "1m30s".
 *
 * Units must come largest first and each at most once, so every duration
 * has exactly one spelling that duration_format() also produces.
 */
#include "duration.h"

#include <stdio.h>
#include <string.h>

#include "j4.h"

struct unit {
    const char *name;
    int64_t ms;
};

/* Largest first; "ms" before "m" where a prefix matters is handled by
 * matching the longest name at each position. */
static const struct unit units[] = {
    {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};

#define UNIT_COUNT (sizeof(units) / sizeof(units[0]))

/* Index of the unit at text, or -1. Sets *len to its length. */
static int unit_match(const char *text, size_t *len)
{
    if (text[0] == 'm' && text[1] == 's') {
        *len = 2;
        return 3;
    }
    for (int i = 0; i < 3; i++) {
        if (text[0] == units[i].name[0]) {
            *len = 1;
            return i;
        }
    }
    return -1;
}

int duration_parse(const char *text, int64_t *ms)
{
    int64_t total = 0;
    int next_unit = 0;
    const char *p = text;

    if (text == NULL || *text == '\0')
        return J4_ERR_INVALID;

    while (*p != '\0') {
        int64_t n = 0;
        size_t len;
        int u;

        if (*p < '0' || *p > '9')
            return J4_ERR_INVALID;
        while (*p >= '0' && *p <= '9') {
            if (n > DURATION_MAX_MS)
                return J4_ERR_INVALID;
            n = n * 10 + (*p++ - '0');
        }

        u = unit_match(p, &len);
        if (u < next_unit)
            return J4_ERR_INVALID;
        if (n > DURATION_MAX_MS / units[u].ms)
            return J4_ERR_INVALID;
        total += n * units[u].ms;
        if (total > DURATION_MAX_MS)
            return J4_ERR_INVALID;
        next_unit = u + 1;
        p += len;
    }

    *ms = total;
    return J4_OK;
}

char *duration_format(int64_t ms, char *buf, size_t size)
{
    size_t used = 0;

    if (size == 0)
        return buf;
    buf[0] = '\0';
    if (ms <= 0) {
        snprintf(buf, size, "0s");
        return buf;
    }

    for (size_t i = 0; i < UNIT_COUNT && ms > 0; i++) {
        int64_t n = ms / units[i].ms;

        if (n == 0)
            continue;
        ms -= n * units[i].ms;
        used += snprintf(buf + used, used < size ? size - used : 0,
                         "%lld%s", (long long)n, units[i].name);
        if (used >= size)
            break;
    }
    return buf;
}
