import Synchronization

/// An in-process broker with AMQP's semantics (queues, fanout exchanges, bindings, round robin, dead-lettering,
/// prefetch and acknowledgements), for unit tests of the SDK and the coordinator. It never stands in for a real
/// broker in transport tests.
public final class InMemoryBroker: Sendable {
    struct Consumer {
        let id: Int
        let prefetch: Int
        var inFlight: Int = 0
        let continuation: DeliveryStream.Continuation
        /// Data taps take copies and need no acknowledgement.
        let isTap: Bool
        /// A data tap: the outport its deliveries name (they are not held: no acknowledgement, no prefetch).
        var tapOf: String? = nil
    }

    struct Queue {
        /// Waiting messages; `redelivered`: handed out before and given back unsettled (as AMQP marks them).
        var messages: [(message: Message, redelivered: Bool)] = []
        var head = 0
        var consumers: [Consumer] = []
        var next = 0
        var deadLetterExchange: String?
        var unacked: [UInt64: (message: Message, consumer: Int)] = [:]
        var count: Int { messages.count - head }
    }

    struct Exchange {
        enum Kind { case fanout, direct }
        var kind: Kind
        var queues: Set<String> = []
        var exchanges: Set<String> = []
    }

    struct State {
        var queues: [String: Queue] = [:]
        var exchanges: [String: Exchange] = [:]
        var nextTag: UInt64 = 1
        var nextConsumer = 1
        var tagQueue: [UInt64: String] = [:]
    }

    let state = Mutex(State())

    public init() {}

    /// Messages waiting (not delivered) in a queue.
    public func depth(_ queue: String) -> Int? { state.withLock { $0.queues[queue]?.count } }

    /// Messages in a queue that are not settled yet: waiting, or delivered and not acknowledged.
    public func unsettled(_ queue: String) -> Int? {
        state.withLock { s in s.queues[queue].map { $0.count + $0.unacked.count } }
    }

    /// Queues that exist, for assertions.
    public var queueNames: Set<String> { state.withLock { Set($0.queues.keys) } }

    /// The queues bound to an exchange, for assertions.
    public func boundQueues(_ exchange: String) -> Set<String> {
        state.withLock { $0.exchanges[exchange]?.queues ?? [] }
    }

    func declareQueue(_ name: String, deadLetter: String?) {
        state.withLock { s in
            if s.queues[name] == nil { s.queues[name] = Queue(deadLetterExchange: deadLetter) }
        }
    }

    func declareExchange(_ name: String, kind: Exchange.Kind) {
        state.withLock { s in
            if s.exchanges[name] == nil { s.exchanges[name] = Exchange(kind: kind) }
        }
    }

    func bindQueue(_ queue: String, to exchange: String) throws(MsgFloError) {
        try state.withLock { s throws(MsgFloError) in
            guard s.queues[queue] != nil else { throw MsgFloError(.notFound, "no queue '\(queue)'") }
            guard s.exchanges[exchange] != nil else { throw MsgFloError(.notFound, "no exchange '\(exchange)'") }
            s.exchanges[exchange]!.queues.insert(queue)
        }
    }

    func bindExchange(_ destination: String, to source: String) throws(MsgFloError) {
        try state.withLock { s throws(MsgFloError) in
            guard s.exchanges[destination] != nil else { throw MsgFloError(.notFound, "no exchange '\(destination)'") }
            guard s.exchanges[source] != nil else { throw MsgFloError(.notFound, "no exchange '\(source)'") }
            s.exchanges[source]!.exchanges.insert(destination)
        }
    }

    func unbindQueue(_ queue: String, from exchange: String) {
        state.withLock { s in _ = s.exchanges[exchange]?.queues.remove(queue) }
    }

    /// Publishes to an exchange ("" is the default exchange: routing key = queue name). Unroutable messages are
    /// dropped, as on RabbitMQ.
    func publish(exchange: String, routingKey: String, _ message: Message) {
        state.withLock { s in
            var targets: [String] = []
            if exchange.isEmpty {
                if s.queues[routingKey] != nil { targets.append(routingKey) }
            } else {
                var seen: Set<String> = []
                route(&s, exchange, &targets, &seen)
            }
            for q in targets { enqueue(&s, q, message) }
        }
    }

