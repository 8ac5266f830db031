/*
 * http.c - the example scenario: every iteration is one HTTP request.
 *
 * Params (all read once per worker, in init):
 *   url      required, "http://..." or "https://..."
 *   method   default "GET"
 *   headers  object of name -> string value, e.g. {"Accept": "text/html"}
 *   body     string sent as the request body
 *   timeout  duration of the whole exchange, default "30s"
 *   think    duration slept after each request, default none
 *   max_redirects  integer: 0 (default) does not follow, -1 means 10
 *   iterations     integer: requests per worker, then it idles until the
 *                  schedule stops it; 0 (default) means no limit
 *
 * The SDK records the request itself (outcome and latency), so a step
 * only counts as failed when the request failed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "j4.h"

struct http_worker {
    j4_http_request_t req;
    char **headers; /* NULL-terminated "Name: value" lines */
    int64_t think_ms;
    int64_t iterations; /* left to do; -1: no limit */
};

static void free_headers(char **headers)
{
    for (size_t i = 0; headers && headers[i]; i++)
        free(headers[i]);
    free(headers);
}

/* Builds "Name: value" lines from the "headers" param, if any. */
static int load_headers(j4_worker_t *w, char ***out)
{
    json_t *params = json_loads(j4_params_json(w), 0, NULL);
    json_t *obj = json_object_get(params, "headers");
    const char *name;
    json_t *value;
    size_t i = 0;
    int rc = J4_OK;

    *out = NULL;
    if (!obj)
        goto out_params;
    if (!json_is_object(obj)) {
        j4_log(w, J4_LOG_ERROR, "param 'headers' must be an object");
        rc = J4_ERR_INVALID;
        goto out_params;
    }
    *out = calloc(json_object_size(obj) + 1, sizeof(**out));
    if (!*out) {
        rc = J4_ERR_NOMEM;
        goto out_params;
    }
    json_object_foreach(obj, name, value)
    {
        size_t len;

        if (!json_is_string(value)) {
            j4_log(w, J4_LOG_ERROR, "header '%s' must be a string", name);
            rc = J4_ERR_INVALID;
            break;
        }
        len = strlen(name) + json_string_length(value) + 3;
        (*out)[i] = malloc(len);
        if (!(*out)[i]) {
            rc = J4_ERR_NOMEM;
            break;
        }
        snprintf((*out)[i++], len, "%s: %s", name, json_string_value(value));
    }
out_params:
    json_decref(params);
    return rc;
}

static int http_init(j4_worker_t *w, void **state)
{
    struct http_worker *hw;
    const char *url = j4_param_str(w, "url", NULL);

    if (!url || !*url) {
        j4_log(w, J4_LOG_ERROR, "param 'url' is required");
        return J4_ERR_INVALID;
    }
    hw = calloc(1, sizeof(*hw));
    if (!hw)
        return J4_ERR_NOMEM;
    if (load_headers(w, &hw->headers) != J4_OK) {
        free_headers(hw->headers);
        free(hw);
        return J4_ERR_INVALID;
    }
    /* Strings from j4_param_str() live as long as the worker. */
    hw->req.url = url;
    hw->req.method = j4_param_str(w, "method", "GET");
    hw->req.body = j4_param_str(w, "body", NULL);
    hw->req.headers = (const char *const *)hw->headers;
    hw->req.timeout_ms = j4_param_duration_ms(w, "timeout", 30000);
    hw->req.max_redirects = (int)j4_param_int(w, "max_redirects", 0);
    hw->think_ms = j4_param_duration_ms(w, "think", 0);
    hw->iterations = j4_param_int(w, "iterations", 0);
    if (hw->iterations <= 0)
        hw->iterations = -1;
    *state = hw;
    return J4_OK;
}

static int http_step(j4_worker_t *w, void *state)
{
    struct http_worker *hw = state;
    int rc;

    if (hw->iterations == 0) {
        /* Done with its share: wait for the schedule to stop it. */
        j4_sleep(w, 3600 * 1000);
        return 0;
    }
    if (hw->iterations > 0)
        hw->iterations--;
    rc = j4_http_request(w, &hw->req, NULL);

    if (hw->think_ms > 0)
        j4_sleep(w, hw->think_ms);
    return rc == J4_OK || rc == J4_ERR_STOPPED ? 0 : 1;
}

static void http_fini(j4_worker_t *w, void *state)
{
    struct http_worker *hw = state;

    (void)w;
    free_headers(hw->headers);
    free(hw);
}

J4_SCENARIO(http) = {
    .abi_version = J4_ABI_VERSION,
    .name = "http",
    .description = "one HTTP request per iteration",
    .init = http_init,
    .step = http_step,
    .fini = http_fini,
};
