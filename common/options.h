/*
 * options.h - the flags and environment variables of J4's services.
 *
 * Every setting has a flag and an environment variable; the flag wins.
 * Each service lists its settings and checks each value in its own apply
 * function; this file does the reading, in one order for all: defaults
 * (the caller's), then the environment, then "--flag value" or
 * "--flag=value" arguments.
 */
#ifndef J4_COMMON_OPTIONS_H
#define J4_COMMON_OPTIONS_H

#include <stddef.h>

struct option_spec {
    const char *flag;       /* without the dashes: "lease" */
    const char *env;        /* "J4_LEASE" */
};

/* Checks one value of setting index; from names its source ("--lease"
 * or "J4_LEASE") for the message. Returns 0, or -1 with err filled. */
typedef int (*option_apply_fn)(void *cfg, size_t index, const char *value,
                               const char *from, char *err,
                               size_t err_size);

/* Reads the environment (an empty variable counts as unset), then argv.
 * Returns J4_OK; J4_ERR_INVALID with err filled (an unknown flag, a flag
 * without its value, or apply's refusal); J4_ERR_STOPPED for --help or
 * -h, which the caller answers with its usage. */
int options_parse(const struct option_spec *specs, size_t n, int argc,
                  char **argv, option_apply_fn apply, void *cfg, char *err,
                  size_t err_size);

/* Non-zero for 1-max characters of [A-Za-z0-9_-]: ids are NATS subject
 * tokens, so no dot. */
int options_id_ok(const char *id, size_t max);

/* "<hostname>-<pid>", the host name cut to 40 characters and every
 * character that is not an id character replaced by '-'. */
void options_default_id(char *buf, size_t size);

#endif
