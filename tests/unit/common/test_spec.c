/*
 * test_spec.c - the scenario document parser (common/spec.h) and the
 * rules of docs/scenario-format.md.
 *
 * One case per rule: each takes the header's example document, breaks one
 * field, and checks that the refusal names that field and states a rule
 * that says what was expected. Valid documents parse to the right numbers
 * and defaults, spec_to_json round-trips, and truncated or mangled bodies
 * are refused without crashing or leaking (the suite runs under ASan).
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "duration.h"
#include "j4.h"
#include "spec.h"

static const char example[] =
    "{\"name\": \"homepage\", \"scenario\": \"http\",\n"
    " \"params\": {\"url\": \"http://127.0.0.1:8081/\"},\n"
    " \"target\": 10,\n"
    " \"rampup\": {\"step\": 2, \"interval\": \"1s\", \"mode\": \"linear\"},\n"
    " \"hold\": \"10s\",\n"
    " \"rampdown\": {\"step\": 5, \"interval\": \"1s\"},\n"
    " \"grace\": \"5s\"}";

/* ----------------------------------------------------------- helpers */

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);

    if (!doc)
        fprintf(stderr, "test document does not load: %s\n", jerr.text);
    return doc;
}

/* Checks a refusal: J4_ERR_INVALID, the expected field, a rule of some
 * length that mentions keyword, and nothing left in the spec. */
static int check_refusal(int rc, const struct spec *spec,
                         const struct spec_error *err, const char *field,
                         const char *keyword, const char *what)
{
    int ok = CHECK_INT_EQ(rc, J4_ERR_INVALID) &&
             CHECK_STR_EQ(err->field, field) &&
             CHECK_UINT_LE(10, strlen(err->rule)) &&
             CHECK(strstr(err->rule, keyword) != NULL) &&
             CHECK(spec->params_json == NULL);

    if (!ok)
        fprintf(stderr, "    case: %s\n    rule: \"%s\"\n", what, err->rule);
    if (rc == J4_OK)
        spec_release((struct spec *)spec);
    return ok;
}

static void refused_text(const char *text, size_t len, const char *field,
                         const char *keyword)
{
    struct spec spec;
    struct spec_error err;
    int rc;

    memset(&spec, 0x5a, sizeof(spec));
    rc = spec_parse_text(text, len, &spec, &err);
    check_refusal(rc, &spec, &err, field, keyword, text ? text : "(null)");
}

/* Sets path ("hold", "rampup.step") in the example to value (stolen;
 * NULL deletes the member), parses, and expects a refusal. */
static void refused(const char *path, json_t *value, const char *field,
                    const char *keyword)
{
    json_t *doc = load(example), *obj;
    struct spec spec;
    struct spec_error err;
    const char *dot = strchr(path, '.');
    char *what;
    int rc;

    obj = doc;
    if (dot) {
        char parent[32];

        snprintf(parent, sizeof(parent), "%.*s", (int)(dot - path), path);
        obj = json_object_get(doc, parent);
        path = dot + 1;
    }
    if (value)
        json_object_set_new(obj, path, value);
    else
        json_object_del(obj, path);

    memset(&spec, 0x5a, sizeof(spec));
    rc = spec_parse_json(doc, &spec, &err);
    what = json_dumps(doc, JSON_COMPACT);
    check_refusal(rc, &spec, &err, field, keyword, what);
    free(what);
    json_decref(doc);
}

/* Parses text, which must be accepted. Returns 1 and fills spec. */
static int accepted_text(const char *text, struct spec *spec)
{
    struct spec_error err;
    int rc = spec_parse_text(text, strlen(text), spec, &err);

    if (!CHECK_INT_EQ(rc, J4_OK)) {
        fprintf(stderr, "    case: %s\n    refused: %s: %s\n", text, err.field,
                err.rule);
        return 0;
    }
    return 1;
}

