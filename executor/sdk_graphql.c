/*
 * sdk_graphql.c - j4_graphql(): a GraphQL query as one HTTP POST.
 *
 * The query, its variables and operation name become the JSON body the
 * GraphQL-over-HTTP convention expects; the exchange itself is the HTTP
 * helper's (same connection, trace context, timeout and recording). A
 * 200 answer whose "errors" array is not empty is a failed request with
 * its own outcome, J4_OUTCOME_GRAPHQL, and returns J4_ERR_PROTOCOL.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

#define GRAPHQL_HEADERS_MAX 64

/* The request body as a malloc'd JSON text, or NULL (bad variables
 * JSON sets *invalid). */
static char *graphql_body(const j4_graphql_request_t *req, int *invalid)
{
    json_t *doc = json_object();
    json_t *vars = NULL;
    char *text = NULL;

    *invalid = 0;
    if (!doc)
        return NULL;
    if (req->variables_json) {
        vars = json_loads(req->variables_json, 0, NULL);
        if (!json_is_object(vars)) {
            *invalid = 1;
            goto out_doc;
        }
    }
    if (json_object_set_new(doc, "query", json_string(req->query)) ||
        (vars && json_object_set(doc, "variables", vars)) ||
        (req->operation_name &&
         json_object_set_new(doc, "operationName",
                             json_string(req->operation_name))))
        goto out_doc;
    text = json_dumps(doc, JSON_COMPACT);
out_doc:
    json_decref(vars);
    json_decref(doc);
    return text;
}

J4_EXPORT int j4_graphql(j4_worker_t *w, const j4_graphql_request_t *req,
                         j4_http_response_t *resp)
{
    const char *headers[GRAPHQL_HEADERS_MAX + 3];
    j4_http_request_t http = {0};
    size_t n = 0;
    int invalid, rc;
    char *body;

    if (!w || !req || !req->url || !req->query)
        return J4_ERR_INVALID;
    headers[n++] = "Content-Type: application/json";
    headers[n++] = "Accept: application/json";
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        if (i == GRAPHQL_HEADERS_MAX)
            return J4_ERR_TOOBIG;
        headers[n++] = req->headers[i];
    }
    headers[n] = NULL;
    body = graphql_body(req, &invalid);
    if (!body)
        return invalid ? J4_ERR_INVALID : J4_ERR_NOMEM;

    http.method = "POST";
    http.url = req->url;
    http.headers = headers;
    http.body = body;
    http.body_len = strlen(body);
    http.timeout_ms = req->timeout_ms;
    http.name = req->name ? req->name : "graphql";
    rc = sdk_http_exchange(w, &http, resp, 1);
    free(body);
    return rc;
}
