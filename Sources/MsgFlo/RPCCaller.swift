import Synchronization

/// Requests that wait for their reply: the caller side of request/reply over a transport.
///
/// One private reply address per caller (``Transport/replyQueue()``: RabbitMQ's direct reply-to, an MQTT 5
/// response topic); each request gets a fresh correlation id, and the reply carrying it goes to that request's
/// waiter, whatever order replies arrive in. A reply that comes after its request gave up, or with an unknown
/// correlation id, is dropped (counted in ``strayReplies``).
public final class RPCCaller: Sendable {
    private enum Slot {
        case waiting(CheckedContinuation<Message, any Error>?)
        case arrived(Message)
    }

    public let transport: any Transport
    /// The reply-to requests carry.
    public let replyTo: String
    private let subscription: Subscription
    private let slots = Mutex<[String: Slot]>([:])
    private let listener: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let stray = Atomic<Int>(0)
    private let prefix: String
    private let counter = Atomic<UInt64>(0)

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
        return caller
    }

    /// Replies that matched no waiting request (late, or not ours).
    public var strayReplies: Int { stray.load(ordering: .relaxed) }

    private func arrived(_ m: Message) {
        guard let id = m.properties.correlationID else {
            stray.add(1, ordering: .relaxed)
            return
        }
        let waiter = slots.withLock { s -> CheckedContinuation<Message, any Error>?? in
            guard case .waiting(let c)? = s[id] else { return .none }
            if let c {
                s[id] = nil
                return .some(c)
            }
            s[id] = .arrived(m)
            return .some(nil)
        }
        switch waiter {
        case .none: stray.add(1, ordering: .relaxed)
        case .some(let c?): c.resume(returning: m)
        case .some(nil): break
        }
    }

    private func fail(_ id: String, _ error: any Error) {
        let c = slots.withLock { s -> CheckedContinuation<Message, any Error>? in
            defer { s[id] = nil }
            if case .waiting(let c)? = s[id] { return c }
            return nil
        }
        c?.resume(throwing: error)
    }

    private func failAll(_ error: any Error) {
        let all = slots.withLock { s -> [CheckedContinuation<Message, any Error>] in
            defer { s = [:] }
            return s.values.compactMap { if case .waiting(let c) = $0 { c } else { nil } }
        }
        for c in all { c.resume(throwing: error) }
    }

    private func wait(_ id: String, gone: MsgFloError) async throws -> Message {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Message, any Error>) in
            let ready = slots.withLock { s -> Result<Message, any Error>? in
                switch s[id] {
                case .arrived(let m)?:
                    s[id] = nil
                    return .success(m)
                case .waiting?:
                    s[id] = .waiting(c)
                    return nil
                case nil:
                    return .failure(gone)
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
        slots.withLock { $0[id] = .waiting(nil) }
        do {
            switch route {
            case .queue: try await transport.send(toInport: queue, request)
            case .routedQueue: try await transport.sendRouted(toInport: queue, request)
            case .exchange: try await transport.send(toOutport: queue, request)
            }
        } catch {
            slots.withLock { _ = $0.removeValue(forKey: id) }
            throw error
        }
        let timedOut = MsgFloError(.timeout, "no reply from \(WireName.shown(queue)) within \(timeout)")
        return try await withThrowingTaskGroup(of: Message?.self) { group in
            group.addTask { try await self.wait(id, gone: timedOut) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self.fail(id, timedOut) }
                return nil
            }
            while let r = try await group.next() {
                if let r {
                    group.cancelAll()
                    return r
                }
            }
            throw timedOut
        }
    }

    /// Stops listening; calls still waiting fail with `.closed`. The transport stays open.
    public func close() async {
        await subscription.cancel()
        let task = listener.withLock { $0 }
        task?.cancel()
        await task?.value
        failAll(MsgFloError(.closed, "caller closed"))
    }
}
