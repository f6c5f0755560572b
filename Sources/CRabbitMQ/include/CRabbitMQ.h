#ifndef CRABBITMQ_SHIM_H
#define CRABBITMQ_SHIM_H

/* librabbitmq 0.12 moved its headers under rabbitmq-c/; 0.11 (Debian 12) has them at the top level. */
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif

/* Makes the TLS peer check of an ssl socket's context (amqp_ssl_socket_get_context) expect this IP address in the
 * certificate's subjectAltName. librabbitmq 0.11's own hostname check only knows DNS names, so a broker addressed as
 * 127.0.0.1 would fail it even with a certificate made for that address. Returns 1 on success. */
int cmsgflo_ssl_expect_ip(void *ssl_ctx, const char *ip);

/* amqp_login is variadic, which Swift cannot call: this wraps its PLAIN form, and also advertises the client capabilities librabbitmq leaves out by default:
 * consumer_cancel_notify (the broker says when it cancels a consumer, e.g. its queue was deleted) and
 * connection.blocked (the broker says when a resource alarm makes it stop reading publishes), and names the client. */
amqp_rpc_reply_t cmsgflo_amqp_login_plain_caps(amqp_connection_state_t state, const char *vhost,
                                               int channel_max, int frame_max, int heartbeat,
                                               const char *user, const char *password,
                                               const char *product);

/* Gathers what librabbitmq writes to a plain TCP socket over a window of the connection's thread, and writes it with
 * one send when the window ends. librabbitmq writes a publish as three sends (method, header, body) and an ack as
 * one; a loop turn that publishes and acks many gathers them all. The bytes and their order are librabbitmq's own.
 * Whatever reads from the socket first writes what is held, so a reply is never awaited for a request not sent.
 * Used on the connection's thread only. */
typedef struct cmsgflo_gather cmsgflo_gather;
/* NULL when this librabbitmq's socket layout is not one we know (then write as librabbitmq does). */
cmsgflo_gather *cmsgflo_gather_new(void);
void cmsgflo_gather_free(cmsgflo_gather *gather);
/* Makes `socket` (a fresh amqp_tcp_socket_new socket) write through `gather`. 1 when it does, 0 when not. */
int cmsgflo_gather_attach(cmsgflo_gather *gather, amqp_socket_t *socket);
/* Opens a window: writes to the attached socket are held until cmsgflo_gather_end. A write that cannot progress
 * for `timeout_ms` fails the connection. */
void cmsgflo_gather_begin(cmsgflo_gather *gather, int timeout_ms);
/* Closes the window and writes what it holds. The bytes it wrote (0: nothing was held), or minus the errno of the
 * failed write (ETIMEDOUT: the broker read nothing for the timeout). */
long cmsgflo_gather_end(cmsgflo_gather *gather);

#endif
