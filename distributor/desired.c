/*
 * desired.c - the leader's DesiredState messages, packed from caches
 * (desired.h).
 *
 * Wire format (protobuf): a message is a sequence of fields, each a tag
 * (field number << 3 | wire type) followed by a varint or by a length
 * and that many bytes. DesiredState.shares is field 8 with wire type 2;
 * Share.slot and Share.slots are fields 7 and 8, varints. Protobuf-c
 * writes fields in their order in proto/j4.proto, which is also numeric
 * order here, so a scenario's Share packed with slot = slots = 0 (left
 * out, as proto3 zeros are) followed by the two varints is exactly the
 * packed Share.
 */
#include "desired.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "j4.h"
#include "j4.pb-c.h"

#define TAG_SHARE_SLOT 0x38     /* Share.slot: field 7, varint */
#define TAG_SHARE_SLOTS 0x40    /* Share.slots: field 8, varint */
#define TAG_STATE_SHARES 0x42   /* DesiredState.shares: field 8, bytes */
#define VARINT_MAX 10
/* tag and length of a share, then its slot and slots fields */
#define SHARE_OVERHEAD (2 * (1 + VARINT_MAX) + 2 * (1 + 5))

static size_t varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* s's Share with slot and slots left at zero. */
static void fill_share(J4__Share *share, J4__Schedule *sched,
                       const struct lscen *s)
{
    j4__share__init(share);
    j4__schedule__init(sched);
    sched->target = s->sched.target;
    sched->rampup_step = s->sched.rampup_step;
    sched->rampup_interval_ms = (uint32_t)s->sched.rampup_interval_ms;
    sched->rampup_exponential = s->sched.rampup_exponential;
    sched->hold_ms = (uint64_t)s->sched.hold_ms;
    sched->rampdown_step = s->sched.rampdown_step;
    sched->rampdown_interval_ms = (uint32_t)s->sched.rampdown_interval_ms;
    sched->grace_ms = (uint32_t)s->grace_ms;
    share->scenario_id = s->id;
    share->name = (char *)s->name;
    share->plugin = (char *)s->plugin;
    share->params_json = s->params_json ? s->params_json : "{}";
    share->start_wall_ms = s->start_wall_ms;
    share->schedule = sched;
}

/* Packs s's Share without slot and slots, once per start time. */
static int share_prefix(struct lscen *s)
{
    J4__Share share;
    J4__Schedule sched;
    size_t len;

    if (s->share_prefix && s->share_prefix_start == s->start_wall_ms)
        return J4_OK;
    free(s->share_prefix);
    fill_share(&share, &sched, s);
    len = j4__share__get_packed_size(&share);
    s->share_prefix = malloc(len ? len : 1);
    if (!s->share_prefix)
        return J4_ERR_NOMEM;
    s->share_prefix_len = j4__share__pack(&share, s->share_prefix);
    s->share_prefix_start = s->start_wall_ms;
    return J4_OK;
}

/* Writes one DesiredState.shares entry for grant g of s; returns its
 * length (at most share_prefix_len + SHARE_OVERHEAD). */
static size_t share_entry(uint8_t *out, const struct lscen *s,
                          const struct grant *g)
{
    uint8_t tail[2 * (1 + 5)];
    size_t nt = 0, n = 0;

    if (g->slot) {
        tail[nt++] = TAG_SHARE_SLOT;
        nt += varint_put(tail + nt, g->slot);
    }
    if (g->slots) {
        tail[nt++] = TAG_SHARE_SLOTS;
        nt += varint_put(tail + nt, g->slots);
    }
    out[n++] = TAG_STATE_SHARES;
    n += varint_put(out + n, s->share_prefix_len + nt);
    memcpy(out + n, s->share_prefix, s->share_prefix_len);
    n += s->share_prefix_len;
    memcpy(out + n, tail, nt);
    return n + nt;
}

/* e's grant of s, or NULL. */
static const struct grant *grant_for(const struct lscen *s,
                                     const struct lexec *e)
{
    const struct grant *g = plan_grant_of(s, e->id);

    return g && g->incarnation == e->incarnation ? g : NULL;
}

/* Packs e's shares into e->shares unless they are packed for its
 * current version already. */
static int pack_shares(struct leader *l, struct lexec *e)
{
    size_t cap = 1, n = 0;
    uint8_t *buf;

    if (e->shares && e->shares_version == e->version &&
        e->shares_incarnation == e->incarnation)
        return J4_OK;
    for (size_t i = 0; i < l->n_scens; i++) {
        struct lscen *s = l->scens[i];

        if (!grant_for(s, e))
            continue;
        if (share_prefix(s) != J4_OK)
            return J4_ERR_NOMEM;
        cap += s->share_prefix_len + SHARE_OVERHEAD;
    }
    buf = malloc(cap);
    if (!buf)
        return J4_ERR_NOMEM;
    for (size_t i = 0; i < l->n_scens; i++) {
        const struct grant *g = grant_for(l->scens[i], e);

        if (g)
            n += share_entry(buf + n, l->scens[i], g);
    }
    free(e->shares);
    e->shares = buf;
    e->shares_len = n;
    e->shares_version = e->version;
    e->shares_incarnation = e->incarnation;
    return J4_OK;
}

int desired_pack(struct leader *l, struct lexec *e, uint8_t **buf,
                 size_t *len)
{
    J4__DesiredState ds = J4__DESIRED_STATE__INIT;
    size_t head;

    *buf = NULL;
    *len = 0;
    if (pack_shares(l, e) != J4_OK)
        return J4_ERR_NOMEM;
    ds.epoch = l->epoch;
    ds.version = e->version;
    ds.executor_id = e->id;
    ds.incarnation = e->incarnation;
    ds.lease_ms = l->cfg->lease_ms;
    ds.echo_mono_ms = e->echo_mono_ms;
    ds.leader_wall_ms = clock_wall_ms();
    head = j4__desired_state__get_packed_size(&ds);
    *buf = malloc(head + e->shares_len + 1);
    if (!*buf)
        return J4_ERR_NOMEM;
    j4__desired_state__pack(&ds, *buf);
    memcpy(*buf + head, e->shares, e->shares_len);
    *len = head + e->shares_len;
    return J4_OK;
}

void desired_scen_release(struct lscen *s)
{
    free(s->share_prefix);
    s->share_prefix = NULL;
    s->share_prefix_len = 0;
}

void desired_exec_release(struct lexec *e)
{
    free(e->shares);
    e->shares = NULL;
    e->shares_len = 0;
}
