/*
 * run.h - `j4 run`: play a scenario in this process, with no NATS and no
 * PostgreSQL, exactly as one executor holding the whole split would.
 */
#ifndef J4_CLI_RUN_H
#define J4_CLI_RUN_H

struct run_options {
    const char *file;        /* scenario document, or "-" */
    const char *plugins;     /* plugin directory */
    unsigned capacity;       /* most workers */
    unsigned threads;        /* worker threads, 0: one per CPU */
    int per_executor;        /* show the executor line in the live view */
};

/* Makes SIGINT, SIGTERM and SIGHUP call handler (a hangup that nohup
 * ignores stays ignored). */
void catch_stop_signals(void (*handler)(int));

/* Returns the process exit code: 0 when the scenario ran to its end at
 * full strength, 1 when it failed to start, was interrupted or never
 * reached its target, 2 for a bad document. */
int run_local(const struct run_options *opts);

#endif
