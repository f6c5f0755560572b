#ifndef CMSGFLO_IO_H
#define CMSGFLO_IO_H

/* The one wake-up shim of the transports' owner threads (MsgFloIOThread): a non-blocking, close-on-exec eventfd
 * that another thread writes to wake the owner out of poll. Swift's Glibc module does not export <sys/eventfd.h>.
 * Returns the descriptor, or -1 with errno set. */
int cmsgflo_io_eventfd(void);

/* Names the calling thread (ps -L, debuggers; 15 bytes are kept). pthread_setname_np needs _GNU_SOURCE, which
 * Swift's Glibc module is not built with. */
void cmsgflo_io_name_thread(const char *name);

/* poll with a timeout in nanoseconds (ppoll, which needs _GNU_SOURCE too): the owner threads' waits are often shorter
 * than poll's millisecond. `nanoseconds` < 0 waits without a limit. Returns what poll returns. */
struct pollfd;
int cmsgflo_io_poll(struct pollfd *fds, unsigned long count, long long nanoseconds);

#endif
