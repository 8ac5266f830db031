/*
 * config.c - parsing j4-executor's flags and environment variables.
 *
 * Defaults first, then J4_* variables, then flags (--name VALUE or
 * --name=VALUE). Each value is checked where it is read, and a refusal
 * names the flag or variable and the rule.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "duration.h"
#include "log.h"

#define CAPACITY_MAX 1000000u
#define HEARTBEAT_MAX_MS 60000

enum setting {
    S_NATS, S_ID, S_PLUGINS, S_CAPACITY, S_HEARTBEAT, S_LEVEL, S_METRICS
};

static const struct {
    const char *flag;
    const char *env;
} settings[] = {
    [S_NATS] = {"nats", "J4_NATS_URL"},
    [S_ID] = {"id", "J4_EXECUTOR_ID"},
    [S_PLUGINS] = {"plugins", "J4_PLUGIN_DIR"},
    [S_CAPACITY] = {"capacity", "J4_CAPACITY"},
    [S_HEARTBEAT] = {"heartbeat", "J4_HEARTBEAT"},
    [S_LEVEL] = {"log-level", "J4_LOG_LEVEL"},
    [S_METRICS] = {"metrics-listen", "J4_METRICS_LISTEN"},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static const char usage[] =
    "usage: j4-executor [--nats URL] [--id ID] [--plugins DIR]\n"
    "                   [--capacity N] [--heartbeat DURATION]\n"
    "                   [--log-level error|warn|info|debug]\n"
    "                   [--metrics-listen HOST:PORT]\n";

int config_id_ok(const char *id)
{
    size_t n = strlen(id);

    if (n < 1 || n > EXEC_ID_MAX)
        return 0;
    return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789_-") == n;
}

/* "<hostname>-<pid>" with the host name's dots (and anything else that is
 * not an id character) replaced by '-'. */
static void default_id(char *id, size_t size)
{
    char host[256] = "executor";

    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "executor");
    host[sizeof(host) - 1] = '\0';
    host[40] = '\0';
    for (char *p = host; *p; p++) {
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789_-",
                    *p))
            *p = '-';
    }
    snprintf(id, size, "%s-%ld", host, (long)getpid());
}

static int copy_text(char *dst, size_t size, const char *value)
{
    if (strlen(value) >= size)
        return -1;
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

/* Applies one value. name is what the user wrote, for the message. */
static int apply(struct exec_config *cfg, enum setting s, const char *value,
                 const char *name, char *err, size_t err_size)
{
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
             : s == S_HEARTBEAT ? "expected a duration from 10ms to 1m"
             : s == S_METRICS   ? "expected HOST:PORT, or empty for off"
                                : "expected error, warn, info or debug");
    return J4_ERR_INVALID;
}

static int find_flag(const char *arg, size_t len)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (strlen(settings[i].flag) == len &&
            strncmp(settings[i].flag, arg, len) == 0)
            return (int)i;
    }
    return -1;
}

static int parse_args(struct exec_config *cfg, int argc, char **argv,
                      char *err, size_t err_size)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq, *value;
        char name[32];
        int s;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0)
            goto unknown;
        arg += 2;
        eq = strchr(arg, '=');
        s = find_flag(arg, eq ? (size_t)(eq - arg) : strlen(arg));
        if (s < 0)
            goto unknown;
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, err_size, "option '--%s' needs a value",
                     settings[s].flag);
            return J4_ERR_INVALID;
        }
        snprintf(name, sizeof(name), "--%s", settings[s].flag);
        if (apply(cfg, (enum setting)s, value, name, err, err_size))
            return J4_ERR_INVALID;
        continue;
    unknown:
        snprintf(err, err_size, "unknown option '%.200s'\n%s", argv[i], usage);
        return J4_ERR_INVALID;
    }
    return J4_OK;
}

int config_load(struct exec_config *cfg, int argc, char **argv, char *err,
                size_t err_size)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->nats_url, sizeof(cfg->nats_url), "nats://127.0.0.1:4222");
    default_id(cfg->id, sizeof(cfg->id));
    snprintf(cfg->plugins, sizeof(cfg->plugins),
             "/usr/local/lib/j4/scenarios");
    cfg->capacity = 0; /* fitted to the descriptor limit at start */
    cfg->heartbeat_ms = 1000;
    cfg->log_level = J4_LOG_INFO;

    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *value = getenv(settings[i].env);

        if (!value || !*value)
            continue;
        if (apply(cfg, (enum setting)i, value, settings[i].env, err, err_size))
            return J4_ERR_INVALID;
    }
    return parse_args(cfg, argc, argv, err, err_size);
}