static int same_spec(const struct spec *a, const struct spec *b)
{
    const struct schedule *x = &a->schedule, *y = &b->schedule;

    return CHECK_STR_EQ(a->name, b->name) &&
           CHECK_STR_EQ(a->scenario, b->scenario) &&
           CHECK_STR_EQ(a->params_json, b->params_json) &&
           CHECK_UINT_EQ(x->target, y->target) &&
           CHECK_UINT_EQ(x->rampup_step, y->rampup_step) &&
           CHECK_INT_EQ(x->rampup_interval_ms, y->rampup_interval_ms) &&
           CHECK_INT_EQ(x->rampup_exponential, y->rampup_exponential) &&
           CHECK_INT_EQ(x->hold_ms, y->hold_ms) &&
           CHECK_UINT_EQ(x->rampdown_step, y->rampdown_step) &&
           CHECK_INT_EQ(x->rampdown_interval_ms, y->rampdown_interval_ms) &&
           CHECK_INT_EQ(a->grace_ms, b->grace_ms);
}

/* ------------------------------------------------------- valid input */

static void test_example(void)
{
    struct spec spec;
    const struct schedule *s = &spec.schedule;

    if (!accepted_text(example, &spec))
        return;
    CHECK_STR_EQ(spec.name, "homepage");
    CHECK_STR_EQ(spec.scenario, "http");
    CHECK_STR_EQ(spec.params_json, "{\"url\":\"http://127.0.0.1:8081/\"}");
    CHECK_UINT_EQ(s->target, 10);
    CHECK_UINT_EQ(s->rampup_step, 2);
    CHECK_INT_EQ(s->rampup_interval_ms, 1000);
    CHECK_INT_EQ(s->rampup_exponential, 0);
    CHECK_INT_EQ(s->hold_ms, 10000);
    CHECK_UINT_EQ(s->rampdown_step, 5);
    CHECK_INT_EQ(s->rampdown_interval_ms, 1000);
    CHECK_INT_EQ(spec.grace_ms, 5000);
    /* The schedule it describes is the header's example. */
    CHECK_INT_EQ(schedule_end_ms(s), 15000);
    spec_release(&spec);
    CHECK(spec.params_json == NULL);
    spec_release(&spec);
}

static void test_defaults(void)
{
    struct spec spec;
    const struct schedule *s = &spec.schedule;

    if (!accepted_text("{\"name\": \"a\", \"scenario\": \"b\", "
                       "\"target\": 7, \"hold\": \"1m\"}",
                       &spec))
        return;
    CHECK_STR_EQ(spec.params_json, "{}");
    CHECK_UINT_EQ(s->rampup_step, 7);
    CHECK_INT_EQ(s->rampup_interval_ms, 1000);
    CHECK_INT_EQ(s->rampup_exponential, 0);
    CHECK_INT_EQ(s->hold_ms, 60000);
    CHECK_UINT_EQ(s->rampdown_step, 7);
    CHECK_INT_EQ(s->rampdown_interval_ms, 1000);
    CHECK_INT_EQ(spec.grace_ms, SPEC_GRACE_DEFAULT_MS);
    /* Everyone at t = 0, nobody after hold. */
    CHECK_UINT_EQ(schedule_planned(s, 0), 7);
    CHECK_INT_EQ(schedule_end_ms(s), 60000);
    spec_release(&spec);
}

