/*
 * http1.c - the native HTTP/1.1 client (http1.h).
 *
 * An exchange goes through the stages of the sections below: the URL
 * becomes a target (host, port, request path with its dot segments
 * removed, as curl sends it); the host becomes addresses (IP literals
 * directly, "localhost" as curl resolves it, other names through
 * getaddrinfo() on a helper thread, cached process-wide for 60 s); a
 * kept connection is found or a new one opened; the request head is
 * built in one buffer and written with the body in one sendmsg(); the
 * response is parsed in a reusable buffer, its body copied out (or read
 * straight into the body buffer when it is long). Redirects loop over
 * the last three stages; a reused connection that dies before its first
 * response byte is retried once on a fresh one.
 *
 * Every wait goes through sched_io_wait() until the earlier of the
 * request's deadline and the caller's abort time, so a slow server costs
 * a timeout and a stopping worker is let go within its grace, never a
 * stuck loop.
 *
 * Internal functions return 0 when done, -1 after recording the failure
 * in the exchange (fail()), or LOST when the connection ended before the
 * first response byte, which the caller may retry.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "http1.h"
#include "log.h"
#include "scheduler.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_REDIRECTS 10
#define HOST_MAX 256            /* a URL's host, NUL included */
#define BODY_KEEP (256u * 1024) /* larger body buffers are not kept */
#define IN_INIT 4096u           /* first size of the response buffer */
#define IN_STREAM (64u * 1024)  /* grown to this to discard long bodies */
#define IN_MAX (512u * 1024)    /* the response buffer: a head fits */
#define OUT_INIT 1024u
#define CHECK_READS 16          /* reads between time checks, no wait */
#define DNS_SLOTS 64
#define DNS_ADDRS 4
#define DNS_TTL_US (60 * 1000000LL) /* curl's default DNS cache timeout */
#define LOST (-2)
#define FALLBACK 1
#define FD_WARN_US (60 * 1000000LL) /* between two fd exhaustion lines */

/* libcurl's limits on what a server sends, so that a reply one path
 * takes the other takes too. A head line, its line end included, fits
 * in curl's CURL_MAX_HTTP_HEADER (100 KiB) buffer with a NUL; all the
 * heads of an exchange (1xx and redirects included) may be 300 KiB; a
 * trailer line's bytes, once curl has added CRLF and NUL, 4 KiB; a
 * chunk size, 16 hex digits. Measured on curl 7.88.1. */
#define HEAD_LINE_MAX (100u * 1024 - 1)
#define HEADS_MAX (300u * 1024)
#define TRAILER_MAX (4096u - 3)
#define CHUNK_DIGITS 16

/* Where a request goes. */
struct target {
    char host[HOST_MAX]; /* as written in the URL; IPv6 in brackets */
    unsigned port;
    char *path;          /* request target "/p?q", NUL-terminated */
    size_t path_len, path_cap;
};

/* A kept connection; fd -1 is a free slot. */
struct conn {
    int fd;
    struct sched_io *io;
    unsigned port;
    uint64_t last_use;
    char host[HOST_MAX];
};

struct http1 {
    struct conn conns[HTTP1_CONNS];
    uint64_t uses;
    struct target cur, next;     /* next: a redirect being resolved */
    char first_host[HOST_MAX];   /* the chain's first target */
    unsigned first_port;

    char *out;                   /* the request head */
    size_t out_len, out_cap;
    int out_oom;

    char *in;                    /* response bytes; [in_pos, in_len) */
    size_t in_pos, in_len, in_cap;   /* not parsed yet */

    char *body;                  /* the final response's body */
    size_t body_len, body_cap;

    char *loc;                   /* Location of the last 3xx */
    size_t loc_cap;
};

/* One call of http1_exchange(). */
struct xfer {
    const j4_http_request_t *req;
    const char *const *extra;
    const char *method;
    const char *body;            /* NULL: none, or dropped by a 30x */
    size_t body_len;
    int head_only;
    int max_redirects;

    int64_t deadline_us, abort_at_us;
    http1_abort_fn abort_fn;
    void *abort_arg;
    unsigned reads;              /* since the last wait or time check */

    struct conn *conn;
    int reused;
    int sent;                    /* some request went out */
    size_t got;                  /* response bytes of this attempt */
    int reset;                   /* the last read ended in a reset */
    int unsent;                  /* answered before the body was sent */
    int req_close;               /* the caller sent "Connection: close" */
    size_t head_bytes;           /* of every response head so far */

    long status;
    int keep, follow, has_loc, store;

    j4_outcome outcome;          /* when failed */
    int rc;
};

/* What one response head says about its body and connection. */
struct resp {
    int minor;
    int close, keep_alive;
    int te, chunked;
    int64_t clen;                /* -1: none */
    int clen_huge;               /* a length past int64: ignored */
};

static int fail(struct xfer *x, j4_outcome outcome, int rc)
{
    x->outcome = outcome;
    x->rc = rc;
    return -1;
}

static int fail_proto(struct xfer *x)
{
    return fail(x, J4_OUTCOME_OTHER, J4_ERR_IO);
}

static int fail_nomem(struct xfer *x)
{
    return fail(x, J4_OUTCOME_OTHER, J4_ERR_NOMEM);
}

/* A reply libcurl rejects with CURLE_RECV_ERROR (broken chunked
 * framing, heads too large), which sdk_http.c counts as "connect". */
static int fail_recv(struct xfer *x)
{
    return fail(x, J4_OUTCOME_CONNECT, J4_ERR_CONNECT);
}

/* Makes *buf hold at least need bytes, doubling from at least min. */
static int grow(char **buf, size_t *cap, size_t need, size_t min)
{
    size_t n = *cap > min ? *cap : min;
    char *p;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* ------------------------------------------------------------ checks */

static pthread_once_t proxy_once = PTHREAD_ONCE_INIT;
static int proxy_set;

static void proxy_check(void)
{
    static const char *const names[] = {"http_proxy", "HTTP_PROXY",
                                        "all_proxy", "ALL_PROXY"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = getenv(names[i]);

        if (v && *v)
            proxy_set = 1;
    }
}

static int is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9'))
        return 1;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int method_ok(const char *m)
{
    size_t n = 0;

    while (is_tchar((unsigned char)m[n]))
        n++;
    return n > 0 && n <= 64 && m[n] == '\0';
}

/* A byte sent in a request target as it is: printable ASCII but the
 * backslash. Anything else curl would encode or refuse itself. */
static int url_char_ok(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '\\';
}

static int host_char_ok(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
}

static int name_is(const char *line, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(line, name, n) == 0;
}

static void trim(const char **p, size_t *n)
{
    while (*n && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t' ||
                  (*p)[*n - 1] == '\r'))
        (*n)--;
}

/* Non-zero when the comma-separated value v holds token. */
static int has_token(const char *v, size_t n, const char *token)
{
    while (n) {
        const char *comma = memchr(v, ',', n);
        size_t len = comma ? (size_t)(comma - v) : n;
        const char *t = v;
        size_t tn = len;

        trim(&t, &tn);
        if (name_is(t, tn, token))
            return 1;
        v += len + (comma ? 1 : 0);
        n -= len + (comma ? 1 : 0);
    }
    return 0;
}

