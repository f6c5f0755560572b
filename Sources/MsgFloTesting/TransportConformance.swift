import Synchronization

/// Makes connections to one broker for ``TransportConformance``: each call gives a new transport, not yet connected,
/// to the same broker (cases that need two connections, a second worker or a second reader, call it again).
public struct TransportFactory: Sendable, CustomStringConvertible {
    public var name: String
    public var make: @Sendable () throws -> any Transport
    /// Makes a transport made by ``make`` lose its connection and come back, when the factory can (the in-memory
    /// transport's ``InMemoryTransport/simulateConnectionLoss()``; for a real broker, a restart, which disturbs
    /// every other connection: leave it nil there and test it apart). Nil: the reconnect case does nothing.
    public var loseConnection: (@Sendable (any Transport) async throws -> Void)?
    /// Makes a transport, not connected, with these timeouts, to an address that takes connections and never
    /// answers (an ``UnansweringServer``): its `connect()` waits for the whole connect timeout. Nil where no call
    /// ever waits (the in-memory transport): the cases about waiting calls then check nothing.
    public var unanswered: (@Sendable (TransportTimeouts) throws -> any Transport)?
    /// Runs its argument while the broker is away (stopped, for a real one: every other connection is disturbed,
    /// so only tests that may restart the broker set it, and run ``TransportConformance/brokerAwayCases``), and
    /// brings the broker back after it, on failure too. Its argument waits until the transports notice.
    public var whileBrokerAway: BrokerAway?
    public typealias BrokerAway = @Sendable (@Sendable () async throws -> Void) async throws -> Void

    public init(_ name: String, make: @escaping @Sendable () throws -> any Transport,
                loseConnection: (@Sendable (any Transport) async throws -> Void)? = nil,
                unanswered: (@Sendable (TransportTimeouts) throws -> any Transport)? = nil,
                whileBrokerAway: BrokerAway? = nil) {
        self.name = name
        self.make = make
        self.loseConnection = loseConnection
        self.unanswered = unanswered
        self.whileBrokerAway = whileBrokerAway
    }

    /// In-memory transports on one private ``InMemoryBroker``.
    public static func inMemory(capabilities: TransportCapabilities? = nil) -> TransportFactory {
        let broker = InMemoryBroker()
        return TransportFactory("in-memory", make: { InMemoryTransport(broker: broker, capabilities: capabilities) },
                                loseConnection: { ($0 as? InMemoryTransport)?.simulateConnectionLoss() })
    }

    public var description: String { name }
}

/// A check of the transport contract that did not hold.
public struct ConformanceFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The transport contract as cases that run against any ``Transport``: the same cases pass on the in-memory transport,
/// on RabbitMQ and on Mosquitto, so that what the layers above learn in unit tests holds on the real brokers too. A
/// transport author runs them over a ``TransportFactory`` of theirs; each case asks the transport's
/// ``Transport/capabilities`` and checks what it claims: where it has a capability, that it works; where it has not,
/// that the call says so clearly (a one-line `.unsupported` error, or nil) rather than pretend.
///
/// ```swift
/// @Test(arguments: TransportConformance.cases)
/// func conforms(_ c: TransportConformance.Case) async throws {
///     try await c.run(TransportFactory("mine") { try MyTransport(url: url) })
/// }
/// ```
public enum TransportConformance {
    public struct Case: Sendable, CustomStringConvertible {
        public let name: String
        let body: @Sendable (Session) async throws -> Void
        public var description: String { name }

        /// Runs the case on fresh connections from `factory`, closing every one of them at the end. Throws
        /// ``ConformanceFailure`` naming the case and what did not hold.
        public func run(_ factory: TransportFactory, timeout: Duration = .seconds(20)) async throws {
            let session = Session(factory: factory, timeout: timeout, caseName: name)
            do {
                try await body(session)
            } catch let failure as ConformanceFailure {
                await session.closeAll()
                throw ConformanceFailure(message: "\(factory.name), \(name): \(failure.message)")
            } catch {
                await session.closeAll()
                throw ConformanceFailure(message: "\(factory.name), \(name): \(error)")
            }
            await session.closeAll()
        }
    }

    /// Every case, in a fixed order.
    public static let cases: [Case] = [
        roundTrip, sendingWithoutReceiverIsFine, bindingDeliversAndStopsAfterRemoval, fanInAndFanOut, dataTap,
        payloadBytesSurvive, manyInOrder, prefetchLimitsInFlight, queueDepth, consumingAMissingQueue,
        roundRobinAndDeadLetters, unsettledComeBackOnCancelAndClose, unsettledComeBackAfterAReconnect,
        bindingsComeBackAfterAReconnect,
        propertiesTravelOrFailClearly,
        cancelledSubscriptionStops, closeEndsEverythingAtOnce, cancellingAWaitingConnect,
        closeFailsAWaitingConnectAtOnce,
    ]

    /// The cases that take the broker away (``TransportFactory/whileBrokerAway``): run them apart from the others.
    public static let brokerAwayCases: [Case] = [cancellingCallsThatWaitForTheBroker]

    // MARK: the cases

