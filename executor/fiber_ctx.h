/*
 * fiber_ctx.h - fiber stacks and context switches (fiber.c), used by the
 * scheduler (scheduler.c) only.
 */
#ifndef J4_EXECUTOR_FIBER_CTX_H
#define J4_EXECUTOR_FIBER_CTX_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__x86_64__) || defined(J4_FIBER_UCONTEXT)
#include <ucontext.h>
#endif

struct fiber_stack {
    char *map;       /* whole mapping, guard page included */
    size_t map_len;
    char *lo;        /* lowest usable byte */
    size_t size;     /* usable bytes */
    int guarded;
};

struct fiber_ctx {
#if defined(__x86_64__) && !defined(J4_FIBER_UCONTEXT)
    void *sp;
#else
    ucontext_t uc;
#endif
};

/* size: usable bytes wanted. Returns 0, or -1 with errno set. */
int fiber_stack_alloc(struct fiber_stack *st, size_t size);
void fiber_stack_free(struct fiber_stack *st);
/* Zero once the fiber wrote below its stack (the canary is gone). */
int fiber_stack_intact(const struct fiber_stack *st);

/* Makes c start entry(arg) on st at its first fiber_ctx_swap. */
void fiber_ctx_init(struct fiber_ctx *c, const struct fiber_stack *st,
                    void (*entry)(void *), void *arg);
/* Saves the running context into save and resumes load. */
void fiber_ctx_swap(struct fiber_ctx *save, struct fiber_ctx *load);

#endif
