import Foundation
import MsgFlo
import MsgFloAMQP
import MsgFloIOThread
import MsgFloMQTT
import Synchronization
import Testing
import TestSupport

/// A relay (consume `inq`, send each message to `out`, ack) running on the transport's I/O thread, as the SDK runs
/// its handlers. Records whether every message was handled on that thread.
final class IOThreadRelay: Sendable {
    final class Counts: Sendable {
        let handled = Atomic<Int>(0)
        let offThread = Atomic<Int>(0)
    }
    let counts = Counts()
    let task: Task<Void, Never>
    var offThread: Int { counts.offThread.load(ordering: .relaxed) }

    init(_ t: any Transport, _ subscription: Subscription, out: String) {
        let executor = t.preferredExecutor as? IOThreadExecutor
        let counts = self.counts
        task = Task(executorPreference: t.preferredExecutor) {
            for await d in subscription {
                if executor?.isCurrent != true { counts.offThread.add(1, ordering: .relaxed) }
                do { try await t.send(toOutport: out, d.message) } catch { continue }
                d.ack()
                counts.handled.add(1, ordering: .relaxed)
            }
        }
    }
}

extension AMQPTransportTests {
    @Test func aConsumerOnTheOwnerThreadRelaysInOrder() async throws {
        let relayTransport = try await Self.transport()
        let other = try await Self.transport()
        let inq = TestBrokers.unique("amqp.iothread.IN")
        let out = TestBrokers.unique("amqp.iothread.OUT")
        let sink = TestBrokers.unique("amqp.iothread.SINK")
        #expect(relayTransport.preferredExecutor is IOThreadExecutor)
        try await relayTransport.declareInport(inq)
        try await relayTransport.declareOutport(out)
        try await other.declareInport(sink)
        try await other.addBinding(Binding(src: out, tgt: sink))
        let collector = Collector(try await other.consume(sink, options: ConsumeOptions(prefetch: 500)))
        let relay = IOThreadRelay(relayTransport, try await relayTransport.consume(inq, options: ConsumeOptions(prefetch: 100)),
                                  out: out)
        let n = 3000
        for i in 0..<n { try await other.send(toInport: inq, Self.json(i)) }
        let got = await collector.wait(count: n, timeout: .seconds(30)).compactMap(Self.number)
        #expect(got == Array(0..<n))
        #expect(relay.offThread == 0)
        await collector.cancel()
        await relayTransport.close()
        // Closed: the consumer's stream ended and its task finished (on the global executor, the thread is gone).
        await relay.task.value
        await other.close()
    }
}

@Suite("MQTT consumers on the loop thread")
struct MQTTIOThreadTests {
    @Test func aConsumerOnTheLoopThreadRelaysInOrder() async throws {
        let relayTransport = try await connectedMQTT()
        let other = try await connectedMQTT()
        let inq = TestBrokers.unique("mqtt.iothread.IN")
        let out = TestBrokers.unique("mqtt.iothread.OUT")
        #expect(relayTransport.preferredExecutor is IOThreadExecutor)
        let collector = MQTTCollector(try await other.consume(out))
        let relay = IOThreadRelay(relayTransport, try await relayTransport.consume(inq), out: out)
        let n = 3000
        for i in 0..<n {
            try await other.send(toInport: inq, text("\(i)"))
            // QoS 0 and loopback: keep the broker's queue for us short of its limit.
            if i % 500 == 499 { try await Task.sleep(for: .milliseconds(20)) }
        }
        await collector.waitFor(n, timeout: .seconds(20))
        #expect(collector.messages == (0..<n).map { text("\($0)") })
        #expect(relay.offThread == 0)
        await relayTransport.close()
        await relay.task.value
        await other.close()
    }

    @Test func aConsumerOnTheLoopThreadCarriesOnAfterABrokerRestart() async throws {
        let relayTransport = try await connectedMQTT()
        let other = try await connectedMQTT()
        let inq = TestBrokers.unique("mqtt.iothread-rs.IN")
        let out = TestBrokers.unique("mqtt.iothread-rs.OUT")
        let collector = MQTTCollector(try await other.consume(out))
        let relay = IOThreadRelay(relayTransport, try await relayTransport.consume(inq), out: out)
        try await other.send(toInport: inq, text("before"))
        await collector.waitFor(1)
        let states = Collector2(relayTransport.stateUpdates())
        try await restartMQTTBroker()
        // Both clients come back (the relay's loop thread ran its consumer's jobs while it waited to reconnect).
        try await waitUntil(timeout: .seconds(20)) {
            states.seen.withLock { $0.contains { if case .reconnecting = $0 { true } else { false } } }
                && relayTransport.state == .connected && other.state == .connected
        }
        try await Task.sleep(for: .milliseconds(200))
        try await other.send(toInport: inq, text("after"))
        await collector.waitFor(2, timeout: .seconds(10))
        #expect(collector.messages.last == text("after"))
        #expect(relay.offThread == 0)
        await relayTransport.close()
        await relay.task.value
        await other.close()
    }
}
