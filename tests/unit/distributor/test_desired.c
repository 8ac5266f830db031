/*
 * test_desired.c - distributor/desired.c packs exactly what protobuf-c
 * would, and reuses an executor's packed shares only while its
 * desired-state version holds.
 *
 * The leader's scenario and executor records are filled by hand (no
 * PostgreSQL, no NATS); plan_grant_of() is this file's own linear
 * search, so only desired.c is under test.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "desired.h"
#include "j4.pb-c.h"

const struct grant *plan_grant_of(const struct lscen *s, const char *exec)
{
    for (size_t i = 0; i < s->n_grants; i++) {
        if (!strcmp(s->grants[i].exec, exec))
            return &s->grants[i];
    }
    return NULL;
}

static void set_grant(struct grant *g, const char *exec, uint64_t inc,
                      uint32_t slot, uint32_t slots)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->exec, sizeof(g->exec), "%s", exec);
    g->incarnation = inc;
    g->slot = slot;
    g->slots = slots;
}

static void make_scen(struct lscen *s, int64_t id, const char *params,
                      uint32_t target, struct grant *grants, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->id = id;
    snprintf(s->name, sizeof(s->name), "scenario-%lld", (long long)id);
    snprintf(s->plugin, sizeof(s->plugin), "http");
    s->params_json = params ? strdup(params) : NULL;
    s->sched.target = target;
    s->sched.rampup_step = 3;
    s->sched.rampup_interval_ms = 1000;
    s->sched.hold_ms = 600000;
    s->grace_ms = 5000;
    s->start_wall_ms = 1700000000123LL + id;
    s->grants = grants;
    s->n_grants = n;
}

/* What protobuf-c makes of e's state, at leader_wall_ms. */
static uint8_t *reference(struct leader *l, const struct lexec *e,
                          int64_t wall, size_t *len)
{
    J4__DesiredState ds = J4__DESIRED_STATE__INIT;
    J4__Share shares[8], *ptrs[8];
    J4__Schedule scheds[8];
    uint8_t *buf;

    for (size_t i = 0; i < l->n_scens; i++) {
        const struct lscen *s = l->scens[i];
        const struct grant *g = plan_grant_of(s, e->id);

        if (!g || g->incarnation != e->incarnation)
            continue;
        j4__share__init(&shares[ds.n_shares]);
        j4__schedule__init(&scheds[ds.n_shares]);
        scheds[ds.n_shares].target = s->sched.target;
        scheds[ds.n_shares].rampup_step = s->sched.rampup_step;
        scheds[ds.n_shares].rampup_interval_ms =
            (uint32_t)s->sched.rampup_interval_ms;
        scheds[ds.n_shares].hold_ms = (uint64_t)s->sched.hold_ms;
        scheds[ds.n_shares].grace_ms = (uint32_t)s->grace_ms;
        shares[ds.n_shares].scenario_id = s->id;
        shares[ds.n_shares].name = (char *)s->name;
        shares[ds.n_shares].plugin = (char *)s->plugin;
        shares[ds.n_shares].params_json =
            s->params_json ? s->params_json : "{}";
        shares[ds.n_shares].start_wall_ms = s->start_wall_ms;
        shares[ds.n_shares].schedule = &scheds[ds.n_shares];
        shares[ds.n_shares].slot = g->slot;
        shares[ds.n_shares].slots = g->slots;
        ptrs[ds.n_shares] = &shares[ds.n_shares];
        ds.n_shares++;
    }
    ds.shares = ptrs;
    ds.epoch = l->epoch;
    ds.version = e->version;
    ds.executor_id = (char *)e->id;
    ds.incarnation = e->incarnation;
    ds.lease_ms = l->cfg->lease_ms;
    ds.echo_mono_ms = e->echo_mono_ms;
    ds.leader_wall_ms = wall;
    *len = j4__desired_state__get_packed_size(&ds);
    buf = malloc(*len + 1);
    j4__desired_state__pack(&ds, buf);
    return buf;
}

/* Packs e with desired.c and compares with protobuf-c byte for byte. */
static int same_as_protobuf_c(struct leader *l, struct lexec *e)
{
    uint8_t *ours, *theirs;
    size_t len, ref_len;
    J4__DesiredState *ds;
    int ok;

    if (!CHECK_INT_EQ(desired_pack(l, e, &ours, &len), J4_OK))
        return 0;
    ds = j4__desired_state__unpack(NULL, len, ours);
    if (!CHECK(ds != NULL)) {
        free(ours);
        return 0;
    }
    theirs = reference(l, e, ds->leader_wall_ms, &ref_len);
    ok = CHECK_UINT_EQ(len, ref_len) && CHECK(!memcmp(ours, theirs, len));
    j4__desired_state__free_unpacked(ds, NULL);
    free(ours);
    free(theirs);
    return ok;
}

int main(void)
{
    struct config cfg = {.lease_ms = 4000};
    struct leader l = {.cfg = &cfg, .epoch = 300};
    struct lscen a, b, c, *scens[] = {&a, &b, &c};
    struct grant ga[2], gb[2], gc[1];
    struct lexec e = {.id = "e-1", .incarnation = 0xfeedfacecafebeefULL,
                      .version = 1, .echo_mono_ms = 123456789};
    struct lexec other = {.id = "e-2", .incarnation = 42, .version = 9};
    uint8_t *cached;

    set_grant(&ga[0], "e-1", e.incarnation, 0, 2);     /* slot 0: absent */
    set_grant(&ga[1], "e-2", 42, 1, 2);
    set_grant(&gb[0], "e-1", e.incarnation, 300, 1000); /* long varints */
    set_grant(&gb[1], "e-2", 42, 999, 1000);
    set_grant(&gc[0], "e-1", 7, 0, 1);                  /* old process */
    make_scen(&a, 1, "{\"url\":\"http://127.0.0.1:8080/\"}", 10, ga, 2);
    make_scen(&b, 5000000000LL, NULL, 3000, gb, 2);
    make_scen(&c, 7, "{}", 1, gc, 1);
    l.scens = scens;
    l.n_scens = 3;

    same_as_protobuf_c(&l, &e);
    same_as_protobuf_c(&l, &other);
    cached = e.shares;

    /* Same version: the packed shares are reused as they are. */
    e.echo_mono_ms = 987654321;
    same_as_protobuf_c(&l, &e);
    CHECK(e.shares == cached);

    /* A new version (its grant changed): packed again. */
    ga[0].slot = 1;
    ga[0].slots = 3;
    e.version = 2;
    same_as_protobuf_c(&l, &e);
    CHECK_UINT_EQ(e.shares_version, 2);

    /* No grant at all: a state with no shares. */
    l.n_scens = 0;
    e.version = 3;
    same_as_protobuf_c(&l, &e);
    CHECK_UINT_EQ(e.shares_len, 0);

    desired_exec_release(&e);
    desired_exec_release(&other);
    for (size_t i = 0; i < 3; i++) {
        desired_scen_release(scens[i]);
        free(scens[i]->params_json);
    }
    return check_done();
}
