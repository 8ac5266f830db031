/*
 * config.h - j4-distributor's settings, from flags and environment.
 *
 * Every setting has a flag and an environment variable; the flag wins
 * (docs/architecture.md, "Configuration"). The parsed values are owned by
 * struct config and stay valid until config_release().
 */
#ifndef J4_DIST_CONFIG_H
#define J4_DIST_CONFIG_H

#include <stdint.h>

#include "j4.h"

#define DIST_ID_MAX 64

struct config {
    char *listen;               /* "HOST:PORT" */
    char *nats_url;
    char *pg_conninfo;
    char *token;                /* NULL: no authentication */
    char id[DIST_ID_MAX + 1];
    uint32_t lease_ms;
    j4_log_level log_level;
    char *migrations_dir;       /* NULL: the built-in default */
    char *datasets_dir;         /* NULL: none; data sets loaded at start */
};

/* Parses argv and the environment into *cfg. Returns J4_OK, or
 * J4_ERR_INVALID after printing what is wrong to stderr, or J4_ERR_STOPPED
 * when --help was printed. Release *cfg with config_release() either way. */
int config_parse(struct config *cfg, int argc, char **argv);

void config_release(struct config *cfg);

/* Non-zero when text is a valid process id: 1-64 of [A-Za-z0-9_-]. */
int config_id_valid(const char *text);

#endif
