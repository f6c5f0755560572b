import Logging
import MsgFlo
import MsgFloIOThread
import Synchronization

/// A message waiting to be written to the broker, or written and not yet confirmed by it. One reference to its
/// fields: it is copied into the outgoing queue, the batch, the confirm window and the verdict, a pointer each time.
struct Outgoing: Sendable {
    private final class Box: Sendable {
        let exchange: String
        let routingKey: String
        let body: [UInt8]
        let expiration: String?
        let properties: MessageProperties?
        let waiter: Pending<Void>?

        init(_ exchange: String, _ routingKey: String, _ body: [UInt8], _ expiration: String?,
             _ properties: MessageProperties?, _ waiter: Pending<Void>?) {
            self.exchange = exchange
            self.routingKey = routingKey
            self.body = body
            self.expiration = expiration
            self.properties = properties
            self.waiter = waiter
        }
    }

    private let box: Box

    var exchange: String { box.exchange }
    var routingKey: String { box.routingKey }
    var body: [UInt8] { box.body }
    /// Per-message TTL in milliseconds (the `expiration` property), or nil.
    var expiration: String? { box.expiration }
    /// The message's own properties (checked before it was queued), or nil for none (the common, fast case).
    var properties: MessageProperties? { box.properties }
    /// Published mandatory, with a caller waiting for the broker's verdict: confirmed (success), returned as
    /// unroutable (`.notFound`), refused (nack) or dropped.
    var waiter: Pending<Void>? { box.waiter }

    init(exchange: String, routingKey: String, body: [UInt8], expiration: String? = nil, waiter: Pending<Void>? = nil) {
        box = Box(exchange, routingKey, body, expiration, nil, waiter)
    }

    /// A message with its properties (checked here, on the caller's thread: bad ones fail the send alone).
    init(exchange: String, routingKey: String, message: Message, expiration: String? = nil,
         waiter: Pending<Void>? = nil) throws(MsgFloError) {
        var properties: MessageProperties?
        if !message.properties.isEmpty {
            try message.properties.check()
            properties = message.properties
        }
        box = Box(exchange, routingKey, message.bytes, expiration, properties, waiter)
    }

    private init(_ box: Box) { self.box = box }

    /// The same message, published mandatory for `waiter`.
    func waited(by waiter: Pending<Void>) -> Outgoing {
        Outgoing(Box(exchange, routingKey, body, expiration, properties, waiter))
    }
}

/// An ack or nack asked for by a `Delivery`.
struct Settle: Sendable {
    let tag: UInt64
    let generation: UInt64
    let ack: Bool
}

/// What the owner thread hands back for an operation.
enum OpResult: Sendable {
    case done
    case depth(Int)
    case exists(Bool)
    case stats(messages: Int, consumers: Int)
}

/// A broker operation a caller awaits. Executed by the owner thread, in order. The declarations and bindings
/// (``isRestored``) are also what ``AMQPTopology`` makes again after a reconnect.
enum Op: Sendable, Hashable {
    case declareInport(String, persistent: Bool)
    case declareOutport(String, persistent: Bool)
    case declareDiscovery
    /// An inport as a quorum queue (always durable), dead-lettering kept.
    case declareQuorumInport(String)
    /// An exclusive queue as a lock: `.exists(true)` when this connection holds it, `.exists(false)` (405) when
    /// another does. Not restored after a reconnect.
    case holdExclusive(String)
    case bind(Binding)
    case unbind(Binding)
    case consume(subscription: Int)
    case cancel(subscription: Int)
    case depth(String)
    /// A passive queue declare: `.stats` with the messages ready and the consumers (msgflo-queues).
    case stats(String)
    /// A passive exchange declare: `.exists(true)`, or `.exists(false)` on 404.
    case exchangeExists(String)

    /// A declaration or binding: once it succeeded, made again on every new connection. (An exclusive queue is a
    /// lock of this connection's and is not; an unbind removes its binding.)
    var isRestored: Bool {
        switch self {
        case .declareInport, .declareOutport, .declareDiscovery, .declareQuorumInport, .bind: true
        case .holdExclusive, .unbind, .consume, .cancel, .depth, .stats, .exchangeExists: false
        }
    }

