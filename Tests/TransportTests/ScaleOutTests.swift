import Foundation
import Glibc
import Logging
import MsgFlo
import MsgFloAMQP
import MsgFloMQTT
import Synchronization
import TestSupport
import Testing

/// Issue 15 on one real broker of each kind: URLs with several addresses, quorum queues, MQTT worker pools.
@Suite("Scale-out on one node", .serialized)
struct ScaleOutTests {
    static let timeouts = TransportTimeouts(connect: .seconds(10), operation: .seconds(10), reconnectWait: .seconds(30))

    /// A loopback port nothing listens on (bound, then closed): connecting to it is refused at once.
    static func deadPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MsgFloError(.connectionFailed, "socket") }
        defer { Glibc.close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                guard bind(fd, p, len) == 0 else { return -1 }
                return getsockname(fd, p, &len)
            }
        }
        guard rc == 0 else { throw MsgFloError(.connectionFailed, "bind") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// `url` with a dead address first (and the live one second), as `scheme://user:pass@127.0.0.1:DEAD,HOST:PORT/…`.
    static func deadFirst(_ url: BrokerURL) throws -> BrokerURL {
        var u = url
        u.alternates = [BrokerURL.Endpoint(host: url.host, port: url.port)]
        u.host = "127.0.0.1"
        u.port = try deadPort()
        return try BrokerURL(parsing: u.unredacted)
    }

    static func number(_ d: Delivery) -> Int? { d.message.text.flatMap { Int($0) } }

    // MARK: several addresses

    @Test func amqpConnectsToTheLiveSecondAddressWhenTheFirstIsDead() async throws {
        let url = try Self.deadFirst(try TestBrokers.url(.amqp))
        #expect(url.endpoints.count == 2)
        let t = try AMQPTransport(url: url, timeouts: Self.timeouts, logger: testLogger())
        try await t.connect()
        let q = TestBrokers.unique("scale.multi.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q))
        for i in 0..<20 { try await t.send(toInport: q, Message(text: "\(i)")) }
        #expect(await c.wait(count: 20).compactMap(Self.number) == Array(0..<20))
        await c.cancel()
        await t.close()
    }

    @Test func mqttConnectsToTheLiveSecondAddressWhenTheFirstIsDead() async throws {
        let url = try Self.deadFirst(try TestBrokers.url(.mqtt))
        let t = try MQTTTransport(broker: url, timeouts: Self.timeouts, logger: testLogger())
        try await t.connect()
        let topic = TestBrokers.unique("scale/multi")
        let c = Collector(try await t.consume(topic))
        for i in 0..<20 { try await t.send(toOutport: topic, Message(text: "\(i)")) }
        #expect(await c.wait(count: 20).compactMap(Self.number) == Array(0..<20))
        await c.cancel()
        await t.close()
    }

    @Test(arguments: [TestBrokers.Kind.amqp, .mqtt])
    func noAddressAnswersIsOneErrorNamingEachWithoutThePassword(_ kind: TestBrokers.Kind) async throws {
        let scheme = kind == .amqp ? "amqp" : "mqtt"
        let url = try BrokerURL(parsing: "\(scheme)://user:hunter2@127.0.0.1:\(try Self.deadPort()),127.0.0.1:\(try Self.deadPort())/")
        let t: any Transport = kind == .amqp ? try AMQPTransport(url: url, timeouts: Self.timeouts, logger: testLogger())
            : try MQTTTransport(broker: url, timeouts: Self.timeouts, logger: testLogger())
        let error = await #expect(throws: MsgFloError.self) { try await t.connect() }
        let text = error?.description ?? ""
        #expect(text.contains("no address of"))
        #expect(text.contains(":\(url.endpoints[0].port)") && text.contains(":\(url.endpoints[1].port)"))
        #expect(!text.contains("hunter2"))
        #expect(!text.contains("\n"))
        await t.close()
    }

    // MARK: quorum queues

    /// True when RabbitMQ holds `q` as a quorum queue: a classic declaration of it is refused for its
    /// `x-queue-type` (our transport then warns and goes on with the existing queue).
    static func isQuorum(_ q: String) async throws -> Bool {
        try await classicDeclareWarnings(q).contains { $0.contains("x-queue-type") }
    }

    /// The warnings of a classic declaration of `q` (with `options`) on a classic URL: none when `q` is just that.
    static func classicDeclareWarnings(_ q: String, _ options: QueueOptions = QueueOptions()) async throws -> [String] {
        let log = LogCapture()
        let probe = try AMQPTransport(url: try TestBrokers.url(.amqp), timeouts: timeouts, logger: log.logger)
        try await probe.connect()
        try await probe.declareInport(q, options: options)
        await probe.close()
        return log.lines.filter { $0.contains("'\(q)'") }
    }

    static func quorumURL() throws -> BrokerURL {
        let base = try TestBrokers.url(.amqp)
        return try BrokerURL(parsing: base.unredacted + (base.options.isEmpty ? "?" : "&") + "queue-type=quorum")
    }

    @Test func urlOptionDeclaresQuorumInportsAndKeepsDeadLettering() async throws {
        let t = try AMQPTransport(url: try Self.quorumURL(), timeouts: Self.timeouts, logger: testLogger())
        try await t.connect()
        let q = TestBrokers.unique("scale.quorum.IN")
        let dead = TestBrokers.unique("scale.quorum.DEAD")
        try await t.declareInport(q)
        try await t.declareInport(dead)
        try await t.addBinding(Binding(.deadLetter, src: q, tgt: dead))
        let c = Collector(try await t.consume(q), nack: { Self.number($0)! % 10 == 0 })
        let d = Collector(try await t.consume(dead))
        for i in 0..<100 { try await t.send(toInport: q, Message(text: "\(i)")) }
        #expect(Set(await c.wait(count: 100).compactMap(Self.number)) == Set(0..<100))
        #expect(Set(await d.wait(count: 10).compactMap(Self.number)) == Set(stride(from: 0, to: 100, by: 10)))
        await c.cancel()
        await d.cancel()
        await t.close()
        #expect(try await Self.isQuorum(q))
        #expect(try await Self.isQuorum(dead))
    }

    @Test func portOptionDeclaresAQuorumInportOnAClassicURL() async throws {
        let t = try AMQPTransport(url: try TestBrokers.url(.amqp), timeouts: Self.timeouts, logger: testLogger())
        try await t.connect()
        let q = TestBrokers.unique("scale.portquorum.IN")
        let classic = TestBrokers.unique("scale.classic.IN")
        try await t.declareInport(q, options: QueueOptions(queueType: .quorum))
        try await t.declareInport(classic)
        try await t.send(toInport: q, Message(text: "1"))
        let c = Collector(try await t.consume(q))
        #expect(await c.wait(count: 1).compactMap(Self.number) == [1])
        await c.cancel()
        await t.close()
        #expect(try await Self.isQuorum(q))
        #expect(try await !Self.isQuorum(classic))
    }

    @Test func quorumOverAnExistingClassicQueueSaysWhatToDo() async throws {
        let q = TestBrokers.unique("scale.mismatch.IN")
        let classic = try AMQPTransport(url: try TestBrokers.url(.amqp), timeouts: Self.timeouts, logger: testLogger())
        try await classic.connect()
        try await classic.declareInport(q)
        await classic.close()
        let t = try AMQPTransport(url: try Self.quorumURL(), timeouts: Self.timeouts, logger: testLogger())
        try await t.connect()
        let error = await #expect(throws: MsgFloError.self) { try await t.declareInport(q) }
        let text = error?.description ?? ""
        #expect(error?.code == .preconditionFailed)
        #expect(text.contains("delete_queue '\(q)'"))
        #expect(text.contains("queue-type=quorum"))
        #expect(!text.contains("\n"))
        // The connection is fine afterwards.
        try await t.declareInport(TestBrokers.unique("scale.after.IN"))
        await t.close()
    }

    @Test func privateNonPersistentQueuesStayClassicOnAQuorumURL() async throws {
        let t = try AMQPTransport(url: try Self.quorumURL(), timeouts: Self.timeouts, logger: testLogger())
        try await t.connect()
        let q = TestBrokers.unique("scale.private.MSGFLO")
        try await t.declareInport(q, options: QueueOptions(persistent: false))
        #expect(try await Self.classicDeclareWarnings(q, QueueOptions(persistent: false)).isEmpty)
        await t.close()
    }

    @Test func badQueueTypeIsRefusedUpFront() throws {
        let base = try TestBrokers.url(.amqp)
        let url = try BrokerURL(parsing: base.unredacted + "?queue-type=stream")
        #expect(throws: MsgFloError.self) { try AMQPTransport(url: url, logger: testLogger()) }
    }

    // MARK: MQTT worker pools

    @Test func mqttPoolGivesEachMessageToExactlyOneOfThreeWorkers() async throws {
        let topic = TestBrokers.unique("scale/pool/IN")
        let pool = TestBrokers.unique("workers")
        var workers: [MQTTTransport] = []
        var collectors: [Collector] = []
        for _ in 0..<3 {
            // Persistent sessions (qos=1) of one process need ids of their own.
            let w = try MQTTTransport(broker: try mqttURL("qos=1&clientId=\(TestBrokers.unique("pool-w"))"),
                                      timeouts: Self.timeouts, logger: testLogger())
            try await w.connect()
            try await w.declareInport(topic, options: QueueOptions(pool: pool))
            collectors.append(Collector(try await w.consume(topic, options: ConsumeOptions(prefetch: 50, pool: pool))))
            workers.append(w)
        }
        let sender = try MQTTTransport(broker: try mqttURL("qos=1&clientId=\(TestBrokers.unique("pool-s"))"),
                                       timeouts: Self.timeouts, logger: testLogger())
        try await sender.connect()
        let total = 3_000
        for i in 0..<total { try await sender.send(toOutport: topic, Message(text: "\(i)")) }
        try await waitUntil(timeout: .seconds(60)) { collectors.reduce(0) { $0 + $1.count } >= total }
        try await Task.sleep(for: .milliseconds(500))  // nothing more (a duplicate) arrives
        let per = collectors.map { $0.snapshot().compactMap(Self.number) }
        let all = per.flatMap { $0 }
        #expect(all.count == total)
        #expect(Set(all) == Set(0..<total))
        // All three busy: each took a real share.
        for p in per { #expect(p.count >= total / 10, "shares \(per.map(\.count))") }
        for c in collectors { await c.cancel() }
        for w in workers { await w.close() }
        await sender.close()
    }

    @Test func mqttPoolRefusesWildcardsAndBadNames() async throws {
        let t = try await connectedMQTT()
        await #expect(throws: MsgFloError.self) { try await t.consume("a/#", options: ConsumeOptions(pool: "g")) }
        await #expect(throws: MsgFloError.self) { try await t.consume("a/b", options: ConsumeOptions(pool: "g/h")) }
        await #expect(throws: MsgFloError.self) { try await t.consume("a/b", options: ConsumeOptions(pool: "")) }
        await t.close()
    }

    @Test func mqttRoundRobinEdgeRoutesToAPool() async throws {
        let router = try await connectedMQTT()
        let src = TestBrokers.unique("scale/rr/OUT")
        let tgt = TestBrokers.unique("scale/rr/IN")
        var workers: [MQTTTransport] = []
        var collectors: [Collector] = []
        for _ in 0..<2 {
            let w = try await connectedMQTT()
            collectors.append(Collector(try await w.consume(tgt, options: ConsumeOptions(pool: "rr"))))
            workers.append(w)
        }
        try await router.addBinding(Binding(.roundRobin, src: src, tgt: tgt))
        for i in 0..<200 { try await router.send(toOutport: src, Message(text: "\(i)")) }
        try await waitUntil(timeout: .seconds(20)) { collectors.reduce(0) { $0 + $1.count } >= 200 }
        try await Task.sleep(for: .milliseconds(300))
        let all = collectors.flatMap { $0.snapshot().compactMap(Self.number) }
        #expect(all.count == 200 && Set(all) == Set(0..<200))
        #expect(collectors.allSatisfy { $0.count > 0 })
        for c in collectors { await c.cancel() }
        for w in workers { await w.close() }
        await router.close()
    }
}