static void test_valid_variants(void)
{
    struct spec spec;
    char name[SPEC_NAME_MAX + 1];
    char text[512];

    if (accepted_text("{\"name\": \"x\", \"scenario\": \"grpc_2\", "
                      "\"target\": 1000000, \"hold\": \"0s\", "
                      "\"rampup\": {\"step\": 1, \"interval\": \"1ms\", "
                      "\"mode\": \"exponential\"}, \"grace\": \"0s\", "
                      "\"rampdown\": {\"interval\": \"1h\", \"step\": "
                      "1000000}, \"params\": {}}",
                      &spec)) {
        CHECK_INT_EQ(spec.schedule.rampup_exponential, 1);
        CHECK_INT_EQ(spec.schedule.rampup_interval_ms, 1);
        CHECK_INT_EQ(spec.schedule.rampdown_interval_ms, 3600000);
        CHECK_INT_EQ(spec.schedule.hold_ms, 0);
        CHECK_INT_EQ(spec.grace_ms, 0);
        CHECK_UINT_EQ(spec.schedule.target, SPEC_TARGET_MAX);
        spec_release(&spec);
    }

    /* Longest names, largest hold and grace. */
    memset(name, 'a', SPEC_NAME_MAX);
    name[SPEC_NAME_MAX] = '\0';
    name[0] = 'Z';
    name[1] = '-';
    snprintf(text, sizeof(text),
             "{\"name\": \"%s\", \"scenario\": \"%s\", \"target\": 1, "
             "\"hold\": \"168h\", \"grace\": \"10m\"}",
             name, name + 2);
    if (accepted_text(text, &spec)) {
        CHECK_STR_EQ(spec.name, name);
        CHECK_INT_EQ(spec.schedule.hold_ms, SPEC_HOLD_MAX_MS);
        CHECK_INT_EQ(spec.grace_ms, SPEC_GRACE_MAX_MS);
        spec_release(&spec);
    }

    /* The schedule may last exactly 30 days: 721 steps of 1 h. */
    if (accepted_text("{\"name\": \"x\", \"scenario\": \"y\", \"target\": "
                      "721, \"hold\": \"0s\", \"rampup\": {\"step\": 1, "
                      "\"interval\": \"1h\"}}",
                      &spec)) {
        CHECK_INT_EQ(schedule_end_ms(&spec.schedule), DURATION_MAX_MS);
        spec_release(&spec);
    }
}

static void test_params_size(void)
{
    size_t body = SPEC_PARAMS_MAX - strlen("{\"a\":\"\"}");
    char *big = malloc(body + 2);
    struct spec spec;
    struct spec_error err;
    json_t *doc;

    if (!CHECK(big != NULL))
        return;
    memset(big, 'x', body + 1);
    big[body] = '\0';

    /* Exactly SPEC_PARAMS_MAX bytes serialized: accepted. */
    doc = load(example);
    json_object_set_new(doc, "params", json_pack("{ss}", "a", big));
    if (CHECK_INT_EQ(spec_parse_json(doc, &spec, &err), J4_OK)) {
        CHECK_UINT_EQ(strlen(spec.params_json), SPEC_PARAMS_MAX);
        spec_release(&spec);
    }
    json_decref(doc);

    /* One more byte: refused. */
    big[body] = 'x';
    big[body + 1] = '\0';
    refused("params", json_pack("{ss}", "a", big), "params", "bytes");
    free(big);
}

/* --------------------------------------------------------- refusals */

static void test_document_rules(void)
{
    static const char nul_doc[] = "{\"name\": \"a\0\"}";

    refused_text("[]", 2, "", "object");
    refused_text("5", 1, "", "object");
    refused_text("\"x\"", 3, "", "object");
    refused_text("null", 4, "", "object");
    refused_text("", 0, "", "empty");
    refused_text(" \n\t ", 4, "", "empty");
    refused_text(NULL, 0, "", "empty");
    refused_text(nul_doc, sizeof(nul_doc) - 1, "", "NUL");
    refused_text("{\"name\": ", 9, "", "malformed JSON: ");
    refused_text("{\"name\": \"a\"} x", 15, "", "malformed JSON: ");
    refused_text("{\"name\": \"a\", \"name\": \"b\"}", 26, "",
                 "malformed JSON: ");
    refused_text("{\"target\": 99999999999999999999999}", 35, "",
                 "malformed JSON: ");
    refused_text("{\"name\": \"\\u0000\"}", 18, "", "malformed JSON: ");
    /* jansson's position is in the message. */
    refused_text("{\n\"name\": x}", 12, "", "line 2");
}

