/*
 * dataset.c - parsing the data sets of user pools (see dataset.h).
 *
 * CSV follows RFC 4180: fields separated by commas, records by LF or
 * CRLF, a field in double quotes may hold commas, line breaks and doubled
 * quotes. The header row names the keys and every value is a string.
 * JSON lines: one object per non-blank line. Either way the whole list is
 * built before the caller sees it, so a bad file is refused whole.
 */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "j4.h"

/* -------------------------------------------------------------- names */

int dataset_name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;

    if (len == 0 || len > DATASET_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- CSV */

struct csv_reader {
    const char *p, *end;
    int line;               /* of the record being read, from 1 */
};

/* Reads one field into a new JSON string; *last is set at end of record.
 * Returns NULL with err filled on a malformed field. */
static json_t *csv_field(struct csv_reader *r, int *last, char *err,
                         size_t err_size)
{
    char *buf = malloc((size_t)(r->end - r->p) + 1);
    size_t n = 0;
    json_t *value;

    if (!buf)
        return NULL;
    if (r->p < r->end && *r->p == '"') {
        for (r->p++;; r->p++) {
            if (r->p >= r->end) {
                snprintf(err, err_size, "line %d: unterminated quoted field",
                         r->line);
                free(buf);
                return NULL;
            }
            if (*r->p == '"' && r->p + 1 < r->end && r->p[1] == '"') {
                buf[n++] = '"';
                r->p++;
            } else if (*r->p == '"') {
                r->p++;
                break;
            } else {
                buf[n++] = *r->p;
            }
        }
    } else {
        while (r->p < r->end && *r->p != ',' && *r->p != '\n' &&
               *r->p != '\r')
            buf[n++] = *r->p++;
    }
    if (r->p < r->end && *r->p == '\r')
        r->p++;
    *last = r->p >= r->end || *r->p == '\n';
    if (r->p < r->end && *r->p != ',' && *r->p != '\n') {
        snprintf(err, err_size, "line %d: text after a closing quote",
                 r->line);
        free(buf);
        return NULL;
    }
    if (r->p < r->end)
        r->p++;
    value = json_stringn(buf, n);
    free(buf);
    if (!value)
        snprintf(err, err_size, "line %d: not valid UTF-8 (or a NUL byte)",
                 r->line);
    return value;
}

/* Reads one record into a new array. Returns NULL at the end (err empty)
 * or on an error (err set). Blank lines are skipped. */
static json_t *csv_record(struct csv_reader *r, char *err, size_t err_size)
{
    json_t *fields;
    int last = 0;

    while (r->p < r->end && (*r->p == '\n' || *r->p == '\r')) {
        r->line += *r->p == '\n';
        r->p++;
    }
    if (r->p >= r->end)
        return NULL;
    fields = json_array();
    while (!last) {
        json_t *f = csv_field(r, &last, err, err_size);
        if (!f || json_array_size(fields) >= DATASET_COLUMNS_MAX) {
            if (f)
                snprintf(err, err_size, "line %d: more than %d columns",
                         r->line, DATASET_COLUMNS_MAX);
            json_decref(f);
            json_decref(fields);
            return NULL;
        }
        json_array_append_new(fields, f);
    }
    r->line++;
    return fields;
}

/* Checks the header: non-empty, unique column names. */
static int csv_header_ok(const json_t *header, char *err, size_t err_size)
{
    for (size_t i = 0; i < json_array_size(header); i++) {
        const char *name = json_string_value(json_array_get(header, i));

        if (!name[0]) {
            snprintf(err, err_size, "line 1: column %zu has no name",
                     i + 1);
            return 0;
        }
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(name, json_string_value(json_array_get(header, j)))) {
                snprintf(err, err_size, "line 1: column '%.64s' appears "
                         "twice", name);
                return 0;
            }
        }
    }
    return 1;
}

