/* The C reference of `Scripts/bench rpc`: RabbitMQ request/reply on raw librabbitmq (written for this project,
 * beside ../shared/bench's relays).
 *   amqp_rpc server HOST PORT QUEUE [LAYOUT]          consume QUEUE (manual ack, prefetch 100); answer each request
 *                                                     with its body to its reply_to, with its correlation_id (default
 *                                                     exchange)
 *   amqp_rpc client HOST PORT QUEUE N C SIZE [LAYOUT] N calls, C in flight, through direct reply-to
 *                                                     (amq.rabbitmq.reply-to); prints "calls=… seconds=… calls/s=…
 *                                                     p50_ms=… p90_ms=… p99_ms=… max_ms=…"
 * LAYOUT:
 *   bare    (default) the server declares a non-durable QUEUE; the client publishes to it on the default exchange.
 *   msgflo  msgflo's inport layout, as ../shared/bench/amqp_bench.c (and msgflo-nodejs) declare it: a durable fanout
 *           exchange QUEUE, a durable QUEUE with x-dead-letter-exchange dead-QUEUE, bound to it; the server declares
 *           them, the client publishes to the exchange QUEUE (as msgflo-call does to an inport that has one).
 *   durable msgflo's layout with msgflo's guarantees, the work msgflo-call and a participant of the SDK do: requests
 *           and replies persistent (delivery_mode 2), both channels in publisher-confirm mode (confirm.select; the
 *           client counts a call done on its reply and, at the end, checks every request was confirmed; the server
 *           publishes each reply and acks its request without waiting for the confirm, as the SDK does).
 * bare and msgflo: requests and replies are transient (no delivery_mode 2), nothing is published with confirms; the
 * server acks each request after publishing its reply.
 * Build: cc -O2 -o amqp_rpc amqp_rpc.c -lrabbitmq
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void die_on(amqp_rpc_reply_t r, const char *what) { if (r.reply_type != AMQP_RESPONSE_NORMAL) { fprintf(stderr, "%s failed\n", what); exit(1); } }
/* In confirm mode the broker's basic.ack frames arrive between deliveries: amqp_consume_message stops at them
 * (AMQP_STATUS_UNEXPECTED_STATE); read the frame here. Returns how many publishes it confirmed (0 for any other
 * frame), or -1 when the connection failed. `confirmed` is the highest delivery tag confirmed so far. */
static long read_other_frame(amqp_connection_state_t c, unsigned long long *confirmed) {
  amqp_frame_t f;
  if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) return -1;
  if (f.frame_type != AMQP_FRAME_METHOD) return 0;
  if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
    amqp_basic_ack_t *a = (amqp_basic_ack_t *)f.payload.method.decoded;
    unsigned long long before = *confirmed;
    if (a->multiple) { if (a->delivery_tag > *confirmed) *confirmed = a->delivery_tag; }
    else if (a->delivery_tag == *confirmed + 1) *confirmed = a->delivery_tag;
    else if (a->delivery_tag > *confirmed) *confirmed = a->delivery_tag;  /* single acks arrive in order here */
    return (long)(*confirmed - before);
  }
  if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) { fprintf(stderr, "a publish was nacked\n"); exit(1); }
  if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) return -1;
  return 0;
}

