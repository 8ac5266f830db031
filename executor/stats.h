/*
 * stats.h - what one worker measured, and the deltas shipped in reports.
 *
 * Each worker owns a struct worker_stats, written by the worker and its
 * routines: iteration counters are relaxed atomics, and everything else
 * lands in a named series (series.h): requests by (name, protocol,
 * outcome), team metrics, checks and streams. A request is recorded once,
 * into its series (its outcome counter and a struct chist, common/chist.h);
 * the worker's totals (requests by outcome, one latency histogram) are
 * not kept apart but made at drain time: stats_drain() adds each request
 * series it moves into the delta's totals as well. The control thread
 * takes what was recorded so far with stats_drain(), which swaps every
 * counter to zero atomically, so the worker path takes no lock and every
 * sample lands in exactly one struct stats_delta. The SDK records through
 * the functions below.
 *
 * Stream metrics, for the SDK's streaming helpers (gRPC server streams,
 * subscriptions); name is the stream name (NULL: "other"), protocol its
 * protocol. Each may be called from the worker's thread or one of its
 * routines:
 *   stats_stream_opened(s, p, name)            a stream was opened
 *   stats_stream_first_message(s, p, name, us) time from open to first
 *                                              message (histogram)
 *   stats_stream_messages(s, p, name, n)       n messages received
 *   stats_stream_ended(s, p, name, us, reset)  a stream ended after us
 *                                              (lifetime histogram);
 *                                              reset: it ended by error
 *   stats_stream_reconnect(s, p, name)         it was reopened
 * On /metrics they are j4_stream_first_message_seconds,
 * j4_stream_lifetime_seconds, j4_stream_messages_total,
 * j4_stream_resets_total, j4_stream_reconnects_total, j4_streams_opened_total.
 */
#ifndef J4_EXECUTOR_STATS_H
#define J4_EXECUTOR_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "hist.h"
#include "j4.h"
#include "series.h"

struct stats_spill;

struct worker_stats {
    _Atomic uint64_t iterations;
    _Atomic uint64_t iteration_errors;
    /* Requests that found no series (no memory, or the run's series table
     * full) still count in the totals: through this, allocated at the
     * first such request and NULL in the normal case. */
    struct stats_spill *_Atomic spill;
    struct series_names *names;         /* the run's, not owned */
    struct worker_series_table series;  /* init/release: the runtime */
    _Atomic uint32_t tags_id;   /* j4_tag's set in names; 0: none */
};

/* Plain counters, owned by one thread (the control thread). */
struct stats_delta {
    uint64_t outcomes[J4_OUTCOME_COUNT_];
    uint64_t iterations;
    uint64_t iteration_errors;
    struct hist latency;
    struct series_set series;   /* owned; moved by memcpy, see release */
};

void worker_stats_init(struct worker_stats *s);

/* Frees what the worker's recording allocated (histograms, series);
 * the worker has exited. */
void worker_stats_release(struct worker_stats *s);

/* Worker side. */
void worker_stats_record(struct worker_stats *s, j4_outcome outcome,
                         uint64_t latency_us);
void worker_stats_iteration(struct worker_stats *s, int failed);

/* Records one request into its named series, and so into the totals.
 * name NULL means the protocol's default (the caller's choice: method,
 * "graphql", gRPC method); protocol is enum series_protocol.
 * worker_stats_record() (j4_record) records into the series ("custom",
 * custom protocol). */
void worker_stats_record_named(struct worker_stats *s, int protocol,
                               const char *name, j4_outcome outcome,
                               uint64_t latency_us);

/* Team metrics and checks (include/j4.h). */
void stats_team_observe(struct worker_stats *s, const char *name,
                        uint64_t value_us);
void stats_team_count(struct worker_stats *s, const char *name, uint64_t n);
void stats_team_gauge(struct worker_stats *s, const char *name,
                      int64_t value);
void stats_check(struct worker_stats *s, const char *name, int ok);

/* Stream metrics: see the top of this file. */
void stats_stream_opened(struct worker_stats *s, int protocol,
                         const char *name);
void stats_stream_first_message(struct worker_stats *s, int protocol,
                                const char *name, uint64_t us);
void stats_stream_messages(struct worker_stats *s, int protocol,
                           const char *name, uint64_t n);
void stats_stream_ended(struct worker_stats *s, int protocol,
                        const char *name, uint64_t lifetime_us, int reset);
void stats_stream_reconnect(struct worker_stats *s, int protocol,
                            const char *name);

/* Control side: moves everything s recorded so far into d (d += s).
 * d's outcomes and latency grow by what leaves s's request series (and
 * its spill), so they always equal the sum of those series. */
void stats_drain(struct worker_stats *s, struct stats_delta *d);

/* stats_delta_init() forgets what d held without freeing it (the
 * runtime moves deltas by memcpy); stats_delta_release() frees it. */
void stats_delta_init(struct stats_delta *d);
void stats_delta_release(struct stats_delta *d);
int stats_delta_empty(const struct stats_delta *d);
uint64_t stats_delta_requests(const struct stats_delta *d);

/* dst += src. */
void stats_delta_merge(struct stats_delta *dst, const struct stats_delta *src);

#endif
