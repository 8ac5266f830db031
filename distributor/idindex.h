/*
 * idindex.h - finding a record by its id in an array of records.
 *
 * The fleet table and the leader's executor table are arrays of records
 * whose first field is the executor id (a NUL-terminated char array).
 * With a thousand executors a linear search by id costs more than
 * everything else a heartbeat does, so each table keeps this open
 * addressing index beside it: slots hold 1 + the record's position, 0
 * for empty. The index stores no pointer into the array, so the array
 * may be reallocated freely; the caller passes its base on every call.
 * Records are only appended, or the index is rebuilt after the array is
 * compacted. Not thread-safe: the owner's lock (or thread) covers it.
 */
#ifndef J4_DIST_IDINDEX_H
#define J4_DIST_IDINDEX_H

#include <stddef.h>
#include <stdint.h>

struct id_index {
    uint32_t *slots;
    size_t mask;                /* slots - 1, a power of two minus one */
};

/* The position of the record with id among n records of stride bytes
 * starting at base, or -1. */
long id_index_find(const struct id_index *x, const void *base,
                   size_t stride, const char *id);

/* Indexes record i, just appended (n records now). Grows the index when
 * it is half full. Returns 0, or -1 when out of memory (then every
 * find misses until a rebuild succeeds: callers treat it as "absent"). */
int id_index_add(struct id_index *x, const void *base, size_t stride,
                 size_t n, size_t i);

/* Indexes the n records from scratch (after a compaction). */
int id_index_rebuild(struct id_index *x, const void *base, size_t stride,
                     size_t n);

/* Forgets every record; keeps the memory. */
void id_index_clear(struct id_index *x);

void id_index_release(struct id_index *x);

#endif
