/*
 * view.h - how the j4 command shows a scenario to a person: a live view
 * that redraws in place on a terminal (plain lines otherwise), and the
 * end-of-run report. Both read the scenario object of the REST API
 * (docs/architecture.md), so `j4 run` can feed them the same shape.
 */
#ifndef J4_CLI_VIEW_H
#define J4_CLI_VIEW_H

#include <jansson.h>
#include <stdio.h>

struct view {
    FILE *out;
    int tty;            /* redraw in place */
    int lines;          /* lines drawn by the last redraw */
    int per_executor;   /* show a line per executor */
};

void view_init(struct view *v, FILE *out, int per_executor);

/* Shows the scenario's current progress. */
void view_progress(struct view *v, json_t *scenario);

/* Prints the final report of an ended scenario. */
void view_report(struct view *v, json_t *scenario);

/* Non-zero once the scenario's state is finished, stopped or failed. */
int view_is_ended(json_t *scenario);

#endif
