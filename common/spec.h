/*
 * spec.h - the scenario document a user submits, parsed and checked.
 *
 * The document is JSON:
 *
 *   {"name": "homepage", "scenario": "http",
 *    "params": {"url": "http://127.0.0.1:8081/"},
 *    "target": 10,
 *    "rampup": {"step": 2, "interval": "1s", "mode": "linear"},
 *    "hold": "10s",
 *    "rampdown": {"step": 5, "interval": "1s"},
 *    "grace": "5s"}
 *
 * Required: name, scenario, target, hold. Optional: params (object,
 * default {}), rampup and rampdown (default: all workers at once), mode
 * (linear or exponential), grace (default 5s), thresholds (pass/fail
 * criteria, common/threshold.h). Any other field is refused.
 * Every rule is in docs/scenario-format.md, and a refusal names the field
 * ("rampup.interval") and the rule it broke.
 */
#ifndef J4_COMMON_SPEC_H
#define J4_COMMON_SPEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "schedule.h"
#include "threshold.h"

#define SPEC_NAME_MAX 64
#define SPEC_TARGET_MAX 1000000u
#define SPEC_PARAMS_MAX (64 * 1024)     /* serialized params, bytes */
#define SPEC_INTERVAL_MAX_MS (3600LL * 1000)
#define SPEC_HOLD_MAX_MS (7LL * 24 * 3600 * 1000)
#define SPEC_GRACE_MAX_MS (600LL * 1000)
#define SPEC_GRACE_DEFAULT_MS 5000

struct spec {
    char name[SPEC_NAME_MAX + 1];
    char scenario[SPEC_NAME_MAX + 1];
    char *params_json;          /* compact JSON object, owned */
    struct schedule schedule;
    int64_t grace_ms;
    struct threshold *thresholds;   /* owned; NULL when none */
    size_t n_thresholds;
};

/* Why a document was refused: the dotted path of the field and the rule,
 * both NUL-terminated, for a 400 body. */
struct spec_error {
    char field[64];
    char rule[192];
};

/* Parses and checks a document. On success fills *spec (release with
 * spec_release) and returns J4_OK. On failure returns J4_ERR_INVALID and
 * fills *err; *spec holds nothing to release. */
int spec_parse_json(const json_t *doc, struct spec *spec,
                    struct spec_error *err);
int spec_parse_text(const char *text, size_t len, struct spec *spec,
                    struct spec_error *err);

/* The normalized document (every default filled in, durations as
 * strings) as a new reference. */
json_t *spec_to_json(const struct spec *spec);

void spec_release(struct spec *spec);

/* Non-zero when text is a plain name: 1-64 of [A-Za-z0-9_-] for scenario
 * names ("homepage-v2"), and plugin names are further lowercase
 * [a-z0-9_]. */
int spec_is_plain_name(const char *text);
int spec_is_plugin_name(const char *text);

#endif
