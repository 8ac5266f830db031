/*
 * test_duration.c - duration strings as common/duration.h defines them.
 *
 * Valid forms parse to the right number of milliseconds, every malformed or
 * out-of-range form is refused without touching the result, and
 * duration_format writes what duration_parse reads back.
 */
#include <stdint.h>

#include "check.h"
#include "duration.h"
#include "j4.h"

#define SENTINEL ((int64_t)-12345)

static void expect_ms(const char *text, int64_t want)
{
    int64_t ms = SENTINEL;
    int rc = duration_parse(text, &ms);

    if (!CHECK_INT_EQ(rc, J4_OK))
        fprintf(stderr, "    text: \"%s\"\n", text);
    else if (!CHECK_INT_EQ(ms, want))
        fprintf(stderr, "    text: \"%s\"\n", text);
}

static void expect_invalid(const char *text)
{
    int64_t ms = SENTINEL;
    int rc = duration_parse(text, &ms);

    if (!CHECK_INT_EQ(rc, J4_ERR_INVALID))
        fprintf(stderr, "    text: \"%s\" parsed as %lld\n", text,
                (long long)ms);
}

static void test_valid(void)
{
    expect_ms("250ms", 250);
    expect_ms("1ms", 1);
    expect_ms("10s", 10000);
    expect_ms("5m", 300000);
    expect_ms("1h", 3600000);
    expect_ms("0s", 0);
    expect_ms("1m30s", 90000);
    expect_ms("1h30m", 5400000);
    expect_ms("1s500ms", 1500);
    expect_ms("2h3m4s5ms", ((2 * 60 + 3) * 60 + 4) * 1000LL + 5);
    expect_ms("90s", 90000);
    expect_ms("1500ms", 1500);
    expect_ms("168h", 7LL * 24 * 3600 * 1000);
    /* Exactly the maximum is allowed, in any spelling. */
    expect_ms("720h", DURATION_MAX_MS);
    expect_ms("2592000000ms", DURATION_MAX_MS);
    expect_ms("2592000s", DURATION_MAX_MS);
    expect_ms("43200m", DURATION_MAX_MS);
}

static void test_invalid(void)
{
    static const char *const bad[] = {
        "",      "10",    "0",      "-1s",    "+1s",   "1.5s",  ".5s",
        "10 s",  " 10s",  "10s ",   "1s1m",   "30s1m", "1ms1s", "1s1s",
        "1m1m",  "s",     "ms",     "m30s",   "10x",   "10S",   "10sec",
        "1e3ms", "0x10s", "1s,5ms", "1m 30s", "10s\n", "\t10s",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_invalid(bad[i]);
}

static void test_too_big(void)
{
    /* One past the maximum, in each unit. */
    expect_invalid("721h");
    expect_invalid("2592000001ms");
    expect_invalid("2592001s");
    expect_invalid("43201m");
    expect_invalid("720h1ms");
    /* Numbers that overflow int64 once scaled, or outright. */
    expect_invalid("9223372036854775807ms");
    expect_invalid("9223372036854775808ms");
    expect_invalid("9223372036854775s");
    expect_invalid("2562047788015216h");
    expect_invalid("99999999999999999999999999s");
    expect_invalid("18446744073709551617h");
}

static void expect_format(int64_t ms, const char *want)
{
    char buf[32];

    memset(buf, 'x', sizeof(buf));
    CHECK_STR_EQ(duration_format(ms, buf, sizeof(buf)), want);
}

static void test_format(void)
{
    expect_format(0, "0s");
    expect_format(250, "250ms");
    expect_format(1000, "1s");
    expect_format(10000, "10s");
    expect_format(90000, "1m30s");
    expect_format(300000, "5m");
    expect_format(3600000, "1h");
    expect_format(5400000, "1h30m");
    expect_format(1500, "1s500ms");
}

/* format then parse gives the number back, for values on every scale. */
static void test_round_trip(void)
{
    uint64_t x = 88172645463325252ull;
    int64_t ms, back;
    char buf[32];
    int i;

    for (i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ms = (int64_t)(x % (uint64_t)(DURATION_MAX_MS + 1));
        if (i % 4 == 1)
            ms %= 100000;
        else if (i % 4 == 2)
            ms = ms / 1000 * 1000;
        else if (i % 4 == 3)
            ms = ms / 60000 * 60000;
        back = SENTINEL;
        duration_format(ms, buf, sizeof(buf));
        if (!CHECK_INT_EQ(duration_parse(buf, &back), J4_OK) ||
            !CHECK_INT_EQ(back, ms)) {
            fprintf(stderr, "    formatted as \"%s\"\n", buf);
            break;
        }
    }
    duration_format(DURATION_MAX_MS, buf, sizeof(buf));
    CHECK_INT_EQ(duration_parse(buf, &back), J4_OK);
    CHECK_INT_EQ(back, DURATION_MAX_MS);
}

int main(void)
{
    test_valid();
    test_invalid();
    test_too_big();
    test_format();
    test_round_trip();
    return check_done();
}
