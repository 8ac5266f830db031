/*
 * executor.h - j4-executor's process state and its two halves.
 *
 * link.c is the NATS side: it connects (forever retrying), subscribes to
 * j4.assign.<id> and j4.ack.<id>, and publishes. Its callbacks run on
 * cnats threads and only leave the newest desired state or ack in the
 * mailbox and wake the control thread. control.c is the control thread:
 * it owns the runtime, the lease, the clock offset to the leader, the
 * heartbeats and the metrics report in flight.
 */
#ifndef J4_EXECUTOR_EXECUTOR_H
#define J4_EXECUTOR_EXECUTOR_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "j4.pb-c.h"
#include "plugin.h"
#include "runtime.h"

#define CLOCK_SAMPLES 8

struct clock_sample {
    int64_t rtt_ms;
    int64_t offset_ms; /* leader wall - our monotonic */
};

struct report_slot {
    int active;
    uint64_t seq;
    uint8_t *buf;
    size_t len;
    int64_t sent_mono_ms;
};

struct executor {
    struct exec_config cfg;
    uint64_t incarnation;
    struct plugin_set plugins;
    struct runtime *rt;
    atomic_int quit;
    atomic_int closing; /* link_close() has begun */
    atomic_int link_up; /* (re)connected since last looked */

    /* link.c */
    natsOptions *opts;
    natsConnection *nc;
    natsSubscription *assign_sub, *ack_sub;
    char subj_hb[96], subj_assign[96], subj_metrics[96], subj_ack[96];

    /* Mailbox: written by NATS callbacks, taken by the control thread. */
    pthread_mutex_t mbox_lock;
    J4__DesiredState *mbox_state;
    int64_t mbox_state_mono_ms; /* when it arrived */
    uint64_t mbox_acked_seq;    /* highest ack seen for us */

    /* Control thread only. */
    uint64_t hb_seq;
    int leaving;                /* shut down, no worker left: say so */
    uint64_t epoch_seen;
    uint64_t applied_epoch, applied_version;
    int have_state;
    int64_t lease_mono_ms;
    int lease_live;
    int64_t lapse_hold_ms; /* lease lapsed: no heartbeat before this
                            * while workers are still stopping */
    struct clock_sample samples[CLOCK_SAMPLES];
    unsigned n_samples, next_sample;
    int64_t offset_ms;
    int have_offset;
    int64_t hb_due_ms, report_due_ms;
    struct report_slot report;
    uint64_t next_seq, acked_seq;
    int64_t interval_start_wall_ms;
};

/* link.c */
int link_open(struct executor *ex);
void link_close(struct executor *ex);
void link_publish(struct executor *ex, const char *subject, const char *reply,
                  const uint8_t *data, size_t len);

/* control.c: runs until ex->quit, then shuts down. Returns an exit code. */
int control_run(struct executor *ex);

#endif
