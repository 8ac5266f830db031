/*
 * plugin.c - loading scenario plugins from the plugin directory.
 *
 * Each "*.so" is opened with RTLD_NOW (a missing SDK symbol fails the load
 * now, not in the middle of a run) and RTLD_LOCAL (plugins cannot see or
 * clobber each other's symbols). The SDK functions they call live in the
 * executor binary, which exports them. Files are loaded in name order so
 * that a duplicate name is always refused on the same file.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugin.h"

int plugin_name_ok(const char *name)
{
    size_t n = 0;

    if (!name)
        return 0;
    for (; name[n]; n++) {
        char c = name[n];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n >= 1 && n <= 64;
}

static int has_so_suffix(const char *name)
{
    size_t n = strlen(name);

    return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks a descriptor; logs and returns non-zero when it is refused. */
static int check_descriptor(const struct plugin_set *set, const char *file,
                            const j4_scenario_t *sc)
{
    unsigned major = sc->abi_version >> 16;

    if (major != J4_VERSION_MAJOR) {
        log_error("plugin '%s' was built for SDK %u.x, this executor runs "
                  "%d.x: refused",
                  file, major, J4_VERSION_MAJOR);
        return -1;
    }
    /* A newer minor may use SDK calls or descriptor fields this executor
     * does not have; an older one only misses what came after it. */
    if ((sc->abi_version & 0xffff) > J4_VERSION_MINOR) {
        log_error("plugin '%s' was built for SDK %u.%u, newer than this "
                  "executor's %d.%d: refused (upgrade the executor)",
                  file, major, sc->abi_version & 0xffff, J4_VERSION_MAJOR,
                  J4_VERSION_MINOR);
        return -1;
    }
    if (!plugin_name_ok(sc->name)) {
        log_error("plugin '%s' refused: its name is not [a-z0-9_]{1,64}",
                  file);
        return -1;
    }
    if (!sc->step) {
        log_error("plugin '%s' refused: it has no step function", file);
        return -1;
    }
    if (plugin_set_find(set, sc->name)) {
        log_error("plugin '%s' refused: scenario '%s' is already loaded", file,
                  sc->name);
        return -1;
    }
    return 0;
}

/* Opens one file and appends it to the set when it passes. */
static void load_one(struct plugin_set *set, const char *file)
{
    char path[4096];
    const j4_scenario_t *sc;
    void *handle;

    snprintf(path, sizeof(path), "%s/%s", set->dir, file);
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        log_error("plugin '%s' refused: %s", file, dlerror());
        return;
    }
    sc = dlsym(handle, J4_SCENARIO_SYMBOL);
    if (!sc) {
        log_error("plugin '%s' refused: no symbol '%s'", file,
                  J4_SCENARIO_SYMBOL);
        goto out_close;
    }
    if (check_descriptor(set, file, sc))
        goto out_close;

    set->items[set->count].file = strdup(file);
    set->items[set->count].handle = handle;
    set->items[set->count].scenario = sc;
    if (!set->items[set->count].file)
        goto out_close;
    set->count++;
    log_info("plugin '%s' loaded: scenario '%s' (SDK %u.%u)", file, sc->name,
             sc->abi_version >> 16, sc->abi_version & 0xffff);
    return;

out_close:
    dlclose(handle);
}

/* Lists the "*.so" names of dir, sorted. */
static int list_dir(DIR *d, char ***names, size_t *count)
{
    struct dirent *e;
    size_t cap = 0;

    *names = NULL;
    *count = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !has_so_suffix(e->d_name))
            continue;
        if (*count == cap) {
            char **grown;

            cap = cap ? cap * 2 : 8;
            grown = realloc(*names, cap * sizeof(**names));
            if (!grown)
                return J4_ERR_NOMEM;
            *names = grown;
        }
        (*names)[*count] = strdup(e->d_name);
        if (!(*names)[*count])
            return J4_ERR_NOMEM;
        (*count)++;
    }
    qsort(*names, *count, sizeof(**names), compare_names);
    return J4_OK;
}

int plugin_set_load(struct plugin_set *set, const char *dir)
{
    char **names = NULL;
    size_t count = 0;
    int rc = J4_OK;
    DIR *d;

    memset(set, 0, sizeof(*set));
    set->dir = strdup(dir);
    if (!set->dir)
        return J4_ERR_NOMEM;
    d = opendir(dir);
    if (!d) {
        /* An executor without its plugins would only refuse every share
         * it is given: better not to join the cluster at all. */
        log_error("unable to open plugin directory '%s': %m", dir);
        return J4_ERR_NOTFOUND;
    }
    rc = list_dir(d, &names, &count);
    closedir(d);
    if (rc == J4_OK && count) {
        set->items = calloc(count, sizeof(*set->items));
        if (!set->items)
            rc = J4_ERR_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        if (rc == J4_OK)
            load_one(set, names[i]);
        free(names[i]);
    }
    free(names);
    if (rc == J4_OK && set->count == 0)
        log_warn("no scenario plugin in '%s'", dir);
    return rc;
}

const j4_scenario_t *plugin_set_find(const struct plugin_set *set,
                                     const char *name)
{
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->items[i].scenario->name, name) == 0)
            return set->items[i].scenario;
    }
    return NULL;
}

void plugin_set_names(const struct plugin_set *set, char *buf, size_t size)
{
    size_t used = 0;

    snprintf(buf, size, "none");
    for (size_t i = 0; i < set->count && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                         set->items[i].scenario->name);

        if (n < 0)
            break;
        used += (size_t)n;
    }
}

void plugin_set_release(struct plugin_set *set)
{
    for (size_t i = 0; i < set->count; i++) {
        dlclose(set->items[i].handle);
        free(set->items[i].file);
    }
    free(set->items);
    free(set->dir);
    memset(set, 0, sizeof(*set));
}
