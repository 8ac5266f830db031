/*
 * series_store.h - named series and per-phase totals in PostgreSQL.
 *
 * The leader adds each report's series deltas into scenario_series (one
 * row per scenario, executor and series) and its totals into the row of
 * scenario_phase_metrics for the phase the report's interval falls in.
 * Readers (reports, /metrics, thresholds) merge the rows of a scenario
 * into one struct cluster_series per (kind, name, protocol, tags):
 * histograms bucket by bucket, counters by addition, so cluster figures
 * are exact.
 *
 * Bounds: besides SERIES_STORE_MAX rows per (scenario, executor), a
 * scenario holds at most SERIES_STORE_GROUP_MAX distinct series per
 * group (requests; team metrics; checks; streams) over all executors,
 * tagged variants counted one by one. A series first seen when its group
 * is full is added into its executor's untagged "other" row of the same
 * kind and protocol, so totals stay exact. The leader applies reports
 * one transaction at a time, which is what makes the count hold.
 */
#ifndef J4_DIST_SERIES_STORE_H
#define J4_DIST_SERIES_STORE_H

#include <libpq-fe.h>
#include <stdint.h>

#include "hist.h"
#include "j4.h"
#include "j4.pb-c.h"
#include "prom.h"

/* Distinct series one (scenario, executor) may hold; more fold into
 * "other". The executor bounds them too (executor/series.h). */
#define SERIES_STORE_MAX 300
/* Distinct series per group and scenario, cluster-wide ("other" aside);
 * the same bound as the executor's (executor/series.h). */
#define SERIES_STORE_GROUP_MAX 64
/* Canonical tag text "k1=v1,k2=v2" (common/prom.h). */
#define SERIES_STORE_TAGS_LEN 799

struct cluster_series {
    int kind;                   /* enum prom_kind */
    char name[65];
    char protocol[16];
    char tags[SERIES_STORE_TAGS_LEN + 1]; /* "" for none */
    uint64_t outcomes[J4_OUTCOME_COUNT_];
    uint64_t count, failed, opened, resets, reconnects;
    int64_t gauge;
    struct hist *hist;          /* never NULL once loaded */
    struct hist *hist2;
};

/* Inside the leader's fenced transaction: adds the series of m (scenario
 * sid, executor exec) and, when phase is not NULL, its totals to that
 * phase. Returns J4_OK or J4_ERR_UNAVAILABLE / J4_ERR_NOMEM. */
int series_store_apply(PGconn *conn, const char *sid, const char *exec,
                       const J4__ScenarioMetrics *m, const char *phase);

/* The phase ("rampup", "hold", "rampdown") of a report whose interval
 * midpoint is mid_wall_ms, for scenario sid; NULL when unknown. */
const char *series_store_phase(PGconn *conn, const char *sid,
                               int64_t mid_wall_ms);

/* Every series of scenario_id merged over executors (*out malloc'd; free
 * with series_store_free). Returns J4_OK or J4_ERR_UNAVAILABLE. */
int series_store_load(PGconn *conn, int64_t scenario_id,
                      struct cluster_series **out, size_t *n);
void series_store_free(struct cluster_series *series, size_t n);

/* Decodes a text-format bytea histogram column into *h. */
/* Adds a stored outcomes object ({"ok": 3, "http_5xx": 1}) into out,
 * indexed by j4_outcome. Unknown kinds and bad text add nothing. */
void series_store_outcomes_add(uint64_t *out, const char *text);

int series_store_hist_column(const PGresult *res, int row, int col,
                             struct hist *h);

/* Prometheus view of a loaded series (pointers into s). */
void series_store_prom(const struct cluster_series *s, struct prom_series *p);

#endif
