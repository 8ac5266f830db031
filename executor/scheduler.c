/*
 * scheduler.c - event loops that run fibers (see scheduler.h).
 *
 * Each loop is one OS thread with an epoll instance, a ready queue, a
 * binary heap of fiber deadlines (each fiber has at most one), a libcurl
 * multi handle driven through its socket callbacks, a grpc completion
 * queue read by a companion thread, and an inbox. Other threads talk to a
 * loop only through the inbox, under its mutex: new fibers, wakes, gRPC
 * completions, finished blocking jobs. A poster writes the loop's eventfd
 * only when the loop sleeps in epoll (Dekker-style flags, both seq_cst),
 * so a busy loop takes its messages without a system call.
 *
 * Handles name fibers across threads: a slot in the loop's table with a
 * generation, so a wake that arrives after its fiber ended finds another
 * generation and does nothing. The table is only read or written under
 * the inbox mutex.
 *
 * A pass runs every fiber that was ready when it began, each until it
 * waits or yields, then polls epoll (without sleeping while fibers are
 * ready), fires due deadlines and hands libcurl its events.
 */
#define _GNU_SOURCE
#include "scheduler.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <grpc/support/time.h>

#include "clock.h"
#include "fiber_ctx.h"
#include "log.h"

#if defined(__SANITIZE_ADDRESS__)
#define J4_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define J4_ASAN 1
#endif
#endif
#ifdef J4_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define EVENTS_MAX 256
#define STACK_CACHE_MAX 1024
#define BLOCK_THREADS_MAX 64
#define SDK_BLOCK_THREADS_MAX 16
#define BLOCK_THREAD_STACK (256 * 1024)
#define LOOPS_MAX 64
#define MAX_CONNECTS 200000

enum fiber_state { F_READY, F_RUNNING, F_PARKED, F_DONE };

/* What epoll's data.ptr points at: the first field says which. */
enum watch_kind { W_EVENTFD, W_CURL, W_IO };

struct fiber {
    struct fiber_ctx ctx;
    struct fiber_stack stack;
    struct loop *loop;
    uint32_t slot, gen;
    void (*fn)(void *arg);
    void *arg;
    void *local;
    enum fiber_state state;
    int woken;  /* a wake came while it was not waiting */
    int reason; /* why the last wait ended: 1 wake, 0 deadline */
    uint64_t resumes, resumes_seen; /* for fiber_yield_if_busy */
    int64_t deadline_us;
    uint32_t heap_pos; /* UINT32_MAX: not in the heap */
    struct fiber *next;
#ifdef J4_ASAN
    void *fake_stack;
#endif
};

struct slot {
    struct fiber *f;
    uint32_t gen;
    uint32_t next_free;
};

enum msg_kind { M_WAKE, M_GRPC, M_BLOCK };

struct msg {
    enum msg_kind kind;
    int ok;
    uint64_t handle;
    void *ptr;
};

struct curl_sock {
    enum watch_kind kind;
    curl_socket_t fd;
};

struct sched_io {
    enum watch_kind kind;
    int fd;
    struct loop *loop;
    unsigned ready;
    unsigned want;
    struct fiber *waiter;
};

struct block_job {
    struct block_job *next;
    int (*fn)(void *arg);
    void *arg;
    int result;
    int done;
    struct loop *loop;
    struct fiber *owner;
};

struct loop {
    struct sched *s;
    unsigned index;
    pthread_t thread;
    int ep;
    enum watch_kind evfd_kind; /* epoll data for the eventfd */
    int evfd;
    struct fiber_ctx ctx;  /* the loop's own context */
    struct fiber *current;
    struct fiber *ready_head, *ready_tail;
    unsigned ready_count;

    struct fiber **heap;
    uint32_t heap_len, heap_cap;

    pthread_mutex_t lock; /* slots, inbox */
    struct slot *slots;
    uint32_t nslots, free_head;
    struct msg *inbox, *spare;
    size_t inbox_len, inbox_cap, spare_cap;
    struct fiber *spawned_head, *spawned_tail;
    atomic_int pending;
    atomic_int sleeping;
    atomic_int quit;
    atomic_uint alive;

    CURLM *multi;
    int64_t curl_deadline_us;

    grpc_completion_queue *cq;
    pthread_t cq_thread;
    int cq_started;

    _Atomic uint64_t ticks;
    uint64_t seen_ticks;
    int64_t seen_at_us;
#ifdef J4_ASAN
    void *fake_stack;
    const void *stack_bottom;
    size_t stack_size;
#endif
};

struct sched {
    unsigned nloops;
    struct loop loops[LOOPS_MAX];
    size_t stack_size;
    atomic_uint next_loop;

    pthread_mutex_t stacks_lock;
    struct fiber_stack *stacks;
    size_t nstacks;

