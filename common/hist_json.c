/*
 * hist_json.c - latency histograms rendered for people and programs.
 */
#include "hist_json.h"

json_t *hist_latency_json(const struct hist *h)
{
    int any = h->total > 0;

    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
                     "p50", hist_quantile(h, 0.50) / 1000.0,
                     "p90", hist_quantile(h, 0.90) / 1000.0,
                     "p95", hist_quantile(h, 0.95) / 1000.0,
                     "p99", hist_quantile(h, 0.99) / 1000.0,
                     "max", (any ? h->max_us : 0) / 1000.0,
                     "min", (any ? h->min_us : 0) / 1000.0,
                     "mean", hist_mean(h) / 1000.0);
}
