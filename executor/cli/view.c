/*
 * view.c - live progress and the final report of a scenario.
 *
 * Everything shown comes from the scenario object the distributor serves;
 * nothing is computed here that the server already knows, except the
 * progress fraction, which follows from the schedule in the spec.
 */
#define _GNU_SOURCE
#include "view.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "schedule.h"
#include "spec.h"

void view_init(struct view *v, FILE *out, int per_executor)
{
    memset(v, 0, sizeof(*v));
    v->out = out;
    v->tty = isatty(fileno(out));
    v->per_executor = per_executor;
}

static const char *str(json_t *obj, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? s : def;
}

static double num(json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

int view_is_ended(json_t *scenario)
{
    const char *state = str(scenario, "state", "");

    return strcmp(state, "finished") == 0 ||
           strcmp(state, "stopped") == 0 || strcmp(state, "failed") == 0;
}

/* Parses "2026-12-04T16:30:00.123Z" into wall ms; 0 when absent. */
static int64_t parse_time(const char *text)
{
    struct tm tm;
    int ms = 0;
    const char *rest;

    if (text == NULL)
        return 0;
    memset(&tm, 0, sizeof(tm));
    rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return 0;
    if (*rest == '.')
        sscanf(rest + 1, "%3d", &ms);
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Schedule length in ms from the scenario's normalized spec. */
static int64_t schedule_length(json_t *scenario)
{
    struct spec spec;
    struct spec_error err;
    int64_t end;

    if (spec_parse_json(json_object_get(scenario, "spec"), &spec, &err))
        return 0;
    end = schedule_end_ms(&spec.schedule);
    spec_release(&spec);
    return end;
}

static void progress_bar(char *buf, size_t size, double fraction)
{
    size_t width = 24, full;

    if (fraction < 0)
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    full = (size_t)(fraction * width + 0.5);
    if (size < width + 3)
        return;
    buf[0] = '[';
    for (size_t i = 0; i < width; i++)
        buf[1 + i] = i < full ? '#' : '.';
    buf[width + 1] = ']';
    buf[width + 2] = '\0';
}

static double p95_ms(json_t *metrics)
{
    return num(json_object_get(metrics, "latency_ms"), "p95");
}

static void draw_executors(struct view *v, json_t *scenario)
{
    json_t *ex;
    size_t i;

    json_array_foreach(json_object_get(scenario, "executors"), i, ex) {
        fprintf(v->out, "  %-20s planned %5d  running %5d\n",
                str(ex, "id", "?"), (int)num(ex, "planned"),
                (int)num(ex, "running"));
        v->lines++;
    }
}

void view_progress(struct view *v, json_t *scenario)
{
    json_t *m = json_object_get(scenario, "metrics");
    int64_t start = parse_time(str(scenario, "started_at", NULL));
    int64_t length = schedule_length(scenario);
    double elapsed = start ? (clock_wall_ms() - start) / 1000.0 : 0;
    double requests = num(m, "requests");
    char bar[32] = "";

    if (elapsed < 0)
        elapsed = 0;
    if (v->tty && v->lines > 0)
        fprintf(v->out, "\033[%dA\033[J", v->lines);
    v->lines = 0;

    progress_bar(bar, sizeof(bar), length ? elapsed * 1000 / length : 0);
    fprintf(v->out,
            "%s %-8s %-9s %6.1fs/%.0fs  running %d planned %d  req %.0f  "
            "err %.0f (%.2f%%)  rps %.0f  p95 %.2fms\n",
            v->tty ? bar : "", str(scenario, "state", "?"),
            str(scenario, "phase", "?"), elapsed, length / 1000.0,
            (int)num(scenario, "running"), (int)num(scenario, "planned"),
            requests, num(m, "errors"), 100 * num(m, "error_rate"),
            num(m, "rps"), p95_ms(m));
    v->lines++;
    if (v->per_executor)
        draw_executors(v, scenario);
    fflush(v->out);
}

static void report_outcomes(struct view *v, json_t *m)
{
    const char *kind;
    json_t *count;

    json_object_foreach(json_object_get(m, "outcomes"), kind, count) {
        if (strcmp(kind, "ok") != 0)
            fprintf(v->out, "    %-14s %.0f\n", kind,
                    json_number_value(count));
    }
}

static void report_latency(struct view *v, json_t *m)
{
    json_t *lat = json_object_get(m, "latency_ms");

    fprintf(v->out,
            "  latency      p50 %.2f ms  p90 %.2f ms  p95 %.2f ms  "
            "p99 %.2f ms  max %.2f ms  mean %.2f ms\n",
            num(lat, "p50"), num(lat, "p90"), num(lat, "p95"),
            num(lat, "p99"), num(lat, "max"), num(lat, "mean"));
}

void view_report(struct view *v, json_t *scenario)
{
    json_t *m = json_object_get(scenario, "metrics");
    int64_t start = parse_time(str(scenario, "started_at", NULL));
    int64_t end = parse_time(str(scenario, "ended_at", NULL));
    const char *reason = str(scenario, "reason", NULL);

    fprintf(v->out, "\nscenario '%s' (#%.0f, plugin %s): %s\n",
            str(scenario, "name", "?"), num(scenario, "id"),
            str(scenario, "scenario", "?"), str(scenario, "state", "?"));
    if (reason)
        fprintf(v->out, "  reason       %s\n", reason);
    /* A scenario refused before its first step ends before it began. */
    if (start && end >= start)
        fprintf(v->out, "  duration     %.1f s\n", (end - start) / 1000.0);
    else if (end)
        fprintf(v->out, "  duration     none: it ended before it began\n");
    fprintf(v->out, "  requests     %.0f  (%.1f/s)\n", num(m, "requests"),
            num(m, "rps"));
    fprintf(v->out, "  errors       %.0f  (%.2f%%)\n", num(m, "errors"),
            100 * num(m, "error_rate"));
    report_outcomes(v, m);
    fprintf(v->out, "  iterations   %.0f  (%.0f failed)\n",
            num(m, "iterations"), num(m, "iteration_errors"));
    report_latency(v, m);
    fflush(v->out);
}