    /* The SDK's own blocking work (name lookups, pool takes) and the
     * plugins' j4_blocking() have separate helpers, so a plugin that
     * fills its pool cannot hold up a lookup behind it. */
    struct block_pool {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct block_job *jobs_head, *jobs_tail;
        unsigned threads, idle, max;
        pthread_t tids[BLOCK_THREADS_MAX];
        int quit;
    } sdk_pool, user_pool;
};

static __thread struct loop *tls_loop;

#define ALTSTACK_BYTES (64 * 1024)

/* ------------------------------------------------------ stack faults */

#ifndef J4_ASAN
/* A fault in the guard below a fiber's stack is an overflow: say so in
 * words (with only async-signal-safe calls), then let the previous
 * handler or the default action end the process. ASan builds leave the
 * signal to ASan, which reports overflows itself. */
static struct sigaction prev_segv;

static size_t put_text(char *out, size_t at, size_t size, const char *t)
{
    while (*t && at + 1 < size)
        out[at++] = *t++;
    return at;
}

static size_t put_uint(char *out, size_t at, size_t size, size_t v)
{
    char digits[24];
    int n = 0;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof(digits));
    while (n && at + 1 < size)
        out[at++] = digits[--n];
    return at;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    struct loop *l = tls_loop;
    struct fiber *f = l ? l->current : NULL;
    const char *addr = si->si_addr;
    char msg[320];
    size_t n = 0;

    if (f && addr >= f->stack.map && addr < f->stack.lo) {
        n = put_text(msg, n, sizeof(msg), "j4: a worker overflowed its ");
        n = put_uint(msg, n, sizeof(msg), f->stack.size / 1024);
        n = put_text(msg, n, sizeof(msg),
                     " KiB fiber stack; raise it with J4_STACK_KIB "
                     "(j4-executor --stack-kib) or move large buffers off "
                     "the stack\n");
        if (write(2, msg, n) < 0)
            n = 0;
    }
    if ((prev_segv.sa_flags & SA_SIGINFO) && prev_segv.sa_sigaction) {
        prev_segv.sa_sigaction(sig, si, uc);
        return;
    }
    if (prev_segv.sa_handler != SIG_DFL && prev_segv.sa_handler != SIG_IGN) {
        prev_segv.sa_handler(sig);
        return;
    }
    /* Returning runs the faulting instruction again, now to the default
     * action: a core dump pointing at the overflow. */
    signal(sig, SIG_DFL);
}

static void segv_install(void)
{
    static atomic_int installed;
    struct sigaction sa;

    if (atomic_exchange(&installed, 1))
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
}
#else
static void segv_install(void)
{
}
#endif

/* The signal stack of a loop thread, where on_segv runs when the fiber's
 * own stack is the problem. */
static void *altstack_start(void)
{
    stack_t ss = {.ss_size = ALTSTACK_BYTES};

    ss.ss_sp = malloc(ALTSTACK_BYTES);
    if (ss.ss_sp && sigaltstack(&ss, NULL) != 0) {
        free(ss.ss_sp);
        return NULL;
    }
    return ss.ss_sp;
}

static void altstack_stop(void *mem)
{
    stack_t ss = {.ss_flags = SS_DISABLE};

    if (!mem)
        return;
    sigaltstack(&ss, NULL);
    free(mem);
}

static int64_t now_us(void)
{
    return clock_mono_us();
}

/* ------------------------------------------------------------- asan */

#ifdef J4_ASAN
static void asan_to_fiber(struct loop *l, struct fiber *f)
{
    __sanitizer_start_switch_fiber(&l->fake_stack, f->stack.lo,
                                   f->stack.size);
}

static void asan_back_in_loop(struct loop *l)
{
    __sanitizer_finish_switch_fiber(l->fake_stack, NULL, NULL);
}

static void asan_to_loop(struct loop *l, struct fiber *f, int dying)
{
    __sanitizer_start_switch_fiber(dying ? NULL : &f->fake_stack,
                                   l->stack_bottom, l->stack_size);
}

static void asan_in_fiber(struct loop *l, struct fiber *f, int first)
{
    if (first)
        __sanitizer_finish_switch_fiber(NULL, &l->stack_bottom,
                                        &l->stack_size);
    else
        __sanitizer_finish_switch_fiber(f->fake_stack, NULL, NULL);
}
#else
#define asan_to_fiber(l, f) ((void)0)
#define asan_back_in_loop(l) ((void)0)
#define asan_to_loop(l, f, dying) ((void)0)
#define asan_in_fiber(l, f, first) ((void)0)
#endif

/* ------------------------------------------------------------ stacks */

static int stack_get(struct sched *s, struct fiber_stack *st)
{
    pthread_mutex_lock(&s->stacks_lock);
    if (s->nstacks) {
        *st = s->stacks[--s->nstacks];
        pthread_mutex_unlock(&s->stacks_lock);
        return 0;
    }
    pthread_mutex_unlock(&s->stacks_lock);
    return fiber_stack_alloc(st, s->stack_size);
}