/* How curl sends one of the caller's header lines. */
enum hdr_form {
    HDR_SEND,  /* as it is */
    HDR_EMPTY, /* "Name;": as "Name:" with an empty value */
    HDR_DROP   /* "Name:" with a blank value (removes curl's own), or
                  neither ':' nor ';' */
};

static enum hdr_form hdr_form(const char *line, size_t *name_len)
{
    const char *sep = strchr(line, ':');
    const char *p;

    if (sep) {
        *name_len = (size_t)(sep - line);
        for (p = sep + 1; *p == ' ' || *p == '\t'; p++)
            ;
        return *name_len && *p ? HDR_SEND : HDR_DROP;
    }
    sep = strchr(line, ';');
    *name_len = sep ? (size_t)(sep - line) : strlen(line);
    if (!sep)
        return HDR_DROP;
    for (p = sep + 1; *p == ' ' || *p == '\t'; p++)
        ;
    return *name_len && !*p ? HDR_EMPTY : HDR_DROP;
}

/* Non-zero when no line breaks the request or asks for what only curl
 * does (its own framing of the body, or 100-continue). */
static int headers_ok(const char *const *h)
{
    for (; h && *h; h++) {
        size_t n;

        if (strpbrk(*h, "\r\n"))
            return 0;
        hdr_form(*h, &n);
        if (name_is(*h, n, "content-length") ||
            name_is(*h, n, "transfer-encoding") || name_is(*h, n, "expect"))
            return 0;
    }
    return 1;
}

/* Non-zero when one of the lines is a Connection header with the
 * "close" option: the connection ends with its response, as RFC 9112
 * 9.6 requires. */
static int asks_close(const char *const *h)
{
    for (; h && *h; h++) {
        size_t n;
        const char *v;

        if (hdr_form(*h, &n) != HDR_SEND || !name_is(*h, n, "connection"))
            continue;
        v = *h + n + 1;
        if (has_token(v, strlen(v), "close"))
            return 1;
    }
    return 0;
}

static size_t body_length(const j4_http_request_t *req)
{
    if (!req->body)
        return 0;
    return req->body_len ? req->body_len : strlen(req->body);
}

/* --------------------------------------------------------------- URLs */

struct url_parts {
    const char *host;            /* brackets included */
    size_t host_len;
    unsigned port;
    const char *path;            /* up to '#': "", "/p?q" or "?q" */
    size_t path_len;
};

static const char *split_host(const char *p, struct url_parts *u)
{
    char v6[64];

    u->host = p;
    if (*p == '[') {
        while (*++p && (strchr("0123456789abcdefABCDEF:.", *p)))
            ;
        if (*p != ']' || (size_t)(p - u->host) > sizeof(v6))
            return NULL;
        memcpy(v6, u->host + 1, (size_t)(p - u->host) - 1);
        v6[p - u->host - 1] = '\0';
        if (inet_pton(AF_INET6, v6, &(struct in6_addr){0}) != 1)
            return NULL;
        p++;
    } else {
        while (host_char_ok((unsigned char)*p))
            p++;
    }
    u->host_len = (size_t)(p - u->host);
    return u->host_len && u->host_len < HOST_MAX ? p : NULL;
}

/* Parses "host[:port]/path..." (what follows "http://"). */
static int split_authority(const char *p, struct url_parts *u)
{
    const char *q;

    p = split_host(p, u);
    if (!p)
        return -1;
    u->port = 80;
    if (*p == ':') {
        unsigned port = 0;
        const char *digits = ++p;

        for (; *p >= '0' && *p <= '9' && p - digits < 6; p++)
            port = port * 10 + (unsigned)(*p - '0');
        if (p == digits || port == 0 || port > 65535)
            return -1;
        u->port = port;
    }
    if (*p && *p != '/' && *p != '?' && *p != '#')
        return -1; /* credentials, or a malformed authority */
    for (q = p; *q; q++) {
        if (!url_char_ok((unsigned char)*q))
            return -1;
    }
    u->path = p;
    u->path_len = strcspn(p, "#");
    return 0;
}

static int url_split(const char *url, struct url_parts *u)
{
    if (strncasecmp(url, "http://", 7) != 0)
        return -1;
    return split_authority(url + 7, u);
}

/* Removes the "." and ".." segments of the path part of s (before any
 * '?'), in place, as RFC 3986 5.2.4 and curl do. Returns the new length
 * of s. */
static size_t remove_dots(char *s, size_t len)
{
    const char *q = memchr(s, '?', len);
    size_t plen = q ? (size_t)(q - s) : len;
    size_t in = 0, out = 0;

    if (!memmem(s, plen, "/.", 2) && !(plen && s[0] == '.'))
        return len;
    while (in < plen) {
        const char *p = s + in;
        size_t left = plen - in;

        if (left >= 3 && !memcmp(p, "../", 3)) {
            in += 3;
        } else if (left >= 2 && !memcmp(p, "./", 2)) {
            in += 2;
        } else if (left >= 3 && !memcmp(p, "/./", 3)) {
            in += 2;
        } else if (left == 2 && !memcmp(p, "/.", 2)) {
            s[out++] = '/';
            in = plen;
        } else if ((left >= 4 && !memcmp(p, "/../", 4)) ||
                   (left == 3 && !memcmp(p, "/..", 3))) {
            while (out > 0 && s[--out] != '/')
                ;
            if (left == 3) {
                s[out++] = '/';
                in = plen;
            } else {
                in += 3;
            }
        } else if ((left == 1 && *p == '.') ||
                   (left == 2 && !memcmp(p, "..", 2))) {
            in = plen;
        } else {
            do {
                s[out++] = s[in++];
            } while (in < plen && s[in] != '/');
        }
    }
    memmove(s + out, s + plen, len - plen);
    return out + len - plen;
}

/* Sets t's path to a then b (alen and blen bytes), dot segments removed. */
static int target_path(struct target *t, const char *a, size_t alen,
                       const char *b, size_t blen)
{
    size_t len = alen + blen;

    if (grow(&t->path, &t->path_cap, len + 1, 256) < 0)
        return -1;
    memcpy(t->path, a, alen);
    memcpy(t->path + alen, b, blen);
    t->path_len = remove_dots(t->path, len);
    t->path[t->path_len] = '\0';
    return 0;
}

static int target_set(struct target *t, const struct url_parts *u)
{
    int slash = !u->path_len || u->path[0] != '/';

    memcpy(t->host, u->host, u->host_len);
    t->host[u->host_len] = '\0';
    t->port = u->port;
    return target_path(t, "/", slash ? 1 : 0, u->path, u->path_len);
}

