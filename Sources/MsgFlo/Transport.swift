/// The state of a transport's connection, as reported on ``Transport/stateUpdates()``.
public enum ConnectionState: Sendable, Hashable, CustomStringConvertible {
    /// Not connected yet (before `connect()`).
    case idle
    case connected
    /// The broker went away; the transport is trying again. `attempt` counts from 1; `reason` is one line.
    case reconnecting(attempt: Int, reason: String)
    /// Closed by `close()`, or given up. Final.
    case closed

    public var description: String {
        switch self {
        case .idle: "idle"
        case .connected: "connected"
        case .reconnecting(let attempt, let reason): "reconnecting (attempt \(attempt)): \(reason)"
        case .closed: "closed"
        }
    }
}

/// How a queue is declared. msgflo-nodejs's `persistent: false` port option makes queue and exchange non-durable
/// and auto-deleted (the dead-letter argument stays).
public struct QueueOptions: Sendable, Hashable {
    public var persistent: Bool
    /// The kind of AMQP queue an inport gets; nil: the transport's default (the URL's `queue-type`, else classic).
    /// MQTT has no queues and ignores it.
    public var queueType: QueueType?
    /// MQTT: the worker pool this consumer belongs to (a shared subscription `$share/<pool>/<topic>`: each message
    /// to one member). A persistent session's declaration subscribes in the pool too. AMQP ignores it: consumers of
    /// one queue always share its messages.
    public var pool: String?
    public init(persistent: Bool = true, queueType: QueueType? = nil, pool: String? = nil) {
        self.persistent = persistent
        self.queueType = queueType
        self.pool = pool
    }
}

/// RabbitMQ's queue types that msgflo uses: `classic` (msgflo's own, the default) and `quorum` (replicated over a
/// cluster by Raft: a node's death loses nothing the broker confirmed). Written `?queue-type=quorum` in a broker URL
/// and `"options": {"queueType": "quorum"}` on a port of a discovery message.
public enum QueueType: String, Sendable, Hashable, CaseIterable {
    case classic, quorum

    /// Reads `classic` or `quorum` (any case); nil for anything else.
    public init?(text: String) {
        guard let t = QueueType(rawValue: text.lowercased()) else { return nil }
        self = t
    }
}

/// How a queue is consumed.
public struct ConsumeOptions: Sendable, Hashable {
    /// The most unacknowledged messages in hand at once (AMQP basic.qos). msgflo-nodejs uses 2.
    public var prefetch: Int
    /// MQTT: consume as a member of this worker pool (see ``QueueOptions/pool``). AMQP ignores it.
    public var pool: String?
    public init(prefetch: Int = 2, pool: String? = nil) {
        self.prefetch = max(1, prefetch)
        self.pool = pool
    }
}

/// Names of MQTT worker pools (the `<group>` of `$share/<group>/<topic>`).
public enum WorkerPool {
    /// Most bytes of a pool name.
    public static let maxBytes = 128

    /// Throws a one-line error unless `name` is 1…128 bytes of printable text without `/`, `+`, `#`.
    public static func check(_ name: String) throws(MsgFloError) {
        guard !name.isEmpty, name.utf8.count <= maxBytes,
              !name.unicodeScalars.contains(where: { "/+#".unicodeScalars.contains($0) || $0.value < 0x20 || $0.value == 0x7f })
        else {
            throw MsgFloError(.invalidArgument, "invalid worker pool name '\(SafeText.escape(name, limit: 64))': "
                              + "1 to \(maxBytes) bytes, no '/', '+', '#' or control characters")
        }
    }
}