static void test_unknown_fields(void)
{
    refused("foo", json_integer(1), "foo", "unknown field");
    refused("Name", json_string("x"), "Name", "unknown field");
    refused("rampup.foo", json_true(), "rampup.foo", "unknown field");
    refused("rampdown.mode", json_string("linear"), "rampdown.mode",
            "unknown field");
    refused("rampdown.Step", json_integer(1), "rampdown.Step",
            "unknown field");
}

static void test_name_rules(void)
{
    char long_name[SPEC_NAME_MAX + 2];

    memset(long_name, 'a', SPEC_NAME_MAX + 1);
    long_name[SPEC_NAME_MAX + 1] = '\0';
    refused("name", NULL, "name", "required");
    refused("name", json_integer(5), "name", "string");
    refused("name", json_string(""), "name", "1-64");
    refused("name", json_string(long_name), "name", "1-64");
    refused("name", json_string("a b"), "name", "1-64");
    refused("name", json_string("a.b"), "name", "1-64");
    refused("name", json_string("h\xc3\xa9llo"), "name", "1-64");
    refused("name", json_stringn("ab\0cd", 5), "name", "1-64");
}

static void test_scenario_rules(void)
{
    refused("scenario", NULL, "scenario", "required");
    refused("scenario", json_false(), "scenario", "string");
    refused("scenario", json_string(""), "scenario", "a-z");
    refused("scenario", json_string("Http"), "scenario", "a-z");
    refused("scenario", json_string("my-plugin"), "scenario", "a-z");
    refused("scenario", json_string("../../tmp/evil"), "scenario", "a-z");
    refused("scenario", json_string("/tmp/x.so"), "scenario", "a-z");
    refused("scenario", json_stringn("http\0x", 6), "scenario", "a-z");
}

static void test_target_rules(void)
{
    refused("target", NULL, "target", "required");
    refused("target", json_integer(0), "target", "integer from 1 to");
    refused("target", json_integer(-1), "target", "integer from 1 to");
    refused("target", json_integer(SPEC_TARGET_MAX + 1), "target",
            "integer from 1 to");
    refused("target", json_integer(4294967306LL), "target", "integer");
    refused("target", json_real(10.0), "target", "integer");
    refused("target", json_string("10"), "target", "integer");
    refused("target", json_true(), "target", "integer");
    refused("target", json_null(), "target", "integer");
}

static void test_hold_rules(void)
{
    refused("hold", NULL, "hold", "required");
    refused("hold", json_integer(10), "hold", "duration");
    refused("hold", json_string("10"), "hold", "duration");
    refused("hold", json_string("-1s"), "hold", "duration");
    refused("hold", json_string("1.5s"), "hold", "duration");
    refused("hold", json_string(""), "hold", "duration");
    refused("hold", json_stringn("1s\0", 3), "hold", "duration");
    refused("hold", json_string("169h"), "hold", "at most");
    refused("hold", json_string("721h"), "hold", "duration");
}

/* No hold, one rampup step and a rampdown step that removes everyone at
 * once: no worker would ever run, which is refused rather than "run". */
static void test_never_runs(void)
{
    const char *flat = "{\"name\":\"n\",\"scenario\":\"http\","
                       "\"target\":5,\"hold\":\"0s\"}";
    const char *wide = "{\"name\":\"n\",\"scenario\":\"http\","
                       "\"target\":5,\"hold\":\"0s\","
                       "\"rampup\":{\"step\":5,\"interval\":\"1s\"},"
                       "\"rampdown\":{\"step\":9,\"interval\":\"1s\"}}";

    refused_text(flat, strlen(flat), "hold", "no worker");
    refused_text(wide, strlen(wide), "hold", "no worker");
}

static void test_params_rules(void)
{
    refused("params", json_array(), "params", "object");
    refused("params", json_string("{}"), "params", "object");
    refused("params", json_null(), "params", "object");
}