static void stack_put(struct sched *s, struct fiber_stack *st)
{
    pthread_mutex_lock(&s->stacks_lock);
    if (s->nstacks < STACK_CACHE_MAX) {
        s->stacks[s->nstacks++] = *st;
        pthread_mutex_unlock(&s->stacks_lock);
        return;
    }
    pthread_mutex_unlock(&s->stacks_lock);
    fiber_stack_free(st);
}

/* ------------------------------------------------------------- heap */

static int heap_less(struct loop *l, uint32_t a, uint32_t b)
{
    return l->heap[a]->deadline_us < l->heap[b]->deadline_us;
}

static void heap_swap(struct loop *l, uint32_t a, uint32_t b)
{
    struct fiber *t = l->heap[a];

    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_pos = a;
    l->heap[b]->heap_pos = b;
}

static void heap_up(struct loop *l, uint32_t i)
{
    while (i > 0 && heap_less(l, i, (i - 1) / 2)) {
        heap_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct loop *l, uint32_t i)
{
    for (;;) {
        uint32_t c = 2 * i + 1, m = i;

        if (c < l->heap_len && heap_less(l, c, m))
            m = c;
        if (c + 1 < l->heap_len && heap_less(l, c + 1, m))
            m = c + 1;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

static void heap_push(struct loop *l, struct fiber *f)
{
    if (l->heap_len == l->heap_cap) {
        uint32_t cap = l->heap_cap ? l->heap_cap * 2 : 256;
        struct fiber **grown = realloc(l->heap, cap * sizeof(*grown));

        if (!grown)
            abort(); /* a service may abort on out-of-memory */
        l->heap = grown;
        l->heap_cap = cap;
    }
    f->heap_pos = l->heap_len;
    l->heap[l->heap_len++] = f;
    heap_up(l, f->heap_pos);
}

static void heap_remove(struct loop *l, struct fiber *f)
{
    uint32_t i = f->heap_pos;

    if (i == UINT32_MAX)
        return;
    f->heap_pos = UINT32_MAX;
    if (i == --l->heap_len)
        return;
    l->heap[i] = l->heap[l->heap_len];
    l->heap[i]->heap_pos = i;
    heap_up(l, i);
    heap_down(l, l->heap[i]->heap_pos);
}

/* ------------------------------------------------------ ready, wakes */

static void make_ready(struct loop *l, struct fiber *f)
{
    f->state = F_READY;
    f->next = NULL;
    if (l->ready_tail)
        l->ready_tail->next = f;
    else
        l->ready_head = f;
    l->ready_tail = f;
    l->ready_count++;
}

/* Loop thread: wakes f, which belongs to this loop. */
static void wake_local(struct fiber *f)
{
    if (f->state == F_PARKED) {
        heap_remove(f->loop, f);
        f->reason = 1;
        make_ready(f->loop, f);
    } else if (f->state != F_DONE) {
        f->woken = 1;
    }
}

static fiber_handle handle_of(const struct loop *l, uint32_t slot,
                              uint32_t gen)
{
    return ((uint64_t)gen << 32) | ((uint64_t)l->index << 24) | slot;
}

/* Under l->lock. */
static struct fiber *slot_find(struct loop *l, fiber_handle h)
{
    uint32_t slot = (uint32_t)(h & 0xffffff);

    if (slot >= l->nslots || l->slots[slot].gen != (uint32_t)(h >> 32))
        return NULL;
    return l->slots[slot].f;
}

/* Under l->lock: gives f a slot; 0 when out of memory. */
static int slot_take(struct loop *l, struct fiber *f)
{
    uint32_t i;

    if (l->free_head == UINT32_MAX) {
        uint32_t n = l->nslots ? l->nslots * 2 : 1024;
        struct slot *grown;

        if (n > 0xffffff)
            return 0;
        grown = realloc(l->slots, n * sizeof(*grown));
        if (!grown)
            return 0;
        for (uint32_t k = l->nslots; k < n; k++) {
            grown[k].f = NULL;
            grown[k].gen = 1;
            grown[k].next_free = k + 1 < n ? k + 1 : UINT32_MAX;
        }
        l->free_head = l->nslots;
        l->slots = grown;
        l->nslots = n;
    }
    i = l->free_head;
    l->free_head = l->slots[i].next_free;
    l->slots[i].f = f;
    f->slot = i;
    f->gen = l->slots[i].gen;
    return 1;
}

static void slot_release(struct loop *l, struct fiber *f)
{
    pthread_mutex_lock(&l->lock);
    l->slots[f->slot].f = NULL;
    l->slots[f->slot].gen++;
    if (l->slots[f->slot].gen == 0)
        l->slots[f->slot].gen = 1;
    l->slots[f->slot].next_free = l->free_head;
    l->free_head = f->slot;
    pthread_mutex_unlock(&l->lock);
}

/* Tells a sleeping loop that its inbox holds something. */
static void loop_signal(struct loop *l)
{
    uint64_t one = 1;

    atomic_store(&l->pending, 1);
    if (atomic_load(&l->sleeping) && write(l->evfd, &one, sizeof(one)) < 0)
        log_debug("loop %u: eventfd write failed: %s", l->index,
                  strerror(errno));
}

/* Under l->lock. */
static void inbox_push(struct loop *l, const struct msg *m)
{
    if (l->inbox_len == l->inbox_cap) {
        size_t cap = l->inbox_cap ? l->inbox_cap * 2 : 64;
        struct msg *grown = realloc(l->inbox, cap * sizeof(*grown));

        if (!grown)
            abort(); /* a service may abort on out-of-memory */
        l->inbox = grown;
        l->inbox_cap = cap;
    }
    l->inbox[l->inbox_len++] = *m;
}

static void post(struct loop *l, const struct msg *m)
{
    pthread_mutex_lock(&l->lock);
    inbox_push(l, m);
    pthread_mutex_unlock(&l->lock);
    loop_signal(l);
}

void fiber_wake(struct sched *s, fiber_handle h)
{
    unsigned index = (unsigned)((h >> 24) & 0xff);
    struct loop *l;
    struct msg m = {.kind = M_WAKE, .handle = h};

    if (!h || index >= s->nloops)
        return;
    l = &s->loops[index];
    if (tls_loop == l) {
        struct fiber *f;

        pthread_mutex_lock(&l->lock);
        f = slot_find(l, h);
        pthread_mutex_unlock(&l->lock);
        if (f)
            wake_local(f);
        return;
    }
    post(l, &m);
}

/* -------------------------------------------------------- fiber life */

static void fiber_entry(void *arg)
{
    struct fiber *f = arg;
    struct loop *l = f->loop;

    asan_in_fiber(l, f, 1);
    f->fn(f->arg);
    f->state = F_DONE;
    asan_to_loop(l, f, 1);
    fiber_ctx_swap(&f->ctx, &l->ctx);
    abort(); /* a finished fiber is never resumed */
}

static void fiber_destroy(struct loop *l, struct fiber *f)
{
    heap_remove(l, f);
    slot_release(l, f);
    if (!fiber_stack_intact(&f->stack)) {
        log_error("a worker overflowed its %zu-byte stack; stopping the "
                  "executor (raise the stack size or move large buffers "
                  "off the stack)", f->stack.size);
        abort();
    }
    stack_put(l->s, &f->stack);
    free(f);
    atomic_fetch_sub(&l->alive, 1);
}

static struct fiber *fiber_make(struct sched *s, struct loop *l,
                                void (*fn)(void *), void *arg)
{
    struct fiber *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    if (stack_get(s, &f->stack) != 0) {
        log_error("unable to map a %zu-byte fiber stack: %s", s->stack_size,
                  strerror(errno));
        free(f);
        return NULL;
    }
    f->loop = l;
    f->fn = fn;
    f->arg = arg;
    f->heap_pos = UINT32_MAX;
    f->state = F_READY;
    fiber_ctx_init(&f->ctx, &f->stack, fiber_entry, f);
    return f;
}

fiber_handle sched_spawn(struct sched *s, int loop, void (*fn)(void *),
                         void *arg)
{
    unsigned i = loop < 0 ? atomic_fetch_add(&s->next_loop, 1) % s->nloops
                          : (unsigned)loop % s->nloops;
    struct loop *l = &s->loops[i];
    struct fiber *f = fiber_make(s, l, fn, arg);
    fiber_handle h;

    if (!f)
        return 0;
    pthread_mutex_lock(&l->lock);
    if (!slot_take(l, f)) {
        pthread_mutex_unlock(&l->lock);
        stack_put(s, &f->stack);
        free(f);
        return 0;
    }
    h = handle_of(l, f->slot, f->gen);
    atomic_fetch_add(&l->alive, 1);
    if (tls_loop == l) {
        pthread_mutex_unlock(&l->lock);
        make_ready(l, f);
        return h;
    }
    if (l->spawned_tail)
        l->spawned_tail->next = f;
    else
        l->spawned_head = f;
    l->spawned_tail = f;
    pthread_mutex_unlock(&l->lock);
    loop_signal(l);
    return h;
}

fiber_handle fiber_spawn_here(void (*fn)(void *), void *arg)
{
    struct loop *l = tls_loop;

    if (!l || !l->current)
        return 0;
    return sched_spawn(l->s, (int)l->index, fn, arg);
}

struct fiber *fiber_current(void)
{
    return tls_loop ? tls_loop->current : NULL;
}

fiber_handle fiber_self(void)
{
    struct fiber *f = fiber_current();

    return f ? handle_of(f->loop, f->slot, f->gen) : 0;
}

void fiber_set_local(void *local)
{
    struct fiber *f = fiber_current();

    if (f)
        f->local = local;
}

void *fiber_local(void)
{
    struct fiber *f = fiber_current();

    return f ? f->local : NULL;
}

/* From the running fiber: back to the loop until made ready again. */
static void park(struct fiber *f)
{
    struct loop *l = f->loop;

    asan_to_loop(l, f, 0);
    fiber_ctx_swap(&f->ctx, &l->ctx);
    asan_in_fiber(l, f, 0);
}

static void sleep_until(int64_t deadline_us)
{
    struct timespec ts;

    if (deadline_us == INT64_MAX)
        deadline_us = now_us() + 1000000;
    ts.tv_sec = (time_t)(deadline_us / 1000000);
    ts.tv_nsec = (long)(deadline_us % 1000000) * 1000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR)
        ;
}

int fiber_wait_until(int64_t deadline_us)
{
    struct fiber *f = fiber_current();

    if (!f) {
        sleep_until(deadline_us);
        return 0;
    }
    if (f->woken) {
        f->woken = 0;
        return 1;
    }
    if (deadline_us != INT64_MAX) {
        if (deadline_us <= now_us())
            return 0;
        f->deadline_us = deadline_us;
        heap_push(f->loop, f);
    }
    f->state = F_PARKED;
    f->reason = 0;
    park(f);
    f->woken = 0;
    return f->reason;
}

void fiber_yield(void)
{
    struct fiber *f = fiber_current();

    if (!f)
        return;
    make_ready(f->loop, f);
    park(f);
}

void fiber_yield_if_busy(void)
{
    struct fiber *f = fiber_current();

    if (!f)
        return;
    if (f->resumes == f->resumes_seen)
        fiber_yield();
    f->resumes_seen = f->resumes;
}

/* ------------------------------------------------------------ sockets */

struct sched_io *sched_io_add(int fd)
{
    struct sched_io *io = calloc(1, sizeof(*io));
    struct loop *l = fiber_current() ? tls_loop : NULL;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
    };

    if (!io)
        return NULL;
    io->kind = W_IO;
    io->fd = fd;
    io->loop = l;
    ev.data.ptr = io;
    if (l && epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(io);
        return NULL;
    }
    return io;
}

void sched_io_del(struct sched_io *io)
{
    if (!io)
        return;
    if (io->loop)
        epoll_ctl(io->loop->ep, EPOLL_CTL_DEL, io->fd, NULL);
    free(io);
}

void sched_io_clear(struct sched_io *io, unsigned events)
{
    io->ready &= ~events;
}

static int io_poll(struct sched_io *io, unsigned events, int64_t deadline)
{
    struct pollfd p = {.fd = io->fd};
    int64_t left = deadline == INT64_MAX ? -1 : deadline - now_us();
    int n;

    p.events = (short)((events & SCHED_IN ? POLLIN : 0) |
                       (events & SCHED_OUT ? POLLOUT : 0));
    if (deadline != INT64_MAX && left <= 0)
        return 0;
    if (left > (int64_t)INT_MAX * 1000 / 2)
        left = (int64_t)INT_MAX * 1000 / 2;
    n = poll(&p, 1, left < 0 ? -1 : (int)((left + 999) / 1000));
    if (n <= 0)
        return 0;
    return (p.revents & (POLLIN | POLLHUP | POLLERR) ? SCHED_IN : 0) |
           (p.revents & (POLLOUT | POLLHUP | POLLERR) ? SCHED_OUT : 0);
}

int sched_io_wait(struct sched_io *io, unsigned events, int64_t deadline_us)
{
    int woken;

    if (!io->loop)
        return io_poll(io, events, deadline_us);
    if (io->ready & events)
        return (int)(io->ready & events);
    io->want = events;
    io->waiter = fiber_current();
    woken = fiber_wait_until(deadline_us);
    io->waiter = NULL;
    if (io->ready & events)
        return (int)(io->ready & events);
    return woken ? -1 : 0;
}

static void io_event(struct sched_io *io, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        io->ready |= SCHED_IN;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        io->ready |= SCHED_OUT;
    if (io->waiter && (io->ready & io->want))
        wake_local(io->waiter);
}

/* --------------------------------------------------------------- curl */

static int curl_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp)
{
    struct loop *l = userp;
    struct curl_sock *cs = socketp;
    struct epoll_event ev = {0};

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
        free(cs);
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) |
                (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (!cs) {
        cs = calloc(1, sizeof(*cs));
        if (!cs)
            return -1;
        cs->kind = W_CURL;
        cs->fd = fd;
        curl_multi_assign(l->multi, fd, cs);
        ev.data.ptr = cs;
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
            epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev);
        return 0;
    }
    ev.data.ptr = cs;
    if (epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
        epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static int curl_on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct loop *l = userp;

    (void)multi;
    l->curl_deadline_us =
        timeout_ms < 0 ? INT64_MAX : now_us() + (int64_t)timeout_ms * 1000;
    return 0;
}

