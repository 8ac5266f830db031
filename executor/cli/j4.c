/*
 * j4.c - the j4 command: J4 for people at a terminal or in CI.
 *
 *   j4 run FILE [--plugins DIR]  play a scenario here, no cluster needed
 *   j4 submit FILE [--wait]   submit a scenario; --wait shows it live
 *   j4 watch ID               live view of a running scenario
 *   j4 ls                     every scenario, newest first
 *   j4 status ID              one scenario as JSON
 *   j4 stop ID                stop a scenario
 *   j4 executors              live and lost executors
 *   j4 help, j4 CMD --help    the usage, on stdout (exit 0)
 *
 * Exit codes: 0 success (for --wait and run: the scenario finished), 1
 * the scenario ended otherwise (stopped, failed, short of its target), 2
 * usage, or a document `run` refused, 3 no answer from the distributor,
 * 4 the distributor refused the request (400 naming the field, 404, 409).
 * `submit --wait` and `watch` also exit 1 when a threshold of the
 * scenario failed (its report says which).
 *
 *   j4 report ID [--format text|json|junit|csv]   a scenario's results
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "client.h"
#include "j4.h"
#include "log.h"
#include "report.h"
#include "run.h"
#include "view.h"

enum {
    EXIT_ENDED_BADLY = 1,
    EXIT_USAGE = 2,
    EXIT_REMOTE = 3,    /* no answer from the distributor */
    EXIT_REFUSED = 4    /* it answered with an error (404, 409...) */
};

/* The bounds j4-executor puts on the same options. */
#define CAPACITY_MAX 1000000u
#define THREADS_MAX 64u

struct cli {
    struct client client;
    int wait;
    int per_executor;
    const char *plugins;    /* run: plugin directory */
    unsigned capacity;      /* run: most workers */
    unsigned threads;       /* run: worker threads */
    const char *format;     /* report: text, json, junit, csv */
    int refused;            /* the last call got an error answer */
    int help;               /* --help after the command */
};

/* The exit code after a failed call: no answer, or a refusal. */
static int remote_exit(const struct cli *cli)
{
    return cli->refused ? EXIT_REFUSED : EXIT_REMOTE;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    interrupted = sig;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: j4 [--server URL] [--token TOKEN] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  run FILE [--plugins DIR] [--capacity N] [--threads N]\n"
            "                                      play a scenario in this "
            "process, no servers\n"
            "  submit FILE [--wait] [--executors]  submit a scenario "
            "(FILE may be -)\n"
            "  watch ID [--executors]              follow a scenario live\n"
            "  ls                                  list scenarios\n"
            "  status ID                           show one scenario (JSON)\n"
            "  stop ID                             stop a scenario\n"
            "  report ID [--format text|json|junit|csv]\n"
            "                                      a scenario's results\n"
            "  executors                           list executors\n"
            "  help                                this text (so does "
            "--help)\n"
            "\n"
            "run: --capacity N caps the workers (1-1000000), --threads N "
            "sets the\n"
            "worker threads (0-64, 0: one per CPU)\n"
            "\n"
            "environment: J4_SERVER (default http://127.0.0.1:8080), "
            "J4_API_TOKEN\n");
}

static char *read_file(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t len = 0, cap = 4096;
    char *buf;

    if (f == NULL)
        return NULL;
    buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);

        len += n;
        if (n == 0)
            break;
        if (cap - len <= 1) {
            char *grown = cap < (16u << 20) ? realloc(buf, cap * 2) : NULL;

            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    if (buf)
        buf[len] = '\0';
    if (f != stdin)
        fclose(f);
    return buf;
}

/* Calls the API and prints a refusal. Returns the reply or NULL. */
static json_t *call(struct cli *cli, const char *method, const char *path,
                    const char *body, long want)
{
    json_t *reply = NULL;
    long status = 0;
    char msg[512];

    if (client_call(&cli->client, method, path, body, &status, &reply)) {
        fprintf(stderr, "j4: %s\n", cli->client.error);
        return NULL;
    }
    if (status != want) {
        fprintf(stderr, "j4: %s %s: %s\n", method, path,
                client_error_text(reply, status, msg, sizeof(msg)));
        json_decref(reply);
        cli->refused = 1;
        return NULL;
    }
    if (reply == NULL)
        fprintf(stderr, "j4: %s %s: the answer is not JSON\n", method, path);
    return reply;
}

static int print_json(json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);

    if (text)
        puts(text);
    free(text);
    json_decref(doc);
    return 0;
}

/* 0 only for a scenario that finished with nothing to say against it: a
 * finished run that fell short of its target carries a reason. */
static int state_exit(json_t *scenario)
{
    const char *state = json_string_value(json_object_get(scenario,
                                                          "state"));
    const char *reason = json_string_value(json_object_get(scenario,
                                                           "reason"));

    if (state && strcmp(state, "finished") == 0 && !reason)
        return 0;
    return EXIT_ENDED_BADLY;
}

