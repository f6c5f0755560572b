#include "CRabbitMQ.h"
#include <sys/eventfd.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

amqp_rpc_reply_t cmsgflo_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                          int channel_max, int frame_max, int heartbeat,
                                          const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat,
                      AMQP_SASL_METHOD_PLAIN, user, password);
}

int cmsgflo_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int cmsgflo_ssl_expect_ip(void *ssl_ctx, const char *ip) {
    if (ssl_ctx == NULL) return 0;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param((SSL_CTX *)ssl_ctx);
    return param != NULL && X509_VERIFY_PARAM_set1_ip_asc(param, ip) == 1;
}
