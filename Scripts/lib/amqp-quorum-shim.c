/* LD_PRELOAD shim for the failover benchmark (Scripts/bench-failover): makes every durable queue that a librabbitmq
 * program declares a quorum queue (adds x-queue-type=quorum to its arguments), so that ../shared/bench's C relay and
 * driver, which declare classic queues as msgflo-nodejs does, run unchanged on quorum queues.
 * Build: cc -O2 -shared -fPIC -o amqp-quorum-shim.so amqp-quorum-shim.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <amqp.h>
#include <amqp_framing.h>

typedef amqp_queue_declare_ok_t *(*declare_fn)(amqp_connection_state_t, amqp_channel_t, amqp_bytes_t, amqp_boolean_t,
                                                amqp_boolean_t, amqp_boolean_t, amqp_boolean_t, amqp_table_t);

amqp_queue_declare_ok_t *amqp_queue_declare(amqp_connection_state_t state, amqp_channel_t channel, amqp_bytes_t queue,
                                            amqp_boolean_t passive, amqp_boolean_t durable, amqp_boolean_t exclusive,
                                            amqp_boolean_t auto_delete, amqp_table_t arguments) {
  static declare_fn real = NULL;
  if (!real) real = (declare_fn)dlsym(RTLD_NEXT, "amqp_queue_declare");
  if (passive || !durable || exclusive || auto_delete || arguments.num_entries > 15)
    return real(state, channel, queue, passive, durable, exclusive, auto_delete, arguments);
  amqp_table_entry_t entries[16];
  if (arguments.num_entries > 0) memcpy(entries, arguments.entries, sizeof(entries[0]) * (size_t)arguments.num_entries);
  amqp_table_entry_t *e = &entries[arguments.num_entries];
  e->key = amqp_cstring_bytes("x-queue-type");
  e->value.kind = AMQP_FIELD_KIND_UTF8;
  e->value.value.bytes = amqp_cstring_bytes("quorum");
  amqp_table_t args = {arguments.num_entries + 1, entries};
  return real(state, channel, queue, passive, durable, exclusive, auto_delete, args);
}
