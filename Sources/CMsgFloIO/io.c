#define _GNU_SOURCE
#include "cmsgflo_io.h"
#include <sys/eventfd.h>
#include <pthread.h>
#include <string.h>

int cmsgflo_io_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void cmsgflo_io_name_thread(const char *name) {
    char buf[16];
    strncpy(buf, name, 15);
    buf[15] = 0;
    pthread_setname_np(pthread_self(), buf);
}
