/*
 * options.c - reading flags and environment variables for J4's services.
 */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "j4.h"

static const char id_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

int options_id_ok(const char *id, size_t max)
{
    size_t n = strlen(id);

    return n >= 1 && n <= max && strspn(id, id_chars) == n;
}

void options_default_id(char *buf, size_t size)
{
    char host[256] = "host";

    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    host[40] = '\0';
    for (char *p = host; *p; p++) {
        if (!strchr(id_chars, *p))
            *p = '-';
    }
    snprintf(buf, size, "%s-%ld", host, (long)getpid());
}

/* The setting "--name" or "--name=value" names; NULL when none. */
static const struct option_spec *find_flag(const struct option_spec *specs,
                                           size_t n, const char *arg,
                                           const char **inline_value)
{
    const char *eq;
    size_t len;

    *inline_value = NULL;
    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    arg += 2;
    eq = strchr(arg, '=');
    len = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t i = 0; i < n; i++) {
        if (strlen(specs[i].flag) == len &&
            strncmp(specs[i].flag, arg, len) == 0) {
            *inline_value = eq ? eq + 1 : NULL;
            return &specs[i];
        }
    }
    return NULL;
}

static int read_env(const struct option_spec *specs, size_t n,
                    option_apply_fn apply, void *cfg, char *err,
                    size_t err_size)
{
    for (size_t i = 0; i < n; i++) {
        const char *value = getenv(specs[i].env);

        if (value && *value &&
            apply(cfg, i, value, specs[i].env, err, err_size) != 0)
            return J4_ERR_INVALID;
    }
    return J4_OK;
}

int options_parse(const struct option_spec *specs, size_t n, int argc,
                  char **argv, option_apply_fn apply, void *cfg, char *err,
                  size_t err_size)
{
    int rc = read_env(specs, n, apply, cfg, err, err_size);

    for (int i = 1; rc == J4_OK && i < argc; i++) {
        const struct option_spec *spec;
        const char *value;
        char from[48];

        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return J4_ERR_STOPPED;
        spec = find_flag(specs, n, argv[i], &value);
        if (!spec) {
            snprintf(err, err_size, "unknown argument '%.200s'", argv[i]);
            return J4_ERR_INVALID;
        }
        snprintf(from, sizeof(from), "--%s", spec->flag);
        if (!value && i + 1 >= argc) {
            snprintf(err, err_size, "'%s' needs a value", from);
            return J4_ERR_INVALID;
        }
        if (!value)
            value = argv[++i];
        if (apply(cfg, (size_t)(spec - specs), value, from, err,
                  err_size) != 0)
            rc = J4_ERR_INVALID;
    }
    return rc;
}
