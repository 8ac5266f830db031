/*
 * check.h - the few assertions J4's unit tests share.
 *
 * Each CHECK prints "file:line: check failed: <expression>" and, for the
 * comparisons, both values, then counts the failure and carries on so one
 * run shows every broken case. Each macro is an expression that is 1 when
 * the check passed, so a loop over many cases can stop at its first
 * failure. A test's main ends with "return check_done();", which prints a
 * summary and returns 1 when anything failed, so CTest sees the failure.
 */
#ifndef J4_TESTS_CHECK_H
#define J4_TESTS_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_passes;

static inline int check_report(int ok, const char *file, int line,
                               const char *expr)
{
    if (ok) {
        check_passes++;
        return 1;
    }
    check_failures++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
    return 0;
}

static inline int check_int(intmax_t a, intmax_t b, int eq, const char *file,
                            int line, const char *expr)
{
    int ok = eq ? a == b : a != b;

    if (!check_report(ok, file, line, expr))
        fprintf(stderr, "    left:  %jd\n    right: %jd\n", a, b);
    return ok;
}

static inline int check_uint(uintmax_t a, uintmax_t b, int op,
                             const char *file, int line, const char *expr)
{
    /* op: 0 ==, 1 <=, 2 < */
    int ok = op == 0 ? a == b : op == 1 ? a <= b : a < b;

    if (!check_report(ok, file, line, expr))
        fprintf(stderr, "    left:  %ju\n    right: %ju\n", a, b);
    return ok;
}

static inline int check_str(const char *a, const char *b, const char *file,
                            int line, const char *expr)
{
    int ok = a && b && strcmp(a, b) == 0;

    if (!check_report(ok, file, line, expr))
        fprintf(stderr, "    left:  \"%s\"\n    right: \"%s\"\n",
                a ? a : "(null)", b ? b : "(null)");
    return ok;
}

static inline int check_near(double a, double b, double tol, const char *file,
                             int line, const char *expr)
{
    int ok = fabs(a - b) <= tol;

    if (!check_report(ok, file, line, expr))
        fprintf(stderr, "    left:  %.9g\n    right: %.9g\n    tol:   %g\n", a,
                b, tol);
    return ok;
}

/* Prints a summary; the return value is the test's exit status. */
static inline int check_done(void)
{
    fprintf(stderr, "%d checks passed, %d failed\n", check_passes,
            check_failures);
    return check_failures ? 1 : 0;
}

#define CHECK(e) check_report((e) != 0, __FILE__, __LINE__, #e)
#define CHECK_INT_EQ(a, b)                                                    \
    check_int((intmax_t)(a), (intmax_t)(b), 1, __FILE__, __LINE__,            \
              #a " == " #b)
#define CHECK_INT_NE(a, b)                                                    \
    check_int((intmax_t)(a), (intmax_t)(b), 0, __FILE__, __LINE__,            \
              #a " != " #b)
#define CHECK_UINT_EQ(a, b)                                                   \
    check_uint((uintmax_t)(a), (uintmax_t)(b), 0, __FILE__, __LINE__,         \
               #a " == " #b)
#define CHECK_UINT_LE(a, b)                                                   \
    check_uint((uintmax_t)(a), (uintmax_t)(b), 1, __FILE__, __LINE__,         \
               #a " <= " #b)
#define CHECK_UINT_LT(a, b)                                                   \
    check_uint((uintmax_t)(a), (uintmax_t)(b), 2, __FILE__, __LINE__,         \
               #a " < " #b)
#define CHECK_STR_EQ(a, b)                                                    \
    check_str((a), (b), __FILE__, __LINE__, #a " == " #b)
#define CHECK_NEAR(a, b, tol)                                                 \
    check_near((a), (b), (tol), __FILE__, __LINE__,                           \
               "|" #a " - " #b "| <= " #tol)

#endif