static void test_ramp_rules(const char *which)
{
    char f[32], g[32];

    snprintf(f, sizeof(f), "%s.step", which);
    snprintf(g, sizeof(g), "%s.interval", which);
    refused(which, json_integer(2), which, "object");
    refused(which, json_string("2/1s"), which, "object");
    refused(which, json_array(), which, "object");
    refused(f, NULL, f, "required");
    refused(f, json_integer(0), f, "integer from 1 to");
    refused(f, json_integer(SPEC_TARGET_MAX + 1), f, "integer from 1 to");
    refused(f, json_real(1.5), f, "integer");
    refused(f, json_string("2"), f, "integer");
    refused(g, NULL, g, "required");
    refused(g, json_string("0s"), g, "at least 1ms");
    refused(g, json_string("1h1ms"), g, "at most");
    refused(g, json_string("1 s"), g, "duration");
    refused(g, json_integer(1000), g, "duration");
}

static void test_mode_rules(void)
{
    refused("rampup.mode", json_string("Linear"), "rampup.mode", "linear");
    refused("rampup.mode", json_string("log"), "rampup.mode", "exponential");
    refused("rampup.mode", json_integer(1), "rampup.mode", "linear");
    refused("rampup.mode", json_stringn("linear\0x", 8), "rampup.mode",
            "linear");
}

static void test_grace_rules(void)
{
    refused("grace", json_string("601s"), "grace", "at most");
    refused("grace", json_string("forever"), "grace", "duration");
    refused("grace", json_integer(5), "grace", "duration");
    refused("grace", json_null(), "grace", "duration");
}

/* The whole schedule may not outlast 30 days; the refusal blames the part
 * that takes longest. */
static void test_total_duration(void)
{
    json_t *doc;
    struct spec spec;
    struct spec_error err;

    /* 1,000,000 rampup steps of 1 h. */
    doc = load(example);
    json_object_set_new(doc, "target", json_integer(1000000));
    json_object_set_new(
        doc, "rampup",
        json_pack("{sIss}", "step", (json_int_t)1, "interval", "1h"));
    memset(&spec, 0, sizeof(spec));
    check_refusal(spec_parse_json(doc, &spec, &err), &spec, &err,
                  "rampup.interval", "30 days", "rampup too long");
    json_decref(doc);

    /* 721 rampdown steps of 1 h after a 1 h hold. */
    doc = load(example);
    json_object_set_new(doc, "target", json_integer(721));
    json_object_set_new(doc, "hold", json_string("1h"));
    json_object_set_new(
        doc, "rampdown",
        json_pack("{sIss}", "step", (json_int_t)1, "interval", "1h"));
    check_refusal(spec_parse_json(doc, &spec, &err), &spec, &err,
                  "rampdown.interval", "30 days", "rampdown too long");
    json_decref(doc);

    /* Exactly 30 days of rampup plus one more millisecond of hold. */
    doc = load("{\"name\": \"x\", \"scenario\": \"y\", \"target\": 721, "
               "\"hold\": \"1ms\", \"rampup\": {\"step\": 1, "
               "\"interval\": \"1h\"}}");
    check_refusal(spec_parse_json(doc, &spec, &err), &spec, &err,
                  "rampup.interval", "30 days", "30 days and 1 ms");
    json_decref(doc);
}

/* -------------------------------------------------------- round trip */