static void curl_done(struct loop *l)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(l->multi, &left))) {
        struct sched_curl_op *op = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&op);
        curl_multi_remove_handle(l->multi, msg->easy_handle);
        if (!op)
            continue;
        op->result = msg->data.result;
        op->done = 1;
        wake_local(op->owner);
    }
}

static void curl_action(struct loop *l, curl_socket_t fd, int mask)
{
    int running;

    curl_multi_socket_action(l->multi, fd, mask, &running);
    curl_done(l);
}

CURLMcode sched_curl_start(struct sched_curl_op *op, CURL *easy)
{
    struct loop *l = tls_loop;
    CURLMcode rc;

    if (!l || !l->current)
        return CURLM_BAD_HANDLE;
    op->easy = easy;
    op->owner = l->current;
    op->done = 0;
    op->result = CURLE_OK;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)op);
    rc = curl_multi_add_handle(l->multi, easy);
    return rc;
}

int sched_curl_wait(struct sched_curl_op *op, int64_t deadline_us)
{
    int woken;

    if (op->done)
        return 1;
    woken = fiber_wait_until(deadline_us);
    if (op->done)
        return 1;
    return woken ? -1 : 0;
}

void sched_curl_cancel(struct sched_curl_op *op)
{
    if (op->done || !tls_loop)
        return;
    curl_multi_remove_handle(tls_loop->multi, op->easy);
    op->done = 1;
    op->result = CURLE_ABORTED_BY_CALLBACK;
}

