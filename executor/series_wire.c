/*
 * series_wire.c - packing named series into reports.
 *
 * Every allocation hangs off the J4__ScenarioMetrics it fills, so
 * series_wire_free() can walk and free it whatever point filling reached.
 */
#include "series_wire.h"

#include <stdlib.h>

#include "j4.h"

int series_wire_hist(J4__Histogram *out, const struct hist *h)
{
    size_t n = 0;

    j4__histogram__init(out);
    for (uint32_t i = h->lo; i < h->hi; i++)
        n += h->counts[i] != 0;
    out->index = calloc(n + 1, sizeof(*out->index));
    out->count = calloc(n + 1, sizeof(*out->count));
    if (!out->index || !out->count)
        return J4_ERR_NOMEM;
    for (uint32_t i = h->lo; i < h->hi; i++) {
        if (!h->counts[i])
            continue;
        out->index[out->n_index++] = i;
        out->count[out->n_count++] = h->counts[i];
    }
    out->total = h->total;
    out->sum_us = h->sum_us;
    out->min_us = h->total ? h->min_us : 0;
    out->max_us = h->max_us;
    return J4_OK;
}

static J4__Histogram *hist_wire(const struct hist *h)
{
    J4__Histogram *out;

    if (!h || h->total == 0)
        return NULL;
    out = calloc(1, sizeof(*out));
    if (out)
        series_wire_hist(out, h); /* on failure freed by the caller,
                                     reported as no memory */
    return out;
}

static void hist_wire_free(J4__Histogram *h)
{
    if (!h)
        return;
    free(h->index);
    free(h->count);
    free(h);
}

static int outcomes_fill(J4__Series *s, const struct series_delta *d)
{
    s->outcomes = calloc(SERIES_COUNTS, sizeof(*s->outcomes));
    if (!s->outcomes)
        return J4_ERR_NOMEM;
    for (int k = 0; k < J4_OUTCOME_COUNT_; k++) {
        J4__OutcomeCount *oc;

        if (!d->counts[k])
            continue;
        oc = calloc(1, sizeof(*oc));
        if (!oc)
            return J4_ERR_NOMEM;
        j4__outcome_count__init(oc);
        oc->kind = (char *)j4_outcome_name((j4_outcome)k);
        oc->count = d->counts[k];
        s->outcomes[s->n_outcomes++] = oc;
    }
    return J4_OK;
}

static int series_fill(J4__Series *s, const struct series_delta *d)
{
    j4__series__init(s);
    s->kind = (char *)series_kind_name(d->key.kind);
    s->name = (char *)d->key.name;
    s->protocol = (char *)series_protocol_name(d->key.protocol);
    if (d->key.tags[0])
        s->tags = (char *)d->key.tags;
    s->histogram = hist_wire(d->hist);
    s->lifetime = hist_wire(d->hist2);
    switch (d->key.kind) {
    case SERIES_REQUEST:
        return outcomes_fill(s, d);
    case SERIES_CHECK:
        s->count = d->counts[0];
        s->failed = d->counts[1];
        break;
    case SERIES_STREAM:
        s->opened = d->counts[SERIES_STREAM_OPENED];
        s->count = d->counts[SERIES_STREAM_MESSAGES];
        s->resets = d->counts[SERIES_STREAM_RESETS];
        s->reconnects = d->counts[SERIES_STREAM_RECONNECTS];
        break;
    default:
        s->count = d->counts[0];
        s->gauge_delta = d->gauge;
        break;
    }
    return J4_OK;
}

int series_wire_fill(J4__ScenarioMetrics *m, const struct series_set *set)
{
    m->n_series = 0;
    m->series = NULL;
    if (set->count == 0)
        return J4_OK;
    m->series = calloc(set->count, sizeof(*m->series));
    if (!m->series)
        return J4_ERR_NOMEM;
    for (uint32_t i = 0; i < SERIES_RUN_MAX && m->n_series < set->count;
         i++) {
        J4__Series *s;

        if (!set->items[i])
            continue;
        s = calloc(1, sizeof(*s));
        if (!s)
            return J4_ERR_NOMEM;
        m->series[m->n_series++] = s;
        if (series_fill(s, set->items[i]) != J4_OK)
            return J4_ERR_NOMEM;
    }
    return J4_OK;
}

void series_wire_free(J4__ScenarioMetrics *m)
{
    for (size_t i = 0; i < m->n_series; i++) {
        J4__Series *s = m->series[i];

        for (size_t k = 0; k < s->n_outcomes; k++)
            free(s->outcomes[k]);
        free(s->outcomes);
        hist_wire_free(s->histogram);
        hist_wire_free(s->lifetime);
        free(s);
    }
    free(m->series);
    m->series = NULL;
    m->n_series = 0;
}