static void round_trip(const char *text)
{
    struct spec a, b;
    struct spec_error err;
    json_t *doc, *rampup;
    char *dumped;

    if (!accepted_text(text, &a))
        return;
    doc = spec_to_json(&a);
    if (!CHECK(doc != NULL))
        goto out_release_a;

    /* Normalized: every field present, durations as strings, mode set. */
    rampup = json_object_get(doc, "rampup");
    CHECK(json_is_string(json_object_get(doc, "name")));
    CHECK(json_is_string(json_object_get(doc, "scenario")));
    CHECK(json_is_object(json_object_get(doc, "params")));
    CHECK(json_is_integer(json_object_get(doc, "target")));
    CHECK(json_is_string(json_object_get(doc, "hold")));
    CHECK(json_is_string(json_object_get(doc, "grace")));
    CHECK(json_is_integer(json_object_get(rampup, "step")));
    CHECK(json_is_string(json_object_get(rampup, "interval")));
    CHECK(json_is_string(json_object_get(rampup, "mode")));
    CHECK(json_is_object(json_object_get(doc, "rampdown")));
    CHECK_UINT_EQ(json_object_size(doc), 8);

    if (CHECK_INT_EQ(spec_parse_json(doc, &b, &err), J4_OK)) {
        same_spec(&a, &b);
        spec_release(&b);
    }
    /* And through text, as the API stores and reloads it. */
    dumped = json_dumps(doc, JSON_COMPACT);
    if (CHECK(dumped != NULL) &&
        CHECK_INT_EQ(spec_parse_text(dumped, strlen(dumped), &b, &err),
                     J4_OK)) {
        same_spec(&a, &b);
        spec_release(&b);
    }
    free(dumped);
    json_decref(doc);

out_release_a:
    spec_release(&a);
}

static void test_round_trip(void)
{
    struct spec spec;
    json_t *doc;

    round_trip(example);
    round_trip("{\"name\": \"a\", \"scenario\": \"b\", \"target\": 7, "
               "\"hold\": \"1m30s\"}");
    round_trip("{\"name\": \"a\", \"scenario\": \"b\", \"target\": 100, "
               "\"hold\": \"1h2m3s4ms\", \"grace\": \"250ms\", "
               "\"params\": {\"n\": [1, 2.5, null, {\"k\": \"\\u00e9\"}]}, "
               "\"rampup\": {\"step\": 3, \"interval\": \"1500ms\", "
               "\"mode\": \"exponential\"}, "
               "\"rampdown\": {\"step\": 9, \"interval\": \"59m\"}}");

    /* The example's normalized form, spelled out. */
    if (accepted_text(example, &spec)) {
        doc = spec_to_json(&spec);
        if (CHECK(doc != NULL)) {
            json_t *up = json_object_get(doc, "rampup");

            CHECK_STR_EQ(json_string_value(json_object_get(doc, "hold")),
                         "10s");
            CHECK_STR_EQ(json_string_value(json_object_get(doc, "grace")),
                         "5s");
            CHECK_STR_EQ(json_string_value(json_object_get(up, "interval")),
                         "1s");
            CHECK_STR_EQ(json_string_value(json_object_get(up, "mode")),
                         "linear");
            CHECK_INT_EQ(json_integer_value(json_object_get(doc, "target")),
                         10);
            json_decref(doc);
        }
        spec_release(&spec);
    }
}

/* --------------------------------------------- pointers and garbage */

static void test_null_pointers(void)
{
    struct spec spec;
    struct spec_error err;
    json_t *doc = load(example);

    CHECK_INT_EQ(spec_parse_json(NULL, &spec, &err), J4_ERR_INVALID);
    CHECK_STR_EQ(err.field, "");
    CHECK(err.rule[0] != '\0');
    CHECK_INT_EQ(spec_parse_json(doc, NULL, &err), J4_ERR_INVALID);
    CHECK_INT_EQ(spec_parse_json(doc, &spec, NULL), J4_ERR_INVALID);
    CHECK_INT_EQ(spec_parse_text(example, strlen(example), NULL, &err),
                 J4_ERR_INVALID);
    CHECK_INT_EQ(spec_parse_text(example, strlen(example), &spec, NULL),
                 J4_ERR_INVALID);
    CHECK_INT_EQ(spec_parse_text(NULL, 10, &spec, &err), J4_ERR_INVALID);
    CHECK(spec_to_json(NULL) == NULL);
    spec_release(NULL);
    json_decref(doc);

    CHECK(!spec_is_plain_name(NULL));
    CHECK(!spec_is_plugin_name(NULL));
}

