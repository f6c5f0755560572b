import Foundation
import MsgFlo
import MsgFloMQTT
import Synchronization
import Testing
import TestSupport

/// A value behind a lock, shareable with tasks.
final class Locked<Value: Sendable>: Sendable {
    let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// Collects what a subscription delivers, so tests can wait for a count with a deadline.
final class MQTTCollector: Sendable {
    let items = Locked<[Delivery]>([])
    let task: Task<Void, Never>

    init(_ subscription: Subscription) {
        let items = self.items
        task = Task {
            for await d in subscription {
                items.withLock { $0.append(d) }
                d.ack()  // at QoS 1 a consumer holds at most its prefetch unsettled (MQTTFlowControl)
            }
        }
    }

    var messages: [Message] { items.withLock { $0.map(\.message) } }
    var count: Int { items.withLock { $0.count } }

    /// Waits until `n` messages arrived, failing the test (and returning false) after `timeout`.
    @discardableResult
    func waitFor(_ n: Int, timeout: Duration = .seconds(5), sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if count >= n { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("expected \(n) messages, got \(count)", sourceLocation: sourceLocation)
        return false
    }

    /// Lets `duration` pass and returns how many arrived meanwhile.
    func settle(_ duration: Duration = .milliseconds(300)) async -> Int {
        try? await Task.sleep(for: duration)
        return count
    }
}

func mqttURL(_ options: String = "") throws -> BrokerURL {
    let base = try TestBrokers.url(.mqtt)
    guard !options.isEmpty else { return base }
    return try BrokerURL(parsing: base.unredacted + (base.options.isEmpty ? "?" : "&") + options)
}

func connectedMQTT(_ options: String = "", timeouts: TransportTimeouts = TransportTimeouts()) async throws -> MQTTTransport {
    let t = try MQTTTransport(broker: try mqttURL(options), timeouts: timeouts, logger: testLogger())
    try await t.connect()
    return t
}

func text(_ s: String) -> Message { Message(text: s) }

/// `Scripts/brokers restart mqtt` (TestBrokers.restart: started with a clean signal mask, awaited off the pool).
func restartMQTTBroker() async throws {
    try await TestBrokers.restart(.mqtt)
}

/// Serialized: the restart tests take the shared test broker away, which would disturb the others.
@Suite("MQTT transport (real Mosquitto)", .serialized)
struct MQTTTransportTests {
    @Test func wildcardFiltersMatchAndOverlapsDeliverOnce() async throws {
        let t = try await connectedMQTT()
        let base = TestBrokers.unique("mqtt-wild")
        let narrow = MQTTCollector(try await t.consume("\(base)/+/x"))
        let wide = MQTTCollector(try await t.subscribeData("\(base)/#"))
        let exact = MQTTCollector(try await t.consume("\(base)/a/x"))
        try await t.send(toInport: "\(base)/a/x", text("1"))
        try await t.send(toInport: "\(base)/a/y", text("2"))
        await wide.waitFor(2)
        await narrow.waitFor(1)
        await exact.waitFor(1)
        #expect(await wide.settle() == 2)
        #expect(narrow.count == 1 && exact.count == 1)
        #expect(wide.items.withLock { $0.map(\.queue) } == ["\(base)/a/x", "\(base)/a/y"])
        await t.close()
    }

    /// (Dead-letter edges are refused as the conformance suite checks; round-robin edges route like pub/sub ones,
    /// their workers share the target in a pool: ScaleOutTests.)
    @Test func anEdgeWhoseSourceMatchesItsTargetIsRefused() async throws {
        let t = try await connectedMQTT()
        // A source filter that matches its own target would feed itself forever.
        await #expect(throws: MsgFloError.self) { try await t.addBinding(Binding(src: "loop/#", tgt: "loop/x")) }
        let error = await #expect(throws: MsgFloError.self) {
            try await t.removeBinding(Binding(.deadLetter, src: "a.OUT", tgt: "b.IN"))
        }
        #expect(error?.code == .unsupported)
        await t.close()
    }

    @Test func badURLsGiveOneLineErrors() throws {
        for text in ["mqtt://host?qos=7", "mqtt://host?keepalive=2", "mqtt://u:s3cret@host?cleanSession=maybe",
                     "amqp://host"] {
            let url = try BrokerURL(parsing: text)
            let error = #expect(throws: MsgFloError.self) { try MQTTTransport(broker: url, logger: testLogger()) }
            #expect(error?.code == .invalidURL)
            #expect(error.map { !$0.description.contains("\n") && !$0.description.contains("s3cret") } == true)
        }
    }

    @Test func unreachableBrokersFailWithinTheTimeoutInOneLine() async throws {
        let timeouts = TransportTimeouts(connect: .seconds(2))
        // Refused at once (nothing listens on port 1), an address that answers nothing, a name that resolves nowhere.
        for text in ["mqtt://user:s3cret@127.0.0.1:1", "mqtt://user:s3cret@10.255.255.1:1883",
                     "mqtt://user:s3cret@no-such-host.invalid:1883"] {
            let t = try MQTTTransport(broker: try BrokerURL(parsing: text), timeouts: timeouts, logger: testLogger())
            let start = ContinuousClock.now
            let error = await #expect(throws: MsgFloError.self) { try await t.connect() }
            #expect(ContinuousClock.now - start < .seconds(4), "\(text)")
            let d = error?.description ?? ""
            #expect(!d.contains("\n") && !d.contains("s3cret") && d.contains("user:***@"), "\(d)")
            #expect(t.state == .closed)
            await t.close()
        }
    }

