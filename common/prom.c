/*
 * prom.c - rendering J4's metrics in the Prometheus text format.
 *
 * Families are written one at a time, each with its HELP and TYPE lines
 * and then its samples for every scenario, as the format requires that
 * a family's samples stay together. The label set and the bucket bounds
 * are described in prom.h.
 */
#include "prom.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for J4's labels and J4_TAGS_MAX escaped tags. */
#define PROM_LABELS_LEN 2048

/* Round bounds in microseconds; each is raised to a bucket boundary. */
static const uint64_t round_le_us[PROM_LE_COUNT] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
    120000000, 300000000, 600000000, 1800000000ULL, 3600000000ULL,
};

void prom_buf_init(struct prom_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void prom_buf_release(struct prom_buf *b)
{
    free(b->data);
    prom_buf_init(b);
}

static void buf_printf(struct prom_buf *b, const char *fmt, ...)
    J4_PRINTF(2, 3);

static void buf_printf(struct prom_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (int attempt = 0; attempt < 2 && !b->oom; attempt++) {
        size_t room = b->cap - b->len;

        va_start(ap, fmt);
        n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 8192;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->oom = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
}

uint64_t prom_le_us(size_t i)
{
    if (i >= PROM_LE_COUNT)
        return UINT64_MAX;
    return hist_bucket_high(hist_index(round_le_us[i] - 1)) + 1;
}

uint64_t prom_count_below(const struct hist *h, uint64_t bound_us)
{
    uint64_t n = 0;

    for (uint32_t i = h->lo; i < h->hi; i++) {
        if (hist_bucket_high(i) >= bound_us)
            break;
        n += h->counts[i];
    }
    return n;
}

static uint64_t hist_count(const struct hist *h)
{
    uint64_t n = 0;

    for (uint32_t i = h->lo; i < h->hi; i++)
        n += h->counts[i];
    return n;
}

/* Escapes a label value: backslash, double quote and newline. */
static void escape(char *out, size_t size, const char *value)
{
    size_t o = 0;

    for (const char *p = value ? value : ""; *p && o + 3 < size; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* ---------------------------------------------------------------- tags */

int prom_tag_key_ok(const char *key)
{
    static const char *const reserved[] = {
        "scenario", "name", "protocol", "outcome", "executor", "le",
        "check", "result", "scenario_name", "state"};
    size_t len = key ? strlen(key) : 0;

    if (len == 0 || len > PROM_TAG_KEY_MAX || isdigit((unsigned char)*key) ||
        strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789_") != len || !strncmp(key, "__", 2))
        return 0;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++) {
        if (!strcmp(key, reserved[i]))
            return 0;
    }
    return 1;
}

int prom_tag_value_ok(const char *value)
{
    size_t len = value ? strlen(value) : 0;

    if (len == 0 || len > PROM_TAG_VALUE_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < 0x20 || value[i] > 0x7e || value[i] == ',')
            return 0;
    }
    return 1;
}

/* Splits "k=v" at its first '='; 0 when the pair is not valid. */
static int tag_pair(const char *pair, size_t len, char *key, char *value)
{
    const char *eq = memchr(pair, '=', len);
    size_t klen = eq ? (size_t)(eq - pair) : 0;

    if (!eq || klen > PROM_TAG_KEY_MAX || len - klen - 1 > PROM_TAG_VALUE_MAX)
        return 0;
    memcpy(key, pair, klen);
    key[klen] = '\0';
    memcpy(value, eq + 1, len - klen - 1);
    value[len - klen - 1] = '\0';
    return prom_tag_key_ok(key) && prom_tag_value_ok(value);
}

int prom_tags_ok(const char *tags)
{
    char key[PROM_TAG_KEY_MAX + 1], value[PROM_TAG_VALUE_MAX + 1];
    char prev[PROM_TAG_KEY_MAX + 1] = "";
    int n = 0;

    if (!tags || !*tags)
        return 1;
    for (const char *p = tags;; n++) {
        size_t len = strcspn(p, ",");

        if (n == J4_TAGS_MAX || !tag_pair(p, len, key, value) ||
            (n && strcmp(prev, key) >= 0))
            return 0;
        memcpy(prev, key, sizeof(prev));
        if (!p[len])
            return 1;
        p += len + 1;
    }
}

/* Appends ,k1="v1",... for the tag text tags to out (size bytes). */
static void tag_labels(char *out, size_t size, const char *tags)
{
    char key[PROM_TAG_KEY_MAX + 1], value[PROM_TAG_VALUE_MAX + 1];
    char escaped[2 * PROM_TAG_VALUE_MAX + 1];
    size_t used = strlen(out);

    if (!tags || !*tags || !prom_tags_ok(tags))
        return;
    for (const char *p = tags; used < size;) {
        size_t len = strcspn(p, ",");

        tag_pair(p, len, key, value);
        escape(escaped, sizeof(escaped), value);
        used += (size_t)snprintf(out + used, size - used, ",%s=\"%s\"", key,
                                 escaped);
        if (!p[len])
            break;
        p += len + 1;
    }
}

static void family(struct prom_buf *b, const char *name, const char *type,
                   const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void seconds_text(char *out, size_t size, uint64_t us)
{
    size_t len;

    snprintf(out, size, "%llu.%06llu", (unsigned long long)(us / 1000000),
             (unsigned long long)(us % 1000000));
    len = strlen(out);
    while (len > 0 && out[len - 1] == '0')
        out[--len] = '\0';
    if (len > 0 && out[len - 1] == '.')
        out[--len] = '\0';
}

/* The _bucket, _sum and _count lines of one histogram; labels is the
 * label list without braces. */
static void histogram(struct prom_buf *b, const char *name,
                      const char *labels, const struct hist *h)
{
    char le[32];
    uint64_t total = hist_count(h);

    for (size_t i = 0; i < PROM_LE_COUNT; i++) {
        seconds_text(le, sizeof(le), prom_le_us(i));
        buf_printf(b, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, le,
                   (unsigned long long)prom_count_below(h, prom_le_us(i)));
    }
    buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
               (unsigned long long)total);
    buf_printf(b, "%s_sum{%s} %.6f\n", name, labels,
               (double)h->sum_us / 1e6);
    buf_printf(b, "%s_count{%s} %llu\n", name, labels,
               (unsigned long long)total);
}

static void series_labels(char *out, size_t size,
                          const struct prom_scenario *sc,
                          const struct prom_series *s)
{
    char name[160], protocol[40];

    escape(name, sizeof(name), s->name);
    escape(protocol, sizeof(protocol), s->protocol);
    snprintf(out, size, "scenario=\"%lld\",name=\"%s\",protocol=\"%s\"",
             (long long)sc->id, name, protocol);
    tag_labels(out, size, s->tags);
}

/* ------------------------------------------------------------- families */

static void render_requests(struct prom_buf *b,
                            const struct prom_scenario *scs, size_t n)
{
    char labels[PROM_LABELS_LEN];

    family(b, "j4_requests_total", "counter",
           "Requests by scenario, request name, protocol and outcome.");
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < scs[i].n_series; k++) {
            const struct prom_series *s = &scs[i].series[k];

            if (s->kind != PROM_REQUEST)
                continue;
            series_labels(labels, sizeof(labels), &scs[i], s);
            for (int o = 0; o < J4_OUTCOME_COUNT_; o++) {
                if (s->outcomes[o] || o == J4_OUTCOME_OK)
                    buf_printf(b, "j4_requests_total{%s,outcome=\"%s\"} "
                               "%llu\n", labels,
                               j4_outcome_name((j4_outcome)o),
                               (unsigned long long)s->outcomes[o]);
            }
        }
    }
}

/* One histogram family over every series of kind (first or second). */
static void render_hist_family(struct prom_buf *b,
                               const struct prom_scenario *scs, size_t n,
                               int kind, int second, const char *name,
                               const char *help)
{
    char labels[PROM_LABELS_LEN];

    family(b, name, "histogram", help);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < scs[i].n_series; k++) {
            const struct prom_series *s = &scs[i].series[k];
            const struct hist *h = second ? s->hist2 : s->hist;

            if (s->kind != kind || !h)
                continue;
            series_labels(labels, sizeof(labels), &scs[i], s);
            histogram(b, name, labels, h);
        }
    }
}