static void confirm_select(amqp_connection_state_t c) {
  amqp_confirm_select(c, 1); die_on(amqp_get_rpc_reply(c), "confirm.select");
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

static amqp_connection_state_t open_conn(const char *host, int port) {
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  if (amqp_socket_open(s, host, port)) { fprintf(stderr, "connect failed\n"); exit(1); }
  die_on(amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
  amqp_channel_open(c, 1); die_on(amqp_get_rpc_reply(c), "channel");
  return c;
}

/* msgflo's inport: durable fanout exchange Q, durable queue Q (dead letters to dead-Q), bound. */
static void declare_msgflo_inport(amqp_connection_state_t c, const char *queue) {
  amqp_exchange_declare(c, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes("fanout"), 0, 1, 0, 0, amqp_empty_table);
  die_on(amqp_get_rpc_reply(c), "exchange.declare");
  char dlx[600]; snprintf(dlx, sizeof dlx, "dead-%s", queue);
  amqp_table_entry_t e; e.key = amqp_cstring_bytes("x-dead-letter-exchange");
  e.value.kind = AMQP_FIELD_KIND_UTF8; e.value.value.bytes = amqp_cstring_bytes(dlx);
  amqp_table_t args = { 1, &e };
  amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
  die_on(amqp_get_rpc_reply(c), "queue.declare");
  amqp_queue_purge(c, 1, amqp_cstring_bytes(queue));
  amqp_queue_bind(c, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(queue), amqp_cstring_bytes(""), amqp_empty_table);
  die_on(amqp_get_rpc_reply(c), "queue.bind");
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: see source\n"); return 2; }
  const char *mode = argv[1], *host = argv[2], *queue = argv[4];
  int port = atoi(argv[3]);
  const char *layout = strcmp(mode, "server") == 0 ? (argc > 5 ? argv[5] : "bare") : (argc > 8 ? argv[8] : "bare");
  int durable = strcmp(layout, "durable") == 0;
  int msgflo = durable || strcmp(layout, "msgflo") == 0;
  if (!msgflo && strcmp(layout, "bare") != 0) { fprintf(stderr, "layout must be bare, msgflo or durable\n"); return 2; }
  amqp_connection_state_t c = open_conn(host, port);
  unsigned long long confirmed = 0;
  if (durable) confirm_select(c);
  if (strcmp(mode, "server") == 0) {
    if (msgflo) {
      declare_msgflo_inport(c, queue);
    } else {
      amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 0, 0, 1, amqp_empty_table);
      die_on(amqp_get_rpc_reply(c), "queue.declare");
    }
    amqp_basic_qos(c, 1, 0, 100, 0);
    amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    die_on(amqp_get_rpc_reply(c), "consume");
    for (;;) {
      amqp_envelope_t env; amqp_maybe_release_buffers(c);
      amqp_rpc_reply_t r = amqp_consume_message(c, &env, NULL, 0);
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        if (read_other_frame(c, &confirmed) < 0) return 1;
        continue;
      }
      if (r.reply_type != AMQP_RESPONSE_NORMAL) return 1;
      amqp_basic_properties_t *in = &env.message.properties;
      if (in->_flags & AMQP_BASIC_REPLY_TO_FLAG) {
        amqp_basic_properties_t p; memset(&p, 0, sizeof p);
        if (in->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) { p._flags = AMQP_BASIC_CORRELATION_ID_FLAG; p.correlation_id = in->correlation_id; }
        if (durable) { p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG; p.delivery_mode = 2; }
        amqp_basic_publish(c, 1, amqp_empty_bytes, in->reply_to, 0, 0, &p, env.message.body);
      }
      amqp_basic_ack(c, 1, env.delivery_tag, 0);
      amqp_destroy_envelope(&env);
    }
  }
  if (argc < 8) { fprintf(stderr, "usage: see source\n"); return 2; }
  long n = atol(argv[5]); int conc = atoi(argv[6]), size = atoi(argv[7]);
  amqp_basic_consume(c, 1, amqp_cstring_bytes("amq.rabbitmq.reply-to"), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  die_on(amqp_get_rpc_reply(c), "consume reply-to");
  char *payload = malloc(size > 0 ? size : 1); memset(payload, 'x', size); if (size >= 2) { payload[0] = '"'; payload[size - 1] = '"'; }
  amqp_bytes_t body = { (size_t)size, payload };
  double *start = calloc(n, sizeof(double)), *lat = calloc(n, sizeof(double));
  long sent = 0, done = 0;
  double t0 = now();
  char id[32];
  while (done < n && now() - t0 < 120) {
    while (sent < n && sent - done < conc) {
      amqp_basic_properties_t p; memset(&p, 0, sizeof p);
      p._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
      if (durable) { p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG; p.delivery_mode = 2; }
      p.reply_to = amqp_cstring_bytes("amq.rabbitmq.reply-to");
      snprintf(id, sizeof id, "%ld", sent); p.correlation_id = amqp_cstring_bytes(id);
      start[sent] = now();
      if (msgflo) amqp_basic_publish(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, &p, body);
      else amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &p, body);
      sent++;
    }
    amqp_envelope_t env; amqp_maybe_release_buffers(c);
    struct timeval tv = { 1, 0 };
    amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      if (read_other_frame(c, &confirmed) < 0) break;
      continue;
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) continue;
    amqp_bytes_t cid = env.message.properties.correlation_id;
    char buf[32]; size_t l = cid.len < 31 ? cid.len : 31; memcpy(buf, cid.bytes, l); buf[l] = 0;
    long i = atol(buf);
    if (i >= 0 && i < sent) { lat[done++] = now() - start[i]; }
    amqp_destroy_envelope(&env);
  }
  double dt = now() - t0;
  /* Every request confirmed (they are, by the time their replies came; the last acks may trail). */
  while (durable && confirmed < (unsigned long long)sent && now() - t0 < 130) {
    amqp_envelope_t env; amqp_maybe_release_buffers(c);
    struct timeval tv = { 1, 0 };
    amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      if (read_other_frame(c, &confirmed) < 0) break;
    } else if (r.reply_type == AMQP_RESPONSE_NORMAL) amqp_destroy_envelope(&env);
  }
  if (durable && confirmed < (unsigned long long)sent) { fprintf(stderr, "only %llu of %ld requests confirmed\n", confirmed, sent); return 1; }
  qsort(lat, done, sizeof(double), cmp);
#define PCT(p) (done ? lat[(long)((p) / 100.0 * done + 0.999999) - 1 < 0 ? 0 : (long)((p) / 100.0 * done + 0.999999) - 1] * 1000 : 0)
  printf("calls=%ld seconds=%.3f calls/s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
         done, dt, done / dt, PCT(50), PCT(90), PCT(99), done ? lat[done - 1] * 1000 : 0);
  return done == n ? 0 : 1;
}
