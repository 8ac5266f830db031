/*
 * grants_store.h - writing a scenario's grants to PostgreSQL.
 *
 * The leader writes a scenario's grants before any message carries them
 * (docs/architecture.md, "Rebalancing without going over target"). With
 * a thousand executors that is a thousand grants per scenario, and when
 * one executor is lost every slot moves; so a scenario's grants are one
 * row of scenario_grants (one text column, migration 006), and the
 * changes of many scenarios go in one statement. The view assignments
 * shows them as one row per grant. Runs inside the caller's fenced
 * transaction, on the leader thread.
 */
#ifndef J4_DIST_GRANTS_STORE_H
#define J4_DIST_GRANTS_STORE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "leader_int.h"

/* Makes the stored grants of scenario_id equal grants[0..n-1] (sorted
 * by exec); n == 0 deletes them. Returns J4_OK or J4_ERR_UNAVAILABLE
 * (the caller rolls back). */
int grants_store_write(PGconn *conn, uint64_t epoch, int64_t scenario_id,
                       const struct grant *grants, size_t n);

/* The same for n scenarios at once: ids[i] gets grants[i][0..counts[i]
 * - 1]; a scenario with no grant keeps an empty row. */
int grants_store_write_many(PGconn *conn, uint64_t epoch,
                            const int64_t *ids,
                            const struct grant *const *grants,
                            const size_t *counts, size_t n);

/* Deletes the stored grants of scenario_id. */
int grants_store_delete(PGconn *conn, int64_t scenario_id);

#endif
