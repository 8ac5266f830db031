/*
 * chat.c - the flagship scenario: users of the demo chat service
 * (tests/targets/chat-service) talking over REST, GraphQL and gRPC.
 *
 * Each worker is one user. init creates an account (REST), or takes one
 * from a user pool when params.pool is set, gets a token (REST) and its
 * chat id (GraphQL), opens its server-streaming Session with reconnect
 * on, and starts two routines: one pings every ping_interval so the
 * server keeps the session, one reads the stream and records each
 * message's delivery latency (receive wall clock minus sent_at_us) as
 * the team metric "delivery_latency". Every iteration sends one message
 * (gRPC unary) and thinks.
 *
 * Params:
 *   http_url       REST base URL, required ("http://127.0.0.1:8080")
 *   graphql_url    default http_url + "/graphql"
 *   grpc_target    gRPC "host:port", required
 *   think          sleep after each message, default "1s"
 *   ping_interval  default "5s"
 *   reconnect_max  longest backoff between stream reopens, default "1s"
 *   pool           user pool of {"username","password"} items; when set,
 *                  accounts are taken from it instead of created
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.pb-c.h"
#include "j4.h"

#define FIELD_MAX 128

struct chat_worker {
    char http_url[256];
    char graphql_url[256];
    char username[FIELD_MAX];
    char password[FIELD_MAX];
    char token[FIELD_MAX];
    char chat_id[FIELD_MAX];
    char auth[FIELD_MAX + 32]; /* "Authorization: Bearer <token>" */
    j4_grpc_channel_t *channel;
    j4_grpc_stream_t *stream;
    int64_t think_ms, ping_ms;
    uint64_t sent;
};

static int64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Copies the string member key of a JSON text into out. */
static int json_field(const char *text, size_t len, const char *key,
                      char *out, size_t size)
{
    json_t *doc = json_loadb(text, len, 0, NULL);
    json_t *v = json_object_get(doc, key);
    int rc = J4_ERR_PROTOCOL;

    if (json_is_string(v) && json_string_length(v) < size) {
        snprintf(out, size, "%s", json_string_value(v));
        rc = J4_OK;
    }
    json_decref(doc);
    return rc;
}

/* POSTs a JSON body to http_url + path; the response stays in *resp. */
static int rest_post(j4_worker_t *w, struct chat_worker *c, const char *path,
                     const char *name, const char *body,
                     j4_http_response_t *resp)
{
    static const char *const headers[] = {
        "Content-Type: application/json", NULL};
    char url[300];
    j4_http_request_t req = {0};
    int rc;

    snprintf(url, sizeof(url), "%s%s", c->http_url, path);
    req.method = "POST";
    req.url = url;
    req.headers = headers;
    req.body = body;
    req.timeout_ms = 10000;
    req.name = name;
    rc = j4_http_request(w, &req, resp);
    if (rc != J4_OK)
        j4_log(w, J4_LOG_WARN, "POST %s failed: %s (status %ld)", path,
               j4_strerror(rc), resp->status);
    return rc;
}

/* The account: from the pool, or a new one. */
static int account_get(j4_worker_t *w, struct chat_worker *c)
{
    const char *pool = j4_param_str(w, "pool", NULL);
    j4_http_response_t resp;
    const char *item;
    int rc;

    if (pool) {
        rc = j4_pool_take(w, pool, &item);
        if (rc != J4_OK)
            return rc;
        if (json_field(item, strlen(item), "username", c->username,
                       sizeof(c->username)) ||
            json_field(item, strlen(item), "password", c->password,
                       sizeof(c->password))) {
            j4_log(w, J4_LOG_ERROR, "pool item has no username/password");
            return J4_ERR_INVALID;
        }
        return J4_OK;
    }
    rc = rest_post(w, c, "/accounts", "create_account", "{}", &resp);
    if (rc != J4_OK)
        return rc;
    if (json_field(resp.body, resp.body_len, "username", c->username,
                   sizeof(c->username)) ||
        json_field(resp.body, resp.body_len, "password", c->password,
                   sizeof(c->password)))
        return J4_ERR_PROTOCOL;
    return J4_OK;
}