/* Non-zero when ref starts with a URI scheme ("name:"). */
static int has_scheme(const char *ref)
{
    const char *p = ref;

    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
           (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')
        p++;
    return *p == ':';
}

/* Resolves a relative reference ("/p", "?q", "p", "../p") against c->cur
 * into c->next. Like curl, a reference of only "#frag" is a path: the
 * current directory. */
static int follow_relative(struct http1 *c, const char *ref, size_t len)
{
    const struct target *cur = &c->cur;
    size_t base = 0;

    memcpy(c->next.host, cur->host, sizeof(cur->host));
    c->next.port = cur->port;
    if (ref[0] == '?') {
        base = strcspn(cur->path, "?");
    } else if (ref[0] != '/') {
        base = strcspn(cur->path, "?");
        while (base > 0 && cur->path[base - 1] != '/')
            base--;
    }
    return target_path(&c->next, cur->path, base, ref, len);
}

/* Makes c->loc, the Location just received, the current target. 0 when
 * done, FALLBACK when it is not one this client follows, -1 when out of
 * memory. */
static int target_follow(struct http1 *c)
{
    const char *loc = c->loc;
    struct url_parts u;
    struct target swap;
    int rc;

    for (const char *p = loc; *p; p++) {
        if (!url_char_ok((unsigned char)*p))
            return FALLBACK;
    }
    if (has_scheme(loc) || (loc[0] == '/' && loc[1] == '/')) {
        if (has_scheme(loc) ? url_split(loc, &u)
                            : split_authority(loc + 2, &u))
            return FALLBACK;
        rc = target_set(&c->next, &u);
    } else {
        rc = follow_relative(c, loc, strcspn(loc, "#"));
    }
    if (rc < 0)
        return -1;
    swap = c->cur;
    c->cur = c->next;
    c->next = swap;
    return 0;
}

int http1_can(const j4_http_request_t *req)
{
    struct url_parts u;

    if (!req || !req->url)
        return 0;
    pthread_once(&proxy_once, proxy_check);
    if (proxy_set)
        return 0;
    if (req->method && !method_ok(req->method))
        return 0;
    if (body_length(req) > HTTP1_BODY_NATIVE_MAX ||
        !headers_ok(req->headers))
        return 0;
    return url_split(req->url, &u) == 0;
}

/* -------------------------------------------------------------- names */

struct addrs {
    unsigned n;
    socklen_t len[DNS_ADDRS];
    struct sockaddr_storage addr[DNS_ADDRS];
};

struct dns_entry {
    char name[HOST_MAX];
    int64_t expires_us;          /* 0: a free slot */
    struct addrs a;
};

static pthread_mutex_t dns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dns_entry dns_cache[DNS_SLOTS];

static void addrs_add(struct addrs *a, const void *sa, socklen_t len)
{
    if (a->n == DNS_ADDRS || len > sizeof(a->addr[0]))
        return;
    memcpy(&a->addr[a->n], sa, len);
    a->len[a->n++] = len;
}

static void addrs_add_ip(struct addrs *a, int family, const void *ip)
{
    struct sockaddr_in in4 = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};

    if (family == AF_INET) {
        memcpy(&in4.sin_addr, ip, sizeof(in4.sin_addr));
        addrs_add(a, &in4, sizeof(in4));
    } else {
        memcpy(&in6.sin6_addr, ip, sizeof(in6.sin6_addr));
        addrs_add(a, &in6, sizeof(in6));
    }
}

static void addrs_port(struct addrs *a, unsigned port)
{
    for (unsigned i = 0; i < a->n; i++) {
        struct sockaddr *sa = (struct sockaddr *)&a->addr[i];

        if (sa->sa_family == AF_INET)
            ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
    }
}

static int is_localhost(const char *host)
{
    size_t n = strlen(host);

    return strcasecmp(host, "localhost") == 0 ||
           (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0);
}

/* IP literals, and "localhost" names the way curl resolves them, with no
 * lookup. 1 when host was one of those, 0 for a name to look up. */
static int resolve_literal(const char *host, struct addrs *a)
{
    unsigned char ip[sizeof(struct in6_addr)];
    char v6[64];

    a->n = 0;
    if (host[0] == '[') {
        size_t n = strlen(host) - 2;

        memcpy(v6, host + 1, n); /* split_host() checked it fits */
        v6[n] = '\0';
        if (inet_pton(AF_INET6, v6, ip) == 1)
            addrs_add_ip(a, AF_INET6, ip);
        return 1;
    }
    if (inet_pton(AF_INET, host, ip) == 1) {
        addrs_add_ip(a, AF_INET, ip);
        return 1;
    }
    if (!is_localhost(host))
        return 0;
    addrs_add_ip(a, AF_INET, &(struct in_addr){htonl(INADDR_LOOPBACK)});
    addrs_add_ip(a, AF_INET6, &in6addr_loopback);
    return 1;
}

static int dns_cache_get(const char *name, struct addrs *a)
{
    int64_t now = clock_mono_us();
    int found = 0;

    pthread_mutex_lock(&dns_lock);
    for (int i = 0; i < DNS_SLOTS && !found; i++) {
        struct dns_entry *e = &dns_cache[i];

        if (e->expires_us > now && strcasecmp(e->name, name) == 0) {
            *a = e->a;
            found = 1;
        }
    }
    pthread_mutex_unlock(&dns_lock);
    return found;
}

/* Stores a in the slot of the same name, a free or expired one, or the
 * one that expires first. */
static void dns_cache_put(const char *name, const struct addrs *a)
{
    int64_t now = clock_mono_us();
    struct dns_entry *pick = &dns_cache[0];

    pthread_mutex_lock(&dns_lock);
    for (int i = 0; i < DNS_SLOTS; i++) {
        struct dns_entry *e = &dns_cache[i];

        if (e->expires_us > now && strcasecmp(e->name, name) == 0) {
            pick = e;
            break;
        }
        if (e->expires_us < pick->expires_us)
            pick = e;
    }
    snprintf(pick->name, sizeof(pick->name), "%s", name);
    pick->a = *a;
    pick->expires_us = now + DNS_TTL_US;
    pthread_mutex_unlock(&dns_lock);
}

struct dns_job {
    const char *name;
    struct addrs *a;
};

/* On a helper thread (sched_block): the system's resolver. */
static int dns_lookup(void *arg)
{
    struct dns_job *job = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res, *ai;

    job->a->n = 0;
    if (getaddrinfo(job->name, NULL, &hints, &res) != 0)
        return -1;
    for (ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            addrs_add(job->a, ai->ai_addr, ai->ai_addrlen);
    }
    freeaddrinfo(res);
    return job->a->n ? 0 : -1;
}

/* ---------------------------------------------------------- waiting */

static void abort_query(struct xfer *x)
{
    if (x->abort_fn)
        x->abort_at_us = x->abort_fn(x->abort_arg);
}

static int64_t xfer_until(const struct xfer *x)
{
    return x->abort_at_us < x->deadline_us ? x->abort_at_us
                                           : x->deadline_us;
}

/* Records which of the abort time and the deadline came first. */
static int fail_time(struct xfer *x)
{
    if (x->abort_at_us <= x->deadline_us)
        return fail(x, J4_OUTCOME_INTERRUPTED, J4_ERR_STOPPED);
    return fail(x, J4_OUTCOME_TIMEOUT, J4_ERR_TIMEOUT);
}

