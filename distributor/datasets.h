/*
 * datasets.h - data sets for user pools: parsing, storing, the REST routes.
 *
 * A data set is a named list of JSON objects that scenario workers take
 * items of (j4_pool_take). It comes from a CSV file (the header row gives
 * the keys, every value is a string) or a JSON-lines file (one object per
 * line), uploaded with POST /datasets/{name} or found in the directory
 * given with --datasets at start. Data sets live in PostgreSQL (table
 * datasets), so every distributor serves them and they survive restarts.
 * The leader reads the items when a scenario first takes from them
 * (distributor/pool.c).
 */
#ifndef J4_DIST_DATASETS_H
#define J4_DIST_DATASETS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "dataset.h"
#include "pgstore.h"

/* Serves /datasets and /datasets/{name}. ctype is the request's
 * Content-Type (or NULL). Sets *status and *reply (a new reference:
 * the answer, or {"error": {...}}). Any MHD thread. */
void datasets_route(struct pgpool *pool, const char *method, const char *url,
                    const char *ctype, const char *body, size_t len,
                    unsigned *status, json_t **reply);

/* Checks the "pool" key of a scenario's params: absent, or the name of a
 * stored data set. Returns J4_OK; otherwise sets *status (400, or 503
 * when PostgreSQL failed) and *reply and returns an error. */
int datasets_check_pool(PGconn *conn, const char *params_json,
                        unsigned *status, json_t **reply);

/* Loads every NAME.csv and NAME.jsonl file of dir into PostgreSQL,
 * replacing a stored data set of that name unless a pending or running
 * scenario uses it. Logs each file loaded or refused; returns the number
 * refused (0 when all went well), or -1 when PostgreSQL failed. */
int datasets_load_dir(const char *conninfo, const char *dir);

#endif
