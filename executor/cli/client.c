/*
 * client.c - REST calls from the j4 command to a distributor.
 */
#include "client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "j4.h"

struct buffer {
    char *data;
    size_t len;
};

static size_t buffer_append(char *ptr, size_t size, size_t n, void *arg)
{
    struct buffer *b = arg;
    size_t add = size * n;
    char *grown;

    /* A reply over 64 MiB is not one a distributor sends. */
    if (b->len + add > (64u << 20))
        return 0;
    grown = realloc(b->data, b->len + add + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + b->len, ptr, add);
    b->data = grown;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

int client_init(struct client *c, const char *server, const char *token)
{
    size_t len = strlen(server);

    memset(c, 0, sizeof(*c));
    while (len > 0 && server[len - 1] == '/')
        len--;
    c->server = strndup(server, len);
    c->token = token && *token ? strdup(token) : NULL;
    c->curl = curl_easy_init();
    if (c->server == NULL || c->curl == NULL)
        return J4_ERR_NOMEM;
    return J4_OK;
}

void client_release(struct client *c)
{
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->server);
    free(c->token);
    memset(c, 0, sizeof(*c));
}

static struct curl_slist *client_headers(const struct client *c)
{
    struct curl_slist *h = NULL;
    char auth[512];

    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    if (c->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        h = curl_slist_append(h, auth);
    }
    return h;
}

int client_call(struct client *c, const char *method, const char *path,
                const char *body, long *status, json_t **reply)
{
    struct buffer b = {NULL, 0};
    struct curl_slist *headers = client_headers(c);
    char url[2048];
    CURLcode rc;
    CURL *curl = c->curl;

    snprintf(url, sizeof(url), "%s%s", c->server, path);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, buffer_append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);

    rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        snprintf(c->error, sizeof(c->error), "unable to reach '%s': %s",
                 c->server, curl_easy_strerror(rc));
        free(b.data);
        return J4_ERR_UNAVAILABLE;
    }

    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    *reply = b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    free(b.data);
    return J4_OK;
}

const char *client_error_text(json_t *reply, long status, char *buf,
                              size_t size)
{
    json_t *err = json_object_get(reply, "error");
    const char *msg = json_string_value(json_object_get(err, "message"));

    if (msg)
        snprintf(buf, size, "%s (HTTP %ld)", msg, status);
    else
        snprintf(buf, size, "the distributor answered HTTP %ld", status);
    return buf;
}