/* For work that may go on without waiting (a long body that is always
 * there to read): lets the loop's other fibers run, and fails once time
 * is up. */
static int check_time(struct xfer *x)
{
    fiber_yield_if_busy();
    abort_query(x);
    x->reads = 0;
    return clock_mono_us() < xfer_until(x) ? 0 : fail_time(x);
}

/* Waits until io is ready for one of events; *ready (may be NULL) gets
 * the ready ones. -1 once the deadline or the abort time has passed. */
static int wait_io(struct xfer *x, struct sched_io *io, unsigned events,
                   int *ready)
{
    for (;;) {
        int64_t until = xfer_until(x);
        int r = sched_io_wait(io, events, until);

        if (r > 0) {
            x->reads = 0;
            if (ready)
                *ready = r;
            return 0;
        }
        if (r < 0)
            abort_query(x); /* woken: a stop may have begun */
        else if (clock_mono_us() >= until)
            return fail_time(x);
    }
}

/* Addresses of c->cur's host, with its port. */
static int resolve(struct xfer *x, const struct target *t, struct addrs *a)
{
    if (!resolve_literal(t->host, a) && !dns_cache_get(t->host, a)) {
        struct dns_job job = {.name = t->host, .a = a};

        if (sched_block(dns_lookup, &job) != 0)
            return fail(x, J4_OUTCOME_DNS, J4_ERR_DNS);
        dns_cache_put(t->host, a);
        if (check_time(x) < 0) /* the lookup cannot be cut short */
            return -1;
    }
    if (!a->n)
        return fail(x, J4_OUTCOME_DNS, J4_ERR_DNS);
    addrs_port(a, t->port);
    return 0;
}

/* -------------------------------------------------------- connections */

static void conn_close(struct conn *k)
{
    if (k->fd < 0)
        return;
    sched_io_del(k->io);
    close(k->fd);
    k->fd = -1;
    k->io = NULL;
}

static _Atomic int64_t fd_warn_next_us;

/* Says, once a minute at most, why sockets cannot be had. */
static void warn_out_of_fds(int err)
{
    int64_t now = clock_mono_us();
    int64_t next = atomic_load(&fd_warn_next_us);
    struct rlimit rl;

    if (now < next ||
        !atomic_compare_exchange_strong(&fd_warn_next_us, &next,
                                        now + FD_WARN_US))
        return;
    if (err == ENFILE)
        log_warn("http: cannot open a connection: the system is out of file descriptors (fs.file-max): raise it or lower the worker count");
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
             rl.rlim_cur != RLIM_INFINITY)
        log_warn("http: cannot open a connection: out of file descriptors (ulimit -n %llu): raise it or lower the worker count",
                 (unsigned long long)rl.rlim_cur);
    else
        log_warn("http: cannot open a connection: out of file descriptors: raise ulimit -n or lower the worker count");
}

/* No socket for a connection. Out of file descriptors, no other address
 * would do better: that fails the request as libcurl does (couldn't
 * connect, so "connect", though nothing left the machine) and is said
 * in the log, once a minute. Other errors (an address family the
 * system lacks) leave the next address to try. */
static int socket_failed(struct xfer *x, int err)
{
    if (err != EMFILE && err != ENFILE)
        return 1;
    warn_out_of_fds(err);
    return fail(x, J4_OUTCOME_CONNECT, J4_ERR_CONNECT);
}

/* Connects k to one address: 0 when connected, 1 when this address
 * failed (try the next), -1 when time is up, memory or descriptors ran
 * out. */
static int connect_one(struct xfer *x, struct conn *k,
                       const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    int one = 1, err = 0;
    socklen_t elen = sizeof(err);

    if (fd < 0)
        return socket_failed(x, errno);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    k->io = sched_io_add(fd);
    if (!k->io) {
        close(fd);
        return fail_nomem(x);
    }
    k->fd = fd;
    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        goto out_close;
    if (wait_io(x, k->io, SCHED_OUT, NULL) < 0) {
        conn_close(k);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && !err)
        return 0;
out_close:
    conn_close(k);
    return 1;
}

static int conn_open(struct http1 *c, struct xfer *x, struct conn *k)
{
    struct addrs a;
    int rc = 1;

    if (resolve(x, &c->cur, &a) < 0)
        return -1;
    for (unsigned i = 0; i < a.n && rc > 0; i++)
        rc = connect_one(x, k, (struct sockaddr *)&a.addr[i], a.len[i]);
    if (rc > 0)
        return fail(x, J4_OUTCOME_CONNECT, J4_ERR_CONNECT);
    if (rc < 0)
        return -1;
    memcpy(k->host, c->cur.host, sizeof(k->host));
    k->port = c->cur.port;
    return 0;
}

/* The kept connection to c->cur, or a new one in a free slot or in
 * place of the least recently used. */
static int conn_get(struct http1 *c, struct xfer *x)
{
    struct conn *pick = NULL;

    for (int i = 0; i < HTTP1_CONNS; i++) {
        struct conn *k = &c->conns[i];

        if (k->fd >= 0 && k->port == c->cur.port &&
            strcasecmp(k->host, c->cur.host) == 0) {
            x->conn = k;
            x->reused = 1;
            k->last_use = ++c->uses;
            return 0;
        }
        if (!pick || (pick->fd >= 0 &&
                      (k->fd < 0 || k->last_use < pick->last_use)))
            pick = k;
    }
    conn_close(pick);
    x->conn = pick;
    x->reused = 0;
    pick->last_use = ++c->uses;
    return conn_open(c, x, pick);
}

/* ----------------------------------------------------- request head */

