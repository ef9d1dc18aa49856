/*
 * The postbox server's bench subset, in C: the third column of `make bench`.
 *
 * The conductor (server/benches/postbox/c_server.rs) builds this file with
 * `cc -std=c11 -O2` when a C compiler is present, and starts it exactly as
 * it starts our server. It prints the same bytes as ours for what it
 * implements:
 *
 *   - the queue: created O_CREAT|O_EXCL|O_RDONLY|O_NONBLOCK with the mode
 *     exactly, `mq[PRIO]: TEXT`, one trailing newline dropped, at most 256
 *     messages per turn;
 *   - TCP clients: `tcp[IP:PORT]: TEXT`, lines cut in pieces of
 *     --message-size bytes, a partial line printed at end of stream, at most
 *     four reads of 64 KiB per turn (a short read ends them);
 *   - the escaping rule of server/src/escape.rs;
 *   - SIGINT, SIGTERM, SIGHUP through a signalfd; at shutdown connections
 *     end with their partial line, the queue is unlinked, then drained, a
 *     queueful at a time, each written out; a queue that had messages in the
 *     last 20 ms is drained until it has been quiet that long (2 s at most).
 *
 * One level-triggered epoll set; stdout grown to 1 MiB when it is a pipe, as
 * ours does; one output buffer, written once per round and whenever it
 * passes 64 KiB. Not implemented, accepted and ignored: statistics
 * (--no-stats), -v, -q. Not implemented, refused: adopting an existing
 * queue, IPv6 and Unix sockets, --notify signal. stdin is not read.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    MQ_PER_TURN = 256,
    READS_PER_TURN = 4,
    ACCEPTS_PER_TURN = 64,
    CHUNK = 64 * 1024,
    FLUSH_AT = 64 * 1024,
    EVENTS = 256,
    TAG_MAX = 64,
    QUIET_MS = 20,
    SHUTDOWN_LIMIT_MS = 2000,
};

struct conn {
    int fd;
    size_t tag_len;
    char tag[TAG_MAX];
    unsigned char *part; /* an unfinished line, at most max_line bytes */
    size_t part_len, part_cap;
};

static int epfd = -1, sigfd = -1, listenfd = -1;
static mqd_t mq = (mqd_t)-1;
static const char *queue_name = "/postbox";
static long max_messages = 10, message_size = 8192;
static size_t max_line;
static unsigned char *msg, *scratch, *out;
static size_t msg_size, out_len;
static int out_failed, stopping;
static long last_message_ms = -1000000; /* when a drain last found a message */
static struct conn **conns; /* indexed by descriptor */
static size_t conns_cap;

static void fail(const char *what)
{
    fprintf(stderr, "[ERROR] %s: %s\n", what, strerror(errno));
    if (mq != (mqd_t)-1)
        mq_unlink(queue_name); /* a server that cannot run leaves no queue */
    exit(1);
}

static void *alloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        fail("malloc");
    return p;
}

static void flush_out(void)
{
    size_t done = 0;
    while (done < out_len && !out_failed) {
        ssize_t n = write(STDOUT_FILENO, out + done, out_len - done);
        if (n >= 0)
            done += (size_t)n;
        else if (errno != EINTR)
            out_failed = 1; /* no reader left, or output lost: stop */
    }
    out_len = 0;
}

/* ---- escaping ---------------------------------------------------------- */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define BELOW(w, n) (((w) - ONES * (n)) & ~(w) & HIGHS)

/* Whether any byte is below 0x20, a backslash, 0x7f or above: the bytes that
   take the slow path. Eight bytes at a time. */
static int needs_escape(const unsigned char *s, size_t n)
{
    uint64_t hit = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        hit |= BELOW(w, 0x20) | BELOW(w ^ (ONES * '\\'), 1) | BELOW(w ^ (ONES * 0x7f), 1) | (w & HIGHS);
    }
    for (; i < n; i++)
        hit |= s[i] < 0x20 || s[i] == '\\' || s[i] >= 0x7f;
    return hit != 0;
}

/* Length of the valid UTF-8 character at s (s[0] >= 0x80), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* C1 controls, U+061C, U+200B, U+200E, U+200F, bidirectional overrides and
   isolates, U+2028, U+2029, U+FEFF: as server/src/escape.rs. */