/* --------------------------------------------------------------- gRPC */

static void *cq_main(void *arg)
{
    struct loop *l = arg;

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            l->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        struct msg m = {.kind = M_GRPC};

        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        m.ptr = ev.tag;
        m.ok = ev.success;
        post(l, &m);
    }
    return NULL;
}

grpc_completion_queue *sched_cq_init(struct sched_cq *q)
{
    struct loop *l = tls_loop;

    memset(q, 0, sizeof(*q));
    if (!l || !l->current)
        return NULL;
    q->owner = l->current;
    if (!l->cq_started) {
        l->cq = grpc_completion_queue_create_for_next(NULL);
        if (!l->cq || pthread_create(&l->cq_thread, NULL, cq_main, l) != 0) {
            if (l->cq)
                grpc_completion_queue_destroy(l->cq);
            l->cq = NULL;
            return NULL;
        }
        l->cq_started = 1;
    }
    return l->cq;
}

void *sched_cq_tag(struct sched_cq *q, unsigned id)
{
    q->tags[id].q = q;
    q->tags[id].id = (unsigned char)id;
    return &q->tags[id];
}

void sched_cq_started(struct sched_cq *q)
{
    q->outstanding++;
}

static void cq_event(void *tag, int ok)
{
    struct sched_cq_tag *t = tag;
    struct sched_cq *q = t->q;
    unsigned at = (q->head + q->count) % sizeof(q->ready);

    q->ready[at] = t->id;
    q->ok[at] = (unsigned char)ok;
    q->count++;
    q->outstanding--;
    if (q->waiting)
        wake_local(q->owner);
}

