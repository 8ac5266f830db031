/*
 * sleeper.c - a benchmark scenario whose step does nothing but sleep.
 *
 * Used by scripts/bench to measure how many workers one executor holds
 * and how fast it starts them: with no request in the step, what is left
 * is the cost of a worker itself (its stack, its statistics, its share of
 * the scheduler). The sleep goes through j4_sleep(), so stop and rampdown
 * interrupt it like any scenario's.
 *
 * Params: ms, the length of one sleep (default 1000); marks, a file the
 * benchmark made of marks_max 8-byte slots, where each worker's init
 * writes j4_now_us() at the slot of its worker id: when each worker began,
 * read by scripts/bench for the spawn rate.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "j4.h"

static pthread_mutex_t marks_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *marks;
static int64_t marks_max;

/* Maps the marks file at the first init that names one. */
static void mark_start(j4_worker_t *w)
{
    const char *path = j4_param_str(w, "marks", NULL);
    uint64_t id = j4_worker_id(w);

    if (!path)
        return;
    pthread_mutex_lock(&marks_lock);
    if (!marks) {
        int64_t n = j4_param_int(w, "marks_max", 0);
        int fd = open(path, O_RDWR);

        if (fd >= 0 && n > 0) {
            void *m = mmap(NULL, (size_t)n * sizeof(uint64_t),
                           PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

            if (m != MAP_FAILED) {
                marks = m;
                marks_max = n;
            }
        }
        if (fd >= 0)
            close(fd);
    }
    pthread_mutex_unlock(&marks_lock);
    if (marks && id < (uint64_t)marks_max)
        __atomic_store_n(&marks[id], j4_now_us(), __ATOMIC_RELAXED);
}

static int sleeper_init(j4_worker_t *w, void **state)
{
    int64_t *ms = malloc(sizeof(*ms));

    if (!ms)
        return J4_ERR_NOMEM;
    mark_start(w);
    *ms = j4_param_int(w, "ms", 1000);
    if (*ms < 1)
        *ms = 1;
    *state = ms;
    return J4_OK;
}

static int sleeper_step(j4_worker_t *w, void *state)
{
    const int64_t *ms = state;
    int rc = j4_sleep(w, *ms);

    return rc == J4_OK || rc == J4_ERR_STOPPED ? 0 : 1;
}

static void sleeper_fini(j4_worker_t *w, void *state)
{
    (void)w;
    free(state);
}

J4_SCENARIO(sleeper) = {
    .abi_version = J4_ABI_VERSION,
    .name = "sleeper",
    .description = "sleeps in every step; for density benchmarks",
    .init = sleeper_init,
    .step = sleeper_step,
    .fini = sleeper_fini,
};
