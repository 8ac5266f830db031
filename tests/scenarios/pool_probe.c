/*
 * pool_probe.c - a test scenario that reports which pool item it holds.
 *
 * Each worker takes one item of the scenario's pool in init and tells a
 * recorder run by the test (params.report, "http://127.0.0.1:PORT") with
 * GET /hold/<account>/<pid>/<holder>; every step it sends /use/..., and
 * fini sends /release/... before the item goes back to the pool. The
 * account is the item's params.key field (default "user"); pid names the
 * executor process and holder is the worker number plus a unique tag, so
 * the test can rebuild who held what when, executor by executor.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "j4.h"

struct probe {
    char account[128];
    char holder[64];
    const char *report;
    int64_t think_ms;
};

static int probe_send(j4_worker_t *w, const struct probe *p,
                      const char *what)
{
    char url[512];
    j4_http_request_t req = {0};

    snprintf(url, sizeof(url), "%s/%s/%s/%ld/%s", p->report, what,
             p->account, (long)getpid(), p->holder);
    req.url = url;
    req.timeout_ms = 2000;
    req.name = what;
    return j4_http_request(w, &req, NULL);
}

/* Copies the item's key field, keeping only [A-Za-z0-9_-]. */
static int probe_account(j4_worker_t *w, const char *item, char *out,
                         size_t size)
{
    json_t *obj = json_loads(item, 0, NULL);
    const char *v = json_string_value(
        json_object_get(obj, j4_param_str(w, "key", "user")));
    size_t n = 0;

    for (; v && *v && n + 1 < size; v++) {
        char c = *v;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '_' || c == '-')
            out[n++] = c;
    }
    out[n] = '\0';
    json_decref(obj);
    return n ? J4_OK : J4_ERR_INVALID;
}

static int probe_init(j4_worker_t *w, void **state)
{
    struct probe *p = calloc(1, sizeof(*p));
    const char *item = NULL;
    int rc;

    if (!p)
        return J4_ERR_NOMEM;
    p->report = j4_param_str(w, "report", NULL);
    p->think_ms = j4_param_duration_ms(w, "think", 100);
    /* worker numbers repeat across a rebalance, and so does j4_random
     * (seeded from the number): tag the holder with the state's address
     * and the clock too */
    snprintf(p->holder, sizeof(p->holder), "%llu-%llx",
             (unsigned long long)j4_worker_id(w),
             (unsigned long long)((uintptr_t)p ^ j4_now_us()));
    rc = p->report ? j4_pool_take(w, NULL, &item) : J4_ERR_INVALID;
    if (rc == J4_OK)
        rc = probe_account(w, item, p->account, sizeof(p->account));
    if (rc == J4_OK)
        rc = probe_send(w, p, "hold");
    if (rc != J4_OK) {
        free(p);
        return rc;
    }
    *state = p;
    return J4_OK;
}

static int probe_step(j4_worker_t *w, void *state)
{
    struct probe *p = state;
    int rc = probe_send(w, p, "use");

    j4_sleep(w, p->think_ms);
    return rc;
}

static void probe_fini(j4_worker_t *w, void *state)
{
    struct probe *p = state;

    probe_send(w, p, "release");
    free(p);
}

J4_SCENARIO(pool_probe) = {
    .abi_version = J4_ABI_VERSION,
    .name = "pool_probe",
    .description = "takes a pool item and reports holding it (tests)",
    .init = probe_init,
    .step = probe_step,
    .fini = probe_fini,
};