static void test_names(void)
{
    char buf[SPEC_NAME_MAX + 2];

    CHECK(spec_is_plain_name("homepage-v2"));
    CHECK(spec_is_plain_name("A_b-9"));
    CHECK(!spec_is_plain_name(""));
    CHECK(!spec_is_plain_name("a.b"));
    CHECK(!spec_is_plain_name("a/b"));
    CHECK(!spec_is_plain_name("a b"));
    CHECK(spec_is_plugin_name("http_2"));
    CHECK(!spec_is_plugin_name("homepage-v2"));
    CHECK(!spec_is_plugin_name("Http"));
    CHECK(!spec_is_plugin_name(""));
    CHECK(!spec_is_plugin_name("../x"));

    memset(buf, 'a', sizeof(buf));
    buf[SPEC_NAME_MAX] = '\0';
    CHECK(spec_is_plain_name(buf));
    CHECK(spec_is_plugin_name(buf));
    buf[SPEC_NAME_MAX] = 'a';
    buf[SPEC_NAME_MAX + 1] = '\0';
    CHECK(!spec_is_plain_name(buf));
    CHECK(!spec_is_plugin_name(buf));
}

/* Every proper prefix of a valid body is refused as a whole-document
 * problem; random byte damage never crashes or leaks. */
static void test_garbage(void)
{
    size_t len = strlen(example), i;
    char *copy = malloc(len + 1);
    uint64_t x = 0x853c49e6748fea9bull;
    struct spec spec;
    struct spec_error err;
    int accepted = 0, j;

    if (!CHECK(copy != NULL))
        return;
    for (i = 0; i < len; i++) {
        memcpy(copy, example, i);
        if (!CHECK_INT_EQ(spec_parse_text(copy, i, &spec, &err),
                          J4_ERR_INVALID) ||
            !CHECK_STR_EQ(err.field, "")) {
            fprintf(stderr, "    prefix of %zu bytes\n", i);
            break;
        }
    }
    for (j = 0; j < 20000; j++) {
        memcpy(copy, example, len + 1);
        for (i = 0; i < 1 + (size_t)(j % 4); i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            copy[(x >> 8) % len] = (char)(x >> 32);
        }
        if (spec_parse_text(copy, len, &spec, &err) == J4_OK) {
            accepted++;
            spec_release(&spec);
        } else if (!CHECK(err.rule[0] != '\0')) {
            break;
        }
    }
    fprintf(stderr, "%d of 20000 mangled documents still valid\n", accepted);
    free(copy);
}

/* ---------------------------------------------------------- thresholds */

static void test_thresholds_accepted(void)
{
    static const char text[] =
        "{\"name\": \"t\", \"scenario\": \"http\", \"target\": 1,"
        " \"hold\": \"1s\", \"thresholds\": {"
        "\"http_req_duration\": [\"p(95)<250ms\", \"max <= 2s\"],"
        "\"errors\": [{\"threshold\": \"rate<0.01\","
        " \"abort_on_fail\": true, \"delay_abort_eval\": \"10s\"}],"
        "\"delivery_latency\": [\"p(99.9)<1s\"],"
        "\"checks\": [\"rate>0.99\"]}}";
    struct spec spec, again;
    json_t *doc;
    char *round;

    if (!accepted_text(text, &spec))
        return;
    CHECK_UINT_EQ(spec.n_thresholds, 5);
    CHECK_STR_EQ(spec.thresholds[0].metric, "http_req_duration");
    CHECK_INT_EQ(spec.thresholds[0].agg, AGG_P);
    CHECK_NEAR(spec.thresholds[0].percentile, 95, 1e-9);
    CHECK_INT_EQ(spec.thresholds[0].op, OP_LT);
    CHECK_NEAR(spec.thresholds[0].value, 250, 1e-9);
    CHECK_NEAR(spec.thresholds[1].value, 2000, 1e-9);
    CHECK_INT_EQ(spec.thresholds[1].op, OP_LE);
    CHECK_INT_EQ(spec.thresholds[2].abort_on_fail, 1);
    CHECK_INT_EQ(spec.thresholds[2].delay_abort_ms, 10000);
    CHECK_INT_EQ(spec.thresholds[3].kind, METRIC_TEAM);
    CHECK(threshold_holds(&spec.thresholds[0], 249.9));
    CHECK(!threshold_holds(&spec.thresholds[0], 250));
    doc = spec_to_json(&spec);
    round = json_dumps(doc, JSON_COMPACT);
    if (accepted_text(round, &again)) {
        CHECK_UINT_EQ(again.n_thresholds, 5);
        CHECK_STR_EQ(again.thresholds[4].expr, "rate>0.99");
        spec_release(&again);
    }
    free(round);
    json_decref(doc);
    spec_release(&spec);
}

