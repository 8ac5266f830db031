/*
 * pool_link.h - the cluster backend of j4_pool_take() (pool_link.c).
 *
 * Installed once NATS is set up and removed before it is closed; workers
 * then ask the leader for pool items on j4.pool.take.<executor id>.
 */
#ifndef J4_EXECUTOR_POOL_LINK_H
#define J4_EXECUTOR_POOL_LINK_H

#include "executor.h"

/* ex must outlive the installation; call before any worker starts. */
void pool_link_install(struct executor *ex);

/* Call once every worker has stopped, before link_close(). */
void pool_link_remove(void);

#endif
