/*
 * test_options.c - the flag and environment reader shared by the services.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "j4.h"
#include "options.h"

static const struct option_spec specs[] = {
    {"lease", "J4_TEST_LEASE"},
    {"id", "J4_TEST_ID"},
};

struct seen {
    char lease[64], id[64], lease_from[32];
    int calls;
};

static int apply(void *arg, size_t index, const char *value,
                 const char *from, char *err, size_t err_size)
{
    struct seen *s = arg;

    s->calls++;
    if (strcmp(value, "bad") == 0) {
        snprintf(err, err_size, "refused '%s' from %s", value, from);
        return -1;
    }
    if (index == 0) {
        snprintf(s->lease, sizeof(s->lease), "%s", value);
        snprintf(s->lease_from, sizeof(s->lease_from), "%s", from);
    } else {
        snprintf(s->id, sizeof(s->id), "%s", value);
    }
    return 0;
}

static int parse(struct seen *s, char **argv, char *err)
{
    int argc = 0;

    memset(s, 0, sizeof(*s));
    while (argv[argc])
        argc++;
    return options_parse(specs, 2, argc, argv, apply, s, err, 256);
}

static void test_order(void)
{
    char *argv[] = {"prog", "--lease", "4s", NULL};
    struct seen s;
    char err[256] = "";

    setenv("J4_TEST_LEASE", "9s", 1);
    setenv("J4_TEST_ID", "from-env", 1);
    CHECK_INT_EQ(parse(&s, argv, err), J4_OK);
    CHECK_STR_EQ(s.lease, "4s");            /* the flag wins */
    CHECK_STR_EQ(s.lease_from, "--lease");
    CHECK_STR_EQ(s.id, "from-env");
    setenv("J4_TEST_ID", "", 1);            /* empty counts as unset */
    CHECK_INT_EQ(parse(&s, argv, err), J4_OK);
    CHECK_STR_EQ(s.id, "");
    unsetenv("J4_TEST_LEASE");
    unsetenv("J4_TEST_ID");
}

static void test_forms(void)
{
    char *inline_form[] = {"prog", "--id=e-1", NULL};
    char *missing[] = {"prog", "--id", NULL};
    char *unknown[] = {"prog", "--idx", "1", NULL};
    char *bare[] = {"prog", "id", NULL};
    char *help[] = {"prog", "-h", NULL};
    char *refused[] = {"prog", "--lease", "bad", NULL};
    struct seen s;
    char err[256];

    CHECK_INT_EQ(parse(&s, inline_form, err), J4_OK);
    CHECK_STR_EQ(s.id, "e-1");
    CHECK_INT_EQ(parse(&s, missing, err), J4_ERR_INVALID);
    CHECK(strstr(err, "'--id' needs a value") != NULL);
    CHECK_INT_EQ(parse(&s, unknown, err), J4_ERR_INVALID);
    CHECK(strstr(err, "unknown argument '--idx'") != NULL);
    CHECK_INT_EQ(parse(&s, bare, err), J4_ERR_INVALID);
    CHECK_INT_EQ(parse(&s, help, err), J4_ERR_STOPPED);
    CHECK_INT_EQ(parse(&s, refused, err), J4_ERR_INVALID);
    CHECK(strstr(err, "refused 'bad' from --lease") != NULL);
}

static void test_ids(void)
{
    char id[128];

    CHECK(options_id_ok("e-1_X", 64));
    CHECK(!options_id_ok("", 64));
    CHECK(!options_id_ok("a.b", 64));       /* a NATS subject token */
    CHECK(!options_id_ok("abcd", 3));
    options_default_id(id, sizeof(id));
    CHECK(options_id_ok(id, 64));
}

int main(void)
{
    test_order();
    test_forms();
    test_ids();
    return check_done();
}
