/*
 * test_prom.c - merged histograms as the cluster sees them, and their
 * Prometheus exposition (common/prom.c).
 *
 * The merge case of the metrics issue: executor A records 900 samples of
 * 10 ms, executor B 100 of 100 ms and one of 596 ms. The cluster figures
 * come from the merge only: p50 10 ms, p95 100 ms within the histogram's
 * precision, max 596 ms, p99 never above max, and the exposition holds
 * exact counts per `le` and never the average of the per-executor p95s.
 * A single 120 s sample is kept: max 120 s, in +Inf and in the count.
 */
#include <stdlib.h>

#include "check.h"
#include "hist.h"
#include "prom.h"

static struct hist *hist_new(void)
{
    struct hist *h = malloc(sizeof(*h));

    hist_init(h);
    return h;
}

static double within(double value, double expect, double rel)
{
    return fabs(value - expect) <= expect * rel;
}

/* Renders one scenario with one request series holding h. */
static char *render_one(const struct hist *h, uint64_t ok)
{
    struct prom_series s = {.kind = PROM_REQUEST, .name = "GET",
                            .protocol = "http", .hist = h};
    struct prom_scenario sc = {.id = 7, .name = "merge", .state = "running",
                               .series = &s, .n_series = 1};
    struct prom_buf b;

    s.outcomes[J4_OUTCOME_OK] = ok;
    prom_buf_init(&b);
    prom_render(&b, &sc, 1);
    CHECK(!b.oom);
    return b.data;
}

static uint64_t bucket(const char *text, const char *le)
{
    char needle[128];
    const char *p;

    snprintf(needle, sizeof(needle), "j4_request_duration_seconds_bucket{"
             "scenario=\"7\",name=\"GET\",protocol=\"http\",le=\"%s\"} ", le);
    p = strstr(text, needle);
    return p ? strtoull(p + strlen(needle), NULL, 10) : UINT64_MAX;
}

static void test_merge(void)
{
    struct hist *a = hist_new(), *b = hist_new(), *cluster = hist_new();
    double p95_a, p95_b;
    char avg[32], *text;

    for (int i = 0; i < 900; i++)
        hist_record(a, 10000);
    for (int i = 0; i < 100; i++)
        hist_record(b, 100000);
    hist_record(b, 596000);
    p95_a = hist_quantile(a, 0.95) / 1000.0;
    p95_b = hist_quantile(b, 0.95) / 1000.0;
    hist_merge(cluster, a);
    hist_merge(cluster, b);

    CHECK_UINT_EQ(cluster->total, 1001);
    CHECK(within(hist_quantile(cluster, 0.50) / 1000.0, 10, 0.005));
    CHECK(within(hist_quantile(cluster, 0.95) / 1000.0, 100, 0.005));
    CHECK_UINT_EQ(cluster->max_us, 596000);
    CHECK(hist_quantile(cluster, 0.99) <= cluster->max_us);
    CHECK(hist_quantile(cluster, 0.50) <= hist_quantile(cluster, 0.90));
    CHECK(hist_quantile(cluster, 0.90) <= hist_quantile(cluster, 0.95));
    CHECK(hist_quantile(cluster, 0.95) <= hist_quantile(cluster, 0.99));
    /* the wrong answer: the mean of the per-executor p95 values */
    CHECK(!within(hist_quantile(cluster, 0.95) / 1000.0,
                  (p95_a + p95_b) / 2, 0.05));

    text = render_one(cluster, 1001);
    CHECK_UINT_EQ(bucket(text, "0.010048"), 900);   /* 10 ms samples */
    CHECK_UINT_EQ(bucket(text, "0.100352"), 1000);  /* and the 100 ms ones */
    CHECK_UINT_EQ(bucket(text, "0.250880"), UINT64_MAX); /* trimmed zeros */
    CHECK_UINT_EQ(bucket(text, "0.25088"), 1000);
    CHECK_UINT_EQ(bucket(text, "0.50176"), 1000);
    CHECK_UINT_EQ(bucket(text, "1.00352"), 1001);   /* the 596 ms one */
    CHECK_UINT_EQ(bucket(text, "+Inf"), 1001);
    snprintf(avg, sizeof(avg), "%.6f", (p95_a + p95_b) / 2 / 1000.0);
    CHECK(strstr(text, avg) == NULL);
    CHECK(strstr(text, "j4_request_duration_seconds_count{scenario=\"7\","
                       "name=\"GET\",protocol=\"http\"} 1001") != NULL);
    free(text);
    free(a);
    free(b);
    free(cluster);
}

