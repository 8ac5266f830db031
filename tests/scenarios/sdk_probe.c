/*
 * sdk_probe.c - a test plugin that exercises one SDK helper a bounded
 * number of times per worker and then idles until the worker stops, so
 * an integration test knows exactly how many requests to expect.
 *
 * Params:
 *   mode           "http" (default) or "graphql"
 *   url            required
 *   method, body   HTTP only
 *   query          GraphQL only
 *   timeout        duration, default "10s"
 *   max_redirects  integer, default -1 (libcurl follows up to 10)
 *   iterations     requests per worker, default 1
 *
 * The first response of each worker is logged at info level as
 * "probe status=S outcome=O latency_us=L body=B", for the test to read
 * from the executor's log.
 */
#include <stdlib.h>
#include <string.h>

#include "j4.h"

struct probe {
    int64_t done, iterations;
};

static int probe_init(j4_worker_t *w, void **state)
{
    struct probe *p = calloc(1, sizeof(*p));

    if (!p)
        return J4_ERR_NOMEM;
    p->iterations = j4_param_int(w, "iterations", 1);
    *state = p;
    return J4_OK;
}

static int probe_http(j4_worker_t *w, j4_http_response_t *resp)
{
    j4_http_request_t req = {0};

    req.url = j4_param_str(w, "url", NULL);
    req.method = j4_param_str(w, "method", NULL);
    req.body = j4_param_str(w, "body", NULL);
    req.timeout_ms = j4_param_duration_ms(w, "timeout", 10000);
    req.max_redirects = (int)j4_param_int(w, "max_redirects", -1);
    req.name = "probe";
    return j4_http_request(w, &req, resp);
}

static int probe_graphql(j4_worker_t *w, j4_http_response_t *resp)
{
    j4_graphql_request_t req = {0};

    req.url = j4_param_str(w, "url", NULL);
    req.query = j4_param_str(w, "query", "{ __typename }");
    req.timeout_ms = j4_param_duration_ms(w, "timeout", 10000);
    return j4_graphql(w, &req, resp);
}

static int probe_step(j4_worker_t *w, void *state)
{
    struct probe *p = state;
    const char *mode = j4_param_str(w, "mode", "http");
    j4_http_response_t resp = {0};
    int rc;

    if (p->done >= p->iterations) {
        j4_sleep(w, 100);
        return 0;
    }
    if (strcmp(mode, "graphql") == 0)
        rc = probe_graphql(w, &resp);
    else
        rc = probe_http(w, &resp);
    if (p->done++ == 0)
        j4_log(w, J4_LOG_INFO, "probe status=%ld outcome=%s latency_us=%llu "
               "body=%.900s", resp.status, j4_outcome_name(resp.outcome),
               (unsigned long long)resp.latency_us,
               resp.body ? resp.body : "");
    return rc == J4_OK ? 0 : rc;
}

static void probe_fini(j4_worker_t *w, void *state)
{
    free(state);
}

J4_SCENARIO(sdk_probe) = {
    .abi_version = J4_ABI_VERSION,
    .name = "sdk_probe",
    .description = "test plugin: a bounded number of SDK requests",
    .init = probe_init,
    .step = probe_step,
    .fini = probe_fini,
};
