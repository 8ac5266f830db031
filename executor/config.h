/*
 * config.h - j4-executor's settings, from flags and environment.
 *
 * Every flag has an environment variable and the flag wins (the table is
 * in docs/architecture.md, "Configuration").
 */
#ifndef J4_EXECUTOR_CONFIG_H
#define J4_EXECUTOR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "j4.h"

#define EXEC_ID_MAX 64

struct exec_config {
    char nats_url[1024];
    char id[EXEC_ID_MAX + 1];
    char plugins[1024];
    uint32_t capacity;
    unsigned threads; /* worker threads, 0: one per online CPU */
    unsigned stack_kib; /* per worker stack, 0: the runtime's default */
    int64_t heartbeat_ms;
    j4_log_level log_level;
    char metrics_listen[256];   /* HOST:PORT of /metrics; "" = off */
};

/* Fills cfg from the environment, then argv. Returns J4_OK; 1 when
 * --help was printed; J4_ERR_INVALID with a message in err otherwise. */
int config_load(struct exec_config *cfg, int argc, char **argv, char *err,
                size_t err_size);

/* Non-zero when id is 1-64 characters of [A-Za-z0-9_-]. */
int config_id_ok(const char *id);

#endif