static int disguises(const unsigned char *s, size_t len)
{
    if (len == 2)
        return (s[0] == 0xc2 && s[1] <= 0x9f) || (s[0] == 0xd8 && s[1] == 0x9c);
    if (len == 3 && s[0] == 0xef)
        return s[1] == 0xbb && s[2] == 0xbf;
    return len == 3 && s[0] == 0xe2 &&
           ((s[1] == 0x80 && (s[2] == 0x8b || s[2] == 0x8e || s[2] == 0x8f || (s[2] >= 0xa8 && s[2] <= 0xae))) ||
            (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9));
}

static unsigned char *put_hex(unsigned char *o, unsigned char b)
{
    static const char digits[] = "0123456789abcdef";
    o[0] = '\\', o[1] = 'x', o[2] = (unsigned char)digits[b >> 4], o[3] = (unsigned char)digits[b & 15];
    return o + 4;
}

/* Writes s escaped at o (room for 4 * n bytes); returns the new end. */
static unsigned char *escape(unsigned char *o, const unsigned char *s, size_t n)
{
    if (!needs_escape(s, n)) {
        memcpy(o, s, n);
        return o + n;
    }
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            *o++ = c, i++;
        } else if (c < 0x80) {
            *o++ = '\\';
            if (c == '\n' || c == '\t' || c == '\\')
                *o++ = c == '\n' ? 'n' : c == '\t' ? 't' : '\\';
            else
                o = put_hex(o - 1, c);
            i++;
        } else {
            size_t len = utf8_len(s + i, n - i);
            if (len == 0) {
                o = put_hex(o, c), i++;
            } else if (disguises(s + i, len)) {
                for (size_t k = 0; k < len; k++)
                    o = put_hex(o, s[i + k]);
                i += len;
            } else {
                memcpy(o, s + i, len), o += len, i += len;
            }
        }
    }
    return o;
}

/* ---- output lines ------------------------------------------------------ */

/* `PREFIX: TEXT\n`. The buffer holds FLUSH_AT bytes plus one longest line,
   and is flushed as soon as it passes FLUSH_AT, so the line always fits. */
static void print_line(const char *prefix, size_t prefix_len, const unsigned char *text, size_t n)
{
    unsigned char *o = out + out_len;
    memcpy(o, prefix, prefix_len);
    o += prefix_len;
    *o++ = ':', *o++ = ' ';
    o = escape(o, text, n);
    *o++ = '\n';
    out_len = (size_t)(o - out);
    if (out_len >= FLUSH_AT)
        flush_out();
}

/* ---- the queue --------------------------------------------------------- */

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Prints up to `limit` messages; returns how many there were. */
static int drain(int limit)
{
    for (int taken = 0; taken < limit;) {
        unsigned prio;
        ssize_t n = mq_receive(mq, (char *)msg, msg_size, &prio);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (taken > 0)
                    last_message_ms = now_ms();
                return taken;
            }
            fail("mq_receive");
        }
        if (n > 0 && msg[n - 1] == '\n')
            n--;
        char prefix[24];
        int len = snprintf(prefix, sizeof prefix, "mq[%u]", prio);
        print_line(prefix, (size_t)len, msg, (size_t)n);
        taken++;
    }
    last_message_ms = now_ms();
    return limit;
}

/* ---- connections ------------------------------------------------------- */

static void keep_partial(struct conn *c, const unsigned char *d, size_t n)
{
    if (c->part_len + n > c->part_cap) {
        size_t cap = c->part_cap ? c->part_cap : 128;
        while (cap < c->part_len + n)
            cap *= 2;
        if (cap > max_line)
            cap = max_line;
        unsigned char *p = realloc(c->part, cap);
        if (p == NULL)
            fail("realloc");
        c->part = p, c->part_cap = cap;
    }
    memcpy(c->part + c->part_len, d, n);
    c->part_len += n;
}

/* Lines for the client, as split_lines in reactor/src/sources/lines.rs cuts
   them: a line longer than max_line comes in pieces of max_line bytes; a
   full piece waits for one more byte (a newline makes it a line). */
static void split(struct conn *c, const unsigned char *d, size_t n)
{
    while (n > 0) {
        size_t room = max_line - c->part_len;
        size_t look = n < room + 1 ? n : room + 1;
        const unsigned char *nl = memchr(d, '\n', look);
        size_t end, next;
        if (nl != NULL)
            end = (size_t)(nl - d), next = end + 1;
        else if (look > room)
            end = next = room;
        else {
            keep_partial(c, d, n);
            return;
        }
        if (c->part_len == 0) {
            print_line(c->tag, c->tag_len, d, end);
        } else {
            keep_partial(c, d, end);
            print_line(c->tag, c->tag_len, c->part, c->part_len);
            c->part_len = 0;
        }
        d += next, n -= next;
    }
}

