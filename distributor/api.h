/*
 * api.h - the REST API every distributor serves (libmicrohttpd).
 *
 * Any distributor accepts scenarios and stop requests: they are written
 * to PostgreSQL, committed before the answer, and announced with NOTIFY
 * j4_scenarios so the leader acts at once. Reads combine PostgreSQL (the
 * scenario, its grants, its metrics) with this process's heartbeat table
 * (what is running now). Routes and JSON shapes: docs/architecture.md.
 */
#ifndef J4_DIST_API_H
#define J4_DIST_API_H

#include <nats/nats.h>

#include "config.h"
#include "fleet.h"
#include "leader.h"
#include "pgstore.h"

#define API_BODY_MAX (1024 * 1024)

struct api;

/* Starts serving cfg->listen with a thread pool. Everything passed must
 * outlive the server. Returns NULL after logging why it could not. */
struct api *api_start(const struct config *cfg, struct pgpool *pool,
                      struct fleet *fleet, struct leader *leader,
                      natsConnection *nc);

/* Stops accepting, waits for requests in flight, frees the server. */
void api_stop(struct api *api);

#endif