    private func route(_ s: inout State, _ exchange: String, _ out: inout [String], _ seen: inout Set<String>) {
        guard seen.insert(exchange).inserted, let ex = s.exchanges[exchange] else { return }
        switch ex.kind {
        case .fanout:
            out.append(contentsOf: ex.queues.sorted())
            for e in ex.exchanges.sorted() { route(&s, e, &out, &seen) }
        case .direct:
            // Bindings and publishes on msgflo's round-robin exchange all use the routing key "", so every bound
            // queue matches, as on RabbitMQ; the round robin itself is among the consumers of a queue.
            out.append(contentsOf: ex.queues.sorted())
        }
    }

    private func enqueue(_ s: inout State, _ queue: String, _ message: Message) {
        s.queues[queue]!.messages.append((message, false))
        dispatch(&s, queue)
    }

    private func dispatch(_ s: inout State, _ name: String) {
        guard var q = s.queues[name] else { return }
        defer { s.queues[name] = q }
        while q.count > 0 {
            let n = q.consumers.count
            guard n > 0 else { break }
            var chosen: Int? = nil
            for k in 0..<n {
                let i = (q.next + k) % n
                if q.consumers[i].inFlight < q.consumers[i].prefetch { chosen = i; break }
            }
            guard let i = chosen else { break }
            q.next = (i + 1) % n
            let (message, redelivered) = q.messages[q.head]
            q.head += 1
            if let outport = q.consumers[i].tapOf {
                q.consumers[i].continuation.yield(Delivery(message: message, queue: outport))
                continue
            }
            let tag = s.nextTag
            s.nextTag += 1
            q.consumers[i].inFlight += 1
            q.unacked[tag] = (message, q.consumers[i].id)
            s.tagQueue[tag] = name
            q.consumers[i].continuation.yield(
                Delivery(message: message, queue: name, redelivered: redelivered, tag: tag,
                         settler: BrokerSettler(broker: self)))
        }
        if q.head > 1024 && q.head * 2 > q.messages.count {
            q.messages.removeFirst(q.head)
            q.head = 0
        }
    }

    func settle(tag: UInt64, ack: Bool) {
        state.withLock { s in
            guard let name = s.tagQueue.removeValue(forKey: tag), var q = s.queues[name],
                  let entry = q.unacked.removeValue(forKey: tag) else { return }
            if let i = q.consumers.firstIndex(where: { $0.id == entry.consumer }) { q.consumers[i].inFlight -= 1 }
            s.queues[name] = q
            if !ack, let dlx = q.deadLetterExchange {
                var targets: [String] = []
                var seen: Set<String> = []
                route(&s, dlx, &targets, &seen)
                for t in targets { enqueue(&s, t, entry.message) }
            }
            dispatch(&s, name)
        }
    }

    /// `tapOf`: a data tap of that outport (deliveries name it and need no acknowledgement).
    func addConsumer(_ queue: String, prefetch: Int, tap: Bool,
                     tapOf: String? = nil) throws(MsgFloError) -> (Int, DeliveryStream) {
        let (stream, continuation) = DeliveryStream.makeStream()
        let id = try state.withLock { s throws(MsgFloError) -> Int in
            guard s.queues[queue] != nil else { throw MsgFloError(.notFound, "no queue '\(queue)'") }
            let id = s.nextConsumer
            s.nextConsumer += 1
            s.queues[queue]!.consumers.append(
                Consumer(id: id, prefetch: tap ? Int.max : prefetch, continuation: continuation, isTap: tap,
                         tapOf: tapOf))
            dispatch(&s, queue)
            return id
        }
        return (id, stream)
    }

    /// Removes a consumer; its unacknowledged messages go back to the front of the queue.
    func removeConsumer(_ queue: String, id: Int) {
        state.withLock { s in
            guard var q = s.queues[queue], let i = q.consumers.firstIndex(where: { $0.id == id }) else { return }
            q.consumers[i].continuation.finish()
            q.consumers.remove(at: i)
            q.next = 0
            giveBack(&s, &q, consumer: id)
            s.queues[queue] = q
            dispatch(&s, queue)
        }
    }

    /// A consumer's connection was lost and it consumes again: what it held unsettled goes back to the front of the
    /// queue, marked redelivered, and settling those old deliveries does nothing (as on RabbitMQ).
    func returnUnsettled(_ queue: String, id: Int) {
        state.withLock { s in
            guard var q = s.queues[queue], let i = q.consumers.firstIndex(where: { $0.id == id }) else { return }
            q.consumers[i].inFlight = 0
            giveBack(&s, &q, consumer: id)
            s.queues[queue] = q
            dispatch(&s, queue)
        }
    }