/// What a transport can do, for callers to ask (``Transport/capabilities``) instead of looking at the broker URL's
/// scheme. Each transport states its own set; a caller that needs a capability it lacks takes the other path (or
/// says why it cannot). The in-memory transport states AMQP's set (or MQTT's, made with an `mqtt://` URL), so that
/// unit tests above the transports take the same paths as with the real broker.
///
/// | capability | AMQP | MQTT 3.1.1 | MQTT 5 | in-memory (amqp) |
/// | --- | --- | --- | --- | --- |
/// | ``brokerBindings`` | yes | no (routed) | no (routed) | yes |
/// | ``sharedQueues`` | yes | no (pools) | no (pools) | yes |
/// | ``queuesHoldMessages`` | yes | no | no | yes |
/// | ``queueDepth`` | yes | no | no | yes |
/// | ``deadLetters`` | yes | no | no | yes |
/// | ``prefetch`` | yes | QoS > 0 | QoS > 0 | yes |
/// | ``redeliversUnsettled`` | yes | no | no | yes |
/// | ``messageProperties`` | yes | no | yes | yes |
/// | ``messageExpiry`` | yes | no | no | no |
/// | ``exclusiveLock`` | yes | yes | yes | no |
public struct TransportCapabilities: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The broker keeps bindings (AMQP exchanges bound to queues): an edge made once outlives the connection that
    /// made it, and a participant binds its own inport to a source (`connectinport`). Without it (MQTT) a binding is
    /// a route the transport keeps while it runs, so a coordinator asks participants to subscribe the source
    /// themselves, or routes the edge in its own process.
    public static let brokerBindings = TransportCapabilities(rawValue: 1 << 0)
    /// The consumers of one queue share its messages, each message to one of them (round robin). Without it every
    /// consumer of a topic gets every message; workers share only as members of a pool (``ConsumeOptions/pool``).
    public static let sharedQueues = TransportCapabilities(rawValue: 1 << 1)
    /// A declared queue keeps what is sent to it while nobody consumes it (AMQP: the `fbp` queue holds the
    /// announcements made since its last reader). Without it only the subscribers of the moment get a message.
    public static let queuesHoldMessages = TransportCapabilities(rawValue: 1 << 2)
    /// ``Transport/queueDepth(_:)`` and ``Transport/queueStats(_:)`` answer with numbers, and fail `.notFound` for a
    /// queue that does not exist (a passive check, which creates nothing). Without it they answer nil.
    public static let queueDepth = TransportCapabilities(rawValue: 1 << 3)
    /// A nacked delivery is dead-lettered: ``Binding/Kind/deadLetter`` bindings work. Without it they fail
    /// `.unsupported`.
    public static let deadLetters = TransportCapabilities(rawValue: 1 << 4)
    /// ``ConsumeOptions/prefetch`` limits the deliveries a consumer holds unsettled.
    public static let prefetch = TransportCapabilities(rawValue: 1 << 5)
    /// Deliveries a consumer leaves unsettled go back to the queue when the consumer or the connection goes (see
    /// ``Transport/redeliversUnsettled``).
    public static let redeliversUnsettled = TransportCapabilities(rawValue: 1 << 6)
    /// ``MessageProperties`` travel with a message, and ``Transport/replyQueue()`` gives a reply address. Without
    /// it a send with properties fails `.unsupported` (it does not drop them in silence).
    public static let messageProperties = TransportCapabilities(rawValue: 1 << 7)
    /// ``Transport/send(toInport:_:expiration:)`` has the broker drop the message once it waited that long.
    /// Without it the message is sent without expiry.
    public static let messageExpiry = TransportCapabilities(rawValue: 1 << 8)
    /// ``Transport/holdLock(_:)`` elects a leader through the broker. Without it it fails `.unsupported`.
    public static let exclusiveLock = TransportCapabilities(rawValue: 1 << 9)

    static let names: [(TransportCapabilities, String)] = [
        (.brokerBindings, "brokerBindings"), (.sharedQueues, "sharedQueues"),
        (.queuesHoldMessages, "queuesHoldMessages"), (.queueDepth, "queueDepth"), (.deadLetters, "deadLetters"),
        (.prefetch, "prefetch"), (.redeliversUnsettled, "redeliversUnsettled"),
        (.messageProperties, "messageProperties"), (.messageExpiry, "messageExpiry"), (.exclusiveLock, "exclusiveLock"),
    ]

    public var description: String { "[" + Self.names.filter { contains($0.0) }.map(\.1).joined(separator: ", ") + "]" }
}

