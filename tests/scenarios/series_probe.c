/*
 * series_probe.c - a test plugin that spreads a bounded number of HTTP
 * requests over many request names, optionally under a worker tag, so
 * an integration test (test_series_tags.py) can check the bounds on
 * named series and the tags as labels.
 *
 * Params:
 *   url         required
 *   names       distinct request names, "n000" on (default 200)
 *   iterations  requests per worker (default 200)
 *   tag_key     with tag_value: j4_tag() in init
 *   tag_value
 *
 * Worker k starts at name (k * 50) % names and walks on, so the workers
 * of different executors meet the names in different orders. init also
 * makes sure j4_tag() refuses J4's own label names and keys that are
 * not label names; if it does not, init fails with J4_ERR_IO.
 */
#include <stdio.h>
#include <stdlib.h>

#include "j4.h"

struct probe {
    int64_t done, iterations, names, offset;
};

static int refusals_ok(j4_worker_t *w)
{
    static const char *const bad[] = {"name", "scenario", "protocol",
                                      "outcome", "executor", "le", "9x",
                                      "a-b", ""};

    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        if (j4_tag(w, bad[i], "x") != J4_ERR_INVALID)
            return 0;
    }
    return j4_tag(w, "ok_key", "a,b") == J4_ERR_INVALID;
}

static int probe_init(j4_worker_t *w, void **state)
{
    const char *key = j4_param_str(w, "tag_key", NULL);
    const char *value = j4_param_str(w, "tag_value", NULL);
    struct probe *p;
    int rc;

    if (!refusals_ok(w))
        return J4_ERR_IO;
    if (key && value && (rc = j4_tag(w, key, value)) != J4_OK)
        return rc;
    p = calloc(1, sizeof(*p));
    if (!p)
        return J4_ERR_NOMEM;
    p->iterations = j4_param_int(w, "iterations", 200);
    p->names = j4_param_int(w, "names", 200);
    if (p->names < 1)
        p->names = 1;
    p->offset = (int64_t)((j4_worker_id(w) * 50) % (uint64_t)p->names);
    *state = p;
    return J4_OK;
}

static int probe_step(j4_worker_t *w, void *state)
{
    struct probe *p = state;
    j4_http_request_t req = {0};
    j4_http_response_t resp = {0};
    char name[24];

    if (p->done >= p->iterations) {
        j4_sleep(w, 100);
        return 0;
    }
    snprintf(name, sizeof(name), "n%03lld",
             (long long)((p->offset + p->done) % p->names));
    p->done++;
    req.url = j4_param_str(w, "url", NULL);
    req.timeout_ms = 10000;
    req.name = name;
    return j4_http_request(w, &req, &resp) == J4_OK ? 0 : 1;
}

static void probe_fini(j4_worker_t *w, void *state)
{
    (void)w;
    free(state);
}

J4_SCENARIO(series_probe) = {
    .abi_version = J4_ABI_VERSION,
    .name = "series_probe",
    .description = "test plugin: requests over many names, tagged",
    .init = probe_init,
    .step = probe_step,
    .fini = probe_fini,
};
