/*
 * threshold.c - parsing and checking threshold expressions.
 *
 * The grammar is small on purpose ("AGGREGATE OP VALUE", see
 * threshold.h): a mistake is refused when the scenario is submitted, with
 * a rule that says what is accepted, never discovered at the end of a
 * long run.
 */
#include "threshold.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    enum threshold_metric kind;
} builtin[] = {
    {"http_req_duration", METRIC_DURATION}, {"req_duration", METRIC_DURATION},
    {"errors", METRIC_ERRORS},              {"http_req_failed", METRIC_ERRORS},
    {"requests", METRIC_REQUESTS},          {"http_reqs", METRIC_REQUESTS},
    {"iterations", METRIC_ITERATIONS},      {"checks", METRIC_CHECKS},
};

static int metric_kind(const char *metric)
{
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
        if (!strcmp(metric, builtin[i].name))
            return builtin[i].kind;
    }
    return METRIC_TEAM;
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Reads a plain decimal ("250", "0.5", "-3" when sign is set) at p into
 * *v and sets *end past it. No exponents, no hex, no inf or nan: what a
 * person writes in a threshold. Returns -1 when there is none. */
static int parse_decimal(const char *p, int sign, double *v,
                         const char **end)
{
    const char *q = p;

    if (sign && *q == '-')
        q++;
    if (!isdigit((unsigned char)*q))
        return -1;
    while (isdigit((unsigned char)*q))
        q++;
    if (*q == '.') {
        q++;
        if (!isdigit((unsigned char)*q))
            return -1;
        while (isdigit((unsigned char)*q))
            q++;
    }
    if (q - p > 24)
        return -1;
    *v = strtod(p, NULL);
    *end = q;
    return 0;
}

/* Reads the aggregate at *p; -1 when there is none. */
static int parse_agg(const char **p, double *percentile)
{
    static const char *const words[] = {"avg", "min", "max", "med",
                                        "rate", "count", "value"};
    static const enum threshold_agg aggs[] = {AGG_AVG, AGG_MIN, AGG_MAX,
        AGG_MED, AGG_RATE, AGG_COUNT, AGG_VALUE};
    const char *end;

    if (!strncmp(*p, "p(", 2)) {
        if (parse_decimal(*p + 2, 0, percentile, &end) || *end != ')' ||
            !(*percentile > 0) || *percentile > 100)
            return -1;
        *p = end + 1;
        return AGG_P;
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t len = strlen(words[i]);

        if (!strncmp(*p, words[i], len) && !isalnum((unsigned char)(*p)[len])) {
            *p += len;
            return (int)aggs[i];
        }
    }
    return -1;
}

static int parse_op(const char **p)
{
    static const char *const ops[] = {"<=", ">=", "==", "!=", "<", ">"};
    static const enum threshold_op codes[] = {OP_LE, OP_GE, OP_EQ, OP_NE,
                                              OP_LT, OP_GT};

    for (size_t i = 0; i < 6; i++) {
        size_t len = strlen(ops[i]);

        if (!strncmp(*p, ops[i], len)) {
            *p += len;
            return (int)codes[i];
        }
    }
    return -1;
}

int threshold_is_duration(const struct threshold *t)
{
    return t->agg == AGG_P || t->agg == AGG_AVG || t->agg == AGG_MIN ||
           t->agg == AGG_MAX || t->agg == AGG_MED;
}

