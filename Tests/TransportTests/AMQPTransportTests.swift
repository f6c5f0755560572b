import Foundation
import Logging
import MsgFlo
import MsgFloAMQP
import Synchronization
import TestSupport
import Testing

// All AMQP tests run one after another: one of them restarts the broker, which would break the others' connections
// (they would reconnect, but timed assertions could flake).
@Suite("AMQP transport", .serialized)
struct AMQPTransportTests {
    static let timeouts = TransportTimeouts(connect: .seconds(5), operation: .seconds(5), reconnectWait: .seconds(30))

    static func transport(logger: Logger = testLogger()) async throws -> AMQPTransport {
        let t = try AMQPTransport(url: try TestBrokers.url(.amqp), timeouts: timeouts, logger: logger)
        try await t.connect()
        return t
    }

    static func withTransport(logger: Logger = testLogger(), _ body: (AMQPTransport) async throws -> Void) async throws {
        let t = try await transport(logger: logger)
        do {
            try await body(t)
            await t.close()
        } catch {
            await t.close()
            throw error
        }
    }

    static func json(_ i: Int) -> Message { Message(text: "{\"n\":\(i)}") }
    static func number(_ d: Delivery) -> Int? {
        guard let text = d.message.text, text.hasPrefix("{\"n\":"), text.hasSuffix("}") else { return nil }
        return Int(text.dropFirst(5).dropLast())
    }

    // msgflo-nodejs's transport tests, payloads, depth, prefetch, settling and close: TransportConformanceTests.

    // MARK: declarations

    @Test func queueDeclaredEarlierWithOtherFlagsIsReportedNotACrash() async throws {
        let q = TestBrokers.unique("amqp.flags.IN")
        // Another SDK made the queue first: non-durable, auto-delete.
        let other = try await Self.transport()
        try await other.declareInport(q, options: QueueOptions(persistent: false))
        let log = LogCapture()
        try await Self.withTransport(logger: log.logger) { t in
            let c = Collector(try await t.consume(q))
            try await t.declareInport(q)  // 406 PRECONDITION_FAILED: reported, and the queue is used as it is
            try await t.declareOutport(TestBrokers.unique("amqp.flags.OUT"))  // the connection still works
            try await t.send(toInport: q, Self.json(1))
            #expect(await c.wait(count: 1).map(Self.number) == [1])
            #expect(log.lines.contains { $0.contains(q) && $0.contains("other flags") }, "\(log.lines)")
            #expect(t.state == .connected)
            await c.cancel()
        }
        await other.close()
    }

    // MARK: errors

    @Test func unreachableBrokerGivesOneLineErrorWithinTimeout() async throws {
        let started = ContinuousClock.now
        let t = try AMQPTransport(url: "amqp://user:secret@127.0.0.1:1/", timeouts: TransportTimeouts(connect: .seconds(2)), logger: testLogger())
        let error = await #expect(throws: MsgFloError.self) { try await t.connect() }
        #expect(ContinuousClock.now - started < .seconds(5))
        let text = error?.description ?? ""
        #expect(!text.contains("secret") && !text.contains("\n") && text.contains("127.0.0.1:1"), "\(text)")
        await t.close()
    }

    @Test func silentBrokerTimesOut() async throws {
        // A listening socket that never answers: the AMQP handshake must time out.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        _ = listen(fd, 4)
        _ = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let started = ContinuousClock.now
        let t = try AMQPTransport(url: "amqp://127.0.0.1:\(port)/", timeouts: TransportTimeouts(connect: .seconds(1)), logger: testLogger())
        let error = await #expect(throws: MsgFloError.self) { try await t.connect() }
        #expect(ContinuousClock.now - started < .seconds(4))
        #expect(error.map { !$0.description.contains("\n") } == true, "\(String(describing: error))")
    }

    @Test func badCredentialsGiveOneLineErrorWithoutPassword() async throws {
        var url = try TestBrokers.url(.amqp)
        url.user = "guest"
        url.password = "not-the-password"
        let started = ContinuousClock.now
        let t = try AMQPTransport(url: url, timeouts: TransportTimeouts(connect: .seconds(5)), logger: testLogger())
        let error = await #expect(throws: MsgFloError.self) { try await t.connect() }
        #expect(ContinuousClock.now - started < .seconds(8))
        let text = error?.description ?? ""
        #expect(!text.contains("not-the-password") && !text.contains("\n") && text.contains("refused"), "\(text)")
        #expect(error?.code == .accessRefused)
    }

