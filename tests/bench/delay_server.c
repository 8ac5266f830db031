/*
 * delay_server.c - an HTTP/1.1 target that answers after a fixed delay.
 *
 * The latency benchmark needs a target whose true latency is known, so a
 * load generator's reported percentiles can be compared with the truth.
 * This server reads keep-alive GET requests on 127.0.0.1 and answers each
 * one with a tiny 200 exactly DELAY_MS after its last byte arrived. One
 * thread and one epoll set do everything: since every request waits the
 * same time, pending answers form a FIFO queue ordered by deadline, and
 * the loop sleeps (with nanosecond timeouts, epoll_pwait2) until the
 * oldest one is due.
 *
 * Usage: delay_server PORT DELAY_MS    (PORT 0 picks a free one)
 * Prints "delay_server ready port=P" once listening; runs until killed.
 * Requests with a body are not supported: only the headers are read.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define QUEUE_LEN 65536     /* a power of two */
#define READ_BUF 4096

static const char response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    "Content-Length: 2\r\n\r\nok";

struct conn {
    uint32_t gen;       /* bumped on close, so stale answers are dropped */
    size_t len;         /* bytes of an unfinished request kept in buf */
    char buf[READ_BUF];
};

struct pending {
    int fd;
    uint32_t gen;
    int64_t due_ns;
};

struct server {
    int epfd, listen_fd;
    int64_t delay_ns;
    struct conn *conns[MAX_FDS];
    struct pending queue[QUEUE_LEN];
    uint32_t head, tail;
};

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int listen_on(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof(addr);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        close(fd);
        return -1;
    }
    printf("delay_server ready port=%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    return fd;
}

static void conn_close(struct server *sv, int fd)
{
    struct conn *c = sv->conns[fd];

    epoll_ctl(sv->epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    c->gen++;
    c->len = 0;
}

static void accept_all(struct server *sv)
{
    int one = 1;
    int fd;

    while ((fd = accept4(sv->listen_fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

        if (fd >= MAX_FDS) {
            close(fd);
            continue;
        }
        if (!sv->conns[fd])
            sv->conns[fd] = calloc(1, sizeof(struct conn));
        if (!sv->conns[fd]) {
            close(fd);
            continue;
        }
        sv->conns[fd]->len = 0;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        epoll_ctl(sv->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* Queues an answer for every complete request head in the buffer and
 * keeps the unfinished rest. Returns -1 when the connection must go. */
static int take_requests(struct server *sv, int fd, int64_t now)
{
    struct conn *c = sv->conns[fd];
    char *start = c->buf, *end;

    while ((end = memmem(start, c->len - (size_t)(start - c->buf),
                         "\r\n\r\n", 4)) != NULL) {
        if (sv->tail - sv->head == QUEUE_LEN)
            return -1;
        sv->queue[sv->tail++ & (QUEUE_LEN - 1)] = (struct pending){
            .fd = fd, .gen = c->gen, .due_ns = now + sv->delay_ns};
        start = end + 4;
    }
    c->len -= (size_t)(start - c->buf);
    memmove(c->buf, start, c->len);
    return c->len == READ_BUF ? -1 : 0;
}

static void read_requests(struct server *sv, int fd)
{
    struct conn *c = sv->conns[fd];
    ssize_t n = read(fd, c->buf + c->len, READ_BUF - c->len);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(sv, fd);
        return;
    }
    c->len += (size_t)n;
    if (take_requests(sv, fd, mono_ns()) < 0)
        conn_close(sv, fd);
}

/* Answers every request whose time has come; returns the ns until the
 * next one is due, or -1 when none is pending. */
static int64_t answer_due(struct server *sv)
{
    int64_t now = mono_ns();

    while (sv->head != sv->tail) {
        struct pending *p = &sv->queue[sv->head & (QUEUE_LEN - 1)];
        struct conn *c = sv->conns[p->fd];

        if (p->due_ns > now)
            return p->due_ns - now;
        sv->head++;
        if (c->gen != p->gen)
            continue;
        if (write(p->fd, response, sizeof(response) - 1) !=
            (ssize_t)sizeof(response) - 1)
            conn_close(sv, p->fd);
    }
    return -1;
}

static void serve(struct server *sv)
{
    struct epoll_event events[256];

    for (;;) {
        int64_t wait = answer_due(sv);
        struct timespec ts = {.tv_sec = wait / 1000000000,
                              .tv_nsec = wait % 1000000000};
        int n = epoll_pwait2(sv->epfd, events, 256, wait < 0 ? NULL : &ts,
                             NULL);

        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == sv->listen_fd)
                accept_all(sv);
            else
                read_requests(sv, events[i].data.fd);
        }
    }
}

int main(int argc, char **argv)
{
    static struct server sv;
    struct epoll_event ev = {.events = EPOLLIN};

    if (argc != 3) {
        fprintf(stderr, "usage: delay_server PORT DELAY_MS\n");
        return 2;
    }
    sv.delay_ns = (int64_t)(atof(argv[2]) * 1e6);
    sv.listen_fd = listen_on(atoi(argv[1]));
    if (sv.listen_fd < 0) {
        fprintf(stderr, "delay_server: unable to listen on port '%s': %s\n",
                argv[1], strerror(errno));
        return 1;
    }
    sv.epfd = epoll_create1(0);
    ev.data.fd = sv.listen_fd;
    epoll_ctl(sv.epfd, EPOLL_CTL_ADD, sv.listen_fd, &ev);
    serve(&sv);
    return 0;
}
