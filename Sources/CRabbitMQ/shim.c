#include "CRabbitMQ.h"
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

int cmsgflo_ssl_expect_ip(void *ssl_ctx, const char *ip) {
    if (ssl_ctx == NULL) return 0;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param((SSL_CTX *)ssl_ctx);
    return param != NULL && X509_VERIFY_PARAM_set1_ip_asc(param, ip) == 1;
}

amqp_rpc_reply_t cmsgflo_amqp_login_plain_caps(amqp_connection_state_t state, const char *vhost,
                                               int channel_max, int frame_max, int heartbeat,
                                               const char *user, const char *password,
                                               const char *product) {
    amqp_table_entry_t capabilities[2];
    capabilities[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    capabilities[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[0].value.value.boolean = 1;
    capabilities[1].key = amqp_cstring_bytes("connection.blocked");
    capabilities[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[1].value.value.boolean = 1;
    amqp_table_entry_t properties[2];
    properties[0].key = amqp_cstring_bytes("capabilities");
    properties[0].value.kind = AMQP_FIELD_KIND_TABLE;
    properties[0].value.value.table.num_entries = 2;
    properties[0].value.value.table.entries = capabilities;
    properties[1].key = amqp_cstring_bytes("product");
    properties[1].value.kind = AMQP_FIELD_KIND_UTF8;
    properties[1].value.value.bytes = amqp_cstring_bytes(product);
    amqp_table_t table = { 2, properties };
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, &table,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}
