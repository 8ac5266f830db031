/*
 * duration.h - the duration strings used in scenario documents.
 *
 * A duration is a positive decimal integer followed by a unit: "250ms",
 * "10s", "5m", "1h", or "0s" for zero. Units may be combined largest
 * first ("1m30s"). No sign, no spaces, no fractions, no bare numbers.
 */
#ifndef J4_COMMON_DURATION_H
#define J4_COMMON_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The largest duration accepted: 30 days. */
#define DURATION_MAX_MS (30LL * 24 * 3600 * 1000)

/* Parses text into *ms. Returns J4_OK, or J4_ERR_INVALID for text that is
 * not a duration or exceeds DURATION_MAX_MS. */
int duration_parse(const char *text, int64_t *ms);

/* Formats ms the way duration_parse reads it ("1m30s", "250ms", "0s").
 * Returns buf. size >= 32 always suffices. */
char *duration_format(int64_t ms, char *buf, size_t size);

#endif
