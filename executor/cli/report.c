/*
 * report.c - reading a scenario's report from the distributor.
 *
 * JSON comes through the shared client; JUnit and CSV are not JSON, so
 * they are fetched with a libcurl handle of their own and printed as
 * they came. The text format is a summary for people built from the
 * JSON report: totals, phases, requests, errors, checks, team metrics,
 * streams and thresholds, one line each.
 */
#include "report.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

static size_t to_file(char *data, size_t size, size_t n, void *arg)
{
    return fwrite(data, size, n, (FILE *)arg) * size;
}

/* GET path printed raw to out; returns 0, 3 (no answer) or 4 (refused). */
static int print_raw(struct client *c, const char *path, FILE *out)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    char url[2048], auth[1100];
    long status = 0;
    CURLcode rc;

    if (!curl)
        return 3;
    snprintf(url, sizeof(url), "%s%s", c->server, path);
    if (c->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        headers = curl_slist_append(NULL, auth);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, to_file);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
    rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK || status != 200) {
        fprintf(stderr, "j4: GET %s: %s\n", path,
                rc != CURLE_OK ? curl_easy_strerror(rc) : "refused");
        return rc != CURLE_OK ? 3 : 4;
    }
    return 0;
}

static json_t *fetch(struct client *c, long long id)
{
    char path[96], msg[256];
    json_t *reply = NULL;
    long status = 0;

    snprintf(path, sizeof(path), "/scenarios/%lld/report", id);
    if (client_call(c, "GET", path, NULL, &status, &reply)) {
        fprintf(stderr, "j4: %s\n", c->error);
        return NULL;
    }
    if (status != 200 || !reply) {
        fprintf(stderr, "j4: GET %s: %s\n", path,
                client_error_text(reply, status, msg, sizeof(msg)));
        json_decref(reply);
        return NULL;
    }
    return reply;
}

static double num(json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? s : "-";
}

static void print_block(FILE *out, const char *label, json_t *b)
{
    json_t *lat = json_object_get(b, "latency_ms");

    fprintf(out, "  %-22s %9.0f req %7.0f err (%5.2f%%)  p50 %.2f  p95 %.2f"
            "  p99 %.2f  max %.2f ms\n", label, num(b, "requests"),
            num(b, "errors"), 100 * num(b, "error_rate"), num(lat, "p50"),
            num(lat, "p95"), num(lat, "p99"), num(lat, "max"));
}

/* One team metric: a histogram's percentiles, a counter's or gauge's
 * value. */
static void print_team(FILE *out, json_t *t)
{
    json_t *v = json_object_get(t, "value_ms");

    if (!strcmp(str(t, "kind"), "histogram"))
        fprintf(out, "  team %-17s %9.0f obs  p50 %.2f  p95 %.2f  p99 %.2f"
                "  max %.2f ms\n", str(t, "name"), num(t, "count"),
                num(v, "p50"), num(v, "p95"), num(v, "p99"), num(v, "max"));
    else
        fprintf(out, "  team %-17s %9.0f (%s)\n", str(t, "name"),
                num(t, !strcmp(str(t, "kind"), "gauge") ? "value" : "count"),
                str(t, "kind"));
}

static void print_stream(FILE *out, json_t *s)
{
    json_t *first = json_object_get(s, "first_message_ms");
    json_t *life = json_object_get(s, "lifetime_ms");

    fprintf(out, "  stream %s %-10s %4.0f opened %7.0f msg %4.0f resets "
            "%4.0f reconnects  first msg p95 %.2f ms  lifetime p95 %.2f ms\n",
            str(s, "protocol"), str(s, "name"), num(s, "opened"),
            num(s, "messages"), num(s, "resets"), num(s, "reconnects"),
            num(first, "p95"), num(life, "p95"));
}

static void print_text(json_t *r, FILE *out)
{
    const char *key;
    json_t *v;
    size_t i;

    fprintf(out, "scenario %lld '%s': %s%s%s, %.1f s, %s\n",
            (long long)num(r, "scenario_id"), str(r, "name"),
            str(r, "state"), json_is_string(json_object_get(r, "reason"))
                                 ? " - " : "",
            json_is_string(json_object_get(r, "reason")) ? str(r, "reason")
                                                         : "",
            num(r, "duration_s"),
            json_is_true(json_object_get(r, "passed")) ? "PASSED"
                                                       : "FAILED");
    print_block(out, "total", json_object_get(r, "totals"));
    json_object_foreach(json_object_get(r, "phases"), key, v)
        print_block(out, key, v);
    json_array_foreach(json_object_get(r, "requests"), i, v) {
        char label[96];

        snprintf(label, sizeof(label), "%s %s", str(v, "protocol"),
                 str(v, "name"));
        print_block(out, label, json_object_get(v, "stats"));
    }
    json_object_foreach(json_object_get(r, "errors"), key, v)
        fprintf(out, "  error %-16s %lld\n", key,
                (long long)json_integer_value(v));
    json_array_foreach(json_object_get(r, "checks"), i, v)
        fprintf(out, "  check %-16s %.0f passed, %.0f failed\n",
                str(v, "name"), num(v, "passed"), num(v, "failed"));
    json_array_foreach(json_object_get(r, "team"), i, v)
        print_team(out, v);
    json_array_foreach(json_object_get(r, "streams"), i, v)
        print_stream(out, v);
    json_array_foreach(json_object_get(r, "thresholds"), i, v)
        fprintf(out, "  threshold %s: %s  %s (%s)\n", str(v, "metric"),
                str(v, "threshold"),
                json_is_true(json_object_get(v, "passed")) ? "ok" : "FAILED",
                str(v, "message"));
}

int report_print(struct client *c, long long id, const char *format,
                 FILE *out)
{
    char path[128];
    json_t *r;

    if (!format)
        format = "text";
    if (!strcmp(format, "junit") || !strcmp(format, "csv")) {
        snprintf(path, sizeof(path), "/scenarios/%lld/report?format=%s", id,
                 format);
        return print_raw(c, path, out);
    }
    if (strcmp(format, "text") && strcmp(format, "json")) {
        fprintf(stderr, "j4: unknown format '%s' (text, json, junit, csv)\n",
                format);
        return 2;
    }
    r = fetch(c, id);
    if (!r)
        return 3;
    if (!strcmp(format, "json")) {
        json_dumpf(r, out, JSON_INDENT(2));
        fputc('\n', out);
    } else {
        print_text(r, out);
    }
    json_decref(r);
    return 0;
}

int report_thresholds_passed(struct client *c, long long id, FILE *out)
{
    json_t *r = fetch(c, id), *t;
    int passed;
    size_t i;

    if (!r)
        return -1;
    passed = !json_is_false(json_object_get(r, "thresholds_passed"));
    json_array_foreach(json_object_get(r, "thresholds"), i, t) {
        if (!json_is_true(json_object_get(t, "passed")))
            fprintf(out, "threshold failed: %s: %s (%s)\n", str(t, "metric"),
                    str(t, "threshold"), str(t, "message"));
    }
    json_decref(r);
    return passed;
}
