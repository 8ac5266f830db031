/*
 * runtime.h - playing scenario shares with worker threads, without NATS.
 *
 * The runtime holds one "run" per scenario it was asked to play. Its
 * owner (the executor's control thread, or a local CLI that plays one
 * scenario in-process) hands it the whole desired set of shares, then
 * calls runtime_reconcile() whenever something may have changed: the
 * runtime computes each run's share of Planned(now), starts workers or
 * stops the newest ones, joins the workers that exited, and says how long
 * until the next schedule step. Statistics are drained into per-run
 * deltas that the owner ships and acknowledges.
 *
 * Threads: every runtime_* function except runtime_wake() must be called
 * from the owning thread. Workers are fibers on a few worker threads
 * (scheduler.h) and only read what the runtime gave them.
 */
#ifndef J4_EXECUTOR_RUNTIME_H
#define J4_EXECUTOR_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"
#include "schedule.h"
#include "stats.h"

/* One scenario the owner wants played. Strings are copied. */
struct run_share {
    int64_t scenario_id;
    const char *name;
    const char *plugin;
    const char *params_json; /* NULL or "" mean "{}" */
    int64_t start_ms;        /* t = 0 on the schedule clock */
    struct schedule schedule;
    int64_t grace_ms;
    uint32_t slot, slots;
};

struct run_status {
    int64_t scenario_id;
    uint32_t planned; /* share being played now */
    uint32_t running; /* workers alive, stopping included */
    int drained;      /* no worker alive, every sample acked */
    char error[512];  /* "" unless the share was refused */
};

struct run_delta {
    int64_t scenario_id;
    struct stats_delta stats;
};

struct runtime;

/* plugins must outlive the runtime. capacity caps the workers started;
 * threads is how many OS threads run them (0: one per online CPU);
 * stack_kib the address space of each worker's stack (0: J4_STACK_KIB
 * from the environment, else 256, 1024 under ASan). */
#define RUNTIME_STACK_KIB_MIN 64
#define RUNTIME_STACK_KIB_MAX 65536
struct runtime *runtime_new(const struct plugin_set *plugins,
                            uint32_t capacity, unsigned threads,
                            unsigned stack_kib);

/* Microseconds the longest-stuck worker thread has spent in one worker
 * without coming back to the scheduler (see sched_loop_stuck_us()), and
 * that thread's index in *loop. Owning thread. */
int64_t runtime_stuck_us(struct runtime *rt, unsigned *loop);

/* Stops every worker, waits for them and frees everything. */
void runtime_free(struct runtime *rt);

/* Replaces the desired set. Runs missing from it play zero workers and
 * are removed once drained. Unknown or invalid plugins mark the run with
 * an error and start nothing. */
void runtime_set_shares(struct runtime *rt, const struct run_share *shares,
                        size_t count);

/* Monotonic ms after which every run plays zero workers (INT64_MAX: no
 * lease). Workers check it between iterations too. */
void runtime_set_lease(struct runtime *rt, int64_t deadline_mono_ms);
int runtime_lease_valid(const struct runtime *rt, int64_t now_mono_ms);

/* From now on every run plays zero workers: for shutdown. */
void runtime_stop_all(struct runtime *rt);

/* Brings workers in line with the shares at schedule time now_ms, joins
 * exited workers, removes drained runs no longer wanted. Starts a bounded
 * batch of workers per call. Returns the ms until it wants to be called
 * again: the next schedule change, 0 while workers remain to be started,
 * INT64_MAX for never. */
int64_t runtime_reconcile(struct runtime *rt, int64_t now_ms);

/* Workers alive, stopping ones included. */
uint32_t runtime_alive(const struct runtime *rt);

/* Non-zero (once) when a running count changed since the last call. */
int runtime_take_changed(struct runtime *rt);

/* Status of every run; *out is malloc'd (free it). Returns the count. */
size_t runtime_statuses(struct runtime *rt, struct run_status **out);

/* Moves what live workers recorded so far into their runs' deltas. */
void runtime_drain(struct runtime *rt);

/* Non-zero when some run has samples not yet taken. */
int runtime_has_data(const struct runtime *rt);

/* Takes every non-empty delta into *out (malloc'd, free it) as report
 * seq; those runs are not drained until runtime_acked(seq). */
size_t runtime_take_deltas(struct runtime *rt, uint64_t seq,
                           struct run_delta **out);
/* Returns non-zero when a run became drained by this ack. */
int runtime_acked(struct runtime *rt, uint64_t seq);

/* The longest grace period of any run: how long stopping may take. */
int64_t runtime_max_grace_ms(const struct runtime *rt);

/* Sleeps until deadline (monotonic ms) or runtime_wake(). Workers wake
 * their owner when they exit. */
void runtime_wait(struct runtime *rt, int64_t deadline_mono_ms);
void runtime_wake(struct runtime *rt);

#endif
