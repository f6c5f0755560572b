"""RabbitMQ's tutorial RPC (tutorial six) with pika, the Python reference of `Scripts/bench rpc`.

  pika_rpc.py server HOST PORT QUEUE            the tutorial's server, answering with the request's body
  pika_rpc.py client HOST PORT QUEUE N          the tutorial's client (one call at a time, an exclusive reply queue)
Prints "calls=… seconds=… calls/s=… p50_ms=… p90_ms=… p99_ms=… max_ms=…" like msgflo-call --repeat.
"""
import sys
import time
import uuid

import pika


def connect(host, port):
    return pika.BlockingConnection(pika.ConnectionParameters(host=host, port=int(port)))


def server(host, port, queue):
    conn = connect(host, port)
    ch = conn.channel()
    ch.queue_declare(queue=queue, auto_delete=True)

    def on_request(ch, method, props, body):
        ch.basic_publish(exchange='', routing_key=props.reply_to,
                         properties=pika.BasicProperties(correlation_id=props.correlation_id), body=body)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(queue=queue, on_message_callback=on_request)
    ch.start_consuming()


class Client:
    def __init__(self, host, port):
        self.conn = connect(host, port)
        self.ch = self.conn.channel()
        result = self.ch.queue_declare(queue='', exclusive=True)
        self.callback_queue = result.method.queue
        self.ch.basic_consume(queue=self.callback_queue, on_message_callback=self.on_response, auto_ack=True)
        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, queue, body):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.ch.basic_publish(exchange='', routing_key=queue,
                              properties=pika.BasicProperties(reply_to=self.callback_queue, correlation_id=self.corr_id),
                              body=body)
        while self.response is None:
            self.conn.process_data_events(time_limit=None)
        return self.response


def client(host, port, queue, n):
    c = Client(host, port)
    body = b'"' + b'x' * 98 + b'"'
    lat = []
    t0 = time.monotonic()
    for _ in range(n):
        s = time.monotonic()
        c.call(queue, body)
        lat.append(time.monotonic() - s)
    dt = time.monotonic() - t0
    lat.sort()

    def pct(p):
        i = max(0, min(len(lat) - 1, -(-int(p * len(lat)) // 100) - 1))
        return lat[i] * 1000

    print("calls=%d seconds=%.3f calls/s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f"
          % (n, dt, n / dt, pct(50), pct(90), pct(99), lat[-1] * 1000))


if __name__ == '__main__':
    if sys.argv[1] == 'server':
        server(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        client(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