    private func giveBack(_ s: inout State, _ q: inout Queue, consumer id: Int) {
        let back = q.unacked.filter { $0.value.consumer == id }.sorted { $0.key < $1.key }
        for (tag, _) in back {
            q.unacked.removeValue(forKey: tag)
            s.tagQueue.removeValue(forKey: tag)
        }
        let pending = Array(q.messages[q.head...])
        q.messages = back.map { ($0.value.message, true) } + pending
        q.head = 0
    }

    func deleteQueue(_ name: String) {
        state.withLock { s in
            if let q = s.queues.removeValue(forKey: name) { q.consumers.forEach { $0.continuation.finish() } }
            for k in s.exchanges.keys { s.exchanges[k]!.queues.remove(name) }
        }
    }
}

final class BrokerSettler: DeliverySettler {
    let broker: InMemoryBroker
    init(broker: InMemoryBroker) { self.broker = broker }
    func settle(tag: UInt64, generation: UInt64, ack: Bool) { broker.settle(tag: tag, ack: ack) }
}

/// A client of an ``InMemoryBroker`` with the declarations of msgflo's AMQP layout. Tests may call
/// ``simulateConnectionLoss()`` to drive the layers above through a reconnect.
public final class InMemoryTransport: Transport {
    public let broker: BrokerURL
    public let memory: InMemoryBroker

    struct State {
        var state: ConnectionState = .idle
        var watchers: [Int: AsyncStream<ConnectionState>.Continuation] = [:]
        var nextWatcher = 0
        var consumers: [(queue: String, id: Int)] = []
        var taps: [String: String] = [:]
    }

    let local = Mutex(State())

    public let capabilities: TransportCapabilities

    /// What the in-memory broker really does: AMQP's queues, exchanges, round robin, depths, dead-lettering,
    /// prefetch, redelivery of what was left unsettled, and properties carried as they are. Not expiry, not locks.
    public static let amqpCapabilities: TransportCapabilities = [
        .brokerBindings, .sharedQueues, .queuesHoldMessages, .queueDepth, .deadLetters, .prefetch,
        .redeliversUnsettled, .messageProperties,
    ]
    /// With an `mqtt://` URL: the same broker, but it claims no broker-kept bindings, no shared queues, no queues
    /// that hold messages and no depths, so that the layers above take their MQTT paths (ask participants to
    /// subscribe, worker pools, no depth sampling) in unit tests.
    public static let mqttCapabilities: TransportCapabilities =
        amqpCapabilities.subtracting([.brokerBindings, .sharedQueues, .queuesHoldMessages, .queueDepth])

    /// - Parameter capabilities: what the transport claims; nil: ``amqpCapabilities``, or ``mqttCapabilities`` for
    ///   an `mqtt://` or `mqtts://` URL.
    public init(broker: InMemoryBroker = InMemoryBroker(), url: BrokerURL = BrokerURL(scheme: .amqp, host: "in-memory"),
                capabilities: TransportCapabilities? = nil) {
        self.memory = broker
        self.broker = url
        self.capabilities = capabilities ?? (url.scheme.isMQTT ? Self.mqttCapabilities : Self.amqpCapabilities)
    }

    public var state: ConnectionState { local.withLock { $0.state } }