/* Follows scenario id until it ends (or Ctrl-C), then reports. */
static int watch(struct cli *cli, long long id)
{
    struct view v;
    char path[64];
    json_t *scenario = NULL;
    int rc;

    view_init(&v, stdout, cli->per_executor);
    snprintf(path, sizeof(path), "/scenarios/%lld", id);
    while (!interrupted) {
        json_t *now = call(cli, "GET", path, NULL, 200);

        if (now == NULL) {
            json_decref(scenario);
            return remote_exit(cli);
        }
        json_decref(scenario);
        scenario = now;
        if (view_is_ended(scenario))
            break;
        view_progress(&v, scenario);
        usleep(v.tty ? 250000 : 1000000);
    }
    if (interrupted) {
        fprintf(stderr, "\nj4: stopped watching; scenario %lld goes on "
                        "(j4 stop %lld stops it)\n", id, id);
        json_decref(scenario);
        return EXIT_ENDED_BADLY;
    }
    view_report(&v, scenario);
    rc = state_exit(scenario);
    /* A run whose thresholds failed fails CI even when it finished. */
    if (report_thresholds_passed(&cli->client, id, stdout) == 0)
        rc = EXIT_ENDED_BADLY;
    json_decref(scenario);
    return rc;
}

static int cmd_submit(struct cli *cli, const char *file)
{
    char *body = read_file(file);
    json_t *reply;
    long long id;

    if (body == NULL) {
        fprintf(stderr, "j4: unable to read '%s'\n", file);
        return EXIT_USAGE;
    }
    reply = call(cli, "POST", "/scenarios", body, 201);
    free(body);
    if (reply == NULL)
        return remote_exit(cli);
    id = (long long)json_integer_value(json_object_get(reply, "id"));
    json_decref(reply);
    printf("submitted scenario %lld\n", id);
    fflush(stdout);
    return cli->wait ? watch(cli, id) : 0;
}

static int parse_id(const char *text, long long *id)
{
    char *end;

    *id = strtoll(text, &end, 10);
    if (*text == '\0' || *end != '\0' || *id <= 0) {
        fprintf(stderr, "j4: '%s' is not a scenario id\n", text);
        return -1;
    }
    return 0;
}

static int cmd_with_id(struct cli *cli, const char *cmd, const char *arg)
{
    char path[96];
    long long id;
    json_t *reply;

    if (parse_id(arg, &id))
        return EXIT_USAGE;
    if (strcmp(cmd, "watch") == 0)
        return watch(cli, id);
    if (strcmp(cmd, "report") == 0)
        return report_print(&cli->client, id, cli->format, stdout);
    if (strcmp(cmd, "stop") == 0) {
        snprintf(path, sizeof(path), "/scenarios/%lld/stop", id);
        reply = call(cli, "POST", path, "", 202);
        if (reply == NULL)
            return remote_exit(cli);
        printf("stopping scenario %lld\n", id);
        json_decref(reply);
        return 0;
    }
    snprintf(path, sizeof(path), "/scenarios/%lld", id);
    reply = call(cli, "GET", path, NULL, 200);
    return reply ? print_json(reply) : remote_exit(cli);
}

static int cmd_ls(struct cli *cli)
{
    json_t *reply = call(cli, "GET", "/scenarios", NULL, 200);
    json_t *s;
    size_t i;

    if (reply == NULL)
        return remote_exit(cli);
    printf("%-6s %-24s %-10s %-9s %-9s %s\n", "ID", "NAME", "STATE",
           "PHASE", "WORKERS", "REQUESTS");
    json_array_foreach(json_object_get(reply, "scenarios"), i, s) {
        json_t *m = json_object_get(s, "metrics");

        printf("%-6lld %-24s %-10s %-9s %4d/%-4d %.0f\n",
               (long long)json_integer_value(json_object_get(s, "id")),
               json_string_value(json_object_get(s, "name")),
               json_string_value(json_object_get(s, "state")),
               json_string_value(json_object_get(s, "phase")),
               (int)json_number_value(json_object_get(s, "running")),
               (int)json_number_value(json_object_get(s, "planned")),
               json_number_value(json_object_get(m, "requests")));
    }
    json_decref(reply);
    return 0;
}

static int cmd_executors(struct cli *cli)
{
    json_t *reply = call(cli, "GET", "/executors", NULL, 200);

    return reply ? print_json(reply) : remote_exit(cli);
}

/* Parses the value of a counting option: a whole number from min to max
 * into *n. Returns 0, or -1 after saying what is wrong. */
static int parse_count(const char *opt, const char *text, unsigned long min,
                       unsigned long max, const char *note, unsigned *n)
{
    unsigned long v;
    char *end;

    errno = 0;
    v = strtoul(text, &end, 10);
    if (!isdigit((unsigned char)*text) || errno || *end != '\0' || v < min ||
        v > max) {
        fprintf(stderr, "j4: option '%s' takes a whole number from %lu to "
                        "%lu%s, not '%s'\n", opt, min, max, note, text);
        return -1;
    }
    *n = (unsigned)v;
    return 0;
}

/* Options that may follow the command and take a value. */
static int takes_value(const char *name)
{
    static const char *const valued[] = {"--plugins", "--capacity",
                                          "--threads", "--format"};

    for (size_t i = 0; i < sizeof(valued) / sizeof(valued[0]); i++) {
        if (strcmp(name, valued[i]) == 0)
            return 1;
    }
    return 0;
}

