#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sys/eventfd.h>

/* A non-blocking, close-on-exec eventfd that wakes a connection's loop thread out of poll (Swift's Glibc module does
 * not export <sys/eventfd.h>). */
static inline int cmsgflo_mqtt_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}
