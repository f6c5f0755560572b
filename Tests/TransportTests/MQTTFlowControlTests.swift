import Foundation
import MsgFlo
@testable import MsgFloMQTT
import Synchronization
import TestSupport
import Testing

/// MQTT QoS 1 (issue 10, item 2): what a transport holds is bounded by its consumers' prefetch, and a graceful close
/// loses nothing.
@Suite struct MQTTFlowControlTests {
    @Test func aQoS1ConsumerHoldsNoMoreThanItsPrefetchUntilItSettles() async throws {
        let topic = TestBrokers.unique("mqtt.flow.IN")
        let clientId = TestBrokers.unique("msgflo-test-flow")
        let consumer = try await connectedMQTT("qos=1&clientId=\(clientId)")
        try await consumer.declareInport(topic)
        let sub = try await consumer.consume(topic, options: ConsumeOptions(prefetch: 3))
        let held = Locked<[Delivery]>([])
        let reader = Task { for await d in sub { held.withLock { $0.append(d) } } }
        let sender = try await connectedMQTT("qos=1&clientId=\(TestBrokers.unique("msgflo-test-flow-tx"))")
        for i in 0..<50 { try await sender.send(toInport: topic, text("\(i)")) }

        try await eventually("3 messages in hand") { held.withLock { $0.count } >= 3 }
        try await Task.sleep(for: .milliseconds(500))
        #expect(held.withLock { $0.count } == 3, "read past the prefetch")
        #expect(consumer.flow?.inHand == 3)

        // Settling one makes room for exactly one more.
        held.withLock { $0[0].ack() }
        try await eventually("a 4th message") { held.withLock { $0.count } >= 4 }
        try await Task.sleep(for: .milliseconds(300))
        #expect(held.withLock { $0.count } == 4)

        // Settling everything as it comes lets the rest through, in order.
        let drain = Task {
            var settled = 1
            while settled < 50 {
                let ds = held.withLock { Array($0[settled...]) }
                for d in ds { d.ack() }
                settled += ds.count
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        try await eventually("50 messages") { held.withLock { $0.count } == 50 }
        await drain.value
        #expect(held.withLock { $0.map { $0.message.text ?? "" } } == (0..<50).map(String.init))
        await consumer.close()
        reader.cancel()
        await sender.close()
    }

    /// A relay (consume IN, send to OUT, then ack) closed gracefully mid-stream and started again with the same
    /// session: every message arrives, none twice.
    @Test func aGracefulCloseMidStreamLosesNothing() async throws {
        let inTopic = TestBrokers.unique("mqtt.drain.IN"), outTopic = TestBrokers.unique("mqtt.drain.OUT")
        let relayId = TestBrokers.unique("msgflo-test-drain")
        let total = 3000
        let receiver = try await connectedMQTT("qos=1&clientId=\(TestBrokers.unique("msgflo-test-drain-rx"))")
        let got = Locked<[Int]>([])
        let rxSub = try await receiver.consume(outTopic, options: ConsumeOptions(prefetch: 50))
        let rx = Task {
            for await d in rxSub {
                if let n = Int(d.message.text ?? "") { got.withLock { $0.append(n) } }
                d.ack()
            }
        }

        func startRelay() async throws -> (MQTTTransport, Task<Void, Never>) {
            let relay = try await connectedMQTT("qos=1&clientId=\(relayId)")
            try await relay.declareInport(inTopic)
            let sub = try await relay.consume(inTopic, options: ConsumeOptions(prefetch: 10))
            let task = Task {
                for await d in sub {
                    try? await relay.send(toOutport: outTopic, d.message)
                    d.ack()
                }
            }
            return (relay, task)
        }

        var (relay, task) = try await startRelay()
        let sender = try await connectedMQTT("qos=1&clientId=\(TestBrokers.unique("msgflo-test-flow-tx"))")
        let sending = Task {
            for i in 0..<total { try? await sender.send(toInport: inTopic, text("\(i)")) }
        }
        try await eventually("a third through", timeout: .seconds(30)) { got.withLock { $0.count } >= total / 3 }
        await relay.close()   // drains: reads no more, finishes what it read, waits for PUBACKs
        await task.value
        (relay, task) = try await startRelay()
        await sending.value
        try await eventually("all through", timeout: .seconds(60)) { Set(got.withLock { $0 }).count >= total }
        try await Task.sleep(for: .milliseconds(300))
        let all = got.withLock { $0 }
        #expect(Set(all).count == total)
        #expect(all.count - Set(all).count == 0, "duplicates")
        await relay.close()
        await task.value
        await sender.close()
        await receiver.close()
        rx.cancel()
    }
}
