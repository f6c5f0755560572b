import Foundation
import MsgFlo
import MsgFloParticipant
import Synchronization
import Testing

/// Collects what arrives on a queue, acknowledging each message.
final class Collector: Sendable {
    final class Box: Sendable { let messages = Mutex<[Message]>([]) }
    private let box = Box()
    let subscription: Subscription
    private let task: Task<Void, Never>

    init(_ subscription: Subscription) {
        self.subscription = subscription
        let box = self.box
        task = Task {
            for await d in subscription {
                box.messages.withLock { $0.append(d.message) }
                d.ack()
            }
        }
    }

    /// A queue bound to outport `outport` (declared here), collected.
    static func outport(_ outport: String, on t: any Transport) async throws -> Collector {
        let q = "test.\(outport).\(UInt32.random(in: 0...UInt32.max))"
        try await t.declareInport(q)
        try await t.declareOutport(outport)
        try await t.addBinding(Binding(src: outport, tgt: q))
        return Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 100)))
    }

    static func queue(_ q: String, on t: any Transport) async throws -> Collector {
        try await t.declareInport(q)
        return Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 100)))
    }

    var count: Int { box.messages.withLock { $0.count } }
    var all: [Message] { box.messages.withLock { $0 } }
    var json: [JSONValue?] { all.map(\.json) }

    /// Waits until at least `n` messages are in, or fails after `timeout`.
    @discardableResult
    func wait(for n: Int, timeout: Duration = .seconds(5), sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Message] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while count < n {
            if clock.now > deadline {
                Issue.record("expected \(n) messages on \(subscription.queue), got \(count) within \(timeout)", sourceLocation: sourceLocation)
                throw Timeout()
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return all
    }

    func stop() async {
        await subscription.cancel()
        task.cancel()
    }

    struct Timeout: Error {}
}

/// Waits until `condition` holds, or fails.
func eventually(_ what: String, timeout: Duration = .seconds(5), sourceLocation: SourceLocation = #_sourceLocation,
                _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while try await !condition() {
        if clock.now > deadline {
            Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
            throw Collector.Timeout()
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// A gate handlers wait on until the test opens it.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    func wait() async {
        await withCheckedContinuation { c in
            let now = state.withLock { s in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
    func open() {
        let ws = state.withLock { s in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in ws { w.resume() }
    }
}

func connected(_ broker: InMemoryBroker = InMemoryBroker(), scheme: BrokerURL.Scheme = .amqp) async throws -> InMemoryTransport {
    let t = InMemoryTransport(broker: broker, url: BrokerURL(scheme: scheme, host: "in-memory"))
    try await t.connect()
    return t
}
