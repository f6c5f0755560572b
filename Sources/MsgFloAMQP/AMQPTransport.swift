import CRabbitMQ
import Glibc
import Logging
import MsgFlo
import MsgFloIOThread
import Synchronization

/// The AMQP 0-9-1 transport, on librabbitmq, with msgflo-nodejs's queue layout (see docs/protocol.md).
///
/// Threading: one dedicated OS thread owns the librabbitmq connection and makes every C call on it. Callers hand it
/// work through a lock-protected queue and wake it with an eventfd; it answers through continuations. The thread
/// keeps reading frames (deliveries, publisher confirms, heartbeats) while idle.
///
/// Sending: `send` returns once the message is in the transport's ordered outgoing buffer (it does not wait for the
/// broker). Messages are published with publisher confirms and kept until the broker confirms them; after a lost
/// connection the unconfirmed ones are published again (at-least-once, a duplicate is possible). While the broker is
/// away, sends are buffered (bounded by `maxOutstanding`) and flushed after the reconnect; when the buffer is full,
/// `send` waits for room and fails after `reconnectWait` (disconnected) or `operation` (connected). Messages are
/// persistent (delivery mode 2) unless the URL says `persistent=false`.
///
/// Receiving: acknowledgements are written as multiple-acks, at once when they cover a tenth of the consumer's
/// prefetch or the consumer has half its prefetch unacked (so prefetch 1 or 2 behaves as it always did), otherwise up
/// to 5 ms later together with the ones that followed.
/// A message acknowledged by its consumer may thus stay unacknowledged on the broker for 5 ms; were the process to die
/// then, the broker would deliver it again (at-least-once, a duplicate possible, nothing lost).
package final class AMQPTransport: Transport {
    package let broker: BrokerURL
    let core: AMQPCore

    /// - Parameters:
    ///   - maxOutstanding: the most messages held unconfirmed or queued before `send` waits for room.
    ///   - logger: where warnings go (a redeclare with other flags, a reconnect, a dropped message).
    package init(url: BrokerURL, timeouts: TransportTimeouts = TransportTimeouts(), maxOutstanding: Int = 20_000,
                logger: Logger) throws(MsgFloError) {
        self.broker = url
        let settings = try AMQPSettings(url: url, timeouts: timeouts, maxOutstanding: maxOutstanding)
        self.core = try AMQPCore(settings: settings, logger: logger)
    }

    package convenience init(url: String, timeouts: TransportTimeouts = TransportTimeouts(),
                            logger: Logger) throws(MsgFloError) {
        try self.init(url: try BrokerURL(parsing: url), timeouts: timeouts, logger: logger)
    }

    deinit { core.abandon() }

    package var state: ConnectionState { core.shared.withLock { $0.state } }

    package func stateUpdates() -> AsyncStream<ConnectionState> { core.stateUpdates() }

    package func connect() async throws { try await core.connect() }

    package func close() async { await core.close() }

    package var preferredExecutor: (any TaskExecutor)? { core.executor }

    /// Cuts the connection in use as a network failure would (the socket shut down under the connection's thread):
    /// the transport reconnects and restores what it had made. For tests of that path, with a real broker.
    package func dropConnection() {
        core.liveSocket.withLock { fd in
            if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// How many times the connection's thread wrote a turn's frames (publishes, acks) with one send. Stays 0 with
    /// TLS, where librabbitmq writes each frame itself.
    package var gatheredWrites: Int { core.gatheredWrites.load(ordering: .relaxed) }
    /// How often the consumer loop lingered to read a stream's messages in runs (receive coalescing).
    package var coalescedWaits: Int { core.coalescedWaits.load(ordering: .relaxed) }

    /// Everything msgflo asks of a broker: RabbitMQ keeps exchanges, bindings and queues, shares a queue among its
    /// consumers, counts what waits, dead-letters, honours basic.qos, gives unacknowledged deliveries back, carries
    /// properties and per-message expiration, and takes exclusive queues as locks.
    package var capabilities: TransportCapabilities {
        [.brokerBindings, .sharedQueues, .queuesHoldMessages, .queueDepth, .deadLetters, .prefetch,
         .redeliversUnsettled, .messageProperties, .messageExpiry, .exclusiveLock]
    }

    package func declareInport(_ queue: String, options: QueueOptions) async throws {
        try Self.check(queue, "queue")
        // The URL's queue type is for durable inports; private non-persistent queues (command, reply) stay classic.
        if (options.queueType ?? (options.persistent ? core.settings.queueType : .classic)) == .quorum {
            _ = try await core.perform(.declareQuorumInport(queue))
            return
        }
        _ = try await core.perform(.declareInport(queue, persistent: options.persistent))
    }

    package func declareOutport(_ queue: String, options: QueueOptions) async throws {
        try Self.check(queue, "exchange")
        _ = try await core.perform(.declareOutport(queue, persistent: options.persistent))
    }

    package func holdLock(_ name: String) async throws -> Bool {
        try Self.check(name, "queue")
        guard case .exists(let held) = try await core.perform(.holdExclusive(name)) else { return false }
        return held
    }

    package func declareDiscoveryQueue() async throws {
        _ = try await core.perform(.declareDiscovery)
    }

    package func send(toOutport queue: String, _ message: Message) async throws {
        try Self.check(queue, "exchange")
        try await core.publish(Outgoing(exchange: queue, routingKey: "", message: message))
    }

    package func send(toInport queue: String, _ message: Message) async throws {
        try Self.check(queue, "routing key")
        try await core.publish(Outgoing(exchange: "", routingKey: queue, message: message))
    }

    package func send(toInport queue: String, _ message: Message, expiration: Duration?) async throws {
        guard let expiration else { return try await send(toInport: queue, message) }
        try Self.check(queue, "routing key")
        let (s, atto) = expiration.components
        let ms = max(0, s * 1000 + atto / 1_000_000_000_000_000)
        try await core.publish(Outgoing(exchange: "", routingKey: queue, message: message, expiration: String(ms)))
    }

    /// Published mandatory; waits for the broker's confirm. A message no queue takes comes back (basic.return)
    /// and fails this call with `.notFound`.
    package func sendRouted(toInport queue: String, _ message: Message) async throws {
        try Self.check(queue, "routing key")
        try await core.publishAndWait(Outgoing(exchange: "", routingKey: queue, message: message))
    }

    package func exchangeExists(_ name: String) async throws -> Bool? {
        try Self.check(name, "exchange")
        guard case .exists(let e) = try await core.perform(.exchangeExists(name)) else { return nil }
        return e
    }

    package func consume(_ queue: String, options: ConsumeOptions) async throws -> Subscription {
        try Self.check(queue, "queue")
        return try await core.subscribe(queue, prefetch: core.settings.prefetch ?? options.prefetch, tap: false)
    }

    package func addBinding(_ binding: Binding) async throws {
        try Self.check(binding)
        _ = try await core.perform(.bind(binding))
    }

    package func removeBinding(_ binding: Binding) async throws {
        try Self.check(binding)
        _ = try await core.perform(.unbind(binding))
    }

    package func subscribeData(_ queue: String) async throws -> Subscription {
        try Self.check(queue, "exchange")
        return try await core.subscribe(queue, prefetch: 0, tap: true)
    }

    /// RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): no queue is made; replies arrive without
    /// acknowledgement. Requests must be sent through this transport (the broker ties the reply-to to the channel
    /// that consumes it). A reply whose caller has gone is dropped by the broker.
    package func replyQueue() async throws -> (replyTo: String, subscription: Subscription) {
        let sub = try await core.subscribe(Self.directReplyTo, prefetch: 0, tap: false, directReplyTo: true)
        return (Self.directReplyTo, sub)
    }

    static let directReplyTo = "amq.rabbitmq.reply-to"

    package func queueDepth(_ queue: String) async throws -> Int? {
        try Self.check(queue, "queue")
        guard case .depth(let n) = try await core.perform(.depth(queue)) else { return nil }
        return n
    }

    package func queueStats(_ queue: String) async throws -> QueueStats? {
        try Self.check(queue, "queue")
        guard case .stats(let m, let c) = try await core.perform(.stats(queue)) else { return nil }
        return QueueStats(messages: m, consumers: c)
    }
}

extension AMQPTransport {
    /// Every name is checked here, on the caller's thread, before it is queued for librabbitmq: a bad one fails
    /// this call alone (`.invalidArgument`) and never reaches the connection, its topology or its send buffer.
    static func check(_ name: String, _ what: String) throws(MsgFloError) {
        try WireName.check(name, .amqp, what: what)
    }

    /// A binding's names, and the exchanges derived from them (`out-SRC`, `dead-SRC`).
    static func check(_ b: Binding) throws(MsgFloError) { try b.checkWireNames(.amqp) }
}

/// What callers and the owner thread share: the settings, the logger, the locked state and the owner thread.
final class AMQPCore: DeliverySettler {
    let settings: AMQPSettings
    let logger: Logger
    let shared = Mutex(SharedState())
    /// Every call waiting on the owner thread: `close()` fails them all at once.
    let waiters = Waiters()
    /// The socket of a connection whose handshake (login, channels) the owner thread is blocked in, else -1.
    let connectingSocket = Mutex<Int32>(-1)
    /// The socket of the connection in use, else -1 (``AMQPTransport/dropConnection()``). Cleared before the
    /// connection is destroyed, under this lock: a shutdown made under it never reaches a reused descriptor.
    let liveSocket = Mutex<Int32>(-1)
    /// Loop turns whose writes left gathered in one send (plain TCP; see `cmsgflo_gather_begin`).
    let gatheredWrites = Atomic<Int>(0)
    /// Lingers of the consumer loop before reading a stream (``ReceiveCoalescing``).
    let coalescedWaits = Atomic<Int>(0)
    /// The thread that owns the connection: its wake-up, its executor (consumer tasks that prefer it run there) and
    /// the deadlines of the calls waiting on it.
    let io: IOThread
    var executor: IOThreadExecutor { io.executor }

    init(settings: AMQPSettings, logger: Logger) throws(MsgFloError) {
        self.settings = settings
        self.logger = logger
        do {
            self.io = try IOThread(name: "msgflo.amqp")
        } catch {
            throw MsgFloError(.connectionFailed, "cannot set up the AMQP connection's thread: \(error)")
        }
    }

    var url: BrokerURL { settings.url }

    // MARK: waking the owner thread

    /// Call with the lock held, after queueing work; returns whether the caller must write the eventfd.
    static func needsWake(_ s: inout SharedState) -> Bool {
        if s.sleeping && !s.signalled {
            s.signalled = true
            return true
        }
        return false
    }

    func wake() { io.wake() }

    // MARK: state

    func stateUpdates() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream<ConnectionState>.makeStream()
        shared.withLock { s in
            continuation.yield(s.state)
            if s.state == .closed {
                continuation.finish()
                return
            }
            let id = s.nextWatcher
            s.nextWatcher += 1
            s.watchers[id] = continuation
            continuation.onTermination = { [weak self] _ in
                _ = self?.shared.withLock { $0.watchers.removeValue(forKey: id) }
            }
        }
        return stream
    }

    func setState(_ new: ConnectionState) {
        let watchers = shared.withLock { s -> [AsyncStream<ConnectionState>.Continuation] in
            if s.state == .closed { return [] }
            s.state = new
            return Array(s.watchers.values)
        }
        for w in watchers {
            w.yield(new)
            if new == .closed { w.finish() }
        }
    }

    // MARK: connecting and closing

    func connect() async throws {
        enum Start { case already, start, closed }
        let start = shared.withLock { s -> Start in
            if s.closed || s.closeRequested { return .closed }
            if s.threadRunning { return .already }
            s.threadRunning = true
            return .start
        }
        switch start {
        case .closed: throw MsgFloError(.closed, "transport to \(url) is closed")
        case .already: return
        case .start: break
        }
        let timeout = settings.timeouts.connect * 2 + .seconds(1)
        let url = self.url
        try await Pending<Void>.wait(on: io, waiters: waiters, timeout: timeout, timeoutError: {
            MsgFloError(.timeout, "cannot connect to \(url): no answer within \(timeout)")
        }, cancelledError: {
            MsgFloError(.cancelled, "connecting to \(url) was cancelled; the transport is closed")
        }, onCancel: { [self] _ in closeNow(reason: "connecting was cancelled") }) { pending in
            let loop = AMQPLoop(core: self, connected: pending)
            do {
                try io.start { loop.run() }
            } catch {
                shared.withLock { $0.threadRunning = false }
                pending.resume(.failure(MsgFloError(.connectionFailed, "cannot connect to \(url): \(error)")))
            }
        }
    }

    /// Fails every waiting call at once with `.closed` (sends waiting for a confirm included: those not yet taken by
    /// the owner thread are not sent), then waits (at most the operation timeout and 3 s, whether or not the calling
    /// task is cancelled) for the owner thread to flush what was sent, close the connection and end.
    func close() async {
        let (running, alreadyClosed) = shared.withLock { s -> (Bool, Bool) in
            let was = s.closed || s.closeRequested
            s.closeRequested = true
            return (s.threadRunning, was)
        }
        failWaiters(MsgFloError(.closed, "transport to \(url) closed"))
        interruptConnect()
        if running {
            let timeout = settings.timeouts.operation + .seconds(3)
            _ = try? await Pending<Void>.wait(on: io, timeout: timeout, timeoutError: {
                MsgFloError(.timeout, "close timed out")
            }, cancelledError: nil) { pending in
                let wakeNow = shared.withLock { s -> Bool in
                    if !s.threadRunning {
                        pending.resume(.success(()))
                        return false
                    }
                    s.closeWaiters.append(pending)
                    s.signalled = true
                    return true
                }
                if wakeNow { wake() }
            }
        }
        if !alreadyClosed || !running { finishClosed(reason: "transport closed") }
    }

    /// Fails every registered waiter with `error`, and takes back the sends whose callers wait for a confirm and that
    /// the owner thread has not taken yet (their callers are told they were not sent).
    private func failWaiters(_ error: MsgFloError) {
        waiters.failAll(error)
        shared.withLock { s in
            let before = s.publishes.count
            s.publishes.removeAll { $0.waiter != nil }
            s.outstanding -= before - s.publishes.count
        }
    }

    /// Cuts short a handshake the owner thread is blocked in (a broker that takes the connection and does not
    /// answer): shuts its socket down, so that the blocking call returns at once. Under the lock the owner thread
    /// takes before it closes that socket, so never another descriptor.
    func interruptConnect() {
        connectingSocket.withLock { fd in
            if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// A connect cancelled while it waited: closes the transport without waiting for the owner thread, which ends
    /// once its connect attempt returns (at once when it was blocked in the handshake, see ``interruptConnect()``).
    func closeNow(reason: String) {
        shared.withLock { s in
            s.closeRequested = true
            s.signalled = true
        }
        wake()
        interruptConnect()
        failWaiters(MsgFloError(.closed, "transport to \(url) closed: \(reason)"))
        finishClosed(reason: reason)
    }

    /// Fails everything that waits and ends every stream. Called by close() and by the owner thread on its way out.
    func finishClosed(reason: String) {
        let err = MsgFloError(.closed, "\(reason) (\(url))")
        let (ops, waiters, subs, closeWaiters) = shared.withLock { s in
            s.closed = true
            s.closeRequested = true
            defer {
                s.ops = []
                s.spaceWaiters = []
                s.newSubscriptions = []
                s.closeWaiters = []
                s.publishes = []
                s.settles = []
            }
            return (s.ops, s.spaceWaiters, s.newSubscriptions, s.closeWaiters)
        }
        for op in ops { op.pending.resume(.failure(err)) }
        for w in waiters { w.pending.resume(.failure(err)) }
        for sub in subs { sub.continuation.finish() }
        for c in closeWaiters { c.resume(.success(())) }
        setState(.closed)
    }

    /// The transport object is gone without close(): let the thread end.
    func abandon() {
        let running = shared.withLock { s -> Bool in
            s.closeRequested = true
            s.signalled = true
            return s.threadRunning
        }
        if running { wake() }
    }

    // MARK: work for the owner thread

    private func notConnectedError() -> MsgFloError? {
        shared.withLock { s -> MsgFloError? in
            if s.closed || s.closeRequested { return MsgFloError(.closed, "transport to \(url) is closed") }
            if !s.threadRunning { return MsgFloError(.closed, "transport to \(url) is not connected (call connect() first)") }
            return nil
        }
    }

    func perform(_ op: Op) async throws -> OpResult {
        if let e = notConnectedError() { throw e }
        let t = settings.timeouts
        let wait = t.reconnectWait + t.operation
        let url = self.url
        return try await Pending<OpResult>.wait(on: io, waiters: waiters, timeout: wait + .seconds(1), timeoutError: {
            MsgFloError(.timeout, "\(op.summary) on \(url) timed out after \(wait)")
        }, cancelledError: {
            MsgFloError(.cancelled, "\(op.summary) on \(url) cancelled")
        }, onCancel: { [self] pending in
            // Not begun: dropped. A consumer's cancel always goes through (the broker must stop delivering).
            if case .cancel = op { return }
            shared.withLock { s in s.ops.removeAll { $0.pending === pending } }
        }) { pending in
            let deadline = ContinuousClock.now + t.reconnectWait
            let (doWake, closed) = shared.withLock { s -> (Bool, Bool) in
                if s.closed || s.closeRequested { return (false, true) }
                s.ops.append(QueuedOp(op: op, pending: pending, deadline: deadline))
                return (AMQPCore.needsWake(&s), false)
            }
            if closed { pending.resume(.failure(MsgFloError(.closed, "transport to \(url) is closed"))) }
            if doWake { wake() }
        }
    }

    func publish(_ message: Outgoing) async throws {
        while true {
            enum Step { case done(wake: Bool), closed, full(connected: Bool) }
            let step = shared.withLock { s -> Step in
                if s.closed || s.closeRequested || !s.threadRunning { return .closed }
                if s.outstanding < settings.maxOutstanding {
                    s.outstanding += 1
                    s.publishes.append(message)
                    return .done(wake: AMQPCore.needsWake(&s))
                }
                return .full(connected: s.state == .connected)
            }
            switch step {
            case .done(let w):
                if w { wake() }
                return
            case .closed:
                if let e = notConnectedError() { throw e }
                throw MsgFloError(.closed, "transport to \(url) is closed")
            case .full(let connected):
                let timeout = connected ? settings.timeouts.operation : settings.timeouts.reconnectWait
                let url = self.url
                let limit = settings.maxOutstanding
                try await Pending<Void>.wait(on: io, waiters: waiters, timeout: timeout, timeoutError: {
                    MsgFloError(.timeout, "cannot send to \(url): \(limit) messages still unconfirmed after \(timeout)")
                }, cancelledError: {
                    MsgFloError(.cancelled, "send to \(url) cancelled while waiting for room (\(limit) messages unconfirmed); not sent")
                }, onCancel: { [self] pending in
                    shared.withLock { s in s.spaceWaiters.removeAll { $0.pending === pending } }
                }) { pending in
                    let registered = shared.withLock { s -> Bool in
                        if s.outstanding < settings.maxOutstanding || s.closed { return false }
                        let id = s.nextWaiter
                        s.nextWaiter += 1
                        s.spaceWaiters.append((id, pending))
                        return true
                    }
                    if !registered { pending.resume(.success(())) }
                }
            }
        }
    }

    /// Publishes `message` mandatory and waits for the broker's verdict (see ``Outgoing/waiter``). The message goes
    /// into the outgoing queue with its waiter under the lock, whatever the `maxOutstanding` bound: each caller has
    /// at most this one message in flight, as it waits for it.
    func publishAndWait(_ message: Outgoing) async throws {
        let t = settings.timeouts
        let wait = t.reconnectWait + t.operation
        let url = self.url
        let routingKey = message.routingKey
        try await Pending<Void>.wait(on: io, waiters: waiters, timeout: wait, timeoutError: {
            MsgFloError(.timeout, "send to '\(routingKey)' on \(url): not confirmed by the broker within \(wait)")
        }, cancelledError: {
            MsgFloError(.cancelled, "send to '\(routingKey)' on \(url) cancelled before the broker confirmed it")
        }, onCancel: { [self] pending in takeBack(pending) }) { pending in
            let m = message.waited(by: pending)
            let (queued, doWake) = shared.withLock { s -> (Bool, Bool) in
                if s.closed || s.closeRequested || !s.threadRunning { return (false, false) }
                s.outstanding += 1
                s.publishes.append(m)
                return (true, AMQPCore.needsWake(&s))
            }
            if !queued { pending.resume(.failure(notConnectedError() ?? MsgFloError(.closed, "transport to \(url) is closed"))) }
            if doWake { wake() }
        }
    }

    /// A cancelled ``publishAndWait(_:)``: its message leaves the outgoing queue if the owner thread has not taken
    /// it yet (then it is never sent). Once taken it may be written already and cannot be unsent: it goes out (and
    /// is confirmed, or published again after a reconnect) as any other, and its verdict is dropped.
    private func takeBack(_ pending: Pending<Void>) {
        let limit = settings.maxOutstanding
        let room = shared.withLock { s -> Pending<Void>? in
            guard let i = s.publishes.firstIndex(where: { $0.waiter === pending }) else { return nil }
            s.publishes.remove(at: i)
            s.outstanding -= 1
            guard s.outstanding < limit, !s.spaceWaiters.isEmpty else { return nil }
            return s.spaceWaiters.removeFirst().pending
        }
        room?.resume(.success(()))
    }

    func subscribe(_ queue: String, prefetch: Int, tap: Bool, directReplyTo: Bool = false) async throws -> Subscription {
        if let e = notConnectedError() { throw e }
        let (stream, continuation) = tap
            ? DeliveryStream.makeStream(bufferingNewest: 10_000)
            : DeliveryStream.makeStream()
        let id = shared.withLock { s -> Int in
            let id = s.nextSubscription
            s.nextSubscription += 1
            s.newSubscriptions.append(SubscriptionRecord(id: id, queue: queue, prefetch: max(1, prefetch),
                                                         isTap: tap, directReplyTo: directReplyTo,
                                                         continuation: continuation))
            return id
        }
        do {
            _ = try await perform(.consume(subscription: id))
        } catch {
            shared.withLock { s in s.newSubscriptions.removeAll { $0.id == id } }
            // Cancelled or timed out after the owner thread took it: the consumer may have started; stop it.
            cancelInBackground(id)
            continuation.finish()
            throw error
        }
        continuation.onTermination = { [weak self] reason in
            // A consumer that stopped listening: stop consuming so the broker gives its messages to others.
            guard let self, case .cancelled = reason else { return }
            self.cancelInBackground(id)
        }
        return Subscription(queue: queue, stream: stream) { [weak self] in
            guard let self else { return }
            _ = try? await self.perform(.cancel(subscription: id))
            continuation.finish()
        }
    }

    private func cancelInBackground(_ id: Int) {
        let doWake = shared.withLock { s -> Bool in
            if s.closed || s.closeRequested { return false }
            let p = Pending<OpResult>()
            s.ops.append(QueuedOp(op: .cancel(subscription: id), pending: p,
                                  deadline: ContinuousClock.now + settings.timeouts.reconnectWait))
            return AMQPCore.needsWake(&s)
        }
        if doWake { wake() }
    }

    // MARK: DeliverySettler

    /// What deliveries hold to settle themselves (the owner thread makes one). Not the core itself: closures hold
    /// the core weakly, which moves its reference counts to a side table where every retain and release takes a
    /// slower path, and each delivery retains and releases its settler a few times.
    final class Settler: DeliverySettler {
        let core: AMQPCore
        init(core: AMQPCore) { self.core = core }
        func settle(tag: UInt64, generation: UInt64, ack: Bool) { core.settle(tag: tag, generation: generation, ack: ack) }
    }

    func settle(tag: UInt64, generation: UInt64, ack: Bool) {
        let doWake = shared.withLock { s -> Bool in
            if s.closed { return false }
            s.settles.append(Settle(tag: tag, generation: generation, ack: ack))
            return ack && !s.wakeOnAck ? false : AMQPCore.needsWake(&s)
        }
        if doWake { wake() }
    }
}
