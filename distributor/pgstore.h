/*
 * pgstore.h - j4-distributor's access to PostgreSQL.
 *
 * Three things live here: opening a libpq session with the distributor's
 * defaults, a small pool of sessions shared by the REST handlers, and the
 * migrations runner that brings the schema up to date at start. The
 * leader keeps its own two sessions (lock and writes) outside the pool.
 */
#ifndef J4_DIST_PGSTORE_H
#define J4_DIST_PGSTORE_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>

/* Advisory lock keys (docs/architecture.md). */
#define PGSTORE_LOCK_MIGRATIONS 0x4a33
#define PGSTORE_LOCK_LEADER 0x4a34

/* Opens a session for conninfo, with a connect timeout and the
 * application name set unless conninfo sets them. Returns the connection
 * (check PQstatus) or NULL on out of memory. The caller owns it. */
PGconn *pgstore_connect(const char *conninfo);

/* Runs sql (no parameters) and returns non-zero when it succeeded with
 * the wanted status; logs nothing. */
int pgstore_exec_ok(PGconn *conn, const char *sql, ExecStatusType want);

/* Opens a leader write transaction fenced by epoch: BEGIN, then reads
 * cluster.epoch FOR SHARE. Returns J4_OK inside the transaction,
 * J4_ERR_CONFLICT when another leader's epoch is in force (rolled back),
 * or J4_ERR_UNAVAILABLE when PostgreSQL failed (rolled back). */
int pgstore_begin_fenced(PGconn *conn, uint64_t epoch);

/* COMMIT; on failure rolls back and returns J4_ERR_UNAVAILABLE. */
int pgstore_commit(PGconn *conn);
void pgstore_rollback(PGconn *conn);

/* PQexecParams with text parameters and text results. */
PGresult *pgstore_query(PGconn *conn, const char *sql, int n_params,
                        const char *const *params);

#define PGSTORE_POOL_MAX 8

/* Sessions for the REST handlers: at most PGSTORE_POOL_MAX, opened on
 * demand, closed when found broken. Thread-safe. */
struct pgpool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    char *conninfo;
    PGconn *idle[PGSTORE_POOL_MAX];
    int n_idle;
    int n_open;
};

int pgpool_init(struct pgpool *pool, const char *conninfo);
void pgpool_release(struct pgpool *pool);

/* Takes a working session, waiting while every one is busy. Returns NULL
 * when PostgreSQL cannot be reached; give a non-NULL one back with
 * pgpool_put(). */
PGconn *pgpool_get(struct pgpool *pool);
void pgpool_put(struct pgpool *pool, PGconn *conn);

/* Applies every *.sql file of dir that schema_migrations does not list,
 * in name order, each in its own transaction, under the migrations
 * advisory lock. Returns J4_OK, J4_ERR_UNAVAILABLE when PostgreSQL could
 * not be reached, or J4_ERR_IO / J4_ERR_INVALID after logging why. */
int pgstore_migrate(const char *conninfo, const char *dir);

#endif