static void close_conn(struct conn *c)
{
    if (c->part_len > 0)
        print_line(c->tag, c->tag_len, c->part, c->part_len);
    conns[c->fd] = NULL;
    close(c->fd); /* also leaves the epoll set */
    free(c->part);
    free(c);
}

static void read_conn(struct conn *c)
{
    for (int reads = 0; reads < READS_PER_TURN; reads++) {
        ssize_t n = read(c->fd, scratch, CHUNK);
        if (n > 0) {
            split(c, scratch, (size_t)n);
            if (n < CHUNK)
                return;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0 && errno != ECONNRESET)
            fprintf(stderr, "[ERROR] %.*s: %s\n", (int)c->tag_len, c->tag, strerror(errno));
        close_conn(c);
        return;
    }
}

static void watch(int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        fail("epoll_ctl");
}

static void accept_conns(void)
{
    for (int k = 0; k < ACCEPTS_PER_TURN; k++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept4(listenfd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == ECONNABORTED || errno == EINTR)
                continue;
            if (errno != EAGAIN)
                fprintf(stderr, "[WARN] accept: %s\n", strerror(errno));
            return;
        }
        struct sockaddr_in *a = (struct sockaddr_in *)&peer;
        char ip[INET_ADDRSTRLEN];
        struct conn *c = alloc(sizeof *c);
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        int len = snprintf(c->tag, TAG_MAX, "tcp[%s:%u]", ip, ntohs(a->sin_port));
        c->fd = fd, c->tag_len = (size_t)len, c->part = NULL, c->part_len = c->part_cap = 0;
        if ((size_t)fd >= conns_cap) {
            size_t cap = conns_cap ? conns_cap : 1024;
            while (cap <= (size_t)fd)
                cap *= 2;
            struct conn **grown = realloc(conns, cap * sizeof *conns);
            if (grown == NULL)
                fail("realloc");
            memset(grown + conns_cap, 0, (cap - conns_cap) * sizeof *conns);
            conns = grown, conns_cap = cap;
        }
        conns[fd] = c;
        watch(fd);
    }
}

/* ---- setup ------------------------------------------------------------- */

static long number(const char *flag, const char *value, int base)
{
    char *end;
    errno = 0;
    long n = strtol(value, &end, base);
    if (errno != 0 || *value == '\0' || *end != '\0' || n < 0) {
        fprintf(stderr, "c-server: %s takes a number, not '%s'\n", flag, value);
        exit(2);
    }
    return n;
}

/* HOST:PORT, the host an IPv4 address or `localhost` (the bench's 127.0.0.1:0). */
static void listen_on(const char *spec)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t addr_len = sizeof addr;
    const char *colon = strrchr(spec, ':');
    char host[INET_ADDRSTRLEN];
    if (colon == NULL || (size_t)(colon - spec) >= sizeof host) {
        fprintf(stderr, "c-server: --listen takes IPv4:PORT or none, not %s\n", spec);
        exit(2);
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    addr.sin_port = htons((uint16_t)number("--listen", colon + 1, 10));
    if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &addr.sin_addr) != 1) {
        fprintf(stderr, "c-server: --listen takes IPv4:PORT or none, not %s\n", spec);
        exit(2);
    }
    int one = 1;
    listenfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listenfd < 0 || setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(listenfd, (struct sockaddr *)&addr, addr_len) < 0 || listen(listenfd, SOMAXCONN) < 0 ||
        getsockname(listenfd, (struct sockaddr *)&addr, &addr_len) < 0)
        fail(spec);
    fprintf(stderr, "[INFO] listening on %s:%u\n", inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host),
            ntohs(addr.sin_port));
}

static void open_queue(mode_t mode)
{
    struct mq_attr attr = {.mq_maxmsg = max_messages, .mq_msgsize = message_size};
    mode_t old_mask = umask(0); /* the mode exactly, whatever the umask */
    mq = mq_open(queue_name, O_CREAT | O_EXCL | O_RDONLY | O_NONBLOCK, mode, &attr);
    umask(old_mask);
    if (mq == (mqd_t)-1)
        fail(queue_name);
    if (mq_getattr(mq, &attr) < 0)
        fail("mq_getattr");
    msg_size = (size_t)attr.mq_msgsize;
}

/* Connections end with their partial line; then the queue is unlinked and
   drained as ours does: an idle queue is not waited for. */
