/*
 * client.h - the j4 command's REST client for a J4 distributor.
 *
 * A thin layer over libcurl and jansson: one call sends a request and
 * hands back the status and the decoded JSON body.
 */
#ifndef J4_CLI_CLIENT_H
#define J4_CLI_CLIENT_H

#include <jansson.h>

struct client {
    char *server;       /* "http://127.0.0.1:8080", owned */
    char *token;        /* NULL for none, owned */
    void *curl;         /* CURL *, reused across requests */
    char error[256];    /* why the last call failed */
};

int client_init(struct client *c, const char *server, const char *token);
void client_release(struct client *c);

/* Sends method path with body (NULL for none). On J4_OK sets *status and
 * *reply (a new reference, NULL when the body was not JSON). Returns
 * J4_ERR_UNAVAILABLE with c->error set when no answer came. */
int client_call(struct client *c, const char *method, const char *path,
                const char *body, long *status, json_t **reply);

/* The message of an API error body, or a fallback naming the status. */
const char *client_error_text(json_t *reply, long status, char *buf,
                              size_t size);

#endif
