/*
 * config.c - flags and environment variables of j4-distributor.
 *
 * Defaults are filled in first, then the environment overrides them, then
 * the flags (read by common/options.c: "--flag value" or "--flag=value").
 * Nothing here connects to anything: values are only checked for form.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "duration.h"
#include "log.h"
#include "options.h"

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

static const struct option_spec option_names[OPT_COUNT_] = {
    [OPT_LISTEN] = {"listen", "J4_LISTEN"},
    [OPT_NATS] = {"nats", "J4_NATS_URL"},
    [OPT_PG] = {"pg", "J4_PG"},
    [OPT_TOKEN] = {"token", "J4_API_TOKEN"},
    [OPT_ID] = {"id", "J4_DISTRIBUTOR_ID"},
    [OPT_LEASE] = {"lease", "J4_LEASE"},
    [OPT_LOG_LEVEL] = {"log-level", "J4_LOG_LEVEL"},
    [OPT_MIGRATIONS] = {"migrations", "J4_MIGRATIONS"},
    [OPT_DATASETS] = {"datasets", "J4_DATASETS_DIR"},
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

int config_id_valid(const char *text)
{
    return options_id_ok(text, DIST_ID_MAX);
}

/* Applies one value (option_apply_fn); from names its source. */
static int set_value(void *arg, size_t index, const char *value,
                     const char *from, char *err, size_t err_size)
{
    struct config *cfg = arg;
    int64_t ms;

    switch ((enum option_key)index) {
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
            snprintf(err, err_size, "invalid id '%.100s' from %s: use "
                     "1-64 of [A-Za-z0-9_-]", value, from);
            return -1;
        }
        snprintf(cfg->id, sizeof(cfg->id), "%s", value);
        break;
    case OPT_LEASE:
        if (duration_parse(value, &ms) != J4_OK || ms < 200 ||
            ms > 600000) {
            snprintf(err, err_size, "invalid lease '%.100s' from %s: "
                     "use a duration from 200ms to 10m, such as 4s",
                     value, from);
            return -1;
        }
        cfg->lease_ms = (uint32_t)ms;
        break;
    case OPT_LOG_LEVEL:
        if (log_level_parse(value, &cfg->log_level) != J4_OK) {
            snprintf(err, err_size, "invalid log level '%.100s' from %s: "
                     "use error, warn, info or debug", value, from);
            return -1;
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
        return -1;
    }
    return 0;
}

static int set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = strdup("127.0.0.1:8080");
    cfg->nats_url = strdup("nats://127.0.0.1:4222");
    cfg->pg_conninfo = strdup("dbname=j4");
    cfg->lease_ms = 4000;
    cfg->log_level = J4_LOG_INFO;
    options_default_id(cfg->id, sizeof(cfg->id));
    if (!cfg->listen || !cfg->nats_url || !cfg->pg_conninfo)
        return J4_ERR_NOMEM;
    return J4_OK;
}

int config_parse(struct config *cfg, int argc, char **argv)
{
    char err[320];
    int rc = set_defaults(cfg);

    if (rc != J4_OK)
        return rc;
    rc = options_parse(option_names, OPT_COUNT_, argc, argv, set_value, cfg,
                       err, sizeof(err));
    if (rc == J4_ERR_STOPPED) {
        usage(stdout);
        return rc;
    }
    if (rc != J4_OK) {
        fprintf(stderr, "j4-distributor: %s\n", err);
        if (strstr(err, "unknown argument"))
            usage(stderr);
        return rc;
    }
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
