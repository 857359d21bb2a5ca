/* The floor for status requests: a C server on a Unix socket that answers every request with a canned
 * reply, so what is left is the kernel's cost of a connection and two system calls per request.
 *
 *   cserver SOCKET CLOSE_REPLY_FILE KEEPALIVE_REPLY_FILE
 *
 * A request whose head says `Connection: close` gets the first reply and the connection ends; any other
 * gets the second and the connection stays open. Stops on SIGTERM. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF 16384

struct reply {
    char *data;
    size_t len;
};

struct conn {
    int fd;
    size_t got;
    char buf[BUF];
};

static struct reply slurp(const char *path) {
    struct reply r = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    r.len = ftell(f);
    rewind(f);
    r.data = malloc(r.len);
    if (fread(r.data, 1, r.len, f) != r.len)
        exit(1);
    fclose(f);
    return r;
}

/* Answer every whole request head in the buffer; 0 when the connection must end. */
static int answer(struct conn *c, const struct reply *close_reply, const struct reply *keep_reply) {
    char *end;
    while ((end = memmem(c->buf, c->got, "\r\n\r\n", 4)) != NULL) {
        *end = '\0';
        int closing = strcasestr(c->buf, "\r\nconnection: close") != NULL;
        const struct reply *r = closing ? close_reply : keep_reply;
        if (write(c->fd, r->data, r->len) != (ssize_t)r->len || closing)
            return 0;
        size_t used = (size_t)(end + 4 - c->buf);
        memmove(c->buf, c->buf + used, c->got - used);
        c->got -= used;
    }
    return c->got < BUF - 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: cserver SOCKET CLOSE_REPLY_FILE KEEPALIVE_REPLY_FILE\n");
        return 2;
    }
    struct reply close_reply = slurp(argv[2]), keep_reply = slurp(argv[3]);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    unlink(addr.sun_path); /* a socket left by an earlier run */
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 512) != 0) {
        perror("cserver: listen");
        return 1;
    }
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(epfd, events, 64, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct conn *made = calloc(1, sizeof *made);
                    made->fd = fd;
                    struct epoll_event add = {.events = EPOLLIN, .data.ptr = made};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &add);
                }
                continue;
            }
            ssize_t r = read(c->fd, c->buf + c->got, BUF - 1 - c->got);
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r > 0) {
                c->got += r;
                c->buf[c->got] = '\0';
            }
            if (r <= 0 || !answer(c, &close_reply, &keep_reply)) {
                close(c->fd);
                free(c);
            }
        }
    }
}
