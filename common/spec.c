/*
 * spec.c - parsing and checking the scenario document.
 *
 * A document comes in as JSON from the REST API and leaves as a struct
 * spec with every default filled in, or as a refusal that names the field
 * at fault and the rule it broke. Checking is strict: unknown fields, wrong
 * types and out-of-range values are refused whole, never coerced, so what
 * is stored is exactly what the user meant. docs/scenario-format.md lists
 * the same rules for people; keep the two in step.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "j4.h"
#include "schedule.h"
#include "spec.h"

#define RULE_DURATION "must be a duration such as 250ms, 10s or 5m"

static const char *const top_fields[] = {
    "name", "scenario", "params", "target", "rampup",
    "hold", "rampdown", "grace",  "thresholds", NULL,
};
static const char *const rampup_fields[] = {"step", "interval", "mode", NULL};
static const char *const rampdown_fields[] = {"step", "interval", NULL};
static const char *const threshold_fields[] = {
    "threshold", "abort_on_fail", "delay_abort_eval", NULL};

/* ------------------------------------------------------------ refusals */

/* Fills err with the field path and a printf-style rule; returns
 * J4_ERR_INVALID so callers can "return refuse(...)". */
static int refuse(struct spec_error *err, const char *field, const char *fmt,
                  ...) J4_PRINTF(3, 4);

