/*
 * timeline.h - planned and running workers per executor over time.
 *
 * The leader records, for every running scenario, what each executor was
 * meant to run (its share of Planned(t)) and what its heartbeats said it
 * ran: one point a second and one at every change, buffered in memory
 * and written in one fenced INSERT about every second, at most
 * TIMELINE_MAX_POINTS points per scenario. The REST API reads the points
 * back as GET /scenarios/{id}/timeline (shape: docs/architecture.md).
 */
#ifndef J4_DIST_TIMELINE_H
#define J4_DIST_TIMELINE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#define TIMELINE_MAX_POINTS 20000
#define TIMELINE_EVERY_MS 1000

struct leader;
struct timeline;

struct timeline *timeline_new(void);
void timeline_free(struct timeline *tl);

/* Leader thread, once per pass: samples every running scenario and
 * flushes the buffer when due. Forgets everything when not leading. */
void timeline_tick(struct leader *l, struct timeline *tl, int64_t now_ms);

/* The timeline document of scenario id (any thread, own session); sets
 * *found to 0 when there is no such scenario. Returns NULL on a
 * PostgreSQL failure. */
json_t *timeline_json(PGconn *conn, int64_t id, int *found);

#endif