    public func stateUpdates() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream<ConnectionState>.makeStream()
        local.withLock { s in
            continuation.yield(s.state)
            if s.state == .closed { continuation.finish(); return }
            let id = s.nextWatcher
            s.nextWatcher += 1
            s.watchers[id] = continuation
            continuation.onTermination = { [weak self] _ in _ = self?.local.withLock { $0.watchers.removeValue(forKey: id) } }
        }
        return stream
    }

    private func setState(_ new: ConnectionState) {
        let watchers = local.withLock { s -> [AsyncStream<ConnectionState>.Continuation] in
            s.state = new
            return Array(s.watchers.values)
        }
        for w in watchers {
            w.yield(new)
            if new == .closed { w.finish() }
        }
    }

    public func connect() async throws {
        if state == .closed { throw MsgFloError(.closed, "transport is closed") }
        setState(.connected)
    }

    public func close() async {
        let consumers = local.withLock { s -> [(queue: String, id: Int)] in
            defer { s.consumers = [] }
            return s.consumers
        }
        for c in consumers { memory.removeConsumer(c.queue, id: c.id) }
        setState(.closed)
    }

    /// Reports a lost connection and, at once, a reconnect, as a real transport would after a broker restart: the
    /// deliveries this connection's consumers held unsettled come again, marked redelivered (settling the old ones
    /// does nothing), and the consumers carry on.
    public func simulateConnectionLoss() {
        setState(.reconnecting(attempt: 1, reason: "simulated connection loss"))
        for c in local.withLock({ $0.consumers }) { memory.returnUnsettled(c.queue, id: c.id) }
        setState(.connected)
    }

    private func ensureOpen() throws(MsgFloError) {
        switch state {
        case .closed: throw MsgFloError(.closed, "transport is closed")
        case .idle: throw MsgFloError(.closed, "transport is not connected")
        default: break
        }
    }

    public func declareInport(_ queue: String, options: QueueOptions) async throws {
        try ensureOpen()
        memory.declareQueue(queue, deadLetter: "dead-" + queue)
        memory.declareExchange(queue, kind: .fanout)
        try memory.bindQueue(queue, to: queue)
    }

    public func declareOutport(_ queue: String, options: QueueOptions) async throws {
        try ensureOpen()
        memory.declareExchange(queue, kind: .fanout)
    }

    public func declareDiscoveryQueue() async throws {
        try ensureOpen()
        memory.declareQueue(discoveryQueue, deadLetter: nil)
    }

    public func send(toOutport queue: String, _ message: Message) async throws {
        try ensureOpen()
        memory.publish(exchange: queue, routingKey: "", message)
    }

    public func send(toInport queue: String, _ message: Message) async throws {
        try ensureOpen()
        memory.publish(exchange: "", routingKey: queue, message)
    }

    public func consume(_ queue: String, options: ConsumeOptions) async throws -> Subscription {
        try ensureOpen()
        let (id, stream) = try memory.addConsumer(queue, prefetch: options.prefetch, tap: false)
        local.withLock { $0.consumers.append((queue, id)) }
        return Subscription(queue: queue, stream: stream) { [weak self] in
            guard let self else { return }
            self.local.withLock { s in s.consumers.removeAll { $0.id == id } }
            self.memory.removeConsumer(queue, id: id)
        }
    }

    public func addBinding(_ binding: Binding) async throws {
        try ensureOpen()
        switch binding.kind {
        case .pubsub:
            try memory.bindQueue(binding.tgt, to: binding.src)
        case .roundRobin:
            let direct = "out-" + binding.src
            memory.declareExchange(direct, kind: .direct)
            try memory.bindExchange(direct, to: binding.src)
            try memory.bindQueue(binding.tgt, to: direct)
        case .deadLetter:
            let dead = "dead-" + binding.src
            memory.declareExchange(dead, kind: .fanout)
            try memory.bindQueue(binding.tgt, to: dead)
        }
    }

    public func removeBinding(_ binding: Binding) async throws {
        try ensureOpen()
        switch binding.kind {
        case .pubsub: memory.unbindQueue(binding.tgt, from: binding.src)
        case .roundRobin: memory.unbindQueue(binding.tgt, from: "out-" + binding.src)
        case .deadLetter: memory.unbindQueue(binding.tgt, from: "dead-" + binding.src)
        }
    }

    public func subscribeData(_ queue: String) async throws -> Subscription {
        try ensureOpen()
        let tap = ".msgflo-tap-\(UInt64.random(in: 0...UInt64.max))"
        memory.declareQueue(tap, deadLetter: nil)
        memory.declareExchange(queue, kind: .fanout)
        try memory.bindQueue(tap, to: queue)
        let (id, stream) = try memory.addConsumer(tap, prefetch: .max, tap: true, tapOf: queue)
        local.withLock { $0.consumers.append((tap, id)) }
        return Subscription(queue: queue, stream: stream) { [memory] in
            memory.removeConsumer(tap, id: id)
            memory.deleteQueue(tap)
        }
    }

    public func queueDepth(_ queue: String) async throws -> Int? {
        try ensureOpen()
        guard let d = memory.depth(queue) else { throw MsgFloError(.notFound, "no queue '\(queue)'") }
        return d
    }
}
