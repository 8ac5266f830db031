/*
 * status.c - names for J4's status codes and request outcomes.
 *
 * Both enums have fixed numbers (include/j4.h); these tables turn them into
 * the words people read in errors, reports and metric labels.
 */
#include "j4.h"

const char *j4_strerror(int status)
{
    switch (status) {
    case J4_OK: return "success";
    case J4_ERR_NOMEM: return "out of memory";
    case J4_ERR_INVALID: return "invalid argument";
    case J4_ERR_NOTFOUND: return "not found";
    case J4_ERR_IO: return "input/output error";
    case J4_ERR_TIMEOUT: return "timed out";
    case J4_ERR_STOPPED: return "worker stopped";
    case J4_ERR_PROTOCOL: return "protocol error";
    case J4_ERR_CONNECT: return "connection failed";
    case J4_ERR_DNS: return "name did not resolve";
    case J4_ERR_TLS: return "TLS failure";
    case J4_ERR_ABI: return "plugin built for another SDK version";
    case J4_ERR_CONFLICT: return "state changed concurrently";
    case J4_ERR_UNAVAILABLE: return "service unavailable";
    case J4_ERR_TOOBIG: return "too large";
    case J4_ERR_REDIRECTS: return "too many redirects";
    case J4_ERR_HTTP: return "HTTP error status";
    }
    return "unknown error";
}

static const char *const outcome_names[J4_OUTCOME_COUNT_] = {
    [J4_OUTCOME_OK] = "ok",
    [J4_OUTCOME_HTTP_4XX] = "http_4xx",
    [J4_OUTCOME_HTTP_5XX] = "http_5xx",
    [J4_OUTCOME_TIMEOUT] = "timeout",
    [J4_OUTCOME_CONNECT] = "connect",
    [J4_OUTCOME_DNS] = "dns",
    [J4_OUTCOME_TLS] = "tls",
    [J4_OUTCOME_REDIRECTS] = "redirects",
    [J4_OUTCOME_GRAPHQL] = "graphql",
    [J4_OUTCOME_GRPC] = "grpc",
    [J4_OUTCOME_INTERRUPTED] = "interrupted",
    [J4_OUTCOME_OTHER] = "other",
};

const char *j4_outcome_name(j4_outcome outcome)
{
    if ((unsigned)outcome >= J4_OUTCOME_COUNT_)
        return "other";
    return outcome_names[outcome];
}
