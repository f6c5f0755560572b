#include "CRabbitMQ.h"
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/* librabbitmq's socket object is an abstract base whose first member points at a table of six functions. Neither is
 * in its installed headers (amqp_socket.h is private), but both have kept this shape from 0.5 to 0.15. The gather is
 * only offered for the versions below, and checks the table's order when it attaches. */
#if AMQP_VERSION_MAJOR == 0 && AMQP_VERSION_MINOR >= 11 && AMQP_VERSION_MINOR <= 15
#define CMSGFLO_GATHER_KNOWN 1
#else
#define CMSGFLO_GATHER_KNOWN 0
#endif

struct cmsgflo_socket_class {
    ssize_t (*send)(void *, const void *, size_t, int);
    ssize_t (*recv)(void *, void *, size_t, int);
    int (*open)(void *, const char *, int, struct timeval *);
    int (*close)(void *, int);
    int (*get_sockfd)(void *);
    void (*delete)(void *);
};

struct cmsgflo_socket_base {
    const struct cmsgflo_socket_class *klass;
};

struct cmsgflo_gather {
    void *socket;  /* the socket it gathers for: compared, never followed once librabbitmq has deleted it */
    unsigned char *buffer;
    size_t count, capacity;
    int timeout_ms;
    int error;
};

/* librabbitmq's table for plain TCP sockets (one for all of them), and ours around it. */
static _Atomic(const struct cmsgflo_socket_class *) tcp_class = NULL;

/* The gather whose window is open on this thread: a connection's socket is used on its connection's thread only. */
static __thread cmsgflo_gather *open_window = NULL;
static __thread int sockfd_asked = 0;

enum { GATHER_LIMIT = 512 * 1024 };

static const struct cmsgflo_socket_class *inner(void) {
    return atomic_load_explicit(&tcp_class, memory_order_acquire);
}

static cmsgflo_gather *gathering(void *base) {
    cmsgflo_gather *g = open_window;
    return g != NULL && g->socket == base ? g : NULL;
}

/* Writes `count` bytes to the socket, waiting while it is full (at most timeout_ms without progress). */
static int write_all(cmsgflo_gather *g, const unsigned char *bytes, size_t count) {
    int fd = inner()->get_sockfd(g->socket);
    size_t offset = 0;
    while (offset < count) {
        ssize_t n = send(fd, bytes + offset, count - offset, MSG_NOSIGNAL);
        if (n > 0) {
            offset += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = { .fd = fd, .events = POLLOUT, .revents = 0 };
            int r = poll(&p, 1, g->timeout_ms);
            if (r > 0 || (r < 0 && errno == EINTR)) continue;
            g->error = r == 0 ? ETIMEDOUT : errno;
            return -1;
        }
        g->error = n == 0 ? EPIPE : errno;
        return -1;
    }
    return 0;
}

static int flush(cmsgflo_gather *g) {
    if (g->count == 0) return 0;
    int rc = write_all(g, g->buffer, g->count);
    g->count = 0;
    return rc;
}

static ssize_t gather_send(void *base, const void *buf, size_t len, int flags) {
    cmsgflo_gather *g = gathering(base);
    if (g == NULL) return inner()->send(base, buf, len, flags);
    if (g->count + len > GATHER_LIMIT) {
        if (flush(g) != 0) return AMQP_STATUS_SOCKET_ERROR;
        /* A frame this big goes out as librabbitmq would write it. */
        if (len > GATHER_LIMIT / 2) return inner()->send(base, buf, len, flags);
    }
    if (g->count + len > g->capacity) {
        size_t capacity = g->capacity * 2;
        while (capacity < g->count + len) capacity *= 2;
        unsigned char *grown = realloc(g->buffer, capacity);
        if (grown == NULL) {
            if (flush(g) != 0) return AMQP_STATUS_SOCKET_ERROR;
            return inner()->send(base, buf, len, flags);
        }
        g->buffer = grown;
        g->capacity = capacity;
    }
    memcpy(g->buffer + g->count, buf, len);
    g->count += len;
    return (ssize_t)len;
}

/* Nothing is read while something written is held back: whoever reads may be waiting for the answer to it. */
static ssize_t gather_recv(void *base, void *buf, size_t len, int flags) {
    cmsgflo_gather *g = gathering(base);
    if (g != NULL && flush(g) != 0) return AMQP_STATUS_SOCKET_ERROR;
    return inner()->recv(base, buf, len, flags);
}

static int gather_open(void *base, const char *host, int port, struct timeval *timeout) {
    return inner()->open(base, host, port, timeout);
}

static int gather_close(void *base, int force) {
    cmsgflo_gather *g = gathering(base);
    if (g != NULL) g->count = 0;
    return inner()->close(base, force);
}

static int gather_get_sockfd(void *base) {
    sockfd_asked = 1;
    return inner()->get_sockfd(base);
}

static void gather_delete(void *base) {
    cmsgflo_gather *g = gathering(base);
    if (g != NULL) {
        g->count = 0;
        g->socket = NULL;
    }
    inner()->delete(base);
}

static const struct cmsgflo_socket_class gather_class = {
    gather_send, gather_recv, gather_open, gather_close, gather_get_sockfd, gather_delete,
};

cmsgflo_gather *cmsgflo_gather_new(void) {
    if (!CMSGFLO_GATHER_KNOWN) return NULL;
    cmsgflo_gather *g = calloc(1, sizeof *g);
    if (g == NULL) return NULL;
    g->capacity = 64 * 1024;
    g->buffer = malloc(g->capacity);
    if (g->buffer == NULL) {
        free(g);
        return NULL;
    }
    return g;
}

void cmsgflo_gather_free(cmsgflo_gather *g) {
    if (g == NULL) return;
    if (open_window == g) open_window = NULL;
    free(g->buffer);
    free(g);
}

int cmsgflo_gather_attach(cmsgflo_gather *g, amqp_socket_t *socket) {
    if (g == NULL || socket == NULL) return 0;
    struct cmsgflo_socket_base *base = (struct cmsgflo_socket_base *)(void *)socket;
    const struct cmsgflo_socket_class *theirs = base->klass;
    if (theirs == &gather_class) {
        g->socket = socket;
        g->count = 0;
        return 1;
    }
    const struct cmsgflo_socket_class *expected = NULL;
    if (!atomic_compare_exchange_strong(&tcp_class, &expected, theirs) && expected != theirs) return 0;
    base->klass = &gather_class;
    /* A table in another order would not reach our get_sockfd here (a fresh socket answers -1). */
    sockfd_asked = 0;
    (void)amqp_socket_get_sockfd(socket);
    if (!sockfd_asked) {
        base->klass = theirs;
        return 0;
    }
    g->socket = socket;
    g->count = 0;
    return 1;
}

void cmsgflo_gather_begin(cmsgflo_gather *g, int timeout_ms) {
    if (g == NULL) return;
    g->timeout_ms = timeout_ms;
    g->error = 0;
    open_window = g;
}

long cmsgflo_gather_end(cmsgflo_gather *g) {
    if (g == NULL) return 0;
    if (open_window == g) open_window = NULL;
    if (g->socket == NULL) {
        g->count = 0;
        return 0;
    }
    long count = (long)g->count;
    return flush(g) == 0 ? count : -(g->error != 0 ? g->error : EIO);
}
