import Synchronization

/// Requests that wait for their reply: the caller side of request/reply over a transport.
///
/// One private reply address per caller (``Transport/replyQueue()``: RabbitMQ's direct reply-to, an MQTT 5
/// response topic); each request gets a fresh correlation id, and the reply carrying it goes to that request's
/// waiter, whatever order replies arrive in. A reply that comes after its request gave up, or with an unknown
/// correlation id, is dropped (counted in ``strayReplies``).
public final class RPCCaller: Sendable {
    private enum Slot {
        /// Sent; its waiter once it waits, and when it gives up.
        case waiting(UnsafeContinuation<Message, any Error>?, deadline: ContinuousClock.Instant)
        /// The reply came before its request began to wait.
        case arrived(Message)
        /// Timed out, cancelled or closed before its request began to wait.
        case failed(any Error)
    }

    private struct State {
        var slots: [String: Slot] = [:]
        /// The timeout sweeper, idle while no call waits.
        var idleSweeper: CheckedContinuation<Void, Never>?
        var closed = false
    }

    public let transport: any Transport
    /// The reply-to requests carry.
    public let replyTo: String
    private let subscription: Subscription
    private let state = Mutex(State())
    private let listener: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let sweeper: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let stray = Atomic<Int>(0)
    private let prefix: String
    private let counter = Atomic<UInt64>(0)

    /// How late a timeout may fire at most: the one sweeper that fails overdue calls looks at least this often
    /// while calls wait (a call does not set a timer of its own: a timer task per call cost more than the call).
    static let sweepInterval: Duration = .milliseconds(50)

    private init(transport: any Transport, replyTo: String, subscription: Subscription) {
        self.transport = transport
        self.replyTo = replyTo
        self.subscription = subscription
        prefix = String(UInt64.random(in: 0...UInt64.max), radix: 36) + "-"
    }

    /// Opens the reply address on `transport` (connected) and starts listening.
    public static func start(on transport: any Transport) async throws -> RPCCaller {
        let (replyTo, subscription) = try await transport.replyQueue()
        let caller = RPCCaller(transport: transport, replyTo: replyTo, subscription: subscription)
        // Lives until close(): the replies of every call made meanwhile arrive here.
        let task = Task(executorPreference: transport.preferredExecutor) { [subscription] in
            for await d in subscription {
                d.ack()
                caller.arrived(d.message)
            }
            caller.failAll(MsgFloError(.closed, "replies on \(transport.broker) ended"))
        }
        caller.listener.withLock { $0 = task }
        let sweeper = Task(executorPreference: transport.preferredExecutor) { await caller.sweep() }
        caller.sweeper.withLock { $0 = sweeper }
        return caller
    }

    /// Replies that matched no waiting request (late, or not ours).
    public var strayReplies: Int { stray.load(ordering: .relaxed) }

    private func arrived(_ m: Message) {
        guard let id = m.properties.correlationID else {
            stray.add(1, ordering: .relaxed)
            return
        }
        let waiter = state.withLock { s -> UnsafeContinuation<Message, any Error>?? in
            guard case .waiting(let c, _)? = s.slots[id] else { return .none }
            if let c {
                s.slots[id] = nil
                return .some(c)
            }
            s.slots[id] = .arrived(m)
            return .some(nil)
        }
        switch waiter {
        case .none: stray.add(1, ordering: .relaxed)
        case .some(let c?): c.resume(returning: m)
        case .some(nil): break
        }
    }

    /// Ends call `id` with `error` if it still waits for its reply.
    private func fail(_ id: String, _ error: any Error) {
        let c = state.withLock { s -> UnsafeContinuation<Message, any Error>? in
            guard case .waiting(let c, _)? = s.slots[id] else { return nil }
            if c == nil { s.slots[id] = .failed(error) } else { s.slots[id] = nil }
            return c
        }
        c?.resume(throwing: error)
    }

    private func failAll(_ error: any Error) {
        let (all, idle) = state.withLock { s -> ([UnsafeContinuation<Message, any Error>], CheckedContinuation<Void, Never>?) in
            s.closed = true
            var waiters: [UnsafeContinuation<Message, any Error>] = []
            for (id, slot) in s.slots {
                guard case .waiting(let c, _) = slot else { continue }
                if let c {
                    waiters.append(c)
                    s.slots[id] = nil
                } else {
                    s.slots[id] = .failed(error)
                }
            }
            defer { s.idleSweeper = nil }
            return (waiters, s.idleSweeper)
        }
        idle?.resume()
        for c in all { c.resume(throwing: error) }
    }