static void put(struct http1 *c, const char *s, size_t n)
{
    if (c->out_len + n > c->out_cap &&
        grow(&c->out, &c->out_cap, c->out_len + n, OUT_INIT) < 0) {
        c->out_oom = 1;
        return;
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

#define PUT_LIT(c, s) put((c), (s), sizeof(s) - 1)

static void put_str(struct http1 *c, const char *s)
{
    put(c, s, strlen(s));
}

static void put_uint(struct http1 *c, uint64_t v)
{
    char buf[24];
    size_t i = sizeof(buf);

    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(c, buf + i, sizeof(buf) - i);
}

/* What the caller's lines do to curl's own headers. */
struct hdr_scan {
    const char *host;            /* the caller's Host line */
    enum hdr_form host_form;
    int has_accept, has_ctype;
};

static void hdr_scan(const char *const *h, struct hdr_scan *s)
{
    memset(s, 0, sizeof(*s));
    for (; h && *h; h++) {
        size_t n;
        enum hdr_form f = hdr_form(*h, &n);

        if (name_is(*h, n, "host") && !s->host) {
            s->host = *h;
            s->host_form = f;
        }
        s->has_accept |= name_is(*h, n, "accept");
        s->has_ctype |= name_is(*h, n, "content-type");
    }
}

/* Host as curl sends it: the caller's own, unless a redirect went to
 * another host; "Host:" alone sends none. */
static void head_host(struct http1 *c, const struct hdr_scan *s,
                      int same_host)
{
    if (same_host && s->host) {
        if (s->host_form == HDR_SEND) {
            PUT_LIT(c, "Host:");
            put_str(c, s->host + 5);
            PUT_LIT(c, "\r\n");
        } else if (s->host_form == HDR_EMPTY) {
            PUT_LIT(c, "Host:\r\n");
        }
        return;
    }
    PUT_LIT(c, "Host: ");
    put_str(c, c->cur.host);
    if (c->cur.port != 80) {
        PUT_LIT(c, ":");
        put_uint(c, c->cur.port);
    }
    PUT_LIT(c, "\r\n");
}

/* The caller's lines; Authorization and Cookie only to the first host
 * and port, as curl guards them. */
static void head_caller(struct http1 *c, const char *const *h,
                        int same_origin)
{
    for (; h && *h; h++) {
        size_t n;
        enum hdr_form f = hdr_form(*h, &n);

        if (f == HDR_DROP || name_is(*h, n, "host"))
            continue;
        if (!same_origin && (name_is(*h, n, "authorization") ||
                             name_is(*h, n, "cookie")))
            continue;
        if (f == HDR_EMPTY) {
            put(c, *h, n);
            PUT_LIT(c, ":\r\n");
        } else {
            put_str(c, *h);
            PUT_LIT(c, "\r\n");
        }
    }
}

static int head_build(struct http1 *c, struct xfer *x)
{
    int same_host = strcasecmp(c->cur.host, c->first_host) == 0;
    struct hdr_scan s;

    c->out_len = 0;
    c->out_oom = 0;
    hdr_scan(x->req->headers, &s);
    put_str(c, x->method);
    PUT_LIT(c, " ");
    put(c, c->cur.path, c->cur.path_len);
    PUT_LIT(c, " HTTP/1.1\r\n");
    head_host(c, &s, same_host);
    if (!s.has_accept)
        PUT_LIT(c, "Accept: */*\r\n");
    head_caller(c, x->req->headers,
                same_host && c->cur.port == c->first_port);
    for (const char *const *e = x->extra; e && *e; e++) {
        put_str(c, *e);
        PUT_LIT(c, "\r\n");
    }
    if (x->body) {
        PUT_LIT(c, "Content-Length: ");
        put_uint(c, x->body_len);
        PUT_LIT(c, "\r\n");
        if (!s.has_ctype)
            PUT_LIT(c, "Content-Type: application/x-www-form-urlencoded\r\n");
    }
    PUT_LIT(c, "\r\n");
    return c->out_oom ? fail_nomem(x) : 0;
}

/* ------------------------------------------------------ socket I/O */

/* While the body is still going out and the socket turned readable: 1
 * when the peer has sent something (an early answer, or its end), 0 for
 * a readiness left from before. */
static int answered_early(struct xfer *x)
{
    char b;
    ssize_t n = recv(x->conn->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        sched_io_clear(x->conn->io, SCHED_IN);
        return 0;
    }
    x->unsent = 1;
    return 1;
}

/* Sends the head and the body. 0 when all is written, or when the peer
 * answered (or went away) before taking all of the body (x->unsent);
 * LOST when the peer is gone; -1 on failure. */
static int send_request(struct http1 *c, struct xfer *x)
{
    struct conn *k = x->conn;
    struct iovec iov[2] = {{c->out, c->out_len},
                           {(void *)x->body, x->body ? x->body_len : 0}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = iov[1].iov_len ? 2
                                                                      : 1};

    x->sent = 1;
    while (msg.msg_iovlen) {
        ssize_t n = sendmsg(k->fd, &msg, MSG_NOSIGNAL);
        int ready;

        if (n >= 0) {
            for (; msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len;
                 msg.msg_iov++, msg.msg_iovlen--)
                n -= (ssize_t)msg.msg_iov->iov_len;
            if (msg.msg_iovlen) {
                msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
                msg.msg_iov->iov_len -= (size_t)n;
            }
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EPIPE || errno == ECONNRESET)
            return LOST;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return fail(x, J4_OUTCOME_CONNECT, J4_ERR_CONNECT);
        sched_io_clear(k->io, SCHED_OUT);
        if (wait_io(x, k->io, SCHED_IN | SCHED_OUT, &ready) < 0)
            return -1;
        if (!(ready & SCHED_OUT) && answered_early(x))
            return 0;
    }
    return 0;
}

/* Reads up to n bytes into buf, waiting as needed. Returns the count, 0
 * at the end of the stream (x->reset when it was a reset), -1 on
 * failure. */
static ssize_t io_read(struct xfer *x, char *buf, size_t n)
{
    struct conn *k = x->conn;

    if (++x->reads > CHECK_READS && check_time(x) < 0)
        return -1;
    for (;;) {
        ssize_t r = read(k->fd, buf, n);

        if (r > 0) {
            x->got += (size_t)r;
            return r;
        }
        if (r == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET) {
            x->reset = 1;
            return 0;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return fail(x, J4_OUTCOME_CONNECT, J4_ERR_CONNECT);
        sched_io_clear(k->io, SCHED_IN);
        if (wait_io(x, k->io, SCHED_IN, NULL) < 0)
            return -1;
    }
}

/* Makes room at the end of c->in: drops what was parsed, then compacts,
 * then grows up to IN_MAX, which head_end()'s limits keep a head in. */
static int in_room(struct http1 *c, struct xfer *x)
{
    if (c->in_pos == c->in_len)
        c->in_pos = c->in_len = 0;
    if (c->in_len < c->in_cap)
        return 0;
    if (c->in_pos) {
        memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
        c->in_len -= c->in_pos;
        c->in_pos = 0;
        return 0;
    }
    if (c->in_cap >= IN_MAX)
        return fail_proto(x); /* cannot happen: see head_end() */
    return grow(&c->in, &c->in_cap, c->in_cap * 2, IN_INIT) < 0
               ? fail_nomem(x)
               : 0;
}

/* Reads more of the response into c->in. 0 when some came, -1 on
 * failure, LOST when the connection ended before any byte; an end after
 * some bytes fails as curl's "partial" or "recv" errors do. */
static int in_fill(struct http1 *c, struct xfer *x)
{
    ssize_t n;

    if (in_room(c, x) < 0)
        return -1;
    n = io_read(x, c->in + c->in_len, c->in_cap - c->in_len);
    if (n < 0)
        return -1;
    if (n == 0) {
        if (!x->got)
            return LOST;
        return x->reset ? fail(x, J4_OUTCOME_CONNECT, J4_ERR_CONNECT)
                        : fail_proto(x);
    }
    c->in_len += (size_t)n;
    return 0;
}

/* --------------------------------------------------- response head */

/* Finds the blank line that ends the head in c->in, line by line from
 * *scan on (the offset from in_pos of the first line not yet seen, kept
 * between calls). Bare LF line ends count, as curl accepts them. Each
 * line is held to libcurl's limits: one longer than HEAD_LINE_MAX fails
 * as curl's "out of memory" does (outcome other), heads past HEADS_MAX
 * as its "too large response headers" (a receive error). 1 with *end
 * just past the blank line, 0 when more is needed, -1 on failure. */
static int head_end(const struct http1 *c, struct xfer *x, size_t *scan,
                    size_t *end)
{
    const char *base = c->in + c->in_pos;
    size_t len = c->in_len - c->in_pos;
    const char *nl;

    while ((nl = memchr(base + *scan, '\n', len - *scan))) {
        size_t line = (size_t)(nl - base) + 1 - *scan;
        int blank = line == 1 || (line == 2 && base[*scan] == '\r');

        if (line > HEAD_LINE_MAX)
            return fail_proto(x);
        x->head_bytes += line;
        if (x->head_bytes > HEADS_MAX)
            return fail_recv(x);
        *scan += line;
        if (blank) {
            *end = *scan;
            return 1;
        }
    }
    return len - *scan >= HEAD_LINE_MAX ? fail_proto(x) : 0;
}

/* Non-zero when the last transfer coding of v is "chunked". */
static int last_is_chunked(const char *v, size_t n)
{
    const char *t = v;
    size_t tn = n;

    for (size_t i = n; i > 0; i--) {
        if (v[i - 1] == ',') {
            t = v + i;
            tn = n - i;
            break;
        }
    }
    trim(&t, &tn);
    return name_is(t, tn, "chunked");
}

/* A Content-Length value, read as libcurl does: the number it starts
 * with ("+" allowed), whatever follows ("2, 2", "2, 3" and "2x" are 2),
 * the last such header winning; a number past int64 is ignored and the
 * connection not kept. -1 for anything else ("", "x", "-1", ",2"). */
static int parse_length(struct resp *r, const char *v, size_t n)
{
    int64_t len = 0;
    size_t i = n && v[0] == '+' ? 1 : 0, first = i;
    int huge = 0;

    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++) {
        int d = v[i] - '0';

        huge |= len > (INT64_MAX - d) / 10;
        if (!huge)
            len = len * 10 + d;
    }
    if (i == first)
        return -1;
    if (huge)
        r->clen_huge = 1;
    else
        r->clen = len;
    return 0;
}

static int loc_set(struct http1 *c, struct xfer *x, const char *v, size_t n)
{
    if (grow(&c->loc, &c->loc_cap, n + 1, 256) < 0)
        return fail_nomem(x);
    memcpy(c->loc, v, n);
    c->loc[n] = '\0';
    x->has_loc = n > 0; /* curl does not follow an empty one */
    return 0;
}

/* A status whose length curl does not read: 1xx, 204, 304. */
static int bodyless_status(long status)
{
    return status < 200 || status == 204 || status == 304;
}

/* One header line ("Name: value", line end cut off). */
static int parse_field(struct http1 *c, struct xfer *x, struct resp *r,
                       const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    const char *v;
    size_t name, vn;

    if (!colon || line[0] == ' ' || line[0] == '\t')
        return 0; /* not a field, or an obsolete folded line */
    name = (size_t)(colon - line);
    v = colon + 1;
    vn = n - name - 1;
    trim(&v, &vn);
    if (name_is(line, name, "content-length"))
        return bodyless_status(x->status) || parse_length(r, v, vn) == 0
                   ? 0
                   : fail_proto(x);
    if (name_is(line, name, "transfer-encoding")) {
        r->te = 1;
        r->chunked = last_is_chunked(v, vn);
    } else if (name_is(line, name, "connection")) {
        r->close |= has_token(v, vn, "close");
        r->keep_alive |= has_token(v, vn, "keep-alive");
    } else if (name_is(line, name, "location") && !x->has_loc &&
               x->status >= 300 && x->status < 400) {
        return loc_set(c, x, v, vn);
    }
    return 0;
}

/* "HTTP/1.x NNN reason" */
static int parse_status(struct xfer *x, struct resp *r, const char *p,
                        size_t n)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' ||
        p[7] > '9' || p[8] != ' ')
        return fail_proto(x);
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return fail_proto(x);
    }
    if (n > 12 && p[12] != ' ')
        return fail_proto(x);
    r->minor = p[7] - '0';
    x->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    return x->status < 100 ? fail_proto(x) : 0;
}

