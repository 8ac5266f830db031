/*
 * scheduler.h - many workers per OS thread: fibers on a few event loops.
 *
 * The executor's workers are fibers: user-space threads with their own
 * small stack, switched by a few instructions. A fiber lives on one loop
 * (an OS thread) from its start to its end; a loop runs its ready fibers
 * one after another, each until it waits, then waits itself in epoll for
 * sockets, timers and messages from other threads. So the scenario's
 * step stays plain blocking C while thousands of workers share a core.
 *
 * What a fiber may wait for, suspended without holding up its loop:
 *   - a deadline or a wake from any thread (fiber_wait_until),
 *   - readiness of a socket of its own (sched_io_*),
 *   - a libcurl transfer, driven by the loop's multi handle
 *     (sched_curl_*), where connections are shared by the loop's fibers,
 *   - a gRPC batch, completed on the loop's completion queue (sched_cq_*),
 *   - a function that must block, run on a helper thread (sched_block).
 * Anything else that blocks (sleep(), read() on a blocking socket, a
 * library's own wait) stalls every fiber of the loop: the SDK's calls and
 * j4_blocking() are the ways to wait.
 *
 * Threads: sched_spawn() and fiber_wake() may be called from any thread;
 * everything named fiber_* (but fiber_wake) and sched_io_, sched_curl_,
 * sched_cq_ and sched_block only from a fiber.
 */
#ifndef J4_EXECUTOR_SCHEDULER_H
#define J4_EXECUTOR_SCHEDULER_H

#include <curl/curl.h>
#include <grpc/grpc.h>
#include <stddef.h>
#include <stdint.h>

struct sched;
struct fiber;

/* Names one fiber across threads; stays safe to use after it ended (a
 * wake of an ended fiber does nothing). 0 is never a fiber. */
typedef uint64_t fiber_handle;

/* loops: OS threads (0: one per online CPU). stack_size: bytes of
 * address space per fiber stack; only touched pages become resident. */
struct sched *sched_new(unsigned loops, size_t stack_size);

/* Stops the loops and frees everything. Every fiber must have ended. */
void sched_free(struct sched *s);

unsigned sched_loops(const struct sched *s);

/* Starts fn(arg) on a fiber of a loop chosen round-robin (loop < 0) or
 * of loop % sched_loops(). Any thread. Returns the handle, 0 when out of
 * memory. */
fiber_handle sched_spawn(struct sched *s, int loop, void (*fn)(void *arg),
                         void *arg);

/* From a fiber: starts fn(arg) on the caller's loop. */
fiber_handle fiber_spawn_here(void (*fn)(void *arg), void *arg);

/* The calling fiber, NULL on a thread that is not running one. */
struct fiber *fiber_current(void);
fiber_handle fiber_self(void);

/* A pointer the fiber's owner keeps with it (the worker or routine). */
void fiber_set_local(void *local);
void *fiber_local(void);

/* Wakes h: its current or next wait returns early. Any thread. */
void fiber_wake(struct sched *s, fiber_handle h);

/* Waits until deadline_us (monotonic us; INT64_MAX: none) or a wake.
 * Returns 1 when woken (also when a wake came before the call), 0 at
 * the deadline. */
int fiber_wait_until(int64_t deadline_us);

/* Lets the loop's other ready fibers and its events run first. */
void fiber_yield(void);
/* Yields only when the fiber has not waited since its last call: for a
 * loop around code that may never wait. */
void fiber_yield_if_busy(void);

/* ------------------------------------------------- sockets of a fiber */

/* A non-blocking socket watched by the caller's loop (edge-triggered).
 * Register it once; then after EAGAIN wait for it. */
struct sched_io;
struct sched_io *sched_io_add(int fd);
/* Forgets the socket (before the caller closes it). */
void sched_io_del(struct sched_io *io);

#define SCHED_IN 1u
#define SCHED_OUT 2u

/* Waits until the socket is ready for one of events (SCHED_IN/OUT),
 * the deadline passes or a wake comes. Returns the ready events, 0 at the
 * deadline, -1 when woken. Readiness seen since the last wait counts, so
 * call it only after an operation answered EAGAIN (then call
 * sched_io_clear first). */
int sched_io_wait(struct sched_io *io, unsigned events, int64_t deadline_us);
void sched_io_clear(struct sched_io *io, unsigned events);

/* -------------------------------------------------------------- curl */

/* One transfer on the loop's multi handle. The easy handle belongs to the
 * fiber; the op lives on its stack while the transfer runs. */
struct sched_curl_op {
    CURL *easy;
    struct fiber *owner;
    int done;
    CURLcode result;
};

/* Starts the transfer; CURLM_OK or the error of curl_multi_add_handle. */
CURLMcode sched_curl_start(struct sched_curl_op *op, CURL *easy);
/* Waits for op->done, the deadline or a wake: 1 when done, 0 at the
 * deadline, -1 when woken. */
int sched_curl_wait(struct sched_curl_op *op, int64_t deadline_us);
/* Ends an unfinished transfer (it never completes). */
void sched_curl_cancel(struct sched_curl_op *op);

/* -------------------------------------------------------------- gRPC */

/* A completion queue of one call as its fiber sees it: the batches run on
 * the loop's shared grpc completion queue, whose events come back here.
 * Tags are small integers 0..SCHED_CQ_TAGS-1. */
#define SCHED_CQ_TAGS 4
struct sched_cq {
    struct fiber *owner;
    int waiting;
    unsigned outstanding;        /* batches started, not completed */
    unsigned char ready[16];     /* completed tags, in order */
    unsigned char ok[16];
    unsigned head, count;
    struct sched_cq_tag {
        struct sched_cq *q;
        unsigned char id;
    } tags[SCHED_CQ_TAGS];
};

/* The loop's completion queue, to create calls on. */
grpc_completion_queue *sched_cq_init(struct sched_cq *q);
/* The grpc tag of id; pass it to grpc_call_start_batch and, when that
 * succeeded, call sched_cq_started(). */
void *sched_cq_tag(struct sched_cq *q, unsigned id);
void sched_cq_started(struct sched_cq *q);
/* Waits for the next completed batch until deadline_us. Returns 1 with
 * *id and *ok set, 0 at the deadline, -1 when woken. */
int sched_cq_next(struct sched_cq *q, int64_t deadline_us, unsigned *id,
                  int *ok);
/* Waits (ignoring wakes) until no batch is outstanding: before the memory
 * of q or of the call's buffers is freed. Cancel the call first. */
void sched_cq_drain(struct sched_cq *q);

/* ----------------------------------------------------------- blocking */

/* Runs fn(arg) on a helper thread while the fiber waits; wakes do not end
 * the wait. Returns fn's result. From a non-fiber thread it simply calls
 * fn. sched_block is for the SDK's own work (at most 16 helpers),
 * sched_block_user for plugins' j4_blocking() (at most 64), so plugins
 * cannot queue in front of the SDK. */
int sched_block(int (*fn)(void *arg), void *arg);
int sched_block_user(int (*fn)(void *arg), void *arg);

/* ------------------------------------------------------------- health */

/* Microseconds the loop has been running the same fiber without coming
 * back to the scheduler (0 when idle or switching normally): a fiber that
 * blocks its loop shows here. Any thread. */
int64_t sched_loop_stuck_us(struct sched *s, unsigned loop);

#endif
