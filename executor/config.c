/*
 * config.c - parsing j4-executor's flags and environment variables.
 *
 * Defaults first, then J4_* variables, then flags (--name VALUE or
 * --name=VALUE), read by common/options.c. Each value is checked in
 * apply(), and a refusal names the flag or variable and the rule.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "duration.h"
#include "log.h"
#include "options.h"
#include "runtime.h"

#define CAPACITY_MAX 1000000u
#define HEARTBEAT_MAX_MS 60000

enum setting {
    S_NATS, S_ID, S_PLUGINS, S_CAPACITY, S_HEARTBEAT, S_LEVEL, S_METRICS,
    S_THREADS, S_STACK
};

static const struct option_spec settings[] = {
    [S_NATS] = {"nats", "J4_NATS_URL"},
    [S_ID] = {"id", "J4_EXECUTOR_ID"},
    [S_PLUGINS] = {"plugins", "J4_PLUGIN_DIR"},
    [S_CAPACITY] = {"capacity", "J4_CAPACITY"},
    [S_HEARTBEAT] = {"heartbeat", "J4_HEARTBEAT"},
    [S_LEVEL] = {"log-level", "J4_LOG_LEVEL"},
    [S_METRICS] = {"metrics-listen", "J4_METRICS_LISTEN"},
    [S_THREADS] = {"threads", "J4_THREADS"},
    [S_STACK] = {"stack-kib", "J4_STACK_KIB"},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static const char usage[] =
    "usage: j4-executor [--nats URL] [--id ID] [--plugins DIR]\n"
    "                   [--capacity N] [--threads N] [--stack-kib N]\n"
    "                   [--heartbeat DURATION]\n"
    "                   [--log-level error|warn|info|debug]\n"
    "                   [--metrics-listen HOST:PORT]\n";

int config_id_ok(const char *id)
{
    return options_id_ok(id, EXEC_ID_MAX);
}

static int copy_text(char *dst, size_t size, const char *value)
{
    if (strlen(value) >= size)
        return -1;
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

/* Applies one value (option_apply_fn). name is where it came from, for
 * the message. */
static int apply(void *arg, size_t index, const char *value,
                 const char *name, char *err, size_t err_size)
{
    struct exec_config *cfg = arg;
    enum setting s = (enum setting)index;
    char *end;
    unsigned long n;

    switch (s) {
    case S_NATS:
        if (!*value || copy_text(cfg->nats_url, sizeof(cfg->nats_url), value))
            goto bad;
        return J4_OK;
    case S_ID:
        if (!config_id_ok(value))
            goto bad;
        snprintf(cfg->id, sizeof(cfg->id), "%s", value);
        return J4_OK;
    case S_PLUGINS:
        if (!*value || copy_text(cfg->plugins, sizeof(cfg->plugins), value))
            goto bad;
        return J4_OK;
    case S_CAPACITY:
        errno = 0;
        n = strtoul(value, &end, 10);
        if (errno || end == value || *end || *value == '-' || n < 1 ||
            n > CAPACITY_MAX)
            goto bad;
        cfg->capacity = (uint32_t)n;
        return J4_OK;
    case S_THREADS:
        errno = 0;
        n = strtoul(value, &end, 10);
        if (errno || end == value || *end || *value == '-' || n > 64)
            goto bad;
        cfg->threads = (unsigned)n;
        return J4_OK;
    case S_STACK:
        errno = 0;
        n = strtoul(value, &end, 10);
        if (errno || end == value || *end || *value == '-' ||
            n < RUNTIME_STACK_KIB_MIN || n > RUNTIME_STACK_KIB_MAX)
            goto bad;
        cfg->stack_kib = (unsigned)n;
        return J4_OK;
    case S_HEARTBEAT:
        if (duration_parse(value, &cfg->heartbeat_ms) != J4_OK ||
            cfg->heartbeat_ms < 10 || cfg->heartbeat_ms > HEARTBEAT_MAX_MS)
            goto bad;
        return J4_OK;
    case S_LEVEL:
        if (log_level_parse(value, &cfg->log_level) != J4_OK)
            goto bad;
        return J4_OK;
    case S_METRICS:
        if (copy_text(cfg->metrics_listen, sizeof(cfg->metrics_listen),
                      value) ||
            (*value && !strrchr(value, ':')))
            goto bad;
        return J4_OK;
    }
bad:
    snprintf(err, err_size, "invalid %s '%.200s': %s", name, value,
             s == S_NATS        ? "expected a NATS URL"
             : s == S_ID        ? "expected 1-64 characters of [A-Za-z0-9_-]"
             : s == S_PLUGINS   ? "expected a directory"
             : s == S_CAPACITY  ? "expected an integer from 1 to 1000000"
             : s == S_THREADS   ? "expected 0 (one per CPU) to 64"
             : s == S_STACK     ? "expected KiB from 64 to 65536"
             : s == S_HEARTBEAT ? "expected a duration from 10ms to 1m"
             : s == S_METRICS   ? "expected HOST:PORT, or empty for off"
                                : "expected error, warn, info or debug");
    return -1;
}

int config_load(struct exec_config *cfg, int argc, char **argv, char *err,
                size_t err_size)
{
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->nats_url, sizeof(cfg->nats_url), "nats://127.0.0.1:4222");
    options_default_id(cfg->id, sizeof(cfg->id));
    snprintf(cfg->plugins, sizeof(cfg->plugins),
             "/usr/local/lib/j4/scenarios");
    cfg->capacity = 0; /* fitted to the descriptor limit at start */
    cfg->heartbeat_ms = 1000;
    cfg->log_level = J4_LOG_INFO;

    rc = options_parse(settings, N_SETTINGS, argc, argv, apply, cfg, err,
                       err_size);
    if (rc == J4_ERR_STOPPED) {
        fputs(usage, stdout);
        return 1;
    }
    if (rc != J4_OK && strstr(err, "unknown argument"))
        snprintf(err + strlen(err), err_size - strlen(err), "\n%s", usage);
    return rc;
}