static int token_get(j4_worker_t *w, struct chat_worker *c)
{
    j4_http_response_t resp;
    json_t *body = json_pack("{s:s, s:s}", "username", c->username,
                             "password", c->password);
    char *text = json_dumps(body, JSON_COMPACT);
    int rc = text ? rest_post(w, c, "/tokens", "token", text, &resp)
                  : J4_ERR_NOMEM;

    free(text);
    json_decref(body);
    if (rc != J4_OK)
        return rc;
    rc = json_field(resp.body, resp.body_len, "token", c->token,
                    sizeof(c->token));
    snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s", c->token);
    return rc;
}

static int chat_id_get(j4_worker_t *w, struct chat_worker *c)
{
    const char *headers[] = {c->auth, NULL};
    j4_graphql_request_t req = {0};
    j4_http_response_t resp;
    json_t *doc, *id;
    int rc;

    req.name = "me";
    req.url = c->graphql_url;
    req.query = "query { me { chatId } }";
    req.headers = headers;
    req.timeout_ms = 10000;
    rc = j4_graphql(w, &req, &resp);
    if (rc != J4_OK)
        return rc;
    doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    id = json_object_get(json_object_get(json_object_get(doc, "data"), "me"),
                         "chatId");
    rc = J4_ERR_PROTOCOL;
    if (json_is_string(id) && json_string_length(id) < sizeof(c->chat_id)) {
        snprintf(c->chat_id, sizeof(c->chat_id), "%s", json_string_value(id));
        rc = J4_OK;
    }
    json_decref(doc);
    return rc;
}

static int session_open(j4_worker_t *w, struct chat_worker *c)
{
    J4chat__SessionRequest msg = J4CHAT__SESSION_REQUEST__INIT;
    j4_grpc_stream_options_t opts = {0};
    uint8_t buf[512];
    size_t len;

    msg.token = c->token;
    msg.chat_id = c->chat_id;
    len = j4chat__session_request__get_packed_size(&msg);
    if (len > sizeof(buf))
        return J4_ERR_TOOBIG;
    j4chat__session_request__pack(&msg, buf);
    opts.name = "session";
    opts.reconnect = 1;
    opts.backoff_max_ms = j4_param_duration_ms(w, "reconnect_max", 1000);
    return j4_grpc_stream_open(w, c->channel, "/j4chat.Chat/Session", buf,
                               len, &opts, &c->stream);
}

/* Routine: reads the stream and records each message's delivery. */
static void reader(j4_worker_t *w, void *arg)
{
    struct chat_worker *c = arg;

    while (!j4_should_stop(w)) {
        const void *msg;
        size_t len;
        J4chat__Event *ev;

        if (j4_grpc_stream_recv(w, c->stream, 1000, &msg, &len) != J4_OK)
            continue;
        ev = j4chat__event__unpack(NULL, len, msg);
        if (!ev)
            continue;
        if (ev->sent_at_us > 0) {
            int64_t delay = wall_us() - ev->sent_at_us;

            j4_metric_observe(w, "delivery_latency",
                              delay > 0 ? (uint64_t)delay : 0);
        }
        j4chat__event__free_unpacked(ev, NULL);
    }
}

/* Routine: keeps the session alive. */
static void pinger(j4_worker_t *w, void *arg)
{
    struct chat_worker *c = arg;
    J4chat__PingRequest msg = J4CHAT__PING_REQUEST__INIT;
    j4_grpc_call_options_t opts = {.name = "ping", .timeout_ms = 5000};
    uint8_t buf[256];
    size_t len;

    msg.token = c->token;
    len = j4chat__ping_request__get_packed_size(&msg);
    if (len > sizeof(buf))
        return;
    j4chat__ping_request__pack(&msg, buf);
    while (j4_sleep(w, c->ping_ms) == J4_OK)
        j4_grpc_unary(w, c->channel, "/j4chat.Chat/Ping", buf, len, &opts,
                      NULL, NULL, NULL);
}

