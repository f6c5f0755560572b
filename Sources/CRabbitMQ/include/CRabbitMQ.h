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

#endif
