/*
 * sdk_grpc.c - gRPC for scenarios on grpc core: shared channels, unary
 * calls and server-streaming calls with an opt-in reconnect policy.
 *
 * Channels are shared by every worker of the executor that names the
 * same target; they live in a mutex-protected list until the runtime
 * shuts down (sdk_grpc_cleanup). Calls run on the completion queue of
 * the worker's loop, and the worker's fiber waits for its own batches
 * (sched_cq_*, scheduler.h); a stop wakes it: a unary call in flight is
 * cancelled once the scenario's grace period is over (recorded as
 * interrupted), a stream read returns J4_ERR_STOPPED at once.
 *
 * A stream is one call at a time: it is reopened only after the previous
 * call fully ended, so the server never sees more of a worker's streams
 * than the worker opened. An attempt "settles" when its first message
 * arrives or it stayed open STREAM_SETTLED_MS; a settled stream that the
 * server ends with a non-OK status, without the worker asking, is a
 * reset; an attempt that ends before settling was refused (a failed
 * reconnect, not a reset). Stream metrics go to the worker's statistics
 * (stats.h): opened, reconnects, resets, messages, time to first message
 * and lifetime, by stream name.
 *
 * Every call carries a traceparent and the scenario's baggage metadata.
 */
#include <ctype.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "worker.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_BACKOFF_MS 100
#define DEFAULT_BACKOFF_MAX_MS 5000
#define STREAM_SETTLED_MS 1000
#define METADATA_MAX 32
#define CLOSE_WAIT_MS 5000

/* Tags of a call's batches; at most one of each is outstanding. As
 * sched_cq ids: TAG_START 0, TAG_STATUS 1, TAG_RECV 2. */
#define TAG_START ((void *)1)
#define TAG_STATUS ((void *)2)
#define TAG_RECV ((void *)4)

struct j4_grpc_channel {
    struct j4_grpc_channel *next;
    char *target;
    grpc_channel *channel;
};

static pthread_mutex_t channels_lock = PTHREAD_MUTEX_INITIALIZER;
static struct j4_grpc_channel *channels;
static int grpc_started;

/* A growable byte buffer. */
struct sdk_buf {
    char *data;
    size_t len, cap;
};


/* Metadata of one call: the caller's plus the trace context. */
struct md_set {
    grpc_metadata items[METADATA_MAX + 2];
    size_t count;
};

struct j4_grpc_stream {
    struct j4_worker *w;
    j4_grpc_channel_t *ch;
    char *method;
    char *name;      /* stream name for metrics */
    char **metadata; /* copied "key: value" lines, NULL-terminated */
    char *request;
    size_t request_len;
    int reconnect;
    int64_t backoff_initial_ms, backoff_max_ms, backoff_ms;

    struct sched_cq q;
    grpc_completion_queue *cq; /* the loop's */
    grpc_call *call; /* NULL between attempts */
    struct md_set md;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    int pending;       /* TAG_* bits outstanding */
    int status_done;   /* RECV_STATUS_ON_CLIENT completed */
    int messages_done; /* a RECV_MESSAGE returned no message */
    int cancelled;     /* the worker ended the call itself */
    int settled;
    int attempts;
    int64_t opened_us;
    int64_t next_open_us; /* monotonic: earliest reopen */
    uint64_t received;    /* messages of this attempt */
    int ended;            /* an attempt ended and none is open */

    struct sdk_buf msg;
    j4_grpc_status_t last;
};

/* ------------------------------------------------------------ helpers */