/// A connection between two queues that the broker (AMQP) or the transport (MQTT) keeps.
public struct Binding: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// Every message on the source outport reaches the target inport (AMQP: bind queue `tgt` to exchange `src`).
        case pubsub
        /// msgflo's `msgflo/RoundRobin` node: `src` feeds queue `tgt` through the direct exchange `out-<src>`, and
        /// the workers consuming `tgt` share its messages, each message to one of them (AMQP only).
        case roundRobin = "roundrobin"
        /// Messages dead-lettered from inport `src` reach queue `tgt` (AMQP: bind `tgt` to exchange `dead-<src>`).
        case deadLetter = "deadletter"
    }

    public var kind: Kind
    public var src: String
    public var tgt: String

    public init(_ kind: Kind = .pubsub, src: String, tgt: String) {
        self.kind = kind
        self.src = src
        self.tgt = tgt
    }

    public var description: String { "\(src) -> \(tgt)" + (kind == .pubsub ? "" : " (\(kind.rawValue))") }
}

/// Acknowledges deliveries for the transport that made them. Implemented by each transport, as a class: a delivery
/// holds its settler as one reference, copied for every acknowledgement.
public protocol DeliverySettler: AnyObject, Sendable {
    /// Settles delivery `tag` of connection generation `generation`. A tag of an earlier generation (the
    /// connection was lost since) is ignored: the broker redelivers such messages by itself.
    func settle(tag: UInt64, generation: UInt64, ack: Bool)
}

/// One message taken from a queue. Acknowledge it with ``ack()`` once it is handled, or ``nack()`` to dead-letter it.
/// Settling twice, or settling a delivery of a connection that has since been lost, does nothing.
///
/// A delivery is one reference to what it carries: handing it on (through a transport's read pass, a stream's buffer,
/// a handler's context) copies a pointer, not the message's fields one by one.
public struct Delivery: Sendable {
    private final class Box: Sendable {
        let message: Message
        let queue: String
        let redelivered: Bool
        let tag: UInt64
        let generation: UInt64
        let settler: (any DeliverySettler)?

        init(_ message: Message, _ queue: String, _ redelivered: Bool, _ tag: UInt64, _ generation: UInt64,
             _ settler: (any DeliverySettler)?) {
            self.message = message
            self.queue = queue
            self.redelivered = redelivered
            self.tag = tag
            self.generation = generation
            self.settler = settler
        }
    }

    private let box: Box

    public var message: Message { box.message }
    /// The message's body alone (what `message.bytes` is, without copying the properties on the way).
    public var bytes: [UInt8] { box.message.bytes }
    /// The queue (or topic) it was consumed from.
    public var queue: String { box.queue }
    /// True when the broker delivered it before and did not see it settled (AMQP `redelivered`).
    public var redelivered: Bool { box.redelivered }

    public init(message: Message, queue: String, redelivered: Bool = false, tag: UInt64 = 0,
                generation: UInt64 = 0, settler: (any DeliverySettler)? = nil) {
        box = Box(message, queue, redelivered, tag, generation, settler)
    }

    public func ack() { box.settler?.settle(tag: box.tag, generation: box.generation, ack: true) }
    public func nack() { box.settler?.settle(tag: box.tag, generation: box.generation, ack: false) }
}

/// The messages arriving on a consumed queue, or on a data tap. It ends when the subscription is cancelled or the
/// transport is closed; it does not end when the connection is lost and comes back (the transport consumes again).
///
/// Several tasks may take from one subscription at once (a participant's workers do): each delivery goes to one.
public struct Subscription: AsyncSequence, Sendable {
    public typealias Element = Delivery
    public let queue: String
    private let stream: DeliveryStream
    private let onCancel: @Sendable () async -> Void

