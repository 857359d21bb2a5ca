/* A load generator for HTTP/1.1 over a Unix socket, in C so that its own cost stays far below the
 * servers it measures (a Python generator saturates before the daemon does and hides the gap).
 *
 *   loadgen SOCKET close|keepalive CONNECTIONS SECONDS [MAX_REQUESTS]
 *
 * Keeps CONNECTIONS requests in flight, each `GET /v1/status`: on a new connection per request
 * (`close`, as PHP's curl calls the socket) or many on one connection (`keepalive`). Prints
 * `requests=N errors=E seconds=S`; a reply that is not `HTTP/1.1 200` with its whole body is an error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BUF (256 * 1024)

static const char CLOSE_REQ[] = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
static const char KEEP_REQ[] = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";

struct conn {
    int fd;
    size_t got;
    char buf[BUF];
};

static struct sockaddr_un addr;
static int keepalive, epfd;
static long done, errors, budget;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int send_request(struct conn *c) {
    const char *req = keepalive ? KEEP_REQ : CLOSE_REQ;
    size_t len = strlen(req);
    c->got = 0;
    budget--;
    return write(c->fd, req, len) == (ssize_t)len ? 0 : -1;
}

/* A fresh connection with its first request written; the connect blocks while the backlog is full. */
static int open_conn(struct conn *c) {
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0 || send_request(c) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        return -1;
    }
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void drop(struct conn *c) {
    close(c->fd);
    c->fd = -1;
}

/* 1 when the buffer holds one whole 200 reply (and, without keep-alive, the server has closed),
 * 0 when more must be read, -1 for a bad reply. */
static int complete(struct conn *c, int eof) {
    if (c->got >= 12 && memcmp(c->buf, "HTTP/1.1 200", 12) != 0)
        return -1;
    char *end = c->got >= 12 ? memmem(c->buf, c->got, "\r\n\r\n", 4) : NULL;
    if (end == NULL)
        return eof ? -1 : 0;
    char *length = strcasestr(c->buf, "\r\ncontent-length:");
    if (length == NULL || length > end)
        return -1;
    size_t want = (size_t)(end + 4 - c->buf) + strtoul(length + 17, NULL, 10);
    if (c->got > want)
        return -1; /* nothing was pipelined, so nothing may follow the body */
    if (c->got < want)
        return eof ? -1 : 0;
    return keepalive || eof ? 1 : 0;
}

static void next(struct conn *c, int ok, double deadline) {
    if (ok)
        done++;
    else
        errors++;
    int more = budget > 0 && now() < deadline;
    if (keepalive && ok && more) {
        if (send_request(c) == 0)
            return;
        errors++;
    }
    drop(c);
    while (more && open_conn(c) != 0) {
        errors++;
        more = budget > 0 && now() < deadline;
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: loadgen SOCKET close|keepalive CONNECTIONS SECONDS [MAX_REQUESTS]\n");
        return 2;
    }
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    keepalive = strcmp(argv[2], "keepalive") == 0;
    int conns = atoi(argv[3]);
    double start = now(), deadline = start + atof(argv[4]);
    budget = argc > 5 ? atol(argv[5]) : 1L << 62;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct conn *pool = calloc(conns, sizeof *pool);
    int open = 0;
    for (int i = 0; i < conns; i++)
        open += open_conn(&pool[i]) == 0;
    if (open == 0) {
        perror("loadgen: connect");
        return 1;
    }
    struct epoll_event events[64];
    for (;;) {
        int live = 0;
        for (int i = 0; i < conns; i++)
            live += pool[i].fd >= 0;
        if (live == 0)
            break;
        int n = epoll_wait(epfd, events, 64, 1000);
        if (n < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->got, BUF - 1 - c->got);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r > 0) {
                c->got += r;
                c->buf[c->got] = '\0';
            }
            int state = complete(c, r <= 0);
            if (state != 0)
                next(c, state > 0, deadline);
        }
    }
    printf("requests=%ld errors=%ld seconds=%.4f\n", done, errors, now() - start);
    return 0;
}