static int chat_params(j4_worker_t *w, struct chat_worker *c)
{
    const char *http_url = j4_param_str(w, "http_url", NULL);
    const char *graphql_url = j4_param_str(w, "graphql_url", NULL);
    const char *target = j4_param_str(w, "grpc_target", NULL);

    if (!http_url || !target) {
        j4_log(w, J4_LOG_ERROR, "params 'http_url' and 'grpc_target' "
                                "are required");
        return J4_ERR_INVALID;
    }
    snprintf(c->http_url, sizeof(c->http_url), "%s", http_url);
    if (graphql_url)
        snprintf(c->graphql_url, sizeof(c->graphql_url), "%s", graphql_url);
    else
        snprintf(c->graphql_url, sizeof(c->graphql_url), "%s/graphql",
                 http_url);
    c->think_ms = j4_param_duration_ms(w, "think", 1000);
    c->ping_ms = j4_param_duration_ms(w, "ping_interval", 5000);
    c->channel = j4_grpc_channel(w, target);
    return c->channel ? J4_OK : J4_ERR_NOMEM;
}

static void chat_fini(j4_worker_t *w, void *state)
{
    struct chat_worker *c = state;

    if (!c)
        return;
    j4_grpc_stream_close(w, c->stream);
    free(c);
}

static int chat_init(j4_worker_t *w, void **state)
{
    struct chat_worker *c = calloc(1, sizeof(*c));
    int rc;

    if (!c)
        return J4_ERR_NOMEM;
    if ((rc = chat_params(w, c)) || (rc = account_get(w, c)) ||
        (rc = token_get(w, c)) || (rc = chat_id_get(w, c)) ||
        (rc = session_open(w, c)))
        goto out_free;
    rc = j4_routine_start(w, reader, c);
    if (rc != J4_OK)
        goto out_close;
    rc = j4_routine_start(w, pinger, c);
    if (rc != J4_OK) {
        /* The reader runs on c until the framework halts and joins it
         * after this init returns; nothing frees c after that, a small
         * leak on a path where a thread could not be created. */
        j4_log(w, J4_LOG_WARN, "chat init failed: %s", j4_strerror(rc));
        return rc;
    }
    *state = c;
    return J4_OK;

out_close:
    j4_grpc_stream_close(w, c->stream);
out_free:
    j4_log(w, J4_LOG_WARN, "chat init failed: %s", j4_strerror(rc));
    free(c);
    return rc;
}

static int chat_step(j4_worker_t *w, void *state)
{
    struct chat_worker *c = state;
    J4chat__SendRequest msg = J4CHAT__SEND_REQUEST__INIT;
    j4_grpc_call_options_t opts = {.name = "send", .timeout_ms = 10000};
    char text[64];
    uint8_t buf[512];
    size_t len;
    int rc;

    snprintf(text, sizeof(text), "message %llu",
             (unsigned long long)++c->sent);
    msg.token = c->token;
    msg.chat_id = c->chat_id;
    msg.text = text;
    msg.sent_at_us = wall_us();
    len = j4chat__send_request__get_packed_size(&msg);
    if (len > sizeof(buf))
        return J4_ERR_TOOBIG;
    j4chat__send_request__pack(&msg, buf);
    rc = j4_grpc_unary(w, c->channel, "/j4chat.Chat/Send", buf, len, &opts,
                       NULL, NULL, NULL);
    j4_sleep(w, c->think_ms);
    return rc == J4_OK ? 0 : rc;
}

J4_SCENARIO(chat) = {
    .abi_version = J4_ABI_VERSION,
    .name = "chat",
    .description = "users of the demo chat service: REST, GraphQL, "
                   "gRPC stream and delivery latency",
    .init = chat_init,
    .step = chat_step,
    .fini = chat_fini,
};
