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

    static func transport(logger: Logger? = nil) async throws -> AMQPTransport {
        let t = try AMQPTransport(url: try TestBrokers.url(.amqp), timeouts: timeouts, logger: logger)
        try await t.connect()
        return t
    }

    static func withTransport(logger: Logger? = nil, _ body: (AMQPTransport) async throws -> Void) async throws {
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

    // MARK: msgflo-nodejs's transport tests

    @Test func sendingOnAnOutqueueWithoutSubscriberDoesNotError() async throws {
        try await Self.withTransport { t in
            let out = TestBrokers.unique("amqp.nosub.OUT")
            try await t.declareOutport(out)
            for i in 0..<10 { try await t.send(toOutport: out, Self.json(i)) }
            // A round trip after them proves the connection is still fine.
            try await t.declareOutport(out)
            #expect(t.state == .connected)
        }
    }

    @Test func inqueueEqualToOutqueueIsReceivedWithoutBinding() async throws {
        try await Self.withTransport { t in
            let q = TestBrokers.unique("amqp.same.Q")
            try await t.declareInport(q)
            try await t.declareOutport(q)
            let c = Collector(try await t.consume(q))
            try await t.send(toOutport: q, Self.json(1))
            #expect(await c.wait(count: 1).map(Self.number) == [1])
            await c.cancel()
        }
    }

    @Test func boundOutqueueDeliversAndStopsAfterRemoval() async throws {
        try await Self.withTransport { t in
            let out = TestBrokers.unique("amqp.bind.OUT")
            let inq = TestBrokers.unique("amqp.bind.IN")
            try await t.declareOutport(out)
            try await t.declareInport(inq)
            let binding = Binding(src: out, tgt: inq)
            try await t.addBinding(binding)
            let c = Collector(try await t.consume(inq))
            try await t.send(toOutport: out, Self.json(1))
            #expect(await c.wait(count: 1).map(Self.number) == [1])
            try await t.removeBinding(binding)
            try await t.send(toOutport: out, Self.json(2))
            // A marker sent straight into the queue after it: once it arrives, message 2 would have too.
            try await t.send(toInport: inq, Self.json(3))
            _ = await c.wait(count: 2)
            try await Task.sleep(for: .milliseconds(200))
            #expect(c.snapshot().map(Self.number) == [1, 3])
            await c.cancel()
        }
    }

    @Test func severalOutqueuesIntoOneInqueue() async throws {
        try await Self.withTransport { t in
            let inq = TestBrokers.unique("amqp.many.IN")
            let outs = (0..<3).map { TestBrokers.unique("amqp.many.OUT\($0)") }
            try await t.declareInport(inq)
            for o in outs {
                try await t.declareOutport(o)
                try await t.addBinding(Binding(src: o, tgt: inq))
            }
            let c = Collector(try await t.consume(inq))
            for (i, o) in outs.enumerated() { try await t.send(toOutport: o, Self.json(i)) }
            let got = await c.wait(count: 3)
            #expect(Set(got.compactMap(Self.number)) == [0, 1, 2])
            #expect(got.count == 3)
            await c.cancel()
        }
    }

    @Test func oneOutqueueIntoSeveralInqueues() async throws {
        try await Self.withTransport { t in
            let out = TestBrokers.unique("amqp.fan.OUT")
            let ins = (0..<3).map { TestBrokers.unique("amqp.fan.IN\($0)") }
            try await t.declareOutport(out)
            var collectors: [Collector] = []
            for q in ins {
                try await t.declareInport(q)
                try await t.addBinding(Binding(src: out, tgt: q))
                collectors.append(Collector(try await t.consume(q)))
            }
            try await t.send(toOutport: out, Self.json(7))
            for c in collectors {
                #expect(await c.wait(count: 1).map(Self.number) == [7])
                await c.cancel()
            }
        }
    }

    @Test func roundRobinGivesEachMessageToOneWorkerAndOnlyNackedOnesAreDeadLettered() async throws {
        try await Self.withTransport { t in
            let src = TestBrokers.unique("amqp.rr.OUT")
            let work = TestBrokers.unique("amqp.rr.IN")
            let dead = TestBrokers.unique("amqp.rr.DEAD")
            try await t.declareOutport(src)
            try await t.declareInport(work)
            try await t.declareInport(dead)
            try await t.addBinding(Binding(.roundRobin, src: src, tgt: work))
            try await t.addBinding(Binding(.deadLetter, src: work, tgt: dead))
            // Two workers, on connections of their own, share the queue; worker B nacks multiples of 5.
            let other = try await Self.transport()
            let a = Collector(try await t.consume(work, options: ConsumeOptions(prefetch: 1)))
            let b = Collector(try await other.consume(work, options: ConsumeOptions(prefetch: 1)),
                              nack: { Self.number($0)! % 5 == 0 })
            let deadLetters = Collector(try await t.consume(dead))
            let n = 40
            for i in 0..<n { try await t.send(toOutport: src, Self.json(i)) }
            try await waitUntil { a.count + b.count >= n }
            try await Task.sleep(for: .milliseconds(300))
            let gotA = a.snapshot().compactMap(Self.number)
            let gotB = b.snapshot().compactMap(Self.number)
            #expect(gotA.count + gotB.count == n, "every message reaches exactly one worker")
            #expect(Set(gotA).isDisjoint(with: gotB))
            #expect(Set(gotA + gotB) == Set(0..<n))
            #expect(!gotA.isEmpty && !gotB.isEmpty, "both workers get work")
            let nacked = Set(gotB.filter { $0 % 5 == 0 })
            #expect(!nacked.isEmpty)
            let got = await deadLetters.wait(count: nacked.count)
            try await Task.sleep(for: .milliseconds(300))
            #expect(Set(got.compactMap(Self.number)) == nacked)
            #expect(deadLetters.count == nacked.count, "only nacked messages are dead-lettered")
            await a.cancel()
            await b.cancel()
            await deadLetters.cancel()
            await other.close()
        }
    }

    @Test func edgeDataSubscriptionSeesTheData() async throws {
        try await Self.withTransport { t in
            let out = TestBrokers.unique("amqp.tap.OUT")
            let inq = TestBrokers.unique("amqp.tap.IN")
            try await t.declareOutport(out)
            try await t.declareInport(inq)
            try await t.addBinding(Binding(src: out, tgt: inq))
            let tap = Collector(try await t.subscribeData(out), ack: false)
            let consumer = Collector(try await t.consume(inq))
            for i in 0..<5 { try await t.send(toOutport: out, Self.json(i)) }
            #expect(await tap.wait(count: 5).compactMap(Self.number) == [0, 1, 2, 3, 4])
            #expect(await consumer.wait(count: 5).compactMap(Self.number) == [0, 1, 2, 3, 4], "the tap takes nothing away")
            await tap.cancel()
            await consumer.cancel()
        }
    }

    // MARK: payloads, depth, declarations, settling

    @Test func payloadBytesSurviveUnchanged() async throws {
        try await Self.withTransport { t in
            let q = TestBrokers.unique("amqp.bytes.IN")
            try await t.declareInport(q)
            var big = [UInt8](repeating: 0, count: 1 << 20)
            for i in big.indices { big[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 7) }
            let payloads: [[UInt8]] = [
                Array(0...255),
                [],
                big,
                [0xFF, 0xFE, 0x00, 0xC3, 0x28, 0xA0, 0xA1],  // not UTF-8
                Array("{\"é\":\"✓\"}".utf8),
            ]
            let c = Collector(try await t.consume(q))
            for p in payloads { try await t.send(toInport: q, Message(bytes: p)) }
            let got = await c.wait(count: payloads.count, timeout: .seconds(20))
            #expect(got.map(\.message.bytes) == payloads)
            await c.cancel()
        }
    }

    @Test func queueDepthCountsWaitingMessages() async throws {
        try await Self.withTransport { t in
            let q = TestBrokers.unique("amqp.depth.IN")
            try await t.declareInport(q)
            for i in 0..<3 { try await t.send(toInport: q, Self.json(i)) }
            try await waitUntil { try await t.queueDepth(q) == 3 }
            await #expect(throws: MsgFloError.self) { _ = try await t.queueDepth(TestBrokers.unique("amqp.missing")) }
            // The failed passive check must not have hurt the connection.
            #expect(try await t.queueDepth(q) == 3)
        }
    }

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

    @Test func prefetchLimitsUnsettledDeliveries() async throws {
        try await Self.withTransport { t in
            let q = TestBrokers.unique("amqp.prefetch.IN")
            try await t.declareInport(q)
            for i in 0..<6 { try await t.send(toInport: q, Self.json(i)) }
            let c = Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 2)), hold: true)
            _ = await c.wait(count: 3, timeout: .milliseconds(700))
            #expect(c.count == 2, "only the prefetch limit is handed out before acks")
            c.snapshot().forEach { $0.ack() }
            let all = await c.wait(count: 4)
            #expect(all.count >= 4, "acks make room for more")
            await c.cancel()
        }
    }

    @Test(arguments: [1, 1000])
    func handlerConsumerGetsEveryDeliveryInOrderAndItsAcksMakeRoom(prefetch: Int) async throws {
        try await Self.withTransport { t in
            let q = TestBrokers.unique("amqp.handler.IN")
            try await t.declareInport(q)
            let n = 2500  // more than the prefetch: only acks reaching the broker let the rest through
            for i in 0..<n { try await t.send(toInport: q, Self.json(i)) }
            let got = Mutex<[Int]>([])
            let sub = try await t.consume(q, options: ConsumeOptions(prefetch: prefetch)) { d in
                got.withLock { $0.append(Self.number(d) ?? -1) }
                d.ack()
            }
            try await waitUntil(timeout: .seconds(30)) { got.withLock { $0.count } >= n }
            #expect(got.withLock { $0 } == Array(0..<n))
            await sub.cancel()
            #expect(try await t.queueDepth(q) == 0)
            // The stream of a handler subscription yields nothing and ends with it.
            var yielded = 0
            for await _ in sub { yielded += 1 }
            #expect(yielded == 0)
        }
    }

    @Test func handlerSubscriptionEndsWhenTheTransportCloses() async throws {
        let t = try await Self.transport()
        let q = TestBrokers.unique("amqp.handler-end.IN")
        try await t.declareInport(q)
        let sub = try await t.consume(q, options: ConsumeOptions(prefetch: 10)) { $0.ack() }
        let ended = Task { for await _ in sub {}; return true }
        await t.close()
        #expect(await ended.value)
    }

    @Test func consumingAMissingQueueFailsAndTheConnectionCarriesOn() async throws {
        try await Self.withTransport { t in
            let q = TestBrokers.unique("amqp.ok.IN")
            try await t.declareInport(q)
            let c = Collector(try await t.consume(q))
            await #expect(throws: MsgFloError.self) { _ = try await t.consume(TestBrokers.unique("amqp.nothere")) }
            try await t.send(toInport: q, Self.json(1))
            #expect(await c.wait(count: 1).map(Self.number) == [1])
            await c.cancel()
        }
    }

    @Test func sendingToAMissingExchangeIsNotFatal() async throws {
        try await Self.withTransport { t in
            let q = TestBrokers.unique("amqp.missingx.IN")
            try await t.declareInport(q)
            let c = Collector(try await t.consume(q))
            try await t.send(toOutport: TestBrokers.unique("amqp.never-declared"), Self.json(0))
            try await t.send(toInport: q, Self.json(1))
            #expect(await c.wait(count: 1).map(Self.number) == [1])
            #expect(t.state == .connected)
            await c.cancel()
        }
    }

    @Test func nackedMessageIsDeadLetteredAndUnsettledOneComesBackAfterCancel() async throws {
        try await Self.withTransport { t in
            let q = TestBrokers.unique("amqp.settle.IN")
            let dead = TestBrokers.unique("amqp.settle.DEAD")
            try await t.declareInport(q)
            try await t.declareInport(dead)
            try await t.addBinding(Binding(.deadLetter, src: q, tgt: dead))
            let deadC = Collector(try await t.consume(dead))
            let first = Collector(try await t.consume(q), hold: true)
            try await t.send(toInport: q, Self.json(1))
            try await t.send(toInport: q, Self.json(2))
            let held = await first.wait(count: 2)
            #expect(held.map(Self.number) == [1, 2])
            held[0].nack()
            #expect(await deadC.wait(count: 1).map(Self.number) == [1])
            await first.cancel()  // message 2 was never settled: it goes back to the queue
            let second = Collector(try await t.consume(q))
            let again = await second.wait(count: 1)
            #expect(again.map(Self.number) == [2])
            #expect(again.first?.redelivered == true)
            if held.count > 1 { held[1].ack() }  // settling a delivery of a cancelled consumer does nothing
            try await t.declareInport(q)
            #expect(t.state == .connected)
            await second.cancel()
            await deadC.cancel()
        }
    }

    // MARK: errors

    @Test func unreachableBrokerGivesOneLineErrorWithinTimeout() async throws {
        let started = ContinuousClock.now
        let t = try AMQPTransport(url: "amqp://user:secret@127.0.0.1:1/", timeouts: TransportTimeouts(connect: .seconds(2)))
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
        let t = try AMQPTransport(url: "amqp://127.0.0.1:\(port)/", timeouts: TransportTimeouts(connect: .seconds(1)))
        let error = await #expect(throws: MsgFloError.self) { try await t.connect() }
        #expect(ContinuousClock.now - started < .seconds(4))
        #expect(error.map { !$0.description.contains("\n") } == true, "\(String(describing: error))")
    }

    @Test func badCredentialsGiveOneLineErrorWithoutPassword() async throws {
        var url = try TestBrokers.url(.amqp)
        url.user = "guest"
        url.password = "not-the-password"
        let started = ContinuousClock.now
        let t = try AMQPTransport(url: url, timeouts: TransportTimeouts(connect: .seconds(5)))
        let error = await #expect(throws: MsgFloError.self) { try await t.connect() }
        #expect(ContinuousClock.now - started < .seconds(8))
        let text = error?.description ?? ""
        #expect(!text.contains("not-the-password") && !text.contains("\n") && text.contains("refused"), "\(text)")
        #expect(error?.code == .accessRefused)
    }

    @Test func badURLsAreRefusedUpFront() throws {
        #expect(throws: MsgFloError.self) { try AMQPTransport(url: "mqtt://localhost") }
        #expect(throws: MsgFloError.self) { try AMQPTransport(url: "amqp://localhost?heartbeat=abc") }
        #expect(throws: MsgFloError.self) { try AMQPTransport(url: "amqp:/nohost") }
        let error = #expect(throws: MsgFloError.self) { try AMQPTransport(url: "amqp://u:pw-secret@localhost:99999/") }
        #expect(error.map { !$0.description.contains("pw-secret") } == true)
    }

    @Test func callsAfterCloseFailAndStreamsEnd() async throws {
        let t = try await Self.transport()
        let q = TestBrokers.unique("amqp.close.IN")
        try await t.declareInport(q)
        let sub = try await t.consume(q)
        let states = t.stateUpdates()
        await t.close()
        var n = 0
        for await _ in sub { n += 1 }  // ends
        #expect(n == 0)
        var last: ConnectionState?
        for await s in states { last = s }
        #expect(last == .closed)
        await #expect(throws: MsgFloError.self) { try await t.send(toInport: q, Self.json(1)) }
        await #expect(throws: MsgFloError.self) { try await t.declareInport(q) }
    }

    @Test func tlsConnectionWorks() async throws {
        var url = try TestBrokers.tlsURL(.amqp)
        let ca = try #require(TestBrokers.setting("MSGFLO_TEST_CA_FILE"), "MSGFLO_TEST_CA_FILE is not set")
        url.options.append((key: "cacertfile", value: ca))
        let t = try AMQPTransport(url: url, timeouts: Self.timeouts)
        try await t.connect()
        let q = TestBrokers.unique("amqp.tls.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q))
        try await t.send(toInport: q, Self.json(42))
        #expect(await c.wait(count: 1).map(Self.number) == [42])
        await c.cancel()
        await t.close()
        // Against the system CAs the test broker's certificate is refused; with verify=false it is accepted.
        var untrusted = try TestBrokers.tlsURL(.amqp)
        untrusted.options.append((key: "cacertfile", value: "/etc/ssl/certs/ca-certificates.crt"))
        let refused = try AMQPTransport(url: untrusted, timeouts: TransportTimeouts(connect: .seconds(3)))
        let error = await #expect(throws: MsgFloError.self) { try await refused.connect() }
        #expect(error.map { !$0.description.contains("\n") } == true)
        var unverified = try TestBrokers.tlsURL(.amqp)
        unverified.options.append((key: "verify", value: "false"))
        let loose = try AMQPTransport(url: unverified, timeouts: Self.timeouts)
        try await loose.connect()
        await loose.close()
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
            if i == n / 3 { restart = Task.detached { try TestBrokers.restart(.amqp) } }
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
        try await Task.detached { try TestBrokers.restart(.amqp) }.value
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
                                                              reconnectWait: .seconds(2)))
        try await t.connect()
        let q = TestBrokers.unique("amqp.down.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q))
        try await Task.detached { try TestBrokers.script(["down", "amqp"]) }.value
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
            try? await Task.detached { try TestBrokers.script(["up", "amqp"]) }.value
            throw error
        }
        try await Task.detached { try TestBrokers.script(["up", "amqp"]) }.value
        try await waitUntil(timeout: .seconds(30)) { t.state == .connected }
        let got = await c.wait(count: 100, timeout: .seconds(20))
        #expect(Set(got.compactMap(Self.number)) == Set(0..<100))
        try await t.declareInport(q)  // calls work again
        await c.cancel()
        await t.close()
    }
}