static void test_long_response(void)
{
    struct hist *h = hist_new();
    char *text;

    hist_record(h, UINT64_C(120000000));
    CHECK(within((double)hist_quantile(h, 0.99), 120e6, 0.005));
    CHECK_UINT_EQ(h->max_us, 120000000);
    text = render_one(h, 1);
    CHECK_UINT_EQ(bucket(text, "60.030976"), 0);
    CHECK_UINT_EQ(bucket(text, "120.061952"), 1);
    CHECK_UINT_EQ(bucket(text, "+Inf"), 1);
    CHECK(strstr(text, "j4_request_duration_seconds_sum{scenario=\"7\","
                       "name=\"GET\",protocol=\"http\"} 120.000000") != NULL);
    CHECK(strstr(text, "_count{scenario=\"7\",name=\"GET\","
                       "protocol=\"http\"} 1\n") != NULL);
    free(text);
    free(h);
}

/* Every bound is a bucket boundary, so counts below it are exact. */
static void test_bounds(void)
{
    for (size_t i = 0; i < PROM_LE_COUNT; i++) {
        uint64_t le = prom_le_us(i);

        CHECK_UINT_EQ(hist_bucket_low(hist_index(le)), le);
        if (i)
            CHECK(le > prom_le_us(i - 1));
    }
}

static void test_escaping(void)
{
    struct prom_series s = {.kind = PROM_CHECK, .name = "say \"hi\"\\\n",
                            .protocol = "custom", .count = 3, .failed = 1};
    struct prom_scenario sc = {.id = 1, .series = &s, .n_series = 1};
    struct prom_buf b;

    prom_buf_init(&b);
    prom_render(&b, &sc, 1);
    CHECK(strstr(b.data, "check=\"say \\\"hi\\\"\\\\\\n\",result=\"passed\"} "
                         "3") != NULL);
    prom_buf_release(&b);
}

/* Tag keys and texts (prom_tag_key_ok, prom_tags_ok) and tags rendered
 * as extra labels on requests, checks and team metrics. */
static void test_tags(void)
{
    struct prom_series s[3] = {
        {.kind = PROM_REQUEST, .name = "login", .protocol = "http",
         .tags = "pool=b \"x\",region=eu"},
        {.kind = PROM_CHECK, .name = "ok", .protocol = "custom",
         .tags = "region=eu", .count = 2},
        {.kind = PROM_TEAM_COUNTER, .name = "carts", .protocol = "custom",
         .tags = "name=bad", .count = 5},
    };
    struct prom_scenario sc = {.id = 3, .series = s, .n_series = 3};
    struct prom_buf b;

    CHECK(prom_tag_key_ok("region") && prom_tag_key_ok("_a9"));
    CHECK(!prom_tag_key_ok("name") && !prom_tag_key_ok("le") &&
          !prom_tag_key_ok("9a") && !prom_tag_key_ok("a-b") &&
          !prom_tag_key_ok("__x") && !prom_tag_key_ok(""));
    CHECK(prom_tag_value_ok("eu west=1") && !prom_tag_value_ok("a,b") &&
          !prom_tag_value_ok(""));
    CHECK(prom_tags_ok("") && prom_tags_ok("a=1,b=2=3"));
    CHECK(!prom_tags_ok("b=1,a=2") && !prom_tags_ok("a=1,a=2") &&
          !prom_tags_ok("a=") && !prom_tags_ok("a") &&
          !prom_tags_ok("a=1,") && !prom_tags_ok("scenario=1"));
    s[0].outcomes[J4_OUTCOME_OK] = 4;
    prom_buf_init(&b);
    prom_render(&b, &sc, 1);
    CHECK(strstr(b.data, "j4_requests_total{scenario=\"3\",name=\"login\","
                         "protocol=\"http\",pool=\"b \\\"x\\\"\","
                         "region=\"eu\",outcome=\"ok\"} 4") != NULL);
    CHECK(strstr(b.data, "check=\"ok\",region=\"eu\",result=\"passed\"} 2")
          != NULL);
    CHECK(strstr(b.data, "j4_team_carts_total{scenario=\"3\"} 5") != NULL);
    prom_buf_release(&b);
}

int main(void)
{
    test_tags();
    test_merge();
    test_long_response();
    test_bounds();
    test_escaping();
    return check_done();
}