    /// Declare an inport, consume it, send into it: the message arrives once, on that queue, not redelivered.
    /// An inport and an outport of the same name are one thing: what is sent on the outport is received.
    public static let roundTrip = Case(name: "declare, send and consume an inport") { s in
        let t = try await s.connected()
        let q = s.unique("rt.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q))
        try await t.send(toInport: q, number(1))
        let got = try await c.wait(count: 1, s)
        try s.check(got.map(numberOf) == [1], "got \(got.map(numberOf))")
        try s.check(got[0].queue == q && !got[0].redelivered, "delivery says queue '\(got[0].queue)', redelivered \(got[0].redelivered)")
        try await t.declareOutport(q)
        try await t.addBinding(Binding(src: q, tgt: q))  // nothing to bind: still one copy
        try await t.send(toOutport: q, number(2))
        try s.check(try await c.wait(count: 2, s).map(numberOf) == [1, 2], "outport of the inport's name: \(c.numbers)")
        try await s.quiet()
        try s.check(c.count == 2, "one copy each: \(c.numbers)")
        await c.cancel()
    }

    /// Sending on an outport nobody listens to, or never declared, is no error and does not hurt the connection.
    public static let sendingWithoutReceiverIsFine = Case(name: "sending with no receiver is fine") { s in
        let t = try await s.connected()
        let out = s.unique("nosub.OUT")
        try await t.declareOutport(out)
        for i in 0..<10 { try await t.send(toOutport: out, number(i)) }
        try await t.send(toOutport: s.unique("never-declared.OUT"), number(0))
        let q = s.unique("nosub.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q))
        try await t.send(toInport: q, number(1))
        try s.check(try await c.wait(count: 1, s).map(numberOf) == [1], "the connection carries on: \(c.numbers)")
        try s.check(t.state == .connected, "state \(t.state)")
        await c.cancel()
    }

    /// An outport → inport binding delivers what is sent on the outport (once, however often it was added) until it
    /// is removed; then nothing more of the outport arrives.
    public static let bindingDeliversAndStopsAfterRemoval = Case(name: "binding delivers, once, until removed") { s in
        let t = try await s.connected()
        let out = s.unique("bind.OUT"), inq = s.unique("bind.IN")
        try await t.declareOutport(out)
        try await t.declareInport(inq)
        let c = Collector(try await t.consume(inq))
        let binding = Binding(src: out, tgt: inq)
        try await t.addBinding(binding)
        try await t.addBinding(binding)  // idempotent
        try await t.send(toOutport: out, number(1))
        _ = try await c.wait(count: 1, s)
        try await t.removeBinding(binding)
        try await t.send(toOutport: out, number(2))
        // A marker sent straight into the queue after it: once it arrived, message 2 would have too.
        try await t.send(toInport: inq, number(3))
        _ = try await c.wait(count: 2, s)
        try await s.quiet()
        try s.check(c.numbers == [1, 3], "expected [1, 3], got \(c.numbers)")
        await c.cancel()
    }

    /// Several outports into one inport, one outport into several inports.
    public static let fanInAndFanOut = Case(name: "several outports into one inport, one into several") { s in
        let t = try await s.connected()
        let inq = s.unique("many.IN")
        let outs = (0..<3).map { s.unique("many.OUT\($0)") }
        try await t.declareInport(inq)
        let sink = Collector(try await t.consume(inq))
        for o in outs {
            try await t.declareOutport(o)
            try await t.addBinding(Binding(src: o, tgt: inq))
        }
        for (i, o) in outs.enumerated() { try await t.send(toOutport: o, number(i)) }
        _ = try await sink.wait(count: 3, s)
        try await s.quiet()
        try s.check(sink.count == 3 && Set(sink.numbers) == [0, 1, 2], "fan-in: \(sink.numbers)")
        await sink.cancel()

        let out = s.unique("fan.OUT")
        try await t.declareOutport(out)
        var sinks: [Collector] = []
        for i in 0..<3 {
            let q = s.unique("fan.IN\(i)")
            try await t.declareInport(q)
            sinks.append(Collector(try await t.consume(q)))
            try await t.addBinding(Binding(src: out, tgt: q))
        }
        try await t.send(toOutport: out, number(7))
        for c in sinks { _ = try await c.wait(count: 1, s) }
        try await s.quiet()
        for c in sinks {
            try s.check(c.numbers == [7], "fan-out: \(c.numbers)")
            await c.cancel()
        }
    }

    /// A data tap sees what an outport sends, from this connection or another, and takes nothing from the inport
    /// bound to it. Tap deliveries need no acknowledgement.
    public static let dataTap = Case(name: "data taps see an outport's data and take none") { s in
        let t = try await s.connected()
        let tool = try await s.connected()
        let out = s.unique("tap.OUT"), inq = s.unique("tap.IN")
        try await t.declareOutport(out)
        try await t.declareInport(inq)
        let consumer = Collector(try await t.consume(inq))
        try await t.addBinding(Binding(src: out, tgt: inq))
        let remote = Collector(try await tool.subscribeData(out), ack: false)
        let local = Collector(try await t.subscribeData(out), ack: false)
        for i in 0..<5 { try await t.send(toOutport: out, number(i)) }
        for c in [remote, local, consumer] { _ = try await c.wait(count: 5, s) }
        try await s.quiet()
        try s.check(remote.numbers == [0, 1, 2, 3, 4], "tap on another connection: \(remote.numbers)")
        try s.check(local.numbers == [0, 1, 2, 3, 4], "tap on the same connection: \(local.numbers)")
        try s.check(consumer.numbers == [0, 1, 2, 3, 4], "the consumer behind the tap: \(consumer.numbers)")
        try s.check(remote.snapshot().allSatisfy { $0.queue == out }, "a tap's deliveries name the outport")
        for c in [remote, local, consumer] { await c.cancel() }
    }

    /// Payload bytes arrive as they were sent: every byte value, empty, 1 MiB, not UTF-8, text; sent straight to an
    /// inport and through a binding.
    public static let payloadBytesSurvive = Case(name: "payload bytes survive, direct and bound") { s in
        let t = try await s.connected()
        let out = s.unique("bytes.OUT"), direct = s.unique("bytes.IN"), bound = s.unique("bytes.BOUND")
        try await t.declareOutport(out)
        try await t.declareInport(direct)
        try await t.declareInport(bound)
        let d = Collector(try await t.consume(direct))
        let b = Collector(try await t.consume(bound))
        try await t.addBinding(Binding(src: out, tgt: bound))
        var big = [UInt8](repeating: 0, count: 1 << 20)
        for i in big.indices { big[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 7) }
        let payloads: [[UInt8]] = [Array(0...255), [], big, [0xFF, 0xFE, 0x00, 0xC3, 0x28, 0xA0, 0xA1],
                                   Array("{\"é\":\"✓\"}".utf8), Array("hello".utf8)]
        for p in payloads {
            try await t.send(toInport: direct, Message(bytes: p))
            try await t.send(toOutport: out, Message(bytes: p))
        }
        try s.check(try await d.wait(count: payloads.count, s).map(\.message.bytes) == payloads, "direct: payloads changed")
        try s.check(try await b.wait(count: payloads.count, s).map(\.message.bytes) == payloads, "bound: payloads changed")
        await d.cancel()
        await b.cancel()
    }

    /// Many messages arrive in the order sent, taken one at a time and a batch at a time on the transport's thread
    /// (at most the batch size asked for), with a small and a large prefetch; a cancelled subscription gives no more.
    public static let manyInOrder = Case(name: "many messages in order, one and a batch at a time") { s in
        let t = try await s.connected()
        // Prefetch 1 is a broker round trip per message: fewer, so that a loaded machine stays inside the timeout.
        // With 1,000, more than the prefetch, so that only acks reaching the broker let the rest through.
        for (prefetch, n) in [(1, 500), (1000, 2000)] {
            let q = s.unique("order.IN")
            try await t.declareInport(q)
            let c = Collector(try await t.consume(q, options: ConsumeOptions(prefetch: prefetch)))
            for i in 0..<n { try await t.send(toInport: q, number(i)) }
            let got = try await c.wait(count: n, s).map(numberOf)
            try s.check(got == Array(0..<n), "stream, prefetch \(prefetch): \(got.count) arrived, first out of order at \(firstMismatch(got, n))")
            await c.cancel()

            // Taken a batch at a time on the transport's own thread, as the coordinator's discovery takes them.
            let h = s.unique("order-batch.IN")
            try await t.declareInport(h)
            let sub = try await t.consume(h, options: ConsumeOptions(prefetch: prefetch))
            let taker = Task(executorPreference: t.preferredExecutor) { () -> (taken: [Int?], largest: Int) in
                var taken: [Int?] = [], largest = 0
                while taken.count < n, let batch = await sub.nextBatch(max: 300) {
                    largest = max(largest, batch.count)
                    for d in batch { taken.append(numberOf(d)); d.ack() }
                }
                return (taken, largest)
            }
            defer { taker.cancel() }
            for i in 0..<n { try await t.send(toInport: h, number(i)) }
            try await s.within("\(n) messages taken in batches") { _ = await taker.value }
            let (taken, largest) = await taker.value
            try s.check(largest <= 300, "a batch of \(largest) with max 300")
            try s.check(taken == Array(0..<n), "batches, prefetch \(prefetch): \(taken.count) taken, first out of order at \(firstMismatch(taken, n))")
            await sub.cancel()
            try s.check(await sub.nextBatch() == nil, "a cancelled subscription still gives batches")
            if t.capabilities.contains(.queueDepth) {
                try await s.waitUntil("every acknowledged message gone from the queue") { try await t.queueDepth(h) == 0 }
            }
        }
    }

    /// With ``TransportCapabilities/prefetch``: a consumer holds at most its prefetch unsettled; acks make room.
    public static let prefetchLimitsInFlight = Case(name: "prefetch limits deliveries in hand") { s in
        let t = try await s.connected()
        guard t.capabilities.contains(.prefetch) else { return }
        let q = s.unique("prefetch.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 2)), hold: true)
        for i in 0..<6 { try await t.send(toInport: q, number(i)) }
        _ = try await c.wait(count: 2, s)
        try await s.quiet(.milliseconds(700))
        try s.check(c.count == 2, "\(c.count) handed out before any ack with prefetch 2")
        c.snapshot().forEach { $0.ack() }
        _ = try await c.wait(count: 4, s)
        try await s.quiet()
        try s.check(c.count == 4, "acking 2 made room for \(c.count - 2)")
        c.snapshot().forEach { $0.ack() }
        try s.check(try await c.wait(count: 6, s).map(numberOf) == Array(0..<6), "all in order: \(c.numbers)")
        await c.cancel()
    }

    /// With ``TransportCapabilities/queueDepth``: messages waiting are counted, a missing queue is `.notFound`
    /// (and the connection carries on). Without it: nil.
    public static let queueDepth = Case(name: "queue depth and stats, or nil") { s in
        let t = try await s.connected()
        let q = s.unique("depth.IN")
        try await t.declareInport(q)
        guard t.capabilities.contains(.queueDepth) else {
            try s.check(try await t.queueDepth(q) == nil, "a depth from a transport without .queueDepth")
            try s.check(try await t.queueStats(q) == nil, "stats from a transport without .queueDepth")
            return
        }
        for i in 0..<3 { try await t.send(toInport: q, number(i)) }
        try await s.waitUntil("depth 3") { try await t.queueDepth(q) == 3 }
        try await s.fails(.notFound, "the depth of a queue that does not exist") {
            _ = try await t.queueDepth(s.unique("missing.IN"))
        }
        try s.check(try await t.queueDepth(q) == 3, "the failed check hurt the connection")
        let stats = try await t.queueStats(q)
        try s.check(stats?.messages == 3, "stats: \(String(describing: stats))")
        let c = Collector(try await t.consume(q))
        _ = try await c.wait(count: 3, s)
        try await s.waitUntil("depth 0 once consumed") { try await t.queueDepth(q) == 0 }
        await c.cancel()
    }

    /// Where queues exist at the broker (``TransportCapabilities/queuesHoldMessages``): consuming one that was
    /// never declared fails, and the connection carries on.
    public static let consumingAMissingQueue = Case(name: "consuming a missing queue fails alone") { s in
        let t = try await s.connected()
        guard t.capabilities.contains(.queuesHoldMessages) else { return }
        let q = s.unique("ok.IN")
        try await t.declareInport(q)
        let c = Collector(try await t.consume(q))
        try await s.fails(nil, "consuming a queue that was never declared") {
            let sub = try await t.consume(s.unique("nothere.IN"))
            await sub.cancel()
        }
        try await t.send(toInport: q, number(1))
        try s.check(try await c.wait(count: 1, s).map(numberOf) == [1], "the connection carries on")
        await c.cancel()
    }

    /// With ``TransportCapabilities/sharedQueues`` and ``TransportCapabilities/deadLetters``: a round-robin edge
    /// gives each message to one of the workers consuming its target (on two connections), and only nacked messages
    /// reach the dead-letter queue. Without dead letters, a dead-letter binding fails `.unsupported` in one line.
    public static let roundRobinAndDeadLetters = Case(name: "round robin and dead letters") { s in
        let t = try await s.connected()
        let src = s.unique("rr.OUT"), work = s.unique("rr.IN"), dead = s.unique("rr.DEAD")
        guard t.capabilities.contains(.deadLetters) else {
            try await s.fails(.unsupported, "a dead-letter binding without .deadLetters") {
                try await t.addBinding(Binding(.deadLetter, src: work, tgt: dead))
            }
            return
        }
        guard t.capabilities.contains(.sharedQueues) else { return }
        try await t.declareOutport(src)
        try await t.declareInport(work)
        try await t.declareInport(dead)
        try await t.addBinding(Binding(.roundRobin, src: src, tgt: work))
        try await t.addBinding(Binding(.deadLetter, src: work, tgt: dead))
        let other = try await s.connected()
        let a = Collector(try await t.consume(work, options: ConsumeOptions(prefetch: 1)))
        // Worker b nacks every other delivery it gets, starting with its first.
        let nackedByB = Mutex<[Int]>([])
        let seenByB = Mutex(0)
        let b = Collector(try await other.consume(work, options: ConsumeOptions(prefetch: 1)), nack: { d in
            guard seenByB.withLock({ n in defer { n += 1 }; return n % 2 == 0 }) else { return false }
            nackedByB.withLock { $0.append(numberOf(d) ?? -1) }
            return true
        })
        let deadLetters = Collector(try await t.consume(dead))
        let n = 40
        for i in 0..<n { try await t.send(toOutport: src, number(i)) }
        try await s.waitUntil("\(n) messages to the workers") { a.count + b.count >= n }
        try await s.quiet()
        let gotA = a.numbers.compactMap { $0 }, gotB = b.numbers.compactMap { $0 }
        try s.check(gotA.count + gotB.count == n && Set(gotA + gotB) == Set(0..<n),
                    "every message to exactly one worker: \(gotA.count) + \(gotB.count)")
        try s.check(!gotA.isEmpty && !gotB.isEmpty, "both workers get work: \(gotA.count), \(gotB.count)")
        let nacked = Set(nackedByB.withLock { $0 })
        try s.check(!nacked.isEmpty && nacked.isSubset(of: gotB), "worker b nacked \(nacked.sorted())")
        _ = try await deadLetters.wait(count: nacked.count, s)
        try await s.quiet()
        try s.check(Set(deadLetters.numbers.compactMap { $0 }) == nacked && deadLetters.count == nacked.count,
                    "only nacked messages are dead-lettered: \(deadLetters.numbers) for \(nacked.sorted())")
        for c in [a, b, deadLetters] { await c.cancel() }
    }

    /// With ``TransportCapabilities/redeliversUnsettled``: a nacked delivery is dead-lettered; what a consumer left
    /// unsettled goes back to the queue when it cancels, or when its connection closes, and comes again marked
    /// redelivered; settling a delivery of a consumer that is gone does nothing.
    public static let unsettledComeBackOnCancelAndClose = Case(name: "nack, and unsettled come back on cancel and close") { s in
        let t = try await s.connected()
        guard t.capabilities.contains(.redeliversUnsettled) else { return }
        let q = s.unique("settle.IN")
        try await t.declareInport(q)
        let deadLetters: Collector?
        if t.capabilities.contains(.deadLetters) {
            let dead = s.unique("settle.DEAD")
            try await t.declareInport(dead)
            try await t.addBinding(Binding(.deadLetter, src: q, tgt: dead))
            deadLetters = Collector(try await t.consume(dead))
        } else {
            deadLetters = nil
        }
        let first = Collector(try await t.consume(q), hold: true)
        try await t.send(toInport: q, number(1))
        try await t.send(toInport: q, number(2))
        let held = try await first.wait(count: 2, s)
        try s.check(held.map(numberOf) == [1, 2], "held \(held.map(numberOf))")
        held[0].nack()
        if let deadLetters {
            try s.check(try await deadLetters.wait(count: 1, s).map(numberOf) == [1], "dead letters: \(deadLetters.numbers)")
        }
        await first.cancel()  // message 2 was never settled: it goes back to the queue
        let second = Collector(try await t.consume(q), hold: true)
        let again = try await second.wait(count: 1, s)
        try s.check(again.map(numberOf) == [2] && again[0].redelivered, "after cancel: \(again.map(numberOf)), redelivered \(again.first?.redelivered ?? false)")
        held[1].ack()  // of a cancelled consumer: does nothing
        try s.check(t.state == .connected, "state \(t.state)")

        // Unsettled when its connection closes: another connection gets it.
        await t.close()
        let u = try await s.connected()
        let third = Collector(try await u.consume(q))
        let afterClose = try await third.wait(count: 1, s)
        try s.check(afterClose.map(numberOf) == [2] && afterClose[0].redelivered, "after close: \(afterClose.map(numberOf))")
        try await s.quiet()
        try s.check(third.count == 1, "settled once, came once: \(third.numbers)")
        await third.cancel()
        await deadLetters?.cancel()
    }

    /// With ``TransportCapabilities/redeliversUnsettled`` and a factory that can make a connection drop
    /// (``TransportFactory/loseConnection``): what a consumer held unsettled comes again after the reconnect, marked
    /// redelivered, to the same subscription; settling the old delivery does nothing (the new one still counts).
    public static let unsettledComeBackAfterAReconnect = Case(name: "unsettled come back after a reconnect") { s in
        let t = try await s.connected()
        guard t.capabilities.contains(.redeliversUnsettled), let lose = s.factory.loseConnection else { return }
        let q = s.unique("reconnect.IN")
        try await t.declareInport(q)
        let sub = try await t.consume(q)
        let c = Collector(sub, hold: true)
        try await t.send(toInport: q, number(1))
        try await t.send(toInport: q, number(2))
        let held = try await c.wait(count: 2, s)
        held[0].ack()
        // Settled before the loss: given the time to reach the broker (AMQP defers an ack by a few milliseconds, to
        // send it with others as one multiple-ack; one lost with the connection is redelivered: at-least-once).
        try await s.quiet()
        try await lose(t)
        try await s.waitUntil("connected again") { t.state == .connected }
        let again = try await c.wait(count: 3, s)
        try s.check(numberOf(again[2]) == 2 && again[2].redelivered, "after the reconnect: \(c.numbers)")
        held[1].ack()  // of the lost connection: does nothing
        try await s.quiet()
        try s.check(c.count == 3, "message 1 was settled before the loss, yet came again: \(c.numbers)")
        await sub.cancel()  // the redelivered one is still unsettled: it goes back once more
        let other = Collector(try await t.consume(q))
        try s.check(try await other.wait(count: 1, s).map(numberOf) == [2], "the old ack settled the new delivery")
        await other.cancel()
    }

    /// Bindings made before the connection was lost deliver after the reconnect: one outport bound to many
    /// non-persistent inports (which the broker drops with the connection, so they are declared and bound again).
    public static let bindingsComeBackAfterAReconnect = Case(name: "bindings come back after a reconnect") { s in
        let t = try await s.connected()
        guard let lose = s.factory.loseConnection else { return }
        let out = s.unique("rebind.OUT")
        try await t.declareOutport(out, options: QueueOptions(persistent: false))
        var collectors: [Collector] = []
        for i in 0..<40 {
            let q = s.unique("rebind\(i).IN")
            try await t.declareInport(q, options: QueueOptions(persistent: false))
            try await t.addBinding(Binding(src: out, tgt: q))
            collectors.append(Collector(try await t.consume(q)))
        }
        try await t.send(toOutport: out, number(1))
        for c in collectors { _ = try await c.wait(count: 1, s) }
        try await lose(t)
        try await s.waitUntil("connected again") { t.state == .connected }
        // Consuming again comes last in a restore: once every inport's consumer is back, its binding is too.
        try await s.waitUntil("delivering again") {
            if collectors.allSatisfy({ $0.count >= 2 }) { return true }
            try? await t.send(toOutport: out, number(2))
            try await Task.sleep(for: .milliseconds(100))
            return false
        }
        for (i, c) in collectors.enumerated() {
            let got = c.numbers
            try s.check(got.first == 1 && got.dropFirst().allSatisfy { $0 == 2 }, "inport \(i) after the reconnect: \(got)")
        }
        for c in collectors { await c.cancel() }
    }

    /// With ``TransportCapabilities/messageProperties``: every property arrives as sent, straight and through a
    /// binding, and a message without any gets none (beyond the transport's persistence flag); a reply queue is
    /// given. Without it: a send with properties fails `.unsupported` in one line, so does ``Transport/replyQueue()``,
    /// and plain messages still go.
    public static let propertiesTravelOrFailClearly = Case(name: "properties travel, or fail clearly") { s in
        let t = try await s.connected()
        let out = s.unique("props.OUT"), direct = s.unique("props.IN"), bound = s.unique("props.BOUND")
        try await t.declareOutport(out)
        try await t.declareInport(direct, options: QueueOptions(persistent: false))
        try await t.declareInport(bound, options: QueueOptions(persistent: false))
        let d = Collector(try await t.consume(direct))
        let b = Collector(try await t.consume(bound))
        try await t.addBinding(Binding(src: out, tgt: bound))
        let body: [UInt8] = Array("{\"a\":1}".utf8) + [0, 255, 10]
        let props = MessageProperties(
            correlationID: "c-42", replyTo: "msgflo/reply/x", messageID: "m-7", timestamp: 1_700_000_000,
            contentType: "application/json",
            headers: ["traceparent": .string("00-abc-def-01"), "x-n": .int(-12), "x-ok": .bool(true),
                      "x-f": .double(2.5), "x-utf": .string("grüße ✓")],
            priority: 5, expirationMilliseconds: 60_000, persistent: true)
        guard t.capabilities.contains(.messageProperties) else {
            for send in [{ try await t.send(toInport: direct, Message(bytes: body, properties: props)) },
                         { try await t.send(toOutport: out, Message(bytes: body, properties: props)) },
                         { _ = try await t.replyQueue() }] as [() async throws -> Void] {
                try await s.fails(.unsupported, "properties (or a reply queue) without .messageProperties", send)
            }
            try await t.send(toInport: direct, Message(bytes: body))
            try s.check(try await d.wait(count: 1, s).map(\.message.bytes) == [body], "a plain message after the refusals")
            return
        }
        try await t.send(toInport: direct, Message(bytes: body, properties: props))
        try await t.send(toOutport: out, Message(bytes: body, properties: props))
        for (c, way) in [(d, "direct"), (b, "bound")] {
            let got = try await c.wait(count: 1, s)
            try s.check(got[0].message.bytes == body, "\(way): the body changed")
            try s.check(got[0].message.properties == props, "\(way): \(got[0].message.properties) for \(props)")
        }
        try await t.send(toInport: direct, Message(bytes: body))
        var plain = try await d.wait(count: 2, s)[1].message.properties
        plain.persistent = nil
        try s.check(plain.isEmpty, "a message without properties got \(plain)")
        let (replyTo, replies) = try await t.replyQueue()
        try s.check(!replyTo.isEmpty, "an empty reply-to")
        await replies.cancel()
        await d.cancel()
        await b.cancel()
    }

    /// A cancelled subscription ends and gets nothing more; another consumer of the same queue carries on (sharing
    /// its messages where ``TransportCapabilities/sharedQueues``, else each getting every one).
    public static let cancelledSubscriptionStops = Case(name: "a cancelled subscription stops, others carry on") { s in
        let t = try await s.connected()
        let q = s.unique("cancel.IN")
        try await t.declareInport(q)
        let sub1 = try await t.consume(q)
        let c1 = Collector(sub1)
        let c2 = Collector(try await t.consume(q))
        try await t.send(toInport: q, number(1))
        try await s.waitUntil("message 1") { c1.count + c2.count >= 1 }
        try await s.quiet()
        let shared = t.capabilities.contains(.sharedQueues)
        try s.check(shared ? c1.count + c2.count == 1 : (c1.count == 1 && c2.count == 1),
                    "\(shared ? "shared" : "not shared"): \(c1.count) and \(c2.count)")
        let before = c1.count
        await sub1.cancel()
        try await s.within("the cancelled subscription's stream to end") { await c1.ended() }
        try await t.send(toInport: q, number(2))
        try await s.waitUntil("message 2 to the other consumer") { c2.numbers.contains(2) }
        try await s.quiet()
        try s.check(c1.count == before, "the cancelled subscription got more")
        await c2.cancel()
    }

    /// Closing ends every subscription at once (one taker, a batch taker, a tap) and the state stream with `.closed`; later
    /// calls fail `.closed`, and so does connecting again. Idempotent.
    public static let closeEndsEverythingAtOnce = Case(name: "close ends subscriptions at once and fails later calls") { s in
        let t = try await s.connected()
        let q = s.unique("close.IN"), out = s.unique("close.OUT")
        try await t.declareInport(q)
        try await t.declareOutport(out)
        let plain = try await t.consume(q)
        let batched = try await t.consume(q, options: ConsumeOptions(prefetch: 10))
        let tap = try await t.subscribeData(out)
        let states = t.stateUpdates()
        // Pending: a reader waiting on each, with nothing to read.
        let readers = [plain, tap].map { sub in Task { for await _ in sub {}; return true } }
            + [Task(executorPreference: t.preferredExecutor) {
                while let b = await batched.nextBatch() { b.forEach { $0.ack() } }
                return true
            }]
        await t.close()
        try await s.within("every subscription to end after close") {
            for r in readers { _ = await r.value }
        }
        try await s.within("the state stream to end with .closed") {
            var last: ConnectionState?
            for await st in states { last = st }
            try s.check(last == .closed, "last state \(String(describing: last))")
        }
        try s.check(t.state == .closed, "state \(t.state)")
        for (what, call) in [("send", { try await t.send(toInport: q, number(1)) }),
                             ("send on an outport", { try await t.send(toOutport: out, number(1)) }),
                             ("declare", { try await t.declareInport(q) }),
                             ("consume", { _ = try await t.consume(q) }),
                             ("connect", { try await t.connect() })] as [(String, () async throws -> Void)] {
            try await s.fails(.closed, "\(what) after close", call)
        }
        await t.close()
    }

    /// The long wait the cases about waiting calls give a transport (connect, operation and reconnect timeouts):
    /// their calls must end well inside half of it.
    static let longWait = Duration.seconds(30)

    /// A task cancelled while its `connect()` waits (for a broker that takes the connection and never answers) gets
    /// a one-line `.cancelled` error at once, not after the connect timeout; the transport is closed then (later
    /// calls fail `.closed`). Nothing on the in-memory transport waits.
    public static let cancellingAWaitingConnect = Case(name: "a cancelled connect fails at once and closes") { s in
        guard let unanswered = s.factory.unanswered else { return }
        let t = try unanswered(TransportTimeouts(connect: longWait, operation: longWait, reconnectWait: longWait))
        s.made.withLock { $0.append(t) }
        let (error, took) = await withTaskGroup(of: (MsgFloError?, Duration).self) { group in
            group.addTask { await s.failure(of: { try await t.connect() }) }
            try? await Task.sleep(for: .milliseconds(300))  // connecting: the TCP connection is up, no answer
            group.cancelAll()
            return await group.next() ?? (nil, .zero)
        }
        try s.check(error?.code == .cancelled, "connect: \(error.map { "\($0.code): \($0)" } ?? "no error")")
        try s.check(took < longWait / 2, "the cancelled connect took \(took) (its timeout: \(longWait))")
        try s.check(!(error?.description.contains("\n") ?? true), "a one-line error")
        try await s.within("the state to be .closed") {
            for await st in t.stateUpdates() where st == .closed { break }
        }
        try await s.fails(.closed, "declare after a cancelled connect") { try await t.declareInport(s.unique("x.IN")) }
    }

    /// `close()` fails a call waiting in `connect()` at once with `.closed`, and returns well before the connect
    /// timeout too (a handshake the transport's thread is blocked in is cut short).
    public static let closeFailsAWaitingConnectAtOnce = Case(name: "close fails a waiting connect at once") { s in
        guard let unanswered = s.factory.unanswered else { return }
        let t = try unanswered(TransportTimeouts(connect: longWait, operation: longWait, reconnectWait: longWait))
        s.made.withLock { $0.append(t) }
        var closeTook = Duration.zero
        let (error, took) = await withTaskGroup(of: (MsgFloError?, Duration).self) { group in
            group.addTask { await s.failure(of: { try await t.connect() }) }
            try? await Task.sleep(for: .milliseconds(300))
            let closing = ContinuousClock.now
            await t.close()
            closeTook = ContinuousClock.now - closing
            return await group.next() ?? (nil, .zero)
        }
        try s.check(error?.code == .closed, "connect: \(error.map { "\($0.code): \($0)" } ?? "no error")")
        try s.check(took < longWait / 2, "connect failed after \(took), not at close (its timeout: \(longWait))")
        try s.check(closeTook < longWait / 2, "close took \(closeTook) (the connect timeout: \(longWait))")
        try s.check(t.state == .closed, "state \(t.state)")
    }

    /// While the broker is away, a task cancelled in any call that waits for it (a declaration, a binding, a
    /// consumer, queue stats, a send waiting for the broker's confirm) gets `.cancelled` at once, not after the
    /// reconnect wait, and what it queued is dropped: once the broker is back, the queue whose declaration was
    /// cancelled does not exist and the cancelled send did not arrive (where the transport can tell). A call that
    /// does not wait (MQTT declares nothing, sends are buffered) may just succeed. Then close fails waiting calls
    /// at once with `.closed`.
    public static let cancellingCallsThatWaitForTheBroker = Case(name: "calls waiting for the broker: cancel, close") { s in
        guard let away = s.factory.whileBrokerAway else { return }
        let t = try await s.connected()
        let q = s.unique("wait.IN"), never = s.unique("never.IN"), out = s.unique("wait.OUT")
        try await t.declareInport(q)
        try await t.declareOutport(out)
        let calls: [(String, @Sendable () async throws -> Void)] = [
            ("declare", { try await t.declareInport(never) }),
            ("bind", { try await t.addBinding(Binding(src: out, tgt: q)) }),
            ("consume", { _ = try await t.consume(q) }),
            ("queue stats", { _ = try await t.queueStats(q) }),
            ("send waiting for a confirm", { try await t.sendRouted(toInport: q, number(1)) }),
        ]
        // Each call waits for the broker; cancelling them fails each at once with .cancelled.
        try await away {
            try await s.checkWaiting(calls, on: t, endWith: .cancelled) { group in group.cancelAll() }
        }
        try await s.waitUntil("the transport to reconnect") { t.state == .connected }
        if t.capabilities.contains(.queueDepth) {
            try await s.fails(.notFound, "the queue whose declaration was cancelled") { _ = try await t.queueStats(never) }
            try await s.quiet()
            try s.check(try await t.queueDepth(q) == 0, "the cancelled send arrived")
        }
        // Close while calls wait for the broker: they fail .closed at once.
        try await away {
            try await s.checkWaiting(calls, on: t, endWith: .closed) { _ in await t.close() }
        }
    }

    // MARK: helpers

    static func number(_ i: Int) -> Message { Message(text: "{\"n\":\(i)}") }
    static func numberOf(_ d: Delivery) -> Int? {
        guard let text = d.message.text, text.hasPrefix("{\"n\":"), text.hasSuffix("}") else { return nil }
        return Int(text.dropFirst(5).dropLast())
    }
    static func firstMismatch(_ got: [Int?], _ n: Int) -> String {
        for (i, g) in got.enumerated() where g != i { return "\(i) (\(g.map(String.init) ?? "nil"))" }
        return got.count < n ? "\(got.count) (missing)" : "none"
    }

    /// The connections of one case and its limits.
    final class Session: Sendable {
        let factory: TransportFactory
        let timeout: Duration
        let caseName: String
        let made = Mutex<[any Transport]>([])
        let prefix: String

        init(factory: TransportFactory, timeout: Duration, caseName: String) {
            self.factory = factory
            self.timeout = timeout
            self.caseName = caseName
            prefix = "conformance." + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        }

        func connected() async throws -> any Transport {
            let t = try factory.make()
            made.withLock { $0.append(t) }
            try await t.connect()
            return t
        }

        func closeAll() async {
            for t in made.withLock({ $0 }) { await t.close() }
        }

        func unique(_ name: String) -> String { prefix + "." + name + "." + String(UInt32.random(in: 0...UInt32.max), radix: 36) }

        func check(_ condition: Bool, _ message: @autoclosure () -> String) throws(ConformanceFailure) {
            if !condition { throw ConformanceFailure(message: message()) }
        }

        /// Checks that `call` fails with a one-line ``MsgFloError`` of `code` (nil: any code).
        func fails(_ code: MsgFloError.Code?, _ what: String, _ call: () async throws -> Void) async throws {
            do {
                try await call()
            } catch let e as MsgFloError {
                try check((code == nil || e.code == code) && !e.description.contains("\n"),
                          "\(what): \(e.code), not \(code.map { "'\($0)'" } ?? "a one-line error") (\(e))")
                return
            }
            throw ConformanceFailure(message: "\(what) succeeded")
        }

        /// Runs `call`; its error (nil when it succeeded, or failed with something other than a ``MsgFloError``,
        /// which the check of its code then reports) and how long it took.
        func failure(of call: @Sendable () async throws -> Void) async -> (MsgFloError?, Duration) {
            let start = ContinuousClock.now
            do {
                try await call()
                return (nil, ContinuousClock.now - start)
            } catch let e as MsgFloError {
                return (e, ContinuousClock.now - start)
            } catch {
                return (MsgFloError(.invalidArgument, "not a MsgFloError: \(error)"), ContinuousClock.now - start)
            }
        }

        /// Once `t` noticed the broker is away: starts `calls` (each waits for the broker), lets them wait half a
        /// second, runs `end` (cancel them, close the transport), and checks that each ended at once, with `code`
        /// (or succeeded: a call that does not wait for the broker on this transport).
        func checkWaiting(_ calls: [(String, @Sendable () async throws -> Void)], on t: any Transport,
                          endWith code: MsgFloError.Code,
                          _ end: (inout TaskGroup<(String, MsgFloError?, Duration)>) async -> Void) async throws {
            try await waitUntil("the transport to notice the broker is away") { t.state != .connected }
            let results = await withTaskGroup(of: (String, MsgFloError?, Duration).self) { group in
                for (what, call) in calls {
                    group.addTask {
                        let (e, took) = await self.failure(of: call)
                        return (what, e, took)
                    }
                }
                try? await Task.sleep(for: .milliseconds(500))
                await end(&group)
                return await group.reduce(into: []) { $0.append($1) }
            }
            let wait = TransportConformance.longWait
            for (what, e, took) in results {
                try check(e == nil || e?.code == code, "\(what), \(code): \(e.map { "\($0.code): \($0)" } ?? "")")
                try check(took < wait / 2, "\(what) took \(took) to end (\(code); the reconnect wait is \(wait))")
            }
        }

        /// Lets a moment pass, for what must not arrive to have its chance.
        func quiet(_ d: Duration = .milliseconds(300)) async throws { try await Task.sleep(for: d) }

        func waitUntil(_ what: @autoclosure () -> String, _ condition: () async throws -> Bool) async throws {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if try await condition() { return }
                try await Task.sleep(for: .milliseconds(10))
            }
            if try await condition() { return }
            throw ConformanceFailure(message: "waited \(timeout) for \(what())")
        }

        /// Runs `body`, failing when it takes longer than the case's timeout (a hang, not a slow machine).
        func within(_ what: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
            let timeout = self.timeout
            let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try await body(); return true }
                group.addTask { try? await Task.sleep(for: timeout); return false }
                defer { group.cancelAll() }
                return try await group.next() ?? false
            }
            if !finished { throw ConformanceFailure(message: "waited \(timeout) for \(what)") }
        }
    }

    typealias Collector = DeliveryCollector
}

extension DeliveryCollector {
    var numbers: [Int?] { snapshot().map(TransportConformance.numberOf) }

    /// Waits until `count` deliveries arrived; fails after the session's timeout.
    func wait(count n: Int, _ s: TransportConformance.Session) async throws -> [Delivery] {
        try await s.waitUntil("\(n) deliveries (got \(count))") { count >= n }
        return snapshot()
    }
}
