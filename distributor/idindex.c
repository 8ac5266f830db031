/*
 * idindex.c - the id index of the fleet and leader tables (idindex.h).
 *
 * FNV-1a over the id picks the first slot, linear probing the next ones.
 * The index is kept at most half full, so a probe sequence is short, and
 * records are never removed one by one (a compaction rebuilds it), so no
 * tombstones are needed.
 */
#include "idindex.h"

#include <stdlib.h>
#include <string.h>

#define ID_INDEX_MIN 64

static uint32_t hash_id(const char *id)
{
    uint32_t h = 2166136261u;

    for (; *id; id++) {
        h ^= (unsigned char)*id;
        h *= 16777619u;
    }
    return h;
}

static const char *id_at(const void *base, size_t stride, size_t i)
{
    return (const char *)base + i * stride;
}

long id_index_find(const struct id_index *x, const void *base,
                   size_t stride, const char *id)
{
    size_t at;

    if (!x->slots)
        return -1;
    for (at = hash_id(id) & x->mask; x->slots[at]; at = (at + 1) & x->mask) {
        size_t i = x->slots[at] - 1;

        if (!strcmp(id_at(base, stride, i), id))
            return (long)i;
    }
    return -1;
}

static void put(struct id_index *x, const void *base, size_t stride,
                size_t i)
{
    size_t at = hash_id(id_at(base, stride, i)) & x->mask;

    while (x->slots[at])
        at = (at + 1) & x->mask;
    x->slots[at] = (uint32_t)(i + 1);
}

int id_index_rebuild(struct id_index *x, const void *base, size_t stride,
                     size_t n)
{
    size_t cap = ID_INDEX_MIN;
    uint32_t *slots;

    while (cap < 2 * n + 2)
        cap *= 2;
    if (!x->slots || cap != x->mask + 1) {
        slots = calloc(cap, sizeof(*slots));
        if (!slots) {
            id_index_release(x);
            return -1;
        }
        free(x->slots);
        x->slots = slots;
        x->mask = cap - 1;
    } else {
        memset(x->slots, 0, cap * sizeof(*x->slots));
    }
    for (size_t i = 0; i < n; i++)
        put(x, base, stride, i);
    return 0;
}

int id_index_add(struct id_index *x, const void *base, size_t stride,
                 size_t n, size_t i)
{
    if (!x->slots || 2 * n + 2 > x->mask + 1)
        return id_index_rebuild(x, base, stride, n);
    put(x, base, stride, i);
    return 0;
}

void id_index_clear(struct id_index *x)
{
    if (x->slots)
        memset(x->slots, 0, (x->mask + 1) * sizeof(*x->slots));
}

void id_index_release(struct id_index *x)
{
    free(x->slots);
    x->slots = NULL;
    x->mask = 0;
}
