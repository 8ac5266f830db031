/*
 * pool.h - the leader's side of user pools: who holds which item.
 *
 * Executors ask for items over NATS request/reply (PoolTake on
 * j4.pool.take.<executor>, PoolRelease on j4.pool.release.<executor>).
 * Every distributor subscribes, but only the leader answers: the NATS
 * callbacks queue the messages and wake the leader thread, which decides
 * in dpool_pass(). A lease is written to pool_leases (fenced by the
 * epoch) before the answer leaves, and the table is read back when a new
 * leader wins, so no item is handed out twice across a failover.
 *
 * Leases end when the worker gives them back, when the executor's lease
 * runs out on the leader's clock (the same moment its slots are given to
 * others), when the executor restarts, and when the scenario ends.
 */
#ifndef J4_DIST_POOL_H
#define J4_DIST_POOL_H

#include <nats/nats.h>

struct leader;
struct dpool;

/* Creates the pool state of leader l (NULL on out of memory). */
struct dpool *dpool_new(struct leader *l);
void dpool_free(struct dpool *p);

/* Subscribes to j4.pool.take.* and j4.pool.release.*; J4_OK or
 * J4_ERR_UNAVAILABLE. dpool_unsubscribe() stops deliveries; call
 * dpool_free() only once no cnats thread can run a callback. */
int dpool_subscribe(struct dpool *p, natsConnection *nc);
void dpool_unsubscribe(struct dpool *p);

/* Leader thread: the lock was won (leases are read back at the next
 * pass) or lost (everything held in memory is dropped). */
void dpool_won(struct dpool *p);
void dpool_lost(struct dpool *p);

/* Leader thread, once per pass while leading: ends leases of dead
 * executors and ended scenarios, then answers queued takes and releases
 * in one fenced transaction. */
void dpool_pass(struct dpool *p);

#endif