static uint64_t stream_value(const struct prom_series *s, int which)
{
    switch (which) {
    case 0:
        return s->count;
    case 1:
        return s->resets;
    case 2:
        return s->reconnects;
    default:
        return s->opened;
    }
}

static void render_streams(struct prom_buf *b,
                           const struct prom_scenario *scs, size_t n)
{
    static const char *const names[] = {
        "j4_stream_messages_total", "j4_stream_resets_total",
        "j4_stream_reconnects_total", "j4_streams_opened_total"};
    static const char *const helps[] = {
        "Stream messages received.", "Streams that ended by error.",
        "Streams reopened after they ended.", "Streams opened."};
    char labels[PROM_LABELS_LEN];

    render_hist_family(b, scs, n, PROM_STREAM, 0,
                       "j4_stream_first_message_seconds",
                       "Time from opening a stream to its first message.");
    render_hist_family(b, scs, n, PROM_STREAM, 1,
                       "j4_stream_lifetime_seconds",
                       "How long streams lived until they ended.");
    for (int f = 0; f < 4; f++) {
        family(b, names[f], "counter", helps[f]);
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < scs[i].n_series; k++) {
                const struct prom_series *s = &scs[i].series[k];

                if (s->kind != PROM_STREAM)
                    continue;
                series_labels(labels, sizeof(labels), &scs[i], s);
                buf_printf(b, "%s{%s} %llu\n", names[f], labels,
                           (unsigned long long)stream_value(s, f));
            }
        }
    }
}