static void test_thresholds_refused(void)
{
    refused("thresholds", json_string("x"), "thresholds", "object");
    refused("thresholds", json_pack("{s:[]}", "errors"),
            "thresholds.errors", "non-empty");
    refused("thresholds", json_pack("{s:[s]}", "Bad-Name", "rate<1"),
            "thresholds.Bad-Name", "a-z");
    refused("thresholds", json_pack("{s:[s]}", "errors", "p95<1"),
            "thresholds.errors[0]", "AGGREGATE OP VALUE");
    refused("thresholds", json_pack("{s:[s]}", "errors", "p(95)<1"),
            "thresholds.errors[0]", "rate or count");
    refused("thresholds", json_pack("{s:[s]}", "http_req_duration",
                                    "p(95)<1parsec"),
            "thresholds.http_req_duration[0]", "unit");
    refused("thresholds", json_pack("{s:[s]}", "errors", "rate<1ms"),
            "thresholds.errors[0]", "without a unit");
    refused("thresholds", json_pack("{s:[s]}", "errors", "p(101)<1"),
            "thresholds.errors[0]", "AGGREGATE");
    refused("thresholds", json_pack("{s:[{s:s,s:i}]}", "errors", "threshold",
                                    "rate<0.1", "abort_on_fail", 1),
            "thresholds.errors[0].abort_on_fail", "true or false");
    refused("thresholds", json_pack("{s:[{s:s,s:s}]}", "errors", "threshold",
                                    "rate<0.1", "delay_abort_eval", "soon"),
            "thresholds.errors[0].delay_abort_eval", "duration");
    refused("thresholds", json_pack("{s:[{s:s,s:b}]}", "errors", "threshold",
                                    "rate<0.1", "abort", 1),
            "thresholds.errors[0].abort", "unknown field");
    refused("thresholds", json_pack("{s:[{s:b}]}", "errors",
                                    "abort_on_fail", 1),
            "thresholds.errors[0].threshold", "string");
    /* Values are plain decimals, units follow them directly, durations
     * are not negative and stay within 30 days. */
    {
        static const char *const bad[][2] = {
            {"p(95)<250 ms", "value"}, {"p(95)<0x10", "value"},
            {"p(1e2)<1", "AGGREGATE"}, {"p(95)<-1ms", "value"},
            {"max<99999999999h", "value"}, {"p(95)<1e3", "value"},
            {"p(95)<inf", "value"}, {"p(95)<.5s", "value"},
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            refused("thresholds", json_pack("{s:[s]}", "http_req_duration",
                                            bad[i][0]),
                    "thresholds.http_req_duration[0]", bad[i][1]);
        refused("thresholds", json_pack("{s:[s]}", "errors", "rate<1e-2"),
                "thresholds.errors[0]", "value");
    }
}

int main(void)
{
    test_example();
    test_defaults();
    test_valid_variants();
    test_params_size();
    test_document_rules();
    test_unknown_fields();
    test_name_rules();
    test_scenario_rules();
    test_target_rules();
    test_hold_rules();
    test_never_runs();
    test_params_rules();
    test_ramp_rules("rampup");
    test_ramp_rules("rampdown");
    test_mode_rules();
    test_grace_rules();
    test_total_duration();
    test_round_trip();
    test_null_pointers();
    test_names();
    test_garbage();
    test_thresholds_accepted();
    test_thresholds_refused();
    return check_done();
}
