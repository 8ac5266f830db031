/*
 * bench_http1.c - what one keep-alive GET costs the client: the native
 * HTTP/1.1 client (executor/http1.c) beside libcurl, against a server on
 * loopback (bench_http1.py starts nginx and wrk for the comparison).
 *
 * Usage: bench_http1 URL [REQUESTS [FIBERS]]
 *   defaults: 100000 requests per client, 50 fibers. URL must be an
 *   http:// URL on 127.0.0.0/8.
 *
 * Four clients, one after another, each making REQUESTS requests:
 *   http1_seq    one http1 client on a plain thread, one connection
 *   curl_seq     one libcurl easy handle, curl_easy_perform(), options
 *                set once (libcurl's best case)
 *   http1_fibers FIBERS fibers on one loop, one http1 client each
 *   curl_fibers  FIBERS fibers on one loop, one easy handle each, run on
 *                the loop's multi handle (sched_curl_*), as sdk_http.c
 *                runs libcurl
 * For each: requests/s, and CPU microseconds of this whole process per
 * request (getrusage; the loop thread does all the work, the main thread
 * only waits). Printed as "key value" lines; a figure, never pass/fail.
 * Each client stops after REQUESTS or 20 s, whichever comes first.
 */
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "http1.h"
#include "scheduler.h"

#define MAX_SECONDS 20

static const char *target;
static atomic_long left;         /* requests not started yet */
static atomic_long failed;
static atomic_int running;
static int64_t stop_at_us;

struct figure {
    long requests;
    double seconds, cpu_seconds;
};

static double cpu_now(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Takes one request to make; 0 when none is left or time is up. */
static int take(void)
{
    if (clock_mono_us() >= stop_at_us)
        return 0;
    return atomic_fetch_sub(&left, 1) > 0;
}

static int64_t never(void *arg)
{
    (void)arg;
    return INT64_MAX;
}

static void http1_loop(void)
{
    struct http1 *c = http1_new();
    j4_http_request_t req = {.url = target};
    struct http1_result res;

    while (take()) {
        if (http1_exchange(c, &req, NULL, never, NULL, &res) != J4_OK)
            atomic_fetch_add(&failed, 1);
    }
    http1_free(c);
}

static size_t sink(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

static CURL *easy_new(void)
{
    CURL *easy = curl_easy_init();

    curl_easy_setopt(easy, CURLOPT_URL, target);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);
    return easy;
}

static void curl_seq(void)
{
    CURL *easy = easy_new();

    while (take()) {
        if (curl_easy_perform(easy) != CURLE_OK)
            atomic_fetch_add(&failed, 1);
    }
    curl_easy_cleanup(easy);
}

static void http1_fiber(void *arg)
{
    (void)arg;
    http1_loop();
    atomic_fetch_sub(&running, 1);
}

static void curl_fiber(void *arg)
{
    CURL *easy = easy_new();

    (void)arg;
    while (take()) {
        struct sched_curl_op op;

        if (sched_curl_start(&op, easy) != CURLM_OK) {
            atomic_fetch_add(&failed, 1);
            continue;
        }
        while (sched_curl_wait(&op, INT64_MAX) != 1)
            ;
        if (op.result != CURLE_OK)
            atomic_fetch_add(&failed, 1);
    }
    curl_easy_cleanup(easy);
    atomic_fetch_sub(&running, 1);
}

/* Runs fn on this thread, or on fibers fibers of one loop. */
static struct figure measure(long requests, void (*fn)(void),
                             void (*fiber_fn)(void *), int fibers)
{
    struct figure f;
    double cpu = cpu_now();
    int64_t start = clock_mono_us();
    struct sched *s = fiber_fn ? sched_new(1, 64 * 1024) : NULL;

    atomic_store(&left, requests);
    atomic_store(&failed, 0);
    stop_at_us = start + MAX_SECONDS * 1000000LL;
    if (fn) {
        fn();
    } else if (s) {
        atomic_store(&running, fibers);
        for (int i = 0; i < fibers; i++)
            sched_spawn(s, 0, fiber_fn, NULL);
        while (atomic_load(&running) > 0)
            usleep(2000);
    }
    f.seconds = (double)(clock_mono_us() - start) / 1e6;
    f.cpu_seconds = cpu_now() - cpu;
    f.requests = requests - (atomic_load(&left) > 0 ? atomic_load(&left) : 0);
    if (s)
        sched_free(s);
    return f;
}

static void print(const char *name, struct figure f)
{
    printf("%s_requests %ld\n", name, f.requests);
    printf("%s_failed %ld\n", name, atomic_load(&failed));
    printf("%s_req_per_s %.0f\n", name, f.requests / f.seconds);
    printf("%s_cpu_us_per_req %.2f\n", name,
           f.cpu_seconds * 1e6 / (double)(f.requests ? f.requests : 1));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    long requests = argc > 2 ? atol(argv[2]) : 100000;
    int fibers = argc > 3 ? atoi(argv[3]) : 50;

    if (argc < 2 || strncmp(argv[1], "http://127.", 11) != 0 ||
        requests <= 0 || fibers <= 0) {
        fprintf(stderr, "usage: bench_http1 http://127.x.y.z:PORT/PATH "
                        "[REQUESTS [FIBERS]]\n");
        return 2;
    }
    target = argv[1];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    print("http1_seq", measure(requests, http1_loop, NULL, 0));
    print("curl_seq", measure(requests, curl_seq, NULL, 0));
    print("http1_fibers", measure(requests, NULL, http1_fiber, fibers));
    print("curl_fibers", measure(requests, NULL, curl_fiber, fibers));
    curl_global_cleanup();
    return 0;
}