int sched_cq_next(struct sched_cq *q, int64_t deadline_us, unsigned *id,
                  int *ok)
{
    int woken = 0;

    q->owner = fiber_current(); /* a routine may read the worker's call */
    if (!q->count) {
        q->waiting = 1;
        woken = fiber_wait_until(deadline_us);
        q->waiting = 0;
    }
    if (!q->count)
        return woken ? -1 : 0;
    *id = q->ready[q->head];
    *ok = q->ok[q->head];
    q->head = (q->head + 1) % sizeof(q->ready);
    q->count--;
    return 1;
}

void sched_cq_drain(struct sched_cq *q)
{
    q->owner = fiber_current();
    while (q->outstanding) {
        q->waiting = 1;
        fiber_wait_until(INT64_MAX);
        q->waiting = 0;
    }
    q->count = 0;
}

/* ----------------------------------------------------------- blocking */

static void *block_main(void *arg)
{
    struct block_pool *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct block_job *job = p->jobs_head;
        struct msg m = {.kind = M_BLOCK};

        if (!job) {
            if (p->quit)
                break;
            p->idle++;
            pthread_cond_wait(&p->cond, &p->lock);
            p->idle--;
            continue;
        }
        p->jobs_head = job->next;
        if (!p->jobs_head)
            p->jobs_tail = NULL;
        pthread_mutex_unlock(&p->lock);
        job->result = job->fn(job->arg);
        m.ptr = job;
        post(job->loop, &m);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Under p->lock: one more helper thread when none is idle. */
static void block_grow(struct block_pool *p)
{
    pthread_attr_t attr;

    if (p->idle || p->threads == p->max)
        return;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, BLOCK_THREAD_STACK);
    if (pthread_create(&p->tids[p->threads], &attr, block_main, p) == 0)
        p->threads++;
    pthread_attr_destroy(&attr);
}

