/*
 * dataset.h - the data sets of user pools, as files: names, limits and
 * the CSV and JSON-lines parsers.
 *
 * The distributor parses what is uploaded or found in --datasets DIR; the
 * executor parses params.pool_file when it plays a scenario without a
 * cluster (j4 run). Items are JSON objects; a CSV header row gives the
 * keys.
 */
#ifndef J4_COMMON_DATASET_H
#define J4_COMMON_DATASET_H

#include <jansson.h>
#include <stddef.h>

#define DATASET_NAME_MAX 64
#define DATASET_ITEMS_MAX 100000
#define DATASET_ITEM_MAX (16 * 1024)        /* one item as JSON, bytes */
#define DATASET_FILE_MAX (64 * 1024 * 1024) /* a file of --datasets DIR */
#define DATASET_COLUMNS_MAX 256

enum dataset_format { DATASET_CSV, DATASET_JSONL };

/* Non-zero when name is 1-64 of [a-z0-9_-]. */
int dataset_name_ok(const char *name);

/* Parses text (len bytes) into a new JSON array of objects in *items.
 * Returns J4_OK, or J4_ERR_INVALID / J4_ERR_TOOBIG with why (naming the
 * line) in err. */
int dataset_parse(const char *text, size_t len, enum dataset_format format,
                  json_t **items, char *err, size_t err_size);

#endif
