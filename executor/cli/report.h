/*
 * report.h - `j4 report ID [--format text|json|junit|csv]` and the
 * threshold verdict behind `j4 submit --wait`'s exit code.
 */
#ifndef J4_CLI_REPORT_H
#define J4_CLI_REPORT_H

#include <stdio.h>

#include "client.h"

/* Prints the report of scenario id in format (NULL: text) to out.
 * Returns 0, 2 for an unknown format, 3 when the distributor could not
 * be reached or refused. */
int report_print(struct client *c, long long id, const char *format,
                 FILE *out);

/* 1 when the scenario's thresholds held, 0 when one failed, -1 when the
 * report could not be read. Prints failed thresholds to out. */
int report_thresholds_passed(struct client *c, long long id, FILE *out);

#endif
