/*
 * bench_record.c - what one sample costs on the worker's recording path.
 *
 * The SDK calls worker_stats_record_named() (executor/stats.h) once per
 * request: the named series of that request (its outcome counter and its
 * struct chist, which the worker's totals are drained from). This program
 * times that call, and for reference the bare histogram record under it
 * (chist_record), first on one thread and then with many threads at once,
 * each recording into its own struct worker_stats as workers do. It also
 * prints worker_bytes: what one worker's recording state holds after
 * 10000 requests in a realistic latency band. Figures are printed as
 * "key value" lines for scripts/bench; nothing here passes or fails.
 *
 * Usage: bench_record [SAMPLES_PER_THREAD [THREADS]]
 *   defaults: 20000000 samples, 64 threads.
 *
 * Per-thread CPU time (CLOCK_THREAD_CPUTIME_ID) divided by the samples it
 * recorded gives ns per sample that do not depend on how many cores the
 * threads share; the wall-clock rate of all threads together is printed
 * beside it.
 */
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stats.h"

#define LATENCIES 4096  /* a power of two: the table index is masked */

enum bench_path {
    PATH_RECORD_NAMED,  /* what sdk_http.c calls per request */
    PATH_HIST_ONLY,     /* chist_record() alone */
};

struct bench_thread {
    pthread_t thread;
    enum bench_path path;
    uint64_t samples;
    struct series_names *names;
    pthread_barrier_t *start;
    double cpu_ns;      /* out */
};

static uint64_t latencies[LATENCIES];

/* Latencies spread around 10 ms (1 us to ~40 ms), so samples touch many
 * buckets as real ones do, drawn once so the draw is not timed. */
static void fill_latencies(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;

    for (int i = 0; i < LATENCIES; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        latencies[i] = 1 + (x % 40000);
    }
}

/* The next of a fixed xorshift sequence, as a double in (0, 1). */
static double uniform(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return ((double)(*x >> 11) + 0.5) / 9007199254740992.0;
}

/* A log-normal-ish latency: median 2 ms, sigma 0.8 (Box-Muller), kept to
 * the band 200 us - 20 ms a busy HTTP target answers in. */
static uint64_t band_latency(uint64_t *x)
{
    double u = uniform(x), v = uniform(x);
    double z = sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
    double us = 2000.0 * exp(0.8 * z);

    if (us < 200.0)
        us = 200.0;
    if (us > 20000.0)
        us = 20000.0;
    return (uint64_t)us;
}

/* Bytes of this thread's heap in use (main arena only: call it from the
 * main thread before any other thread allocates). */
static size_t heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();

    return m.uordblks + m.hblkhd;
}

/* What one recording worker holds after samples requests of one name in
 * the band: its struct worker_stats and every byte its recording
 * allocated (malloc's own overhead included). The run's interned name is
 * shared by all workers, so a first worker interns it outside the count. */
static int worker_bytes(uint64_t samples)
{
    struct series_names *names = series_names_new();
    struct worker_stats *s = malloc(sizeof(*s));
    uint64_t x = 0x2545f4914f6cdd1dull;
    size_t before, bytes;

    if (!names || !s) {
        fprintf(stderr, "bench_record: out of memory\n");
        return -1;
    }
    worker_stats_init(s);
    s->names = names;
    worker_stats_record_named(s, SERIES_HTTP, "GET", J4_OUTCOME_OK, 1000);
    worker_stats_release(s);

    worker_stats_init(s);
    s->names = names;
    before = heap_in_use();
    for (uint64_t i = 0; i < samples; i++)
        worker_stats_record_named(s, SERIES_HTTP, "GET", J4_OUTCOME_OK,
                                  band_latency(&x));
    bytes = sizeof(*s) + heap_in_use() - before;
    printf("worker_bytes_samples %llu\n", (unsigned long long)samples);
    printf("worker_bytes %zu\n", bytes);
    worker_stats_release(s);
    free(s);
    series_names_free(names);
    return 0;
}

static double now_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void record_loop(struct worker_stats *s, enum bench_path path,
                        uint64_t samples)
{
    static _Thread_local struct chist alone;

    chist_init(&alone);
    for (uint64_t i = 0; i < samples; i++) {
        uint64_t us = latencies[i & (LATENCIES - 1)];

        if (path == PATH_HIST_ONLY)
            chist_record(&alone, us);
        else
            worker_stats_record_named(s, SERIES_HTTP, "GET", J4_OUTCOME_OK,
                                      us);
    }
    chist_release(&alone);
}

static void *bench_main(void *arg)
{
    struct bench_thread *t = arg;
    struct worker_stats *s = malloc(sizeof(*s));
    double begin;

    if (!s) {
        fprintf(stderr, "bench_record: out of memory\n");
        exit(1);
    }
    worker_stats_init(s);
    s->names = t->names;
    /* The first sample of a name interns it under the run's lock: keep
     * that one-off out of the timed loop, as it is out of a real run's
     * steady state. */
    record_loop(s, t->path, 1);
    pthread_barrier_wait(t->start);
    begin = now_ns(CLOCK_THREAD_CPUTIME_ID);
    record_loop(s, t->path, t->samples);
    t->cpu_ns = now_ns(CLOCK_THREAD_CPUTIME_ID) - begin;
    worker_stats_release(s);
    free(s);
    return NULL;
}

/* Runs threads recorders at once; prints ns per sample (mean CPU time per
 * sample over all threads) and the combined wall-clock rate. */
static int run(const char *label, enum bench_path path, int threads,
               uint64_t samples)
{
    struct bench_thread *t = calloc((size_t)threads, sizeof(*t));
    struct series_names *names = series_names_new();
    pthread_barrier_t start;
    double wall, cpu = 0;

    if (!t || !names) {
        fprintf(stderr, "bench_record: out of memory\n");
        return -1;
    }
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        t[i] = (struct bench_thread){.path = path, .samples = samples,
                                     .names = names, .start = &start};
        if (pthread_create(&t[i].thread, NULL, bench_main, &t[i]) != 0) {
            fprintf(stderr, "bench_record: unable to start thread %d\n", i);
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    wall = now_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i].thread, NULL);
        cpu += t[i].cpu_ns;
    }
    wall = now_ns(CLOCK_MONOTONIC) - wall;

    printf("%s_threads %d\n", label, threads);
    printf("%s_ns_per_sample %.2f\n", label,
           cpu / ((double)samples * threads));
    printf("%s_samples_per_s %.0f\n", label,
           (double)samples * threads / (wall / 1e9));
    pthread_barrier_destroy(&start);
    series_names_free(names);
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t samples = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000;
    int threads = argc > 2 ? atoi(argv[2]) : 64;
    uint64_t per_thread;

    if (samples == 0 || threads < 1) {
        fprintf(stderr,
                "usage: bench_record [SAMPLES_PER_THREAD [THREADS]]\n");
        return 2;
    }
    fill_latencies();
    /* With many threads, each records a share so the run stays short. */
    per_thread = samples / 4 > 1000 ? samples / 4 : samples;
    if (worker_bytes(10000) ||
        run("single_named", PATH_RECORD_NAMED, 1, samples) ||
        run("single_hist", PATH_HIST_ONLY, 1, samples) ||
        run("multi_named", PATH_RECORD_NAMED, threads, per_thread) ||
        run("multi_hist", PATH_HIST_ONLY, threads, per_thread))
        return 1;
    return 0;
}