/* Reads the number and its unit (durations only) into t->value. */
static int parse_value(const char *p, struct threshold *t)
{
    static const struct { const char *unit; double ms; } units[] = {
        {"us", 0.001}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
    };
    const char *end;
    int duration = threshold_is_duration(t);

    /* Durations are never negative; other values (a gauge) may be. */
    char unit[4];
    size_t len;

    if (parse_decimal(p, !duration, &t->value, &end))
        return -1;
    /* The unit follows the number directly ("250ms", not "250 ms");
     * white space may end the expression. */
    len = strcspn(end, " \t");
    if (skip_space(end + len)[0] != '\0' || len >= sizeof(unit))
        return -1;
    memcpy(unit, end, len);
    unit[len] = '\0';
    if (len == 0)               /* a bare number: ms for durations */
        return !duration || t->value <= THRESHOLD_DURATION_MAX_MS ? 0 : -1;
    if (!duration)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (!strcmp(unit, units[i].unit)) {
            t->value *= units[i].ms;
            return t->value <= THRESHOLD_DURATION_MAX_MS ? 0 : -1;
        }
    }
    return -1;
    /* The unit follows the number directly: "250ms", not "250 ms". */
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (!strcmp(skip_space(end) == end ? end : "", units[i].unit)) {
            t->value *= units[i].ms;
            return t->value <= THRESHOLD_DURATION_MAX_MS ? 0 : -1;
        }
    }
    return skip_space(end)[0] ? -1 : 0;
}

/* Which aggregates each metric takes. */
static int agg_allowed(enum threshold_metric kind, enum threshold_agg agg)
{
    switch (kind) {
    case METRIC_DURATION:
        return agg <= AGG_MED;
    case METRIC_ERRORS:
    case METRIC_REQUESTS:
    case METRIC_ITERATIONS:
    case METRIC_CHECKS:
        return agg == AGG_RATE || agg == AGG_COUNT;
    default:
        return 1;
    }
}

int threshold_parse(const char *metric, const char *expr, struct threshold *t,
                    char *rule, size_t rule_size)
{
    const char *p;
    int agg, op;

    memset(t, 0, sizeof(*t));
    if (strlen(expr) > THRESHOLD_EXPR_MAX) {
        snprintf(rule, rule_size, "must be at most %d characters",
                 THRESHOLD_EXPR_MAX);
        return -1;
    }
    snprintf(t->metric, sizeof(t->metric), "%s", metric);
    snprintf(t->expr, sizeof(t->expr), "%s", expr);
    t->kind = (enum threshold_metric)metric_kind(metric);
    p = skip_space(expr);
    agg = parse_agg(&p, &t->percentile);
    p = skip_space(p);
    op = agg < 0 ? -1 : parse_op(&p);
    if (agg < 0 || op < 0) {
        snprintf(rule, rule_size, "must be AGGREGATE OP VALUE such as "
                 "'p(95)<250ms' or 'rate<0.01' (aggregates: p(N), avg, min, "
                 "max, med, rate, count, value; OP: < <= > >= == !=)");
        return -1;
    }
    t->agg = (enum threshold_agg)agg;
    t->op = (enum threshold_op)op;
    if (!agg_allowed(t->kind, t->agg)) {
        snprintf(rule, rule_size, "metric '%s' takes %s", metric,
                 t->kind == METRIC_DURATION ? "p(N), avg, min, max or med"
                                            : "rate or count");
        return -1;
    }
    if (parse_value(skip_space(p), t) != 0) {
        snprintf(rule, rule_size, "the value must be a number%s",
                 threshold_is_duration(t)
                     ? ", with an optional unit us, ms, s, m or h"
                     : " without a unit");
        return -1;
    }
    return 0;
}

int threshold_holds(const struct threshold *t, double v)
{
    switch (t->op) {
    case OP_LT:
        return v < t->value;
    case OP_LE:
        return v <= t->value;
    case OP_GT:
        return v > t->value;
    case OP_GE:
        return v >= t->value;
    case OP_EQ:
        return v == t->value;
    default:
        return v != t->value;
    }
}

const char *threshold_agg_text(const struct threshold *t, char *buf,
                               size_t size)
{
    static const char *const names[] = {"p", "avg", "min", "max", "med",
                                        "rate", "count", "value"};

    if (t->agg == AGG_P)
        snprintf(buf, size, "p(%g)", t->percentile);
    else
        snprintf(buf, size, "%s", names[t->agg]);
    return buf;
}