    var summary: String {
        switch self {
        case .declareInport(let q, _): "declare inport '\(q)'"
        case .declareOutport(let q, _): "declare outport '\(q)'"
        case .declareDiscovery: "declare queue '\(discoveryQueue)'"
        case .declareQuorumInport(let q): "declare quorum inport '\(q)'"
        case .holdExclusive(let q): "hold exclusive queue '\(q)'"
        case .bind(let b): "bind \(b)"
        case .unbind(let b): "unbind \(b)"
        case .consume: "consume"
        case .cancel: "cancel consumer"
        case .depth(let q): "count messages in '\(q)'"
        case .stats(let q): "look up queue '\(q)'"
        case .exchangeExists(let x): "look up exchange '\(x)'"
        }
    }
}

/// A continuation resumed exactly once, by whoever comes first: the owner thread with the result, a timer with a
/// timeout, `close()`, or the caller's cancellation. The continuation is taken out under the lock and resumed
/// outside it. A result that comes before the continuation is installed (a task cancelled before it waited) is kept
/// and given to it at once.
final class Pending<T: Sendable>: Sendable {
    private enum Slot {
        case empty
        case waiting(CheckedContinuation<T, any Error>)
        case early(Result<T, MsgFloError>)
        case resumed
    }

    private let slot = Mutex<Slot>(.empty)

    func install(_ c: CheckedContinuation<T, any Error>) {
        let early = slot.withLock { s -> Result<T, MsgFloError>? in
            guard case .early(let r) = s else {
                s = .waiting(c)
                return nil
            }
            s = .resumed
            return r
        }
        if let early { c.resume(with: early.mapError { $0 as any Error }) }
    }

    /// The result kept for a waiter not installed yet (the owner thread's own calls, which nobody awaits).
    var settled: Result<T, MsgFloError>? {
        slot.withLock { s in
            if case .early(let r) = s { return r }
            return nil
        }
    }

    /// Resumes the waiter (or keeps `result` for it); false when someone came first.
    @discardableResult
    func resume(_ result: Result<T, MsgFloError>) -> Bool {
        let taken = slot.withLock { s -> (won: Bool, c: CheckedContinuation<T, any Error>?) in
            switch s {
            case .empty:
                s = .early(result)
                return (true, nil)
            case .waiting(let c):
                s = .resumed
                return (true, c)
            case .early, .resumed:
                return (false, nil)
            }
        }
        taken.c?.resume(with: result.mapError { $0 as any Error })
        return taken.won
    }

    /// Runs `start` with this pending installed, and fails it with `timeoutError` after `timeout` unless resumed
    /// first (a deadline of the owner thread `io`). While it waits, `waiters` (when given) can fail it (close); when
    /// the calling task is cancelled it fails at once with `.cancelled` (`cancelledError`), and `onCancel` then
    /// takes back what `start` queued, where that is still possible.
    /// A nil `cancelledError` makes the wait ignore cancellation (a close, which must run to its end).
    static func wait(on io: IOThread, waiters: Waiters? = nil, timeout: Duration,
                     timeoutError: @escaping @Sendable () -> MsgFloError,
                     cancelledError: (@Sendable () -> MsgFloError)?,
                     onCancel: @escaping @Sendable (Pending<T>) -> Void = { _ in },
                     _ start: (Pending<T>) -> Void) async throws -> T {
        let pending = Pending<T>()
        let id = waiters?.add { pending.resume(.failure($0)) }
        defer { if let id { waiters?.remove(id) } }
        var deadline: IOThread.Deadline?
        defer { io.cancel(deadline) }
        guard let cancelledError else {
            return try await withCheckedThrowingContinuation { c in
                pending.install(c)
                deadline = io.schedule(after: timeout) { pending.resume(.failure(timeoutError())) }
                start(pending)
            }
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { c in
                pending.install(c)
                deadline = io.schedule(after: timeout) { pending.resume(.failure(timeoutError())) }
                start(pending)
            }
        } onCancel: {
            if pending.resume(.failure(cancelledError())) { onCancel(pending) }
        }
    }
}

