/*
 * config.c - flags and environment variables of j4-distributor.
 *
 * Defaults are filled in first, then the environment overrides them, then
 * the flags. Both "--flag value" and "--flag=value" are accepted. Nothing
 * here connects to anything: values are only checked for form.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "duration.h"
#include "log.h"

enum option_key {
    OPT_LISTEN,
    OPT_NATS,
    OPT_PG,
    OPT_TOKEN,
    OPT_ID,
    OPT_LEASE,
    OPT_LOG_LEVEL,
    OPT_MIGRATIONS,
    OPT_DATASETS,
    OPT_COUNT_
};

static const struct option_name {
    const char *flag;
    const char *env;
} option_names[OPT_COUNT_] = {
    [OPT_LISTEN] = {"--listen", "J4_LISTEN"},
    [OPT_NATS] = {"--nats", "J4_NATS_URL"},
    [OPT_PG] = {"--pg", "J4_PG"},
    [OPT_TOKEN] = {"--token", "J4_API_TOKEN"},
    [OPT_ID] = {"--id", "J4_DISTRIBUTOR_ID"},
    [OPT_LEASE] = {"--lease", "J4_LEASE"},
    [OPT_LOG_LEVEL] = {"--log-level", "J4_LOG_LEVEL"},
    [OPT_MIGRATIONS] = {"--migrations", "J4_MIGRATIONS"},
    [OPT_DATASETS] = {"--datasets", "J4_DATASETS_DIR"},
};

static void usage(FILE *out)
{
    fputs("usage: j4-distributor [--listen HOST:PORT] [--nats URL] "
          "[--pg CONNINFO]\n"
          "                      [--token TOKEN] [--id ID] "
          "[--lease DURATION]\n"
          "                      [--log-level LEVEL] "
          "[--migrations DIR] [--datasets DIR]\n"
          "Each flag has an environment variable (J4_LISTEN, "
          "J4_NATS_URL, J4_PG,\n"
          "J4_API_TOKEN, J4_DISTRIBUTOR_ID, J4_LEASE, J4_LOG_LEVEL, "
          "J4_MIGRATIONS,\nJ4_DATASETS_DIR); the flag wins.\n", out);
}

static int id_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int config_id_valid(const char *text)
{
    size_t len = strlen(text);

    if (len == 0 || len > DIST_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!id_char_ok(text[i]))
            return 0;
    }
    return 1;
}

/* "<hostname>-<pid>" with every character outside [A-Za-z0-9_-]
 * replaced by '-', cut to DIST_ID_MAX. */
static void default_id(char *buf, size_t size)
{
    char host[256] = "host";

    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p; p++) {
        if (!id_char_ok(*p))
            *p = '-';
    }
    snprintf(buf, size, "%.*s-%ld", 40, host, (long)getpid());
}

static int set_value(struct config *cfg, enum option_key key,
                     const char *value, const char *from)
{
    int64_t ms;

    switch (key) {
    case OPT_LISTEN:
        free(cfg->listen);
        cfg->listen = strdup(value);
        break;
    case OPT_NATS:
        free(cfg->nats_url);
        cfg->nats_url = strdup(value);
        break;
    case OPT_PG:
        free(cfg->pg_conninfo);
        cfg->pg_conninfo = strdup(value);
        break;
    case OPT_TOKEN:
        free(cfg->token);
        cfg->token = value[0] ? strdup(value) : NULL;
        break;
    case OPT_ID:
        if (!config_id_valid(value)) {
            fprintf(stderr, "j4-distributor: invalid id '%s' from %s: use "
                    "1-64 of [A-Za-z0-9_-]\n", value, from);
            return J4_ERR_INVALID;
        }
        snprintf(cfg->id, sizeof(cfg->id), "%s", value);
        break;
    case OPT_LEASE:
        if (duration_parse(value, &ms) != J4_OK || ms < 200 ||
            ms > 600000) {
            fprintf(stderr, "j4-distributor: invalid lease '%s' from %s: "
                    "use a duration from 200ms to 10m, such as 4s\n",
                    value, from);
            return J4_ERR_INVALID;
        }
        cfg->lease_ms = (uint32_t)ms;
        break;
    case OPT_LOG_LEVEL:
        if (log_level_parse(value, &cfg->log_level) != J4_OK) {
            fprintf(stderr, "j4-distributor: invalid log level '%s' from "
                    "%s: use error, warn, info or debug\n", value, from);
            return J4_ERR_INVALID;
        }
        break;
    case OPT_MIGRATIONS:
        free(cfg->migrations_dir);
        cfg->migrations_dir = strdup(value);
        break;
    case OPT_DATASETS:
        free(cfg->datasets_dir);
        cfg->datasets_dir = value[0] ? strdup(value) : NULL;
        break;
    case OPT_COUNT_:
        return J4_ERR_INVALID;
    }
    return J4_OK;
}