    @Test func badURLsAreRefusedUpFront() throws {
        #expect(throws: MsgFloError.self) { try AMQPTransport(url: "mqtt://localhost", logger: testLogger()) }
        #expect(throws: MsgFloError.self) { try AMQPTransport(url: "amqp://localhost?heartbeat=abc", logger: testLogger()) }
        #expect(throws: MsgFloError.self) { try AMQPTransport(url: "amqp:/nohost", logger: testLogger()) }
        let error = #expect(throws: MsgFloError.self) { try AMQPTransport(url: "amqp://u:pw-secret@localhost:99999/", logger: testLogger()) }
        #expect(error.map { !$0.description.contains("pw-secret") } == true)
    }

    @Test func tlsConnectionWorks() async throws {
        var url = try TestBrokers.tlsURL(.amqp)
        let ca = try #require(TestBrokers.setting("MSGFLO_TEST_CA_FILE"), "MSGFLO_TEST_CA_FILE is not set")
        url.options.append((key: "cacertfile", value: ca))
        let t = try AMQPTransport(url: url, timeouts: Self.timeouts, logger: testLogger())
        try await t.connect()
        let q = TestBrokers.unique("amqp.tls.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q))
        try await t.send(toInport: q, Self.json(42))
        #expect(await c.wait(count: 1).map(Self.number) == [42])
        #expect(t.gatheredWrites == 0, "librabbitmq writes each frame over TLS")
        await c.cancel()
        await t.close()
        // Against the system CAs the test broker's certificate is refused; with verify=false it is accepted.
        var untrusted = try TestBrokers.tlsURL(.amqp)
        untrusted.options.append((key: "cacertfile", value: "/etc/ssl/certs/ca-certificates.crt"))
        let refused = try AMQPTransport(url: untrusted, timeouts: TransportTimeouts(connect: .seconds(3)), logger: testLogger())
        let error = await #expect(throws: MsgFloError.self) { try await refused.connect() }
        #expect(error.map { !$0.description.contains("\n") } == true)
        var unverified = try TestBrokers.tlsURL(.amqp)
        unverified.options.append((key: "verify", value: "false"))
        let loose = try AMQPTransport(url: unverified, timeouts: Self.timeouts, logger: testLogger())
        try await loose.connect()
        await loose.close()
    }

    /// On plain TCP a loop turn's publishes and acks leave in one send (librabbitmq's bytes, gathered): many
    /// messages sent at once and settled arrive whole and in order, and the gathered writes are what carried them.
    @Test func plainTCPWritesAreGatheredPerTurn() async throws {
        try await Self.withTransport { t in
            let q = TestBrokers.unique("amqp.gather.IN")
            try await t.declareInport(q)
            let c = Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 50)))
            let before = t.gatheredWrites
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<300 { group.addTask { try await t.send(toInport: q, Self.json(i)) } }
                try await group.waitForAll()
            }
            let got = await c.wait(count: 300)
            #expect(Set(got.compactMap(Self.number)) == Set(0..<300))
            #expect(t.gatheredWrites > before, "no turn's writes went out gathered")
            await c.cancel()
        }
    }

    /// A consumer reading a stream (a queue filled beforehand, drained at the broker's pace) lingers after the socket
    /// becomes readable and reads runs of messages; every message still arrives, in order. With `coalesce=0` it never
    /// lingers, and a message alone in flight (request/reply: the next is sent only after this one arrived) is read
    /// at once.
    @Test func aStreamIsReadInRunsAndALoneMessageAtOnce() async throws {
        let producer = try await Self.transport()
        let q = TestBrokers.unique("amqp.coalesce.IN")
        try await producer.declareInport(q)
        let n = 4000
        for i in 0..<n { try await producer.send(toInport: q, Self.json(i)) }
        try await waitUntil(timeout: .seconds(30)) { (try? await producer.queueDepth(q)) ?? 0 >= n }

        func drain(coalesce: Int?) async throws -> Int {
            var url = try TestBrokers.url(.amqp)
            if let coalesce { url.options.append((key: "coalesce", value: String(coalesce))) }
            let t = try AMQPTransport(url: url, timeouts: Self.timeouts, logger: testLogger())
            try await t.connect()
            let c = Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 1000)))
            let got = await c.wait(count: n, timeout: .seconds(60))
            #expect(got.compactMap(Self.number) == Array(0..<n))
            await c.cancel()
            let waits = t.coalescedWaits
            await t.close()
            return waits
        }
        #expect(try await drain(coalesce: nil) > 0, "the stream was read without lingering once")
        for i in 0..<n { try await producer.send(toInport: q, Self.json(i)) }
        try await waitUntil(timeout: .seconds(30)) { (try? await producer.queueDepth(q)) ?? 0 >= n }
        #expect(try await drain(coalesce: 0) == 0)

        // One at a time: each message is sent once the one before arrived.
        let t = try await Self.transport()
        let c = Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 1000)))
        for i in 0..<40 {
            try await producer.send(toInport: q, Self.json(i))
            #expect(await c.wait(count: i + 1).count == i + 1)
        }
        #expect(t.coalescedWaits == 0, "a lone message waited")
        await c.cancel()
        await t.close()
        await producer.close()
    }

    // MARK: bindings

    /// Binds and unbinds made at once are pipelined (written together, answered in order, over several channels):
    /// a refused one (its queue is missing: 404, which closes its channel) fails alone with the broker's reply, and
    /// the others, those written after it on the same channel included, are all made.
    @Test func concurrentBindsAttributeARefusalToItsOwnBinding() async throws {
        try await Self.withTransport { t in
            let out = TestBrokers.unique("amqp.pipe.OUT")
            try await t.declareOutport(out)
            let n = 40
            let missing: Set<Int> = [3, 17, 18, 33]
            let queues = (0..<n).map { TestBrokers.unique("amqp.pipe.\($0).IN") }
            for (i, q) in queues.enumerated() where !missing.contains(i) { try await t.declareInport(q) }
            func all(_ call: @escaping @Sendable (Binding) async throws -> Void) async -> [Int: MsgFloError] {
                await withTaskGroup(of: (Int, MsgFloError?).self) { g in
                    for (i, q) in queues.enumerated() {
                        g.addTask {
                            do { try await call(Binding(src: out, tgt: q)); return (i, nil) } catch {
                                return (i, error as? MsgFloError ?? MsgFloError(.protocolError, "\(error)"))
                            }
                        }
                    }
                    var failed: [Int: MsgFloError] = [:]
                    for await (i, e) in g { if let e { failed[i] = e } }
                    return failed
                }
            }
            let bound = await all { try await t.addBinding($0) }
            #expect(Set(bound.keys) == missing)
            for (i, e) in bound {
                #expect(e.code == .notFound)
                #expect(e.message.contains("bind") && e.message.contains(queues[i]), "\(e)")
            }
            // Every other binding was made: one message to the exchange reaches each of their queues.
            try await t.send(toOutport: out, Self.json(1))
            for (i, q) in queues.enumerated() where !missing.contains(i) {
                try await waitUntil { try await t.queueDepth(q) == 1 }
            }
            let unbound = await all { try await t.removeBinding($0) }
            #expect(Set(unbound.keys).isSubset(of: missing), "\(unbound)")
            try await t.send(toOutport: out, Self.json(2))
            try await Task.sleep(for: .milliseconds(200))
            for (i, q) in queues.enumerated() where !missing.contains(i) { #expect(try await t.queueDepth(q) == 1) }
            #expect(t.state == .connected)
        }
    }

    // MARK: broker restart

    @Test func brokerRestartMidStreamLosesNothing() async throws {
        let producer = try await Self.transport()
        let consumer = try await Self.transport()
        let out = TestBrokers.unique("amqp.restart.OUT")
        let inq = TestBrokers.unique("amqp.restart.IN")
        try await producer.declareOutport(out)
        try await consumer.declareInport(inq)
        try await consumer.addBinding(Binding(src: out, tgt: inq))
        let states = StateLog(consumer.stateUpdates())
        let c = Collector(try await consumer.consume(inq, options: ConsumeOptions(prefetch: 10)))
        let tap = Collector(try await consumer.subscribeData(out), ack: false)
        let n = 3000
        var restart: Task<Void, any Error>? = nil
        for i in 0..<n {
            try await producer.send(toOutport: out, Self.json(i))
            if i % 100 == 99 { try await Task.sleep(for: .milliseconds(10)) }
            if i == n / 3 { restart = Task { try await TestBrokers.restart(.amqp) } }
        }
        try await restart?.value
        try await waitUntil(timeout: .seconds(60)) { Set(c.snapshot().compactMap(Self.number)).count >= n }
        let got = Set(c.snapshot().compactMap(Self.number))
        #expect(got == Set(0..<n), "missing: \(Set(0..<n).subtracting(got).sorted().prefix(20))")
        #expect(states.seen.contains { if case .reconnecting = $0 { true } else { false } }, "\(states.seen)")
        try await waitUntil { consumer.state == .connected && producer.state == .connected }
        // The binding was made again after the reconnect: a new message still flows.
        try await producer.send(toOutport: out, Self.json(n))
        try await waitUntil { c.snapshot().contains { Self.number($0) == n } }
        // The data tap's private queue died with the connection; it was declared, bound and consumed again.
        try await waitUntil { tap.snapshot().contains { Self.number($0) == n } }
        await tap.cancel()
        await c.cancel()
        await producer.close()
        await consumer.close()
    }

    /// Acks of a consumer far from its prefetch limit are written in one deferred multiple-ack; they must reach the
    /// broker within a few milliseconds even when nothing else happens, or a restart would deliver them again.
    @Test func brokerRestartAfterDeferredAcksRedeliversNothing() async throws {
        let t = try await Self.transport()
        let q = TestBrokers.unique("amqp.deferred-ack.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 1000)))
        for i in 0..<20 { try await t.send(toInport: q, Self.json(i)) }
        #expect(await c.wait(count: 20).count == 20)
        try await Task.sleep(for: .milliseconds(300))  // the acks were given; nothing else comes
        try await TestBrokers.restart(.amqp)
        try await waitUntil(timeout: .seconds(60)) { t.state == .connected }
        try await t.send(toInport: q, Self.json(20))
        try await waitUntil(timeout: .seconds(30)) { c.snapshot().contains { Self.number($0) == 20 } }
        try await Task.sleep(for: .milliseconds(300))
        let got = c.snapshot()
        #expect(got.compactMap(Self.number) == Array(0...20), "acked messages came again after the restart")
        #expect(!got.contains { $0.redelivered })
        await c.cancel()
        await t.close()
    }

    @Test func brokerRestartBuffersSendsAndCallsFailAfterReconnectWait() async throws {
        let t = try AMQPTransport(url: try TestBrokers.url(.amqp),
                                  timeouts: TransportTimeouts(connect: .seconds(5), operation: .seconds(5),
                                                              reconnectWait: .seconds(2)), logger: testLogger())
        try await t.connect()
        let q = TestBrokers.unique("amqp.down.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q))
        try await TestBrokers.script(["down", "amqp"])
        do {
            try await waitUntil { if case .reconnecting = t.state { true } else { false } }
            for i in 0..<100 { try await t.send(toInport: q, Self.json(i)) }  // buffered, no error
            let started = ContinuousClock.now
            let error = await #expect(throws: MsgFloError.self) { try await t.declareInport(q) }
            let waited = ContinuousClock.now - started
            #expect(waited >= .seconds(1.5) && waited < .seconds(5), "\(waited)")
            #expect(error.map { !$0.description.contains("\n") && $0.description.contains("unreachable") } == true,
                    "\(String(describing: error))")
        } catch {
            try? await TestBrokers.script(["up", "amqp"])
            throw error
        }
        try await TestBrokers.script(["up", "amqp"])
        try await waitUntil(timeout: .seconds(30)) { t.state == .connected }
        let got = await c.wait(count: 100, timeout: .seconds(20))
        #expect(Set(got.compactMap(Self.number)) == Set(0..<100))
        try await t.declareInport(q)  // calls work again
        await c.cancel()
        await t.close()
    }
}