/* Applies one option that follows the command; value is NULL for a
 * flag. Returns 0, or -1 after saying what is wrong. */
static int set_command_option(struct cli *cli, const char *name,
                              const char *value)
{
    int *flag = strcmp(name, "--wait") == 0        ? &cli->wait
                : strcmp(name, "--executors") == 0 ? &cli->per_executor
                : strcmp(name, "--help") == 0      ? &cli->help
                                                   : NULL;

    if (takes_value(name) && value == NULL) {
        fprintf(stderr, "j4: option '%s' needs a value\n", name);
        return -1;
    }
    if (strcmp(name, "--capacity") == 0)
        return parse_count(name, value, 1, CAPACITY_MAX, "", &cli->capacity);
    if (strcmp(name, "--threads") == 0)
        return parse_count(name, value, 0, THREADS_MAX, " (0: one per CPU)",
                           &cli->threads);
    if (strcmp(name, "--plugins") == 0) {
        cli->plugins = value;
        return 0;
    }
    if (strcmp(name, "--format") == 0) {
        cli->format = value;
        return 0;
    }
    if (flag == NULL) {
        fprintf(stderr, "j4: unknown option '%s'\n", name);
        return -1;
    }
    if (value) {
        fprintf(stderr, "j4: option '%s' takes no value\n", name);
        return -1;
    }
    *flag = 1;
    return 0;
}

/* Removes the options that may follow a command from argv (the command
 * and its operands stay, in order). "--name value" and "--name=value"
 * are both understood. Returns the new count, or -1 after saying what
 * is wrong. */
static int take_command_options(struct cli *cli, int argc, char **argv)
{
    int kept = 0;

    for (int i = 0; i < argc; i++) {
        char name[32];
        const char *a = argv[i], *eq = strchr(a, '=');
        const char *value = NULL;

        if (strcmp(a, "-h") == 0)
            a = "--help";
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            argv[kept++] = argv[i];
            continue;
        }
        snprintf(name, sizeof(name), "%.*s",
                 eq ? (int)(eq - a) : (int)strlen(a), a);
        if (eq)
            value = eq + 1;
        else if (takes_value(name) && i + 1 < argc)
            value = argv[++i];
        if (set_command_option(cli, name, value))
            return -1;
    }
    return kept;
}

static int cmd_run(struct cli *cli, int argc, char **argv)
{
    struct run_options opts = {
        .plugins = cli->plugins,
        .capacity = cli->capacity ? cli->capacity : 100000,
        .threads = cli->threads,
        .per_executor = cli->per_executor,
    };

    if (argc != 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (opts.plugins == NULL)
        opts.plugins = getenv("J4_PLUGIN_DIR");
    if (opts.plugins == NULL)
        opts.plugins = "/usr/local/lib/j4/scenarios";
    opts.file = argv[1];
    log_init("j4 run", J4_LOG_WARN);
    return run_local(&opts);
}

static int dispatch(struct cli *cli, int argc, char **argv)
{
    const char *cmd = argv[0];

    if (strcmp(cmd, "submit") == 0 && argc == 2)
        return cmd_submit(cli, argv[1]);
    if (strcmp(cmd, "ls") == 0 && argc == 1)
        return cmd_ls(cli);
    if (strcmp(cmd, "executors") == 0 && argc == 1)
        return cmd_executors(cli);
    if ((strcmp(cmd, "status") == 0 || strcmp(cmd, "stop") == 0 ||
         strcmp(cmd, "watch") == 0 || strcmp(cmd, "report") == 0) &&
        argc == 2)
        return cmd_with_id(cli, cmd, argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'},
        {"token", required_argument, NULL, 't'},
        {"wait", no_argument, NULL, 'w'},
        {"executors", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *server = getenv("J4_SERVER");
    const char *token = getenv("J4_API_TOKEN");
    struct cli cli;
    int c, rc, kept;

    memset(&cli, 0, sizeof(cli));
    while ((c = getopt_long(argc, argv, "+s:t:weh", opts, NULL)) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 't': token = optarg; break;
        case 'w': cli.wait = 1; break;
        case 'e': cli.per_executor = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    /* Options may also follow the command ("submit FILE --wait"). */
    kept = take_command_options(&cli, argc - optind, argv + optind);
    if (kept < 0) {
        fprintf(stderr, "j4: 'j4 --help' shows the usage\n");
        return EXIT_USAGE;
    }
    argc = optind + kept;
    if (cli.help || (optind < argc && strcmp(argv[optind], "help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[optind], "run") == 0)
        return cmd_run(&cli, argc - optind, argv + optind);

    catch_stop_signals(on_interrupt);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (client_init(&cli.client, server ? server : "http://127.0.0.1:8080",
                    token)) {
        fprintf(stderr, "j4: out of memory\n");
        return EXIT_REMOTE;
    }
    rc = dispatch(&cli, argc - optind, argv + optind);
    client_release(&cli.client);
    curl_global_cleanup();
    return rc;
}
