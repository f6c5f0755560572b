import MsgFlo
import Synchronization
import Testing

/// Collects what arrives on a subscription, acknowledging each message, so that tests can wait for a count.
public final class MessageCollector: Sendable {
    final class Box: Sendable { let messages = Mutex<[Message]>([]) }
    private let box = Box()
    public let subscription: Subscription
    private let task: Task<Void, Never>

    public init(_ subscription: Subscription) {
        self.subscription = subscription
        let box = self.box
        task = Task {
            for await d in subscription {
                box.messages.withLock { $0.append(d.message) }
                d.ack()
            }
        }
    }

    public var count: Int { box.messages.withLock { $0.count } }
    public var all: [Message] { box.messages.withLock { $0 } }
    public var json: [JSONValue?] { all.map(\.json) }

    /// Waits until at least `n` messages are in; records an issue and throws ``WaitTimeout`` after `timeout`.
    @discardableResult
    public func wait(for n: Int, timeout: Duration = .seconds(30),
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Message] {
        try await eventually("\(n) messages on \(subscription.queue) (have \(count))", timeout: timeout,
                             sourceLocation: sourceLocation) { count >= n }
        return all
    }

    public func stop() async {
        await subscription.cancel()
        task.cancel()
    }
}

public struct WaitTimeout: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// Waits until `condition` holds; records an issue and throws ``WaitTimeout`` after `timeout` (30 s by default: a
/// fresh-clone CI run saw every test of the process stall ~12 s at start while CPU-bound tests held both cooperative
/// threads, and 10 s waits then failed; a wait that succeeds is as quick as before).
///
/// It looks again after 1 ms, then ever less often, up to every 50 ms: hundreds of tests wait at once in one process
/// on two cooperative threads, and polling them all every 5 ms starved the work they were waiting for on a loaded
/// machine.
public func eventually(_ what: String, timeout: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation,
                       _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var pause = Duration.milliseconds(1)
    while try await !condition() {
        if clock.now > deadline {
            Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
            throw WaitTimeout(description: "timed out waiting for \(what)")
        }
        try await Task.sleep(for: pause)
        pause = min(pause * 2, .milliseconds(50))
    }
}