static void shut_down(void)
{
    for (size_t fd = 0; fd < conns_cap; fd++)
        if (conns[fd] != NULL)
            close_conn(conns[fd]);
    if (mq_unlink(queue_name) < 0)
        fprintf(stderr, "[ERROR] mq_unlink %s: %s\n", queue_name, strerror(errno));
    long deadline = now_ms() + SHUTDOWN_LIMIT_MS;
    for (;;) {
        int taken = drain((int)max_messages);
        flush_out();
        long now = now_ms(), left = deadline - now;
        if (left <= 0 || out_failed)
            break;
        if (taken == max_messages)
            continue;
        if (taken == 0 && now - last_message_ms >= QUIET_MS)
            break;
        struct pollfd p = {.fd = (int)mq, .events = POLLIN};
        if (poll(&p, 1, (int)(left < QUIET_MS ? left : QUIET_MS)) == 0)
            break;
    }
    flush_out();
}

int main(int argc, char **argv)
{
    const char *listen_spec = "127.0.0.1:7777";
    mode_t mode = 0600;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *value = NULL, *eq = strchr(flag, '=');
        char name[32];
        if (strncmp(flag, "--", 2) == 0 && eq != NULL && (size_t)(eq - flag) < sizeof name) {
            memcpy(name, flag, (size_t)(eq - flag));
            name[eq - flag] = '\0';
            flag = name, value = eq + 1;
        }
        if (!strcmp(flag, "--no-stats") || !strcmp(flag, "-v") || !strcmp(flag, "--verbose") ||
            !strcmp(flag, "-q") || !strcmp(flag, "--quiet"))
            continue;
        if (value == NULL && i + 1 < argc)
            value = argv[++i];
        if (value == NULL) {
            fprintf(stderr, "c-server: unknown option or missing value: %s\n", flag);
            return 2;
        }
        if (!strcmp(flag, "--queue"))
            queue_name = value;
        else if (!strcmp(flag, "--listen"))
            listen_spec = value;
        else if (!strcmp(flag, "--max-messages"))
            max_messages = number(flag, value, 10);
        else if (!strcmp(flag, "--message-size"))
            message_size = number(flag, value, 10);
        else if (!strcmp(flag, "--mode"))
            mode = (mode_t)number(flag, value, 8);
        else if (strcmp(flag, "--notify") != 0 || strcmp(value, "epoll") != 0) {
            fprintf(stderr, "c-server: not supported: %s %s\n", flag, value);
            return 2;
        }
    }
    max_line = message_size > 0 ? (size_t)message_size : 1;

    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT), sigaddset(&stops, SIGTERM), sigaddset(&stops, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &stops, NULL) < 0 || (sigfd = signalfd(-1, &stops, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
        fail("signalfd");
    signal(SIGPIPE, SIG_IGN); /* a reader gone is EPIPE, then a shutdown */
    /* A stdout pipe as large as an unprivileged process may ask (pipe-max-size,
     * 1 MiB by default), as ours grows its own: the TCP rows then compare like
     * with like. A refusal, or a stdout that is no pipe, leaves it as it was. */
    fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1 << 20);
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        fail("epoll_create1");
    watch(sigfd);
    if (strcmp(listen_spec, "none") != 0) {
        listen_on(listen_spec); /* first: a bad address leaves no queue behind */
        watch(listenfd);
    }
    open_queue(mode);
    watch((int)mq);
    msg = alloc(msg_size);
    scratch = alloc(CHUNK);
    size_t longest = msg_size > max_line ? msg_size : max_line;
    out = alloc(FLUSH_AT + TAG_MAX + 4 * longest + 8);
    fprintf(stderr, "[INFO] ready: queue %s (%ld messages of up to %zu bytes)\n", queue_name, max_messages,
            msg_size);

    struct epoll_event events[EVENTS];
    while (!stopping && !out_failed) {
        flush_out();
        int n = epoll_wait(epfd, events, EVENTS, -1);
        if (n < 0 && errno != EINTR)
            fail("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == sigfd) {
                struct signalfd_siginfo info;
                while (read(sigfd, &info, sizeof info) == (ssize_t)sizeof info)
                    stopping = 1;
            } else if (fd == (int)mq) {
                drain(MQ_PER_TURN);
            } else if (fd == listenfd) {
                accept_conns();
            } else if ((size_t)fd < conns_cap && conns[fd] != NULL) {
                read_conn(conns[fd]);
            }
        }
    }
    shut_down();
    return 0;
}