static int block_on(struct block_pool *p, struct fiber *f,
                    int (*fn)(void *arg), void *arg)
{
    struct block_job job = {.fn = fn, .arg = arg};

    job.loop = f->loop;
    job.owner = f;
    pthread_mutex_lock(&p->lock);
    if (p->jobs_tail)
        p->jobs_tail->next = &job;
    else
        p->jobs_head = &job;
    p->jobs_tail = &job;
    block_grow(p);
    if (!p->threads) {
        /* No helper could start: run it here rather than never. */
        p->jobs_head = p->jobs_tail = NULL;
        pthread_mutex_unlock(&p->lock);
        return fn(arg);
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    while (!job.done)
        fiber_wait_until(INT64_MAX);
    return job.result;
}

int sched_block(int (*fn)(void *arg), void *arg)
{
    struct fiber *f = fiber_current();

    return f ? block_on(&f->loop->s->sdk_pool, f, fn, arg) : fn(arg);
}

int sched_block_user(int (*fn)(void *arg), void *arg)
{
    struct fiber *f = fiber_current();

    return f ? block_on(&f->loop->s->user_pool, f, fn, arg) : fn(arg);
}

static void pool_init(struct block_pool *p, unsigned max)
{
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->max = max;
}

static void pool_release(struct block_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->threads; i++)
        pthread_join(p->tids[i], NULL);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
}

/* --------------------------------------------------------------- loop */

static void inbox_drain(struct loop *l)
{
    struct fiber *spawned;
    struct msg *msgs;
    size_t n, cap;

    if (!atomic_exchange(&l->pending, 0))
        return;
    pthread_mutex_lock(&l->lock);
    spawned = l->spawned_head;
    l->spawned_head = l->spawned_tail = NULL;
    msgs = l->inbox;
    cap = l->inbox_cap;
    n = l->inbox_len;
    l->inbox = l->spare;
    l->inbox_cap = l->spare_cap;
    l->inbox_len = 0;
    l->spare = msgs;
    l->spare_cap = cap;
    pthread_mutex_unlock(&l->lock);

    while (spawned) {
        struct fiber *next = spawned->next;

        make_ready(l, spawned);
        spawned = next;
    }
    for (size_t i = 0; i < n; i++) {
        struct msg *m = &msgs[i];

        if (m->kind == M_WAKE) {
            struct fiber *f;

            pthread_mutex_lock(&l->lock);
            f = slot_find(l, m->handle);
            pthread_mutex_unlock(&l->lock);
            if (f)
                wake_local(f);
        } else if (m->kind == M_GRPC) {
            cq_event(m->ptr, m->ok);
        } else {
            struct block_job *job = m->ptr;

            job->done = 1;
            wake_local(job->owner);
        }
    }
}

static void run_ready(struct loop *l)
{
    unsigned n = l->ready_count;

    while (n-- && l->ready_head) {
        struct fiber *f = l->ready_head;

        l->ready_head = f->next;
        if (!l->ready_head)
            l->ready_tail = NULL;
        l->ready_count--;
        l->current = f;
        f->state = F_RUNNING;
        f->resumes++;
        asan_to_fiber(l, f);
        fiber_ctx_swap(&l->ctx, &f->ctx);
        asan_back_in_loop(l);
        l->current = NULL;
        if (f->state == F_DONE)
            fiber_destroy(l, f);
        else if (!fiber_stack_intact(&f->stack))
            fiber_destroy(l, f); /* aborts with a message */
    }
    atomic_store_explicit(&l->ticks, l->ticks + 1, memory_order_relaxed);
}

static int loop_timeout_ms(struct loop *l)
{
    int64_t next = l->curl_deadline_us, left;

    if (l->ready_head || atomic_load(&l->pending))
        return 0;
    if (l->heap_len && l->heap[0]->deadline_us < next)
        next = l->heap[0]->deadline_us;
    if (next == INT64_MAX)
        return atomic_load(&l->quit) ? 100 : -1;
    left = next - now_us();
    if (left <= 0)
        return 0;
    return left > INT_MAX / 2 ? INT_MAX / 2 : (int)((left + 999) / 1000);
}

static void fire_deadlines(struct loop *l)
{
    int64_t now = now_us();

    while (l->heap_len && l->heap[0]->deadline_us <= now) {
        struct fiber *f = l->heap[0];

        heap_remove(l, f);
        if (f->state == F_PARKED) {
            f->reason = 0;
            make_ready(l, f);
        }
    }
    if (l->curl_deadline_us <= now) {
        l->curl_deadline_us = INT64_MAX;
        curl_action(l, CURL_SOCKET_TIMEOUT, 0);
    }
}

