/*
 * clock.h - the two clocks J4 uses.
 *
 * Monotonic time measures durations (latency, leases, timeouts); wall time
 * (Unix epoch) places a scenario's schedule so that every process agrees
 * on when t = 0 was.
 */
#ifndef J4_COMMON_CLOCK_H
#define J4_COMMON_CLOCK_H

#include <stdint.h>

int64_t clock_mono_us(void);
int64_t clock_mono_ms(void);
int64_t clock_wall_ms(void);

/* Formats wall ms as "2026-12-04T16:30:00.123Z" into buf (>= 32 bytes). */
void clock_format_wall(int64_t wall_ms, char *buf, unsigned long size);

#endif
