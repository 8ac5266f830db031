/*
 * fiber.c - the machine-dependent part of fibers: stacks and switching.
 *
 * A stack is an anonymous mapping reserved with MAP_NORESERVE, so only
 * the pages a fiber touches become resident. Below it sits a 64 KiB guard
 * (a frame larger than that could step over it unless the code was built
 * with -fstack-clash-protection, as J4's plugins are) while the process
 * has mappings to spare: each guard splits the mapping
 * in two, and vm.max_map_count (65530 by default) would otherwise cap the
 * fibers at about 32,000. Past that budget stacks go without a guard and
 * rely on the canary word at their bottom, which the scheduler checks
 * every time the fiber comes back to it.
 *
 * On x86-64 a switch saves the six callee-saved registers on the old
 * stack and loads them from the new one (no system call, unlike
 * swapcontext, which also saves the signal mask); elsewhere ucontext does
 * the work. AddressSanitizer is told about every switch so that it knows
 * which stack is live.
 */
#include "fiber_ctx.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

#define CANARY 0x6a34737461636b21ULL /* "j4stack!" */
#define GUARD_BYTES (64 * 1024) /* address space only: never resident */
#define MAP_COUNT_SPARE 16384

static atomic_long guards_left = -1;
static atomic_int unguarded_warned;

static long page_size(void)
{
    static long size;

    if (!size)
        size = sysconf(_SC_PAGESIZE);
    return size;
}

/* How many guarded stacks the mapping budget allows, read once. */
static void guards_budget_init(void)
{
    long expected = -1, budget = 30000;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long max;

    if (f) {
        if (fscanf(f, "%ld", &max) == 1)
            budget = max > MAP_COUNT_SPARE ? (max - MAP_COUNT_SPARE) / 2 : 0;
        fclose(f);
    }
    atomic_compare_exchange_strong(&guards_left, &expected, budget);
}

static int take_guard(void)
{
    long left;

    if (atomic_load(&guards_left) < 0)
        guards_budget_init();
    left = atomic_fetch_sub(&guards_left, 1);
    if (left > 0)
        return 1;
    atomic_fetch_add(&guards_left, 1);
    if (!atomic_exchange(&unguarded_warned, 1))
        log_warn("fiber stacks: vm.max_map_count leaves no room for more "
                 "guard pages; further workers' stacks have only a canary "
                 "check (raise vm.max_map_count to keep guards)");
    return 0;
}

int fiber_stack_alloc(struct fiber_stack *st, size_t size)
{
    size_t page = (size_t)page_size();
    size_t guard = (GUARD_BYTES + page - 1) / page * page;
    size_t len = (size + page - 1) / page * page + guard;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                     -1, 0);

    if (map == MAP_FAILED)
        return -1;
    st->map = map;
    st->map_len = len;
    st->guarded = take_guard();
    if (st->guarded && mprotect(map, guard, PROT_NONE) != 0) {
        atomic_fetch_add(&guards_left, 1);
        st->guarded = 0;
    }
    st->lo = map + guard;
    st->size = len - guard;
    *(uint64_t *)st->lo = CANARY;
    return 0;
}

void fiber_stack_free(struct fiber_stack *st)
{
    if (!st->map)
        return;
    if (st->guarded)
        atomic_fetch_add(&guards_left, 1);
    munmap(st->map, st->map_len);
    memset(st, 0, sizeof(*st));
}

int fiber_stack_intact(const struct fiber_stack *st)
{
    return *(const uint64_t *)st->lo == CANARY;
}

/* ------------------------------------------------------------ x86-64 */

#if defined(__x86_64__) && !defined(J4_FIBER_UCONTEXT)

/* void j4_ctx_swap(void **save_sp, void *load_sp) */
__asm__(".text\n"
        ".globl j4_ctx_swap\n"
        ".type j4_ctx_swap,@function\n"
        "j4_ctx_swap:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size j4_ctx_swap,.-j4_ctx_swap\n"
        /* First code of a fiber: entry(arg), with both popped above. */
        ".globl j4_ctx_start\n"
        ".type j4_ctx_start,@function\n"
        "j4_ctx_start:\n"
        "    movq %r12, %rdi\n"
        "    callq *%rbx\n"
        "    ud2\n"
        ".size j4_ctx_start,.-j4_ctx_start\n");

void j4_ctx_swap(void **save_sp, void *load_sp);
void j4_ctx_start(void);

void fiber_ctx_init(struct fiber_ctx *c, const struct fiber_stack *st,
                    void (*entry)(void *), void *arg)
{
    /* 16-byte aligned top; after the six pops and ret, rsp is aligned
     * again, so the call in j4_ctx_start gives entry the ABI's frame. */
    uintptr_t top = ((uintptr_t)(st->lo + st->size) & ~(uintptr_t)15) - 16;
    void **sp = (void **)top;

    *--sp = (void *)j4_ctx_start; /* ret target */
    *--sp = NULL;                 /* rbp */
    *--sp = (void *)entry;        /* rbx */
    *--sp = arg;                  /* r12 */
    *--sp = NULL;                 /* r13 */
    *--sp = NULL;                 /* r14 */
    *--sp = NULL;                 /* r15 */
    c->sp = sp;
}

void fiber_ctx_swap(struct fiber_ctx *save, struct fiber_ctx *load)
{
    j4_ctx_swap(&save->sp, load->sp);
}

#else /* ucontext */

static void ucontext_entry(unsigned hi, unsigned lo, unsigned ehi,
                           unsigned elo)
{
    void *arg = (void *)(((uintptr_t)hi << 32) | lo);
    void (*entry)(void *) =
        (void (*)(void *))(((uintptr_t)ehi << 32) | elo);

    entry(arg);
    abort();
}

void fiber_ctx_init(struct fiber_ctx *c, const struct fiber_stack *st,
                    void (*entry)(void *), void *arg)
{
    uintptr_t a = (uintptr_t)arg, e = (uintptr_t)entry;

    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = st->lo;
    c->uc.uc_stack.ss_size = st->size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, (void (*)(void))ucontext_entry, 4,
                (unsigned)(a >> 32), (unsigned)a, (unsigned)(e >> 32),
                (unsigned)e);
}

void fiber_ctx_swap(struct fiber_ctx *save, struct fiber_ctx *load)
{
    swapcontext(&save->uc, &load->uc);
}

#endif