/// The calls waiting on the owner thread, so that `close()` fails every one of them at once (with `.closed`),
/// whatever the thread is doing (a blocking connect, a reconnect's backoff).
final class Waiters: Sendable {
    private struct Table {
        var next: UInt64 = 0
        var fail: [UInt64: @Sendable (MsgFloError) -> Void] = [:]
        var closed: MsgFloError?
    }

    private let table = Mutex(Table())

    /// Registers a waiter; after ``failAll(_:)`` it is failed at once.
    func add(_ fail: @escaping @Sendable (MsgFloError) -> Void) -> UInt64 {
        let (id, closed) = table.withLock { t -> (UInt64, MsgFloError?) in
            t.next += 1
            if t.closed == nil { t.fail[t.next] = fail }
            return (t.next, t.closed)
        }
        if let closed { fail(closed) }
        return id
    }

    func remove(_ id: UInt64) { _ = table.withLock { $0.fail.removeValue(forKey: id) } }

    /// Fails every waiter now and every later one as it comes.
    func failAll(_ error: MsgFloError) {
        let all = table.withLock { t -> [@Sendable (MsgFloError) -> Void] in
            if t.closed == nil { t.closed = error }
            defer { t.fail = [:] }
            return Array(t.fail.values)
        }
        for f in all { f(error) }
    }
}

struct QueuedOp: Sendable {
    let op: Op
    let pending: Pending<OpResult>
    /// When a call made while the broker is away gives up.
    let deadline: ContinuousClock.Instant
}

/// A consumer as the owner thread knows it; kept across reconnects so that the same stream continues.
/// A class: the owner thread looks a consumer up for every delivery, and a reference is cheaper to hand on than the
/// fields.
final class SubscriptionRecord: Sendable {
    let id: Int
    /// The queue consumed (a data tap: the outport exchange it taps).
    let queue: String
    let prefetch: Int
    let isTap: Bool
    /// RabbitMQ's direct reply-to: a no-ack consumer of `amq.rabbitmq.reply-to` on the publishing channel (the
    /// broker takes requests sent there with that reply-to as this consumer's). `queue` is the pseudo-queue.
    let directReplyTo: Bool
    let continuation: DeliveryStream.Continuation

    init(id: Int, queue: String, prefetch: Int, isTap: Bool, directReplyTo: Bool = false,
         continuation: DeliveryStream.Continuation) {
        self.id = id
        self.queue = queue
        self.prefetch = prefetch
        self.isTap = isTap
        self.directReplyTo = directReplyTo
        self.continuation = continuation
    }
}

/// The state the callers and the owner thread share, behind one lock. Everything here is touched briefly.
struct SharedState: Sendable {
    var state: ConnectionState = .idle
    var watchers: [Int: AsyncStream<ConnectionState>.Continuation] = [:]
    var nextWatcher = 0

    var publishes: [Outgoing] = []
    var settles: [Settle] = []
    var ops: [QueuedOp] = []
    /// Subscriptions waiting for the owner thread to take them (it keeps its own table).
    var newSubscriptions: [SubscriptionRecord] = []
    var nextSubscription = 1

    /// Messages queued or written and unconfirmed; `send` waits while it is at the limit.
    var outstanding = 0
    var spaceWaiters: [(id: Int, pending: Pending<Void>)] = []
    var nextWaiter = 0

    /// The owner thread is (about to be) blocked in poll and wants a wake-up on the eventfd.
    var sleeping = false
    var signalled = false
    /// While it sleeps: whether an ack should wake it (false while a deferred multiple-ack waits for more).
    var wakeOnAck = true

    var closeRequested = false
    var closed = false
    var threadRunning = false
    var closeWaiters: [Pending<Void>] = []
}
