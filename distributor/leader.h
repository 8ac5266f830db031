/*
 * leader.h - leader election and the leader's work.
 *
 * Every distributor runs one leader thread. While standing by it polls
 * pg_try_advisory_lock(0x4a34) every 500 ms on a dedicated session; on
 * winning it bumps cluster.epoch and becomes the leader: it starts
 * scenarios, splits them over the live executors, answers heartbeats with
 * desired states, and applies metrics reports. It steps down at once when
 * its lock session fails or another epoch is found in force.
 */
#ifndef J4_DIST_LEADER_H
#define J4_DIST_LEADER_H

#include <nats/nats.h>
#include <stdint.h>

#include "config.h"
#include "fleet.h"

struct leader;

/* Creates the leader state; cfg, nc and fleet must outlive it. Returns
 * NULL on out of memory. */
struct leader *leader_new(const struct config *cfg, natsConnection *nc,
                          struct fleet *fleet);

/* Starts the leader thread. Returns J4_OK or J4_ERR_IO. */
int leader_start(struct leader *l);

/* Stops the thread, stepping down and releasing the lock first. */
void leader_stop(struct leader *l);
void leader_free(struct leader *l);

/* Wakes the leader thread (fleet hook; any thread). */
void leader_wake(void *leader);

/* NATS callback for j4.metrics.*; takes ownership of msg. */
void leader_on_metrics(natsConnection *nc, natsSubscription *sub,
                       natsMsg *msg, void *leader);

/* Restarts the "listening for heartbeats" window after a NATS connect
 * or reconnect: heartbeats sent meanwhile were lost, so the fleet table
 * is not known to be complete until it has listened again. Any thread. */
void leader_heard_from_nats(struct leader *l);

/* Whether this process is the leader now, and its epoch (0 if not).
 * Any thread. */
int leader_is_leader(struct leader *l, uint64_t *epoch);

#endif