    public init(queue: String, stream: DeliveryStream, onCancel: @escaping @Sendable () async -> Void) {
        self.queue = queue
        self.stream = stream
        self.onCancel = onCancel
    }

    /// Stops consuming. Messages not yet acknowledged go back to the queue (AMQP).
    public func cancel() async { await onCancel() }

    /// The next delivery, and whether the caller had to wait for it; nil once the subscription has ended.
    public func nextNotingWait() async -> (delivery: Delivery, waited: Bool)? { await stream.nextNotingWait() }

    /// Every delivery waiting (at most `max`), or the next to arrive; nil once the subscription has ended. For a
    /// consumer whose work per message is small (the coordinator's discovery): run it on the transport's
    /// ``Transport/preferredExecutor`` and a batch the transport read in one go costs one wake-up and one lock.
    public func nextBatch(max: Int = .max) async -> [Delivery]? { await stream.nextBatch(max: max) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: DeliveryStream
        public mutating func next() async -> Delivery? { await stream.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: stream) }
}

/// A connection to a broker, as every layer above sees it. Implementations: `AMQPTransport` (librabbitmq),
/// `MQTTTransport` (libmosquitto), ``InMemoryTransport`` (unit tests of the layers above only).
///
/// Every method that waits fails with a ``MsgFloError`` rather than hang: on a timeout, when the transport is
/// closed, or (for calls that need the broker) when it cannot reconnect in time. Declarations, consumers and
/// bindings made through a transport are made again by it after a reconnect.
///
/// Cancellation: a call whose task is cancelled while it waits fails at once with `.cancelled`
/// (``MsgFloError/Code/cancelled``), and what it queued that the transport has not begun is dropped (a cancelled
/// `connect()` closes the transport); work already under way completes on the broker unheard (docs/transports.md).
/// ``close()`` fails every waiting call at once with `.closed`.
public protocol Transport: AnyObject, Sendable {
    var broker: BrokerURL { get }

    /// What this transport can do. Callers ask it, never the broker URL's scheme. Fixed for a transport's life.
    var capabilities: TransportCapabilities { get }

    /// Connects. Throws a one-line error when the broker cannot be reached within the connect timeout.
    func connect() async throws
    /// Closes the connection: subscriptions end, waiters fail with `.closed` at once. Runs to its end (a bounded
    /// flush and disconnect) in a cancelled task too. Idempotent.
    func close() async

    var state: ConnectionState { get }
    /// The current state, then every change, until `closed`.
    func stateUpdates() -> AsyncStream<ConnectionState>

    /// Declares an inport queue (AMQP: durable queue `Q` with `x-dead-letter-exchange = dead-Q`, plus fanout
    /// exchange `Q` bound to it). A queue that exists with other flags is reported (a log line) and used as it is.
    func declareInport(_ queue: String, options: QueueOptions) async throws
    /// Declares an outport queue (AMQP: durable fanout exchange `Q`).
    func declareOutport(_ queue: String, options: QueueOptions) async throws
    /// Declares the `fbp` discovery queue (AMQP: durable, no arguments). No-op on MQTT.
    func declareDiscoveryQueue() async throws

    /// Sends on an outport (AMQP: exchange `Q`, routing key ""; MQTT: topic `Q`).
    func send(toOutport queue: String, _ message: Message) async throws
    /// Sends straight into an inport queue (AMQP: default exchange, routing key `Q`; MQTT: topic `Q`).
    func send(toInport queue: String, _ message: Message) async throws
    /// The same, with a time to live: AMQP sets the message's `expiration`, so the broker drops it once it has waited
    /// that long in the queue. Brokers without per-message expiry (MQTT 3.1.1) send it as it is (the default).
    func send(toInport queue: String, _ message: Message, expiration: Duration?) async throws