static void render_scenario_counters(struct prom_buf *b,
                                     const struct prom_scenario *scs,
                                     size_t n)
{
    family(b, "j4_iterations_total", "counter",
           "Scenario steps run by every worker.");
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "j4_iterations_total{scenario=\"%lld\"} %llu\n",
                   (long long)scs[i].id,
                   (unsigned long long)scs[i].iterations);
    family(b, "j4_iteration_errors_total", "counter",
           "Scenario steps that returned an error.");
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "j4_iteration_errors_total{scenario=\"%lld\"} %llu\n",
                   (long long)scs[i].id,
                   (unsigned long long)scs[i].iteration_errors);
}

static void render_executors(struct prom_buf *b,
                             const struct prom_scenario *scs, size_t n)
{
    static const char *const names[] = {"j4_executor_requests_total",
                                        "j4_workers_planned",
                                        "j4_workers_running"};
    static const char *const helps[] = {
        "Requests made by each executor.",
        "The executor's share of the workers the schedule wants now.",
        "Worker threads alive on the executor, stopping ones included."};
    char id[160];

    for (int f = 0; f < 3; f++) {
        family(b, names[f], f ? "gauge" : "counter", helps[f]);
        for (size_t i = 0; i < n; i++) {
            for (size_t e = 0; e < scs[i].n_executors; e++) {
                const struct prom_executor *x = &scs[i].executors[e];

                if (f && !x->has_workers)
                    continue;
                escape(id, sizeof(id), x->id);
                buf_printf(b, "%s{scenario=\"%lld\",executor=\"%s\"} %llu\n",
                           names[f], (long long)scs[i].id, id,
                           (unsigned long long)(f == 0   ? x->requests
                                                : f == 1 ? x->planned
                                                         : x->running));
            }
        }
    }
}

static void render_checks(struct prom_buf *b,
                          const struct prom_scenario *scs, size_t n)
{
    char check[160], labels[PROM_LABELS_LEN];

    family(b, "j4_checks_total", "counter",
           "Checks (j4_check) by name and result.");
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < scs[i].n_series; k++) {
            const struct prom_series *s = &scs[i].series[k];

            if (s->kind != PROM_CHECK)
                continue;
            escape(check, sizeof(check), s->name);
            snprintf(labels, sizeof(labels), "scenario=\"%lld\",check=\"%s\"",
                     (long long)scs[i].id, check);
            tag_labels(labels, sizeof(labels), s->tags);
            buf_printf(b, "j4_checks_total{%s,result=\"passed\"} %llu\n",
                       labels, (unsigned long long)s->count);
            buf_printf(b, "j4_checks_total{%s,result=\"failed\"} %llu\n",
                       labels, (unsigned long long)s->failed);
        }
    }
}

