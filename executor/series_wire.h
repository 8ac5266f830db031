/*
 * series_wire.h - named series deltas into j4.Series messages.
 *
 * The control thread fills a ScenarioMetrics' series from a struct
 * series_set before packing a report, and frees what it allocated right
 * after packing.
 */
#ifndef J4_EXECUTOR_SERIES_WIRE_H
#define J4_EXECUTOR_SERIES_WIRE_H

#include "j4.pb-c.h"
#include "series.h"

/* Sets m->series from set. Returns J4_OK or J4_ERR_NOMEM (what was
 * filled so far is still freed by series_wire_free). */
int series_wire_fill(J4__ScenarioMetrics *m, const struct series_set *set);

/* Sparse buckets of h into out (its index and count arrays are
 * allocated: the caller frees them). J4_OK or J4_ERR_NOMEM. */
int series_wire_hist(J4__Histogram *out, const struct hist *h);

/* Frees what series_wire_fill() allocated in m. */
void series_wire_free(J4__ScenarioMetrics *m);

#endif
