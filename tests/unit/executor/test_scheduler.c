/*
 * test_scheduler.c - fibers on event loops (executor/scheduler.c): many
 * fibers waiting at once, wakes from another thread (also after the fiber
 * ended), a fiber that never waits not starving the others, socket
 * readiness, blocking work moved off the loop, and deep stacks.
 *
 * Every wait here is bounded: a broken scheduler fails the checks within
 * seconds instead of hanging the suite.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "scheduler.h"

#define MANY 20000

static atomic_int done_count;

/* Spins (sleeping 1 ms at a time) until *v reaches want or 10 s pass. */
static int wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 10000 && atomic_load(v) < want; i++)
        usleep(1000);
    return atomic_load(v);
}

static void sleeper(void *arg)
{
    int64_t until = clock_mono_us() + (int64_t)(intptr_t)arg;

    while (fiber_wait_until(until) != 0)
        ;
    CHECK(clock_mono_us() >= until);
    atomic_fetch_add(&done_count, 1);
}

static void test_many_sleepers(struct sched *s)
{
    int64_t start = clock_mono_us();

    atomic_store(&done_count, 0);
    for (int i = 0; i < MANY; i++)
        CHECK(sched_spawn(s, -1, sleeper, (void *)(intptr_t)50000) != 0);
    CHECK_INT_EQ(wait_for(&done_count, MANY), MANY);
    CHECK(clock_mono_us() - start >= 50000);
}

static atomic_int woken_result = -2;

static void waits_forever(void *arg)
{
    (void)arg;
    atomic_store(&woken_result, fiber_wait_until(INT64_MAX));
    atomic_fetch_add(&done_count, 1);
}

static void test_wake(struct sched *s)
{
    fiber_handle h;

    atomic_store(&done_count, 0);
    h = sched_spawn(s, 0, waits_forever, NULL);
    CHECK(h != 0);
    usleep(20000);
    CHECK_INT_EQ(atomic_load(&done_count), 0);
    fiber_wake(s, h);
    CHECK_INT_EQ(wait_for(&done_count, 1), 1);
    CHECK_INT_EQ(atomic_load(&woken_result), 1);
    /* The fiber ended: its handle names nothing, a wake does nothing. */
    fiber_wake(s, h);
    fiber_wake(s, h + 1);
    fiber_wake(s, 0);
}

static atomic_int spin_stop;

static void spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&spin_stop))
        fiber_yield_if_busy();
    atomic_fetch_add(&done_count, 1);
}

static void stops_spinner(void *arg)
{
    (void)arg;
    fiber_wait_until(clock_mono_us() + 10000);
    atomic_store(&spin_stop, 1);
    atomic_fetch_add(&done_count, 1);
}

/* Both on loop 0: without yields the spinner would hold the loop. */
static void test_no_starvation(struct sched *s)
{
    atomic_store(&done_count, 0);
    atomic_store(&spin_stop, 0);
    CHECK(sched_spawn(s, 0, spinner, NULL) != 0);
    CHECK(sched_spawn(s, 0, stops_spinner, NULL) != 0);
    CHECK_INT_EQ(wait_for(&done_count, 2), 2);
}

static int pair[2];
static atomic_int io_bytes;

static void reader(void *arg)
{
    struct sched_io *io = sched_io_add(pair[0]);
    int64_t give_up = clock_mono_us() + 5000000;
    char buf[16];

    (void)arg;
    CHECK(io != NULL);
    for (;;) {
        ssize_t n = read(pair[0], buf, sizeof(buf));

        if (n > 0) {
            atomic_store(&io_bytes, (int)n);
            break;
        }
        sched_io_clear(io, SCHED_IN);
        if (sched_io_wait(io, SCHED_IN, give_up) == 0)
            break;
    }
    CHECK(sched_io_wait(io, SCHED_IN, clock_mono_us() + 1000) >= 0);
    sched_io_del(io);
    atomic_fetch_add(&done_count, 1);
}

static void test_io(struct sched *s)
{
    atomic_store(&done_count, 0);
    CHECK_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair),
                 0);
    CHECK(sched_spawn(s, 1, reader, NULL) != 0);
    usleep(20000);
    CHECK_INT_EQ(atomic_load(&io_bytes), 0);
    CHECK_INT_EQ((int)write(pair[1], "hello", 5), 5);
    CHECK_INT_EQ(wait_for(&done_count, 1), 1);
    CHECK_INT_EQ(atomic_load(&io_bytes), 5);
    close(pair[0]);
    close(pair[1]);
}

static atomic_int ticks_during_block;

static int slow_job(void *arg)
{
    (void)arg;
    usleep(100000);
    return 42;
}

static void blocker(void *arg)
{
    (void)arg;
    CHECK_INT_EQ(sched_block(slow_job, NULL), 42);
    atomic_fetch_add(&done_count, 1);
}

static void ticker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        fiber_wait_until(clock_mono_us() + 2000);
        atomic_fetch_add(&ticks_during_block, 1);
    }
    atomic_fetch_add(&done_count, 1);
}

/* The blocking job runs on a helper: the loop's other fiber goes on. */
static void test_block(struct sched *s)
{
    atomic_store(&done_count, 0);
    CHECK(sched_spawn(s, 0, blocker, NULL) != 0);
    CHECK(sched_spawn(s, 0, ticker, NULL) != 0);
    usleep(80000);
    CHECK(atomic_load(&ticks_during_block) >= 5);
    CHECK_INT_EQ(wait_for(&done_count, 2), 2);
}

static void deep(void *arg)
{
    volatile char buf[128 * 1024];

    (void)arg;
    for (size_t i = 0; i < sizeof(buf); i += 512)
        buf[i] = (char)i;
    CHECK_INT_EQ(buf[512], (char)512);
    atomic_fetch_add(&done_count, 1);
}

static void test_deep_stack(struct sched *s)
{
    atomic_store(&done_count, 0);
    for (int i = 0; i < 4; i++)
        CHECK(sched_spawn(s, i, deep, NULL) != 0);
    CHECK_INT_EQ(wait_for(&done_count, 4), 4);
}

static void spawner_child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&done_count, 1);
}

static void spawner(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++)
        CHECK(fiber_spawn_here(spawner_child, NULL) != 0);
    CHECK(fiber_local() == NULL);
    fiber_set_local(&done_count);
    fiber_yield();
    CHECK(fiber_local() == &done_count);
}

static void test_spawn_here(struct sched *s)
{
    atomic_store(&done_count, 0);
    CHECK(sched_spawn(s, 1, spawner, NULL) != 0);
    CHECK_INT_EQ(wait_for(&done_count, 10), 10);
    CHECK(fiber_current() == NULL);
    CHECK(fiber_spawn_here(spawner_child, NULL) == 0);
}

int main(void)
{
    struct sched *s = sched_new(2, 256 * 1024);

    if (!CHECK(s != NULL))
        return check_done();
    CHECK_INT_EQ((int)sched_loops(s), 2);
    test_many_sleepers(s);
    test_wake(s);
    test_no_starvation(s);
    test_io(s);
    test_block(s);
    test_deep_stack(s);
    test_spawn_here(s);
    usleep(10000); /* the last fibers return after counting */
    sched_free(s);
    return check_done();
}