static json_t *csv_object(const json_t *header, const json_t *fields)
{
    json_t *obj = json_object();

    for (size_t i = 0; i < json_array_size(header); i++)
        json_object_set(obj, json_string_value(json_array_get(header, i)),
                        json_array_get(fields, i));
    return obj;
}

static int parse_csv(struct csv_reader *r, json_t *items, char *err,
                     size_t err_size)
{
    json_t *header = csv_record(r, err, err_size);
    json_t *fields;
    int line;

    if (!header) {
        if (!err[0])
            snprintf(err, err_size, "no header row");
        return J4_ERR_INVALID;
    }
    if (!csv_header_ok(header, err, err_size)) {
        json_decref(header);
        return J4_ERR_INVALID;
    }
    for (line = r->line; (fields = csv_record(r, err, err_size)) != NULL;
         line = r->line) {
        if (json_array_size(fields) != json_array_size(header)) {
            snprintf(err, err_size, "line %d has %zu fields, the header "
                     "has %zu", line, json_array_size(fields),
                     json_array_size(header));
            json_decref(fields);
            break;
        }
        json_array_append_new(items, csv_object(header, fields));
        json_decref(fields);
        if (json_array_size(items) > DATASET_ITEMS_MAX)
            break;
    }
    json_decref(header);
    return err[0] ? J4_ERR_INVALID : J4_OK;
}

/* --------------------------------------------------------- JSON lines */

static int parse_jsonl(const char *text, size_t len, json_t *items,
                       char *err, size_t err_size)
{
    const char *p = text, *end = text + len;

    for (int line = 1; p < end && json_array_size(items) <=
                                      DATASET_ITEMS_MAX; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        json_error_t jerr;
        json_t *obj;
        size_t n = (size_t)(stop - p);

        while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' ||
                         p[n - 1] == '\t'))
            n--;
        if (n > 0) {
            obj = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
            if (!json_is_object(obj)) {
                snprintf(err, err_size, "line %d: %s", line,
                         obj ? "not a JSON object" : jerr.text);
                json_decref(obj);
                return J4_ERR_INVALID;
            }
            json_array_append_new(items, obj);
        }
        p = stop + (nl != NULL);
    }
    return J4_OK;
}

/* Each item must fit DATASET_ITEM_MAX once serialized. */
static int items_size_ok(const json_t *items, char *err, size_t err_size)
{
    for (size_t i = 0; i < json_array_size(items); i++) {
        char *text = json_dumps(json_array_get(items, i), JSON_COMPACT);
        size_t n = text ? strlen(text) : 0;

        free(text);
        if (n > DATASET_ITEM_MAX) {
            snprintf(err, err_size, "item %zu is %zu bytes as JSON, over "
                     "the %d byte limit", i + 1, n, DATASET_ITEM_MAX);
            return 0;
        }
    }
    return 1;
}

int dataset_parse(const char *text, size_t len, enum dataset_format format,
                  json_t **items, char *err, size_t err_size)
{
    struct csv_reader r = {text, text + len, 1};
    int rc;

    err[0] = '\0';
    *items = json_array();
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        r.p += 3;           /* a byte order mark is not a column name */
    if (format == DATASET_CSV)
        rc = parse_csv(&r, *items, err, err_size);
    else
        rc = parse_jsonl(r.p, (size_t)(r.end - r.p), *items, err, err_size);
    if (rc == J4_OK && json_array_size(*items) > DATASET_ITEMS_MAX) {
        snprintf(err, err_size, "more than %d items", DATASET_ITEMS_MAX);
        rc = J4_ERR_TOOBIG;
    } else if (rc == J4_OK && json_array_size(*items) == 0) {
        snprintf(err, err_size, "no items");
        rc = J4_ERR_INVALID;
    } else if (rc == J4_OK && !items_size_ok(*items, err, err_size)) {
        rc = J4_ERR_TOOBIG;
    }
    if (rc != J4_OK) {
        json_decref(*items);
        *items = NULL;
    }
    return rc;
}