    @Test func brokerRestartMidStream() async throws {
        let t = try await connectedMQTT(timeouts: TransportTimeouts(connect: .seconds(5)))
        let out = TestBrokers.unique("mqtt.rs.OUT"), inq = TestBrokers.unique("mqtt.rs.IN")
        let c = MQTTCollector(try await t.consume(inq))
        try await t.addBinding(Binding(src: out, tgt: inq))
        let states = Collector2(t.stateUpdates())
        try await t.send(toOutport: out, text("before"))
        await c.waitFor(1)

        try await restartMQTTBroker()
        // Sent while the client may not have noticed yet, or while it reconnects: buffered or lost (QoS 0), never an error.
        try await t.send(toOutport: out, text("during"))
        #expect(await states.waitFor { if case .reconnecting = $0 { true } else { false } })
        #expect(await states.waitFor({ $0 == .connected }, after: { if case .reconnecting = $0 { true } else { false } }))
        // Resubscribed: the same subscription and the router edge carry new messages.
        try await t.send(toOutport: out, text("after"))
        let deadline = ContinuousClock.now + .seconds(10)
        while !c.messages.contains(text("after")) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(c.messages.contains(text("after")))
        #expect(c.messages.first == text("before"))
        await t.close()
    }

    @Test func persistentSessionKeepsMessagesWhileTheSubscriberIsAway() async throws {
        let topic = TestBrokers.unique("mqtt.persist.IN")
        let clientId = TestBrokers.unique("msgflo-test-persist")
        let first = try await connectedMQTT("qos=1&clientId=\(clientId)")
        try await first.declareInport(topic)
        let c1 = MQTTCollector(try await first.consume(topic))
        let sender = try await connectedMQTT("qos=1")
        try await sender.send(toInport: topic, text("online"))
        await c1.waitFor(1)
        await first.close()

        for i in 0..<5 { try await sender.send(toInport: topic, text("offline \(i)")) }
        try await Task.sleep(for: .milliseconds(200))
        // The participant restarts with the same client id: what was sent meanwhile arrives, once it consumes.
        let second = try await connectedMQTT("qos=1&clientId=\(clientId)")
        try await second.declareInport(topic)
        try await Task.sleep(for: .milliseconds(200))
        let c2 = MQTTCollector(try await second.consume(topic))
        await c2.waitFor(5)
        #expect(c2.messages == (0..<5).map { text("offline \($0)") })
        await second.close()
        await sender.close()
    }

    @Test func persistentSessionSurvivesABrokerRestart() async throws {
        let topic = TestBrokers.unique("mqtt.persist-rs.IN")
        let receiver = try await connectedMQTT("qos=1&clientId=\(TestBrokers.unique("msgflo-test-rs"))")
        let c = MQTTCollector(try await receiver.consume(topic))
        let sender = try await connectedMQTT("qos=1")
        try await restartMQTTBroker()
        // Sent while the sender reconnects: kept in its buffer and sent once it is back.
        for i in 0..<5 { try await sender.send(toInport: topic, text("\(i)")) }
        await c.waitFor(5, timeout: .seconds(20))
        #expect(c.messages == (0..<5).map { text("\($0)") })
        await receiver.close()
        await sender.close()
    }

    @Test func tlsConnection() async throws {
        let base = try TestBrokers.tlsURL(.mqtt)
        var urlText = base.unredacted
        if base.option("cafile") == nil && base.option("ca") == nil, let ca = TestBrokers.setting("MSGFLO_TEST_CA_FILE") {
            urlText += (base.options.isEmpty ? "?" : "&") + "cafile=" + ca
        }
        let t = try MQTTTransport(broker: try BrokerURL(parsing: urlText), logger: testLogger())
        try await t.connect()
        let q = TestBrokers.unique("mqtt.tls.IN")
        let c = MQTTCollector(try await t.consume(q))
        try await t.send(toInport: q, text("\"secure\""))
        await c.waitFor(1)
        await t.close()

        // Without the CA, the broker's certificate is not trusted: a one-line TLS error, not a hang.
        let untrusted = try MQTTTransport(broker: base, timeouts: TransportTimeouts(connect: .seconds(3)), logger: testLogger())
        let error = await #expect(throws: MsgFloError.self) { try await untrusted.connect() }
        #expect(error.map { !$0.description.contains("\n") } == true)
    }
}

/// Collects connection states.
final class Collector2: Sendable {
    let seen = Locked<[ConnectionState]>([])
    let task: Task<Void, Never>

    init(_ states: AsyncStream<ConnectionState>) {
        let seen = self.seen
        task = Task { for await s in states { seen.withLock { $0.append(s) } } }
    }

    /// Waits for a state matching `predicate` (after one matching `after`, if given).
    func waitFor(_ predicate: @Sendable (ConnectionState) -> Bool, after: (@Sendable (ConnectionState) -> Bool)? = nil,
                 timeout: Duration = .seconds(20)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let found = seen.withLock { s -> Bool in
                var start = 0
                if let after {
                    guard let i = s.firstIndex(where: after) else { return false }
                    start = i + 1
                }
                return s[start...].contains(where: predicate)
            }
            if found { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}
