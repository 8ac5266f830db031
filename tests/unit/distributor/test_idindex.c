/*
 * test_idindex.c - distributor/idindex.c finds every record by its id
 * while records are appended (across growth of the index), after the
 * array moved, and after a compaction and rebuild.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "idindex.h"

struct record {
    char id[65];
    int value;
};

static int all_found(const struct id_index *x, const struct record *r,
                     size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!CHECK_INT_EQ(id_index_find(x, r, sizeof(*r), r[i].id),
                          (long)i))
            return 0;
    }
    return 1;
}

int main(void)
{
    struct id_index x = {0};
    size_t n = 0, kept = 0;
    struct record *r = calloc(5000, sizeof(*r));

    CHECK_INT_EQ(id_index_find(&x, r, sizeof(*r), "e-1"), -1);
    for (; n < 3000; n++) {
        snprintf(r[n].id, sizeof(r[n].id), "e-%zu", n);
        r[n].value = (int)n;
        CHECK_INT_EQ(id_index_add(&x, r, sizeof(*r), n + 1, n), 0);
    }
    all_found(&x, r, n);
    CHECK_INT_EQ(id_index_find(&x, r, sizeof(*r), "e-3000"), -1);
    CHECK_INT_EQ(id_index_find(&x, r, sizeof(*r), "e-"), -1);

    /* The index holds positions, not pointers: a moved array works. */
    r = realloc(r, 6000 * sizeof(*r));
    all_found(&x, r, n);

    /* Drop every third record, compact, rebuild. */
    for (size_t i = 0; i < n; i++) {
        if (i % 3 != 0)
            r[kept++] = r[i];
    }
    n = kept;
    CHECK_INT_EQ(id_index_rebuild(&x, r, sizeof(*r), n), 0);
    all_found(&x, r, n);
    CHECK_INT_EQ(id_index_find(&x, r, sizeof(*r), "e-0"), -1);
    CHECK_INT_EQ(id_index_find(&x, r, sizeof(*r), "e-2997"), -1);

    id_index_clear(&x);
    CHECK_INT_EQ(id_index_find(&x, r, sizeof(*r), "e-1"), -1);
    id_index_release(&x);
    CHECK_INT_EQ(id_index_find(&x, r, sizeof(*r), "e-1"), -1);
    free(r);
    return check_done();
}