/* Parses the head in c->in[in_pos, in_pos + end) and drops it. */
static int parse_head(struct http1 *c, struct xfer *x, struct resp *r,
                      size_t end)
{
    const char *p = c->in + c->in_pos, *stop = p + end;
    int first = 1;

    memset(r, 0, sizeof(*r));
    r->clen = -1;
    x->has_loc = 0;
    while (p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        size_t n = (size_t)(nl - p);

        if (n && p[n - 1] == '\r')
            n--;
        if (!n)
            break;
        if (first ? parse_status(x, r, p, n) < 0
                  : parse_field(c, x, r, p, n) < 0)
            return -1;
        first = 0;
        p = nl + 1;
    }
    c->in_pos += end;
    return first ? fail_proto(x) : 0;
}

/* Reads and parses the next response head. */
static int read_head(struct http1 *c, struct xfer *x, struct resp *r)
{
    size_t scan = 0, end;

    for (;;) {
        int rc;

        rc = head_end(c, x, &scan, &end);
        if (rc)
            return rc < 0 ? -1 : parse_head(c, x, r, end);
        rc = in_fill(c, x);
        if (rc)
            return rc;
    }
}

/* --------------------------------------------------- response body */

/* Room in the body buffer for len bytes and the NUL, up to the cap. */
static int body_reserve(struct http1 *c, size_t len)
{
    size_t need = (len < HTTP1_BODY_CAP ? len : HTTP1_BODY_CAP) + 1;

    if (need <= c->body_cap)
        return 0;
    if (grow(&c->body, &c->body_cap, need, 4096) < 0)
        return -1;
    if (c->body_cap > HTTP1_BODY_CAP + 1) {
        char *p = realloc(c->body, HTTP1_BODY_CAP + 1);

        if (p) {
            c->body = p;
            c->body_cap = HTTP1_BODY_CAP + 1;
        }
    }
    return 0;
}

/* Keeps body bytes up to the cap, as sdk_http.c does; out of memory
 * only truncates. */
static void body_put(struct http1 *c, struct xfer *x, const char *p,
                     size_t n)
{
    size_t room = HTTP1_BODY_CAP - c->body_len;
    size_t take = n < room ? n : room;

    if (!x->store || !take || body_reserve(c, c->body_len + take) < 0)
        return;
    memcpy(c->body + c->body_len, p, take);
    c->body_len += take;
}

/* Reads up to max body bytes straight into the body buffer, grown as
 * needed; once it is full (or memory ran out), into c->in to be
 * dropped. Returns as io_read(). */
static ssize_t body_read(struct http1 *c, struct xfer *x, uint64_t max)
{
    size_t room = 0;
    ssize_t n;

    if (x->store && c->body_len < HTTP1_BODY_CAP) {
        body_reserve(c, c->body_len + (max < IN_STREAM ? max : IN_STREAM));
        room = c->body_cap ? c->body_cap - 1 - c->body_len : 0;
    }
    if (room) {
        n = io_read(x, c->body + c->body_len, max < room ? max : room);
        if (n > 0)
            c->body_len += (size_t)n;
        return n;
    }
    c->in_pos = c->in_len = 0;
    if (c->in_cap < IN_STREAM && max > c->in_cap)
        grow(&c->in, &c->in_cap, IN_STREAM, IN_INIT); /* else smaller */
    return io_read(x, c->in, max < c->in_cap ? max : c->in_cap);
}

