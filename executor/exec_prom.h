/*
 * exec_prom.h - GET /metrics on j4-executor: this executor's own share.
 *
 * Off unless --metrics-listen HOST:PORT (J4_METRICS_LISTEN) is given. The
 * control thread feeds every report's deltas and every heartbeat's run
 * statuses in; the HTTP thread (libmicrohttpd, started after the signals
 * are blocked, so it never takes SIGTERM) renders cumulative totals with
 * common/prom.c under a mutex. It keeps the EXEC_PROM_SCENARIOS most
 * recently active scenarios.
 *
 * One instance per process: the functions act on a process-wide server
 * and do nothing while it is not started.
 */
#ifndef J4_EXECUTOR_EXEC_PROM_H
#define J4_EXECUTOR_EXEC_PROM_H

#include <stddef.h>

#include "runtime.h"

#define EXEC_PROM_SCENARIOS 16

/* listen "" or NULL: stays off and returns J4_OK. J4_ERR_IO (logged)
 * when it cannot listen. */
int exec_prom_start(const char *listen, const char *executor_id);
void exec_prom_stop(void);

/* Control thread: adds a report's deltas to the totals. */
void exec_prom_add(const struct run_delta *deltas, size_t n);

/* Control thread: the planned and running workers of every run. */
void exec_prom_workers(const struct run_status *statuses, size_t n);

#endif
