/*
 * desired.h - packing the leader's DesiredState messages.
 *
 * The leader answers every heartbeat with the executor's whole desired
 * state: with 100 scenarios that is 100 Share messages, and packing them
 * field by field (protobuf-c walks descriptors) cost most of the
 * leader's CPU at a thousand executors. So the shares are packed once:
 * each scenario keeps its Share packed without slot and slots (the same
 * for every executor), each executor keeps its packed shares until its
 * desired-state version changes, and an answer is a small packed header
 * followed by those bytes. The bytes are exactly what
 * j4__desired_state__pack() makes of the same message (proto3 leaves
 * zero fields out, and shares are its last field), which
 * tests/unit/distributor/test_desired.c checks.
 *
 * Leader thread only.
 */
#ifndef J4_DIST_DESIRED_H
#define J4_DIST_DESIRED_H

#include <stddef.h>
#include <stdint.h>

#include "leader_int.h"

/* Packs e's desired state (epoch, e->version, its grants of every
 * scenario in l->scens order) into a malloc'd *buf. Returns J4_OK or
 * J4_ERR_NOMEM. */
int desired_pack(struct leader *l, struct lexec *e, uint8_t **buf,
                 size_t *len);

/* Frees what desired.c cached in s and in e. */
void desired_scen_release(struct lscen *s);
void desired_exec_release(struct lexec *e);

#endif