/* Fails for the end of a body before its end. */
static int body_cut(struct xfer *x)
{
    return x->reset ? fail(x, J4_OUTCOME_CONNECT, J4_ERR_CONNECT)
                    : fail_proto(x);
}

static int body_sized(struct http1 *c, struct xfer *x, uint64_t left)
{
    size_t avail = c->in_len - c->in_pos;
    size_t take = avail < left ? avail : (size_t)left;

    body_put(c, x, c->in + c->in_pos, take);
    c->in_pos += take;
    left -= take;
    if (left && x->store)
        body_reserve(c, c->body_len + left);
    while (left) {
        ssize_t n = body_read(c, x, left);

        if (n <= 0)
            return n < 0 ? -1 : body_cut(x);
        left -= (uint64_t)n;
    }
    return 0;
}

static int body_until_close(struct http1 *c, struct xfer *x)
{
    body_put(c, x, c->in + c->in_pos, c->in_len - c->in_pos);
    c->in_pos = c->in_len;
    for (;;) {
        ssize_t n = body_read(c, x, UINT64_MAX);

        if (n <= 0)
            return n < 0 ? -1 : x->reset ? body_cut(x) : 0;
    }
}

/* Where the chunked framing is, read byte by byte as libcurl does, so
 * the same replies pass: a size of at most 16 hex digits, the rest of
 * its line skipped; after the data, CRs then LF; trailer lines of at
 * most TRAILER_MAX bytes, each ending in LF or CRLF; then an empty line.
 * Whatever fails fails as curl's CURLE_RECV_ERROR does. */
enum chunk_state {
    CH_HEX,        /* the size's digits */
    CH_EXT,        /* the rest of the size line, up to LF */
    CH_DATA,
    CH_DATA_END,   /* CRs and the LF after the data */
    CH_LINE,       /* at the start of a trailer line or of the last */
    CH_TRAILER,    /* in a trailer line */
    CH_TRAILER_LF, /* the LF after a trailer line's CR */
    CH_LAST_LF     /* the LF after the last line's CR */
};

struct chunks {
    enum chunk_state state;
    uint64_t left;               /* of the chunk; in CH_HEX, its size */
    unsigned digits;
    size_t trailer;              /* bytes of this trailer line */
};

