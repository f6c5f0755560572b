#define _GNU_SOURCE
#include "cmsgflo_io.h"
#include <sys/eventfd.h>
#include <pthread.h>
#include <string.h>
#include <poll.h>
#include <time.h>

int cmsgflo_io_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void cmsgflo_io_name_thread(const char *name) {
    char buf[16];
    strncpy(buf, name, 15);
    buf[15] = 0;
    pthread_setname_np(pthread_self(), buf);
}

int cmsgflo_io_poll(struct pollfd *fds, unsigned long count, long long nanoseconds) {
    if (nanoseconds < 0) return ppoll(fds, (nfds_t)count, NULL, NULL);
    struct timespec ts = { (time_t)(nanoseconds / 1000000000LL), (long)(nanoseconds % 1000000000LL) };
    return ppoll(fds, (nfds_t)count, &ts, NULL);
}