/* Team metric names are [a-z0-9_] (series.h), so they are metric-name
 * safe; anything else is skipped rather than breaking the exposition. */
static int team_name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;

    return len > 0 && len <= 64 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

static int seen_before(const struct prom_scenario *scs, size_t i, size_t k)
{
    const struct prom_series *s = &scs[i].series[k];

    for (size_t a = 0; a <= i; a++) {
        size_t end = a == i ? k : scs[a].n_series;

        for (size_t c = 0; c < end; c++) {
            const struct prom_series *o = &scs[a].series[c];

            if (o->kind == s->kind && !strcmp(o->name, s->name))
                return 1;
        }
    }
    return 0;
}

static void team_samples(struct prom_buf *b, const struct prom_scenario *scs,
                         size_t n, const struct prom_series *first,
                         const char *metric)
{
    char labels[PROM_LABELS_LEN];

    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < scs[i].n_series; k++) {
            const struct prom_series *s = &scs[i].series[k];

            if (s->kind != first->kind || strcmp(s->name, first->name))
                continue;
            snprintf(labels, sizeof(labels), "scenario=\"%lld\"",
                     (long long)scs[i].id);
            tag_labels(labels, sizeof(labels), s->tags);
            if (s->kind == PROM_TEAM_HIST && s->hist)
                histogram(b, metric, labels, s->hist);
            else if (s->kind == PROM_TEAM_COUNTER)
                buf_printf(b, "%s{%s} %llu\n", metric, labels,
                           (unsigned long long)s->count);
            else if (s->kind == PROM_TEAM_GAUGE)
                buf_printf(b, "%s{%s} %lld\n", metric, labels,
                           (long long)s->gauge);
        }
    }
}

static void render_team(struct prom_buf *b, const struct prom_scenario *scs,
                        size_t n)
{
    char metric[128];

    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < scs[i].n_series; k++) {
            const struct prom_series *s = &scs[i].series[k];
            const char *type, *suffix;

            if (s->kind < PROM_TEAM_HIST || s->kind > PROM_TEAM_GAUGE ||
                !team_name_ok(s->name) || seen_before(scs, i, k))
                continue;
            type = s->kind == PROM_TEAM_HIST      ? "histogram"
                   : s->kind == PROM_TEAM_COUNTER ? "counter"
                                                  : "gauge";
            suffix = s->kind == PROM_TEAM_HIST      ? "_seconds"
                     : s->kind == PROM_TEAM_COUNTER ? "_total"
                                                    : "";
            snprintf(metric, sizeof(metric), "j4_team_%s%s", s->name,
                     suffix);
            family(b, metric, type, "A team metric recorded by the scenario.");
            team_samples(b, scs, n, s, metric);
        }
    }
}

static void render_info(struct prom_buf *b, const struct prom_scenario *scs,
                        size_t n)
{
    char name[160], state[40];

    family(b, "j4_scenario_info", "gauge",
           "Always 1: the scenario's name and state as labels.");
    for (size_t i = 0; i < n; i++) {
        if (!scs[i].name)
            continue;
        escape(name, sizeof(name), scs[i].name);
        escape(state, sizeof(state), scs[i].state ? scs[i].state : "");
        buf_printf(b, "j4_scenario_info{scenario=\"%lld\",scenario_name="
                   "\"%s\",state=\"%s\"} 1\n", (long long)scs[i].id, name,
                   state);
    }
}

void prom_render(struct prom_buf *b, const struct prom_scenario *scs,
                 size_t n)
{
    render_info(b, scs, n);
    render_requests(b, scs, n);
    render_hist_family(b, scs, n, PROM_REQUEST, 0,
                       "j4_request_duration_seconds",
                       "Request latency by request name and protocol.");
    render_scenario_counters(b, scs, n);
    render_executors(b, scs, n);
    render_streams(b, scs, n);
    render_checks(b, scs, n);
    render_team(b, scs, n);
}
