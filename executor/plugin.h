/*
 * plugin.h - the scenario plugins an executor offers.
 *
 * At start the executor loads every "*.so" of its plugin directory, checks
 * each descriptor (SDK major version, plain name, a step function) and
 * registers it by name. Scenarios then ask for a plugin by name only, so
 * nothing a request carries can make the executor load code from a path.
 * The set is built once and read-only afterwards: any thread may look up.
 */
#ifndef J4_EXECUTOR_PLUGIN_H
#define J4_EXECUTOR_PLUGIN_H

#include <stddef.h>

#include "j4.h"

struct plugin {
    char *file;   /* "http.so", for messages */
    void *handle; /* from dlopen */
    const j4_scenario_t *scenario;
};

struct plugin_set {
    char *dir;
    struct plugin *items;
    size_t count;
};

/* Loads every plugin in dir, logging each one loaded or refused. Returns
 * J4_OK, J4_ERR_NOTFOUND (logged) when dir cannot be opened, or
 * J4_ERR_NOMEM. Release with plugin_set_release() in every case. */
int plugin_set_load(struct plugin_set *set, const char *dir);

/* The scenario registered under name, or NULL. */
const j4_scenario_t *plugin_set_find(const struct plugin_set *set,
                                     const char *name);

/* Writes "http, grpc" (or "none") into buf. */
void plugin_set_names(const struct plugin_set *set, char *buf, size_t size);

/* Non-zero when name is [a-z0-9_]{1,64}. */
int plugin_name_ok(const char *name);

/* dlcloses every plugin: only once no worker runs their code. */
void plugin_set_release(struct plugin_set *set);

#endif