    /// Fails the calls whose deadline has passed, until the caller closes.
    private func sweep() async {
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let now = clock.now
            var next: ContinuousClock.Instant?
            var overdue: [(String, UnsafeContinuation<Message, any Error>?)] = []
            let closed = state.withLock { s -> Bool in
                for (id, slot) in s.slots {
                    guard case .waiting(let c, let deadline) = slot else { continue }
                    if deadline <= now {
                        overdue.append((id, c))
                    } else if next.map({ deadline < $0 }) ?? true {
                        next = deadline
                    }
                }
                return s.closed
            }
            if closed { return }
            for (id, _) in overdue {
                fail(id, MsgFloError(.timeout, "no reply within the call's timeout"))
            }
            if let next {
                try? await Task.sleep(until: min(next, now + Self.sweepInterval), clock: clock)
            } else if overdue.isEmpty {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let idle = state.withLock { s -> Bool in
                        guard !s.closed, !s.slots.contains(where: { if case .waiting = $0.value { true } else { false } })
                        else { return false }
                        s.idleSweeper = c
                        return true
                    }
                    if !idle { c.resume() }
                }
            }
        }
    }

    private func wait(_ id: String) async throws -> Message {
        try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<Message, any Error>) in
            let ready = state.withLock { s -> Result<Message, any Error>? in
                switch s.slots[id] {
                case .arrived(let m)?:
                    s.slots[id] = nil
                    return .success(m)
                case .failed(let e)?:
                    s.slots[id] = nil
                    return .failure(e)
                case .waiting(_, let deadline)?:
                    s.slots[id] = .waiting(c, deadline: deadline)
                    return nil
                case nil:
                    // Only a closed caller forgets a call's slot before it waits.
                    return .failure(MsgFloError(.closed, "caller closed"))
                }
            }
            if let ready { c.resume(with: ready) }
        }
    }

    /// How a request reaches its queue.
    public enum Route: Sendable {
        /// Straight into the queue (``Transport/send(toInport:_:)``).
        case queue
        /// The same, and on AMQP published mandatory and confirmed: a queue that does not exist fails at once
        /// with `.notFound`.
        case routedQueue
        /// Through the exchange of that name (AMQP; an exported inport of a graph is one); the topic on MQTT.
        case exchange
    }

    /// Sends `message` to queue `queue` with this caller's reply-to and a fresh correlation id (other properties
    /// as given), and returns the reply. Throws `.timeout` when none comes within `timeout`.
    public func call(_ queue: String, _ message: Message, timeout: Duration, route: Route = .queue) async throws -> Message {
        let id = prefix + String(counter.add(1, ordering: .relaxed).newValue, radix: 36)
        var request = message
        request.properties.correlationID = id
        request.properties.replyTo = replyTo
        let deadline = ContinuousClock.now + timeout
        let (idle, closed) = state.withLock { s -> (CheckedContinuation<Void, Never>?, Bool) in
            if s.closed { return (nil, true) }
            s.slots[id] = .waiting(nil, deadline: deadline)
            defer { s.idleSweeper = nil }
            return (s.idleSweeper, false)
        }
        if closed { throw MsgFloError(.closed, "caller closed") }
        idle?.resume()
        do {
            switch route {
            case .queue: try await transport.send(toInport: queue, request)
            case .routedQueue: try await transport.sendRouted(toInport: queue, request)
            case .exchange: try await transport.send(toOutport: queue, request)
            }
        } catch {
            state.withLock { _ = $0.slots.removeValue(forKey: id) }
            throw error
        }
        do {
            return try await withTaskCancellationHandler {
                try await wait(id)
            } onCancel: {
                fail(id, CancellationError())
            }
        } catch let error as MsgFloError where error.code == .timeout {
            // The sweeper's error does not know the queue. (Made here, not per call: it cost 7% of a call.)
            throw MsgFloError(.timeout, "no reply from \(WireName.shown(queue)) within \(timeout)")
        }
    }

    /// Stops listening; calls still waiting fail with `.closed`. The transport stays open.
    public func close() async {
        await subscription.cancel()
        let task = listener.withLock { $0 }
        task?.cancel()
        await task?.value
        failAll(MsgFloError(.closed, "caller closed"))
        let sweeper = sweeper.withLock { $0 }
        sweeper?.cancel()
        await sweeper?.value
    }
}
