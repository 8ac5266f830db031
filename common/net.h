/*
 * net.h - listen addresses as J4's flags spell them.
 */
#ifndef J4_COMMON_NET_H
#define J4_COMMON_NET_H

#include <netdb.h>

/* Resolves "HOST:PORT" or "[V6]:PORT" (numeric port) for a passive
 * socket. Returns a list to free with freeaddrinfo(), or NULL when the
 * text is not an address or does not resolve. */
struct addrinfo *net_resolve_listen(const char *listen);

#endif