static void handle_events(struct loop *l, struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        enum watch_kind *kind = evs[i].data.ptr;
        uint32_t e = evs[i].events;

        if (*kind == W_EVENTFD) {
            uint64_t v;

            if (read(l->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                log_debug("loop %u: eventfd read failed: %s", l->index,
                          strerror(errno));
        } else if (*kind == W_CURL) {
            struct curl_sock *cs = evs[i].data.ptr;
            int mask = (e & EPOLLIN ? CURL_CSELECT_IN : 0) |
                       (e & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                       (e & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

            curl_action(l, cs->fd, mask);
        } else {
            io_event(evs[i].data.ptr, e);
        }
    }
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    struct epoll_event evs[EVENTS_MAX];
    void *altstack = altstack_start();

    tls_loop = l;
    while (!atomic_load(&l->quit) || atomic_load(&l->alive)) {
        int timeout, n;

        inbox_drain(l);
        run_ready(l);
        timeout = loop_timeout_ms(l);
        if (timeout != 0) {
            atomic_store(&l->sleeping, 1);
            if (atomic_load(&l->pending))
                timeout = 0;
        }
        n = epoll_wait(l->ep, evs, EVENTS_MAX, timeout);
        atomic_store(&l->sleeping, 0);
        if (n > 0)
            handle_events(l, evs, n);
        fire_deadlines(l);
    }
    tls_loop = NULL;
    altstack_stop(altstack);
    return NULL;
}

/* ------------------------------------------------------------- sched */

static int loop_init(struct sched *s, struct loop *l, unsigned index)
{
    struct epoll_event ev = {.events = EPOLLIN};

    l->s = s;
    l->index = index;
    l->free_head = UINT32_MAX;
    l->curl_deadline_us = INT64_MAX;
    l->evfd_kind = W_EVENTFD;
    pthread_mutex_init(&l->lock, NULL);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->multi = curl_multi_init();
    if (l->ep < 0 || l->evfd < 0 || !l->multi)
        return -1;
    ev.data.ptr = &l->evfd_kind;
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->evfd, &ev) != 0)
        return -1;
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, curl_on_socket);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, curl_on_timer);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
    /* The default cache holds 4 connections per easy handle added, and
     * the loop's handles are added one transfer at a time: without this
     * most keep-alive connections would be closed between requests. */
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long)MAX_CONNECTS);
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0)
        return -1;
    return 0;
}

static void loop_release(struct loop *l)
{
    if (l->cq_started) {
        grpc_completion_queue_shutdown(l->cq);
        pthread_join(l->cq_thread, NULL);
        grpc_completion_queue_destroy(l->cq);
    }
    if (l->multi)
        curl_multi_cleanup(l->multi);
    if (l->evfd >= 0)
        close(l->evfd);
    if (l->ep >= 0)
        close(l->ep);
    free(l->heap);
    free(l->slots);
    free(l->inbox);
    free(l->spare);
    pthread_mutex_destroy(&l->lock);
}

struct sched *sched_new(unsigned loops, size_t stack_size)
{
    struct sched *s = calloc(1, sizeof(*s));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (!s)
        return NULL;
    if (!loops)
        loops = cpus > 0 ? (unsigned)cpus : 1;
    s->nloops = loops < LOOPS_MAX ? loops : LOOPS_MAX;
    s->stack_size = stack_size;
    segv_install();
    pthread_mutex_init(&s->stacks_lock, NULL);
    pool_init(&s->sdk_pool, SDK_BLOCK_THREADS_MAX);
    pool_init(&s->user_pool, BLOCK_THREADS_MAX);
    s->stacks = calloc(STACK_CACHE_MAX, sizeof(*s->stacks));
    for (unsigned i = 0; i < s->nloops; i++)
        s->loops[i].ep = s->loops[i].evfd = -1;
    for (unsigned i = 0; s->stacks && i < s->nloops; i++) {
        if (loop_init(s, &s->loops[i], i) != 0) {
            log_error("unable to start worker loop %u: %s", i,
                      strerror(errno));
            s->nloops = i;
            sched_free(s);
            return NULL;
        }
    }
    if (!s->stacks) {
        free(s);
        return NULL;
    }
    return s;
}

unsigned sched_loops(const struct sched *s)
{
    return s->nloops;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->nloops; i++) {
        atomic_store(&s->loops[i].quit, 1);
        atomic_store(&s->loops[i].sleeping, 1);
        loop_signal(&s->loops[i]);
    }
    for (unsigned i = 0; i < s->nloops; i++)
        pthread_join(s->loops[i].thread, NULL);
    for (unsigned i = 0; i < s->nloops; i++)
        loop_release(&s->loops[i]);
    pool_release(&s->sdk_pool);
    pool_release(&s->user_pool);
    for (size_t i = 0; i < s->nstacks; i++)
        fiber_stack_free(&s->stacks[i]);
    free(s->stacks);
    pthread_mutex_destroy(&s->stacks_lock);
    free(s);
}

int64_t sched_loop_stuck_us(struct sched *s, unsigned loop)
{
    struct loop *l;
    uint64_t ticks;
    int64_t now = now_us();

    if (loop >= s->nloops)
        return 0;
    l = &s->loops[loop];
    ticks = atomic_load_explicit(&l->ticks, memory_order_relaxed);
    if (ticks != l->seen_ticks || atomic_load(&l->sleeping) ||
        !l->seen_at_us) {
        l->seen_ticks = ticks;
        l->seen_at_us = now;
        return 0;
    }
    return now - l->seen_at_us;
}