static int refuse(struct spec_error *err, const char *field, const char *fmt,
                  ...)
{
    va_list ap;

    snprintf(err->field, sizeof(err->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(err->rule, sizeof(err->rule), fmt, ap);
    va_end(ap);
    return J4_ERR_INVALID;
}

/* Joins a parent object's name and a member into "rampup.step". */
static void field_path(char *buf, size_t size, const char *parent,
                       const char *member)
{
    if (parent)
        snprintf(buf, size, "%s.%s", parent, member);
    else
        snprintf(buf, size, "%s", member);
}

/* Refuses the first member of obj whose name is not in allowed. */
static int check_known_fields(const json_t *obj, const char *parent,
                              const char *const *allowed,
                              struct spec_error *err)
{
    const char *key;
    json_t *value;
    char path[sizeof(err->field)];

    json_object_foreach((json_t *)obj, key, value)
    {
        size_t i;

        for (i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                break;
        if (!allowed[i]) {
            field_path(path, sizeof(path), parent, key);
            return refuse(err, path, "unknown field");
        }
    }
    return J4_OK;
}

/* -------------------------------------------------------------- fields */

static int name_chars_ok(const char *text, size_t len, int plugin)
{
    size_t i;

    if (!text || len < 1 || len > SPEC_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        char c = text[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';

        if (!plugin)
            ok = ok || (c >= 'A' && c <= 'Z') || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int spec_is_plain_name(const char *text)
{
    return text && name_chars_ok(text, strlen(text), 0);
}

int spec_is_plugin_name(const char *text)
{
    return text && name_chars_ok(text, strlen(text), 1);
}

/* Reads a required name-like string into out (SPEC_NAME_MAX + 1 bytes).
 * Uses the JSON length so an embedded NUL cannot hide a bad tail. */
static int get_name(const json_t *doc, const char *field, int plugin,
                    char *out, struct spec_error *err)
{
    json_t *value = json_object_get(doc, field);
    const char *rule;

    rule = plugin ? "must be 1-64 characters of a-z, 0-9 and _"
                  : "must be 1-64 characters of A-Z, a-z, 0-9, _ and -";
    if (!value)
        return refuse(err, field, "is required; %s", rule);
    if (!json_is_string(value))
        return refuse(err, field, "must be a string; %s", rule);
    if (!name_chars_ok(json_string_value(value), json_string_length(value),
                       plugin))
        return refuse(err, field, "%s", rule);
    memcpy(out, json_string_value(value), json_string_length(value) + 1);
    return J4_OK;
}

/* Reads an integer from 1 to max. Only JSON integers count: 10.0, "10"
 * and true are refused rather than converted. */
static int get_count(const json_t *value, const char *field, uint32_t max,
                     uint32_t *out, struct spec_error *err)
{
    json_int_t n;

    if (!value)
        return refuse(err, field, "is required; an integer from 1 to %u", max);
    if (!json_is_integer(value))
        return refuse(err, field, "must be an integer from 1 to %u", max);
    n = json_integer_value(value);
    if (n < 1 || n > (json_int_t)max)
        return refuse(err, field, "must be an integer from 1 to %u", max);
    *out = (uint32_t)n;
    return J4_OK;
}

/* Reads a duration string in [min_ms, max_ms]. */
static int get_duration(const json_t *value, const char *field, int64_t min_ms,
                        int64_t max_ms, int64_t *out, struct spec_error *err)
{
    char lo[32], hi[32];
    int64_t ms;

    duration_format(min_ms, lo, sizeof(lo));
    duration_format(max_ms, hi, sizeof(hi));
    if (!value)
        return refuse(err, field,
                      "is required; a duration such as 250ms, "
                      "10s or 5m, from %s to %s",
                      lo, hi);
    if (!json_is_string(value))
        return refuse(err, field,
                      "must be a string holding a duration "
                      "such as 250ms, 10s or 5m, from %s to %s",
                      lo, hi);
    if (strlen(json_string_value(value)) != json_string_length(value) ||
        duration_parse(json_string_value(value), &ms) != J4_OK)
        return refuse(err, field, RULE_DURATION ", from %s to %s", lo, hi);
    if (ms < min_ms)
        return refuse(err, field, "must be at least %s", lo);
    if (ms > max_ms)
        return refuse(err, field, "must be at most %s", hi);
    *out = ms;
    return J4_OK;
}

/* Serializes params compactly into *out (malloc'd), "{}" when absent. */
static int get_params(const json_t *doc, char **out, struct spec_error *err)
{
    json_t *value = json_object_get(doc, "params");
    size_t size = 2;

    if (value && !json_is_object(value))
        return refuse(err, "params", "must be a JSON object");
    if (value)
        size = json_dumpb(value, NULL, 0, JSON_COMPACT);
    if (size > SPEC_PARAMS_MAX)
        return refuse(err, "params",
                      "must be at most %d bytes as compact JSON, not %zu",
                      SPEC_PARAMS_MAX, size);

    *out = value ? json_dumps(value, JSON_COMPACT) : strdup("{}");
    if (*out)
        return J4_OK;
    refuse(err, "params", "out of memory");
    return J4_ERR_NOMEM;
}

/* ------------------------------------------------------ rampup/rampdown */

static int get_mode(const json_t *ramp, int *exponential,
                    struct spec_error *err)
{
    json_t *value = json_object_get(ramp, "mode");
    const char *rule = "must be \"linear\" or \"exponential\"";

    *exponential = 0;
    if (!value)
        return J4_OK;
    if (!json_is_string(value))
        return refuse(err, "rampup.mode", "must be a string; %s", rule);
    if (strcmp(json_string_value(value), "exponential") == 0 &&
        json_string_length(value) == strlen("exponential"))
        *exponential = 1;
    else if (strcmp(json_string_value(value), "linear") != 0 ||
             json_string_length(value) != strlen("linear"))
        return refuse(err, "rampup.mode", "%s", rule);
    return J4_OK;
}

/* Reads rampup or rampdown (which is "rampup" or "rampdown"). Absent
 * means one step of target workers every second: everyone at once. */
static int get_ramp(const json_t *doc, const char *which,
                    const char *const *allowed, uint32_t target,
                    uint32_t *step, int64_t *interval_ms,
                    struct spec_error *err)
{
    json_t *ramp = json_object_get(doc, which);
    char path[sizeof(err->field)];
    int rc;

    *step = target;
    *interval_ms = 1000;
    if (!ramp)
        return J4_OK;
    if (!json_is_object(ramp))
        return refuse(err, which,
                      "must be a JSON object with step and interval");
    rc = check_known_fields(ramp, which, allowed, err);
    if (rc != J4_OK)
        return rc;

    field_path(path, sizeof(path), which, "step");
    rc = get_count(json_object_get(ramp, "step"), path, SPEC_TARGET_MAX, step,
                   err);
    if (rc != J4_OK)
        return rc;

    field_path(path, sizeof(path), which, "interval");
    return get_duration(json_object_get(ramp, "interval"), path, 1,
                        SPEC_INTERVAL_MAX_MS, interval_ms, err);
}

/* ------------------------------------------------------------ schedule */

/* Refuses a schedule that ends after DURATION_MAX_MS, blaming the part
 * that takes longest: the rampup or rampdown interval, or hold. */
static int check_total(const struct schedule *s, struct spec_error *err)
{
    int64_t up, down, end;
    uint32_t down_steps;
    const char *field = "hold";
    char up_text[32], hold_text[32], down_text[32];

    end = schedule_end_ms(s);
    if (end >= 0 && end <= DURATION_MAX_MS)
        return J4_OK;

    up = ((int64_t)schedule_rampup_steps(s) - 1) * s->rampup_interval_ms;
    down_steps = (s->target + s->rampdown_step - 1) / s->rampdown_step;
    down = ((int64_t)down_steps - 1) * s->rampdown_interval_ms;
    if (up > s->hold_ms && up >= down)
        field = "rampup.interval";
    else if (down > s->hold_ms)
        field = "rampdown.interval";

    return refuse(err, field,
                  "makes the schedule longer than 30 days (rampup %s, "
                  "hold %s, rampdown %s)",
                  duration_format(up, up_text, 32),
                  duration_format(s->hold_ms, hold_text, 32),
                  duration_format(down, down_text, 32));
}

/* Refuses a schedule under which no worker would ever run: a single
 * rampup step, no hold, and a first rampdown step that removes everyone. */
static int check_runs(const struct schedule *s, struct spec_error *err)
{
    if (schedule_planned(s, 0) > 0 ||
        schedule_next_change_ms(s, 0) != INT64_MAX)
        return J4_OK;
    return refuse(err, "hold",
                  "must be longer than 0s: with this rampup and rampdown "
                  "no worker would ever run");
}

/* ---------------------------------------------------------- thresholds */

/* One entry: "p(95)<250ms" or {"threshold": ..., "abort_on_fail": ...,
 * "delay_abort_eval": ...}. path is "thresholds.METRIC[i]". */
static int get_threshold(const char *metric, const json_t *entry,
                         const char *path, struct threshold *t,
                         struct spec_error *err)
{
    const json_t *expr = entry, *abort_on, *delay;
    char field[256], rule[sizeof(err->rule)];
    int64_t delay_ms = 0;
    int rc;

    if (json_is_object(entry)) {
        rc = check_known_fields(entry, path, threshold_fields, err);
        if (rc != J4_OK)
            return rc;
        expr = json_object_get(entry, "threshold");
        field_path(field, sizeof(field), path, "threshold");
    } else {
        snprintf(field, sizeof(field), "%s", path);
    }
    if (!json_is_string(expr))
        return refuse(err, field, "must be a string such as 'p(95)<250ms', "
                      "or an object with \"threshold\", \"abort_on_fail\" "
                      "and \"delay_abort_eval\"");
    if (threshold_parse(metric, json_string_value(expr), t, rule,
                        sizeof(rule)) != 0)
        return refuse(err, field, "%s", rule);
    if (!json_is_object(entry))
        return J4_OK;
    abort_on = json_object_get(entry, "abort_on_fail");
    field_path(field, sizeof(field), path, "abort_on_fail");
    if (abort_on && !json_is_boolean(abort_on))
        return refuse(err, field, "must be true or false");
    t->abort_on_fail = json_is_true(abort_on);
    delay = json_object_get(entry, "delay_abort_eval");
    field_path(field, sizeof(field), path, "delay_abort_eval");
    if (delay && get_duration(delay, field, 0, SPEC_HOLD_MAX_MS, &delay_ms,
                              err) != J4_OK)
        return J4_ERR_INVALID;
    t->delay_abort_ms = delay_ms;
    return J4_OK;
}

static int get_metric_thresholds(const char *metric, const json_t *list,
                                 struct spec *out, struct spec_error *err)
{
    char path[128];
    size_t len = strlen(metric);
    size_t i;
    json_t *entry;

    snprintf(path, sizeof(path), "thresholds.%s", metric);
    if (len == 0 || len > SPEC_NAME_MAX ||
        strspn(metric, "abcdefghijklmnopqrstuvwxyz0123456789_") != len)
        return refuse(err, path, "a metric name must be 1-64 characters of "
                      "a-z, 0-9 and _");
    if (!json_is_array(list) || json_array_size(list) == 0)
        return refuse(err, path, "must be a non-empty array of thresholds "
                      "such as [\"p(95)<250ms\"]");
    json_array_foreach(list, i, entry) {
        char entry_path[160];

        if (out->n_thresholds >= THRESHOLDS_MAX)
            return refuse(err, "thresholds", "at most %d thresholds",
                          THRESHOLDS_MAX);
        snprintf(entry_path, sizeof(entry_path), "%s[%zu]", path, i);
        if (get_threshold(metric, entry, entry_path,
                          &out->thresholds[out->n_thresholds], err) != J4_OK)
            return J4_ERR_INVALID;
        out->n_thresholds++;
    }
    return J4_OK;
}

/* Fills out->thresholds (owned by out whatever the result). */
static int get_thresholds(const json_t *doc, struct spec *out,
                          struct spec_error *err)
{
    const json_t *all = json_object_get(doc, "thresholds");
    const char *metric;
    json_t *list;

    if (!all)
        return J4_OK;
    if (!json_is_object(all))
        return refuse(err, "thresholds", "must be an object mapping a metric "
                      "to a list of thresholds, such as {\"errors\": "
                      "[\"rate<0.01\"]}");
    out->thresholds = calloc(THRESHOLDS_MAX, sizeof(*out->thresholds));
    if (!out->thresholds)
        return refuse(err, "thresholds", "out of memory");
    json_object_foreach((json_t *)all, metric, list) {
        if (get_metric_thresholds(metric, list, out, err) != J4_OK)
            return J4_ERR_INVALID;
    }
    return J4_OK;
}

/* ------------------------------------------------------------- parsing */

/* Checks every field of an object document into out, in document-reading
 * order so the first refusal is stable. out->params_json is owned by the
 * caller whatever the result. */
static int parse_fields(const json_t *doc, struct spec *out,
                        struct spec_error *err)
{
    struct schedule *s = &out->schedule;
    json_t *rampup = json_object_get(doc, "rampup");
    int rc;

    rc = check_known_fields(doc, NULL, top_fields, err);
    if (rc == J4_OK)
        rc = get_name(doc, "name", 0, out->name, err);
    if (rc == J4_OK)
        rc = get_name(doc, "scenario", 1, out->scenario, err);
    if (rc == J4_OK)
        rc = get_params(doc, &out->params_json, err);
    if (rc == J4_OK)
        rc = get_count(json_object_get(doc, "target"), "target",
                       SPEC_TARGET_MAX, &s->target, err);
    if (rc == J4_OK)
        rc = get_ramp(doc, "rampup", rampup_fields, s->target, &s->rampup_step,
                      &s->rampup_interval_ms, err);
    if (rc == J4_OK && json_is_object(rampup))
        rc = get_mode(rampup, &s->rampup_exponential, err);
    if (rc == J4_OK)
        rc = get_duration(json_object_get(doc, "hold"), "hold", 0,
                          SPEC_HOLD_MAX_MS, &s->hold_ms, err);
    if (rc == J4_OK)
        rc = get_ramp(doc, "rampdown", rampdown_fields, s->target,
                      &s->rampdown_step, &s->rampdown_interval_ms, err);
    out->grace_ms = SPEC_GRACE_DEFAULT_MS;
    if (rc == J4_OK && json_object_get(doc, "grace"))
        rc = get_duration(json_object_get(doc, "grace"), "grace", 0,
                          SPEC_GRACE_MAX_MS, &out->grace_ms, err);
    if (rc == J4_OK)
        rc = check_total(s, err);
    if (rc == J4_OK)
        rc = check_runs(s, err);
    if (rc == J4_OK)
        rc = get_thresholds(doc, out, err);
    return rc;
}

int spec_parse_json(const json_t *doc, struct spec *spec,
                    struct spec_error *err)
{
    struct spec parsed;
    int rc;

    if (!spec || !err)
        return J4_ERR_INVALID;
    memset(spec, 0, sizeof(*spec));
    memset(err, 0, sizeof(*err));
    if (!doc)
        return refuse(err, "", "the document is missing");
    if (!json_is_object(doc))
        return refuse(err, "", "the document must be a JSON object");

    memset(&parsed, 0, sizeof(parsed));
    rc = parse_fields(doc, &parsed, err);
    if (rc != J4_OK) {
        free(parsed.params_json);
        free(parsed.thresholds);
        return rc;
    }
    *spec = parsed;
    return J4_OK;
}

/* Refuses a body that holds a NUL byte or nothing but white space. */
static int check_body(const char *text, size_t len, struct spec_error *err)
{
    size_t i;
    int blank = 1;

    if (!text && len > 0)
        return refuse(err, "", "the document is missing");
    for (i = 0; i < len; i++) {
        if (text[i] == '\0')
            return refuse(err, "",
                          "the document must not contain a NUL "
                          "byte (at offset %zu)",
                          i);
        if (!strchr(" \t\r\n", text[i]))
            blank = 0;
    }
    if (blank)
        return refuse(err, "", "the document is empty");
    return J4_OK;
}

int spec_parse_text(const char *text, size_t len, struct spec *spec,
                    struct spec_error *err)
{
    json_error_t jerr;
    json_t *doc;
    int rc;

    if (!spec || !err)
        return J4_ERR_INVALID;
    memset(spec, 0, sizeof(*spec));
    memset(err, 0, sizeof(*err));
    rc = check_body(text, len, err);
    if (rc != J4_OK)
        return rc;

    doc =
        json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!doc)
        return refuse(err, "", "malformed JSON: %s at line %d, column %d",
                      jerr.text, jerr.line, jerr.column);
    rc = spec_parse_json(doc, spec, err);
    json_decref(doc);
    return rc;
}

/* ----------------------------------------------------------- emitting */

/* Adds "key": duration-string to obj. Returns 0 on success. */
static int set_duration(json_t *obj, const char *key, int64_t ms)
{
    char text[32];

    return json_object_set_new(obj, key,
                               json_string(duration_format(ms, text, 32)));
}

static json_t *ramp_to_json(uint32_t step, int64_t interval_ms,
                            const char *mode)
{
    json_t *ramp = json_object();

    if (!ramp)
        return NULL;
    if (json_object_set_new(ramp, "step", json_integer(step)) ||
        set_duration(ramp, "interval", interval_ms) ||
        (mode && json_object_set_new(ramp, "mode", json_string(mode)))) {
        json_decref(ramp);
        return NULL;
    }
    return ramp;
}

/* {"metric": [{"threshold", "abort_on_fail", "delay_abort_eval"}]} */
static json_t *thresholds_to_json(const struct spec *spec)
{
    json_t *all = json_object();

    for (size_t i = 0; all && i < spec->n_thresholds; i++) {
        const struct threshold *t = &spec->thresholds[i];
        json_t *list = json_object_get(all, t->metric);
        json_t *entry = json_object();

        if (!list) {
            list = json_array();
            json_object_set_new(all, t->metric, list);
        }
        json_object_set_new(entry, "threshold", json_string(t->expr));
        json_object_set_new(entry, "abort_on_fail",
                            json_boolean(t->abort_on_fail));
        set_duration(entry, "delay_abort_eval", t->delay_abort_ms);
        json_array_append_new(list, entry);
    }
    return all;
}

json_t *spec_to_json(const struct spec *spec)
{
    const struct schedule *s;
    json_t *doc, *params;
    int bad;

    if (!spec || !spec->params_json)
        return NULL;
    s = &spec->schedule;
    params = json_loads(spec->params_json, 0, NULL);
    doc = json_object();
    if (!params || !doc)
        goto out_free;

    bad = json_object_set_new(doc, "name", json_string(spec->name));
    bad |= json_object_set_new(doc, "scenario", json_string(spec->scenario));
    bad |= json_object_set(doc, "params", params);
    bad |= json_object_set_new(doc, "target", json_integer(s->target));
    bad |= json_object_set_new(
        doc, "rampup",
        ramp_to_json(s->rampup_step, s->rampup_interval_ms,
                     s->rampup_exponential ? "exponential" : "linear"));
    bad |= set_duration(doc, "hold", s->hold_ms);
    bad |= json_object_set_new(
        doc, "rampdown",
        ramp_to_json(s->rampdown_step, s->rampdown_interval_ms, NULL));
    bad |= set_duration(doc, "grace", spec->grace_ms);
    if (spec->n_thresholds)
        bad |= json_object_set_new(doc, "thresholds",
                                   thresholds_to_json(spec));
    if (bad)
        goto out_free;
    json_decref(params);
    return doc;

out_free:
    json_decref(params);
    json_decref(doc);
    return NULL;
}

void spec_release(struct spec *spec)
{
    if (!spec)
        return;
    free(spec->params_json);
    spec->params_json = NULL;
    free(spec->thresholds);
    spec->thresholds = NULL;
    spec->n_thresholds = 0;
}