static int set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = strdup("127.0.0.1:8080");
    cfg->nats_url = strdup("nats://127.0.0.1:4222");
    cfg->pg_conninfo = strdup("dbname=j4");
    cfg->lease_ms = 4000;
    cfg->log_level = J4_LOG_INFO;
    default_id(cfg->id, sizeof(cfg->id));
    if (!cfg->listen || !cfg->nats_url || !cfg->pg_conninfo)
        return J4_ERR_NOMEM;
    return J4_OK;
}

static int read_env(struct config *cfg)
{
    for (int k = 0; k < OPT_COUNT_; k++) {
        const char *value = getenv(option_names[k].env);
        if (value && set_value(cfg, (enum option_key)k, value,
                               option_names[k].env) != J4_OK)
            return J4_ERR_INVALID;
    }
    return J4_OK;
}

/* Finds the option named by arg ("--lease" or "--lease=4s"); sets *inline
 * to the text after '=' when present. Returns OPT_COUNT_ when unknown. */
static enum option_key find_flag(const char *arg, const char **inline_value)
{
    *inline_value = NULL;
    for (int k = 0; k < OPT_COUNT_; k++) {
        size_t n = strlen(option_names[k].flag);
        if (strncmp(arg, option_names[k].flag, n) != 0)
            continue;
        if (arg[n] == '\0')
            return (enum option_key)k;
        if (arg[n] == '=') {
            *inline_value = arg + n + 1;
            return (enum option_key)k;
        }
    }
    return OPT_COUNT_;
}

static int read_flags(struct config *cfg, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *value;
        enum option_key key;

        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return J4_ERR_STOPPED;
        }
        key = find_flag(argv[i], &value);
        if (key == OPT_COUNT_) {
            fprintf(stderr, "j4-distributor: unknown argument '%s'\n",
                    argv[i]);
            usage(stderr);
            return J4_ERR_INVALID;
        }
        if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "j4-distributor: '%s' needs a value\n",
                        argv[i]);
                return J4_ERR_INVALID;
            }
            value = argv[++i];
        }
        if (set_value(cfg, key, value, option_names[key].flag) != J4_OK)
            return J4_ERR_INVALID;
    }
    return J4_OK;
}

int config_parse(struct config *cfg, int argc, char **argv)
{
    int rc = set_defaults(cfg);

    if (rc != J4_OK)
        return rc;
    rc = read_env(cfg);
    if (rc != J4_OK)
        return rc;
    rc = read_flags(cfg, argc, argv);
    if (rc != J4_OK)
        return rc;
    if (!cfg->listen || !cfg->nats_url || !cfg->pg_conninfo)
        return J4_ERR_NOMEM;
    return J4_OK;
}

void config_release(struct config *cfg)
{
    free(cfg->listen);
    free(cfg->nats_url);
    free(cfg->pg_conninfo);
    free(cfg->token);
    free(cfg->migrations_dir);
    free(cfg->datasets_dir);
    memset(cfg, 0, sizeof(*cfg));
}
