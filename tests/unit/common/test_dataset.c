/*
 * test_dataset.c - the data set parsers of common/dataset.c: CSV with a
 * header row (quotes, doubled quotes, CRLF, blank lines, a byte order
 * mark) and JSON lines, and the refusals that name the line at fault.
 */
#include <stdlib.h>

#include "check.h"
#include "dataset.h"
#include "j4.h"

static json_t *parse(const char *text, enum dataset_format format, int *rc,
                     char *err, size_t size)
{
    json_t *items = NULL;

    *rc = dataset_parse(text, strlen(text), format, &items, err, size);
    return items;
}

static const char *field(json_t *items, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(items, i), key));
}

static void test_csv(void)
{
    char err[256];
    int rc;
    json_t *items = parse("\xef\xbb\xbfuser,note\r\nu1,\"a, \"\"b\"\"\"\r\n"
                          "\r\nu2,\"two\nlines\"\n", DATASET_CSV, &rc, err,
                          sizeof(err));

    CHECK_INT_EQ(rc, J4_OK);
    CHECK_INT_EQ(json_array_size(items), 2);
    CHECK_STR_EQ(field(items, 0, "user"), "u1");
    CHECK_STR_EQ(field(items, 0, "note"), "a, \"b\"");
    CHECK_STR_EQ(field(items, 1, "note"), "two\nlines");
    json_decref(items);
}

static void test_csv_refused(void)
{
    char err[256];
    int rc;

    CHECK(parse("a,b\n1,2\n3\n", DATASET_CSV, &rc, err, sizeof(err)) ==
          NULL);
    CHECK_INT_EQ(rc, J4_ERR_INVALID);
    CHECK(strstr(err, "line 3") != NULL);
    CHECK(parse("a,a\n1,2\n", DATASET_CSV, &rc, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "twice") != NULL);
    CHECK(parse("a\n\"x\n", DATASET_CSV, &rc, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "unterminated") != NULL);
    CHECK(parse("a,b\n", DATASET_CSV, &rc, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "no items") != NULL);
}

static void test_jsonl(void)
{
    char err[256];
    int rc;
    json_t *items = parse("{\"user\": \"u1\", \"n\": 1}\n\n{\"user\": "
                          "\"u2\"}\r\n", DATASET_JSONL, &rc, err,
                          sizeof(err));

    CHECK_INT_EQ(rc, J4_OK);
    CHECK_INT_EQ(json_array_size(items), 2);
    CHECK_STR_EQ(field(items, 1, "user"), "u2");
    json_decref(items);
    CHECK(parse("{\"a\": 1}\n[1]\n", DATASET_JSONL, &rc, err,
                sizeof(err)) == NULL);
    CHECK(strstr(err, "line 2") != NULL);
}

static void test_names(void)
{
    CHECK(dataset_name_ok("accounts-eu_1"));
    CHECK(!dataset_name_ok(""));
    CHECK(!dataset_name_ok("Accounts"));
    CHECK(!dataset_name_ok("../x"));
    CHECK(!dataset_name_ok(NULL));
}

int main(void)
{
    test_csv();
    test_csv_refused();
    test_jsonl();
    test_names();
    return check_done();
}
