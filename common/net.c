/*
 * net.c - resolving the HOST:PORT listen addresses of J4's HTTP servers
 * (the distributor's API, an executor's /metrics).
 */
#include "net.h"

#include <string.h>
#include <sys/socket.h>

struct addrinfo *net_resolve_listen(const char *listen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints = {0}, *res = NULL;
    size_t hlen;

    if (!colon || !colon[1])
        return NULL;
    hlen = (size_t)(colon - listen);
    if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']') {
        listen++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return NULL;
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return NULL;
    return res;
}