    /// Sends straight into an inport queue like ``send(toInport:_:)``, and waits until the broker has taken it.
    /// AMQP publishes it mandatory: when no queue takes it (a typo in the name), the broker returns it and this
    /// fails with `.notFound`. Where the broker cannot tell (MQTT), the default just sends.
    func sendRouted(toInport queue: String, _ message: Message) async throws

    /// Whether an exchange (an AMQP outport) of that name exists, asked without creating it; nil where the broker
    /// has no such thing (MQTT, the default).
    func exchangeExists(_ name: String) async throws -> Bool?

    /// Consumes a queue (MQTT: subscribes the topic) with manual acknowledgement. The one way to consume: tasks
    /// take deliveries one at a time (``Subscription/nextNotingWait()``, `for await`) or whatever has arrived at
    /// once (``Subscription/nextBatch(max:)``), on the transport's ``preferredExecutor`` for the cheapest hand-over.
    func consume(_ queue: String, options: ConsumeOptions) async throws -> Subscription

    func addBinding(_ binding: Binding) async throws
    func removeBinding(_ binding: Binding) async throws

    /// Taps the data flowing out of outport `queue` without taking it from anyone (AMQP: a private auto-delete
    /// queue bound to the exchange). Deliveries need no acknowledgement.
    func subscribeData(_ queue: String) async throws -> Subscription

    /// A private address for the replies to this connection's requests: put `replyTo` in a request's properties
    /// and its answer arrives on `subscription` (no acknowledgement needed). AMQP: RabbitMQ's direct reply-to;
    /// MQTT 5: a private response topic; MQTT 3.1.1 fails (`.unsupported`: a reply-to cannot travel). The default
    /// declares a private, non-persistent queue and consumes it.
    func replyQueue() async throws -> (replyTo: String, subscription: Subscription)

    /// Messages waiting in inport queue `queue` (AMQP), or nil where the broker cannot tell (MQTT).
    func queueDepth(_ queue: String) async throws -> Int?

    /// Messages ready in queue `queue` and its consumers, asked without creating it (AMQP: a passive declare;
    /// `.notFound` when there is no such queue), or nil where the broker cannot tell (MQTT). The default gives
    /// ``queueDepth(_:)`` and no consumer count.
    func queueStats(_ queue: String) async throws -> QueueStats?

    /// The executor of the transport's I/O thread, for consumer tasks: `Task(executorPreference:)` with it runs
    /// a consumer between the thread's network reads and writes, with no thread hand-over per message (see
    /// IOThreadExecutor in MsgFloIOThread). Nil when the transport has none (then consumers run on the global executor).
    var preferredExecutor: (any TaskExecutor)? { get }

    /// Leader election through the broker (standby coordinators): takes, or keeps, the lock `name` for this
    /// connection. True while this connection holds it; false when another connection does. The broker frees it
    /// when the holder's connection ends (a crash included); after a reconnect the holder must take it again (call
    /// this periodically). AMQP: an exclusive queue `name`. The default: `.unsupported`.
    func holdLock(_ name: String) async throws -> Bool

    /// Prepares ``holdLock(_:)`` before `connect()` where the broker needs it (MQTT: the last will that clears this
    /// instance's claim when its connection dies). The default does nothing.
    func prepareLock(_ name: String, instance: String) throws
}

extension Transport {
    public var preferredExecutor: (any TaskExecutor)? { nil }
    /// True when deliveries a consumer leaves unsettled go back to the queue (AMQP: when the consumer or the
    /// connection goes). False for MQTT: what was read is acknowledged already, so a consumer that stops must still
    /// handle what it was given (the participant SDK does). ``TransportCapabilities/redeliversUnsettled``.
    public var redeliversUnsettled: Bool { capabilities.contains(.redeliversUnsettled) }

    public func send(toInport queue: String, _ message: Message, expiration: Duration?) async throws {
        try await send(toInport: queue, message)
    }

