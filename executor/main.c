/*
 * main.c - j4-executor: plays the shares a J4 leader assigns it.
 *
 * Start-up order matters: signals are blocked before any thread exists
 * (cnats, workers), so SIGTERM and SIGINT reach only the signal thread,
 * which asks the control thread to shut down. Plugins are loaded before
 * the first heartbeat so that it already lists them. See
 * docs/architecture.md for the protocol.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#include "clock.h"
#include "exec_prom.h"
#include "executor.h"
#include "log.h"
#include "pool_link.h"

static uint64_t new_incarnation(void)
{
    uint64_t x = 0;

    while (x == 0) {
        if (getrandom(&x, sizeof(x), 0) != sizeof(x))
            x = (uint64_t)clock_wall_ms() * 2654435761u ^
                (uint64_t)clock_mono_us();
    }
    return x;
}

/* A worker that talks holds a descriptor or two (its connections): take
 * every descriptor the hard limit allows. Without --capacity the capacity
 * is what that limit supports, up to 100000; an explicit one above it is
 * kept, with a warning. */
#define DESCRIPTORS_PER_WORKER 1
#define DESCRIPTORS_SPARE 64
#define DEFAULT_CAPACITY 100000

static void raise_fd_limit(uint32_t *capacity)
{
    struct rlimit rl;
    uint64_t fit;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    fit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur <= DESCRIPTORS_SPARE
              ? DEFAULT_CAPACITY
              : (rl.rlim_cur - DESCRIPTORS_SPARE) / DESCRIPTORS_PER_WORKER;
    if (*capacity == 0) {
        *capacity = fit < DEFAULT_CAPACITY ? (uint32_t)fit : DEFAULT_CAPACITY;
        if (*capacity == 0)
            *capacity = 1;
    } else if (*capacity > fit) {
        log_warn("descriptor limit %llu may not suffice for capacity %u "
                 "(about %d per worker): raise 'ulimit -n'",
                 (unsigned long long)rl.rlim_cur, *capacity,
                 DESCRIPTORS_PER_WORKER);
    }
}

struct signal_waiter {
    sigset_t set;
    struct executor *ex;
};

static void *signal_main(void *arg)
{
    struct signal_waiter *sw = arg;
    int sig = 0;

    sigwait(&sw->set, &sig);
    log_info("%s received", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&sw->ex->quit, 1);
    runtime_wake(sw->ex->rt);
    return NULL;
}

/* Everything after configuration: returns the exit code. */
static int run(struct executor *ex)
{
    struct signal_waiter sw = {.ex = ex};
    pthread_t sig_thread;
    char names[512];
    int code = 1;

    sigemptyset(&sw.set);
    sigaddset(&sw.set, SIGTERM);
    sigaddset(&sw.set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sw.set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(&ex->cfg.capacity);

    if (plugin_set_load(&ex->plugins, ex->cfg.plugins) != J4_OK)
        goto out_plugins;
    plugin_set_names(&ex->plugins, names, sizeof(names));
    ex->rt = runtime_new(&ex->plugins, ex->cfg.capacity, ex->cfg.threads,
                         ex->cfg.stack_kib);
    if (!ex->rt)
        goto out_plugins;
    if (pthread_create(&sig_thread, NULL, signal_main, &sw) != 0)
        goto out_runtime;
    log_info("starting: incarnation %016llx, capacity %u, plugins: %s",
             (unsigned long long)ex->incarnation, ex->cfg.capacity, names);
    if (exec_prom_start(ex->cfg.metrics_listen, ex->cfg.id) != J4_OK)
        goto out_signal;
    if (link_open(ex) == J4_OK) {
        pool_link_install(ex);
        code = control_run(ex);
        pool_link_remove();
    }
    link_close(ex);
    exec_prom_stop();

out_signal:
    /* Wake the signal thread if no signal ended the run. */
    if (!atomic_load(&ex->quit))
        pthread_kill(sig_thread, SIGTERM);
    pthread_join(sig_thread, NULL);
    if (code != 0 && runtime_alive(ex->rt))
        return code; /* stuck workers: cannot free under them */
out_runtime:
    runtime_free(ex->rt);
out_plugins:
    plugin_set_release(&ex->plugins);
    log_info("stopped");
    return code;
}

int main(int argc, char **argv)
{
    struct executor *ex = calloc(1, sizeof(*ex));
    char err[1024] = "";
    char component[96];
    int rc;

    if (!ex)
        return 1;
    rc = config_load(&ex->cfg, argc, argv, err, sizeof(err));
    if (rc != J4_OK) {
        if (rc != 1)
            fprintf(stderr, "j4-executor: %s\n", err);
        free(ex);
        return rc == 1 ? 0 : 2;
    }
    snprintf(component, sizeof(component), "executor %s", ex->cfg.id);
    log_init(component, ex->cfg.log_level);
    ex->incarnation = new_incarnation();
    pthread_mutex_init(&ex->mbox_lock, NULL);

    rc = run(ex);

    if (ex->mbox_state)
        j4__desired_state__free_unpacked(ex->mbox_state, NULL);
    pthread_mutex_destroy(&ex->mbox_lock);
    free(ex->report.buf);
    free(ex);
    return rc;
}