static int buf_set(struct sdk_buf *b, const void *data, size_t len)
{
    if (len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *grown;

        while (cap < len + 1)
            cap *= 2;
        grown = realloc(b->data, cap);
        if (!grown)
            return J4_ERR_NOMEM;
        b->data = grown;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = '\0';
    b->len = len;
    return J4_OK;
}

static void buf_release(struct sdk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void sdk_grpc_fiber_release(struct sdk_fiber *f)
{
    if (!f || !f->grpc_reply)
        return;
    buf_release(f->grpc_reply);
    free(f->grpc_reply);
    f->grpc_reply = NULL;
}

/* The calling fiber's unary reply, valid until its next call. Calls run
 * only on worker fibers (sched_cq_init refuses others). */
static struct sdk_buf *reply_buf(void)
{
    struct sdk_fiber *f = fiber_local();

    if (!f)
        return NULL;
    if (!f->grpc_reply)
        f->grpc_reply = calloc(1, sizeof(struct sdk_buf));
    return f->grpc_reply;
}

/* Copies a received byte buffer into b. */
static int buf_from_bytes(struct sdk_buf *b, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader reader;
    grpc_slice slice;
    int rc;

    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return J4_ERR_PROTOCOL;
    slice = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    rc = buf_set(b, GRPC_SLICE_START_PTR(slice), GRPC_SLICE_LENGTH(slice));
    grpc_slice_unref(slice);
    return rc;
}

static grpc_byte_buffer *bytes_from(const void *data, size_t len)
{
    grpc_slice slice = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);

    grpc_slice_unref(slice);
    return bb;
}

static gpr_timespec mono_in_ms(int64_t ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Non-zero when a blocked call of this thread must give up now: the
 * grace after a stop is over, or the routines of a failed init halt. */
static int must_abort(const struct j4_worker *w)
{
    return worker_grace_left_us(w) <= 0 || atomic_load(&w->routines_halt);
}

static int must_stop(const struct j4_worker *w)
{
    return atomic_load(&w->stop) || atomic_load(&w->routines_halt);
}

/* ------------------------------------------------------------ metadata */

static int md_add(struct md_set *m, const char *key, size_t key_len,
                  const char *value)
{
    char lower[128];

    if (m->count == METADATA_MAX + 2 || key_len == 0 ||
        key_len >= sizeof(lower))
        return J4_ERR_INVALID;
    for (size_t i = 0; i < key_len; i++)
        lower[i] = (char)tolower((unsigned char)key[i]);
    m->items[m->count].key = grpc_slice_from_copied_buffer(lower, key_len);
    m->items[m->count].value = grpc_slice_from_copied_string(value);
    m->count++;
    return J4_OK;
}

static void md_release(struct md_set *m)
{
    for (size_t i = 0; i < m->count; i++) {
        grpc_slice_unref(m->items[i].key);
        grpc_slice_unref(m->items[i].value);
    }
    m->count = 0;
}

/* The caller's "key: value" lines and the trace context. */
static int md_build(const struct j4_worker *w, const char *const *lines,
                    struct md_set *m)
{
    char traceparent[SDK_TRACEPARENT_LEN], baggage[200];

    m->count = 0;
    for (size_t i = 0; lines && lines[i]; i++) {
        const char *colon = strchr(lines[i], ':');
        const char *value = colon ? colon + 1 : "";

        while (*value == ' ')
            value++;
        if (i == METADATA_MAX || !colon ||
            md_add(m, lines[i], (size_t)(colon - lines[i]), value)) {
            md_release(m);
            return J4_ERR_INVALID;
        }
    }
    sdk_trace_context(w, traceparent, baggage, sizeof(baggage));
    md_add(m, "traceparent", strlen("traceparent"), traceparent);
    md_add(m, "baggage", strlen("baggage"), baggage);
    return J4_OK;
}

static void set_status(j4_grpc_status_t *out, grpc_status_code code,
                       grpc_slice details)
{
    size_t len = GRPC_SLICE_LENGTH(details);

    if (!out)
        return;
    if (len >= sizeof(out->message))
        len = sizeof(out->message) - 1;
    out->code = (int)code;
    memcpy(out->message, GRPC_SLICE_START_PTR(details), len);
    out->message[len] = '\0';
}

/* Starts a batch whose completion comes back to q as tag. */
static int batch(grpc_call *call, const grpc_op *ops, size_t n,
                 struct sched_cq *q, void *tag)
{
    unsigned id = tag == TAG_START ? 0 : tag == TAG_STATUS ? 1 : 2;

    if (grpc_call_start_batch(call, ops, n, sched_cq_tag(q, id), NULL) !=
        GRPC_CALL_OK)
        return 0;
    sched_cq_started(q);
    return 1;
}

/* The next completion of q before deadline_us; GRPC_QUEUE_TIMEOUT at the
 * deadline and when the fiber was woken (a stop: the caller checks). */
static grpc_event cq_next(struct sched_cq *q, int64_t deadline_us)
{
    grpc_event ev = {.type = GRPC_QUEUE_TIMEOUT};
    unsigned id;
    int ok;

    if (sched_cq_next(q, deadline_us, &id, &ok) == 1) {
        ev.type = GRPC_OP_COMPLETE;
        ev.success = ok;
        ev.tag = (void *)(uintptr_t)(1u << id);
    }
    return ev;
}

/* When the grace after a stop ends (monotonic us; INT64_MAX: not
 * stopping). */
static int64_t abort_at_us(const struct j4_worker *w)
{
    return atomic_load(&w->routines_halt) ? 0 : worker_abort_at_us(w);
}

/* ------------------------------------------------------------ channels */

J4_EXPORT j4_grpc_channel_t *j4_grpc_channel(j4_worker_t *w,
                                             const char *target)
{
    struct j4_grpc_channel *c;
    grpc_channel_credentials *creds;

    if (!w || !target || !*target)
        return NULL;
    pthread_mutex_lock(&channels_lock);
    for (c = channels; c; c = c->next) {
        if (strcmp(c->target, target) == 0)
            goto out_unlock;
    }
    if (!grpc_started) {
        grpc_init();
        grpc_started = 1;
    }
    c = calloc(1, sizeof(*c));
    if (!c || !(c->target = strdup(target))) {
        free(c);
        c = NULL;
        goto out_unlock;
    }
    creds = grpc_insecure_credentials_create();
    c->channel = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    c->next = channels;
    channels = c;
out_unlock:
    pthread_mutex_unlock(&channels_lock);
    return c;
}

void sdk_grpc_cleanup(void)
{
    pthread_mutex_lock(&channels_lock);
    while (channels) {
        struct j4_grpc_channel *c = channels;

        channels = c->next;
        grpc_channel_destroy(c->channel);
        free(c->target);
        free(c);
    }
    if (grpc_started) {
        grpc_shutdown();
        grpc_started = 0;
    }
    pthread_mutex_unlock(&channels_lock);
}

/* --------------------------------------------------------------- unary */

struct unary {
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *send, *recv;
    int interrupted;
};

/* Waits for the call's one batch, cancelling it once the worker must
 * abort. Returns the event's success flag. */
static int unary_wait(struct j4_worker *w, struct sched_cq *q,
                      grpc_call *call, struct unary *u)
{
    for (;;) {
        grpc_event ev = cq_next(q, u->interrupted ? INT64_MAX
                                                  : abort_at_us(w));

        if (ev.type == GRPC_OP_COMPLETE)
            return ev.success;
        if (!u->interrupted && must_abort(w)) {
            grpc_call_cancel(call, NULL);
            u->interrupted = 1;
        }
    }
}

static int unary_run(struct j4_worker *w, grpc_call *call,
                     struct sched_cq *q, struct md_set *md,
                     struct unary *u)
{
    grpc_op ops[6];

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = md->count;
    ops[0].data.send_initial_metadata.metadata = md->items;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = u->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &u->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &u->trailing_md;
    ops[5].data.recv_status_on_client.status = &u->status;
    ops[5].data.recv_status_on_client.status_details = &u->details;
    if (!batch(call, ops, 6, q, TAG_START))
        return J4_ERR_IO;
    unary_wait(w, q, call, u);
    return J4_OK;
}

static j4_outcome unary_outcome(const struct unary *u)
{
    if (u->interrupted)
        return J4_OUTCOME_INTERRUPTED;
    if (u->status == GRPC_STATUS_OK)
        return J4_OUTCOME_OK;
    if (u->status == GRPC_STATUS_DEADLINE_EXCEEDED)
        return J4_OUTCOME_TIMEOUT;
    return J4_OUTCOME_GRPC;
}

static int status_result(j4_outcome outcome, grpc_status_code code)
{
    switch (outcome) {
    case J4_OUTCOME_OK:
        return J4_OK;
    case J4_OUTCOME_INTERRUPTED:
        return J4_ERR_STOPPED;
    case J4_OUTCOME_TIMEOUT:
        return J4_ERR_TIMEOUT;
    default:
        return code == GRPC_STATUS_UNAVAILABLE ? J4_ERR_UNAVAILABLE
                                               : J4_ERR_PROTOCOL;
    }
}

/* Copies the reply to the thread's buffer for the caller. */
static int unary_reply(struct unary *u, const void **reply, size_t *len)
{
    struct sdk_buf *b = reply_buf();
    int rc;

    if (!b)
        return J4_ERR_NOMEM;
    rc = u->recv ? buf_from_bytes(b, u->recv) : buf_set(b, "", 0);
    if (rc == J4_OK && reply)
        *reply = b->data;
    if (rc == J4_OK && len)
        *len = b->len;
    return rc;
}

J4_EXPORT int j4_grpc_unary(j4_worker_t *w, j4_grpc_channel_t *ch,
                            const char *method, const void *request,
                            size_t request_len,
                            const j4_grpc_call_options_t *opts,
                            const void **reply, size_t *reply_len,
                            j4_grpc_status_t *status)
{
    int64_t timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms
                                                   : DEFAULT_TIMEOUT_MS;
    struct unary u = {0};
    struct md_set md;
    struct sched_cq q;
    grpc_completion_queue *cq;
    grpc_slice path;
    grpc_call *call;
    uint64_t start;
    j4_outcome outcome;
    int rc;

    if (!w || !ch || !method || (!request && request_len))
        return J4_ERR_INVALID;
    if (worker_grace_left_us(w) <= 0)
        return J4_ERR_STOPPED; /* not started, so not recorded */
    cq = sched_cq_init(&q);
    if (!cq)
        return J4_ERR_INVALID; /* not on a worker's fiber */
    if (md_build(w, opts ? opts->metadata : NULL, &md) != J4_OK)
        return J4_ERR_INVALID;
    path = grpc_slice_from_copied_string(method);
    start = (uint64_t)clock_mono_us();
    call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS,
                                    cq, path, NULL, mono_in_ms(timeout), NULL);
    grpc_slice_unref(path);
    grpc_metadata_array_init(&u.initial_md);
    grpc_metadata_array_init(&u.trailing_md);
    u.details = grpc_empty_slice();
    u.send = bytes_from(request ? request : "", request_len);

    rc = unary_run(w, call, &q, &md, &u);
    if (rc == J4_OK) {
        outcome = unary_outcome(&u);
        worker_stats_record_named(&w->stats, SERIES_GRPC,
                                  opts && opts->name ? opts->name : method,
                                  outcome, (uint64_t)clock_mono_us() - start);
        set_status(status, u.status, u.details);
        rc = status_result(outcome, u.status);
        if (rc == J4_OK)
            rc = unary_reply(&u, reply, reply_len);
    }

    grpc_byte_buffer_destroy(u.send);
    if (u.recv)
        grpc_byte_buffer_destroy(u.recv);
    grpc_metadata_array_destroy(&u.initial_md);
    grpc_metadata_array_destroy(&u.trailing_md);
    grpc_slice_unref(u.details);
    sched_cq_drain(&q);
    grpc_call_unref(call);
    md_release(&md);
    return rc;
}

/* ------------------------------------------------------------- streams */

/* Starts one attempt: the request batch and the status batch. */
static int stream_call(struct j4_grpc_stream *s)
{
    grpc_slice path = grpc_slice_from_copied_string(s->method);
    grpc_op ops[4], status_op;

    if (md_build(s->w, (const char *const *)s->metadata, &s->md) != J4_OK) {
        grpc_slice_unref(path);
        return J4_ERR_INVALID;
    }
    s->call = grpc_channel_create_call(
        s->ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, path, NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_slice_unref(path);
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->details = grpc_empty_slice();
    s->send = bytes_from(s->request, s->request_len);
    s->status_done = s->messages_done = s->cancelled = s->settled = 0;
    s->received = 0;
    s->ended = 0;

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = s->md.count;
    ops[0].data.send_initial_metadata.metadata = s->md.items;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    memset(&status_op, 0, sizeof(status_op));
    status_op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    status_op.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    status_op.data.recv_status_on_client.status = &s->status;
    status_op.data.recv_status_on_client.status_details = &s->details;

    s->opened_us = clock_mono_us();
    stats_stream_opened(&s->w->stats, SERIES_GRPC, s->name);
    if (s->attempts++ > 0)
        stats_stream_reconnect(&s->w->stats, SERIES_GRPC, s->name);
    if (batch(s->call, ops, 4, &s->q, TAG_START))
        s->pending |= 1;
    if (batch(s->call, &status_op, 1, &s->q, TAG_STATUS))
        s->pending |= 2;
    if (!(s->pending & 2)) {
        grpc_call_cancel(s->call, NULL);
        s->status_done = 1;
        s->status = GRPC_STATUS_INTERNAL;
    }
    return J4_OK;
}

/* Frees what one attempt held; the call must have no batch pending. */
static void stream_call_release(struct j4_grpc_stream *s)
{
    if (s->send)
        grpc_byte_buffer_destroy(s->send);
    if (s->recv)
        grpc_byte_buffer_destroy(s->recv);
    s->send = s->recv = NULL;
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_slice_unref(s->details);
    grpc_call_unref(s->call);
    s->call = NULL;
    md_release(&s->md);
}

/* The attempt ended (status and end of messages seen): counts it,
 * schedules the next one and frees the call. */
static void stream_finish(struct j4_grpc_stream *s)
{
    int64_t now = clock_mono_us();

    int reset = !s->cancelled && s->status != GRPC_STATUS_OK && s->settled;

    stats_stream_ended(&s->w->stats, SERIES_GRPC, s->name,
                       (uint64_t)(now - s->opened_us), reset);
    set_status(&s->last, s->status, s->details);
    if (s->settled)
        s->backoff_ms = s->backoff_initial_ms;
    s->next_open_us = now + s->backoff_ms * 1000;
    s->backoff_ms *= 2;
    if (s->backoff_ms > s->backoff_max_ms)
        s->backoff_ms = s->backoff_max_ms;
    stream_call_release(s);
    s->ended = 1;
}

static void stream_settle(struct j4_grpc_stream *s)
{
    if (s->settled)
        return;
    s->settled = 1;
    s->backoff_ms = s->backoff_initial_ms;
}

/* Handles one completion. Returns 1 when a message arrived. */
static int stream_event(struct j4_grpc_stream *s, grpc_event ev)
{
    if (ev.tag == TAG_START) {
        s->pending &= ~1;
        return 0;
    }
    if (ev.tag == TAG_STATUS) {
        s->pending &= ~2;
        s->status_done = 1;
        return 0;
    }
    s->pending &= ~4;
    if (!ev.success || !s->recv) {
        s->messages_done = 1;
        return 0;
    }
    buf_from_bytes(&s->msg, s->recv);
    grpc_byte_buffer_destroy(s->recv);
    s->recv = NULL;
    if (s->received++ == 0)
        stats_stream_first_message(&s->w->stats, SERIES_GRPC, s->name,
                                   (uint64_t)(clock_mono_us() -
                                              s->opened_us));
    stats_stream_messages(&s->w->stats, SERIES_GRPC, s->name, 1);
    stream_settle(s);
    return 1;
}

static void stream_recv_start(struct j4_grpc_stream *s)
{
    grpc_op op;

    if ((s->pending & 4) || s->messages_done)
        return;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv;
    if (batch(s->call, &op, 1, &s->q, TAG_RECV))
        s->pending |= 4;
    else
        s->messages_done = 1;
}

/* Waits for one event of the open attempt, until deadline_us at most
 * (or the moment it settles, or a wake). Returns 1 for a message, -1
 * when the attempt ended, 0 otherwise. */
static int stream_poll(struct j4_grpc_stream *s, int64_t deadline_us)
{
    int64_t settle_at = s->opened_us + STREAM_SETTLED_MS * 1000LL;
    grpc_event ev;

    stream_recv_start(s);
    if (!s->settled && settle_at < deadline_us)
        deadline_us = settle_at;
    ev = cq_next(&s->q, deadline_us);
    if (ev.type == GRPC_OP_COMPLETE && stream_event(s, ev))
        return 1;
    if (s->status_done && s->messages_done && !s->pending) {
        stream_finish(s);
        return -1;
    }
    if (clock_mono_us() - s->opened_us >= STREAM_SETTLED_MS * 1000LL &&
        !s->status_done)
        stream_settle(s);
    return 0;
}

/* Between attempts: waits for the backoff, then reopens. Returns J4_OK
 * once a call is open, or why not. */
static int stream_reopen(struct j4_grpc_stream *s, int64_t deadline_us)
{
    int64_t now = clock_mono_us();

    if (!s->reconnect)
        return J4_ERR_UNAVAILABLE;
    if (now < s->next_open_us) {
        int64_t until = s->next_open_us < deadline_us ? s->next_open_us
                                                      : deadline_us;

        if (j4_sleep(s->w, (until - now + 999) / 1000) != J4_OK)
            return J4_ERR_STOPPED;
        if (clock_mono_us() < s->next_open_us)
            return J4_ERR_TIMEOUT;
    }
    return stream_call(s);
}

J4_EXPORT int j4_grpc_stream_recv(j4_worker_t *w, j4_grpc_stream_t *s,
                                  int64_t timeout_ms, const void **msg,
                                  size_t *len)
{
    int64_t deadline = clock_mono_us() + (timeout_ms > 0 ? timeout_ms : 0) *
                                             1000;
    int rc;

    if (!w || !s)
        return J4_ERR_INVALID;
    for (;;) {
        if (must_stop(w))
            return J4_ERR_STOPPED;
        if (!s->call) {
            rc = stream_reopen(s, deadline);
            if (rc != J4_OK)
                return rc;
        }
        rc = stream_poll(s, deadline);
        if (rc == 1) {
            if (msg)
                *msg = s->msg.data;
            if (len)
                *len = s->msg.len;
            return J4_OK;
        }
        if (rc == -1)
            return J4_ERR_UNAVAILABLE;
        if (clock_mono_us() >= deadline)
            return J4_ERR_TIMEOUT;
    }
}

static char **lines_copy(const char *const *lines)
{
    size_t n = 0;
    char **out;

    while (lines && lines[n])
        n++;
    out = calloc(n + 1, sizeof(*out));
    for (size_t i = 0; out && i < n; i++) {
        out[i] = strdup(lines[i]);
        if (!out[i]) {
            while (i > 0)
                free(out[--i]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static void stream_free(struct j4_grpc_stream *s)
{
    for (size_t i = 0; s->metadata && s->metadata[i]; i++)
        free(s->metadata[i]);
    free(s->metadata);
    free(s->method);
    free(s->name);
    free(s->request);
    buf_release(&s->msg);
    if (s->cq)
        sched_cq_drain(&s->q);
    free(s);
}

static void stream_set_options(struct j4_grpc_stream *s,
                               const j4_grpc_stream_options_t *opts)
{
    s->reconnect = opts && opts->reconnect;
    s->backoff_initial_ms = opts && opts->backoff_initial_ms > 0
                                ? opts->backoff_initial_ms
                                : DEFAULT_BACKOFF_MS;
    s->backoff_max_ms = opts && opts->backoff_max_ms > 0
                            ? opts->backoff_max_ms
                            : DEFAULT_BACKOFF_MAX_MS;
    if (s->backoff_max_ms < s->backoff_initial_ms)
        s->backoff_max_ms = s->backoff_initial_ms;
    s->backoff_ms = s->backoff_initial_ms;
}

J4_EXPORT int j4_grpc_stream_open(j4_worker_t *w, j4_grpc_channel_t *ch,
                                  const char *method, const void *request,
                                  size_t request_len,
                                  const j4_grpc_stream_options_t *opts,
                                  j4_grpc_stream_t **stream)
{
    struct j4_grpc_stream *s;
    int rc;

    if (!w || !ch || !method || !stream || (!request && request_len))
        return J4_ERR_INVALID;
    *stream = NULL;
    if (must_stop(w))
        return J4_ERR_STOPPED;
    s = calloc(1, sizeof(*s));
    if (!s)
        return J4_ERR_NOMEM;
    s->w = w;
    s->ch = ch;
    s->method = strdup(method);
    s->name = strdup(opts && opts->name ? opts->name : method);
    s->request = malloc(request_len ? request_len : 1);
    s->metadata = lines_copy(opts ? opts->metadata : NULL);
    s->cq = sched_cq_init(&s->q);
    if (!s->method || !s->name || !s->request || !s->metadata || !s->cq) {
        stream_free(s);
        return J4_ERR_NOMEM;
    }
    if (request_len)
        memcpy(s->request, request, request_len);
    s->request_len = request_len;
    stream_set_options(s, opts);
    rc = stream_call(s);
    if (rc != J4_OK) {
        stream_free(s);
        return rc;
    }
    *stream = s;
    return J4_OK;
}

J4_EXPORT void j4_grpc_stream_close(j4_worker_t *w, j4_grpc_stream_t *s)
{
    int64_t give_up;

    if (!s)
        return;
    if (s->call) {
        s->cancelled = 1;
        grpc_call_cancel(s->call, NULL);
        give_up = clock_mono_us() + CLOSE_WAIT_MS * 1000LL;
        while (s->pending && clock_mono_us() < give_up) {
            grpc_event ev = cq_next(&s->q, give_up);

            if (ev.type == GRPC_OP_COMPLETE)
                stream_event(s, ev);
        }
        /* Nothing is left pending after a cancel in practice; should a
         * batch still be out, leaking the call beats a use after free. */
        if (s->pending)
            return;
        stream_finish(s);
    }
    stream_free(s);
}