    public func sendRouted(toInport queue: String, _ message: Message) async throws {
        try await send(toInport: queue, message)
    }

    public func exchangeExists(_ name: String) async throws -> Bool? { nil }

    public func queueStats(_ queue: String) async throws -> QueueStats? {
        guard let n = try await queueDepth(queue) else { return nil }
        return QueueStats(messages: n, consumers: nil)
    }

    public func prepareLock(_ name: String, instance: String) throws {}

    public func holdLock(_ name: String) async throws -> Bool {
        throw MsgFloError(.unsupported, "\(broker.scheme.rawValue):// brokers cannot hold a lock for leader election here")
    }

    public func replyQueue() async throws -> (replyTo: String, subscription: Subscription) {
        let name = "msgflo-reply-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        try await declareInport(name, options: QueueOptions(persistent: false))
        return (name, try await consume(name))
    }

    public func declareInport(_ queue: String) async throws { try await declareInport(queue, options: QueueOptions()) }
    public func declareOutport(_ queue: String) async throws { try await declareOutport(queue, options: QueueOptions()) }
    public func consume(_ queue: String) async throws -> Subscription { try await consume(queue, options: ConsumeOptions()) }

    /// The scoped life of a connection: connects, runs `body`, and closes, whatever happens: on return, on a throw
    /// (a failed connect included) and on cancellation (a cancelled task's waiting calls fail `.cancelled` at once,
    /// and the close still runs to its end). `body`'s result or error is this call's.
    ///
    /// ```swift
    /// let depth = try await transport.withConnection { try await transport.queueDepth("repeat.IN") }
    /// ```
    public func withConnection<R>(isolation: isolated (any Actor)? = #isolation,
                                  _ body: () async throws -> R) async throws -> R {
        do {
            try await connect()
        } catch {
            await close()
            throw error
        }
        return try await closing(after: body)
    }

    /// Runs `body` on a connected transport, then closes it whatever happens (return, throw, cancellation): the
    /// second half of ``withConnection(isolation:_:)``, for callers that connect their own way (with a deadline).
    public func closing<R>(isolation: isolated (any Actor)? = #isolation,
                           after body: () async throws -> R) async throws -> R {
        let result: R
        do {
            result = try await body()
        } catch {
            await close()
            throw error
        }
        await close()
        return result
    }

    /// Announces a participant on the discovery queue. A definition with a `heartbeat` expires after that period
    /// (AMQP per-message `expiration`): an announcement nobody read in time says nothing true any more, and would
    /// otherwise wait in the durable `fbp` queue for a later coordinator as a ghost.
    public func announce(_ definition: ParticipantDefinition) async throws {
        let expiration = definition.heartbeat.map { Duration.milliseconds(Int64(($0 * 1000).rounded(.up))) }
        try await send(toInport: discoveryQueue, Discovery.message(for: definition), expiration: expiration)
    }
}

/// Timeouts every transport honours.
public struct TransportTimeouts: Sendable, Hashable {
    /// Connecting, logging in, opening the channel.
    public var connect: Duration
    /// One broker round trip (declare, bind, qos, …).
    public var operation: Duration
    /// How long a call made while the broker is away waits for it to come back before failing.
    public var reconnectWait: Duration

    public init(connect: Duration = .seconds(10), operation: Duration = .seconds(10),
                reconnectWait: Duration = .seconds(30)) {
        self.connect = connect
        self.operation = operation
        self.reconnectWait = reconnectWait
    }
}

/// What a broker says about a queue (``Transport/queueStats(_:)``, msgflo-queues).
public struct QueueStats: Sendable, Hashable {
    /// Messages ready for delivery (AMQP's passive declare does not count those delivered and not yet acknowledged).
    public var messages: Int
    /// Consumers of the queue; nil where the transport cannot tell.
    public var consumers: Int?
    public init(messages: Int, consumers: Int?) {
        self.messages = messages
        self.consumers = consumers
    }
}