static int hex_digit(char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* The size's digits, then the end of its line. */
static int chunk_size_byte(struct chunks *k, char ch)
{
    int d = k->state == CH_HEX ? hex_digit(ch) : -1;

    if (d >= 0) {
        if (k->digits++ == CHUNK_DIGITS)
            return -1;
        k->left = k->left * 16 + (uint64_t)d;
        return 0;
    }
    if (k->state == CH_HEX && (!k->digits || k->left > INT64_MAX))
        return -1;
    k->state = ch != '\n' ? CH_EXT : k->left ? CH_DATA : CH_LINE;
    return 0;
}

/* Takes one byte of framing (not of a chunk's data). 1 when it ended
 * the body, 0 to go on, -1 when the framing is broken. */
static int chunk_byte(struct chunks *k, char ch)
{
    switch (k->state) {
    case CH_HEX:
    case CH_EXT:
        return chunk_size_byte(k, ch);
    case CH_DATA_END:
        if (ch == '\n')
            *k = (struct chunks){.state = CH_HEX};
        return ch == '\n' || ch == '\r' ? 0 : -1;
    case CH_LINE:
        if (ch == '\n')
            return 1;
        k->state = ch == '\r' ? CH_LAST_LF : CH_TRAILER;
        k->trailer = ch == '\r' ? 0 : 1;
        return 0;
    case CH_TRAILER:
        if (ch == '\r' || ch == '\n')
            k->state = ch == '\r' ? CH_TRAILER_LF : CH_LINE;
        else if (++k->trailer > TRAILER_MAX)
            return -1;
        return 0;
    case CH_TRAILER_LF:
        k->state = CH_LINE;
        return ch == '\n' ? 0 : -1;
    case CH_LAST_LF:
        return ch == '\n' ? 1 : -1;
    default: /* CH_DATA: not framing */
        return -1;
    }
}

/* Consumes what it can of c->in. 1 when the body and its trailers are
 * complete, 0 when more bytes are needed, -1 when malformed. */
static int chunk_parse(struct http1 *c, struct xfer *x, struct chunks *k)
{
    while (c->in_pos < c->in_len) {
        const char *p = c->in + c->in_pos;
        size_t avail = c->in_len - c->in_pos, n;
        int rc;

        if (k->state == CH_DATA) {
            n = avail < k->left ? avail : (size_t)k->left;
            body_put(c, x, p, n);
            c->in_pos += n;
            k->left -= n;
            if (!k->left)
                k->state = CH_DATA_END;
            continue;
        }
        c->in_pos++;
        rc = chunk_byte(k, *p);
        if (rc)
            return rc;
    }
    return 0;
}

static int body_chunked(struct http1 *c, struct xfer *x)
{
    struct chunks k = {.state = CH_HEX};

    for (;;) {
        int rc = chunk_parse(c, x, &k);

        if (rc)
            return rc > 0 ? 0 : fail_recv(x);
        rc = in_fill(c, x);
        if (rc)
            return rc == LOST ? body_cut(x) : rc;
    }
}

/* ------------------------------------------------------- response */

/* The final response's head, after any 1xx. */
static int read_final_head(struct http1 *c, struct xfer *x, struct resp *r)
{
    for (;;) {
        int rc = read_head(c, x, r);

        if (rc)
            return rc;
        if (x->status == 101)
            return fail_proto(x); /* no upgrade was asked for */
        if (x->status >= 200)
            return 0;
    }
}

static int read_response(struct http1 *c, struct xfer *x)
{
    struct resp r;
    int rc = read_final_head(c, x, &r), no_body, until_close;

    if (rc)
        return rc;
    no_body = x->head_only || x->status == 204 || x->status == 304;
    until_close = !no_body && (r.te ? !r.chunked : r.clen < 0);
    x->keep = (r.minor ? !r.close : r.keep_alive) && !until_close &&
              !x->unsent && !x->req_close && !r.clen_huge;
    x->follow = x->has_loc && x->max_redirects != 0;
    x->store = !x->follow;
    if (x->store)
        c->body_len = 0;
    if (no_body)
        rc = 0;
    else if (until_close)
        rc = x->follow ? 0 /* a redirect's: not worth reading to the end */
                       : body_until_close(c, x);
    else if (r.te)
        rc = body_chunked(c, x);
    else
        rc = body_sized(c, x, (uint64_t)r.clen);
    if (c->in_pos != c->in_len)
        x->keep = 0; /* bytes after the response: do not trust the rest */
    return rc;
}

/* -------------------------------------------------------- exchange */

/* One request and its response over a connection to c->cur: a kept one
 * or a new one; when a kept one turns out to have died before answering,
 * once more on a fresh one, as curl does.
 *
 * A kept connection ends each exchange drained: every response byte was
 * read, so its readiness is cleared then, and the next request waits for
 * its answer before the first read instead of reading into EAGAIN first
 * (one system call less per request). Whatever arrives after the clear,
 * the answer or the peer's end (a reset, at the latest, once our request
 * reaches a closed socket), is a new edge the loop reports. */
static int attempt(struct http1 *c, struct xfer *x)
{
    for (int tries = 0;; tries++) {
        int rc = conn_get(c, x);

        if (rc)
            return rc;
        c->in_pos = c->in_len = 0;
        x->got = 0;
        x->reset = x->unsent = 0;
        rc = send_request(c, x);
        if (!rc && !x->unsent) /* see the comment of attempt() */
            rc = wait_io(x, x->conn->io, SCHED_IN, NULL);
        if (!rc)
            rc = read_response(c, x);
        if (!rc)
            break;
        conn_close(x->conn);
        if (rc != LOST)
            return rc;
        if (!x->reused || tries)
            return fail(x, J4_OUTCOME_CONNECT, J4_ERR_CONNECT);
    }
    if (x->keep)
        sched_io_clear(x->conn->io, SCHED_IN);
    else
        conn_close(x->conn);
    return 0;
}

/* What curl does to the method and body on a redirect: 301, 302 and 303
 * drop the body, and a POST that had one becomes a GET; 307 and 308 and
 * requests without a body go on as they were. */
static void redirect_method(struct xfer *x)
{
    if (!x->body || x->status < 301 || x->status > 303)
        return;
    if (strcmp(x->method, "POST") == 0)
        x->method = "GET";
    x->body = NULL;
    x->body_len = 0;
}

/* The request and the redirects it gets. FALLBACK when a redirect goes
 * where this client does not. */
static int run_chain(struct http1 *c, struct xfer *x)
{
    int followed = 0;

    for (;;) {
        int rc = head_build(c, x);

        if (!rc)
            rc = attempt(c, x);
        if (rc || !x->follow)
            return rc;
        if (followed++ == x->max_redirects)
            return fail(x, J4_OUTCOME_REDIRECTS, J4_ERR_REDIRECTS);
        rc = target_follow(c);
        if (rc)
            return rc < 0 ? fail_nomem(x) : FALLBACK;
        redirect_method(x);
    }
}

/* Readies c's buffers for an exchange: allocates them at the first,
 * and drops those a big response left larger than they are kept. */
static int buffers_ready(struct http1 *c)
{
    if (c->body_cap > BODY_KEEP) {
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
    c->body_len = 0;
    if (c->in_cap > IN_STREAM) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
    c->in_pos = c->in_len = 0;
    if (!c->in && grow(&c->in, &c->in_cap, IN_INIT, IN_INIT) < 0)
        return -1;
    return 0;
}

/* now + ms; INT64_MAX (never) from 2^31 - 1 ms (24 days) on, so that
 * neither this sum nor a wait's milliseconds in an int can overflow. */
static int64_t deadline_after(int64_t now, int64_t ms)
{
    if (ms >= INT32_MAX || now > INT64_MAX - ms * 1000)
        return INT64_MAX;
    return now + ms * 1000;
}

static void xfer_init(struct xfer *x, const j4_http_request_t *req,
                      const char *const *extra, http1_abort_fn abort_at,
                      void *arg)
{
    int64_t timeout_ms = req->timeout_ms > 0 ? req->timeout_ms
                                             : DEFAULT_TIMEOUT_MS;

    memset(x, 0, sizeof(*x));
    x->req = req;
    x->extra = extra;
    x->method = req->method ? req->method : "GET";
    x->body = req->body;
    x->body_len = body_length(req);
    x->head_only = strcmp(x->method, "HEAD") == 0;
    x->max_redirects = req->max_redirects < 0 ? DEFAULT_REDIRECTS
                                              : req->max_redirects;
    x->deadline_us = deadline_after(clock_mono_us(), timeout_ms);
    x->req_close = asks_close(req->headers) || asks_close(extra);
    x->abort_at_us = INT64_MAX;
    x->abort_fn = abort_at;
    x->abort_arg = arg;
    abort_query(x);
}

/* Sets c->cur and the chain's first host from the request's URL. */
static int begin(struct http1 *c, struct xfer *x)
{
    struct url_parts u;

    if (url_split(x->req->url, &u) < 0)
        return FALLBACK; /* http1_can() said yes: cannot happen */
    if (buffers_ready(c) < 0 || target_set(&c->cur, &u) < 0)
        return fail_nomem(x);
    memcpy(c->first_host, c->cur.host, sizeof(c->first_host));
    c->first_port = c->cur.port;
    if (x->abort_at_us <= x->deadline_us && x->abort_at_us <= clock_mono_us())
        return fail_time(x);
    return 0;
}

static int finish(struct http1 *c, const struct xfer *x, int rc,
                  struct http1_result *out)
{
    if (c->body)
        c->body[c->body_len] = '\0';
    out->status = x->status;
    out->body = c->body ? c->body : "";
    out->body_len = c->body_len;
    if (rc < 0) {
        out->outcome = x->outcome;
        if (x->rc == J4_ERR_NOMEM && x->sent)
            return J4_ERR_IO; /* a started request: the caller counts it */
        return x->rc;
    }
    if (x->status >= 400) {
        out->outcome = x->status >= 500 ? J4_OUTCOME_HTTP_5XX
                                        : J4_OUTCOME_HTTP_4XX;
        return J4_ERR_HTTP;
    }
    out->outcome = J4_OUTCOME_OK;
    return J4_OK;
}

int http1_exchange(struct http1 *c, const j4_http_request_t *req,
                   const char *const *extra_headers, http1_abort_fn abort_at,
                   void *arg, struct http1_result *out)
{
    struct xfer x;
    int rc;

    if (!c || !req || !req->url || !out)
        return J4_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    out->outcome = J4_OUTCOME_OTHER;
    out->body = "";
    if (!http1_can(req)) {
        out->fallback = 1;
        return J4_OK;
    }
    xfer_init(&x, req, extra_headers, abort_at, arg);
    rc = begin(c, &x);
    if (!rc)
        rc = run_chain(c, &x);
    if (rc == FALLBACK) {
        out->fallback = 1;
        return J4_OK;
    }
    return finish(c, &x, rc, out);
}

struct http1 *http1_new(void)
{
    struct http1 *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    for (int i = 0; i < HTTP1_CONNS; i++)
        c->conns[i].fd = -1;
    return c;
}

void http1_free(struct http1 *c)
{
    if (!c)
        return;
    for (int i = 0; i < HTTP1_CONNS; i++)
        conn_close(&c->conns[i]);
    free(c->cur.path);
    free(c->next.path);
    free(c->out);
    free(c->in);
    free(c->body);
    free(c->loc);
    free(c);
}
